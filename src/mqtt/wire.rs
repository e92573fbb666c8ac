//! The pure half of a session: what crossed the wire, in protocol-neutral
//! form, and the pairing of our requests with the packet ids rumqttc gave
//! them. No rumqttc types and no I/O here: the adapters (`v4.rs`, `v5.rs`)
//! translate rumqttc's packets into [`InPacket`]s and sizes, the session
//! task feeds them to a [`Tracker`] and sends the [`Effects`] out.
//!
//! rumqttc reports outgoing packets only by packet id, so the tracker keeps a
//! shadow of what was asked (FIFO, in request order) and pairs each outgoing
//! event with it; incoming acknowledgements then settle the request.

use super::PublishOutcome;
use super::PublishToken;
use crate::model::packet::{Direction, PacketKind, PacketRecord};
use crate::model::protocol::{Message, Properties, Qos, ReasonContext, is_failure, reason_text};
use crate::profile::SubscriptionSpec;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

/// A publish asked of rumqttc, not yet seen on the wire.
#[derive(Clone, Debug)]
pub(crate) struct ShadowPublish {
    pub token: Option<PublishToken>,
    pub topic: String,
    pub qos: Qos,
    pub retain: bool,
    pub payload_len: usize,
    /// Encoded size of the whole frame (with a packet id when QoS > 0).
    pub size: usize,
    pub props: Option<Box<Properties>>,
}

/// A SUBSCRIBE asked of rumqttc.
#[derive(Clone, Debug)]
pub(crate) struct ShadowSubscribe {
    pub specs: Vec<SubscriptionSpec>,
    pub size: usize,
    pub props: Option<Box<Properties>>,
}

/// An UNSUBSCRIBE asked of rumqttc.
#[derive(Clone, Debug)]
pub(crate) struct ShadowUnsubscribe {
    pub filters: Vec<String>,
    pub size: usize,
}

/// What an incoming packet says, whatever the protocol.
#[derive(Clone, Debug)]
pub(crate) enum InBody {
    ConnAck {
        session_present: bool,
        /// 3.1.1 return code or MQTT 5 reason code.
        code: u8,
        /// The code in words.
        code_text: String,
    },
    Publish {
        topic: String,
        payload: Bytes,
        qos: Qos,
        retain: bool,
        dup: bool,
        /// The topic was empty on the wire and came from a topic alias.
        topic_from_alias: bool,
    },
    /// PUBACK, PUBREC, PUBREL, PUBCOMP; `reason` only for MQTT 5 when sent.
    Ack {
        reason: Option<u8>,
    },
    /// 3.1.1: granted QoS or 0x80; MQTT 5: reason code per filter.
    SubAck {
        codes: Vec<u8>,
        /// MQTT 5: every code is a reason code, put in words.
        v5: bool,
    },
    /// MQTT 5 only carries codes; 3.1.1 sends none.
    UnsubAck {
        codes: Vec<u8>,
    },
    Disconnect {
        reason: Option<u8>,
    },
    Auth {
        reason: u8,
    },
    /// PINGRESP, PINGREQ, or a packet a client never receives.
    Plain,
}

/// One incoming packet, as the adapters hand it over.
#[derive(Clone, Debug)]
pub(crate) struct InPacket {
    pub kind: PacketKind,
    /// Encoded size of the whole frame, properties included.
    pub size: usize,
    pub pkid: Option<u16>,
    pub body: InBody,
    pub props: Option<Box<Properties>>,
}

/// An outgoing packet rumqttc reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutKind {
    Publish(u16),
    Subscribe(u16),
    Unsubscribe(u16),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    PingReq,
    PingResp,
    Disconnect,
}

/// What one packet means for the world outside the session, in order.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub records: Vec<PacketRecord>,
    /// A received message; its `packet_seq` is the first record's.
    pub message: Option<Message>,
    pub published: Vec<(PublishToken, PublishOutcome)>,
    /// (filter, granted QoS or None, reason in words when refused or v5)
    pub subscribed: Vec<(String, Option<Qos>, Option<String>)>,
    /// (filter, reason in words for a v5 code other than success)
    pub unsubscribed: Vec<(String, Option<String>)>,
}

/// Pairs requests with packet ids and settles them when answered.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    publishes: VecDeque<ShadowPublish>,
    subscribes: VecDeque<ShadowSubscribe>,
    unsubscribes: VecDeque<ShadowUnsubscribe>,
    /// Our QoS 1/2 publishes on the wire, waiting for PUBACK / PUBCOMP.
    inflight: HashMap<u16, ShadowPublish>,
    /// A QoS 2 publish whose PUBREC carried a note (0x10): kept for PUBCOMP.
    notes: HashMap<u16, String>,
    sub_pkids: HashMap<u16, ShadowSubscribe>,
    unsub_pkids: HashMap<u16, ShadowUnsubscribe>,
}

impl Tracker {
    pub fn push_publish(&mut self, p: ShadowPublish) {
        self.publishes.push_back(p);
    }

    /// Undoes the last push, when rumqttc refused to queue it.
    pub fn pop_publish(&mut self) {
        self.publishes.pop_back();
    }

    pub fn push_subscribe(&mut self, s: ShadowSubscribe) {
        self.subscribes.push_back(s);
    }

    pub fn push_unsubscribe(&mut self, u: ShadowUnsubscribe) {
        self.unsubscribes.push_back(u);
    }

    /// rumqttc dropped `publishes`, `subscribes`, `unsubscribes` requests it
    /// had not sent yet (oldest first): the publishes fail with `why`.
    pub fn drop_unsent(
        &mut self,
        publishes: usize,
        subscribes: usize,
        unsubscribes: usize,
        why: &str,
    ) -> Vec<(PublishToken, PublishOutcome)> {
        let lost = (0..publishes)
            .filter_map(|_| self.publishes.pop_front())
            .filter_map(|p| p.token)
            .map(|t| (t, PublishOutcome::Failed(why.into())))
            .collect();
        for _ in 0..subscribes {
            self.subscribes.pop_front();
        }
        for _ in 0..unsubscribes {
            self.unsubscribes.pop_front();
        }
        lost
    }

    /// The connection ended for good: every request still waiting fails.
    pub fn fail_all(&mut self, why: &str) -> Vec<(PublishToken, PublishOutcome)> {
        let mut lost: Vec<_> = self
            .publishes
            .drain(..)
            .filter_map(|p| p.token)
            .map(|t| (t, PublishOutcome::Failed(why.into())))
            .collect();
        lost.extend(self.fail_inflight(why));
        self.subscribes.clear();
        self.unsubscribes.clear();
        self.sub_pkids.clear();
        self.unsub_pkids.clear();
        lost
    }

    /// A new session without the old one's state: publishes on the wire will
    /// never be acknowledged.
    pub fn fail_inflight(&mut self, why: &str) -> Vec<(PublishToken, PublishOutcome)> {
        self.notes.clear();
        let mut lost: Vec<_> = self
            .inflight
            .drain()
            .filter_map(|(pkid, p)| p.token.map(|t| (pkid, t)))
            .collect();
        lost.sort_unstable();
        lost.into_iter()
            .map(|(_, t)| (t, PublishOutcome::Failed(why.into())))
            .collect()
    }

    /// Forgets SUBSCRIBE/UNSUBSCRIBE packet ids (a new connection).
    pub fn forget_acks(&mut self) {
        self.sub_pkids.clear();
        self.unsub_pkids.clear();
    }

    /// Publishes waiting for an acknowledgement.
    #[cfg(test)]
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// An outgoing packet: builds its record from the shadow. `plain_size` is
    /// the size of a packet without a shadow (acks, pings, DISCONNECT).
    pub fn outgoing(&mut self, out: OutKind, t_us: u64, plain_size: usize) -> Effects {
        let mut fx = Effects::default();
        let plain = |kind, pkid| {
            let mut r = PacketRecord::new(t_us, Direction::Out, kind, pkid, plain_size);
            r.pkid = pkid;
            r
        };
        match out {
            OutKind::Publish(pkid) => {
                if pkid != 0
                    && let Some(p) = self.inflight.get(&pkid)
                {
                    // A retransmission after a resumed session.
                    fx.records.push(publish_record(p, pkid, true, t_us));
                    return fx;
                }
                let Some(p) = self.publishes.pop_front() else {
                    return fx;
                };
                fx.records.push(publish_record(&p, pkid, false, t_us));
                if p.qos == Qos::AtMostOnce {
                    if let Some(token) = p.token {
                        fx.published.push((token, PublishOutcome::Sent));
                    }
                } else {
                    self.inflight.insert(pkid, p);
                }
            }
            OutKind::Subscribe(pkid) => {
                let s = self.subscribes.pop_front().unwrap_or(ShadowSubscribe {
                    specs: Vec::new(),
                    size: 0,
                    props: None,
                });
                let mut r = PacketRecord::new(
                    t_us,
                    Direction::Out,
                    PacketKind::Subscribe,
                    Some(pkid),
                    s.size,
                );
                r.detail.filters = s
                    .specs
                    .iter()
                    .map(|s| (s.filter.clone(), s.qos.as_u8()))
                    .collect();
                r.detail.props = s.props.clone();
                fx.records.push(r);
                self.sub_pkids.insert(pkid, s);
            }
            OutKind::Unsubscribe(pkid) => {
                let u = self.unsubscribes.pop_front().unwrap_or(ShadowUnsubscribe {
                    filters: Vec::new(),
                    size: 0,
                });
                let mut r = PacketRecord::new(
                    t_us,
                    Direction::Out,
                    PacketKind::Unsubscribe,
                    Some(pkid),
                    u.size,
                );
                r.detail.filters = u.filters.iter().map(|f| (f.clone(), 0)).collect();
                fx.records.push(r);
                self.unsub_pkids.insert(pkid, u);
            }
            OutKind::PubAck(p) => fx.records.push(plain(PacketKind::Puback, Some(p))),
            OutKind::PubRec(p) => fx.records.push(plain(PacketKind::Pubrec, Some(p))),
            OutKind::PubRel(p) => fx.records.push(plain(PacketKind::Pubrel, Some(p))),
            OutKind::PubComp(p) => fx.records.push(plain(PacketKind::Pubcomp, Some(p))),
            OutKind::PingReq => fx.records.push(plain(PacketKind::Pingreq, None)),
            OutKind::PingResp => fx.records.push(plain(PacketKind::Pingresp, None)),
            OutKind::Disconnect => fx.records.push(plain(PacketKind::Disconnect, None)),
        }
        fx
    }

    /// An incoming packet: its record, the message it carries, and the
    /// requests it settles.
    pub fn incoming(&mut self, p: InPacket, t_us: u64, received: SystemTime) -> Effects {
        let mut fx = Effects::default();
        let mut r = PacketRecord::new(t_us, Direction::In, p.kind, p.pkid, p.size);
        r.detail.props = p.props.clone();
        match p.body {
            InBody::ConnAck {
                session_present,
                code,
                code_text,
            } => {
                r.detail.session_present = Some(session_present);
                r.detail.return_code = Some(code_text);
                if p.props.is_some() || code >= 0x80 {
                    r.detail.set_reason(PacketKind::Connack, code);
                }
                fx.records.push(r);
            }
            InBody::Publish {
                topic,
                payload,
                qos,
                retain,
                dup,
                topic_from_alias,
            } => {
                r.qos = Some(qos.as_u8());
                r.detail.topic = Some(topic.clone());
                r.detail.retain = Some(retain);
                r.detail.dup = Some(dup);
                r.detail.payload_bytes = Some(payload.len());
                r.detail.topic_from_alias = topic_from_alias.then_some(true);
                fx.records.push(r);
                fx.message = Some(Message {
                    topic,
                    payload,
                    qos,
                    retain,
                    dup,
                    pkid: p.pkid.unwrap_or(0),
                    received,
                    packet_seq: None,
                    props: p.props,
                });
            }
            InBody::Ack { reason } => {
                if let Some(code) = reason {
                    r.detail.set_reason(p.kind, code);
                }
                fx.records.push(r);
                if let Some(pkid) = p.pkid {
                    self.settle_publish(p.kind, pkid, reason, p.props.as_deref(), &mut fx);
                }
            }
            InBody::SubAck { codes, v5 } => {
                r.detail.granted = codes.clone();
                let shadow = p.pkid.and_then(|id| self.sub_pkids.remove(&id));
                let specs = shadow.map(|s| s.specs).unwrap_or_default();
                r.detail.filters = specs
                    .iter()
                    .map(|s| (s.filter.clone(), s.qos.as_u8()))
                    .collect();
                fx.records.push(r);
                let why = p.props.as_ref().and_then(|p| p.reason_string.clone());
                for (spec, code) in specs.into_iter().zip(codes) {
                    let granted = if code < 0x80 {
                        Qos::from_u8(code)
                    } else {
                        None
                    };
                    let words = if code >= 0x80 || v5 {
                        Some(with_reason_string(
                            reason_text(code, ReasonContext::Suback),
                            why.as_deref(),
                        ))
                    } else {
                        None
                    };
                    fx.subscribed.push((spec.filter, granted, words));
                }
            }
            InBody::UnsubAck { codes } => {
                r.detail.reasons = codes.clone();
                let shadow = p.pkid.and_then(|id| self.unsub_pkids.remove(&id));
                let filters = shadow.map(|u| u.filters).unwrap_or_default();
                r.detail.filters = filters.iter().map(|f| (f.clone(), 0)).collect();
                fx.records.push(r);
                for (i, filter) in filters.into_iter().enumerate() {
                    let words = codes
                        .get(i)
                        .filter(|&&c| c != 0)
                        .map(|&c| reason_text(c, ReasonContext::Unsuback));
                    fx.unsubscribed.push((filter, words));
                }
            }
            InBody::Disconnect { reason } => {
                if let Some(code) = reason {
                    r.detail.set_reason(PacketKind::Disconnect, code);
                }
                fx.records.push(r);
            }
            InBody::Auth { reason } => {
                r.detail.set_reason(PacketKind::Auth, reason);
                fx.records.push(r);
            }
            InBody::Plain => fx.records.push(r),
        }
        fx
    }

    fn settle_publish(
        &mut self,
        kind: PacketKind,
        pkid: u16,
        reason: Option<u8>,
        props: Option<&Properties>,
        fx: &mut Effects,
    ) {
        let expected = match kind {
            PacketKind::Puback => Qos::AtLeastOnce,
            PacketKind::Pubrec | PacketKind::Pubcomp => Qos::ExactlyOnce,
            _ => return,
        };
        let Some(p) = self.inflight.get(&pkid) else {
            return;
        };
        if p.qos != expected {
            return;
        }
        let code = reason.unwrap_or(0);
        let words = || {
            with_reason_string(
                format!(
                    "{} {}",
                    kind.name(),
                    reason_text(code, ReasonContext::PublishAck)
                ),
                props.and_then(|p| p.reason_string.as_deref()),
            )
        };
        if is_failure(code) {
            let p = self.inflight.remove(&pkid);
            self.notes.remove(&pkid);
            if let Some(token) = p.and_then(|p| p.token) {
                fx.published.push((token, PublishOutcome::Failed(words())));
            }
            return;
        }
        if kind == PacketKind::Pubrec {
            // The exchange goes on (PUBREL, PUBCOMP); keep a note for the end.
            if code != 0 {
                self.notes.insert(pkid, words());
            }
            return;
        }
        let note = self.notes.remove(&pkid);
        let Some(token) = self.inflight.remove(&pkid).and_then(|p| p.token) else {
            return;
        };
        let outcome = match (code, note) {
            (0, None) => PublishOutcome::Acknowledged,
            (0, Some(note)) => PublishOutcome::AcknowledgedWith(note),
            _ => PublishOutcome::AcknowledgedWith(words()),
        };
        fx.published.push((token, outcome));
    }
}

fn with_reason_string(text: String, reason_string: Option<&str>) -> String {
    match reason_string {
        Some(r) if !r.is_empty() => format!("{text}: {r}"),
        _ => text,
    }
}

fn publish_record(p: &ShadowPublish, pkid: u16, dup: bool, t_us: u64) -> PacketRecord {
    let mut r = PacketRecord::new(
        t_us,
        Direction::Out,
        PacketKind::Publish,
        (pkid != 0).then_some(pkid),
        p.size,
    );
    r.qos = Some(p.qos.as_u8());
    r.detail.topic = Some(p.topic.clone());
    r.detail.retain = Some(p.retain);
    r.detail.dup = Some(dup);
    r.detail.payload_bytes = Some(p.payload_len);
    r.detail.props = p.props.clone();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(token: u64, qos: Qos) -> ShadowPublish {
        ShadowPublish {
            token: Some(token),
            topic: "a/b".into(),
            qos,
            retain: false,
            payload_len: 5,
            size: 14,
            props: None,
        }
    }

    fn ack(kind: PacketKind, pkid: u16, reason: Option<u8>) -> InPacket {
        InPacket {
            kind,
            size: if reason.is_some() { 6 } else { 4 },
            pkid: Some(pkid),
            body: InBody::Ack { reason },
            props: None,
        }
    }

    #[test]
    fn outgoing_publish_is_paired_with_the_oldest_request() {
        let mut t = Tracker::default();
        t.push_publish(publish(1, Qos::AtLeastOnce));
        t.push_publish(publish(2, Qos::AtMostOnce));
        let fx = t.outgoing(OutKind::Publish(7), 10, 0);
        assert_eq!(fx.records[0].pkid, Some(7));
        assert_eq!(fx.records[0].bytes, 14);
        assert!(fx.published.is_empty(), "QoS 1 waits for its PUBACK");
        let fx = t.outgoing(OutKind::Publish(0), 11, 0);
        assert_eq!(fx.published, vec![(2, PublishOutcome::Sent)]);
        assert_eq!(t.inflight_len(), 1);
    }

    #[test]
    fn puback_settles_the_publish_with_its_packet_id() {
        let mut t = Tracker::default();
        t.push_publish(publish(1, Qos::AtLeastOnce));
        t.outgoing(OutKind::Publish(3), 0, 0);
        let fx = t.incoming(ack(PacketKind::Puback, 3, None), 1, SystemTime::UNIX_EPOCH);
        assert_eq!(fx.published, vec![(1, PublishOutcome::Acknowledged)]);
        assert_eq!(t.inflight_len(), 0);
    }

    #[test]
    fn a_refusing_puback_fails_the_publish_with_the_reason_in_words() {
        let mut t = Tracker::default();
        t.push_publish(publish(1, Qos::AtLeastOnce));
        t.outgoing(OutKind::Publish(3), 0, 0);
        let fx = t.incoming(
            ack(PacketKind::Puback, 3, Some(0x87)),
            1,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            fx.published,
            vec![(
                1,
                PublishOutcome::Failed("PUBACK 0x87 Not authorized".into())
            )]
        );
        assert_eq!(fx.records[0].detail.reason, Some(0x87));
        assert_eq!(
            fx.records[0].detail.reason_text.as_deref(),
            Some("0x87 Not authorized")
        );
    }

    #[test]
    fn no_matching_subscribers_is_acknowledged_with_a_note() {
        let mut t = Tracker::default();
        t.push_publish(publish(1, Qos::AtLeastOnce));
        t.outgoing(OutKind::Publish(3), 0, 0);
        let fx = t.incoming(
            ack(PacketKind::Puback, 3, Some(0x10)),
            1,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            fx.published,
            vec![(
                1,
                PublishOutcome::AcknowledgedWith("PUBACK 0x10 No matching subscribers".into())
            )]
        );
    }

    #[test]
    fn a_refusing_pubrec_ends_a_qos2_publish_as_failed() {
        let mut t = Tracker::default();
        t.push_publish(publish(4, Qos::ExactlyOnce));
        t.outgoing(OutKind::Publish(9), 0, 0);
        let fx = t.incoming(
            ack(PacketKind::Pubrec, 9, Some(0x97)),
            1,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            fx.published,
            vec![(
                4,
                PublishOutcome::Failed("PUBREC 0x97 Quota exceeded".into())
            )]
        );
        assert_eq!(t.inflight_len(), 0);
    }

    #[test]
    fn qos2_is_acknowledged_only_by_pubcomp() {
        let mut t = Tracker::default();
        t.push_publish(publish(4, Qos::ExactlyOnce));
        t.outgoing(OutKind::Publish(9), 0, 0);
        let fx = t.incoming(ack(PacketKind::Pubrec, 9, None), 1, SystemTime::UNIX_EPOCH);
        assert!(fx.published.is_empty());
        let fx = t.outgoing(OutKind::PubRel(9), 2, 4);
        assert_eq!(fx.records[0].kind, PacketKind::Pubrel);
        assert_eq!(fx.records[0].bytes, 4);
        let fx = t.incoming(ack(PacketKind::Pubcomp, 9, None), 3, SystemTime::UNIX_EPOCH);
        assert_eq!(fx.published, vec![(4, PublishOutcome::Acknowledged)]);
    }

    #[test]
    fn unsent_publishes_dropped_by_rumqttc_fail_oldest_first() {
        let mut t = Tracker::default();
        t.push_publish(publish(1, Qos::AtLeastOnce));
        t.push_publish(publish(2, Qos::AtLeastOnce));
        t.push_publish(publish(3, Qos::AtLeastOnce));
        let lost = t.drop_unsent(2, 0, 0, "dropped");
        assert_eq!(
            lost,
            vec![
                (1, PublishOutcome::Failed("dropped".into())),
                (2, PublishOutcome::Failed("dropped".into()))
            ]
        );
        let fx = t.outgoing(OutKind::Publish(1), 0, 0);
        assert_eq!(fx.records.len(), 1, "the third one is still paired");
    }

    #[test]
    fn suback_codes_are_given_per_filter_in_words() {
        let mut t = Tracker::default();
        let spec = |f: &str| SubscriptionSpec {
            filter: f.into(),
            qos: Qos::AtLeastOnce,
            ..SubscriptionSpec::default()
        };
        t.push_subscribe(ShadowSubscribe {
            specs: vec![spec("ok/#"), spec("secret/#")],
            size: 20,
            props: None,
        });
        t.outgoing(OutKind::Subscribe(5), 0, 0);
        let fx = t.incoming(
            InPacket {
                kind: PacketKind::Suback,
                size: 7,
                pkid: Some(5),
                body: InBody::SubAck {
                    codes: vec![1, 0x87],
                    v5: true,
                },
                props: None,
            },
            1,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            fx.subscribed[0],
            (
                "ok/#".into(),
                Some(Qos::AtLeastOnce),
                Some("0x01 Granted QoS 1".into())
            ),
            "every MQTT 5 answer is put in words, also without properties"
        );
        assert_eq!(
            fx.subscribed[1],
            ("secret/#".into(), None, Some("0x87 Not authorized".into()))
        );
        assert_eq!(fx.records[0].detail.filters.len(), 2);
    }

    #[test]
    fn an_incoming_publish_becomes_a_message_with_its_properties() {
        let mut t = Tracker::default();
        let props = Properties {
            content_type: Some("text/plain".into()),
            ..Properties::default()
        };
        let fx = t.incoming(
            InPacket {
                kind: PacketKind::Publish,
                size: 30,
                pkid: Some(2),
                body: InBody::Publish {
                    topic: "t".into(),
                    payload: Bytes::from_static(b"hi"),
                    qos: Qos::AtLeastOnce,
                    retain: false,
                    dup: false,
                    topic_from_alias: true,
                },
                props: props.clone().boxed(),
            },
            5,
            SystemTime::UNIX_EPOCH,
        );
        let m = fx.message.expect("a message");
        assert_eq!(m.topic, "t");
        assert_eq!(m.pkid, 2);
        assert_eq!(m.props.as_deref(), Some(&props));
        assert_eq!(fx.records[0].detail.topic_from_alias, Some(true));
    }

    #[test]
    fn everything_waiting_fails_when_the_connection_ends() {
        let mut t = Tracker::default();
        t.push_publish(publish(1, Qos::AtLeastOnce));
        t.outgoing(OutKind::Publish(3), 0, 0);
        t.push_publish(publish(2, Qos::AtMostOnce));
        let lost = t.fail_all("closed");
        assert_eq!(lost.len(), 2);
        assert!(
            lost.iter()
                .all(|(_, o)| matches!(o, PublishOutcome::Failed(_)))
        );
    }
}
