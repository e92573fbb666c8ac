//! The sandbox's own MQTT 3.1.1 broker: one tokio task per connection and
//! one shared state behind a mutex. Packets are parsed and encoded by
//! rumqttc's `mqttbytes` codec.
//!
//! What it promises, because users and the tests rely on it (the same
//! promises Mosquitto keeps):
//! * Nothing is lost for a client that keeps reading. Each client has an
//!   outgoing queue bounded in bytes ([`Limits::max_queued_bytes`]); when it
//!   is full, the publishers feeding it stop being read (TCP backpressure)
//!   until it drains. QoS 1/2 deliveries go through an inflight window
//!   ([`Limits::max_inflight`], Mosquitto's `max_inflight_messages`).
//! * Where a policy has to drop (an offline persistent session's queue is
//!   full, or a queue fed by the broker itself overflows its hard cap), it
//!   drops the oldest QoS 0 message first, and counts the drop per client.
//! * A hostile or broken client costs only its own connection: CONNECT is
//!   bounded in size and time, packets over the maximum size, garbage and
//!   protocol violations close that connection with a log line, keep-alive is
//!   enforced, a client that stops reading is closed after a write timeout
//!   (its will fires), and the number of connections is bounded.
//! * Persistent sessions: subscriptions, unacknowledged and queued QoS 1/2
//!   messages survive a disconnect; CONNACK says "session present" only when
//!   a session was really resumed.

use super::sys;
use super::trie::{SessionKey, SubTree};
use crate::model::topic::matches;
use crate::profile::{validate_topic_filter, validate_topic_name};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, QoS};
use rumqttc::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PubAck, PubComp, PubRec, PubRel,
    Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Largest packet accepted or sent by default: multi-megabyte payloads
/// (images, firmware blobs) must pass, as they do through Mosquitto.
pub const MAX_PACKET_SIZE: usize = 256 * 1024 * 1024;
/// Bytes written to a socket in one go.
const BATCH_BYTES: usize = 256 * 1024;
/// Payloads smaller than this are copied out of the read buffer, so a small
/// message kept for long (retained, queued offline) does not keep a large
/// read buffer alive.
const COPY_BELOW: usize = 16 * 1024;
/// Log lines kept for the panel and the CLI.
const LOG_LINES: usize = 500;
/// Clients whose drop counts are remembered after their session ended.
const DROPS_REMEMBERED: usize = 256;

/// The bounds that keep one client from costing others memory or messages.
/// The defaults follow Mosquitto's where Mosquitto has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open connections (sockets) at most; more are closed at once.
    pub max_connections: usize,
    /// Largest packet accepted; a larger one closes the connection.
    pub max_packet_size: usize,
    /// Largest CONNECT accepted (before the client is known at all).
    pub max_connect_size: usize,
    /// Time a new connection has to send its CONNECT.
    pub connect_timeout: Duration,
    /// Bytes queued for one client before its publishers are slowed down
    /// (online) or its oldest messages dropped (offline).
    pub max_queued_bytes: usize,
    /// Messages queued for one offline persistent session.
    pub max_queued_messages: usize,
    /// QoS 1/2 deliveries sent and not yet acknowledged, per client.
    pub max_inflight: u16,
    /// A client whose socket accepts no bytes (or that acknowledges nothing
    /// while its queue is full) for this long is disconnected; its will fires.
    pub write_timeout: Duration,
    /// Largest keep-alive accepted; below 65535 a keep-alive of 0 (never) is
    /// refused too, as Mosquitto's `max_keepalive` does for MQTT 3.1.1.
    pub max_keepalive: u16,
    /// How often the `$SYS` topics are updated.
    pub sys_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_packet_size: MAX_PACKET_SIZE,
            max_connect_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_queued_bytes: 8 * 1024 * 1024,
            max_queued_messages: 1000,
            max_inflight: 20,
            write_timeout: Duration::from_secs(30),
            max_keepalive: u16::MAX,
            sys_interval: Duration::from_secs(5),
        }
    }
}

/// Counters a user can watch (the GUI shows them beside the sandbox, and
/// `$SYS` publishes them).
#[derive(Debug, Default)]
pub struct Counters {
    pub clients: AtomicU64,
    pub clients_maximum: AtomicU64,
    pub sockets: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A snapshot of [`Counters`] plus the retained store's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Clients connected right now.
    pub clients: u64,
    /// Sessions held, connected or not (`$SYS/broker/clients/total`).
    pub sessions: u64,
    /// PUBLISH packets received from clients (and the sandbox itself).
    pub received: u64,
    /// PUBLISH packets written to subscribers.
    pub sent: u64,
    /// Messages not delivered because a queue was full (see
    /// [`Broker::drops_by_client`] for who lost them).
    pub dropped: u64,
    /// Retained messages held (not counting the broker's own `$SYS`).
    pub retained: u64,
    /// Subscriptions held, over all sessions (online or not).
    pub subscriptions: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

/// One message on its way to subscribers, shared by all of them. Its
/// PUBLISH frame is encoded once per (QoS, retain) and copied into each
/// subscriber's batch with its own packet id.
struct Msg {
    topic: String,
    payload: Bytes,
    frames: [OnceLock<Option<Bytes>>; 6],
}

impl Msg {
    fn new(topic: String, payload: Bytes) -> Arc<Msg> {
        let payload = if payload.len() < COPY_BELOW {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        };
        Arc::new(Msg {
            topic,
            payload,
            frames: Default::default(),
        })
    }

    /// Bytes this message costs in a queue (about its size on the wire).
    fn cost(&self) -> usize {
        self.topic.len() + self.payload.len() + 8
    }

    /// The PUBLISH frame, packet id 1 for QoS 1/2 (patched per subscriber).
    fn frame(&self, qos: QoS, retain: bool) -> Option<Bytes> {
        let slot = &self.frames[qos as usize * 2 + usize::from(retain)];
        slot.get_or_init(|| {
            let mut p = Publish::from_bytes(self.topic.clone(), qos, self.payload.clone());
            p.retain = retain;
            p.pkid = u16::from(qos != QoS::AtMostOnce);
            let mut out = BytesMut::with_capacity(p.size());
            p.write(&mut out).ok()?;
            Some(out.freeze())
        })
        .clone()
    }
}

/// One delivery waiting for (or in) the socket.
#[derive(Clone)]
struct Queued {
    msg: Arc<Msg>,
    qos: QoS,
    retain: bool,
}

enum Flight {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published(Queued),
    /// PUBREC received and PUBREL sent, waiting for PUBCOMP.
    Released,
}

struct Inflight {
    /// Order in which the messages were first sent, to resend in order.
    seq: u64,
    state: Flight,
}

/// What the broker knows of a connected client's task.
struct Link {
    conn_id: u64,
    /// Told when there is something to write.
    wake: Arc<Notify>,
    /// Told when another connection takes over the client id.
    kick: Arc<Notify>,
    /// Bumped when the queue drains after being full; publishers waiting
    /// for room watch it (a dropped sender also releases them).
    space: watch::Sender<u64>,
    congested: bool,
}

struct Session {
    client_id: String,
    clean: bool,
    filters: HashMap<String, QoS>,
    conn: Option<Link>,
    inflight: HashMap<u16, Inflight>,
    /// Inbound QoS 2 messages held until the client's PUBREL.
    awaiting_rel: HashMap<u16, (Arc<Msg>, bool)>,
    awaiting_bytes: usize,
    /// Deliveries not yet written: QoS 0 waiting for the socket, QoS 1/2
    /// also for room in the inflight window, and what arrived offline.
    pending: VecDeque<Queued>,
    pending_bytes: usize,
    /// Inflight messages must be sent again (after a reconnect).
    resend: bool,
    next_pkid: u16,
    next_seq: u64,
    /// Messages this client lost to a full queue.
    dropped: u64,
}

/// Where a message comes from decides what happens when a queue is full: a
/// client's publish can wait (its connection stops being read), the broker's
/// own (a will, `$SYS`, the devices' info) cannot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Client,
    Internal,
    /// Retained messages for a new subscription: never dropped.
    Retained,
}

impl Session {
    fn new(client_id: String, clean: bool) -> Session {
        Session {
            client_id,
            clean,
            filters: HashMap::new(),
            conn: None,
            inflight: HashMap::new(),
            awaiting_rel: HashMap::new(),
            awaiting_bytes: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            resend: false,
            next_pkid: 0,
            next_seq: 0,
            dropped: 0,
        }
    }

    fn owned_by(&self, conn_id: u64) -> bool {
        self.conn.as_ref().is_some_and(|l| l.conn_id == conn_id)
    }

    fn alloc_pkid(&mut self) -> Option<u16> {
        // The window keeps `inflight` small, so this finds a free id at once.
        for _ in 0..u16::MAX {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.next_pkid) {
                return Some(self.next_pkid);
            }
        }
        None
    }

    /// Drops queued messages, oldest QoS 0 first, until the queue holds at
    /// most `max_msgs` messages and `max_bytes` bytes (one message always
    /// fits). Returns how many were dropped.
    fn make_room(&mut self, max_msgs: usize, max_bytes: usize) -> u64 {
        let mut dropped = 0;
        while self.pending.len() > 1
            && (self.pending.len() > max_msgs || self.pending_bytes > max_bytes)
        {
            let at = self
                .pending
                .iter()
                .position(|q| q.qos == QoS::AtMostOnce)
                .unwrap_or(0);
            if let Some(q) = self.pending.remove(at) {
                self.pending_bytes -= q.msg.cost();
                dropped += 1;
            }
        }
        self.dropped += dropped;
        dropped
    }

    /// Queues a delivery. Returns a watch on the queue's room when the
    /// queue is now over its bound and the source can wait for it.
    fn deliver(
        &mut self,
        q: Queued,
        src: Source,
        limits: &Limits,
        counters: &Counters,
    ) -> Option<watch::Receiver<u64>> {
        let online = self.conn.is_some();
        // Like Mosquitto (queue_qos0_messages false): QoS 0 is for those
        // who are there.
        if !online && (self.clean || q.qos == QoS::AtMostOnce) {
            return None;
        }
        self.pending_bytes += q.msg.cost();
        self.pending.push_back(q);
        let Some(link) = &mut self.conn else {
            let n = self.make_room(limits.max_queued_messages, limits.max_queued_bytes);
            add(&counters.dropped, n);
            return None;
        };
        link.wake.notify_one();
        if self.pending_bytes <= limits.max_queued_bytes {
            return None;
        }
        link.congested = true;
        match src {
            Source::Client => Some(link.space.subscribe()),
            Source::Retained => None,
            Source::Internal => {
                let hard = limits.max_queued_bytes.saturating_mul(4);
                let n = self.make_room(usize::MAX, hard);
                add(&counters.dropped, n);
                None
            }
        }
    }

    /// Takes what can be written now: inflight messages to resend, then
    /// pending ones while the inflight window has room.
    fn take_batch(&mut self, out: &mut Vec<Wire>, limits: &Limits) {
        if self.conn.is_none() {
            return;
        }
        if self.resend {
            self.resend = false;
            let mut again: Vec<(u64, Wire)> = self
                .inflight
                .iter()
                .map(|(&pkid, f)| {
                    let wire = match &f.state {
                        Flight::Published(q) => Wire::Publish {
                            q: q.clone(),
                            pkid,
                            dup: true,
                        },
                        Flight::Released => Wire::Packet(Packet::PubRel(PubRel::new(pkid))),
                    };
                    (f.seq, wire)
                })
                .collect();
            again.sort_by_key(|(seq, _)| *seq);
            out.extend(again.into_iter().map(|(_, w)| w));
        }
        let window = usize::from(limits.max_inflight.max(1));
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            let Some(front) = self.pending.front() else {
                break;
            };
            let pkid = if front.qos == QoS::AtMostOnce {
                0
            } else if self.inflight.len() >= window {
                break;
            } else {
                match self.alloc_pkid() {
                    Some(id) => id,
                    None => break,
                }
            };
            let Some(q) = self.pending.pop_front() else {
                break;
            };
            let cost = q.msg.cost();
            self.pending_bytes -= cost;
            bytes += cost;
            if pkid != 0 {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.inflight.insert(
                    pkid,
                    Inflight {
                        seq,
                        state: Flight::Published(q.clone()),
                    },
                );
            }
            out.push(Wire::Publish {
                q,
                pkid,
                dup: false,
            });
        }
        let more = self.pending.front().is_some_and(|q| {
            q.qos == QoS::AtMostOnce || self.inflight.len() < usize::from(limits.max_inflight)
        });
        let Some(link) = &mut self.conn else { return };
        if more {
            link.wake.notify_one();
        }
        if link.congested && self.pending_bytes <= limits.max_queued_bytes / 2 {
            link.congested = false;
            link.space.send_modify(|g| *g = g.wrapping_add(1));
        }
    }
}

/// Something to write, encoded outside the lock.
enum Wire {
    Publish { q: Queued, pkid: u16, dup: bool },
    Packet(Packet),
}

struct Retained {
    payload: Bytes,
    qos: QoS,
}

/// Everything the connections share.
struct BrokerState {
    sessions: HashMap<SessionKey, Session>,
    by_client: HashMap<String, SessionKey>,
    subs: SubTree,
    retained: BTreeMap<String, Retained>,
    next_conn: u64,
    next_key: SessionKey,
    /// Drop counts of sessions that have ended.
    past_drops: BTreeMap<String, u64>,
    /// Reused by `route` to collect matching subscriptions.
    scratch: Vec<(SessionKey, QoS)>,
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

impl BrokerState {
    /// Delivers a message to every matching subscription; publishers that
    /// must wait for room get a watch per full queue in `wait`.
    fn route(
        &mut self,
        msg: Arc<Msg>,
        qos: QoS,
        retain: bool,
        src: Source,
        shared: &Shared,
        wait: &mut Vec<watch::Receiver<u64>>,
    ) {
        if retain {
            if msg.payload.is_empty() {
                self.retained.remove(&msg.topic);
            } else {
                self.retained.insert(
                    msg.topic.clone(),
                    Retained {
                        payload: Bytes::copy_from_slice(&msg.payload),
                        qos,
                    },
                );
            }
        }
        let mut hits = std::mem::take(&mut self.scratch);
        hits.clear();
        self.subs.matches(&msg.topic, &mut |k, q| hits.push((k, q)));
        if hits.len() > 1 {
            // Overlapping subscriptions: one copy, at the highest grant.
            hits.sort_unstable_by_key(|&(k, q)| (k, std::cmp::Reverse(q as u8)));
            hits.dedup_by_key(|(k, _)| *k);
        }
        for &(key, granted) in &hits {
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            let q = Queued {
                msg: msg.clone(),
                qos: min_qos(qos, granted),
                retain: false,
            };
            if let Some(w) = session.deliver(q, src, &shared.limits, &shared.counters) {
                wait.push(w);
            }
        }
        self.scratch = hits;
    }

    fn remove_session(&mut self, key: SessionKey) {
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        self.by_client.remove(&s.client_id);
        for filter in s.filters.keys() {
            self.subs.remove(filter, key);
        }
        if s.dropped > 0 {
            *self.past_drops.entry(s.client_id).or_default() += s.dropped;
            while self.past_drops.len() > DROPS_REMEMBERED {
                // Forget the smallest count first.
                let smallest = self
                    .past_drops
                    .iter()
                    .min_by_key(|(_, n)| **n)
                    .map(|(id, _)| id.clone());
                let Some(id) = smallest else { break };
                self.past_drops.remove(&id);
            }
        }
    }
}

struct Shared {
    state: Mutex<BrokerState>,
    counters: Counters,
    limits: Limits,
    log: Mutex<LogRing>,
    started: Instant,
}

#[derive(Default)]
struct LogRing {
    lines: VecDeque<String>,
    /// Sequence number of `lines[0]`.
    first: u64,
}

/// A cloneable handle on the broker, for the sandbox itself.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    pub fn new() -> Broker {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Broker {
        Broker {
            shared: Arc::new(Shared {
                state: Mutex::new(BrokerState {
                    sessions: HashMap::new(),
                    by_client: HashMap::new(),
                    subs: SubTree::default(),
                    retained: BTreeMap::new(),
                    next_conn: 0,
                    next_key: 0,
                    past_drops: BTreeMap::new(),
                    scratch: Vec::new(),
                }),
                counters: Counters::default(),
                limits,
                log: Mutex::new(LogRing::default()),
                started: Instant::now(),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, BrokerState> {
        // A panic elsewhere must not take the whole broker down with it.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a line to the broker's log (kept for the panel and the CLI).
    pub(crate) fn log(&self, line: String) {
        let mut log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.lines.push_back(line);
        if log.lines.len() > LOG_LINES {
            log.lines.pop_front();
            log.first += 1;
        }
    }

    /// Log lines from sequence number `from` on, and the number to ask for
    /// next time. Lines older than the last 500 are gone.
    pub fn log_since(&self, from: u64) -> (Vec<String>, u64) {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        let skip = from.saturating_sub(log.first) as usize;
        let lines: Vec<String> = log.lines.iter().skip(skip).cloned().collect();
        (lines, log.first + log.lines.len() as u64)
    }

    /// Publishes as the broker itself (like Mosquitto's `$SYS` topics).
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>, qos: QoS, retain: bool) {
        add(&self.shared.counters.received, 1);
        self.publish_internal(topic, payload.into(), qos, retain);
    }

    /// Publishes without counting it as received (`$SYS`).
    pub(crate) fn publish_internal(&self, topic: &str, payload: Bytes, qos: QoS, retain: bool) {
        let msg = Msg::new(topic.to_string(), payload);
        let mut ignore = Vec::new();
        self.lock().route(
            msg,
            qos,
            retain,
            Source::Internal,
            &self.shared,
            &mut ignore,
        );
    }

    pub fn stats(&self) -> BrokerStats {
        let (retained, subscriptions, sessions) = {
            let st = self.lock();
            // The broker's own `$SYS` values are not the users' messages.
            let sys = st
                .retained
                .range::<str, _>((
                    std::ops::Bound::Included("$SYS/"),
                    std::ops::Bound::Excluded("$SYS0"),
                ))
                .count();
            (
                (st.retained.len() - sys) as u64,
                st.subs.len() as u64,
                st.sessions.len() as u64,
            )
        };
        let c = &self.shared.counters;
        BrokerStats {
            clients: c.clients.load(Ordering::Relaxed),
            sessions,
            received: c.received.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retained,
            subscriptions,
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// Messages each client lost to a full queue, largest first (sessions
    /// still held, and the last ones that ended).
    pub fn drops_by_client(&self) -> Vec<(String, u64)> {
        let st = self.lock();
        let mut all: BTreeMap<String, u64> = st.past_drops.clone();
        for s in st.sessions.values().filter(|s| s.dropped > 0) {
            *all.entry(s.client_id.clone()).or_default() += s.dropped;
        }
        let mut v: Vec<(String, u64)> = all.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Accepts connections and publishes `$SYS` until the task is dropped
    /// (the sandbox stops by shutting its runtime down, which closes every
    /// socket).
    pub async fn serve(self, listener: TcpListener) {
        tokio::spawn(sys::run(self.clone()));
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    stream.set_nodelay(true).ok();
                    let broker = self.clone();
                    tokio::spawn(async move { broker.connection(stream, peer).await });
                }
                // Out of file descriptors and the like: wait, don't spin.
                Err(e) => {
                    self.log(format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(self, stream: TcpStream, peer: SocketAddr) {
        let counters = &self.shared.counters;
        let _socket = SocketCount::new(counters);
        let limits = &self.shared.limits;
        if counters.sockets.load(Ordering::Relaxed) > limits.max_connections as u64 {
            self.log(format!(
                "{peer}: refused, already {} connections (max_connections)",
                limits.max_connections
            ));
            return;
        }
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(4096);
        let first = tokio::time::timeout(
            limits.connect_timeout,
            read_connect(&mut rd, &mut buf, limits.max_connect_size, counters),
        )
        .await;
        let connect = match first {
            Ok(Ok(FirstPacket::Connect(c))) => c,
            Ok(Ok(FirstPacket::UnsupportedProtocol(level))) => {
                self.log(format!(
                    "{peer}: protocol level {level} not supported, CONNACK refused"
                ));
                let frame = refuse_protocol_frame(level);
                write_timed(&mut wr, &frame, limits.write_timeout, counters)
                    .await
                    .ok();
                return;
            }
            Ok(Err(ReadError::Closed)) => return,
            Ok(Err(e)) => {
                self.log(format!("{peer}: closed before CONNECT: {e}"));
                return;
            }
            Err(_) => {
                self.log(format!(
                    "{peer}: no CONNECT within {:?}, closed",
                    limits.connect_timeout
                ));
                return;
            }
        };
        let mut conn = match self.accept(connect, peer) {
            Ok(conn) => conn,
            Err(Refusal::Code(code, why)) => {
                self.log(format!("{peer}: CONNECT refused: {why}"));
                let ack = ConnAck::new(code, false);
                write_packets(&mut wr, &[Packet::ConnAck(ack)], limits, counters)
                    .await
                    .ok();
                return;
            }
            Err(Refusal::Close(why)) => {
                // A protocol violation: no CONNACK, no will, no takeover.
                self.log(format!("{peer}: CONNECT refused, closed: {why}"));
                return;
            }
        };
        add(&counters.clients, 1);
        counters
            .clients_maximum
            .fetch_max(counters.clients.load(Ordering::Relaxed), Ordering::Relaxed);
        let end = self.run(&mut conn, &mut rd, &mut wr, &mut buf).await;
        counters.clients.fetch_sub(1, Ordering::Relaxed);
        self.finish(conn, end);
    }

    /// Registers the session for a CONNECT, or says why not. Nothing of the
    /// broker changes for a refused CONNECT (no takeover, no will).
    fn accept(&self, connect: Connect, peer: SocketAddr) -> Result<Conn, Refusal> {
        if let Some(will) = &connect.last_will
            && validate_topic_name(&will.topic).is_err()
        {
            return Err(Refusal::Close(format!(
                "will topic '{}' is not a valid topic name",
                will.topic
            )));
        }
        let limits = &self.shared.limits;
        if limits.max_keepalive < u16::MAX
            && (connect.keep_alive == 0 || connect.keep_alive > limits.max_keepalive)
        {
            return Err(Refusal::Code(
                ConnectReturnCode::BadClientId,
                format!(
                    "keep-alive {} s is over the maximum of {} s",
                    connect.keep_alive, limits.max_keepalive
                ),
            ));
        }
        let mut st = self.lock();
        st.next_conn += 1;
        let conn_id = st.next_conn;
        let client_id = if connect.client_id.is_empty() {
            // 3.1.1 §3.1.3.1: an empty id is only allowed with a clean session.
            if !connect.clean_session {
                return Err(Refusal::Code(
                    ConnectReturnCode::BadClientId,
                    "empty client id with clean session off".into(),
                ));
            }
            format!("sandbox-auto-{conn_id}")
        } else {
            connect.client_id
        };
        let wake = Arc::new(Notify::new());
        let kick = Arc::new(Notify::new());
        let link = Link {
            conn_id,
            wake: wake.clone(),
            kick: kick.clone(),
            space: watch::Sender::new(0),
            congested: false,
        };
        let existing = st.by_client.get(&client_id).copied();
        if let Some(key) = existing
            && let Some(old) = st.sessions.get_mut(&key)
            && let Some(old_link) = old.conn.take()
        {
            old_link.kick.notify_one();
        }
        // A session is resumed only if one was kept (MQTT-3.2.2-2/3).
        let resumed = match existing {
            Some(key) if !connect.clean_session => st.sessions.get(&key).is_some_and(|s| !s.clean),
            _ => false,
        };
        let key = match existing {
            Some(key) if resumed => key,
            _ => {
                if let Some(key) = existing {
                    st.remove_session(key);
                }
                st.next_key += 1;
                let key = st.next_key;
                st.sessions
                    .insert(key, Session::new(client_id.clone(), connect.clean_session));
                st.by_client.insert(client_id.clone(), key);
                key
            }
        };
        let Some(session) = st.sessions.get_mut(&key) else {
            return Err(Refusal::Close("session vanished".into()));
        };
        session.clean = connect.clean_session;
        session.conn = Some(link);
        if resumed {
            session.resend = true;
            wake.notify_one();
        }
        Ok(Conn {
            conn_id,
            key,
            client_id,
            peer,
            keep_alive: connect.keep_alive,
            will: connect.last_will,
            session_present: resumed,
            wake,
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
        let limits = &self.shared.limits;
        let counters = &self.shared.counters;
        let ack = ConnAck::new(ConnectReturnCode::Success, conn.session_present);
        if write_packets(wr, &[Packet::ConnAck(ack)], limits, counters)
            .await
            .is_err()
        {
            return End::Abnormal;
        }
        let idle_limit =
            (conn.keep_alive > 0).then(|| Duration::from_millis(u64::from(conn.keep_alive) * 1500));
        let mut deadline = idle_limit.map(|d| Instant::now() + d);
        let mut replies = Vec::new();
        let mut batch = Vec::new();
        // Queues of other clients this connection's publishes wait for.
        let mut blocked: Vec<watch::Receiver<u64>> = Vec::new();
        let mut progress = Instant::now();
        let mut check = tokio::time::interval(limits.write_timeout / 4);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = conn.kick.notified() => return End::TakenOver,
                read = read_packet(rd, buf, limits.max_packet_size, counters), if blocked.is_empty() => {
                    let packet = match read {
                        Ok(p) => p,
                        Err(ReadError::Closed) => return End::Abnormal,
                        Err(e) => {
                            self.log(format!("{}: closed: {e}", conn.who()));
                            return End::Abnormal;
                        }
                    };
                    if let Some(d) = idle_limit {
                        deadline = Some(Instant::now() + d);
                    }
                    replies.clear();
                    let step = self.handle(conn, packet, &mut replies, &mut blocked, &mut progress);
                    if !replies.is_empty()
                        && let Err(e) = write_packets(wr, &replies, limits, counters).await
                    {
                        self.log_write_error(conn, &e);
                        return End::Abnormal;
                    }
                    if let Step::End(end) = step {
                        return end;
                    }
                }
                _ = conn.wake.notified() => {
                    batch.clear();
                    {
                        let mut st = self.lock();
                        let Some(s) = st.sessions.get_mut(&conn.key).filter(|s| s.owned_by(conn.conn_id)) else {
                            return End::TakenOver;
                        };
                        s.take_batch(&mut batch, limits);
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.write_batch(wr, &batch).await {
                        self.log_write_error(conn, &e);
                        return End::Abnormal;
                    }
                    progress = Instant::now();
                }
                _ = wait_room(&mut blocked), if !blocked.is_empty() => {
                    blocked.pop();
                    if blocked.is_empty() && let Some(d) = idle_limit {
                        // The client was not read while we waited.
                        deadline = Some(Instant::now() + d);
                    }
                }
                _ = sleep_until(deadline), if blocked.is_empty() => {
                    // Bytes waiting unread (we were busy writing) keep it alive.
                    match rd.try_read_buf(buf) {
                        Ok(n) if n > 0 => {
                            add(&counters.bytes_received, n as u64);
                            deadline = idle_limit.map(|d| Instant::now() + d);
                        }
                        _ => {
                            self.log(format!(
                                "{}: keep-alive expired (nothing received for 1.5 × {} s), closed",
                                conn.who(), conn.keep_alive
                            ));
                            return End::Abnormal;
                        }
                    }
                }
                _ = check.tick() => {
                    if progress.elapsed() >= limits.write_timeout && self.is_congested(conn) {
                        self.log(format!(
                            "{}: its queue is full and it took nothing for {:?} (not reading or not acknowledging), closed",
                            conn.who(), limits.write_timeout
                        ));
                        return End::Abnormal;
                    }
                }
            }
        }
    }

    fn is_congested(&self, conn: &Conn) -> bool {
        let st = self.lock();
        st.sessions
            .get(&conn.key)
            .is_some_and(|s| s.pending_bytes > self.shared.limits.max_queued_bytes)
    }

    fn log_write_error(&self, conn: &Conn, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::TimedOut {
            self.log(format!(
                "{}: stopped reading (no bytes accepted for {:?}), closed",
                conn.who(),
                self.shared.limits.write_timeout
            ));
        }
    }

    async fn write_batch(&self, wr: &mut OwnedWriteHalf, batch: &[Wire]) -> std::io::Result<()> {
        let counters = &self.shared.counters;
        let mut out = BytesMut::with_capacity(BATCH_BYTES + 1024);
        let mut publishes = 0;
        for w in batch {
            match w {
                Wire::Publish { q, pkid, dup } => {
                    let Some(frame) = q.msg.frame(q.qos, q.retain) else {
                        add(&counters.dropped, 1);
                        continue;
                    };
                    let start = out.len();
                    out.extend_from_slice(&frame);
                    if *pkid != 0 {
                        // The packet id sits right before the payload.
                        let at = start + frame.len() - q.msg.payload.len() - 2;
                        out[at..at + 2].copy_from_slice(&pkid.to_be_bytes());
                    }
                    if *dup {
                        out[start] |= 0b1000;
                    }
                    publishes += 1;
                }
                Wire::Packet(p) => {
                    p.write(&mut out, usize::MAX).ok();
                }
            }
            if out.len() >= BATCH_BYTES {
                write_timed(wr, &out, self.shared.limits.write_timeout, counters).await?;
                out.clear();
            }
        }
        if !out.is_empty() {
            write_timed(wr, &out, self.shared.limits.write_timeout, counters).await?;
        }
        add(&counters.sent, publishes);
        Ok(())
    }

    fn handle(
        &self,
        conn: &Conn,
        packet: Packet,
        replies: &mut Vec<Packet>,
        blocked: &mut Vec<watch::Receiver<u64>>,
        progress: &mut Instant,
    ) -> Step {
        let shared = &*self.shared;
        let limits = &shared.limits;
        // Work that needs no lock first.
        let incoming = match &packet {
            Packet::Publish(p) => {
                // A wildcard in a topic name is a protocol violation.
                if let Err(e) = validate_topic_name(&p.topic) {
                    self.log(format!(
                        "{}: PUBLISH to '{}': {e}, closed",
                        conn.who(),
                        p.topic
                    ));
                    return Step::End(End::Abnormal);
                }
                add(&shared.counters.received, 1);
                Some(Msg::new(p.topic.clone(), p.payload.clone()))
            }
            _ => None,
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(session) = st
            .sessions
            .get_mut(&conn.key)
            .filter(|s| s.owned_by(conn.conn_id))
        else {
            return Step::End(End::TakenOver);
        };
        match packet {
            Packet::Publish(p) => {
                let Some(msg) = incoming else {
                    return Step::End(End::Abnormal);
                };
                match p.qos {
                    QoS::AtMostOnce => {
                        st.route(msg, p.qos, p.retain, Source::Client, shared, blocked)
                    }
                    QoS::AtLeastOnce => {
                        replies.push(Packet::PubAck(PubAck::new(p.pkid)));
                        st.route(msg, p.qos, p.retain, Source::Client, shared, blocked);
                    }
                    QoS::ExactlyOnce => {
                        // A resent PUBLISH (DUP) must not be delivered twice.
                        replies.push(Packet::PubRec(PubRec::new(p.pkid)));
                        if !session.awaiting_rel.contains_key(&p.pkid) {
                            session.awaiting_bytes += msg.cost();
                            session.awaiting_rel.insert(p.pkid, (msg, p.retain));
                        }
                        if session.awaiting_bytes > limits.max_queued_bytes.saturating_mul(4) {
                            self.log(format!(
                                "{}: {} QoS 2 messages never released (PUBREL), over {} bytes, closed",
                                conn.who(),
                                session.awaiting_rel.len(),
                                session.awaiting_bytes
                            ));
                            return Step::End(End::Abnormal);
                        }
                    }
                }
            }
            Packet::PubRel(rel) => {
                replies.push(Packet::PubComp(PubComp::new(rel.pkid)));
                if let Some((msg, retain)) = session.awaiting_rel.remove(&rel.pkid) {
                    session.awaiting_bytes -= msg.cost();
                    st.route(
                        msg,
                        QoS::ExactlyOnce,
                        retain,
                        Source::Client,
                        shared,
                        blocked,
                    );
                }
            }
            Packet::PubAck(ack) => {
                if let Some(Inflight {
                    state: Flight::Published(q),
                    ..
                }) = session.inflight.get(&ack.pkid)
                    && q.qos == QoS::AtLeastOnce
                {
                    session.inflight.remove(&ack.pkid);
                    conn.wake.notify_one();
                    *progress = Instant::now();
                }
            }
            Packet::PubRec(rec) => {
                if let Some(f) = session.inflight.get_mut(&rec.pkid) {
                    f.state = Flight::Released;
                }
                replies.push(Packet::PubRel(PubRel::new(rec.pkid)));
                *progress = Instant::now();
            }
            Packet::PubComp(comp) => {
                if session.inflight.remove(&comp.pkid).is_some() {
                    conn.wake.notify_one();
                    *progress = Instant::now();
                }
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
                    session.filters.insert(f.path.clone(), f.qos);
                    granted.push((f.path, f.qos));
                }
                replies.push(Packet::SubAck(SubAck::new(sub.pkid, codes)));
                for (filter, qos) in &granted {
                    st.subs.insert(filter, conn.key, *qos);
                }
                // Retained messages go through the queue, so after the SUBACK.
                let Some(session) = st.sessions.get_mut(&conn.key) else {
                    return Step::Continue;
                };
                for (filter, qos) in granted {
                    let mut send = |topic: &String, r: &Retained| {
                        let q = Queued {
                            msg: Msg::new(topic.clone(), r.payload.clone()),
                            qos: min_qos(r.qos, qos),
                            retain: true,
                        };
                        session.deliver(q, Source::Retained, limits, &shared.counters);
                    };
                    if filter.contains(['+', '#']) {
                        for (topic, r) in st.retained.iter().filter(|(t, _)| matches(&filter, t)) {
                            send(topic, r);
                        }
                    } else if let Some((topic, r)) = st.retained.get_key_value(&filter) {
                        send(topic, r);
                    }
                }
            }
            Packet::Unsubscribe(unsub) => {
                for t in &unsub.topics {
                    if session.filters.remove(t).is_some() {
                        st.subs.remove(t, conn.key);
                    }
                }
                replies.push(Packet::UnsubAck(UnsubAck::new(unsub.pkid)));
            }
            Packet::PingReq => replies.push(Packet::PingResp),
            Packet::Disconnect => return Step::End(End::Graceful),
            // A second CONNECT, or packets only a server sends.
            other => {
                self.log(format!(
                    "{}: unexpected {} from a client, closed",
                    conn.who(),
                    packet_name(&other)
                ));
                return Step::End(End::Abnormal);
            }
        }
        Step::Continue
    }

    fn finish(&self, conn: Conn, end: End) {
        let shared = &*self.shared;
        let mut st = self.lock();
        let owned = st
            .sessions
            .get(&conn.key)
            .is_some_and(|s| s.owned_by(conn.conn_id));
        if owned {
            let clean = st.sessions.get(&conn.key).is_none_or(|s| s.clean);
            if clean {
                st.remove_session(conn.key);
            } else if let Some(s) = st.sessions.get_mut(&conn.key) {
                s.conn = None;
                // What was waiting for the socket now waits offline, under
                // the offline bounds.
                // (QoS 0 is not kept for the absent, as in Mosquitto.)
                let before = s.pending.len();
                s.pending.retain(|q| q.qos != QoS::AtMostOnce);
                let lost = (before - s.pending.len()) as u64;
                s.dropped += lost;
                add(&shared.counters.dropped, lost);
                s.pending_bytes = s.pending.iter().map(|q| q.msg.cost()).sum();
                let n = s.make_room(
                    shared.limits.max_queued_messages,
                    shared.limits.max_queued_bytes,
                );
                add(&shared.counters.dropped, n);
                if s.inflight
                    .values()
                    .any(|f| matches!(f.state, Flight::Published(_)))
                {
                    s.resend = true;
                }
            }
        }
        // The will is for connections that die, not for a clean DISCONNECT
        // and not for one replaced by the same client connecting again.
        if end == End::Abnormal
            && owned
            && let Some(will) = conn.will
        {
            let msg = Msg::new(will.topic, will.message);
            add(&shared.counters.received, 1);
            let mut ignore = Vec::new();
            st.route(
                msg,
                will.qos,
                will.retain,
                Source::Internal,
                shared,
                &mut ignore,
            );
        }
    }
}

/// Counts an open socket for as long as it lives.
struct SocketCount<'a>(&'a Counters);

impl<'a> SocketCount<'a> {
    fn new(c: &'a Counters) -> Self {
        add(&c.sockets, 1);
        SocketCount(c)
    }
}

impl Drop for SocketCount<'_> {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Conn {
    conn_id: u64,
    key: SessionKey,
    client_id: String,
    peer: SocketAddr,
    keep_alive: u16,
    will: Option<LastWill>,
    session_present: bool,
    wake: Arc<Notify>,
    kick: Arc<Notify>,
}

impl Conn {
    fn who(&self) -> String {
        format!("client '{}' ({})", self.client_id, self.peer)
    }
}

enum Refusal {
    /// Answer with this CONNACK code.
    Code(ConnectReturnCode, String),
    /// Close without an answer.
    Close(String),
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
    UnsupportedProtocol(u8),
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("packet of {size} bytes is over the maximum packet size of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("malformed packet ({0})")]
    Protocol(String),
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Waits until the last queue in `blocked` has room again (or its client
/// is gone).
async fn wait_room(blocked: &mut [watch::Receiver<u64>]) {
    match blocked.last_mut() {
        Some(rx) => {
            rx.changed().await.ok();
        }
        None => std::future::pending().await,
    }
}

/// Parses one packet out of `buf`, if a whole one is there. The codec is
/// not ours: should it panic on some input, only this connection ends.
fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<Packet>, ReadError> {
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Packet::read(buf, max)));
    match read {
        Ok(Ok(p)) => Ok(Some(p)),
        Ok(Err(mqttbytes::Error::InsufficientBytes(_))) => Ok(None),
        Ok(Err(mqttbytes::Error::PayloadSizeLimitExceeded(size))) => {
            Err(ReadError::TooLarge { size, max })
        }
        Ok(Err(e)) => Err(ReadError::Protocol(e.to_string())),
        Err(_) => Err(ReadError::Protocol("the decoder panicked".into())),
    }
}

/// Reads more bytes into `buf`, growing it by what arrives (a header that
/// announces a huge packet reserves nothing until the bytes come).
async fn fill(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    counters: &Counters,
) -> Result<(), ReadError> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(64 * 1024);
    }
    match rd.read_buf(buf).await {
        Ok(0) | Err(_) => Err(ReadError::Closed),
        Ok(n) => {
            add(&counters.bytes_received, n as u64);
            Ok(())
        }
    }
}

/// Reads one whole packet. All partial state lives in `buf`, so dropping
/// this future (in `select!`) loses nothing.
async fn read_packet(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
    counters: &Counters,
) -> Result<Packet, ReadError> {
    loop {
        if let Some(p) = parse(buf, max)? {
            return Ok(p);
        }
        fill(rd, buf, counters).await?;
    }
}

/// The first packet must be a CONNECT for MQTT 3.1.1 (protocol level 4).
async fn read_connect(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
    counters: &Counters,
) -> Result<FirstPacket, ReadError> {
    loop {
        if let Some(&b) = buf.first()
            && b != 0x10
        {
            return Err(ReadError::Protocol(format!(
                "first packet is not a CONNECT (byte 0x{b:02x})"
            )));
        }
        match mqttbytes::check(buf.iter(), max) {
            Ok(_) => break,
            Err(mqttbytes::Error::InsufficientBytes(_)) => fill(rd, buf, counters).await?,
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                return Err(ReadError::TooLarge { size, max });
            }
            Err(e) => return Err(ReadError::Protocol(e.to_string())),
        }
    }
    // rumqttc's reader parses level 5 as if it were 3.1.1 and rejects 3.1
    // ("MQIsdp") without saying which: answer both with a refusal.
    match connect_protocol_level(buf) {
        Some(4) => {}
        Some(level) => return Ok(FirstPacket::UnsupportedProtocol(level)),
        None => return Err(ReadError::Protocol("truncated CONNECT".into())),
    }
    match parse(buf, max)? {
        Some(Packet::Connect(c)) => Ok(FirstPacket::Connect(c)),
        _ => Err(ReadError::Protocol("unreadable CONNECT".into())),
    }
}

/// The refusal a client of this protocol level understands: CONNACK 1 for
/// MQTT 3.x, CONNACK reason 0x84 (unsupported protocol version) for 5.
fn refuse_protocol_frame(level: u8) -> BytesMut {
    let mut out = BytesMut::new();
    if level == 5 {
        use rumqttc::v5::mqttbytes::v5;
        let ack = v5::ConnAck {
            session_present: false,
            code: v5::ConnectReturnCode::UnsupportedProtocolVersion,
            properties: None,
        };
        ack.write(&mut out).ok();
    } else {
        ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false)
            .write(&mut out)
            .ok();
    }
    out
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

/// Writes all of `bytes`; fails with `TimedOut` when the peer accepts
/// nothing for `timeout` (progress, however slow, resets it).
async fn write_timed(
    wr: &mut OwnedWriteHalf,
    mut bytes: &[u8],
    timeout: Duration,
    counters: &Counters,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match tokio::time::timeout(timeout, wr.write(bytes)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => {
                add(&counters.bytes_sent, n as u64);
                bytes = &bytes[n..];
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}

async fn write_packets(
    wr: &mut OwnedWriteHalf,
    packets: &[Packet],
    limits: &Limits,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(packets.iter().map(Packet::size).sum());
    for p in packets {
        p.write(&mut out, usize::MAX)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    write_timed(wr, &out, limits.write_timeout, counters).await
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

    #[test]
    fn a_shared_frame_patched_with_a_packet_id_equals_the_codec_s_own() {
        let msg = Msg::new("a/b".into(), Bytes::from_static(b"hello"));
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let Some(frame) = msg.frame(qos, true) else {
                panic!("no frame");
            };
            let mut patched = BytesMut::from(&frame[..]);
            let at = frame.len() - 5 - 2;
            patched[at..at + 2].copy_from_slice(&0x1234u16.to_be_bytes());
            patched[0] |= 0b1000;
            let mut p = Publish::new("a/b", qos, "hello");
            p.pkid = 0x1234;
            p.retain = true;
            p.dup = true;
            let mut direct = BytesMut::new();
            p.write(&mut direct).ok();
            assert_eq!(patched, direct);
        }
    }

    #[test]
    fn an_offline_queue_drops_oldest_qos0_first_and_counts() {
        let mut s = Session::new("c".into(), false);
        let q = |qos, n: u8| Queued {
            msg: Msg::new("t".into(), Bytes::from(vec![n])),
            qos,
            retain: false,
        };
        for (qos, n) in [
            (QoS::AtLeastOnce, 1),
            (QoS::AtMostOnce, 2),
            (QoS::AtLeastOnce, 3),
            (QoS::AtMostOnce, 4),
        ] {
            let item = q(qos, n);
            s.pending_bytes += item.msg.cost();
            s.pending.push_back(item);
        }
        assert_eq!(s.make_room(3, usize::MAX), 1);
        assert_eq!(s.make_room(1, usize::MAX), 2);
        let left: Vec<u8> = s.pending.iter().map(|q| q.msg.payload[0]).collect();
        assert_eq!(left, [3]);
        assert_eq!(s.dropped, 3);
    }
}
