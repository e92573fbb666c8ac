//! `mqscope read` and `mqscope export` on an mqscope capture (the same
//! commands take pcap files; `cli` tells them apart by the first bytes).

use super::export::{Exporter, Origin, Row};
use super::file::CaptureFile;
use super::format::CaptureRecord;
use crate::model::packet::{Direction, PacketKind};
use crate::model::topic;
use crate::mqtt::{ConnStatus, EventKind};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The report of `mqscope read CAPTURE`, or with `trace`, every packet
/// record as a JSON line (the same as a live `--trace`) to `out`. The
/// notice about a damaged or unfinished file goes to stderr.
pub fn read_capture(path: &Path, trace: bool, out: &mut impl Write) -> Result<(), String> {
    let capture = CaptureFile::open(path).map_err(|e| e.to_string())?;
    let mut events = capture.events().map_err(|e| e.to_string())?;
    if trace {
        while let Some((_, record)) = events.next_record().map_err(|e| e.to_string())? {
            if let CaptureRecord::Packet(p) = record {
                let line = serde_json::to_string(&p).map_err(|e| e.to_string())?;
                if writeln!(out, "{line}").is_err() {
                    // Standard output closed (piped into `head`): stop quietly.
                    return Ok(());
                }
            }
        }
        out.flush().ok();
        if let Some(n) = capture.notice() {
            eprintln!("mqscope read: {}: {n}", path.display());
        }
        return Ok(());
    }
    let h = capture.header();
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut from_client, mut packet_bytes) = (0u64, 0u64);
    let mut topics: BTreeMap<String, u64> = BTreeMap::new();
    let (mut retained, mut connects, mut drops, mut errors) = (0u64, 0u64, 0u64, Vec::new());
    let mut refused_publishes = 0u64;
    while let Some((_, record)) = events.next_record().map_err(|e| e.to_string())? {
        match record {
            CaptureRecord::Packet(p) => {
                *kinds.entry(p.kind.name()).or_default() += 1;
                packet_bytes += p.bytes as u64;
                if p.dir == Direction::Out {
                    from_client += 1;
                }
                if p.kind == PacketKind::Connack && p.detail.failure().is_none() {
                    connects += 1;
                }
            }
            CaptureRecord::Message(m) => {
                if m.retain {
                    retained += 1;
                }
                match topics.get_mut(&m.topic) {
                    Some(n) => *n += 1,
                    None => {
                        topics.insert(m.topic, 1);
                    }
                }
            }
            CaptureRecord::Event(EventKind::Status(ConnStatus::Reconnecting { .. })) => drops += 1,
            CaptureRecord::Event(EventKind::Error(e)) if errors.len() < 10 => errors.push(e),
            CaptureRecord::Event(EventKind::Published {
                outcome: crate::mqtt::PublishOutcome::Failed(_),
                ..
            }) => refused_publishes += 1,
            _ => {}
        }
    }
    let mut s = String::new();
    use std::fmt::Write as _;
    let span = capture
        .time_span()
        .map_or(0.0, |(a, b)| (b - a) as f64 / 1e6);
    let _ = writeln!(
        s,
        "{}: mqscope capture (format {}) written by mqscope {}, {} to {}, client id \"{}\", started {}",
        path.display(),
        h.format,
        h.mqscope,
        h.protocol,
        h.broker,
        h.client_id,
        h.started
    );
    let _ = writeln!(
        s,
        "  {} over {span:.3} s, {} bytes on disk{}",
        plural(capture.record_count(), "record", "records"),
        capture.size(),
        match capture.ending() {
            super::file::Ending::Closed(_) => ", closed properly",
            _ => "",
        }
    );
    if !h.filters.is_empty() {
        let _ = writeln!(s, "  subscribed to: {}", h.filters.join(", "));
    }
    let total_packets = capture.packet_count() as u64;
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        s,
        "  packets: {} ({} from the client, {} from the broker, {packet_bytes} bytes on the wire): {}",
        total_packets,
        from_client,
        total_packets - from_client,
        kinds.join(", ")
    );
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
        "  messages: {} ({retained} retained, {} bytes of payload) on {}{}{}",
        capture.message_count(),
        capture.payload_bytes(),
        plural(topics.len() as u64, "topic", "topics"),
        if shown.is_empty() { "" } else { ": " },
        shown.join(", ")
    );
    let _ = writeln!(
        s,
        "  connection: {}, lost {}, {} refused publishes",
        plural(connects, "CONNACK accepted", "CONNACKs accepted"),
        plural(drops, "time", "times"),
        refused_publishes
    );
    for e in &errors {
        let _ = writeln!(s, "  error: {e}");
    }
    if capture.unknown_records() > 0 {
        let _ = writeln!(
            s,
            "  {} of a newer mqscope skipped",
            plural(capture.unknown_records(), "record", "records")
        );
    }
    if let Some(n) = capture.notice() {
        let _ = writeln!(s, "  warning: {n}");
        eprintln!("mqscope read: {}: {n}", path.display());
    }
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Writes the capture's messages on topics matching `filters` (all when
/// empty) to `ex`; returns the capture's notice, if it is damaged.
pub fn export_capture<W: Write>(
    path: &Path,
    filters: &[String],
    ex: &mut Exporter<W>,
) -> Result<Option<String>, ExportCaptureError> {
    let capture = CaptureFile::open(path).map_err(|e| ExportCaptureError::Read(e.to_string()))?;
    let h = capture.header();
    let mut events = capture
        .events()
        .map_err(|e| ExportCaptureError::Read(e.to_string()))?;
    while let Some((_, record)) = events
        .next_record()
        .map_err(|e| ExportCaptureError::Read(e.to_string()))?
    {
        let CaptureRecord::Message(m) = record else {
            continue;
        };
        if !filters.is_empty() && !filters.iter().any(|f| topic::matches(f, &m.topic)) {
            continue;
        }
        ex.write(&Row {
            time: m.received,
            topic: &m.topic,
            qos: m.qos,
            retain: m.retain,
            size: m.payload.len(),
            payload: Some(&m.payload),
            props: m.props.as_deref(),
            origin: Some(Origin {
                client: &h.client_id,
                broker: &h.broker,
                dir: Direction::In,
            }),
        })
        .map_err(ExportCaptureError::Write)?;
    }
    Ok(capture.notice())
}

#[derive(Debug)]
pub enum ExportCaptureError {
    Read(String),
    Write(std::io::Error),
}
