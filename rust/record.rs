//! DTLS record header codec (RFC 6347 §4.1): the 13-byte header
//! type(1) version(2) epoch(2) sequence_number(6) length(2), and splitting a
//! datagram into the records it carries (RFC 6347 §4.1.1: several per datagram).
//!
//! Records of type tls12_cid (25, RFC 9146 §4) carry the connection ID between
//! the sequence number and the length: type(1) version(2) epoch(2)
//! sequence_number(6) cid(cid_length) length(2). The CID length is not on the
//! wire: the receiver parses with the length of its own CID.

use crate::errors::{CoreError, CoreResult};

/// type(1) version(2) epoch(2) sequence_number(6) length(2).
pub const RECORD_HEADER_LENGTH: usize = 13;
/// 2**48 - 1: the sequence number is 48 bits on the wire (RFC 6347 §4.1).
pub const MAX_SEQUENCE_NUMBER: u64 = (1 << 48) - 1;
/// The length field is 16 bits.
pub const MAX_FRAGMENT_LENGTH: usize = 0xFFFF;
/// ContentType tls12_cid (RFC 9146 §4).
pub const CID_CONTENT_TYPE: u8 = 25;
/// `opaque cid<0..2^8-1>` (RFC 9146 §3).
pub const MAX_CID_LENGTH: usize = 255;

/// Range check of a CID length or a CID given by the caller.
pub fn check_cid_length(length: usize) -> CoreResult<usize> {
    if length > MAX_CID_LENGTH {
        return Err(CoreError::config(format!(
            "a connection ID is at most {MAX_CID_LENGTH} bytes (RFC 9146 §3), got {length}"
        )));
    }
    Ok(length)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    pub version: u16,
    pub epoch: u16,
    pub sequence_number: u64,
    pub length: u16,
}

fn field_u8(name: &str, value: u64) -> CoreResult<u8> {
    u8::try_from(value)
        .map_err(|_| CoreError::config(format!("{name} must be in 0..=255, got {value}")))
}

fn field_u16(name: &str, value: u64) -> CoreResult<u16> {
    u16::try_from(value)
        .map_err(|_| CoreError::config(format!("{name} must be in 0..=65535, got {value}")))
}

/// Range check of a sequence number given by the caller.
pub fn check_sequence_number(value: u64) -> CoreResult<u64> {
    if value > MAX_SEQUENCE_NUMBER {
        return Err(CoreError::config(format!(
            "sequence_number must be in 0..=2**48-1 ({MAX_SEQUENCE_NUMBER}), got {value}; \
             the connection must be closed or rekeyed before the sequence number wraps"
        )));
    }
    Ok(value)
}

/// The caller-supplied fields of a record, range-checked once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFields {
    pub content_type: u8,
    pub version: u16,
    pub epoch: u16,
    pub sequence_number: u64,
}

impl RecordFields {
    /// Check fields that arrive as arbitrary integers (from Python).
    pub fn new(
        content_type: u64,
        version: u64,
        epoch: u64,
        sequence_number: u64,
    ) -> CoreResult<Self> {
        Ok(RecordFields {
            content_type: field_u8("content_type", content_type)?,
            version: field_u16("version", version)?,
            epoch: field_u16("epoch", epoch)?,
            sequence_number: check_sequence_number(sequence_number)?,
        })
    }

    /// epoch(2) || sequence_number(6): the 64-bit `seq_num` of the TLS
    /// additional data (RFC 6347 §4.1.2.1) and of the nonces.
    pub fn epoch_and_sequence(&self) -> [u8; 8] {
        // sequence_number <= 2**48 - 1 is an invariant of RecordFields, so the
        // two never overlap.
        ((u64::from(self.epoch) << 48) | (self.sequence_number & MAX_SEQUENCE_NUMBER)).to_be_bytes()
    }

    /// The header these fields get with a fragment of `length` bytes.
    pub fn header(&self, length: usize) -> CoreResult<RecordHeader> {
        let length = u16::try_from(length).map_err(|_| {
            CoreError::config(format!(
                "record fragment is {length} bytes, more than the {MAX_FRAGMENT_LENGTH} \
                 a DTLS record can carry"
            ))
        })?;
        Ok(RecordHeader {
            content_type: self.content_type,
            version: self.version,
            epoch: self.epoch,
            sequence_number: self.sequence_number,
            length,
        })
    }
}

impl RecordHeader {
    /// Parse the header at the start of `input`; None if fewer than 13 bytes.
    /// The fragment length is not checked against `input` here.
    pub fn parse(input: &[u8]) -> Option<Self> {
        let h: &[u8; RECORD_HEADER_LENGTH] = input.get(..RECORD_HEADER_LENGTH)?.try_into().ok()?;
        let [content_type, v0, v1, e0, e1, s0, s1, s2, s3, s4, s5, l0, l1] = *h;
        Some(RecordHeader {
            content_type,
            version: u16::from_be_bytes([v0, v1]),
            epoch: u16::from_be_bytes([e0, e1]),
            sequence_number: u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]),
            length: u16::from_be_bytes([l0, l1]),
        })
    }

    pub fn fields(&self) -> RecordFields {
        RecordFields {
            content_type: self.content_type,
            version: self.version,
            epoch: self.epoch,
            sequence_number: self.sequence_number & MAX_SEQUENCE_NUMBER,
        }
    }

    pub fn to_bytes(&self) -> [u8; RECORD_HEADER_LENGTH] {
        let [v0, v1] = self.version.to_be_bytes();
        let [e0, e1] = self.epoch.to_be_bytes();
        let [_, _, s0, s1, s2, s3, s4, s5] = self.sequence_number.to_be_bytes();
        let [l0, l1] = self.length.to_be_bytes();
        [
            self.content_type,
            v0,
            v1,
            e0,
            e1,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            l0,
            l1,
        ]
    }
}

/// One record of a datagram, borrowing its fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub header: RecordHeader,
    /// The connection ID of a tls12_cid record; empty for every other type.
    pub cid: &'a [u8],
    pub fragment: &'a [u8],
}

impl Record<'_> {
    /// An epoch-0 record of a DTLS version (major 0xFE) that is not
    /// tls12_cid: plaintext, which a connection judges without any state of
    /// its own besides having epoch 0 (RFC 6347 §4.1).
    pub fn is_epoch0_plaintext(&self) -> bool {
        let h = &self.header;
        h.epoch == 0 && h.content_type != CID_CONTENT_TYPE && h.version >> 8 == 0xFE
    }
}

/// Iterator over the well-formed records at the start of a datagram. It stops
/// at the first header that is truncated or whose length runs past the end:
/// nothing after a malformed record can be trusted to be aligned.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    /// Length of the CID in tls12_cid records (the receiver's own CID length).
    cid_length: usize,
}

impl<'a> Records<'a> {
    /// Bytes not consumed yet; non-empty after iteration means trailing garbage.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let (header, cid, body) = if self.rest.first() == Some(&CID_CONTENT_TYPE) {
            parse_cid_header(self.rest, self.cid_length)?
        } else {
            let header = RecordHeader::parse(self.rest)?;
            (header, &[][..], self.rest.get(RECORD_HEADER_LENGTH..)?)
        };
        let length = usize::from(header.length);
        let fragment = body.get(..length)?;
        let rest = body.get(length..)?;
        self.rest = rest;
        Some(Record {
            header,
            cid,
            fragment,
        })
    }
}

/// type(1) version(2) epoch(2) seq(6): the part before the CID.
const CID_HEADER_PREFIX: usize = 11;

/// Parse a tls12_cid header (RFC 9146 §4) with a CID of `cid_length` bytes:
/// the header (its `length` is the fragment length), the CID, and the bytes
/// after the header. None if the header is truncated.
fn parse_cid_header(input: &[u8], cid_length: usize) -> Option<(RecordHeader, &[u8], &[u8])> {
    let (prefix, rest) = input.split_at_checked(CID_HEADER_PREFIX)?;
    let (cid, rest) = rest.split_at_checked(cid_length)?;
    let (length, body) = rest.split_at_checked(2)?;
    let [content_type, v0, v1, e0, e1, s0, s1, s2, s3, s4, s5] =
        <[u8; CID_HEADER_PREFIX]>::try_from(prefix).ok()?;
    let length = u16::from_be_bytes(<[u8; 2]>::try_from(length).ok()?);
    let header = RecordHeader {
        content_type,
        version: u16::from_be_bytes([v0, v1]),
        epoch: u16::from_be_bytes([e0, e1]),
        sequence_number: u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]),
        length,
    };
    Some((header, cid, body))
}

pub fn parse_records(datagram: &[u8]) -> Records<'_> {
    Records {
        rest: datagram,
        cid_length: 0,
    }
}

/// Split a datagram whose tls12_cid records carry `cid_length`-byte CIDs
/// (RFC 9146 §4). Records of other types parse as in [`parse_records`].
pub fn parse_records_cid(datagram: &[u8], cid_length: usize) -> CoreResult<Records<'_>> {
    Ok(Records {
        rest: datagram,
        cid_length: check_cid_length(cid_length)?,
    })
}

/// Write a tls12_cid header (RFC 9146 §4) into `out`, which must be exactly
/// `RECORD_HEADER_LENGTH + cid.len()` bytes; `fields.content_type` is ignored
/// (the outer type is always tls12_cid).
pub fn write_cid_header(
    fields: &RecordFields,
    cid: &[u8],
    fragment_length: usize,
    out: &mut [u8],
) -> CoreResult<()> {
    check_cid_length(cid.len())?;
    let header = RecordHeader {
        content_type: CID_CONTENT_TYPE,
        ..fields.header(fragment_length)?
    }
    .to_bytes();
    let wrong = || CoreError::config("output buffer has the wrong length");
    let (prefix, rest) = out
        .split_at_mut_checked(CID_HEADER_PREFIX)
        .ok_or_else(wrong)?;
    let (cid_out, length_out) = rest.split_at_mut_checked(cid.len()).ok_or_else(wrong)?;
    let (header_prefix, header_length) = header.split_at(CID_HEADER_PREFIX);
    if length_out.len() != header_length.len() {
        return Err(wrong());
    }
    prefix.copy_from_slice(header_prefix);
    cid_out.copy_from_slice(cid);
    length_out.copy_from_slice(header_length);
    Ok(())
}

/// Parse a buffer that must hold exactly one record.
pub fn parse_single_record(input: &[u8]) -> Option<Record<'_>> {
    let mut records = parse_records(input);
    let record = records.next()?;
    records.remaining().is_empty().then_some(record)
}

/// Write header and fragment into `out`, which must be exactly
/// `RECORD_HEADER_LENGTH + fragment.len()` bytes.
pub fn encode_record_into(
    fields: &RecordFields,
    fragment: &[u8],
    out: &mut [u8],
) -> CoreResult<()> {
    let header = fields.header(fragment.len())?;
    let (head, body) = out
        .split_at_mut_checked(RECORD_HEADER_LENGTH)
        .filter(|(_, body)| body.len() == fragment.len())
        .ok_or_else(|| CoreError::config("output buffer has the wrong length"))?;
    head.copy_from_slice(&header.to_bytes());
    body.copy_from_slice(fragment);
    Ok(())
}

pub fn encode_record(fields: &RecordFields, fragment: &[u8]) -> CoreResult<Vec<u8>> {
    let header = fields.header(fragment.len())?;
    let mut out = Vec::with_capacity(RECORD_HEADER_LENGTH + fragment.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(fragment);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(ct: u64, v: u64, e: u64, s: u64) -> RecordFields {
        RecordFields::new(ct, v, e, s).unwrap()
    }

    #[test]
    fn header_round_trip() {
        let f = fields(23, 0xFEFD, 0x0102, 0x0000_A1B2_C3D4_E5F6);
        let rec = encode_record(&f, b"hello").unwrap();
        assert_eq!(
            rec,
            [
                &[23, 0xFE, 0xFD, 0x01, 0x02, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0, 5][..],
                b"hello"
            ]
            .concat()
        );
        let parsed: Vec<_> = parse_records(&rec).collect();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].header.fields(), f);
        assert_eq!(parsed[0].header.length, 5);
        assert_eq!(parsed[0].fragment, b"hello");
        let mut out = vec![0; rec.len()];
        encode_record_into(&f, b"hello", &mut out).unwrap();
        assert_eq!(out, rec);
        assert!(encode_record_into(&f, b"hello", &mut out[1..]).is_err());
    }

    #[test]
    fn extreme_fields_round_trip() {
        let f = fields(255, 0xFFFF, 0xFFFF, MAX_SEQUENCE_NUMBER);
        let frag = vec![7u8; MAX_FRAGMENT_LENGTH];
        let rec = encode_record(&f, &frag).unwrap();
        let r = parse_single_record(&rec).unwrap();
        assert_eq!(r.header.fields(), f);
        assert_eq!(r.fragment.len(), MAX_FRAGMENT_LENGTH);
        assert_eq!(f.epoch_and_sequence(), [0xFF; 8]);
    }

    #[test]
    fn field_range_errors() {
        assert!(RecordFields::new(256, 0, 0, 0).is_err());
        assert!(RecordFields::new(0, 0x1_0000, 0, 0).is_err());
        assert!(RecordFields::new(0, 0, 0x1_0000, 0).is_err());
        assert!(RecordFields::new(0, 0, 0, MAX_SEQUENCE_NUMBER + 1).is_err());
        assert!(RecordFields::new(0, 0, 0, u64::MAX).is_err());
        let f = fields(22, 0xFEFD, 0, 0);
        let err = encode_record(&f, &vec![0; MAX_FRAGMENT_LENGTH + 1]).unwrap_err();
        assert!(matches!(err, CoreError::Configuration(_)));
        assert!(err.message().contains("65535"));
    }

    #[test]
    fn several_records_and_truncation() {
        let a = encode_record(&fields(22, 0xFEFD, 0, 1), b"abc").unwrap();
        let b = encode_record(&fields(21, 0xFEFD, 1, 2), b"").unwrap();
        let dgram = [a.clone(), b.clone()].concat();
        let all: Vec<_> = parse_records(&dgram).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].header.epoch, 1);
        assert_eq!(all[1].fragment, b"");
        assert!(parse_single_record(&dgram).is_none());

        // Every truncation yields the well-formed prefix and never panics.
        for cut in 0..dgram.len() {
            let mut it = parse_records(&dgram[..cut]);
            let n = it.by_ref().count();
            let expect = if cut >= a.len() { 1 } else { 0 };
            assert_eq!(n, expect, "cut at {cut}");
        }
        // A length running past the end stops parsing, keeping the prefix.
        let mut bad = dgram.clone();
        let len_pos = a.len() + 11;
        bad[len_pos..len_pos + 2].copy_from_slice(&[0xFF, 0xFF]);
        let mut it = parse_records(&bad);
        assert_eq!(it.next().unwrap().fragment, b"abc");
        assert!(it.next().is_none());
        assert_eq!(it.remaining().len(), b.len());
        assert!(parse_records(&[]).next().is_none());
        assert!(RecordHeader::parse(&[0; 12]).is_none());
    }

    #[test]
    fn cid_records_parse_with_the_receivers_cid_length() {
        // Built by hand from RFC 9146 §4: type 25, version, epoch, seq, cid, length.
        let cid_record = [
            &[25u8, 0xFE, 0xFD, 0x00, 0x01, 0, 0, 0, 0, 0, 7][..],
            &[0xC1, 0xC2, 0xC3],
            &[0, 2],
            b"xy",
        ]
        .concat();
        let plain = encode_record(&fields(23, 0xFEFD, 1, 8), b"abc").unwrap();
        let dgram = [cid_record.clone(), plain.clone()].concat();
        let all: Vec<_> = parse_records_cid(&dgram, 3).unwrap().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].header.content_type, 25);
        assert_eq!(all[0].header.epoch, 1);
        assert_eq!(all[0].header.sequence_number, 7);
        assert_eq!(all[0].cid, [0xC1, 0xC2, 0xC3]);
        assert_eq!(all[0].fragment, b"xy");
        assert_eq!(all[1].cid, b"");
        assert_eq!(all[1].fragment, b"abc");
        // With another CID length the boundaries differ; nothing panics.
        for n in 0..=MAX_CID_LENGTH {
            let total: usize = parse_records_cid(&dgram, n)
                .unwrap()
                .map(|r| RECORD_HEADER_LENGTH + r.cid.len() + r.fragment.len())
                .sum();
            assert!(total <= dgram.len());
        }
        for cut in 0..cid_record.len() {
            assert!(parse_records_cid(&cid_record[..cut], 3)
                .unwrap()
                .next()
                .is_none());
        }
        assert!(parse_records_cid(&dgram, 256).is_err());
        let mut out = vec![0; 16];
        write_cid_header(&fields(23, 0xFEFD, 1, 7), &[0xC1, 0xC2, 0xC3], 2, &mut out).unwrap();
        assert_eq!(out, cid_record[..16]);
        assert!(write_cid_header(&fields(23, 0xFEFD, 1, 7), &[1], 2, &mut out).is_err());
    }

    #[test]
    fn epoch0_plaintext() {
        let plain = encode_record(&fields(22, 0xFEFD, 0, 1), b"hs").unwrap();
        let dtls10 = encode_record(&fields(22, 0xFEFF, 0, 2), b"hs").unwrap();
        let epoch1 = encode_record(&fields(23, 0xFEFD, 1, 1), b"ad").unwrap();
        let tls = encode_record(&fields(22, 0x0303, 0, 1), b"hs").unwrap();
        let cid = [
            &[25u8, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 1, 7, 0, 1][..],
            b"x",
        ]
        .concat();
        let judge = |d: &[u8]| {
            parse_records_cid(d, 1)
                .unwrap()
                .map(|r| r.is_epoch0_plaintext())
                .collect::<Vec<_>>()
        };
        assert_eq!(judge(&[plain, dtls10].concat()), [true, true]);
        assert_eq!(judge(&[epoch1, tls, cid].concat()), [false, false, false]);
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random sweep: lengths and contents vary.
        let mut x: u32 = 0x1234_5678;
        for len in 0..300usize {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            let total: usize = parse_records(&buf)
                .map(|r| RECORD_HEADER_LENGTH + r.fragment.len())
                .sum();
            assert!(total <= len);
        }
    }
}
