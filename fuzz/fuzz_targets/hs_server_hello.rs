//! Any ServerHello body: decoding must not panic, and a decoded hello's
//! chosen certificate types are single bytes (RFC 7250 §4.2).
#![no_main]
use _core::hs_codec::ServerHello;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(hello) = ServerHello::decode(data) else {
        return;
    };
    let e = &hello.extensions;
    assert!(e.server_certificate_types.is_none_or(|t| t.len() == 1));
    assert!(e.client_certificate_types.is_none_or(|t| t.len() == 1));
    assert!(e.supported_groups.is_none() && e.signature_algorithms.is_none());
    assert!(e.record_size_limit.is_none_or(|limit| limit >= 64));
});
