//! pcap and pcapng files (as tcpdump, dumpcap and Wireshark write them) →
//! MQTT streams: one per TCP connection, each with its packet records and
//! messages, as a live connection would have them.
//!
//! The file formats are read by `pcap-file`, the link, IP and TCP headers by
//! `etherparse`; TCP is reassembled per direction ([`super::tcp`]) and MQTT
//! frames are decoded by rumqttc's codecs ([`super::decode`]).
//!
//! A stream is MQTT when its client starts with a CONNECT (the protocol level
//! in it chooses the codec for the whole stream), or when `port` names the
//! broker's port. A stream whose client starts with a TLS ClientHello is
//! listed as encrypted. Other TCP streams are only counted.
//!
//! Reading is streaming: [`read_file`] hands each decoded packet to a
//! [`Sink`] as soon as it is complete, so a consumer that keeps nothing (an
//! export) runs in bounded memory; [`Capture::open`] is the sink that keeps
//! everything, for the window and the summary.

use super::decode::{Decoded, FrameStats, Opening, StreamDecoder, opening};
use super::tcp::{Piece, Reassembler, TcpStats};
use crate::model::flows::PacketLog;
use crate::model::packet::{Direction, PacketRecord};
use crate::model::protocol::{Message, ProtocolVersion};
use crate::model::store::{HistoryLimits, Store};
use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcapng::Block;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::{DataLink, PcapError};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of a connection kept while its first bytes do not yet tell what it is.
const UNDECIDED_LIMIT: usize = 64 * 1024;

/// How to find the MQTT streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Streams to or from this port are MQTT, with this side as the broker,
    /// whatever their first bytes are (e.g. a capture that starts after the
    /// CONNECT).
    pub port: Option<u16>,
    /// Protocol of forced streams that show no CONNECT (default 3.1.1).
    pub protocol: Option<ProtocolVersion>,
}

/// Why a file could not be read; each says it in one line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a pcap or pcapng file ({what})")]
    NotPcap { path: PathBuf, what: String },
    #[error("{path} is corrupt at frame {frame}: {what}")]
    Corrupt {
        path: PathBuf,
        frame: u64,
        what: String,
    },
    #[error("{path} is truncated: it ends inside frame {frame} (a capture cut short?)")]
    Truncated { path: PathBuf, frame: u64 },
    #[error(
        "{path}: link type {link:?} is not supported (Ethernet, Linux cooked capture SLL/SLL2, raw IP and BSD loopback are)"
    )]
    LinkType { path: PathBuf, link: DataLink },
}

/// What a TCP stream turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum StreamKind {
    Mqtt(ProtocolVersion),
    /// MQTT of a protocol level rumqttc cannot read (3 is MQTT 3.1).
    MqttLevel(u8),
    /// TLS: not decoded.
    Encrypted,
}

impl StreamKind {
    pub fn label(self) -> String {
        match self {
            StreamKind::Mqtt(v) => v.label().to_string(),
            StreamKind::MqttLevel(3) => "MQTT 3.1 (protocol level 3, not decoded)".into(),
            StreamKind::MqttLevel(l) => format!("MQTT protocol level {l} (not decoded)"),
            StreamKind::Encrypted => "encrypted (TLS)".into(),
        }
    }
}

/// One TCP connection that carried MQTT (or TLS), as far as it is known.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    /// Position in [`Capture::streams`], in the order streams were found.
    pub id: usize,
    pub client: SocketAddr,
    pub broker: SocketAddr,
    pub kind: StreamKind,
    /// Capture time of its first segment.
    pub started: SystemTime,
    /// Microseconds from the file's first frame to this stream's first segment.
    pub first_us: u64,
    pub last_us: u64,
    /// A FIN or RST was seen: the connection ended inside the capture.
    pub closed: bool,
    /// Client → broker reassembly.
    pub client_tcp: TcpStats,
    /// Broker → client reassembly.
    pub broker_tcp: TcpStats,
    pub client_frames: FrameStats,
    pub broker_frames: FrameStats,
    /// What could not be decoded and why, one sentence each.
    pub problems: Vec<String>,
}

impl StreamInfo {
    pub fn client_text(&self) -> String {
        self.client.to_string()
    }

    pub fn broker_text(&self) -> String {
        self.broker.to_string()
    }
}

/// Whoever wants the packets as they are decoded.
pub trait Sink {
    /// One packet of `stream`, in the order it was completed on the wire.
    fn packet(&mut self, stream: &StreamInfo, decoded: Decoded);

    /// True to stop reading (e.g. the output failed).
    fn done(&self) -> bool {
        false
    }
}

/// What a file held besides the streams.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub streams: Vec<StreamInfo>,
    /// Frames in the file.
    pub frames: u64,
    /// Frames that were not TCP over IPv4/IPv6 (ARP, UDP, ICMP, ...).
    pub not_tcp: u64,
    /// Frames whose headers could not be read (cut by the snap length, IP
    /// fragments, corrupt).
    pub unreadable: u64,
    /// TCP connections that were neither MQTT nor TLS.
    pub other_tcp: u64,
}

/// A whole pcap decoded and kept in memory: what the window opens.
#[derive(Debug, Default)]
pub struct Capture {
    pub streams: Vec<Stream>,
    pub frames: u64,
    pub not_tcp: u64,
    pub unreadable: u64,
    pub other_tcp: u64,
}

/// One connection of a capture: its packets and the messages they carried.
#[derive(Clone, Debug)]
pub struct Stream {
    pub info: StreamInfo,
    /// Every packet in wire order; `seq` is the position.
    pub records: Vec<PacketRecord>,
    /// Every PUBLISH, both directions; `packet_seq` links to its record,
    /// whose `dir` tells who sent it.
    pub messages: Vec<Message>,
}

impl Stream {
    /// The messages the broker delivered to this client.
    pub fn delivered(&self) -> impl Iterator<Item = &Message> {
        self.messages
            .iter()
            .filter(|m| self.sent_by(m) == Some(Direction::In))
    }

    /// Who sent a message of this stream.
    pub fn sent_by(&self, m: &Message) -> Option<Direction> {
        let seq = m.packet_seq?;
        self.records.get(seq as usize).map(|r| r.dir)
    }

    /// The flows of this connection, as the timeline shows them live.
    pub fn packet_log(&self) -> PacketLog {
        let mut log = PacketLog::new(self.records.len().max(1));
        for r in &self.records {
            log.push(r.clone());
        }
        if self.info.closed {
            log.connection_dropped();
        }
        log
    }

    /// The topic tree and history of every message of the stream.
    pub fn store(&self, limits: HistoryLimits) -> Store {
        let mut store = Store::new(limits);
        for m in &self.messages {
            store.apply_message(m);
        }
        store
    }
}

impl Sink for Capture {
    fn packet(&mut self, stream: &StreamInfo, d: Decoded) {
        while self.streams.len() <= stream.id {
            self.streams.push(Stream {
                info: stream.clone(),
                records: Vec::new(),
                messages: Vec::new(),
            });
        }
        let s = &mut self.streams[stream.id];
        s.records.push(d.record);
        if let Some(m) = d.message {
            s.messages.push(m);
        }
    }
}

impl Capture {
    /// Reads and decodes a whole file.
    pub fn open(path: &Path, options: ReadOptions) -> Result<Capture, ReadError> {
        match Capture::open_partial(path, options)? {
            (capture, None) => Ok(capture),
            (_, Some(e)) => Err(e),
        }
    }

    /// Like [`Capture::open`], but a file cut short or damaged after its
    /// first frame gives what was read before that point, and the error.
    pub fn open_partial(
        path: &Path,
        options: ReadOptions,
    ) -> Result<(Capture, Option<ReadError>), ReadError> {
        let mut capture = Capture::default();
        let (summary, error) = read_file_partial(path, options, &mut capture)?;
        let mut streams: Vec<Option<Stream>> = capture.streams.drain(..).map(Some).collect();
        capture.streams = summary
            .streams
            .into_iter()
            .map(|info| {
                let taken = streams.get_mut(info.id).and_then(Option::take);
                match taken {
                    Some(mut s) => {
                        s.info = info;
                        s
                    }
                    None => Stream {
                        info,
                        records: Vec::new(),
                        messages: Vec::new(),
                    },
                }
            })
            .collect();
        capture.frames = summary.frames;
        capture.not_tcp = summary.not_tcp;
        capture.unreadable = summary.unreadable;
        capture.other_tcp = summary.other_tcp;
        Ok((capture, error))
    }
}

/// Reads `path`, handing every decoded packet to `sink`; returns the streams
/// found and the counts of what was not MQTT.
pub fn read_file(
    path: &Path,
    options: ReadOptions,
    sink: &mut dyn Sink,
) -> Result<Summary, ReadError> {
    match read_file_partial(path, options, sink)? {
        (summary, None) => Ok(summary),
        (_, Some(e)) => Err(e),
    }
}

/// Like [`read_file`], but a file cut short or damaged after its first
/// frame still gives what was read before that point, with the error
/// beside it (the window shows both).
pub fn read_file_partial(
    path: &Path,
    options: ReadOptions,
    sink: &mut dyn Sink,
) -> Result<(Summary, Option<ReadError>), ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match file.read(&mut magic[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    if got < 4 {
        return Err(ReadError::NotPcap {
            path: path.to_path_buf(),
            what: format!("it is only {got} bytes long"),
        });
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut decoder = Decoder::new(options, sink);
    let frame_error = |e: PcapError, frame: u64| match e {
        PcapError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ReadError::Truncated {
                path: path.to_path_buf(),
                frame,
            }
        }
        PcapError::IoError(source) => ReadError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => ReadError::Corrupt {
            path: path.to_path_buf(),
            frame,
            what: other.to_string(),
        },
    };
    // A file header cut short, or one that is not what its magic says.
    let header_error = |e: PcapError, header: &str| match e {
        PcapError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ReadError::Truncated {
                path: path.to_path_buf(),
                frame: 0,
            }
        }
        other => ReadError::NotPcap {
            path: path.to_path_buf(),
            what: format!("its {header} header is invalid: {other}"),
        },
    };
    let read_frames = || -> Result<(), ReadError> {
        match u32::from_be_bytes(magic) {
            0x0A0D0D0A => {
                let mut r = pcap_file::pcapng::PcapNgReader::new(reader)
                    .map_err(|e| header_error(e, "pcapng section"))?;
                let mut last_ts = Duration::ZERO;
                while let Some(block) = r.next_block() {
                    if decoder.sink.done() {
                        break;
                    }
                    let frame = decoder.summary.frames + 1;
                    let block = block.map_err(|e| frame_error(e, frame))?.into_owned();
                    let (interface, ts, data) = match block {
                        Block::EnhancedPacket(p) => (p.interface_id, Some(p.timestamp), p.data),
                        Block::SimplePacket(p) => (0, None, p.data),
                        Block::Packet(p) => (
                            u32::from(p.interface_id),
                            Some(Duration::from_nanos(p.timestamp)),
                            p.data,
                        ),
                        _ => continue,
                    };
                    let Some(idb) = r.interfaces().get(interface as usize) else {
                        return Err(ReadError::Corrupt {
                            path: path.to_path_buf(),
                            frame,
                            what: format!(
                                "a packet names interface {interface}, which is not described"
                            ),
                        });
                    };
                    let link = idb.linktype;
                    let ts = match ts {
                        Some(raw) => {
                            let t = pcapng_time(raw, &idb.options);
                            last_ts = t;
                            t
                        }
                        None => last_ts,
                    };
                    let data = data.into_owned();
                    decoder.frame(path, link, ts, &data)?;
                }
            }
            0xA1B2C3D4 | 0xD4C3B2A1 | 0xA1B23C4D | 0x4D3CB2A1 => {
                let mut r = pcap_file::pcap::PcapReader::new(reader)
                    .map_err(|e| header_error(e, "pcap"))?;
                let header = r.header();
                if header.version_major != 2 {
                    return Err(ReadError::NotPcap {
                        path: path.to_path_buf(),
                        what: format!(
                            "its pcap header says version {}.{}, not 2.4",
                            header.version_major, header.version_minor
                        ),
                    });
                }
                let link = header.datalink;
                if !supported(link) {
                    return Err(ReadError::LinkType {
                        path: path.to_path_buf(),
                        link,
                    });
                }
                while let Some(packet) = r.next_packet() {
                    if decoder.sink.done() {
                        break;
                    }
                    let frame = decoder.summary.frames + 1;
                    let packet = packet.map_err(|e| frame_error(e, frame))?;
                    decoder.frame(path, link, packet.timestamp, &packet.data)?;
                }
            }
            _ => {
                return Err(ReadError::NotPcap {
                    path: path.to_path_buf(),
                    what: format!(
                        "it starts with {:02x} {:02x} {:02x} {:02x}, not a pcap or pcapng magic number",
                        magic[0], magic[1], magic[2], magic[3]
                    ),
                });
            }
        }
        Ok(())
    };
    match read_frames() {
        Ok(()) => Ok((decoder.finish(), None)),
        Err(e @ (ReadError::Truncated { frame, .. } | ReadError::Corrupt { frame, .. }))
            if frame > 1 =>
        {
            Ok((decoder.finish(), Some(e)))
        }
        Err(e) => Err(e),
    }
}

fn supported(link: DataLink) -> bool {
    matches!(
        link,
        DataLink::ETHERNET
            | DataLink::LINUX_SLL
            | DataLink::LINUX_SLL2
            | DataLink::RAW
            | DataLink::IPV4
            | DataLink::IPV6
            | DataLink::NULL
            | DataLink::LOOP
    )
}

/// A pcapng timestamp: `pcap-file` hands the raw count as nanoseconds; the
/// interface's `if_tsresol` says what one unit really is (default 10^-6 s).
fn pcapng_time(raw: Duration, options: &[InterfaceDescriptionOption<'_>]) -> Duration {
    let raw = raw.as_nanos() as u64;
    let mut resol = 6u8;
    let mut offset = 0u64;
    for o in options {
        match o {
            InterfaceDescriptionOption::IfTsResol(r) => resol = *r,
            InterfaceDescriptionOption::IfTsOffset(s) => offset = *s,
            _ => {}
        }
    }
    let nanos: u128 = if resol & 0x80 == 0 {
        let exp = u32::from(resol);
        if exp <= 9 {
            u128::from(raw) * 10u128.pow(9 - exp)
        } else {
            u128::from(raw) / 10u128.pow((exp - 9).min(38))
        }
    } else {
        let bits = u32::from(resol & 0x7f).min(127);
        (u128::from(raw) * 1_000_000_000) >> bits
    };
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos).saturating_add(Duration::from_secs(offset))
}

/// Which end of a connection sent a segment: `a` is the lower address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    A,
    B,
}

#[derive(Debug)]
struct Buffered {
    from: End,
    bytes: Vec<u8>,
    t_us: u64,
    time: SystemTime,
}

#[derive(Debug)]
enum State {
    /// Not known yet: what arrived so far, in arrival order.
    Undecided {
        buffered: Vec<Buffered>,
        bytes: usize,
    },
    Mqtt {
        stream: usize,
        client: End,
        decoder: Box<StreamDecoder>,
    },
    /// Encrypted or an MQTT level not decoded: listed, bytes not kept.
    Listed {
        stream: usize,
        client: End,
    },
    Other,
}

#[derive(Debug)]
struct Conn {
    a: SocketAddr,
    b: SocketAddr,
    from_a: Reassembler,
    from_b: Reassembler,
    /// Who sent the first SYN without ACK.
    client: Option<End>,
    state: State,
    closed: bool,
    first_us: u64,
    started: SystemTime,
}

struct Decoder<'s> {
    options: ReadOptions,
    sink: &'s mut dyn Sink,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    infos: Vec<StreamInfo>,
    first_ts: Option<Duration>,
    summary: Summary,
}

impl<'s> Decoder<'s> {
    fn new(options: ReadOptions, sink: &'s mut dyn Sink) -> Decoder<'s> {
        Decoder {
            options,
            sink,
            conns: HashMap::new(),
            infos: Vec::new(),
            first_ts: None,
            summary: Summary::default(),
        }
    }

    fn frame(
        &mut self,
        path: &Path,
        link: DataLink,
        ts: Duration,
        data: &[u8],
    ) -> Result<(), ReadError> {
        self.summary.frames += 1;
        let first = *self.first_ts.get_or_insert(ts);
        let t_us = ts.saturating_sub(first).as_micros() as u64;
        let time = UNIX_EPOCH + ts;
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
            DataLink::LINUX_SLL2 => {
                // SLL2: protocol type (2 bytes) first, 20 bytes of header.
                if data.len() < 20 {
                    self.summary.unreadable += 1;
                    return Ok(());
                }
                let proto = u16::from_be_bytes([data[0], data[1]]);
                SlicedPacket::from_ether_type(EtherType(proto), &data[20..])
            }
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
            DataLink::NULL | DataLink::LOOP => {
                // BSD loopback: a 4-byte address family, then IP.
                if data.len() < 4 {
                    self.summary.unreadable += 1;
                    return Ok(());
                }
                SlicedPacket::from_ip(&data[4..])
            }
            link => {
                return Err(ReadError::LinkType {
                    path: path.to_path_buf(),
                    link,
                });
            }
        };
        let Ok(sliced) = sliced else {
            self.summary.unreadable += 1;
            return Ok(());
        };
        let (src_ip, dst_ip): (IpAddr, IpAddr) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            _ => {
                self.summary.not_tcp += 1;
                return Ok(());
            }
        };
        let tcp = match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => tcp,
            None if sliced.is_ip_payload_fragmented() => {
                self.summary.unreadable += 1;
                return Ok(());
            }
            _ => {
                self.summary.not_tcp += 1;
                return Ok(());
            }
        };
        let src = SocketAddr::new(src_ip, tcp.source_port());
        let dst = SocketAddr::new(dst_ip, tcp.destination_port());
        let (key, end) = if src <= dst {
            ((src, dst), End::A)
        } else {
            ((dst, src), End::B)
        };
        let syn_only = tcp.syn() && !tcp.ack();
        // A new connection on the same addresses after the old one closed.
        if syn_only
            && let Some(old) = self.conns.get(&key)
            && (old.closed || old.from_a.delivered() + old.from_b.delivered() > 0)
            && let Some(old) = self.conns.remove(&key)
        {
            self.close(old);
        }
        let conn = self.conns.entry(key).or_insert_with(|| Conn {
            a: key.0,
            b: key.1,
            from_a: Reassembler::default(),
            from_b: Reassembler::default(),
            client: None,
            state: State::Undecided {
                buffered: Vec::new(),
                bytes: 0,
            },
            closed: false,
            first_us: t_us,
            started: time,
        });
        if tcp.syn() {
            if syn_only {
                conn.client.get_or_insert(end);
            }
            match end {
                End::A => conn.from_a.syn(tcp.sequence_number()),
                End::B => conn.from_b.syn(tcp.sequence_number()),
            }
        }
        if tcp.fin() || tcp.rst() {
            conn.closed = true;
        }
        let payload = tcp.payload();
        if !payload.is_empty() {
            let reassembler = match end {
                End::A => &mut conn.from_a,
                End::B => &mut conn.from_b,
            };
            // Copy out what becomes deliverable: a segment at most, plus any
            // buffered ones it releases.
            let mut owned: Vec<Owned> = Vec::new();
            reassembler.segment(tcp.sequence_number(), payload, &mut |p| {
                owned.push(match p {
                    Piece::Data(d) => Owned::Data(d.to_vec()),
                    Piece::Gap(n) => Owned::Gap(n),
                })
            });
            for piece in owned {
                self.piece(key, end, piece, t_us, time);
            }
        }
        if let Some(conn) = self.conns.get(&key) {
            self.touch(conn.state_stream(), t_us, conn.closed);
        }
        Ok(())
    }

    fn touch(&mut self, stream: Option<usize>, t_us: u64, closed: bool) {
        if let Some(info) = stream.and_then(|s| self.infos.get_mut(s)) {
            info.last_us = t_us;
            info.closed |= closed;
        }
    }

    /// Bytes (or a hole) of one direction of a connection, in stream order.
    fn piece(
        &mut self,
        key: (SocketAddr, SocketAddr),
        from: End,
        piece: Owned,
        t_us: u64,
        time: SystemTime,
    ) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        match &mut conn.state {
            State::Other | State::Listed { .. } => {}
            State::Mqtt {
                stream,
                client,
                decoder,
            } => {
                let dir = if from == *client {
                    Direction::Out
                } else {
                    Direction::In
                };
                let Some(info) = self.infos.get(*stream) else {
                    return;
                };
                let sink = &mut *self.sink;
                match piece {
                    Owned::Data(bytes) => {
                        decoder.data(dir, &bytes, t_us, time, &mut |d| sink.packet(info, d))
                    }
                    Owned::Gap(n) => decoder.gap(dir, n),
                }
            }
            State::Undecided { buffered, bytes } => {
                let Owned::Data(data) = piece else {
                    // A hole before anything was recognised: not decodable.
                    conn.state = State::Other;
                    self.summary.other_tcp += 1;
                    return;
                };
                *bytes += data.len();
                buffered.push(Buffered {
                    from,
                    bytes: data,
                    t_us,
                    time,
                });
                self.decide(key);
            }
        }
    }

    /// Looks at the first bytes of a connection and decides what it is, if
    /// they tell already.
    fn decide(&mut self, key: (SocketAddr, SocketAddr)) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let State::Undecided { buffered, bytes } = &conn.state else {
            return;
        };
        let start = |end: End| -> Vec<u8> {
            let mut v = Vec::new();
            for b in buffered.iter().filter(|b| b.from == end) {
                v.extend_from_slice(&b.bytes);
                if v.len() >= 16 {
                    break;
                }
            }
            v
        };
        let (start_a, start_b) = (start(End::A), start(End::B));
        let forced = self.options.port.and_then(|p| {
            if conn.b.port() == p {
                Some(End::A)
            } else if conn.a.port() == p {
                Some(End::B)
            } else {
                None
            }
        });
        let of = |end: End| if end == End::A { &start_a } else { &start_b };
        let decision: Option<(End, Option<Opening>)> = if let Some(client) = forced {
            let seen = of(client);
            if seen.is_empty() {
                Some((client, None))
            } else {
                opening(seen).map(|o| (client, Some(o)))
            }
        } else if let Some(client) = conn.client {
            match opening(of(client)) {
                Some(o) => Some((client, Some(o))),
                None if *bytes > UNDECIDED_LIMIT
                    || (of(client).is_empty() && !of(other(client)).is_empty()) =>
                {
                    // The server spoke first: not MQTT.
                    Some((client, Some(Opening::Other)))
                }
                None => None,
            }
        } else {
            let (oa, ob) = (opening(&start_a), opening(&start_b));
            let known = |o: Option<Opening>| matches!(o, Some(x) if x != Opening::Other);
            if known(oa) {
                Some((End::A, oa))
            } else if known(ob) {
                Some((End::B, ob))
            } else if ((oa.is_some() || start_a.is_empty()) && (ob.is_some() || start_b.is_empty()))
                || *bytes > UNDECIDED_LIMIT
            {
                Some((End::A, Some(Opening::Other)))
            } else {
                None
            }
        };
        let Some((client, seen)) = decision else {
            return;
        };
        let forced_protocol = forced
            .is_some()
            .then(|| self.options.protocol.unwrap_or(ProtocolVersion::V311));
        let kind = match (seen, forced_protocol) {
            (Some(Opening::Mqtt(v)), _) => Some(StreamKind::Mqtt(v)),
            (Some(Opening::MqttLevel(l)), _) => Some(StreamKind::MqttLevel(l)),
            (Some(Opening::Tls), _) => Some(StreamKind::Encrypted),
            (_, Some(v)) => Some(StreamKind::Mqtt(v)),
            (Some(Opening::Other), None) | (None, None) => None,
        };
        let state = std::mem::replace(&mut conn.state, State::Other);
        let State::Undecided { buffered, .. } = state else {
            return;
        };
        let Some(kind) = kind else {
            self.summary.other_tcp += 1;
            return;
        };
        let (client_addr, broker_addr) = match client {
            End::A => (conn.a, conn.b),
            End::B => (conn.b, conn.a),
        };
        let stream = self.infos.len();
        let mut problems = Vec::new();
        if forced.is_some()
            && !matches!(
                seen,
                Some(Opening::Mqtt(_) | Opening::Tls | Opening::MqttLevel(_))
            )
        {
            problems.push(format!(
                "no CONNECT at the start of the stream: decoded as {} because of --port",
                kind.label()
            ));
        }
        self.infos.push(StreamInfo {
            id: stream,
            client: client_addr,
            broker: broker_addr,
            kind,
            started: conn.started,
            first_us: conn.first_us,
            last_us: conn.first_us,
            closed: conn.closed,
            client_tcp: TcpStats::default(),
            broker_tcp: TcpStats::default(),
            client_frames: FrameStats::default(),
            broker_frames: FrameStats::default(),
            problems,
        });
        match kind {
            StreamKind::Mqtt(v) => {
                conn.state = State::Mqtt {
                    stream,
                    client,
                    decoder: Box::new(StreamDecoder::new(v)),
                };
                for b in buffered {
                    self.piece(key, b.from, Owned::Data(b.bytes), b.t_us, b.time);
                }
            }
            _ => conn.state = State::Listed { stream, client },
        }
    }

    /// A connection is over (end of file, or its addresses reused).
    fn close(&mut self, mut conn: Conn) {
        let mut from_a = Vec::new();
        let mut from_b = Vec::new();
        conn.from_a.finish(&mut |p| {
            if let Piece::Gap(n) = p {
                from_a.push(n)
            }
        });
        conn.from_b.finish(&mut |p| {
            if let Piece::Gap(n) = p {
                from_b.push(n)
            }
        });
        match &mut conn.state {
            State::Mqtt {
                stream,
                client,
                decoder,
            } => {
                let (client_gaps, broker_gaps, client_tcp, broker_tcp) = match client {
                    End::A => (from_a, from_b, conn.from_a.stats, conn.from_b.stats),
                    End::B => (from_b, from_a, conn.from_b.stats, conn.from_a.stats),
                };
                for n in client_gaps {
                    decoder.gap(Direction::Out, n);
                }
                for n in broker_gaps {
                    decoder.gap(Direction::In, n);
                }
                if let Some(info) = self.infos.get_mut(*stream) {
                    info.client_tcp = client_tcp;
                    info.broker_tcp = broker_tcp;
                    info.client_frames = decoder.frame_stats(Direction::Out);
                    info.broker_frames = decoder.frame_stats(Direction::In);
                    if let Some(p) = decoder.problem(Direction::Out) {
                        info.problems.push(format!("client → broker: {p}"));
                    }
                    if let Some(p) = decoder.problem(Direction::In) {
                        info.problems.push(format!("broker → client: {p}"));
                    }
                }
            }
            State::Listed { stream, client } => {
                if let Some(info) = self.infos.get_mut(*stream) {
                    let (c, b) = match client {
                        End::A => (conn.from_a.stats, conn.from_b.stats),
                        End::B => (conn.from_b.stats, conn.from_a.stats),
                    };
                    info.client_tcp = c;
                    info.broker_tcp = b;
                }
            }
            State::Undecided { bytes, .. } => {
                if *bytes > 0 {
                    self.summary.other_tcp += 1;
                }
            }
            State::Other => {}
        }
    }

    fn finish(mut self) -> Summary {
        let mut conns: Vec<Conn> = self.conns.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.first_us);
        for conn in conns {
            // A connection whose first bytes were too few to tell.
            let key = (conn.a, conn.b);
            let undecided = matches!(conn.state, State::Undecided { .. });
            if undecided && self.options.port.is_some() {
                self.conns.insert(key, conn);
                self.decide(key);
                if let Some(conn) = self.conns.remove(&key) {
                    self.close(conn);
                }
                continue;
            }
            self.close(conn);
        }
        self.summary.streams = std::mem::take(&mut self.infos);
        self.summary
    }
}

enum Owned {
    Data(Vec<u8>),
    Gap(u64),
}

fn other(end: End) -> End {
    match end {
        End::A => End::B,
        End::B => End::A,
    }
}

impl Conn {
    fn state_stream(&self) -> Option<usize> {
        match self.state {
            State::Mqtt { stream, .. } | State::Listed { stream, .. } => Some(stream),
            _ => None,
        }
    }
}
