//! Captures against a real Mosquitto: recorded by the worker and by
//! `mqscope record`, reopened into the same Store and packet records as the
//! live connection had, replayed into a second broker (checked with
//! mosquitto_sub), and damaged files read with a clear message.

mod common;
#[path = "common/v5.rs"]
mod v5;

use common::{Broker, Lines, mosquitto_pub, mosquitto_sub, mqscope, run_with_timeout};
use mqscope::capture::file::{CaptureError, CaptureFile, Ending};
use mqscope::capture::loader::{LoadEvent, Loader};
use mqscope::capture::record::RecordingStatus;
use mqscope::capture::replay::{Replay, ReplayOptions, Speed};
use mqscope::model::packet::{Direction, PacketKind, PacketRecord};
use mqscope::model::store::{HistoryLimits, Store};
use mqscope::mqtt::{Command, ConnStatus, EventKind, Worker};
use mqscope::profile::{Qos, SubscriptionSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

const CONN: u64 = 7;

/// What a connection's window state holds, fed by events.
struct Live {
    store: Store,
    packets: Vec<PacketRecord>,
}

impl Live {
    fn new(limits: HistoryLimits) -> Live {
        Live {
            store: Store::new(limits),
            packets: Vec::new(),
        }
    }

    fn apply(&mut self, kind: EventKind) {
        match kind {
            EventKind::Message(m) => self.store.apply_owned(m),
            EventKind::Packet(p) => self.packets.push(p),
            _ => {}
        }
    }

    /// Feeds a reopened capture's events, in bounded batches.
    fn from_capture(capture: &CaptureFile, limits: HistoryLimits) -> Live {
        let mut live = Live::new(limits);
        let mut events = capture.events().expect("events");
        while let Some(batch) = events.next_batch(1000, 1 << 20).expect("batch") {
            assert!(batch.len() <= 1000);
            for e in batch {
                live.apply(e);
            }
        }
        live
    }
}

/// Every topic of a Store with its counters and whole history, in a form
/// two Stores can be compared by.
fn store_contents(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![store.root()];
    while let Some(id) = stack.pop() {
        stack.extend(store.tree().children_unordered(id));
        let Some(info) = store.topic_info(id) else {
            continue;
        };
        let history: Vec<String> = store
            .history(id)
            .map(|h| {
                format!(
                    "t={} qos={:?} retain={} dup={} pkid={} size={} payload={:?} seq={:?} props={:?}",
                    h.received
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_micros())
                        .unwrap_or(0),
                    h.qos,
                    h.retain,
                    h.dup,
                    h.pkid,
                    h.size,
                    h.payload,
                    h.packet_seq,
                    h.props
                )
            })
            .collect();
        out.push(format!(
            "{} messages={} bytes={} retained={} kept={} [{}]",
            store.path(id),
            info.messages,
            info.bytes,
            info.retained,
            info.kept,
            history.join("; ")
        ));
    }
    out.sort();
    out
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mqscope-capture-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
}

/// Pumps events into `live` until `done` says so (panics after 15 s).
fn pump_until(worker: &Worker, live: &mut Live, mut done: impl FnMut(&Live, &EventKind) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out; live store has {} messages; events: {}",
            live.store.total_messages(),
            common::format_events(&seen)
        );
        let Some(ev) = worker.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        seen.push(ev.clone());
        live.apply(ev.kind.clone());
        if done(live, &ev.kind) {
            return;
        }
    }
}

fn wait_finished(status: &RecordingStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status.is_finished() {
        assert!(Instant::now() < deadline, "the recording did not close");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records an MQTT 5 session with the worker: retained and live messages
/// at QoS 0/1/2, user properties, a content type and a binary payload.
/// Returns the live state and the capture's path.
fn record_v5_session(broker: &Broker, dir: &Path, limits: HistoryLimits) -> (Live, PathBuf) {
    let path = dir.join("session.mqcap");
    mosquitto_pub(
        broker,
        &["-t", "plant/line1/temp", "-m", "20.5", "-r", "-q", "1"],
    );
    mosquitto_pub(
        broker,
        &["-t", "plant/line2/state", "-m", "{\"on\":true}", "-r"],
    );
    let worker = Worker::spawn(None);
    let mut profile = v5::v5_profile(broker, "capture-roundtrip");
    profile.subscriptions = vec![SubscriptionSpec::new("plant/#", Qos::ExactlyOnce)];
    let status = RecordingStatus::new();
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    worker.send(Command::Record {
        conn: CONN,
        path: path.clone(),
        status: status.clone(),
    });
    let mut live = Live::new(limits);
    pump_until(&worker, &mut live, |l, _| l.store.total_messages() >= 2);
    assert!(status.is_active(), "recording: {:?}", status.error());
    let binary = dir.join("binary.bin");
    std::fs::write(&binary, [0u8, 255, 1, 2, 0, 10, 13]).expect("write");
    let binary = binary.display().to_string();
    mosquitto_pub(
        broker,
        &[
            "-V",
            "5",
            "-t",
            "plant/line1/temp",
            "-m",
            "21.0",
            "-q",
            "2",
            "-D",
            "publish",
            "user-property",
            "unit",
            "C",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ],
    );
    mosquitto_pub(broker, &["-t", "plant/line1/temp", "-m", "21.5", "-q", "1"]);
    mosquitto_pub(broker, &["-t", "plant/raw", "-f", &binary, "-q", "0"]);
    mosquitto_pub(broker, &["-t", "plant/line2/state", "-n", "-r"]);
    pump_until(&worker, &mut live, |l, _| l.store.total_messages() >= 6);
    // Close the connection first: after its last event nothing else is
    // recorded, so the live state and the capture hold the same events.
    worker.send(Command::Disconnect { conn: CONN });
    pump_until(&worker, &mut live, |_, k| {
        matches!(k, EventKind::Status(ConnStatus::Disconnected { .. }))
    });
    worker.send(Command::StopRecording { conn: CONN });
    wait_finished(&status);
    assert_eq!(status.error(), None);
    assert_eq!(status.messages(), 6);
    assert_eq!(
        status.bytes(),
        std::fs::metadata(&path).expect("file").len()
    );
    (live, path)
}

#[test]
fn worker_recording_reopens_to_the_live_store_and_packet_records() {
    let broker = Broker::start();
    let dir = temp_dir();
    let limits = HistoryLimits::default();
    let (live, path) = record_v5_session(&broker, dir.path(), limits);

    let capture = CaptureFile::open(&path).expect("open");
    assert!(
        matches!(capture.ending(), Ending::Closed(t) if t.messages == 6),
        "{:?}",
        capture.ending()
    );
    assert_eq!(capture.notice(), None);
    let h = capture.header();
    assert_eq!(h.protocol, "MQTT 5");
    assert_eq!(h.broker, format!("127.0.0.1:{}", broker.port));
    assert_eq!(h.client_id, "capture-roundtrip");
    assert_eq!(h.mqscope, env!("CARGO_PKG_VERSION"));
    assert_eq!(h.filters, vec!["plant/#".to_string()]);

    let reopened = Live::from_capture(&capture, limits);
    assert_eq!(reopened.store.total_messages(), 6);
    assert_eq!(store_contents(&reopened.store), store_contents(&live.store));
    assert_eq!(reopened.packets, live.packets);
    // The on-demand reads agree with the sequential ones.
    assert_eq!(
        capture.packets(0..capture.packet_count()).expect("packets"),
        live.packets
    );
    let kinds: Vec<PacketKind> = live.packets.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.first(), Some(&PacketKind::Connect));
    assert_eq!(kinds.last(), Some(&PacketKind::Disconnect));
    assert!(kinds.contains(&PacketKind::Pubrec) && kinds.contains(&PacketKind::Pubcomp));

    // Payloads whole, properties kept, retained flags as they came.
    let temps = capture
        .messages_of("plant/line1/temp", 0..10)
        .expect("read");
    let payloads: Vec<&[u8]> = temps.iter().map(|(_, m)| &m.payload[..]).collect();
    assert_eq!(payloads, vec![&b"20.5"[..], b"21.0", b"21.5"]);
    assert!(temps[0].1.retain && !temps[1].1.retain);
    let props = temps[1].1.props.as_deref().expect("v5 properties");
    assert_eq!(props.user_property, vec![("unit".into(), "C".into())]);
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    let raw = capture.message_ids_of("plant/raw")[0];
    assert_eq!(
        capture.payload(raw).expect("payload"),
        [0u8, 255, 1, 2, 0, 10, 13]
    );
    let node = reopened.store.find("plant/line2/state").expect("topic");
    assert!(
        !reopened.store.topic_info(node).expect("info").retained,
        "an empty retained payload clears the retained flag, as live"
    );

    // The window's way: a loader thread, batches over a channel.
    let loader = Loader::start(path.clone(), None);
    let mut loaded = Live::new(limits);
    let mut opened = None;
    loop {
        match loader
            .recv_timeout(Duration::from_secs(10))
            .expect("a report")
        {
            LoadEvent::Opened(c) => opened = Some(c.message_count()),
            LoadEvent::Batch(b) => {
                assert_eq!(opened, Some(6), "Opened comes first");
                for e in b {
                    loaded.apply(e);
                }
            }
            LoadEvent::Done { notice } => {
                assert_eq!(notice, None);
                break;
            }
            LoadEvent::Failed(e) => panic!("{e}"),
            LoadEvent::PcapOpened { .. } | LoadEvent::StreamBatch { .. } => {
                panic!("an mqscope capture read as a pcap")
            }
        }
    }
    assert_eq!(store_contents(&loaded.store), store_contents(&live.store));
    assert_eq!(loaded.packets, live.packets);
    let (read, total) = loader.progress();
    assert!(read > 0 && read <= total, "{read} of {total}");
}

#[test]
fn capture_larger_than_the_store_budget_opens_and_reads_evicted_payloads_on_demand() {
    let broker = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("big.mqcap");
    let worker = Worker::spawn(None);
    let mut profile = v5::v311_profile(&broker, "capture-big");
    profile.subscriptions = vec![SubscriptionSpec::new("bulk/#", Qos::AtMostOnce)];
    profile.max_packet_size = 1 << 20;
    let status = RecordingStatus::new();
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    worker.send(Command::Record {
        conn: CONN,
        path: path.clone(),
        status: status.clone(),
    });
    common::wait_for(&worker, Duration::from_secs(10), |e| match &e.kind {
        EventKind::Subscribed { .. } => Some(()),
        _ => None,
    });
    // 40 messages of 50 KB: 2 MB of payload, against a 256 KB budget.
    let payload_file = dir.path().join("p.bin");
    for i in 0..40u8 {
        std::fs::write(&payload_file, vec![i; 50_000]).expect("write");
        mosquitto_pub(
            &broker,
            &[
                "-t",
                &format!("bulk/{}", i % 4),
                "-f",
                &payload_file.display().to_string(),
            ],
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while status.messages() < 40 {
        assert!(Instant::now() < deadline, "recorded {}", status.messages());
        worker.recv_timeout(Duration::from_millis(50));
    }
    worker.send(Command::StopRecording { conn: CONN });
    wait_finished(&status);

    let capture = CaptureFile::open(&path).expect("open");
    assert_eq!(capture.message_count(), 40);
    assert_eq!(capture.payload_bytes(), 2_000_000);
    assert!(
        capture.index_memory() < 64 * 1024,
        "the index holds {} bytes",
        capture.index_memory()
    );
    // Less than the four topics' last payloads: the Store drops the older
    // messages and evicts some last payloads too.
    let limits = HistoryLimits {
        total_bytes: 120_000,
        ..HistoryLimits::default()
    };
    let reopened = Live::from_capture(&capture, limits);
    let store = &reopened.store;
    assert_eq!(store.total_messages(), 40);
    assert!(store.evicted_payloads() > 0, "the budget evicted nothing");
    let mut evicted_last = 0;
    for t in 0..4u8 {
        let topic = format!("bulk/{t}");
        let node = store.find(&topic).expect("topic");
        assert!(store.history(node).count() < 10);
        // What the Store no longer holds, the capture reads on demand: the
        // topic's whole history, in order, payloads whole.
        assert_eq!(capture.topic_message_count(&topic), 10);
        let history = capture.messages_of(&topic, 0..10).expect("history");
        let expected: Vec<Vec<u8>> = (0..10).map(|k| vec![t + 4 * k; 50_000]).collect();
        let got: Vec<Vec<u8>> = history.iter().map(|(_, m)| m.payload.to_vec()).collect();
        assert!(got == expected, "payloads of {topic} differ");
        for item in store.history(node) {
            if item.payload.is_none() {
                let seq = item.packet_seq.expect("linked to its PUBLISH");
                let i = capture.message_by_packet_seq(seq).expect("in the capture");
                assert_eq!(capture.message_info(i).expect("info").topic, topic);
                assert_eq!(capture.payload(i).expect("payload"), expected[9]);
                evicted_last += 1;
            }
        }
    }
    assert!(evicted_last > 0, "no last payload was evicted");
}

/// A capture recorded by `mqscope record` from mosquitto_pub's messages.
fn record_with_cli(broker: &Broker, path: &Path, topics: &[(&str, &str)], gap: Duration) {
    let mut args: Vec<String> = ["record", "-t", "plant/#", "-q", "1", "-i", "cli-rec", "-o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(path.display().to_string());
    args.extend(["-C".into(), topics.len().to_string()]);
    args.extend(common::mqscope_connection_args(broker));
    let child = mqscope()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mqscope record");
    broker.wait_subscribed("cli-rec", "plant/#");
    for (topic, payload) in topics {
        mosquitto_pub(broker, &["-t", topic, "-m", payload, "-q", "1"]);
        std::thread::sleep(gap);
    }
    let mut lines = Lines::new(child);
    let (code, stderr) = lines.finish(Duration::from_secs(15));
    assert_eq!(code, Some(0), "mqscope record failed: {stderr}");
    assert!(
        stderr.contains(&format!("{} messages", topics.len())),
        "{stderr}"
    );
}

#[test]
fn cli_record_stops_at_count_and_replay_with_map_reaches_a_second_broker() {
    let source = Broker::start();
    let target = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("cli.mqcap");
    let sent = [
        ("plant/line1/temp", "20.1"),
        ("plant/line2/temp", "19.7"),
        ("plant/line1/hum", "40"),
        ("plant/line1/temp", "20.3"),
    ];
    record_with_cli(&source, &path, &sent, Duration::ZERO);

    let capture = CaptureFile::open(&path).expect("open");
    assert_eq!(capture.message_count(), 4);
    assert!(matches!(capture.ending(), Ending::Closed(_)));
    let first = capture.packet(0).expect("first packet");
    assert_eq!(
        (first.dir, first.kind),
        (Direction::Out, PacketKind::Connect)
    );
    assert_eq!(first.detail.client_id.as_deref(), Some("cli-rec"));

    // Replay only line1 into another broker, under test/.
    let sub = Lines::new(mosquitto_sub(&target, &["-t", "#", "-v", "-i", "check"]));
    target.wait_subscribed("check", "#");
    let mut args = vec!["replay".to_string(), path.display().to_string()];
    args.extend(common::mqscope_connection_args(&target));
    args.extend(
        [
            "--map",
            "plant/#=test/plant/#",
            "-t",
            "plant/line1/#",
            "--speed",
            "max",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let out = run_with_timeout(mqscope().args(&args), Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("3 of 3 messages published"),
        "{}",
        out.stderr
    );
    let mut got = Vec::new();
    while got.len() < 3 {
        match sub.next_line(Duration::from_secs(5)) {
            Some(l) => got.push(l),
            None => panic!("mosquitto_sub saw only {got:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            "test/plant/line1/temp 20.1",
            "test/plant/line1/hum 40",
            "test/plant/line1/temp 20.3"
        ]
    );
    assert_eq!(sub.next_line(Duration::from_millis(300)), None);

    // export reads the capture like a pcap.
    let out = run_with_timeout(
        mqscope().args([
            "export",
            &path.display().to_string(),
            "--format",
            "jsonl",
            "-t",
            "plant/+/temp",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let payloads: Vec<&str> = rows
        .iter()
        .map(|r| r["payload"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(payloads, vec!["20.1", "19.7", "20.3"]);
    assert_eq!(rows[0]["client"], "cli-rec");

    // read prints the summary and --trace every packet.
    let out = run_with_timeout(
        mqscope().args(["read", &path.display().to_string()]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("messages: 4"), "{}", out.stdout);
    assert!(out.stdout.contains("closed properly"), "{}", out.stdout);
    let out = run_with_timeout(
        mqscope().args(["read", "--trace", &path.display().to_string()]),
        Duration::from_secs(10),
    );
    assert_eq!(out.stdout.lines().count(), capture.packet_count());
    assert!(
        out.stdout
            .lines()
            .next()
            .unwrap_or("")
            .contains("\"CONNECT\"")
    );
}

#[test]
fn replay_at_speed_one_keeps_the_recorded_pace_and_max_does_not() {
    let source = Broker::start();
    let target = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("paced.mqcap");
    let sent: Vec<(String, String)> = (0..5)
        .map(|i| (format!("plant/p{i}"), format!("m{i}")))
        .collect();
    let sent_ref: Vec<(&str, &str)> = sent.iter().map(|(t, p)| (t.as_str(), p.as_str())).collect();
    record_with_cli(&source, &path, &sent_ref, Duration::from_millis(400));
    let capture = Arc::new(CaptureFile::open(&path).expect("open"));
    let first = capture.message_info(0).expect("first").t_us;
    let last = capture.message_info(4).expect("last").t_us;
    let span = Duration::from_micros(last - first);
    assert!(
        span >= Duration::from_millis(1500),
        "recorded span {span:?}"
    );

    let replay_with = |speed: Speed, sub_id: &str| -> (Duration, Vec<String>) {
        let worker = Worker::spawn(None);
        let mut profile = common::profile_for(&target);
        profile.client_id = "replayer".into();
        worker.send(Command::Connect {
            conn: CONN,
            profile: Box::new(profile),
        });
        assert!(!common::wait_connected(&worker, CONN));
        let sub = Lines::new(mosquitto_sub(
            &target,
            &["-t", "plant/#", "-v", "-i", sub_id],
        ));
        target.wait_subscribed(sub_id, "plant/#");
        let sender = worker.sender();
        let started = Instant::now();
        let replay = Replay::start(
            capture.clone(),
            CONN,
            ReplayOptions {
                speed,
                ..ReplayOptions::default()
            },
            Box::new(move |c| sender.send(c)),
        );
        while !replay.progress().finished {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{:?}",
                replay.progress()
            );
            if let Some(ev) = worker.recv_timeout(Duration::from_millis(20))
                && let EventKind::Published { token, outcome } = ev.kind
            {
                assert!(replay.on_published(token, &outcome));
            }
        }
        let took = started.elapsed();
        let p = replay.progress();
        assert_eq!((p.total, p.done, p.failed), (5, 5, 0), "{p:?}");
        let got: Vec<String> = (0..5)
            .map(|_| sub.next_line(Duration::from_secs(5)).unwrap_or_default())
            .collect();
        if got.iter().any(String::is_empty) {
            panic!("mosquitto_sub got {got:?}; broker log:\n{}", target.log());
        }
        (took, got)
    };
    let in_order: Vec<String> = sent.iter().map(|(t, p)| format!("{t} {p}")).collect();

    let (paced, got) = replay_with(Speed::Times(1.0), "paced");
    assert_eq!(got, in_order);
    assert!(
        paced >= span.mul_f64(0.9),
        "replayed in {paced:?}, recorded over {span:?}"
    );

    let (fast, got) = replay_with(Speed::Max, "fast");
    assert_eq!(got, in_order);
    assert!(fast < span / 2, "max took {fast:?} for a {span:?} capture");
}

#[test]
fn replay_pause_holds_publishes_until_resumed() {
    let source = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("pause.mqcap");
    let sent: Vec<(String, String)> = (0..3)
        .map(|i| (format!("plant/{i}"), format!("{i}")))
        .collect();
    let sent_ref: Vec<(&str, &str)> = sent.iter().map(|(t, p)| (t.as_str(), p.as_str())).collect();
    record_with_cli(&source, &path, &sent_ref, Duration::ZERO);
    let capture = Arc::new(CaptureFile::open(&path).expect("open"));
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(common::profile_for(&source)),
    });
    common::wait_connected(&worker, CONN);
    let sender = worker.sender();
    let replay = Replay::start(
        capture,
        CONN,
        ReplayOptions {
            speed: Speed::Max,
            paused: true,
            ..ReplayOptions::default()
        },
        Box::new(move |c| sender.send(c)),
    );
    std::thread::sleep(Duration::from_millis(300));
    let held = replay.progress();
    assert!(held.paused && held.sent == 0 && !held.finished, "{held:?}");
    replay.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replay.progress().finished {
        assert!(Instant::now() < deadline, "{:?}", replay.progress());
        if let Some(ev) = worker.recv_timeout(Duration::from_millis(20))
            && let EventKind::Published { token, outcome } = ev.kind
        {
            replay.on_published(token, &outcome);
        }
    }
    assert_eq!(replay.progress().done, 3);
}

#[test]
fn refused_replay_publishes_are_counted_and_the_exit_code_says_so() {
    let (broker, _acl) = v5::acl_broker();
    let source = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("refused.mqcap");
    record_with_cli(
        &source,
        &path,
        &[("plant/a", "1"), ("plant/b", "2")],
        Duration::ZERO,
    );
    // The ACL broker lets anonymous clients write open/# only: QoS 1 over
    // MQTT 5 gets PUBACK 0x87 for the unmapped topic.
    let mut args = vec!["replay".to_string(), path.display().to_string()];
    args.extend(common::mqscope_connection_args(&broker));
    args.extend(
        ["-V", "5", "--speed", "max", "--map", "plant/a=open/a"]
            .iter()
            .map(|s| s.to_string()),
    );
    let out = run_with_timeout(mqscope().args(&args), Duration::from_secs(20));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("1 of 2 messages published") && out.stderr.contains("1 failed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("0x87"), "{}", out.stderr);
}

#[test]
fn truncated_and_corrupt_captures_read_their_whole_records_and_say_so() {
    let broker = Broker::start();
    let dir = temp_dir();
    let (_live, path) = record_v5_session(&broker, dir.path(), HistoryLimits::default());
    let whole = std::fs::read(&path).expect("read");
    let capture = CaptureFile::open(&path).expect("open");
    let records = capture.record_count();

    // A crash: the end record and some records before it are missing.
    let cut = dir.path().join("cut.mqcap");
    std::fs::write(&cut, &whole[..whole.len() - 200]).expect("write");
    let c = CaptureFile::open(&cut).expect("a truncated capture opens");
    assert!(
        matches!(c.ending(), Ending::Truncated { .. }),
        "{:?}",
        c.ending()
    );
    assert!(c.record_count() < records && c.record_count() > 0);
    let notice = c.notice().expect("a notice");
    assert!(
        notice.starts_with(&format!(
            "capture ends abruptly after {} records",
            c.record_count()
        )),
        "{notice}"
    );
    // Every whole record before the cut reads back.
    let reopened = Live::from_capture(&c, HistoryLimits::default());
    assert_eq!(reopened.packets.len(), c.packet_count());
    assert_eq!(reopened.store.total_messages(), c.message_count() as u64);
    let out = run_with_timeout(
        mqscope().args(["read", &cut.display().to_string()]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("ends abruptly"), "{}", out.stderr);

    // The machine went down: the file has its length but zeros at the end.
    let zeros = dir.path().join("zeros.mqcap");
    let mut z = whole.clone();
    let n = z.len();
    z[n - 300..].fill(0);
    std::fs::write(&zeros, &z).expect("write");
    let c = CaptureFile::open(&zeros).expect("opens");
    assert!(c.notice().expect("notice").contains("ends abruptly"));

    // One flipped byte in the middle: read up to it, said with its offset.
    let bad = dir.path().join("bad.mqcap");
    let mut b = whole.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x5a;
    std::fs::write(&bad, &b).expect("write");
    let c = CaptureFile::open(&bad).expect("opens");
    assert!(
        matches!(c.ending(), Ending::Corrupt { .. }),
        "{:?}",
        c.ending()
    );
    assert!(c.record_count() < records);
    assert!(c.notice().expect("notice").contains("damaged at byte"));
    let reopened = Live::from_capture(&c, HistoryLimits::default());
    assert_eq!(reopened.packets.len(), c.packet_count());
}

#[test]
fn files_that_are_not_captures_get_a_clear_message() {
    let dir = temp_dir();
    let garbage = dir.path().join("garbage.mqcap");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &bytes).expect("write");
    match CaptureFile::open(&garbage) {
        Err(CaptureError::NotACapture { what, .. }) => {
            assert!(what.contains("MQSCOPE-CAPTURE"), "{what}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("garbage opened as a capture"),
    }
    let empty = dir.path().join("empty.mqcap");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(
        CaptureFile::open(&empty),
        Err(CaptureError::NotACapture { .. })
    ));
    let newer = dir.path().join("newer.mqcap");
    std::fs::write(&newer, b"MQSCOPE-CAPTURE 9\n{}\n").expect("write");
    assert!(matches!(
        CaptureFile::open(&newer),
        Err(CaptureError::Newer { version: 9, .. })
    ));
    let header = dir.path().join("header.mqcap");
    std::fs::write(&header, b"MQSCOPE-CAPTURE 1\n{not json\n").expect("write");
    assert!(matches!(
        CaptureFile::open(&header),
        Err(CaptureError::Header { .. })
    ));

    let loader = Loader::start(garbage.clone(), None);
    match loader.recv_timeout(Duration::from_secs(10)) {
        Some(LoadEvent::Failed(e)) => assert!(e.contains("is not an mqscope capture"), "{e}"),
        _ => panic!("the loader did not report the garbage file"),
    }

    let out = run_with_timeout(
        mqscope().args(["replay", &garbage.display().to_string(), "-p", "1"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("is not an mqscope capture"),
        "{}",
        out.stderr
    );
    let out = run_with_timeout(
        mqscope().args(["read", &newer.display().to_string()]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("update mqscope"), "{}", out.stderr);
}

#[test]
fn recording_to_a_full_disk_is_reported_not_silent() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(common::profile_for(&broker)),
    });
    common::wait_connected(&worker, CONN);
    let status = RecordingStatus::new();
    worker.send(Command::Record {
        conn: CONN,
        path: PathBuf::from("/dev/full"),
        status: status.clone(),
    });
    let said = common::wait_for(&worker, Duration::from_secs(5), |e| match &e.kind {
        EventKind::Error(text) => Some(text.clone()),
        _ => None,
    });
    assert!(
        said.contains("/dev/full") && said.contains("No space left"),
        "{said}"
    );
    assert!(status.is_finished() && !status.is_active());
    assert_eq!(status.error().as_deref(), Some(said.as_str()));

    let out = run_with_timeout(
        mqscope()
            .args(["record", "-t", "x", "-o", "/dev/full", "-W", "5"])
            .args(common::mqscope_connection_args(&broker)),
        Duration::from_secs(15),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("No space left"), "{}", out.stderr);
}

#[test]
fn a_window_that_falls_behind_loses_nothing_from_the_recording() {
    let broker = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("behind.mqcap");
    // A 64 KB event budget and no patience: the window never drains, so the
    // worker drops (and counts) what it cannot queue — but records it all.
    let worker = Worker::spawn_bounded(None, 64 << 10, Duration::ZERO);
    let mut profile = common::profile_for(&broker);
    profile.client_id = "behind".into();
    profile.subscriptions = vec![SubscriptionSpec::new("load/#", Qos::AtMostOnce)];
    let status = RecordingStatus::new();
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    worker.send(Command::Record {
        conn: CONN,
        path: path.clone(),
        status: status.clone(),
    });
    broker.wait_subscribed("behind", "load/#");
    let lines: String = (0..2000).map(|i| format!("{i:0>1000}\n")).collect();
    let mut publisher = std::process::Command::new("mosquitto_pub")
        .args(common::mqscope_connection_args(&broker))
        .args(["-t", "load/x", "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    {
        use std::io::Write as _;
        let mut stdin = publisher.stdin.take().expect("stdin");
        stdin
            .write_all(lines.as_bytes())
            .expect("feed mosquitto_pub");
    }
    assert!(publisher.wait().expect("wait").success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while status.messages() < 2000 {
        assert!(Instant::now() < deadline, "recorded {}", status.messages());
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.send(Command::StopRecording { conn: CONN });
    wait_finished(&status);
    let (mut delivered, mut dropped) = (0u64, 0u64);
    while let Some(ev) = worker.recv_timeout(Duration::from_millis(300)) {
        match ev.kind {
            EventKind::Message(_) => delivered += 1,
            EventKind::Dropped { messages, .. } => dropped += messages,
            _ => {}
        }
    }
    assert!(
        dropped > 0,
        "the window kept up after all ({delivered} delivered)"
    );
    assert_eq!(delivered + dropped, 2000);
    let capture = CaptureFile::open(&path).expect("open");
    assert_eq!(capture.message_count(), 2000);
    let last = capture.message(1999).expect("last");
    assert_eq!(last.payload, format!("{:0>1000}", 1999).as_bytes());
}

#[test]
fn replay_sends_the_recorded_v5_properties() {
    let source = Broker::start();
    let target = Broker::start();
    let dir = temp_dir();
    let (_live, path) = record_v5_session(&source, dir.path(), HistoryLimits::default());
    let sub = Lines::new(mosquitto_sub(
        &target,
        &["-V", "5", "-t", "#", "-F", "%t %p %P", "-i", "props"],
    ));
    target.wait_subscribed("props", "#");
    let mut args = vec!["replay".to_string(), path.display().to_string()];
    args.extend(common::mqscope_connection_args(&target));
    args.extend(
        [
            "-V",
            "5",
            "--speed",
            "max",
            "-t",
            "plant/line1/temp",
            "--retain",
            "off",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let out = run_with_timeout(mqscope().args(&args), Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let got: Vec<String> = (0..3)
        .map(|_| sub.next_line(Duration::from_secs(5)).unwrap_or_default())
        .collect();
    assert_eq!(
        got,
        vec![
            "plant/line1/temp 20.5 ",
            "plant/line1/temp 21.0 unit:C",
            "plant/line1/temp 21.5 "
        ]
    );
}

/// `mqscope record` on `plant/#` with client id `id`, until stopped.
fn spawn_record(broker: &Broker, path: &Path, id: &str) -> std::process::Child {
    let child = mqscope()
        .args(["record", "-t", "plant/#", "-i", id, "-o"])
        .arg(path)
        .args(common::mqscope_connection_args(broker))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mqscope record");
    broker.wait_subscribed(id, "plant/#");
    child
}

#[test]
fn ctrl_c_closes_the_recording_properly() {
    let broker = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("ctrl-c.mqcap");
    let child = spawn_record(&broker, &path, "rec-int");
    for i in 0..3 {
        mosquitto_pub(&broker, &["-t", "plant/x", "-m", &i.to_string()]);
    }
    std::thread::sleep(Duration::from_millis(300));
    v5::signal(child.id(), "INT");
    let (code, stderr) = Lines::new(child).finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("3 messages"),
        "{stderr}"
    );
    let capture = CaptureFile::open(&path).expect("open");
    assert!(
        matches!(capture.ending(), Ending::Closed(_)),
        "{:?}",
        capture.ending()
    );
    assert_eq!(capture.message_count(), 3);
    let last = capture.packet(capture.packet_count() - 1).expect("last");
    assert_eq!(
        (last.dir, last.kind),
        (Direction::Out, PacketKind::Disconnect)
    );
}

#[test]
fn a_killed_recorder_loses_at_most_the_last_second() {
    let broker = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("killed.mqcap");
    let child = spawn_record(&broker, &path, "rec-kill");
    for i in 0..5 {
        mosquitto_pub(&broker, &["-t", "plant/y", "-m", &format!("before-{i}")]);
    }
    // More than a second: the writer has flushed them by now.
    std::thread::sleep(Duration::from_millis(1500));
    v5::signal(child.id(), "KILL");
    let (code, _) = Lines::new(child).finish(Duration::from_secs(10));
    assert_eq!(code, None, "killed by the signal");
    let capture = CaptureFile::open(&path).expect("open");
    assert_eq!(capture.ending(), &Ending::Unfinished);
    assert!(
        capture.notice().expect("notice").contains("not closed"),
        "{:?}",
        capture.notice()
    );
    let payloads: Vec<Vec<u8>> = (0..capture.message_count() as u32)
        .map(|i| capture.payload(i).expect("payload"))
        .collect();
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("before-{i}").into_bytes()).collect();
    assert_eq!(payloads, expected);
}

#[test]
fn a_capture_being_recorded_can_be_paged_as_it_grows() {
    let broker = Broker::start();
    let dir = temp_dir();
    let path = dir.path().join("growing.mqcap");
    let worker = Worker::spawn(None);
    let mut profile = common::profile_for(&broker);
    profile.client_id = "grower".into();
    profile.subscriptions = vec![SubscriptionSpec::new("plant/#", Qos::AtLeastOnce)];
    let status = RecordingStatus::new();
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    worker.send(Command::Record {
        conn: CONN,
        path: path.clone(),
        status: status.clone(),
    });
    broker.wait_subscribed("grower", "plant/#");
    let wait_written = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while status.messages() < n {
            assert!(Instant::now() < deadline);
            worker.recv_timeout(Duration::from_millis(20));
        }
        // The writer hands its buffer to the file at least every 0.5 s.
        std::thread::sleep(Duration::from_millis(800));
    };
    mosquitto_pub(&broker, &["-t", "plant/a", "-m", "one", "-q", "1"]);
    wait_written(1);
    let mut capture = CaptureFile::open(&path).expect("open while recording");
    assert_eq!(capture.ending(), &Ending::Unfinished);
    assert_eq!(capture.message_count(), 1);
    let packets_before = capture.packet_count();
    mosquitto_pub(&broker, &["-t", "plant/b", "-m", "two", "-q", "1"]);
    mosquitto_pub(&broker, &["-t", "plant/a", "-m", "three", "-q", "1"]);
    wait_written(3);
    let added = capture.refresh().expect("refresh");
    assert!(added >= 4, "added {added}");
    assert_eq!(capture.message_count(), 3);
    assert_eq!(capture.message_ids_of("plant/a").len(), 2);
    assert_eq!(capture.payload(2).expect("payload"), b"three");
    let new = capture
        .packets(packets_before..capture.packet_count())
        .expect("new packets");
    assert!(
        new.iter()
            .any(|p| p.kind == PacketKind::Puback && p.dir == Direction::Out)
    );
    worker.send(Command::StopRecording { conn: CONN });
    wait_finished(&status);
    capture.refresh().expect("refresh");
    assert!(
        matches!(capture.ending(), Ending::Closed(_)),
        "{:?}",
        capture.ending()
    );
}
