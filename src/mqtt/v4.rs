//! The MQTT 3.1.1 adapter: rumqttc's v4 packets and requests in and out of
//! the neutral shapes of `wire.rs`.

use super::errors::describe_return_code;
use super::options::{from_qos, to_qos};
use super::wire::{InBody, InPacket, OutKind};
use crate::model::packet::{Direction, PacketKind, PacketRecord, publish_wire_size};
use crate::model::protocol::{ProtocolVersion, Qos};
use crate::profile::SubscriptionSpec;
use rumqttc::{
    ConnectReturnCode, EventLoop, MqttOptions, Outgoing, Packet, Request, SubscribeFilter,
    SubscribeReasonCode,
};

pub(crate) fn connack_code(code: ConnectReturnCode) -> u8 {
    match code {
        ConnectReturnCode::Success => 0,
        ConnectReturnCode::RefusedProtocolVersion => 1,
        ConnectReturnCode::BadClientId => 2,
        ConnectReturnCode::ServiceUnavailable => 3,
        ConnectReturnCode::BadUserNamePassword => 4,
        ConnectReturnCode::NotAuthorized => 5,
    }
}

pub(crate) fn incoming(packet: Packet) -> InPacket {
    let size = packet.size();
    let (kind, pkid, body) = match packet {
        Packet::ConnAck(ack) => (
            PacketKind::Connack,
            None,
            InBody::ConnAck {
                session_present: ack.session_present,
                code: connack_code(ack.code),
                code_text: describe_return_code(ack.code).into(),
            },
        ),
        Packet::Publish(p) => (
            PacketKind::Publish,
            (p.pkid != 0).then_some(p.pkid),
            InBody::Publish {
                topic: p.topic,
                payload: p.payload,
                qos: from_qos(p.qos),
                retain: p.retain,
                dup: p.dup,
                topic_from_alias: false,
            },
        ),
        Packet::PubAck(a) => ack(PacketKind::Puback, a.pkid),
        Packet::PubRec(a) => ack(PacketKind::Pubrec, a.pkid),
        Packet::PubRel(a) => ack(PacketKind::Pubrel, a.pkid),
        Packet::PubComp(a) => ack(PacketKind::Pubcomp, a.pkid),
        Packet::SubAck(a) => (
            PacketKind::Suback,
            Some(a.pkid),
            InBody::SubAck {
                codes: a
                    .return_codes
                    .iter()
                    .map(|c| match c {
                        SubscribeReasonCode::Success(q) => *q as u8,
                        SubscribeReasonCode::Failure => 0x80,
                    })
                    .collect(),
                v5: false,
            },
        ),
        Packet::UnsubAck(a) => (
            PacketKind::Unsuback,
            Some(a.pkid),
            InBody::UnsubAck { codes: Vec::new() },
        ),
        Packet::PingResp => (PacketKind::Pingresp, None, InBody::Plain),
        Packet::PingReq => (PacketKind::Pingreq, None, InBody::Plain),
        Packet::Disconnect => (
            PacketKind::Disconnect,
            None,
            InBody::Disconnect { reason: None },
        ),
        Packet::Connect(_) => (PacketKind::Connect, None, InBody::Plain),
        Packet::Subscribe(s) => (PacketKind::Subscribe, Some(s.pkid), InBody::Plain),
        Packet::Unsubscribe(u) => (PacketKind::Unsubscribe, Some(u.pkid), InBody::Plain),
    };
    InPacket {
        kind,
        size,
        pkid,
        body,
        props: None,
    }
}

fn ack(kind: PacketKind, pkid: u16) -> (PacketKind, Option<u16>, InBody) {
    (kind, Some(pkid), InBody::Ack { reason: None })
}

pub(crate) fn outgoing(out: Outgoing) -> Option<OutKind> {
    Some(match out {
        Outgoing::Publish(p) => OutKind::Publish(p),
        Outgoing::Subscribe(p) => OutKind::Subscribe(p),
        Outgoing::Unsubscribe(p) => OutKind::Unsubscribe(p),
        Outgoing::PubAck(p) => OutKind::PubAck(p),
        Outgoing::PubRec(p) => OutKind::PubRec(p),
        Outgoing::PubRel(p) => OutKind::PubRel(p),
        Outgoing::PubComp(p) => OutKind::PubComp(p),
        Outgoing::PingReq => OutKind::PingReq,
        Outgoing::PingResp => OutKind::PingResp,
        Outgoing::Disconnect => OutKind::Disconnect,
        Outgoing::AwaitAck(_) => return None,
    })
}

/// Acks are 4 bytes, PINGREQ/PINGRESP/DISCONNECT 2.
pub(crate) fn plain_size(out: OutKind) -> usize {
    match out {
        OutKind::PingReq | OutKind::PingResp | OutKind::Disconnect => 2,
        _ => 4,
    }
}

pub(crate) fn publish_size(topic: &str, qos: Qos, payload_len: usize) -> usize {
    publish_wire_size(topic.len(), qos.as_u8(), payload_len)
}

pub(crate) fn filters(specs: &[SubscriptionSpec]) -> Vec<SubscribeFilter> {
    specs
        .iter()
        .map(|s| SubscribeFilter::new(s.filter.clone(), to_qos(s.qos)))
        .collect()
}

pub(crate) fn subscribe_size(specs: &[SubscriptionSpec]) -> usize {
    rumqttc::Subscribe {
        pkid: 1,
        filters: filters(specs),
    }
    .size()
}

pub(crate) fn unsubscribe_size(filters: &[String]) -> usize {
    rumqttc::Unsubscribe {
        pkid: 1,
        topics: filters.to_vec(),
    }
    .size()
}

/// The CONNECT rumqttc sends, rebuilt from the options (it is not an event).
pub(crate) fn connect_record(opts: &MqttOptions, t_us: u64) -> PacketRecord {
    let login = opts.credentials();
    let connect = rumqttc::Connect {
        protocol: rumqttc::Protocol::V4,
        keep_alive: opts.keep_alive().as_secs().min(u64::from(u16::MAX)) as u16,
        client_id: opts.client_id(),
        clean_session: opts.clean_session(),
        last_will: opts.last_will(),
        login: login.clone(),
    };
    let mut r = PacketRecord::new(
        t_us,
        Direction::Out,
        PacketKind::Connect,
        None,
        connect.size(),
    );
    r.detail.client_id = Some(connect.client_id.clone());
    r.detail.clean_session = Some(connect.clean_session);
    r.detail.keep_alive = Some(connect.keep_alive);
    r.detail.will_topic = connect.last_will.as_ref().map(|w| w.topic.clone());
    r.detail.username = Some(login.is_some());
    r.detail.protocol = Some(ProtocolVersion::V311);
    r
}

/// Removes the requests rumqttc has not sent yet (no packet id) from its
/// pending queue, which it would silently clear on a new session; returns
/// how many publishes, subscribes and unsubscribes went. The publishes kept
/// (in flight, with a packet id) are marked DUP for their resend.
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
        Request::Disconnect(_) | Request::PingReq(_) => false,
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
