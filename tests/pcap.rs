//! `mqscope read`: pcap and pcapng files written by tcpdump and dumpcap
//! around real Mosquitto exchanges, read back packet by packet and compared
//! with the live `--trace` of the same clients. Needs root and the Debian
//! packages tcpdump and tshark (dumpcap).

mod common;
#[path = "common/capture.rs"]
mod sniff;

use common::*;
use mqscope::capture::pcap::{Capture, ReadOptions, StreamKind};
use mqscope::model::packet::Direction;
use serde_json::Value;
use sniff::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
/// Messages of the back-to-back QoS 0 burst.
const BURST: usize = 200;
const BIG: usize = 300_000;

/// Text without newlines: the subscriber prints it as one line.
fn big_payload() -> Vec<u8> {
    (0..BIG).map(|i| b'a' + (i * 7 % 26) as u8).collect()
}

/// One client's live trace.
struct Live {
    client_id: String,
    trace: Vec<Value>,
}

fn mqscope_run(args: &[String]) -> Finished {
    run_with_timeout(mqscope().args(args), LIMIT)
}

/// A subscriber, four publishers (QoS 0, 1, 2 and a large QoS 1 payload)
/// traced live, and a burst of small QoS 0 publishes from mosquitto_pub;
/// returns the live traces. `v5`: everything speaks MQTT 5, with properties.
fn exchange(broker: &Broker, v5: bool, dir: &Path, tag: &str) -> Vec<Live> {
    let conn = mqscope_connection_args(broker);
    let version: Vec<String> = if v5 {
        vec!["-V".into(), "5".into()]
    } else {
        Vec::new()
    };
    let props: Vec<String> = if v5 {
        [
            "-D",
            "publish",
            "user-property",
            "unit",
            "C",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ]
        .map(String::from)
        .to_vec()
    } else {
        Vec::new()
    };
    let total = 4 + BURST;
    let sub_id = format!("{tag}-sub");
    let mut sub_args: Vec<String> = vec!["sub".into()];
    sub_args.extend(conn.clone());
    sub_args.extend(version.clone());
    sub_args.extend(
        [
            "-i",
            &sub_id,
            "-t",
            "cap/#",
            "-q",
            "2",
            "-C",
            &total.to_string(),
            "--trace",
        ]
        .map(String::from),
    );
    let mut sub = Lines::new(
        mqscope()
            .args(&sub_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mqscope sub starts"),
    );
    broker.wait_subscribed(&sub_id, "cap/#");

    let big = dir.join("big.bin");
    let payload: Vec<u8> = big_payload();
    std::fs::write(&big, &payload).expect("write payload");
    let mut lives = Vec::new();
    for (i, (qos, what)) in [
        ("0", vec!["-m".to_string(), "zero".into()]),
        ("1", vec!["-m".into(), "one, \"quoted\"".into()]),
        ("2", vec!["-m".into(), "two".into()]),
        ("1", vec!["-f".into(), big.display().to_string()]),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("{tag}-pub{i}");
        let mut args: Vec<String> = vec!["pub".into()];
        args.extend(conn.clone());
        args.extend(version.clone());
        args.extend(props.clone());
        args.extend(
            [
                "-i",
                &id,
                "-t",
                &format!("cap/q{qos}/{i}"),
                "-q",
                qos,
                "--trace",
            ]
            .map(String::from),
        );
        args.extend(what);
        let done = mqscope_run(&args);
        assert_eq!(done.code, Some(0), "mqscope pub failed: {}", done.stderr);
        lives.push(Live {
            client_id: id,
            trace: trace_lines(&done.stderr),
        });
    }
    // Many small QoS 0 publishes written back to back.
    let lines: String = (0..BURST).map(|i| format!("m{i}\n")).collect();
    let mut burst = Command::new("mosquitto_pub");
    burst
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-i", &format!("{tag}-burst"), "-t", "cap/many", "-l"]);
    if v5 {
        burst.args(["-V", "mqttv5"]);
    }
    let mut child = burst
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub starts");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(lines.as_bytes()).expect("burst written");
    }
    let out = child.wait_with_output().expect("mosquitto_pub ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, err) = sub.finish(LIMIT);
    assert_eq!(
        code,
        Some(0),
        "mqscope sub did not get {total} messages: {err}"
    );
    lives.push(Live {
        client_id: sub_id,
        trace: trace_lines(&err),
    });
    lives
}

/// Every one of the exchange's six connections is in the file and closed.
fn exchange_complete(c: &Capture) -> bool {
    c.streams.len() >= 6 && c.streams.iter().all(|s| s.info.closed)
}

/// Reads `file` with `mqscope read --trace` and compares each traced client.
fn assert_file_matches_live(file: &Path, lives: &[Live]) -> Vec<Value> {
    let done = mqscope_run(&["read".into(), "--trace".into(), file.display().to_string()]);
    assert_eq!(done.code, Some(0), "read --trace failed: {}", done.stderr);
    let lines = trace_lines(&done.stdout);
    for l in &lines {
        for key in ["client", "broker"] {
            let v = l[key].as_str().unwrap_or_default();
            assert!(v.starts_with("127.0.0.1:"), "{key} of {l}");
        }
    }
    for live in lives {
        let stream: Vec<Value> = stream_of(&lines, &live.client_id)
            .into_iter()
            .cloned()
            .collect();
        assert_same_packets(
            &format!("{} in {}", live.client_id, file.display()),
            &live.trace,
            &stream,
        );
    }
    lines
}

/// The capture's own figures: the large payload came split over segments,
/// the burst several packets to a segment, every message whole.
fn assert_reassembly(c: &Capture, tag: &str, v5: bool) {
    let mqtt = c
        .streams
        .iter()
        .filter(|s| matches!(s.info.kind, StreamKind::Mqtt(_)))
        .count();
    assert_eq!(mqtt, 6, "six MQTT streams");
    for s in &c.streams {
        assert!(s.info.problems.is_empty(), "{:?}", s.info.problems);
        let want = if v5 {
            mqscope::model::protocol::ProtocolVersion::V5
        } else {
            mqscope::model::protocol::ProtocolVersion::V311
        };
        assert_eq!(s.info.kind, StreamKind::Mqtt(want));
    }
    let split: u64 = c
        .streams
        .iter()
        .map(|s| s.info.client_frames.split_packets + s.info.broker_frames.split_packets)
        .sum();
    assert!(
        split >= 2,
        "the large PUBLISH crossed the wire split in both hops: {split}"
    );
    let shared: u64 = c
        .streams
        .iter()
        .map(|s| s.info.client_frames.shared_segments + s.info.broker_frames.shared_segments)
        .sum();
    assert!(shared >= 1, "some segment carried several packets");
    let id = |s: &mqscope::capture::pcap::Stream| {
        s.records
            .first()
            .and_then(|r| r.detail.client_id.clone())
            .unwrap_or_default()
    };
    let sub = c
        .streams
        .iter()
        .find(|s| id(s) == format!("{tag}-sub"))
        .expect("the subscriber's stream");
    let delivered: Vec<_> = sub.delivered().collect();
    assert_eq!(
        delivered.len(),
        4 + BURST,
        "{}",
        mqscope::capture::cli::summary_text("capture", c)
    );
    let big = delivered
        .iter()
        .find(|m| m.topic == "cap/q1/3")
        .expect("the large message");
    let expected: Vec<u8> = big_payload();
    assert!(
        big.payload[..] == expected[..],
        "the large payload read back whole"
    );
    let burst = c
        .streams
        .iter()
        .find(|s| id(s) == format!("{tag}-burst"))
        .expect("the burst's stream");
    let sent: Vec<_> = burst
        .messages
        .iter()
        .filter(|m| burst.sent_by(m) == Some(Direction::Out))
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    let want: Vec<String> = (0..BURST).map(|i| format!("m{i}")).collect();
    assert_eq!(sent, want, "the burst, in order, each once");
    // The flows the summary reports come from the same records.
    let log = sub.packet_log();
    assert!(
        log.flows().all(|f| f.is_complete()),
        "every flow of the subscriber completed"
    );
}

#[test]
fn mqtt311_exchange_captured_by_tcpdump_reads_back_as_the_live_trace() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mqtt311.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    let lives = exchange(&broker, false, dir.path(), "v311");
    let capture = wait_for_capture(&file, exchange_complete);
    sniffer.stop();
    assert_reassembly(&capture, "v311", false);
    assert_file_matches_live(&file, &lives);

    let done = mqscope_run(&["read".into(), file.display().to_string()]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(done.stdout.contains("6 MQTT streams"), "{}", done.stdout);
    assert!(
        done.stdout.contains("MQTT 3.1.1, client id \"v311-sub\""),
        "{}",
        done.stdout
    );
    assert!(done.stdout.contains("cap/many (200)"), "{}", done.stdout);
}

#[test]
fn mqtt5_exchange_captured_by_dumpcap_and_tcpdump_any_reads_back_as_the_live_trace() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ng = dir.path().join("mqtt5.pcapng");
    let any = dir.path().join("mqtt5-any.pcap");
    let mut dumpcap = Sniffer::start(Tool::Dumpcap, broker.port, &ng);
    let mut tcpdump = Sniffer::start(Tool::TcpdumpAny, broker.port, &any);
    let lives = exchange(&broker, true, dir.path(), "v5");
    // tcpdump writes as it goes: once its file is complete, every packet
    // has reached both tools; dumpcap writes the rest when stopped.
    let from_any = wait_for_capture(&any, exchange_complete);
    tcpdump.stop();
    dumpcap.stop();
    assert_reassembly(&from_any, "v5", true);
    let from_ng = Capture::open(&ng, ReadOptions::default()).expect("pcapng reads");
    assert_reassembly(&from_ng, "v5", true);
    let a = assert_file_matches_live(&ng, &lives);
    let b = assert_file_matches_live(&any, &lives);
    let strip = |v: &[Value]| v.iter().map(comparable).collect::<Vec<_>>();
    assert_eq!(strip(&a), strip(&b), "pcapng and SLL2 pcap read the same");
    // MQTT 5 properties travelled and were read.
    let with_props = a
        .iter()
        .filter(|l| l["kind"] == "PUBLISH" && l["props"]["content_type"] == "text/plain")
        .count();
    assert!(
        with_props >= 8,
        "publishes carry their properties: {with_props}"
    );
    // Timestamps are real (pcapng's resolution applied): within this hour.
    let now = std::time::SystemTime::now();
    let first = from_ng.streams[0].info.started;
    let age = now.duration_since(first).unwrap_or_default();
    assert!(age < Duration::from_secs(3600), "capture time {first:?}");
}

#[test]
fn a_tls_stream_is_listed_as_encrypted_with_its_endpoints() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.server_tls()).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tls.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    mosquitto_pub(&broker, &["-t", "secret", "-m", "hidden"]);
    wait_for_capture(&file, |c| c.streams.len() == 1 && c.streams[0].info.closed);
    sniffer.stop();
    let done = mqscope_run(&["read".into(), file.display().to_string()]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let line = done
        .stdout
        .lines()
        .find(|l| l.starts_with("stream 1:"))
        .unwrap_or_else(|| panic!("{}", done.stdout));
    assert!(line.contains("encrypted (TLS)"), "{line}");
    assert!(
        line.contains(&format!("→ broker 127.0.0.1:{}", broker.port)),
        "{line}"
    );
    assert!(!done.stdout.contains("hidden"));
}

/// A small capture of a 3.1.1 and a v5 exchange, for the tests that change it.
fn small_capture(dir: &Path) -> std::path::PathBuf {
    let broker = Broker::start();
    let file = dir.join("small.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    let payload = "x".repeat(100_000);
    mosquitto_pub(&broker, &["-t", "a/b", "-m", &payload, "-q", "1"]);
    mosquitto_pub(
        &broker,
        &["-t", "a/c", "-m", "five", "-q", "2", "-V", "mqttv5"],
    );
    wait_for_capture(&file, |c| {
        c.streams.len() == 2 && c.streams.iter().all(|s| s.info.closed)
    });
    sniffer.stop();
    file
}

fn frames(
    path: &Path,
) -> (
    pcap_file::pcap::PcapHeader,
    Vec<pcap_file::pcap::PcapPacket<'static>>,
) {
    let f = std::fs::File::open(path).expect("open");
    let mut r = pcap_file::pcap::PcapReader::new(f).expect("pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("packet").into_owned());
    }
    (r.header(), out)
}

fn tcp_payload_len(data: &[u8]) -> usize {
    match etherparse::SlicedPacket::from_ethernet(data) {
        Ok(s) => match s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => t.payload().len(),
            _ => 0,
        },
        Err(_) => 0,
    }
}

fn records_without_time(c: &Capture) -> Vec<Vec<Value>> {
    c.streams
        .iter()
        .map(|s| {
            s.records
                .iter()
                .map(|r| comparable(&serde_json::to_value(r).expect("json")))
                .collect()
        })
        .collect()
}

#[test]
fn retransmitted_and_reordered_segments_read_back_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = small_capture(dir.path());
    let original = Capture::open(&file, ReadOptions::default()).expect("reads");
    let (header, mut packets) = frames(&file);
    // Retransmit every data segment once, and swap the first two data
    // segments that follow each other.
    let data: Vec<usize> = (0..packets.len())
        .filter(|&i| tcp_payload_len(&packets[i].data) > 0)
        .collect();
    let pair = data
        .windows(2)
        .find(|w| w[1] == w[0] + 1)
        .map(|w| w[0])
        .expect("two data segments in a row (the large payload)");
    packets.swap(pair, pair + 1);
    let mut changed = Vec::new();
    for p in packets {
        let again = tcp_payload_len(&p.data) > 0;
        changed.push(p.clone());
        if again {
            changed.push(p);
        }
    }
    let out = dir.path().join("changed.pcap");
    let mut w = pcap_file::pcap::PcapWriter::with_header(
        std::fs::File::create(&out).expect("create"),
        header,
    )
    .expect("writer");
    for p in &changed {
        w.write_packet(p).expect("write");
    }
    drop(w);
    let changed = Capture::open(&out, ReadOptions::default()).expect("reads");
    assert_eq!(
        records_without_time(&original),
        records_without_time(&changed)
    );
    let retransmitted: u64 = changed
        .streams
        .iter()
        .map(|s| s.info.client_tcp.retransmitted + s.info.broker_tcp.retransmitted)
        .sum();
    let reordered: u64 = changed
        .streams
        .iter()
        .map(|s| s.info.client_tcp.out_of_order + s.info.broker_tcp.out_of_order)
        .sum();
    assert!(retransmitted >= data.len() as u64 - 1, "{retransmitted}");
    assert!(reordered >= 1);
    let messages: usize = changed.streams.iter().map(|s| s.messages.len()).sum();
    assert_eq!(messages, 2, "each message once");
}

#[test]
fn bad_files_get_a_one_line_error_and_exit_1_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = small_capture(dir.path());
    let good = std::fs::read(&file).expect("read");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text.pcap",
            b"hello, this is not a capture\n".to_vec(),
            "not a pcap or pcapng file",
        ),
        ("empty.pcap", Vec::new(), "not a pcap or pcapng file"),
        (
            "truncated.pcap",
            good[..good.len() - 7].to_vec(),
            "truncated",
        ),
        (
            "corrupt-header.pcap",
            [&good[..4], &[0xff; 20][..]].concat(),
            "not a pcap or pcapng file",
        ),
        (
            "truncated.pcapng",
            [
                &[0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0][..],
                &[0x4d, 0x3c, 0x2b, 0x1a],
            ]
            .concat(),
            "",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        for cmd in [
            vec!["read".to_string(), path.display().to_string()],
            vec![
                "export".into(),
                path.display().to_string(),
                "--format".into(),
                "csv".into(),
            ],
        ] {
            let done = mqscope_run(&cmd);
            assert_eq!(done.code, Some(1), "{name} {cmd:?}: {done:?}");
            assert_eq!(done.stderr.lines().count(), 1, "{name}: {}", done.stderr);
            assert!(done.stderr.contains(says), "{name}: {}", done.stderr);
            assert!(!done.stderr.contains("panicked"), "{name}: {}", done.stderr);
        }
    }
    // A failed export leaves no output file behind.
    let out = dir.path().join("never.csv");
    let done = mqscope_run(&[
        "export".into(),
        dir.path().join("text.pcap").display().to_string(),
        "--format".into(),
        "csv".into(),
        "-o".into(),
        out.display().to_string(),
    ]);
    assert_eq!(done.code, Some(1));
    assert!(!out.exists(), "no half-written export");
    let missing = mqscope_run(&[
        "read".into(),
        dir.path().join("nope.pcap").display().to_string(),
    ]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);

    // Damage at every place of a real capture: an error or a result, never
    // a panic (a panic fails this test).
    let mutated = dir.path().join("mutated.pcap");
    let mut outcomes = (0, 0);
    for i in (0..good.len()).step_by(good.len() / 400 + 1) {
        for flip in [0xffu8, 0x80, 0x01] {
            let mut bytes = good.clone();
            bytes[i] ^= flip;
            std::fs::write(&mutated, &bytes).expect("write");
            match Capture::open(&mutated, ReadOptions::default()) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(!e.to_string().contains('\n'));
                    outcomes.1 += 1;
                }
            }
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

#[test]
fn port_forces_decoding_of_a_capture_that_starts_after_the_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = small_capture(dir.path());
    let (header, packets) = frames(&file);
    // Drop every frame up to and including the first CONNACK's segment of the
    // v5 stream: keep only the second connection from its PUBLISH on.
    let c = Capture::open(&file, ReadOptions::default()).expect("reads");
    let v5 = &c.streams[1].info;
    let port = v5.broker.port();
    let client_port = v5.client.port();
    let from_client: Vec<usize> = (0..packets.len())
        .filter(|&i| {
            tcp_payload_len(&packets[i].data) > 0
                && etherparse::SlicedPacket::from_ethernet(&packets[i].data)
                    .ok()
                    .and_then(|s| match s.transport {
                        Some(etherparse::TransportSlice::Tcp(t)) => Some(t.source_port()),
                        _ => None,
                    })
                    == Some(client_port)
        })
        .collect();
    // The second client data segment is its PUBLISH; start just before it.
    let start = from_client[1];
    let out = dir.path().join("mid.pcap");
    let mut w = pcap_file::pcap::PcapWriter::with_header(
        std::fs::File::create(&out).expect("create"),
        header,
    )
    .expect("writer");
    for p in &packets[start..] {
        w.write_packet(p).expect("write");
    }
    drop(w);
    let by_content = mqscope_run(&["read".into(), out.display().to_string()]);
    assert!(
        by_content.stdout.contains("no MQTT found"),
        "{}",
        by_content.stdout
    );
    let forced = mqscope_run(&[
        "read".into(),
        "--trace".into(),
        "--port".into(),
        port.to_string(),
        "-V".into(),
        "5".into(),
        out.display().to_string(),
    ]);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let lines = trace_lines(&forced.stdout);
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["PUBLISH", "PUBREC", "PUBREL", "PUBCOMP", "DISCONNECT"]
    );
    assert_eq!(lines[0]["topic"], "a/c");
}
