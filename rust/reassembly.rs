//! Handshake message reassembly (RFC 6347 §4.2.2, §4.2.3): fragments in, whole
//! messages out in message_seq order, each re-encoded unfragmented.
//!
//! Bounds (DESIGN.md: every buffer is bounded, a limit that is hit drops and
//! counts):
//! - only message_seq in next_seq..=next_seq+16 is buffered; later ones are
//!   dropped and counted, earlier ones (retransmissions) are ignored;
//! - a buffered message costs its full `length` from its first fragment on,
//!   and the sum stays within `max_buffered_bytes`. The first fragment of a
//!   message that does not fit is dropped and counted, except for the message
//!   at next_seq, which the peer cannot make progress without: if it alone fits
//!   `max_buffered_bytes`, buffered later messages are evicted, highest
//!   message_seq first, each eviction counted in `dropped`, until it fits;
//! - received byte ranges are a sorted list of disjoint, non-adjacent ranges,
//!   so at most length/2 + 1 of them, and a push costs O(ranges + fragment).

use crate::errors::{CoreError, CoreResult};

/// msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3).
pub const HANDSHAKE_HEADER_LENGTH: usize = 12;
/// How far past next_seq a message may be buffered.
pub const MAX_LOOKAHEAD: u32 = 16;
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 32768;
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 65536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    pub msg_type: u8,
    pub length: u32,
    pub message_seq: u16,
    pub fragment_offset: u32,
    pub fragment_length: u32,
}

fn u24(b: [u8; 3]) -> u32 {
    let [a, b, c] = b;
    u32::from_be_bytes([0, a, b, c])
}

fn u24_bytes(v: u32) -> [u8; 3] {
    let [_, a, b, c] = v.to_be_bytes();
    [a, b, c]
}

impl FragmentHeader {
    /// Parse one fragment (header + body of exactly fragment_length bytes) and
    /// check it is self-consistent.
    pub fn parse(fragment: &[u8]) -> CoreResult<(Self, &[u8])> {
        let (head, body) = fragment.split_at_checked(HANDSHAKE_HEADER_LENGTH).ok_or_else(|| {
            CoreError::decode(format!(
                "handshake fragment is {} bytes, shorter than its {HANDSHAKE_HEADER_LENGTH}-byte header",
                fragment.len()
            ))
        })?;
        let head: &[u8; HANDSHAKE_HEADER_LENGTH] = head
            .try_into()
            .map_err(|_| CoreError::decode("handshake fragment header is truncated"))?;
        let [t, l0, l1, l2, s0, s1, o0, o1, o2, f0, f1, f2] = *head;
        let header = FragmentHeader {
            msg_type: t,
            length: u24([l0, l1, l2]),
            message_seq: u16::from_be_bytes([s0, s1]),
            fragment_offset: u24([o0, o1, o2]),
            fragment_length: u24([f0, f1, f2]),
        };
        if body.len() != header.fragment_length as usize {
            return Err(CoreError::decode(format!(
                "handshake fragment body is {} bytes but its fragment_length is {}",
                body.len(),
                header.fragment_length
            )));
        }
        // Both are 24-bit, so the sum cannot overflow u32.
        if header.fragment_offset + header.fragment_length > header.length {
            return Err(CoreError::decode(format!(
                "handshake fragment covers bytes {}..{} of a {}-byte message",
                header.fragment_offset,
                header.fragment_offset + header.fragment_length,
                header.length
            )));
        }
        Ok((header, body))
    }

    pub fn to_bytes(&self) -> [u8; HANDSHAKE_HEADER_LENGTH] {
        let [l0, l1, l2] = u24_bytes(self.length);
        let [s0, s1] = self.message_seq.to_be_bytes();
        let [o0, o1, o2] = u24_bytes(self.fragment_offset);
        let [f0, f1, f2] = u24_bytes(self.fragment_length);
        [self.msg_type, l0, l1, l2, s0, s1, o0, o1, o2, f0, f1, f2]
    }
}

/// One message being collected.
#[derive(Debug)]
struct Pending {
    message_seq: u16,
    msg_type: u8,
    length: u32,
    /// The unfragmented message: 12-byte header then `length` body bytes,
    /// allocated once at full size so delivery moves it out without a copy.
    message: Vec<u8>,
    /// Received body ranges [start, end): sorted, disjoint, non-adjacent.
    received: Vec<(u32, u32)>,
}

impl Pending {
    fn new(header: &FragmentHeader) -> Self {
        let unfragmented = FragmentHeader {
            fragment_offset: 0,
            fragment_length: header.length,
            ..*header
        };
        let mut message = vec![0u8; HANDSHAKE_HEADER_LENGTH + header.length as usize];
        if let Some(head) = message.get_mut(..HANDSHAKE_HEADER_LENGTH) {
            head.copy_from_slice(&unfragmented.to_bytes());
        }
        Pending {
            message_seq: header.message_seq,
            msg_type: header.msg_type,
            length: header.length,
            message,
            received: Vec::new(),
        }
    }

    fn is_complete(&self) -> bool {
        self.length == 0 || self.received.as_slice() == [(0, self.length)]
    }

    fn add(&mut self, offset: u32, body: &[u8]) {
        if body.is_empty() || self.is_complete() {
            return;
        }
        let start = offset as usize + HANDSHAKE_HEADER_LENGTH;
        // FragmentHeader::parse checked offset + len <= length.
        if let Some(dst) = self.message.get_mut(start..start + body.len()) {
            dst.copy_from_slice(body);
        } else {
            return;
        }
        let (mut lo, mut hi) = (offset, offset + body.len() as u32);
        let first = self.received.partition_point(|&(_, end)| end < lo);
        let mut last = first;
        while let Some(&(s, e)) = self.received.get(last) {
            if s > hi {
                break;
            }
            lo = lo.min(s);
            hi = hi.max(e);
            last += 1;
        }
        self.received.splice(first..last, [(lo, hi)]);
    }
}

#[derive(Debug)]
pub struct HandshakeReassembler {
    max_message_size: u64,
    max_buffered_bytes: u64,
    /// u32 so that delivering message_seq 65535 can move past it.
    next_seq: u32,
    /// Sorted by message_seq, at most MAX_LOOKAHEAD + 1 entries.
    pending: Vec<Pending>,
    buffered_bytes: u64,
    dropped: u64,
}

fn check_next_seq(value: u64) -> CoreResult<u32> {
    u16::try_from(value).map(u32::from).map_err(|_| {
        CoreError::config(format!(
            "next_seq must be a message_seq in 0..=65535, got {value}"
        ))
    })
}

impl Default for HandshakeReassembler {
    fn default() -> Self {
        HandshakeReassembler {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            next_seq: 0,
            pending: Vec::new(),
            buffered_bytes: 0,
            dropped: 0,
        }
    }
}

impl HandshakeReassembler {
    pub fn new(max_message_size: u64, max_buffered_bytes: u64, next_seq: u64) -> CoreResult<Self> {
        Ok(HandshakeReassembler {
            max_message_size,
            max_buffered_bytes,
            next_seq: check_next_seq(next_seq)?,
            ..Self::default()
        })
    }

    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Move the expected message_seq (a new handshake); buffered messages
    /// below it are discarded (not counted as dropped: no bound was hit).
    pub fn set_next_seq(&mut self, value: u64) -> CoreResult<()> {
        let next = check_next_seq(value)?;
        self.next_seq = next;
        let mut freed = 0u64;
        self.pending.retain(|p| {
            let keep = u32::from(p.message_seq) >= next;
            if !keep {
                freed += u64::from(p.length);
            }
            keep
        });
        self.buffered_bytes = self.buffered_bytes.saturating_sub(freed);
        Ok(())
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.buffered_bytes
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn max_message_size(&self) -> u64 {
        self.max_message_size
    }

    pub fn max_buffered_bytes(&self) -> u64 {
        self.max_buffered_bytes
    }

    /// Take one fragment; return the messages that became deliverable, in
    /// order. Errors only for a fragment that cannot be decoded or contradicts
    /// an earlier fragment of the same message (DecodeError in Python).
    pub fn push(&mut self, fragment: &[u8]) -> CoreResult<Vec<Vec<u8>>> {
        let (header, body) = FragmentHeader::parse(fragment)?;
        if u64::from(header.length) > self.max_message_size {
            return Err(CoreError::decode(format!(
                "handshake message of {} bytes exceeds max_message_size ({})",
                header.length, self.max_message_size
            )));
        }
        let seq = u32::from(header.message_seq);
        if seq >= self.next_seq {
            if seq - self.next_seq > MAX_LOOKAHEAD {
                self.dropped += 1;
            } else {
                self.store(&header, body)?;
            }
        }
        Ok(self.deliver())
    }

    fn store(&mut self, header: &FragmentHeader, body: &[u8]) -> CoreResult<()> {
        let index = self
            .pending
            .partition_point(|p| p.message_seq < header.message_seq);
        if let Some(p) = self
            .pending
            .get_mut(index)
            .filter(|p| p.message_seq == header.message_seq)
        {
            if p.msg_type != header.msg_type || p.length != header.length {
                return Err(CoreError::decode(format!(
                    "fragments of message_seq {} disagree: msg_type {} length {} after msg_type {} length {}",
                    header.message_seq, header.msg_type, header.length, p.msg_type, p.length
                )));
            }
            p.add(header.fragment_offset, body);
            return Ok(());
        }
        let cost = u64::from(header.length);
        if self.buffered_bytes.saturating_add(cost) > self.max_buffered_bytes {
            let is_next = u32::from(header.message_seq) == self.next_seq;
            if !is_next || cost > self.max_buffered_bytes {
                self.dropped += 1;
                return Ok(());
            }
            // Everything buffered is later than next_seq: evict from the top.
            while self.buffered_bytes.saturating_add(cost) > self.max_buffered_bytes {
                let Some(evicted) = self.pending.pop() else {
                    break;
                };
                self.buffered_bytes = self
                    .buffered_bytes
                    .saturating_sub(u64::from(evicted.length));
                self.dropped += 1;
            }
        }
        let mut p = Pending::new(header);
        p.add(header.fragment_offset, body);
        let index = index.min(self.pending.len());
        self.pending.insert(index, p);
        self.buffered_bytes = self.buffered_bytes.saturating_add(cost);
        Ok(())
    }

    fn deliver(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self
            .pending
            .first()
            .is_some_and(|p| u32::from(p.message_seq) == self.next_seq && p.is_complete())
        {
            let p = self.pending.remove(0);
            self.buffered_bytes = self.buffered_bytes.saturating_sub(u64::from(p.length));
            self.next_seq += 1;
            out.push(p.message);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(msg_type: u8, seq: u16, body: &[u8], offset: usize, len: usize) -> Vec<u8> {
        let h = FragmentHeader {
            msg_type,
            length: body.len() as u32,
            message_seq: seq,
            fragment_offset: offset as u32,
            fragment_length: len as u32,
        };
        [&h.to_bytes()[..], &body[offset..offset + len]].concat()
    }

    fn whole(msg_type: u8, seq: u16, body: &[u8]) -> Vec<u8> {
        frag(msg_type, seq, body, 0, body.len())
    }

    fn body(n: usize, salt: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
            .collect()
    }

    fn is_decode(r: CoreResult<Vec<Vec<u8>>>) -> bool {
        matches!(r, Err(CoreError::Decode(_)))
    }

    #[test]
    fn whole_messages_in_order() {
        let mut r = HandshakeReassembler::default();
        let m0 = whole(1, 0, &body(100, 1));
        assert_eq!(r.push(&m0).unwrap(), vec![m0.clone()]);
        assert_eq!(r.next_seq(), 1);
        // retransmission of an old message: ignored
        assert!(r.push(&m0).unwrap().is_empty());
        assert_eq!(r.dropped(), 0);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn zero_length_message() {
        let mut r = HandshakeReassembler::new(100, 100, 3).unwrap();
        let done = whole(14, 3, &[]);
        assert_eq!(done.len(), 12);
        assert_eq!(r.push(&done).unwrap(), vec![done]);
        assert_eq!(r.next_seq(), 4);
    }

    #[test]
    fn shuffled_overlapping_duplicate_fragments() {
        let b = body(1000, 7);
        let expected = whole(11, 0, &b);
        // (offset, len) pieces with overlaps and duplicates, out of order.
        let pieces = [
            (900, 100),
            (0, 10),
            (5, 300),
            (5, 300),
            (600, 350),
            (300, 1),
            (301, 299),
            (0, 0),
        ];
        let mut r = HandshakeReassembler::default();
        for (i, &(o, l)) in pieces.iter().enumerate() {
            let out = r.push(&frag(11, 0, &b, o, l)).unwrap();
            if i == 6 {
                assert_eq!(out, vec![expected.clone()]);
            } else {
                assert!(out.is_empty(), "piece {i}");
                if i < 6 {
                    assert_eq!(r.buffered_bytes(), 1000);
                }
            }
        }
        assert_eq!(r.next_seq(), 1);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn every_byte_separately_in_reverse() {
        let b = body(257, 3);
        let mut r = HandshakeReassembler::default();
        for o in (0..b.len()).rev() {
            let out = r.push(&frag(2, 0, &b, o, 1)).unwrap();
            assert_eq!(out.is_empty(), o != 0);
        }
        // Interleaved odd/even bytes exercise many disjoint ranges.
        let mut r = HandshakeReassembler::default();
        let order: Vec<usize> = (0..b.len())
            .step_by(2)
            .chain((1..b.len()).step_by(2))
            .collect();
        let mut delivered = vec![];
        for o in order {
            delivered.extend(r.push(&frag(2, 0, &b, o, 1)).unwrap());
        }
        assert_eq!(delivered, vec![whole(2, 0, &b)]);
    }

    #[test]
    fn later_messages_wait_for_earlier() {
        let (b0, b1, b2) = (body(50, 1), body(60, 2), body(0, 3));
        let mut r = HandshakeReassembler::default();
        assert!(r.push(&whole(2, 2, &b2)).unwrap().is_empty());
        assert!(r.push(&frag(1, 1, &b1, 30, 30)).unwrap().is_empty());
        assert!(r.push(&frag(1, 1, &b1, 0, 30)).unwrap().is_empty());
        assert_eq!(r.buffered_bytes(), 60);
        let out = r.push(&whole(0, 0, &b0)).unwrap();
        assert_eq!(
            out,
            vec![whole(0, 0, &b0), whole(1, 1, &b1), whole(2, 2, &b2)]
        );
        assert_eq!(r.next_seq(), 3);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn lookahead_bound() {
        let mut r = HandshakeReassembler::new(1000, 100_000, 10).unwrap();
        assert!(r.push(&whole(1, 26, &body(5, 0))).unwrap().is_empty());
        assert_eq!(r.dropped(), 0);
        assert_eq!(r.buffered_bytes(), 5);
        assert!(r.push(&whole(1, 27, &body(5, 0))).unwrap().is_empty());
        assert_eq!(r.dropped(), 1);
        assert!(r.push(&whole(1, u16::MAX, &body(5, 0))).unwrap().is_empty());
        assert_eq!(r.dropped(), 2);
        assert!(r.push(&whole(1, 9, &body(5, 0))).unwrap().is_empty());
        assert_eq!(r.dropped(), 2);
    }

    #[test]
    fn buffer_budget_and_eviction() {
        let mut r = HandshakeReassembler::new(1000, 100, 0).unwrap();
        let big = body(60, 0);
        // message 1 buffered (60), message 2 would exceed 100: dropped
        assert!(r.push(&frag(1, 1, &big, 0, 10)).unwrap().is_empty());
        assert!(r.push(&frag(1, 2, &big, 0, 10)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (60, 1));
        // further fragments of the buffered message are still taken
        assert!(r.push(&frag(1, 1, &big, 10, 50)).unwrap().is_empty());
        assert_eq!(r.dropped(), 1);
        // message 0 of 50 bytes fits only after evicting message 1
        let m0 = body(50, 9);
        assert!(r.push(&frag(0, 0, &m0, 0, 25)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (50, 2));
        assert_eq!(
            r.push(&frag(0, 0, &m0, 25, 25)).unwrap(),
            vec![whole(0, 0, &m0)]
        );
        assert_eq!(r.buffered_bytes(), 0);
        // message at next_seq larger than the whole budget: dropped
        let huge = body(101, 0);
        assert!(r.push(&whole(1, 1, &huge)).unwrap().is_empty());
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.next_seq(), 1);
    }

    #[test]
    fn decode_errors() {
        let mut r = HandshakeReassembler::new(100, 1000, 0).unwrap();
        assert!(is_decode(r.push(&[])));
        assert!(is_decode(r.push(&[0; 11])));
        let b = body(20, 0);
        let mut f = frag(1, 0, &b, 0, 10);
        f.push(0); // body longer than fragment_length
        assert!(is_decode(r.push(&f)));
        assert!(is_decode(r.push(&frag(1, 0, &b, 0, 10)[..21])));
        // offset + fragment_length past the message length
        let mut f = frag(1, 0, &b, 10, 10);
        f[3] = 19;
        assert!(is_decode(r.push(&f)));
        // over max_message_size
        assert!(is_decode(r.push(&whole(1, 0, &body(101, 0)))));
        // inconsistent msg_type / length with an earlier fragment
        assert!(r.push(&frag(1, 0, &b, 0, 5)).unwrap().is_empty());
        assert!(is_decode(r.push(&frag(2, 0, &b, 5, 5))));
        assert!(is_decode(r.push(&frag(1, 0, &body(21, 0), 5, 5))));
        // the good fragments still complete it
        assert_eq!(
            r.push(&frag(1, 0, &b, 5, 15)).unwrap(),
            vec![whole(1, 0, &b)]
        );
        // 24-bit extremes do not overflow
        let mut f = vec![
            1, 0xFF, 0xFF, 0xFF, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        assert!(is_decode(r.push(&f)));
        f.truncate(12);
        f[9..12].copy_from_slice(&[0, 0, 0]);
        assert!(is_decode(r.push(&f))); // length over max_message_size
    }

    #[test]
    fn next_seq_setter() {
        let mut r = HandshakeReassembler::default();
        assert!(HandshakeReassembler::new(1, 1, 65536).is_err());
        assert!(r.set_next_seq(65536).is_err());
        assert!(r.push(&frag(1, 1, &body(40, 0), 0, 5)).unwrap().is_empty());
        assert!(r.push(&whole(1, 3, &body(10, 0))).unwrap().is_empty());
        assert_eq!(r.buffered_bytes(), 50);
        r.set_next_seq(2).unwrap();
        assert_eq!(r.buffered_bytes(), 10);
        assert_eq!(r.next_seq(), 2);
        r.set_next_seq(3).unwrap();
        // the waiting complete message 3 comes out on the next push
        assert_eq!(
            r.push(&whole(1, 0, &[])).unwrap(),
            vec![whole(1, 3, &body(10, 0))]
        );
        // message_seq 65535 can be delivered; next_seq then moves past it
        r.set_next_seq(65535).unwrap();
        assert_eq!(r.push(&whole(1, 65535, &[1])).unwrap().len(), 1);
        assert_eq!(r.next_seq(), 65536);
        assert!(r.push(&whole(1, 65535, &[1])).unwrap().is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0xDEAD_BEEF;
        let mut r = HandshakeReassembler::new(300, 600, 0).unwrap();
        for n in 0..2000usize {
            let len = n % 40;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            if buf.len() >= 12 {
                // make the header plausible so the stateful paths run
                buf[1] = 0;
                buf[4] = 0;
                buf[5] %= 4;
                buf[6] = 0;
                buf[9] = 0;
                buf[10] = 0;
                buf[11] = (len - 12) as u8;
            }
            let _ = r.push(&buf);
            assert!(r.buffered_bytes() <= 600);
        }
    }
}
