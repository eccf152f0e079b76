//! Any HelloVerifyRequest body (RFC 6347 §4.2.1): no panic, and what
//! decodes re-encodes to the same bytes.
#![no_main]
use _core::hs_codec::{decode_hello_verify_request, encode_hello_verify_request, HEADER_LENGTH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((version, cookie)) = decode_hello_verify_request(data) {
        let again = encode_hello_verify_request(0, version, cookie).expect("re-encodes");
        assert_eq!(&again[HEADER_LENGTH..], data);
    }
});
