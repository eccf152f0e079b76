//! Any sequence of handshake fragments: no panic, and the buffered bytes
//! never exceed the configured bound (RFC 6347 §4.2.3).
#![no_main]
use _core::reassembly::HandshakeReassembler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reassembler) = HandshakeReassembler::new(4096, 8192, 0) else {
        return;
    };
    // Split the input into fragments on a length prefix byte.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (fragment, next) = tail.split_at(n);
        let _ = reassembler.push(fragment);
        assert!(reassembler.buffered_bytes() <= 8192);
        rest = next;
    }
});
