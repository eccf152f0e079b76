//! Packing an outgoing handshake flight into datagrams in one call:
//! fragmentation to the MTU and record protection.
//!
//! RFC 6347 §4.2.3 (handshake fragmentation), §4.2.4 (flights are resent
//! whole, with fresh record sequence numbers), §4.1.1 (several records per
//! datagram, each inside one datagram); RFC 9146 §4 (tls12_cid records).
//! The layout is exactly `dtlsfast.flight.pack_flight`'s: a message that
//! fits the room left goes whole; one that does not is fragmented, its first
//! piece filling the current datagram when at least `MIN_USEFUL_FRAGMENT`
//! bytes of body fit, every further piece starting a datagram of its own.
//!
//! Sequence numbers belong to the caller's record layer: each write epoch
//! comes in with its next sequence number and goes out with the advanced one.

use crate::cipher::RecordCipher;
use crate::errors::CoreError;
use crate::record::{encode_record_into, RecordFields, RECORD_HEADER_LENGTH};

const HANDSHAKE: u8 = 22;
const HANDSHAKE_HEADER: usize = 12;
/// A fragment with less body than this is not worth starting at the end of a
/// datagram (`flight.MIN_USEFUL_FRAGMENT`).
pub const MIN_USEFUL_FRAGMENT: usize = 32;

/// One message of a flight: a whole handshake message (header included) or
/// another record's payload (ChangeCipherSpec), and the epoch it goes in.
#[derive(Clone, Copy, Debug)]
pub struct FlightItem<'a> {
    pub epoch: u16,
    pub content_type: u8,
    pub payload: &'a [u8],
}

/// The write state of one epoch: its cipher (None for epoch 0's plaintext),
/// the CID its records carry (empty: the RFC 6347 format) and its next
/// record sequence number, advanced as records are sealed.
#[derive(Clone, Copy, Debug)]
pub struct WriteEpoch<'a> {
    pub epoch: u16,
    pub cipher: Option<&'a RecordCipher>,
    pub cid: &'a [u8],
    pub next_sequence: u64,
}

impl WriteEpoch<'_> {
    /// Bytes a record of this epoch adds to its payload: the header, AEAD
    /// expansion, and with a CID the CID and the inner content type.
    pub fn overhead(&self) -> usize {
        match self.cipher {
            None => RECORD_HEADER_LENGTH,
            Some(c) if self.cid.is_empty() => RECORD_HEADER_LENGTH + c.overhead(),
            Some(c) => RECORD_HEADER_LENGTH + c.overhead() + self.cid.len() + 1,
        }
    }

    fn sealed_length(&self, payload_length: usize) -> Result<usize, FlightError> {
        Ok(match self.cipher {
            None => RECORD_HEADER_LENGTH + payload_length,
            Some(c) if self.cid.is_empty() => c.sealed_length(payload_length)?,
            Some(c) => c.sealed_cid_length(self.cid.len(), payload_length, 0)?,
        })
    }

    /// Seal one record onto the end of `out`, with the next sequence number.
    fn seal_onto(
        &mut self,
        version: u16,
        content_type: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, FlightError> {
        let fields = RecordFields::new(
            u64::from(content_type),
            u64::from(version),
            u64::from(self.epoch),
            self.next_sequence,
        )?;
        let length = self.sealed_length(payload.len())?;
        let start = out.len();
        out.resize(start + length, 0);
        let slot = out.get_mut(start..).unwrap_or(&mut []);
        match self.cipher {
            None => encode_record_into(&fields, payload, slot)?,
            Some(c) if self.cid.is_empty() => c.seal_into(&fields, payload, slot)?,
            Some(c) => c.seal_cid_into(&fields, self.cid, payload, 0, slot)?,
        }
        self.next_sequence += 1;
        Ok(length)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlightError {
    /// A field or length out of range (ConfigurationError in Python).
    Core(CoreError),
    /// The caller asked for something impossible (LocalProtocolError).
    Misuse(String),
}

impl From<CoreError> for FlightError {
    fn from(e: CoreError) -> Self {
        FlightError::Core(e)
    }
}

/// The datagrams of a flight, each at most `mtu` bytes unless a single
/// non-handshake record is larger. `writers` advance their sequence numbers
/// only if the whole flight was packed.
pub fn pack_flight(
    items: &[FlightItem<'_>],
    mtu: usize,
    version: u16,
    writers: &mut [WriteEpoch<'_>],
) -> Result<Vec<Vec<u8>>, FlightError> {
    let mut work: Vec<WriteEpoch<'_>> = writers.to_vec();
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(mtu);
    // Signed: a record larger than the MTU may overdraw it.
    let mtu_signed = i64::try_from(mtu).map_err(|_| FlightError::Misuse("mtu too large".into()))?;
    let mut room = mtu_signed;
    let mut scratch: Vec<u8> = Vec::new();

    let flush = |current: &mut Vec<u8>, datagrams: &mut Vec<Vec<u8>>, room: &mut i64| {
        if !current.is_empty() {
            datagrams.push(std::mem::replace(current, Vec::with_capacity(mtu)));
        }
        *room = mtu_signed;
    };
    let signed = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);

    for item in items {
        let writer = work
            .iter_mut()
            .find(|w| w.epoch == item.epoch)
            .ok_or_else(|| {
                FlightError::Misuse(format!("no write state for epoch {}", item.epoch))
            })?;
        let cost = signed(writer.overhead());
        if item.content_type != HANDSHAKE {
            if cost + signed(item.payload.len()) > room {
                flush(&mut current, &mut datagrams, &mut room);
            }
            let n = writer.seal_onto(version, item.content_type, item.payload, &mut current)?;
            room -= signed(n);
            continue;
        }
        let message = item.payload;
        let Some(body_length) = message.len().checked_sub(HANDSHAKE_HEADER) else {
            return Err(FlightError::Misuse(format!(
                "a handshake flight item is a whole message of at least {HANDSHAKE_HEADER} \
                 bytes, not {}",
                message.len()
            )));
        };
        if cost + signed(message.len()) <= room {
            let n = writer.seal_onto(version, HANDSHAKE, message, &mut current)?;
            room -= signed(n);
            continue;
        }
        let (prefix, body) = message.split_at(HANDSHAKE_HEADER);
        let type_length_seq = prefix.get(..6).unwrap_or(&[]);
        let mut offset = 0usize;
        loop {
            let mut space = room - cost - signed(HANDSHAKE_HEADER);
            if space < signed(MIN_USEFUL_FRAGMENT) {
                flush(&mut current, &mut datagrams, &mut room);
                space = room - cost - signed(HANDSHAKE_HEADER);
            }
            if space < 1 {
                return Err(FlightError::Core(CoreError::config(format!(
                    "an MTU of {mtu} bytes leaves no room for a handshake fragment in epoch {} \
                     ({} bytes of record overhead and {HANDSHAKE_HEADER} of header)",
                    item.epoch, cost
                ))));
            }
            let piece_length = usize::try_from(space)
                .unwrap_or(usize::MAX)
                .min(body_length - offset);
            let piece = body.get(offset..offset + piece_length).unwrap_or(&[]);
            fragment_into(type_length_seq, offset, piece, &mut scratch)?;
            let n = writer.seal_onto(version, HANDSHAKE, &scratch, &mut current)?;
            room -= signed(n);
            offset += piece_length;
            if offset >= body_length {
                break;
            }
        }
    }
    flush(&mut current, &mut datagrams, &mut room);
    writers.copy_from_slice(&work);
    Ok(datagrams)
}

/// One fragment: the message's type, length and message_seq, then this
/// fragment's offset and length, then its slice of the body.
fn fragment_into(
    type_length_seq: &[u8],
    offset: usize,
    piece: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FlightError> {
    let u24 = |n: usize| -> Result<[u8; 3], FlightError> {
        let b = u32::try_from(n)
            .ok()
            .filter(|&v| v < 1 << 24)
            .ok_or_else(|| FlightError::Misuse(format!("{n} does not fit 24 bits")))?
            .to_be_bytes();
        Ok([b[1], b[2], b[3]])
    };
    out.clear();
    out.extend_from_slice(type_length_seq);
    out.extend_from_slice(&u24(offset)?);
    out.extend_from_slice(&u24(piece.len())?);
    out.extend_from_slice(piece);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_records;

    use crate::test_support::handshake_message as message;

    fn plain(epoch: u16) -> WriteEpoch<'static> {
        WriteEpoch {
            epoch,
            cipher: None,
            cid: b"",
            next_sequence: 0,
        }
    }

    #[test]
    fn small_flight_is_one_datagram_with_consecutive_sequence_numbers() {
        let a = message(2, 1, &[1u8; 80]);
        let b = message(14, 2, b"");
        let items = [
            FlightItem {
                epoch: 0,
                content_type: 22,
                payload: &a,
            },
            FlightItem {
                epoch: 0,
                content_type: 22,
                payload: &b,
            },
        ];
        let mut writers = [WriteEpoch {
            next_sequence: 7,
            ..plain(0)
        }];
        let out = pack_flight(&items, 1400, 0xFEFD, &mut writers).unwrap();
        assert_eq!(out.len(), 1);
        let records: Vec<_> = parse_records(&out[0]).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].header.sequence_number, 7);
        assert_eq!(records[1].header.sequence_number, 8);
        assert_eq!(records[0].fragment, &a[..]);
        assert_eq!(writers[0].next_sequence, 9);
    }

    #[test]
    fn large_message_is_fragmented_to_the_mtu_and_reassembles() {
        let body: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let m = message(11, 3, &body);
        let items = [FlightItem {
            epoch: 0,
            content_type: 22,
            payload: &m,
        }];
        let mut writers = [plain(0)];
        let out = pack_flight(&items, 500, 0xFEFD, &mut writers).unwrap();
        let mut rebuilt = vec![0u8; body.len()];
        let mut covered = 0;
        for d in &out {
            assert!(d.len() <= 500);
            for r in parse_records(d) {
                let f = r.fragment;
                assert_eq!(f[..6], m[..6]);
                let off = u32::from_be_bytes([0, f[6], f[7], f[8]]) as usize;
                let len = u32::from_be_bytes([0, f[9], f[10], f[11]]) as usize;
                rebuilt[off..off + len].copy_from_slice(&f[12..]);
                covered += len;
            }
        }
        assert_eq!(covered, body.len());
        assert_eq!(rebuilt, body);
        assert_eq!(writers[0].next_sequence as usize, out.len());
    }

    #[test]
    fn sealed_epoch_and_change_cipher_spec() {
        let cipher = RecordCipher::new("AES_128_CCM_8", &[1u8; 16], &[2u8; 4]).unwrap();
        let fin = message(20, 5, &[9u8; 12]);
        let items = [
            FlightItem {
                epoch: 0,
                content_type: 20,
                payload: b"\x01",
            },
            FlightItem {
                epoch: 1,
                content_type: 22,
                payload: &fin,
            },
        ];
        let mut writers = [
            WriteEpoch {
                next_sequence: 4,
                ..plain(0)
            },
            WriteEpoch {
                epoch: 1,
                cipher: Some(&cipher),
                cid: b"",
                next_sequence: 0,
            },
        ];
        let out = pack_flight(&items, 1400, 0xFEFD, &mut writers).unwrap();
        assert_eq!(out.len(), 1);
        let records: Vec<_> = parse_records(&out[0]).collect();
        assert_eq!(records[1].header.epoch, 1);
        assert_eq!(
            cipher
                .open_parts(&records[1].header.fields(), records[1].fragment)
                .unwrap(),
            fin
        );
        assert_eq!((writers[0].next_sequence, writers[1].next_sequence), (5, 1));
        assert_eq!(out[0].len(), 13 + 1 + 13 + 16 + fin.len());
    }

    #[test]
    fn misuse_and_tiny_mtu_leave_sequence_numbers_alone() {
        let m = message(11, 0, &[0u8; 100]);
        let mut writers = [WriteEpoch {
            next_sequence: 3,
            ..plain(0)
        }];
        let items = [FlightItem {
            epoch: 1,
            content_type: 22,
            payload: &m,
        }];
        assert!(matches!(
            pack_flight(&items, 1400, 0xFEFD, &mut writers),
            Err(FlightError::Misuse(_))
        ));
        let items = [
            FlightItem {
                epoch: 0,
                content_type: 22,
                payload: &m[..50],
            },
            FlightItem {
                epoch: 0,
                content_type: 22,
                payload: &m,
            },
        ];
        assert!(matches!(
            pack_flight(&items, 25, 0xFEFD, &mut writers),
            Err(FlightError::Core(_))
        ));
        assert_eq!(writers[0].next_sequence, 3);
        let short = [FlightItem {
            epoch: 0,
            content_type: 22,
            payload: b"abc",
        }];
        assert!(matches!(
            pack_flight(&short, 1400, 0xFEFD, &mut writers),
            Err(FlightError::Misuse(_))
        ));
    }

    #[test]
    fn empty_body_that_does_not_fit_is_one_header_fragment() {
        let filler = [0u8; 70];
        let done = message(14, 1, b"");
        let items = [
            FlightItem {
                epoch: 0,
                content_type: 23,
                payload: &filler,
            },
            FlightItem {
                epoch: 0,
                content_type: 22,
                payload: &done,
            },
        ];
        let mut writers = [plain(0)];
        let out = pack_flight(&items, 90, 0xFEFD, &mut writers).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(parse_records(&out[1]).next().unwrap().fragment, &done[..]);
    }
}
