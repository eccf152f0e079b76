//! Any datagram: parsing must not panic, and re-encoding what was parsed
//! gives back exactly the bytes consumed (RFC 6347 §4.1).
#![no_main]
use _core::record::{encode_record, parse_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut consumed = Vec::new();
    for record in parse_records(data) {
        let encoded = encode_record(&record.header.fields(), record.fragment)
            .expect("a parsed record re-encodes");
        consumed.extend_from_slice(&encoded);
    }
    assert!(data.starts_with(&consumed));
});
