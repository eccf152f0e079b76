//! Export and import of one session table entry (session_table.rs), for the
//! persistent session store: a restarted server imports what the previous
//! process exported and the peer carries on with no handshake.
//!
//! The export is the record state of RFC 6347 §4.1: the current read and
//! write epochs, their keys and fixed IVs, the next write sequence number and
//! the read epoch's replay window (§4.1.2.6), and the bound peer address.
//! Run-time bookkeeping (activity time, MAC-error bucket) is not exported: an
//! import starts it afresh. Layout, big-endian, version [`EXPORT_FORMAT`]:
//!
//! ```text
//! format(1) aead(1: index in AEAD_NAMES) version(2) read_epoch(2) write_epoch(2)
//! next_write_sequence(8) read_key read_iv write_key write_iv (lengths from the AEAD)
//! window_size(2) has_highest(1) [highest(8) bitmap(window_size / 8, rounded up)]
//! family(1: 0 none, 4, 6) [ip(4 | 16) port(2) [flowinfo(4) scope_id(4) for 6]]
//! ```
//!
//! The sequence number stored is whatever the caller chose (the store saves
//! a reserved limit, not the live value); the window bitmap is canonical
//! (see [`ReplayWindow::export`]), so equal states export to equal bytes in
//! both implementations.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::cipher::{AeadKind, RecordCipher, AEAD_NAMES};
use crate::errors::{CoreError, CoreResult};
use crate::record::check_sequence_number;
use crate::replay::ReplayWindow;
use crate::session_table::{SessionTable, TableSession};

pub const EXPORT_FORMAT: u8 = 1;

/// The bytes of one session's record state (see the module).
pub fn encode_session(session: &TableSession) -> Vec<u8> {
    encode_session_with(session, session.next_write_sequence)
}

/// [`encode_session`] with `next_write_sequence` in place of the live value.
fn encode_session_with(session: &TableSession, next_write_sequence: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(EXPORT_FORMAT);
    let index = AEAD_NAMES
        .iter()
        .position(|n| *n == session.read.name())
        .unwrap_or(0);
    out.push(index as u8);
    out.extend_from_slice(&session.version.to_be_bytes());
    out.extend_from_slice(&session.read_epoch.to_be_bytes());
    out.extend_from_slice(&session.write_epoch.to_be_bytes());
    out.extend_from_slice(&next_write_sequence.to_be_bytes());
    for cipher in [&session.read, &session.write] {
        let (key, iv) = cipher.key_material();
        out.extend_from_slice(key);
        out.extend_from_slice(iv);
    }
    out.extend_from_slice(&(session.window.size() as u16).to_be_bytes());
    match session.window.export() {
        (Some(highest), bitmap) => {
            out.push(1);
            out.extend_from_slice(&highest.to_be_bytes());
            out.extend_from_slice(&bitmap);
        }
        (None, _) => out.push(0),
    }
    match session.address {
        None => out.push(0),
        Some(SocketAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.flowinfo().to_be_bytes());
            out.extend_from_slice(&a.scope_id().to_be_bytes());
        }
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> CoreResult<&'a [u8]> {
        if self.data.len() < n {
            return Err(malformed("it is truncated"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> CoreResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> CoreResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> CoreResult<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> CoreResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> CoreResult<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

fn malformed(why: &str) -> CoreError {
    CoreError::config(format!("a session export is malformed: {why}"))
}

/// The session encoded by [`encode_session`] (its address bound if it had
/// one). Anything else is a ConfigurationError, never a panic.
pub fn decode_session(data: &[u8]) -> CoreResult<(TableSession, Option<SocketAddr>)> {
    let mut r = Reader { data };
    let format = r.u8()?;
    if format != EXPORT_FORMAT {
        return Err(CoreError::config(format!(
            "a session export of format {format}, expected {EXPORT_FORMAT}"
        )));
    }
    let name = AEAD_NAMES
        .get(r.u8()? as usize)
        .ok_or_else(|| malformed("unknown AEAD"))?;
    let kind = AeadKind::from_name(name).ok_or_else(|| malformed("unknown AEAD"))?;
    let version = r.u16()?;
    let read_epoch = r.u16()?;
    let write_epoch = r.u16()?;
    let next_write_sequence = r.u64()?;
    let cipher = |r: &mut Reader<'_>| -> CoreResult<RecordCipher> {
        let key = r.take(kind.key_length())?;
        let iv = r.take(kind.iv_length())?;
        RecordCipher::new(name, key, iv)
    };
    let read = cipher(&mut r)?;
    let write = cipher(&mut r)?;
    let size = u64::from(r.u16()?);
    let window = match r.u8()? {
        0 => ReplayWindow::restore(size, None, &[])?,
        1 => {
            let highest = r.u64()?;
            let bitmap = r.take((size as usize).div_ceil(8))?;
            ReplayWindow::restore(size, Some(highest), bitmap)?
        }
        _ => return Err(malformed("bad window flag")),
    };
    let address = match r.u8()? {
        0 => None,
        4 => {
            let ip = Ipv4Addr::from(r.array::<4>()?);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, r.u16()?)))
        }
        6 => {
            let ip = Ipv6Addr::from(r.array::<16>()?);
            let port = r.u16()?;
            let flowinfo = r.u32()?;
            let scope_id = r.u32()?;
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip, port, flowinfo, scope_id,
            )))
        }
        _ => return Err(malformed("bad address family")),
    };
    if !r.data.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    let session = TableSession::new(
        read,
        read_epoch,
        window,
        write,
        write_epoch,
        next_write_sequence,
        version,
    );
    Ok((session, address))
}

impl SessionTable {
    /// Session `id`'s record state as [`encode_session`] writes it, with
    /// `next_write_sequence` in place of the live value when given (the
    /// store persists a reserved limit); None if the session is unknown.
    pub fn export_session(&self, id: u64, next_write_sequence: Option<u64>) -> Option<Vec<u8>> {
        let session = self.get(id)?;
        Some(encode_session_with(
            session,
            next_write_sequence.unwrap_or(session.next_write_sequence),
        ))
    }

    /// Install the exported session under `id` (replacing any) and bind its
    /// address, its activity clock starting at `now`.
    pub fn import_session(&mut self, id: u64, data: &[u8], now: f64) -> CoreResult<()> {
        let (session, address) = decode_session(data)?;
        self.install(id, session)?;
        if let Some(addr) = address {
            self.bind_address(id, addr, now)?;
        }
        Ok(())
    }

    /// Import many exported sessions at once (a restart restores 100,000):
    /// for each `(id, data, next_write_sequence, bind)`, install the session
    /// under `id` with `next_write_sequence` in place of the saved one when
    /// given, and with `bind` bind its address unless another session holds
    /// it. Each item's outcome is its saved address, or the error that left
    /// it out (malformed, address taken, table full); nothing is partly
    /// installed.
    pub fn import_sessions(
        &mut self,
        items: &[(u64, &[u8], Option<u64>, bool)],
        now: f64,
    ) -> Vec<CoreResult<Option<SocketAddr>>> {
        self.reserve(items.len());
        items
            .iter()
            .map(|&(id, data, seq, bind)| {
                let (mut session, address) = decode_session(data)?;
                if let Some(seq) = seq {
                    session.next_write_sequence = check_sequence_number(seq)?;
                }
                let bind = if bind { address } else { None };
                if let Some(addr) = bind {
                    if self.bound_to(&addr).is_some_and(|other| other != id) {
                        return Err(CoreError::config(format!(
                            "another session has the address {addr}"
                        )));
                    }
                }
                self.install(id, session)?;
                if let Some(addr) = bind {
                    self.bind_address(id, addr, now)?;
                }
                Ok(address)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordFields, MAX_SEQUENCE_NUMBER};
    use crate::session_table::APPLICATION_DATA;

    fn session(aead: &str) -> TableSession {
        let kind = AeadKind::from_name(aead).unwrap();
        let key: Vec<u8> = (0..kind.key_length() as u8).collect();
        let iv: Vec<u8> = (100..100 + kind.iv_length() as u8).collect();
        let read = RecordCipher::new(aead, &key, &iv).unwrap();
        let write_key: Vec<u8> = key.iter().map(|b| b ^ 0x55).collect();
        let write = RecordCipher::new(aead, &write_key, &iv).unwrap();
        let mut window = ReplayWindow::new(64).unwrap();
        for seq in [0, 1, 2, 5, 70, 68] {
            window.accept(seq).unwrap();
        }
        TableSession::new(read, 1, window, write, 1, 42, 0xFEFD)
    }

    #[test]
    fn a_ccm8_session_has_the_documented_layout() {
        let mut s = session("AES_128_CCM_8");
        s.address = Some("192.0.2.7:5684".parse().unwrap());
        let bytes = encode_session(&s);
        let mut expected = vec![1u8, 0, 0xFE, 0xFD, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42];
        expected.extend((0..16u8).chain(100..104));
        expected.extend((0..16u8).map(|b| b ^ 0x55).chain(100..104));
        expected.extend([0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 70]);
        // Offsets from 70: 0 (70), 2 (68), 65.. are outside the 64-bit window.
        expected.extend([0b0000_0101, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend([4, 192, 0, 2, 7, 0x16, 0x34]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn every_aead_round_trips_and_keeps_working() {
        for aead in AEAD_NAMES {
            let mut s = session(aead);
            s.address = Some("[2001:db8::1]:5684".parse().unwrap());
            let bytes = encode_session(&s);
            let (mut back, address) = decode_session(&bytes).unwrap();
            assert_eq!(address, s.address);
            back.address = address;
            assert_eq!(encode_session(&back), bytes);
            let fields = RecordFields {
                content_type: APPLICATION_DATA,
                version: 0xFEFD,
                epoch: 1,
                sequence_number: 9,
            };
            let sealed = s.write.seal(&fields, b"payload").unwrap();
            assert_eq!(back.write.seal(&fields, b"payload").unwrap(), sealed);
            assert!(back.window.check(69) && !back.window.check(68) && !back.window.check(6));
        }
    }

    #[test]
    fn the_table_exports_and_imports_with_a_reserved_sequence_number() {
        let mut table = SessionTable::new(4).unwrap();
        table.install(7, session("AES_128_GCM")).unwrap();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        table.bind_address(7, peer, 1.0).unwrap();
        let live = table.export_session(7, None).unwrap();
        let reserved = table.export_session(7, Some(1 << 24)).unwrap();
        assert_eq!(live.len(), reserved.len());
        assert!(table.export_session(8, None).is_none());

        let mut restarted = SessionTable::new(4).unwrap();
        restarted.import_session(3, &reserved, 5.0).unwrap();
        assert_eq!(restarted.get(3).unwrap().next_write_sequence, 1 << 24);
        assert_eq!(restarted.get(3).unwrap().address, Some(peer));
        assert_eq!(restarted.get(3).unwrap().last_active, 5.0);
        let record = restarted.seal(3, APPLICATION_DATA, b"x").unwrap();
        assert_eq!(&record[5..11], &[0, 0, 1, 0, 0, 0]);
        // The imported session answers its peer's address in serve().
        let served = restarted.serve(vec![(b"junk".to_vec(), peer)], 6.0, None);
        assert_eq!(served.to_python.len(), 1);
    }

    #[test]
    fn a_batch_import_installs_each_good_item_and_reports_the_others() {
        let mut table = SessionTable::new(8).unwrap();
        table.install(1, session("AES_128_CCM_8")).unwrap();
        let peer: SocketAddr = "10.0.0.1:5684".parse().unwrap();
        let other: SocketAddr = "[2001:db8::1]:5684".parse().unwrap();
        table.bind_address(1, peer, 0.0).unwrap();
        let first = table.export_session(1, None).unwrap();
        table.bind_address(1, other, 0.0).unwrap();
        let second = table.export_session(1, None).unwrap();

        let mut restarted = SessionTable::new(3).unwrap();
        let outcomes = restarted.import_sessions(
            &[
                (10, &first, Some(1 << 24), true),
                (11, &first, None, true),       // the same address: taken
                (12, &first[..20], None, true), // malformed
                (13, &second, None, false),     // imported, not bound
                (14, &second, None, true),      // bound
                (15, &second, None, false),     // the table is full
            ],
            2.0,
        );
        assert_eq!(outcomes[0].as_ref().unwrap(), &Some(peer));
        assert!(outcomes[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("another session"));
        assert!(outcomes[2].is_err());
        assert_eq!(outcomes[3].as_ref().unwrap(), &Some(other));
        assert_eq!(outcomes[4].as_ref().unwrap(), &Some(other));
        assert!(outcomes[5]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("full"));
        assert_eq!(restarted.len(), 3);
        assert_eq!(restarted.get(10).unwrap().next_write_sequence, 1 << 24);
        assert_eq!(restarted.bound_to(&peer), Some(10));
        assert_eq!(restarted.get(13).unwrap().address, None);
        assert_eq!(restarted.bound_to(&other), Some(14));
    }

    #[test]
    fn malformed_exports_are_errors_never_panics() {
        let mut s = session("CHACHA20_POLY1305");
        s.address = Some("[::1]:1".parse().unwrap());
        let good = encode_session(&s);
        for cut in 0..good.len() {
            assert!(decode_session(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_session(&trailing).is_err());
        for (index, value) in [(0, 2u8), (1, 9)] {
            let mut bad = good.clone();
            bad[index] = value;
            assert!(decode_session(&bad).is_err());
        }
        // Every single-byte change either decodes to a session or errs.
        for index in 0..good.len() {
            for delta in [1u8, 0x80] {
                let mut bad = good.clone();
                bad[index] ^= delta;
                let _ = decode_session(&bad);
            }
        }
        let mut table = SessionTable::new(1).unwrap();
        assert!(table.import_session(1, b"", 0.0).is_err());
        assert!(table.is_empty());
    }

    #[test]
    fn window_bitmaps_must_be_canonical() {
        assert!(ReplayWindow::restore(64, None, &[]).is_ok());
        assert!(ReplayWindow::restore(64, None, &[0]).is_err());
        assert!(ReplayWindow::restore(64, Some(3), &[0b1001, 0, 0, 0, 0, 0, 0, 0]).is_ok());
        // Bit 0 (the highest) must be set; no bit below sequence number 0.
        assert!(ReplayWindow::restore(64, Some(3), &[0b1000, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(ReplayWindow::restore(64, Some(3), &[0b1_0001, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // No bit past the window: size 4 uses the low 4 bits of one byte.
        assert!(ReplayWindow::restore(4, Some(10), &[0b1_0001]).is_err());
        assert!(ReplayWindow::restore(4, Some(10), &[0b1001]).is_ok());
        assert!(ReplayWindow::restore(64, Some(MAX_SEQUENCE_NUMBER + 1), &[1; 8]).is_err());
        assert!(ReplayWindow::restore(64, Some(3), &[1]).is_err());
    }

    #[test]
    fn window_export_matches_a_model() {
        // A larger window that wraps the ring many times.
        let mut w = ReplayWindow::new(200).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let step = (x >> 33) % 300;
            let base = w.highest().unwrap_or(0);
            let seq = if x & 1 == 0 {
                base + step
            } else {
                base.saturating_sub(step)
            };
            if w.check(seq) {
                w.accept(seq).unwrap();
                seen.insert(seq);
            }
            let (highest, bitmap) = w.export();
            let h = highest.unwrap();
            for offset in 0..200u64.min(h + 1) {
                let bit = bitmap[(offset / 8) as usize] >> (offset % 8) & 1 == 1;
                assert_eq!(bit, seen.contains(&(h - offset)));
            }
            let back = ReplayWindow::restore(200, highest, &bitmap).unwrap();
            assert_eq!(back.export(), (highest, bitmap));
        }
    }
}
