//! Handshake message reassembly (RFC 6347 §4.2.2, §4.2.3): fragments in, whole
//! messages out in message_seq order, each re-encoded unfragmented.
//!
//! Bounds (DESIGN.md: every buffer is bounded, a limit that is hit drops and
//! counts):
//! - only message_seq in next_seq..=next_seq+16 is buffered; later ones are
//!   dropped and counted, earlier ones (retransmissions) are ignored;
//! - memory grows with the bytes that arrive, never with the length a
//!   fragment declares: a message holds its received bytes as chunks (sorted,
//!   disjoint, non-adjacent), and costs those bytes plus `GAP_COST` for each
//!   gap between chunks, which bounds the chunks' overhead. A whole message at
//!   next_seq is delivered at once and costs nothing;
//! - the cost of everything buffered stays within `max_buffered_bytes`, and,
//!   with a shared `ReassemblyBudget`, within what the budget grants the
//!   reassembler's source (reassembly_budget.rs). A
//!   fragment that does not fit is dropped and counted, except for the message
//!   at next_seq, which the peer cannot make progress without: if freeing the
//!   buffered later messages makes room, they are evicted, highest message_seq
//!   first, each eviction counted in `dropped`, until it fits;
//! - fragments that overlap must agree on the bytes they share: a conflicting
//!   retransmission is an attack or a bug, and a DecodeError (RFC 6347 §4.2.3
//!   leaves it to the implementation). Identical overlaps are fine.

use std::sync::Arc;

use crate::errors::{CoreError, CoreResult};
use crate::hs_codec::parse_fragments;
use crate::reassembly_budget::ReassemblyBudget;

/// msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3).
pub const HANDSHAKE_HEADER_LENGTH: usize = 12;
/// How far past next_seq a message may be buffered.
pub const MAX_LOOKAHEAD: u32 = 16;
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 32768;
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 65536;
/// What each gap between received chunks of a message costs: about the
/// memory a chunk takes besides its bytes.
pub const GAP_COST: u64 = 64;

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
    /// Received body bytes as (offset, bytes): sorted, disjoint, non-adjacent.
    chunks: Vec<(u32, Vec<u8>)>,
    /// The bytes in `chunks`.
    bytes: u64,
}

/// Where a fragment [lo, hi) lands among a message's chunks.
struct Placement {
    /// chunks[first..last] overlap or touch it and merge with it into one.
    first: usize,
    last: usize,
    /// What the message costs once the fragment is in.
    cost_after: u64,
    new_bytes: u64,
}

fn cost(bytes: u64, chunks: usize) -> u64 {
    let gaps = chunks.saturating_sub(1) as u64;
    bytes.saturating_add(GAP_COST.saturating_mul(gaps))
}

fn chunk_end(start: u32, data: &[u8]) -> u32 {
    // A chunk lies within a message of at most 2^24 - 1 bytes.
    start.saturating_add(u32::try_from(data.len()).unwrap_or(u32::MAX))
}

impl Pending {
    fn new(header: &FragmentHeader) -> Self {
        Pending {
            message_seq: header.message_seq,
            msg_type: header.msg_type,
            length: header.length,
            chunks: Vec::new(),
            bytes: 0,
        }
    }

    fn cost(&self) -> u64 {
        cost(self.bytes, self.chunks.len())
    }

    fn is_complete(&self) -> bool {
        self.length == 0 || self.bytes == u64::from(self.length)
    }

    /// Where `body` at `lo` goes; a DecodeError if it disagrees with bytes
    /// already received.
    fn place(&self, lo: u32, body: &[u8]) -> CoreResult<Placement> {
        let hi = chunk_end(lo, body);
        let first = self
            .chunks
            .partition_point(|(start, data)| chunk_end(*start, data) < lo);
        let (mut last, mut span_lo, mut span_hi, mut touched) = (first, lo, hi, 0u64);
        while let Some((start, data)) = self.chunks.get(last) {
            if *start > hi {
                break;
            }
            let end = chunk_end(*start, data);
            let (a, b) = (lo.max(*start), hi.min(end));
            if a < b {
                let ours = body.get((a - lo) as usize..(b - lo) as usize);
                let theirs = data.get((a - start) as usize..(b - start) as usize);
                if ours != theirs {
                    return Err(CoreError::decode(format!(
                        "overlapping fragments of handshake message_seq {} disagree on bytes \
                         {a}..{b}: a conflicting retransmission",
                        self.message_seq
                    )));
                }
            }
            span_lo = span_lo.min(*start);
            span_hi = span_hi.max(end);
            touched += data.len() as u64;
            last += 1;
        }
        let new_bytes = u64::from(span_hi - span_lo).saturating_sub(touched);
        let chunks_after = self.chunks.len() - (last - first) + 1;
        Ok(Placement {
            first,
            last,
            cost_after: cost(self.bytes.saturating_add(new_bytes), chunks_after),
            new_bytes,
        })
    }

    /// Merge `body` at `lo` and the chunks it touches into one chunk.
    fn add(&mut self, placement: &Placement, lo: u32, body: &[u8]) {
        let hi = chunk_end(lo, body);
        let touched: Vec<(u32, Vec<u8>)> =
            self.chunks.drain(placement.first..placement.last).collect();
        let mut rest = touched.into_iter().peekable();
        let (start, mut data) = rest
            .next_if(|(start, _)| *start <= lo)
            .unwrap_or((lo, Vec::new()));
        let mut pos = chunk_end(start, &data);
        for (chunk_start, chunk) in rest {
            if pos < chunk_start {
                if let Some(gap) = body.get((pos - lo) as usize..(chunk_start - lo) as usize) {
                    data.extend_from_slice(gap);
                }
                pos = chunk_start;
            }
            if let Some(tail) = chunk.get((pos - chunk_start) as usize..) {
                data.extend_from_slice(tail);
            }
            pos = pos.max(chunk_end(chunk_start, &chunk));
        }
        if pos < hi {
            if let Some(tail) = body.get((pos - lo) as usize..) {
                data.extend_from_slice(tail);
            }
        }
        let index = placement.first.min(self.chunks.len());
        self.chunks.insert(index, (start, data));
        self.bytes = self.bytes.saturating_add(placement.new_bytes);
    }

    /// The complete message, unfragmented, with its 12-byte header.
    fn into_message(self) -> Vec<u8> {
        let header = FragmentHeader {
            msg_type: self.msg_type,
            length: self.length,
            message_seq: self.message_seq,
            fragment_offset: 0,
            fragment_length: self.length,
        };
        let mut message = Vec::with_capacity(HANDSHAKE_HEADER_LENGTH + self.length as usize);
        message.extend_from_slice(&header.to_bytes());
        for (_, data) in self.chunks {
            message.extend_from_slice(&data);
        }
        message
    }
}

/// What [`HandshakeReassembler::push_record`] did with a record's fragments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordPush<'a> {
    /// `(msg_type, message_seq, fragment)` of the fragments left to the
    /// caller (not pushed), in record order.
    pub judged: Vec<(u8, u16, &'a [u8])>,
    /// The messages the pushed fragments delivered, in order.
    pub messages: Vec<Vec<u8>>,
    /// Where the next call starts; 0 when the record is done.
    pub offset: usize,
}

#[derive(Debug)]
pub struct HandshakeReassembler {
    max_message_size: u64,
    max_buffered_bytes: u64,
    /// u32 so that delivering message_seq 65535 can move past it.
    next_seq: u32,
    /// Sorted by message_seq, at most MAX_LOOKAHEAD + 1 entries.
    pending: Vec<Pending>,
    /// The cost of everything in `pending`, all of it taken from `budget`.
    buffered_bytes: u64,
    dropped: u64,
    budget: Option<Arc<ReassemblyBudget>>,
    /// What the budget charges this reassembler's bytes to, besides its total.
    source: Option<Vec<u8>>,
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
            budget: None,
            source: None,
        }
    }
}

impl Drop for HandshakeReassembler {
    /// The connection goes: what it held goes back to the shared budget.
    fn drop(&mut self) {
        self.release(self.buffered_bytes);
    }
}

impl HandshakeReassembler {
    pub fn new(max_message_size: u64, max_buffered_bytes: u64, next_seq: u64) -> CoreResult<Self> {
        Ok(HandshakeReassembler {
            max_message_size,
            max_buffered_bytes,
            next_seq: check_next_seq(next_seq)?,
            pending: Vec::new(),
            buffered_bytes: 0,
            dropped: 0,
            budget: None,
            source: None,
        })
    }

    /// Draw on `budget`, shared with other reassemblers, besides the own
    /// cap, charging `source` (None: the budget's total alone). What was
    /// buffered before is discarded: it was not taken from `budget`.
    pub fn with_budget(mut self, budget: Arc<ReassemblyBudget>, source: Option<Vec<u8>>) -> Self {
        let held = self.buffered_bytes;
        self.release(held);
        self.pending.clear();
        self.budget = Some(budget);
        self.source = source;
        self
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
                freed = freed.saturating_add(p.cost());
            }
            keep
        });
        self.release(freed);
        Ok(())
    }

    /// Discard every buffered message and give its bytes back: the
    /// connection is going (not counted as dropped: no bound was hit).
    pub fn discard(&mut self) {
        self.pending.clear();
        let held = self.buffered_bytes;
        self.release(held);
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
        let mut out = Vec::new();
        let seq = u32::from(header.message_seq);
        if seq >= self.next_seq {
            if seq - self.next_seq > MAX_LOOKAHEAD {
                self.dropped += 1;
            } else if self.store(&header, body)? {
                // A whole message at next_seq: delivered as it came.
                out.push(fragment.to_vec());
                self.next_seq += 1;
            }
        }
        self.deliver(&mut out);
        Ok(out)
    }

    /// The handshake fragments of one record's payload from byte `offset` on
    /// (RFC 6347 §4.2.3), as a connection takes them: the framing of all of
    /// them is checked first (the errors of `hs_codec::parse_fragments`,
    /// DecodeError in Python; `offset` past the payload is a configuration
    /// error). With `push`, each fragment whose message_seq is not below
    /// next_seq is pushed, and the call stops after the first one that
    /// delivers messages, so that the caller handles them before the next
    /// fragment is judged; the fragments below next_seq (retransmissions) are
    /// left to the caller in `judged`. A push that fails after some fragment
    /// was left to the caller stops before that fragment instead, so that the
    /// caller judges those first and the next call fails. Without `push`
    /// (a connection that judges every fragment itself first) nothing is
    /// pushed and only the first fragment is returned in `judged`.
    pub fn push_record<'a>(
        &mut self,
        payload: &'a [u8],
        offset: usize,
        push: bool,
    ) -> CoreResult<RecordPush<'a>> {
        let rest = payload
            .get(offset..)
            .ok_or_else(|| CoreError::config("offset is past the end of the record"))?;
        let fragments = parse_fragments(rest).map_err(|e| CoreError::decode(e.to_string()))?;
        let mut out = RecordPush::default();
        let mut at = offset;
        for fragment in fragments {
            let start = at;
            at = at.saturating_add(fragment.bytes.len());
            let h = fragment.header;
            if !push || u32::from(h.message_seq) < self.next_seq {
                out.judged.push((h.msg_type, h.message_seq, fragment.bytes));
                if !push {
                    break;
                }
                continue;
            }
            match self.push(fragment.bytes) {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    out.messages = messages;
                    break;
                }
                Err(_) if !out.judged.is_empty() => {
                    out.offset = start;
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
        out.offset = if at >= payload.len() { 0 } else { at };
        Ok(out)
    }

    /// Buffer a fragment; true if it is the whole message at next_seq with
    /// nothing buffered for it, to be delivered without buffering.
    fn store(&mut self, header: &FragmentHeader, body: &[u8]) -> CoreResult<bool> {
        let seq = header.message_seq;
        let index = self.pending.partition_point(|p| p.message_seq < seq);
        let existing = self.pending.get(index).filter(|p| p.message_seq == seq);
        let (cost_before, placement) = match existing {
            Some(p) => {
                if p.msg_type != header.msg_type || p.length != header.length {
                    return Err(CoreError::decode(format!(
                        "fragments of message_seq {} disagree: msg_type {} length {} after msg_type {} length {}",
                        seq, header.msg_type, header.length, p.msg_type, p.length
                    )));
                }
                let placement = p.place(header.fragment_offset, body)?;
                if placement.new_bytes == 0 {
                    return Ok(false); // a retransmission: nothing new
                }
                (p.cost(), placement)
            }
            None => {
                if u32::from(seq) == self.next_seq
                    && header.fragment_offset == 0
                    && header.fragment_length == header.length
                {
                    return Ok(true);
                }
                if body.is_empty() && header.length > 0 {
                    return Ok(false); // nothing to hold
                }
                let placement = Pending::new(header).place(header.fragment_offset, body)?;
                (0, placement)
            }
        };
        if !self.make_room(u32::from(seq), cost_before, placement.cost_after) {
            return Ok(false);
        }
        let index = index.min(self.pending.len());
        if self
            .pending
            .get(index)
            .map_or(true, |p| p.message_seq != seq)
        {
            self.pending.insert(index, Pending::new(header));
        }
        if let Some(p) = self.pending.get_mut(index) {
            p.add(&placement, header.fragment_offset, body);
        }
        Ok(false)
    }

    /// Whether `cost` more bytes fit, once `freed` bytes are given back.
    fn fits(&self, cost: u64, freed: u64) -> (bool, bool) {
        let held = self.buffered_bytes.saturating_sub(freed);
        let own = held.saturating_add(cost) <= self.max_buffered_bytes;
        let shared = self.budget.as_ref().map_or(true, |b| {
            let (used, source_used) = b.state(self.source.as_deref());
            let source_used = source_used.map(|s| s.saturating_sub(freed));
            b.allows(used.saturating_sub(freed), source_used, cost)
        });
        (own, shared)
    }

    /// Account for a message whose cost goes from `before` to `after`; false
    /// (dropped and counted) if it does not fit. Only the message at next_seq
    /// evicts later ones, and only if that makes room.
    fn make_room(&mut self, seq: u32, before: u64, after: u64) -> bool {
        let Some(cost) = after.checked_sub(before) else {
            self.release(before - after);
            return true;
        };
        let mut freed = 0u64;
        if seq == self.next_seq && self.fits(cost, 0) != (true, true) {
            let later: u64 = self
                .pending
                .iter()
                .filter(|p| u32::from(p.message_seq) > seq)
                .map(Pending::cost)
                .sum();
            if self.fits(cost, later) == (true, true) {
                while self.fits(cost, 0) != (true, true) {
                    match self.pending.pop() {
                        Some(evicted) if u32::from(evicted.message_seq) > seq => {
                            self.release(evicted.cost());
                            self.dropped += 1;
                        }
                        Some(kept) => {
                            self.pending.push(kept);
                            break;
                        }
                        None => break,
                    }
                }
            } else {
                freed = later;
            }
        }
        let (own, shared) = self.fits(cost, freed);
        let taken = own
            && shared
            && self
                .budget
                .as_ref()
                .map_or(true, |b| b.try_take(self.source.as_deref(), cost));
        if !taken {
            self.dropped += 1;
            if own {
                if let Some(budget) = &self.budget {
                    budget.count_refusal();
                }
            }
            return false;
        }
        self.buffered_bytes = self.buffered_bytes.saturating_add(cost);
        true
    }

    fn release(&mut self, cost: u64) {
        self.buffered_bytes = self.buffered_bytes.saturating_sub(cost);
        if let Some(budget) = &self.budget {
            budget.give_back(self.source.as_deref(), cost);
        }
    }

    fn deliver(&mut self, out: &mut Vec<Vec<u8>>) {
        while self
            .pending
            .first()
            .is_some_and(|p| u32::from(p.message_seq) == self.next_seq && p.is_complete())
        {
            let p = self.pending.remove(0);
            self.release(p.cost());
            self.next_seq += 1;
            out.push(p.into_message());
        }
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
        // (offset, len) pieces with overlaps and duplicates, out of order,
        // and the cost after each: received bytes plus GAP_COST per gap.
        let gap = GAP_COST;
        let pieces = [
            (900, 100, 100),
            (0, 10, 110 + gap),
            (5, 300, 405 + gap),
            (5, 300, 405 + gap),
            (600, 350, 705 + gap),
            (300, 1, 705 + gap),
            (301, 299, 0),
            (0, 0, 0),
        ];
        let mut r = HandshakeReassembler::default();
        for (i, &(o, l, held)) in pieces.iter().enumerate() {
            let out = r.push(&frag(11, 0, &b, o, l)).unwrap();
            if i == 6 {
                assert_eq!(out, vec![expected.clone()]);
            } else {
                assert!(out.is_empty(), "piece {i}");
            }
            assert_eq!(r.buffered_bytes(), held, "piece {i}");
        }
        assert_eq!(r.next_seq(), 1);
        assert_eq!(r.dropped(), 0);
    }

    #[test]
    fn memory_grows_with_the_bytes_that_arrive() {
        // One byte that declares 32768 costs one byte, not 32768.
        let mut r = HandshakeReassembler::default();
        let b = body(32768, 1);
        assert!(r.push(&frag(16, 0, &b, 0, 1)).unwrap().is_empty());
        assert!(r.push(&frag(16, 1, &b, 0, 1)).unwrap().is_empty());
        assert_eq!(r.buffered_bytes(), 2);
        assert_eq!(r.pending.iter().map(|p| p.chunks.len()).sum::<usize>(), 2);
        assert!(r.pending.iter().all(|p| p.chunks[0].1.capacity() < 64));
        // A byte at the far end adds itself and one gap.
        assert!(r.push(&frag(16, 0, &b, 32767, 1)).unwrap().is_empty());
        assert_eq!(r.buffered_bytes(), 3 + GAP_COST);
        // Every other byte: the gaps' cost, not their bytes, reaches the cap.
        let mut r = HandshakeReassembler::new(32768, 4096, 0).unwrap();
        for o in (0..4096).step_by(2) {
            let _ = r.push(&frag(16, 0, &b, o, 1)).unwrap();
        }
        assert!(r.buffered_bytes() <= 4096);
        let kept = r.pending[0].chunks.len() as u64;
        assert_eq!(kept, 4096 / (GAP_COST + 1) + 1);
        assert_eq!(r.dropped(), 2048 - kept);
    }

    #[test]
    fn whole_message_at_next_seq_costs_nothing() {
        let budget = Arc::new(ReassemblyBudget::new(0, None).unwrap());
        let mut r = HandshakeReassembler::default().with_budget(budget.clone(), None);
        let m = whole(1, 0, &body(500, 2));
        assert_eq!(r.push(&m).unwrap(), vec![m]);
        // A later one must be buffered, and a zero budget refuses it.
        assert!(r.push(&whole(1, 2, &body(5, 2))).unwrap().is_empty());
        assert_eq!((r.dropped(), budget.refused()), (1, 1));
        // Zero-length messages cost nothing even when buffered.
        assert!(r.push(&whole(14, 2, &[])).unwrap().is_empty());
        let m1 = whole(1, 1, &body(7, 3));
        assert_eq!(r.push(&m1).unwrap(), vec![m1, whole(14, 2, &[])]);
        assert_eq!(r.next_seq(), 3);
    }

    #[test]
    fn overlapping_fragments_that_disagree_are_a_decode_error() {
        let b = body(100, 5);
        let mut forged = b.clone();
        forged[45] ^= 1;
        let mut r = HandshakeReassembler::default();
        assert!(r.push(&frag(11, 0, &b, 0, 50)).unwrap().is_empty());
        // Identical overlap (a retransmission): fine, nothing new held.
        assert!(r.push(&frag(11, 0, &b, 40, 10)).unwrap().is_empty());
        assert_eq!(r.buffered_bytes(), 50);
        // Same range, different content.
        assert!(is_decode(r.push(&frag(11, 0, &forged, 40, 20))));
        assert!(is_decode(r.push(&frag(11, 0, &forged, 0, 100))));
        // Nothing of the rejected fragments was taken.
        assert_eq!(r.buffered_bytes(), 50);
        assert_eq!(r.pending[0].chunks, vec![(0, b[..50].to_vec())]);
        // Bytes just past the conflict that do agree are fine.
        assert_eq!(
            r.push(&frag(11, 0, &forged, 46, 54)).unwrap(),
            vec![whole(11, 0, &b)]
        );
        // A complete message still waiting for an earlier one is checked too.
        let mut r = HandshakeReassembler::default();
        assert!(r.push(&whole(11, 1, &b)).unwrap().is_empty());
        assert!(r.push(&frag(11, 1, &b, 10, 10)).unwrap().is_empty());
        assert!(is_decode(r.push(&frag(11, 1, &forged, 40, 10))));
        // Spanning two chunks and the gap between them.
        let mut r = HandshakeReassembler::default();
        r.push(&frag(11, 0, &b, 0, 10)).unwrap();
        r.push(&frag(11, 0, &b, 50, 10)).unwrap();
        let mut late = b.clone();
        late[55] ^= 0x80;
        assert!(is_decode(r.push(&frag(11, 0, &late, 5, 60))));
        assert_eq!(r.buffered_bytes(), 20 + GAP_COST);
        assert!(r.push(&frag(11, 0, &b, 5, 60)).unwrap().is_empty());
        assert_eq!(r.buffered_bytes(), 65);
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
        // message 1 holds 10, message 2 another 10: both fit in 100
        assert!(r.push(&frag(1, 1, &big, 0, 10)).unwrap().is_empty());
        assert!(r.push(&frag(1, 2, &big, 0, 10)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (20, 0));
        // message 1 grows to 60: 70 held; message 2 cannot grow past 100
        assert!(r.push(&frag(1, 1, &big, 10, 50)).unwrap().is_empty());
        assert!(r.push(&frag(1, 2, &big, 10, 40)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (70, 1));
        // message 0 of 50 bytes fits only after evicting message 2, then 1
        let m0 = body(50, 9);
        assert!(r.push(&frag(0, 0, &m0, 0, 25)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (95, 1));
        assert!(r.push(&frag(0, 0, &m0, 30, 10)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (35 + GAP_COST, 3));
        assert_eq!(
            r.push(&frag(0, 0, &m0, 25, 25)).unwrap(),
            vec![whole(0, 0, &m0)]
        );
        assert_eq!(r.buffered_bytes(), 0);
        // message at next_seq larger than the whole cap: dropped once it
        // outgrows it, evicting nothing (it could not fit anyway)
        let huge = body(101, 0);
        assert!(r.push(&frag(1, 2, &huge, 0, 10)).unwrap().is_empty());
        assert!(r.push(&frag(1, 1, &huge, 0, 100)).unwrap().is_empty());
        assert!(r.push(&frag(1, 1, &huge, 100, 1)).unwrap().is_empty());
        assert_eq!((r.buffered_bytes(), r.dropped()), (100, 5));
        assert_eq!(r.next_seq(), 1);
    }

    #[test]
    fn shared_budget() {
        let budget = Arc::new(ReassemblyBudget::new(1000, Some(600)).unwrap());
        let shared = |source: &[u8]| {
            HandshakeReassembler::new(2000, 4000, 0)
                .unwrap()
                .with_budget(budget.clone(), Some(source.to_vec()))
        };
        let (large, small) = (body(2000, 4), body(150, 6));
        let (mut a1, mut a2, mut c) = (shared(b"a"), shared(b"a"), shared(b"c"));
        // One source stops at per_source, whatever its connections.
        assert!(a1.push(&frag(1, 1, &large, 0, 400)).unwrap().is_empty());
        assert!(a2.push(&frag(1, 1, &large, 0, 200)).unwrap().is_empty());
        assert!(a2.push(&frag(1, 1, &large, 200, 1)).unwrap().is_empty());
        assert_eq!(
            (a2.buffered_bytes(), a2.dropped(), budget.used()),
            (200, 1, 600)
        );
        assert_eq!((budget.held_by(b"a"), budget.refused()), (600, 1));
        // Another source still has room.
        assert!(c.push(&frag(2, 1, &small, 0, 100)).unwrap().is_empty());
        assert_eq!(c.push(&whole(2, 0, &body(9, 1))).unwrap().len(), 1);
        assert_eq!(
            c.push(&frag(2, 1, &small, 100, 50)).unwrap(),
            vec![whole(2, 1, &small)]
        );
        // Delivering gave its bytes back.
        assert_eq!(
            (c.buffered_bytes(), budget.used(), budget.sources()),
            (0, 600, 1)
        );
        // The message at next_seq evicts later ones when that makes room...
        assert!(a1.push(&frag(1, 0, &large, 0, 300)).unwrap().is_empty());
        assert_eq!(
            (a1.buffered_bytes(), a1.dropped(), budget.used()),
            (300, 1, 500)
        );
        // ...and is dropped alone when it would not.
        assert!(a2.push(&frag(1, 0, &large, 0, 500)).unwrap().is_empty());
        assert_eq!(
            (a2.buffered_bytes(), a2.dropped(), budget.refused()),
            (200, 2, 2)
        );
        // Resetting next_seq, discarding and dropping give everything back.
        a1.set_next_seq(5).unwrap();
        assert_eq!((a1.buffered_bytes(), budget.used()), (0, 200));
        let mut a3 = shared(b"a");
        assert!(a3.push(&frag(1, 1, &large, 0, 100)).unwrap().is_empty());
        a3.discard();
        assert_eq!(
            (a3.buffered_bytes(), a3.dropped(), budget.used()),
            (0, 0, 200)
        );
        drop(a2);
        assert_eq!((budget.used(), budget.sources()), (0, 0));
        // Without a source only the total applies.
        let mut n = HandshakeReassembler::default().with_budget(budget.clone(), None);
        assert!(n.push(&frag(1, 1, &large, 0, 1000)).unwrap().is_empty());
        assert!(n.push(&frag(1, 1, &large, 1000, 1)).unwrap().is_empty());
        assert_eq!(
            (n.buffered_bytes(), budget.used(), budget.refused()),
            (1000, 1000, 3)
        );
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
        assert_eq!(r.buffered_bytes(), 15);
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

    #[test]
    fn push_record_stops_after_a_delivery() {
        let mut r = HandshakeReassembler::default();
        let (a, b, c) = (
            whole(1, 0, &body(5, 1)),
            whole(2, 1, &body(3, 2)),
            whole(3, 2, b""),
        );
        let payload = [a.clone(), b.clone(), c.clone()].concat();
        let first = r.push_record(&payload, 0, true).unwrap();
        assert_eq!(first.messages, vec![a.clone()]);
        assert!(first.judged.is_empty());
        assert_eq!(first.offset, a.len());
        let second = r.push_record(&payload, first.offset, true).unwrap();
        assert_eq!(second.messages, vec![b.clone()]);
        let third = r.push_record(&payload, second.offset, true).unwrap();
        assert_eq!((third.messages, third.offset), (vec![c], 0));
        // Again: all below next_seq now, left to the caller, nothing pushed.
        let again = r.push_record(&payload, 0, true).unwrap();
        assert_eq!(again.judged.len(), 3);
        assert_eq!(again.judged[1], (2, 1, &b[..]));
        assert!(again.messages.is_empty());
        assert_eq!(again.offset, 0);
        assert_eq!(r.next_seq(), 3);
    }

    #[test]
    fn push_record_fragments_and_judging() {
        let mut r = HandshakeReassembler::default();
        let m = body(40, 3);
        let payload = [frag(1, 0, &m, 0, 10), frag(1, 0, &m, 10, 30)].concat();
        let out = r.push_record(&payload, 0, true).unwrap();
        assert_eq!(out.messages, vec![whole(1, 0, &m)]);
        assert_eq!(out.offset, 0);
        // Without push: the first fragment only, untouched.
        let mut q = HandshakeReassembler::default();
        let out = q.push_record(&payload, 0, false).unwrap();
        assert_eq!(out.judged, vec![(1, 0, &payload[..22])]);
        assert_eq!(out.offset, 22);
        assert_eq!(q.buffered_bytes(), 0);
        let out = q.push_record(&payload, 22, false).unwrap();
        assert_eq!(out.offset, 0);
        assert_eq!(q.next_seq(), 0);
    }

    #[test]
    fn push_record_checks_the_whole_record_first() {
        let mut r = HandshakeReassembler::default();
        let good = whole(1, 0, b"abc");
        let payload = [&good[..], &[1, 0, 0]].concat();
        assert!(matches!(
            r.push_record(&payload, 0, true),
            Err(CoreError::Decode(_))
        ));
        assert_eq!(r.next_seq(), 0);
        assert!(matches!(
            r.push_record(b"", 0, true),
            Err(CoreError::Decode(_))
        ));
        assert!(matches!(
            r.push_record(&good, 99, true),
            Err(CoreError::Configuration(_))
        ));
    }

    #[test]
    fn push_record_failure_after_a_judged_fragment() {
        let mut r = HandshakeReassembler::new(10, 100, 1).unwrap();
        let old = whole(1, 0, b"abc");
        let big = whole(2, 1, &body(20, 0)); // past max_message_size
        let payload = [old.clone(), big].concat();
        let out = r.push_record(&payload, 0, true).unwrap();
        assert_eq!(out.judged, vec![(1, 0, &old[..])]);
        assert_eq!(out.offset, old.len());
        assert!(matches!(
            r.push_record(&payload, out.offset, true),
            Err(CoreError::Decode(_))
        ));
    }
}
