//! One connection as the window knows it: a GUI-free [`ConnectionState`]
//! (status, log, Store, PacketLog, subscriptions, plot series, QoS lab) fed
//! by [`ConnectionState::apply`], and beside it the view state of its panels
//! ([`ConnViews`]: tree expansion and selection, inspector, timeline filters,
//! publish form), so switching to another connection and back finds
//! everything as it was.
//!
//! A received message travels one way: socket → worker → channel →
//! `ConnectionState::apply` → the views, which only read it.

use super::inspector::InspectorView;
use super::plots::Plots;
use super::publish_panel::PublishPanel;
use super::qos_fault::LabClient;
use super::qos_lab::{QosLab, QosLabView};
use super::subscriptions::SubState;
use super::timeline::TimelineView;
use super::tree_view::TreeView;
use crate::model::flows::PacketLog;
use crate::model::packet::{Direction, PacketKind};
use crate::model::protocol::Properties;
use crate::model::store::{HistoryLimits, Store};
use crate::mqtt::{Command, ConnStatus, EventKind, PublishOutcome, PublishToken};
use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime};

/// Lines of the connection log kept per connection.
pub(crate) const LOG_LINES: usize = 200;

/// One line of a connection's log.
pub(crate) struct LogLine {
    pub(crate) at: SystemTime,
    pub(crate) text: String,
    pub(crate) is_error: bool,
}

/// What the window knows about one connection, without any egui.
pub(crate) struct ConnectionState {
    pub(crate) status: ConnStatus,
    /// When `status` arrived: the reconnect countdown runs from here.
    pub(crate) status_at: Instant,
    pub(crate) log: VecDeque<LogLine>,
    /// Topic tree, history and counters of this connection.
    pub(crate) store: Store,
    /// Every control packet, for the timeline.
    pub(crate) packets: PacketLog,
    /// What the broker answered per filter (only filters asked for).
    pub(crate) subs: HashMap<String, SubState>,
    /// MQTT 5: the properties of the last accepting CONNACK (limits the
    /// broker set, the client id it assigned, ...).
    pub(crate) server: Option<Box<Properties>>,
    /// The live plot series of this connection.
    pub(crate) plots: Plots,
    /// The last QoS lab run on this connection.
    pub(crate) lab: Option<QosLab>,
    /// Messages and packet records the worker dropped because the window
    /// fell behind by more than its memory budget.
    pub(crate) dropped_messages: u64,
    pub(crate) dropped_packets: u64,
    /// Requests waiting for their reply (request / response), oldest first.
    pub(crate) requests: VecDeque<PendingRequest>,
    /// Error lines written to the log since the connection was opened (the
    /// log itself keeps only the last [`LOG_LINES`]).
    pub(crate) errors: u64,
    /// Messages per second, for the connection list.
    pub(crate) rate: RateMeter,
    /// The connection's current (or last) recording to a capture file.
    pub(crate) recording: Option<crate::capture::record::RecordingStatus>,
}

/// Messages per second over the last few seconds, from samples of a
/// growing total taken when the list is drawn (at most one a second).
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

/// The window the rate is averaged over.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

impl RateMeter {
    /// Records `total` at `now` and returns the rate over the window.
    pub(crate) fn sample(&mut self, now: Instant, total: u64) -> f64 {
        let due = self.samples.back().is_none_or(|(t, _)| {
            now.saturating_duration_since(*t) >= std::time::Duration::from_secs(1)
        });
        if due {
            self.samples.push_back((now, total));
        }
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        self.rate(now, total)
    }

    /// The rate from the oldest sample kept to `total` now.
    pub(crate) fn rate(&self, now: Instant, total: u64) -> f64 {
        match self.samples.front() {
            Some((t, first)) => {
                let secs = now.saturating_duration_since(*t).as_secs_f64();
                if secs < 0.5 {
                    0.0
                } else {
                    total.saturating_sub(*first) as f64 / secs
                }
            }
            None => 0.0,
        }
    }
}

/// A request sent with a response topic and correlation data.
#[derive(Clone, Debug)]
pub(crate) struct PendingRequest {
    pub(crate) token: PublishToken,
    pub(crate) response_topic: String,
    pub(crate) correlation: bytes::Bytes,
    pub(crate) sent: Instant,
}

/// Requests remembered at most; older ones stop waiting for a reply.
const PENDING_REQUESTS: usize = 100;

/// What applying an event asks of the window besides the state change.
#[derive(Debug, Default)]
pub(crate) struct Reaction {
    /// Commands to send to the worker (the QoS lab's next steps).
    pub(crate) commands: Vec<Command>,
    /// The outcome of one of the user's publishes, for the publish panel.
    pub(crate) published: Option<(PublishToken, PublishOutcome)>,
    /// The reply to a request: its token, the round trip in µs, the payload.
    pub(crate) reply: Option<(PublishToken, u64, bytes::Bytes)>,
}

impl ConnectionState {
    pub(crate) fn new(limits: HistoryLimits) -> ConnectionState {
        ConnectionState {
            status: ConnStatus::Disconnected { reason: None },
            status_at: Instant::now(),
            log: VecDeque::new(),
            store: Store::new(limits),
            packets: PacketLog::default(),
            subs: HashMap::new(),
            server: None,
            plots: Plots::default(),
            lab: None,
            dropped_messages: 0,
            dropped_packets: 0,
            requests: VecDeque::new(),
            errors: 0,
            rate: RateMeter::default(),
            recording: None,
        }
    }

    pub(crate) fn log(&mut self, text: String, is_error: bool) {
        if is_error {
            self.errors += 1;
        }
        if self.log.len() >= LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            at: SystemTime::now(),
            text,
            is_error,
        });
    }

    /// Remembers a request so its reply is recognised.
    pub(crate) fn expect_reply(&mut self, request: PendingRequest) {
        if self.requests.len() >= PENDING_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }

    /// Connecting, connected or waiting to retry: the user can disconnect.
    pub(crate) fn is_active(&self) -> bool {
        !matches!(self.status, ConnStatus::Disconnected { .. })
    }

    /// Applies one event of this connection from the worker.
    pub(crate) fn apply(&mut self, kind: EventKind) -> Reaction {
        let mut reaction = Reaction::default();
        if let Some(lab) = self.lab.as_mut() {
            reaction.commands = lab.on_event(&kind);
            if let EventKind::Published { token, .. } = &kind
                && QosLab::owns_token(*token)
            {
                return reaction;
            }
        }
        match kind {
            EventKind::Status(status) => {
                let is_error = matches!(
                    status,
                    ConnStatus::Reconnecting { .. } | ConnStatus::Disconnected { reason: Some(_) }
                );
                if matches!(
                    status,
                    ConnStatus::Reconnecting { .. } | ConnStatus::Disconnected { .. }
                ) {
                    self.packets.connection_dropped();
                    // The broker forgets nothing we asked for, but its answers
                    // are to be given again on the next connection.
                    for state in self.subs.values_mut() {
                        *state = SubState::Pending;
                    }
                }
                self.log(
                    super::status_text(&status, std::time::Duration::ZERO),
                    is_error,
                );
                self.status = status;
                self.status_at = Instant::now();
            }
            EventKind::Message(msg) => {
                if let Some(corr) = msg.props.as_ref().and_then(|p| p.correlation_data.as_ref())
                    && let Some(i) = self
                        .requests
                        .iter()
                        .position(|r| r.correlation == corr && r.response_topic == msg.topic)
                    && let Some(r) = self.requests.remove(i)
                {
                    let rtt = r.sent.elapsed().as_micros() as u64;
                    self.log(
                        format!("Reply on {} after {:.1} ms", msg.topic, rtt as f64 / 1000.0),
                        false,
                    );
                    reaction.reply = Some((r.token, rtt, msg.payload.clone()));
                }
                self.plots.on_message(&msg);
                self.store.apply_owned(msg);
            }
            EventKind::Packet(record) => {
                if record.dir == Direction::In
                    && record.kind == PacketKind::Disconnect
                    && let Some(reason) = &record.detail.reason_text
                {
                    let why = record
                        .detail
                        .props
                        .as_ref()
                        .and_then(|p| p.reason_string.as_deref())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default();
                    self.log(format!("The broker sent DISCONNECT {reason}{why}"), true);
                }
                self.packets.push(record);
            }
            EventKind::Connack {
                session_present: _,
                props,
            } => {
                if let Some(p) = &props {
                    let rows: Vec<String> = p
                        .rows()
                        .into_iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect();
                    self.log(format!("CONNACK properties: {}", rows.join("; ")), false);
                }
                self.server = props;
            }
            EventKind::Subscribed {
                filter,
                granted,
                reason,
            } => {
                match (granted, &reason) {
                    (Some(qos), _) => {
                        self.log(format!("Subscribed to {filter} ({qos} granted)"), false)
                    }
                    (None, Some(why)) => self.log(
                        format!("The broker refused the subscription to {filter}: SUBACK {why}"),
                        true,
                    ),
                    (None, None) => self.log(
                        format!("The broker refused the subscription to {filter}"),
                        true,
                    ),
                }
                let state = match granted {
                    Some(qos) => SubState::Granted(qos),
                    None => SubState::Refused(reason),
                };
                self.subs.insert(filter, state);
            }
            EventKind::Unsubscribed { filter, reason } => {
                match reason {
                    Some(why) => {
                        self.log(format!("Unsubscribed from {filter}: UNSUBACK {why}"), false)
                    }
                    None => self.log(format!("Unsubscribed from {filter}"), false),
                }
                self.subs.remove(&filter);
            }
            EventKind::Error(text) => self.log(text, true),
            EventKind::Dropped { messages, packets } => {
                self.dropped_messages += messages;
                self.dropped_packets += packets;
                self.log(
                    format!(
                        "The window fell behind: {messages} messages and {packets} packet \
                         records were dropped (the worker's memory budget was full)"
                    ),
                    true,
                );
            }
            EventKind::Published { token, outcome } => {
                if let PublishOutcome::Failed(why) = &outcome {
                    self.log(format!("Publish #{token} failed: {why}"), true);
                }
                reaction.published = Some((token, outcome));
            }
        }
        reaction
    }

    /// Starts over with an empty tree and timeline (a user's new Connect);
    /// the plots and the log go on.
    pub(crate) fn reset(&mut self, limits: HistoryLimits) {
        self.store = Store::new(limits);
        self.packets = PacketLog::default();
        self.server = None;
        self.errors = 0;
        self.rate = RateMeter::default();
    }

    /// The last error line still in the log.
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.log
            .iter()
            .rev()
            .find(|l| l.is_error)
            .map(|l| l.text.as_str())
    }
}

/// Whose packets the Timeline tab shows: the connection's own, or those of
/// one of its QoS lab failure run's connections (each its own client, so
/// each its own log and flows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TimelineSource {
    #[default]
    Own,
    Lab(LabClient),
}

/// The view state of one connection's panels.
#[derive(Default)]
pub(crate) struct ConnViews {
    pub(crate) tree: TreeView,
    pub(crate) timeline: TimelineView,
    pub(crate) timeline_source: TimelineSource,
    /// The Timeline of the failure run's publisher and subscriber.
    pub(crate) lab_timelines: LabTimelines,
    pub(crate) inspector: InspectorView,
    pub(crate) lab_view: QosLabView,
    pub(crate) publish: PublishPanel,
}

/// The Timeline views of a failure run's two connections.
#[derive(Default)]
pub(crate) struct LabTimelines {
    pub(crate) publisher: TimelineView,
    pub(crate) subscriber: TimelineView,
}

impl LabTimelines {
    pub(crate) fn get_mut(&mut self, client: LabClient) -> &mut TimelineView {
        match client {
            LabClient::Publisher => &mut self.publisher,
            LabClient::Subscriber => &mut self.subscriber,
        }
    }
}

/// A connection: its state and its views, side by side so a view can read
/// the state while its own view state changes.
pub(crate) struct Connection {
    pub(crate) state: ConnectionState,
    pub(crate) views: ConnViews,
}

impl Connection {
    pub(crate) fn new(limits: HistoryLimits) -> Connection {
        Connection {
            state: ConnectionState::new(limits),
            views: ConnViews::default(),
        }
    }

    /// Applies one event for this connection (its own, or one of its QoS
    /// lab's connections); returns the commands it asks the worker for.
    pub(crate) fn apply(&mut self, item: ConnItem) -> Vec<Command> {
        match item {
            ConnItem::Lab(from, kind) => self
                .state
                .lab
                .as_mut()
                .map(|lab| lab.on_lab_event(from, &kind))
                .unwrap_or_default(),
            ConnItem::Own(kind) => {
                let reaction = self.state.apply(kind);
                if let Some((token, outcome)) = &reaction.published {
                    self.views.publish.record_outcome(*token, outcome);
                }
                if let Some((token, rtt, payload)) = &reaction.reply {
                    self.views.publish.record_reply(*token, *rtt, payload);
                }
                reaction.commands
            }
        }
    }
}

/// One event for a connection, in the order the worker sent them.
pub(crate) enum ConnItem {
    Own(EventKind),
    /// An event of one of the connection's QoS lab failure run connections
    /// (its publisher or its subscriber, by id).
    Lab(crate::mqtt::ConnectionId, EventKind),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::PacketRecord;
    use crate::model::protocol::{Message, Qos};
    use std::time::Duration;

    fn state() -> ConnectionState {
        ConnectionState::new(HistoryLimits::default())
    }

    #[test]
    fn a_message_lands_in_the_store_and_is_counted() {
        let mut s = state();
        s.apply(EventKind::Message(Message {
            topic: "plant/line1/temp".into(),
            payload: bytes::Bytes::from_static(b"21.5"),
            ..Message::default()
        }));
        assert_eq!(s.store.total_messages(), 1);
        assert_eq!(s.store.topic_count(), 1);
    }

    #[test]
    fn a_dropped_connection_marks_waiting_flows_and_pending_subscriptions() {
        let mut s = state();
        let mut publish = PacketRecord::new(0, Direction::Out, PacketKind::Publish, Some(1), 14);
        publish.qos = Some(1);
        s.apply(EventKind::Packet(publish));
        s.subs
            .insert("a/#".into(), SubState::Granted(Qos::AtLeastOnce));
        s.apply(EventKind::Status(ConnStatus::Reconnecting {
            attempt: 1,
            retry_in: Duration::from_secs(1),
            reason: "the broker closed the connection".into(),
        }));
        assert!(s.packets.flows().all(|f| f.is_incomplete()));
        assert_eq!(s.subs.get("a/#"), Some(&SubState::Pending));
        assert!(s.log.back().is_some_and(|l| l.is_error));
    }

    #[test]
    fn a_refused_subscription_keeps_its_reason() {
        let mut s = state();
        s.apply(EventKind::Subscribed {
            filter: "secret/#".into(),
            granted: None,
            reason: Some("0x87 Not authorized".into()),
        });
        assert_eq!(
            s.subs.get("secret/#"),
            Some(&SubState::Refused(Some("0x87 Not authorized".into())))
        );
        assert!(
            s.log
                .back()
                .is_some_and(|l| l.text.contains("0x87 Not authorized"))
        );
    }

    #[test]
    fn a_server_disconnect_is_logged_with_its_reason() {
        let mut s = state();
        let mut r = PacketRecord::new(0, Direction::In, PacketKind::Disconnect, None, 4);
        r.detail.set_reason(PacketKind::Disconnect, 0x8E);
        s.apply(EventKind::Packet(r));
        assert!(
            s.log
                .back()
                .is_some_and(|l| l.text.contains("0x8E Session taken over"))
        );
    }

    #[test]
    fn a_reply_with_the_same_correlation_data_answers_its_request() {
        let mut s = state();
        s.expect_reply(PendingRequest {
            token: 9,
            response_topic: "vehicles/1/response".into(),
            correlation: bytes::Bytes::from_static(b"req-1"),
            sent: Instant::now(),
        });
        let reply = |corr: &'static [u8]| {
            EventKind::Message(Message {
                topic: "vehicles/1/response".into(),
                payload: bytes::Bytes::from_static(b"ok"),
                props: Properties {
                    correlation_data: Some(bytes::Bytes::from_static(corr)),
                    ..Properties::default()
                }
                .boxed(),
                ..Message::default()
            })
        };
        assert!(
            s.apply(reply(b"req-2")).reply.is_none(),
            "another request's reply"
        );
        let r = s.apply(reply(b"req-1")).reply;
        assert_eq!(
            r.map(|(t, _, p)| (t, p)),
            Some((9, bytes::Bytes::from_static(b"ok")))
        );
        assert!(s.requests.is_empty());
        assert_eq!(s.store.total_messages(), 2, "replies are messages too");
    }

    #[test]
    fn drops_are_counted_and_logged() {
        let mut s = state();
        s.apply(EventKind::Dropped {
            messages: 10,
            packets: 12,
        });
        s.apply(EventKind::Dropped {
            messages: 5,
            packets: 0,
        });
        assert_eq!((s.dropped_messages, s.dropped_packets), (15, 12));
        assert!(s.log.back().is_some_and(|l| l.is_error));
    }

    #[test]
    fn connack_properties_are_kept_and_logged() {
        let mut s = state();
        s.apply(EventKind::Connack {
            session_present: false,
            props: Properties {
                assigned_client_identifier: Some("auto-1234".into()),
                receive_maximum: Some(20),
                ..Properties::default()
            }
            .boxed(),
        });
        assert_eq!(
            s.server
                .as_ref()
                .and_then(|p| p.assigned_client_identifier.as_deref()),
            Some("auto-1234")
        );
        assert!(s.log.back().is_some_and(|l| l.text.contains("auto-1234")));
    }

    #[test]
    fn publish_outcomes_go_to_the_views_and_failures_to_the_log() {
        let mut s = state();
        let r = s.apply(EventKind::Published {
            token: 3,
            outcome: PublishOutcome::Failed("PUBACK 0x87 Not authorized".into()),
        });
        assert_eq!(
            r.published,
            Some((
                3,
                PublishOutcome::Failed("PUBACK 0x87 Not authorized".into())
            ))
        );
        assert!(s.log.back().is_some_and(|l| l.is_error));
    }

    #[test]
    fn the_rate_is_averaged_over_the_last_seconds() {
        use std::time::Duration;
        let mut meter = RateMeter::default();
        let t0 = Instant::now();
        assert_eq!(meter.sample(t0, 0), 0.0);
        // 10 messages a second for 10 s.
        let mut rate = 0.0;
        for s in 1..=10u64 {
            rate = meter.sample(t0 + Duration::from_secs(s), s * 10);
        }
        assert!((rate - 10.0).abs() < 0.01, "{rate}");
        // Then silence: the rate falls to 0 once the window has passed.
        let quiet = meter.sample(t0 + Duration::from_secs(20), 100);
        assert!(quiet < 2.5, "{quiet}");
        let silent = meter.sample(t0 + Duration::from_secs(30), 100);
        assert_eq!(silent, 0.0);
    }

    #[test]
    fn errors_are_counted_past_the_log_length() {
        let mut s = state();
        for i in 0..(LOG_LINES + 10) {
            s.log(format!("refused {i}"), true);
        }
        s.log("fine".into(), false);
        assert_eq!(s.errors, (LOG_LINES + 10) as u64);
        assert_eq!(
            s.last_error(),
            Some(format!("refused {}", LOG_LINES + 9).as_str())
        );
    }
}
