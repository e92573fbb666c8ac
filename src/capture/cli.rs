//! `mqscope read FILE` and `mqscope export FILE`: pcap files and mqscope
//! captures from the command line.

use super::decode::Decoded;
use super::export::{ExportError, Exporter, Format, PcapExport, export_pcap};
use super::flow_index::{FlowCounts, FlowTracker};
use super::pcap::{Capture, ReadOptions, Sink, StreamInfo, StreamKind, Summary, read_file};
use crate::model::packet::{Direction, PacketKind, PacketRecord};
use crate::model::protocol::ProtocolVersion;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        "mqttv311" | "311" => Ok(ProtocolVersion::V311),
        other => Err(format!(
            "unknown protocol version '{other}': use mqttv5, 5, mqttv311 or 311"
        )),
    }
}

/// Where to find MQTT in a pcap.
#[derive(Args, Debug, Clone, Default)]
pub struct FindArgs {
    /// Decode TCP streams to or from this port as MQTT (that side is the
    /// broker), also when they show no CONNECT. Without it, streams are
    /// found by content: a CONNECT at the start.
    #[arg(long)]
    pub port: Option<u16>,
    /// Protocol of streams found by --port that show no CONNECT: mqttv5 (5)
    /// or mqttv311 (311, the default).
    #[arg(short = 'V', long = "protocol-version", value_parser = parse_protocol)]
    pub protocol: Option<ProtocolVersion>,
}

impl FindArgs {
    fn options(&self) -> ReadOptions {
        ReadOptions {
            port: self.port,
            protocol: self.protocol,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    /// A pcap or pcapng file (tcpdump -w, dumpcap, Wireshark), or an
    /// mqscope capture (`mqscope record`).
    pub file: PathBuf,
    /// Print every MQTT packet as a JSON line (the same as a live --trace),
    /// with "client" and "broker" (IP:PORT) to tell the streams apart.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub find: FindArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// A pcap or pcapng file, or an mqscope capture.
    pub file: PathBuf,
    /// csv or jsonl (JSON Lines).
    #[arg(long)]
    pub format: Format,
    /// Only messages on topics matching this filter (repeatable).
    #[arg(short = 't', long = "topic")]
    pub topics: Vec<String>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub find: FindArgs,
}

/// A trace line: the live record plus the stream's endpoints.
#[derive(Serialize)]
struct TraceLine<'a> {
    client: &'a str,
    broker: &'a str,
    #[serde(flatten)]
    record: &'a PacketRecord,
}

struct TraceSink<W: Write> {
    out: W,
    endpoints: Vec<(String, String)>,
    error: Option<std::io::Error>,
}

impl<W: Write> Sink for TraceSink<W> {
    fn packet(&mut self, stream: &StreamInfo, d: Decoded) {
        if self.error.is_some() {
            return;
        }
        while self.endpoints.len() <= stream.id {
            self.endpoints.push((String::new(), String::new()));
        }
        let ends = &mut self.endpoints[stream.id];
        if ends.0.is_empty() {
            *ends = (stream.client_text(), stream.broker_text());
        }
        let line = TraceLine {
            client: &ends.0,
            broker: &ends.1,
            record: &d.record,
        };
        let written = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::other)
            .and_then(|_| self.out.write_all(b"\n"));
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    fn done(&self) -> bool {
        self.error.is_some()
    }
}

/// Runs `mqscope read`; returns the exit code.
pub fn run_read(args: ReadArgs) -> i32 {
    match read(&args) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("mqscope read: {msg}");
            1
        }
    }
}

fn read(args: &ReadArgs) -> Result<(), String> {
    if super::file::is_capture(&args.file) {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        return super::file_cli::read_capture(&args.file, args.trace, &mut out);
    }
    let options = args.find.options();
    if args.trace {
        let stdout = std::io::stdout();
        let mut sink = TraceSink {
            out: std::io::BufWriter::with_capacity(1 << 16, stdout.lock()),
            endpoints: Vec::new(),
            error: None,
        };
        let summary = read_file(&args.file, options, &mut sink).map_err(|e| e.to_string())?;
        if let Some(e) = sink.error.take() {
            // Standard output closed (e.g. piped into `head`): stop quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(format!("cannot write the trace: {e}"));
        }
        sink.out.flush().map_err(|e| e.to_string())?;
        for s in &summary.streams {
            for p in &s.problems {
                eprintln!(
                    "mqscope read: stream {} ({} → {}): {p}",
                    s.id + 1,
                    s.client,
                    s.broker
                );
            }
        }
        return Ok(());
    }
    // Streaming: per stream only counts, topic names and the flows still
    // waiting are kept, whatever the size of the file.
    let mut report = ReadReport::default();
    let summary = read_file(&args.file, options, &mut report).map_err(|e| e.to_string())?;
    let text = report_text(&args.file.display().to_string(), &summary, &mut report);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// What `mqscope read` reports of one stream, counted as it is read.
#[derive(Default)]
struct StreamReport {
    client_id: Option<String>,
    packets: usize,
    sent: usize,
    kinds: BTreeMap<&'static str, usize>,
    messages: usize,
    published: usize,
    topics: BTreeMap<String, usize>,
    flows: Option<FlowTracker>,
}

/// The [`Sink`] behind `mqscope read`'s summary.
#[derive(Default)]
pub struct ReadReport {
    streams: Vec<StreamReport>,
}

impl ReadReport {
    fn add(
        &mut self,
        id: usize,
        record: &PacketRecord,
        message: Option<&crate::model::protocol::Message>,
    ) {
        while self.streams.len() <= id {
            self.streams.push(StreamReport::default());
        }
        let s = &mut self.streams[id];
        if s.client_id.is_none() && record.kind == PacketKind::Connect {
            s.client_id = record.detail.client_id.clone();
        }
        s.packets += 1;
        if record.dir == Direction::Out {
            s.sent += 1;
        }
        *s.kinds.entry(record.kind.name()).or_default() += 1;
        s.flows
            .get_or_insert_with(|| FlowTracker::new(false))
            .packet(record);
        if let Some(m) = message {
            s.messages += 1;
            if record.dir == Direction::Out {
                s.published += 1;
            }
            match s.topics.get_mut(m.topic.as_str()) {
                Some(n) => *n += 1,
                None => {
                    s.topics.insert(m.topic.clone(), 1);
                }
            }
        }
    }
}

impl Sink for ReadReport {
    fn packet(&mut self, stream: &StreamInfo, d: Decoded) {
        self.add(stream.id, &d.record, d.message.as_ref());
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The per-stream report of `mqscope read` without --trace, of a capture
/// read whole.
pub fn summary_text(name: &str, c: &Capture) -> String {
    let mut report = ReadReport::default();
    for stream in &c.streams {
        let mut messages = stream.messages.iter().peekable();
        for (i, r) in stream.records.iter().enumerate() {
            let message = messages.next_if(|m| m.packet_seq == Some(i as u64));
            report.add(stream.info.id, r, message);
        }
    }
    let summary = Summary {
        streams: c.streams.iter().map(|s| s.info.clone()).collect(),
        frames: c.frames,
        not_tcp: c.not_tcp,
        unreadable: c.unreadable,
        other_tcp: c.other_tcp,
    };
    report_text(name, &summary, &mut report)
}

/// The per-stream report of `mqscope read` without --trace.
fn report_text(name: &str, c: &Summary, report: &mut ReadReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mqtt = c
        .streams
        .iter()
        .filter(|x| matches!(x.kind, StreamKind::Mqtt(_)))
        .count();
    let encrypted = c
        .streams
        .iter()
        .filter(|x| x.kind == StreamKind::Encrypted)
        .count();
    let _ = writeln!(
        s,
        "{name}: {}, {}, {}, {} other TCP",
        plural(c.frames as usize, "frame", "frames"),
        plural(mqtt, "MQTT stream", "MQTT streams"),
        plural(encrypted, "encrypted stream", "encrypted streams"),
        plural(c.other_tcp as usize, "connection", "connections"),
    );
    if c.unreadable > 0 {
        let _ = writeln!(
            s,
            "  {} could not be read (cut by the snap length, IP fragments or corrupt headers)",
            plural(c.unreadable as usize, "frame", "frames")
        );
    }
    for info in &c.streams {
        let mut empty = StreamReport::default();
        let stream = report.streams.get_mut(info.id).unwrap_or(&mut empty);
        stream_text(&mut s, info, stream);
    }
    if c.streams.is_empty() {
        let _ = writeln!(
            s,
            "no MQTT found: no TCP stream starts with a CONNECT (use --port PORT if the capture starts mid-connection)"
        );
    }
    s
}

fn stream_text(s: &mut String, i: &StreamInfo, stream: &mut StreamReport) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "stream {}: client {} → broker {}, {}{}{}",
        i.id + 1,
        i.client,
        i.broker,
        i.kind.label(),
        stream
            .client_id
            .as_ref()
            .map(|c| format!(", client id \"{c}\""))
            .unwrap_or_default(),
        if i.closed {
            ", closed"
        } else {
            ", still open at the end"
        }
    );
    let duration = i.last_us.saturating_sub(i.first_us) as f64 / 1e6;
    if !matches!(i.kind, StreamKind::Mqtt(_)) {
        let _ = writeln!(
            s,
            "  {} bytes from the client, {} from the broker over {duration:.3} s: not decoded",
            i.client_tcp.bytes, i.broker_tcp.bytes
        );
        return;
    }
    let kinds: Vec<String> = stream
        .kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        s,
        "  packets: {} ({} from the client, {} from the broker) over {duration:.3} s: {}",
        stream.packets,
        stream.sent,
        stream.packets - stream.sent,
        kinds.join(", ")
    );
    let topics = &stream.topics;
    let mut shown: Vec<String> = topics
        .iter()
        .take(10)
        .map(|(t, n)| format!("{t} ({n})"))
        .collect();
    if topics.len() > 10 {
        shown.push(format!("and {} more", topics.len() - 10));
    }
    let _ = writeln!(
        s,
        "  messages: {} ({} published by the client, {} delivered by the broker) on {}{}{}",
        stream.messages,
        stream.published,
        stream.messages - stream.published,
        plural(topics.len(), "topic", "topics"),
        if shown.is_empty() { "" } else { ": " },
        shown.join(", ")
    );
    let counts = match stream.flows.as_mut() {
        Some(f) => {
            if i.closed {
                // The connection ended: what still waited never completes.
                f.connection_dropped();
            }
            f.counts()
        }
        None => FlowCounts::default(),
    };
    let open_flows: Vec<String> = counts
        .open
        .iter()
        .map(|(kind, pkid, missing)| {
            format!(
                "{}{} without its {}",
                kind.label(),
                pkid.map(|p| format!(" (packet id {p})"))
                    .unwrap_or_default(),
                missing.name()
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "  flows: {} complete, {} incomplete, {} still waiting at the end, {} refused{}{}",
        counts.complete,
        counts.incomplete,
        counts.waiting,
        counts.refused,
        if open_flows.is_empty() { "" } else { ": " },
        open_flows.join("; ")
    );
    let t = |x: &super::tcp::TcpStats| x.retransmitted;
    let _ = writeln!(
        s,
        "  tcp: {} split across segments, {} segments held several packets, {} retransmitted and {} out-of-order segments",
        plural(
            (i.client_frames.split_packets + i.broker_frames.split_packets) as usize,
            "packet",
            "packets"
        ),
        i.client_frames.shared_segments + i.broker_frames.shared_segments,
        t(&i.client_tcp) + t(&i.broker_tcp),
        i.client_tcp.out_of_order + i.broker_tcp.out_of_order,
    );
    for p in &i.problems {
        let _ = writeln!(s, "  problem: {p}");
    }
}

/// Runs `mqscope export`; returns the exit code.
pub fn run_export(args: ExportArgs) -> i32 {
    match export(&args) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("mqscope export: {msg}");
            1
        }
    }
}

fn export(args: &ExportArgs) -> Result<(), String> {
    for t in &args.topics {
        crate::profile::validate_topic_filter(t)
            .map_err(|why| format!("invalid topic filter '{t}': {why}"))?;
    }
    if super::file::is_capture(&args.file) {
        return export_from_capture(args);
    }
    let options = args.find.options();
    let result: Result<PcapExport, String> = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut ex = Exporter::new(file, args.format, true)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let done = export_pcap(&args.file, options, &args.topics, &mut ex);
            let rows = ex
                .finish()
                .map_err(|e| format!("cannot write {}: {e}", path.display()));
            let done = match done {
                Ok(done) => done,
                Err(e) => {
                    // Nothing useful was written: leave no half file behind.
                    let _ = std::fs::remove_file(path);
                    return Err(describe(e));
                }
            };
            let rows = rows?;
            eprintln!(
                "mqscope export: {} from {} written to {}",
                plural(rows as usize, "message", "messages"),
                plural(done.streams.len(), "stream", "streams"),
                path.display()
            );
            Ok(done)
        }
        None => {
            let stdout = std::io::stdout();
            let mut ex = Exporter::new(stdout.lock(), args.format, true)
                .map_err(|e| format!("cannot write: {e}"))?;
            let done = export_pcap(&args.file, options, &args.topics, &mut ex);
            let flushed = ex.finish();
            match (done, flushed) {
                (Err(ExportError::Write(e)), _) | (Ok(_), Err(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Ok(());
                }
                (done, flushed) => {
                    let done = done.map_err(describe)?;
                    flushed.map_err(|e| format!("cannot write: {e}"))?;
                    Ok(done)
                }
            }
        }
    };
    let done = result?;
    for s in &done.streams {
        for p in &s.problems {
            eprintln!(
                "mqscope export: stream {} ({} → {}): {p}",
                s.id + 1,
                s.client,
                s.broker
            );
        }
    }
    Ok(())
}

/// `mqscope export CAPTURE`: the capture's messages, with its client id and
/// broker in the origin columns (every message went broker → client).
fn export_from_capture(args: &ExportArgs) -> Result<(), String> {
    use super::file_cli::{ExportCaptureError, export_capture};
    let notice = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut ex = Exporter::new(file, args.format, true)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let done = export_capture(&args.file, &args.topics, &mut ex);
            let rows = ex.finish();
            let notice = match done {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(path);
                    return Err(match e {
                        ExportCaptureError::Read(why) => why,
                        ExportCaptureError::Write(e) => {
                            format!("cannot write {}: {e}", path.display())
                        }
                    });
                }
            };
            let rows = rows.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "mqscope export: {} written to {}",
                plural(rows as usize, "message", "messages"),
                path.display()
            );
            notice
        }
        None => {
            let stdout = std::io::stdout();
            let mut ex = Exporter::new(stdout.lock(), args.format, true)
                .map_err(|e| format!("cannot write: {e}"))?;
            let done = export_capture(&args.file, &args.topics, &mut ex);
            let flushed = ex.finish();
            match (done, flushed) {
                (Err(ExportCaptureError::Write(e)), _) | (Ok(_), Err(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Ok(());
                }
                (Err(ExportCaptureError::Read(why)), _) => return Err(why),
                (Err(ExportCaptureError::Write(e)), _) | (Ok(_), Err(e)) => {
                    return Err(format!("cannot write: {e}"));
                }
                (Ok(notice), Ok(_)) => notice,
            }
        }
    };
    if let Some(n) = notice {
        eprintln!("mqscope export: {}: {n}", args.file.display());
    }
    Ok(())
}

fn describe(e: ExportError) -> String {
    e.to_string()
}
