//! Captures of 1,000,000 messages: writing them (as the worker records a
//! live connection: each message with its PUBLISH record), reopening
//! (the index pass: time, and bytes of index per message), feeding the
//! reopened events into a Store in batches, and paging through packets
//! and payloads on demand — beside a plain sequential read of the same file
//! (the floor any reader of it has to pay).
//!
//! Run: `cargo bench --bench capture` (release), or with the development
//! build's artifacts `cargo bench --profile dev --bench capture`.
//! `CAPTURE_MESSAGES=N` changes the count.

use bytes::Bytes;
use mqscope::capture::file::CaptureFile;
use mqscope::capture::format::{CaptureHeader, CaptureWriter};
use mqscope::model::packet::{Direction, PacketKind, PacketRecord};
use mqscope::model::protocol::{Message, Qos};
use mqscope::model::store::{HistoryLimits, Store};
use mqscope::mqtt::EventKind;
use std::io::Read;
use std::time::{Duration, Instant, UNIX_EPOCH};

fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn main() {
    let n: u64 = std::env::var("CAPTURE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().join("bench.mqcap");

    // Write: what recording costs the worker per message.
    let t = Instant::now();
    let mut w = CaptureWriter::create(&path, &CaptureHeader::default()).expect("create");
    for i in 0..n {
        let topic = format!("plant/line{}/sensor{}", i % 10, i % 1000);
        let payload = format!(
            "{{\"temp\":{}.{},\"unit\":\"C\",\"ok\":true}}",
            i % 40,
            i % 10
        );
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
    let totals = w.finish(n * 10).expect("finish");
    let write_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).expect("size").len();
    println!(
        "write: {n} messages + {n} packet records in {write_s:.2} s ({:.0} msg/s), file {:.1} MB ({:.0} B/message with its PUBLISH record)",
        n as f64 / write_s,
        size as f64 / 1e6,
        size as f64 / n as f64
    );
    assert_eq!(totals.messages, n);

    // Reference: reading the file once, sequentially, doing nothing with it.
    let t = Instant::now();
    let mut f = std::fs::File::open(&path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let k = f.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        read += k as u64;
    }
    let floor_s = t.elapsed().as_secs_f64();
    println!(
        "reference: plain sequential read of the {:.1} MB file: {floor_s:.3} s",
        read as f64 / 1e6
    );

    // Open: the index pass.
    let before = rss_kb();
    let t = Instant::now();
    let capture = CaptureFile::open(&path).expect("open capture");
    let open_s = t.elapsed().as_secs_f64();
    let after = rss_kb();
    let index = capture.index_memory();
    println!(
        "open: {} records indexed in {open_s:.3} s ({:.1}x the plain read); index {:.1} MB = {:.1} B/message (packets + messages + per-topic lists; {} topics){}",
        capture.record_count(),
        open_s / floor_s.max(1e-9),
        index as f64 / 1e6,
        index as f64 / n as f64,
        capture.topics().len(),
        match (before, after) {
            (Some(b), Some(a)) => format!(", RSS +{:.1} MB", (a.saturating_sub(b)) as f64 / 1024.0),
            _ => String::new(),
        }
    );

    // Page through packets and payloads as a timeline / inspector would.
    let pages = 200;
    let t = Instant::now();
    let mut got = 0;
    for k in 0..pages {
        let start = (k * 7919 * 1000) % (capture.packet_count() - 1000);
        got += capture.packets(start..start + 100).expect("page").len();
    }
    let page_ms = t.elapsed().as_secs_f64() * 1e3 / pages as f64;
    println!("page: 100 packet records from a random place: {page_ms:.2} ms per page ({got} read)");
    let t = Instant::now();
    let ids = capture.message_ids_of("plant/line3/sensor123").to_vec();
    let mut bytes = 0;
    for &i in ids.iter().take(1000) {
        bytes += capture.payload(i).expect("payload").len();
    }
    println!(
        "payload: {} payloads of one topic on demand in {:.2} ms ({bytes} bytes)",
        ids.len().min(1000),
        t.elapsed().as_secs_f64() * 1e3
    );

    // Reopen into a Store, as the window does, in batches.
    let t = Instant::now();
    let mut store = Store::new(HistoryLimits::default());
    let mut events = capture.events().expect("events");
    let mut records = 0u64;
    while let Some(batch) = events.next_batch(4096, 4 << 20).expect("batch") {
        for e in batch {
            records += 1;
            if let EventKind::Message(m) = e {
                store.apply_owned(m);
            }
        }
    }
    let feed_s = t.elapsed().as_secs_f64();
    println!(
        "events: {records} events fed into a Store in {feed_s:.2} s ({:.0} msg/s); the Store holds {} topics",
        n as f64 / feed_s,
        store.topic_count()
    );
    assert_eq!(store.total_messages(), n);
}
