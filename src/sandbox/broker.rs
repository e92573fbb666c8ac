//! The sandbox's own MQTT 3.1.1 broker: one tokio task per connection and
//! one shared state behind a mutex. Packets are parsed and encoded by
//! rumqttc's `mqttbytes` codec, so no wire format is written by hand here.
//!
//! What it implements, because users and the tests rely on it: CONNECT
//! (3.1.1 only; other protocol levels get CONNACK 1), client-id takeover,
//! SUBSCRIBE/UNSUBSCRIBE with filter validation (0x80 for a bad filter),
//! PUBLISH at QoS 0/1/2 in both directions (inbound QoS 2 is held until
//! PUBREL, so it is delivered exactly once), delivery QoS = min(publish,
//! granted), retained messages (an empty retained publish deletes), the will
//! on an abnormal close, keep-alive (1.5× the client's interval), and
//! persistent sessions (subscriptions, unacknowledged and queued QoS 1/2
//! messages survive a disconnect; CONNACK says "session present").

use crate::model::topic::matches;
use crate::profile::{validate_topic_filter, validate_topic_name};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, QoS};
use rumqttc::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PubAck, PubComp, PubRec, PubRel,
    Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// Largest packet accepted or sent: multi-megabyte payloads (images,
/// firmware blobs) must pass, as they do through Mosquitto.
pub const MAX_PACKET_SIZE: usize = 256 * 1024 * 1024;
/// QoS 1/2 messages kept per offline persistent session (Mosquitto's
/// default `max_queued_messages`); older ones are dropped and counted.
pub const OFFLINE_QUEUE_LIMIT: usize = 1000;
/// Packets waiting to be written to one connection; a subscriber that
/// falls this far behind loses messages (counted in `dropped`).
const OUTBOX_CAPACITY: usize = 100_000;
/// A connection that sends no CONNECT within this time is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters a user can watch (the GUI shows them beside the sandbox).
#[derive(Debug, Default)]
pub struct Counters {
    pub clients: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// A snapshot of [`Counters`] plus the retained store's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Clients connected right now.
    pub clients: u64,
    /// PUBLISH packets received from clients (and the sandbox itself).
    pub received: u64,
    /// PUBLISH packets handed to subscribers.
    pub sent: u64,
    /// Messages not delivered because a queue was full.
    pub dropped: u64,
    /// Retained messages held.
    pub retained: u64,
    /// Subscriptions held, over all sessions (online or not).
    pub subscriptions: u64,
}

/// What one subscriber receives.
#[derive(Clone)]
struct Delivery {
    topic: String,
    payload: Bytes,
    qos: QoS,
    retain: bool,
}

enum InflightState {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published(Publish),
    /// PUBREC received and PUBREL sent, waiting for PUBCOMP.
    Released,
}

struct Inflight {
    /// Order in which the messages were first sent, to resend in order.
    seq: u64,
    state: InflightState,
}

struct Link {
    conn_id: u64,
    tx: mpsc::Sender<Packet>,
    /// Told when another connection takes over the client id.
    kick: Arc<Notify>,
}

struct Session {
    clean: bool,
    subscriptions: HashMap<String, QoS>,
    conn: Option<Link>,
    inflight: HashMap<u16, Inflight>,
    /// Inbound QoS 2 messages held until the client's PUBREL.
    awaiting_rel: HashMap<u16, Publish>,
    /// QoS 1/2 messages that arrived while the client was away.
    queue: VecDeque<Delivery>,
    next_pkid: u16,
    next_seq: u64,
}

impl Session {
    fn new(clean: bool) -> Session {
        Session {
            clean,
            subscriptions: HashMap::new(),
            conn: None,
            inflight: HashMap::new(),
            awaiting_rel: HashMap::new(),
            queue: VecDeque::new(),
            next_pkid: 0,
            next_seq: 0,
        }
    }

    fn owned_by(&self, conn_id: u64) -> bool {
        self.conn.as_ref().is_some_and(|l| l.conn_id == conn_id)
    }

    fn alloc_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.next_pkid) {
                return Some(self.next_pkid);
            }
        }
        None
    }

    /// Sends now if the client is connected, queues (QoS 1/2, persistent
    /// sessions) if not.
    fn deliver(&mut self, d: Delivery, counters: &Counters) {
        if self.conn.is_none() {
            if !self.clean && d.qos != QoS::AtMostOnce {
                if self.queue.len() >= OFFLINE_QUEUE_LIMIT {
                    self.queue.pop_front();
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                self.queue.push_back(d);
            }
            return;
        }
        let pkid = if d.qos == QoS::AtMostOnce {
            0
        } else {
            match self.alloc_pkid() {
                Some(id) => id,
                None => {
                    // 65535 messages unacknowledged: keep it for later.
                    self.queue.push_back(d);
                    return;
                }
            }
        };
        let mut p = Publish::from_bytes(d.topic, d.qos, d.payload);
        p.pkid = pkid;
        p.retain = d.retain;
        if pkid != 0 {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.inflight.insert(
                pkid,
                Inflight {
                    seq,
                    state: InflightState::Published(p.clone()),
                },
            );
        }
        let Some(link) = &self.conn else { return };
        match link.tx.try_send(Packet::Publish(p)) {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.inflight.remove(&pkid);
            }
            // The connection is ending; a persistent session resends what
            // is still in flight when the client comes back.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// After a reconnect: unacknowledged messages again (DUP set), then
    /// what was queued while the client was away.
    fn resume(&mut self, counters: &Counters) {
        let Some(link) = &self.conn else { return };
        let mut pending: Vec<(u64, u16, Packet)> = self
            .inflight
            .iter()
            .map(|(&pkid, f)| {
                let packet = match &f.state {
                    InflightState::Published(p) => {
                        let mut p = p.clone();
                        p.dup = true;
                        Packet::Publish(p)
                    }
                    InflightState::Released => Packet::PubRel(PubRel::new(pkid)),
                };
                (f.seq, pkid, packet)
            })
            .collect();
        pending.sort_by_key(|(seq, _, _)| *seq);
        for (_, _, packet) in pending {
            if link.tx.try_send(packet).is_err() {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let queued: Vec<Delivery> = self.queue.drain(..).collect();
        for d in queued {
            self.deliver(d, counters);
        }
    }
}

struct Retained {
    payload: Bytes,
    qos: QoS,
}

/// Everything the connections share.
pub struct BrokerState {
    sessions: HashMap<String, Session>,
    retained: BTreeMap<String, Retained>,
    next_conn: u64,
    counters: Arc<Counters>,
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

impl BrokerState {
    fn route(&mut self, topic: &str, payload: Bytes, qos: QoS, retain: bool) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if retain {
            if payload.is_empty() {
                self.retained.remove(topic);
            } else {
                self.retained.insert(
                    topic.to_string(),
                    Retained {
                        payload: payload.clone(),
                        qos,
                    },
                );
            }
        }
        let counters = self.counters.clone();
        for session in self.sessions.values_mut() {
            // Overlapping subscriptions: one copy, at the highest grant.
            let granted = session
                .subscriptions
                .iter()
                .filter(|(filter, _)| matches(filter, topic))
                .map(|(_, q)| *q)
                .max_by_key(|q| *q as u8);
            let Some(granted) = granted else { continue };
            session.deliver(
                Delivery {
                    topic: topic.to_string(),
                    payload: payload.clone(),
                    qos: min_qos(qos, granted),
                    retain: false,
                },
                &counters,
            );
        }
    }
}

/// A cloneable handle on the broker, for the sandbox itself.
#[derive(Clone)]
pub struct Broker {
    state: Arc<Mutex<BrokerState>>,
    counters: Arc<Counters>,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    pub fn new() -> Broker {
        let counters = Arc::new(Counters::default());
        Broker {
            state: Arc::new(Mutex::new(BrokerState {
                sessions: HashMap::new(),
                retained: BTreeMap::new(),
                next_conn: 0,
                counters: counters.clone(),
            })),
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BrokerState> {
        // A panic elsewhere must not take the whole broker down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes as the broker itself (like Mosquitto's `$SYS` topics).
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>, qos: QoS, retain: bool) {
        self.lock().route(topic, payload.into(), qos, retain);
    }

    pub fn stats(&self) -> BrokerStats {
        let (retained, subscriptions) = {
            let st = self.lock();
            let subs: usize = st.sessions.values().map(|s| s.subscriptions.len()).sum();
            (st.retained.len() as u64, subs as u64)
        };
        BrokerStats {
            clients: self.counters.clients.load(Ordering::Relaxed),
            received: self.counters.received.load(Ordering::Relaxed),
            sent: self.counters.sent.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            retained,
            subscriptions,
        }
    }

    /// Accepts connections until the task is dropped (the sandbox stops by
    /// shutting its runtime down, which closes every socket).
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    stream.set_nodelay(true).ok();
                    let broker = self.clone();
                    tokio::spawn(async move { broker.connection(stream).await });
                }
                // Out of file descriptors and the like: wait, don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn connection(self, stream: TcpStream) {
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(4096);
        let connect =
            match tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut rd, &mut buf)).await {
                Ok(Ok(FirstPacket::Connect(c))) => c,
                Ok(Ok(FirstPacket::UnsupportedProtocol)) => {
                    let ack = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
                    write_packets(&mut wr, &[Packet::ConnAck(ack)]).await.ok();
                    return;
                }
                _ => return,
            };
        let Some(mut conn) = self.accept(connect) else {
            let ack = ConnAck::new(ConnectReturnCode::BadClientId, false);
            write_packets(&mut wr, &[Packet::ConnAck(ack)]).await.ok();
            return;
        };
        self.counters.clients.fetch_add(1, Ordering::Relaxed);
        let end = self.run(&mut conn, &mut rd, &mut wr, &mut buf).await;
        self.counters.clients.fetch_sub(1, Ordering::Relaxed);
        self.finish(conn, end);
    }

    /// Registers the session for a CONNECT; None if the client id is refused.
    fn accept(&self, connect: Connect) -> Option<Conn> {
        let mut st = self.lock();
        st.next_conn += 1;
        let conn_id = st.next_conn;
        let client_id = if connect.client_id.is_empty() {
            // 3.1.1 §3.1.3.1: an empty id is only allowed with a clean session.
            if !connect.clean_session {
                return None;
            }
            format!("sandbox-auto-{conn_id}")
        } else {
            connect.client_id
        };
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let kick = Arc::new(Notify::new());
        let link = Link {
            conn_id,
            tx,
            kick: kick.clone(),
        };
        let counters = st.counters.clone();
        let session = st
            .sessions
            .entry(client_id.clone())
            .or_insert_with(|| Session::new(connect.clean_session));
        if let Some(old) = session.conn.take() {
            old.kick.notify_one();
        }
        let session_present = !connect.clean_session && !session.clean;
        if !session_present {
            *session = Session::new(connect.clean_session);
        }
        session.clean = connect.clean_session;
        session.conn = Some(link);
        // Queued after the CONNACK, which `run` writes first.
        session.resume(&counters);
        Some(Conn {
            conn_id,
            client_id,
            keep_alive: connect.keep_alive,
            will: connect.last_will,
            session_present,
            rx,
            kick,
        })
    }

    async fn run(
        &self,
        conn: &mut Conn,
        rd: &mut OwnedReadHalf,
        wr: &mut OwnedWriteHalf,
        buf: &mut BytesMut,
    ) -> End {
        if let Some(will) = &conn.will
            && validate_topic_name(&will.topic).is_err()
        {
            return End::Abnormal;
        }
        let ack = ConnAck::new(ConnectReturnCode::Success, conn.session_present);
        if write_packets(wr, &[Packet::ConnAck(ack)]).await.is_err() {
            return End::Abnormal;
        }
        let idle_limit =
            (conn.keep_alive > 0).then(|| Duration::from_millis(u64::from(conn.keep_alive) * 1500));
        let mut deadline = idle_limit.map(|d| Instant::now() + d);
        let mut replies = Vec::new();
        loop {
            tokio::select! {
                read = read_packet(rd, buf) => {
                    let Ok(packet) = read else { return End::Abnormal };
                    if let Some(d) = idle_limit {
                        deadline = Some(Instant::now() + d);
                    }
                    replies.clear();
                    match self.handle(conn, packet, &mut replies) {
                        Step::Continue => {}
                        Step::End(end) => return end,
                    }
                    if !replies.is_empty() && write_packets(wr, &replies).await.is_err() {
                        return End::Abnormal;
                    }
                }
                out = conn.rx.recv() => {
                    let Some(first) = out else { return End::TakenOver };
                    // Write what is waiting in one go, up to about 1 MB.
                    let mut batch = vec![first];
                    let mut bytes = batch[0].size();
                    while bytes < (1 << 20) {
                        match conn.rx.try_recv() {
                            Ok(p) => {
                                bytes += p.size();
                                batch.push(p);
                            }
                            Err(_) => break,
                        }
                    }
                    if write_packets(wr, &batch).await.is_err() {
                        return End::Abnormal;
                    }
                }
                _ = conn.kick.notified() => return End::TakenOver,
                _ = sleep_until(deadline) => return End::Abnormal,
            }
        }
    }

    fn handle(&self, conn: &Conn, packet: Packet, replies: &mut Vec<Packet>) -> Step {
        let mut guard = self.lock();
        let st = &mut *guard;
        let counters = st.counters.clone();
        let Some(session) = st
            .sessions
            .get_mut(&conn.client_id)
            .filter(|s| s.owned_by(conn.conn_id))
        else {
            return Step::End(End::TakenOver);
        };
        match packet {
            Packet::Publish(p) => {
                // A wildcard in a topic name is a protocol violation.
                if validate_topic_name(&p.topic).is_err() {
                    return Step::End(End::Abnormal);
                }
                match p.qos {
                    QoS::AtMostOnce => st.route(&p.topic, p.payload, p.qos, p.retain),
                    QoS::AtLeastOnce => {
                        replies.push(Packet::PubAck(PubAck::new(p.pkid)));
                        st.route(&p.topic, p.payload, p.qos, p.retain);
                    }
                    QoS::ExactlyOnce => {
                        // A resent PUBLISH (DUP) must not be delivered twice.
                        replies.push(Packet::PubRec(PubRec::new(p.pkid)));
                        session.awaiting_rel.entry(p.pkid).or_insert(p);
                    }
                }
            }
            Packet::PubRel(rel) => {
                replies.push(Packet::PubComp(PubComp::new(rel.pkid)));
                if let Some(p) = session.awaiting_rel.remove(&rel.pkid) {
                    st.route(&p.topic, p.payload, p.qos, p.retain);
                }
            }
            Packet::PubAck(ack) => {
                if let Some(Inflight {
                    state: InflightState::Published(p),
                    ..
                }) = session.inflight.get(&ack.pkid)
                    && p.qos == QoS::AtLeastOnce
                {
                    session.inflight.remove(&ack.pkid);
                }
            }
            Packet::PubRec(rec) => {
                if let Some(f) = session.inflight.get_mut(&rec.pkid) {
                    f.state = InflightState::Released;
                }
                replies.push(Packet::PubRel(PubRel::new(rec.pkid)));
            }
            Packet::PubComp(comp) => {
                session.inflight.remove(&comp.pkid);
            }
            Packet::Subscribe(sub) => {
                let mut codes = Vec::with_capacity(sub.filters.len());
                let mut granted = Vec::new();
                for f in sub.filters {
                    if validate_topic_filter(&f.path).is_err() {
                        codes.push(SubscribeReasonCode::Failure);
                        continue;
                    }
                    codes.push(SubscribeReasonCode::Success(f.qos));
                    session.subscriptions.insert(f.path.clone(), f.qos);
                    granted.push((f.path, f.qos));
                }
                replies.push(Packet::SubAck(SubAck::new(sub.pkid, codes)));
                // Retained messages go through the outbox, so after the SUBACK.
                for (filter, qos) in granted {
                    for (topic, r) in st.retained.iter().filter(|(t, _)| matches(&filter, t)) {
                        session.deliver(
                            Delivery {
                                topic: topic.clone(),
                                payload: r.payload.clone(),
                                qos: min_qos(r.qos, qos),
                                retain: true,
                            },
                            &counters,
                        );
                    }
                }
            }
            Packet::Unsubscribe(unsub) => {
                for t in &unsub.topics {
                    session.subscriptions.remove(t);
                }
                replies.push(Packet::UnsubAck(UnsubAck::new(unsub.pkid)));
            }
            Packet::PingReq => replies.push(Packet::PingResp),
            Packet::Disconnect => return Step::End(End::Graceful),
            // A second CONNECT, or packets only a server sends.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => return Step::End(End::Abnormal),
        }
        Step::Continue
    }

    fn finish(&self, conn: Conn, end: End) {
        let mut st = self.lock();
        let owned = st
            .sessions
            .get(&conn.client_id)
            .is_some_and(|s| s.owned_by(conn.conn_id));
        if owned {
            let clean = st.sessions.get(&conn.client_id).is_none_or(|s| s.clean);
            if clean {
                st.sessions.remove(&conn.client_id);
            } else if let Some(s) = st.sessions.get_mut(&conn.client_id) {
                s.conn = None;
            }
        }
        // The will is for connections that die, not for a clean DISCONNECT
        // and not for one replaced by the same client connecting again.
        if end == End::Abnormal
            && owned
            && let Some(will) = conn.will
        {
            st.route(&will.topic, will.message, will.qos, will.retain);
        }
    }
}

struct Conn {
    conn_id: u64,
    client_id: String,
    keep_alive: u16,
    will: Option<LastWill>,
    session_present: bool,
    rx: mpsc::Receiver<Packet>,
    kick: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Graceful,
    Abnormal,
    TakenOver,
}

enum Step {
    Continue,
    End(End),
}

enum FirstPacket {
    Connect(Connect),
    UnsupportedProtocol,
}

#[derive(Debug)]
enum ReadError {
    Closed,
    Protocol,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Reads one whole packet. All partial state lives in `buf`, so dropping
/// this future (in `select!`) loses nothing.
async fn read_packet(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Packet, ReadError> {
    loop {
        match Packet::read(buf, MAX_PACKET_SIZE) {
            Ok(p) => return Ok(p),
            Err(mqttbytes::Error::InsufficientBytes(n)) => {
                buf.reserve(n.min(MAX_PACKET_SIZE));
                match rd.read_buf(buf).await {
                    Ok(0) | Err(_) => return Err(ReadError::Closed),
                    Ok(_) => {}
                }
            }
            Err(_) => return Err(ReadError::Protocol),
        }
    }
}

/// The first packet must be a CONNECT for MQTT 3.1.1 (protocol level 4).
async fn read_connect(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<FirstPacket, ReadError> {
    loop {
        match mqttbytes::check(buf.iter(), MAX_PACKET_SIZE) {
            Ok(_) => break,
            Err(mqttbytes::Error::InsufficientBytes(_)) => match rd.read_buf(buf).await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            },
            Err(_) => return Err(ReadError::Protocol),
        }
    }
    if buf.first().map(|b| b >> 4) != Some(1) {
        return Err(ReadError::Protocol);
    }
    // rumqttc's reader parses level 5 as if it were 3.1.1 and rejects 3.1
    // ("MQIsdp") without saying which: answer both with CONNACK 1.
    if connect_protocol_level(buf) != Some(4) {
        return Ok(FirstPacket::UnsupportedProtocol);
    }
    match Packet::read(buf, MAX_PACKET_SIZE) {
        Ok(Packet::Connect(c)) => Ok(FirstPacket::Connect(c)),
        _ => Err(ReadError::Protocol),
    }
}

/// The protocol level byte of a complete CONNECT frame.
fn connect_protocol_level(frame: &[u8]) -> Option<u8> {
    // Skip the first byte and the 1–4 byte remaining length.
    let mut i = 1;
    while *frame.get(i)? & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let name_len = u16::from_be_bytes([*frame.get(i)?, *frame.get(i + 1)?]) as usize;
    frame.get(i + 2 + name_len).copied()
}

async fn write_packets(wr: &mut OwnedWriteHalf, packets: &[Packet]) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(packets.iter().map(Packet::size).sum());
    for p in packets {
        p.write(&mut out, MAX_PACKET_SIZE)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    wr.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_level_is_read_from_a_connect_frame() {
        let mut out = BytesMut::new();
        Connect::new("x").write(&mut out).ok();
        assert_eq!(connect_protocol_level(&out), Some(4));
        // MQTT 3.1: "MQIsdp", level 3.
        let v31 = [
            0x10, 0x0c, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60,
        ];
        assert_eq!(connect_protocol_level(&v31), Some(3));
        assert_eq!(connect_protocol_level(&[0x10]), None);
    }

    #[test]
    fn delivery_qos_is_the_lower_of_publish_and_grant() {
        assert_eq!(
            min_qos(QoS::ExactlyOnce, QoS::AtLeastOnce),
            QoS::AtLeastOnce
        );
        assert_eq!(min_qos(QoS::AtMostOnce, QoS::ExactlyOnce), QoS::AtMostOnce);
    }
}
