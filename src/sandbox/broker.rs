//! The sandbox's own MQTT broker, 3.1.1 and 5 on one port: one tokio task
//! per connection. The shared state (sessions, subscriptions) is behind a
//! read-write lock that routing only reads; each session's queues have
//! their own lock, the retained store its own, counters are atomics — so
//! publishers on several threads route at once and a subscriber's writer
//! never waits for the whole broker. Packets are parsed
//! and encoded by rumqttc's two codecs, through [`codec`](super::codec).
//!
//! What it promises, because users and the tests rely on it (the same
//! promises Mosquitto keeps):
//! * Nothing is lost for a client that keeps reading. Each client has an
//!   outgoing queue bounded in bytes ([`Limits::max_queued_bytes`]); when it
//!   is full, the publishers feeding it stop being read (TCP backpressure)
//!   until it drains. QoS 1/2 deliveries go through an inflight window
//!   ([`Limits::max_inflight`], Mosquitto's `max_inflight_messages`, or the
//!   client's Receive Maximum if smaller).
//! * Where a policy has to drop (an offline session's queue is full, a queue
//!   fed by the broker itself overflows its hard cap, a message is larger
//!   than the client's Maximum Packet Size), it drops the oldest QoS 0
//!   message first, and counts the drop per client.
//! * A hostile or broken client costs only its own connection: CONNECT is
//!   bounded in size and time, packets over the maximum size, garbage and
//!   protocol violations close that connection with a log line (and an MQTT 5
//!   DISCONNECT with the reason), keep-alive is enforced, a client that stops
//!   reading is closed after a write timeout (its will fires), and the number
//!   of connections is bounded.
//! * Sessions: subscriptions, unacknowledged and queued QoS 1/2 messages
//!   survive a disconnect (3.1.1 clean session off; 5 session expiry);
//!   CONNACK says "session present" only when a session was really resumed.
//! * MQTT 5: reason codes on acks and server DISCONNECTs, properties
//!   forwarded, message expiry, session expiry, will delay, topic aliases
//!   from clients, subscription identifiers, no local, retain as published,
//!   retain handling, shared subscriptions, receive maximum and maximum
//!   packet size both ways, assigned client identifiers.

use super::admit::{Admission, Gate};
use super::auth::{Access, AclFile, PasswordFile};
use super::codec::{
    self, ConnectReq, FrameExtras, In, MsgProps, Out, Proto, PublishIn, ReadError, SubReq, reason,
};
use super::sys;
use super::trie::{SessionKey, SubTree};
use crate::model::topic::matches;
use crate::mqtt::fault::CutStep;
use crate::profile::{validate_topic_filter, validate_topic_name};
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::ConnAckProperties;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Largest packet accepted or sent by default: multi-megabyte payloads
/// (images, firmware blobs) must pass, as they do through Mosquitto.
pub const MAX_PACKET_SIZE: usize = 256 * 1024 * 1024;
/// Topic aliases a client may use (Mosquitto's `max_topic_alias` default).
pub const TOPIC_ALIAS_MAX: u16 = 10;
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

/// The user name the sandbox's own simulated devices log in with (with a
/// secret made per broker): they are let in and not limited by the ACL,
/// whatever the password file says.
pub const DEVICE_USER: &str = "mqscope-sandbox-device";

/// Device logins by the plain port of their broker (the devices know only
/// the port; several sandboxes can run in one process).
static DEVICE_LOGINS: Mutex<BTreeMap<u16, String>> = Mutex::new(BTreeMap::new());

/// The user name and password the devices of the sandbox on `port` use.
pub(crate) fn device_login(port: u16) -> Option<(&'static str, String)> {
    let logins = DEVICE_LOGINS.lock().unwrap_or_else(|e| e.into_inner());
    logins.get(&port).map(|p| (DEVICE_USER, p.clone()))
}

/// Who may connect and what they may do: Mosquitto's `password_file`,
/// `acl_file` and `allow_anonymous`.
#[derive(Debug, Default)]
pub struct Security {
    /// With a password file, clients must log in as one of its users.
    pub passwords: Option<PasswordFile>,
    pub acl: Option<AclFile>,
    /// With a password file: clients without a user name are let in too.
    pub allow_anonymous: bool,
}

/// Counters a user can watch (the GUI shows them beside the sandbox, and
/// `$SYS` publishes them).
#[derive(Debug, Default)]
pub struct Counters {
    pub clients: AtomicU64,
    pub clients_maximum: AtomicU64,
    /// Sockets open, from accept to close (handshakes included).
    pub sockets: AtomicU64,
    /// Connections refused at accept because `max_connections` were open.
    pub refused: AtomicU64,
    /// Unfinished connections (handshake or CONNECT) closed to make room.
    pub evicted: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub expired: AtomicU64,
    /// Publishes and subscriptions the ACL refused.
    pub denied: AtomicU64,
    /// Connections the sandbox cut on purpose (an armed [`Fault`]).
    pub faults: AtomicU64,
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
    /// Sockets open right now, TLS/websocket handshakes and connections
    /// still waiting for their CONNECT included (what `max_connections`
    /// bounds).
    pub connections: u64,
    /// Connections refused because `max_connections` were open.
    pub refused: u64,
    /// Unfinished handshakes closed to make room for a new connection.
    pub evicted: u64,
    /// Sessions held, connected or not (`$SYS/broker/clients/total`).
    pub sessions: u64,
    /// PUBLISH packets received from clients (and the sandbox itself).
    pub received: u64,
    /// PUBLISH packets written to subscribers.
    pub sent: u64,
    /// Messages not delivered because a queue was full (see
    /// [`Broker::drops_by_client`] for who lost them).
    pub dropped: u64,
    /// Messages not delivered because their MQTT 5 expiry interval passed.
    pub expired: u64,
    /// Publishes and subscriptions refused by the ACL file.
    pub denied: u64,
    /// Retained messages held (not counting the broker's own `$SYS`).
    pub retained: u64,
    /// Subscriptions held, over all sessions (online or not).
    pub subscriptions: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

/// One message on its way to subscribers, shared by all of them. Its
/// PUBLISH frame is encoded once per (protocol, QoS, retain) and copied into
/// each subscriber's batch with its own packet id.
struct Msg {
    topic: String,
    payload: Bytes,
    props: Option<MsgProps>,
    expires_at: Option<Instant>,
    /// The session that published it (for "no local").
    origin: Option<SessionKey>,
    frames: [OnceLock<Option<Bytes>>; 12],
}

impl Msg {
    fn new(topic: String, payload: Bytes) -> Msg {
        let payload = if payload.len() < COPY_BELOW {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        };
        Msg {
            topic,
            payload,
            props: None,
            expires_at: None,
            origin: None,
            frames: Default::default(),
        }
    }

    fn with_expiry(mut self, seconds: Option<u32>) -> Msg {
        self.expires_at = seconds.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        self
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Whole seconds left before expiry (rounded up), for the frame.
    fn expiry_left(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0)).unwrap_or(u32::MAX)
        })
    }

    /// Bytes this message costs in a queue (about its size on the wire).
    fn cost(&self) -> usize {
        self.topic.len() + self.payload.len() + 8 + self.props.as_ref().map_or(0, MsgProps::cost)
    }

    /// An MQTT 5 PUBLISH frame that sets (`known` false) or uses a topic
    /// alias: the topic is sent only when setting it.
    fn aliased_frame(&self, q: &Queued, now: Instant, alias: u16, known: bool) -> Option<Bytes> {
        let extras = FrameExtras {
            props: self.props.as_ref(),
            sub_ids: &q.sub_ids,
            expiry: self.expiry_left(now),
            alias: Some(alias),
        };
        let topic = if known { "" } else { &self.topic };
        codec::publish_frame(Proto::V5, topic, &self.payload, q.qos, q.retain, &extras)
    }

    /// The PUBLISH frame for `q` (packet id 1 for QoS 1/2, patched later):
    /// shared unless this delivery carries its own properties.
    fn frame(&self, proto: Proto, q: &Queued, now: Instant) -> Option<Bytes> {
        let own = proto == Proto::V5 && (!q.sub_ids.is_empty() || self.expires_at.is_some());
        let encode = || {
            let extras = FrameExtras {
                props: if proto == Proto::V5 {
                    self.props.as_ref()
                } else {
                    None
                },
                sub_ids: if proto == Proto::V5 { &q.sub_ids } else { &[] },
                expiry: if proto == Proto::V5 {
                    self.expiry_left(now)
                } else {
                    None
                },
                alias: None,
            };
            codec::publish_frame(proto, &self.topic, &self.payload, q.qos, q.retain, &extras)
        };
        if own {
            return encode();
        }
        let slot = usize::from(proto == Proto::V5) * 6 + q.qos as usize * 2 + usize::from(q.retain);
        self.frames[slot].get_or_init(encode).clone()
    }
}

/// Aliases the sandbox uses toward one client at most, whatever larger
/// maximum it announces (each holds a topic string for the connection's life).
const OUT_ALIAS_CAP: u16 = 1024;

/// Topic aliases the sandbox sends to one MQTT 5 connection (MQTT 5
/// §3.3.2.3.4): a topic gets an alias sent with the topic once, then used
/// with an empty topic. When all the client's aliases are bound, the least
/// recently used one is bound again to the new topic (sent with the topic,
/// MQTT-3.3.2-12 lets a sender re-map an alias), so a client with a small
/// maximum still gets the saving for the topics it is sent most.
struct OutAliases {
    max: u16,
    /// Topic → (alias, when last used).
    by_topic: HashMap<String, (u16, u64)>,
    /// Alias − 1 → its topic.
    topics: Vec<String>,
    /// When last used → alias: the first is the one to re-bind.
    lru: BTreeMap<u64, u16>,
    tick: u64,
}

impl OutAliases {
    fn new(max: u16) -> Self {
        OutAliases {
            max: max.min(OUT_ALIAS_CAP),
            by_topic: HashMap::new(),
            topics: Vec::new(),
            lru: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The alias for `topic` and whether the client already knows it.
    fn pick(&self, topic: &str) -> Option<(u16, bool)> {
        if self.max == 0 {
            return None;
        }
        if let Some(&(a, _)) = self.by_topic.get(topic) {
            return Some((a, true));
        }
        if self.topics.len() < usize::from(self.max) {
            let next = u16::try_from(self.topics.len() + 1).ok()?;
            return Some((next, false));
        }
        self.lru.first_key_value().map(|(_, &a)| (a, false))
    }

    /// Records that a frame using `alias` for `topic` went out (`known`:
    /// with an empty topic; else the alias is now bound to `topic`).
    fn used(&mut self, topic: &str, alias: u16, known: bool) {
        self.tick += 1;
        let tick = self.tick;
        if known {
            if let Some((_, last)) = self.by_topic.get_mut(topic) {
                self.lru.remove(last);
                *last = tick;
                self.lru.insert(tick, alias);
            }
            return;
        }
        let at = usize::from(alias.saturating_sub(1));
        if let Some(old) = self.topics.get_mut(at) {
            if let Some((_, last)) = self.by_topic.remove(old.as_str()) {
                self.lru.remove(&last);
            }
            *old = topic.to_string();
        } else {
            self.topics.push(topic.to_string());
        }
        self.by_topic.insert(topic.to_string(), (alias, tick));
        self.lru.insert(tick, alias);
    }
}

/// One delivery waiting for (or in) the socket.
#[derive(Clone)]
struct Queued {
    msg: Arc<Msg>,
    qos: QoS,
    retain: bool,
    /// MQTT 5 subscription identifiers of the matching subscriptions.
    sub_ids: Vec<usize>,
}

impl Queued {
    fn new(msg: Arc<Msg>, qos: QoS, retain: bool) -> Queued {
        Queued {
            msg,
            qos,
            retain,
            sub_ids: Vec::new(),
        }
    }
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
    /// The client's Receive Maximum (65535 for 3.1.1).
    receive_max: u16,
    /// The client's Maximum Packet Size (MQTT 5).
    max_packet: Option<u32>,
}

/// A subscription's options (3.1.1 has only the QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubOpts {
    qos: QoS,
    no_local: bool,
    retain_as_published: bool,
    id: Option<usize>,
}

struct Session {
    client_id: String,
    /// The user name it logged in with (for the ACL).
    user: Option<String>,
    /// The sandbox's own device: not limited by the ACL.
    trusted: bool,
    /// When an offline session ends.
    expires_at: Option<Instant>,
    filters: HashMap<String, SubOpts>,
    /// The last connection bound to it.
    last_conn: u64,
    /// Its queues, behind their own lock.
    out: Arc<Mutex<Outbox>>,
}

/// The part of a session that publishes and its connection's writer
/// touch, behind its own lock: delivering a message to one client, or
/// writing one client's batch, never waits for the whole broker (the
/// broker's own state is only read while routing).
struct Outbox {
    /// Seconds the session outlives its connection (`u32::MAX`: forever).
    expiry: u32,
    conn: Option<Link>,
    inflight: HashMap<u16, Inflight>,
    /// Inbound QoS 2 messages held until the client's PUBREL.
    awaiting_rel: HashMap<u16, (Msg, bool)>,
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

/// A session's outbox, locked (a panic elsewhere must not take the
/// broker down with it).
fn lock_out(o: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    o.lock().unwrap_or_else(|e| e.into_inner())
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
    fn new(client_id: String, expiry: u32) -> Session {
        Session {
            client_id,
            user: None,
            trusted: false,
            expires_at: None,
            filters: HashMap::new(),
            last_conn: 0,
            out: Arc::new(Mutex::new(Outbox::new(expiry))),
        }
    }

    /// Whether the ACL lets this client receive a message on `topic`.
    fn may_read(&self, topic: &str, shared: &Shared) -> bool {
        self.trusted
            || shared.security.acl.as_ref().is_none_or(|acl| {
                acl.allows(self.user.as_deref(), &self.client_id, topic, Access::Read)
            })
    }
}

impl Outbox {
    fn new(expiry: u32) -> Outbox {
        Outbox {
            expiry,
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
        if !online && (self.expiry == 0 || q.qos == QoS::AtMostOnce) {
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

    fn window(&self, limits: &Limits) -> usize {
        let client = self.conn.as_ref().map_or(u16::MAX, |l| l.receive_max);
        usize::from(limits.max_inflight.min(client).max(1))
    }

    /// Takes what can be written now: inflight messages to resend, then
    /// pending ones while the inflight window has room. Expired messages
    /// are skipped (and counted).
    fn take_batch(&mut self, out: &mut Vec<Wire>, limits: &Limits, counters: &Counters) {
        if self.conn.is_none() {
            return;
        }
        let now = Instant::now();
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
                        Flight::Released => Wire::Out(Out::PubRel(pkid)),
                    };
                    (f.seq, wire)
                })
                .collect();
            again.sort_by_key(|(seq, _)| *seq);
            out.extend(again.into_iter().map(|(_, w)| w));
        }
        let window = self.window(limits);
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            let Some(front) = self.pending.front() else {
                break;
            };
            if front.msg.expired(now) {
                if let Some(q) = self.pending.pop_front() {
                    self.pending_bytes -= q.msg.cost();
                    add(&counters.expired, 1);
                }
                continue;
            }
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
        let more = self
            .pending
            .front()
            .is_some_and(|q| q.qos == QoS::AtMostOnce || self.inflight.len() < window);
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
    Out(Out),
}

struct Retained {
    payload: Bytes,
    qos: QoS,
    props: Option<MsgProps>,
    expires_at: Option<Instant>,
}

/// The members of one shared subscription (`$share/group/filter`); each
/// message goes to one of them, in turn.
struct Group {
    members: Vec<(SessionKey, SubOpts)>,
    /// Routing only reads the broker's state: the turn is an atomic.
    next: AtomicUsize,
}

/// Everything the connections share.
struct BrokerState {
    sessions: HashMap<SessionKey, Session>,
    by_client: HashMap<String, SessionKey>,
    subs: SubTree<SubOpts>,
    /// Shared subscriptions: filter → group id.
    shared_subs: SubTree<()>,
    groups: HashMap<SessionKey, Group>,
    /// `$share/group/filter` → group id.
    group_ids: HashMap<String, SessionKey>,
    next_conn: u64,
    next_key: SessionKey,
    /// Drop counts of sessions that have ended.
    past_drops: BTreeMap<String, u64>,
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

/// `$share/group/filter` → (group, filter), if it is one.
fn shared_filter(f: &str) -> Option<(&str, &str)> {
    let rest = f.strip_prefix("$share/")?;
    rest.split_once('/')
}

impl BrokerState {
    /// Delivers a message to every matching subscription; publishers that
    /// must wait for room get a watch per full queue in `wait`. Returns how
    /// many sessions it was queued for. Needs only a read lock on the state:
    /// each subscriber's queue has its own lock, the retained store too.
    fn route(
        &self,
        msg: Msg,
        qos: QoS,
        retain: bool,
        src: Source,
        shared: &Shared,
        wait: &mut Vec<watch::Receiver<u64>>,
    ) -> usize {
        let msg = Arc::new(msg);
        if retain {
            let mut store = shared.retained();
            if msg.payload.is_empty() {
                store.remove(&msg.topic);
            } else {
                store.insert(
                    msg.topic.clone(),
                    Retained {
                        payload: Bytes::copy_from_slice(&msg.payload),
                        qos,
                        props: msg.props.clone(),
                        expires_at: msg.expires_at,
                    },
                );
            }
        }
        let (limits, counters) = (&shared.limits, &shared.counters);
        let mut hits: Vec<(SessionKey, SubOpts)> = Vec::new();
        self.subs.matches(&msg.topic, &mut |k, o| {
            if !(o.no_local && Some(k) == msg.origin) {
                hits.push((k, o));
            }
        });
        if hits.len() > 1 {
            hits.sort_unstable_by_key(|&(k, _)| k);
        }
        let mut delivered = 0;
        let mut i = 0;
        while i < hits.len() {
            // Overlapping subscriptions of one session: one copy, at the
            // highest grant, with every subscription identifier.
            let key = hits[i].0;
            let mut granted = QoS::AtMostOnce;
            let mut keep_retain = false;
            let mut sub_ids = Vec::new();
            while i < hits.len() && hits[i].0 == key {
                let o = hits[i].1;
                if o.qos as u8 > granted as u8 {
                    granted = o.qos;
                }
                keep_retain |= o.retain_as_published;
                sub_ids.extend(o.id);
                i += 1;
            }
            let Some(session) = self.sessions.get(&key) else {
                continue;
            };
            if !session.may_read(&msg.topic, shared) {
                continue;
            }
            let q = Queued {
                msg: msg.clone(),
                qos: min_qos(qos, granted),
                retain: retain && keep_retain,
                sub_ids,
            };
            delivered += 1;
            if let Some(w) = lock_out(&session.out).deliver(q, src, limits, counters) {
                wait.push(w);
            }
        }
        // Shared subscriptions: one member of each matching group.
        let mut groups = Vec::new();
        self.shared_subs
            .matches(&msg.topic, &mut |g, ()| groups.push(g));
        for g in groups {
            let Some(group) = self.groups.get(&g) else {
                continue;
            };
            let n = group.members.len();
            if n == 0 {
                continue;
            }
            // The next online member, else the next one.
            let next = group.next.load(Ordering::Relaxed);
            let pick = (0..n)
                .map(|off| (next + off) % n)
                .find(|&at| {
                    self.sessions
                        .get(&group.members[at].0)
                        .is_some_and(|s| lock_out(&s.out).conn.is_some())
                })
                .unwrap_or(next % n);
            group.next.store((pick + 1) % n, Ordering::Relaxed);
            let (key, o) = group.members[pick];
            let Some(session) = self.sessions.get(&key) else {
                continue;
            };
            if !session.may_read(&msg.topic, shared) {
                continue;
            }
            let mut q = Queued::new(
                msg.clone(),
                min_qos(qos, o.qos),
                retain && o.retain_as_published,
            );
            q.sub_ids.extend(o.id);
            delivered += 1;
            if let Some(w) = lock_out(&session.out).deliver(q, src, limits, counters) {
                wait.push(w);
            }
        }
        delivered
    }

    /// Adds a subscription; true if the session did not have it before.
    fn subscribe(&mut self, key: SessionKey, filter: &str, o: SubOpts) -> bool {
        if let Some((_, inner)) = shared_filter(filter) {
            let next_id = self.next_key + 1;
            let gid = *self.group_ids.entry(filter.to_string()).or_insert(next_id);
            if gid == next_id {
                self.next_key = next_id;
                self.shared_subs.insert(inner, gid, ());
                self.groups.insert(
                    gid,
                    Group {
                        members: Vec::new(),
                        next: AtomicUsize::new(0),
                    },
                );
            }
            if let Some(g) = self.groups.get_mut(&gid) {
                g.members.retain(|(k, _)| *k != key);
                g.members.push((key, o));
            }
        } else {
            self.subs.insert(filter, key, o);
        }
        self.sessions
            .get_mut(&key)
            .and_then(|s| s.filters.insert(filter.to_string(), o))
            .is_none()
    }

    /// Removes a subscription; true if the session had it.
    fn unsubscribe(&mut self, key: SessionKey, filter: &str) -> bool {
        let had = self
            .sessions
            .get_mut(&key)
            .and_then(|s| s.filters.remove(filter))
            .is_some();
        if !had {
            return false;
        }
        if let Some((_, inner)) = shared_filter(filter) {
            let Some(&gid) = self.group_ids.get(filter) else {
                return true;
            };
            let empty = self.groups.get_mut(&gid).is_none_or(|g| {
                g.members.retain(|(k, _)| *k != key);
                g.members.is_empty()
            });
            if empty {
                self.groups.remove(&gid);
                self.group_ids.remove(filter);
                self.shared_subs.remove(inner, gid);
            }
        } else {
            self.subs.remove(filter, key);
        }
        true
    }

    fn subscription_count(&self) -> usize {
        self.subs.len() + self.groups.values().map(|g| g.members.len()).sum::<usize>()
    }

    fn remove_session(&mut self, key: SessionKey) {
        let filters: Vec<String> = match self.sessions.get(&key) {
            Some(s) => s.filters.keys().cloned().collect(),
            None => return,
        };
        for f in filters {
            self.unsubscribe(key, &f);
        }
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        self.by_client.remove(&s.client_id);
        let dropped = lock_out(&s.out).dropped;
        if dropped > 0 {
            *self.past_drops.entry(s.client_id).or_default() += dropped;
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

    /// Ends offline sessions whose expiry interval has passed.
    fn expire_sessions(&mut self, now: Instant) {
        let gone: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.expires_at.is_some_and(|t| t <= now) && lock_out(&s.out).conn.is_none()
            })
            .map(|(&k, _)| k)
            .collect();
        for k in gone {
            self.remove_session(k);
        }
    }
}

struct Shared {
    /// The devices' password (see [`DEVICE_USER`]).
    device_secret: String,
    /// Written when clients connect, leave, subscribe or unsubscribe; only
    /// read to route a publish.
    state: RwLock<BrokerState>,
    /// Retained messages, apart from the state so routing needs no write lock.
    retained: Mutex<BTreeMap<String, Retained>>,
    counters: Counters,
    gate: Gate,
    limits: Limits,
    security: Security,
    log: Mutex<LogRing>,
    started: Instant,
    /// Set when the sandbox stops: MQTT 5 clients get DISCONNECT 0x8B.
    shutdown: watch::Sender<bool>,
    /// The fault to inject once, if armed.
    fault: Mutex<Option<Fault>>,
}

impl Shared {
    fn retained(&self) -> MutexGuard<'_, BTreeMap<String, Retained>> {
        self.retained.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fault the sandbox injects once on one client's connection, at a step of
/// a publish handshake (the QoS lab's "sandbox side"): it drops the packet of
/// that step and closes the connection, as a lost link would. Logged and
/// counted ([`Counters::faults`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The client whose connection is cut.
    pub client_id: String,
    /// `AfterPublish`: the client's next PUBLISH is dropped unread.
    /// `AfterAck`: its next QoS 1/2 PUBLISH is taken (and forwarded or
    /// stored) but the PUBACK/PUBREC is not sent. `AfterPubrel`: its next
    /// PUBREL releases the message but the PUBCOMP is not sent.
    pub step: CutStep,
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
        Self::with_security(limits, Security::default())
    }

    /// A broker with users and ACLs.
    pub fn with_security(limits: Limits, security: Security) -> Broker {
        let secret: [u8; 24] = rand::random();
        Broker {
            shared: Arc::new(Shared {
                device_secret: base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    secret,
                ),
                state: RwLock::new(BrokerState {
                    sessions: HashMap::new(),
                    by_client: HashMap::new(),
                    subs: SubTree::default(),
                    shared_subs: SubTree::default(),
                    groups: HashMap::new(),
                    group_ids: HashMap::new(),
                    next_conn: 0,
                    next_key: 0,
                    past_drops: BTreeMap::new(),
                }),
                retained: Mutex::new(BTreeMap::new()),
                counters: Counters::default(),
                gate: Gate::default(),
                limits,
                security,
                log: Mutex::new(LogRing::default()),
                started: Instant::now(),
                shutdown: watch::Sender::new(false),
                fault: Mutex::new(None),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub fn security(&self) -> &Security {
        &self.shared.security
    }

    /// Lets this broker's simulated devices (which connect to `port`) log
    /// in as [`DEVICE_USER`]; until [`Broker::forget_device_login`].
    pub(crate) fn register_device_login(&self, port: u16) {
        let mut logins = DEVICE_LOGINS.lock().unwrap_or_else(|e| e.into_inner());
        logins.insert(port, self.shared.device_secret.clone());
    }

    pub(crate) fn forget_device_login(&self, port: u16) {
        let mut logins = DEVICE_LOGINS.lock().unwrap_or_else(|e| e.into_inner());
        if logins.get(&port) == Some(&self.shared.device_secret) {
            logins.remove(&port);
        }
    }

    /// Arms (or with `None` disarms) a fault; it fires once.
    pub fn set_fault(&self, fault: Option<Fault>) {
        let fault = fault.filter(|f| f.step != CutStep::None);
        if let Some(f) = &fault {
            self.log(format!(
                "fault armed: client '{}' is cut {}",
                f.client_id,
                f.step.label()
            ));
        }
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// The fault armed and not fired yet.
    pub fn fault(&self) -> Option<Fault> {
        self.shared
            .fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Connections cut by a fault so far.
    pub fn faults_injected(&self) -> u64 {
        self.shared.counters.faults.load(Ordering::Relaxed)
    }

    /// Takes the armed fault if it is for this client at this step.
    fn fire_fault(&self, conn: &Conn, step: CutStep) -> bool {
        let mut fault = self.shared.fault.lock().unwrap_or_else(|e| e.into_inner());
        if fault
            .as_ref()
            .is_some_and(|f| f.step == step && f.client_id == conn.client_id)
        {
            *fault = None;
            add(&self.shared.counters.faults, 1);
            return true;
        }
        false
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub(super) fn gate(&self) -> &Gate {
        &self.shared.gate
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// The state to route by (shared with other publishers).
    fn read(&self) -> RwLockReadGuard<'_, BrokerState> {
        // A panic elsewhere must not take the whole broker down with it.
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The state to change (sessions, subscriptions).
    fn write(&self) -> RwLockWriteGuard<'_, BrokerState> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
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
        self.read().route(
            msg,
            qos,
            retain,
            Source::Internal,
            &self.shared,
            &mut ignore,
        );
    }

    /// Housekeeping for `$SYS`'s tick: ends expired sessions.
    pub(crate) fn sweep(&self) {
        self.write().expire_sessions(Instant::now());
    }

    /// Tells every connection the broker is stopping (MQTT 5 clients get
    /// DISCONNECT 0x8B "server shutting down").
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    pub fn stats(&self) -> BrokerStats {
        let (subscriptions, sessions) = {
            let st = self.read();
            (st.subscription_count() as u64, st.sessions.len() as u64)
        };
        let retained = {
            let store = self.shared.retained();
            // The broker's own `$SYS` values are not the users' messages.
            let sys = store
                .range::<str, _>((
                    std::ops::Bound::Included("$SYS/"),
                    std::ops::Bound::Excluded("$SYS0"),
                ))
                .count();
            (store.len() - sys) as u64
        };
        let c = &self.shared.counters;
        BrokerStats {
            clients: c.clients.load(Ordering::Relaxed),
            connections: c.sockets.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            sessions,
            received: c.received.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            retained,
            subscriptions,
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// Messages each client lost to a full queue, largest first (sessions
    /// still held, and the last ones that ended).
    pub fn drops_by_client(&self) -> Vec<(String, u64)> {
        let st = self.read();
        let mut all: BTreeMap<String, u64> = st.past_drops.clone();
        for s in st.sessions.values() {
            let dropped = lock_out(&s.out).dropped;
            if dropped > 0 {
                *all.entry(s.client_id.clone()).or_default() += dropped;
            }
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
                    let Some(admission) = self.admit(peer, "") else {
                        continue;
                    };
                    stream.set_nodelay(true).ok();
                    let broker = self.clone();
                    tokio::spawn(async move {
                        let (rd, wr) = stream.into_split();
                        broker.connection(rd, wr, peer, Via::Tcp, admission).await
                    });
                }
                // Out of file descriptors and the like: wait, don't spin.
                Err(e) => {
                    self.log(format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Serves one client over any byte stream (TCP, TLS, websocket),
    /// admitted by [`Broker::admit`].
    pub(crate) async fn connection<R, W>(
        self,
        mut rd: R,
        mut wr: W,
        peer: SocketAddr,
        via: Via,
        admission: Admission,
    ) where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let who = format!("{peer}{}", via.suffix());
        let counters = &self.shared.counters;
        let limits = &self.shared.limits;
        let mut buf = BytesMut::with_capacity(4096);
        let first = admission
            .unless_evicted(tokio::time::timeout(
                limits.connect_timeout,
                read_connect(&mut rd, &mut buf, limits.max_connect_size, counters),
            ))
            .await;
        // Closed to make room for a newer connection (logged there).
        let Some(first) = first else {
            return;
        };
        let connect = match first {
            Ok(Ok(Ok(c))) => c,
            Ok(Ok(Err(level))) => {
                self.log(format!(
                    "{who}: protocol level {level} not supported, CONNACK refused"
                ));
                let mut out = BytesMut::new();
                let ack = Out::ConnAck {
                    session_present: false,
                    code: reason::UNSUPPORTED_PROTOCOL_VERSION,
                    props: None,
                };
                let proto = if level == 5 { Proto::V5 } else { Proto::V4 };
                codec::write(proto, &ack, &mut out);
                write_timed(&mut wr, &out, limits.write_timeout, counters)
                    .await
                    .ok();
                return;
            }
            Ok(Err(ReadError::Closed)) => return,
            Ok(Err(e)) => {
                self.log(format!("{who}: closed before CONNECT: {e}"));
                return;
            }
            Err(_) => {
                self.log(format!(
                    "{who}: no CONNECT within {:?}, closed",
                    limits.connect_timeout
                ));
                return;
            }
        };
        let proto = connect.proto;
        if !admission.established() {
            return;
        }
        let mut conn = match self.accept(connect, peer, via) {
            Ok(conn) => conn,
            Err(Refusal::Code(code, why)) => {
                self.log(format!("{who}: CONNECT refused: {why}"));
                let ack = Out::ConnAck {
                    session_present: false,
                    code,
                    props: None,
                };
                write_outs(&mut wr, proto, &[ack], limits, counters)
                    .await
                    .ok();
                return;
            }
            Err(Refusal::Close(why)) => {
                // A protocol violation: no CONNACK, no will, no takeover.
                self.log(format!("{who}: CONNECT refused, closed: {why}"));
                return;
            }
        };
        add(&counters.clients, 1);
        counters
            .clients_maximum
            .fetch_max(counters.clients.load(Ordering::Relaxed), Ordering::Relaxed);
        let end = self.run(&mut conn, &mut rd, &mut wr, &mut buf).await;
        if let Some(rc) = end.reason(conn.proto) {
            // MQTT 5: say why before closing (best effort, briefly).
            let out = [Out::Disconnect(rc, None)];
            let mut bytes = BytesMut::new();
            for o in &out {
                codec::write(conn.proto, o, &mut bytes);
            }
            tokio::time::timeout(Duration::from_millis(500), wr.write_all(&bytes))
                .await
                .ok();
        }
        // Counted out once its session is settled, so `clients == 0` means
        // every clean session is gone too.
        self.finish(conn, end);
        counters.clients.fetch_sub(1, Ordering::Relaxed);
    }

    /// Registers the session for a CONNECT, or says why not. Nothing of the
    /// broker changes for a refused CONNECT (no takeover, no will).
    fn accept(&self, connect: ConnectReq, peer: SocketAddr, via: Via) -> Result<Conn, Refusal> {
        if let Some(will) = &connect.will
            && validate_topic_name(&will.topic).is_err()
        {
            return Err(match connect.proto {
                Proto::V4 => Refusal::Close(format!(
                    "will topic '{}' is not a valid topic name",
                    will.topic
                )),
                Proto::V5 => Refusal::Code(
                    reason::TOPIC_NAME_INVALID,
                    format!("will topic '{}' is not a valid topic name", will.topic),
                ),
            });
        }
        if connect.auth_method.is_some() {
            return Err(Refusal::Code(
                reason::BAD_AUTHENTICATION_METHOD,
                "enhanced authentication is not supported".into(),
            ));
        }
        let trusted = self.authenticate(&connect)?;
        let limits = &self.shared.limits;
        let mut keep_alive = connect.keep_alive;
        let mut server_keep_alive = None;
        if limits.max_keepalive < u16::MAX
            && (connect.keep_alive == 0 || connect.keep_alive > limits.max_keepalive)
        {
            match connect.proto {
                // Mosquitto's max_keepalive for 3.1.1: refused.
                Proto::V4 => {
                    return Err(Refusal::Code(
                        reason::CLIENT_ID_NOT_VALID,
                        format!(
                            "keep-alive {} s is over the maximum of {} s",
                            connect.keep_alive, limits.max_keepalive
                        ),
                    ));
                }
                // MQTT 5 can be told: Server Keep Alive.
                Proto::V5 => {
                    keep_alive = limits.max_keepalive;
                    server_keep_alive = Some(limits.max_keepalive);
                }
            }
        }
        let mut st = self.write();
        st.next_conn += 1;
        let conn_id = st.next_conn;
        let mut assigned = None;
        let client_id = if connect.client_id.is_empty() {
            // 3.1.1 §3.1.3.1: an empty id is only allowed with a clean session.
            if connect.proto == Proto::V4 && !connect.clean_start {
                return Err(Refusal::Code(
                    reason::CLIENT_ID_NOT_VALID,
                    "empty client id with clean session off".into(),
                ));
            }
            let id = format!("sandbox-auto-{conn_id}");
            if connect.proto == Proto::V5 {
                assigned = Some(id.clone());
            }
            id
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
            receive_max: connect.receive_max,
            max_packet: connect.max_packet_size,
        };
        st.expire_sessions(Instant::now());
        let existing = st.by_client.get(&client_id).copied();
        if let Some(key) = existing
            && let Some(old) = st.sessions.get(&key)
            && let Some(old_link) = lock_out(&old.out).conn.take()
        {
            old_link.kick.notify_one();
        }
        // A session is resumed only if one was kept (MQTT-3.2.2-2/3).
        let resumed = !connect.clean_start
            && existing.is_some_and(|k| {
                st.sessions
                    .get(&k)
                    .is_some_and(|s| lock_out(&s.out).expiry > 0)
            });
        let key = match existing {
            Some(key) if resumed => key,
            _ => {
                if let Some(key) = existing {
                    st.remove_session(key);
                }
                st.next_key += 1;
                let key = st.next_key;
                st.sessions
                    .insert(key, Session::new(client_id.clone(), connect.session_expiry));
                st.by_client.insert(client_id.clone(), key);
                key
            }
        };
        let Some(session) = st.sessions.get_mut(&key) else {
            return Err(Refusal::Close("session vanished".into()));
        };
        session.user = connect.username.clone();
        session.trusted = trusted;
        session.expires_at = None;
        session.last_conn = conn_id;
        let out = session.out.clone();
        {
            let mut o = lock_out(&out);
            o.expiry = connect.session_expiry;
            o.conn = Some(link);
            if resumed {
                o.resend = true;
                wake.notify_one();
            }
        }
        let props = (connect.proto == Proto::V5).then(|| ConnAckProperties {
            session_expiry_interval: None,
            receive_max: Some(limits.max_inflight.max(1)),
            max_qos: None,
            retain_available: Some(1),
            max_packet_size: Some(u32::try_from(limits.max_packet_size).unwrap_or(u32::MAX)),
            assigned_client_identifier: assigned,
            topic_alias_max: Some(TOPIC_ALIAS_MAX),
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: Some(1),
            subscription_identifiers_available: Some(1),
            shared_subscription_available: Some(1),
            server_keep_alive,
            response_information: connect
                .request_response_info
                .then(|| format!("sandbox/response/{client_id}")),
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        });
        Ok(Conn {
            conn_id,
            key,
            client_id,
            peer,
            via,
            proto: connect.proto,
            keep_alive,
            will: connect.will,
            connack: Out::ConnAck {
                session_present: resumed,
                code: reason::SUCCESS,
                props,
            },
            aliases: HashMap::new(),
            out_aliases: OutAliases::new(if connect.proto == Proto::V5 {
                connect.topic_alias_max
            } else {
                0
            }),
            user: connect.username.clone(),
            trusted,
            wake,
            kick,
            out,
        })
    }

    /// Mosquitto's checks: the password file (unless anonymous clients are
    /// allowed and this one gave no user name), then the ACL for the will.
    /// `Ok(true)` for the sandbox's own devices, which pass both.
    fn authenticate(&self, connect: &ConnectReq) -> Result<bool, Refusal> {
        let security = &self.shared.security;
        if connect.username.as_deref() == Some(DEVICE_USER) {
            let given = connect.password.as_deref().unwrap_or("").as_bytes();
            let secret = self.shared.device_secret.as_bytes();
            if aws_lc_rs::constant_time::verify_slices_are_equal(given, secret).is_ok() {
                return Ok(true);
            }
            return Err(Refusal::Code(
                reason::BAD_USER_NAME_OR_PASSWORD,
                format!(
                    "client '{}': wrong password for the sandbox's device user '{DEVICE_USER}'",
                    connect.client_id
                ),
            ));
        }
        if let Some(passwords) = &security.passwords {
            match &connect.username {
                None if !security.allow_anonymous => {
                    return Err(Refusal::Code(
                        reason::NOT_AUTHORIZED,
                        format!(
                            "client '{}' gave no user name (the sandbox has a password file; --allow-anonymous lets such clients in)",
                            connect.client_id
                        ),
                    ));
                }
                None => {}
                Some(user) => {
                    let password = connect.password.as_deref().unwrap_or("");
                    if !passwords.check(user, password.as_bytes()) {
                        return Err(Refusal::Code(
                            reason::BAD_USER_NAME_OR_PASSWORD,
                            format!(
                                "client '{}': wrong user name or password for user '{user}'",
                                connect.client_id
                            ),
                        ));
                    }
                }
            }
        }
        if let (Some(acl), Some(will)) = (&security.acl, &connect.will)
            && !acl.allows(
                connect.username.as_deref(),
                &connect.client_id,
                &will.topic,
                Access::Write,
            )
        {
            return Err(Refusal::Code(
                reason::NOT_AUTHORIZED,
                format!(
                    "client '{}': the ACL denies writing its will topic '{}'",
                    connect.client_id, will.topic
                ),
            ));
        }
        Ok(false)
    }

    async fn run<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        conn: &mut Conn,
        rd: &mut R,
        wr: &mut W,
        buf: &mut BytesMut,
    ) -> End {
        let limits = &self.shared.limits;
        let counters = &self.shared.counters;
        let connack = conn.connack.clone();
        if write_outs(wr, conn.proto, &[connack], limits, counters)
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
        // (`interval` panics on zero.)
        let mut check =
            tokio::time::interval((limits.write_timeout / 4).max(Duration::from_millis(10)));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = conn.kick.notified() => return End::TakenOver,
                _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => return End::Shutdown,
                read = read_packet(conn.proto, rd, buf, limits.max_packet_size, counters), if blocked.is_empty() => {
                    let packet = match read {
                        Ok(p) => p,
                        Err(ReadError::Closed) => return End::Abnormal,
                        Err(e) => {
                            self.log(format!("{}: closed: {e}", conn.who()));
                            return End::Violation(e.reason());
                        }
                    };
                    if let Some(d) = idle_limit {
                        deadline = Some(Instant::now() + d);
                    }
                    replies.clear();
                    if matches!(packet, In::Publish(_)) && self.fire_fault(conn, CutStep::AfterPublish) {
                        self.log(format!(
                            "fault injected: {}: PUBLISH dropped unread and the connection closed",
                            conn.who()
                        ));
                        return End::Abnormal;
                    }
                    let step = self.handle(conn, packet, &mut replies, &mut blocked, &mut progress);
                    if let Some(lost) = self.faulted_reply(conn, &replies) {
                        self.log(format!(
                            "fault injected: {}: {lost} not sent and the connection closed",
                            conn.who()
                        ));
                        return End::Abnormal;
                    }
                    if !replies.is_empty()
                        && let Err(e) = write_outs(wr, conn.proto, &replies, limits, counters).await
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
                    let max_packet = {
                        let mut out = lock_out(&conn.out);
                        if !out.owned_by(conn.conn_id) {
                            return End::TakenOver;
                        }
                        out.take_batch(&mut batch, limits, counters);
                        out.conn.as_ref().and_then(|l| l.max_packet)
                    };
                    if batch.is_empty() {
                        continue;
                    }
                    match self.write_batch(wr, conn.proto, max_packet, &mut conn.out_aliases, &batch).await {
                        Ok(too_large) => {
                            if too_large.count > 0 {
                                self.forget_too_large(conn, &too_large);
                            }
                        }
                        Err(e) => {
                            self.log_write_error(conn, &e);
                            return End::Abnormal;
                        }
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
                    // (A zero timeout still polls the read once.)
                    match tokio::time::timeout(Duration::ZERO, fill(rd, buf, counters)).await {
                        Ok(Ok(())) => {
                            deadline = idle_limit.map(|d| Instant::now() + d);
                        }
                        _ => {
                            self.log(format!(
                                "{}: keep-alive expired (nothing received for 1.5 × {} s), closed",
                                conn.who(), conn.keep_alive
                            ));
                            return End::Violation(reason::KEEP_ALIVE_TIMEOUT);
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

    /// The reply an armed fault swallows (the PUBACK/PUBREC of a PUBLISH,
    /// the PUBCOMP of a PUBREL), in words.
    fn faulted_reply(&self, conn: &Conn, replies: &[Out]) -> Option<String> {
        let (step, lost) = replies.iter().find_map(|r| match r {
            Out::PubAck(id, _) => Some((CutStep::AfterAck, format!("PUBACK id={id}"))),
            Out::PubRec(id, _) => Some((CutStep::AfterAck, format!("PUBREC id={id}"))),
            Out::PubComp(id, _) => Some((CutStep::AfterPubrel, format!("PUBCOMP id={id}"))),
            _ => None,
        })?;
        self.fire_fault(conn, step).then_some(lost)
    }

    fn is_congested(&self, conn: &Conn) -> bool {
        lock_out(&conn.out).pending_bytes > self.shared.limits.max_queued_bytes
    }

    /// Messages too large for the client were dropped, not sent: count
    /// them for the client and free their packet ids.
    fn forget_too_large(&self, conn: &Conn, too_large: &TooLarge) {
        let mut out = lock_out(&conn.out);
        for id in &too_large.pkids {
            out.inflight.remove(id);
        }
        out.dropped += too_large.count;
        conn.wake.notify_one();
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

    /// Writes a batch; says which messages were dropped because they
    /// exceed the client's Maximum Packet Size.
    async fn write_batch<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        proto: Proto,
        max_packet: Option<u32>,
        aliases: &mut OutAliases,
        batch: &[Wire],
    ) -> std::io::Result<TooLarge> {
        let counters = &self.shared.counters;
        let mut out = BytesMut::with_capacity(BATCH_BYTES + 1024);
        let mut publishes = 0;
        let mut too_large = TooLarge::default();
        let now = Instant::now();
        for w in batch {
            match w {
                Wire::Publish { q, pkid, dup } => {
                    let alias = aliases.pick(&q.msg.topic);
                    let frame = match alias {
                        Some((alias, known)) => q.msg.aliased_frame(q, now, alias, known),
                        None => q.msg.frame(proto, q, now),
                    };
                    let fits = |f: &Bytes| max_packet.is_none_or(|m| f.len() <= m as usize);
                    let Some(frame) = frame.filter(fits) else {
                        // MQTT-3.1.2-25: discarded as if delivered; counted.
                        add(&counters.dropped, 1);
                        too_large.count += 1;
                        if *pkid != 0 {
                            too_large.pkids.push(*pkid);
                        }
                        continue;
                    };
                    // The client knows the alias from here on.
                    let topic_len = match alias {
                        Some((alias, known)) => {
                            aliases.used(&q.msg.topic, alias, known);
                            if known { 0 } else { q.msg.topic.len() }
                        }
                        None => q.msg.topic.len(),
                    };
                    let start = out.len();
                    out.extend_from_slice(&frame);
                    if *pkid != 0 {
                        let at = start + codec::pkid_offset(&frame, topic_len);
                        out[at..at + 2].copy_from_slice(&pkid.to_be_bytes());
                    }
                    if *dup {
                        out[start] |= 0b1000;
                    }
                    publishes += 1;
                }
                Wire::Out(o) => codec::write(proto, o, &mut out),
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
        Ok(too_large)
    }

    /// Resolves an MQTT 5 topic alias (MQTT-3.3.2-7..12).
    fn resolve_alias(&self, conn: &mut Conn, p: &mut PublishIn) -> Result<(), End> {
        let Some(alias) = p.alias else {
            return Ok(());
        };
        if alias == 0 || alias > TOPIC_ALIAS_MAX {
            self.log(format!(
                "{}: topic alias {alias} is over the maximum of {TOPIC_ALIAS_MAX}, closed",
                conn.who()
            ));
            return Err(End::Violation(reason::TOPIC_ALIAS_INVALID));
        }
        if p.topic.is_empty() {
            match conn.aliases.get(&alias) {
                Some(t) => p.topic = t.clone(),
                None => {
                    self.log(format!(
                        "{}: topic alias {alias} used before it was set, closed",
                        conn.who()
                    ));
                    return Err(End::Violation(reason::PROTOCOL_ERROR));
                }
            }
        } else {
            conn.aliases.insert(alias, p.topic.clone());
        }
        Ok(())
    }

    fn handle(
        &self,
        conn: &mut Conn,
        packet: In,
        replies: &mut Vec<Out>,
        blocked: &mut Vec<watch::Receiver<u64>>,
        progress: &mut Instant,
    ) -> Step {
        let shared = &*self.shared;
        let limits = &shared.limits;
        let v5 = conn.proto == Proto::V5;
        // Work that needs no lock first.
        let mut packet = packet;
        let incoming = match &mut packet {
            In::Publish(p) => {
                if let Err(end) = self.resolve_alias(conn, p) {
                    return Step::End(end);
                }
                // A wildcard in a topic name is a protocol violation.
                if let Err(e) = validate_topic_name(&p.topic) {
                    self.log(format!(
                        "{}: PUBLISH to '{}': {e}, closed",
                        conn.who(),
                        p.topic
                    ));
                    return Step::End(End::Violation(reason::TOPIC_NAME_INVALID));
                }
                add(&shared.counters.received, 1);
                if let Some(acl) = &shared.security.acl
                    && !conn.trusted
                    && !acl.allows(
                        conn.user.as_deref(),
                        &conn.client_id,
                        &p.topic,
                        Access::Write,
                    )
                {
                    add(&shared.counters.denied, 1);
                    self.log(format!(
                        "{}: PUBLISH to '{}' denied by the ACL, dropped",
                        conn.who(),
                        p.topic
                    ));
                    // 3.1.1 has no way to say no: acknowledged and dropped,
                    // as Mosquitto does; MQTT 5 hears 0x87.
                    let rc = if v5 {
                        reason::NOT_AUTHORIZED
                    } else {
                        reason::SUCCESS
                    };
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => replies.push(Out::PubAck(p.pkid, rc)),
                        QoS::ExactlyOnce => replies.push(Out::PubRec(p.pkid, rc)),
                    }
                    return Step::Continue;
                }
                let mut msg =
                    Msg::new(std::mem::take(&mut p.topic), p.payload.clone()).with_expiry(p.expiry);
                msg.props = p.props.take();
                msg.origin = Some(conn.key);
                Some(msg)
            }
            _ => None,
        };
        // Only subscriptions change the broker's state; everything else
        // reads it (routing) or touches this client's own queues.
        if let In::Subscribe { pkid, filters, id } = packet {
            return self.subscribe(conn, pkid, filters, id, replies);
        }
        if let In::Unsubscribe { pkid, filters } = packet {
            let mut st = self.write();
            if !st
                .sessions
                .get(&conn.key)
                .is_some_and(|s| lock_out(&s.out).owned_by(conn.conn_id))
            {
                return Step::End(End::TakenOver);
            }
            let codes = filters
                .iter()
                .map(|t| {
                    if st.unsubscribe(conn.key, t) {
                        reason::SUCCESS
                    } else {
                        reason::NO_SUBSCRIPTION_EXISTED
                    }
                })
                .collect();
            replies.push(Out::UnsubAck(pkid, codes));
            return Step::Continue;
        }
        // This client's queues: checked (and for QoS 2, changed) before
        // routing, and never held while routing (it may be subscribed to
        // what it publishes).
        let mut out = lock_out(&conn.out);
        if !out.owned_by(conn.conn_id) {
            return Step::End(End::TakenOver);
        }
        match packet {
            In::Publish(p) => {
                let Some(msg) = incoming else {
                    return Step::End(End::Abnormal);
                };
                let no_one = |n: usize| {
                    if n == 0 {
                        reason::NO_MATCHING_SUBSCRIBERS
                    } else {
                        reason::SUCCESS
                    }
                };
                match p.qos {
                    QoS::AtMostOnce => {
                        drop(out);
                        self.read()
                            .route(msg, p.qos, p.retain, Source::Client, shared, blocked);
                    }
                    QoS::AtLeastOnce => {
                        drop(out);
                        let n = self.read().route(
                            msg,
                            p.qos,
                            p.retain,
                            Source::Client,
                            shared,
                            blocked,
                        );
                        replies.push(Out::PubAck(p.pkid, no_one(n)));
                    }
                    QoS::ExactlyOnce => {
                        // A resent PUBLISH (DUP) must not be delivered twice.
                        replies.push(Out::PubRec(p.pkid, reason::SUCCESS));
                        if !out.awaiting_rel.contains_key(&p.pkid) {
                            if v5
                                && out.awaiting_rel.len() >= usize::from(limits.max_inflight.max(1))
                            {
                                self.log(format!(
                                    "{}: more than Receive Maximum ({}) QoS 2 messages unreleased, closed",
                                    conn.who(),
                                    limits.max_inflight
                                ));
                                return Step::End(End::Violation(reason::RECEIVE_MAXIMUM_EXCEEDED));
                            }
                            out.awaiting_bytes += msg.cost();
                            out.awaiting_rel.insert(p.pkid, (msg, p.retain));
                        }
                        if out.awaiting_bytes > limits.max_queued_bytes.saturating_mul(4) {
                            self.log(format!(
                                "{}: {} QoS 2 messages never released (PUBREL), over {} bytes, closed",
                                conn.who(),
                                out.awaiting_rel.len(),
                                out.awaiting_bytes
                            ));
                            return Step::End(End::Violation(reason::QUOTA_EXCEEDED));
                        }
                    }
                }
            }
            In::PubRel(pkid) => match out.awaiting_rel.remove(&pkid) {
                Some((msg, retain)) => {
                    out.awaiting_bytes -= msg.cost();
                    drop(out);
                    replies.push(Out::PubComp(pkid, reason::SUCCESS));
                    self.read().route(
                        msg,
                        QoS::ExactlyOnce,
                        retain,
                        Source::Client,
                        shared,
                        blocked,
                    );
                }
                None => replies.push(Out::PubComp(pkid, reason::PACKET_ID_NOT_FOUND)),
            },
            In::PubAck(pkid) => {
                if let Some(Inflight {
                    state: Flight::Published(q),
                    ..
                }) = out.inflight.get(&pkid)
                    && q.qos == QoS::AtLeastOnce
                {
                    out.inflight.remove(&pkid);
                    conn.wake.notify_one();
                    *progress = Instant::now();
                }
            }
            In::PubRec(pkid) => {
                if let Some(f) = out.inflight.get_mut(&pkid) {
                    f.state = Flight::Released;
                }
                replies.push(Out::PubRel(pkid));
                *progress = Instant::now();
            }
            In::PubComp(pkid) => {
                if out.inflight.remove(&pkid).is_some() {
                    conn.wake.notify_one();
                    *progress = Instant::now();
                }
            }
            In::PingReq => replies.push(Out::PingResp),
            In::Disconnect {
                with_will,
                session_expiry,
            } => {
                if let Some(e) = session_expiry {
                    out.expiry = e;
                }
                return Step::End(if with_will {
                    End::Abnormal
                } else {
                    End::Graceful
                });
            }
            // A second CONNECT, or packets only a server sends.
            In::Unexpected(what) => {
                self.log(format!(
                    "{}: unexpected {what} from a client, closed",
                    conn.who()
                ));
                return Step::End(End::Violation(reason::PROTOCOL_ERROR));
            }
            In::Subscribe { .. } | In::Unsubscribe { .. } => {}
        }
        Step::Continue
    }

    /// SUBSCRIBE: the subscriptions (under the state's write lock), the
    /// SUBACK, then the retained messages they match.
    fn subscribe(
        &self,
        conn: &Conn,
        pkid: u16,
        filters: Vec<SubReq>,
        id: Option<usize>,
        replies: &mut Vec<Out>,
    ) -> Step {
        let shared = &*self.shared;
        let limits = &shared.limits;
        let v5 = conn.proto == Proto::V5;
        let mut st = self.write();
        if !st
            .sessions
            .get(&conn.key)
            .is_some_and(|s| lock_out(&s.out).owned_by(conn.conn_id))
        {
            return Step::End(End::TakenOver);
        }
        let mut codes = Vec::with_capacity(filters.len());
        let mut granted: Vec<(SubReq, bool)> = Vec::new();
        for f in filters {
            let valid = match shared_filter(&f.filter) {
                Some((group, inner)) => {
                    v5 && !group.is_empty()
                        && !group.contains(['+', '#'])
                        && validate_topic_filter(inner).is_ok()
                        && !f.no_local
                }
                None => validate_topic_filter(&f.filter).is_ok(),
            };
            if !valid {
                codes.push(reason::TOPIC_FILTER_INVALID);
                continue;
            }
            if let Some(acl) = shared.security.acl.as_ref().filter(|_| !conn.trusted) {
                let inner = shared_filter(&f.filter).map_or(&*f.filter, |(_, i)| i);
                if !acl.allows(
                    conn.user.as_deref(),
                    &conn.client_id,
                    inner,
                    Access::Subscribe,
                ) {
                    add(&shared.counters.denied, 1);
                    self.log(format!(
                        "{}: SUBSCRIBE to '{}' denied by the ACL",
                        conn.who(),
                        f.filter
                    ));
                    codes.push(reason::NOT_AUTHORIZED);
                    continue;
                }
            }
            codes.push(f.qos as u8);
            let opts = SubOpts {
                qos: f.qos,
                no_local: f.no_local,
                retain_as_published: f.retain_as_published,
                id,
            };
            let new = st.subscribe(conn.key, &f.filter, opts);
            granted.push((f, new));
        }
        replies.push(Out::SubAck(pkid, codes));
        // Retained messages go through the queue, so after the SUBACK.
        let now = Instant::now();
        let Some(session) = st.sessions.get(&conn.key) else {
            return Step::Continue;
        };
        let store = shared.retained();
        let mut out = lock_out(&session.out);
        for (f, new) in granted {
            let wanted = match f.retain_handling {
                0 => true,
                1 => new,
                _ => false,
            };
            // No retained messages for shared subscriptions.
            if !wanted || shared_filter(&f.filter).is_some() {
                continue;
            }
            let mut send = |topic: &String, r: &Retained| {
                if r.expires_at.is_some_and(|t| t <= now) || !session.may_read(topic, shared) {
                    return;
                }
                let mut msg = Msg::new(topic.clone(), r.payload.clone());
                msg.props = r.props.clone();
                msg.expires_at = r.expires_at;
                let mut q = Queued::new(Arc::new(msg), min_qos(r.qos, f.qos), true);
                q.sub_ids.extend(id);
                out.deliver(q, Source::Retained, limits, &shared.counters);
            };
            if f.filter.contains(['+', '#']) {
                for (topic, r) in store.iter().filter(|(t, _)| matches(&f.filter, t)) {
                    send(topic, r);
                }
            } else if let Some((topic, r)) = store.get_key_value(&f.filter) {
                send(topic, r);
            }
        }
        Step::Continue
    }

    fn finish(&self, conn: Conn, end: End) {
        let shared = &*self.shared;
        let mut st = self.write();
        let (owned, mut expiry) = {
            let out = lock_out(&conn.out);
            (out.owned_by(conn.conn_id), out.expiry)
        };
        if !owned {
            expiry = 0;
        } else if expiry == 0 {
            st.remove_session(conn.key);
        } else {
            if let Some(session) = st.sessions.get_mut(&conn.key) {
                session.expires_at = (expiry != u32::MAX)
                    .then(|| Instant::now() + Duration::from_secs(u64::from(expiry)));
            }
            {
                let mut s = lock_out(&conn.out);
                s.conn = None;
                // What was waiting for the socket now waits offline, under
                // the offline bounds (QoS 0 is not kept for the absent, as
                // in Mosquitto).
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
                if !s.inflight.is_empty() {
                    s.resend = true;
                }
            }
        }
        // The will is for connections that die (or MQTT 5 DISCONNECT 0x04),
        // not for a clean DISCONNECT, not for one replaced by the same
        // client connecting again, not for a broker that stops.
        let dies = matches!(end, End::Abnormal | End::Violation(_));
        let Some(will) = conn.will.filter(|_| dies && owned) else {
            return;
        };
        let delay = will.delay.min(expiry);
        let mut msg = Msg::new(will.topic, will.payload).with_expiry(will.expiry);
        msg.props = will.props;
        if delay == 0 {
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
            return;
        }
        // Will Delay Interval: published unless the client is back first.
        drop(st);
        let broker = self.clone();
        let client_id = conn.client_id;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
            let st = broker.read();
            let back = st
                .by_client
                .get(&client_id)
                .and_then(|k| st.sessions.get(k))
                .is_some_and(|s| lock_out(&s.out).conn.is_some());
            if !back {
                add(&broker.shared.counters.received, 1);
                let mut ignore = Vec::new();
                st.route(
                    msg,
                    will.qos,
                    will.retain,
                    Source::Internal,
                    &broker.shared,
                    &mut ignore,
                );
            }
        });
    }
}

/// Messages of a batch over the client's Maximum Packet Size.
#[derive(Default)]
struct TooLarge {
    count: u64,
    /// Their packet ids (QoS 1/2), to free.
    pkids: Vec<u16>,
}

struct Conn {
    conn_id: u64,
    key: SessionKey,
    client_id: String,
    peer: SocketAddr,
    via: Via,
    proto: Proto,
    keep_alive: u16,
    will: Option<codec::WillReq>,
    connack: Out,
    /// MQTT 5 topic aliases this client has set.
    aliases: HashMap<u16, String>,
    /// MQTT 5 topic aliases the sandbox has set toward this client.
    out_aliases: OutAliases,
    user: Option<String>,
    /// The sandbox's own device: not limited by the ACL.
    trusted: bool,
    wake: Arc<Notify>,
    kick: Arc<Notify>,
    /// Its session's queues (the same ones after a resumed session).
    out: Arc<Mutex<Outbox>>,
}

impl Conn {
    fn who(&self) -> String {
        format!(
            "client '{}' ({}{})",
            self.client_id,
            self.peer,
            self.via.suffix()
        )
    }
}

/// Which listener a client came in through (and, over TLS, the common
/// name of the certificate it presented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    Tcp,
    Tls(Option<String>),
    WebSocket,
    SecureWebSocket(Option<String>),
}

impl Via {
    fn suffix(&self) -> String {
        let cert = |c: &Option<String>| {
            c.as_ref()
                .map(|n| format!(", certificate '{n}'"))
                .unwrap_or_default()
        };
        match self {
            Via::Tcp => String::new(),
            Via::Tls(c) => format!(", TLS{}", cert(c)),
            Via::WebSocket => ", websocket".into(),
            Via::SecureWebSocket(c) => format!(", websocket over TLS{}", cert(c)),
        }
    }
}

enum Refusal {
    /// Answer with this CONNACK reason (mapped for 3.1.1).
    Code(u8, String),
    /// Close without an answer.
    Close(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Graceful,
    /// The connection died (or MQTT 5 DISCONNECT 0x04): the will fires.
    Abnormal,
    TakenOver,
    Shutdown,
    /// Closed by the broker for this reason; the will fires.
    Violation(u8),
}

impl End {
    /// The DISCONNECT reason an MQTT 5 client is told, if any.
    fn reason(self, proto: Proto) -> Option<u8> {
        if proto != Proto::V5 {
            return None;
        }
        match self {
            End::TakenOver => Some(reason::SESSION_TAKEN_OVER),
            End::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
            End::Violation(rc) => Some(rc),
            End::Graceful | End::Abnormal => None,
        }
    }
}

enum Step {
    Continue,
    End(End),
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

/// Reads more bytes into `buf`, growing it by what arrives (a header that
/// announces a huge packet reserves nothing until the bytes come).
async fn fill<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    counters: &Counters,
) -> Result<(), ReadError> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(64 * 1024);
    }
    match rd.read_buf(buf).await {
        // A stream that carries MQTT in frames (websockets) says when a
        // frame is not MQTT.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(ReadError::Protocol(e.to_string()))
        }
        Ok(0) | Err(_) => Err(ReadError::Closed),
        Ok(n) => {
            add(&counters.bytes_received, n as u64);
            Ok(())
        }
    }
}

/// Reads one whole packet. All partial state lives in `buf`, so dropping
/// this future (in `select!`) loses nothing.
async fn read_packet<R: AsyncRead + Unpin>(
    proto: Proto,
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
    counters: &Counters,
) -> Result<In, ReadError> {
    loop {
        if let Some(p) = codec::parse(proto, buf, max)? {
            return Ok(p);
        }
        fill(rd, buf, counters).await?;
    }
}

/// The first packet must be a CONNECT; `Ok(Err(level))` for a protocol
/// level the sandbox does not speak (3.1 and older).
async fn read_connect<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
    counters: &Counters,
) -> Result<Result<ConnectReq, u8>, ReadError> {
    while !codec::connect_ready(buf, max)? {
        fill(rd, buf, counters).await?;
    }
    codec::parse_connect(buf, max)
}

/// Writes all of `bytes`; fails with `TimedOut` when the peer accepts
/// nothing for `timeout` (progress, however slow, resets it).
async fn write_timed<W: AsyncWrite + Unpin>(
    wr: &mut W,
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
    // TLS and websocket streams hold bytes back until flushed (a no-op on TCP).
    match tokio::time::timeout(timeout, wr.flush()).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

async fn write_outs<W: AsyncWrite + Unpin>(
    wr: &mut W,
    proto: Proto,
    outs: &[Out],
    limits: &Limits,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut bytes = BytesMut::new();
    for o in outs {
        codec::write(proto, o, &mut bytes);
    }
    write_timed(wr, &bytes, limits.write_timeout, counters).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_qos_is_the_lower_of_publish_and_grant() {
        assert_eq!(
            min_qos(QoS::ExactlyOnce, QoS::AtLeastOnce),
            QoS::AtLeastOnce
        );
        assert_eq!(min_qos(QoS::AtMostOnce, QoS::ExactlyOnce), QoS::AtMostOnce);
    }

    #[test]
    fn shared_filters_are_recognised() {
        assert_eq!(shared_filter("$share/g/a/+"), Some(("g", "a/+")));
        assert_eq!(shared_filter("$share/g"), None);
        assert_eq!(shared_filter("share/g/a"), None);
    }

    #[test]
    fn an_offline_queue_drops_oldest_qos0_first_and_counts() {
        let mut s = Outbox::new(u32::MAX);
        let q = |qos, n: u8| {
            Queued::new(
                Arc::new(Msg::new("t".into(), Bytes::from(vec![n]))),
                qos,
                false,
            )
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

    #[test]
    fn out_aliases_rebind_the_least_recently_used_when_all_are_taken() {
        let mut a = OutAliases::new(2);
        let send = |a: &mut OutAliases, t: &str| {
            let (alias, known) = a.pick(t).expect("an alias");
            a.used(t, alias, known);
            (alias, known)
        };
        assert_eq!(send(&mut a, "a"), (1, false));
        assert_eq!(send(&mut a, "b"), (2, false));
        assert_eq!(send(&mut a, "a"), (1, true));
        // b is the least recently used: c takes its alias.
        assert_eq!(send(&mut a, "c"), (2, false));
        assert_eq!(send(&mut a, "a"), (1, true));
        assert_eq!(send(&mut a, "c"), (2, true));
        // b comes back: a is now the oldest.
        assert_eq!(send(&mut a, "b"), (1, false));
        assert_eq!(send(&mut a, "a"), (2, false));
        assert_eq!(a.by_topic.len(), 2);
        assert_eq!(a.lru.len(), 2);
    }

    #[test]
    fn out_aliases_are_capped_and_off_for_a_zero_maximum() {
        assert_eq!(OutAliases::new(0).pick("a"), None);
        let mut a = OutAliases::new(u16::MAX);
        for i in 0..=OUT_ALIAS_CAP {
            let t = i.to_string();
            let (alias, known) = a.pick(&t).expect("an alias");
            assert!(!known && alias <= OUT_ALIAS_CAP);
            a.used(&t, alias, known);
        }
        assert_eq!(a.topics.len(), usize::from(OUT_ALIAS_CAP));
        // The first topic's alias went to the last one.
        assert_eq!(a.pick("0"), Some((2, false)));
        assert_eq!(a.pick(&OUT_ALIAS_CAP.to_string()), Some((1, true)));
    }

    #[test]
    fn expiry_left_rounds_up() {
        let now = Instant::now();
        let mut m = Msg::new("t".into(), Bytes::new());
        m.expires_at = Some(now + Duration::from_millis(1500));
        assert_eq!(m.expiry_left(now), Some(2));
        assert!(!m.expired(now));
        assert!(m.expired(now + Duration::from_secs(2)));
    }
}
