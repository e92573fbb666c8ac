//! `mqscope sub` / `pub` / `rr` speaking MQTT 5 to a real Mosquitto, next
//! to mosquitto_sub / mosquitto_pub / tshark on the same exchange.

mod common;
#[path = "common/v5.rs"]
mod v5util;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use v5util::*;

const LIMIT: Duration = Duration::from_secs(10);

/// `mqscope <sub|pub|rr>` with the broker's connection flags.
fn mqscope_cmd(sub: &str, broker: &Broker, args: &[&str]) -> Command {
    let mut cmd = mqscope();
    cmd.arg(sub)
        .args(mqscope_connection_args(broker))
        .args(args);
    cmd
}

fn run(sub: &str, broker: &Broker, args: &[&str]) -> Finished {
    run_with_timeout(&mut mqscope_cmd(sub, broker, args), LIMIT)
}

/// Starts `mqscope sub -i ID ARGS` and waits until the broker has its
/// subscription to `filter`.
fn start_sub(broker: &Broker, id: &str, filter: &str, args: &[&str]) -> Lines {
    let mut cmd = mqscope_cmd("sub", broker, &["-i", id]);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let sub = Lines::new(cmd.spawn().expect("cannot start mqscope sub"));
    broker.wait_subscribed(id, filter);
    sub
}

/// The `--trace` lines of a run: (dir, kind, bytes) and the JSON itself.
fn trace_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn shape(lines: &[Value]) -> Vec<(String, String, u64)> {
    lines
        .iter()
        .map(|v| {
            (
                v["dir"].as_str().unwrap_or("?").to_string(),
                v["kind"].as_str().unwrap_or("?").to_string(),
                v["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn pub_v5_refused_by_the_acl_exits_1_with_the_reason_code_in_words() {
    let (broker, _acl) = acl_broker();
    let done = run(
        "pub",
        &broker,
        &["-V", "5", "-q", "1", "-t", "secret/x", "-m", "no"],
    );
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert_eq!(
        done.stderr.trim(),
        "mqscope pub: PUBACK 0x87 Not authorized"
    );
    let done = run(
        "pub",
        &broker,
        &["-V", "mqttv5", "-q", "2", "-t", "secret/x", "-m", "no"],
    );
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert_eq!(
        done.stderr.trim(),
        "mqscope pub: PUBREC 0x87 Not authorized"
    );
    // The same publish over 3.1.1 is acknowledged (and dropped by the
    // broker): there is no way to say no in 3.1.1.
    let done = run(
        "pub",
        &broker,
        &["-V", "311", "-q", "1", "-t", "secret/x", "-m", "no"],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
}

/// `sub -C 1 -q 2 --trace` receiving one QoS 2 message: the trace's last
/// packets.
fn sub_trace_tail(protocol: &str) -> Vec<(String, String)> {
    let broker = Broker::start();
    let id = format!("trace-tail-{protocol}");
    let mut sub = start_sub(
        &broker,
        &id,
        "tail/#",
        &[
            "-V", protocol, "-t", "tail/#", "-q", "2", "-C", "1", "--trace",
        ],
    );
    mosquitto_pub(&broker, &["-t", "tail/x", "-m", "last", "-q", "2"]);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some("last"));
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    let lines = trace_lines(&stderr);
    let shape = shape(&lines);
    shape[shape.len().saturating_sub(5)..]
        .iter()
        .map(|(d, k, _)| (d.clone(), k.clone()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(d, k)| (d.to_string(), k.to_string()))
        .collect()
}

#[test]
fn sub_count_trace_at_qos_2_ends_with_pubrec_pubrel_pubcomp_and_disconnect() {
    let want = pairs(&[
        ("in", "PUBLISH"),
        ("out", "PUBREC"),
        ("in", "PUBREL"),
        ("out", "PUBCOMP"),
        ("out", "DISCONNECT"),
    ]);
    assert_eq!(sub_trace_tail("5"), want, "MQTT 5");
    assert_eq!(sub_trace_tail("311"), want, "MQTT 3.1.1");
}

// ----- --trace equals the wire (tshark) -----

/// tshark capturing the broker's port on loopback into a pcap file.
struct Capture {
    child: std::process::Child,
    file: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

/// One MQTT packet on the wire, seen from the client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct WirePacket {
    client_port: u16,
    dir: String,
    kind: String,
    bytes: u64,
}

const TSHARK: &str = "tshark";

impl Capture {
    fn start(port: u16) -> Capture {
        use std::io::BufRead as _;
        let dir = tempfile::Builder::new()
            .prefix("mqscope-pcap-")
            .tempdir()
            .expect("tempdir");
        let file = dir.path().join("capture.pcapng");
        let mut child = Command::new(TSHARK)
            .args(["-i", "lo", "-q", "-f", &format!("tcp port {port}"), "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run tshark ({e}): apt-get install -y tshark (non-interactive)")
            });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so tshark never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(LIMIT) {
                // "Capturing on" comes before dumpcap really captures; this
                // comes after.
                Ok(line) if line.contains("Capture started") => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    child.kill().ok();
                    child.wait().ok();
                    panic!("tshark did not start capturing: {seen:?}");
                }
            }
        }
        Capture {
            child,
            file,
            port,
            _dir: dir,
        }
    }

    /// Stops the capture and reads back every MQTT packet, per client port.
    fn packets(mut self) -> Vec<WirePacket> {
        // Give the last segments time to be captured, then stop cleanly.
        std::thread::sleep(Duration::from_millis(500));
        signal(self.child.id(), "INT");
        let status = self.child.wait().expect("tshark wait");
        assert!(status.success() || status.code().is_none(), "{status}");
        let out = Command::new(TSHARK)
            .arg("-r")
            .arg(&self.file)
            .args(["-d", &format!("tcp.port=={},mqtt", self.port)])
            .args(["-Y", "mqtt", "-T", "fields"])
            .args(["-e", "tcp.srcport", "-e", "tcp.dstport"])
            .args(["-e", "mqtt.msgtype", "-e", "mqtt.len"])
            .args(["-E", "separator=/t", "-E", "aggregator=,"])
            .output()
            .expect("tshark -r");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut packets = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let [src, dst, types, lens] = f[..] else {
                panic!("unexpected tshark line: {line}");
            };
            let (src, dst): (u16, u16) = (src.parse().unwrap(), dst.parse().unwrap());
            let (client_port, dir) = if dst == self.port {
                (src, "out")
            } else {
                (dst, "in")
            };
            for (t, len) in types.split(',').zip(lens.split(',')) {
                let len: u64 = len.parse().unwrap();
                packets.push(WirePacket {
                    client_port,
                    dir: dir.into(),
                    kind: kind_name(t.parse().unwrap()).into(),
                    bytes: 1 + varint_len(len) + len,
                });
            }
        }
        packets
    }
}

fn varint_len(len: u64) -> u64 {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn kind_name(msgtype: u8) -> &'static str {
    [
        "?",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ]
    .get(msgtype as usize)
    .copied()
    .unwrap_or("?")
}

/// The packets of one direction, in order: the wire's order within a
/// direction is the truth (the two directions interleave by timing).
fn one_way(shape: &[(String, String, u64)], dir: &str) -> Vec<(String, u64)> {
    shape
        .iter()
        .filter(|(d, _, _)| d == dir)
        .map(|(_, k, b)| (k.clone(), *b))
        .collect()
}

fn wire_shape(packets: &[WirePacket], client_port: u16) -> Vec<(String, String, u64)> {
    packets
        .iter()
        .filter(|p| p.client_port == client_port)
        .map(|p| (p.dir.clone(), p.kind.clone(), p.bytes))
        .collect()
}

/// The client port whose packets are `trace`'s, or a panic listing both.
fn matching_connection(packets: &[WirePacket], trace: &[(String, String, u64)]) -> u16 {
    let mut ports: Vec<u16> = packets.iter().map(|p| p.client_port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
        .iter()
        .copied()
        .find(|&port| {
            let wire = wire_shape(packets, port);
            one_way(&wire, "out") == one_way(trace, "out")
                && one_way(&wire, "in") == one_way(trace, "in")
        })
        .unwrap_or_else(|| {
            let all: Vec<_> = ports.iter().map(|&p| (p, wire_shape(packets, p))).collect();
            panic!("no connection on the wire matches the trace\ntrace: {trace:#?}\nwire: {all:#?}")
        })
}

#[test]
fn trace_equals_the_wire_with_properties_for_v5_and_for_311() {
    for protocol in ["5", "311"] {
        let broker = Broker::start();
        let capture = Capture::start(broker.port);
        let v5 = protocol == "5";
        let sub_id = format!("wire-sub-{protocol}");
        let mut sub_args = vec![
            "-V", protocol, "-t", "wire/#", "-q", "2", "-C", "1", "--trace",
        ];
        if v5 {
            sub_args.extend([
                "-D",
                "subscribe",
                "subscription-identifier",
                "9",
                "-D",
                "connect",
                "user-property",
                "who",
                "sub",
            ]);
        }
        let mut sub = start_sub(&broker, &sub_id, "wire/#", &sub_args);
        let mut pub_args = vec![
            "-V", protocol, "-i", "wire-pub", "-q", "2", "-t", "wire/x", "-m", "hello", "--trace",
        ];
        if v5 {
            pub_args.extend([
                "-D",
                "publish",
                "content-type",
                "text/plain",
                "-D",
                "publish",
                "user-property",
                "k",
                "v",
                "-D",
                "publish",
                "user-property",
                "k",
                "w",
                "-D",
                "publish",
                "correlation-data",
                "req-1",
                "-D",
                "publish",
                "message-expiry-interval",
                "60",
                "-D",
                "publish",
                "response-topic",
                "wire/reply",
                "-D",
                "connect",
                "session-expiry-interval",
                "30",
            ]);
        }
        let published = run("pub", &broker, &pub_args);
        assert_eq!(published.code, Some(0), "{}", published.stderr);
        assert_eq!(sub.next_line(LIMIT).as_deref(), Some("hello"));
        let (code, sub_stderr) = sub.finish(LIMIT);
        assert_eq!(code, Some(0), "{sub_stderr}");
        let packets = capture.packets();

        let pub_lines = trace_lines(&published.stderr);
        let sub_lines = trace_lines(&sub_stderr);
        let pub_port = matching_connection(&packets, &shape(&pub_lines));
        let sub_port = matching_connection(&packets, &shape(&sub_lines));
        assert_ne!(pub_port, sub_port);
        assert_eq!(
            packets
                .iter()
                .filter(|p| p.client_port != pub_port && p.client_port != sub_port)
                .count(),
            0,
            "only the two clients talked"
        );
        let kinds = |lines: &[Value]| -> Vec<String> {
            lines
                .iter()
                .map(|v| v["kind"].as_str().unwrap_or("?").to_string())
                .collect()
        };
        assert_eq!(
            kinds(&pub_lines),
            [
                "CONNECT",
                "CONNACK",
                "PUBLISH",
                "PUBREC",
                "PUBREL",
                "PUBCOMP",
                "DISCONNECT"
            ],
            "MQTT {protocol}"
        );
        let publish = &pub_lines[2];
        let delivered = sub_lines
            .iter()
            .find(|v| v["kind"] == "PUBLISH")
            .expect("the subscriber's PUBLISH");
        if v5 {
            assert_eq!(publish["props"]["content_type"], "text/plain");
            assert_eq!(
                publish["props"]["user_property"],
                serde_json::json!([["k", "v"], ["k", "w"]])
            );
            assert_eq!(publish["props"]["correlation_data"], "7265712d31");
            assert_eq!(
                delivered["props"]["subscription_identifier"],
                serde_json::json!([9])
            );
            assert_eq!(delivered["props"]["response_topic"], "wire/reply");
            assert!(
                delivered["bytes"].as_u64() > publish["bytes"].as_u64(),
                "the broker adds the subscription identifier"
            );
        } else {
            assert!(publish.get("props").is_none(), "{publish}");
            assert_eq!(delivered["bytes"], publish["bytes"]);
        }
    }
}

// ----- sub -F, side by side with mosquitto_sub -F -----

#[test]
fn sub_format_prints_what_mosquitto_sub_prints_for_the_same_messages() {
    let broker = Broker::start();
    mosquitto_pub(
        &broker,
        &[
            "-V",
            "5",
            "-r",
            "-q",
            "1",
            "-t",
            "fmt/retained",
            "-m",
            "kept",
        ],
    );
    let fields = "%t|%p|%q|%r|%l|%m|%x|%X|%A|%C|%D|%E|%F|%P|%R|%S|%%|[%10t]|[%-10t]|[%.3t]\
                  |[%05l]|[%-5l]|[%3p]|[%-8.2t]|[%5E]|[%05S]|[%-4C]|\\t|\\\\|@@";
    let times = "%I|%U|@Y-@m-@d|@N";
    let format = format!("{fields}#{times}");
    let common = [
        "-V",
        "5",
        "-q",
        "1",
        "-t",
        "fmt/#",
        "-C",
        "3",
        "-D",
        "subscribe",
        "subscription-identifier",
        "3",
        "-F",
        &format,
    ];
    let mut theirs = vec!["-i", "fmt-mosquitto"];
    theirs.extend(common);
    let theirs = Lines::new(mosquitto_sub(&broker, &theirs));
    broker.wait_subscribed("fmt-mosquitto", "fmt/#");
    let mut ours = start_sub(&broker, "fmt-mqscope", "fmt/#", &common);
    mosquitto_pub(
        &broker,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            "fmt/live",
            "-m",
            "hello world",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "120",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "fmt/reply",
            "-D",
            "publish",
            "correlation-data",
            "corr-1",
            "-D",
            "publish",
            "user-property",
            "k",
            "1",
            "-D",
            "publish",
            "user-property",
            "k",
            "2",
            "-D",
            "publish",
            "user-property",
            "other",
            "x",
        ],
    );
    mosquitto_pub(&broker, &["-V", "5", "-t", "fmt/q0", "-m", "zero"]);
    let read3 = |l: &Lines| -> Vec<String> { (0..3).filter_map(|_| l.next_line(LIMIT)).collect() };
    let mine = read3(&ours);
    let reference = read3(&theirs);
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert_eq!(reference.len(), 3, "{reference:?}");
    let split = |line: &str| -> (String, String) {
        let (f, t) = line.split_once('#').unwrap_or((line, ""));
        (f.to_string(), t.to_string())
    };
    for (m, r) in mine.iter().zip(&reference) {
        let ((mf, mt), (rf, rt)) = (split(m), split(r));
        assert_eq!(
            mf, rf,
            "the same message, printed by mqscope and mosquitto_sub"
        );
        // Times: the same shape and the same moment, give or take.
        let (mt, rt): (Vec<&str>, Vec<&str>) = (mt.split('|').collect(), rt.split('|').collect());
        assert_eq!(mt.len(), 4, "{mt:?}");
        assert_eq!(rt.len(), 4, "{rt:?}");
        assert_eq!(mt[0].len(), rt[0].len(), "%I: {} vs {}", mt[0], rt[0]);
        assert_eq!(&mt[0][19..], &rt[0][19..], "%I's UTC offset");
        let unix = |s: &str| -> f64 { s.parse().unwrap_or_else(|_| panic!("%U: {s}")) };
        assert!(
            (unix(mt[1]) - unix(rt[1])).abs() < 5.0,
            "{} vs {}",
            mt[1],
            rt[1]
        );
        assert_eq!(mt[2], rt[2], "@Y-@m-@d");
        assert_eq!(mt[3].len(), 9, "@N: {}", mt[3]);
    }
    let live = &split(&mine[1]).0;
    assert!(live.starts_with("fmt/live|hello world|1|0|11|"), "{live}");
    assert!(live.contains("|k:1 k:2 other:x|fmt/reply|3|%|"), "{live}");
    let (code, err) = ours.finish(LIMIT);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn sub_format_with_an_unknown_token_fails_in_words() {
    let broker = Broker::start();
    let done = run("sub", &broker, &["-t", "x", "-F", "%t %k"]);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("unknown token '%k'"),
        "{}",
        done.stderr
    );
}

// ----- rr: request / response -----

use mqscope::model::protocol::Properties;
use mqscope::mqtt::{Command as WorkerCommand, EventKind, Worker};
use mqscope::profile::{Qos, SubscriptionSpec};

/// A service on the worker API: answers each request on `svc/req` on its
/// Response Topic with "reply: PAYLOAD" and the request's correlation data,
/// after first sending a decoy with other correlation data there.
struct Responder {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    fn start(broker: &Broker) -> Responder {
        let worker = Worker::spawn(None);
        let mut profile = v5_profile(broker, "rr-responder");
        profile.subscriptions = vec![SubscriptionSpec::new("svc/req", Qos::AtLeastOnce)];
        worker.send(WorkerCommand::Connect {
            conn: 1,
            profile: Box::new(profile),
        });
        broker.wait_subscribed("rr-responder", "svc/req");
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut token = 0;
            while stopped.try_recv().is_err() {
                let Some(event) = worker.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let EventKind::Message(m) = event.kind else {
                    continue;
                };
                let Some(props) = m.props.as_deref() else {
                    continue;
                };
                let Some(reply_to) = props.response_topic.clone() else {
                    continue;
                };
                let mut answer = |payload: Vec<u8>, correlation| {
                    token += 1;
                    worker.send(WorkerCommand::Publish {
                        conn: 1,
                        token,
                        topic: reply_to.clone(),
                        payload,
                        qos: Qos::AtLeastOnce,
                        retain: false,
                        props: Some(Box::new(Properties {
                            correlation_data: correlation,
                            ..Properties::default()
                        })),
                    });
                };
                if props.correlation_data.is_some() {
                    answer(b"decoy".to_vec(), Some(bytes::Bytes::from_static(b"other")));
                }
                let mut reply = b"reply: ".to_vec();
                reply.extend_from_slice(&m.payload);
                answer(reply, props.correlation_data.clone());
            }
        });
        Responder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.send(()).ok();
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

#[test]
fn rr_prints_the_reply_with_our_correlation_data_and_its_round_trip() {
    let broker = Broker::start();
    let _responder = Responder::start(&broker);
    let done = run(
        "rr",
        &broker,
        &[
            "-t", "svc/req", "-e", "svc/resp", "-m", "ping", "-q", "1", "-W", "5",
        ],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(done.stdout, "reply: ping\n", "the decoy is not our reply");

    let done = run(
        "rr",
        &broker,
        &[
            "-t", "svc/req", "-e", "svc/resp", "-m", "ping", "-v", "--trace",
        ],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(done.stdout, "svc/resp reply: ping\n");
    let rtt = done
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("round trip: "))
        .and_then(|l| l.strip_suffix(" ms"))
        .and_then(|ms| ms.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no round trip on stderr: {}", done.stderr));
    assert!(rtt > 0.0 && rtt < 5000.0, "{rtt}");
    assert!(
        done.stderr
            .contains("ignored a message on 'svc/resp' with correlation data \"other\""),
        "{}",
        done.stderr
    );
    // The request on the wire carries both properties.
    let request = done
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "PUBLISH" && v["dir"] == "out")
        .expect("the request's PUBLISH in the trace");
    assert_eq!(request["topic"], "svc/req");
    assert_eq!(request["props"]["response_topic"], "svc/resp");
    assert!(request["props"]["correlation_data"].as_str().is_some());

    // mosquitto_rr against the same responder prints the same reply.
    let reference = run_with_timeout(
        Command::new("mosquitto_rr")
            .args(mqscope_connection_args(&broker))
            .args(["-t", "svc/req", "-e", "svc/resp2", "-m", "ping", "-W", "5"]),
        LIMIT,
    );
    assert_eq!(reference.code, Some(0), "{}", reference.stderr);
    let done = run(
        "rr",
        &broker,
        &["-t", "svc/req", "-e", "svc/resp2", "-m", "ping", "-W", "5"],
    );
    assert_eq!(done.stdout, reference.stdout);
}

#[test]
fn rr_without_a_responder_times_out_with_code_27() {
    let broker = Broker::start();
    let done = run(
        "rr",
        &broker,
        &[
            "-t",
            "nobody/home",
            "-e",
            "nobody/reply",
            "-m",
            "hi",
            "-W",
            "1",
        ],
    );
    assert_eq!(done.code, Some(27), "{}", done.stderr);
    assert_eq!(
        done.stderr.trim(),
        "mqscope rr: timed out after 1 s without a response on 'nobody/reply'"
    );
    assert_eq!(done.stdout, "");
}

#[test]
fn rr_over_311_is_refused_in_words() {
    let broker = Broker::start();
    let done = run(
        "rr",
        &broker,
        &["-V", "311", "-t", "a", "-e", "b", "-m", "hi"],
    );
    assert_eq!(done.code, Some(1));
    assert!(done.stderr.contains("needs MQTT 5"), "{}", done.stderr);
}
