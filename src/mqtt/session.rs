//! One connection's life, whatever its protocol: connect, reconnect with
//! backoff, resubscribe, and turn what crosses the wire into `Event`s.
//!
//! The protocol lives in two adapters (`v4.rs` for MQTT 3.1.1, `v5.rs` for
//! MQTT 5) behind [`Client`] (the requesting side, used by the router) and
//! [`Link`] (the polling side, owned by the session task). The pairing of
//! requests with packet ids is the pure [`Tracker`] of `wire.rs`. The router
//! and the session task run on one current-thread runtime, so pushing a
//! shadow entry and queueing the request happen together, never interleaved
//! with the task.

use super::errors::{Failure, describe_connection_error, describe_connection_error_v5};
use super::options::{build_options, build_options_v5, to_qos, to_qos_v5};
use super::wire::{
    Effects, InBody, InPacket, OutKind, ShadowPublish, ShadowSubscribe, ShadowUnsubscribe, Tracker,
};
use super::worker::EventSink;
use super::{Command, ConnStatus, ConnectionId, EventKind, PublishOutcome, PublishToken, v4, v5};
use crate::model::packet::{PacketKind, PacketRecord};
use crate::model::protocol::{Properties, ProtocolVersion, Qos};
use crate::model::topic::{validate_topic_filter, validate_topic_name};
use crate::profile::{Profile, SubscriptionSpec};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// First retry after 0.5 s, doubling up to 30 s; reset after a CONNACK.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(30_000))
}

#[derive(Default)]
struct Shared {
    connected: bool,
    /// Ended for good (fatal error or closed): requests are refused.
    finished: bool,
    tracker: Tracker,
    /// The filters the user wants; re-subscribed when the broker lost them.
    wanted: Vec<SubscriptionSpec>,
    /// Filters the broker acknowledged in the current session.
    confirmed: HashSet<String>,
    /// MQTT 5: the broker's Maximum Packet Size from the last CONNACK.
    /// rumqttc treats a larger packet as a connection error (and would send
    /// it again on a resumed session), so publishes are checked first.
    broker_max_packet: Option<u32>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A poisoned lock only means a panic elsewhere; the data is still usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The requesting side of a connection.
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
    /// The options could not be built: nothing is ever sent.
    None,
}

impl Client {
    fn protocol(&self) -> ProtocolVersion {
        match self {
            Client::V5(_) => ProtocolVersion::V5,
            _ => ProtocolVersion::V311,
        }
    }

    fn publish(
        &self,
        topic: String,
        qos: Qos,
        retain: bool,
        payload: Vec<u8>,
        props: Option<&Properties>,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, to_qos(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => match props {
                Some(p) => c.try_publish_with_properties(
                    topic,
                    to_qos_v5(qos),
                    retain,
                    payload,
                    v5::to_publish_props(p),
                ),
                None => c.try_publish(topic, to_qos_v5(qos), retain, payload),
            }
            .map_err(|e| e.to_string()),
            Client::None => Err("not connected".into()),
        }
    }

    /// Queues one SUBSCRIBE for `specs`; returns its size and properties.
    fn subscribe(&self, specs: &[SubscriptionSpec]) -> Result<ShadowSubscribe, String> {
        match self {
            Client::V4(c) => {
                let size = v4::subscribe_size(specs);
                c.try_subscribe_many(v4::filters(specs))
                    .map_err(|e| e.to_string())?;
                Ok(ShadowSubscribe {
                    specs: specs.to_vec(),
                    size,
                    props: None,
                })
            }
            Client::V5(c) => {
                let props = specs.first().and_then(v5::subscribe_props);
                let size = v5::subscribe_size(specs, props.as_ref());
                let filters: Vec<_> = specs.iter().map(v5::filter).collect();
                let neutral = props.as_ref().and_then(v5::neutral_subscribe_props);
                match props {
                    Some(p) => c.try_subscribe_many_with_properties(filters, p),
                    None => c.try_subscribe_many(filters),
                }
                .map_err(|e| e.to_string())?;
                Ok(ShadowSubscribe {
                    specs: specs.to_vec(),
                    size,
                    props: neutral,
                })
            }
            Client::None => Err("not connected".into()),
        }
    }

    fn unsubscribe(&self, filter: &str) -> Result<ShadowUnsubscribe, String> {
        let filters = vec![filter.to_string()];
        let size = match self {
            Client::V4(c) => {
                c.try_unsubscribe(filter).map_err(|e| e.to_string())?;
                v4::unsubscribe_size(&filters)
            }
            Client::V5(c) => {
                c.try_unsubscribe(filter).map_err(|e| e.to_string())?;
                v5::unsubscribe_size(&filters)
            }
            Client::None => return Err("not connected".into()),
        };
        Ok(ShadowUnsubscribe { filters, size })
    }

    fn disconnect(&self) -> bool {
        match self {
            Client::V4(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
            Client::None => false,
        }
    }

    fn publish_size(&self, topic: &str, qos: Qos, len: usize, props: Option<&Properties>) -> usize {
        match self {
            Client::V5(_) => v5::publish_size(topic, qos, len, props),
            _ => v4::publish_size(topic, qos, len),
        }
    }
}

/// Groups specs into SUBSCRIBE packets: MQTT 5 properties (subscription
/// identifier, user properties) belong to a whole packet, so a spec that has
/// them goes alone.
fn subscribe_batches(
    specs: Vec<SubscriptionSpec>,
    protocol: ProtocolVersion,
) -> Vec<Vec<SubscriptionSpec>> {
    if protocol == ProtocolVersion::V311 {
        return vec![specs];
    }
    let (alone, plain): (Vec<_>, Vec<_>) = specs
        .into_iter()
        .partition(|s| s.subscription_identifier.is_some() || !s.user_properties.is_empty());
    let mut batches: Vec<Vec<SubscriptionSpec>> = alone.into_iter().map(|s| vec![s]).collect();
    if !plain.is_empty() {
        batches.insert(0, plain);
    }
    batches
}

/// What one poll of the event loop gave.
enum Polled {
    In(InPacket),
    Out(OutKind),
    Nothing,
}

/// The polling side of a connection.
enum Link {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>, v5::Aliases),
}

/// A failed poll: the failure in words, and the refusing CONNACK if that is
/// what it was.
struct Lost {
    failure: Failure,
    connack: Option<InPacket>,
}

impl Link {
    async fn poll(&mut self, host: &str, port: u16) -> Result<Polled, Lost> {
        match self {
            Link::V4(el) => match el.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => Ok(Polled::In(v4::incoming(p))),
                Ok(rumqttc::Event::Outgoing(o)) => {
                    Ok(v4::outgoing(o).map_or(Polled::Nothing, Polled::Out))
                }
                Err(err) => {
                    let creds = el.mqtt_options.credentials().is_some();
                    let connack = match &err {
                        rumqttc::ConnectionError::ConnectionRefused(code) => Some(InPacket {
                            kind: PacketKind::Connack,
                            size: 4,
                            pkid: None,
                            body: InBody::ConnAck {
                                session_present: false,
                                code: v4::connack_code(*code),
                                code_text: super::errors::describe_return_code(*code).into(),
                            },
                            props: None,
                        }),
                        _ => None,
                    };
                    Err(Lost {
                        failure: describe_connection_error(&err, host, port, creds),
                        connack,
                    })
                }
            },
            Link::V5(el, aliases) => match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    if matches!(p, rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_)) {
                        aliases.clear();
                    }
                    Ok(Polled::In(v5::incoming(p, aliases)))
                }
                Ok(rumqttc::v5::Event::Outgoing(o)) => {
                    Ok(v5::outgoing(o).map_or(Polled::Nothing, Polled::Out))
                }
                Err(err) => {
                    let creds = el.options.credentials().is_some();
                    let connack = match &err {
                        rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
                            let code = v5::connack_code(*code);
                            Some(InPacket {
                                kind: PacketKind::Connack,
                                // Fixed header, flags, reason code, no properties.
                                size: 5,
                                pkid: None,
                                body: InBody::ConnAck {
                                    session_present: false,
                                    code,
                                    code_text: format!(
                                        "refused by the broker: {}",
                                        crate::model::protocol::reason_text(
                                            code,
                                            crate::model::protocol::ReasonContext::Connack
                                        )
                                    ),
                                },
                                props: None,
                            })
                        }
                        _ => None,
                    };
                    Err(Lost {
                        failure: describe_connection_error_v5(&err, host, port, creds),
                        connack,
                    })
                }
            },
        }
    }

    /// Events rumqttc had queued when the poll failed: packets that crossed
    /// the wire before the failure (a server's DISCONNECT among them).
    fn leftovers(&mut self) -> Vec<Polled> {
        match self {
            Link::V4(el) => el
                .state
                .events
                .drain(..)
                .map(|e| match e {
                    rumqttc::Event::Incoming(p) => Polled::In(v4::incoming(p)),
                    rumqttc::Event::Outgoing(o) => {
                        v4::outgoing(o).map_or(Polled::Nothing, Polled::Out)
                    }
                })
                .collect(),
            Link::V5(el, aliases) => {
                let events: Vec<_> = el.state.events.drain(..).collect();
                events
                    .into_iter()
                    .map(|e| match e {
                        rumqttc::v5::Event::Incoming(p) => Polled::In(v5::incoming(p, aliases)),
                        rumqttc::v5::Event::Outgoing(o) => {
                            v5::outgoing(o).map_or(Polled::Nothing, Polled::Out)
                        }
                    })
                    .collect()
            }
        }
    }

    fn drop_unsent(&mut self) -> (usize, usize, usize) {
        match self {
            Link::V4(el) => v4::drop_unsent(el),
            Link::V5(el, _) => v5::drop_unsent(el),
        }
    }

    fn connect_record(&self, t_us: u64) -> PacketRecord {
        match self {
            Link::V4(el) => v4::connect_record(&el.mqtt_options, t_us),
            Link::V5(el, _) => v5::connect_record(&el.options, t_us),
        }
    }

    fn plain_size(&self, out: OutKind) -> usize {
        match self {
            Link::V4(_) => v4::plain_size(out),
            Link::V5(..) => v5::plain_size(out),
        }
    }
}

pub(crate) struct Session {
    conn: ConnectionId,
    client: Client,
    shared: Arc<Mutex<Shared>>,
    sink: EventSink,
    close_tx: Option<oneshot::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Session {
    /// `seq` numbers this connection's packet records; it outlives the
    /// session so a reopened connection goes on counting.
    pub(crate) fn start(
        conn: ConnectionId,
        profile: Profile,
        sink: EventSink,
        seq: Arc<AtomicU64>,
    ) -> Session {
        let shared = Arc::new(Mutex::new(Shared {
            wanted: profile.subscriptions.clone(),
            ..Shared::default()
        }));
        let (close_tx, close_rx) = oneshot::channel();
        let built = match profile.protocol {
            ProtocolVersion::V311 => build_options(&profile).map(|opts| {
                let cap = opts.request_channel_capacity();
                let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, cap);
                let mut net = eventloop.network_options();
                net.set_connection_timeout(super::options::CONNECT_TIMEOUT_SECS);
                net.set_tcp_nodelay(true);
                eventloop.set_network_options(net);
                (Client::V4(client), Link::V4(Box::new(eventloop)))
            }),
            ProtocolVersion::V5 => build_options_v5(&profile).map(|mut opts| {
                let cap = opts.request_channel_capacity();
                let mut net = opts.network_options();
                net.set_connection_timeout(super::options::CONNECT_TIMEOUT_SECS);
                net.set_tcp_nodelay(true);
                opts.set_network_options(net);
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(opts, cap);
                (
                    Client::V5(client),
                    Link::V5(Box::new(eventloop), v5::Aliases::default()),
                )
            }),
        };
        let (client, task) = match built {
            Ok((client, link)) => {
                let task = SessionTask {
                    conn,
                    host: profile.host.trim().to_string(),
                    port: profile.port,
                    client: client.clone(),
                    shared: shared.clone(),
                    sink: sink.clone(),
                    seq,
                    connect_started: None,
                    attempt: 0,
                };
                (client, tokio::spawn(task.run(link, close_rx)))
            }
            Err(e) => {
                lock(&shared).finished = true;
                sink.send(
                    conn,
                    EventKind::Status(ConnStatus::Disconnected {
                        reason: Some(e.to_string()),
                    }),
                );
                (Client::None, tokio::spawn(async {}))
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

    fn error(&self, message: String) {
        self.sink.send(self.conn, EventKind::Error(message));
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
                props,
                ..
            } => {
                if shared.finished {
                    drop(shared);
                    self.fail_publish(token, "not connected".into());
                    return;
                }
                if let Err(why) = validate_topic_name(&topic) {
                    drop(shared);
                    self.fail_publish(token, why);
                    return;
                }
                let props = props.and_then(|p| (*p).boxed());
                if props.is_some() && self.client.protocol() == ProtocolVersion::V311 {
                    drop(shared);
                    self.fail_publish(
                        token,
                        "PUBLISH properties need an MQTT 5 connection (this profile speaks 3.1.1)"
                            .into(),
                    );
                    return;
                }
                let size = self
                    .client
                    .publish_size(&topic, qos, payload.len(), props.as_deref());
                if let Some(max) = shared.broker_max_packet
                    && size > max as usize
                {
                    drop(shared);
                    self.fail_publish(
                        token,
                        format!(
                            "PUBLISH of {size} bytes is larger than the broker's Maximum Packet Size ({max} bytes, from CONNACK)"
                        ),
                    );
                    return;
                }
                shared.tracker.push_publish(ShadowPublish {
                    token: Some(token),
                    topic: topic.clone(),
                    qos,
                    retain,
                    payload_len: payload.len(),
                    size,
                    props: props.clone(),
                });
                if let Err(e) = self
                    .client
                    .publish(topic, qos, retain, payload, props.as_deref())
                {
                    shared.tracker.pop_publish();
                    drop(shared);
                    self.fail_publish(token, format!("could not queue the publish: {e}"));
                }
            }
            Command::Subscribe { sub, .. } => {
                if let Err(why) = validate_topic_filter(&sub.filter) {
                    drop(shared);
                    self.error(format!("subscription '{}' refused: {why}", sub.filter));
                    return;
                }
                shared.wanted.retain(|s| s.filter != sub.filter);
                shared.wanted.push(sub.clone());
                if shared.connected {
                    self.queue_subscribe(&mut shared, std::slice::from_ref(&sub));
                }
            }
            Command::Unsubscribe { filter, .. } => {
                shared.wanted.retain(|s| s.filter != filter);
                shared.confirmed.remove(&filter);
                if shared.connected {
                    // The shadow goes in first; it is taken out again on failure.
                    match self.client.unsubscribe(&filter) {
                        Ok(u) => shared.tracker.push_unsubscribe(u),
                        Err(e) => {
                            drop(shared);
                            self.error(format!("could not unsubscribe from '{filter}': {e}"));
                        }
                    }
                }
            }
            Command::Connect { .. }
            | Command::Disconnect { .. }
            | Command::Drop { .. }
            | Command::Record { .. }
            | Command::StopRecording { .. }
            | Command::Shutdown => {}
        }
    }

    fn queue_subscribe(&self, shared: &mut Shared, specs: &[SubscriptionSpec]) {
        for batch in subscribe_batches(specs.to_vec(), self.client.protocol()) {
            match self.client.subscribe(&batch) {
                Ok(s) => shared.tracker.push_subscribe(s),
                Err(e) => self.error(format!(
                    "could not subscribe to '{}': {e}",
                    batch.first().map_or("", |s| s.filter.as_str())
                )),
            }
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

struct SessionTask {
    conn: ConnectionId,
    host: String,
    port: u16,
    client: Client,
    shared: Arc<Mutex<Shared>>,
    sink: EventSink,
    seq: Arc<AtomicU64>,
    /// When the current connection attempt started (µs), for the CONNECT record.
    connect_started: Option<u64>,
    attempt: u32,
}

impl SessionTask {
    fn status(&self, status: ConnStatus) {
        self.sink.send(self.conn, EventKind::Status(status));
    }

    fn emit_record(&self, mut record: PacketRecord) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        record.seq = seq;
        self.sink.send(self.conn, EventKind::Packet(record));
        seq
    }

    /// Sends what a packet meant, records first (a message links to its
    /// PUBLISH record by sequence number).
    fn emit(&self, fx: Effects) {
        let mut first_seq = None;
        for r in fx.records {
            let seq = self.emit_record(r);
            first_seq.get_or_insert(seq);
        }
        if let Some(mut m) = fx.message {
            m.packet_seq = first_seq;
            self.sink.send(self.conn, EventKind::Message(m));
        }
        for (token, outcome) in fx.published {
            self.sink
                .send(self.conn, EventKind::Published { token, outcome });
        }
        for (filter, granted, reason) in fx.subscribed {
            if granted.is_some() {
                lock(&self.shared).confirmed.insert(filter.clone());
            }
            self.sink.send(
                self.conn,
                EventKind::Subscribed {
                    filter,
                    granted,
                    reason,
                },
            );
        }
        for (filter, reason) in fx.unsubscribed {
            self.sink
                .send(self.conn, EventKind::Unsubscribed { filter, reason });
        }
    }

    fn published(&self, lost: Vec<(PublishToken, PublishOutcome)>) {
        for (token, outcome) in lost {
            self.sink
                .send(self.conn, EventKind::Published { token, outcome });
        }
    }

    async fn run(mut self, mut link: Link, mut close_rx: oneshot::Receiver<bool>) {
        self.status(ConnStatus::Connecting);
        self.connect_started = Some(self.sink.micros());
        let mut behind_since = None;
        loop {
            self.sink.wait_for_room(self.conn, &mut behind_since).await;
            let polled = tokio::select! {
                biased;
                graceful = &mut close_rx => {
                    self.shutdown(&mut link, graceful.unwrap_or(false)).await;
                    return;
                }
                ev = link.poll(&self.host, self.port) => ev,
            };
            match polled {
                Ok(p) => self.handle(p, &link),
                Err(lost) => {
                    let failure = self.connection_lost(lost, &mut link);
                    if failure.fatal {
                        let mut shared = lock(&self.shared);
                        shared.finished = true;
                        let failed = shared.tracker.fail_all(&failure.message);
                        drop(shared);
                        self.published(failed);
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
                    self.connect_started = Some(self.sink.micros());
                }
            }
        }
    }

    fn handle(&mut self, polled: Polled, link: &Link) {
        match polled {
            Polled::In(p) => self.incoming(p, link),
            Polled::Out(o) => {
                let size = link.plain_size(o);
                let fx = lock(&self.shared)
                    .tracker
                    .outgoing(o, self.sink.micros(), size);
                self.emit(fx);
            }
            Polled::Nothing => {}
        }
    }

    fn finish(&mut self, reason: Option<String>) {
        let mut shared = lock(&self.shared);
        shared.finished = true;
        shared.connected = false;
        let failed = shared
            .tracker
            .fail_all("the connection was closed before it completed");
        drop(shared);
        self.published(failed);
        self.status(ConnStatus::Disconnected { reason });
    }

    async fn shutdown(&mut self, link: &mut Link, graceful: bool) {
        let connected = lock(&self.shared).connected;
        if !graceful {
            self.finish(Some(if connected {
                "connection dropped without DISCONNECT (the broker publishes the will)".into()
            } else {
                "closed".into()
            }));
            return;
        }
        if connected && self.client.disconnect() {
            // Keep polling until DISCONNECT is on the wire (or the time is up):
            // the acknowledgements still in flight are part of the trace.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(p)) =
                tokio::time::timeout_at(deadline, link.poll(&self.host, self.port)).await
            {
                let done = matches!(p, Polled::Out(OutKind::Disconnect));
                self.handle(p, link);
                if done {
                    break;
                }
            }
        }
        self.finish(None);
    }

    /// A poll error: records what it means for the packets in flight and
    /// returns the failure in words.
    fn connection_lost(&mut self, lost: Lost, link: &mut Link) -> Failure {
        if let Some(connack) = lost.connack {
            // CONNECT went out and a refusing CONNACK came back.
            let t = self.connect_started.unwrap_or_else(|| self.sink.micros());
            self.emit_record(link.connect_record(t));
            let fx =
                lock(&self.shared)
                    .tracker
                    .incoming(connack, self.sink.micros(), SystemTime::now());
            self.emit(fx);
        }
        for p in link.leftovers() {
            self.handle(p, link);
        }
        self.connect_started = None;
        lock(&self.shared).connected = false;

        // rumqttc moved requests it had not sent yet into `pending`, and drops
        // them if the broker does not resume the session. Rather than let them
        // vanish, report them failed now; packets already in flight (they have
        // a packet id) stay and are resent if the session resumes.
        let (p, s, u) = link.drop_unsent();
        if p + s + u > 0 {
            // Subscriptions stay wanted and are subscribed again on CONNACK.
            let failed = lock(&self.shared).tracker.drop_unsent(
                p,
                s,
                u,
                "the connection dropped before it was sent",
            );
            self.published(failed);
        }
        lost.failure
    }

    fn incoming(&mut self, packet: InPacket, link: &Link) {
        let connack = match &packet.body {
            InBody::ConnAck {
                session_present,
                code,
                ..
            } => Some((*session_present, *code)),
            _ => None,
        };
        let props = packet.props.clone();
        if connack.is_some() {
            let t = self
                .connect_started
                .take()
                .unwrap_or_else(|| self.sink.micros());
            self.emit_record(link.connect_record(t));
        }
        let fx = lock(&self.shared)
            .tracker
            .incoming(packet, self.sink.micros(), SystemTime::now());
        self.emit(fx);
        if let Some((session_present, _code)) = connack {
            lock(&self.shared).broker_max_packet =
                props.as_ref().and_then(|p| p.maximum_packet_size);
            self.sink.send(
                self.conn,
                EventKind::Connack {
                    session_present,
                    props,
                },
            );
            self.connected(session_present);
        }
    }

    fn connected(&mut self, session_present: bool) {
        self.attempt = 0;
        let mut shared = lock(&self.shared);
        let mut lost = Vec::new();
        if !session_present {
            // The broker kept nothing: our in-flight publishes will not complete.
            lost = shared.tracker.fail_inflight(
                "the connection dropped before it was acknowledged (the broker did not keep the session)",
            );
            shared.confirmed.clear();
        }
        shared.tracker.forget_acks();
        shared.connected = true;
        drop(shared);
        self.published(lost);
        self.status(ConnStatus::Connected {
            since: SystemTime::now(),
            session_present,
        });
        let mut shared = lock(&self.shared);
        let missing: Vec<SubscriptionSpec> = shared
            .wanted
            .iter()
            .filter(|s| !shared.confirmed.contains(&s.filter))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        for batch in subscribe_batches(missing, self.client.protocol()) {
            match self.client.subscribe(&batch) {
                Ok(s) => shared.tracker.push_subscribe(s),
                Err(e) => self.sink.send(
                    self.conn,
                    EventKind::Error(format!("could not re-subscribe: {e}")),
                ),
            }
        }
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

    #[test]
    fn v5_specs_with_properties_get_a_subscribe_of_their_own() {
        let mut with_id = SubscriptionSpec::new("b/#", Qos::AtLeastOnce);
        with_id.subscription_identifier = Some(7);
        let specs = vec![
            SubscriptionSpec::new("a/#", Qos::AtMostOnce),
            with_id.clone(),
            SubscriptionSpec::new("c", Qos::AtMostOnce),
        ];
        let batches = subscribe_batches(specs.clone(), ProtocolVersion::V5);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].len(), 2);
        assert_eq!(batches[1], vec![with_id]);
        assert_eq!(subscribe_batches(specs, ProtocolVersion::V311).len(), 1);
    }
}
