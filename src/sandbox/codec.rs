//! The sandbox's wire seam: MQTT 3.1.1 and MQTT 5 packets, parsed by
//! rumqttc's two codecs, turned into one protocol-neutral form ([`In`],
//! [`ConnectReq`]) and written back from one ([`Out`], [`publish_frame`]).
//! The broker itself never sees a codec type, so one broker serves both.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self as m4, QoS};
use rumqttc::v5::mqttbytes as m5;
use rumqttc::v5::mqttbytes::v5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V4,
    V5,
}

/// Properties of a message that travel with it (MQTT 5), forwarded as the
/// spec says: unchanged, to every subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgProps {
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

impl MsgProps {
    fn from_publish(p: &v5::PublishProperties) -> Option<MsgProps> {
        let m = MsgProps {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        };
        (m != MsgProps::default()).then_some(m)
    }

    fn from_will(p: &v5::LastWillProperties) -> Option<MsgProps> {
        let m = MsgProps {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        };
        (m != MsgProps::default()).then_some(m)
    }

    /// Bytes these properties cost in a queue.
    pub fn cost(&self) -> usize {
        self.content_type.as_ref().map_or(0, String::len)
            + self.response_topic.as_ref().map_or(0, String::len)
            + self.correlation_data.as_ref().map_or(0, Bytes::len)
            + self
                .user_properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
    }
}

pub struct WillReq {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will Delay Interval (MQTT 5), seconds.
    pub delay: u32,
    pub expiry: Option<u32>,
    pub props: Option<MsgProps>,
}

/// A CONNECT, whichever the protocol.
pub struct ConnectReq {
    pub proto: Proto,
    pub client_id: String,
    /// 3.1.1 clean session / 5 clean start.
    pub clean_start: bool,
    pub keep_alive: u16,
    /// Seconds the session outlives the connection; 3.1.1: 0 for a clean
    /// session, forever (`u32::MAX`) otherwise.
    pub session_expiry: u32,
    pub receive_max: u16,
    pub max_packet_size: Option<u32>,
    /// (Request Problem Information needs nothing: the sandbox sends reason
    /// strings only on DISCONNECT, where they are always allowed.)
    pub request_response_info: bool,
    pub auth_method: Option<String>,
    pub will: Option<WillReq>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT 5: how many topic aliases the client accepts from the server.
    pub topic_alias_max: u16,
}

pub struct PublishIn {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub pkid: u16,
    pub alias: Option<u16>,
    pub expiry: Option<u32>,
    pub props: Option<MsgProps>,
}

pub struct SubReq {
    pub filter: String,
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained messages; 1: only for a new subscription; 2: never.
    pub retain_handling: u8,
}

/// What a client can send once connected.
pub enum In {
    Publish(PublishIn),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<SubReq>,
        id: Option<usize>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect {
        /// MQTT 5 reason 0x04: publish the will anyway.
        with_will: bool,
        session_expiry: Option<u32>,
    },
    /// A packet a client must not send now (CONNECT again, server packets).
    Unexpected(&'static str),
}

/// MQTT 5 reason codes the sandbox uses.
pub mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
}

/// What the server sends besides PUBLISH.
#[derive(Debug, Clone)]
pub enum Out {
    ConnAck {
        session_present: bool,
        /// An MQTT 5 reason code; mapped to the 3.1.1 return code.
        code: u8,
        props: Option<v5::ConnAckProperties>,
    },
    PubAck(u16, u8),
    PubRec(u16, u8),
    PubRel(u16),
    PubComp(u16, u8),
    SubAck(u16, Vec<u8>),
    UnsubAck(u16, Vec<u8>),
    PingResp,
    /// MQTT 5 only; a 3.1.1 connection is just closed.
    Disconnect(u8, Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("packet of {size} bytes is over the maximum packet size of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("malformed packet ({0})")]
    Protocol(String),
}

impl ReadError {
    /// The MQTT 5 DISCONNECT reason for this error.
    pub fn reason(&self) -> u8 {
        match self {
            ReadError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            _ => reason::MALFORMED_PACKET,
        }
    }
}

fn q5(q: m5::QoS) -> QoS {
    match q {
        m5::QoS::AtMostOnce => QoS::AtMostOnce,
        m5::QoS::AtLeastOnce => QoS::AtLeastOnce,
        m5::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn to5(q: QoS) -> m5::QoS {
    match q {
        QoS::AtMostOnce => m5::QoS::AtMostOnce,
        QoS::AtLeastOnce => m5::QoS::AtLeastOnce,
        QoS::ExactlyOnce => m5::QoS::ExactlyOnce,
    }
}

/// Runs a codec function; should it panic on some input (it is not ours),
/// only this connection ends.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ReadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| ReadError::Protocol("the decoder panicked".into()))
}

/// The protocol level byte of a complete CONNECT frame.
pub fn connect_protocol_level(frame: &[u8]) -> Option<u8> {
    // Skip the first byte and the 1–4 byte remaining length.
    let mut i = 1;
    while *frame.get(i)? & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let name_len = u16::from_be_bytes([*frame.get(i)?, *frame.get(i + 1)?]) as usize;
    frame.get(i + 2 + name_len).copied()
}

/// Whether `buf` holds a whole first packet; errors for anything that can
/// never become a CONNECT.
pub fn connect_ready(buf: &[u8], max: usize) -> Result<bool, ReadError> {
    if let Some(&b) = buf.first()
        && b != 0x10
    {
        return Err(ReadError::Protocol(format!(
            "first packet is not a CONNECT (byte 0x{b:02x})"
        )));
    }
    match m4::check(buf.iter(), max) {
        Ok(_) => Ok(true),
        Err(m4::Error::InsufficientBytes(_)) => Ok(false),
        Err(m4::Error::PayloadSizeLimitExceeded(size)) => Err(ReadError::TooLarge { size, max }),
        Err(e) => Err(ReadError::Protocol(e.to_string())),
    }
}

/// Parses a whole CONNECT; `Err(Ok(level))` for a protocol level the
/// sandbox does not speak.
pub fn parse_connect(buf: &mut BytesMut, max: usize) -> Result<Result<ConnectReq, u8>, ReadError> {
    let level = connect_protocol_level(buf)
        .ok_or_else(|| ReadError::Protocol("truncated CONNECT".into()))?;
    match level {
        4 => match guarded(|| m4::v4::Packet::read(buf, max))? {
            Ok(m4::v4::Packet::Connect(c)) => Ok(Ok(ConnectReq {
                proto: Proto::V4,
                username: c
                    .login
                    .as_ref()
                    .map(|l| l.username.clone())
                    .filter(|u| !u.is_empty()),
                password: c
                    .login
                    .as_ref()
                    .map(|l| l.password.clone())
                    .filter(|p| !p.is_empty()),
                topic_alias_max: 0,
                clean_start: c.clean_session,
                keep_alive: c.keep_alive,
                session_expiry: if c.clean_session { 0 } else { u32::MAX },
                receive_max: u16::MAX,
                max_packet_size: None,
                request_response_info: false,
                auth_method: None,
                will: c.last_will.map(|w| WillReq {
                    topic: w.topic,
                    payload: w.message,
                    qos: w.qos,
                    retain: w.retain,
                    delay: 0,
                    expiry: None,
                    props: None,
                }),
                client_id: c.client_id,
            })),
            Ok(_) => Err(ReadError::Protocol("unreadable CONNECT".into())),
            Err(e) => Err(ReadError::Protocol(e.to_string())),
        },
        5 => match guarded(|| v5::Packet::read(buf, Some(max as u32)))? {
            Ok(v5::Packet::Connect(c, will, login)) => {
                let props = c.properties.unwrap_or_default();
                let will = match will {
                    Some(w) => {
                        let topic = String::from_utf8(w.topic.to_vec())
                            .map_err(|_| ReadError::Protocol("will topic is not UTF-8".into()))?;
                        let (delay, expiry, props) = match &w.properties {
                            Some(wp) => (
                                wp.delay_interval.unwrap_or(0),
                                wp.message_expiry_interval,
                                MsgProps::from_will(wp),
                            ),
                            None => (0, None, None),
                        };
                        Some(WillReq {
                            topic,
                            payload: w.message,
                            qos: q5(w.qos),
                            retain: w.retain,
                            delay,
                            expiry,
                            props,
                        })
                    }
                    None => None,
                };
                Ok(Ok(ConnectReq {
                    proto: Proto::V5,
                    client_id: c.client_id,
                    clean_start: c.clean_start,
                    keep_alive: c.keep_alive,
                    session_expiry: props.session_expiry_interval.unwrap_or(0),
                    receive_max: props.receive_maximum.unwrap_or(u16::MAX).max(1),
                    max_packet_size: props.max_packet_size,
                    request_response_info: props.request_response_info == Some(1),
                    auth_method: props.authentication_method,
                    will,
                    username: login
                        .as_ref()
                        .map(|l| l.username.clone())
                        .filter(|u| !u.is_empty()),
                    password: login.map(|l| l.password).filter(|p| !p.is_empty()),
                    topic_alias_max: props.topic_alias_max.unwrap_or(0),
                }))
            }
            Ok(_) => Err(ReadError::Protocol("unreadable CONNECT".into())),
            Err(e) => Err(read_error5(e, max)),
        },
        other => Ok(Err(other)),
    }
}

fn read_error4(e: m4::Error, max: usize) -> ReadError {
    match e {
        m4::Error::PayloadSizeLimitExceeded(size) => ReadError::TooLarge { size, max },
        e => ReadError::Protocol(e.to_string()),
    }
}

fn read_error5(e: m5::Error, max: usize) -> ReadError {
    match e {
        m5::Error::PayloadSizeLimitExceeded { pkt_size, .. } => ReadError::TooLarge {
            size: pkt_size,
            max,
        },
        e => ReadError::Protocol(e.to_string()),
    }
}

/// Parses one packet out of `buf`, if a whole one is there.
pub fn parse(proto: Proto, buf: &mut BytesMut, max: usize) -> Result<Option<In>, ReadError> {
    match proto {
        Proto::V4 => match guarded(|| m4::v4::Packet::read(buf, max))? {
            Ok(p) => Ok(Some(from4(p))),
            Err(m4::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(read_error4(e, max)),
        },
        // A bare DISCONNECT (normal, no properties: what mosquitto_pub
        // sends) is valid, but rumqttc 0.25.1's reader refuses it.
        Proto::V5 if buf.starts_with(&[0xE0, 0x00]) => {
            let _ = buf.split_to(2);
            Ok(Some(In::Disconnect {
                with_will: false,
                session_expiry: None,
            }))
        }
        Proto::V5 => match guarded(|| v5::Packet::read(buf, Some(max as u32)))? {
            Ok(p) => from5(p).map(Some),
            Err(m5::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(read_error5(e, max)),
        },
    }
}

fn from4(p: m4::v4::Packet) -> In {
    use m4::v4::Packet as P;
    match p {
        P::Publish(p) => In::Publish(PublishIn {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            pkid: p.pkid,
            alias: None,
            expiry: None,
            props: None,
        }),
        P::PubAck(a) => In::PubAck(a.pkid),
        P::PubRec(a) => In::PubRec(a.pkid),
        P::PubRel(a) => In::PubRel(a.pkid),
        P::PubComp(a) => In::PubComp(a.pkid),
        P::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| SubReq {
                    filter: f.path,
                    qos: f.qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                })
                .collect(),
            id: None,
        },
        P::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        P::PingReq => In::PingReq,
        P::Disconnect => In::Disconnect {
            with_will: false,
            session_expiry: None,
        },
        P::Connect(_) => In::Unexpected("CONNECT"),
        P::ConnAck(_) => In::Unexpected("CONNACK"),
        P::SubAck(_) => In::Unexpected("SUBACK"),
        P::UnsubAck(_) => In::Unexpected("UNSUBACK"),
        P::PingResp => In::Unexpected("PINGRESP"),
    }
}

fn from5(p: v5::Packet) -> Result<In, ReadError> {
    use v5::Packet as P;
    Ok(match p {
        P::Publish(p) => {
            let topic = String::from_utf8(p.topic.to_vec())
                .map_err(|_| ReadError::Protocol("topic is not UTF-8".into()))?;
            let props = p.properties.unwrap_or_default();
            In::Publish(PublishIn {
                topic,
                payload: p.payload,
                qos: q5(p.qos),
                retain: p.retain,
                pkid: p.pkid,
                alias: props.topic_alias,
                expiry: props.message_expiry_interval,
                props: MsgProps::from_publish(&props),
            })
        }
        P::PubAck(a) => In::PubAck(a.pkid),
        P::PubRec(a) => In::PubRec(a.pkid),
        P::PubRel(a) => In::PubRel(a.pkid),
        P::PubComp(a) => In::PubComp(a.pkid),
        P::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            id: s.properties.and_then(|p| p.id),
            filters: s
                .filters
                .into_iter()
                .map(|f| SubReq {
                    filter: f.path,
                    qos: q5(f.qos),
                    no_local: f.nolocal,
                    retain_as_published: f.preserve_retain,
                    retain_handling: match f.retain_forward_rule {
                        v5::RetainForwardRule::OnEverySubscribe => 0,
                        v5::RetainForwardRule::OnNewSubscribe => 1,
                        v5::RetainForwardRule::Never => 2,
                    },
                })
                .collect(),
        },
        P::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        P::PingReq(_) => In::PingReq,
        P::Disconnect(d) => In::Disconnect {
            with_will: d.reason_code == v5::DisconnectReasonCode::DisconnectWithWillMessage,
            session_expiry: d.properties.and_then(|p| p.session_expiry_interval),
        },
        P::Connect(..) => In::Unexpected("CONNECT"),
        P::ConnAck(_) => In::Unexpected("CONNACK"),
        P::SubAck(_) => In::Unexpected("SUBACK"),
        P::UnsubAck(_) => In::Unexpected("UNSUBACK"),
        P::PingResp(_) => In::Unexpected("PINGRESP"),
        P::Auth(_) => In::Unexpected("AUTH"),
    })
}

fn connack_code5(code: u8) -> v5::ConnectReturnCode {
    use v5::ConnectReturnCode as C;
    match code {
        reason::SUCCESS => C::Success,
        reason::MALFORMED_PACKET => C::MalformedPacket,
        reason::PROTOCOL_ERROR => C::ProtocolError,
        reason::UNSUPPORTED_PROTOCOL_VERSION => C::UnsupportedProtocolVersion,
        reason::CLIENT_ID_NOT_VALID => C::ClientIdentifierNotValid,
        reason::SERVER_UNAVAILABLE => C::ServerUnavailable,
        0x89 => C::ServerBusy,
        reason::BAD_AUTHENTICATION_METHOD => C::BadAuthenticationMethod,
        reason::BAD_USER_NAME_OR_PASSWORD => C::BadUserNamePassword,
        reason::NOT_AUTHORIZED => C::NotAuthorized,
        reason::TOPIC_NAME_INVALID => C::TopicNameInvalid,
        reason::PACKET_TOO_LARGE => C::PacketTooLarge,
        _ => C::UnspecifiedError,
    }
}

fn connack_code4(code: u8) -> m4::v4::ConnectReturnCode {
    use m4::v4::ConnectReturnCode as C;
    match code {
        reason::SUCCESS => C::Success,
        reason::UNSUPPORTED_PROTOCOL_VERSION => C::RefusedProtocolVersion,
        reason::CLIENT_ID_NOT_VALID => C::BadClientId,
        reason::BAD_USER_NAME_OR_PASSWORD => C::BadUserNamePassword,
        reason::NOT_AUTHORIZED => C::NotAuthorized,
        _ => C::ServiceUnavailable,
    }
}

fn suback_code5(code: u8) -> v5::SubscribeReasonCode {
    use v5::SubscribeReasonCode as C;
    match code {
        0 => C::Success(m5::QoS::AtMostOnce),
        1 => C::Success(m5::QoS::AtLeastOnce),
        2 => C::Success(m5::QoS::ExactlyOnce),
        reason::TOPIC_FILTER_INVALID => C::TopicFilterInvalid,
        reason::QUOTA_EXCEEDED => C::QuotaExceeded,
        reason::NOT_AUTHORIZED => C::NotAuthorized,
        _ => C::Unspecified,
    }
}

/// Appends `out` as `proto` frames it to `buf`.
pub fn write(proto: Proto, out: &Out, buf: &mut BytesMut) {
    match proto {
        Proto::V4 => write4(out, buf),
        Proto::V5 => write5(out, buf),
    }
}

fn write4(out: &Out, buf: &mut BytesMut) {
    use m4::v4 as p;
    let packet = match out {
        Out::ConnAck {
            session_present,
            code,
            ..
        } => p::Packet::ConnAck(p::ConnAck::new(connack_code4(*code), *session_present)),
        Out::PubAck(id, _) => p::Packet::PubAck(p::PubAck::new(*id)),
        Out::PubRec(id, _) => p::Packet::PubRec(p::PubRec::new(*id)),
        Out::PubRel(id) => p::Packet::PubRel(p::PubRel::new(*id)),
        Out::PubComp(id, _) => p::Packet::PubComp(p::PubComp::new(*id)),
        Out::SubAck(id, codes) => p::Packet::SubAck(p::SubAck::new(
            *id,
            codes
                .iter()
                .map(|&c| match m4::qos(c) {
                    Ok(q) if c < 0x80 => p::SubscribeReasonCode::Success(q),
                    _ => p::SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Out::UnsubAck(id, _) => p::Packet::UnsubAck(p::UnsubAck::new(*id)),
        Out::PingResp => p::Packet::PingResp,
        Out::Disconnect(..) => return,
    };
    packet.write(buf, usize::MAX).ok();
}

fn write5(out: &Out, buf: &mut BytesMut) {
    let packet = match out {
        Out::ConnAck {
            session_present,
            code,
            props,
        } => v5::Packet::ConnAck(v5::ConnAck {
            session_present: *session_present,
            code: connack_code5(*code),
            properties: props.clone(),
        }),
        Out::PubAck(id, rc) => {
            let mut a = v5::PubAck::new(*id, None);
            a.reason = match *rc {
                reason::NO_MATCHING_SUBSCRIBERS => v5::PubAckReason::NoMatchingSubscribers,
                reason::NOT_AUTHORIZED => v5::PubAckReason::NotAuthorized,
                _ => v5::PubAckReason::Success,
            };
            v5::Packet::PubAck(a)
        }
        Out::PubRec(id, rc) => {
            let mut a = v5::PubRec::new(*id, None);
            a.reason = match *rc {
                reason::NO_MATCHING_SUBSCRIBERS => v5::PubRecReason::NoMatchingSubscribers,
                reason::NOT_AUTHORIZED => v5::PubRecReason::NotAuthorized,
                _ => v5::PubRecReason::Success,
            };
            v5::Packet::PubRec(a)
        }
        Out::PubRel(id) => v5::Packet::PubRel(v5::PubRel::new(*id, None)),
        Out::PubComp(id, rc) => {
            let mut a = v5::PubComp::new(*id, None);
            if *rc == reason::PACKET_ID_NOT_FOUND {
                a.reason = v5::PubCompReason::PacketIdentifierNotFound;
            }
            v5::Packet::PubComp(a)
        }
        Out::SubAck(id, codes) => v5::Packet::SubAck(v5::SubAck {
            pkid: *id,
            return_codes: codes.iter().map(|&c| suback_code5(c)).collect(),
            properties: None,
        }),
        Out::UnsubAck(id, codes) => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid: *id,
            reasons: codes
                .iter()
                .map(|&c| {
                    if c == reason::NO_SUBSCRIPTION_EXISTED {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    } else {
                        v5::UnsubAckReason::Success
                    }
                })
                .collect(),
            properties: None,
        }),
        Out::PingResp => v5::Packet::PingResp(v5::PingResp),
        Out::Disconnect(rc, why) => {
            let code = match v5::DisconnectReasonCode::try_from(*rc) {
                Ok(c) => c,
                Err(_) => v5::DisconnectReasonCode::UnspecifiedError,
            };
            let mut d = v5::Disconnect::new(code);
            // Always with a reason string: rumqttc 0.25.1 frames a reason
            // code without properties one byte short, and one with empty
            // properties as a bare DISCONNECT (reason lost).
            let why = why
                .clone()
                .unwrap_or_else(|| disconnect_text(*rc).to_string());
            d.properties = Some(v5::DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(why),
                user_properties: Vec::new(),
                server_reference: None,
            });
            v5::Packet::Disconnect(d)
        }
    };
    packet.write(buf, None).ok();
}

/// The reason string sent with a server DISCONNECT.
fn disconnect_text(rc: u8) -> &'static str {
    match rc {
        reason::MALFORMED_PACKET => "malformed packet",
        reason::PROTOCOL_ERROR => "protocol error",
        reason::SERVER_SHUTTING_DOWN => "the sandbox is stopping",
        reason::KEEP_ALIVE_TIMEOUT => "keep-alive timeout",
        reason::SESSION_TAKEN_OVER => "another connection took this client id",
        reason::TOPIC_NAME_INVALID => "invalid topic name",
        reason::RECEIVE_MAXIMUM_EXCEEDED => "receive maximum exceeded",
        reason::TOPIC_ALIAS_INVALID => "invalid topic alias",
        reason::PACKET_TOO_LARGE => "packet too large",
        reason::QUOTA_EXCEEDED => "quota exceeded",
        _ => "disconnected by the sandbox",
    }
}

/// What a delivery carries besides topic and payload.
#[derive(Default)]
pub struct FrameExtras<'a> {
    pub props: Option<&'a MsgProps>,
    /// MQTT 5: the identifiers of the subscriptions that matched.
    pub sub_ids: &'a [usize],
    /// MQTT 5: the message expiry interval left, in seconds.
    pub expiry: Option<u32>,
    /// MQTT 5: a topic alias for this client (the topic is then sent only
    /// when `topic` is not empty).
    pub alias: Option<u16>,
}

/// One PUBLISH frame with packet id 1 for QoS 1/2 (patched per subscriber
/// at [`pkid_offset`]). None if it cannot be encoded (too large).
pub fn publish_frame(
    proto: Proto,
    topic: &str,
    payload: &Bytes,
    qos: QoS,
    retain: bool,
    extras: &FrameExtras<'_>,
) -> Option<Bytes> {
    let pkid = u16::from(qos != QoS::AtMostOnce);
    let mut out = BytesMut::new();
    match proto {
        Proto::V4 => {
            let mut p = m4::v4::Publish::from_bytes(topic, qos, payload.clone());
            p.retain = retain;
            p.pkid = pkid;
            out.reserve(p.size());
            p.write(&mut out).ok()?;
        }
        Proto::V5 => {
            let props = v5::PublishProperties {
                payload_format_indicator: extras.props.and_then(|p| p.payload_format_indicator),
                message_expiry_interval: extras.expiry,
                topic_alias: extras.alias,
                response_topic: extras.props.and_then(|p| p.response_topic.clone()),
                correlation_data: extras.props.and_then(|p| p.correlation_data.clone()),
                user_properties: extras
                    .props
                    .map(|p| p.user_properties.clone())
                    .unwrap_or_default(),
                subscription_identifiers: extras.sub_ids.to_vec(),
                content_type: extras.props.and_then(|p| p.content_type.clone()),
            };
            let empty = props == v5::PublishProperties::default();
            let mut p = v5::Publish::new(topic, to5(qos), payload.clone(), None);
            p.properties = (!empty).then_some(props);
            p.retain = retain;
            p.pkid = pkid;
            out.reserve(p.size());
            p.write(&mut out).ok()?;
        }
    }
    Some(out.freeze())
}

/// Where the packet id sits in a PUBLISH frame: right after the topic.
pub fn pkid_offset(frame: &[u8], topic_len: usize) -> usize {
    let mut i = 1;
    while frame.get(i).is_some_and(|b| b & 0x80 != 0) {
        i += 1;
    }
    i + 1 + 2 + topic_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_level_is_read_from_a_connect_frame() {
        let mut out = BytesMut::new();
        m4::v4::Connect::new("x").write(&mut out).ok();
        assert_eq!(connect_protocol_level(&out), Some(4));
        // MQTT 3.1: "MQIsdp", level 3.
        let v31 = [
            0x10, 0x0c, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60,
        ];
        assert_eq!(connect_protocol_level(&v31), Some(3));
        assert_eq!(connect_protocol_level(&[0x10]), None);
    }

    #[test]
    fn a_shared_frame_patched_with_a_packet_id_equals_the_codec_s_own() {
        let payload = Bytes::from_static(b"hello");
        let props = MsgProps {
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..Default::default()
        };
        for proto in [Proto::V4, Proto::V5] {
            for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let extras = FrameExtras {
                    props: (proto == Proto::V5).then_some(&props),
                    ..Default::default()
                };
                let Some(frame) = publish_frame(proto, "a/b", &payload, qos, true, &extras) else {
                    panic!("no frame");
                };
                let mut patched = BytesMut::from(&frame[..]);
                let at = pkid_offset(&frame, 3);
                patched[at..at + 2].copy_from_slice(&0x1234u16.to_be_bytes());
                patched[0] |= 0b1000;
                let mut direct = BytesMut::new();
                match proto {
                    Proto::V4 => {
                        let mut p = m4::v4::Publish::new("a/b", qos, "hello");
                        p.pkid = 0x1234;
                        p.retain = true;
                        p.dup = true;
                        p.write(&mut direct).ok();
                    }
                    Proto::V5 => {
                        let mut p = v5::Publish::new(
                            "a/b",
                            to5(qos),
                            "hello",
                            Some(v5::PublishProperties {
                                content_type: Some("text/plain".into()),
                                user_properties: vec![("k".into(), "v".into())],
                                ..Default::default()
                            }),
                        );
                        p.pkid = 0x1234;
                        p.retain = true;
                        p.dup = true;
                        p.write(&mut direct).ok();
                    }
                }
                assert_eq!(patched, direct, "{proto:?} {qos:?}");
            }
        }
    }

    #[test]
    fn a_v4_suback_failure_is_0x80() {
        let mut buf = BytesMut::new();
        write(Proto::V4, &Out::SubAck(1, vec![1, 0x8F]), &mut buf);
        assert_eq!(&buf[..], [0x90, 0x04, 0x00, 0x01, 0x01, 0x80]);
    }
}

#[cfg(test)]
mod disconnect_tests {
    use super::*;

    #[test]
    fn a_v5_disconnect_reads_back_with_its_reason() {
        for why in [None, Some("bye".to_string())] {
            let mut buf = BytesMut::new();
            write(
                Proto::V5,
                &Out::Disconnect(reason::SESSION_TAKEN_OVER, why),
                &mut buf,
            );
            assert!(!buf.is_empty());
            match v5::Packet::read(&mut buf, None) {
                Ok(v5::Packet::Disconnect(d)) => {
                    assert_eq!(d.reason_code, v5::DisconnectReasonCode::SessionTakenOver)
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Random and mutated packet streams through the decoders: nothing may
/// panic (the guard would turn a codec panic into "the decoder panicked",
/// which fails this test too), and a parse always either waits for more
/// bytes, fails, or consumes bytes. `SANDBOX_FUZZ_ITERS` runs it longer.
#[cfg(test)]
mod fuzz {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn valid_frames() -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut push4 = |p: m4::v4::Packet| {
            let mut b = BytesMut::new();
            p.write(&mut b, usize::MAX).ok();
            frames.push(b.to_vec());
        };
        let mut publish = m4::v4::Publish::new("a/b", QoS::AtLeastOnce, "payload");
        publish.pkid = 7;
        push4(m4::v4::Packet::Connect(m4::v4::Connect::new("fuzz")));
        push4(m4::v4::Packet::Publish(publish));
        push4(m4::v4::Packet::Subscribe(m4::v4::Subscribe::new(
            "a/#",
            QoS::ExactlyOnce,
        )));
        push4(m4::v4::Packet::Unsubscribe(m4::v4::Unsubscribe::new("a/#")));
        push4(m4::v4::Packet::PubRel(m4::v4::PubRel::new(7)));
        push4(m4::v4::Packet::PingReq);
        let mut push5 = |p: v5::Packet| {
            let mut b = BytesMut::new();
            p.write(&mut b, None).ok();
            frames.push(b.to_vec());
        };
        let props = v5::PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(10),
            topic_alias: Some(2),
            response_topic: Some("r".into()),
            correlation_data: Some(Bytes::from_static(b"c")),
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![],
            content_type: Some("t".into()),
        };
        let mut p5 = v5::Publish::new("a/b", m5::QoS::ExactlyOnce, "x", Some(props));
        p5.pkid = 3;
        let mut cp = v5::ConnectProperties::new();
        cp.session_expiry_interval = Some(5);
        cp.receive_maximum = Some(2);
        push5(v5::Packet::Connect(
            v5::Connect {
                keep_alive: 5,
                client_id: "f5".into(),
                clean_start: false,
                properties: Some(cp),
            },
            None,
            None,
        ));
        push5(v5::Packet::Publish(p5));
        let mut f = v5::Filter::new("$share/g/a/+", m5::QoS::AtLeastOnce);
        f.nolocal = true;
        push5(v5::Packet::Subscribe(v5::Subscribe::new(
            f,
            Some(v5::SubscribeProperties {
                id: Some(4),
                user_properties: vec![],
            }),
        )));
        push5(v5::Packet::PubAck(v5::PubAck::new(3, None)));
        frames
    }

    pub(crate) fn mutate(rng: &mut StdRng, frame: &mut Vec<u8>) {
        match rng.random_range(0..5) {
            0 if !frame.is_empty() => {
                let i = rng.random_range(0..frame.len());
                frame[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !frame.is_empty() => {
                let at = rng.random_range(0..frame.len());
                frame.truncate(at);
            }
            2 => {
                let at = rng.random_range(0..=frame.len());
                let junk: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                frame.splice(at..at, junk);
            }
            3 if frame.len() > 1 => {
                let i = rng.random_range(1..frame.len());
                frame[i] = rng.random();
            }
            _ => {
                let n = rng.random_range(0..32);
                *frame = (0..n).map(|_| rng.random()).collect();
            }
        }
    }

    #[test]
    fn random_and_mutated_streams_never_panic_the_decoders() {
        let iters: usize = std::env::var("SANDBOX_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let mut rng = StdRng::seed_from_u64(0x5a4d_b0c5);
        let frames = valid_frames();
        let mut panics = 0;
        for _ in 0..iters {
            let mut stream = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let mut f = frames[rng.random_range(0..frames.len())].clone();
                if rng.random_bool(0.7) {
                    mutate(&mut rng, &mut f);
                }
                stream.extend(f);
            }
            let max = if rng.random_bool(0.5) { 64 } else { 1 << 20 };
            // As the first packet...
            let mut buf = BytesMut::from(&stream[..]);
            if let Ok(true) = connect_ready(&buf, max)
                && let Err(ReadError::Protocol(e)) = parse_connect(&mut buf, max)
                && e.contains("panicked")
            {
                panics += 1;
            }
            // ...and once connected, with either protocol.
            for proto in [Proto::V4, Proto::V5] {
                let mut buf = BytesMut::from(&stream[..]);
                loop {
                    let before = buf.len();
                    match parse(proto, &mut buf, max) {
                        Ok(Some(_)) => assert!(buf.len() < before, "parsed nothing"),
                        Ok(None) => break,
                        Err(ReadError::Protocol(e)) => {
                            if e.contains("panicked") {
                                panics += 1;
                            }
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        assert_eq!(panics, 0, "rumqttc's decoder panicked {panics} times");
    }
}
