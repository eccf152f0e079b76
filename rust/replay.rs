//! Anti-replay window for one epoch (RFC 6347 §4.1.2.6).
//!
//! A ring of 64-bit words indexed by `seq / 64` (the layout of RFC 6479):
//! advancing the window clears the words it moves into instead of shifting
//! the whole bitmap, so an accept costs O(words skipped), at most O(size/64).
//! One spare word keeps every sequence number inside the window addressable
//! when the window does not start on a word boundary.

use crate::errors::{CoreError, CoreResult};
use crate::record::MAX_SEQUENCE_NUMBER;

pub const DEFAULT_WINDOW_SIZE: usize = 64;
pub const MAX_WINDOW_SIZE: usize = 8192;

#[derive(Clone, Debug)]
pub struct ReplayWindow {
    size: u64,
    highest: Option<u64>,
    words: Box<[u64]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        // DEFAULT_WINDOW_SIZE is in range by construction.
        Self::with_size(DEFAULT_WINDOW_SIZE)
    }
}

impl ReplayWindow {
    pub fn new(size: u64) -> CoreResult<Self> {
        match usize::try_from(size) {
            Ok(s) if (1..=MAX_WINDOW_SIZE).contains(&s) => Ok(Self::with_size(s)),
            _ => Err(CoreError::config(format!(
                "replay window size must be in 1..={MAX_WINDOW_SIZE}, got {size}"
            ))),
        }
    }

    fn with_size(size: usize) -> Self {
        let words = size.div_ceil(64) + 1;
        ReplayWindow {
            size: size as u64,
            highest: None,
            words: vec![0u64; words].into_boxed_slice(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The window in canonical form, for persisting it: the highest accepted
    /// sequence number and `size.div_ceil(8)` bytes in which bit `i` (byte
    /// `i / 8`, bit `i % 8`, least significant first) says whether
    /// `highest - i` was accepted. Empty bytes before the first record.
    pub fn export(&self) -> (Option<u64>, Vec<u8>) {
        let Some(h) = self.highest else {
            return (None, Vec::new());
        };
        let mut bitmap = vec![0u8; (self.size as usize).div_ceil(8)];
        // h <= 2**48 - 1, so h + 1 cannot overflow.
        for offset in 0..self.size.min(h + 1) {
            if self.is_set(h - offset) {
                if let Some(b) = bitmap.get_mut((offset / 8) as usize) {
                    *b |= 1 << (offset % 8);
                }
            }
        }
        (self.highest, bitmap)
    }

    /// The inverse of [`export`](Self::export). The bitmap must be
    /// canonical: the highest itself accepted, no bit past the window or
    /// below sequence number 0.
    pub fn restore(size: u64, highest: Option<u64>, bitmap: &[u8]) -> CoreResult<Self> {
        let mut window = Self::new(size)?;
        let Some(h) = highest else {
            if !bitmap.is_empty() {
                return Err(CoreError::config(
                    "a replay window with no highest has no bitmap",
                ));
            }
            return Ok(window);
        };
        if h > MAX_SEQUENCE_NUMBER || bitmap.len() != (size as usize).div_ceil(8) {
            return Err(CoreError::config(
                "a replay window's bitmap is size/8 bytes and its highest at most 2**48-1",
            ));
        }
        if bitmap.first().map_or(true, |b| b & 1 == 0) {
            return Err(CoreError::config(
                "a replay window's highest must be marked accepted",
            ));
        }
        window.highest = Some(h);
        for (index, &byte) in bitmap.iter().enumerate() {
            for bit in 0..8u64 {
                if byte >> bit & 1 == 0 {
                    continue;
                }
                let offset = index as u64 * 8 + bit;
                if offset >= size || offset > h {
                    return Err(CoreError::config(
                        "a replay window's bitmap marks a sequence number outside the window",
                    ));
                }
                window.set(h - offset);
            }
        }
        Ok(window)
    }

    /// Bytes of the bitmap on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let n = self.words.len() as u64;
        // The remainder is < words.len(), so it fits usize.
        (((seq / 64) % n) as usize, 1u64 << (seq % 64))
    }

    fn is_set(&self, seq: u64) -> bool {
        let (word, bit) = self.slot(seq);
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    fn set(&mut self, seq: u64) {
        let (word, bit) = self.slot(seq);
        if let Some(w) = self.words.get_mut(word) {
            *w |= bit;
        }
    }

    /// Left of the window: at or below `highest - size`.
    fn too_old(&self, highest: u64, seq: u64) -> bool {
        highest
            .checked_sub(self.size)
            .is_some_and(|edge| seq <= edge)
    }

    /// True if a record with this sequence number may be processed: not seen
    /// yet and not left of the window. Never fails: out-of-range is just false.
    pub fn check(&self, seq: u64) -> bool {
        if seq > MAX_SEQUENCE_NUMBER {
            return false;
        }
        match self.highest {
            None => true,
            Some(h) if seq > h => true,
            Some(h) => !self.too_old(h, seq) && !self.is_set(seq),
        }
    }

    /// Record `seq` as seen (call after the record authenticated). Accepting
    /// a sequence number left of the window is a no-op.
    pub fn accept(&mut self, seq: u64) -> CoreResult<()> {
        if seq > MAX_SEQUENCE_NUMBER {
            return Err(CoreError::config(format!(
                "sequence_number must be in 0..=2**48-1 ({MAX_SEQUENCE_NUMBER}), got {seq}"
            )));
        }
        match self.highest {
            Some(h) if seq <= h => {
                if !self.too_old(h, seq) {
                    self.set(seq);
                }
            }
            previous => {
                self.advance(previous, seq);
                self.set(seq);
                self.highest = Some(seq);
            }
        }
        Ok(())
    }

    /// Clear the words that `seq`'s arrival brings into the ring.
    fn advance(&mut self, previous: Option<u64>, seq: u64) {
        let n = self.words.len() as u64;
        let Some(h) = previous else {
            return; // the ring is still all zeros
        };
        let (from, to) = (h / 64, seq / 64);
        let skipped = to.saturating_sub(from);
        if skipped >= n {
            self.words.fill(0);
            return;
        }
        for word in (from + 1)..=to {
            if let Some(w) = self.words.get_mut((word % n) as usize) {
                *w = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward model: a set of accepted numbers and the highest.
    struct Model {
        size: u64,
        seen: std::collections::BTreeSet<u64>,
    }

    impl Model {
        fn check(&self, seq: u64) -> bool {
            if seq > MAX_SEQUENCE_NUMBER {
                return false;
            }
            match self.seen.last() {
                None => true,
                Some(&h) => !self.seen.contains(&seq) && (h < self.size || seq > h - self.size),
            }
        }
        fn accept(&mut self, seq: u64) {
            let old =
                matches!(self.seen.last(), Some(&h) if h >= self.size && seq <= h - self.size);
            if !old {
                self.seen.insert(seq);
            }
        }
    }

    #[test]
    fn size_bounds() {
        assert!(ReplayWindow::new(0).is_err());
        assert!(ReplayWindow::new(MAX_WINDOW_SIZE as u64 + 1).is_err());
        assert!(ReplayWindow::new(u64::MAX).is_err());
        assert_eq!(ReplayWindow::new(1).unwrap().size(), 1);
        assert_eq!(ReplayWindow::new(8192).unwrap().size(), 8192);
        assert_eq!(ReplayWindow::default().size(), 64);
    }

    #[test]
    fn basic_edges() {
        let mut w = ReplayWindow::new(64).unwrap();
        assert_eq!(w.highest(), None);
        assert!(w.check(0));
        w.accept(0).unwrap();
        assert_eq!(w.highest(), Some(0));
        assert!(!w.check(0));
        assert!(w.check(1));
        w.accept(100).unwrap();
        // window is 37..=100
        assert!(!w.check(36));
        assert!(w.check(37));
        assert!(w.check(99));
        assert!(!w.check(100));
        assert!(w.check(101));
        w.accept(37).unwrap();
        assert!(!w.check(37));
        // accepting a too-old number is a no-op
        w.accept(10).unwrap();
        assert!(!w.check(10));
        assert_eq!(w.highest(), Some(100));
        // highest - size + 1 is the oldest in the window; highest - size is out
        w.accept(163).unwrap();
        assert!(!w.check(99));
        assert!(!w.check(100)); // in the window, already accepted
        assert!(w.check(101));
        // jump by more than the ring clears everything
        w.accept(100_000).unwrap();
        assert!(w.check(99_999));
        assert!(!w.check(100_000 - 64));
        assert!(w.check(100_000 - 63));
    }

    #[test]
    fn size_one_and_max_sequence() {
        let mut w = ReplayWindow::new(1).unwrap();
        w.accept(5).unwrap();
        assert!(!w.check(5));
        assert!(!w.check(4));
        assert!(w.check(6));

        let mut w = ReplayWindow::new(64).unwrap();
        assert!(w.check(MAX_SEQUENCE_NUMBER));
        assert!(!w.check(MAX_SEQUENCE_NUMBER + 1));
        assert!(!w.check(u64::MAX));
        assert!(w.accept(MAX_SEQUENCE_NUMBER + 1).is_err());
        assert!(w.accept(u64::MAX).is_err());
        w.accept(MAX_SEQUENCE_NUMBER).unwrap();
        assert_eq!(w.highest(), Some(MAX_SEQUENCE_NUMBER));
        assert!(!w.check(MAX_SEQUENCE_NUMBER));
        assert!(w.check(MAX_SEQUENCE_NUMBER - 1));
        assert!(w.check(MAX_SEQUENCE_NUMBER - 63));
        assert!(!w.check(MAX_SEQUENCE_NUMBER - 64));
        assert!(!w.check(0));
    }

    #[test]
    fn first_accept_far_from_zero() {
        let mut w = ReplayWindow::new(64).unwrap();
        w.accept(1000).unwrap();
        assert!(w.check(990));
        assert!(!w.check(936));
        w.accept(990).unwrap();
        assert!(!w.check(990));
    }

    #[test]
    fn matches_model_on_pseudo_random_walks() {
        for size in [1u64, 2, 63, 64, 65, 127, 128, 129, 1000, 8192] {
            let mut w = ReplayWindow::new(size).unwrap();
            let mut m = Model {
                size,
                seen: Default::default(),
            };
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size;
            let mut base: u64 = 0;
            for _ in 0..4000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let step = match x % 10 {
                    0 => size * 3,
                    1 => size,
                    2 => size.saturating_sub(1),
                    _ => x % (size + 5),
                };
                let seq = if x % 3 == 0 {
                    base = base.saturating_add(step);
                    base
                } else {
                    base.saturating_sub(x % (size * 2 + 2))
                };
                assert_eq!(w.check(seq), m.check(seq), "size {size} seq {seq}");
                if x % 2 == 0 {
                    w.accept(seq).unwrap();
                    m.accept(seq);
                }
            }
        }
    }
}
