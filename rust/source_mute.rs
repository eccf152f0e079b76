//! Sources whose ClientHellos are dropped on arrival, for a while.
//!
//! The server's admission policy (python/dtlsfast/admission.py) refuses
//! every ClientHello from a source address or prefix whose hello budget is
//! empty; that budget is spent only by hellos whose cookie verified (RFC 6347
//! §4.2.1), so only a source that proved its address can empty it. Refusing
//! in Python still costs a few microseconds a datagram, which a source
//! blasting hundreds of thousands a second turns into a saturated core. So
//! the policy also tells the batch socket how long that source's budget
//! stays empty, and [`MutedSources`] lets the socket drop that source's
//! epoch-0 ClientHellos as they arrive, in tens of nanoseconds, until then.
//! Nothing else from the source is touched: its sessions' records go on.
//!
//! Bounded: at most `capacity` sources at once; a mute past it is refused
//! (the policy still refuses in Python, only more slowly).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Key {
    v6: bool,
    bits: u8,
    network: u128,
}

/// Networks (an address is a /32 or /128) muted until a deadline each.
pub struct MutedSources {
    until: HashMap<Key, Instant>,
    /// The (family, prefix length) pairs muted so far: the lookups to make.
    lengths: Vec<(bool, u8)>,
    capacity: usize,
}

/// The family and bits of `ip`, an IPv4-mapped IPv6 address counting as IPv4.
fn canonical(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (false, u128::from(u32::from(v4))),
            None => (true, u128::from(v6)),
        },
    }
}

fn key(v6: bool, address: u128, bits: u8) -> Option<Key> {
    let width: u32 = if v6 { 128 } else { 32 };
    let bits32 = u32::from(bits);
    if bits32 > width {
        return None;
    }
    let ones = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    let mask = ones.checked_shl(width - bits32).unwrap_or(0) & ones;
    Some(Key {
        v6,
        bits,
        network: address & mask,
    })
}

impl MutedSources {
    pub fn new(capacity: usize) -> Self {
        MutedSources {
            until: HashMap::new(),
            lengths: Vec::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Mute the network of `ip` of `bits` bits (in the IPv4 space for an
    /// IPv4 or IPv4-mapped address) for `duration` from `now`. False if
    /// `bits` is too long for the family, or the table is full of live mutes.
    pub fn mute(&mut self, ip: IpAddr, bits: u8, duration: Duration, now: Instant) -> bool {
        let (v6, address) = canonical(ip);
        let Some(k) = key(v6, address, bits) else {
            return false;
        };
        if !self.until.contains_key(&k) && self.until.len() >= self.capacity {
            self.until.retain(|_, deadline| *deadline > now);
            if self.until.len() >= self.capacity {
                return false;
            }
        }
        let Some(deadline) = now.checked_add(duration) else {
            return false;
        };
        self.until.insert(k, deadline);
        if !self.lengths.contains(&(v6, bits)) {
            self.lengths.push((v6, bits));
        }
        true
    }

    /// Whether `ip` is in a network muted at `now` (expired mutes go).
    pub fn is_muted(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.until.is_empty() {
            return false;
        }
        let (v6, address) = canonical(ip);
        for &(family, bits) in &self.lengths {
            if family != v6 {
                continue;
            }
            let Some(k) = key(v6, address, bits) else {
                continue;
            };
            if let Some(&deadline) = self.until.get(&k) {
                if now < deadline {
                    return true;
                }
                self.until.remove(&k);
            }
        }
        false
    }
}

/// Whether a datagram starts with an epoch-0 ClientHello record (content
/// type 22, epoch 0, handshake type 1), the only thing a mute drops.
pub fn is_client_hello(data: &[u8]) -> bool {
    data.len() > 25 && data[0] == 22 && data[3] == 0 && data[4] == 0 && data[13] == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn an_address_is_muted_until_its_deadline() {
        let now = Instant::now();
        let mut muted = MutedSources::new(8);
        assert!(muted.mute(v4(10, 0, 0, 1), 32, Duration::from_millis(10), now));
        assert!(muted.is_muted(v4(10, 0, 0, 1), now));
        assert!(!muted.is_muted(v4(10, 0, 0, 2), now));
        assert!(!muted.is_muted(v4(10, 0, 0, 1), now + Duration::from_millis(10)));
        assert!(muted.is_empty(), "the expired mute is gone");
    }

    #[test]
    fn a_prefix_covers_its_addresses_and_mapped_ones() {
        let now = Instant::now();
        let mut muted = MutedSources::new(8);
        assert!(muted.mute(v4(192, 0, 2, 77), 24, Duration::from_secs(1), now));
        assert!(muted.is_muted(v4(192, 0, 2, 1), now));
        assert!(!muted.is_muted(v4(192, 0, 3, 1), now));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        assert!(muted.is_muted(mapped, now));
        let v6: IpAddr = "2001:db8:0:1200::1".parse().unwrap();
        assert!(muted.mute(v6, 56, Duration::from_secs(1), now));
        let same: IpAddr = "2001:db8:0:12ff:ffff::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1300::1".parse().unwrap();
        assert!(muted.is_muted(same, now));
        assert!(!muted.is_muted(other, now));
        assert!(!muted.is_muted(IpAddr::V6(Ipv6Addr::LOCALHOST), now));
    }

    #[test]
    fn bad_lengths_and_a_full_table_are_refused() {
        let now = Instant::now();
        let mut muted = MutedSources::new(2);
        assert!(!muted.mute(v4(10, 0, 0, 1), 33, Duration::from_secs(1), now));
        assert!(muted.mute(v4(10, 0, 0, 1), 0, Duration::from_secs(1), now));
        assert!(
            muted.is_muted(v4(1, 2, 3, 4), now),
            "a /0 is every IPv4 address"
        );
        assert!(muted.mute(v4(10, 0, 0, 2), 32, Duration::from_millis(1), now));
        assert!(!muted.mute(v4(10, 0, 0, 3), 32, Duration::from_secs(1), now));
        // Once a mute has expired, its slot is free again.
        let later = now + Duration::from_millis(2);
        assert!(muted.mute(v4(10, 0, 0, 3), 32, Duration::from_secs(1), later));
        assert_eq!(muted.len(), 2);
        assert!(
            !muted.mute(v4(10, 0, 0, 3), 32, Duration::MAX, later),
            "no deadline"
        );
    }

    #[test]
    fn only_epoch_0_client_hellos_are_recognised() {
        let mut hello = vec![0u8; 30];
        hello[0] = 22;
        hello[13] = 1;
        assert!(is_client_hello(&hello));
        let mut epoch1 = hello.clone();
        epoch1[4] = 1;
        assert!(!is_client_hello(&epoch1));
        let mut data = hello.clone();
        data[0] = 23;
        assert!(!is_client_hello(&data));
        assert!(!is_client_hello(&hello[..25]));
    }
}
