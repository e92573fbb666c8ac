//! TCP reassembly of one direction of a connection: segments in, the byte
//! stream out in order, each byte once.
//!
//! Sequence numbers are unwrapped against the next expected byte, so a
//! direction may carry more than 4 GiB. Segments that arrive ahead of a
//! missing one are buffered up to [`MAX_PENDING`] bytes; past that the
//! missing bytes are declared lost (a gap) and the stream goes on after them.
//! A segment whose bytes were all delivered or buffered already is a
//! retransmission: counted, never delivered twice.

use std::collections::BTreeMap;

/// Bytes of out-of-order segments one direction may hold while it waits for
/// a missing segment.
pub const MAX_PENDING: usize = 16 << 20;

/// What reassembly saw in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpStats {
    /// Segments that carried data.
    pub segments: u64,
    /// Payload bytes delivered in order.
    pub bytes: u64,
    /// Segments whose data had all been seen already.
    pub retransmitted: u64,
    /// Segments that arrived ahead of a missing one (buffered).
    pub out_of_order: u64,
    /// Bytes never seen (lost before the capture, or not captured).
    pub missing_bytes: u64,
}

/// What the next call delivers: bytes in order, or a hole before them.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Data(&'a [u8]),
    /// `n` bytes are missing here: the stream cannot be decoded across it.
    Gap(u64),
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Sequence number of stream offset 0 (the byte after the SYN).
    base: Option<u32>,
    /// Stream offset of the next byte to deliver.
    next: u64,
    /// Out-of-order segments by stream offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    pub stats: TcpStats,
}

impl Reassembler {
    /// The SYN (or SYN-ACK) of this direction: data starts at `seq + 1`.
    pub fn syn(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(seq.wrapping_add(1));
        }
    }

    /// Stream offset of the next byte to deliver.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Stream offset of `seq`, unwrapped around the next expected byte.
    fn offset(&self, base: u32, seq: u32) -> i64 {
        let expected = base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(expected) as i32)
    }

    /// A segment with `data` at sequence number `seq`; `out` gets what it
    /// makes deliverable, in order.
    pub fn segment(&mut self, seq: u32, data: &[u8], out: &mut dyn FnMut(Piece<'_>)) {
        if data.is_empty() {
            return;
        }
        self.stats.segments += 1;
        let base = *self.base.get_or_insert(seq);
        let start = self.offset(base, seq);
        let end = start + data.len() as i64;
        if end <= self.next as i64 {
            self.stats.retransmitted += 1;
            return;
        }
        if start > self.next as i64 {
            let start = start as u64;
            match self.pending.get(&start) {
                Some(held) if held.len() >= data.len() => self.stats.retransmitted += 1,
                _ => {
                    self.stats.out_of_order += 1;
                    if let Some(old) = self.pending.insert(start, data.to_vec()) {
                        self.pending_bytes -= old.len();
                    }
                    self.pending_bytes += data.len();
                    if self.pending_bytes > MAX_PENDING {
                        self.skip_gap(out);
                    }
                }
            }
            return;
        }
        // Starts at or before the next byte: deliver what is new.
        let skip = (self.next as i64 - start) as usize;
        self.deliver(&data[skip..], out);
        self.drain(out);
    }

    fn deliver(&mut self, data: &[u8], out: &mut dyn FnMut(Piece<'_>)) {
        self.next += data.len() as u64;
        self.stats.bytes += data.len() as u64;
        out(Piece::Data(data));
    }

    /// Delivers buffered segments that the stream has reached.
    fn drain(&mut self, out: &mut dyn FnMut(Piece<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            let end = start + data.len() as u64;
            if end <= self.next {
                // Covered by what came in order meanwhile.
                self.stats.retransmitted += 1;
                continue;
            }
            let skip = (self.next - start) as usize;
            self.deliver(&data[skip..], out);
        }
    }

    /// Declares the bytes before the first buffered segment lost and goes on
    /// from there.
    fn skip_gap(&mut self, out: &mut dyn FnMut(Piece<'_>)) {
        let Some((&start, _)) = self.pending.first_key_value() else {
            return;
        };
        let lost = start - self.next;
        self.stats.missing_bytes += lost;
        self.next = start;
        out(Piece::Gap(lost));
        self.drain(out);
    }

    /// End of the capture: whatever is still buffered lies after a hole.
    pub fn finish(&mut self, out: &mut dyn FnMut(Piece<'_>)) {
        while !self.pending.is_empty() {
            self.skip_gap(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds (seq, data) segments; returns the bytes delivered and the gaps.
    fn run(base: u32, segments: &[(u32, &[u8])]) -> (Vec<u8>, Vec<u64>, TcpStats) {
        let mut r = Reassembler::default();
        r.syn(base.wrapping_sub(1));
        let mut bytes = Vec::new();
        let mut gaps = Vec::new();
        let mut sink = |p: Piece<'_>| match p {
            Piece::Data(d) => bytes.extend_from_slice(d),
            Piece::Gap(n) => gaps.push(n),
        };
        for (seq, data) in segments {
            r.segment(*seq, data, &mut sink);
        }
        r.finish(&mut sink);
        (bytes, gaps, r.stats)
    }

    #[test]
    fn in_order_segments_are_delivered_as_they_come() {
        let (bytes, gaps, stats) = run(100, &[(100, b"abc"), (103, b"def")]);
        assert_eq!(bytes, b"abcdef");
        assert!(gaps.is_empty());
        assert_eq!(stats.segments, 2);
        assert_eq!(stats.retransmitted, 0);
    }

    #[test]
    fn a_retransmitted_segment_is_counted_once_and_not_delivered_again() {
        let (bytes, _, stats) = run(100, &[(100, b"abc"), (100, b"abc"), (103, b"def")]);
        assert_eq!(bytes, b"abcdef");
        assert_eq!(stats.retransmitted, 1);
    }

    #[test]
    fn out_of_order_segments_wait_for_the_missing_one() {
        let (bytes, gaps, stats) = run(100, &[(106, b"ghi"), (103, b"def"), (100, b"abc")]);
        assert_eq!(bytes, b"abcdefghi");
        assert!(gaps.is_empty());
        assert_eq!(stats.out_of_order, 2);
    }

    #[test]
    fn an_overlapping_retransmission_delivers_only_its_new_bytes() {
        let (bytes, _, _) = run(100, &[(100, b"abc"), (101, b"bcdef")]);
        assert_eq!(bytes, b"abcdef");
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let base = u32::MAX - 1;
        let (bytes, gaps, _) = run(base, &[(base, b"ab"), (0, b"cd"), (2, b"ef")]);
        assert_eq!(bytes, b"abcdef");
        assert!(gaps.is_empty());
    }

    #[test]
    fn a_segment_never_seen_becomes_a_gap_at_the_end() {
        let (bytes, gaps, stats) = run(100, &[(100, b"abc"), (106, b"ghi")]);
        assert_eq!(bytes, b"abcghi");
        assert_eq!(gaps, vec![3]);
        assert_eq!(stats.missing_bytes, 3);
    }

    #[test]
    fn buffering_is_bounded() {
        let mut r = Reassembler::default();
        r.syn(0);
        let chunk = vec![7u8; 1 << 20];
        let mut gaps = Vec::new();
        let mut delivered = 0u64;
        let mut sink = |p: Piece<'_>| match p {
            Piece::Data(d) => delivered += d.len() as u64,
            Piece::Gap(n) => gaps.push(n),
        };
        // Byte 1..10 never arrives; 17 MiB arrive after it.
        for i in 0..17u32 {
            r.segment(11 + i * (1 << 20), &chunk, &mut sink);
        }
        assert_eq!(gaps, vec![10]);
        assert_eq!(delivered, 17 << 20);
        assert!(r.pending_bytes <= MAX_PENDING);
    }

    #[test]
    fn without_a_syn_the_first_segment_starts_the_stream() {
        let mut r = Reassembler::default();
        let mut bytes = Vec::new();
        let mut sink = |p: Piece<'_>| {
            if let Piece::Data(d) = p {
                bytes.extend_from_slice(d)
            }
        };
        r.segment(5000, b"xy", &mut sink);
        r.segment(5002, b"z", &mut sink);
        assert_eq!(bytes, b"xyz");
    }
}
