//! One byte budget shared by every handshake reassembler of a server
//! (RFC 6347 §4.2.3 leaves buffering to the implementation; DESIGN.md: every
//! buffer is bounded, budgets are per source, and a defence costs the
//! attacker more than the genuine peer).
//!
//! Each reassembler keeps its own cap (`max_buffered_bytes`); the budget
//! bounds their sum (`limit`), and what the reassemblers of one source (the
//! server names it: the peer's address prefix) hold together (`per_source`),
//! so that one attacker cannot take the whole budget from genuine handshakes.
//! A handshake whose messages arrive whole and in order holds nothing; one
//! with a fragmented certificate chain holds a few KiB until it completes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::errors::{CoreError, CoreResult};

#[derive(Debug, Default)]
struct Usage {
    used: u64,
    refused: u64,
    /// Bytes held per source; a source holding nothing has no entry, so
    /// there are never more entries than reassemblers holding bytes.
    by_source: HashMap<Vec<u8>, u64>,
}

#[derive(Debug)]
pub struct ReassemblyBudget {
    limit: u64,
    per_source: u64,
    usage: Mutex<Usage>,
}

impl ReassemblyBudget {
    /// `per_source` defaults to an eighth of `limit`.
    pub fn new(limit: u64, per_source: Option<u64>) -> CoreResult<Self> {
        let per_source = per_source.unwrap_or(limit / 8);
        if per_source > limit {
            return Err(CoreError::config(format!(
                "per_source ({per_source}) must not exceed limit ({limit})"
            )));
        }
        Ok(ReassemblyBudget {
            limit,
            per_source,
            usage: Mutex::new(Usage::default()),
        })
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        // Nothing below can panic while holding the lock; never panic on it.
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn per_source(&self) -> u64 {
        self.per_source
    }

    /// Bytes held by all reassemblers that share the budget.
    pub fn used(&self) -> u64 {
        self.usage().used
    }

    /// Bytes held by the reassemblers of `source`.
    pub fn held_by(&self, source: &[u8]) -> u64 {
        self.usage().by_source.get(source).copied().unwrap_or(0)
    }

    /// Sources holding bytes.
    pub fn sources(&self) -> usize {
        self.usage().by_source.len()
    }

    /// Fragments dropped because the budget (not a reassembler's own cap) refused them.
    pub fn refused(&self) -> u64 {
        self.usage().refused
    }

    /// Whether `n` more bytes fit when `used` bytes are held in all and
    /// `source_used` by the source (None: a reassembler without a source,
    /// bound by `limit` alone).
    pub fn allows(&self, used: u64, source_used: Option<u64>, n: u64) -> bool {
        let fits = |held: u64, cap: u64| held.checked_add(n).is_some_and(|t| t <= cap);
        fits(used, self.limit) && source_used.map_or(true, |held| fits(held, self.per_source))
    }

    /// What `allows` needs to know of `source` now: (used, source_used).
    pub fn state(&self, source: Option<&[u8]>) -> (u64, Option<u64>) {
        let usage = self.usage();
        let held = source.map(|s| usage.by_source.get(s).copied().unwrap_or(0));
        (usage.used, held)
    }

    /// Take `n` bytes for `source` if `allows` says so.
    pub fn try_take(&self, source: Option<&[u8]>, n: u64) -> bool {
        let mut usage = self.usage();
        let held = source.map(|s| usage.by_source.get(s).copied().unwrap_or(0));
        if !self.allows(usage.used, held, n) {
            return false;
        }
        usage.used = usage.used.saturating_add(n);
        if let (Some(source), Some(held)) = (source, held) {
            if n > 0 {
                usage
                    .by_source
                    .insert(source.to_vec(), held.saturating_add(n));
            }
        }
        true
    }

    pub fn give_back(&self, source: Option<&[u8]>, n: u64) {
        let mut usage = self.usage();
        usage.used = usage.used.saturating_sub(n);
        if let Some(source) = source {
            if let Some(held) = usage.by_source.get_mut(source) {
                *held = held.saturating_sub(n);
                if *held == 0 {
                    usage.by_source.remove(source);
                }
            }
        }
    }

    pub fn count_refusal(&self) {
        let mut usage = self.usage();
        usage.refused = usage.refused.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_per_source() {
        assert!(ReassemblyBudget::new(100, Some(101)).is_err());
        let b = ReassemblyBudget::new(1000, None).unwrap();
        assert_eq!((b.limit(), b.per_source()), (1000, 125));
        let b = ReassemblyBudget::new(1000, Some(400)).unwrap();
        let (x, y): (&[u8], &[u8]) = (b"x", b"y");
        assert!(b.try_take(Some(x), 300));
        assert!(b.try_take(Some(x), 100));
        assert!(!b.try_take(Some(x), 1), "one source stops at per_source");
        assert!(b.try_take(Some(y), 400));
        assert!(b.try_take(None, 200), "no source: only the limit applies");
        assert!(!b.try_take(Some(b"z"), 1), "nobody passes the limit");
        assert_eq!((b.used(), b.held_by(x), b.sources()), (1000, 400, 2));
        b.give_back(Some(x), 400);
        assert_eq!((b.used(), b.held_by(x), b.sources()), (600, 0, 1));
        b.give_back(Some(y), u64::MAX);
        b.give_back(None, u64::MAX);
        assert_eq!((b.used(), b.sources()), (0, 0));
        assert!(!b.allows(u64::MAX, None, 1));
        assert!(!b.allows(0, Some(u64::MAX), 1));
        assert_eq!(b.state(Some(x)), (0, Some(0)));
        b.count_refusal();
        assert_eq!(b.refused(), 1);
    }

    #[test]
    fn zero_budget_takes_nothing_but_nothing() {
        let b = ReassemblyBudget::new(0, None).unwrap();
        assert!(b.try_take(Some(b"x"), 0));
        assert_eq!(b.sources(), 0);
        assert!(!b.try_take(None, 1));
    }
}
