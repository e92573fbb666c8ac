//! The flows of a whole capture, linked in one pass over its packets and
//! kept compactly: which flow each packet belongs to, and each flow's
//! packets. A timeline that pages through a capture loads a PUBLISH and
//! its PUBACK/PUBREC/... together even when they are pages apart, and the
//! detail pane follows a flow anywhere in the capture.
//!
//! Linking is the model's own ([`PacketLog`]), run with a log of one
//! record: only flows still waiting for an answer are held while linking.

use crate::model::flows::{Flow, FlowKind, FlowState, PacketLog};
use crate::model::packet::PacketRecord;

/// Links packets into flows as they come, in capture order.
pub struct FlowTracker {
    log: PacketLog,
    /// The flow of each packet, by position (when positions are kept).
    flow_of: Option<Vec<u32>>,
    /// The latest state of each flow, by flow number.
    states: Vec<FlowState>,
    kinds: Vec<(FlowKind, Option<u16>)>,
    /// Packets seen.
    packets: u64,
}

/// Final counts of a capture's flows, by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowCounts {
    pub complete: usize,
    /// Cut by the end of the connection (or a reused packet id).
    pub incomplete: usize,
    /// Still waiting for their next packet when the capture ended.
    pub waiting: usize,
    pub refused: usize,
    /// Up to ten of the flows not completed: kind, packet id, what is missing.
    pub open: Vec<(FlowKind, Option<u16>, crate::model::packet::PacketKind)>,
}

impl FlowTracker {
    /// `positions`: keep each packet's flow, for a [`FlowIndex`] (4 bytes a
    /// packet); without it only the counts are kept (a byte or so a flow).
    pub fn new(positions: bool) -> FlowTracker {
        FlowTracker {
            log: PacketLog::new(1),
            flow_of: positions.then(Vec::new),
            states: Vec::new(),
            kinds: Vec::new(),
            packets: 0,
        }
    }

    fn note(&mut self, flow: &Flow) {
        let i = flow.id as usize;
        if i >= self.states.len() {
            self.states.resize(i + 1, FlowState::Complete);
            self.kinds.resize(i + 1, (FlowKind::Disconnect, None));
        }
        self.states[i] = flow.state;
        self.kinds[i] = (flow.kind, flow.pkid);
    }

    /// The next packet of the capture.
    pub fn packet(&mut self, record: &PacketRecord) {
        let mut r = record.clone();
        r.seq = self.packets;
        self.packets += 1;
        // A flow changed without a packet of its own (a reused packet id
        // cut it) stays held by the log until the connection drops, and is
        // read there then (or at the end).
        let id = self.log.push(r);
        if let Some(flow) = self.log.flow(id).cloned() {
            self.note(&flow);
        }
        if let Some(v) = self.flow_of.as_mut() {
            v.push(u32::try_from(id).unwrap_or(u32::MAX));
        }
    }

    /// The connection dropped (a status in a recording, the end of a
    /// closed TCP stream): the flows still waiting will never complete.
    pub fn connection_dropped(&mut self) {
        let held: Vec<Flow> = self.log.flows().cloned().collect();
        for mut f in held {
            if let FlowState::Waiting(missing) = f.state {
                f.state = FlowState::Incomplete { missing };
            }
            self.note(&f);
        }
        self.log.connection_dropped();
    }

    /// Packets seen.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// How the flows ended.
    pub fn counts(&self) -> FlowCounts {
        let mut c = FlowCounts::default();
        let held: std::collections::HashMap<u64, FlowState> =
            self.log.flows().map(|f| (f.id, f.state)).collect();
        for (i, (state, &(kind, pkid))) in self.states.iter().zip(&self.kinds).enumerate() {
            let state = held.get(&(i as u64)).unwrap_or(state);
            match *state {
                FlowState::Complete => c.complete += 1,
                FlowState::Refused { .. } => c.refused += 1,
                FlowState::Waiting(missing) | FlowState::Incomplete { missing } => {
                    if matches!(state, FlowState::Waiting(_)) {
                        c.waiting += 1;
                    } else {
                        c.incomplete += 1;
                    }
                    if c.open.len() < 10 {
                        c.open.push((kind, pkid, missing));
                    }
                }
            }
        }
        c
    }

    /// The index of every packet's flow (empty unless made with positions).
    pub fn finish(self) -> FlowIndex {
        FlowIndex::from_flow_of(self.flow_of.unwrap_or_default(), self.states.len())
    }
}

/// Every packet's flow, and every flow's packets, by position in the
/// capture: 8 bytes a packet and 4 a flow.
#[derive(Debug, Default)]
pub struct FlowIndex {
    flow_of: Vec<u32>,
    /// Flow `f`'s packets are `steps[starts[f]..starts[f + 1]]`.
    starts: Vec<u32>,
    steps: Vec<u32>,
}

impl FlowIndex {
    fn from_flow_of(flow_of: Vec<u32>, flows: usize) -> FlowIndex {
        let flows = flows.max(flow_of.iter().map(|&f| f as usize + 1).max().unwrap_or(0));
        let mut starts = vec![0u32; flows + 1];
        for &f in &flow_of {
            if let Some(s) = starts.get_mut(f as usize + 1) {
                *s += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut steps = vec![0u32; flow_of.len()];
        for (pos, &f) in flow_of.iter().enumerate() {
            if let Some(at) = fill.get_mut(f as usize)
                && let Some(slot) = steps.get_mut(*at as usize)
            {
                *slot = pos as u32;
                *at += 1;
            }
        }
        FlowIndex {
            flow_of,
            starts,
            steps,
        }
    }

    /// Packets indexed.
    pub fn len(&self) -> usize {
        self.flow_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flow_of.is_empty()
    }

    /// The flow number of the packet at `pos`.
    pub fn flow_of(&self, pos: usize) -> Option<u32> {
        self.flow_of.get(pos).copied()
    }

    /// Positions of the packets of the flow the packet at `pos` belongs to
    /// (itself included), oldest first.
    pub fn flow_packets(&self, pos: usize) -> &[u32] {
        let Some(f) = self.flow_of(pos) else {
            return &[];
        };
        let (Some(&a), Some(&b)) = (self.starts.get(f as usize), self.starts.get(f as usize + 1))
        else {
            return &[];
        };
        self.steps.get(a as usize..b as usize).unwrap_or(&[])
    }

    /// Bytes the index holds.
    pub fn memory(&self) -> usize {
        (self.flow_of.capacity() + self.starts.capacity() + self.steps.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::{Direction, PacketKind};

    fn rec(kind: PacketKind, dir: Direction, pkid: Option<u16>, qos: Option<u8>) -> PacketRecord {
        let mut r = PacketRecord::new(0, dir, kind, pkid, 4);
        r.qos = qos;
        r
    }

    #[test]
    fn a_qos2_flow_far_apart_is_one_flow_with_its_four_packets() {
        let mut t = FlowTracker::new(true);
        t.packet(&rec(PacketKind::Publish, Direction::Out, Some(7), Some(2)));
        for _ in 0..10_000 {
            t.packet(&rec(PacketKind::Publish, Direction::In, None, Some(0)));
        }
        t.packet(&rec(PacketKind::Pubrec, Direction::In, Some(7), None));
        t.packet(&rec(PacketKind::Pubrel, Direction::Out, Some(7), None));
        for _ in 0..5_000 {
            t.packet(&rec(PacketKind::Publish, Direction::In, None, Some(0)));
        }
        t.packet(&rec(PacketKind::Pubcomp, Direction::In, Some(7), None));
        let counts = t.counts();
        assert_eq!(counts.complete, 15_001);
        assert_eq!(counts.waiting, 0);
        let index = t.finish();
        assert_eq!(index.flow_packets(0), &[0, 10_001, 10_002, 15_003]);
        assert_eq!(index.flow_packets(15_003), &[0, 10_001, 10_002, 15_003]);
        assert_eq!(index.flow_packets(1), &[1]);
    }

    #[test]
    fn flows_cut_by_the_end_of_the_connection_are_counted_as_incomplete() {
        let mut t = FlowTracker::new(false);
        t.packet(&rec(PacketKind::Publish, Direction::Out, Some(1), Some(1)));
        t.packet(&rec(PacketKind::Publish, Direction::Out, Some(2), Some(1)));
        t.packet(&rec(PacketKind::Puback, Direction::In, Some(2), None));
        assert_eq!(t.counts().waiting, 1);
        t.connection_dropped();
        let c = t.counts();
        assert_eq!((c.complete, c.incomplete, c.waiting), (1, 1, 0));
        assert_eq!(c.open[0].1, Some(1));
        assert_eq!(c.open[0].2, PacketKind::Puback);
    }
}
