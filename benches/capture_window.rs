//! Opening a capture of 1,000,000 packets (and as many messages) in the
//! window, through the real App driven by egui_kittest: time from choosing
//! the file to the first frame whose Timeline pages through it (the index
//! pass on the loader thread), the longest frame while the records are fed
//! to the tree (the window stays responsive), time to the whole load, a
//! jump to the last packet, and the process's resident memory beside the
//! file's size.
//!
//! Run: `cargo bench --profile dev --bench capture_window` (the development
//! build's artifacts; a release build is faster). `CAPTURE_MESSAGES=N`
//! changes the count.

use bytes::Bytes;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::{App, FilePicker};
use mqscope::capture::format::{CaptureHeader, CaptureWriter};
use mqscope::model::packet::{Direction, PacketKind, PacketRecord};
use mqscope::model::protocol::{Message, Qos};
use mqscope::mqtt::EventKind;
use mqscope::profile::{Profile, ProfileStore};
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

struct Answer(Option<PathBuf>);

impl FilePicker for Answer {
    fn pick_file(&mut self, _title: &str) -> Option<PathBuf> {
        self.0.take()
    }
    fn save_file(&mut self, _title: &str, _default_name: &str) -> Option<PathBuf> {
        None
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn has(h: &Harness<'_, App>, part: &str) -> bool {
    h.query_all_by_label_contains(part).next().is_some()
}

fn main() {
    let n: u64 = std::env::var("CAPTURE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().join("window.mqcap");
    let mut w = CaptureWriter::create(&path, &CaptureHeader::default()).expect("create");
    for i in 0..n {
        let topic = format!("plant/line{}/sensor{}", i % 10, i % 1000);
        let payload = format!("{{\"temp\":{}.{},\"unit\":\"C\"}}", i % 40, i % 10);
        let mut r = PacketRecord::new(i * 10, Direction::In, PacketKind::Publish, None, 0);
        r.seq = i;
        r.qos = Some(0);
        r.bytes = 4 + topic.len() + payload.len();
        r.detail.topic = Some(topic.clone());
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
    let size_mb = std::fs::metadata(&path).expect("size").len() as f64 / 1e6;

    let config = dir.path().join("config");
    ProfileStore::at(config.clone())
        .save(&[Profile {
            name: "desk".into(),
            ..Profile::default()
        }])
        .expect("profile");
    let mut picker = Some(Answer(Some(path.clone())));
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            let picker: Box<dyn FilePicker> = Box::new(picker.take().expect("once"));
            App::with_parts(
                cc.egui_ctx.clone(),
                ProfileStore::at(config.clone()),
                picker,
            )
        });
    h.run_steps(2);
    assert!(h.state_mut().open_offline("desk"));
    h.run_steps(2);
    h.get_by_label("Timeline").click();
    h.run_steps(2);
    h.get_by_label("+ Open…").click();
    h.run_steps(2);
    let rss_before = rss_mb();
    h.get_by_label("Capture file…").click();
    let t = Instant::now();
    let total = format!("of {n} packets");
    let mut first_frame = None;
    let mut times = Vec::new();
    let mut frames = 0u64;
    let name = "capture window.mqcap";
    loop {
        let f = Instant::now();
        h.step();
        let took = f.elapsed();
        frames += 1;
        if first_frame.is_none() && has(&h, &total) && has(&h, "· plant/line0/sensor0") {
            first_frame = Some((t.elapsed(), rss_mb()));
        }
        if first_frame.is_some() {
            times.push(took);
        }
        if h.state()
            .store_of(name)
            .is_some_and(|s| s.total_messages() == n)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "the load never ended"
        );
    }
    let loaded = t.elapsed();
    let (first, rss_first) = first_frame.expect("the timeline showed the capture");
    let rss_loaded = rss_mb();
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    h.get_by_label("Jump to end").click();
    let j = Instant::now();
    h.step();
    h.step();
    let jump = j.elapsed();
    let last = format!("· plant/line{}/sensor{}", (n - 1) % 10, (n - 1) % 1000);
    assert!(has(&h, &last), "the last packet on screen after the jump");
    println!("capture: {n} packets + {n} messages, {size_mb:.1} MB on disk");
    println!(
        "time to first frame (Open… to the Timeline paging the whole capture): {:.2} s; RSS +{:.1} MB",
        first.as_secs_f64(),
        rss_first - rss_before
    );
    println!(
        "whole load into the tree: {:.2} s over {frames} frames, frames meanwhile: median {:.1} ms, p99 {:.1} ms, longest {:.1} ms; RSS +{:.1} MB ({:.1} MB total)",
        loaded.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        rss_loaded - rss_before,
        rss_loaded
    );
    println!(
        "jump to the last packet: {:.1} ms for two frames",
        jump.as_secs_f64() * 1e3
    );
}
