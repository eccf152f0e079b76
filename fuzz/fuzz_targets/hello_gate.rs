//! Any datagram at the cookie gate (RFC 6347 §4.2.1): no panic; a reply is a
//! single HelloVerifyRequest record no larger than the budget, echoing the
//! hello's record sequence number; a hello accepted carries a cookie that
//! verifies for this peer.
#![no_main]
use _core::cookie::CookieKeys;
use _core::hello_gate::{HelloGate, Verdict, DEFAULT_MAX_CLIENT_HELLO};
use _core::record::parse_records;
use libfuzzer_sys::fuzz_target;

const PEER: &[u8] = b"I\0\0\0\x04\x7f\0\0\x01\x16\x34";

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the budget; the rest is the datagram.
    let (budget, datagram) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    let keys = CookieKeys::new(&[7u8; 32], Some(&[9u8; 32]), 32).expect("valid keys");
    let gate = HelloGate::new(keys, DEFAULT_MAX_CLIENT_HELLO);
    match gate.check(datagram, PEER, budget) {
        Verdict::HelloVerifySent(reply) | Verdict::BadCookie(reply) => {
            let bytes = reply.as_bytes();
            assert!(bytes.len() <= budget);
            let records: Vec<_> = parse_records(bytes).collect();
            assert_eq!(records.len(), 1);
            let r = &records[0];
            assert_eq!(13 + r.fragment.len(), bytes.len());
            assert_eq!((r.header.content_type, r.header.epoch), (22, 0));
            assert_eq!(r.fragment[0], 3);
            let hello_seq = parse_records(datagram)
                .find(|h| h.header.content_type == 22 && h.header.epoch == 0)
                .map(|h| h.header.sequence_number);
            assert_eq!(hello_seq, Some(r.header.sequence_number));
        }
        Verdict::Accepted { random } => assert_eq!(random.len(), 32),
        _ => {}
    }
});
