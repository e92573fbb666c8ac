//! Faults on the wire for the QoS lab: a small TCP relay between a client and
//! any broker that reads the MQTT frames passing through it and, at a chosen
//! step of a publish handshake, drops the frame in flight and closes both
//! sides — the connection really dies, as a pulled cable would do it.
//!
//! The relay forwards bytes untouched; it only splits them into frames (fixed
//! header and remaining length) to know where one packet ends, and reads the
//! topic and packet id of the packets the cut is about. Every frame it saw is
//! kept (bounded, with a count of those no longer kept) with its DUP flag as
//! it was on the wire, so a test or the lab can show what the client resent.

use crate::model::packet::{Direction, PacketKind};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where in a publish handshake the connection is cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CutStep {
    /// Nothing is cut: the handshake completes.
    #[default]
    None,
    /// The client's PUBLISH is lost with the connection: the broker never
    /// gets it.
    AfterPublish,
    /// The broker got (and forwarded or stored) the PUBLISH, but its PUBACK
    /// (QoS 1) or PUBREC (QoS 2) is lost with the connection.
    AfterAck,
    /// The client's PUBREL reached the broker, but the PUBCOMP is lost with
    /// the connection (QoS 2 only).
    AfterPubrel,
}

impl CutStep {
    pub const ALL: [CutStep; 4] = [
        CutStep::None,
        CutStep::AfterPublish,
        CutStep::AfterAck,
        CutStep::AfterPubrel,
    ];

    /// The words the lab's chooser shows.
    pub fn label(self) -> &'static str {
        match self {
            CutStep::None => "No failure",
            CutStep::AfterPublish => "after PUBLISH leaves",
            CutStep::AfterAck => "after PUBACK/PUBREC",
            CutStep::AfterPubrel => "after PUBREL",
        }
    }

    /// Whether a publish at `qos` has this step (QoS 0 has no PUBACK, only
    /// QoS 2 has a PUBREL).
    pub fn applies_to(self, qos: u8) -> bool {
        match self {
            CutStep::None => false,
            CutStep::AfterPublish => true,
            CutStep::AfterAck => qos >= 1,
            CutStep::AfterPubrel => qos == 2,
        }
    }

    /// The packet that is lost at this step for a publish at `qos`.
    pub fn lost_packet(self, qos: u8) -> Option<PacketKind> {
        if !self.applies_to(qos) {
            return None;
        }
        Some(match self {
            CutStep::AfterPublish => PacketKind::Publish,
            CutStep::AfterAck if qos == 1 => PacketKind::Puback,
            CutStep::AfterAck => PacketKind::Pubrec,
            _ => PacketKind::Pubcomp,
        })
    }
}

impl fmt::Display for CutStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A connection the relay cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub step: CutStep,
    /// The packet dropped in flight, and which way it was going.
    pub dropped: PacketKind,
    pub dir: Direction,
    pub pkid: Option<u16>,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.dir {
            Direction::Out => "client -> broker",
            Direction::In => "broker -> client",
        };
        write!(f, "{} ({who}", self.dropped.name())?;
        if let Some(id) = self.pkid {
            write!(f, ", id={id}")?;
        }
        write!(f, ") dropped and the connection closed")
    }
}

/// One frame the relay saw, as it was on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenFrame {
    pub dir: Direction,
    pub kind: PacketKind,
    pub pkid: Option<u16>,
    /// The DUP bit of a PUBLISH's fixed header.
    pub dup: bool,
    pub qos: u8,
    /// A PUBLISH on the armed topic (or an ack of one).
    pub on_topic: bool,
    /// Dropped by a cut instead of forwarded.
    pub dropped: bool,
}

/// How many frames the relay keeps for inspection.
const SEEN_LIMIT: usize = 10_000;

#[derive(Debug, Default)]
struct State {
    /// The step to cut at, for publishes on this topic; disarmed by the cut.
    armed: Option<(CutStep, String)>,
    /// Packet id of the armed topic's PUBLISH in flight, once seen.
    armed_pkid: Option<u16>,
    /// PUBREL of the armed packet id went through (AfterPubrel).
    released: bool,
    cuts: Vec<Cut>,
    seen: VecDeque<SeenFrame>,
    seen_forgotten: u64,
    connections: u64,
    errors: Vec<String>,
}

/// A relay listening on 127.0.0.1 that forwards every connection to one
/// broker. Dropping it stops it and closes the connections through it.
pub struct Relay {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay").field("port", &self.port).finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    /// Starts a relay to `host:port` on a thread of its own.
    pub fn start(host: &str, port: u16) -> std::io::Result<Relay> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?.port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stop_rx) = watch::channel(false);
        let upstream = (host.to_string(), port);
        let st = state.clone();
        std::thread::Builder::new()
            .name("mqscope-relay".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    accept_loop(listener, upstream, st, stop_rx).await;
                });
            })?;
        Ok(Relay {
            port: local,
            state,
            stop,
        })
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the connection at `step` of the next publish on `topic`.
    pub fn arm(&self, step: CutStep, topic: &str) {
        let mut st = lock(&self.state);
        st.armed = (step != CutStep::None).then(|| (step, topic.to_string()));
        st.armed_pkid = None;
        st.released = false;
    }

    /// Whether a cut is still waiting for its packet.
    pub fn is_armed(&self) -> bool {
        lock(&self.state).armed.is_some()
    }

    pub fn disarm(&self) {
        self.arm(CutStep::None, "");
    }

    /// Every cut made so far.
    pub fn cuts(&self) -> Vec<Cut> {
        lock(&self.state).cuts.clone()
    }

    /// The frames seen so far (the oldest are forgotten past a limit; see
    /// [`Self::seen_forgotten`]).
    pub fn seen(&self) -> Vec<SeenFrame> {
        lock(&self.state).seen.iter().cloned().collect()
    }

    pub fn seen_forgotten(&self) -> u64 {
        lock(&self.state).seen_forgotten
    }

    /// Connections accepted so far (a reconnect is a new one).
    pub fn connections(&self) -> u64 {
        lock(&self.state).connections
    }

    /// Connections to the broker that failed, in words.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.state).errors.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: (String, u16),
    state: Arc<Mutex<State>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let child_stop = stop.clone();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                lock(&state).connections += 1;
                let upstream = upstream.clone();
                let state = state.clone();
                let stop = child_stop;
                tokio::spawn(async move {
                    match TcpStream::connect((upstream.0.as_str(), upstream.1)).await {
                        Ok(broker) => pump(client, broker, state, stop).await,
                        Err(e) => lock(&state).errors.push(format!(
                            "cannot reach the broker at {}:{}: {e}",
                            upstream.0, upstream.1
                        )),
                    }
                });
            }
        }
    }
}

/// Forwards both ways frame by frame until either side closes or a cut.
async fn pump(
    client: TcpStream,
    broker: TcpStream,
    state: Arc<Mutex<State>>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (mut crd, mut cwr) = client.into_split();
    let (mut brd, mut bwr) = broker.into_split();
    let mut up = BytesMut::with_capacity(4096);
    let mut down = BytesMut::with_capacity(4096);
    loop {
        let (dir, read) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = crd.read_buf(&mut up) => (Direction::Out, r),
            r = brd.read_buf(&mut down) => (Direction::In, r),
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (buf, wr) = match dir {
            Direction::Out => (&mut up, &mut bwr),
            Direction::In => (&mut down, &mut cwr),
        };
        while let Some(len) = frame_len(buf) {
            let frame = buf.split_to(len);
            let cut = judge(&state, dir, &frame);
            if cut {
                // Dropping both halves of both sockets closes them.
                return;
            }
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

/// Records the frame and says whether the connection is cut at it.
fn judge(state: &Mutex<State>, dir: Direction, frame: &[u8]) -> bool {
    let info = frame_info(frame);
    let mut st = lock(state);
    let mut on_topic = false;
    let mut cut = None;
    if let Some((step, topic)) = st.armed.clone() {
        match (dir, info.kind) {
            (Direction::Out, PacketKind::Publish) if info.topic.as_deref() == Some(&topic) => {
                on_topic = true;
                if step == CutStep::AfterPublish {
                    cut = Some(step);
                } else if info.qos > 0 {
                    st.armed_pkid = info.pkid;
                }
            }
            (Direction::Out, PacketKind::Pubrel) if info.pkid == st.armed_pkid => {
                on_topic = true;
                st.released = true;
            }
            (Direction::In, PacketKind::Puback | PacketKind::Pubrec)
                if info.pkid.is_some() && info.pkid == st.armed_pkid =>
            {
                on_topic = true;
                if step == CutStep::AfterAck {
                    cut = Some(step);
                }
            }
            (Direction::In, PacketKind::Pubcomp)
                if info.pkid.is_some() && info.pkid == st.armed_pkid =>
            {
                on_topic = true;
                if step == CutStep::AfterPubrel && st.released {
                    cut = Some(step);
                }
            }
            _ => {}
        }
    }
    if let Some(step) = cut {
        st.cuts.push(Cut {
            step,
            dropped: info.kind,
            dir,
            pkid: info.pkid,
        });
        st.armed = None;
        st.armed_pkid = None;
        st.released = false;
    }
    if st.seen.len() >= SEEN_LIMIT {
        st.seen.pop_front();
        st.seen_forgotten += 1;
    }
    st.seen.push_back(SeenFrame {
        dir,
        kind: info.kind,
        pkid: info.pkid,
        dup: info.dup,
        qos: info.qos,
        on_topic,
        dropped: cut.is_some(),
    });
    cut.is_some()
}

/// The length of the first whole frame in `buf`, if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let total = 1 + (i + 1) + remaining;
            return (buf.len() >= total).then_some(total);
        }
    }
    // Fewer than the header's bytes yet (a fifth continuation byte would be
    // malformed; the broker will say so, the relay just waits).
    None
}

struct FrameInfo {
    kind: PacketKind,
    dup: bool,
    qos: u8,
    pkid: Option<u16>,
    topic: Option<String>,
}

/// Kind, flags, packet id and topic of a whole frame (3.1.1 and 5 agree on
/// all of these: the properties come after them).
fn frame_info(frame: &[u8]) -> FrameInfo {
    let first = frame.first().copied().unwrap_or(0);
    let kind = match first >> 4 {
        1 => PacketKind::Connect,
        2 => PacketKind::Connack,
        3 => PacketKind::Publish,
        4 => PacketKind::Puback,
        5 => PacketKind::Pubrec,
        6 => PacketKind::Pubrel,
        7 => PacketKind::Pubcomp,
        8 => PacketKind::Subscribe,
        9 => PacketKind::Suback,
        10 => PacketKind::Unsubscribe,
        11 => PacketKind::Unsuback,
        12 => PacketKind::Pingreq,
        13 => PacketKind::Pingresp,
        14 => PacketKind::Disconnect,
        _ => PacketKind::Auth,
    };
    let header = frame
        .iter()
        .skip(1)
        .position(|b| b & 0x80 == 0)
        .map_or(frame.len(), |i| i + 2);
    let mut body = frame.get(header..).unwrap_or(&[]);
    let mut info = FrameInfo {
        kind,
        dup: false,
        qos: 0,
        pkid: None,
        topic: None,
    };
    let read_u16 = |b: &mut &[u8]| (b.len() >= 2).then(|| b.get_u16());
    match kind {
        PacketKind::Publish => {
            info.dup = first & 0x08 != 0;
            info.qos = (first >> 1) & 0x03;
            let Some(len) = read_u16(&mut body) else {
                return info;
            };
            let len = usize::from(len);
            if body.len() < len {
                return info;
            }
            info.topic = Some(String::from_utf8_lossy(&body[..len]).into_owned());
            body.advance(len);
            if info.qos > 0 {
                info.pkid = read_u16(&mut body);
            }
        }
        PacketKind::Puback
        | PacketKind::Pubrec
        | PacketKind::Pubrel
        | PacketKind::Pubcomp
        | PacketKind::Subscribe
        | PacketKind::Suback
        | PacketKind::Unsubscribe
        | PacketKind::Unsuback => info.pkid = read_u16(&mut body),
        _ => {}
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_at_their_remaining_length() {
        assert_eq!(frame_len(&[0x40, 0x02, 0, 1]), Some(4));
        assert_eq!(frame_len(&[0x40, 0x02, 0]), None);
        assert_eq!(frame_len(&[0x30]), None);
        let mut long = vec![0x30, 0x80, 0x01];
        long.resize(3 + 128, 0);
        assert_eq!(frame_len(&long), Some(131));
        assert_eq!(frame_len(&long[..100]), None);
    }

    #[test]
    fn publish_info_has_dup_qos_topic_and_id() {
        // PUBLISH, DUP, QoS 1, topic "a/b", id 7, payload "x".
        let frame = [0x3a, 8, 0, 3, b'a', b'/', b'b', 0, 7, b'x'];
        let info = frame_info(&frame);
        assert_eq!(info.kind, PacketKind::Publish);
        assert!(info.dup);
        assert_eq!(info.qos, 1);
        assert_eq!(info.topic.as_deref(), Some("a/b"));
        assert_eq!(info.pkid, Some(7));
        let ack = frame_info(&[0x50, 2, 0, 9]);
        assert_eq!((ack.kind, ack.pkid), (PacketKind::Pubrec, Some(9)));
        // A truncated frame is read as far as it goes, without a panic.
        let short = frame_info(&[0x32, 3, 0, 9]);
        assert_eq!((short.topic, short.pkid), (None, None));
    }

    fn publish(topic: &str, qos: u8, pkid: u16) -> Vec<u8> {
        let mut body = vec![0, topic.len() as u8];
        body.extend_from_slice(topic.as_bytes());
        if qos > 0 {
            body.extend_from_slice(&pkid.to_be_bytes());
        }
        body.push(b'x');
        let mut frame = vec![0x30 | (qos << 1), body.len() as u8];
        frame.extend(body);
        frame
    }

    fn ack(kind: u8, pkid: u16) -> Vec<u8> {
        let [hi, lo] = pkid.to_be_bytes();
        vec![kind, 2, hi, lo]
    }

    #[test]
    fn after_pubrel_cuts_only_the_pubcomp_of_the_armed_message() {
        let state = Mutex::new(State::default());
        lock(&state).armed = Some((CutStep::AfterPubrel, "lab".into()));
        use Direction::{In, Out};
        // Another topic's handshake with the same id passes untouched.
        assert!(!judge(&state, Out, &publish("other", 2, 7)));
        assert!(!judge(&state, In, &ack(0x50, 7)));
        assert!(!judge(&state, In, &ack(0x70, 7)));
        // The lab's: PUBLISH, PUBREC, PUBREL pass; the PUBCOMP is the cut.
        assert!(!judge(&state, Out, &publish("lab", 2, 8)));
        assert!(!judge(&state, In, &ack(0x50, 8)));
        assert!(!judge(&state, Out, &ack(0x62, 8)));
        assert!(judge(&state, In, &ack(0x70, 8)));
        let st = lock(&state);
        assert_eq!(
            st.cuts,
            vec![Cut {
                step: CutStep::AfterPubrel,
                dropped: PacketKind::Pubcomp,
                dir: In,
                pkid: Some(8),
            }]
        );
        assert!(st.armed.is_none(), "a cut fires once");
        assert_eq!(st.seen.iter().filter(|f| f.dropped).count(), 1);
    }

    #[test]
    fn after_publish_cuts_the_publish_itself() {
        let state = Mutex::new(State::default());
        lock(&state).armed = Some((CutStep::AfterPublish, "lab".into()));
        assert!(judge(&state, Direction::Out, &publish("lab", 0, 0)));
        // Disarmed: the next one passes.
        assert!(!judge(&state, Direction::Out, &publish("lab", 0, 0)));
    }

    #[test]
    fn steps_apply_to_the_levels_that_have_them() {
        assert_eq!(CutStep::AfterAck.lost_packet(0), None);
        assert_eq!(CutStep::AfterAck.lost_packet(1), Some(PacketKind::Puback));
        assert_eq!(CutStep::AfterAck.lost_packet(2), Some(PacketKind::Pubrec));
        assert_eq!(CutStep::AfterPubrel.lost_packet(1), None);
        assert_eq!(
            CutStep::AfterPubrel.lost_packet(2),
            Some(PacketKind::Pubcomp)
        );
        assert_eq!(
            CutStep::AfterPublish.lost_packet(0),
            Some(PacketKind::Publish)
        );
    }
}
