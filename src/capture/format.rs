//! The mqscope capture format (`.mqcap`): what one connection said and
//! heard, written as it happens and read back without loading it whole.
//!
//! ```text
//! MQSCOPE-CAPTURE 1\n                 magic and format version, one text line
//! {"mqscope":"0.1.0",...}\n           the header, one JSON line (CaptureHeader)
//! record*                             until the end of the file
//!
//! record = len:u32le crc:u32le body   crc32 (IEEE) of body; len = body length
//! body   = tag:u8 t_us:u64le meta_len:u32le meta[meta_len] payload[..]
//! ```
//!
//! `meta` is a MessagePack map (rmp-serde, `write_named`) with short keys
//! (`CapPacket`: s seq, t time, d dir "o"/"i", k kind, i packet id, q QoS,
//! b frame bytes, tp topic, r retain, u dup, pb payload bytes, ... p MQTT 5
//! properties by their specification names; `CapMessage`: tp topic, q, r,
//! u, i, t received µs since 1970, s the PUBLISH record's seq, p), so a
//! later version can add fields and an older reader skips them. `t_us` is the
//! worker's clock (µs since it started; `epoch_unix_us` in the header says
//! when that was). Tags: 1 a packet record, 2 a message (its payload whole,
//! after `meta`, so it can be read alone by offset), 3 another event of the
//! connection (status, CONNACK, SUBACK, publish outcome, error), 4 the end
//! (written when the recording is stopped; a file without it was cut off).
//! Records of an unknown tag are skipped. Appending only: a crash loses what
//! was not flushed yet (the writer flushes at least once a second), and a
//! reader reads every whole record before the cut.

use crate::model::packet::{Direction, PacketDetail, PacketKind, PacketRecord};
use crate::model::protocol::{Message, Properties, ProtocolVersion, Qos};
use crate::mqtt::{ConnStatus, EventKind, PublishOutcome};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first line of every capture file.
pub const MAGIC: &[u8] = b"MQSCOPE-CAPTURE ";
/// The format version this mqscope writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// Usual file name extension.
pub const EXTENSION: &str = "mqcap";

pub(crate) const TAG_PACKET: u8 = 1;
pub(crate) const TAG_MESSAGE: u8 = 2;
pub(crate) const TAG_EVENT: u8 = 3;
pub(crate) const TAG_END: u8 = 4;

/// Bytes before a record's body: length and checksum.
pub(crate) const FRAME_HEAD: usize = 8;
/// Bytes of a body before `meta`: tag, time, meta length.
pub(crate) const BODY_HEAD: usize = 13;
/// A record longer than this is taken as corruption, not allocated.
pub(crate) const MAX_RECORD: usize = 1 << 30;

/// Who wrote the capture, and of what: the file's second line, as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureHeader {
    /// Format version (also on the first line).
    pub format: u32,
    /// The mqscope version that wrote it.
    pub mqscope: String,
    /// "MQTT 3.1.1" or "MQTT 5".
    pub protocol: String,
    /// host:port (or the websocket URL) of the broker.
    pub broker: String,
    pub client_id: String,
    /// The connection profile's name.
    pub profile: String,
    /// Subscriptions of the connection when the recording started.
    pub filters: Vec<String>,
    /// When the recording started (RFC 3339, UTC).
    pub started: String,
    pub started_unix_us: u64,
    /// Wall-clock time (µs since 1970) of the records' `t_us` zero.
    pub epoch_unix_us: u64,
}

impl CaptureHeader {
    /// The protocol as the model knows it.
    pub fn protocol_version(&self) -> ProtocolVersion {
        if self.protocol.contains('5') {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V311
        }
    }
}

pub(crate) fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub(crate) fn from_unix_us(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The serialized shapes. They mirror the model's types field by field so the
// file format stays what it is when the model (or its JSON trace) changes.

macro_rules! props_mirror {
    ($($plain:ident : $ty:ty),* $(,)?) => {
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        #[serde(default)]
        pub(crate) struct CapProps {
            $(#[serde(skip_serializing_if = "Option::is_none")] $plain: Option<$ty>,)*
            #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes")]
            correlation_data: Option<Vec<u8>>,
            #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes")]
            authentication_data: Option<Vec<u8>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            subscription_identifier: Vec<u64>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            user_property: Vec<(String, String)>,
        }

        impl From<&Properties> for CapProps {
            fn from(p: &Properties) -> CapProps {
                CapProps {
                    $($plain: p.$plain.clone(),)*
                    correlation_data: p.correlation_data.as_ref().map(|b| b.to_vec()),
                    authentication_data: p.authentication_data.as_ref().map(|b| b.to_vec()),
                    subscription_identifier: p.subscription_identifier.iter().map(|&i| i as u64).collect(),
                    user_property: p.user_property.clone(),
                }
            }
        }

        impl From<CapProps> for Properties {
            fn from(p: CapProps) -> Properties {
                Properties {
                    $($plain: p.$plain,)*
                    correlation_data: p.correlation_data.map(Bytes::from),
                    authentication_data: p.authentication_data.map(Bytes::from),
                    subscription_identifier: p.subscription_identifier.iter().map(|&i| i as usize).collect(),
                    user_property: p.user_property,
                }
            }
        }
    };
}

props_mirror!(
    payload_format_indicator: u8,
    message_expiry_interval: u32,
    content_type: String,
    response_topic: String,
    session_expiry_interval: u32,
    assigned_client_identifier: String,
    server_keep_alive: u16,
    authentication_method: String,
    request_problem_information: u8,
    will_delay_interval: u32,
    request_response_information: u8,
    response_information: String,
    server_reference: String,
    reason_string: String,
    receive_maximum: u16,
    topic_alias_maximum: u16,
    topic_alias: u16,
    maximum_qos: u8,
    retain_available: u8,
    maximum_packet_size: u32,
    wildcard_subscription_available: u8,
    subscription_identifier_available: u8,
    shared_subscription_available: u8,
);

/// Binary property values as MessagePack bin, not as arrays of numbers.
mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Some(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Some(out))
            }
        }
        d.deserialize_option(V)
    }
}

fn props_out(p: &Option<Box<Properties>>) -> Option<CapProps> {
    p.as_deref().map(CapProps::from)
}

fn props_in(p: Option<CapProps>) -> Option<Box<Properties>> {
    p.map(|p| Box::new(Properties::from(p)))
}

/// A packet kind from its specification name.
pub fn kind_from_name(name: &str) -> Option<PacketKind> {
    crate::model::flows::ALL_KINDS
        .iter()
        .copied()
        .find(|k| k.name() == name)
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CapPacket {
    #[serde(rename = "s")]
    seq: u64,
    #[serde(rename = "t")]
    t_us: u64,
    /// "o" (client → broker) or "i".
    #[serde(rename = "d")]
    dir: String,
    /// The specification's name: "PUBLISH", "SUBACK", ...
    #[serde(rename = "k")]
    kind: String,
    #[serde(rename = "i", skip_serializing_if = "Option::is_none")]
    pkid: Option<u16>,
    #[serde(rename = "q", skip_serializing_if = "Option::is_none")]
    qos: Option<u8>,
    #[serde(rename = "b")]
    bytes: u64,
    #[serde(rename = "tp", skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(rename = "r", skip_serializing_if = "Option::is_none")]
    retain: Option<bool>,
    #[serde(rename = "u", skip_serializing_if = "Option::is_none")]
    dup: Option<bool>,
    #[serde(rename = "pb", skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<u64>,
    #[serde(rename = "ci", skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(rename = "cs", skip_serializing_if = "Option::is_none")]
    clean_session: Option<bool>,
    #[serde(rename = "ka", skip_serializing_if = "Option::is_none")]
    keep_alive: Option<u16>,
    #[serde(rename = "wt", skip_serializing_if = "Option::is_none")]
    will_topic: Option<String>,
    #[serde(rename = "un", skip_serializing_if = "Option::is_none")]
    username: Option<bool>,
    #[serde(rename = "sp", skip_serializing_if = "Option::is_none")]
    session_present: Option<bool>,
    #[serde(rename = "rc", skip_serializing_if = "Option::is_none")]
    return_code: Option<String>,
    #[serde(rename = "f", skip_serializing_if = "Vec::is_empty")]
    filters: Vec<(String, u8)>,
    #[serde(rename = "g", skip_serializing_if = "Vec::is_empty")]
    granted: Vec<u8>,
    #[serde(rename = "rs", skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<u8>,
    #[serde(rename = "pv", skip_serializing_if = "Option::is_none")]
    protocol: Option<ProtocolVersion>,
    #[serde(rename = "rn", skip_serializing_if = "Option::is_none")]
    reason: Option<u8>,
    #[serde(rename = "rt", skip_serializing_if = "Option::is_none")]
    reason_text: Option<String>,
    #[serde(rename = "ta", skip_serializing_if = "Option::is_none")]
    topic_from_alias: Option<bool>,
    #[serde(rename = "p", skip_serializing_if = "Option::is_none")]
    props: Option<CapProps>,
}

impl From<&PacketRecord> for CapPacket {
    fn from(r: &PacketRecord) -> CapPacket {
        let d = &r.detail;
        CapPacket {
            seq: r.seq,
            t_us: r.t_us,
            dir: match r.dir {
                Direction::Out => "o".into(),
                Direction::In => "i".into(),
            },
            kind: r.kind.name().into(),
            pkid: r.pkid,
            qos: r.qos,
            bytes: r.bytes as u64,
            topic: d.topic.clone(),
            retain: d.retain,
            dup: d.dup,
            payload_bytes: d.payload_bytes.map(|b| b as u64),
            client_id: d.client_id.clone(),
            clean_session: d.clean_session,
            keep_alive: d.keep_alive,
            will_topic: d.will_topic.clone(),
            username: d.username,
            session_present: d.session_present,
            return_code: d.return_code.clone(),
            filters: d.filters.clone(),
            granted: d.granted.clone(),
            reasons: d.reasons.clone(),
            protocol: d.protocol,
            reason: d.reason,
            reason_text: d.reason_text.clone(),
            topic_from_alias: d.topic_from_alias,
            props: props_out(&d.props),
        }
    }
}

impl CapPacket {
    fn into_record(self) -> Result<PacketRecord, String> {
        let dir = match self.dir.as_str() {
            "o" => Direction::Out,
            "i" => Direction::In,
            other => return Err(format!("unknown packet direction '{other}'")),
        };
        let kind =
            kind_from_name(&self.kind).ok_or_else(|| format!("unknown packet '{}'", self.kind))?;
        Ok(PacketRecord {
            seq: self.seq,
            t_us: self.t_us,
            dir,
            kind,
            pkid: self.pkid,
            qos: self.qos,
            bytes: self.bytes as usize,
            detail: PacketDetail {
                topic: self.topic,
                retain: self.retain,
                dup: self.dup,
                payload_bytes: self.payload_bytes.map(|b| b as usize),
                client_id: self.client_id,
                clean_session: self.clean_session,
                keep_alive: self.keep_alive,
                will_topic: self.will_topic,
                username: self.username,
                session_present: self.session_present,
                return_code: self.return_code,
                filters: self.filters,
                granted: self.granted,
                reasons: self.reasons,
                protocol: self.protocol,
                reason: self.reason,
                reason_text: self.reason_text,
                topic_from_alias: self.topic_from_alias,
                props: props_in(self.props),
            },
        })
    }
}

/// A message's meta data; its payload follows in the record, whole.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CapMessage {
    #[serde(rename = "tp")]
    topic: String,
    #[serde(rename = "q")]
    qos: u8,
    #[serde(rename = "r")]
    retain: bool,
    #[serde(rename = "u")]
    dup: bool,
    #[serde(rename = "i")]
    pkid: u16,
    #[serde(rename = "t")]
    received_us: u64,
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    packet_seq: Option<u64>,
    #[serde(rename = "p", skip_serializing_if = "Option::is_none")]
    props: Option<CapProps>,
}

/// Only the topic of a message's meta data, borrowed (the index needs no more).
#[derive(Deserialize)]
pub(crate) struct CapMessageTopic<'a> {
    #[serde(borrow, rename = "tp")]
    pub(crate) topic: std::borrow::Cow<'a, str>,
    #[serde(default, rename = "s")]
    pub(crate) packet_seq: Option<u64>,
    #[serde(default, rename = "r")]
    pub(crate) retain: bool,
}

impl CapMessage {
    fn from_message(m: &Message) -> CapMessage {
        CapMessage {
            topic: m.topic.clone(),
            qos: m.qos.as_u8(),
            retain: m.retain,
            dup: m.dup,
            pkid: m.pkid,
            received_us: unix_us(m.received),
            packet_seq: m.packet_seq,
            props: props_out(&m.props),
        }
    }

    fn into_message(self, payload: Bytes) -> Result<Message, String> {
        Ok(Message {
            topic: self.topic,
            payload,
            qos: Qos::from_u8(self.qos).ok_or_else(|| format!("QoS {} is not 0-2", self.qos))?,
            retain: self.retain,
            dup: self.dup,
            pkid: self.pkid,
            received: from_unix_us(self.received_us),
            packet_seq: self.packet_seq,
            props: props_in(self.props),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum CapStatus {
    Connecting,
    Connected {
        since_us: u64,
        session_present: bool,
    },
    Reconnecting {
        attempt: u32,
        retry_in_ms: u64,
        reason: String,
    },
    Disconnected {
        reason: Option<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum CapOutcome {
    Sent,
    Acknowledged,
    AcknowledgedWith(String),
    Failed(String),
}

/// Every other event of the connection the window shows.
#[derive(Debug, Serialize, Deserialize)]
enum CapEvent {
    Status(CapStatus),
    Connack {
        session_present: bool,
        props: Option<Box<CapProps>>,
    },
    Subscribed {
        filter: String,
        granted: Option<u8>,
        reason: Option<String>,
    },
    Unsubscribed {
        filter: String,
        reason: Option<String>,
    },
    Published {
        token: u64,
        outcome: CapOutcome,
    },
    Error(String),
}

impl CapEvent {
    fn from_kind(kind: &EventKind) -> Option<CapEvent> {
        Some(match kind {
            EventKind::Status(s) => CapEvent::Status(match s {
                ConnStatus::Connecting => CapStatus::Connecting,
                ConnStatus::Connected {
                    since,
                    session_present,
                } => CapStatus::Connected {
                    since_us: unix_us(*since),
                    session_present: *session_present,
                },
                ConnStatus::Reconnecting {
                    attempt,
                    retry_in,
                    reason,
                } => CapStatus::Reconnecting {
                    attempt: *attempt,
                    retry_in_ms: retry_in.as_millis() as u64,
                    reason: reason.clone(),
                },
                ConnStatus::Disconnected { reason } => CapStatus::Disconnected {
                    reason: reason.clone(),
                },
            }),
            EventKind::Connack {
                session_present,
                props,
            } => CapEvent::Connack {
                session_present: *session_present,
                props: props_out(props).map(Box::new),
            },
            EventKind::Subscribed {
                filter,
                granted,
                reason,
            } => CapEvent::Subscribed {
                filter: filter.clone(),
                granted: granted.map(Qos::as_u8),
                reason: reason.clone(),
            },
            EventKind::Unsubscribed { filter, reason } => CapEvent::Unsubscribed {
                filter: filter.clone(),
                reason: reason.clone(),
            },
            EventKind::Published { token, outcome } => CapEvent::Published {
                token: *token,
                outcome: match outcome {
                    PublishOutcome::Sent => CapOutcome::Sent,
                    PublishOutcome::Acknowledged => CapOutcome::Acknowledged,
                    PublishOutcome::AcknowledgedWith(s) => CapOutcome::AcknowledgedWith(s.clone()),
                    PublishOutcome::Failed(s) => CapOutcome::Failed(s.clone()),
                },
            },
            EventKind::Error(e) => CapEvent::Error(e.clone()),
            // Messages and packets have records of their own; drops of the
            // window's channel happen after recording and do not apply.
            EventKind::Message(_) | EventKind::Packet(_) | EventKind::Dropped { .. } => {
                return None;
            }
        })
    }

    fn into_kind(self) -> EventKind {
        match self {
            CapEvent::Status(s) => EventKind::Status(match s {
                CapStatus::Connecting => ConnStatus::Connecting,
                CapStatus::Connected {
                    since_us,
                    session_present,
                } => ConnStatus::Connected {
                    since: from_unix_us(since_us),
                    session_present,
                },
                CapStatus::Reconnecting {
                    attempt,
                    retry_in_ms,
                    reason,
                } => ConnStatus::Reconnecting {
                    attempt,
                    retry_in: Duration::from_millis(retry_in_ms),
                    reason,
                },
                CapStatus::Disconnected { reason } => ConnStatus::Disconnected { reason },
            }),
            CapEvent::Connack {
                session_present,
                props,
            } => EventKind::Connack {
                session_present,
                props: props_in(props.map(|p| *p)),
            },
            CapEvent::Subscribed {
                filter,
                granted,
                reason,
            } => EventKind::Subscribed {
                filter,
                granted: granted.and_then(Qos::from_u8),
                reason,
            },
            CapEvent::Unsubscribed { filter, reason } => EventKind::Unsubscribed { filter, reason },
            CapEvent::Published { token, outcome } => EventKind::Published {
                token,
                outcome: match outcome {
                    CapOutcome::Sent => PublishOutcome::Sent,
                    CapOutcome::Acknowledged => PublishOutcome::Acknowledged,
                    CapOutcome::AcknowledgedWith(s) => PublishOutcome::AcknowledgedWith(s),
                    CapOutcome::Failed(s) => PublishOutcome::Failed(s),
                },
            },
            CapEvent::Error(e) => EventKind::Error(e),
        }
    }
}

/// What the end record says: the writer's own counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureTotals {
    pub records: u64,
    pub packets: u64,
    pub messages: u64,
    /// Bytes of the file, header and end record included.
    pub bytes: u64,
    /// Records that could not be written (disk full, I/O error).
    pub lost: u64,
}

// ---------------------------------------------------------------------------
// Decoding one record's body (used by the reader).

/// One decoded record.
#[derive(Debug)]
pub enum CaptureRecord {
    Packet(PacketRecord),
    Message(Message),
    Event(EventKind),
    End(CaptureTotals),
    /// A record type from a newer mqscope: skipped.
    Unknown(u8),
}

fn meta_error(e: impl std::fmt::Display) -> String {
    format!("unreadable record contents: {e}")
}

/// Decodes a body (`tag t_us meta_len meta payload`).
pub(crate) fn decode_body(body: &[u8]) -> Result<(u64, CaptureRecord), String> {
    if body.len() < BODY_HEAD {
        return Err("record shorter than its header".into());
    }
    let tag = body[0];
    let t_us = u64::from_le_bytes(body[1..9].try_into().unwrap_or_default());
    let meta_len = u32::from_le_bytes(body[9..13].try_into().unwrap_or_default()) as usize;
    let rest = &body[BODY_HEAD..];
    if meta_len > rest.len() {
        return Err("record meta data longer than the record".into());
    }
    let (meta, payload) = rest.split_at(meta_len);
    let record = match tag {
        TAG_PACKET => {
            let p: CapPacket = rmp_serde::from_slice(meta).map_err(meta_error)?;
            CaptureRecord::Packet(p.into_record()?)
        }
        TAG_MESSAGE => {
            let m: CapMessage = rmp_serde::from_slice(meta).map_err(meta_error)?;
            CaptureRecord::Message(m.into_message(Bytes::copy_from_slice(payload))?)
        }
        TAG_EVENT => {
            let e: CapEvent = rmp_serde::from_slice(meta).map_err(meta_error)?;
            CaptureRecord::Event(e.into_kind())
        }
        TAG_END => CaptureRecord::End(rmp_serde::from_slice(meta).map_err(meta_error)?),
        other => CaptureRecord::Unknown(other),
    };
    Ok((t_us, record))
}

/// Decodes a message's meta data alone (its payload read separately).
pub(crate) fn decode_message_meta(meta: &[u8]) -> Result<CapMessage, String> {
    rmp_serde::from_slice(meta).map_err(meta_error)
}

impl CapMessage {
    pub(crate) fn with_payload(self, payload: Bytes) -> Result<Message, String> {
        self.into_message(payload)
    }
}

// ---------------------------------------------------------------------------
// Writing.

/// Appends records to a capture file. Buffered: call [`CaptureWriter::flush`]
/// at least once a second (the worker does); [`CaptureWriter::finish`]
/// writes the end record.
pub struct CaptureWriter<W: Write = std::fs::File> {
    out: io::BufWriter<W>,
    meta: Vec<u8>,
    totals: CaptureTotals,
    /// Set after the first write error: later records are counted as lost
    /// rather than written after a hole.
    failed: Option<String>,
}

impl CaptureWriter<std::fs::File> {
    /// Creates (or replaces) the file at `path` and writes the header.
    pub fn create(path: &std::path::Path, header: &CaptureHeader) -> io::Result<Self> {
        let file = std::fs::File::create(path)?;
        CaptureWriter::new(file, header)
    }
}

impl<W: Write> CaptureWriter<W> {
    pub fn new(out: W, header: &CaptureHeader) -> io::Result<Self> {
        let mut out = io::BufWriter::with_capacity(256 << 10, out);
        let mut header = header.clone();
        header.format = FORMAT_VERSION;
        let json = serde_json::to_string(&header).map_err(io::Error::other)?;
        let mut head = Vec::with_capacity(json.len() + 32);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(format!("{FORMAT_VERSION}\n").as_bytes());
        head.extend_from_slice(json.as_bytes());
        head.push(b'\n');
        out.write_all(&head)?;
        out.flush()?;
        Ok(CaptureWriter {
            out,
            meta: Vec::with_capacity(512),
            totals: CaptureTotals {
                bytes: head.len() as u64,
                ..CaptureTotals::default()
            },
            failed: None,
        })
    }

    /// What was written so far (and lost, if writing failed).
    pub fn totals(&self) -> &CaptureTotals {
        &self.totals
    }

    /// The first write error, if writing failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn write_record(&mut self, tag: u8, t_us: u64, payload: &[u8]) -> io::Result<()> {
        if let Some(why) = &self.failed {
            self.totals.lost += 1;
            return Err(io::Error::other(why.clone()));
        }
        let body_len = BODY_HEAD + self.meta.len() + payload.len();
        if body_len > MAX_RECORD {
            self.totals.lost += 1;
            return Err(io::Error::other(format!(
                "a record of {body_len} bytes is larger than a capture holds"
            )));
        }
        let mut head = [0u8; FRAME_HEAD + BODY_HEAD];
        head[FRAME_HEAD] = tag;
        head[FRAME_HEAD + 1..FRAME_HEAD + 9].copy_from_slice(&t_us.to_le_bytes());
        head[FRAME_HEAD + 9..].copy_from_slice(&(self.meta.len() as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[FRAME_HEAD..]);
        crc.update(&self.meta);
        crc.update(payload);
        head[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        let written = self
            .out
            .write_all(&head)
            .and_then(|_| self.out.write_all(&self.meta))
            .and_then(|_| self.out.write_all(payload));
        match written {
            Ok(()) => {
                self.totals.records += 1;
                self.totals.bytes += (FRAME_HEAD + body_len) as u64;
                Ok(())
            }
            Err(e) => {
                self.totals.lost += 1;
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn encode<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        self.meta.clear();
        rmp_serde::encode::write_named(&mut self.meta, value).map_err(io::Error::other)
    }

    pub fn packet(&mut self, t_us: u64, record: &PacketRecord) -> io::Result<()> {
        self.encode(&CapPacket::from(record))?;
        self.write_record(TAG_PACKET, t_us, &[])?;
        self.totals.packets += 1;
        Ok(())
    }

    pub fn message(&mut self, t_us: u64, message: &Message) -> io::Result<()> {
        self.encode(&CapMessage::from_message(message))?;
        self.write_record(TAG_MESSAGE, t_us, &message.payload)?;
        self.totals.messages += 1;
        Ok(())
    }

    /// Any event of the connection: packets and messages get their own
    /// records, the others one event record; `Dropped` is not recorded.
    pub fn event(&mut self, t_us: u64, kind: &EventKind) -> io::Result<()> {
        match kind {
            EventKind::Packet(r) => self.packet(t_us, r),
            EventKind::Message(m) => self.message(t_us, m),
            other => match CapEvent::from_kind(other) {
                Some(e) => {
                    self.encode(&e)?;
                    self.write_record(TAG_EVENT, t_us, &[])
                }
                None => Ok(()),
            },
        }
    }

    /// Hands what is buffered to the operating system.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.out.flush().inspect_err(|e| {
            self.failed = Some(e.to_string());
        })
    }

    /// Writes the end record and flushes; returns the totals.
    pub fn finish(mut self, t_us: u64) -> io::Result<CaptureTotals> {
        let mut end = self.totals.clone();
        // The end record counts itself in the file's bytes.
        end.records += 1;
        self.encode(&end)?;
        end.bytes += (FRAME_HEAD + BODY_HEAD + self.meta.len()) as u64;
        self.encode(&end)?;
        self.write_record(TAG_END, t_us, &[])?;
        self.out.flush()?;
        if let Some(why) = self.failed {
            return Err(io::Error::other(why));
        }
        Ok(self.totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::PacketKind;

    /// Writes `events` to memory and reads every record back.
    fn round_trip(events: &[EventKind]) -> Vec<CaptureRecord> {
        let mut w = CaptureWriter::new(Vec::new(), &CaptureHeader::default()).expect("header");
        for (i, e) in events.iter().enumerate() {
            w.event(i as u64 * 10, e).expect("write");
        }
        let bytes = w.out.into_inner().expect("flush");
        let first = bytes.iter().position(|&b| b == b'\n').expect("line 1") + 1;
        let second = first
            + bytes[first..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("line 2")
            + 1;
        let mut rest = &bytes[second..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("len")) as usize;
            let body = &rest[FRAME_HEAD..FRAME_HEAD + len];
            assert_eq!(
                crc32fast::hash(body),
                u32::from_le_bytes(rest[4..8].try_into().expect("crc"))
            );
            out.push(decode_body(body).expect("decode").1);
            rest = &rest[FRAME_HEAD + len..];
        }
        out
    }

    #[test]
    fn every_event_kind_reads_back_as_written() {
        let props = Properties {
            user_property: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            correlation_data: Some(Bytes::from_static(&[0, 1, 255])),
            subscription_identifier: vec![7],
            assigned_client_identifier: Some("auto-1".into()),
            ..Properties::default()
        };
        let mut record = PacketRecord::new(5, Direction::In, PacketKind::Puback, Some(9), 5);
        record.seq = 42;
        record.detail.set_reason(PacketKind::Puback, 0x87);
        record.detail.props = Some(Box::new(props.clone()));
        let message = Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"\x00\xffbinary"),
            qos: Qos::ExactlyOnce,
            retain: true,
            dup: true,
            pkid: 3,
            received: from_unix_us(1_796_000_000_123_456),
            packet_seq: Some(41),
            props: Some(Box::new(props.clone())),
        };
        let events = vec![
            EventKind::Status(ConnStatus::Reconnecting {
                attempt: 2,
                retry_in: Duration::from_millis(1500),
                reason: "refused".into(),
            }),
            EventKind::Connack {
                session_present: true,
                props: Some(Box::new(props.clone())),
            },
            EventKind::Packet(record.clone()),
            EventKind::Message(message.clone()),
            EventKind::Subscribed {
                filter: "a/#".into(),
                granted: None,
                reason: Some("0x87 Not authorized".into()),
            },
            EventKind::Published {
                token: 5,
                outcome: PublishOutcome::Failed("PUBACK 0x87".into()),
            },
            EventKind::Error("oops".into()),
            EventKind::Dropped {
                messages: 1,
                packets: 1,
            },
        ];
        let back = round_trip(&events);
        // `Dropped` is the window's business, not the connection's: not recorded.
        assert_eq!(back.len(), events.len() - 1);
        let text = |e: &EventKind| format!("{e:?}");
        for (written, read) in events.iter().zip(&back) {
            let read = match read {
                CaptureRecord::Packet(p) => EventKind::Packet(p.clone()),
                CaptureRecord::Message(m) => EventKind::Message(m.clone()),
                CaptureRecord::Event(e) => e.clone(),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(text(written), text(&read));
        }
        match &back[2] {
            CaptureRecord::Packet(p) => assert_eq!(p, &record),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_record_from_a_newer_writer_is_reported_as_unknown() {
        let mut body = vec![9u8];
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            decode_body(&body),
            Ok((0, CaptureRecord::Unknown(9)))
        ));
    }

    #[test]
    fn a_short_or_inconsistent_body_is_an_error_not_a_panic() {
        assert!(decode_body(&[1, 2, 3]).is_err());
        let mut body = vec![TAG_MESSAGE];
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&1000u32.to_le_bytes());
        assert!(decode_body(&body).is_err());
        let mut body = vec![TAG_PACKET];
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(&[0xc1, 0xc1, 0xc1]);
        assert!(decode_body(&body).is_err());
    }
}
