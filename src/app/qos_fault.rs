//! The QoS lab's failure cases: what each QoS level *buys* when the
//! connection dies in the middle of a publish handshake.
//!
//! A run opens two connections of its own beside the user's: a publisher
//! that keeps its session (clean session off, or an MQTT 5 session expiry)
//! so its in-flight publishes are resent after a reconnect, and a separate
//! subscriber that counts, per QoS level, how many copies of the message
//! arrived and how many had DUP set. For each level it publishes one
//! message with a cut armed at the chosen step — on the client side through a
//! [`Relay`] (works against any broker), or on the sandbox's side with a
//! [`Fault`] — waits for the publisher to reconnect and finish, and then
//! reads the verdict at the subscriber: lost, exactly once, or duplicated.
//!
//! Nothing here is drawn from assumptions: the cut is a real closed socket,
//! the resend is rumqttc's (with the worker's DUP), the copies are the ones
//! the subscriber's broker connection delivered.

use super::qos_lab::QosLabAction;
use crate::model::flows::{PacketLog, Seq};
use crate::model::packet::{Direction, PacketKind, PacketRecord};
use crate::mqtt::fault::{CutStep, Relay};
use crate::mqtt::{Command, ConnStatus, ConnectionId, EventKind, PublishOutcome, PublishToken};
use crate::profile::{Profile, ProtocolVersion, Qos, SubscriptionSpec, TransportKind};
use crate::sandbox::{Broker, Fault};
use std::fmt;
use std::time::{Duration, Instant};

/// Connection ids of a failure run's own connections carry this bit; the
/// owner's id is in the bits below (shifted by one: publisher 0, subscriber 1).
pub const LAB_CONN_BIT: ConnectionId = 1 << 62;
/// After a level's publish completed (and the publisher is connected again),
/// copies still on their way to the subscriber get this long to arrive.
pub const SETTLE: Duration = Duration::from_millis(600);
/// A level that takes longer than this (subscribe, connect, cut, reconnect,
/// resend) ends the run.
pub const LEVEL_TIMEOUT: Duration = Duration::from_secs(20);
/// Packets each of the run's own connections keeps for the Timeline.
const LAB_LOG_CAPACITY: usize = 10_000;
/// How long an MQTT 5 publisher's session outlives its connection.
const SESSION_EXPIRY_SECS: u32 = 300;

/// The publisher connection of the failure run owned by `owner`.
pub fn publisher_conn(owner: ConnectionId) -> ConnectionId {
    LAB_CONN_BIT | (owner << 1)
}

/// The subscriber connection of the failure run owned by `owner`.
pub fn subscriber_conn(owner: ConnectionId) -> ConnectionId {
    LAB_CONN_BIT | (owner << 1) | 1
}

/// The connection whose failure run `conn` belongs to, if it is one.
pub fn owner_of(conn: ConnectionId) -> Option<ConnectionId> {
    (conn & LAB_CONN_BIT != 0).then_some((conn & !LAB_CONN_BIT) >> 1)
}

/// Where the cut is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultSide {
    /// A relay between the lab's publisher and the broker drops the packet
    /// and closes both sides (any broker reached over plain TCP).
    #[default]
    Client,
    /// The sandbox broker drops the packet it would send (or the one it got)
    /// and closes the publisher's connection.
    Sandbox,
}

impl FaultSide {
    pub fn label(self) -> &'static str {
        match self {
            FaultSide::Client => "client side (relay)",
            FaultSide::Sandbox => "sandbox side",
        }
    }
}

/// One of a failure run's own connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabClient {
    /// The publisher that keeps its session and is cut.
    #[default]
    Publisher,
    /// The subscriber that counts the copies.
    Subscriber,
}

/// What the subscriber got of a level's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Lost,
    Once,
    Duplicate(usize),
}

impl Verdict {
    fn of(copies: usize) -> Verdict {
        match copies {
            0 => Verdict::Lost,
            1 => Verdict::Once,
            n => Verdict::Duplicate(n),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Lost => write!(f, "lost"),
            Verdict::Once => write!(f, "exactly once"),
            Verdict::Duplicate(n) => write!(f, "duplicate ({n} copies)"),
        }
    }
}

/// One line of a level's sequence: a packet of the publisher, the cut, or a
/// copy that reached the subscriber.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultLine {
    Packet(Box<PacketRecord>),
    /// The connection died; the words say what was dropped.
    Cut(String),
    /// A copy of the message reached the subscriber (with its DUP flag).
    Arrived {
        dup: bool,
        qos: u8,
    },
}

/// The figures of one level of a failure run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultRow {
    pub qos: u8,
    /// The level was run (and finished).
    pub finished: bool,
    /// Whether the chosen step exists at this level (QoS 0 has no PUBACK,
    /// only QoS 2 a PUBREL); when not, nothing was cut.
    pub applies: bool,
    /// What was cut, in words, once it happened.
    pub cut: Option<String>,
    /// The publisher's reconnects during this level.
    pub reconnects: usize,
    /// What the broker said when the publisher came back.
    pub session_present: Option<bool>,
    /// The level's first packet in the publisher's log (for the Timeline).
    pub first_seq: Option<Seq>,
    /// The publisher's outcome for the message.
    pub outcome: Option<PublishOutcome>,
    /// Copies the subscriber got, and how many of them had DUP set.
    pub copies: usize,
    pub dup_copies: usize,
    /// The publisher sent the PUBLISH again, with DUP set, after the cut.
    pub resent_with_dup: usize,
    /// The publisher sent PUBREL again after the cut (it had sent it
    /// before the cut too).
    pub resent_pubrel: usize,
    /// A PUBREL went out before the cut.
    pub pubrel_before_cut: bool,
    pub lines: Vec<FaultLine>,
}

impl FaultRow {
    pub fn verdict(&self) -> Option<Verdict> {
        self.finished.then(|| Verdict::of(self.copies))
    }

    /// The verdict in a learner's words.
    pub fn summary(&self) -> String {
        let Some(verdict) = self.verdict() else {
            return format!("QoS {}: not run yet", self.qos);
        };
        let q = self.qos;
        match verdict {
            Verdict::Lost => format!("QoS {q} lost the message: the subscriber never got it"),
            Verdict::Once if self.resent_with_dup > 0 => format!(
                "QoS {q} redelivered it with DUP after the reconnect: the subscriber got it \
                 exactly once"
            ),
            Verdict::Once if self.resent_pubrel > 0 => format!(
                "QoS {q} resent PUBREL after the reconnect: the subscriber got it exactly once"
            ),
            Verdict::Once => format!("QoS {q} delivered it exactly once"),
            Verdict::Duplicate(n) if self.resent_with_dup > 0 => format!(
                "QoS {q} redelivered it with DUP: the subscriber got a duplicate ({n} copies)"
            ),
            Verdict::Duplicate(n) => {
                format!("QoS {q}: the subscriber got a duplicate ({n} copies)")
            }
        }
    }

    /// Why, in one line: the cut and what the publisher did after it.
    pub fn explanation(&self) -> String {
        if !self.applies {
            return "nothing was cut: this level has no such step".into();
        }
        let mut s = match &self.cut {
            Some(cut) => format!("cut: {cut}"),
            None => "the cut did not happen".into(),
        };
        match self.session_present {
            Some(true) => s.push_str("; the broker kept the session"),
            Some(false) => s.push_str("; the broker did NOT keep the session"),
            None => {}
        }
        if self.resent_with_dup > 0 {
            s.push_str("; PUBLISH resent with DUP=1");
        }
        if self.resent_pubrel > 0 {
            s.push_str("; PUBREL resent");
        }
        if self.qos == 0 && self.cut.is_some() {
            s.push_str("; QoS 0 is never resent");
        }
        s
    }
}

/// Where a failure run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultStatus {
    /// Waiting for the subscriber's SUBACK and the publisher's CONNACK.
    Connecting,
    /// Running the level of this QoS.
    Level(u8),
    /// The publisher reconnects with a clean session, so the broker does not
    /// keep the lab's session after the run.
    Closing,
    Done,
    Aborted(String),
}

/// Who makes the cut.
enum Injector {
    Relay(Relay),
    Sandbox(Broker),
}

/// A failure run: three levels, one message each, one cut each.
pub struct FailureRun {
    owner: ConnectionId,
    step: CutStep,
    side: FaultSide,
    topic: String,
    publisher_id: String,
    subscriber_id: String,
    payload_size: usize,
    injector: Injector,
    /// The publisher with a clean session, straight to the broker: connected
    /// once at the end to remove the lab's session from the broker.
    cleanup: Profile,
    status: FaultStatus,
    rows: [FaultRow; 3],
    sub_ready: bool,
    pub_connected: bool,
    /// The publisher connected at least once (so the broker may hold its
    /// session).
    ever_connected: bool,
    /// An aborted run reopened the publisher clean; close it when it is in.
    cleanup_after_abort: bool,
    /// The current level's publish went out (its token).
    token: Option<PublishToken>,
    /// A cut was seen by the publisher and it has not connected again.
    cut_pending: bool,
    level_started: Instant,
    last_change: Instant,
    run: u64,
    /// Every control packet of the publisher and of the subscriber, each in
    /// its own log (packet ids of two clients must not link into one flow):
    /// the connection's Timeline shows them on request.
    pub_log: PacketLog,
    sub_log: PacketLog,
}

impl fmt::Debug for FailureRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureRun")
            .field("step", &self.step)
            .field("side", &self.side)
            .field("status", &self.status)
            .finish()
    }
}

impl FailureRun {
    /// Prepares a run for the connection `owner` made with `profile`, with a
    /// cut at `step` on `side` (`sandbox`: the broker `profile` reaches, when
    /// it is mqscope's sandbox). Returns the run and the commands that open
    /// its two connections, or why it cannot run.
    pub fn start(
        owner: ConnectionId,
        profile: &Profile,
        step: CutStep,
        side: FaultSide,
        sandbox: Option<Broker>,
        payload_size: usize,
        run: u64,
    ) -> Result<(FailureRun, Vec<Command>), String> {
        let tag = format!("{:08x}", rand::random::<u32>());
        let topic = format!("mqscope/lab/fault/{tag}");
        let publisher_id = format!("mqscope-lab-pub-{tag}");
        let mut publisher = lab_profile(profile, &publisher_id);
        let mut cleanup = publisher.clone();
        cleanup.clean_session = true;
        cleanup.v5.session_expiry_interval = None;
        let injector = match side {
            FaultSide::Client => {
                if profile.transport != TransportKind::Tcp {
                    return Err(
                        "The client-side cut needs MQTT over plain TCP; this connection uses \
                         TLS or websockets. Use the sandbox side, or a TCP profile."
                            .into(),
                    );
                }
                let relay = Relay::start(&profile.host, profile.port)
                    .map_err(|e| format!("cannot start the relay for the cut: {e}"))?;
                publisher.host = "127.0.0.1".into();
                publisher.port = relay.port();
                publisher.proxy.clear();
                Injector::Relay(relay)
            }
            FaultSide::Sandbox => match sandbox {
                Some(broker) => Injector::Sandbox(broker),
                None => {
                    return Err("The sandbox side needs a connection to mqscope's sandbox \
                                broker (the Sandbox profile), running."
                        .into());
                }
            },
        };
        // Keep the session, so what is in flight is resent after the cut.
        publisher.clean_session = false;
        if publisher.protocol == ProtocolVersion::V5 {
            publisher.v5.session_expiry_interval = Some(SESSION_EXPIRY_SECS);
        }
        let subscriber_id = format!("mqscope-lab-sub-{tag}");
        let mut subscriber = lab_profile(profile, &subscriber_id);
        subscriber.clean_session = true;
        subscriber.v5.session_expiry_interval = None;
        subscriber.subscriptions = vec![SubscriptionSpec::new(topic.clone(), Qos::ExactlyOnce)];
        let commands = vec![
            Command::Connect {
                conn: subscriber_conn(owner),
                profile: Box::new(subscriber),
            },
            Command::Connect {
                conn: publisher_conn(owner),
                profile: Box::new(publisher),
            },
        ];
        let now = Instant::now();
        let run = FailureRun {
            owner,
            step,
            side,
            topic,
            publisher_id,
            subscriber_id,
            payload_size,
            injector,
            cleanup,
            status: FaultStatus::Connecting,
            rows: [0, 1, 2].map(|qos| FaultRow {
                qos,
                applies: step.applies_to(qos),
                ..FaultRow::default()
            }),
            sub_ready: false,
            pub_connected: false,
            ever_connected: false,
            cleanup_after_abort: false,
            token: None,
            cut_pending: false,
            level_started: now,
            last_change: now,
            run,
            pub_log: PacketLog::new(LAB_LOG_CAPACITY),
            sub_log: PacketLog::new(LAB_LOG_CAPACITY),
        };
        Ok((run, commands))
    }

    pub fn step(&self) -> CutStep {
        self.step
    }

    pub fn side(&self) -> FaultSide {
        self.side
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The client id of the lab's publisher (the one that is cut).
    pub fn publisher_id(&self) -> &str {
        &self.publisher_id
    }

    pub fn status(&self) -> &FaultStatus {
        &self.status
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.status,
            FaultStatus::Connecting | FaultStatus::Level(_) | FaultStatus::Closing
        )
    }

    pub fn rows(&self) -> &[FaultRow; 3] {
        &self.rows
    }

    /// The client id of the lab's subscriber.
    pub fn subscriber_id(&self) -> &str {
        &self.subscriber_id
    }

    /// Every control packet of the run's publisher or subscriber.
    pub fn log(&self, side: LabClient) -> &PacketLog {
        match side {
            LabClient::Publisher => &self.pub_log,
            LabClient::Subscriber => &self.sub_log,
        }
    }

    /// The same, to clear it or change its capacity from the Timeline.
    pub fn log_mut(&mut self, side: LabClient) -> &mut PacketLog {
        match side {
            LabClient::Publisher => &mut self.pub_log,
            LabClient::Subscriber => &mut self.sub_log,
        }
    }

    /// Keeps every packet of the run's own connections in their logs,
    /// whatever the run's state (connecting, levels, closing, cleanup).
    fn log_event(&mut self, conn: ConnectionId, event: &EventKind) {
        let log = if conn == publisher_conn(self.owner) {
            &mut self.pub_log
        } else if conn == subscriber_conn(self.owner) {
            &mut self.sub_log
        } else {
            return;
        };
        match event {
            EventKind::Packet(record) => {
                log.push(record.clone());
            }
            EventKind::Status(
                ConnStatus::Reconnecting { .. } | ConnStatus::Disconnected { .. },
            ) => {
                log.connection_dropped();
            }
            _ => {}
        }
    }

    /// The relay's port, on the client side.
    pub fn relay(&self) -> Option<&Relay> {
        match &self.injector {
            Injector::Relay(r) => Some(r),
            Injector::Sandbox(_) => None,
        }
    }

    /// Feeds one event of the run's connections; returns the commands to
    /// send next.
    pub fn on_event(&mut self, conn: ConnectionId, event: &EventKind) -> Vec<Command> {
        self.log_event(conn, event);
        if self.cleanup_after_abort && conn == publisher_conn(self.owner) {
            // The clean reconnect after an aborted run: once it is in (the
            // session is gone) or failed (nothing more to try), close it.
            if let EventKind::Status(
                ConnStatus::Connected { .. } | ConnStatus::Reconnecting { .. },
            ) = event
            {
                self.cleanup_after_abort = false;
                return vec![Command::Disconnect {
                    conn: publisher_conn(self.owner),
                }];
            }
            return Vec::new();
        }
        if !self.is_running() {
            return Vec::new();
        }
        let level = match self.status {
            FaultStatus::Level(q) => Some(usize::from(q)),
            _ => None,
        };
        if conn == subscriber_conn(self.owner) && self.status == FaultStatus::Closing {
            // Its counting is over: it was closed when the last level ended.
            return Vec::new();
        }
        if conn == subscriber_conn(self.owner) {
            match event {
                EventKind::Subscribed {
                    filter, granted, ..
                } if *filter == self.topic => {
                    if granted.is_none() {
                        return self.abort(format!(
                            "the broker refused the subscriber's subscription to {}",
                            self.topic
                        ));
                    }
                    self.sub_ready = true;
                }
                EventKind::Message(m) if m.topic == self.topic => {
                    if let Some((q, _)) = super::qos_lab::parse_payload(&m.payload)
                        && let Some(row) = self.rows.get_mut(usize::from(q))
                    {
                        row.copies += 1;
                        row.dup_copies += usize::from(m.dup);
                        row.lines.push(FaultLine::Arrived {
                            dup: m.dup,
                            qos: m.qos.as_u8(),
                        });
                        self.last_change = Instant::now();
                    }
                }
                EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                    return self.abort(format!("the subscriber's connection dropped: {reason}"));
                }
                EventKind::Status(ConnStatus::Disconnected { reason }) => {
                    return self.abort(format!(
                        "the subscriber's connection closed{}",
                        reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ));
                }
                _ => {}
            }
        } else if conn == publisher_conn(self.owner) && self.status == FaultStatus::Closing {
            // The old connection's end is expected; the clean one's CONNACK
            // means the broker dropped the lab's session.
            if let EventKind::Status(ConnStatus::Connected { .. }) = event {
                self.status = FaultStatus::Done;
                return vec![Command::Disconnect {
                    conn: publisher_conn(self.owner),
                }];
            }
        } else if conn == publisher_conn(self.owner) {
            match event {
                EventKind::Status(ConnStatus::Connected {
                    session_present, ..
                }) => {
                    self.pub_connected = true;
                    self.ever_connected = true;
                    if let Some(i) = level
                        && self.cut_pending
                    {
                        self.cut_pending = false;
                        self.rows[i].session_present = Some(*session_present);
                    }
                    self.last_change = Instant::now();
                }
                EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                    self.pub_connected = false;
                    let Some(i) = level else {
                        let relay = self
                            .relay()
                            .and_then(|r| r.errors().last().cloned())
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default();
                        return self
                            .abort(format!("the publisher could not connect: {reason}{relay}"));
                    };
                    let what = self.cut_words(i);
                    let row = &mut self.rows[i];
                    row.reconnects += 1;
                    if row.cut.is_none() {
                        row.cut = Some(what.clone());
                    }
                    row.lines.push(FaultLine::Cut(format!(
                        "connection cut ({what}); reconnecting: {reason}"
                    )));
                    self.cut_pending = true;
                    self.last_change = Instant::now();
                }
                EventKind::Status(ConnStatus::Disconnected { reason }) => {
                    return self.abort(format!(
                        "the publisher's connection closed{}",
                        reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ));
                }
                EventKind::Packet(record) => {
                    if let Some(i) = level {
                        let row = &mut self.rows[i];
                        if record.dir == Direction::Out {
                            match record.kind {
                                PacketKind::Publish
                                    if row.reconnects > 0 && record.detail.dup == Some(true) =>
                                {
                                    row.resent_with_dup += 1;
                                }
                                PacketKind::Pubrel if row.reconnects == 0 => {
                                    row.pubrel_before_cut = true;
                                }
                                PacketKind::Pubrel if row.pubrel_before_cut => {
                                    row.resent_pubrel += 1;
                                }
                                _ => {}
                            }
                        }
                        if row.first_seq.is_none() {
                            // log_event pushed it just now.
                            row.first_seq = self.pub_log.entries().next_back().map(|e| e.seq);
                        }
                        row.lines.push(FaultLine::Packet(Box::new(record.clone())));
                        self.last_change = Instant::now();
                    }
                }
                EventKind::Published { token, outcome } if Some(*token) == self.token => {
                    if let Some(i) = level {
                        self.rows[i].outcome = Some(outcome.clone());
                        self.last_change = Instant::now();
                    }
                }
                _ => {}
            }
        }
        self.advance(Instant::now())
    }

    /// Moves the run on when time has passed (the settle wait, the timeout);
    /// call it each frame while running.
    pub fn tick(&mut self, now: Instant) -> Vec<Command> {
        if !self.is_running() {
            return Vec::new();
        }
        if now.saturating_duration_since(self.level_started) > LEVEL_TIMEOUT {
            let why = match self.status {
                FaultStatus::Connecting => format!(
                    "the lab's publisher and subscriber were not both ready within {} s",
                    LEVEL_TIMEOUT.as_secs()
                ),
                FaultStatus::Level(q) => format!(
                    "the QoS {q} case did not finish within {} s",
                    LEVEL_TIMEOUT.as_secs()
                ),
                FaultStatus::Closing => format!(
                    "the lab publisher's session could not be removed from the broker within \
                     {} s (the broker may keep it)",
                    LEVEL_TIMEOUT.as_secs()
                ),
                _ => String::new(),
            };
            return self.abort(why);
        }
        self.advance(now)
    }

    /// Stops the run at the user's request.
    pub fn stop(&mut self) -> Vec<Command> {
        if !self.is_running() {
            return Vec::new();
        }
        self.abort("stopped".into())
    }

    fn advance(&mut self, now: Instant) -> Vec<Command> {
        match self.status {
            FaultStatus::Connecting if self.sub_ready && self.pub_connected => {
                self.begin_level(0, now)
            }
            FaultStatus::Level(q) => {
                let i = usize::from(q);
                let row = &self.rows[i];
                let settled = row.outcome.is_some()
                    && !self.armed()
                    && self.pub_connected
                    && !self.cut_pending
                    && now.saturating_duration_since(self.last_change) >= SETTLE;
                if !settled {
                    return Vec::new();
                }
                if let Some(PublishOutcome::Failed(why)) = &row.outcome {
                    let why = why.clone();
                    self.rows[i].finished = true;
                    return self.abort(format!("the QoS {q} publish failed: {why}"));
                }
                self.rows[i].finished = true;
                if q >= 2 {
                    self.status = FaultStatus::Closing;
                    self.level_started = now;
                    let mut cmds = self.close();
                    // Instead of the publisher's DISCONNECT: reopen it clean.
                    cmds.retain(|c| {
                        !matches!(c, Command::Disconnect { conn } if *conn == publisher_conn(self.owner))
                    });
                    cmds.push(Command::Connect {
                        conn: publisher_conn(self.owner),
                        profile: Box::new(self.cleanup.clone()),
                    });
                    return cmds;
                }
                self.begin_level(q + 1, now)
            }
            _ => Vec::new(),
        }
    }

    fn begin_level(&mut self, q: u8, now: Instant) -> Vec<Command> {
        self.status = FaultStatus::Level(q);
        self.level_started = now;
        self.last_change = now;
        self.cut_pending = false;
        if self.step.applies_to(q) {
            match &self.injector {
                Injector::Relay(relay) => relay.arm(self.step, &self.topic),
                Injector::Sandbox(broker) => broker.set_fault(Some(Fault {
                    client_id: self.publisher_id.clone(),
                    step: self.step,
                })),
            }
        }
        let Some(qos) = Qos::from_u8(q) else {
            return Vec::new();
        };
        let token = super::qos_lab::TOKEN_BIT | (1 << 62) | (self.run << 8) | u64::from(q);
        self.token = Some(token);
        vec![Command::Publish {
            conn: publisher_conn(self.owner),
            token,
            topic: self.topic.clone(),
            payload: super::qos_lab::payload(q, 0, self.payload_size),
            qos,
            retain: false,
            props: None,
        }]
    }

    /// Whether the cut of the current level is still waiting for its packet.
    fn armed(&self) -> bool {
        match &self.injector {
            Injector::Relay(relay) => relay.is_armed(),
            Injector::Sandbox(broker) => broker
                .fault()
                .is_some_and(|f| f.client_id == self.publisher_id),
        }
    }

    /// What the cut of level `i` dropped, in words.
    fn cut_words(&self, i: usize) -> String {
        match &self.injector {
            Injector::Relay(relay) => relay
                .cuts()
                .last()
                .map(|c| format!("the relay: {c}"))
                .unwrap_or_else(|| "the connection dropped by itself".into()),
            Injector::Sandbox(_) => match self.step.lost_packet(self.rows[i].qos) {
                Some(PacketKind::Publish) => {
                    "the sandbox dropped the PUBLISH unread and closed the connection".into()
                }
                Some(kind) => format!(
                    "the sandbox did not send {} and closed the connection",
                    kind.name()
                ),
                None => "the connection dropped by itself".into(),
            },
        }
    }

    fn abort(&mut self, why: String) -> Vec<Command> {
        let was_closing = self.status == FaultStatus::Closing;
        self.status = FaultStatus::Aborted(why);
        let mut cmds = self.close();
        if self.ever_connected && !was_closing {
            // Don't leave the lab's session on the broker: reopen the
            // publisher clean instead of just closing it.
            cmds.retain(|c| {
                !matches!(c, Command::Disconnect { conn } if *conn == publisher_conn(self.owner))
            });
            cmds.push(Command::Connect {
                conn: publisher_conn(self.owner),
                profile: Box::new(self.cleanup.clone()),
            });
            self.cleanup_after_abort = true;
        }
        cmds
    }

    /// Disarms the cut and closes the run's connections.
    fn close(&mut self) -> Vec<Command> {
        match &self.injector {
            Injector::Relay(relay) => relay.disarm(),
            Injector::Sandbox(broker) => {
                if broker
                    .fault()
                    .is_some_and(|f| f.client_id == self.publisher_id)
                {
                    broker.set_fault(None);
                }
            }
        }
        vec![
            Command::Disconnect {
                conn: publisher_conn(self.owner),
            },
            Command::Disconnect {
                conn: subscriber_conn(self.owner),
            },
        ]
    }
}

/// The user's profile as the lab's own client `client_id`: no will (a cut
/// must not publish the user's last will), no subscriptions of the user's.
fn lab_profile(profile: &Profile, client_id: &str) -> Profile {
    let mut p = profile.clone();
    p.name = format!("{} (QoS lab)", profile.name);
    p.client_id = client_id.to_string();
    p.will.enabled = false;
    p.subscriptions.clear();
    p
}

// ------------------------------------------------------------------ view

/// Draws a failure run: where it stands, the verdict table, and per level
/// the sequence (the publisher's packets, the cut, the subscriber's copies).
/// Returns what the user asked for (the Timeline of the lab's connections).
pub fn failure_ui(ui: &mut egui::Ui, run: &FailureRun) -> Option<QosLabAction> {
    let mut action = None;
    let how = format!("cut {} on the {}", run.step().label(), run.side().label());
    match run.status() {
        FaultStatus::Connecting => {
            let via = run
                .relay()
                .map(|r| format!(" through the relay on 127.0.0.1:{}", r.port()))
                .unwrap_or_default();
            ui.label(format!(
                "connecting the lab's publisher{via} and its subscriber..."
            ));
        }
        FaultStatus::Level(q) => {
            ui.label(format!("running QoS {q}: {how}"));
        }
        FaultStatus::Closing => {
            ui.label("removing the lab publisher's session from the broker...");
        }
        FaultStatus::Done => {
            ui.label(format!("done: {how} · {}", run.topic()));
        }
        FaultStatus::Aborted(why) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("failure run incomplete: {why}"),
            );
        }
    }
    ui.horizontal_wrapped(|ui| {
        ui.weak(format!(
            "Publisher {} keeps its session; a separate subscriber counts the copies. Both are \
             the lab's own connections, each with its own packets in the Timeline:",
            run.publisher_id()
        ));
        for (client, label) in [
            (LabClient::Publisher, "Publisher's packets"),
            (LabClient::Subscriber, "Subscriber's packets"),
        ] {
            if ui
                .button(label)
                .on_hover_text("Open them in the Timeline tab (Packets of: QoS lab ...)")
                .clicked()
            {
                action = Some(QosLabAction::ShowInTimeline { client, seq: None });
            }
        }
    });
    ui.add_space(4.0);
    egui::Grid::new("qos_fault_table")
        .num_columns(5)
        .striped(true)
        .spacing(egui::vec2(16.0, 4.0))
        .show(ui, |ui| {
            for title in ["QoS", "lost packet", "subscriber got"] {
                ui.strong(title);
            }
            ui.strong("with DUP").on_hover_text(
                "Copies that reached the subscriber with DUP set. A broker does not pass a \
                 publisher's DUP on (MQTT 3.1.1 §3.3.1.1): a resent PUBLISH it forwards again \
                 arrives as a new message, so a duplicate usually shows DUP=0 here. The DUP of \
                 the resend is on the publisher's PUBLISH below.",
            );
            ui.strong("verdict");
            ui.end_row();
            for row in run.rows() {
                ui.label(row.qos.to_string());
                ui.label(match run.step().lost_packet(row.qos) {
                    Some(kind) => kind.name().to_string(),
                    None => "none (no such step)".into(),
                });
                if row.finished {
                    ui.label(match row.copies {
                        1 => "1 copy".to_string(),
                        n => format!("{n} copies"),
                    });
                    ui.label(row.dup_copies.to_string());
                } else {
                    ui.label("-");
                    ui.label("-");
                }
                match row.verdict() {
                    Some(v) => {
                        let colour = match v {
                            Verdict::Lost => ui.visuals().error_fg_color,
                            Verdict::Duplicate(_) => ui.visuals().warn_fg_color,
                            Verdict::Once => OK_RGB,
                        };
                        ui.colored_label(colour, v.to_string());
                    }
                    None => {
                        ui.label("-");
                    }
                }
                ui.end_row();
            }
        });
    ui.add_space(8.0);
    ui.columns(3, |columns| {
        for (ui, row) in columns.iter_mut().zip(run.rows()) {
            if let Some(a) = sequence_ui(ui, row) {
                action = Some(a);
            }
        }
    });
    action
}

const OK_RGB: egui::Color32 = egui::Color32::from_rgb(0x2c, 0xa0, 0x2c);

/// One level's sequence; a click on "in the Timeline" asks to see it there.
fn sequence_ui(ui: &mut egui::Ui, row: &FaultRow) -> Option<QosLabAction> {
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        ui.strong(row.summary());
        if let Some(seq) = row.first_seq
            && ui
                .small_button(format!("QoS {} in the Timeline", row.qos))
                .on_hover_text(
                    "The publisher's packets in the Timeline tab, from this level's first one",
                )
                .clicked()
        {
            action = Some(QosLabAction::ShowInTimeline {
                client: LabClient::Publisher,
                seq: Some(seq),
            });
        }
    });
    if row.finished || row.cut.is_some() {
        ui.weak(row.explanation());
    }
    for line in &row.lines {
        let text = match line {
            FaultLine::Packet(r) => {
                let arrow = match r.dir {
                    Direction::Out => "client -> broker",
                    Direction::In => "broker -> client",
                };
                // The label says DUP on a resent PUBLISH.
                egui::RichText::new(format!("{arrow}: {}", crate::model::flows::packet_label(r)))
                    .monospace()
                    .size(11.0)
            }
            FaultLine::Cut(what) => egui::RichText::new(format!("CUT: {what}"))
                .color(ui.visuals().error_fg_color)
                .size(11.0),
            FaultLine::Arrived { dup, qos } => egui::RichText::new(format!(
                "subscriber got a copy (QoS {qos}, DUP={})",
                u8::from(*dup)
            ))
            .color(OK_RGB)
            .size(11.0),
        };
        ui.add(egui::Label::new(text).wrap());
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_connections_name_their_owner() {
        for owner in [1, 7, 1000] {
            assert_eq!(owner_of(publisher_conn(owner)), Some(owner));
            assert_eq!(owner_of(subscriber_conn(owner)), Some(owner));
            assert_ne!(publisher_conn(owner), subscriber_conn(owner));
        }
        assert_eq!(owner_of(3), None);
    }

    #[test]
    fn summaries_say_lost_once_or_duplicate() {
        let row = |qos, copies, dup, rel| FaultRow {
            qos,
            finished: true,
            applies: true,
            copies,
            resent_with_dup: dup,
            resent_pubrel: rel,
            ..FaultRow::default()
        };
        assert_eq!(
            row(0, 0, 0, 0).summary(),
            "QoS 0 lost the message: the subscriber never got it"
        );
        assert!(row(1, 2, 1, 0).summary().contains("duplicate (2 copies)"));
        assert!(row(1, 2, 1, 0).summary().contains("with DUP"));
        assert!(row(2, 1, 1, 0).summary().contains("once"));
        assert!(row(2, 1, 0, 1).summary().contains("exactly once"));
        assert_eq!(FaultRow::default().verdict(), None);
    }
}
