//! One connection's life: connect, reconnect with backoff, resubscribe, and
//! turn rumqttc's events into `Event`s and packet records.
//!
//! rumqttc reports outgoing packets only by packet id, so the session keeps a
//! shadow of what it asked rumqttc to send (FIFO, in request order) and pairs
//! each outgoing event with it. The router (`worker.rs`) and the session task
//! run on one current-thread runtime, so pushing a shadow entry and queueing
//! the request happen together, never interleaved with the task.

use super::errors::{Failure, describe_connection_error, describe_return_code};
use super::options::{build_options, from_qos, to_qos};
use super::worker::EventSink;
use super::{Command, ConnStatus, ConnectionId, EventKind, Message, PublishOutcome, PublishToken};
use crate::model::packet::{Direction, PacketKind, PacketRecord, publish_wire_size};
use crate::profile::{Profile, Qos, SubscriptionSpec};
use rumqttc::{
    AsyncClient, ConnectionError, EventLoop, Incoming, MqttOptions, Outgoing, Packet, Request,
    SubscribeFilter, SubscribeReasonCode,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// First retry after 0.5 s, doubling up to 30 s; reset after a CONNACK.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(30_000))
}

/// A publish the session asked rumqttc to send, not yet seen on the wire.
#[derive(Clone, Debug)]
struct ShadowPublish {
    token: Option<PublishToken>,
    topic: String,
    qos: Qos,
    retain: bool,
    payload_len: usize,
}

#[derive(Default)]
struct Shared {
    connected: bool,
    /// Ended for good (fatal error or closed): requests are refused.
    finished: bool,
    publishes: VecDeque<ShadowPublish>,
    subscribes: VecDeque<Vec<SubscriptionSpec>>,
    unsubscribes: VecDeque<Vec<String>>,
    /// The filters the user wants; re-subscribed when the broker lost them.
    wanted: Vec<SubscriptionSpec>,
    /// Filters the broker acknowledged in the current session.
    confirmed: HashSet<String>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A poisoned lock only means a panic elsewhere; the data is still usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Session {
    conn: ConnectionId,
    client: AsyncClient,
    shared: Arc<Mutex<Shared>>,
    sink: EventSink,
    close_tx: Option<oneshot::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Session {
    pub(crate) fn start(conn: ConnectionId, profile: Profile, sink: EventSink) -> Session {
        let shared = Arc::new(Mutex::new(Shared {
            wanted: profile.subscriptions.clone(),
            ..Shared::default()
        }));
        let (close_tx, close_rx) = oneshot::channel();
        let (client, task) = match build_options(&profile) {
            Ok(opts) => {
                let cap = opts.request_channel_capacity();
                let (client, mut eventloop) = AsyncClient::new(opts, cap);
                let mut net = eventloop.network_options();
                net.set_connection_timeout(super::options::CONNECT_TIMEOUT_SECS);
                net.set_tcp_nodelay(true);
                eventloop.set_network_options(net);
                let task = SessionTask {
                    conn,
                    host: profile.host.trim().to_string(),
                    port: profile.port,
                    client: client.clone(),
                    shared: shared.clone(),
                    sink: sink.clone(),
                    inflight: HashMap::new(),
                    sub_pkids: HashMap::new(),
                    unsub_pkids: HashMap::new(),
                    connect_started: None,
                    attempt: 0,
                    ever_connected: false,
                };
                (client, tokio::spawn(task.run(eventloop, close_rx)))
            }
            Err(e) => {
                lock(&shared).finished = true;
                sink.send(
                    conn,
                    EventKind::Status(ConnStatus::Disconnected {
                        reason: Some(e.to_string()),
                    }),
                );
                // A client nobody polls: requests are refused via `finished`.
                let (client, _eventloop) = AsyncClient::new(MqttOptions::new("x", "x", 1), 1);
                (client, tokio::spawn(async {}))
            }
        };
        Session {
            conn,
            client,
            shared,
            sink,
            close_tx: Some(close_tx),
            task,
        }
    }

    fn fail_publish(&self, token: PublishToken, why: String) {
        self.sink.send(
            self.conn,
            EventKind::Published {
                token,
                outcome: PublishOutcome::Failed(why),
            },
        );
    }

    pub(crate) fn request(&self, cmd: Command) {
        let mut shared = lock(&self.shared);
        match cmd {
            Command::Publish {
                token,
                topic,
                payload,
                qos,
                retain,
                ..
            } => {
                if shared.finished {
                    drop(shared);
                    self.fail_publish(token, "not connected".into());
                    return;
                }
                if let Err(why) = crate::profile::validate_topic_name(&topic) {
                    drop(shared);
                    self.fail_publish(token, why);
                    return;
                }
                shared.publishes.push_back(ShadowPublish {
                    token: Some(token),
                    topic: topic.clone(),
                    qos,
                    retain,
                    payload_len: payload.len(),
                });
                if let Err(e) = self.client.try_publish(topic, to_qos(qos), retain, payload) {
                    shared.publishes.pop_back();
                    drop(shared);
                    self.fail_publish(token, format!("could not queue the publish: {e}"));
                }
            }
            Command::Subscribe { sub, .. } => {
                if let Err(why) = crate::profile::validate_topic_filter(&sub.filter) {
                    drop(shared);
                    self.sink.send(
                        self.conn,
                        EventKind::Error(format!("subscription '{}' refused: {why}", sub.filter)),
                    );
                    return;
                }
                shared.wanted.retain(|s| s.filter != sub.filter);
                shared.wanted.push(sub.clone());
                if shared.connected {
                    shared.subscribes.push_back(vec![sub.clone()]);
                    if let Err(e) = self
                        .client
                        .try_subscribe(sub.filter.clone(), to_qos(sub.qos))
                    {
                        shared.subscribes.pop_back();
                        drop(shared);
                        self.sink.send(
                            self.conn,
                            EventKind::Error(format!(
                                "could not subscribe to '{}': {e}",
                                sub.filter
                            )),
                        );
                    }
                }
            }
            Command::Unsubscribe { filter, .. } => {
                shared.wanted.retain(|s| s.filter != filter);
                shared.confirmed.remove(&filter);
                if shared.connected {
                    shared.unsubscribes.push_back(vec![filter.clone()]);
                    if let Err(e) = self.client.try_unsubscribe(filter.clone()) {
                        shared.unsubscribes.pop_back();
                        drop(shared);
                        self.sink.send(
                            self.conn,
                            EventKind::Error(format!("could not unsubscribe from '{filter}': {e}")),
                        );
                    }
                }
            }
            Command::Connect { .. }
            | Command::Disconnect { .. }
            | Command::Drop { .. }
            | Command::Shutdown => {}
        }
    }

    /// `graceful`: send DISCONNECT first (the broker discards the will);
    /// otherwise the socket is just closed (the broker fires the will).
    pub(crate) async fn close(mut self, graceful: bool) {
        if let Some(tx) = self.close_tx.take() {
            tx.send(graceful).ok();
        }
        if tokio::time::timeout(Duration::from_secs(3), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

struct Inflight {
    token: Option<PublishToken>,
    publish: ShadowPublish,
}

struct SessionTask {
    conn: ConnectionId,
    host: String,
    port: u16,
    client: AsyncClient,
    shared: Arc<Mutex<Shared>>,
    sink: EventSink,
    /// QoS 1/2 publishes of ours on the wire, waiting for PUBACK / PUBCOMP.
    inflight: HashMap<u16, Inflight>,
    sub_pkids: HashMap<u16, Vec<SubscriptionSpec>>,
    unsub_pkids: HashMap<u16, Vec<String>>,
    /// When the current connection attempt started (µs), for the CONNECT record.
    connect_started: Option<u64>,
    attempt: u32,
    ever_connected: bool,
}

impl SessionTask {
    fn status(&self, status: ConnStatus) {
        self.sink.send(self.conn, EventKind::Status(status));
    }

    fn record(&self, dir: Direction, kind: PacketKind, bytes: usize) -> PacketRecord {
        PacketRecord::new(self.sink.micros(), dir, kind, None, bytes)
    }

    fn emit(&self, record: PacketRecord) {
        self.sink.send(self.conn, EventKind::Packet(record));
    }

    async fn run(mut self, mut eventloop: EventLoop, mut close_rx: oneshot::Receiver<bool>) {
        self.status(ConnStatus::Connecting);
        loop {
            if eventloop.network.is_none() && self.connect_started.is_none() {
                self.connect_started = Some(self.sink.micros());
            }
            let polled = tokio::select! {
                biased;
                graceful = &mut close_rx => {
                    self.shutdown(&mut eventloop, graceful.unwrap_or(false)).await;
                    return;
                }
                ev = eventloop.poll() => ev,
            };
            match polled {
                Ok(rumqttc::Event::Incoming(packet)) => {
                    self.incoming(packet, &eventloop.mqtt_options)
                }
                Ok(rumqttc::Event::Outgoing(out)) => self.outgoing(out),
                Err(err) => {
                    let failure = self.connection_lost(&err, &mut eventloop);
                    if failure.fatal {
                        lock(&self.shared).finished = true;
                        self.status(ConnStatus::Disconnected {
                            reason: Some(failure.message),
                        });
                        return;
                    }
                    self.attempt = self.attempt.saturating_add(1);
                    let delay = backoff(self.attempt);
                    self.status(ConnStatus::Reconnecting {
                        attempt: self.attempt,
                        retry_in: delay,
                        reason: failure.message,
                    });
                    tokio::select! {
                        biased;
                        graceful = &mut close_rx => {
                            // Not connected: there is no DISCONNECT to send.
                            let _ = graceful;
                            self.finish(None);
                            return;
                        }
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn finish(&mut self, reason: Option<String>) {
        let mut shared = lock(&self.shared);
        shared.finished = true;
        shared.connected = false;
        drop(shared);
        self.fail_all("the connection was closed before it completed");
        self.status(ConnStatus::Disconnected { reason });
    }

    async fn shutdown(&mut self, eventloop: &mut EventLoop, graceful: bool) {
        let connected = lock(&self.shared).connected;
        if !graceful {
            self.finish(Some(if connected {
                "connection dropped without DISCONNECT (the broker publishes the will)".into()
            } else {
                "closed".into()
            }));
            return;
        }
        if connected && self.client.try_disconnect().is_ok() {
            // Keep polling until DISCONNECT is on the wire (or the time is up).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
                match ev {
                    rumqttc::Event::Outgoing(Outgoing::Disconnect) => {
                        self.outgoing(Outgoing::Disconnect);
                        break;
                    }
                    rumqttc::Event::Incoming(p) => {
                        self.incoming(p, &eventloop.mqtt_options.clone())
                    }
                    rumqttc::Event::Outgoing(o) => self.outgoing(o),
                }
            }
        }
        self.finish(None);
    }

    /// Fails every publish still waiting, and forgets the packet-id maps.
    fn fail_all(&mut self, why: &str) {
        let mut shared = lock(&self.shared);
        let unsent: Vec<_> = shared.publishes.drain(..).collect();
        shared.subscribes.clear();
        shared.unsubscribes.clear();
        drop(shared);
        for p in unsent.into_iter().filter_map(|p| p.token) {
            self.published(p, PublishOutcome::Failed(why.into()));
        }
        let inflight: Vec<_> = self.inflight.drain().filter_map(|(_, i)| i.token).collect();
        for token in inflight {
            self.published(token, PublishOutcome::Failed(why.into()));
        }
        self.sub_pkids.clear();
        self.unsub_pkids.clear();
    }

    fn published(&self, token: PublishToken, outcome: PublishOutcome) {
        self.sink
            .send(self.conn, EventKind::Published { token, outcome });
    }

    fn connect_record(&self, opts: &MqttOptions) -> PacketRecord {
        let login = opts.credentials();
        let connect = rumqttc::Connect {
            protocol: rumqttc::Protocol::V4,
            keep_alive: opts.keep_alive().as_secs().min(u64::from(u16::MAX)) as u16,
            client_id: opts.client_id(),
            clean_session: opts.clean_session(),
            last_will: opts.last_will(),
            login: login.clone(),
        };
        let mut r = self.record(Direction::Out, PacketKind::Connect, connect.size());
        r.t_us = self.connect_started.unwrap_or(r.t_us);
        r.detail.client_id = Some(connect.client_id.clone());
        r.detail.clean_session = Some(connect.clean_session);
        r.detail.keep_alive = Some(connect.keep_alive);
        r.detail.will_topic = connect.last_will.as_ref().map(|w| w.topic.clone());
        r.detail.username = Some(login.is_some());
        r
    }

    /// A poll error: records what it means for the packets in flight and
    /// returns the failure in words.
    fn connection_lost(&mut self, err: &ConnectionError, eventloop: &mut EventLoop) -> Failure {
        if let ConnectionError::ConnectionRefused(code) = err {
            // CONNECT went out and a refusing CONNACK came back.
            self.emit(self.connect_record(&eventloop.mqtt_options));
            let mut r = self.record(Direction::In, PacketKind::Connack, 4);
            r.detail.session_present = Some(false);
            r.detail.return_code = Some(describe_return_code(*code).into());
            self.emit(r);
        }
        self.connect_started = None;
        lock(&self.shared).connected = false;

        // rumqttc moved requests it had not sent yet into `pending`, and drops
        // them if the broker does not resume the session. Rather than let them
        // vanish, report them failed now; packets already in flight (they have
        // a packet id) stay and are resent if the session resumes.
        let before = eventloop.pending.len();
        let mut dropped_publishes = 0;
        let mut dropped_subs = 0;
        let mut dropped_unsubs = 0;
        eventloop.pending.retain(|r| match r {
            Request::Publish(p) if p.pkid == 0 => {
                dropped_publishes += 1;
                false
            }
            Request::Subscribe(s) if s.pkid == 0 => {
                dropped_subs += 1;
                false
            }
            Request::Unsubscribe(u) if u.pkid == 0 => {
                dropped_unsubs += 1;
                false
            }
            Request::Disconnect(_) | Request::PingReq(_) => false,
            _ => true,
        });
        if eventloop.pending.len() != before {
            let mut shared = lock(&self.shared);
            let lost: Vec<_> = (0..dropped_publishes)
                .filter_map(|_| shared.publishes.pop_front())
                .filter_map(|p| p.token)
                .collect();
            for _ in 0..dropped_subs {
                // Their filters stay wanted and are subscribed again on CONNACK.
                shared.subscribes.pop_front();
            }
            for _ in 0..dropped_unsubs {
                shared.unsubscribes.pop_front();
            }
            drop(shared);
            for token in lost {
                self.published(
                    token,
                    PublishOutcome::Failed("the connection dropped before it was sent".into()),
                );
            }
        }
        describe_connection_error(
            err,
            &self.host,
            self.port,
            eventloop.mqtt_options.credentials().is_some(),
        )
    }

    fn incoming(&mut self, packet: Incoming, opts: &MqttOptions) {
        let mut r = self.record(Direction::In, incoming_kind(&packet), packet.size());
        match &packet {
            Packet::ConnAck(ack) => {
                self.emit(self.connect_record(opts));
                self.connect_started = None;
                r.detail.session_present = Some(ack.session_present);
                r.detail.return_code = Some(describe_return_code(ack.code).into());
                self.emit(r);
                self.connected(ack.session_present);
            }
            Packet::Publish(p) => {
                r.pkid = (p.pkid != 0).then_some(p.pkid);
                r.qos = Some(p.qos as u8);
                r.detail.topic = Some(p.topic.clone());
                r.detail.retain = Some(p.retain);
                r.detail.dup = Some(p.dup);
                r.detail.payload_bytes = Some(p.payload.len());
                self.emit(r);
                self.sink.send(
                    self.conn,
                    EventKind::Message(Message {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                        qos: from_qos(p.qos),
                        retain: p.retain,
                        dup: p.dup,
                        pkid: p.pkid,
                        received: SystemTime::now(),
                    }),
                );
            }
            Packet::PubAck(ack) => {
                r.pkid = Some(ack.pkid);
                self.emit(r);
                self.acknowledged(ack.pkid, Qos::AtLeastOnce);
            }
            Packet::PubComp(ack) => {
                r.pkid = Some(ack.pkid);
                self.emit(r);
                self.acknowledged(ack.pkid, Qos::ExactlyOnce);
            }
            Packet::PubRec(ack) => {
                r.pkid = Some(ack.pkid);
                self.emit(r);
            }
            Packet::PubRel(ack) => {
                r.pkid = Some(ack.pkid);
                self.emit(r);
            }
            Packet::SubAck(ack) => {
                r.pkid = Some(ack.pkid);
                r.detail.granted = ack
                    .return_codes
                    .iter()
                    .map(|c| match c {
                        SubscribeReasonCode::Success(q) => *q as u8,
                        SubscribeReasonCode::Failure => 0x80,
                    })
                    .collect();
                let specs = self.sub_pkids.remove(&ack.pkid).unwrap_or_default();
                r.detail.filters = specs
                    .iter()
                    .map(|s| (s.filter.clone(), s.qos.as_u8()))
                    .collect();
                self.emit(r);
                for (spec, code) in specs.into_iter().zip(ack.return_codes.iter()) {
                    let granted = match code {
                        SubscribeReasonCode::Success(q) => Some(from_qos(*q)),
                        SubscribeReasonCode::Failure => None,
                    };
                    if granted.is_some() {
                        lock(&self.shared).confirmed.insert(spec.filter.clone());
                    }
                    self.sink.send(
                        self.conn,
                        EventKind::Subscribed {
                            filter: spec.filter,
                            granted,
                        },
                    );
                }
            }
            Packet::UnsubAck(ack) => {
                r.pkid = Some(ack.pkid);
                let filters = self.unsub_pkids.remove(&ack.pkid).unwrap_or_default();
                r.detail.filters = filters.iter().map(|f| (f.clone(), 0)).collect();
                self.emit(r);
                for filter in filters {
                    self.sink
                        .send(self.conn, EventKind::Unsubscribed { filter });
                }
            }
            Packet::PingResp | Packet::PingReq | Packet::Disconnect => self.emit(r),
            Packet::Connect(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => self.emit(r),
        }
    }

    fn acknowledged(&mut self, pkid: u16, expected: Qos) {
        if let Some(i) = self.inflight.get(&pkid)
            && i.publish.qos == expected
            && let Some(i) = self.inflight.remove(&pkid)
            && let Some(token) = i.token
        {
            self.published(token, PublishOutcome::Acknowledged);
        }
    }

    fn connected(&mut self, session_present: bool) {
        self.attempt = 0;
        self.ever_connected = true;
        if !session_present {
            // The broker kept nothing: our in-flight publishes will not complete.
            let lost: Vec<_> = self.inflight.drain().filter_map(|(_, i)| i.token).collect();
            for token in lost {
                self.published(
                    token,
                    PublishOutcome::Failed(
                        "the connection dropped before it was acknowledged (the broker did not keep the session)"
                            .into(),
                    ),
                );
            }
        }
        self.sub_pkids.clear();
        self.unsub_pkids.clear();
        self.status(ConnStatus::Connected {
            since: SystemTime::now(),
            session_present,
        });
        let mut shared = lock(&self.shared);
        shared.connected = true;
        if !session_present {
            shared.confirmed.clear();
        }
        let missing: Vec<SubscriptionSpec> = shared
            .wanted
            .iter()
            .filter(|s| !shared.confirmed.contains(&s.filter))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let filters: Vec<SubscribeFilter> = missing
            .iter()
            .map(|s| SubscribeFilter::new(s.filter.clone(), to_qos(s.qos)))
            .collect();
        shared.subscribes.push_back(missing);
        if let Err(e) = self.client.try_subscribe_many(filters) {
            shared.subscribes.pop_back();
            drop(shared);
            self.sink.send(
                self.conn,
                EventKind::Error(format!("could not re-subscribe: {e}")),
            );
        }
    }

    fn outgoing(&mut self, out: Outgoing) {
        match out {
            Outgoing::Publish(pkid) => {
                if pkid != 0
                    && let Some(i) = self.inflight.get(&pkid)
                {
                    // A retransmission after a resumed session.
                    let p = &i.publish;
                    let mut r = self.record(
                        Direction::Out,
                        PacketKind::Publish,
                        publish_wire_size(p.topic.len(), p.qos.as_u8(), p.payload_len),
                    );
                    fill_publish(&mut r, p, pkid, true);
                    self.emit(r);
                    return;
                }
                let Some(p) = lock(&self.shared).publishes.pop_front() else {
                    return;
                };
                let mut r = self.record(
                    Direction::Out,
                    PacketKind::Publish,
                    publish_wire_size(p.topic.len(), p.qos.as_u8(), p.payload_len),
                );
                fill_publish(&mut r, &p, pkid, false);
                self.emit(r);
                if p.qos == Qos::AtMostOnce {
                    if let Some(token) = p.token {
                        self.published(token, PublishOutcome::Sent);
                    }
                } else {
                    self.inflight.insert(
                        pkid,
                        Inflight {
                            token: p.token,
                            publish: p,
                        },
                    );
                }
            }
            Outgoing::Subscribe(pkid) => {
                let specs = lock(&self.shared)
                    .subscribes
                    .pop_front()
                    .unwrap_or_default();
                let sub = rumqttc::Subscribe {
                    pkid,
                    filters: specs
                        .iter()
                        .map(|s| SubscribeFilter::new(s.filter.clone(), to_qos(s.qos)))
                        .collect(),
                };
                let mut r = self.record(Direction::Out, PacketKind::Subscribe, sub.size());
                r.pkid = Some(pkid);
                r.detail.filters = specs
                    .iter()
                    .map(|s| (s.filter.clone(), s.qos.as_u8()))
                    .collect();
                self.emit(r);
                self.sub_pkids.insert(pkid, specs);
            }
            Outgoing::Unsubscribe(pkid) => {
                let filters = lock(&self.shared)
                    .unsubscribes
                    .pop_front()
                    .unwrap_or_default();
                let unsub = rumqttc::Unsubscribe {
                    pkid,
                    topics: filters.clone(),
                };
                let mut r = self.record(Direction::Out, PacketKind::Unsubscribe, unsub.size());
                r.pkid = Some(pkid);
                r.detail.filters = filters.iter().map(|f| (f.clone(), 0)).collect();
                self.emit(r);
                self.unsub_pkids.insert(pkid, filters);
            }
            Outgoing::PubAck(pkid) => self.ack_record(PacketKind::Puback, pkid),
            Outgoing::PubRec(pkid) => self.ack_record(PacketKind::Pubrec, pkid),
            Outgoing::PubRel(pkid) => self.ack_record(PacketKind::Pubrel, pkid),
            Outgoing::PubComp(pkid) => self.ack_record(PacketKind::Pubcomp, pkid),
            Outgoing::PingReq => self.emit(self.record(Direction::Out, PacketKind::Pingreq, 2)),
            Outgoing::PingResp => self.emit(self.record(Direction::Out, PacketKind::Pingresp, 2)),
            Outgoing::Disconnect => {
                self.emit(self.record(Direction::Out, PacketKind::Disconnect, 2))
            }
            Outgoing::AwaitAck(_) => {}
        }
    }

    fn ack_record(&self, kind: PacketKind, pkid: u16) {
        let mut r = self.record(Direction::Out, kind, 4);
        r.pkid = Some(pkid);
        self.emit(r);
    }
}

fn fill_publish(r: &mut PacketRecord, p: &ShadowPublish, pkid: u16, dup: bool) {
    r.pkid = (pkid != 0).then_some(pkid);
    r.qos = Some(p.qos.as_u8());
    r.detail.topic = Some(p.topic.clone());
    r.detail.retain = Some(p.retain);
    r.detail.dup = Some(dup);
    r.detail.payload_bytes = Some(p.payload_len);
}

fn incoming_kind(p: &Packet) -> PacketKind {
    match p {
        Packet::Connect(_) => PacketKind::Connect,
        Packet::ConnAck(_) => PacketKind::Connack,
        Packet::Publish(_) => PacketKind::Publish,
        Packet::PubAck(_) => PacketKind::Puback,
        Packet::PubRec(_) => PacketKind::Pubrec,
        Packet::PubRel(_) => PacketKind::Pubrel,
        Packet::PubComp(_) => PacketKind::Pubcomp,
        Packet::Subscribe(_) => PacketKind::Subscribe,
        Packet::SubAck(_) => PacketKind::Suback,
        Packet::Unsubscribe(_) => PacketKind::Unsubscribe,
        Packet::UnsubAck(_) => PacketKind::Unsuback,
        Packet::PingReq => PacketKind::Pingreq,
        Packet::PingResp => PacketKind::Pingresp,
        Packet::Disconnect => PacketKind::Disconnect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(1000), Duration::from_secs(30));
    }
}
