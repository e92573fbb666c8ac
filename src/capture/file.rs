//! Reopening a capture: one streaming pass builds a small index (offsets,
//! times, topics), then packets, messages and payloads are read on demand by
//! offset, so a capture far larger than memory opens in seconds and views
//! page through millions of records.
//!
//! [`CaptureFile::events`] gives the records back as the same
//! [`EventKind`]s a live connection produces, in bounded batches, to feed a
//! connection's state exactly as the worker would.

use super::format::{
    BODY_HEAD, CapMessageTopic, CaptureHeader, CaptureRecord, CaptureTotals, FORMAT_VERSION,
    FRAME_HEAD, MAGIC, MAX_RECORD, TAG_END, TAG_EVENT, TAG_MESSAGE, TAG_PACKET, decode_body,
    decode_message_meta,
};
use crate::model::packet::PacketRecord;
use crate::model::protocol::Message;
use crate::mqtt::EventKind;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a capture cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not an mqscope capture ({what})")]
    NotACapture { path: String, what: String },
    #[error(
        "{path} is a capture of format version {version}, newer than this mqscope reads ({FORMAT_VERSION}): update mqscope"
    )]
    Newer { path: String, version: u32 },
    #[error("{path}: the capture's header is unreadable: {why}")]
    Header { path: String, why: String },
    #[error("{path}: record at byte {offset} is unreadable: {why}")]
    Record {
        path: String,
        offset: u64,
        why: String,
    },
}

/// How the file ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// The recording was stopped and closed: the writer's own totals.
    Closed(CaptureTotals),
    /// Every record is whole, but the recording was never closed (mqscope
    /// stopped or the machine went down while recording).
    Unfinished,
    /// The last record is cut off after this many bytes: the rest of the
    /// file was not written (a crash while recording).
    Truncated { tail_bytes: u64 },
    /// A record does not match its checksum (or its length is impossible):
    /// what follows it cannot be trusted and is not read.
    Corrupt { offset: u64, why: String },
}

/// Where one packet record is.
#[derive(Clone, Copy, Debug)]
struct PacketEntry {
    offset: u64,
    t_us: u64,
}

/// Where one message is, and what the views need without reading it.
#[derive(Clone, Copy, Debug)]
struct MessageEntry {
    offset: u64,
    t_us: u64,
    /// The sequence number of its PUBLISH record, `u64::MAX` if none.
    packet_seq: u64,
    payload_len: u32,
    meta_len: u32,
    topic: u32,
    retain: bool,
}

/// The index built on open.
#[derive(Default)]
struct Index {
    packets: Vec<PacketEntry>,
    messages: Vec<MessageEntry>,
    events: u64,
    unknown: u64,
    topics: Vec<String>,
    topic_ids: HashMap<String, u32>,
    by_topic: Vec<Vec<u32>>,
    /// Offset just after the last whole record.
    end: u64,
    first_t_us: Option<u64>,
    last_t_us: u64,
    payload_bytes: u64,
    /// Messages are in PUBLISH sequence order (always, for one recording):
    /// looking one up by sequence number is a binary search.
    seq_unsorted: bool,
}

/// An open capture file.
pub struct CaptureFile {
    path: PathBuf,
    file: File,
    header: CaptureHeader,
    /// Offset of the first record.
    start: u64,
    index: Index,
    ending: Ending,
    size: u64,
    /// The flows of every packet, once the loader linked them.
    flows: std::sync::OnceLock<super::flow_index::FlowIndex>,
}

/// A message as the index knows it, without reading the file.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageInfo<'a> {
    /// Position among the capture's messages.
    pub index: u32,
    pub topic: &'a str,
    /// Position of the topic in [`CaptureFile::topics`].
    pub topic_id: u32,
    pub t_us: u64,
    pub payload_len: usize,
    pub retain: bool,
    pub packet_seq: Option<u64>,
}

/// True when the file starts like an mqscope capture.
pub fn is_capture(path: &Path) -> bool {
    let mut head = [0u8; 16];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head[..] == MAGIC[..16]
}

fn describe_unknown(head: &[u8]) -> String {
    if head.len() >= 4 {
        let m = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if matches!(m, 0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1) {
            return "it is a pcap file: `mqscope read` and `export` take it too".into();
        }
        if m == 0x0a0d0d0a {
            return "it is a pcapng file: `mqscope read` and `export` take it too".into();
        }
    }
    if head.is_empty() {
        return "the file is empty".into();
    }
    "it does not start with MQSCOPE-CAPTURE".into()
}

impl CaptureFile {
    /// Opens a capture and indexes it in one pass.
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.display().to_string(),
            source,
        })?;
        CaptureFile::open_file(file, path)
    }

    /// Opens a capture from a file already open for reading (e.g. a
    /// temporary file with no name left on disk); `path` only names it in
    /// messages.
    pub fn open_file(file: File, path: &Path) -> Result<CaptureFile, CaptureError> {
        let name = path.display().to_string();
        let io_err = |source| CaptureError::Io {
            path: name.clone(),
            source,
        };
        io::Seek::seek(&mut &file, io::SeekFrom::Start(0)).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_err)?);

        // The two text lines.
        let mut first = Vec::new();
        (&mut reader)
            .take(64)
            .read_until(b'\n', &mut first)
            .map_err(io_err)?;
        if !first.starts_with(MAGIC) || first.last() != Some(&b'\n') {
            return Err(CaptureError::NotACapture {
                path: name,
                what: describe_unknown(&first),
            });
        }
        let version: u32 = std::str::from_utf8(&first[MAGIC.len()..first.len() - 1])
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| CaptureError::Header {
                path: name.clone(),
                why: "the format version on the first line is not a number".into(),
            })?;
        if version > FORMAT_VERSION {
            return Err(CaptureError::Newer {
                path: name,
                version,
            });
        }
        let mut line = Vec::new();
        (&mut reader)
            .take(1 << 20)
            .read_until(b'\n', &mut line)
            .map_err(io_err)?;
        if line.last() != Some(&b'\n') {
            return Err(CaptureError::Header {
                path: name,
                why: "the file ends inside the header line".into(),
            });
        }
        let header: CaptureHeader =
            serde_json::from_slice(&line).map_err(|e| CaptureError::Header {
                path: name.clone(),
                why: e.to_string(),
            })?;
        let start = (first.len() + line.len()) as u64;
        let (mut index, ending) = build_index(&mut reader, start, &name)?;
        index.packets.shrink_to_fit();
        index.messages.shrink_to_fit();
        for v in &mut index.by_topic {
            v.shrink_to_fit();
        }
        Ok(CaptureFile {
            path: path.to_path_buf(),
            file,
            header,
            start,
            index,
            ending,
            size,
            flows: std::sync::OnceLock::new(),
        })
    }

    /// Sets the flows linked over the whole capture (once; the loader does
    /// it after its pass over every packet).
    pub fn set_flow_index(&self, index: super::flow_index::FlowIndex) {
        let _ = self.flows.set(index);
    }

    /// The flows linked over the whole capture, once the loader is done.
    pub fn flow_index(&self) -> Option<&super::flow_index::FlowIndex> {
        self.flows.get()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Indexes what was appended since the capture was opened (or last
    /// refreshed): a capture that is still being recorded — a long live
    /// session written to disk — can be paged through as it grows. Returns
    /// how many records were added. A record cut off at the end is taken as
    /// not written yet and read on a later refresh.
    pub fn refresh(&mut self) -> Result<u64, CaptureError> {
        if matches!(self.ending, Ending::Closed(_) | Ending::Corrupt { .. }) {
            return Ok(0);
        }
        let name = self.path.display().to_string();
        let io_err = |source| CaptureError::Io {
            path: name.clone(),
            source,
        };
        let before = self.record_count();
        let mut reader = BufReader::with_capacity(1 << 20, self.file.try_clone().map_err(io_err)?);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(self.index.end)).map_err(io_err)?;
        self.ending = extend_index(&mut reader, &mut self.index, &name)?;
        self.size = self.file.metadata().map_err(io_err)?.len();
        Ok(self.record_count() - before)
    }

    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    pub fn ending(&self) -> &Ending {
        &self.ending
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A sentence for the user when the file did not end cleanly.
    pub fn notice(&self) -> Option<String> {
        let n = self.record_count();
        match &self.ending {
            Ending::Closed(_) => None,
            Ending::Unfinished => Some(format!(
                "the recording was not closed (mqscope stopped while recording): read all {n} records it holds"
            )),
            Ending::Truncated { tail_bytes } => Some(format!(
                "capture ends abruptly after {n} records: the last {tail_bytes} bytes are part of a record that was never finished, and are skipped"
            )),
            Ending::Corrupt { offset, why } => Some(format!(
                "capture is damaged at byte {offset} ({why}): read the {n} records before it, the remaining {} bytes are skipped",
                self.size.saturating_sub(*offset)
            )),
        }
    }

    /// Records read: packets, messages and other events.
    pub fn record_count(&self) -> u64 {
        self.index.packets.len() as u64
            + self.index.messages.len() as u64
            + self.index.events
            + self.index.unknown
    }

    pub fn packet_count(&self) -> usize {
        self.index.packets.len()
    }

    pub fn message_count(&self) -> usize {
        self.index.messages.len()
    }

    /// Records of a type this mqscope does not know (a newer writer): skipped.
    pub fn unknown_records(&self) -> u64 {
        self.index.unknown
    }

    /// Bytes of all payloads.
    pub fn payload_bytes(&self) -> u64 {
        self.index.payload_bytes
    }

    /// The worker clock (µs) of the first and last record.
    pub fn time_span(&self) -> Option<(u64, u64)> {
        self.index
            .first_t_us
            .map(|first| (first, self.index.last_t_us))
    }

    /// The distinct topics of the messages, in order of first appearance.
    pub fn topics(&self) -> &[String] {
        &self.index.topics
    }

    /// Messages on exactly this topic.
    pub fn topic_message_count(&self, topic: &str) -> usize {
        self.index
            .topic_ids
            .get(topic)
            .map_or(0, |&id| self.index.by_topic[id as usize].len())
    }

    /// Bytes the index holds in memory (an estimate, for the bench and the UI).
    pub fn index_memory(&self) -> usize {
        let i = &self.index;
        i.packets.capacity() * std::mem::size_of::<PacketEntry>()
            + i.messages.capacity() * std::mem::size_of::<MessageEntry>()
            + i.by_topic
                .iter()
                .map(|v| v.capacity() * 4 + 24)
                .sum::<usize>()
            + i.topics
                .iter()
                .map(|t| 2 * (t.capacity() + 24) + 16)
                .sum::<usize>()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), CaptureError> {
        read_exact_at(&self.file, buf, offset).map_err(|source| CaptureError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }

    fn record_at(&self, offset: u64) -> Result<(u64, CaptureRecord), CaptureError> {
        let mut head = [0u8; FRAME_HEAD];
        self.read_at(offset, &mut head)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let bad = |why: String| CaptureError::Record {
            path: self.path.display().to_string(),
            offset,
            why,
        };
        if len > MAX_RECORD || offset + (FRAME_HEAD + len) as u64 > self.index.end {
            return Err(bad("its length runs past the end of the capture".into()));
        }
        let mut body = vec![0u8; len];
        self.read_at(offset + FRAME_HEAD as u64, &mut body)?;
        if crc32fast::hash(&body) != crc {
            return Err(bad("it changed since the capture was opened".into()));
        }
        decode_body(&body).map_err(bad)
    }

    /// The packet record at position `i` of the capture's packets.
    pub fn packet(&self, i: usize) -> Result<PacketRecord, CaptureError> {
        let Some(e) = self.index.packets.get(i) else {
            return Err(self.out_of_range("packet", i, self.index.packets.len()));
        };
        match self.record_at(e.offset)? {
            (_, CaptureRecord::Packet(p)) => Ok(p),
            _ => Err(self.changed(e.offset)),
        }
    }

    /// Packet records in `range` (clamped to what the capture holds), read
    /// from disk: a timeline pages through millions of them this way.
    pub fn packets(&self, range: Range<usize>) -> Result<Vec<PacketRecord>, CaptureError> {
        let end = range.end.min(self.index.packets.len());
        (range.start.min(end)..end)
            .map(|i| self.packet(i))
            .collect()
    }

    /// The worker-clock time of packet `i`, without reading the file.
    pub fn packet_time(&self, i: usize) -> Option<u64> {
        self.index.packets.get(i).map(|e| e.t_us)
    }

    /// What the index knows about message `i`, without reading the file.
    pub fn message_info(&self, i: u32) -> Option<MessageInfo<'_>> {
        let e = self.index.messages.get(i as usize)?;
        Some(MessageInfo {
            index: i,
            topic: &self.index.topics[e.topic as usize],
            topic_id: e.topic,
            t_us: e.t_us,
            payload_len: e.payload_len as usize,
            retain: e.retain,
            packet_seq: (e.packet_seq != u64::MAX).then_some(e.packet_seq),
        })
    }

    /// Message `i` of the capture, payload included.
    pub fn message(&self, i: u32) -> Result<Message, CaptureError> {
        self.message_head(i, usize::MAX)
    }

    /// Message `i` with at most the first `max` bytes of its payload (a
    /// history row's preview; its length is in [`Self::message_info`]).
    pub fn message_head(&self, i: u32, max: usize) -> Result<Message, CaptureError> {
        let Some(e) = self.index.messages.get(i as usize).copied() else {
            return Err(self.out_of_range("message", i as usize, self.index.messages.len()));
        };
        let meta_at = e.offset + (FRAME_HEAD + BODY_HEAD) as u64;
        let mut buf = vec![0u8; e.meta_len as usize + (e.payload_len as usize).min(max)];
        self.read_at(meta_at, &mut buf)?;
        let payload = bytes::Bytes::copy_from_slice(&buf[e.meta_len as usize..]);
        buf.truncate(e.meta_len as usize);
        let bad = |why: String| CaptureError::Record {
            path: self.path.display().to_string(),
            offset: e.offset,
            why,
        };
        decode_message_meta(&buf)
            .and_then(|m| m.with_payload(payload))
            .map_err(bad)
    }

    /// The payload of message `i`, read on demand.
    pub fn payload(&self, i: u32) -> Result<Vec<u8>, CaptureError> {
        let Some(e) = self.index.messages.get(i as usize).copied() else {
            return Err(self.out_of_range("message", i as usize, self.index.messages.len()));
        };
        let at = e.offset + (FRAME_HEAD + BODY_HEAD) as u64 + e.meta_len as u64;
        let mut buf = vec![0u8; e.payload_len as usize];
        self.read_at(at, &mut buf)?;
        Ok(buf)
    }

    /// The first `max` bytes of the payload of message `i` (a preview).
    pub fn payload_prefix(&self, i: u32, max: usize) -> Result<Vec<u8>, CaptureError> {
        let Some(e) = self.index.messages.get(i as usize).copied() else {
            return Err(self.out_of_range("message", i as usize, self.index.messages.len()));
        };
        let at = e.offset + (FRAME_HEAD + BODY_HEAD) as u64 + e.meta_len as u64;
        let mut buf = vec![0u8; (e.payload_len as usize).min(max)];
        self.read_at(at, &mut buf)?;
        Ok(buf)
    }

    /// The message carried by the PUBLISH record with this sequence number
    /// (the link a Store's history item keeps), to read a payload the Store
    /// no longer holds.
    pub fn message_by_packet_seq(&self, seq: u64) -> Option<u32> {
        let m = &self.index.messages;
        if self.index.seq_unsorted {
            return m.iter().position(|e| e.packet_seq == seq).map(|i| i as u32);
        }
        let i = m.partition_point(|e| e.packet_seq < seq);
        (m.get(i)?.packet_seq == seq).then_some(i as u32)
    }

    /// Message numbers on exactly `topic`, oldest first.
    pub fn message_ids_of(&self, topic: &str) -> &[u32] {
        self.index
            .topic_ids
            .get(topic)
            .map_or(&[], |&id| &self.index.by_topic[id as usize])
    }

    /// The messages on `topic` in `range` of that topic's messages (oldest
    /// first), payloads included: an inspector's history page.
    pub fn messages_of(
        &self,
        topic: &str,
        range: Range<usize>,
    ) -> Result<Vec<(u32, Message)>, CaptureError> {
        let ids = self.message_ids_of(topic);
        let end = range.end.min(ids.len());
        ids[range.start.min(end)..end]
            .iter()
            .map(|&i| self.message(i).map(|m| (i, m)))
            .collect()
    }

    /// All records again, as the events a live connection produced, read
    /// sequentially in batches (see [`EventReader::next_batch`]).
    pub fn events(&self) -> Result<EventReader, CaptureError> {
        let file = self.file.try_clone().map_err(|source| CaptureError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(self.start)).map_err(|source| {
            CaptureError::Io {
                path: self.path.display().to_string(),
                source,
            }
        })?;
        Ok(EventReader {
            reader,
            offset: self.start,
            end: self.index.end,
            path: self.path.display().to_string(),
            body: Vec::new(),
        })
    }

    fn out_of_range(&self, what: &str, i: usize, n: usize) -> CaptureError {
        CaptureError::Record {
            path: self.path.display().to_string(),
            offset: 0,
            why: format!("there is no {what} {i} (the capture holds {n})"),
        }
    }

    fn changed(&self, offset: u64) -> CaptureError {
        CaptureError::Record {
            path: self.path.display().to_string(),
            offset,
            why: "it is not the record the index expected: the file changed since it was opened"
                .into(),
        }
    }
}

/// Reads the records of a capture in order, as events.
pub struct EventReader {
    reader: BufReader<File>,
    offset: u64,
    end: u64,
    path: String,
    body: Vec<u8>,
}

impl EventReader {
    /// The next events: at most `max_events`, and stopping after the one
    /// that brings the payload bytes read in this batch past `max_bytes`.
    /// `Ok(None)` at the end of the capture.
    pub fn next_batch(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Option<Vec<EventKind>>, CaptureError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_events.max(1) && bytes <= max_bytes && self.offset < self.end {
            let Some((_, record)) = self.next_record()? else {
                break;
            };
            match record {
                CaptureRecord::Packet(p) => out.push(EventKind::Packet(p)),
                CaptureRecord::Message(m) => {
                    bytes += m.payload.len() + m.topic.len();
                    out.push(EventKind::Message(m))
                }
                CaptureRecord::Event(e) => out.push(e),
                CaptureRecord::End(_) | CaptureRecord::Unknown(_) => {}
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// The next record with its worker-clock time, `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<(u64, CaptureRecord)>, CaptureError> {
        if self.offset >= self.end {
            return Ok(None);
        }
        let at = self.offset;
        let Some(len) = read_frame(&mut self.reader, &mut self.body).map_err(|e| match e {
            FrameError::Io(source) => CaptureError::Io {
                path: self.path.clone(),
                source,
            },
            other => CaptureError::Record {
                path: self.path.clone(),
                offset: at,
                why: other.to_string(),
            },
        })?
        else {
            return Ok(None);
        };
        self.offset += len as u64;
        decode_body(&self.body)
            .map(Some)
            .map_err(|why| CaptureError::Record {
                path: self.path.clone(),
                offset: at,
                why,
            })
    }
}

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("{0}")]
    Io(io::Error),
    #[error("cut off after {0} bytes")]
    Truncated(u64),
    /// The reason, and whether the bytes read end in a zero (the start of
    /// a zero-filled tail, if the rest of the file is zeros too).
    #[error("{0}")]
    Corrupt(String, bool),
}

/// Reads one frame into `body`; returns its whole length, `None` at a clean
/// end of file.
fn read_frame(r: &mut impl Read, body: &mut Vec<u8>) -> Result<Option<usize>, FrameError> {
    let mut head = [0u8; FRAME_HEAD];
    let got = read_full(r, &mut head).map_err(FrameError::Io)?;
    if got == 0 {
        return Ok(None);
    }
    if got < FRAME_HEAD {
        return Err(FrameError::Truncated(got as u64));
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(BODY_HEAD..=MAX_RECORD).contains(&len) {
        return Err(FrameError::Corrupt(
            format!("a record length of {len} bytes is impossible"),
            head[FRAME_HEAD - 1] == 0,
        ));
    }
    body.clear();
    body.resize(len, 0);
    let got = read_full(r, body).map_err(FrameError::Io)?;
    if got < len {
        return Err(FrameError::Truncated((FRAME_HEAD + got) as u64));
    }
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Corrupt(
            "checksum mismatch".into(),
            body.last() == Some(&0),
        ));
    }
    Ok(Some(FRAME_HEAD + len))
}

/// Like `read_exact`, but says how much it got before the end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn build_index(
    reader: &mut BufReader<File>,
    start: u64,
    path: &str,
) -> Result<(Index, Ending), CaptureError> {
    let mut index = Index {
        end: start,
        ..Index::default()
    };
    let ending = extend_index(reader, &mut index, path)?;
    Ok((index, ending))
}

/// Indexes the records from `index.end` (where `reader` stands) on.
fn extend_index(
    reader: &mut BufReader<File>,
    index: &mut Index,
    path: &str,
) -> Result<Ending, CaptureError> {
    let mut body = Vec::new();
    let mut offset = index.end;
    let mut ending = Ending::Unfinished;
    loop {
        let len = match read_frame(reader, &mut body) {
            Ok(Some(len)) => len,
            Ok(None) => break,
            Err(FrameError::Io(source)) => {
                return Err(CaptureError::Io {
                    path: path.into(),
                    source,
                });
            }
            Err(FrameError::Truncated(tail_bytes)) => {
                ending = Ending::Truncated { tail_bytes };
                break;
            }
            Err(FrameError::Corrupt(why, ends_in_zero)) => {
                // Zeros from here to the end: the file system kept the
                // length of a file whose last writes never reached the disk
                // (a crash), rather than damage.
                ending = if ends_in_zero && rest_is_zeros(reader) {
                    Ending::Truncated {
                        tail_bytes: reader_len(reader).saturating_sub(offset),
                    }
                } else {
                    Ending::Corrupt { offset, why }
                };
                break;
            }
        };
        let tag = body[0];
        let t_us = u64::from_le_bytes(body[1..9].try_into().unwrap_or_default());
        let meta_len = u32::from_le_bytes(body[9..13].try_into().unwrap_or_default()) as usize;
        if meta_len > len - FRAME_HEAD - BODY_HEAD {
            ending = Ending::Corrupt {
                offset,
                why: "meta data longer than its record".into(),
            };
            break;
        }
        match tag {
            TAG_PACKET => index.packets.push(PacketEntry { offset, t_us }),
            TAG_MESSAGE => {
                let meta = &body[BODY_HEAD..BODY_HEAD + meta_len];
                let m: CapMessageTopic = match rmp_serde::from_slice(meta) {
                    Ok(m) => m,
                    Err(e) => {
                        ending = Ending::Corrupt {
                            offset,
                            why: format!("unreadable message: {e}"),
                        };
                        break;
                    }
                };
                let topic = match index.topic_ids.get(m.topic.as_ref()) {
                    Some(&id) => id,
                    None => {
                        let id = index.topics.len() as u32;
                        index.topics.push(m.topic.to_string());
                        index.topic_ids.insert(m.topic.to_string(), id);
                        index.by_topic.push(Vec::new());
                        id
                    }
                };
                let n = index.messages.len() as u32;
                let seq = m.packet_seq.unwrap_or(u64::MAX);
                if index.messages.last().is_some_and(|e| e.packet_seq > seq) {
                    index.seq_unsorted = true;
                }
                index.by_topic[topic as usize].push(n);
                let payload_len = (len - FRAME_HEAD - BODY_HEAD - meta_len) as u32;
                index.payload_bytes += payload_len as u64;
                index.messages.push(MessageEntry {
                    offset,
                    t_us,
                    packet_seq: seq,
                    payload_len,
                    meta_len: meta_len as u32,
                    topic,
                    retain: m.retain,
                });
            }
            TAG_EVENT => index.events += 1,
            TAG_END => {
                let totals = decode_body(&body).ok().and_then(|(_, r)| match r {
                    CaptureRecord::End(t) => Some(t),
                    _ => None,
                });
                ending = Ending::Closed(totals.unwrap_or_default());
            }
            _ => index.unknown += 1,
        }
        if tag != TAG_END {
            index.first_t_us.get_or_insert(t_us);
            index.last_t_us = index.last_t_us.max(t_us);
            if !matches!(ending, Ending::Unfinished) {
                // Records after an end record: a recording appended later.
                ending = Ending::Unfinished;
            }
        }
        offset += len as u64;
        index.end = offset;
    }
    Ok(ending)
}

/// True when nothing but zero bytes is left to read.
fn rest_is_zeros(reader: &mut BufReader<File>) -> bool {
    let mut buf = [0u8; 1 << 16];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) if buf[..n].iter().all(|&b| b == 0) => {}
            _ => return false,
        }
    }
}

fn reader_len(reader: &BufReader<File>) -> u64 {
    reader.get_ref().metadata().map_or(0, |m| m.len())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
