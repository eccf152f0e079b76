//! Builders the engine's unit tests share (compiled for `cargo test` only).

/// A whole, unfragmented handshake message: the 12-byte header of RFC 6347
/// §4.2.2 (offset 0, fragment_length = length) and the body.
pub fn handshake_message(msg_type: u8, seq: u16, body: &[u8]) -> Vec<u8> {
    let n = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut m = vec![msg_type, n[1], n[2], n[3]];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, n[1], n[2], n[3]]);
    m.extend_from_slice(body);
    m
}
