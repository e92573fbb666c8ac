//! What an offline connection (a capture opened in the window) can still be
//! asked once its records were fed to the connection's state: pages of its
//! packets for the timeline, and payloads the Store evicted, for the
//! inspector. An mqscope capture answers from its file (read on demand); a
//! pcap stream answers from the packets decoded in memory.

use super::file::CaptureFile;
use super::pcap::Stream;
use crate::model::packet::PacketRecord;
use crate::model::protocol::Message;
use std::ops::Range;
use std::sync::Arc;

/// The source of an offline connection.
#[derive(Clone)]
pub enum Offline {
    /// An mqscope capture file, indexed.
    File(Arc<CaptureFile>),
    /// One TCP stream of a pcap/pcapng file.
    Stream(Arc<Stream>),
}

impl Offline {
    /// Packets the capture holds for this connection.
    pub fn packet_count(&self) -> usize {
        match self {
            Offline::File(f) => f.packet_count(),
            Offline::Stream(s) => s.records.len(),
        }
    }

    /// The packets at positions `range` (clamped), oldest first.
    pub fn packets(&self, range: Range<usize>) -> Result<Vec<PacketRecord>, String> {
        match self {
            Offline::File(f) => f.packets(range).map_err(|e| e.to_string()),
            Offline::Stream(s) => {
                let end = range.end.min(s.records.len());
                Ok(s.records[range.start.min(end)..end].to_vec())
            }
        }
    }

    /// The whole payload of the message carried by the PUBLISH record with
    /// sequence number `seq`; `None` when the capture holds no such message.
    pub fn payload_by_packet_seq(&self, seq: u64) -> Option<Result<Vec<u8>, String>> {
        self.payload_prefix_by_packet_seq(seq, usize::MAX)
    }

    /// Like [`Self::payload_by_packet_seq`], at most the first `max` bytes.
    pub fn payload_prefix_by_packet_seq(
        &self,
        seq: u64,
        max: usize,
    ) -> Option<Result<Vec<u8>, String>> {
        match self {
            Offline::File(f) => {
                let i = f.message_by_packet_seq(seq)?;
                let read = if max == usize::MAX {
                    f.payload(i)
                } else {
                    f.payload_prefix(i, max)
                };
                Some(read.map_err(|e| e.to_string()))
            }
            Offline::Stream(s) => {
                let i = s
                    .messages
                    .partition_point(|m| m.packet_seq.is_some_and(|p| p < seq));
                let m = s
                    .messages
                    .get(i)
                    .filter(|m| m.packet_seq == Some(seq))
                    .or_else(|| s.messages.iter().find(|m| m.packet_seq == Some(seq)))?;
                Some(Ok(m.payload[..m.payload.len().min(max)].to_vec()))
            }
        }
    }

    /// Positions of the messages on exactly `topic`, oldest first.
    pub fn message_ids_of(&self, topic: &str) -> Vec<u32> {
        match self {
            Offline::File(f) => f.message_ids_of(topic).to_vec(),
            Offline::Stream(s) => s
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.topic == topic)
                .map(|(i, _)| i as u32)
                .collect(),
        }
    }

    /// Message `i` (a position from [`Self::message_ids_of`]) with at most
    /// `max` bytes of its payload, and its whole payload's length.
    pub fn message_head(&self, i: u32, max: usize) -> Result<(Message, usize), String> {
        match self {
            Offline::File(f) => {
                let len = f
                    .message_info(i)
                    .map(|m| m.payload_len)
                    .ok_or_else(|| format!("the capture holds no message {i}"))?;
                let m = f.message_head(i, max).map_err(|e| e.to_string())?;
                Ok((m, len))
            }
            Offline::Stream(s) => {
                let mut m = s
                    .messages
                    .get(i as usize)
                    .cloned()
                    .ok_or_else(|| format!("the stream holds no message {i}"))?;
                let len = m.payload.len();
                m.payload.truncate(len.min(max));
                Ok((m, len))
            }
        }
    }

    /// Where the capture came from, in words, for the timeline's header.
    pub fn describe(&self) -> String {
        match self {
            Offline::File(f) => format!("capture {}", f.path().display()),
            Offline::Stream(s) => format!(
                "pcap stream {} -> {}",
                s.info.client_text(),
                s.info.broker_text()
            ),
        }
    }
}
