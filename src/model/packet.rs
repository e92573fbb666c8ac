//! One record per MQTT control packet that crossed the wire.

use crate::model::protocol::{Properties, ProtocolVersion, ReasonContext, reason_text};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client → broker.
    Out,
    /// Broker → client.
    In,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PacketKind {
    Connect,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
    /// MQTT 5 only: enhanced authentication.
    Auth,
}

impl PacketKind {
    /// The upper-case name the MQTT specification uses.
    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Connect => "CONNECT",
            PacketKind::Connack => "CONNACK",
            PacketKind::Publish => "PUBLISH",
            PacketKind::Puback => "PUBACK",
            PacketKind::Pubrec => "PUBREC",
            PacketKind::Pubrel => "PUBREL",
            PacketKind::Pubcomp => "PUBCOMP",
            PacketKind::Subscribe => "SUBSCRIBE",
            PacketKind::Suback => "SUBACK",
            PacketKind::Unsubscribe => "UNSUBSCRIBE",
            PacketKind::Unsuback => "UNSUBACK",
            PacketKind::Pingreq => "PINGREQ",
            PacketKind::Pingresp => "PINGRESP",
            PacketKind::Disconnect => "DISCONNECT",
            PacketKind::Auth => "AUTH",
        }
    }

    /// What a reason code in this packet means (MQTT 5).
    pub fn reason_context(self) -> ReasonContext {
        match self {
            PacketKind::Connack | PacketKind::Connect => ReasonContext::Connack,
            PacketKind::Suback | PacketKind::Subscribe => ReasonContext::Suback,
            PacketKind::Unsuback | PacketKind::Unsubscribe => ReasonContext::Unsuback,
            PacketKind::Disconnect => ReasonContext::Disconnect,
            PacketKind::Auth => ReasonContext::Auth,
            _ => ReasonContext::PublishAck,
        }
    }
}

/// Fields a packet carries beyond its kind; only what applies is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PacketDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dup: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// CONNECT
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_session: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<bool>,
    /// CONNACK
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_present: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_code: Option<String>,
    /// SUBSCRIBE / UNSUBSCRIBE: the filters and requested QoS.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<(String, u8)>,
    /// SUBACK: granted QoS per filter, 128 for a refusal (MQTT 5: the
    /// reason code per filter).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub granted: Vec<u8>,
    /// UNSUBACK (MQTT 5): the reason code per filter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<u8>,
    /// CONNECT: the protocol spoken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolVersion>,
    /// MQTT 5: the packet's reason code (CONNACK, PUBACK, PUBREC, PUBREL,
    /// PUBCOMP, DISCONNECT, AUTH).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<u8>,
    /// `reason` in words, as the specification names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// PUBLISH: the topic was not on the wire but came from a topic alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_from_alias: Option<bool>,
    /// MQTT 5 properties the packet carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<Box<Properties>>,
}

impl PacketDetail {
    /// Sets the reason code and its words for a packet of `kind`.
    pub fn set_reason(&mut self, kind: PacketKind, code: u8) {
        self.reason = Some(code);
        self.reason_text = Some(reason_text(code, kind.reason_context()));
    }

    /// The reason code, if it says the request failed (0x80 and above).
    pub fn failure(&self) -> Option<u8> {
        self.reason
            .filter(|&c| crate::model::protocol::is_failure(c))
            .or_else(|| self.granted.iter().copied().find(|&c| c >= 0x80))
            .or_else(|| self.reasons.iter().copied().find(|&c| c >= 0x80))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PacketRecord {
    /// Position in its connection's packet sequence, given by the worker
    /// (0 for the first packet of the connection): messages link to their
    /// PUBLISH record by it.
    #[serde(skip)]
    pub seq: u64,
    /// Microseconds since the worker started (monotonic).
    pub t_us: u64,
    pub dir: Direction,
    pub kind: PacketKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    /// Encoded size of the whole frame, fixed header included.
    pub bytes: usize,
    #[serde(flatten)]
    pub detail: PacketDetail,
}

impl PacketRecord {
    /// A record with no QoS and no detail fields set yet.
    pub fn new(
        t_us: u64,
        dir: Direction,
        kind: PacketKind,
        pkid: Option<u16>,
        bytes: usize,
    ) -> PacketRecord {
        PacketRecord {
            seq: 0,
            t_us,
            dir,
            kind,
            pkid,
            qos: None,
            bytes,
            detail: PacketDetail::default(),
        }
    }
}

/// Bytes the MQTT 3.1.1 "remaining length" varint takes for `len`.
pub fn remaining_length_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Full frame size of a PUBLISH: fixed header, topic, packet id (QoS > 0) and payload.
pub fn publish_wire_size(topic_len: usize, qos: u8, payload_len: usize) -> usize {
    let remaining = 2 + topic_len + if qos > 0 { 2 } else { 0 } + payload_len;
    1 + remaining_length_bytes(remaining) + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_qos1_a_b_hello_is_14_bytes() {
        // 0x32, len 12, 0x00 0x03 'a/b', pkid 2 bytes, 'hello'
        assert_eq!(publish_wire_size(3, 1, 5), 14);
    }

    #[test]
    fn publish_qos0_has_no_packet_id() {
        assert_eq!(publish_wire_size(3, 0, 5), 12);
    }

    #[test]
    fn publish_size_matches_rumqttc_encoding_across_varint_boundaries() {
        for payload_len in [
            0usize, 120, 121, 122, 200, 16_370, 16_380, 2_097_140, 2_097_150,
        ] {
            for qos in [0u8, 1, 2] {
                let q = match qos {
                    0 => rumqttc::QoS::AtMostOnce,
                    1 => rumqttc::QoS::AtLeastOnce,
                    _ => rumqttc::QoS::ExactlyOnce,
                };
                let mut p = rumqttc::Publish::new("a/b", q, vec![7u8; payload_len]);
                p.pkid = if qos > 0 { 1 } else { 0 };
                assert_eq!(
                    publish_wire_size(3, qos, payload_len),
                    p.size(),
                    "payload {payload_len} qos {qos}"
                );
            }
        }
    }
}
