//! What an offline connection (a capture opened in the window) can still be
//! asked once its records were fed to the connection's state: pages of its
//! packets for the timeline, and payloads the Store evicted, for the
//! inspector. An mqscope capture answers from its file (read on demand); a
//! pcap stream answers from the packets decoded in memory.

use super::file::CaptureFile;
use super::pcap::Stream;
use crate::model::packet::PacketRecord;
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
        match self {
            Offline::File(f) => {
                let i = f.message_by_packet_seq(seq)?;
                Some(f.payload(i).map_err(|e| e.to_string()))
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
                Some(Ok(m.payload.to_vec()))
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
