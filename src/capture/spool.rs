//! pcap/pcapng files larger than memory: while a pcap is read, each MQTT
//! stream is transcoded into a capture of its own (mqscope's format) in a
//! temporary file, so the window opens it with the same paged machinery as
//! a recording — index in memory, payloads and packets read on demand.
//!
//! The temporary files have no name on disk (`tempfile::tempfile_in`): the
//! operating system removes them when the last handle closes — when the
//! connection is closed, the app exits, or it crashes. They live in the
//! cache directory (not `/tmp`, often a RAM disk).

use super::decode::Decoded;
use super::file::CaptureFile;
use super::format::{CaptureHeader, CaptureWriter, rfc3339, unix_us};
use super::pcap::{ReadError, ReadOptions, Sink, StreamInfo, StreamKind, Summary};
use crate::mqtt::{ConnStatus, EventKind};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Where the temporary captures go: the user's cache directory, else the
/// system's temporary directory.
pub fn spool_dir() -> PathBuf {
    let dir = directories::ProjectDirs::from("", "", "mqscope")
        .map(|d| d.cache_dir().join("pcap"))
        .unwrap_or_else(std::env::temp_dir);
    if std::fs::create_dir_all(&dir).is_ok() {
        dir
    } else {
        std::env::temp_dir()
    }
}

/// One stream being written.
struct Spool {
    writer: CaptureWriter<File>,
    /// A second handle on the same (nameless) file, to read it back.
    read: File,
    last_us: u64,
}

/// A pcap stream, transcoded.
#[derive(Clone)]
pub struct SpooledStream {
    pub info: StreamInfo,
    /// The stream's packets and messages as a capture (MQTT streams);
    /// `None` for streams listed but not decoded (TLS, MQTT 3.1).
    pub file: Option<Arc<CaptureFile>>,
}

/// What reading a pcap into spools gave.
pub struct Spooled {
    pub streams: Vec<SpooledStream>,
    pub summary: Summary,
    /// The file was cut short or damaged after its first frame: what came
    /// before is in `streams`.
    pub damage: Option<ReadError>,
    /// Records that could not be written to the cache (disk full...), with
    /// the reason; counted, never dropped silently.
    pub lost: Option<String>,
}

/// The [`Sink`] that writes each stream to its temporary capture.
pub struct SpoolSink<'a> {
    dir: PathBuf,
    source: PathBuf,
    spools: Vec<Option<Spool>>,
    /// Why a stream has no spool (its file could not be created).
    failure: Option<String>,
    cancel: Option<&'a AtomicBool>,
    /// Packets and messages written, for progress.
    pub written: u64,
}

impl<'a> SpoolSink<'a> {
    pub fn new(dir: PathBuf, source: &Path, cancel: Option<&'a AtomicBool>) -> SpoolSink<'a> {
        SpoolSink {
            dir,
            source: source.to_path_buf(),
            spools: Vec::new(),
            failure: None,
            cancel,
            written: 0,
        }
    }

    fn create(&mut self, stream: &StreamInfo, first: &Decoded) -> Option<Spool> {
        let epoch = stream
            .started
            .checked_sub(Duration::from_micros(stream.first_us))
            .unwrap_or(UNIX_EPOCH);
        let protocol = match stream.kind {
            StreamKind::Mqtt(v) => v.label().to_string(),
            other => other.label(),
        };
        let header = CaptureHeader {
            mqscope: env!("CARGO_PKG_VERSION").into(),
            protocol,
            broker: stream.broker.to_string(),
            client_id: first.record.detail.client_id.clone().unwrap_or_default(),
            profile: format!("{} -> {}", stream.client, stream.broker),
            started: rfc3339(stream.started),
            started_unix_us: unix_us(stream.started),
            epoch_unix_us: unix_us(epoch),
            ..CaptureHeader::default()
        };
        let made = tempfile::tempfile_in(&self.dir).and_then(|file| {
            let read = file.try_clone()?;
            let writer = CaptureWriter::new(file, &header)?;
            Ok(Spool {
                writer,
                read,
                last_us: 0,
            })
        });
        match made {
            Ok(s) => Some(s),
            Err(e) => {
                self.failure.get_or_insert_with(|| {
                    format!(
                        "cannot write a temporary file in {}: {e}",
                        self.dir.display()
                    )
                });
                None
            }
        }
    }

    /// Ends every spool and opens it as a capture.
    pub fn finish(self, summary: Summary, damage: Option<ReadError>) -> Spooled {
        let mut spools = self.spools;
        let mut lost = 0u64;
        let mut why = self.failure;
        let mut streams = Vec::with_capacity(summary.streams.len());
        for info in &summary.streams {
            let spool = spools.get_mut(info.id).and_then(Option::take);
            let file = spool.and_then(|mut s| {
                if info.closed && matches!(info.kind, StreamKind::Mqtt(_)) {
                    let _ = s.writer.event(
                        s.last_us,
                        &EventKind::Status(ConnStatus::Disconnected {
                            reason: Some("the TCP connection closed inside the capture".into()),
                        }),
                    );
                }
                lost += s.writer.totals().lost;
                if let Some(f) = s.writer.failure() {
                    why.get_or_insert_with(|| f.to_string());
                }
                let last = s.last_us;
                if let Err(e) = s.writer.finish(last) {
                    why.get_or_insert_with(|| e.to_string());
                }
                let name = PathBuf::from(format!(
                    "{} (stream {})",
                    self.source.display(),
                    info.id + 1
                ));
                match CaptureFile::open_file(s.read, &name) {
                    Ok(f) => Some(Arc::new(f)),
                    Err(e) => {
                        why.get_or_insert_with(|| e.to_string());
                        None
                    }
                }
            });
            streams.push(SpooledStream {
                info: info.clone(),
                file,
            });
        }
        let lost = why.map(|why| {
            if lost > 0 {
                format!(
                    "{lost} records could not be written to the cache ({why}): they are not shown"
                )
            } else {
                format!("a stream could not be kept in the cache: {why}")
            }
        });
        Spooled {
            streams,
            summary,
            damage,
            lost,
        }
    }
}

impl Sink for SpoolSink<'_> {
    fn packet(&mut self, stream: &StreamInfo, d: Decoded) {
        while self.spools.len() <= stream.id {
            self.spools.push(None);
        }
        if self.spools[stream.id].is_none() {
            let made = self.create(stream, &d);
            self.spools[stream.id] = made;
        }
        let Some(spool) = self.spools[stream.id].as_mut() else {
            return;
        };
        let t = d.record.t_us;
        spool.last_us = spool.last_us.max(t);
        // A failed write is counted by the writer (its `lost`), reported
        // when the stream is finished.
        let _ = spool.writer.packet(t, &d.record);
        self.written += 1;
        if let Some(m) = &d.message {
            let _ = spool.writer.message(t, m);
            self.written += 1;
        }
    }

    fn done(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Acquire))
    }
}

/// Reads a pcap/pcapng file, each MQTT stream into a temporary capture in
/// `dir`: memory stays bounded by the reassembly limits, whatever the size
/// of the file.
pub fn spool_pcap(
    path: &Path,
    options: ReadOptions,
    dir: PathBuf,
    cancel: Option<&AtomicBool>,
    progress: &dyn Fn(u64),
) -> Result<Spooled, ReadError> {
    struct Progress<'a, 'b> {
        inner: SpoolSink<'a>,
        report: &'b dyn Fn(u64),
    }
    impl Sink for Progress<'_, '_> {
        fn packet(&mut self, stream: &StreamInfo, d: Decoded) {
            self.inner.packet(stream, d);
            if self.inner.written % 4096 < 2 {
                (self.report)(self.inner.written);
            }
        }
        fn done(&self) -> bool {
            self.inner.done()
        }
    }
    let mut sink = Progress {
        inner: SpoolSink::new(dir, path, cancel),
        report: progress,
    };
    let (summary, damage) = super::pcap::read_file_partial(path, options, &mut sink)?;
    Ok(sink.inner.finish(summary, damage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_files_have_no_name_left_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let sink = SpoolSink::new(dir.path().to_path_buf(), Path::new("x.pcap"), None);
        let info = StreamInfo {
            id: 0,
            client: "127.0.0.1:5000".parse().expect("addr"),
            broker: "127.0.0.1:1883".parse().expect("addr"),
            kind: StreamKind::Mqtt(crate::model::protocol::ProtocolVersion::V311),
            started: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            first_us: 0,
            last_us: 0,
            closed: true,
            client_tcp: Default::default(),
            broker_tcp: Default::default(),
            client_frames: Default::default(),
            broker_frames: Default::default(),
            problems: Vec::new(),
        };
        let mut sink = sink;
        let mut r = crate::model::packet::PacketRecord::new(
            5,
            crate::model::packet::Direction::Out,
            crate::model::packet::PacketKind::Connect,
            None,
            14,
        );
        r.detail.client_id = Some("dev-1".into());
        sink.packet(
            &info,
            Decoded {
                record: r,
                message: None,
            },
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            0,
            "nothing named in the cache directory"
        );
        let summary = Summary {
            streams: vec![info],
            ..Summary::default()
        };
        let spooled = sink.finish(summary, None);
        assert!(spooled.lost.is_none(), "{:?}", spooled.lost);
        let file = spooled.streams[0].file.clone().expect("a capture");
        assert_eq!(file.packet_count(), 1);
        assert_eq!(file.header().client_id, "dev-1");
        let p = file.packet(0).expect("packet 0");
        assert_eq!(p.kind, crate::model::packet::PacketKind::Connect);
        assert!(matches!(
            file.ending(),
            super::super::file::Ending::Closed(_)
        ));
    }
}
