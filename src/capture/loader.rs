//! Opening a capture for the window without ever blocking it: a thread
//! indexes the file, then streams its records as the same `EventKind`s a
//! live connection produces, in bounded batches over a bounded channel (so
//! memory stays flat however large the file), while the window drains a
//! few batches per frame into the connection's state. A pcap/pcapng file
//! is decoded in one streaming pass, each MQTT stream into a temporary
//! capture ([`super::spool`]), then each stream is loaded from it the same
//! way, to a connection of its own.

use super::file::CaptureFile;
use super::flow_index::FlowTracker;
use super::pcap::{ReadOptions, StreamKind};
use super::spool::{Spooled, SpooledStream, spool_dir, spool_pcap};
use crate::mqtt::{ConnStatus, EventKind, Wake};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

/// Events per batch, and payload bytes per batch, at most (about).
pub const BATCH_EVENTS: usize = 1024;
pub const BATCH_BYTES: usize = 1 << 20;
/// Batches waiting for the window, at most.
const QUEUED_BATCHES: usize = 16;

/// What the loading thread reports, in this order.
pub enum LoadEvent {
    /// Indexed: the capture for on-demand reads (pages of packets, payloads
    /// the Store evicted, replay). Comes before any batch.
    Opened(Arc<CaptureFile>),
    /// The next records, as a live connection's events.
    Batch(Vec<EventKind>),
    /// Every record was delivered; the notice says if the file was cut off
    /// or damaged (read up to that point).
    Done { notice: Option<String> },
    /// The capture could not be opened or read, in words.
    Failed(String),
    /// A pcap/pcapng file was decoded: its MQTT (and TLS) streams, each to
    /// be shown as a connection of its own, and a line on what else the
    /// file held. Comes before the streams' batches.
    PcapOpened {
        streams: Vec<SpooledStream>,
        summary: String,
    },
    /// The next records of pcap stream `stream` (its position in
    /// `PcapOpened::streams`), as a live connection's events.
    StreamBatch {
        stream: usize,
        events: Vec<EventKind>,
    },
}

/// True when the file starts like a pcap or pcapng file.
pub fn is_pcap(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && (matches!(
            u32::from_le_bytes(head),
            0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1
        ) || u32::from_be_bytes(head) == 0x0a0d0d0a)
}

/// Links the flows of a batch's packets, in capture order.
fn track(tracker: &mut FlowTracker, batch: &[EventKind]) {
    for e in batch {
        match e {
            EventKind::Packet(r) => tracker.packet(r),
            EventKind::Status(
                ConnStatus::Reconnecting { .. } | ConnStatus::Disconnected { .. },
            ) => tracker.connection_dropped(),
            _ => {}
        }
    }
}

/// What a pcap file held besides its MQTT streams, in one line.
fn pcap_summary(path: &Path, s: &Spooled) -> String {
    let mqtt = s
        .streams
        .iter()
        .filter(|s| matches!(s.info.kind, StreamKind::Mqtt(_)))
        .count();
    let encrypted = s
        .streams
        .iter()
        .filter(|s| s.info.kind == StreamKind::Encrypted)
        .count();
    format!(
        "{}: {} frames, {mqtt} MQTT streams, {encrypted} encrypted (TLS) streams, {} other \
         streams; {} other TCP connections, {} frames not TCP, {} unreadable frames",
        path.display(),
        s.summary.frames,
        s.streams.len() - mqtt - encrypted,
        s.summary.other_tcp,
        s.summary.not_tcp,
        s.summary.unreadable
    )
}

/// Decodes a pcap file, each MQTT stream into a temporary capture (so a
/// file larger than memory opens), then streams each stream's events from
/// its capture as a recording's are.
fn load_pcap(
    path: &Path,
    send: &dyn Fn(LoadEvent) -> bool,
    cancel: &AtomicBool,
    read: &AtomicU64,
    total: &AtomicU64,
) {
    let spooled = match spool_pcap(
        path,
        ReadOptions::default(),
        spool_dir(),
        Some(cancel),
        &|n| read.store(n, Ordering::Release),
    ) {
        Ok(s) => s,
        Err(e) => {
            send(LoadEvent::Failed(e.to_string()));
            return;
        }
    };
    if cancel.load(Ordering::Acquire) {
        return;
    }
    let summary = pcap_summary(path, &spooled);
    let frames = spooled.summary.frames;
    read.store(0, Ordering::Release);
    total.store(
        spooled
            .streams
            .iter()
            .filter_map(|s| s.file.as_ref())
            .map(|f| f.record_count())
            .sum(),
        Ordering::Release,
    );
    let mut notices: Vec<String> = Vec::new();
    if let Some(e) = &spooled.damage {
        notices.push(format!("{e}: showing the {frames} frames before it"));
    }
    if let Some(lost) = &spooled.lost {
        notices.push(lost.clone());
    }
    let streams = spooled.streams;
    if !send(LoadEvent::PcapOpened {
        streams: streams.clone(),
        summary,
    }) {
        return;
    }
    for (i, stream) in streams.iter().enumerate() {
        let Some(file) = &stream.file else {
            continue;
        };
        let mut events = match file.events() {
            Ok(e) => e,
            Err(e) => {
                notices.push(e.to_string());
                continue;
            }
        };
        let mut flows = FlowTracker::new(true);
        loop {
            if cancel.load(Ordering::Acquire) {
                return;
            }
            match events.next_batch(BATCH_EVENTS, BATCH_BYTES) {
                Ok(Some(batch)) => {
                    read.fetch_add(batch.len() as u64, Ordering::AcqRel);
                    track(&mut flows, &batch);
                    if !send(LoadEvent::StreamBatch {
                        stream: i,
                        events: batch,
                    }) {
                        return;
                    }
                }
                Ok(None) => {
                    file.set_flow_index(flows.finish());
                    break;
                }
                Err(e) => {
                    notices.push(e.to_string());
                    break;
                }
            }
        }
    }
    send(LoadEvent::Done {
        notice: (!notices.is_empty()).then(|| notices.join("; ")),
    });
}

/// A capture being loaded. Dropping it cancels the loading.
pub struct Loader {
    rx: mpsc::Receiver<LoadEvent>,
    read: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loader {
    /// Starts loading `path`; `wake` is called when something is waiting.
    pub fn start(path: PathBuf, wake: Option<Wake>) -> Loader {
        let (tx, rx) = mpsc::sync_channel(QUEUED_BATCHES);
        let read = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        let (r, t, c) = (read.clone(), total.clone(), cancel.clone());
        let thread = std::thread::Builder::new()
            .name("mqscope-capture-load".into())
            .spawn(move || {
                let send = |e: LoadEvent| {
                    let ok = tx.send(e).is_ok();
                    if let Some(w) = &wake {
                        w();
                    }
                    ok
                };
                // A file named .pcap that is not one is told so by the pcap
                // reader, in pcap terms.
                let named_pcap = path.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("pcap") || e.eq_ignore_ascii_case("pcapng")
                });
                if is_pcap(&path) || (named_pcap && !super::file::is_capture(&path)) {
                    load_pcap(&path, &send, &c, &r, &t);
                    return;
                }
                let capture = match CaptureFile::open(&path) {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        send(LoadEvent::Failed(e.to_string()));
                        return;
                    }
                };
                t.store(capture.record_count(), Ordering::Release);
                if !send(LoadEvent::Opened(capture.clone())) {
                    return;
                }
                let mut events = match capture.events() {
                    Ok(e) => e,
                    Err(e) => {
                        send(LoadEvent::Failed(e.to_string()));
                        return;
                    }
                };
                let mut flows = FlowTracker::new(true);
                loop {
                    if c.load(Ordering::Acquire) {
                        return;
                    }
                    match events.next_batch(BATCH_EVENTS, BATCH_BYTES) {
                        Ok(Some(batch)) => {
                            r.fetch_add(batch.len() as u64, Ordering::AcqRel);
                            track(&mut flows, &batch);
                            if !send(LoadEvent::Batch(batch)) {
                                return;
                            }
                        }
                        Ok(None) => {
                            capture.set_flow_index(flows.finish());
                            send(LoadEvent::Done {
                                notice: capture.notice(),
                            });
                            return;
                        }
                        Err(e) => {
                            send(LoadEvent::Failed(e.to_string()));
                            return;
                        }
                    }
                }
            })
            .ok();
        Loader {
            rx,
            read,
            total,
            cancel,
            thread,
        }
    }

    /// What is waiting, at most `max` reports, without blocking.
    pub fn drain(&self, max: usize) -> Vec<LoadEvent> {
        self.rx.try_iter().take(max).collect()
    }

    /// The next report, if one is waiting (never blocks).
    pub fn next(&self) -> Option<LoadEvent> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next report (headless use, tests).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<LoadEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Events read so far, and records in the capture (0 until indexed).
    pub fn progress(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Acquire),
            self.total.load(Ordering::Acquire),
        )
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.cancel();
        // Unblock a thread waiting on a full channel.
        while self.rx.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            // The thread sends at most one more batch before it sees cancel.
            while !t.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            t.join().ok();
        }
    }
}
