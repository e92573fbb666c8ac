//! Opening a capture for the window without ever blocking it: a thread
//! indexes the file, then streams its records as the same `EventKind`s a
//! live connection produces, in bounded batches over a bounded channel (so
//! memory stays flat however large the file), while the window drains a
//! few batches per frame into the connection's state.

use super::file::CaptureFile;
use crate::mqtt::{EventKind, Wake};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

/// Events per batch, and payload bytes per batch, at most (about).
pub const BATCH_EVENTS: usize = 4096;
pub const BATCH_BYTES: usize = 4 << 20;
/// Batches waiting for the window, at most.
const QUEUED_BATCHES: usize = 4;

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
                loop {
                    if c.load(Ordering::Acquire) {
                        return;
                    }
                    match events.next_batch(BATCH_EVENTS, BATCH_BYTES) {
                        Ok(Some(batch)) => {
                            r.fetch_add(batch.len() as u64, Ordering::AcqRel);
                            if !send(LoadEvent::Batch(batch)) {
                                return;
                            }
                        }
                        Ok(None) => {
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
