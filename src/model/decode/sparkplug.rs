//! Sparkplug B payloads (`spBv1.0/GROUP/TYPE/EDGE[/DEVICE]`): protobuf
//! decoded with `prost` into the structs below, derived by hand from the
//! Sparkplug B specification's `Payload` schema (Eclipse Tahu's
//! `sparkplug_b.proto`, proto2, package `org.eclipse.tahu.protobuf`): same
//! field numbers and types, extensions left out (prost skips them).
//!
//! Data messages usually name their metrics by an alias only; the alias and
//! the datatype were given in the edge node's NBIRTH (or the device's
//! DBIRTH). [`SparkplugAliases`] remembers those tables so DDATA/NDATA
//! metrics get their names and their signed integers their sign.

use super::{DecodeError, MAX_DEPTH, binary, float, float32, too_deep};
use crate::model::payload::{self, PayloadKind};
use prost::Message as _;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Messages of the Sparkplug B `Payload` schema.
pub mod schema {
    /// The top-level Sparkplug B payload.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Payload {
        #[prost(uint64, optional, tag = "1")]
        pub timestamp: Option<u64>,
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
        #[prost(uint64, optional, tag = "3")]
        pub seq: Option<u64>,
        #[prost(string, optional, tag = "4")]
        pub uuid: Option<String>,
        #[prost(bytes = "vec", optional, tag = "5")]
        pub body: Option<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(uint64, optional, tag = "2")]
        pub alias: Option<u64>,
        #[prost(uint64, optional, tag = "3")]
        pub timestamp: Option<u64>,
        #[prost(uint32, optional, tag = "4")]
        pub datatype: Option<u32>,
        #[prost(bool, optional, tag = "5")]
        pub is_historical: Option<bool>,
        #[prost(bool, optional, tag = "6")]
        pub is_transient: Option<bool>,
        #[prost(bool, optional, tag = "7")]
        pub is_null: Option<bool>,
        #[prost(message, optional, tag = "8")]
        pub metadata: Option<MetaData>,
        #[prost(message, optional, tag = "9")]
        pub properties: Option<PropertySet>,
        #[prost(oneof = "MetricValue", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18")]
        pub value: Option<MetricValue>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum MetricValue {
        #[prost(uint32, tag = "10")]
        IntValue(u32),
        #[prost(uint64, tag = "11")]
        LongValue(u64),
        #[prost(float, tag = "12")]
        FloatValue(f32),
        #[prost(double, tag = "13")]
        DoubleValue(f64),
        #[prost(bool, tag = "14")]
        BooleanValue(bool),
        #[prost(string, tag = "15")]
        StringValue(String),
        #[prost(bytes = "vec", tag = "16")]
        BytesValue(Vec<u8>),
        #[prost(message, tag = "17")]
        DatasetValue(DataSet),
        #[prost(message, tag = "18")]
        TemplateValue(Template),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetaData {
        #[prost(bool, optional, tag = "1")]
        pub is_multi_part: Option<bool>,
        #[prost(string, optional, tag = "2")]
        pub content_type: Option<String>,
        #[prost(uint64, optional, tag = "3")]
        pub size: Option<u64>,
        #[prost(uint64, optional, tag = "4")]
        pub seq: Option<u64>,
        #[prost(string, optional, tag = "5")]
        pub file_name: Option<String>,
        #[prost(string, optional, tag = "6")]
        pub file_type: Option<String>,
        #[prost(string, optional, tag = "7")]
        pub md5: Option<String>,
        #[prost(string, optional, tag = "8")]
        pub description: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PropertySet {
        #[prost(string, repeated, tag = "1")]
        pub keys: Vec<String>,
        #[prost(message, repeated, tag = "2")]
        pub values: Vec<PropertyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PropertySetList {
        #[prost(message, repeated, tag = "1")]
        pub propertyset: Vec<PropertySet>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PropertyValue {
        #[prost(uint32, optional, tag = "1")]
        pub r#type: Option<u32>,
        #[prost(bool, optional, tag = "2")]
        pub is_null: Option<bool>,
        #[prost(oneof = "PropertyValueKind", tags = "3, 4, 5, 6, 7, 8, 9, 10")]
        pub value: Option<PropertyValueKind>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum PropertyValueKind {
        #[prost(uint32, tag = "3")]
        IntValue(u32),
        #[prost(uint64, tag = "4")]
        LongValue(u64),
        #[prost(float, tag = "5")]
        FloatValue(f32),
        #[prost(double, tag = "6")]
        DoubleValue(f64),
        #[prost(bool, tag = "7")]
        BooleanValue(bool),
        #[prost(string, tag = "8")]
        StringValue(String),
        #[prost(message, tag = "9")]
        PropertysetValue(PropertySet),
        #[prost(message, tag = "10")]
        PropertysetsValue(PropertySetList),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DataSet {
        #[prost(uint64, optional, tag = "1")]
        pub num_of_columns: Option<u64>,
        #[prost(string, repeated, tag = "2")]
        pub columns: Vec<String>,
        #[prost(uint32, repeated, packed = "false", tag = "3")]
        pub types: Vec<u32>,
        #[prost(message, repeated, tag = "4")]
        pub rows: Vec<Row>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Row {
        #[prost(message, repeated, tag = "1")]
        pub elements: Vec<DataSetValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DataSetValue {
        #[prost(oneof = "DataSetValueKind", tags = "1, 2, 3, 4, 5, 6")]
        pub value: Option<DataSetValueKind>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum DataSetValueKind {
        #[prost(uint32, tag = "1")]
        IntValue(u32),
        #[prost(uint64, tag = "2")]
        LongValue(u64),
        #[prost(float, tag = "3")]
        FloatValue(f32),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(bool, tag = "5")]
        BooleanValue(bool),
        #[prost(string, tag = "6")]
        StringValue(String),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Template {
        #[prost(string, optional, tag = "1")]
        pub version: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
        #[prost(message, repeated, tag = "3")]
        pub parameters: Vec<Parameter>,
        #[prost(string, optional, tag = "4")]
        pub template_ref: Option<String>,
        #[prost(bool, optional, tag = "5")]
        pub is_definition: Option<bool>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Parameter {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(uint32, optional, tag = "2")]
        pub r#type: Option<u32>,
        #[prost(oneof = "ParameterValue", tags = "3, 4, 5, 6, 7, 8")]
        pub value: Option<ParameterValue>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParameterValue {
        #[prost(uint32, tag = "3")]
        IntValue(u32),
        #[prost(uint64, tag = "4")]
        LongValue(u64),
        #[prost(float, tag = "5")]
        FloatValue(f32),
        #[prost(double, tag = "6")]
        DoubleValue(f64),
        #[prost(bool, tag = "7")]
        BooleanValue(bool),
        #[prost(string, tag = "8")]
        StringValue(String),
    }
}

use schema::{DataSet, Metric, MetricValue, Payload, PropertySet, PropertyValueKind, Template};

/// Sparkplug B datatype numbers (the specification's table).
pub mod datatype {
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const UINT8: u32 = 5;
    pub const UINT16: u32 = 6;
    pub const UINT32: u32 = 7;
    pub const UINT64: u32 = 8;
    pub const FLOAT: u32 = 9;
    pub const DOUBLE: u32 = 10;
    pub const BOOLEAN: u32 = 11;
    pub const STRING: u32 = 12;
    pub const DATETIME: u32 = 13;
    pub const TEXT: u32 = 14;
}

/// The name of a Sparkplug datatype number.
pub fn datatype_name(dt: u32) -> String {
    const NAMES: [&str; 35] = [
        "Unknown",
        "Int8",
        "Int16",
        "Int32",
        "Int64",
        "UInt8",
        "UInt16",
        "UInt32",
        "UInt64",
        "Float",
        "Double",
        "Boolean",
        "String",
        "DateTime",
        "Text",
        "UUID",
        "DataSet",
        "Bytes",
        "File",
        "Template",
        "PropertySet",
        "PropertySetList",
        "Int8Array",
        "Int16Array",
        "Int32Array",
        "Int64Array",
        "UInt8Array",
        "UInt16Array",
        "UInt32Array",
        "UInt64Array",
        "FloatArray",
        "DoubleArray",
        "BooleanArray",
        "StringArray",
        "DateTimeArray",
    ];
    NAMES
        .get(dt as usize)
        .map_or_else(|| format!("Unknown({dt})"), |n| (*n).to_string())
}

/// The message types of the Sparkplug B topic namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
    /// `spBv1.0/STATE/HOST`: a host application's state, JSON or text.
    State,
}

impl MessageType {
    fn parse(s: &str) -> Option<MessageType> {
        Some(match s {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "NDATA" => MessageType::NData,
            "DDATA" => MessageType::DData,
            "NCMD" => MessageType::NCmd,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }

    /// Whether the payload is a protobuf `Payload` (all but STATE).
    pub fn is_protobuf(self) -> bool {
        self != MessageType::State
    }
}

/// A topic of the Sparkplug B namespace, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparkplugTopic {
    pub group: String,
    pub kind: MessageType,
    /// The edge node id (the host id for STATE).
    pub edge: String,
    pub device: Option<String>,
}

impl SparkplugTopic {
    /// `spBv1.0/GROUP/TYPE/EDGE[/DEVICE]` or `spBv1.0/STATE/HOST`; `None`
    /// for anything else.
    pub fn parse(topic: &str) -> Option<SparkplugTopic> {
        let mut parts = topic.split('/');
        if parts.next()? != "spBv1.0" {
            return None;
        }
        let group = parts.next()?;
        let second = parts.next()?;
        if group == "STATE" {
            return (parts.next().is_none() && !second.is_empty()).then(|| SparkplugTopic {
                group: String::new(),
                kind: MessageType::State,
                edge: second.to_string(),
                device: None,
            });
        }
        let kind = MessageType::parse(second)?;
        let edge = parts.next()?;
        let device = parts.next();
        let device_type = matches!(
            kind,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        );
        if parts.next().is_some() || group.is_empty() || edge.is_empty() {
            return None;
        }
        // Device messages name a device, node messages do not.
        if device_type != device.is_some_and(|d| !d.is_empty()) {
            return None;
        }
        Some(SparkplugTopic {
            group: group.to_string(),
            kind,
            edge: edge.to_string(),
            device: device.map(str::to_string),
        })
    }

    /// The topics of the births that define this message's aliases: the
    /// edge node's NBIRTH, and the device's DBIRTH for device messages.
    pub fn birth_topics(&self) -> Vec<String> {
        if self.kind == MessageType::State {
            return Vec::new();
        }
        let mut out = vec![format!("spBv1.0/{}/NBIRTH/{}", self.group, self.edge)];
        if let Some(device) = &self.device {
            out.push(format!(
                "spBv1.0/{}/DBIRTH/{}/{device}",
                self.group, self.edge
            ));
        }
        out
    }
}

/// What a birth said about one alias.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    name: String,
    datatype: Option<u32>,
}

#[derive(Clone, Debug, Default)]
struct NodeAliases {
    node: HashMap<u64, Known>,
    devices: HashMap<String, HashMap<u64, Known>>,
}

/// Most aliases remembered over all edge nodes; births past it are not
/// remembered and counted in [`SparkplugAliases::refused`].
pub const MAX_ALIASES: usize = 1_000_000;

/// The alias tables of the edge nodes and devices seen, learnt from NBIRTH
/// and DBIRTH messages. An NBIRTH replaces the node's tables (a rebirth may
/// reassign aliases; its devices' DBIRTHs follow it).
#[derive(Clone, Debug, Default)]
pub struct SparkplugAliases {
    /// (group, edge node) → its tables.
    nodes: HashMap<(String, String), NodeAliases>,
    entries: usize,
    refused: u64,
}

impl SparkplugAliases {
    /// Aliases remembered.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Births not remembered because [`MAX_ALIASES`] was reached.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Learns the aliases of a birth message (other messages are ignored).
    /// A payload that is not Sparkplug B is ignored too.
    pub fn learn(&mut self, topic: &str, payload: &[u8]) {
        let Some(t) = SparkplugTopic::parse(topic) else {
            return;
        };
        if !matches!(t.kind, MessageType::NBirth | MessageType::DBirth) {
            return;
        }
        if let Ok(p) = parse(payload) {
            self.learn_payload(&t, &p);
        }
    }

    fn learn_payload(&mut self, topic: &SparkplugTopic, payload: &Payload) {
        if !matches!(topic.kind, MessageType::NBirth | MessageType::DBirth) {
            return;
        }
        let table: HashMap<u64, Known> = payload
            .metrics
            .iter()
            .filter_map(|m| {
                Some((
                    m.alias?,
                    Known {
                        name: m.name.clone()?,
                        datatype: m.datatype,
                    },
                ))
            })
            .collect();
        let key = (topic.group.clone(), topic.edge.clone());
        let replaced = match (&topic.kind, &topic.device) {
            (MessageType::NBirth, _) => self.nodes.get(&key).map_or(0, |n| {
                n.node.len() + n.devices.values().map(HashMap::len).sum::<usize>()
            }),
            (_, Some(device)) => self
                .nodes
                .get(&key)
                .and_then(|n| n.devices.get(device))
                .map_or(0, HashMap::len),
            _ => 0,
        };
        let after = self.entries - replaced + table.len();
        if after > MAX_ALIASES {
            self.refused += 1;
            return;
        }
        self.entries = after;
        match (topic.kind, &topic.device) {
            (MessageType::NBirth, _) => {
                self.nodes.insert(
                    key,
                    NodeAliases {
                        node: table,
                        devices: HashMap::new(),
                    },
                );
            }
            (_, Some(device)) => {
                self.nodes
                    .entry(key)
                    .or_default()
                    .devices
                    .insert(device.clone(), table);
            }
            _ => {}
        }
    }

    fn lookup(&self, topic: &SparkplugTopic, alias: u64) -> Option<&Known> {
        let node = self.nodes.get(&(topic.group.clone(), topic.edge.clone()))?;
        topic
            .device
            .as_ref()
            .and_then(|d| node.devices.get(d))
            .and_then(|t| t.get(&alias))
            .or_else(|| node.node.get(&alias))
    }

    /// The metric name a birth gave `alias` for messages on `topic`.
    pub fn name(&self, topic: &str, alias: u64) -> Option<&str> {
        let t = SparkplugTopic::parse(topic)?;
        self.lookup(&t, alias).map(|k| k.name.as_str())
    }
}

/// Reads the protobuf of a payload, refusing what is not Sparkplug B.
fn parse(payload: &[u8]) -> Result<Payload, DecodeError> {
    let kind = payload::detect(payload);
    if kind != PayloadKind::Binary {
        // Every Sparkplug payload starts with a field tag below 0x20 (a
        // control character): text never is one, even when it happens to
        // be valid protobuf.
        return Err(DecodeError::new(format!(
            "not a Sparkplug B payload (it is {})",
            kind.label()
        )));
    }
    let decoded = Payload::decode(payload)
        .map_err(|e| DecodeError::new(format!("not a Sparkplug B payload: {e}")))?;
    if decoded.timestamp.is_none()
        && decoded.seq.is_none()
        && decoded.metrics.is_empty()
        && decoded.uuid.is_none()
        && decoded.body.is_none()
    {
        return Err(DecodeError::new(
            "not a Sparkplug B payload (no timestamp, seq or metrics)",
        ));
    }
    Ok(decoded)
}

/// Decodes a Sparkplug B payload received on `topic`. Births teach
/// `aliases` their tables; metrics sent by alias get the name (and the
/// datatype) their birth gave them.
pub fn decode(
    topic: &str,
    payload: &[u8],
    aliases: &mut SparkplugAliases,
) -> Result<Value, DecodeError> {
    let parsed = parse(payload)?;
    let t = SparkplugTopic::parse(topic);
    if let Some(t) = &t {
        aliases.learn_payload(t, &parsed);
    }
    to_json(&parsed, t.as_ref(), aliases, payload.len())
}

/// [`decode`] without learning: for a view that built `aliases` from the
/// births it has.
pub fn decode_with(
    topic: &str,
    payload: &[u8],
    aliases: &SparkplugAliases,
) -> Result<Value, DecodeError> {
    let parsed = parse(payload)?;
    let t = SparkplugTopic::parse(topic);
    to_json(&parsed, t.as_ref(), aliases, payload.len())
}

fn to_json(
    p: &Payload,
    topic: Option<&SparkplugTopic>,
    aliases: &SparkplugAliases,
    len: usize,
) -> Result<Value, DecodeError> {
    let mut out = Map::new();
    if let Some(ts) = p.timestamp {
        out.insert("timestamp".into(), Value::from(ts));
    }
    if let Some(seq) = p.seq {
        out.insert("seq".into(), Value::from(seq));
    }
    if let Some(uuid) = &p.uuid {
        out.insert("uuid".into(), Value::String(uuid.clone()));
    }
    if let Some(body) = &p.body {
        out.insert("body".into(), binary(body));
    }
    let mut unnamed = Vec::new();
    let mut metrics = Vec::with_capacity(p.metrics.len());
    for m in &p.metrics {
        let known = match (&m.name, m.alias, topic) {
            (None, Some(alias), Some(t)) => {
                let known = aliases.lookup(t, alias);
                if known.is_none() {
                    unnamed.push(Value::from(alias));
                }
                known
            }
            _ => None,
        };
        metrics.push(metric(m, known, 1)?);
    }
    out.insert("metrics".into(), Value::Array(metrics));
    if !unnamed.is_empty() {
        // Said, not hidden: the births that name these were not seen.
        out.insert("$unnamed_aliases".into(), Value::Array(unnamed));
    }
    let read = p.encoded_len();
    if read < len {
        out.insert("$skipped_bytes".into(), Value::from(len - read));
    }
    Ok(Value::Object(out))
}

fn metric(m: &Metric, known: Option<&Known>, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut out = Map::new();
    let name = m.name.as_deref().or(known.map(|k| k.name.as_str()));
    if let Some(name) = name {
        out.insert("name".into(), Value::String(name.to_string()));
    }
    if let Some(alias) = m.alias {
        out.insert("alias".into(), Value::from(alias));
    }
    if let Some(ts) = m.timestamp {
        out.insert("timestamp".into(), Value::from(ts));
    }
    let dt = m.datatype.or(known.and_then(|k| k.datatype));
    if let Some(dt) = dt {
        out.insert("datatype".into(), Value::String(datatype_name(dt)));
    }
    for (key, flag) in [
        ("is_historical", m.is_historical),
        ("is_transient", m.is_transient),
    ] {
        if flag == Some(true) {
            out.insert(key.into(), Value::Bool(true));
        }
    }
    let value = if m.is_null == Some(true) {
        Value::Null
    } else {
        match &m.value {
            None => Value::Null,
            Some(MetricValue::IntValue(v)) => int_value(*v, dt),
            Some(MetricValue::LongValue(v)) => long_value(*v, dt),
            Some(MetricValue::FloatValue(v)) => float32(*v),
            Some(MetricValue::DoubleValue(v)) => float(*v),
            Some(MetricValue::BooleanValue(v)) => Value::Bool(*v),
            Some(MetricValue::StringValue(v)) => Value::String(v.clone()),
            Some(MetricValue::BytesValue(v)) => binary(v),
            Some(MetricValue::DatasetValue(d)) => dataset(d),
            Some(MetricValue::TemplateValue(t)) => template(t, depth + 1)?,
        }
    };
    out.insert("value".into(), value);
    if let Some(md) = &m.metadata {
        let mut meta = Map::new();
        let strings = [
            ("content_type", &md.content_type),
            ("file_name", &md.file_name),
            ("file_type", &md.file_type),
            ("md5", &md.md5),
            ("description", &md.description),
        ];
        for (key, v) in strings {
            if let Some(v) = v {
                meta.insert(key.into(), Value::String(v.clone()));
            }
        }
        if let Some(v) = md.is_multi_part {
            meta.insert("is_multi_part".into(), Value::Bool(v));
        }
        if let Some(v) = md.size {
            meta.insert("size".into(), Value::from(v));
        }
        if let Some(v) = md.seq {
            meta.insert("seq".into(), Value::from(v));
        }
        out.insert("metadata".into(), Value::Object(meta));
    }
    if let Some(props) = &m.properties {
        out.insert("properties".into(), property_set(props, depth + 1)?);
    }
    Ok(Value::Object(out))
}

/// Signed types travel as two's complement in the unsigned fields.
fn int_value(v: u32, dt: Option<u32>) -> Value {
    match dt {
        Some(datatype::INT8) => Value::from(v as u8 as i8),
        Some(datatype::INT16) => Value::from(v as u16 as i16),
        Some(datatype::INT32) => Value::from(v as i32),
        _ => Value::from(v),
    }
}

fn long_value(v: u64, dt: Option<u32>) -> Value {
    match dt {
        Some(datatype::INT64) => Value::from(v as i64),
        _ => Value::from(v),
    }
}

fn dataset(d: &DataSet) -> Value {
    use schema::DataSetValueKind as K;
    let mut out = Map::new();
    out.insert(
        "columns".into(),
        Value::Array(d.columns.iter().cloned().map(Value::String).collect()),
    );
    out.insert(
        "types".into(),
        Value::Array(
            d.types
                .iter()
                .map(|t| Value::String(datatype_name(*t)))
                .collect(),
        ),
    );
    let rows = d
        .rows
        .iter()
        .map(|row| {
            Value::Array(
                row.elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let dt = d.types.get(i).copied();
                        match &e.value {
                            None => Value::Null,
                            Some(K::IntValue(v)) => int_value(*v, dt),
                            Some(K::LongValue(v)) => long_value(*v, dt),
                            Some(K::FloatValue(v)) => float32(*v),
                            Some(K::DoubleValue(v)) => float(*v),
                            Some(K::BooleanValue(v)) => Value::Bool(*v),
                            Some(K::StringValue(v)) => Value::String(v.clone()),
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    out.insert("rows".into(), Value::Array(rows));
    Value::Object(out)
}

fn template(t: &Template, depth: usize) -> Result<Value, DecodeError> {
    use schema::ParameterValue as P;
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut out = Map::new();
    if let Some(v) = &t.version {
        out.insert("version".into(), Value::String(v.clone()));
    }
    if let Some(v) = &t.template_ref {
        out.insert("template_ref".into(), Value::String(v.clone()));
    }
    if let Some(v) = t.is_definition {
        out.insert("is_definition".into(), Value::Bool(v));
    }
    if !t.parameters.is_empty() {
        let params = t
            .parameters
            .iter()
            .map(|p| {
                let mut m = Map::new();
                if let Some(n) = &p.name {
                    m.insert("name".into(), Value::String(n.clone()));
                }
                if let Some(ty) = p.r#type {
                    m.insert("type".into(), Value::String(datatype_name(ty)));
                }
                let value = match &p.value {
                    None => Value::Null,
                    Some(P::IntValue(v)) => int_value(*v, p.r#type),
                    Some(P::LongValue(v)) => long_value(*v, p.r#type),
                    Some(P::FloatValue(v)) => float32(*v),
                    Some(P::DoubleValue(v)) => float(*v),
                    Some(P::BooleanValue(v)) => Value::Bool(*v),
                    Some(P::StringValue(v)) => Value::String(v.clone()),
                };
                m.insert("value".into(), value);
                Value::Object(m)
            })
            .collect();
        out.insert("parameters".into(), Value::Array(params));
    }
    let metrics = t
        .metrics
        .iter()
        .map(|m| metric(m, None, depth + 1))
        .collect::<Result<_, _>>()?;
    out.insert("metrics".into(), Value::Array(metrics));
    Ok(Value::Object(out))
}

fn property_set(set: &PropertySet, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut out = Map::new();
    for (i, pv) in set.values.iter().enumerate() {
        let key = set.keys.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        let value = if pv.is_null == Some(true) {
            Value::Null
        } else {
            match &pv.value {
                None => Value::Null,
                Some(PropertyValueKind::IntValue(v)) => int_value(*v, pv.r#type),
                Some(PropertyValueKind::LongValue(v)) => long_value(*v, pv.r#type),
                Some(PropertyValueKind::FloatValue(v)) => float32(*v),
                Some(PropertyValueKind::DoubleValue(v)) => float(*v),
                Some(PropertyValueKind::BooleanValue(v)) => Value::Bool(*v),
                Some(PropertyValueKind::StringValue(v)) => Value::String(v.clone()),
                Some(PropertyValueKind::PropertysetValue(s)) => property_set(s, depth + 1)?,
                Some(PropertyValueKind::PropertysetsValue(list)) => Value::Array(
                    list.propertyset
                        .iter()
                        .map(|s| property_set(s, depth + 1))
                        .collect::<Result<_, _>>()?,
                ),
            }
        };
        super::insert_unique(&mut out, key, value);
    }
    // Keys without a value are listed, not dropped.
    for key in set.keys.iter().skip(set.values.len()) {
        super::insert_unique(&mut out, key.clone(), Value::Null);
    }
    Ok(Value::Object(out))
}

/// Encoding helpers for tests and demo traffic: real Sparkplug payloads
/// built with the same schema (prost encodes them).
pub mod build {
    use super::schema::{Metric, MetricValue, Payload};

    /// A metric with a name (births) or only an alias (data).
    pub fn metric(
        name: Option<&str>,
        alias: Option<u64>,
        datatype: Option<u32>,
        value: MetricValue,
    ) -> Metric {
        Metric {
            name: name.map(str::to_string),
            alias,
            datatype,
            value: Some(value),
            ..Metric::default()
        }
    }

    pub fn payload(timestamp: u64, seq: u64, metrics: Vec<Metric>) -> Vec<u8> {
        prost::Message::encode_to_vec(&Payload {
            timestamp: Some(timestamp),
            seq: Some(seq),
            metrics,
            ..Payload::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::build::{metric, payload};
    use super::datatype::*;
    use super::*;
    use serde_json::json;

    const NBIRTH: &str = "spBv1.0/plant/NBIRTH/edge1";
    const DBIRTH: &str = "spBv1.0/plant/DBIRTH/edge1/press";
    const DDATA: &str = "spBv1.0/plant/DDATA/edge1/press";

    fn nbirth() -> Vec<u8> {
        payload(
            1_700_000_000_000,
            0,
            vec![
                metric(
                    Some("bdSeq"),
                    Some(0),
                    Some(UINT64),
                    MetricValue::LongValue(3),
                ),
                metric(
                    Some("Node Control/Rebirth"),
                    Some(1),
                    Some(BOOLEAN),
                    MetricValue::BooleanValue(false),
                ),
            ],
        )
    }

    fn dbirth() -> Vec<u8> {
        payload(
            1_700_000_000_010,
            1,
            vec![
                metric(
                    Some("Temperature"),
                    Some(10),
                    Some(FLOAT),
                    MetricValue::FloatValue(20.5),
                ),
                metric(
                    Some("Offset"),
                    Some(11),
                    Some(INT16),
                    MetricValue::IntValue(0),
                ),
            ],
        )
    }

    fn ddata() -> Vec<u8> {
        payload(
            1_700_000_001_000,
            2,
            vec![
                metric(None, Some(10), None, MetricValue::FloatValue(21.25)),
                // -5 as an Int16 travels as 65531 in the uint32 field.
                metric(None, Some(11), None, MetricValue::IntValue(65_531)),
            ],
        )
    }

    #[test]
    fn sparkplug_topic_parts_parsed() {
        let t = SparkplugTopic::parse(DDATA).expect("a Sparkplug topic");
        assert_eq!(
            (
                t.group.as_str(),
                t.kind,
                t.edge.as_str(),
                t.device.as_deref()
            ),
            ("plant", MessageType::DData, "edge1", Some("press"))
        );
        assert_eq!(
            t.birth_topics(),
            vec![NBIRTH.to_string(), DBIRTH.to_string()]
        );
        assert!(SparkplugTopic::parse("spBv1.0/plant/NDATA/edge1").is_some());
        assert!(SparkplugTopic::parse("spBv1.0/plant/DDATA/edge1").is_none());
        assert!(SparkplugTopic::parse("spBv1.0/plant/NDATA/edge1/x").is_none());
        assert!(SparkplugTopic::parse("spAv1.0/plant/NDATA/edge1").is_none());
        assert_eq!(
            SparkplugTopic::parse("spBv1.0/STATE/scada").map(|t| t.kind),
            Some(MessageType::State)
        );
    }

    #[test]
    fn sparkplug_nbirth_metrics_with_names_aliases_datatypes() {
        let mut aliases = SparkplugAliases::default();
        let v = decode(NBIRTH, &nbirth(), &mut aliases).expect("valid NBIRTH");
        assert_eq!(
            v,
            json!({
                "timestamp": 1_700_000_000_000_u64,
                "seq": 0,
                "metrics": [
                    {"name": "bdSeq", "alias": 0, "datatype": "UInt64", "value": 3},
                    {"name": "Node Control/Rebirth", "alias": 1, "datatype": "Boolean", "value": false},
                ]
            })
        );
        assert_eq!(aliases.len(), 2);
        assert_eq!(aliases.name(NBIRTH, 1), Some("Node Control/Rebirth"));
    }

    #[test]
    fn sparkplug_ddata_by_alias_named_from_dbirth() {
        let mut aliases = SparkplugAliases::default();
        decode(NBIRTH, &nbirth(), &mut aliases).expect("valid NBIRTH");
        decode(DBIRTH, &dbirth(), &mut aliases).expect("valid DBIRTH");
        let v = decode(DDATA, &ddata(), &mut aliases).expect("valid DDATA");
        assert_eq!(
            v["metrics"],
            json!([
                {"name": "Temperature", "alias": 10, "datatype": "Float", "value": 21.25},
                {"name": "Offset", "alias": 11, "datatype": "Int16", "value": -5},
            ])
        );
        assert!(v.get("$unnamed_aliases").is_none());
    }

    #[test]
    fn sparkplug_ddata_without_birth_lists_unnamed_aliases() {
        let v = decode(DDATA, &ddata(), &mut SparkplugAliases::default()).expect("valid DDATA");
        assert_eq!(v["$unnamed_aliases"], json!([10, 11]));
        assert_eq!(v["metrics"][1]["value"], json!(65_531));
        assert!(v["metrics"][0].get("name").is_none());
    }

    #[test]
    fn sparkplug_rebirth_replaces_the_node_tables() {
        let mut aliases = SparkplugAliases::default();
        decode(NBIRTH, &nbirth(), &mut aliases).expect("valid NBIRTH");
        decode(DBIRTH, &dbirth(), &mut aliases).expect("valid DBIRTH");
        assert_eq!(aliases.len(), 4);
        let rebirth = payload(
            5,
            0,
            vec![metric(
                Some("renamed"),
                Some(0),
                Some(INT32),
                MetricValue::IntValue(1),
            )],
        );
        decode(NBIRTH, &rebirth, &mut aliases).expect("valid NBIRTH");
        assert_eq!(aliases.len(), 1);
        assert_eq!(aliases.name(NBIRTH, 0), Some("renamed"));
        assert_eq!(aliases.name(DDATA, 10), None, "device table dropped");
    }

    #[test]
    fn sparkplug_other_edge_nodes_do_not_share_aliases() {
        let mut aliases = SparkplugAliases::default();
        decode(DBIRTH, &dbirth(), &mut aliases).expect("valid DBIRTH");
        assert_eq!(aliases.name("spBv1.0/plant/DDATA/edge2/press", 10), None);
        assert_eq!(aliases.name("spBv1.0/other/DDATA/edge1/press", 10), None);
        assert_eq!(aliases.name(DDATA, 10), Some("Temperature"));
    }

    #[test]
    fn sparkplug_text_on_its_topic_is_not_shown_as_empty_payload() {
        let mut aliases = SparkplugAliases::default();
        for text in [&b"ONLINE"[..], b"hello", br#"{"online":true}"#, b"42"] {
            let err = decode(DDATA, text, &mut aliases)
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(err.starts_with("not a Sparkplug B payload"), "{err}");
        }
        let err = decode(DDATA, b"", &mut aliases)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.starts_with("not a Sparkplug B payload"), "{err}");
    }

    #[test]
    fn sparkplug_random_binary_is_refused_not_shown_as_empty() {
        let mut aliases = SparkplugAliases::default();
        // Valid protobuf (field 9, varint) but none of Sparkplug's fields.
        let err = decode(DDATA, &[0x48, 0x01], &mut aliases)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("no timestamp, seq or metrics"), "{err}");
        // Not protobuf at all.
        assert!(decode(DDATA, &[0xff, 0xff, 0xff, 0xff], &mut aliases).is_err());
        for seed in 0u32..200 {
            // Cheap deterministic noise: never a panic, whatever comes out.
            let bytes: Vec<u8> = (0..64u32)
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 7) as u8)
                .collect();
            let _ = decode(DDATA, &bytes, &mut aliases);
        }
    }

    #[test]
    fn sparkplug_dataset_template_and_properties_decoded() {
        use schema::*;
        let ds = DataSet {
            num_of_columns: Some(2),
            columns: vec!["t".into(), "ok".into()],
            types: vec![INT8, BOOLEAN],
            rows: vec![Row {
                elements: vec![
                    DataSetValue {
                        value: Some(DataSetValueKind::IntValue(255)),
                    },
                    DataSetValue {
                        value: Some(DataSetValueKind::BooleanValue(true)),
                    },
                ],
            }],
        };
        let tpl = Template {
            version: Some("v1".into()),
            metrics: vec![metric(
                Some("inner"),
                None,
                Some(DOUBLE),
                MetricValue::DoubleValue(1.5),
            )],
            template_ref: Some("Motor".into()),
            ..Template::default()
        };
        let mut with_props = metric(
            Some("speed"),
            Some(3),
            Some(UINT32),
            MetricValue::IntValue(7),
        );
        with_props.properties = Some(PropertySet {
            keys: vec!["engUnit".into()],
            values: vec![PropertyValue {
                r#type: Some(STRING),
                is_null: None,
                value: Some(PropertyValueKind::StringValue("rpm".into())),
            }],
        });
        let bytes = payload(
            1,
            0,
            vec![
                metric(Some("table"), None, Some(16), MetricValue::DatasetValue(ds)),
                metric(
                    Some("motor"),
                    None,
                    Some(19),
                    MetricValue::TemplateValue(tpl),
                ),
                with_props,
            ],
        );
        let v = decode(NBIRTH, &bytes, &mut SparkplugAliases::default()).expect("valid");
        assert_eq!(
            v["metrics"][0]["value"],
            json!({"columns": ["t", "ok"], "types": ["Int8", "Boolean"], "rows": [[-1, true]]})
        );
        assert_eq!(v["metrics"][1]["value"]["template_ref"], json!("Motor"));
        assert_eq!(v["metrics"][1]["value"]["metrics"][0]["value"], json!(1.5));
        assert_eq!(v["metrics"][2]["properties"], json!({"engUnit": "rpm"}));
    }

    #[test]
    fn sparkplug_deeply_nested_templates_are_refused_not_a_crash() {
        let mut inner = Template::default();
        for _ in 0..150 {
            inner = Template {
                metrics: vec![metric(
                    Some("t"),
                    None,
                    Some(19),
                    MetricValue::TemplateValue(inner),
                )],
                ..Template::default()
            };
        }
        let bytes = payload(
            1,
            0,
            vec![metric(
                Some("t"),
                None,
                Some(19),
                MetricValue::TemplateValue(inner),
            )],
        );
        // prost's own recursion limit or ours: an error either way.
        assert!(decode(NBIRTH, &bytes, &mut SparkplugAliases::default()).is_err());
    }

    #[test]
    fn sparkplug_alias_budget_refuses_births_past_it() {
        let mut aliases = SparkplugAliases::default();
        let many: Vec<Metric> = (0..(MAX_ALIASES as u64 / 2 + 1))
            .map(|i| metric(Some("m"), Some(i), None, MetricValue::BooleanValue(true)))
            .collect();
        let p = Payload {
            timestamp: Some(1),
            metrics: many,
            ..Payload::default()
        };
        aliases.learn_payload(&SparkplugTopic::parse(NBIRTH).expect("topic"), &p);
        aliases.learn_payload(
            &SparkplugTopic::parse("spBv1.0/plant/NBIRTH/edge2").expect("topic"),
            &p,
        );
        assert_eq!(aliases.refused(), 1);
        assert_eq!(aliases.len(), MAX_ALIASES / 2 + 1);
    }
}
