//! The MQTT 5 adapter: rumqttc's v5 packets, properties and reason codes in
//! and out of the neutral shapes of `wire.rs`.

use super::options::{from_qos_v5, to_qos_v5};
use super::wire::{InBody, InPacket, OutKind};
use crate::model::packet::{Direction, PacketKind, PacketRecord};
use crate::model::protocol::{Properties, ProtocolVersion, Qos, ReasonContext, reason_text};
use crate::profile::{RetainHandling, SubscriptionSpec};
use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Disconnect, DisconnectReasonCode, Filter, Packet, PubAckReason,
    PubCompReason, PubRecReason, PubRelReason, Publish, PublishProperties, RetainForwardRule,
    Subscribe, SubscribeProperties, SubscribeReasonCode, UnsubAckReason, Unsubscribe,
};
use rumqttc::v5::{EventLoop, MqttOptions, Request};
use std::collections::HashMap;

/// The reason code of a CONNACK (MQTT 5 §3.2.2.2).
pub(crate) fn connack_code(code: ConnectReturnCode) -> u8 {
    use ConnectReturnCode as C;
    match code {
        C::Success => 0x00,
        C::RefusedProtocolVersion => 0x84,
        C::BadClientId => 0x85,
        C::ServiceUnavailable => 0x88,
        C::UnspecifiedError => 0x80,
        C::MalformedPacket => 0x81,
        C::ProtocolError => 0x82,
        C::ImplementationSpecificError => 0x83,
        C::UnsupportedProtocolVersion => 0x84,
        C::ClientIdentifierNotValid => 0x85,
        C::BadUserNamePassword => 0x86,
        C::NotAuthorized => 0x87,
        C::ServerUnavailable => 0x88,
        C::ServerBusy => 0x89,
        C::Banned => 0x8A,
        C::BadAuthenticationMethod => 0x8C,
        C::TopicNameInvalid => 0x90,
        C::PacketTooLarge => 0x95,
        C::QuotaExceeded => 0x97,
        C::PayloadFormatInvalid => 0x99,
        C::RetainNotSupported => 0x9A,
        C::QoSNotSupported => 0x9B,
        C::UseAnotherServer => 0x9C,
        C::ServerMoved => 0x9D,
        C::ConnectionRateExceeded => 0x9F,
    }
}

fn puback_code(r: PubAckReason) -> u8 {
    use PubAckReason as R;
    match r {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

fn pubrec_code(r: PubRecReason) -> u8 {
    use PubRecReason as R;
    match r {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

fn pubrel_code(r: PubRelReason) -> u8 {
    match r {
        PubRelReason::Success => 0x00,
        PubRelReason::PacketIdentifierNotFound => 0x92,
    }
}

fn pubcomp_code(r: PubCompReason) -> u8 {
    match r {
        PubCompReason::Success => 0x00,
        PubCompReason::PacketIdentifierNotFound => 0x92,
    }
}

fn suback_code(r: &SubscribeReasonCode) -> u8 {
    use SubscribeReasonCode as R;
    match r {
        R::Success(q) => *q as u8,
        R::Failure | R::Unspecified => 0x80,
        R::ImplementationSpecific => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicFilterInvalid => 0x8F,
        R::PkidInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::SharedSubscriptionsNotSupported => 0x9E,
        R::SubscriptionIdNotSupported => 0xA1,
        R::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

fn unsuback_code(r: &UnsubAckReason) -> u8 {
    use UnsubAckReason as R;
    match r {
        R::Success => 0x00,
        R::NoSubscriptionExisted => 0x11,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicFilterInvalid => 0x8F,
        R::PacketIdentifierInUse => 0x91,
    }
}

fn reason_props(reason_string: Option<String>, user: Vec<(String, String)>) -> Properties {
    Properties {
        reason_string,
        user_property: user,
        ..Properties::default()
    }
}

/// The neutral parts of a PUBACK, PUBREC, PUBREL or PUBCOMP.
fn ack(
    kind: PacketKind,
    pkid: u16,
    code: u8,
    props: Option<Properties>,
) -> (PacketKind, Option<u16>, InBody, Option<Properties>) {
    (kind, Some(pkid), InBody::Ack { reason: Some(code) }, props)
}

pub(crate) fn publish_props(p: &PublishProperties) -> Properties {
    Properties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: p.topic_alias,
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_property: p.user_properties.clone(),
        subscription_identifier: p.subscription_identifiers.clone(),
        content_type: p.content_type.clone(),
        ..Properties::default()
    }
}

/// Neutral properties of an outgoing PUBLISH → rumqttc's (no topic alias:
/// mqscope never sends aliases, so the topic is always on the wire).
pub(crate) fn to_publish_props(p: &Properties) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: None,
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_property.clone(),
        subscription_identifiers: Vec::new(),
        content_type: p.content_type.clone(),
    }
}

/// Resolves incoming topic aliases. rumqttc resolves them only after it has
/// handed out the packet, so the event still has an empty topic.
#[derive(Debug, Default)]
pub(crate) struct Aliases(HashMap<u16, String>);

impl Aliases {
    /// A new connection starts with no aliases (MQTT 5 §3.3.2.3.4).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

pub(crate) fn incoming(packet: Packet, aliases: &mut Aliases) -> InPacket {
    let size = packet.size();
    let (kind, pkid, body, props) = match packet {
        Packet::ConnAck(ack) => {
            let code = connack_code(ack.code);
            let props = ack.properties.map(|p| Properties {
                session_expiry_interval: p.session_expiry_interval,
                receive_maximum: p.receive_max,
                maximum_qos: p.max_qos,
                retain_available: p.retain_available,
                maximum_packet_size: p.max_packet_size,
                assigned_client_identifier: p.assigned_client_identifier,
                topic_alias_maximum: p.topic_alias_max,
                reason_string: p.reason_string,
                user_property: p.user_properties,
                wildcard_subscription_available: p.wildcard_subscription_available,
                subscription_identifier_available: p.subscription_identifiers_available,
                shared_subscription_available: p.shared_subscription_available,
                server_keep_alive: p.server_keep_alive,
                response_information: p.response_information,
                server_reference: p.server_reference,
                authentication_method: p.authentication_method,
                authentication_data: p.authentication_data,
                ..Properties::default()
            });
            (
                PacketKind::Connack,
                None,
                InBody::ConnAck {
                    session_present: ack.session_present,
                    code,
                    code_text: if code == 0 {
                        "accepted".into()
                    } else {
                        format!(
                            "refused by the broker: {}",
                            reason_text(code, ReasonContext::Connack)
                        )
                    },
                },
                props,
            )
        }
        Packet::Publish(p) => {
            let props = p.properties.as_ref().map(publish_props);
            let alias = props.as_ref().and_then(|p| p.topic_alias);
            let mut topic = String::from_utf8_lossy(&p.topic).into_owned();
            let mut from_alias = false;
            if let Some(alias) = alias {
                if topic.is_empty() {
                    topic = aliases.0.get(&alias).cloned().unwrap_or_default();
                    from_alias = true;
                } else {
                    aliases.0.insert(alias, topic.clone());
                }
            }
            (
                PacketKind::Publish,
                (p.pkid != 0).then_some(p.pkid),
                InBody::Publish {
                    topic,
                    payload: p.payload,
                    qos: from_qos_v5(p.qos),
                    retain: p.retain,
                    dup: p.dup,
                    topic_from_alias: from_alias,
                },
                props,
            )
        }
        Packet::PubAck(a) => ack(
            PacketKind::Puback,
            a.pkid,
            puback_code(a.reason),
            a.properties
                .map(|p| reason_props(p.reason_string, p.user_properties)),
        ),
        Packet::PubRec(a) => ack(
            PacketKind::Pubrec,
            a.pkid,
            pubrec_code(a.reason),
            a.properties
                .map(|p| reason_props(p.reason_string, p.user_properties)),
        ),
        Packet::PubRel(a) => ack(
            PacketKind::Pubrel,
            a.pkid,
            pubrel_code(a.reason),
            a.properties
                .map(|p| reason_props(p.reason_string, p.user_properties)),
        ),
        Packet::PubComp(a) => ack(
            PacketKind::Pubcomp,
            a.pkid,
            pubcomp_code(a.reason),
            a.properties
                .map(|p| reason_props(p.reason_string, p.user_properties)),
        ),
        Packet::SubAck(a) => (
            PacketKind::Suback,
            Some(a.pkid),
            InBody::SubAck {
                codes: a.return_codes.iter().map(suback_code).collect(),
                v5: true,
            },
            a.properties
                .map(|p| reason_props(p.reason_string, p.user_properties)),
        ),
        Packet::UnsubAck(a) => (
            PacketKind::Unsuback,
            Some(a.pkid),
            InBody::UnsubAck {
                codes: a.reasons.iter().map(unsuback_code).collect(),
            },
            a.properties
                .map(|p| reason_props(p.reason_string, p.user_properties)),
        ),
        Packet::Disconnect(d) => (
            PacketKind::Disconnect,
            None,
            InBody::Disconnect {
                reason: Some(d.reason_code as u8),
            },
            d.properties.map(|p| Properties {
                session_expiry_interval: p.session_expiry_interval,
                reason_string: p.reason_string,
                user_property: p.user_properties,
                server_reference: p.server_reference,
                ..Properties::default()
            }),
        ),
        Packet::Auth(a) => (
            PacketKind::Auth,
            None,
            InBody::Auth {
                // rumqttc does not export the enum's type: read its name.
                reason: match format!("{:?}", a.code).as_str() {
                    "Success" => 0x00,
                    "Continue" => 0x18,
                    _ => 0x19,
                },
            },
            a.properties.map(|p| Properties {
                authentication_method: p.method,
                authentication_data: p.data,
                reason_string: p.reason,
                user_property: p.user_properties,
                ..Properties::default()
            }),
        ),
        Packet::PingResp(_) => (PacketKind::Pingresp, None, InBody::Plain, None),
        Packet::PingReq(_) => (PacketKind::Pingreq, None, InBody::Plain, None),
        Packet::Connect(..) => (PacketKind::Connect, None, InBody::Plain, None),
        Packet::Subscribe(s) => (PacketKind::Subscribe, Some(s.pkid), InBody::Plain, None),
        Packet::Unsubscribe(u) => (PacketKind::Unsubscribe, Some(u.pkid), InBody::Plain, None),
    };
    // An ack of 4 bytes carries no reason code on the wire (success is
    // implied); rumqttc still fills one in. Keep the trace equal to the wire.
    let body = match body {
        InBody::Ack { .. } if size <= 4 => InBody::Ack { reason: None },
        other => other,
    };
    // An ack with a reason code and no properties: rumqttc's `size()`
    // counts a property-length byte, but the spec lets it be left out when
    // the remaining length is 3 (MQTT 5 §3.4.2.2), and brokers do so
    // (Mosquitto's PUBACK 0x87 is 5 bytes). rumqttc's reader cannot tell the
    // two apart; the shorter form is the one on the wire in practice.
    let size = match (&body, &props) {
        (InBody::Ack { reason: Some(_) }, None) if size == 6 => 5,
        _ => size,
    };
    InPacket {
        kind,
        size,
        pkid,
        body,
        props: props.and_then(Properties::boxed),
    }
}

pub(crate) fn outgoing(out: Outgoing) -> Option<OutKind> {
    super::v4::outgoing(out)
}

/// What rumqttc writes for packets mqscope does not shadow: acks without
/// properties (4 bytes), pings (2), DISCONNECT with reason 0x00 (2).
pub(crate) fn plain_size(out: OutKind) -> usize {
    match out {
        OutKind::PingReq | OutKind::PingResp => 2,
        OutKind::Disconnect => Disconnect {
            reason_code: DisconnectReasonCode::NormalDisconnection,
            properties: None,
        }
        .size(),
        _ => 4,
    }
}

pub(crate) fn publish_size(
    topic: &str,
    qos: Qos,
    payload_len: usize,
    props: Option<&Properties>,
) -> usize {
    // The payload itself does not change the header's shape beyond its
    // length: size an empty one and add the length, so a 256 MiB payload is
    // not copied just to be measured.
    let mut p = Publish::new(
        topic,
        to_qos_v5(qos),
        Bytes::new(),
        props.map(to_publish_props),
    );
    p.pkid = if qos == Qos::AtMostOnce { 0 } else { 1 };
    let empty = p.size();
    let remaining_empty = empty - 1 - varint_len(empty - 1);
    let remaining = remaining_empty + payload_len;
    1 + varint_len_of(remaining) + remaining
}

fn varint_len(total_minus_one: usize) -> usize {
    // `total_minus_one` = varint bytes + remaining length: find the varint size.
    (1..=4)
        .find(|&n| varint_len_of(total_minus_one - n) == n)
        .unwrap_or(1)
}

fn varint_len_of(len: usize) -> usize {
    crate::model::packet::remaining_length_bytes(len)
}

pub(crate) fn filter(spec: &SubscriptionSpec) -> Filter {
    let mut f = Filter::new(spec.filter.clone(), to_qos_v5(spec.qos));
    f.nolocal = spec.no_local;
    f.preserve_retain = spec.retain_as_published;
    f.retain_forward_rule = match spec.retain_handling {
        RetainHandling::OnSubscribe => RetainForwardRule::OnEverySubscribe,
        RetainHandling::OnNewSubscribe => RetainForwardRule::OnNewSubscribe,
        RetainHandling::Never => RetainForwardRule::Never,
    };
    f
}

/// SUBSCRIBE properties of one spec (identifier and user properties apply to
/// the whole packet, so specs with properties are subscribed one by one).
pub(crate) fn subscribe_props(spec: &SubscriptionSpec) -> Option<SubscribeProperties> {
    (spec.subscription_identifier.is_some() || !spec.user_properties.is_empty()).then(|| {
        SubscribeProperties {
            id: spec.subscription_identifier.map(|i| i as usize),
            user_properties: spec.user_properties.clone(),
        }
    })
}

pub(crate) fn subscribe_size(
    specs: &[SubscriptionSpec],
    props: Option<&SubscribeProperties>,
) -> usize {
    Subscribe {
        pkid: 1,
        filters: specs.iter().map(filter).collect(),
        properties: props.cloned(),
    }
    .size()
}

pub(crate) fn neutral_subscribe_props(p: &SubscribeProperties) -> Option<Box<Properties>> {
    Properties {
        subscription_identifier: p.id.into_iter().collect(),
        user_property: p.user_properties.clone(),
        ..Properties::default()
    }
    .boxed()
}

pub(crate) fn unsubscribe_size(filters: &[String]) -> usize {
    Unsubscribe {
        pkid: 1,
        filters: filters.to_vec(),
        properties: None,
    }
    .size()
}

/// The CONNECT rumqttc sends, rebuilt from the options (it is not an event).
pub(crate) fn connect_record(opts: &MqttOptions, t_us: u64) -> PacketRecord {
    let login = opts.credentials();
    let will = opts.last_will();
    let props = opts.connect_properties();
    let connect = rumqttc::v5::mqttbytes::v5::Connect {
        keep_alive: opts.keep_alive().as_secs().min(u64::from(u16::MAX)) as u16,
        client_id: opts.client_id(),
        clean_start: opts.clean_start(),
        properties: props.clone(),
    };
    let size = connect.size(&will, &login);
    let mut r = PacketRecord::new(t_us, Direction::Out, PacketKind::Connect, None, size);
    r.detail.client_id = Some(connect.client_id.clone());
    r.detail.clean_session = Some(connect.clean_start);
    r.detail.keep_alive = Some(connect.keep_alive);
    r.detail.will_topic = will
        .as_ref()
        .map(|w| String::from_utf8_lossy(&w.topic).into_owned());
    r.detail.username = Some(login.is_some());
    r.detail.protocol = Some(ProtocolVersion::V5);
    r.detail.props = props.and_then(|p| {
        Properties {
            session_expiry_interval: p.session_expiry_interval,
            receive_maximum: p.receive_maximum,
            maximum_packet_size: p.max_packet_size,
            topic_alias_maximum: p.topic_alias_max,
            request_response_information: p.request_response_info,
            request_problem_information: p.request_problem_info,
            user_property: p.user_properties,
            authentication_method: p.authentication_method,
            authentication_data: p.authentication_data,
            ..Properties::default()
        }
        .boxed()
    });
    r
}

/// As `v4::drop_unsent` (DUP on the kept publishes too), for the v5 event loop.
pub(crate) fn drop_unsent(eventloop: &mut EventLoop) -> (usize, usize, usize) {
    let (mut p, mut s, mut u) = (0, 0, 0);
    eventloop.pending.retain_mut(|r| match r {
        Request::Publish(x) if x.pkid == 0 => {
            p += 1;
            false
        }
        Request::Subscribe(x) if x.pkid == 0 => {
            s += 1;
            false
        }
        Request::Unsubscribe(x) if x.pkid == 0 => {
            u += 1;
            false
        }
        Request::Disconnect | Request::PingReq => false,
        Request::Publish(x) => {
            // Kept to be sent again if the session resumes: a retransmission
            // must carry DUP (MQTT 3.1.1 §3.3.1.1, MQTT 5 §3.3.1.1), which
            // rumqttc 0.25.1's `MqttState::clean` leaves unset.
            x.dup = true;
            true
        }
        _ => true,
    });
    (p, s, u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_size_with_properties_equals_rumqttc_encoding() {
        let props = Properties {
            content_type: Some("application/json".into()),
            user_property: vec![("k".into(), "v".into())],
            correlation_data: Some(Bytes::from_static(b"abc")),
            message_expiry_interval: Some(60),
            ..Properties::default()
        };
        for payload_len in [0usize, 5, 100, 127, 200, 16_380, 2_097_140] {
            for qos in Qos::ALL {
                for props in [None, Some(&props)] {
                    let mut p = Publish::new(
                        "a/b",
                        to_qos_v5(qos),
                        vec![7u8; payload_len],
                        props.map(to_publish_props),
                    );
                    p.pkid = if qos == Qos::AtMostOnce { 0 } else { 1 };
                    assert_eq!(
                        publish_size("a/b", qos, payload_len, props),
                        p.size(),
                        "payload {payload_len} {qos} props {}",
                        props.is_some()
                    );
                }
            }
        }
    }

    #[test]
    fn an_aliased_publish_gets_its_topic_back() {
        let mut aliases = Aliases::default();
        let first = Publish::new(
            "plant/line1/temp",
            rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            "20",
            Some(PublishProperties {
                topic_alias: Some(3),
                ..PublishProperties::default()
            }),
        );
        let mut second = first.clone();
        second.topic = Bytes::new();
        incoming(Packet::Publish(first), &mut aliases);
        let p = incoming(Packet::Publish(second), &mut aliases);
        match p.body {
            InBody::Publish {
                topic,
                topic_from_alias,
                ..
            } => {
                assert_eq!(topic, "plant/line1/temp");
                assert!(topic_from_alias);
            }
            other => panic!("not a publish: {other:?}"),
        }
    }

    #[test]
    fn a_refusing_ack_without_properties_is_five_bytes_as_brokers_write_it() {
        use rumqttc::v5::mqttbytes::v5::PubAck;
        let mut ack = PubAck::new(3, None);
        ack.reason = PubAckReason::NotAuthorized;
        let p = incoming(Packet::PubAck(ack), &mut Aliases::default());
        assert_eq!(p.size, 5);
        assert!(matches!(p.body, InBody::Ack { reason: Some(0x87) }));
        let p = incoming(
            Packet::PubAck(PubAck::new(3, None)),
            &mut Aliases::default(),
        );
        assert_eq!(p.size, 4);
        assert!(matches!(p.body, InBody::Ack { reason: None }));
    }

    #[test]
    fn connack_codes_follow_the_specification() {
        assert_eq!(connack_code(ConnectReturnCode::BadUserNamePassword), 0x86);
        assert_eq!(connack_code(ConnectReturnCode::UseAnotherServer), 0x9C);
        assert_eq!(connack_code(ConnectReturnCode::NotAuthorized), 0x87);
    }
}
