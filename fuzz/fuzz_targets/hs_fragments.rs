//! Any handshake record payload: splitting it into fragments (RFC 6347
//! §4.2.3) must not panic, and the fragments it yields are the payload,
//! back to back, each with a header that parses on its own.
#![no_main]
use _core::hs_codec::{fragments, HandshakeHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pieces) = fragments(data) else {
        assert!(data.is_empty());
        return;
    };
    let mut joined = Vec::new();
    let mut failed = false;
    for piece in pieces {
        match piece {
            Ok(f) => {
                assert_eq!(HandshakeHeader::parse(f.bytes), Ok(f.header));
                assert_eq!(f.body().len(), f.header.fragment_length as usize);
                joined.extend_from_slice(f.bytes);
            }
            Err(_) => failed = true,
        }
    }
    assert!(failed || joined == data);
    assert!(data.starts_with(&joined));
});
