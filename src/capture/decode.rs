//! MQTT frames of one reassembled TCP stream → the model's neutral
//! [`PacketRecord`]s and [`Message`]s, the same as a live `--trace` shows.
//!
//! Frames are cut and parsed by rumqttc's own codecs (`mqttbytes::v4` and
//! `v5::mqttbytes::v5`); what they mean is told by the worker's adapters and
//! its `Tracker`, so a packet read from a file and the same packet seen live
//! give equal records. Packets the client sent are `Direction::Out`, the
//! broker's `Direction::In`, as in a live trace.

use crate::model::packet::{Direction, PacketKind, PacketRecord};
use crate::model::protocol::{Message, Properties, ProtocolVersion, Qos};
use crate::mqtt::wire::{OutKind, ShadowSubscribe, ShadowUnsubscribe, Tracker};
use crate::mqtt::{v4, v5};
use crate::profile::{MQTT_MAX_PACKET, SubscriptionSpec};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4 as mb4;
use rumqttc::v5::mqttbytes::v5 as mb5;
use std::time::SystemTime;

/// How the client direction of a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// A CONNECT of this protocol version.
    Mqtt(ProtocolVersion),
    /// A CONNECT of a protocol level rumqttc does not read (3 is MQTT 3.1).
    MqttLevel(u8),
    /// A TLS handshake record (ClientHello).
    Tls,
    /// Something else.
    Other,
}

/// What the first bytes of a client's stream say, or `None` while too few
/// bytes have arrived to tell. Only the fixed header and the protocol name
/// and level of a CONNECT are looked at; the CONNECT itself is parsed by
/// rumqttc afterwards.
pub fn opening(bytes: &[u8]) -> Option<Opening> {
    let first = *bytes.first()?;
    if first == 0x16 {
        // TLS record: content type 22 (handshake), version 3.x, then a
        // ClientHello (handshake type 1) after the 5-byte record header.
        if bytes.len() < 6 {
            return None;
        }
        return Some(if bytes[1] == 3 && bytes[5] == 1 {
            Opening::Tls
        } else {
            Opening::Other
        });
    }
    if first != 0x10 {
        return Some(Opening::Other);
    }
    // Remaining length: 1 to 4 bytes, 7 bits each.
    let mut i = 1;
    loop {
        let b = *bytes.get(i)?;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Some(Opening::Other);
        }
    }
    let name_len = u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as usize;
    i += 2;
    if name_len != 4 && name_len != 6 {
        return Some(Opening::Other);
    }
    let name = bytes.get(i..i + name_len)?;
    let level = *bytes.get(i + name_len)?;
    Some(match (name, level) {
        (b"MQTT", 4) => Opening::Mqtt(ProtocolVersion::V311),
        (b"MQTT", 5) => Opening::Mqtt(ProtocolVersion::V5),
        (b"MQTT", l) | (b"MQIsdp", l) => Opening::MqttLevel(l),
        _ => Opening::Other,
    })
}

/// One packet decoded: its record and, for a PUBLISH, the message.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub record: PacketRecord,
    pub message: Option<Message>,
}

/// Reassembly figures of one direction, as MQTT frames fell into segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameStats {
    /// Packets whose bytes came in more than one segment.
    pub split_packets: u64,
    /// Segments that completed two packets or more.
    pub shared_segments: u64,
}

/// One direction's undecoded bytes.
#[derive(Debug, Default)]
struct Side {
    buf: BytesMut,
    /// Set when this direction can no longer be decoded (malformed bytes or
    /// a gap): why, in words.
    broken: Option<String>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Segments the bytes in `buf` came in (the first one may be partly consumed).
    segments_in_buf: u64,
    stats: FrameStats,
    /// Topic aliases this direction set up (MQTT 5).
    aliases: v5::Aliases,
}

/// Decodes both directions of one MQTT connection.
#[derive(Debug)]
pub struct StreamDecoder {
    pub version: ProtocolVersion,
    client: Side,
    broker: Side,
    tracker: Tracker,
    next_seq: u64,
}

/// What went wrong in a direction, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub dir: Direction,
    pub why: String,
}

impl StreamDecoder {
    pub fn new(version: ProtocolVersion) -> StreamDecoder {
        StreamDecoder {
            version,
            client: Side::default(),
            broker: Side::default(),
            tracker: Tracker::default(),
            next_seq: 0,
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::Out => &mut self.client,
            Direction::In => &mut self.broker,
        }
    }

    /// Bytes of one segment of `dir`, in stream order; decoded packets go to
    /// `out`. `t_us` and `time` are the segment's capture time.
    pub fn data(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        t_us: u64,
        time: SystemTime,
        out: &mut dyn FnMut(Decoded),
    ) {
        let side = self.side(dir);
        if side.broken.is_some() {
            return;
        }
        side.buf.extend_from_slice(bytes);
        side.segments_in_buf += 1;
        let mut completed_here = 0u64;
        let version = self.version;
        loop {
            let side = self.side(dir);
            let before = side.buf.len();
            let read = match version {
                ProtocolVersion::V311 => match mb4::Packet::read(&mut side.buf, MQTT_MAX_PACKET) {
                    Ok(p) => Ok(Frame::V4(p)),
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Err(None),
                    Err(e) => Err(Some(format!("{e:?}"))),
                },
                // MQTT 5 §3.14.2.1: a DISCONNECT with reason 0x00 and no
                // properties may have a remaining length of 0 (rumqttc's own
                // client writes it so), which rumqttc's reader refuses.
                ProtocolVersion::V5 if side.buf.starts_with(&[0xE0, 0x00]) => {
                    let _ = side.buf.split_to(2);
                    Ok(Frame::V5(mb5::Packet::Disconnect(mb5::Disconnect {
                        reason_code: mb5::DisconnectReasonCode::NormalDisconnection,
                        properties: None,
                    })))
                }
                ProtocolVersion::V5 => {
                    match mb5::Packet::read(&mut side.buf, Some(MQTT_MAX_PACKET as u32)) {
                        Ok(p) => Ok(Frame::V5(p)),
                        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Err(None),
                        Err(e) => Err(Some(format!("{e:?}"))),
                    }
                }
            };
            let frame = match read {
                Ok(frame) => frame,
                // The whole frame is not there yet (nothing was consumed).
                Err(None) if side.buf.len() == before => break,
                Err(e) => {
                    // A complete frame whose contents did not parse.
                    let e = e.unwrap_or_else(|| "a field runs past the end of the packet".into());
                    side.broken = Some(format!(
                        "malformed {} packet at byte {} of the stream: {e}; the rest of this direction is not decoded",
                        version.label(),
                        side.offset
                    ));
                    side.buf = BytesMut::new();
                    break;
                }
            };
            let size = before - side.buf.len();
            side.offset += size as u64;
            completed_here += 1;
            if side.segments_in_buf > 1 {
                side.stats.split_packets += 1;
            }
            // What is left starts in this segment.
            side.segments_in_buf = if side.buf.is_empty() { 0 } else { 1 };
            for mut d in self.packet(dir, frame, size, t_us, time) {
                d.record.seq = self.next_seq;
                if let Some(m) = d.message.as_mut() {
                    m.packet_seq = Some(self.next_seq);
                }
                self.next_seq += 1;
                out(d);
            }
        }
        if completed_here > 1 {
            self.side(dir).stats.shared_segments += 1;
        }
    }

    /// Bytes of `dir` are missing here: nothing after can be framed.
    pub fn gap(&mut self, dir: Direction, missing: u64) {
        let side = self.side(dir);
        if side.broken.is_none() {
            side.broken = Some(format!(
                "{missing} bytes missing at byte {} of the stream (not captured); the rest of this direction is not decoded",
                side.offset + side.buf.len() as u64
            ));
        }
        side.buf = BytesMut::new();
    }

    /// Why `dir` stopped being decoded, if it did; or the bytes of an
    /// unfinished packet left at the end.
    pub fn problem(&self, dir: Direction) -> Option<String> {
        let side = match dir {
            Direction::Out => &self.client,
            Direction::In => &self.broker,
        };
        side.broken.clone().or_else(|| {
            (!side.buf.is_empty()).then(|| {
                format!(
                    "the capture ends inside a packet ({} bytes of it captured)",
                    side.buf.len()
                )
            })
        })
    }

    pub fn frame_stats(&self, dir: Direction) -> FrameStats {
        match dir {
            Direction::Out => self.client.stats,
            Direction::In => self.broker.stats,
        }
    }

    /// One frame → its records (one, or none for a packet that means nothing).
    fn packet(
        &mut self,
        dir: Direction,
        frame: Frame,
        size: usize,
        t_us: u64,
        time: SystemTime,
    ) -> Vec<Decoded> {
        let one = |record| {
            vec![Decoded {
                record,
                message: None,
            }]
        };
        // What the client sends and the worker never receives: built here,
        // with the fields the worker's own outgoing records carry.
        match frame {
            Frame::V4(mb4::Packet::Connect(c)) if dir == Direction::Out => {
                let mut r = PacketRecord::new(t_us, dir, PacketKind::Connect, None, size);
                r.detail.client_id = Some(c.client_id);
                r.detail.clean_session = Some(c.clean_session);
                r.detail.keep_alive = Some(c.keep_alive);
                r.detail.will_topic = c.last_will.map(|w| w.topic);
                r.detail.username = Some(c.login.is_some());
                r.detail.protocol = Some(ProtocolVersion::V311);
                return one(r);
            }
            Frame::V5(mb5::Packet::Connect(c, will, login)) if dir == Direction::Out => {
                let mut r = PacketRecord::new(t_us, dir, PacketKind::Connect, None, size);
                r.detail.client_id = Some(c.client_id);
                r.detail.clean_session = Some(c.clean_start);
                r.detail.keep_alive = Some(c.keep_alive);
                r.detail.will_topic = will.map(|w| String::from_utf8_lossy(&w.topic).into_owned());
                r.detail.username = Some(login.is_some());
                r.detail.protocol = Some(ProtocolVersion::V5);
                r.detail.props = c.properties.and_then(|p| {
                    Properties {
                        session_expiry_interval: p.session_expiry_interval,
                        receive_maximum: p.receive_maximum,
                        maximum_packet_size: p.max_packet_size,
                        topic_alias_maximum: p.topic_alias_max,
                        request_response_information: p.request_response_info,
                        request_problem_information: p.request_problem_info,
                        user_property: p.user_properties,
                        authentication_method: p.authentication_method,
                        authentication_data: p.authentication_data,
                        ..Properties::default()
                    }
                    .boxed()
                });
                return one(r);
            }
            Frame::V4(mb4::Packet::Subscribe(s)) if dir == Direction::Out => {
                let specs = s
                    .filters
                    .iter()
                    .map(|f| SubscriptionSpec::new(f.path.clone(), qos4(f.qos)))
                    .collect();
                return self.subscribe(s.pkid, specs, size, None, t_us);
            }
            Frame::V5(mb5::Packet::Subscribe(s)) if dir == Direction::Out => {
                let specs = s
                    .filters
                    .iter()
                    .map(|f| SubscriptionSpec::new(f.path.clone(), qos5(f.qos)))
                    .collect();
                let props = s.properties.as_ref().and_then(v5::neutral_subscribe_props);
                return self.subscribe(s.pkid, specs, size, props, t_us);
            }
            Frame::V4(mb4::Packet::Unsubscribe(u)) if dir == Direction::Out => {
                return self.unsubscribe(u.pkid, u.topics, size, None, t_us);
            }
            Frame::V5(mb5::Packet::Unsubscribe(u)) if dir == Direction::Out => {
                let props = u.properties.and_then(|p| {
                    Properties {
                        user_property: p.user_properties,
                        ..Properties::default()
                    }
                    .boxed()
                });
                return self.unsubscribe(u.pkid, u.filters, size, props, t_us);
            }
            _ => {}
        }
        // Everything else reads the same in both directions: the worker's
        // adapters and tracker make the record, as for a received packet.
        let inpacket = match frame {
            Frame::V4(p) => v4::incoming(p),
            Frame::V5(p) => {
                let aliases = &mut self.side(dir).aliases;
                v5::incoming(p, aliases)
            }
        };
        let kind = inpacket.kind;
        let fx = self.tracker.incoming(inpacket, t_us, time);
        let mut message = fx.message;
        fx.records
            .into_iter()
            .map(|mut record| {
                record.dir = dir;
                // The size is the frame's as cut from the stream.
                record.bytes = size;
                // A DISCONNECT of two bytes carries no reason code; the
                // worker's records of its own DISCONNECT carry none either.
                if dir == Direction::Out && kind == PacketKind::Disconnect && size <= 2 {
                    record.detail.reason = None;
                    record.detail.reason_text = None;
                }
                Decoded {
                    record,
                    message: message.take(),
                }
            })
            .collect()
    }

    fn subscribe(
        &mut self,
        pkid: u16,
        specs: Vec<SubscriptionSpec>,
        size: usize,
        props: Option<Box<Properties>>,
        t_us: u64,
    ) -> Vec<Decoded> {
        self.tracker
            .push_subscribe(ShadowSubscribe { specs, size, props });
        self.outgoing(OutKind::Subscribe(pkid), t_us)
    }

    fn unsubscribe(
        &mut self,
        pkid: u16,
        filters: Vec<String>,
        size: usize,
        props: Option<Box<Properties>>,
        t_us: u64,
    ) -> Vec<Decoded> {
        self.tracker
            .push_unsubscribe(ShadowUnsubscribe { filters, size });
        let mut out = self.outgoing(OutKind::Unsubscribe(pkid), t_us);
        for d in &mut out {
            d.record.detail.props = props.clone();
        }
        out
    }

    fn outgoing(&mut self, kind: OutKind, t_us: u64) -> Vec<Decoded> {
        self.tracker
            .outgoing(kind, t_us, 0)
            .records
            .into_iter()
            .map(|record| Decoded {
                record,
                message: None,
            })
            .collect()
    }
}

/// One frame, short-lived: the size difference of the two codecs' packet
/// types does not matter.
#[allow(clippy::large_enum_variant)]
enum Frame {
    V4(mb4::Packet),
    V5(mb5::Packet),
}

fn qos4(q: rumqttc::QoS) -> Qos {
    match q {
        rumqttc::QoS::AtMostOnce => Qos::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => Qos::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

fn qos5(q: rumqttc::v5::mqttbytes::QoS) -> Qos {
    use rumqttc::v5::mqttbytes::QoS as Q;
    match q {
        Q::AtMostOnce => Qos::AtMostOnce,
        Q::AtLeastOnce => Qos::AtLeastOnce,
        Q::ExactlyOnce => Qos::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode4(p: &mb4::Packet) -> Vec<u8> {
        let mut b = BytesMut::new();
        p.write(&mut b, MQTT_MAX_PACKET).expect("encodes");
        b.to_vec()
    }

    #[test]
    fn a_connect_tells_the_protocol_level() {
        let c = mb4::Packet::Connect(mb4::Connect::new("dev1"));
        let bytes = encode4(&c);
        assert_eq!(opening(&bytes), Some(Opening::Mqtt(ProtocolVersion::V311)));
        assert_eq!(opening(&bytes[..5]), None, "too short to tell");
        let mut v5 = bytes.clone();
        v5[8] = 5;
        assert_eq!(opening(&v5), Some(Opening::Mqtt(ProtocolVersion::V5)));
        assert_eq!(opening(b"GET / HTTP/1.1\r\n"), Some(Opening::Other));
        assert_eq!(opening(&[0x16, 3, 1, 0, 200, 1, 0]), Some(Opening::Tls));
    }

    #[test]
    fn several_packets_in_one_segment_and_one_packet_over_several() {
        let mut d = StreamDecoder::new(ProtocolVersion::V311);
        let mut wire = encode4(&mb4::Packet::Connect(mb4::Connect::new("dev1")));
        for i in 0..3 {
            wire.extend(encode4(&mb4::Packet::Publish(mb4::Publish::new(
                format!("t/{i}"),
                rumqttc::QoS::AtMostOnce,
                vec![b'x'; 10],
            ))));
        }
        let big = encode4(&mb4::Packet::Publish(mb4::Publish::new(
            "big",
            rumqttc::QoS::AtMostOnce,
            vec![b'y'; 5000],
        )));
        let mut got = Vec::new();
        let mut out = |x: Decoded| got.push(x);
        d.data(Direction::Out, &wire, 1, SystemTime::UNIX_EPOCH, &mut out);
        for chunk in big.chunks(1500) {
            d.data(Direction::Out, chunk, 2, SystemTime::UNIX_EPOCH, &mut out);
        }
        let kinds: Vec<_> = got.iter().map(|d| d.record.kind).collect();
        assert_eq!(kinds[0], PacketKind::Connect);
        assert_eq!(got.len(), 5);
        assert_eq!(got[4].record.bytes, big.len());
        assert_eq!(got[4].message.as_ref().map(|m| m.payload.len()), Some(5000));
        assert_eq!(got[4].message.as_ref().and_then(|m| m.packet_seq), Some(4));
        let stats = d.frame_stats(Direction::Out);
        assert_eq!(stats.split_packets, 1);
        assert_eq!(stats.shared_segments, 1);
        assert_eq!(d.problem(Direction::Out), None);
    }

    #[test]
    fn garbage_stops_the_direction_with_a_reason() {
        let mut d = StreamDecoder::new(ProtocolVersion::V311);
        let mut got = 0;
        d.data(
            Direction::In,
            &[0xF0, 0x00, 0x00],
            1,
            SystemTime::UNIX_EPOCH,
            &mut |_| got += 1,
        );
        assert_eq!(got, 0);
        let why = d.problem(Direction::In).expect("a problem");
        assert!(why.contains("malformed"), "{why}");
    }
}
