//! pcap/pcapng files in the window: "+ Open… -> Capture file…" opens a file
//! written by tcpdump around real Mosquitto traffic as offline connections,
//! one per TCP stream named by its endpoints, with the tree, the inspector
//! and the timeline filled; a TLS stream is listed as encrypted; a file that
//! is not a capture gets a clear message. Needs root and tcpdump.

mod common;
#[path = "common/capture.rs"]
mod sniff;

use common::gui::{FakePicker, click, has_label, has_label_containing, step_until};
use common::{Broker, Pki, mosquitto_pub};
use egui::Key;
use mqscope::capture::pcap::Capture;
use mqscope::mqtt::ConnStatus;
use sniff::{Sniffer, Tool, wait_for_capture};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(15);

/// The names the window gives the streams of a capture: their endpoints.
fn stream_names(c: &Capture) -> Vec<String> {
    c.streams
        .iter()
        .map(|s| format!("{} -> {}", s.info.client, s.info.broker))
        .collect()
}

fn open_in_window(dir: &Path, file: PathBuf) -> egui_kittest::Harness<'static, mqscope::app::App> {
    let picker = FakePicker::default();
    picker.answers.borrow_mut().push_back(file);
    // A fresh start: no profile open, "+ Open…" is in the strip already.
    let mut harness = common::gui::app_with(dir, picker);
    harness.run_ok();
    click(&mut harness, "+ Open…");
    click(&mut harness, "Capture file…");
    harness
}

#[test]
fn a_tcpdump_capture_opens_as_one_connection_per_stream_with_tree_and_timeline() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plant.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    mosquitto_pub(
        &broker,
        &[
            "-i",
            "pub-temp",
            "-t",
            "plant/boiler/temp",
            "-m",
            "71.5",
            "-q",
            "1",
        ],
    );
    mosquitto_pub(
        &broker,
        &[
            "-i",
            "pub-pump",
            "-V",
            "mqttv5",
            "-t",
            "plant/pump",
            "-m",
            "on",
            "-q",
            "2",
        ],
    );
    let decoded = wait_for_capture(&file, |c| {
        c.streams.len() == 2 && c.streams.iter().all(|s| s.info.closed)
    });
    sniffer.stop();
    let names = stream_names(&decoded);

    let mut harness = open_in_window(dir.path(), file);
    step_until(&mut harness, "both streams read", LIMIT, |h| {
        names.iter().all(|n| {
            h.state()
                .store_of(n)
                .is_some_and(|s| s.total_messages() == 1)
        })
    });
    let app = harness.state();
    assert_eq!(app.open_connections()[..], names);
    for (name, topic, payload) in [
        (&names[0], "plant/boiler/temp", &b"71.5"[..]),
        (&names[1], "plant/pump", &b"on"[..]),
    ] {
        let store = app.store_of(name).expect("the stream's store");
        let node = store.find(topic).unwrap_or_else(|| panic!("{topic}"));
        assert_eq!(store.last_payload(node), Some(payload), "{topic}");
        assert!(
            matches!(app.status_of(name), Some(ConnStatus::Disconnected { reason: Some(r) }) if r.contains("the TCP connection closed")),
            "{name}: {:?}",
            app.status_of(name)
        );
    }
    // Both streams in the strip, by their endpoints.
    for name in &names {
        assert!(has_label(&harness, &format!("Show connection {name}")));
    }

    // The first stream (shown): its QoS 1 exchange in the timeline.
    click(&mut harness, &format!("Show connection {}", names[0]));
    click(&mut harness, "Timeline");
    assert!(has_label_containing(&harness, "of 5 packets"));
    for label in ["CONNECT", "CONNACK", "PUBACK id=1", "DISCONNECT"] {
        assert!(has_label_containing(&harness, label), "{label}");
    }
    assert!(has_label_containing(&harness, "· plant/boiler/temp"));
    // The second: a v5 QoS 2 flow, four steps.
    click(&mut harness, &format!("Show connection {}", names[1]));
    for label in ["PUBREC id=1", "PUBREL id=1", "PUBCOMP id=1", "· plant/pump"] {
        assert!(has_label_containing(&harness, label), "{label}");
    }

    // The inspector shows the first stream's message.
    click(&mut harness, &format!("Show connection {}", names[0]));
    click(&mut harness, "Explorer");
    click(&mut harness, "plant");
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    harness.key_press(Key::ArrowDown);
    harness.run_ok();
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    harness.key_press(Key::ArrowDown);
    harness.run_ok();
    assert_eq!(
        harness.state().selected_topic().as_deref(),
        Some("plant/boiler/temp")
    );
    assert!(has_label_containing(&harness, "71.5"));
}

#[test]
fn a_tls_stream_is_listed_as_encrypted_with_its_endpoints() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.server_tls()).start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tls.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    mosquitto_pub(&broker, &["-t", "secret", "-m", "hidden"]);
    let decoded = wait_for_capture(&file, |c| c.streams.len() == 1 && c.streams[0].info.closed);
    sniffer.stop();
    let s = &decoded.streams[0].info;
    let name = format!("encrypted {} -> {}", s.client, s.broker);

    let mut harness = open_in_window(dir.path(), file);
    step_until(&mut harness, "the stream listed", LIMIT, |h| {
        h.state().open_connections()[..] == [name.clone()]
    });
    assert!(has_label(&harness, &format!("Show connection {name}")));
    assert!(
        matches!(harness.state().status_of(&name), Some(ConnStatus::Disconnected { reason: Some(r) }) if r.contains("encrypted (TLS)")),
        "{:?}",
        harness.state().status_of(&name)
    );
    assert!(has_label_containing(&harness, "encrypted (TLS)"));
    assert_eq!(
        harness.state().store_of(&name).map(|s| s.total_messages()),
        Some(0),
        "nothing of the encrypted stream is shown as MQTT"
    );
    assert!(!has_label_containing(&harness, "hidden"));
}

#[test]
fn a_file_that_is_not_a_capture_gets_a_clear_message_in_the_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is a text file, not a packet capture\n").expect("write");
    let mut harness = open_in_window(dir.path(), junk);
    step_until(&mut harness, "the error shown", LIMIT, |h| {
        has_label_containing(h, "Could not open the capture")
    });
    assert!(has_label_containing(
        &harness,
        "is not a pcap or pcapng file"
    ));

    // A real pcap cut short in the middle of its last frame (tcpdump
    // killed while writing): what comes before the cut is shown, and the
    // cut is told.
    let broker = Broker::start();
    let file = dir.path().join("cut.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    mosquitto_pub(&broker, &["-t", "a", "-m", &"x".repeat(5000), "-q", "1"]);
    let decoded = wait_for_capture(&file, |c| c.streams.len() == 1 && c.streams[0].info.closed);
    sniffer.stop();
    let s = &decoded.streams[0].info;
    let name = format!("{} -> {}", s.client, s.broker);
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() - 10]).expect("cut");
    let mut harness = open_in_window(dir.path(), file);
    step_until(&mut harness, "the cut told", LIMIT, |h| {
        has_label_containing(h, "is truncated")
    });
    assert!(has_label_containing(&harness, "showing the"));
    let store = harness
        .state()
        .store_of(&name)
        .expect("the stream before the cut");
    let a = store.find("a").expect("its message");
    assert_eq!(store.last_payload(a).map(<[u8]>::len), Some(5000));
}

/// A frame of 100 kB whose bytes say which frame it is (one text line).
fn frame(i: u64) -> Vec<u8> {
    let mut p = format!("frame {i:02}:").into_bytes();
    p.extend((0..100_000 - p.len()).map(|k| b'a' + ((k as u64 * 7 + i) % 26) as u8));
    p
}

#[test]
fn a_pcap_larger_than_the_history_budget_opens_and_an_early_payload_is_read_whole() {
    use std::io::Write as _;
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("camera.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    // 40 frames of 100 kB over one connection (mosquitto_pub -l: a message
    // per line): 4 MB, four times the 1 MiB budget below.
    let mut publisher = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-i", "camera", "-t", "cam/frame", "-q", "1", "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs");
    {
        let mut stdin = publisher.stdin.take().expect("stdin");
        for i in 0..40 {
            stdin.write_all(&frame(i)).expect("a frame");
            stdin.write_all(b"\n").expect("a line");
        }
    }
    assert!(publisher.wait().expect("mosquitto_pub ends").success());
    let decoded = wait_for_capture(&file, |c| {
        c.streams.len() == 1 && c.streams[0].info.closed && c.streams[0].messages.len() == 40
    });
    sniffer.stop();
    let name = stream_names(&decoded).remove(0);
    drop(decoded);

    let picker = FakePicker::default();
    picker.answers.borrow_mut().push_back(file.clone());
    let saved = dir.path().join("frame00.bin");
    picker.answers.borrow_mut().push_back(saved.clone());
    let mut harness = common::gui::app_with(dir.path(), picker);
    // Payloads kept cut to 50 kB, and a 1 MiB budget for all of them.
    harness
        .state_mut()
        .set_history_limits(mqscope::model::store::HistoryLimits {
            total_bytes: 1 << 20,
            max_payload: 50_000,
            ..mqscope::model::store::HistoryLimits::default()
        });
    harness.run_ok();
    click(&mut harness, "+ Open…");
    click(&mut harness, "Capture file…");
    step_until(&mut harness, "the stream read", LIMIT, |h| {
        h.state()
            .store_of(&name)
            .is_some_and(|s| s.total_messages() == 40)
    });
    let store = harness.state().store_of(&name).expect("store");
    assert!(
        store.evicted_payloads() >= 15,
        "the budget evicted most payloads ({} evicted)",
        store.evicted_payloads()
    );

    harness.set_size(egui::vec2(1280.0, 1600.0));
    harness.run_ok();
    click(&mut harness, &format!("Show connection {name}"));
    click(&mut harness, "Explorer");
    click(&mut harness, "cam");
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    harness.key_press(Key::ArrowDown);
    harness.run_ok();
    assert_eq!(
        harness.state().selected_topic().as_deref(),
        Some("cam/frame")
    );
    // Down the history to the first frame: read from the stream's capture.
    use egui_kittest::kittest::Queryable as _;
    for _ in 0..40 {
        if has_label_containing(&harness, "B · frame 00:") {
            break;
        }
        harness
            .query_all_by_label_contains("B · frame")
            .last()
            .expect("history rows")
            .scroll_down();
        harness.run_ok();
    }
    for _ in 0..2 {
        harness
            .query_all_by_label_contains("B · frame 00:")
            .next()
            .expect("the first frame's history row")
            .scroll_to_me();
        harness.run_ok();
    }
    harness
        .query_all_by_label_contains("B · frame 00:")
        .next()
        .expect("the first frame's history row")
        .click();
    harness.run_ok();
    assert!(has_label_containing(
        &harness,
        "An earlier message read from the capture file"
    ));
    click(&mut harness, "Save payload…");
    step_until(&mut harness, "the payload saved", LIMIT, |_| {
        saved.is_file()
    });
    assert_eq!(std::fs::read(&saved).expect("saved"), frame(0));
}
