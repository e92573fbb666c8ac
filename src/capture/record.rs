//! Recording a connection: the worker hands every event of the connection
//! to a [`Recorder`] before anything can drop it, and whoever asked for the
//! recording watches a [`RecordingStatus`] (file size, counts, errors) grow.

use super::format::{CaptureHeader, CaptureTotals, CaptureWriter, rfc3339, unix_us};
use crate::mqtt::EventKind;
use crate::profile::Profile;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often a recording's buffer reaches the file at the latest.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Shared {
    active: AtomicBool,
    finished: AtomicBool,
    records: AtomicU64,
    messages: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    error: Mutex<Option<String>>,
}

/// A live view of one recording, shared between the worker (which writes)
/// and the window or command that shows it. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct RecordingStatus {
    shared: Arc<Shared>,
}

impl RecordingStatus {
    pub fn new() -> RecordingStatus {
        RecordingStatus::default()
    }

    /// Records are being written.
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }

    /// The recording was stopped and the file closed (or it never started:
    /// see [`RecordingStatus::error`]).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    pub fn records(&self) -> u64 {
        self.shared.records.load(Ordering::Acquire)
    }

    pub fn messages(&self) -> u64 {
        self.shared.messages.load(Ordering::Acquire)
    }

    pub fn packets(&self) -> u64 {
        self.shared.packets.load(Ordering::Acquire)
    }

    /// Bytes written to the file so far.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Records that could not be written (disk full, I/O error).
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Acquire)
    }

    /// The first error, in words.
    pub fn error(&self) -> Option<String> {
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_error(&self, why: String) {
        let mut e = self.shared.error.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_none() {
            *e = Some(why);
        }
    }

    fn update(&self, t: &CaptureTotals) {
        let s = &self.shared;
        s.records.store(t.records, Ordering::Release);
        s.messages.store(t.messages, Ordering::Release);
        s.packets.store(t.packets, Ordering::Release);
        s.bytes.store(t.bytes, Ordering::Release);
        s.lost.store(t.lost, Ordering::Release);
    }

    /// The recording could not start: says why, and that it is over.
    pub(crate) fn failed_to_start(&self, why: String) {
        self.set_error(why);
        self.shared.active.store(false, Ordering::Release);
        self.shared.finished.store(true, Ordering::Release);
    }

    /// One line for a status bar: "12,345 messages · 3.4 MB".
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} messages, {} packets, {}",
            self.messages(),
            self.packets(),
            human_bytes(self.bytes())
        );
        if self.lost() > 0 {
            s.push_str(&format!(", {} records NOT written", self.lost()));
        }
        s
    }
}

/// 1536 → "1.5 KB".
pub fn human_bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// The header of a capture of a connection made with `profile`.
pub fn header_for(profile: &Profile, epoch: Instant) -> CaptureHeader {
    let now = SystemTime::now();
    let epoch_wall = now.checked_sub(epoch.elapsed()).unwrap_or(now);
    CaptureHeader {
        format: super::format::FORMAT_VERSION,
        mqscope: env!("CARGO_PKG_VERSION").into(),
        protocol: profile.protocol.label().into(),
        broker: format!("{}:{}", profile.host.trim(), profile.port),
        client_id: profile.client_id.clone(),
        profile: profile.name.clone(),
        filters: profile
            .subscriptions
            .iter()
            .map(|s| s.filter.clone())
            .collect(),
        started: rfc3339(now),
        started_unix_us: unix_us(now),
        epoch_unix_us: unix_us(epoch_wall),
    }
}

/// One connection's recording, owned by the worker.
pub struct Recorder {
    writer: CaptureWriter,
    status: RecordingStatus,
    path: PathBuf,
    last_flush: Instant,
}

impl Recorder {
    /// Creates the file and writes its header.
    pub fn create(
        path: &Path,
        header: &CaptureHeader,
        status: RecordingStatus,
    ) -> Result<Recorder, String> {
        match CaptureWriter::create(path, header) {
            Ok(writer) => {
                status.update(writer.totals());
                status.shared.active.store(true, Ordering::Release);
                Ok(Recorder {
                    writer,
                    status,
                    path: path.to_path_buf(),
                    last_flush: Instant::now(),
                })
            }
            Err(e) => {
                let why = format!("cannot record to {}: {e}", path.display());
                status.failed_to_start(why.clone());
                Err(why)
            }
        }
    }

    pub fn status(&self) -> &RecordingStatus {
        &self.status
    }

    /// Writes one event. Returns the error in words the first time writing
    /// fails (later failures are only counted).
    pub fn write(&mut self, t_us: u64, kind: &EventKind) -> Option<String> {
        let first_failure = self.writer.failure().is_none();
        let result = self.writer.event(t_us, kind);
        self.status.update(self.writer.totals());
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
        match result {
            Err(e) if first_failure => {
                let why = format!(
                    "recording to {} failed: {e}; what follows is counted, not written",
                    self.path.display()
                );
                self.status.set_error(why.clone());
                Some(why)
            }
            _ => None,
        }
    }

    /// Hands the buffer to the operating system; returns an error in words
    /// the first time that fails.
    pub fn flush(&mut self) -> Option<String> {
        self.last_flush = Instant::now();
        let first_failure = self.writer.failure().is_none();
        match self.writer.flush() {
            Err(e) if first_failure => {
                let why = format!("recording to {} failed: {e}", self.path.display());
                self.status.set_error(why.clone());
                Some(why)
            }
            _ => None,
        }
    }

    /// Writes the end record and closes the file.
    pub fn finish(self, t_us: u64) -> Result<CaptureTotals, String> {
        let status = self.status.clone();
        let path = self.path.clone();
        let result = self.writer.finish(t_us);
        if let Ok(t) = &result {
            status.update(t);
        }
        status.shared.active.store(false, Ordering::Release);
        status.shared.finished.store(true, Ordering::Release);
        result.map_err(|e| {
            let why = format!("recording to {} could not be closed: {e}", path.display());
            status.set_error(why.clone());
            why
        })
    }
}
