//! Packet flows: links one connection's packet records into the MQTT
//! exchanges they belong to (QoS 1/2 handshakes, SUBSCRIBE→SUBACK, pings,
//! CONNECT→CONNACK), keeps the last N records in a ring buffer, filters them
//! for the timeline view, and exports them as JSON Lines or an SVG diagram.

use crate::model::packet::{Direction, PacketDetail, PacketKind, PacketRecord};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

/// Identifies a flow within one [`PacketLog`]; increases in order of creation.
pub type FlowId = u64;

/// Position of a record in a [`PacketLog`]: 0 for the first record ever
/// pushed, never reused, so it stays valid while older records are evicted.
pub type Seq = u64;

/// How many records a new log keeps.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A flow never grows past this many steps; a peer that keeps repeating a
/// packet for one packet id must not grow memory without bound.
const MAX_STEPS: usize = 64;

/// Who sent the PUBLISH of a publish flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// We published (client → broker).
    Ours,
    /// The broker delivered to us (broker → client).
    Theirs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// A PUBLISH and its acknowledgements; QoS 0 is a single packet.
    Publish {
        qos: u8,
        side: Side,
    },
    Subscribe,
    Unsubscribe,
    Ping,
    Connect,
    Disconnect,
    /// A packet that answers nothing this log has seen (e.g. a PUBACK whose
    /// PUBLISH was sent before the log started).
    Unmatched(PacketKind),
}

impl FlowKind {
    /// The packets of this exchange in order, with who sends each.
    fn sequence(self) -> &'static [(PacketKind, Direction)] {
        use Direction::{In, Out};
        use PacketKind as K;
        match self {
            FlowKind::Publish {
                qos: 0,
                side: Side::Ours,
            } => &[(K::Publish, Out)],
            FlowKind::Publish {
                qos: 0,
                side: Side::Theirs,
            } => &[(K::Publish, In)],
            FlowKind::Publish {
                qos: 1,
                side: Side::Ours,
            } => &[(K::Publish, Out), (K::Puback, In)],
            FlowKind::Publish {
                qos: 1,
                side: Side::Theirs,
            } => &[(K::Publish, In), (K::Puback, Out)],
            FlowKind::Publish {
                side: Side::Ours, ..
            } => &[
                (K::Publish, Out),
                (K::Pubrec, In),
                (K::Pubrel, Out),
                (K::Pubcomp, In),
            ],
            FlowKind::Publish {
                side: Side::Theirs, ..
            } => &[
                (K::Publish, In),
                (K::Pubrec, Out),
                (K::Pubrel, In),
                (K::Pubcomp, Out),
            ],
            FlowKind::Subscribe => &[(K::Subscribe, Out), (K::Suback, In)],
            FlowKind::Unsubscribe => &[(K::Unsubscribe, Out), (K::Unsuback, In)],
            FlowKind::Ping => &[(K::Pingreq, Out), (K::Pingresp, In)],
            FlowKind::Connect => &[(K::Connect, Out), (K::Connack, In)],
            FlowKind::Disconnect | FlowKind::Unmatched(_) => &[],
        }
    }

    /// A short name for tables and the detail view.
    pub fn label(self) -> String {
        match self {
            FlowKind::Publish {
                qos,
                side: Side::Ours,
            } => format!("our PUBLISH QoS {qos}"),
            FlowKind::Publish {
                qos,
                side: Side::Theirs,
            } => format!("delivery QoS {qos}"),
            FlowKind::Subscribe => "SUBSCRIBE".into(),
            FlowKind::Unsubscribe => "UNSUBSCRIBE".into(),
            FlowKind::Ping => "PING".into(),
            FlowKind::Connect => "CONNECT".into(),
            FlowKind::Disconnect => "DISCONNECT".into(),
            FlowKind::Unmatched(k) => format!("unmatched {}", k.name()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowState {
    Complete,
    /// The next packet of the exchange has not crossed the wire yet.
    Waiting(PacketKind),
    /// The connection dropped while the flow waited for `missing`.
    Incomplete {
        missing: PacketKind,
    },
    /// MQTT 5: the peer answered with a failure reason code (0x80 or above)
    /// in `kind`; the exchange ended there, without doing what was asked.
    Refused {
        kind: PacketKind,
        reason: u8,
    },
}

/// One packet of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowStep {
    pub seq: Seq,
    pub kind: PacketKind,
    pub dir: Direction,
    pub t_us: u64,
    pub bytes: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub id: FlowId,
    pub kind: FlowKind,
    pub pkid: Option<u16>,
    /// The PUBLISH topic, or the first filter of a SUBSCRIBE/UNSUBSCRIBE.
    pub topic: Option<String>,
    pub steps: Vec<FlowStep>,
    pub state: FlowState,
    pub total_bytes: usize,
    /// Records of this flow still in the ring buffer.
    live_records: usize,
}

/// What one flow cost on the wire and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: usize,
    pub bytes: usize,
    /// First step to last step, for complete flows of more than one packet.
    pub latency_us: Option<u64>,
}

impl Flow {
    fn new(id: FlowId, kind: FlowKind, record: &PacketRecord) -> Flow {
        let topic = record
            .detail
            .topic
            .clone()
            .or_else(|| record.detail.filters.first().map(|(f, _)| f.clone()));
        Flow {
            id,
            kind,
            pkid: record.pkid,
            topic,
            steps: Vec::new(),
            state: FlowState::Complete,
            total_bytes: 0,
            live_records: 0,
        }
    }

    pub fn started_us(&self) -> Option<u64> {
        self.steps.first().map(|s| s.t_us)
    }

    pub fn is_complete(&self) -> bool {
        self.state == FlowState::Complete
    }

    pub fn is_incomplete(&self) -> bool {
        matches!(self.state, FlowState::Incomplete { .. })
    }

    /// Refused with a failure reason code.
    pub fn is_refused(&self) -> bool {
        matches!(self.state, FlowState::Refused { .. })
    }

    /// Ended, one way or the other: nothing more belongs to it.
    fn is_finished(&self) -> bool {
        self.is_complete() || self.is_refused()
    }

    /// Did not do what it was for: cut by a drop, or refused. The timeline
    /// draws both alike.
    pub fn is_failed(&self) -> bool {
        self.is_incomplete() || self.is_refused()
    }

    pub fn stats(&self) -> FlowStats {
        let latency_us = match (self.state, self.steps.first(), self.steps.last()) {
            (FlowState::Complete, Some(first), Some(last)) if self.steps.len() > 1 => {
                Some(last.t_us.saturating_sub(first.t_us))
            }
            _ => None,
        };
        FlowStats {
            packets: self.steps.len(),
            bytes: self.total_bytes,
            latency_us,
        }
    }

    /// Appends `record` and moves the state to the packet that follows it.
    fn add_step(&mut self, seq: Seq, record: &PacketRecord) {
        self.live_records += 1;
        self.total_bytes = self.total_bytes.saturating_add(record.bytes);
        if self.steps.len() < MAX_STEPS {
            self.steps.push(FlowStep {
                seq,
                kind: record.kind,
                dir: record.dir,
                t_us: record.t_us,
                bytes: record.bytes,
            });
        }
        let sequence = self.kind.sequence();
        let at = sequence
            .iter()
            .position(|&(k, d)| k == record.kind && d == record.dir);
        self.state = match at.and_then(|i| sequence.get(i + 1)) {
            Some(&(next, _)) => FlowState::Waiting(next),
            None => FlowState::Complete,
        };
        if let Some(reason) = record.detail.failure() {
            self.state = FlowState::Refused {
                kind: record.kind,
                reason,
            };
        }
    }

    /// Whether `record` is one of this exchange's packets (in either state).
    fn accepts(&self, record: &PacketRecord) -> bool {
        self.kind
            .sequence()
            .iter()
            .skip(1)
            .any(|&(k, d)| k == record.kind && d == record.dir)
    }
}

/// One record in the log, with the flow it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub seq: Seq,
    pub flow: FlowId,
    pub record: PacketRecord,
}

/// A set of packet kinds, for the timeline's kind filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindSet(u16);

/// Every packet kind, in the specification's order.
pub const ALL_KINDS: [PacketKind; 15] = [
    PacketKind::Connect,
    PacketKind::Connack,
    PacketKind::Publish,
    PacketKind::Puback,
    PacketKind::Pubrec,
    PacketKind::Pubrel,
    PacketKind::Pubcomp,
    PacketKind::Subscribe,
    PacketKind::Suback,
    PacketKind::Unsubscribe,
    PacketKind::Unsuback,
    PacketKind::Pingreq,
    PacketKind::Pingresp,
    PacketKind::Disconnect,
    PacketKind::Auth,
];

fn kind_bit(kind: PacketKind) -> u16 {
    let index = ALL_KINDS.iter().position(|&k| k == kind).unwrap_or(0);
    1 << index
}

impl KindSet {
    pub fn all() -> KindSet {
        KindSet((1 << ALL_KINDS.len()) - 1)
    }
    pub fn none() -> KindSet {
        KindSet(0)
    }
    pub fn contains(self, kind: PacketKind) -> bool {
        self.0 & kind_bit(kind) != 0
    }
    pub fn set(&mut self, kind: PacketKind, on: bool) {
        if on {
            self.0 |= kind_bit(kind);
        } else {
            self.0 &= !kind_bit(kind);
        }
    }
    pub fn is_all(self) -> bool {
        self == KindSet::all()
    }
}

impl Default for KindSet {
    fn default() -> Self {
        KindSet::all()
    }
}

/// What the timeline shows; the default shows everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacketFilter {
    pub kinds: KindSet,
    /// Case-sensitive substring of the record's topic or filters, or of its
    /// flow's topic (so a PUBLISH's acknowledgements stay visible with it).
    pub topic: String,
    pub flow: Option<FlowId>,
}

impl PacketFilter {
    pub fn is_empty(&self) -> bool {
        self.kinds.is_all() && self.topic.is_empty() && self.flow.is_none()
    }
}

/// The packets of one connection and the flows they form. Bounded: keeps the
/// last `capacity` records and counts the ones it dropped.
#[derive(Debug)]
pub struct PacketLog {
    records: VecDeque<LogEntry>,
    capacity: usize,
    next_seq: Seq,
    dropped: u64,
    flows: BTreeMap<FlowId, Flow>,
    next_flow: FlowId,
    /// Our packet-id space: our PUBLISH/SUBSCRIBE/UNSUBSCRIBE and their answers.
    ours: HashMap<u16, FlowId>,
    /// The broker's packet-id space: its deliveries to us and our answers.
    theirs: HashMap<u16, FlowId>,
    /// PINGREQs waiting for a PINGRESP, oldest first.
    pings: VecDeque<FlowId>,
    connect: Option<FlowId>,
    /// Time of the first record ever pushed: the timeline's zero.
    origin_us: Option<u64>,
    revision: u64,
}

impl Default for PacketLog {
    fn default() -> Self {
        PacketLog::new(DEFAULT_CAPACITY)
    }
}

impl PacketLog {
    pub fn new(capacity: usize) -> PacketLog {
        PacketLog {
            records: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            dropped: 0,
            flows: BTreeMap::new(),
            next_flow: 0,
            ours: HashMap::new(),
            theirs: HashMap::new(),
            pings: VecDeque::new(),
            connect: None,
            origin_us: None,
            revision: 0,
        }
    }

    /// Adds a record, links it into its flow and returns the flow's id.
    /// The record keeps the sequence number the worker gave it when that is
    /// ahead of the log's own count (so a message's `packet_seq` finds its
    /// record); records made elsewhere (seq 0) are numbered in order.
    pub fn push(&mut self, mut record: PacketRecord) -> FlowId {
        let seq = record.seq.max(self.next_seq);
        record.seq = seq;
        self.next_seq = seq + 1;
        self.revision += 1;
        self.origin_us.get_or_insert(record.t_us);
        let flow = self.link(seq, &record);
        self.records.push_back(LogEntry { seq, flow, record });
        self.evict();
        flow
    }

    /// Marks every flow still waiting as not completed: the connection it was
    /// on is gone. Called on a Reconnecting or Disconnected status.
    pub fn connection_dropped(&mut self) {
        self.revision += 1;
        for flow in self.flows.values_mut() {
            if let FlowState::Waiting(missing) = flow.state {
                flow.state = FlowState::Incomplete { missing };
            }
        }
        // PINGs and CONNECTs are never resent; publishes may be (with DUP) on
        // a resumed session, so their packet ids stay known.
        self.pings.clear();
        self.connect = None;
        self.forget_unreferenced();
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.revision += 1;
        self.evict();
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records evicted because the log was full, since it was created or cleared.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records currently kept.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets every record and flow. The capacity stays, and sequence
    /// numbers and flow ids keep counting, so a view holding old ones finds
    /// nothing instead of a different packet.
    pub fn clear(&mut self) {
        let mut fresh = PacketLog::new(self.capacity);
        fresh.next_seq = self.next_seq;
        fresh.next_flow = self.next_flow;
        fresh.revision = self.revision + 1;
        *self = fresh;
    }

    /// Records pushed since the log was created (kept, dropped or cleared).
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }

    /// Changes whenever the log changes: views cache derived lists by it.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The timeline's zero: the time of the first record pushed.
    pub fn origin_us(&self) -> u64 {
        self.origin_us.unwrap_or(0)
    }

    /// The records kept, oldest first.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &LogEntry> + DoubleEndedIterator {
        self.records.iter()
    }

    /// The record with sequence number `seq`, if it is still kept.
    pub fn get(&self, seq: Seq) -> Option<&LogEntry> {
        let first = self.records.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.records.get(index)
    }

    /// Flows that still have a record in the log (or still wait), oldest first.
    pub fn flows(&self) -> impl DoubleEndedIterator<Item = &Flow> {
        self.flows.values()
    }

    pub fn flow(&self, id: FlowId) -> Option<&Flow> {
        self.flows.get(&id)
    }

    /// Sequence numbers of the kept records that pass `filter`, oldest first.
    pub fn filtered(&self, filter: &PacketFilter) -> Vec<Seq> {
        self.records
            .iter()
            .filter(|e| self.matches(e, filter))
            .map(|e| e.seq)
            .collect()
    }

    /// Updates `rows` (an earlier result of [`Self::filtered`] with the same
    /// filter, taken when [`Self::pushed`] was `pushed_then`) to the log as
    /// it is now: drops rows evicted since, appends new records that pass.
    /// Costs the number of changed rows, not the size of the log.
    pub fn refilter(&self, filter: &PacketFilter, rows: &mut Vec<Seq>, pushed_then: u64) {
        let first_kept = self.records.front().map_or(self.next_seq, |e| e.seq);
        let gone = rows.partition_point(|&seq| seq < first_kept);
        rows.drain(..gone);
        let new = self
            .records
            .iter()
            .rev()
            .take_while(|e| e.seq >= pushed_then)
            .count();
        let start = self.records.len() - new;
        rows.extend(
            self.records
                .range(start..)
                .filter(|e| self.matches(e, filter))
                .map(|e| e.seq),
        );
    }

    /// Whether `entry` passes `filter`.
    pub fn matches(&self, entry: &LogEntry, filter: &PacketFilter) -> bool {
        if !filter.kinds.contains(entry.record.kind) {
            return false;
        }
        if filter.flow.is_some_and(|f| f != entry.flow) {
            return false;
        }
        if filter.topic.is_empty() {
            return true;
        }
        let needle = filter.topic.as_str();
        let detail = &entry.record.detail;
        detail.topic.as_deref().is_some_and(|t| t.contains(needle))
            || detail.filters.iter().any(|(f, _)| f.contains(needle))
            || self
                .flows
                .get(&entry.flow)
                .and_then(|f| f.topic.as_deref())
                .is_some_and(|t| t.contains(needle))
    }

    fn new_flow(&mut self, kind: FlowKind, seq: Seq, record: &PacketRecord) -> FlowId {
        let id = self.next_flow;
        self.next_flow += 1;
        let mut flow = Flow::new(id, kind, record);
        flow.add_step(seq, record);
        self.flows.insert(id, flow);
        id
    }

    /// Adds `record` to the flow `id` when that flow expects it.
    fn join(&mut self, id: Option<FlowId>, seq: Seq, record: &PacketRecord) -> Option<FlowId> {
        let flow = self.flows.get_mut(&id?)?;
        if !flow.accepts(record) {
            return None;
        }
        flow.add_step(seq, record);
        Some(flow.id)
    }

    fn link(&mut self, seq: Seq, record: &PacketRecord) -> FlowId {
        use Direction::{In, Out};
        use PacketKind as K;
        match (record.kind, record.dir) {
            (K::Publish, dir) => self.link_publish(seq, record, dir),
            (K::Subscribe | K::Unsubscribe, Out) => {
                let kind = if record.kind == K::Subscribe {
                    FlowKind::Subscribe
                } else {
                    FlowKind::Unsubscribe
                };
                let id = self.new_flow(kind, seq, record);
                if let Some(pkid) = record.pkid {
                    self.ours.insert(pkid, id);
                }
                id
            }
            (K::Puback | K::Pubrec | K::Pubrel | K::Pubcomp | K::Suback | K::Unsuback, dir) => {
                // PUBREL travels the same way as the PUBLISH; the others the
                // opposite way. That decides whose packet-id space it is in.
                let ours = match record.kind {
                    K::Pubrel => dir == Out,
                    _ => dir == In,
                };
                let space = if ours { &self.ours } else { &self.theirs };
                let candidate = record.pkid.and_then(|p| space.get(&p).copied());
                match self.join(candidate, seq, record) {
                    Some(id) => {
                        if self.flows.get(&id).is_some_and(Flow::is_finished)
                            && let Some(pkid) = record.pkid
                        {
                            let space = if ours {
                                &mut self.ours
                            } else {
                                &mut self.theirs
                            };
                            space.remove(&pkid);
                        }
                        id
                    }
                    None => self.new_flow(FlowKind::Unmatched(record.kind), seq, record),
                }
            }
            (K::Pingreq, Out) => {
                let id = self.new_flow(FlowKind::Ping, seq, record);
                self.pings.push_back(id);
                id
            }
            (K::Pingresp, In) => {
                let candidate = self.pings.pop_front();
                self.join(candidate, seq, record)
                    .unwrap_or_else(|| self.new_flow(FlowKind::Unmatched(record.kind), seq, record))
            }
            (K::Connect, Out) => {
                let id = self.new_flow(FlowKind::Connect, seq, record);
                self.connect = Some(id);
                id
            }
            (K::Connack, In) => {
                let candidate = self.connect.take();
                self.join(candidate, seq, record)
                    .unwrap_or_else(|| self.new_flow(FlowKind::Unmatched(record.kind), seq, record))
            }
            (K::Disconnect, _) => self.new_flow(FlowKind::Disconnect, seq, record),
            // A client never receives these (or sends the answers); show them alone.
            (kind, _) => self.new_flow(FlowKind::Unmatched(kind), seq, record),
        }
    }

    fn link_publish(&mut self, seq: Seq, record: &PacketRecord, dir: Direction) -> FlowId {
        let side = if dir == Direction::Out {
            Side::Ours
        } else {
            Side::Theirs
        };
        let qos = record.qos.unwrap_or(0).min(2);
        let kind = FlowKind::Publish { qos, side };
        let Some(pkid) = record.pkid.filter(|_| qos > 0) else {
            return self.new_flow(kind, seq, record);
        };
        let space = match side {
            Side::Ours => &mut self.ours,
            Side::Theirs => &mut self.theirs,
        };
        let previous = space.get(&pkid).copied();
        if record.detail.dup == Some(true)
            && let Some(id) = previous
            && let Some(flow) = self.flows.get_mut(&id)
            && flow.kind == kind
        {
            // A retransmission (resumed session): the same exchange goes on.
            flow.add_step(seq, record);
            flow.state = match kind.sequence().get(1) {
                Some(&(next, _)) => FlowState::Waiting(next),
                None => FlowState::Complete,
            };
            return id;
        }
        // A new PUBLISH reusing a packet id ends whatever still used it.
        if let Some(old) = previous.and_then(|id| self.flows.get_mut(&id))
            && let FlowState::Waiting(missing) = old.state
        {
            old.state = FlowState::Incomplete { missing };
        }
        let id = self.new_flow(kind, seq, record);
        let space = match side {
            Side::Ours => &mut self.ours,
            Side::Theirs => &mut self.theirs,
        };
        space.insert(pkid, id);
        id
    }

    fn evict(&mut self) {
        while self.records.len() > self.capacity {
            let Some(entry) = self.records.pop_front() else {
                break;
            };
            self.dropped += 1;
            let Some(flow) = self.flows.get_mut(&entry.flow) else {
                continue;
            };
            flow.live_records = flow.live_records.saturating_sub(1);
            // A flow still waiting stays, so its answer can find it.
            if flow.live_records == 0 && !matches!(flow.state, FlowState::Waiting(_)) {
                self.remove_flow(entry.flow);
            }
        }
    }

    /// Removes a flow and the packet id that still points to it (constant
    /// time: eviction runs on every push once the log is full).
    fn remove_flow(&mut self, id: FlowId) {
        let Some(flow) = self.flows.remove(&id) else {
            return;
        };
        let Some(pkid) = flow.pkid else {
            return;
        };
        let space = match flow.kind {
            FlowKind::Publish {
                side: Side::Theirs, ..
            } => &mut self.theirs,
            _ => &mut self.ours,
        };
        if space.get(&pkid) == Some(&id) {
            space.remove(&pkid);
        }
    }

    /// Drops flows with no record left that no longer wait, and packet ids
    /// that point to flows that are gone.
    fn forget_unreferenced(&mut self) {
        self.flows
            .retain(|_, f| f.live_records > 0 || matches!(f.state, FlowState::Waiting(_)));
        let flows = &self.flows;
        self.ours.retain(|_, id| flows.contains_key(id));
        self.theirs.retain(|_, id| flows.contains_key(id));
    }
}

// ---------------------------------------------------------------- summaries

/// One row of the QoS lab table: the publish flows of one QoS and side.
#[derive(Clone, Debug, PartialEq)]
pub struct QosRow {
    pub qos: u8,
    pub side: Side,
    pub flows: usize,
    pub complete: usize,
    pub packets: usize,
    pub bytes: usize,
    pub median_latency_us: Option<u64>,
    pub p99_latency_us: Option<u64>,
}

/// Publish flows grouped by (QoS, side), in QoS order, ours before theirs.
pub fn qos_summary<'a>(flows: impl IntoIterator<Item = &'a Flow>) -> Vec<QosRow> {
    let mut groups: BTreeMap<(u8, u8), (QosRow, Vec<u64>)> = BTreeMap::new();
    for flow in flows {
        let FlowKind::Publish { qos, side } = flow.kind else {
            continue;
        };
        let side_key = u8::from(side == Side::Theirs);
        let (row, latencies) = groups.entry((qos, side_key)).or_insert_with(|| {
            (
                QosRow {
                    qos,
                    side,
                    flows: 0,
                    complete: 0,
                    packets: 0,
                    bytes: 0,
                    median_latency_us: None,
                    p99_latency_us: None,
                },
                Vec::new(),
            )
        });
        let stats = flow.stats();
        row.flows += 1;
        row.complete += usize::from(flow.is_complete());
        row.packets += stats.packets;
        row.bytes += stats.bytes;
        latencies.extend(stats.latency_us);
    }
    groups
        .into_values()
        .map(|(mut row, mut latencies)| {
            latencies.sort_unstable();
            row.median_latency_us = percentile(&latencies, 50);
            row.p99_latency_us = percentile(&latencies, 99);
            row
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

// ------------------------------------------------------------------ labels

/// The arrow label the timeline and the SVG share: `PUBLISH id=1 qos=2 14 B`
/// (`PUBLISH id=1 qos=1 DUP 14 B` for a resend).
pub fn packet_label(record: &PacketRecord) -> String {
    let mut s = record.kind.name().to_string();
    if let Some(pkid) = record.pkid {
        let _ = write!(s, " id={pkid}");
    }
    if let Some(qos) = record.qos {
        let _ = write!(s, " qos={qos}");
    }
    if record.kind == PacketKind::Publish && record.detail.dup == Some(true) {
        // A resend: what a learner looks for after a lost acknowledgement.
        s.push_str(" DUP");
    }
    let _ = write!(s, " {} B", record.bytes);
    s
}

/// Time since the timeline's zero, for the left margin: `12.345 ms`, `3.250 s`.
pub fn format_relative(us: u64) -> String {
    if us < 1_000_000 {
        format!("{:.3} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.3} s", us as f64 / 1_000_000.0)
    }
}

// ------------------------------------------------------------------ export

#[derive(Serialize)]
struct JsonLine<'a> {
    seq: Seq,
    flow: FlowId,
    t_us: u64,
    dir: Direction,
    kind: PacketKind,
    // Always present (null when absent) so every line has the same columns.
    pkid: Option<u16>,
    qos: Option<u8>,
    bytes: usize,
    topic: Option<&'a str>,
    #[serde(flatten)]
    detail: PacketDetail,
}

/// One JSON object per record and line, with its flow id.
pub fn to_jsonl<'a>(entries: impl IntoIterator<Item = &'a LogEntry>) -> String {
    let mut out = String::new();
    for e in entries {
        let r = &e.record;
        let mut detail = r.detail.clone();
        // The topic is written once, as a fixed column.
        detail.topic = None;
        let line = JsonLine {
            seq: e.seq,
            flow: e.flow,
            t_us: r.t_us,
            dir: r.dir,
            kind: r.kind,
            pkid: r.pkid,
            qos: r.qos,
            bytes: r.bytes,
            topic: r.detail.topic.as_deref(),
            detail,
        };
        // Serializing plain structs into a String cannot fail; skip if it did.
        if let Ok(json) = serde_json::to_string(&line) {
            out.push_str(&json);
            out.push('\n');
        }
    }
    out
}

/// Distinct colours for flows; a flow keeps its colour (by id) wherever it is drawn.
pub const FLOW_PALETTE: [[u8; 3]; 8] = [
    [0x1f, 0x77, 0xb4],
    [0x2c, 0xa0, 0x2c],
    [0x94, 0x67, 0xbd],
    [0xff, 0x7f, 0x0e],
    [0x17, 0xbe, 0xcf],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x00],
];

/// The colour incomplete flows are drawn in.
pub const INCOMPLETE_RGB: [u8; 3] = [0xd6, 0x27, 0x28];

/// The colour of a flow's arrows: red when it never completed.
pub fn flow_rgb(flow: Option<&Flow>, id: FlowId) -> [u8; 3] {
    if flow.is_some_and(Flow::is_failed) {
        return INCOMPLETE_RGB;
    }
    FLOW_PALETTE[(id % FLOW_PALETTE.len() as u64) as usize]
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A sequence diagram of `entries`: client lane left, broker lane right, one
/// arrow per packet, time running down; a flow's arrows share a colour and
/// flows that never completed are red and dashed.
pub fn to_svg<'a>(log: &PacketLog, entries: impl IntoIterator<Item = &'a LogEntry>) -> String {
    const WIDTH: u64 = 720;
    const ROW: u64 = 34;
    const TOP: u64 = 50;
    const CLIENT_X: u64 = 170;
    const BROKER_X: u64 = 660;
    let entries: Vec<&LogEntry> = entries.into_iter().collect();
    let height = TOP + ROW * entries.len() as u64 + 20;
    let origin = log.origin_us();
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{CLIENT_X}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">client</text>\n\
         <text x=\"{BROKER_X}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">broker</text>\n\
         <line x1=\"{CLIENT_X}\" y1=\"30\" x2=\"{CLIENT_X}\" y2=\"{height}\" stroke=\"#999\"/>\n\
         <line x1=\"{BROKER_X}\" y1=\"30\" x2=\"{BROKER_X}\" y2=\"{height}\" stroke=\"#999\"/>\n"
    );
    for (i, e) in entries.iter().enumerate() {
        let r = &e.record;
        let flow = log.flow(e.flow);
        let [red, green, blue] = flow_rgb(flow, e.flow);
        let colour = format!("#{red:02x}{green:02x}{blue:02x}");
        let dashed = if flow.is_some_and(Flow::is_incomplete) {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let y = TOP + ROW * i as u64 + 18;
        let (x1, x2, head) = match r.dir {
            Direction::Out => (CLIENT_X, BROKER_X, -8i64),
            Direction::In => (BROKER_X, CLIENT_X, 8i64),
        };
        let hx = x2 as i64 + head;
        let time = format_relative(r.t_us.saturating_sub(origin));
        let mut label = packet_label(r);
        if let Some(topic) = &r.detail.topic {
            let _ = write!(label, " {topic}");
        }
        let _ = writeln!(
            s,
            "<g class=\"arrow\" data-flow=\"{flow_id}\">\
             <text x=\"10\" y=\"{ty}\" fill=\"#555\">{time}</text>\
             <text x=\"{mid}\" y=\"{label_y}\" text-anchor=\"middle\" fill=\"{colour}\">{label}</text>\
             <line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"1.5\"{dashed}/>\
             <polygon points=\"{x2},{y} {hx},{y_up} {hx},{y_down}\" fill=\"{colour}\"/></g>",
            flow_id = e.flow,
            ty = y + 4,
            mid = (CLIENT_X + BROKER_X) / 2,
            label_y = y - 5,
            label = xml_escape(&label),
            y_up = y - 4,
            y_down = y + 4,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::publish_wire_size;

    fn rec(
        t_us: u64,
        dir: Direction,
        kind: PacketKind,
        pkid: Option<u16>,
        bytes: usize,
    ) -> PacketRecord {
        PacketRecord::new(t_us, dir, kind, pkid, bytes)
    }

    fn publish(
        t_us: u64,
        dir: Direction,
        qos: u8,
        pkid: Option<u16>,
        topic: &str,
        payload: &str,
    ) -> PacketRecord {
        PacketRecord {
            seq: 0,
            t_us,
            dir,
            kind: PacketKind::Publish,
            pkid,
            qos: Some(qos),
            bytes: publish_wire_size(topic.len(), qos, payload.len()),
            detail: PacketDetail {
                topic: Some(topic.into()),
                retain: Some(false),
                dup: Some(false),
                payload_bytes: Some(payload.len()),
                ..PacketDetail::default()
            },
        }
    }

    use Direction::{In, Out};
    use PacketKind as K;

    #[test]
    fn qos0_flow_is_one_packet_and_complete() {
        let mut log = PacketLog::default();
        let id = log.push(publish(10, Out, 0, None, "a/b", "hello"));
        let flow = log.flow(id).expect("flow");
        assert_eq!(
            flow.kind,
            FlowKind::Publish {
                qos: 0,
                side: Side::Ours
            }
        );
        assert_eq!(flow.steps.len(), 1);
        assert_eq!(flow.state, FlowState::Complete);
        assert_eq!(flow.total_bytes, 12);
    }

    #[test]
    fn qos1_ours_publish_and_puback_complete_with_times_and_bytes() {
        let mut log = PacketLog::default();
        let id = log.push(publish(1_000, Out, 1, Some(1), "a/b", "hello"));
        assert_eq!(
            log.flow(id).map(|f| f.state),
            Some(FlowState::Waiting(K::Puback))
        );
        let ack = log.push(rec(3_500, In, K::Puback, Some(1), 4));
        assert_eq!(ack, id);
        let flow = log.flow(id).expect("flow");
        assert_eq!(flow.state, FlowState::Complete);
        let times: Vec<u64> = flow.steps.iter().map(|s| s.t_us).collect();
        assert_eq!(times, vec![1_000, 3_500]);
        assert_eq!(flow.total_bytes, 14 + 4);
        assert_eq!(flow.stats().latency_us, Some(2_500));
        assert_eq!(flow.topic.as_deref(), Some("a/b"));
    }

    #[test]
    fn qos2_ours_has_four_steps_with_wire_sizes() {
        let mut log = PacketLog::default();
        let id = log.push(publish(0, Out, 2, Some(7), "a/b", "hello"));
        log.push(rec(10, In, K::Pubrec, Some(7), 4));
        log.push(rec(20, Out, K::Pubrel, Some(7), 4));
        log.push(rec(30, In, K::Pubcomp, Some(7), 4));
        let flow = log.flow(id).expect("flow");
        let kinds: Vec<PacketKind> = flow.steps.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![K::Publish, K::Pubrec, K::Pubrel, K::Pubcomp]);
        assert_eq!(flow.state, FlowState::Complete);
        assert_eq!(flow.total_bytes, 14 + 4 * 3);
        assert_eq!(log.flows().count(), 1);
    }

    #[test]
    fn qos2_theirs_pairs_in_the_brokers_id_space_when_ids_collide_with_ours() {
        let mut log = PacketLog::default();
        let ours = log.push(publish(0, Out, 2, Some(1), "mine", "x"));
        let theirs = log.push(publish(5, In, 2, Some(1), "yours", "y"));
        assert_ne!(ours, theirs);
        // Broker delivery: PUBREC(out), PUBREL(in), PUBCOMP(out).
        assert_eq!(log.push(rec(6, Out, K::Pubrec, Some(1), 4)), theirs);
        // Our publish: PUBREC(in) goes to ours even though id 1 is used by both.
        assert_eq!(log.push(rec(7, In, K::Pubrec, Some(1), 4)), ours);
        assert_eq!(log.push(rec(8, In, K::Pubrel, Some(1), 4)), theirs);
        assert_eq!(log.push(rec(9, Out, K::Pubcomp, Some(1), 4)), theirs);
        let t = log.flow(theirs).expect("theirs");
        assert_eq!(
            t.kind,
            FlowKind::Publish {
                qos: 2,
                side: Side::Theirs
            }
        );
        assert_eq!(t.state, FlowState::Complete);
        assert_eq!(t.steps.len(), 4);
        let o = log.flow(ours).expect("ours");
        assert_eq!(o.state, FlowState::Waiting(K::Pubrel));
    }

    #[test]
    fn waiting_state_names_the_next_packet() {
        let mut log = PacketLog::default();
        let id = log.push(publish(0, Out, 2, Some(3), "a/b", "hello"));
        let state = |log: &PacketLog| log.flow(id).map(|f| f.state);
        assert_eq!(state(&log), Some(FlowState::Waiting(K::Pubrec)));
        log.push(rec(1, In, K::Pubrec, Some(3), 4));
        assert_eq!(state(&log), Some(FlowState::Waiting(K::Pubrel)));
        log.push(rec(2, Out, K::Pubrel, Some(3), 4));
        assert_eq!(state(&log), Some(FlowState::Waiting(K::Pubcomp)));
    }

    #[test]
    fn connection_dropped_marks_waiting_flows_incomplete() {
        let mut log = PacketLog::default();
        let done = log.push(publish(0, Out, 1, Some(1), "a", "x"));
        log.push(rec(1, In, K::Puback, Some(1), 4));
        let waiting = log.push(publish(2, Out, 2, Some(2), "a", "x"));
        log.push(rec(3, In, K::Pubrec, Some(2), 4));
        log.push(rec(4, Out, K::Pubrel, Some(2), 4));
        let ping = log.push(rec(5, Out, K::Pingreq, None, 2));
        log.connection_dropped();
        assert_eq!(log.flow(done).map(|f| f.state), Some(FlowState::Complete));
        assert_eq!(
            log.flow(waiting).map(|f| f.state),
            Some(FlowState::Incomplete {
                missing: K::Pubcomp
            })
        );
        assert_eq!(
            log.flow(ping).map(|f| f.state),
            Some(FlowState::Incomplete {
                missing: K::Pingresp
            })
        );
        // A PINGRESP after the reconnect answers no old PINGREQ.
        let late = log.push(rec(6, In, K::Pingresp, None, 2));
        assert_ne!(late, ping);
    }

    #[test]
    fn retransmitted_publish_with_dup_joins_its_flow_after_resume() {
        let mut log = PacketLog::default();
        let id = log.push(publish(0, Out, 1, Some(4), "a", "x"));
        log.connection_dropped();
        let mut again = publish(100, Out, 1, Some(4), "a", "x");
        again.detail.dup = Some(true);
        assert_eq!(log.push(again), id);
        assert_eq!(
            log.flow(id).map(|f| f.state),
            Some(FlowState::Waiting(K::Puback))
        );
        assert_eq!(log.push(rec(110, In, K::Puback, Some(4), 4)), id);
        let flow = log.flow(id).expect("flow");
        assert_eq!(flow.state, FlowState::Complete);
        assert_eq!(flow.steps.len(), 3);
        // Without DUP, the same packet id starts a new exchange.
        let fresh = log.push(publish(200, Out, 1, Some(4), "a", "x"));
        assert_ne!(fresh, id);
    }

    #[test]
    fn subscribe_pairs_with_suback_and_ping_with_pingresp() {
        let mut log = PacketLog::default();
        let mut sub = rec(0, Out, K::Subscribe, Some(1), 10);
        sub.detail.filters = vec![("a/#".into(), 1)];
        let s = log.push(sub);
        let p = log.push(rec(1, Out, K::Pingreq, None, 2));
        assert_eq!(log.push(rec(2, In, K::Suback, Some(1), 5)), s);
        assert_eq!(log.push(rec(3, In, K::Pingresp, None, 2)), p);
        let sf = log.flow(s).expect("sub");
        assert_eq!(
            (sf.kind, sf.state),
            (FlowKind::Subscribe, FlowState::Complete)
        );
        assert_eq!(sf.topic.as_deref(), Some("a/#"));
        let pf = log.flow(p).expect("ping");
        assert_eq!((pf.kind, pf.state), (FlowKind::Ping, FlowState::Complete));
        assert_eq!(pf.total_bytes, 4);
    }

    #[test]
    fn unsubscribe_and_connect_pair() {
        let mut log = PacketLog::default();
        let c = log.push(rec(0, Out, K::Connect, None, 20));
        assert_eq!(log.push(rec(1, In, K::Connack, None, 4)), c);
        let u = log.push(rec(2, Out, K::Unsubscribe, Some(9), 8));
        assert_eq!(log.push(rec(3, In, K::Unsuback, Some(9), 4)), u);
        assert!(log.flows().all(Flow::is_complete));
    }

    #[test]
    fn an_ack_for_an_unknown_packet_id_is_unmatched() {
        let mut log = PacketLog::default();
        let id = log.push(rec(0, In, K::Puback, Some(42), 4));
        assert_eq!(
            log.flow(id).map(|f| f.kind),
            Some(FlowKind::Unmatched(K::Puback))
        );
        // A PUBACK for a QoS 2 publish is not part of that exchange.
        let q2 = log.push(publish(1, Out, 2, Some(5), "a", "x"));
        assert_ne!(log.push(rec(2, In, K::Puback, Some(5), 4)), q2);
    }

    #[test]
    fn ring_buffer_keeps_the_last_n_and_counts_the_dropped() {
        let mut log = PacketLog::new(3);
        for i in 0..5 {
            log.push(rec(i, Out, K::Pingreq, None, 2));
            log.push(rec(i, In, K::Pingresp, None, 2));
        }
        assert_eq!(log.len(), 3);
        assert_eq!(log.dropped(), 7);
        let seqs: Vec<Seq> = log.entries().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![7, 8, 9]);
        assert!(log.get(6).is_none());
        assert_eq!(log.get(8).map(|e| e.record.kind), Some(K::Pingreq));
        // Flows with no record left are forgotten too.
        assert_eq!(log.flows().count(), 2);
        log.set_capacity(1);
        assert_eq!((log.len(), log.dropped()), (1, 9));
        log.clear();
        assert!(log.is_empty() && log.flows().next().is_none());
        assert!(log.get(9).is_none());
        log.push(rec(9, Out, K::Pingreq, None, 2));
        assert_eq!(log.entries().map(|e| e.seq).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn waiting_flow_survives_eviction_of_its_publish() {
        let mut log = PacketLog::new(2);
        let id = log.push(publish(0, Out, 1, Some(1), "a", "x"));
        log.push(rec(1, Out, K::Pingreq, None, 2));
        log.push(rec(2, In, K::Pingresp, None, 2));
        assert!(log.get(0).is_none());
        assert_eq!(log.push(rec(3, In, K::Puback, Some(1), 4)), id);
        assert_eq!(log.flow(id).map(|f| f.state), Some(FlowState::Complete));
    }

    #[test]
    fn filter_by_kind_topic_and_flow() {
        let mut log = PacketLog::default();
        let a = log.push(publish(0, Out, 1, Some(1), "house/kitchen", "x"));
        log.push(publish(1, In, 0, None, "garden/temp", "y"));
        log.push(rec(2, In, K::Puback, Some(1), 4));
        log.push(rec(3, Out, K::Pingreq, None, 2));
        let mut f = PacketFilter {
            topic: "kitchen".into(),
            ..PacketFilter::default()
        };
        // The PUBACK has no topic but belongs to the kitchen flow.
        assert_eq!(log.filtered(&f), vec![0, 2]);
        f.topic.clear();
        f.kinds = KindSet::none();
        f.kinds.set(K::Pingreq, true);
        assert_eq!(log.filtered(&f), vec![3]);
        let only_flow = PacketFilter {
            flow: Some(a),
            ..PacketFilter::default()
        };
        assert_eq!(log.filtered(&only_flow), vec![0, 2]);
        assert_eq!(log.filtered(&PacketFilter::default()).len(), 4);
    }

    #[test]
    fn refilter_matches_a_full_filter_after_pushes_and_evictions() {
        let mut log = PacketLog::new(6);
        let filter = PacketFilter {
            topic: "kitchen".into(),
            ..PacketFilter::default()
        };
        let mut rows = log.filtered(&filter);
        let mut pushed = log.pushed();
        for i in 0..20u16 {
            let topic = if i % 3 == 0 {
                "house/kitchen"
            } else {
                "garden"
            };
            log.push(publish(u64::from(i), Out, 1, Some(i + 1), topic, "x"));
            log.push(rec(u64::from(i), In, K::Puback, Some(i + 1), 4));
            if i % 4 == 0 {
                log.refilter(&filter, &mut rows, pushed);
                pushed = log.pushed();
                assert_eq!(rows, log.filtered(&filter), "after {i}");
            }
        }
        log.clear();
        log.refilter(&filter, &mut rows, pushed);
        assert!(rows.is_empty());
    }

    #[test]
    fn jsonl_has_one_line_per_record_with_the_required_fields() {
        let mut log = PacketLog::default();
        log.push(publish(5, Out, 1, Some(1), "a/b", "hello"));
        log.push(rec(9, In, K::Puback, Some(1), 4));
        log.push(rec(12, Out, K::Pingreq, None, 2));
        let text = to_jsonl(log.entries());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            for key in [
                "t_us", "dir", "kind", "pkid", "qos", "bytes", "topic", "flow",
            ] {
                assert!(v.get(key).is_some(), "{key} missing in {line}");
            }
        }
        let first: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(first["kind"], "PUBLISH");
        assert_eq!(first["dir"], "out");
        assert_eq!(first["topic"], "a/b");
        assert_eq!(first["bytes"], 14);
        assert_eq!(first["payload_bytes"], 5);
        let second: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(second["flow"], first["flow"]);
        assert_eq!(second["dir"], "in");
    }

    /// Checks that every element opened is closed, in order.
    fn tags_balanced(svg: &str) -> bool {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let Some(end) = rest[start..].find('>') else {
                return false;
            };
            let tag = &rest[start + 1..start + end];
            rest = &rest[start + end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or(""));
            }
        }
        stack.is_empty()
    }

    #[test]
    fn svg_has_one_arrow_per_packet_and_is_well_formed() {
        let mut log = PacketLog::default();
        log.push(publish(0, Out, 2, Some(1), "a/<b>&c", "hello"));
        log.push(rec(10, In, K::Pubrec, Some(1), 4));
        log.push(rec(20, Out, K::Pubrel, Some(1), 4));
        log.push(rec(30, In, K::Pubcomp, Some(1), 4));
        log.push(rec(40, Out, K::Pingreq, None, 2));
        log.connection_dropped();
        let svg = to_svg(&log, log.entries());
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"arrow\"").count(), 5);
        assert!(svg.contains("PUBREC id=1 4 B"));
        assert!(svg.contains("a/&lt;b&gt;&amp;c"));
        assert!(tags_balanced(&svg), "unbalanced tags:\n{svg}");
        // The ping never got its answer: dashed and red.
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("#d62728"));
    }

    #[test]
    fn qos_summary_counts_packets_per_qos_and_side() {
        let mut log = PacketLog::default();
        let mut t = 0;
        for (qos, pkid) in [(0u8, None), (1, Some(1)), (2, Some(2))] {
            log.push(publish(t, Out, qos, pkid, "a/b", "hello"));
            log.push(publish(t + 1, In, qos, pkid, "a/b", "hello"));
            t += 10;
        }
        log.push(rec(t, In, K::Puback, Some(1), 4));
        log.push(rec(t + 1, Out, K::Puback, Some(1), 4));
        for (i, (kind, dir)) in [
            (K::Pubrec, In),
            (K::Pubrec, Out),
            (K::Pubrel, Out),
            (K::Pubrel, In),
            (K::Pubcomp, In),
            (K::Pubcomp, Out),
        ]
        .into_iter()
        .enumerate()
        {
            log.push(rec(t + 100 + i as u64 * 100, dir, kind, Some(2), 4));
        }
        let rows = qos_summary(log.flows());
        let packets: Vec<(u8, Side, usize)> =
            rows.iter().map(|r| (r.qos, r.side, r.packets)).collect();
        assert_eq!(
            packets,
            vec![
                (0, Side::Ours, 1),
                (0, Side::Theirs, 1),
                (1, Side::Ours, 2),
                (1, Side::Theirs, 2),
                (2, Side::Ours, 4),
                (2, Side::Theirs, 4),
            ]
        );
        assert!(rows.iter().all(|r| r.complete == 1));
        let q2_ours = &rows[4];
        assert_eq!(q2_ours.bytes, 14 + 12);
        assert_eq!(q2_ours.median_latency_us, Some(530 - 20));
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
