//! The protocol's vocabulary, neutral between MQTT 3.1.1 and MQTT 5: QoS,
//! the protocol version, a received [`Message`], the MQTT 5 [`Properties`]
//! any packet may carry, and reason codes in words.
//!
//! Everything downstream of the worker (store, packet log, views, CLI) reads
//! these types; only the worker's adapters know rumqttc.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// MQTT quality of service.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
)]
pub enum Qos {
    #[default]
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Qos {
    pub const ALL: [Qos; 3] = [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce];

    pub fn as_u8(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
            Qos::ExactlyOnce => 2,
        }
    }

    pub fn from_u8(v: u8) -> Option<Qos> {
        match v {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

impl std::fmt::Display for Qos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QoS {}", self.as_u8())
    }
}

/// The protocol version a connection speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProtocolVersion {
    #[default]
    V311,
    V5,
}

impl ProtocolVersion {
    pub fn label(self) -> &'static str {
        match self {
            ProtocolVersion::V311 => "MQTT 3.1.1",
            ProtocolVersion::V5 => "MQTT 5",
        }
    }
}

/// MQTT 5 properties, as one bag for every packet kind: only the ones the
/// packet carries are set. Serialized with the specification's names in
/// snake_case (the `"props"` object of `--trace`); binary data as hex.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Properties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_opt")]
    pub correlation_data: Option<Bytes>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscription_identifier: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_client_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_keep_alive: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_opt")]
    pub authentication_data: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_problem_information: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_delay_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_response_information: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_information: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_maximum: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_alias_maximum: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_alias: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_qos: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_available: Option<u8>,
    /// Keys may repeat; the order is the order on the wire.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_property: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_packet_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wildcard_subscription_available: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_identifier_available: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_subscription_available: Option<u8>,
}

fn hex_opt<S: serde::Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&to_hex(b)),
        None => s.serialize_none(),
    }
}

/// Lower-case hex of `bytes`, no separators.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").ok();
    }
    out
}

impl Properties {
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// `None` for an empty bag, so records and messages stay small.
    pub fn boxed(self) -> Option<Box<Properties>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// Each property set, as (specification name, value in words), in the
    /// order of the specification; user properties one row each.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                rows.push((name, v));
            }
        };
        push(
            "Payload Format Indicator",
            self.payload_format_indicator.map(|v| match v {
                0 => "0 (unspecified bytes)".to_string(),
                1 => "1 (UTF-8 text)".to_string(),
                n => format!("{n} (invalid)"),
            }),
        );
        push(
            "Message Expiry Interval",
            self.message_expiry_interval.map(|s| format!("{s} s")),
        );
        push("Content Type", self.content_type.clone());
        push("Response Topic", self.response_topic.clone());
        push(
            "Correlation Data",
            self.correlation_data.as_ref().map(|d| bytes_in_words(d)),
        );
        if !self.subscription_identifier.is_empty() {
            push(
                "Subscription Identifier",
                Some(
                    self.subscription_identifier
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            );
        }
        push(
            "Session Expiry Interval",
            self.session_expiry_interval.map(|s| match s {
                0 => "0 (ends with the connection)".to_string(),
                u32::MAX => "4294967295 (never expires)".to_string(),
                s => format!("{s} s"),
            }),
        );
        push(
            "Assigned Client Identifier",
            self.assigned_client_identifier.clone(),
        );
        push(
            "Server Keep Alive",
            self.server_keep_alive.map(|s| format!("{s} s")),
        );
        push("Authentication Method", self.authentication_method.clone());
        push(
            "Authentication Data",
            self.authentication_data.as_ref().map(|d| bytes_in_words(d)),
        );
        push(
            "Request Problem Information",
            self.request_problem_information.map(|v| v.to_string()),
        );
        push(
            "Will Delay Interval",
            self.will_delay_interval.map(|s| format!("{s} s")),
        );
        push(
            "Request Response Information",
            self.request_response_information.map(|v| v.to_string()),
        );
        push("Response Information", self.response_information.clone());
        push("Server Reference", self.server_reference.clone());
        push("Reason String", self.reason_string.clone());
        push(
            "Receive Maximum",
            self.receive_maximum.map(|v| v.to_string()),
        );
        push(
            "Topic Alias Maximum",
            self.topic_alias_maximum.map(|v| v.to_string()),
        );
        push("Topic Alias", self.topic_alias.map(|v| v.to_string()));
        push("Maximum QoS", self.maximum_qos.map(|v| v.to_string()));
        push("Retain Available", self.retain_available.map(yes_no));
        push(
            "Maximum Packet Size",
            self.maximum_packet_size.map(|v| format!("{v} bytes")),
        );
        push(
            "Wildcard Subscription Available",
            self.wildcard_subscription_available.map(yes_no),
        );
        push(
            "Subscription Identifier Available",
            self.subscription_identifier_available.map(yes_no),
        );
        push(
            "Shared Subscription Available",
            self.shared_subscription_available.map(yes_no),
        );
        for (k, v) in &self.user_property {
            rows.push(("User Property", format!("{k} = {v}")));
        }
        rows
    }

    /// A compact one-line summary for the timeline ("expiry 60 s, 2 user
    /// properties, reason: ...").
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.reason_string {
            parts.push(format!("reason: {r}"));
        }
        if let Some(a) = self.topic_alias {
            parts.push(format!("alias {a}"));
        }
        if let Some(c) = &self.content_type {
            parts.push(format!("type {c}"));
        }
        if let Some(e) = self.message_expiry_interval {
            parts.push(format!("expiry {e} s"));
        }
        if let Some(r) = &self.response_topic {
            parts.push(format!("response to {r}"));
        }
        if self.correlation_data.is_some() {
            parts.push("correlation".into());
        }
        if !self.subscription_identifier.is_empty() {
            parts.push(format!("sub id {:?}", self.subscription_identifier));
        }
        if !self.user_property.is_empty() {
            parts.push(format!("{} user prop.", self.user_property.len()));
        }
        if parts.is_empty() {
            let n = self.rows().len();
            if n > 0 {
                parts.push(format!("{n} propert{}", if n == 1 { "y" } else { "ies" }));
            }
        }
        parts.join(", ")
    }
}

/// What changed between the properties of two messages, one line each,
/// in the specification's order: "~ Content Type: a -> b", "+ User
/// Property: k = v", "- Response Topic: r". User properties are compared
/// as lists (a repeated key is a second entry).
pub fn property_changes(old: Option<&Properties>, new: Option<&Properties>) -> Vec<String> {
    let empty = Properties::default();
    let rows = |p: Option<&Properties>| -> Vec<(&'static str, String)> {
        p.unwrap_or(&empty)
            .rows()
            .into_iter()
            .filter(|(k, _)| *k != "User Property")
            .collect()
    };
    let (old_rows, new_rows) = (rows(old), rows(new));
    let mut out = Vec::new();
    for (name, value) in &old_rows {
        match new_rows.iter().find(|(n, _)| n == name) {
            Some((_, v)) if v != value => out.push(format!("~ {name}: {value} -> {v}")),
            Some(_) => {}
            None => out.push(format!("- {name}: {value}")),
        }
    }
    for (name, value) in &new_rows {
        if !old_rows.iter().any(|(n, _)| n == name) {
            out.push(format!("+ {name}: {value}"));
        }
    }
    let users = |p: Option<&Properties>| p.map(|p| p.user_property.clone()).unwrap_or_default();
    let (mut old_users, new_users) = (users(old), users(new));
    for pair in &new_users {
        match old_users.iter().position(|p| p == pair) {
            Some(i) => {
                old_users.remove(i);
            }
            None => out.push(format!("+ User Property: {} = {}", pair.0, pair.1)),
        }
    }
    for (k, v) in old_users {
        out.push(format!("- User Property: {k} = {v}"));
    }
    out
}

fn yes_no(v: u8) -> String {
    if v == 0 { "no".into() } else { "yes".into() }
}

/// Correlation or authentication data: text when it is printable UTF-8,
/// hex otherwise.
pub fn bytes_in_words(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) if !s.chars().any(char::is_control) => format!("\"{s}\""),
        _ => format!("0x{}", to_hex(data)),
    }
}

/// A PUBLISH received from the broker.
#[derive(Clone, Debug)]
pub struct Message {
    /// Always the resolved topic, also when it arrived as a topic alias.
    pub topic: String,
    /// Cloning is a reference-count bump, not a copy.
    pub payload: Bytes,
    pub qos: Qos,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
    pub received: SystemTime,
    /// Sequence number of the PUBLISH packet record that carried it in its
    /// connection's packet log: the exact link to its flow.
    pub packet_seq: Option<u64>,
    /// MQTT 5 properties; `None` for 3.1.1 or a v5 message without any.
    pub props: Option<Box<Properties>>,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            topic: String::new(),
            payload: Bytes::new(),
            qos: Qos::AtMostOnce,
            retain: false,
            dup: false,
            pkid: 0,
            received: UNIX_EPOCH,
            packet_seq: None,
            props: None,
        }
    }
}

/// Which packet a reason code came in: the same number means different
/// things in different packets (0x00 is "Granted QoS 0" in a SUBACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasonContext {
    Connack,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PublishAck,
    Suback,
    Unsuback,
    Disconnect,
    Auth,
}

/// An MQTT 5 reason code in words, as the specification names it
/// (MQTT 5 §2.4): "0x87 Not authorized".
pub fn reason_text(code: u8, context: ReasonContext) -> String {
    format!("0x{code:02X} {}", reason_name(code, context))
}

/// The specification's name for a reason code, without the number.
pub fn reason_name(code: u8, context: ReasonContext) -> &'static str {
    use ReasonContext as C;
    match (code, context) {
        (0x00, C::Suback) => "Granted QoS 0",
        (0x00, C::Disconnect) => "Normal disconnection",
        (0x00, _) => "Success",
        (0x01, C::Suback) => "Granted QoS 1",
        (0x02, C::Suback) => "Granted QoS 2",
        (0x04, _) => "Disconnect with Will Message",
        (0x10, _) => "No matching subscribers",
        (0x11, _) => "No subscription existed",
        (0x18, _) => "Continue authentication",
        (0x19, _) => "Re-authenticate",
        (0x80, _) => "Unspecified error",
        (0x81, _) => "Malformed Packet",
        (0x82, _) => "Protocol Error",
        (0x83, _) => "Implementation specific error",
        (0x84, _) => "Unsupported Protocol Version",
        (0x85, _) => "Client Identifier not valid",
        (0x86, _) => "Bad User Name or Password",
        (0x87, _) => "Not authorized",
        (0x88, _) => "Server unavailable",
        (0x89, _) => "Server busy",
        (0x8A, _) => "Banned",
        (0x8B, _) => "Server shutting down",
        (0x8C, _) => "Bad authentication method",
        (0x8D, _) => "Keep Alive timeout",
        (0x8E, _) => "Session taken over",
        (0x8F, _) => "Topic Filter invalid",
        (0x90, _) => "Topic Name invalid",
        (0x91, _) => "Packet Identifier in use",
        (0x92, _) => "Packet Identifier not found",
        (0x93, _) => "Receive Maximum exceeded",
        (0x94, _) => "Topic Alias invalid",
        (0x95, _) => "Packet too large",
        (0x96, _) => "Message rate too high",
        (0x97, _) => "Quota exceeded",
        (0x98, _) => "Administrative action",
        (0x99, _) => "Payload format invalid",
        (0x9A, _) => "Retain not supported",
        (0x9B, _) => "QoS not supported",
        (0x9C, _) => "Use another server",
        (0x9D, _) => "Server moved",
        (0x9E, _) => "Shared Subscriptions not supported",
        (0x9F, _) => "Connection rate exceeded",
        (0xA0, _) => "Maximum connect time",
        (0xA1, _) => "Subscription Identifiers not supported",
        (0xA2, _) => "Wildcard Subscriptions not supported",
        _ => "Unknown reason code",
    }
}

/// Whether a v5 reason code says the request failed (MQTT 5 §2.4: 0x80 and
/// above).
pub fn is_failure(code: u8) -> bool {
    code >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_read_as_the_specification_names_them() {
        assert_eq!(
            reason_text(0x87, ReasonContext::PublishAck),
            "0x87 Not authorized"
        );
        assert_eq!(
            reason_text(0x10, ReasonContext::PublishAck),
            "0x10 No matching subscribers"
        );
        assert_eq!(
            reason_text(0x86, ReasonContext::Connack),
            "0x86 Bad User Name or Password"
        );
        assert_eq!(
            reason_text(0x8E, ReasonContext::Disconnect),
            "0x8E Session taken over"
        );
        assert_eq!(
            reason_text(0x9C, ReasonContext::Connack),
            "0x9C Use another server"
        );
    }

    #[test]
    fn the_same_code_means_different_things_in_different_packets() {
        assert_eq!(reason_name(0x00, ReasonContext::Suback), "Granted QoS 0");
        assert_eq!(
            reason_name(0x00, ReasonContext::Disconnect),
            "Normal disconnection"
        );
        assert_eq!(reason_name(0x00, ReasonContext::PublishAck), "Success");
        assert_eq!(reason_name(0x02, ReasonContext::Suback), "Granted QoS 2");
    }

    #[test]
    fn failures_start_at_0x80() {
        assert!(!is_failure(0x10));
        assert!(is_failure(0x80));
        assert!(is_failure(0x97));
    }

    #[test]
    fn properties_serialize_with_the_specification_names_and_hex_data() {
        let p = Properties {
            content_type: Some("application/json".into()),
            correlation_data: Some(Bytes::from_static(&[0xde, 0xad])),
            user_property: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            subscription_identifier: vec![7],
            ..Properties::default()
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["content_type"], "application/json");
        assert_eq!(json["correlation_data"], "dead");
        assert_eq!(
            json["user_property"],
            serde_json::json!([["k", "v"], ["k", "w"]])
        );
        assert_eq!(json["subscription_identifier"], serde_json::json!([7]));
        assert!(json.get("topic_alias").is_none());
    }

    #[test]
    fn user_properties_keep_repeated_keys_in_wire_order() {
        let p = Properties {
            user_property: vec![("unit".into(), "C".into()), ("unit".into(), "F".into())],
            ..Properties::default()
        };
        let rows = p.rows();
        assert_eq!(rows[0], ("User Property", "unit = C".into()));
        assert_eq!(rows[1], ("User Property", "unit = F".into()));
    }

    #[test]
    fn empty_properties_are_not_boxed() {
        assert!(Properties::default().boxed().is_none());
        let p = Properties {
            topic_alias: Some(3),
            ..Properties::default()
        };
        assert_eq!(p.boxed().map(|b| b.topic_alias), Some(Some(3)));
    }

    #[test]
    fn property_changes_list_what_differs() {
        let old = Properties {
            content_type: Some("text/plain".into()),
            response_topic: Some("r/1".into()),
            user_property: vec![("unit".into(), "C".into()), ("site".into(), "7".into())],
            ..Properties::default()
        };
        let new = Properties {
            content_type: Some("application/json".into()),
            message_expiry_interval: Some(60),
            user_property: vec![("site".into(), "7".into()), ("unit".into(), "F".into())],
            ..Properties::default()
        };
        let changes = property_changes(Some(&old), Some(&new));
        assert_eq!(
            changes,
            vec![
                "~ Content Type: text/plain -> application/json",
                "- Response Topic: r/1",
                "+ Message Expiry Interval: 60 s",
                "+ User Property: unit = F",
                "- User Property: unit = C",
            ]
        );
        assert!(property_changes(Some(&old), Some(&old)).is_empty());
        assert_eq!(property_changes(None, None), Vec::<String>::new());
    }

    #[test]
    fn correlation_data_reads_as_text_or_hex() {
        assert_eq!(bytes_in_words(b"req-1"), "\"req-1\"");
        assert_eq!(bytes_in_words(&[0, 1, 0xff]), "0x0001ff");
    }
}
