//! What an offline connection (a capture opened in the window) can still be
//! asked once its records were fed to the connection's state: pages of its
//! packets for the timeline, and payloads the Store evicted, for the
//! inspector. Both an mqscope capture and a pcap stream (transcoded into a
//! temporary capture while the pcap was read) answer from their file, read
//! on demand.

use super::file::CaptureFile;
use crate::model::packet::PacketRecord;
use crate::model::protocol::Message;
use std::ops::Range;
use std::sync::Arc;

/// The source of an offline connection.
#[derive(Clone)]
pub enum Offline {
    /// An mqscope capture file, or one TCP stream of a pcap/pcapng file
    /// transcoded into one; indexed.
    File(Arc<CaptureFile>),
}

impl Offline {
    /// Packets the capture holds for this connection.
    pub fn packet_count(&self) -> usize {
        match self {
            Offline::File(f) => f.packet_count(),
        }
    }

    /// The packets at positions `range` (clamped), oldest first.
    pub fn packets(&self, range: Range<usize>) -> Result<Vec<PacketRecord>, String> {
        match self {
            Offline::File(f) => f.packets(range).map_err(|e| e.to_string()),
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
        }
    }

    /// Positions of the messages on exactly `topic`, oldest first.
    pub fn message_ids_of(&self, topic: &str) -> Vec<u32> {
        match self {
            Offline::File(f) => f.message_ids_of(topic).to_vec(),
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
        }
    }

    /// The flows linked over the whole capture, once it is loaded.
    pub fn flow_index(&self) -> Option<&super::flow_index::FlowIndex> {
        match self {
            Offline::File(f) => f.flow_index(),
        }
    }

    /// Where the capture came from, in words, for the timeline's header.
    pub fn describe(&self) -> String {
        match self {
            Offline::File(f) => format!("capture {}", f.path().display()),
        }
    }
}
