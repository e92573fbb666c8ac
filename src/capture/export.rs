//! Messages out to CSV or JSON Lines, one row at a time: from a pcap as it
//! is decoded ([`export_pcap`]), or from what a connection's
//! [`Store`] holds for a subtree or a filter ([`export_store`]).
//!
//! Columns: timestamp (RFC 3339, UTC), topic, QoS, retain, size (payload
//! bytes as received), encoding (`text` when the payload is UTF-8, `base64`
//! otherwise, `evicted` when the history budget no longer holds it),
//! payload, truncated (the kept payload is shorter than `size`), and the
//! MQTT 5 properties as JSON when there are any. A pcap export adds the
//! client and broker endpoints and who sent the message.
//!
//! Rows go straight to the writer (the `csv` crate quotes commas, quotes and
//! newlines), so memory does not grow with the number of messages.

use super::decode::Decoded;
use super::pcap::{ReadError, ReadOptions, Sink, StreamInfo, read_file};
use crate::model::packet::Direction;
use crate::model::protocol::{Properties, Qos};
use crate::model::store::Store;
use crate::model::topic;
use crate::model::tree::NodeId;
use base64::Engine as _;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" | "json-lines" | "ndjson" => Ok(Format::Jsonl),
            other => Err(format!("unknown format '{other}': use csv or jsonl")),
        }
    }
}

/// Where a message of a pcap came from.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub client: &'a str,
    pub broker: &'a str,
    pub dir: Direction,
}

/// One message to write.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub time: SystemTime,
    pub topic: &'a str,
    pub qos: Qos,
    pub retain: bool,
    /// Payload size as received.
    pub size: usize,
    /// `None` when the payload is no longer kept.
    pub payload: Option<&'a [u8]>,
    pub props: Option<&'a Properties>,
    pub origin: Option<Origin<'a>>,
}

/// The JSON Lines object (and the CSV columns, in this order).
#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    topic: &'a str,
    qos: u8,
    retain: bool,
    size: usize,
    encoding: &'static str,
    payload: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a Properties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
}

const CSV_HEADER: [&str; 9] = [
    "timestamp",
    "topic",
    "qos",
    "retain",
    "size",
    "encoding",
    "payload",
    "truncated",
    "properties",
];
const CSV_ORIGIN: [&str; 3] = ["client", "broker", "direction"];

/// RFC 3339 in UTC with the fraction the clock gave (e.g.
/// `2026-12-03T10:42:07.123456Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

enum Out<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(std::io::BufWriter<W>),
}

/// A streaming writer of rows.
pub struct Exporter<W: Write> {
    out: Out<W>,
    origin: bool,
    rows: u64,
}

impl<W: Write> Exporter<W> {
    /// `origin`: add the client, broker and direction columns (pcap exports).
    pub fn new(writer: W, format: Format, origin: bool) -> std::io::Result<Exporter<W>> {
        let out = match format {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .buffer_capacity(1 << 16)
                    .from_writer(writer);
                let mut header: Vec<&str> = CSV_HEADER.to_vec();
                if origin {
                    header.extend(CSV_ORIGIN);
                }
                w.write_record(&header).map_err(csv_io)?;
                Out::Csv(Box::new(w))
            }
            Format::Jsonl => Out::Jsonl(std::io::BufWriter::with_capacity(1 << 16, writer)),
        };
        Ok(Exporter {
            out,
            origin,
            rows: 0,
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn write(&mut self, row: &Row<'_>) -> std::io::Result<()> {
        let (encoding, payload) = match row.payload {
            None => ("evicted", std::borrow::Cow::Borrowed("")),
            Some(p) => match std::str::from_utf8(p) {
                Ok(text) => ("text", std::borrow::Cow::Borrowed(text)),
                Err(_) => (
                    "base64",
                    std::borrow::Cow::Owned(base64::engine::general_purpose::STANDARD.encode(p)),
                ),
            },
        };
        let truncated = row.payload.is_some_and(|p| p.len() < row.size);
        let props = row.props.filter(|p| !p.is_empty());
        let origin = row.origin.filter(|_| self.origin);
        let line = Line {
            timestamp: rfc3339(row.time),
            topic: row.topic,
            qos: row.qos.as_u8(),
            retain: row.retain,
            size: row.size,
            encoding,
            payload,
            truncated,
            properties: props,
            client: origin.map(|o| o.client),
            broker: origin.map(|o| o.broker),
            direction: origin.map(|o| direction_name(o.dir)),
        };
        match &mut self.out {
            Out::Jsonl(w) => {
                serde_json::to_writer(&mut *w, &line).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Out::Csv(w) => {
                let props = match line.properties {
                    Some(p) => serde_json::to_string(p).map_err(std::io::Error::other)?,
                    None => String::new(),
                };
                let qos = line.qos.to_string();
                let size = line.size.to_string();
                let mut fields: Vec<&str> = vec![
                    &line.timestamp,
                    line.topic,
                    &qos,
                    bool_text(line.retain),
                    &size,
                    line.encoding,
                    &line.payload,
                    bool_text(line.truncated),
                    &props,
                ];
                if self.origin {
                    fields.push(line.client.unwrap_or(""));
                    fields.push(line.broker.unwrap_or(""));
                    fields.push(line.direction.unwrap_or(""));
                }
                w.write_record(&fields).map_err(csv_io)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Flushes; returns the number of rows written.
    pub fn finish(self) -> std::io::Result<u64> {
        match self.out {
            Out::Csv(mut w) => w.flush()?,
            Out::Jsonl(mut w) => w.flush()?,
        }
        Ok(self.rows)
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `publish` for client → broker, `deliver` for broker → client.
pub fn direction_name(dir: Direction) -> &'static str {
    match dir {
        Direction::Out => "publish",
        Direction::In => "deliver",
    }
}

fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Which messages of a Store to export.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// A topic and every topic below it (`store.root()` for all).
    Subtree(NodeId),
    /// Topics matching an MQTT filter (`+`, `#`).
    Filter(&'a str),
}

/// Writes the messages a Store keeps for `scope`, oldest first; returns how
/// many. Payloads the budget evicted are written with encoding `evicted`,
/// truncated ones with `truncated` set: nothing is left out silently.
pub fn export_store<W: Write>(
    store: &Store,
    scope: Scope<'_>,
    exporter: &mut Exporter<W>,
) -> std::io::Result<u64> {
    let tree = store.tree();
    let (start, filter) = match scope {
        Scope::Subtree(id) => (id, None),
        Scope::Filter(f) => (store.root(), Some(f)),
    };
    let mut items = Vec::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        stack.extend(tree.children_unordered(id));
        if store.topic_info(id).is_none() {
            continue;
        }
        let path = store.path(id);
        if filter.is_some_and(|f| !topic::matches(f, &path)) {
            continue;
        }
        let path: std::rc::Rc<str> = path.into();
        items.extend(store.history(id).map(|item| (path.clone(), item)));
    }
    items.sort_by_key(|(_, item)| (item.received, item.id));
    let before = exporter.rows();
    for (path, item) in &items {
        exporter.write(&Row {
            time: item.received,
            topic: path,
            qos: item.qos,
            retain: item.retain,
            size: item.size,
            payload: item.payload,
            props: item.props,
            origin: None,
        })?;
    }
    Ok(exporter.rows() - before)
}

/// What a pcap export did.
#[derive(Debug)]
pub struct PcapExport {
    pub rows: u64,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot write the export: {0}")]
    Write(std::io::Error),
}

struct PcapSink<'a, W: Write> {
    exporter: &'a mut Exporter<W>,
    filters: &'a [String],
    error: Option<std::io::Error>,
}

impl<W: Write> Sink for PcapSink<'_, W> {
    fn packet(&mut self, stream: &StreamInfo, d: Decoded) {
        let Some(m) = d.message else {
            return;
        };
        if self.error.is_some()
            || (!self.filters.is_empty()
                && !self.filters.iter().any(|f| topic::matches(f, &m.topic)))
        {
            return;
        }
        let client = stream.client_text();
        let broker = stream.broker_text();
        let row = Row {
            time: m.received,
            topic: &m.topic,
            qos: m.qos,
            retain: m.retain,
            size: m.payload.len(),
            payload: Some(&m.payload),
            props: m.props.as_deref(),
            origin: Some(Origin {
                client: &client,
                broker: &broker,
                dir: d.record.dir,
            }),
        };
        if let Err(e) = self.exporter.write(&row) {
            self.error = Some(e);
        }
    }

    fn done(&self) -> bool {
        self.error.is_some()
    }
}

/// Decodes `path` and writes every message (matching one of `filters`, or
/// all when there are none) as it comes.
pub fn export_pcap<W: Write>(
    path: &Path,
    options: ReadOptions,
    filters: &[String],
    exporter: &mut Exporter<W>,
) -> Result<PcapExport, ExportError> {
    let mut sink = PcapSink {
        exporter,
        filters,
        error: None,
    };
    let summary = read_file(path, options, &mut sink);
    if let Some(e) = sink.error.take() {
        return Err(ExportError::Write(e));
    }
    let summary = summary?;
    Ok(PcapExport {
        rows: sink.exporter.rows(),
        streams: summary.streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::protocol::Message;
    use crate::model::store::HistoryLimits;
    use std::time::{Duration, UNIX_EPOCH};

    fn row<'a>(topic: &'a str, payload: &'a [u8]) -> Row<'a> {
        Row {
            time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            topic,
            qos: Qos::AtLeastOnce,
            retain: true,
            size: payload.len(),
            payload: Some(payload),
            props: None,
            origin: None,
        }
    }

    fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
        csv::Reader::from_reader(bytes)
            .records()
            .map(|r| r.expect("valid csv").iter().map(String::from).collect())
            .collect()
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines_and_reads_back() {
        let mut buf = Vec::new();
        let mut e = Exporter::new(&mut buf, Format::Csv, false).expect("header");
        let text = "a,b \"quoted\"\nsecond line";
        e.write(&row("t/1", text.as_bytes())).expect("row");
        e.write(&row("t/2", &[0xff, 0x00, 0x10])).expect("row");
        assert_eq!(e.finish().expect("flush"), 2);
        let rows = csv_rows(&buf);
        assert_eq!(rows[0][0], "2023-11-14T22:13:20.123456Z");
        assert_eq!(rows[0][1], "t/1");
        assert_eq!(rows[0][5], "text");
        assert_eq!(rows[0][6], text);
        assert_eq!(rows[1][5], "base64");
        assert_eq!(rows[1][6], "/wAQ");
    }

    #[test]
    fn jsonl_lines_carry_properties_when_present() {
        let props = Properties {
            content_type: Some("application/json".into()),
            user_property: vec![("unit".into(), "C".into())],
            ..Properties::default()
        };
        let mut r = row("t", b"21.5");
        r.props = Some(&props);
        let mut buf = Vec::new();
        let mut e = Exporter::new(&mut buf, Format::Jsonl, false).expect("new");
        e.write(&r).expect("row");
        e.finish().expect("flush");
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("json");
        assert_eq!(v["properties"]["content_type"], "application/json");
        assert_eq!(v["payload"], "21.5");
        assert_eq!(v["qos"], 1);
    }

    #[test]
    fn store_export_of_a_filter_is_oldest_first_and_says_what_was_evicted() {
        let mut store = Store::new(HistoryLimits {
            per_topic_count: 10,
            per_topic_bytes: 1 << 20,
            total_bytes: 1 << 20,
            max_payload: 4,
        });
        for (i, topic) in ["a/x", "b/y", "a/z", "a/x"].iter().enumerate() {
            store.apply_message(&Message {
                topic: topic.to_string(),
                payload: bytes::Bytes::from(format!("payload{i}")),
                received: UNIX_EPOCH + Duration::from_secs(100 + i as u64),
                ..Message::default()
            });
        }
        let mut buf = Vec::new();
        let mut e = Exporter::new(&mut buf, Format::Csv, false).expect("new");
        let n = export_store(&store, Scope::Filter("a/#"), &mut e).expect("export");
        e.finish().expect("flush");
        assert_eq!(n, 3);
        let rows = csv_rows(&buf);
        let topics: Vec<_> = rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(topics, ["a/x", "a/z", "a/x"]);
        // Kept truncated to 4 bytes, and said so.
        assert_eq!(rows[0][6], "payl");
        assert_eq!(rows[0][7], "true");
    }
}
