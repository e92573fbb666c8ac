//! Captures larger than the window keeps in memory: the inspector reads
//! payloads the history budget evicted back from the file, and the
//! timeline pages through every packet of the capture (only the rows on
//! screen are read), to the last one.

mod common;

use bytes::Bytes;
use common::gui::{FakePicker, click, has_label, has_label_containing, step_until};
use egui_kittest::kittest::Queryable as _;
use mqscope::capture::format::{CaptureHeader, CaptureWriter};
use mqscope::model::packet::{Direction, PacketKind, PacketRecord};
use mqscope::model::protocol::{Message, Qos};
use mqscope::model::store::HistoryLimits;
use mqscope::mqtt::EventKind;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(30);

/// Writes a capture of `n` messages on `topic(i)` with `payload(i)`, each
/// after its PUBLISH record, as the recorder writes a live connection.
fn write_capture(
    path: &Path,
    n: u64,
    topic: impl Fn(u64) -> String,
    payload: impl Fn(u64) -> Vec<u8>,
) {
    let header = CaptureHeader {
        broker: "127.0.0.1:1883".into(),
        client_id: "paging".into(),
        protocol: "MQTT 3.1.1".into(),
        ..CaptureHeader::default()
    };
    let mut w = CaptureWriter::create(path, &header).expect("create");
    for i in 0..n {
        let topic = topic(i);
        let payload = payload(i);
        let mut r = PacketRecord::new(i * 10, Direction::In, PacketKind::Publish, None, 0);
        r.seq = i;
        r.qos = Some(0);
        r.bytes = 4 + topic.len() + payload.len();
        r.detail.topic = Some(topic.clone());
        r.detail.retain = Some(false);
        r.detail.dup = Some(false);
        r.detail.payload_bytes = Some(payload.len());
        w.packet(i * 10, &r).expect("packet");
        let m = Message {
            topic,
            payload: Bytes::from(payload),
            qos: Qos::AtMostOnce,
            received: UNIX_EPOCH + Duration::from_micros(1_796_000_000_000_000 + i * 10),
            packet_seq: Some(i),
            ..Message::default()
        };
        w.event(i * 10, &EventKind::Message(m)).expect("message");
    }
    w.finish(n * 10).expect("finish");
}

fn open_in_window(
    dir: &Path,
    file: &Path,
    picker: FakePicker,
    limits: HistoryLimits,
) -> egui_kittest::Harness<'static, mqscope::app::App> {
    picker.answers.borrow_mut().push_back(file.to_path_buf());
    mqscope::profile::ProfileStore::at(dir)
        .save(&[mqscope::profile::Profile {
            name: "desk".into(),
            ..mqscope::profile::Profile::default()
        }])
        .expect("the profile is saved");
    let mut harness = common::gui::app_with(dir, picker);
    harness.state_mut().set_history_limits(limits);
    assert!(harness.state_mut().open_offline("desk"));
    harness.run_ok();
    click(&mut harness, "+ Open…");
    click(&mut harness, "Capture file…");
    harness
}

/// A frame of 100 kB whose bytes say which frame it is.
fn frame(i: u64) -> Vec<u8> {
    let mut p = format!("frame {i:02}:").into_bytes();
    p.extend((0..100_000 - p.len()).map(|k| b'a' + ((k as u64 * 7 + i) % 26) as u8));
    p
}

#[test]
fn the_inspector_reads_an_evicted_payload_back_from_the_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("camera.mqcap");
    // 40 frames of 100 kB: 4 MB, four times the 1 MiB budget below.
    write_capture(&file, 40, |_| "cam/frame".into(), frame);
    let saved = dir.path().join("frame00.bin");
    let picker = FakePicker::default();
    let saved_last = dir.path().join("frame39.bin");
    // Payloads kept cut to 50 kB, and a 1 MiB budget for all of them.
    let limits = HistoryLimits {
        total_bytes: 1 << 20,
        max_payload: 50_000,
        ..HistoryLimits::default()
    };
    let mut harness = open_in_window(dir.path(), &file, picker.clone(), limits);
    picker.answers.borrow_mut().push_back(saved_last.clone());
    picker.answers.borrow_mut().push_back(saved.clone());
    let name = "capture camera.mqcap";
    step_until(&mut harness, "the capture read", LIMIT, |h| {
        h.state()
            .store_of(name)
            .is_some_and(|s| s.total_messages() == 40)
    });
    let store = harness.state().store_of(name).expect("store");
    assert!(
        store.evicted_payloads() >= 15,
        "the budget evicted most payloads ({} evicted)",
        store.evicted_payloads()
    );

    // Tall enough for the inspector's history below the payload.
    harness.set_size(egui::vec2(1280.0, 1600.0));
    harness.run_ok();
    click(&mut harness, "cam");
    harness.key_press(egui::Key::ArrowRight);
    harness.run_ok();
    harness.key_press(egui::Key::ArrowDown);
    harness.run_ok();
    assert_eq!(
        harness.state().selected_topic().as_deref(),
        Some("cam/frame")
    );
    // The latest frame is kept cut short in memory: shown and saved whole,
    // from the file.
    assert!(has_label_containing(
        &harness,
        "Payload read from the capture file"
    ));
    assert!(!has_label_containing(&harness, "truncated: kept"));
    click(&mut harness, "Save payload…");
    step_until(&mut harness, "the latest payload saved", LIMIT, |_| {
        saved_last.is_file()
    });
    assert_eq!(std::fs::read(&saved_last).expect("saved"), frame(39));

    // Down the history (newest first) to the first frame's row: its
    // preview read from the file, not "evicted".
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
    assert!(has_label_containing(&harness, "B · frame 00:"));
    assert!(!has_label_containing(&harness, "payload evicted"));
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
    assert!(has_label_containing(
        &harness,
        "earlier messages, read from the capture file"
    ));
    // Saved from the inspector: the whole first frame, byte for byte.
    click(&mut harness, "Save payload…");
    step_until(&mut harness, "the payload saved", LIMIT, |_| {
        saved.is_file()
    });
    assert_eq!(std::fs::read(&saved).expect("saved"), frame(0));
}

#[test]
fn the_timeline_pages_through_a_capture_larger_than_the_packet_log_to_its_last_packet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("long.mqcap");
    const N: u64 = 25_000;
    write_capture(
        &file,
        N,
        |i| format!("t/{i}"),
        |i| i.to_string().into_bytes(),
    );
    let mut harness = open_in_window(
        dir.path(),
        &file,
        FakePicker::default(),
        HistoryLimits::default(),
    );
    let name = "capture long.mqcap";
    step_until(&mut harness, "the capture read", LIMIT, |h| {
        h.state()
            .store_of(name)
            .is_some_and(|s| s.total_messages() == N)
    });
    step_until(&mut harness, "the load finished", LIMIT, |h| {
        matches!(
            h.state().status_of(name),
            Some(mqscope::mqtt::ConnStatus::Disconnected { reason: Some(r) }) if r == "a capture file, offline"
        )
    });
    // The in-memory packet log keeps its 10,000: more than that is paged.
    let kept = harness.state().packet_log().map(|l| l.len());
    assert_eq!(kept, Some(10_000));

    click(&mut harness, "Timeline");
    assert!(has_label_containing(&harness, "of 25000 packets"));
    assert!(has_label_containing(&harness, "packets 1–"));
    assert!(has_label_containing(&harness, "PUBLISH qos=0 8 B · t/0"));
    assert!(!has_label_containing(&harness, "· t/24999"));

    click(&mut harness, "Jump to end");
    harness.run_ok();
    assert!(has_label_containing(&harness, "· t/24999"));
    assert!(has_label_containing(&harness, "–25000 of 25000 packets"));
    assert!(!has_label_containing(&harness, "· t/0"));

    click(&mut harness, "Jump to start");
    harness.run_ok();
    assert!(has_label_containing(&harness, "· t/0"));

    // A topic filter runs over the whole capture, not only what is loaded.
    common::gui::set_text(&mut harness, "Filter packets by topic", "t/2499");
    step_until(&mut harness, "the whole capture filtered", LIMIT, |h| {
        has_label_containing(
            h,
            "11 of 25000 packets match the filter (the whole capture)",
        )
    });
    for topic in ["· t/2499", "· t/24990", "· t/24999"] {
        assert!(
            harness.query_all_by_label_contains(topic).next().is_some(),
            "{topic}"
        );
    }
    assert!(!has_label_containing(&harness, "· t/0"));
    // The last packet's fields, from the file.
    harness
        .query_all_by_label_contains("· t/24999")
        .next()
        .expect("the last packet's row")
        .click();
    harness.run_ok();
    assert!(has_label_containing(&harness, "t/24999") && has_label(&harness, "t_us"));
    assert!(has_label(&harness, "249990"), "the last packet's time");
}

#[test]
fn a_flow_whose_packets_are_pages_apart_is_linked_and_followed_across_the_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("slow-ack.mqcap");
    // A QoS 1 PUBLISH first, 20,000 QoS 0 messages, then its PUBACK: the
    // two are 20,001 packets apart, far beyond a page.
    const N: u64 = 20_000;
    let header = CaptureHeader {
        broker: "127.0.0.1:1883".into(),
        client_id: "slow".into(),
        protocol: "MQTT 3.1.1".into(),
        ..CaptureHeader::default()
    };
    let mut w = CaptureWriter::create(&file, &header).expect("create");
    let mut publish = PacketRecord::new(0, Direction::Out, PacketKind::Publish, Some(7), 20);
    publish.qos = Some(1);
    publish.detail.topic = Some("valve/cmd".into());
    w.packet(0, &publish).expect("publish");
    for i in 1..=N {
        let mut r = PacketRecord::new(i * 10, Direction::In, PacketKind::Publish, None, 12);
        r.seq = i;
        r.qos = Some(0);
        r.detail.topic = Some(format!("t/{i}"));
        w.packet(i * 10, &r).expect("packet");
    }
    let mut puback = PacketRecord::new((N + 1) * 10, Direction::In, PacketKind::Puback, Some(7), 4);
    puback.seq = N + 1;
    w.packet((N + 1) * 10, &puback).expect("puback");
    w.finish((N + 1) * 10).expect("finish");

    let mut harness = open_in_window(
        dir.path(),
        &file,
        FakePicker::default(),
        HistoryLimits::default(),
    );
    let name = "capture slow-ack.mqcap";
    step_until(&mut harness, "the load finished", LIMIT, |h| {
        matches!(
            h.state().status_of(name),
            Some(mqscope::mqtt::ConnStatus::Disconnected { reason: Some(r) }) if r == "a capture file, offline"
        )
    });
    click(&mut harness, "Timeline");
    assert!(has_label_containing(&harness, "of 20002 packets"));
    harness
        .query_all_by_label_contains("PUBLISH id=7 qos=1")
        .next()
        .expect("the QoS 1 PUBLISH on the first page")
        .click();
    harness.run_ok();
    // Its flow is whole: the PUBACK 20,001 packets later is part of it.
    assert!(has_label_containing(
        &harness,
        "Linked over the whole capture."
    ));
    assert!(has_label(&harness, "complete"), "the flow is complete");
    assert!(has_label_containing(&harness, "packet 1 (this one)"));
    assert!(
        !has_label_containing(&harness, "PUBACK id=7"),
        "not on screen yet"
    );
    let steps: Vec<_> = harness
        .query_all_by_label_contains("PUBACK  4 B · packet 20002")
        .collect();
    assert_eq!(steps.len(), 1, "the PUBACK step, a button");
    steps[0].click();
    harness.run_ok();
    harness.run_ok();
    // The timeline went to the PUBACK and selected it; its flow goes back.
    assert!(has_label_containing(&harness, "PUBACK id=7 4 B"));
    assert!(has_label_containing(&harness, "packet 20002 (this one)"));
    assert!(has_label_containing(&harness, "packet 1"));
    assert!(
        !has_label(&harness, "PUBLISH qos=0 12 B · t/1"),
        "the first page is left"
    );
}

#[test]
fn at_800_px_the_inspector_scrolls_down_to_its_history_and_a_row_can_be_clicked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("status.mqcap");
    // MQTT 5 messages with a dozen user properties each (a gateway's
    // metadata): the properties table pushes the history down.
    let header = CaptureHeader {
        broker: "127.0.0.1:1883".into(),
        client_id: "gateway".into(),
        protocol: "MQTT 5".into(),
        ..CaptureHeader::default()
    };
    let mut w = CaptureWriter::create(&file, &header).expect("create");
    for i in 0..12u64 {
        let payload = format!("{{\"reading\": {i}, \"note\": \"reading {i:02}\"}}");
        let mut r = PacketRecord::new(i * 10, Direction::In, PacketKind::Publish, None, 0);
        r.seq = i;
        r.qos = Some(0);
        r.bytes = 200 + payload.len();
        r.detail.topic = Some("dev/status".into());
        w.packet(i * 10, &r).expect("packet");
        let props = mqscope::model::protocol::Properties {
            content_type: Some("application/json".into()),
            user_property: (0..12)
                .map(|k| (format!("meta-{k}"), format!("value {k}")))
                .collect(),
            ..Default::default()
        };
        let m = Message {
            topic: "dev/status".into(),
            payload: Bytes::from(payload),
            qos: Qos::AtMostOnce,
            received: UNIX_EPOCH + Duration::from_micros(1_796_000_000_000_000 + i * 10),
            packet_seq: Some(i),
            props: Some(Box::new(props)),
            ..Message::default()
        };
        w.event(i * 10, &EventKind::Message(m)).expect("message");
    }
    w.finish(120).expect("finish");
    let mut harness = open_in_window(
        dir.path(),
        &file,
        FakePicker::default(),
        HistoryLimits::default(),
    );
    assert_eq!(harness.ctx.content_rect().height(), 800.0);
    let name = "capture status.mqcap";
    step_until(&mut harness, "the capture read", LIMIT, |h| {
        h.state()
            .store_of(name)
            .is_some_and(|s| s.total_messages() == 12)
    });
    click(&mut harness, "dev");
    harness.key_press(egui::Key::ArrowRight);
    harness.run_ok();
    harness.key_press(egui::Key::ArrowDown);
    harness.run_ok();
    assert_eq!(
        harness.state().selected_topic().as_deref(),
        Some("dev/status")
    );
    assert!(!has_label(&harness, "Show latest"));
    // The publish form below the inspector, and the history under it:
    // below the fold.
    let fold = |h: &egui_kittest::Harness<'_, mqscope::app::App>| {
        h.query_all_by_label("Topic")
            .next()
            .expect("the publish form's topic")
            .rect()
            .top()
    };
    let history = |h: &egui_kittest::Harness<'_, mqscope::app::App>| {
        h.query_all_by_label_contains("History (")
            .next()
            .expect("the history")
            .rect()
    };
    assert!(
        history(&harness).top() > fold(&harness),
        "the history starts below the fold ({:?}, fold at {})",
        history(&harness),
        fold(&harness)
    );
    // The mouse wheel over the inspector's top scrolls the whole panel.
    let over = harness
        .query_all_by_label("dev/status")
        .next()
        .map_or(egui::pos2(900.0, 150.0), |n| n.rect().center());
    for _ in 0..20 {
        if history(&harness).bottom() + 120.0 < fold(&harness) {
            break;
        }
        harness.hover_at(over);
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -60.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
        harness.run_ok();
    }
    assert!(
        history(&harness).bottom() + 120.0 < fold(&harness),
        "the history scrolled into view ({:?}, fold at {})",
        history(&harness),
        fold(&harness)
    );
    // Down its own rows to the oldest message's, which is clicked.
    for _ in 0..12 {
        if has_label_containing(&harness, "reading 00") {
            break;
        }
        harness
            .query_all_by_label_contains("B · {")
            .last()
            .expect("history rows")
            .scroll_down();
        harness.run_ok();
    }
    for _ in 0..2 {
        harness
            .query_all_by_label_contains("reading 00")
            .last()
            .expect("the oldest history row")
            .scroll_to_me();
        harness.run_ok();
    }
    harness
        .query_all_by_label_contains("B · {\"reading\": 0,")
        .next()
        .expect("the oldest history row")
        .click();
    harness.run_ok();
    assert!(
        has_label(&harness, "Show latest"),
        "the clicked row is shown instead of the latest"
    );
}
