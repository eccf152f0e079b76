//! The stateless front door of a DTLS server in one call (RFC 6347 §4.2.1):
//! a datagram from an address without a connection in, a verdict out.
//!
//! The records of the datagram are split (RFC 6347 §4.1), the first epoch-0
//! handshake record's fragments checked (§4.2.3), and its ClientHello
//! validated as strictly as `ClientHello.decode` does (RFC 5246 §7.4.1.2,
//! §7.4.1.4: no duplicate extension), without copying any of it. A hello
//! whose cookie verifies is accepted; any other hello gets a
//! HelloVerifyRequest built here, with the hello's record sequence number and
//! message_seq, and never larger than what it answers, so the exchange cannot
//! amplify. A fragmented hello is left to Python, which reassembles it.
//!
//! The decisions are those of `dtlsfast.cookie_gate.CookieGate`; its
//! pure-Python twin is `dtlsfast.pure.HelloGate`.

use crate::cookie::{CookieInput, CookieKeys, HelloFields, MAX_COOKIE_LENGTH};
use crate::record::{parse_records, RecordFields, RECORD_HEADER_LENGTH};

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const HELLO_VERIFY_REQUEST: u8 = 3;
const HANDSHAKE_HEADER: usize = 12;
/// DTLS 1.0's version, which HelloVerifyRequest carries (RFC 6347 §4.2.1).
pub const DTLS_1_0: u16 = 0xFEFF;
/// The largest ClientHello the gate looks at (`cookie_gate.MAX_CLIENT_HELLO`).
pub const DEFAULT_MAX_CLIENT_HELLO: usize = 4096;
/// Bytes of the largest HelloVerifyRequest record: record header, handshake
/// header, server_version, cookie length and a 32-byte cookie.
pub const MAX_REPLY_LENGTH: usize = RECORD_HEADER_LENGTH + HANDSHAKE_HEADER + 3 + MAX_COOKIE_LENGTH;

/// Highest record sequence number and message_seq a ClientHello may carry:
/// the server's flights and their retransmissions continue from them, so a
/// hello nearer the end of either space is refused (cookie_gate.py has the
/// same bounds).
pub const MAX_HELLO_RECORD_SEQ: u64 = (1 << 48) - 1 - (1 << 16);
pub const MAX_HELLO_MESSAGE_SEQ: u16 = u16::MAX - 16;
const MAX_SESSION_ID: usize = 32;
const MAX_COOKIE: usize = 255;
const RANDOM_LENGTH: usize = 32;

/// A HelloVerifyRequest record, built in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    bytes: [u8; MAX_REPLY_LENGTH],
    length: usize,
}

impl Reply {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.length).unwrap_or(&[])
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reply({} bytes)", self.length)
    }
}

/// What to do with one datagram from an address without a connection. The
/// names are the gate's counter names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// A ClientHello with a valid cookie: Python creates the connection.
    /// Carries the hello's random (to recognise a retransmitted hello).
    Accepted { random: &'a [u8] },
    /// A ClientHello without a cookie: send this HelloVerifyRequest.
    HelloVerifySent(Reply),
    /// A ClientHello whose cookie does not verify: send a fresh one.
    BadCookie(Reply),
    /// The HelloVerifyRequest would be larger than what it answers.
    AmplificationRefused,
    /// No epoch-0 handshake record, or its first message is not a ClientHello.
    NotClientHello,
    /// A ClientHello longer than the gate's bound.
    OversizeClientHello,
    /// A handshake record or ClientHello that does not decode.
    Malformed,
    /// A ClientHello fragment: Python reassembles it, then asks again.
    Fragmented,
    /// A ClientHello whose record sequence number or message_seq leaves no
    /// room for the server's flights.
    SequenceTooHigh,
}

impl Verdict<'_> {
    /// The counter this verdict is counted under (`CookieGate.counters`).
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Accepted { .. } => "accepted",
            Verdict::HelloVerifySent(_) => "hello_verify_sent",
            Verdict::BadCookie(_) => "bad_cookie",
            Verdict::AmplificationRefused => "amplification_refused",
            Verdict::NotClientHello => "not_client_hello",
            Verdict::OversizeClientHello => "oversize_client_hello",
            Verdict::Malformed => "malformed",
            Verdict::Fragmented => "fragmented",
            Verdict::SequenceTooHigh => "sequence_too_high",
        }
    }
}

/// The 12-byte handshake header (RFC 6347 §4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HandshakeHeader {
    msg_type: u8,
    length: usize,
    message_seq: u16,
    fragment_offset: usize,
    fragment_length: usize,
}

fn u24(b: &[u8]) -> Option<usize> {
    match *b {
        [a, b, c] => Some((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)),
        _ => None,
    }
}

/// `parse_handshake_header`: None if short, or if the fragment reaches past
/// the message length.
fn parse_handshake_header(data: &[u8]) -> Option<HandshakeHeader> {
    let h = data.get(..HANDSHAKE_HEADER)?;
    let header = HandshakeHeader {
        msg_type: *h.first()?,
        length: u24(h.get(1..4)?)?,
        message_seq: u16::from_be_bytes([*h.get(4)?, *h.get(5)?]),
        fragment_offset: u24(h.get(6..9)?)?,
        fragment_length: u24(h.get(9..12)?)?,
    };
    (header.fragment_offset + header.fragment_length <= header.length).then_some(header)
}

/// The fragments of a handshake record payload, validated as a whole first
/// (`split_handshake_fragments`): None if the payload is empty or any
/// fragment is truncated or inconsistent.
fn check_fragments(payload: &[u8]) -> Option<()> {
    if payload.is_empty() {
        return None;
    }
    let mut rest = payload;
    while !rest.is_empty() {
        let header = parse_handshake_header(rest)?;
        rest = rest.get(HANDSHAKE_HEADER + header.fragment_length..)?;
    }
    Some(())
}

/// Bounds-checked reader; every failure is None (a malformed hello).
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.data.split_at_checked(n)?;
        self.data = tail;
        Some(head)
    }

    fn uint(&mut self, n: usize) -> Option<usize> {
        Some(
            self.take(n)?
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
        )
    }

    fn vector(&mut self, length_size: usize, min: usize, max: usize) -> Option<&'a [u8]> {
        let n = self.uint(length_size)?;
        if n < min || n > max {
            return None;
        }
        self.take(n)
    }
}

/// A ClientHello body, as strictly as `ClientHello.decode`: the fields a
/// cookie binds and the cookie itself.
struct ParsedHello<'a> {
    fields: HelloFields<'a>,
    cookie: &'a [u8],
}

/// Extension types are checked for repeats in a stack array of this many
/// slots (a real hello has a dozen or two); more go to a sorted Vec.
const EXTENSION_SLOTS: usize = 128;

fn parse_client_hello(body: &[u8]) -> Option<ParsedHello<'_>> {
    let mut r = Reader { data: body };
    let version = u16::try_from(r.uint(2)?).ok()?;
    let random = r.take(RANDOM_LENGTH)?;
    r.vector(1, 0, MAX_SESSION_ID)?;
    let cookie = r.vector(1, 0, MAX_COOKIE)?;
    let suites = r.vector(2, 2, 0xFFFE)?;
    if suites.len() % 2 != 0 {
        return None;
    }
    let compression = r.vector(1, 1, 0xFF)?;
    if !r.data.is_empty() {
        let block = r.vector(2, 0, 0xFFFF)?;
        if !r.data.is_empty() {
            return None;
        }
        check_extensions(block)?;
    }
    Some(ParsedHello {
        fields: HelloFields {
            client_version: version,
            random,
            cipher_suites: suites,
            compression_methods: compression,
        },
        cookie,
    })
}

/// Every extension well formed, and no type twice (RFC 5246 §7.4.1.4).
fn check_extensions(block: &[u8]) -> Option<()> {
    let mut slots = [0u16; EXTENSION_SLOTS];
    let mut spill: Vec<u16> = Vec::new();
    let mut count = 0usize;
    let mut r = Reader { data: block };
    while !r.data.is_empty() {
        let ext_type = u16::try_from(r.uint(2)?).ok()?;
        r.vector(2, 0, 0xFFFF)?;
        match slots.get_mut(count) {
            Some(slot) => *slot = ext_type,
            None => {
                if spill.is_empty() {
                    spill.extend_from_slice(&slots);
                }
                spill.push(ext_type);
            }
        }
        count += 1;
    }
    let seen: &mut [u16] = if spill.is_empty() {
        slots.get_mut(..count)?
    } else {
        &mut spill
    };
    seen.sort_unstable();
    seen.windows(2).all(|w| w.first() != w.get(1)).then_some(())
}

/// The gate: cookie keys and the ClientHello bound. Holds no per-peer state.
#[derive(Clone, Debug)]
pub struct HelloGate {
    pub keys: CookieKeys,
    max_client_hello: usize,
}

impl HelloGate {
    pub fn new(keys: CookieKeys, max_client_hello: usize) -> Self {
        HelloGate {
            keys,
            max_client_hello,
        }
    }

    pub fn max_client_hello(&self) -> usize {
        self.max_client_hello
    }

    /// Decide on `datagram` from the peer whose canonical bytes are `peer`.
    /// `received` is the budget for the reply: the datagram's length, or for
    /// a reassembled hello the bytes of every datagram that carried it.
    pub fn check<'a>(&self, datagram: &'a [u8], peer: &[u8], received: usize) -> Verdict<'a> {
        let (record_seq, message_seq, hello) = match self.whole_hello(datagram) {
            Ok(found) => found,
            Err(verdict) => return verdict,
        };
        let input = CookieInput::Hello(hello.fields);
        if !hello.cookie.is_empty() && self.keys.verify(peer, &input, hello.cookie) {
            return Verdict::Accepted {
                random: hello.fields.random,
            };
        }
        let Some(reply) = self.hello_verify_request(peer, &input, message_seq, record_seq) else {
            return Verdict::Malformed;
        };
        if reply.length > received {
            return Verdict::AmplificationRefused;
        }
        if hello.cookie.is_empty() {
            Verdict::HelloVerifySent(reply)
        } else {
            Verdict::BadCookie(reply)
        }
    }

    /// The HelloVerifyRequest for `datagram` if [`HelloGate::check`] would
    /// answer it with one because its ClientHello has no cookie
    /// (`Verdict::HelloVerifySent`); None for anything else, without
    /// computing a cookie for a hello that carries one. What a server's
    /// batch answers without Python: a new peer's first hello.
    pub fn answer_cookieless(&self, datagram: &[u8], peer: &[u8]) -> Option<Reply> {
        let (record_seq, message_seq, hello) = self.whole_hello(datagram).ok()?;
        if !hello.cookie.is_empty() {
            return None;
        }
        let input = CookieInput::Hello(hello.fields);
        let reply = self.hello_verify_request(peer, &input, message_seq, record_seq)?;
        (reply.length <= datagram.len()).then_some(reply)
    }

    /// The first epoch-0 handshake record's ClientHello, whole in its one
    /// fragment: `(record sequence number, message_seq, hello)`; else the
    /// verdict that ends the check.
    fn whole_hello<'a>(
        &self,
        datagram: &'a [u8],
    ) -> Result<(u64, u16, ParsedHello<'a>), Verdict<'a>> {
        let Some(record) = parse_records(datagram)
            .find(|r| r.header.content_type == HANDSHAKE && r.header.epoch == 0)
        else {
            return Err(Verdict::NotClientHello);
        };
        let payload = record.fragment;
        if check_fragments(payload).is_none() {
            return Err(Verdict::Malformed);
        }
        // The first fragment decides (the only other outcome, a fragment
        // buffered for reassembly, is Python's).
        let Some(header) = parse_handshake_header(payload) else {
            return Err(Verdict::Malformed);
        };
        if header.msg_type != CLIENT_HELLO {
            return Err(Verdict::NotClientHello);
        }
        if header.length > self.max_client_hello {
            return Err(Verdict::OversizeClientHello);
        }
        if record.header.sequence_number > MAX_HELLO_RECORD_SEQ
            || header.message_seq > MAX_HELLO_MESSAGE_SEQ
        {
            return Err(Verdict::SequenceTooHigh);
        }
        if header.fragment_offset != 0 || header.fragment_length != header.length {
            return Err(Verdict::Fragmented);
        }
        let Some(body) = payload.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + header.length) else {
            return Err(Verdict::Malformed);
        };
        let Some(hello) = parse_client_hello(body) else {
            return Err(Verdict::Malformed);
        };
        Ok((record.header.sequence_number, header.message_seq, hello))
    }

    /// The HelloVerifyRequest record answering a hello: record sequence
    /// number and message_seq of the hello (RFC 6347 §4.2.1), version
    /// DTLS 1.0 in the record and the message.
    fn hello_verify_request(
        &self,
        peer: &[u8],
        input: &CookieInput<'_>,
        message_seq: u16,
        record_seq: u64,
    ) -> Option<Reply> {
        let (cookie, cookie_length) = self.keys.make(peer, input);
        let cookie = cookie.get(..cookie_length)?;
        let body_length = 3 + cookie.len();
        let fragment_length = HANDSHAKE_HEADER + body_length;
        let fields =
            RecordFields::new(u64::from(HANDSHAKE), u64::from(DTLS_1_0), 0, record_seq).ok()?;
        let header = fields.header(fragment_length).ok()?;
        let mut bytes = [0u8; MAX_REPLY_LENGTH];
        let length = RECORD_HEADER_LENGTH + fragment_length;
        let out = bytes.get_mut(..length)?;
        let (record_header, rest) = out.split_at_mut(RECORD_HEADER_LENGTH);
        record_header.copy_from_slice(&header.to_bytes());
        let body24 = u32::try_from(body_length).ok()?.to_be_bytes();
        let (hs, body) = rest.split_at_mut(HANDSHAKE_HEADER);
        hs.copy_from_slice(&[
            HELLO_VERIFY_REQUEST,
            body24[1],
            body24[2],
            body24[3],
            message_seq.to_be_bytes()[0],
            message_seq.to_be_bytes()[1],
            0,
            0,
            0,
            body24[1],
            body24[2],
            body24[3],
        ]);
        let (version, rest) = body.split_at_mut(2);
        version.copy_from_slice(&DTLS_1_0.to_be_bytes());
        let (length_byte, cookie_out) = rest.split_at_mut(1);
        *length_byte.first_mut()? = u8::try_from(cookie.len()).ok()?;
        cookie_out.copy_from_slice(cookie);
        Some(Reply { bytes, length })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &[u8] = b"I\0\0\0\x04\x7f\0\0\x01\x16\x34";

    fn gate() -> HelloGate {
        HelloGate::new(
            CookieKeys::new(&[7u8; 32], None, 32).unwrap(),
            DEFAULT_MAX_CLIENT_HELLO,
        )
    }

    use crate::test_support::{
        client_hello_body, client_hello_datagram as hello_datagram, handshake_message as handshake,
        record,
    };

    #[test]
    fn first_hello_gets_a_hello_verify_request_echoing_its_sequence_numbers() {
        let g = gate();
        let datagram = record(22, 0, 9, &handshake(1, 3, &client_hello_body(b"", None)));
        let Verdict::HelloVerifySent(reply) = g.check(&datagram, PEER, datagram.len()) else {
            panic!("expected a HelloVerifyRequest");
        };
        let r = reply.as_bytes();
        assert_eq!(r.len(), 13 + 12 + 3 + 32);
        assert_eq!(r[..3], [22, 0xFE, 0xFF]);
        assert_eq!(r[3..5], [0, 0]);
        assert_eq!(r[5..11], [0, 0, 0, 0, 0, 9]);
        assert_eq!(r[13], HELLO_VERIFY_REQUEST);
        assert_eq!(r[17..19], [0, 3]);
        assert_eq!(r[25..28], [0xFE, 0xFF, 32]);
        // The cookie in the reply verifies on the second hello.
        let cookie = &r[28..];
        let second = hello_datagram(cookie);
        assert_eq!(
            g.check(&second, PEER, second.len()),
            Verdict::Accepted {
                random: &[0x11; 32]
            }
        );
        // Another peer, or another secret, does not.
        assert!(matches!(
            g.check(&second, b"other", second.len()),
            Verdict::BadCookie(_)
        ));
    }

    #[test]
    fn cookieless_answers_are_those_of_check_and_only_for_hellos_without_a_cookie() {
        let g = gate();
        let first = hello_datagram(b"");
        let Verdict::HelloVerifySent(reply) = g.check(&first, PEER, first.len()) else {
            panic!("expected a HelloVerifyRequest");
        };
        assert_eq!(g.answer_cookieless(&first, PEER), Some(reply));
        // A cookie, valid or not, is the full check's (Python's) to decide.
        let cookie = &reply.as_bytes()[28..];
        assert_eq!(g.answer_cookieless(&hello_datagram(cookie), PEER), None);
        assert_eq!(g.answer_cookieless(&hello_datagram(&[1; 32]), PEER), None);
        // So is everything that is not one whole hello.
        let fragment = record(22, 0, 5, &first[13..40]);
        assert_eq!(g.answer_cookieless(&fragment, PEER), None);
        assert_eq!(g.answer_cookieless(b"junk", PEER), None);
        assert_eq!(g.answer_cookieless(&first[..first.len() - 1], PEER), None);
    }

    #[test]
    fn never_larger_than_the_datagram() {
        let g = gate();
        let datagram = hello_datagram(b"");
        assert_eq!(g.check(&datagram, PEER, 59), Verdict::AmplificationRefused);
        assert!(matches!(
            g.check(&datagram, PEER, 60),
            Verdict::HelloVerifySent(_)
        ));
    }

    #[test]
    fn hellos_without_sequence_room_are_refused() {
        let g = gate();
        let body = client_hello_body(b"", None);
        for (seq, message_seq) in [
            (MAX_HELLO_RECORD_SEQ + 1, 0u16),
            ((1 << 48) - 1, 0),
            (0, MAX_HELLO_MESSAGE_SEQ + 1),
            (0, u16::MAX),
        ] {
            let mut message = vec![CLIENT_HELLO];
            message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            message.extend_from_slice(&message_seq.to_be_bytes());
            message.extend_from_slice(&[0, 0, 0]);
            message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            message.extend_from_slice(&body);
            let datagram = record(22, 0, seq, &message);
            assert_eq!(
                g.check(&datagram, PEER, datagram.len()),
                Verdict::SequenceTooHigh
            );
        }
    }

    #[test]
    fn what_is_not_a_hello() {
        let g = gate();
        let body = client_hello_body(b"", None);
        let cases: Vec<(Vec<u8>, Verdict<'_>)> = vec![
            (vec![], Verdict::NotClientHello),
            (record(23, 0, 0, b"data"), Verdict::NotClientHello),
            (
                record(22, 1, 0, &handshake(1, 0, &body)),
                Verdict::NotClientHello,
            ),
            (
                record(22, 0, 0, &handshake(2, 0, &body)),
                Verdict::NotClientHello,
            ),
            (record(22, 0, 0, b""), Verdict::Malformed),
            (
                record(22, 0, 0, &handshake(1, 0, &body)[..20]),
                Verdict::Malformed,
            ),
            (
                record(22, 0, 0, &handshake(1, 0, &body[..body.len() - 1])),
                Verdict::Malformed,
            ),
            (
                record(22, 0, 0, &handshake(1, 0, &vec![0u8; 4097])),
                Verdict::OversizeClientHello,
            ),
        ];
        for (datagram, expected) in cases {
            assert_eq!(g.check(&datagram, PEER, 10_000), expected, "{datagram:?}");
        }
    }

    #[test]
    fn a_later_truncated_fragment_makes_the_record_malformed() {
        let g = gate();
        let mut payload = handshake(1, 0, &client_hello_body(b"", None));
        payload.extend_from_slice(&[1, 0, 0, 5, 0, 1, 0, 0, 0, 0, 0, 5, 1]);
        assert_eq!(
            g.check(&record(22, 0, 0, &payload), PEER, 1000),
            Verdict::Malformed
        );
    }

    #[test]
    fn fragments_go_to_python() {
        let g = gate();
        let body = client_hello_body(b"", None);
        let n = (body.len() as u32).to_be_bytes();
        let mut frag = vec![1, n[1], n[2], n[3], 0, 0, 0, 0, 0, 0, 0, 10];
        frag.extend_from_slice(&body[..10]);
        assert_eq!(
            g.check(&record(22, 0, 0, &frag), PEER, 1000),
            Verdict::Fragmented
        );
    }

    #[test]
    fn extensions_are_checked_like_the_codec() {
        let g = gate();
        let ok = [0u8, 10, 0, 0, 0, 23, 0, 0];
        let dup = [0u8, 10, 0, 0, 0, 10, 0, 0];
        let short = [0u8, 10, 0, 5, 1];
        for (ext, malformed) in [(&ok[..], false), (&dup[..], true), (&short[..], true)] {
            let d = record(
                22,
                0,
                0,
                &handshake(1, 0, &client_hello_body(b"", Some(ext))),
            );
            assert_eq!(g.check(&d, PEER, 1000) == Verdict::Malformed, malformed);
        }
        // Trailing bytes after the extensions block.
        let mut body = client_hello_body(b"", Some(&ok));
        body.push(0);
        let d = record(22, 0, 0, &handshake(1, 0, &body));
        assert_eq!(g.check(&d, PEER, 1000), Verdict::Malformed);
        // A second record after the hello is ignored; a record before it that
        // is not epoch-0 handshake is skipped.
        let mut two = record(23, 0, 0, b"x");
        two.extend_from_slice(&hello_datagram(b""));
        two.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            g.check(&two, PEER, 1000),
            Verdict::HelloVerifySent(_)
        ));
    }

    #[test]
    fn many_extensions_beyond_the_fast_slots() {
        let g = HelloGate::new(CookieKeys::new(&[7u8; 32], None, 32).unwrap(), 1 << 20);
        let mut ext = Vec::new();
        for t in 0..(EXTENSION_SLOTS as u16 + 5) {
            ext.extend_from_slice(&t.to_be_bytes());
            ext.extend_from_slice(&[0, 0]);
        }
        let d = record(
            22,
            0,
            0,
            &handshake(1, 0, &client_hello_body(b"", Some(&ext))),
        );
        assert!(matches!(
            g.check(&d, PEER, 1 << 20),
            Verdict::HelloVerifySent(_)
        ));
        ext.extend_from_slice(&[0, 0, 0, 0]);
        let d = record(
            22,
            0,
            0,
            &handshake(1, 0, &client_hello_body(b"", Some(&ext))),
        );
        assert_eq!(g.check(&d, PEER, 1 << 20), Verdict::Malformed);
    }
}
