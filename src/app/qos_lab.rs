//! The QoS lab: publishes the same payload N times at QoS 0, 1 and 2 to a
//! topic the connection subscribes to, and compares the levels side by side
//! (packets and bytes on the publish and delivery legs, round-trip latency),
//! with the packets of one representative exchange per level.
//!
//! [`QosLab`] is the controller (no egui): it turns worker events into the
//! next commands and keeps its own [`PacketLog`], so its accounting does not
//! depend on the main timeline's filters or limit. [`QosLabView`] draws it and
//! returns [`QosLabAction`]s for the app to carry out.

use super::qos_fault::{FailureRun, FaultSide, LabClient};
use crate::model::flows::Seq;
use crate::model::flows::{FlowId, PacketLog, Side, format_relative, packet_label};
use crate::model::packet::{Direction, PacketRecord};
use crate::mqtt::fault::CutStep;
use crate::mqtt::{Command, ConnStatus, ConnectionId, EventKind, PublishOutcome, PublishToken};
use crate::profile::{Profile, Qos, SubscriptionSpec};
use crate::sandbox::Broker;
use egui::{Color32, Label, RichText, Sense, Shape, Stroke, pos2, vec2};
use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// Repetitions per QoS level the user can choose.
pub const REPETITIONS: RangeInclusive<usize> = 1..=1000;
/// Payload sizes the user can choose. The lower bound fits the largest
/// index tag ("lab 2 999"); the upper one stays below rumqttc's default
/// 10 KiB packet limit.
pub const PAYLOAD_SIZES: RangeInclusive<usize> = 10..=8192;
/// Tokens of the lab's publishes have this bit set; the app's own publish
/// tokens must stay below it.
pub const TOKEN_BIT: PublishToken = 1 << 63;
/// A step of the run (SUBACK, or one whole exchange) that takes longer than
/// this ends the run: on a working connection each takes milliseconds.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum LabStatus {
    /// No run started yet.
    Idle,
    /// Waiting for the SUBACK of the lab topic.
    Subscribing,
    /// Publishing, one message at a time.
    Running,
    Done,
    /// The run ended early; the levels not finished are marked incomplete.
    Aborted(String),
}

/// The outcome of one message: sent, answered, delivered back to us.
#[derive(Clone, Debug, Default)]
struct Exchange {
    /// Our publish of this message (client to broker).
    ours: Option<FlowId>,
    /// The broker's delivery of this message back to us.
    theirs: Option<FlowId>,
    /// Time of our PUBLISH and of the delivered PUBLISH (worker clock).
    sent_us: Option<u64>,
    delivered_us: Option<u64>,
    /// Deliveries of this message beyond the first (overlapping subscriptions).
    extra_deliveries: usize,
    /// Set once both legs completed and the message came back.
    done: Option<Finished>,
}

/// What a finished exchange cost.
#[derive(Clone, Debug)]
struct Finished {
    publish_packets: usize,
    publish_bytes: usize,
    delivery_packets: usize,
    delivery_bytes: usize,
    rtt_us: u64,
    /// Both legs' packets in the order they crossed the wire.
    packets: Vec<LabPacket>,
}

/// One packet of a representative exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct LabPacket {
    /// Which leg it belongs to: ours = publish leg, theirs = delivery leg.
    pub side: Side,
    pub record: PacketRecord,
}

/// Smallest and largest value over the completed exchanges of a level; the
/// same when every exchange cost the same (the normal case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    pub min: usize,
    pub max: usize,
}

impl Spread {
    fn of(values: impl Iterator<Item = usize>) -> Option<Spread> {
        values.fold(None, |acc, v| match acc {
            None => Some(Spread { min: v, max: v }),
            Some(s) => Some(Spread {
                min: s.min.min(v),
                max: s.max.max(v),
            }),
        })
    }

    /// The one value, when min and max agree.
    pub fn exact(self) -> Option<usize> {
        (self.min == self.max).then_some(self.min)
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exact() {
            Some(v) => write!(f, "{v}"),
            None => write!(f, "{}-{}", self.min, self.max),
        }
    }
}

/// The lab's figures for one QoS level.
#[derive(Clone, Debug, PartialEq)]
pub struct LabRow {
    pub qos: u8,
    /// Messages the run asked for at this level.
    pub requested: usize,
    /// Messages whose publish leg and delivery leg both completed.
    pub completed: usize,
    /// Messages that came back to us (first copy only).
    pub delivered: usize,
    /// Copies delivered beyond the lab subscription's one (another
    /// subscription of this connection that also matches the lab topic,
    /// such as `#`); not counted in the delivery leg or the round trip.
    pub extra_deliveries: usize,
    /// Per message: our PUBLISH and the broker's acknowledgements to it.
    pub publish_packets: Option<Spread>,
    /// Per message: the broker's PUBLISH to us and our acknowledgements.
    pub delivery_packets: Option<Spread>,
    pub publish_bytes: Option<Spread>,
    pub delivery_bytes: Option<Spread>,
    /// From our PUBLISH to the delivered PUBLISH of the same message.
    pub median_rtt_us: Option<u64>,
    pub p99_rtt_us: Option<u64>,
    /// The run ended (finished or aborted) without completing every message.
    pub incomplete: bool,
    /// The exchange whose round trip is the median: its packets in wire order.
    pub representative: Vec<LabPacket>,
    pub representative_rtt_us: Option<u64>,
}

/// The QoS lab controller for one run on one connection.
#[derive(Debug)]
pub struct QosLab {
    conn: ConnectionId,
    topic: String,
    n: usize,
    payload_size: usize,
    status: LabStatus,
    /// 3N exchanges: QoS 0 first, then 1, then 2; index i within a level.
    exchanges: Vec<Exchange>,
    /// The exchange in flight (index into `exchanges`).
    current: usize,
    log: PacketLog,
    /// The delivered PUBLISH just recorded; its Message event follows it.
    pending_delivery: Option<(FlowId, u64)>,
    granted: Option<Qos>,
    /// Run number, part of every token so runs never share one.
    run: u64,
    last_progress: Instant,
    /// A failure run (what each level buys) instead of the cost run.
    failure: Option<FailureRun>,
    /// Why the last failure run could not start.
    failure_error: Option<String>,
}

impl QosLab {
    /// A lab for `conn`, before any run.
    pub fn new(conn: ConnectionId) -> QosLab {
        QosLab {
            conn,
            topic: String::new(),
            n: 0,
            payload_size: 0,
            status: LabStatus::Idle,
            exchanges: Vec::new(),
            current: 0,
            log: PacketLog::default(),
            pending_delivery: None,
            granted: None,
            run: 0,
            last_progress: Instant::now(),
            failure: None,
            failure_error: None,
        }
    }

    /// Starts a failure run (see [`FailureRun`]) for the connection `conn`
    /// made with `profile`; returns the commands to send now, or says (also
    /// in [`Self::failure_error`]) why it cannot run.
    pub fn start_failure(
        &mut self,
        conn: ConnectionId,
        profile: &Profile,
        step: CutStep,
        side: FaultSide,
        sandbox: Option<Broker>,
        payload_size: usize,
    ) -> Result<Vec<Command>, String> {
        self.conn = conn;
        self.run += 1;
        self.failure = None;
        self.failure_error = None;
        match FailureRun::start(conn, profile, step, side, sandbox, payload_size, self.run) {
            Ok((run, commands)) => {
                self.failure = Some(run);
                Ok(commands)
            }
            Err(why) => {
                self.failure_error = Some(why.clone());
                Err(why)
            }
        }
    }

    /// The failure run, when the last run was one.
    pub fn failure(&self) -> Option<&FailureRun> {
        self.failure.as_ref()
    }

    /// The same, for the Timeline's actions on the run's logs.
    pub fn failure_mut(&mut self) -> Option<&mut FailureRun> {
        self.failure.as_mut()
    }

    /// Why the last failure run could not start.
    pub fn failure_error(&self) -> Option<&str> {
        self.failure_error.as_deref()
    }

    /// Feeds one event of the failure run's own connections.
    pub fn on_lab_event(&mut self, conn: ConnectionId, event: &EventKind) -> Vec<Command> {
        match self.failure.as_mut() {
            Some(run) => run.on_event(conn, event),
            None => Vec::new(),
        }
    }

    /// A topic no earlier run (of this or another mqscope) used, so a late
    /// delivery from an old run cannot count in a new one.
    pub fn fresh_topic() -> String {
        format!("mqscope/lab/{:016x}", rand::random::<u64>())
    }

    /// Starts a run of `n` messages per level with payloads of
    /// `payload_size` bytes on `topic`; returns the commands to send now
    /// (the subscription; the publishes follow its SUBACK, one at a time so
    /// every round trip is measured on an idle connection).
    pub fn start(
        &mut self,
        conn: ConnectionId,
        n: usize,
        payload_size: usize,
        topic: String,
    ) -> Vec<Command> {
        let n = n.clamp(*REPETITIONS.start(), *REPETITIONS.end());
        let largest_tag = payload(2, n - 1, 0).len();
        self.conn = conn;
        self.n = n;
        self.payload_size = payload_size.max(largest_tag);
        self.topic = topic;
        self.run += 1;
        self.failure = None;
        self.failure_error = None;
        self.status = LabStatus::Subscribing;
        self.exchanges = vec![Exchange::default(); 3 * n];
        self.current = 0;
        self.log = PacketLog::default();
        self.pending_delivery = None;
        self.granted = None;
        self.last_progress = Instant::now();
        vec![Command::Subscribe {
            conn,
            sub: SubscriptionSpec::new(self.topic.clone(), Qos::ExactlyOnce),
        }]
    }

    pub fn conn(&self) -> ConnectionId {
        self.conn
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn status(&self) -> &LabStatus {
        &self.status
    }

    /// Bytes in each message's payload (the size asked for, or the index
    /// tag's length if that was longer).
    pub fn payload_size(&self) -> usize {
        self.payload_size
    }

    /// Messages per level of the current (or last) run.
    pub fn repetitions(&self) -> usize {
        self.n
    }

    /// Whether the run is over (finished or aborted).
    pub fn is_done(&self) -> bool {
        if self.failure_error.is_some() {
            // A failure run that could not start is over before it began.
            return true;
        }
        if let Some(run) = &self.failure {
            return !run.is_running();
        }
        matches!(self.status, LabStatus::Done | LabStatus::Aborted(_))
    }

    pub fn is_running(&self) -> bool {
        if let Some(run) = &self.failure {
            return run.is_running();
        }
        matches!(self.status, LabStatus::Subscribing | LabStatus::Running)
    }

    /// Whether `token` belongs to one of the lab's publishes.
    pub fn owns_token(token: PublishToken) -> bool {
        token & TOKEN_BIT != 0
    }

    /// (messages delivered back, messages in the run).
    pub fn progress(&self) -> (usize, usize) {
        let delivered = self
            .exchanges
            .iter()
            .filter(|e| e.delivered_us.is_some())
            .count();
        (delivered, self.exchanges.len())
    }

    /// QoS granted for the lab topic, once the SUBACK came.
    pub fn granted(&self) -> Option<Qos> {
        self.granted
    }

    /// Feeds one event of this lab's connection; returns the commands to
    /// send next.
    pub fn on_event(&mut self, event: &EventKind) -> Vec<Command> {
        if self.failure.is_some() || !self.is_running() {
            return Vec::new();
        }
        match event {
            EventKind::Packet(record) => self.on_packet(record),
            EventKind::Message(m) if m.topic == self.topic => {
                let pending = self.pending_delivery.take();
                if let Some((q, i)) = parse_payload(&m.payload)
                    && q <= 2
                    && i < self.n
                {
                    // Another subscription of this connection that matches
                    // the lab topic (`#`, say) brings its own copy, at its
                    // own QoS: only the lab subscription's copy counts.
                    let expected = q.min(self.granted.map_or(2, Qos::as_u8));
                    let exchange = &mut self.exchanges[usize::from(q) * self.n + i];
                    if exchange.delivered_us.is_some() || m.qos.as_u8() != expected {
                        exchange.extra_deliveries += 1;
                    } else if let Some((flow, t_us)) = pending {
                        exchange.theirs = Some(flow);
                        exchange.delivered_us = Some(t_us);
                    }
                }
            }
            EventKind::Subscribed {
                filter, granted, ..
            } if *filter == self.topic => {
                if self.status != LabStatus::Subscribing {
                    return Vec::new();
                }
                let Some(granted) = granted else {
                    return self.abort(format!(
                        "the broker refused the subscription to {}",
                        self.topic
                    ));
                };
                self.granted = Some(*granted);
                self.status = LabStatus::Running;
                self.last_progress = Instant::now();
                return self.publish_current();
            }
            EventKind::Published { token, outcome } if Self::owns_token(*token) => {
                if let PublishOutcome::Failed(why) = outcome
                    && self.token(self.current) == *token
                {
                    return self.abort(format!("a publish failed: {why}"));
                }
            }
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                self.log.connection_dropped();
                return self.abort(format!("the connection dropped: {reason}"));
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                self.log.connection_dropped();
                let why = match reason {
                    Some(r) => format!("the connection closed: {r}"),
                    None => "the connection was closed".to_string(),
                };
                // The session is gone and its subscriptions with it.
                self.status = LabStatus::Aborted(why);
                return Vec::new();
            }
            _ => {}
        }
        self.advance()
    }

    /// Ends the run if its current step is overdue; call it now and then
    /// (each frame) while [`Self::is_running`].
    pub fn tick(&mut self, now: Instant) -> Vec<Command> {
        if let Some(run) = self.failure.as_mut() {
            return run.tick(now);
        }
        if !self.is_running() || now.saturating_duration_since(self.last_progress) < STEP_TIMEOUT {
            return Vec::new();
        }
        let why = match self.status {
            LabStatus::Subscribing => format!(
                "no SUBACK for {} within {} s",
                self.topic,
                STEP_TIMEOUT.as_secs()
            ),
            _ => {
                let (q, i) = self.position(self.current);
                format!(
                    "message {} at QoS {q} did not complete within {} s",
                    i + 1,
                    STEP_TIMEOUT.as_secs()
                )
            }
        };
        self.abort(why)
    }

    /// Stops the run at the user's request.
    pub fn stop(&mut self) -> Vec<Command> {
        if let Some(run) = self.failure.as_mut() {
            return run.stop();
        }
        if !self.is_running() {
            return Vec::new();
        }
        self.abort("stopped".into())
    }

    /// The figures per QoS level (0, 1, 2) of the current or last run.
    pub fn results(&self) -> Vec<LabRow> {
        (0..3u8)
            .map(|q| {
                let level = self
                    .exchanges
                    .iter()
                    .skip(usize::from(q) * self.n)
                    .take(self.n);
                let finished: Vec<&Finished> =
                    level.clone().filter_map(|e| e.done.as_ref()).collect();
                let mut rtts: Vec<u64> = finished.iter().map(|f| f.rtt_us).collect();
                rtts.sort_unstable();
                let median = percentile(&rtts, 50);
                let representative = median
                    .and_then(|m| finished.iter().find(|f| f.rtt_us == m))
                    .map(|f| f.packets.clone())
                    .unwrap_or_default();
                LabRow {
                    qos: q,
                    requested: self.n,
                    completed: finished.len(),
                    delivered: level.clone().filter(|e| e.delivered_us.is_some()).count(),
                    extra_deliveries: level.clone().map(|e| e.extra_deliveries).sum(),
                    publish_packets: Spread::of(finished.iter().map(|f| f.publish_packets)),
                    delivery_packets: Spread::of(finished.iter().map(|f| f.delivery_packets)),
                    publish_bytes: Spread::of(finished.iter().map(|f| f.publish_bytes)),
                    delivery_bytes: Spread::of(finished.iter().map(|f| f.delivery_bytes)),
                    median_rtt_us: median,
                    p99_rtt_us: percentile(&rtts, 99),
                    incomplete: self.is_done() && finished.len() < self.n,
                    representative,
                    representative_rtt_us: median,
                }
            })
            .collect()
    }

    fn on_packet(&mut self, record: &PacketRecord) {
        let flow = self.log.push(record.clone());
        let on_lab_topic = record.detail.topic.as_deref() == Some(self.topic.as_str());
        if record.kind != crate::model::packet::PacketKind::Publish || !on_lab_topic {
            return;
        }
        match record.dir {
            Direction::Out => {
                // Publishes go one at a time, so a new (not DUP) PUBLISH on
                // the lab topic is the current message's.
                if self.status == LabStatus::Running
                    && record.detail.dup != Some(true)
                    && let Some(exchange) = self.exchanges.get_mut(self.current)
                    && exchange.ours.is_none()
                {
                    exchange.ours = Some(flow);
                    exchange.sent_us = Some(record.t_us);
                }
            }
            Direction::In => self.pending_delivery = Some((flow, record.t_us)),
        }
    }

    /// Moves past the current exchange once both legs completed and the
    /// message came back; returns the next publish (or the unsubscribe).
    fn advance(&mut self) -> Vec<Command> {
        if self.status != LabStatus::Running {
            return Vec::new();
        }
        let Some(exchange) = self.exchanges.get(self.current) else {
            return Vec::new();
        };
        let (Some(ours), Some(theirs), Some(sent), Some(delivered)) = (
            exchange.ours,
            exchange.theirs,
            exchange.sent_us,
            exchange.delivered_us,
        ) else {
            return Vec::new();
        };
        let (Some(ours_flow), Some(theirs_flow)) = (self.log.flow(ours), self.log.flow(theirs))
        else {
            return Vec::new();
        };
        if !ours_flow.is_complete() || !theirs_flow.is_complete() {
            return Vec::new();
        }
        let mut packets: Vec<(u64, LabPacket)> = Vec::new();
        for (flow, side) in [(ours_flow, Side::Ours), (theirs_flow, Side::Theirs)] {
            for step in &flow.steps {
                if let Some(entry) = self.log.get(step.seq) {
                    packets.push((
                        step.seq,
                        LabPacket {
                            side,
                            record: entry.record.clone(),
                        },
                    ));
                }
            }
        }
        packets.sort_by_key(|(seq, _)| *seq);
        let ours_stats = ours_flow.stats();
        let theirs_stats = theirs_flow.stats();
        let finished = Finished {
            publish_packets: ours_stats.packets,
            publish_bytes: ours_stats.bytes,
            delivery_packets: theirs_stats.packets,
            delivery_bytes: theirs_stats.bytes,
            rtt_us: delivered.saturating_sub(sent),
            packets: packets.into_iter().map(|(_, p)| p).collect(),
        };
        if let Some(exchange) = self.exchanges.get_mut(self.current) {
            exchange.done = Some(finished);
        }
        self.current += 1;
        self.last_progress = Instant::now();
        if self.current >= self.exchanges.len() {
            self.status = LabStatus::Done;
            return vec![self.unsubscribe()];
        }
        self.publish_current()
    }

    fn publish_current(&self) -> Vec<Command> {
        let (q, i) = self.position(self.current);
        let Some(qos) = Qos::from_u8(q) else {
            return Vec::new();
        };
        vec![Command::Publish {
            conn: self.conn,
            token: self.token(self.current),
            topic: self.topic.clone(),
            payload: payload(q, i, self.payload_size),
            qos,
            retain: false,
            props: None,
        }]
    }

    fn abort(&mut self, why: String) -> Vec<Command> {
        self.status = LabStatus::Aborted(why);
        // Also removes it from the subscriptions restored on reconnect.
        vec![self.unsubscribe()]
    }

    fn unsubscribe(&self) -> Command {
        Command::Unsubscribe {
            conn: self.conn,
            filter: self.topic.clone(),
        }
    }

    /// (QoS, index within the level) of exchange `k`.
    fn position(&self, k: usize) -> (u8, usize) {
        let n = self.n.max(1);
        ((k / n).min(2) as u8, k % n)
    }

    fn token(&self, k: usize) -> PublishToken {
        TOKEN_BIT | (self.run << 32) | k as u64
    }
}

/// `lab <qos> <index>`, padded with a space and dots to `size` bytes, so
/// each delivered message says exactly which publish it was.
pub(crate) fn payload(qos: u8, index: usize, size: usize) -> Vec<u8> {
    let mut text = format!("lab {qos} {index}").into_bytes();
    if size > text.len() {
        text.push(b' ');
        text.resize(size, b'.');
    }
    text
}

/// The (QoS, index) a lab payload carries.
pub(crate) fn parse_payload(payload: &[u8]) -> Option<(u8, usize)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut words = text.split(' ');
    if words.next()? != "lab" {
        return None;
    }
    let qos = words.next()?.parse().ok()?;
    let index = words.next()?.parse().ok()?;
    Some((qos, index))
}

/// Nearest-rank percentile of sorted values (as the flows summary uses).
fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

// ------------------------------------------------------------------ view

/// What the lab view asks the app to do after the frame.
#[derive(Clone, Debug, PartialEq)]
pub enum QosLabAction {
    /// Start a run: `QosLab::start(conn, n, payload_size, QosLab::fresh_topic())`
    /// and send the commands to the worker.
    Run { n: usize, payload_size: usize },
    /// Stop the run: `QosLab::stop()` and send its commands.
    Stop,
    /// Start a failure run: `QosLab::start_failure(..)` with the
    /// connection's profile (and the sandbox, on the sandbox side).
    RunFailure {
        step: CutStep,
        side: FaultSide,
        payload_size: usize,
    },
    /// Show the failure run's publisher or subscriber in the Timeline tab,
    /// scrolled to the packet `seq` of its log when given.
    ShowInTimeline { client: LabClient, seq: Option<Seq> },
}

/// Height of one arrow in the mini sequence diagrams.
const ARROW_H: f32 = 24.0;
/// Arrow colours: our publish leg and the broker's delivery leg.
const PUBLISH_RGB: Color32 = Color32::from_rgb(0x1f, 0x77, 0xb4);
const DELIVERY_RGB: Color32 = Color32::from_rgb(0x2c, 0xa0, 0x2c);

/// The lab's view state: the settings of the next run.
#[derive(Debug)]
pub struct QosLabView {
    pub n: usize,
    pub payload_size: usize,
    /// Where the next run cuts the connection ("No failure": the cost run).
    pub step: CutStep,
    pub side: FaultSide,
    /// The connection is the sandbox's, running: the sandbox side can cut.
    pub sandbox_available: bool,
}

impl Default for QosLabView {
    fn default() -> Self {
        QosLabView {
            n: 20,
            payload_size: 32,
            step: CutStep::None,
            side: FaultSide::Client,
            sandbox_available: false,
        }
    }
}

impl QosLabView {
    pub fn new() -> QosLabView {
        QosLabView::default()
    }

    /// Draws the lab. `lab` is the last run (if any), `connected` whether the
    /// connection it would run on is up.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        lab: Option<&QosLab>,
        connected: bool,
    ) -> Option<QosLabAction> {
        let mut action = None;
        let running = lab.is_some_and(QosLab::is_running);
        ui.horizontal(|ui| {
            let reps = ui.label("Repetitions");
            ui.add(egui::DragValue::new(&mut self.n).range(REPETITIONS))
                .labelled_by(reps.id)
                .on_hover_text("Messages published at each QoS level");
            let size = ui.label("Payload size");
            ui.add(
                egui::DragValue::new(&mut self.payload_size)
                    .range(PAYLOAD_SIZES)
                    .suffix(" B"),
            )
            .labelled_by(size.id);
            if running {
                if ui.button("Stop").clicked() {
                    action = Some(QosLabAction::Stop);
                }
            } else if ui
                .add_enabled(connected, egui::Button::new("Run QoS lab"))
                .on_hover_text(if self.step == CutStep::None {
                    "Publish the payload N times at QoS 0, 1 and 2 to a lab topic this \
                     connection subscribes to at QoS 2"
                } else {
                    "Publish one message at QoS 0, 1 and 2 from a lab publisher that keeps \
                     its session, cut its connection at the chosen step, and count at a \
                     separate subscriber what arrived"
                })
                .clicked()
            {
                action = Some(if self.step == CutStep::None {
                    QosLabAction::Run {
                        n: self.n,
                        payload_size: self.payload_size,
                    }
                } else {
                    QosLabAction::RunFailure {
                        step: self.step,
                        side: self.side,
                        payload_size: self.payload_size,
                    }
                });
            }
        });
        self.failure_controls_ui(ui, running);
        if !connected && !running {
            ui.label(
                RichText::new("Connect to a broker to run the QoS lab.")
                    .color(ui.visuals().weak_text_color()),
            );
        }
        let Some(lab) = lab else {
            return action;
        };
        if let Some(why) = lab.failure_error() {
            ui.colored_label(ui.visuals().error_fg_color, why);
            return action;
        }
        if let Some(run) = lab.failure() {
            return super::qos_fault::failure_ui(ui, run).or(action);
        }
        status_ui(ui, lab);
        let rows = lab.results();
        ui.add_space(4.0);
        table_ui(ui, &rows);
        ui.add_space(8.0);
        ui.columns(rows.len().max(1), |columns| {
            for (ui, row) in columns.iter_mut().zip(&rows) {
                exchange_ui(ui, row);
            }
        });
        action
    }
}

impl QosLabView {
    /// The failure chooser: the step to cut at and where the cut is made.
    fn failure_controls_ui(&mut self, ui: &mut egui::Ui, running: bool) {
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label("Cut the connection:").on_hover_text(
                    "What each QoS level buys: the connection dies at this step of the \
                         handshake, and a separate subscriber counts what arrived",
                );
                for step in CutStep::ALL {
                    ui.selectable_value(&mut self.step, step, step.label());
                }
            });
            if self.step == CutStep::None {
                return;
            }
            if !self.sandbox_available {
                self.side = FaultSide::Client;
            }
            ui.horizontal_wrapped(|ui| {
                ui.label("Made on the");
                ui.selectable_value(&mut self.side, FaultSide::Client, FaultSide::Client.label())
                    .on_hover_text(
                        "A relay between the lab's publisher and the broker drops the packet in \
                     flight and closes both sides (any broker, MQTT over TCP)",
                    );
                ui.add_enabled_ui(self.sandbox_available, |ui| {
                    ui.selectable_value(
                        &mut self.side,
                        FaultSide::Sandbox,
                        FaultSide::Sandbox.label(),
                    )
                    .on_hover_text(
                        "The sandbox broker drops the packet itself and closes the publisher's \
                         connection (its log says so)",
                    )
                    .on_disabled_hover_text("Connect to the sandbox broker to cut on its side");
                });
            });
        });
    }
}

fn status_ui(ui: &mut egui::Ui, lab: &QosLab) {
    let (delivered, total) = lab.progress();
    ui.horizontal(|ui| {
        ui.label(format!("{delivered} / {total} delivered"));
        match lab.status() {
            LabStatus::Idle => {}
            LabStatus::Subscribing => {
                ui.label(format!("subscribing to {}", lab.topic()));
            }
            LabStatus::Running => {
                ui.label(format!("running on {}", lab.topic()));
            }
            LabStatus::Done => {
                ui.label(format!("done · {}", lab.topic()));
            }
            LabStatus::Aborted(why) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("run incomplete: {why}"),
                );
            }
        }
    });
    if let Some(granted) = lab.granted()
        && granted != Qos::ExactlyOnce
    {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "The broker granted only {granted} for the lab topic: deliveries are capped at it."
            ),
        );
    }
}

fn table_ui(ui: &mut egui::Ui, rows: &[LabRow]) {
    let dash = || "-".to_string();
    let spread = |s: Option<Spread>| s.map_or_else(dash, |s| s.to_string());
    let rtt = |us: Option<u64>| us.map_or_else(dash, format_relative);
    egui::Grid::new("qos_lab_table")
        .num_columns(8)
        .striped(true)
        .spacing(vec2(16.0, 4.0))
        .show(ui, |ui| {
            for title in [
                "QoS",
                "publish leg packets",
                "delivery leg packets",
                "packets per message",
                "bytes (publish + delivery)",
                "median RTT",
                "p99 RTT",
                "done",
            ] {
                ui.strong(title);
            }
            ui.end_row();
            for row in rows {
                ui.label(row.qos.to_string());
                ui.label(spread(row.publish_packets));
                ui.label(spread(row.delivery_packets));
                let total = match (row.publish_packets, row.delivery_packets) {
                    (Some(p), Some(d)) => Spread {
                        min: p.min + d.min,
                        max: p.max + d.max,
                    }
                    .to_string(),
                    _ => dash(),
                };
                ui.label(total);
                let bytes = match (row.publish_bytes, row.delivery_bytes) {
                    (Some(p), Some(d)) => format!("{p} + {d}"),
                    _ => dash(),
                };
                ui.label(bytes);
                ui.label(rtt(row.median_rtt_us));
                ui.label(rtt(row.p99_rtt_us));
                let mut done = format!("{}/{}", row.completed, row.requested);
                if row.extra_deliveries > 0 {
                    done.push_str(&format!(" (+{} duplicates)", row.extra_deliveries));
                }
                if row.incomplete {
                    ui.colored_label(ui.visuals().error_fg_color, format!("{done} incomplete"));
                } else {
                    ui.label(done);
                }
                ui.end_row();
            }
        });
}

/// A small sequence diagram of a level's representative exchange.
fn exchange_ui(ui: &mut egui::Ui, row: &LabRow) {
    let title = match row.representative_rtt_us {
        Some(rtt) => format!(
            "QoS {}: {} packets, RTT {}",
            row.qos,
            row.representative.len(),
            format_relative(rtt)
        ),
        None => format!("QoS {}: no complete exchange yet", row.qos),
    };
    ui.strong(title);
    if row.representative.is_empty() {
        return;
    }
    let (title_rect, _) = ui.allocate_exact_size(vec2(ui.available_width(), 16.0), Sense::hover());
    let (client_x, broker_x) = mini_lanes(title_rect);
    for (x, name) in [(client_x, "Client"), (broker_x, "Broker")] {
        ui.place(
            egui::Rect::from_center_size(pos2(x, title_rect.center().y), vec2(60.0, 16.0)),
            Label::new(RichText::new(name).size(11.0).strong()),
        );
    }
    let height = row.representative.len() as f32 * ARROW_H + 6.0;
    let (rect, _) = ui.allocate_exact_size(vec2(ui.available_width(), height), Sense::hover());
    let (client_x, broker_x) = mini_lanes(rect);
    let lane_stroke = Stroke::new(1.0, ui.visuals().weak_text_color());
    for x in [client_x, broker_x] {
        ui.painter()
            .line_segment([pos2(x, rect.top()), pos2(x, rect.bottom())], lane_stroke);
    }
    for (k, packet) in row.representative.iter().enumerate() {
        let top = rect.top() + k as f32 * ARROW_H;
        let y = top + ARROW_H - 5.0;
        let colour = match packet.side {
            Side::Ours => PUBLISH_RGB,
            Side::Theirs => DELIVERY_RGB,
        };
        let (from, to) = match packet.record.dir {
            Direction::Out => (client_x, broker_x),
            Direction::In => (broker_x, client_x),
        };
        let head = if to > from { -7.0 } else { 7.0 };
        ui.painter().line_segment(
            [pos2(from, y), pos2(to + head, y)],
            Stroke::new(1.5, colour),
        );
        ui.painter().add(Shape::convex_polygon(
            vec![
                pos2(to, y),
                pos2(to + head, y - 3.5),
                pos2(to + head, y + 3.5),
            ],
            colour,
            Stroke::NONE,
        ));
        let label_rect =
            egui::Rect::from_x_y_ranges((client_x + 4.0)..=(broker_x - 4.0), top..=(y - 2.0));
        ui.place(
            label_rect,
            Label::new(
                RichText::new(packet_label(&packet.record))
                    .color(colour)
                    .size(11.0),
            )
            .selectable(false)
            .truncate(),
        );
    }
    let legend = |ui: &mut egui::Ui, colour: Color32, text: &str| {
        ui.label(RichText::new(text).color(colour).size(11.0));
    };
    ui.horizontal(|ui| {
        legend(ui, PUBLISH_RGB, "publish leg");
        legend(ui, DELIVERY_RGB, "delivery leg");
    });
}

/// x of the client and broker lanes of a mini diagram.
fn mini_lanes(rect: egui::Rect) -> (f32, f32) {
    let client_x = rect.left() + 24.0;
    let broker_x = (rect.right() - 24.0).max(client_x + 120.0);
    (client_x, broker_x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::{PacketDetail, PacketKind, publish_wire_size};
    use crate::mqtt::Message;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use std::time::SystemTime;

    const TOPIC: &str = "mqscope/lab/test";

    /// Plays the broker and the worker for a lab: answers each publish the
    /// lab asks for with the events a real run produces.
    struct Sim {
        lab: QosLab,
        t_us: u64,
        next_pkid: u16,
        broker_pkid: u16,
        /// Where in each exchange to slip in a QoS 0 copy of the message, as
        /// a `#` subscription at QoS 0 would bring if the broker sent one.
        wildcard_copy_at: Option<usize>,
    }

    fn rec(t_us: u64, dir: Direction, kind: PacketKind, pkid: Option<u16>) -> PacketRecord {
        PacketRecord {
            seq: 0,
            t_us,
            dir,
            kind,
            pkid,
            qos: None,
            bytes: 4,
            detail: PacketDetail::default(),
        }
    }

    fn publish_rec(
        t_us: u64,
        dir: Direction,
        qos: u8,
        pkid: Option<u16>,
        payload_len: usize,
    ) -> PacketRecord {
        PacketRecord {
            qos: Some(qos),
            bytes: publish_wire_size(TOPIC.len(), qos, payload_len),
            detail: PacketDetail {
                topic: Some(TOPIC.into()),
                retain: Some(false),
                dup: Some(false),
                payload_bytes: Some(payload_len),
                ..PacketDetail::default()
            },
            ..rec(t_us, dir, PacketKind::Publish, pkid)
        }
    }

    impl Sim {
        /// A lab that has sent its subscription and got the SUBACK; returns
        /// the first publish it asks for.
        fn started(n: usize, payload_size: usize) -> (Sim, Vec<Command>) {
            let mut lab = QosLab::new(1);
            let first = lab.start(1, n, payload_size, TOPIC.into());
            assert!(matches!(
                &first[..],
                [Command::Subscribe { sub, .. }] if sub.filter == TOPIC && sub.qos == Qos::ExactlyOnce
            ));
            let cmds = lab.on_event(&EventKind::Subscribed {
                filter: TOPIC.into(),
                granted: Some(Qos::ExactlyOnce),
                reason: None,
            });
            let sim = Sim {
                lab,
                t_us: 1_000,
                next_pkid: 1,
                broker_pkid: 1,
                wildcard_copy_at: None,
            };
            (sim, cmds)
        }

        fn feed(&mut self, out: &mut Vec<Command>, event: EventKind) {
            out.extend(self.lab.on_event(&event));
        }

        /// Runs the exchange of `cmd` (a Publish) with a round trip of
        /// `rtt_us`; `until` cuts it short after that many events.
        fn exchange(&mut self, cmd: &Command, rtt_us: u64, until: usize) -> Vec<Command> {
            let Command::Publish {
                token,
                payload,
                qos,
                ..
            } = cmd
            else {
                panic!("expected a publish, got {cmd:?}");
            };
            let q = qos.as_u8();
            let len = payload.len();
            let ours = (q > 0).then_some(self.next_pkid);
            let theirs = (q > 0).then_some(self.broker_pkid);
            self.next_pkid += u16::from(q > 0);
            self.broker_pkid += u16::from(q > 0);
            let t = self.t_us;
            self.t_us += 10_000;
            let message = EventKind::Message(Message {
                topic: TOPIC.into(),
                payload: bytes::Bytes::from(payload.clone()),
                qos: *qos,
                retain: false,
                dup: false,
                pkid: theirs.unwrap_or(0),
                received: SystemTime::UNIX_EPOCH,
                ..Default::default()
            });
            let done = |outcome| EventKind::Published {
                token: *token,
                outcome,
            };
            use Direction::{In, Out};
            use PacketKind as K;
            let events: Vec<EventKind> = match q {
                0 => vec![
                    EventKind::Packet(publish_rec(t, Out, 0, None, len)),
                    done(PublishOutcome::Sent),
                    EventKind::Packet(publish_rec(t + rtt_us, In, 0, None, len)),
                    message,
                ],
                1 => vec![
                    EventKind::Packet(publish_rec(t, Out, 1, ours, len)),
                    EventKind::Packet(publish_rec(t + rtt_us, In, 1, theirs, len)),
                    message,
                    EventKind::Packet(rec(t + rtt_us + 5, Out, K::Puback, theirs)),
                    EventKind::Packet(rec(t + rtt_us + 10, In, K::Puback, ours)),
                    done(PublishOutcome::Acknowledged),
                ],
                _ => vec![
                    EventKind::Packet(publish_rec(t, Out, 2, ours, len)),
                    EventKind::Packet(rec(t + 20, In, K::Pubrec, ours)),
                    EventKind::Packet(rec(t + 30, Out, K::Pubrel, ours)),
                    EventKind::Packet(publish_rec(t + rtt_us, In, 2, theirs, len)),
                    message,
                    EventKind::Packet(rec(t + rtt_us + 5, Out, K::Pubrec, theirs)),
                    EventKind::Packet(rec(t + rtt_us + 10, In, K::Pubcomp, ours)),
                    done(PublishOutcome::Acknowledged),
                    EventKind::Packet(rec(t + rtt_us + 20, In, K::Pubrel, theirs)),
                    EventKind::Packet(rec(t + rtt_us + 25, Out, K::Pubcomp, theirs)),
                ],
            };
            let mut events = events;
            if let Some(at) = self.wildcard_copy_at {
                let copy = vec![
                    EventKind::Packet(publish_rec(t + 1, In, 0, None, len)),
                    EventKind::Message(Message {
                        topic: TOPIC.into(),
                        payload: bytes::Bytes::from(payload.clone()),
                        qos: Qos::AtMostOnce,
                        retain: false,
                        dup: false,
                        pkid: 0,
                        received: SystemTime::UNIX_EPOCH,
                        ..Default::default()
                    }),
                ];
                events.splice(at.min(events.len())..at.min(events.len()), copy);
            }
            let mut out = Vec::new();
            for event in events.into_iter().take(until) {
                self.feed(&mut out, event);
            }
            out
        }

        /// Answers every publish until the lab stops asking; the round trip
        /// of message i at QoS q is `100 * (q + 1) + 50 * i` µs.
        fn run_all(&mut self, mut cmds: Vec<Command>) -> Vec<Command> {
            let mut rest = Vec::new();
            while let Some(cmd) = cmds.pop() {
                if let Command::Publish { payload, qos, .. } = &cmd {
                    let (_, i) = parse_payload(payload).expect("lab payload");
                    let rtt = 100 * (u64::from(qos.as_u8()) + 1) + 50 * i as u64;
                    cmds.extend(self.exchange(&cmd, rtt, usize::MAX));
                } else {
                    rest.push(cmd);
                }
            }
            rest
        }
    }

    /// A finished synthetic run of 3 messages per level with 10-byte payloads.
    fn finished_lab() -> QosLab {
        let (mut sim, cmds) = Sim::started(3, 10);
        let rest = sim.run_all(cmds);
        assert!(
            matches!(&rest[..], [Command::Unsubscribe { filter, .. }] if filter == TOPIC),
            "{rest:?}"
        );
        sim.lab
    }

    #[test]
    fn payload_carries_qos_and_index_at_the_chosen_size() {
        let p = payload(2, 17, 20);
        assert_eq!(p.len(), 20);
        assert_eq!(&p[..10], b"lab 2 17 .");
        assert_eq!(parse_payload(&p), Some((2, 17)));
        assert_eq!(payload(1, 999, 3), b"lab 1 999".to_vec());
        assert_eq!(parse_payload(b"hello"), None);
    }

    #[test]
    fn run_publishes_one_at_a_time_with_distinct_tokens_in_qos_order() {
        let (mut sim, mut cmds) = Sim::started(2, 10);
        let mut seen = Vec::new();
        while let Some(cmd) = cmds.pop() {
            if let Command::Publish {
                token,
                qos,
                payload,
                topic,
                ..
            } = &cmd
            {
                assert!(cmds.is_empty(), "only one publish in flight");
                assert_eq!(topic, TOPIC);
                assert!(QosLab::owns_token(*token));
                seen.push((*token, qos.as_u8(), parse_payload(payload)));
                cmds = sim.exchange(&cmd, 300, usize::MAX);
            }
        }
        let order: Vec<(u8, Option<(u8, usize)>)> = seen.iter().map(|s| (s.1, s.2)).collect();
        assert_eq!(
            order,
            vec![
                (0, Some((0, 0))),
                (0, Some((0, 1))),
                (1, Some((1, 0))),
                (1, Some((1, 1))),
                (2, Some((2, 0))),
                (2, Some((2, 1))),
            ]
        );
        let mut tokens: Vec<u64> = seen.iter().map(|s| s.0).collect();
        tokens.dedup();
        assert_eq!(tokens.len(), 6);
        assert!(sim.lab.is_done());
        assert_eq!(sim.lab.progress(), (6, 6));
    }

    #[test]
    fn results_count_packets_bytes_and_latency_per_level() {
        let lab = finished_lab();
        assert_eq!(lab.status(), &LabStatus::Done);
        let rows = lab.results();
        let packets: Vec<(Option<usize>, Option<usize>)> = rows
            .iter()
            .map(|r| {
                (
                    r.publish_packets.and_then(Spread::exact),
                    r.delivery_packets.and_then(Spread::exact),
                )
            })
            .collect();
        assert_eq!(
            packets,
            vec![(Some(1), Some(1)), (Some(2), Some(2)), (Some(4), Some(4))]
        );
        let p = |q| publish_wire_size(TOPIC.len(), q, 10);
        let bytes: Vec<Option<usize>> = rows
            .iter()
            .map(|r| r.publish_bytes.and_then(Spread::exact))
            .collect();
        assert_eq!(bytes, vec![Some(p(0)), Some(p(1) + 4), Some(p(2) + 12)]);
        for row in &rows {
            assert_eq!((row.completed, row.delivered, row.requested), (3, 3, 3));
            assert!(!row.incomplete);
            let base = 100 * (u64::from(row.qos) + 1);
            assert_eq!(row.median_rtt_us, Some(base + 50));
            assert_eq!(row.p99_rtt_us, Some(base + 100));
            // The median exchange, both legs, in wire order.
            assert_eq!(row.representative_rtt_us, Some(base + 50));
            let total = 2 * (1 << row.qos);
            assert_eq!(row.representative.len(), total);
            assert_eq!(row.representative[0].side, Side::Ours);
            assert_eq!(row.representative[0].record.kind, PacketKind::Publish);
        }
        let q2: Vec<(Side, PacketKind, Direction)> = rows[2]
            .representative
            .iter()
            .map(|p| (p.side, p.record.kind, p.record.dir))
            .collect();
        use Direction::{In, Out};
        use PacketKind as K;
        assert_eq!(
            q2,
            vec![
                (Side::Ours, K::Publish, Out),
                (Side::Ours, K::Pubrec, In),
                (Side::Ours, K::Pubrel, Out),
                (Side::Theirs, K::Publish, In),
                (Side::Theirs, K::Pubrec, Out),
                (Side::Ours, K::Pubcomp, In),
                (Side::Theirs, K::Pubrel, In),
                (Side::Theirs, K::Pubcomp, Out),
            ]
        );
    }

    #[test]
    fn a_copy_from_an_overlapping_subscription_is_counted_apart() {
        let (mut sim, cmds) = Sim::started(2, 10);
        // The QoS 0 copy arrives right after our PUBLISH, before the lab's.
        sim.wildcard_copy_at = Some(1);
        let rest = sim.run_all(cmds);
        assert_eq!(rest.len(), 1, "{rest:?}");
        let rows = sim.lab.results();
        let delivery: Vec<Option<usize>> = rows
            .iter()
            .map(|r| r.delivery_packets.and_then(Spread::exact))
            .collect();
        assert_eq!(delivery, vec![Some(1), Some(2), Some(4)]);
        // At QoS 0 the first copy is as good as the other: one of the two counts.
        let extra: Vec<usize> = rows.iter().map(|r| r.extra_deliveries).collect();
        assert_eq!(extra, vec![2, 2, 2]);
        assert_eq!(sim.lab.progress(), (6, 6));
    }

    #[test]
    fn disconnect_mid_run_marks_the_unfinished_levels_incomplete() {
        let (mut sim, mut cmds) = Sim::started(2, 10);
        // QoS 0 completes; the first QoS 1 message gets only its PUBLISH out.
        for _ in 0..2 {
            let cmd = cmds.pop().expect("a publish");
            cmds = sim.exchange(&cmd, 200, usize::MAX);
        }
        let cmd = cmds.pop().expect("the first QoS 1 publish");
        assert!(sim.exchange(&cmd, 200, 1).is_empty());
        let after = sim
            .lab
            .on_event(&EventKind::Status(ConnStatus::Reconnecting {
                attempt: 1,
                retry_in: Duration::from_secs(1),
                reason: "connection reset".into(),
            }));
        assert!(matches!(&after[..], [Command::Unsubscribe { filter, .. }] if filter == TOPIC));
        assert!(sim.lab.is_done());
        let LabStatus::Aborted(why) = sim.lab.status() else {
            panic!("expected an aborted run: {:?}", sim.lab.status());
        };
        assert!(why.contains("connection reset"), "{why}");
        let rows = sim.lab.results();
        let state: Vec<(usize, bool)> = rows.iter().map(|r| (r.completed, r.incomplete)).collect();
        assert_eq!(state, vec![(2, false), (0, true), (0, true)]);
        // Late events of the dead run change nothing.
        assert!(sim.exchange(&cmd, 200, usize::MAX).is_empty());
        assert_eq!(sim.lab.results()[1].completed, 0);
    }

    #[test]
    fn a_step_without_answer_ends_the_run_after_the_timeout() {
        let (mut sim, cmds) = Sim::started(1, 10);
        let cmd = &cmds[0];
        sim.exchange(cmd, 200, 1);
        assert!(sim.lab.tick(Instant::now()).is_empty());
        let later = Instant::now() + STEP_TIMEOUT + Duration::from_secs(1);
        let after = sim.lab.tick(later);
        assert_eq!(after.len(), 1);
        assert!(
            matches!(sim.lab.status(), LabStatus::Aborted(w) if w.contains("message 1 at QoS 0"))
        );
    }

    #[test]
    fn a_refused_subscription_ends_the_run() {
        let mut lab = QosLab::new(4);
        lab.start(4, 5, 10, TOPIC.into());
        lab.on_event(&EventKind::Subscribed {
            filter: TOPIC.into(),
            granted: None,
            reason: None,
        });
        assert!(matches!(lab.status(), LabStatus::Aborted(w) if w.contains("refused")));
        assert!(lab.results().iter().all(|r| r.incomplete));
    }

    fn harness_for(lab: &QosLab, connected: bool) -> Harness<'_, (QosLabView, Vec<QosLabAction>)> {
        Harness::builder()
            .with_size(vec2(1000.0, 440.0))
            .build_ui_state(
                move |ui, state: &mut (QosLabView, Vec<QosLabAction>)| {
                    if let Some(a) = state.0.ui(ui, Some(lab), connected) {
                        state.1.push(a);
                    }
                },
                (QosLabView::new(), Vec::new()),
            )
    }

    #[test]
    fn table_shows_three_levels_with_their_packet_counts() {
        let lab = finished_lab();
        let mut harness = harness_for(&lab, true);
        harness.run();
        for title in [
            "QoS",
            "publish leg packets",
            "delivery leg packets",
            "bytes (publish + delivery)",
            "median RTT",
            "p99 RTT",
            "done",
        ] {
            harness.get_by_label(title);
        }
        harness.get_by_label("9 / 9 delivered");
        assert_eq!(harness.query_all_by_label("3/3").count(), 3);
        // Rows "QoS | publish leg | delivery leg | per message": 0|1|1|2,
        // 1|2|2|4, 2|4|4|8; so each number appears this many times.
        for (text, times) in [("0", 1), ("1", 3), ("2", 4), ("4", 3), ("8", 1)] {
            assert_eq!(harness.query_all_by_label(text).count(), times, "{text}");
        }
        let p = |q| publish_wire_size(TOPIC.len(), q, 10);
        harness.get_by_label(&format!("{} + {}", p(0), p(0)));
        harness.get_by_label(&format!("{} + {}", p(2) + 12, p(2) + 12));
        harness.get_by_label("0.350 ms");
        // The QoS 2 mini diagram has all eight arrows, labelled like the timeline.
        harness.get_by_label_contains("QoS 2: 8 packets");
        assert_eq!(
            harness.query_all_by_label_contains("PUBCOMP id=").count(),
            2
        );
        harness.get_by_label("Run QoS lab").click();
        harness.run();
        assert_eq!(
            harness.state().1,
            vec![QosLabAction::Run {
                n: 20,
                payload_size: 32
            }]
        );
    }

    #[test]
    fn run_button_is_disabled_with_a_hint_when_not_connected() {
        let lab = QosLab::new(1);
        let mut harness = harness_for(&lab, false);
        harness.run();
        harness.get_by_label("Connect to a broker to run the QoS lab.");
        harness.get_by_label("Run QoS lab").click();
        harness.run();
        assert!(harness.state().1.is_empty());
    }

    #[test]
    fn choosing_a_cut_step_makes_run_start_a_failure_run() {
        let lab = QosLab::new(1);
        let mut harness = harness_for(&lab, true);
        harness.run();
        // "No failure" is the cost run; the side row appears with a step.
        assert_eq!(harness.query_all_by_label("client side (relay)").count(), 0);
        harness.get_by_label("after PUBREL").click();
        harness.run();
        // Not the sandbox's connection: its side cannot be chosen.
        harness.get_by_label("sandbox side").click();
        harness.run();
        harness.get_by_label("Run QoS lab").click();
        harness.run();
        assert_eq!(
            harness.state().1,
            vec![QosLabAction::RunFailure {
                step: CutStep::AfterPubrel,
                side: FaultSide::Client,
                payload_size: 32,
            }]
        );
    }

    #[test]
    fn a_failure_run_that_cannot_start_says_why_in_the_lab() {
        let mut lab = QosLab::new(1);
        let profile = Profile {
            transport: crate::profile::TransportKind::Tls,
            ..Profile::default()
        };
        let err = lab
            .start_failure(1, &profile, CutStep::AfterAck, FaultSide::Client, None, 32)
            .expect_err("no relay over TLS");
        let mut harness = harness_for(&lab, true);
        harness.run();
        harness.get_by_label(&err);
        assert!(lab.is_done() && !lab.is_running());
    }

    #[test]
    fn aborted_run_says_which_levels_are_incomplete() {
        let (mut sim, cmds) = Sim::started(2, 10);
        let cmd = cmds[0].clone_publish();
        sim.exchange(&cmd, 200, usize::MAX);
        sim.lab
            .on_event(&EventKind::Status(ConnStatus::Disconnected {
                reason: Some("broker went away".into()),
            }));
        let mut harness = harness_for(&sim.lab, false);
        harness.run();
        harness.get_by_label("run incomplete: the connection closed: broker went away");
        harness.get_by_label("1 / 6 delivered");
        assert_eq!(harness.query_all_by_label("0/2 incomplete").count(), 2);
        harness.get_by_label("1/2 incomplete");
    }

    trait ClonePublish {
        fn clone_publish(&self) -> Command;
    }

    impl ClonePublish for Command {
        fn clone_publish(&self) -> Command {
            let Command::Publish {
                conn,
                token,
                topic,
                payload,
                qos,
                retain,
                props: None,
            } = self
            else {
                panic!("not a publish: {self:?}");
            };
            Command::Publish {
                conn: *conn,
                token: *token,
                topic: topic.clone(),
                payload: payload.clone(),
                qos: *qos,
                retain: *retain,
                props: None,
            }
        }
    }

    #[test]
    fn qos_lab_table_snapshot() {
        let lab = finished_lab();
        let mut harness = harness_for(&lab, true);
        harness.run();
        harness.snapshot("qos_lab_table");
    }
}
