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

/// A ClientHello body (RFC 5246 §7.4.1.2) with this cookie (RFC 6347
/// §4.2.1), an empty session_id, two cipher suites, the null compression
/// method and, if given, this extensions block.
pub fn client_hello_body(cookie: &[u8], extensions: Option<&[u8]>) -> Vec<u8> {
    let mut b = vec![0xFE, 0xFD];
    b.extend_from_slice(&[0x11; 32]);
    b.push(0); // session_id
    b.push(u8::try_from(cookie.len()).unwrap());
    b.extend_from_slice(cookie);
    b.extend_from_slice(&[0, 4, 0xC0, 0xA8, 0x00, 0xA8]);
    b.extend_from_slice(&[1, 0]);
    if let Some(ext) = extensions {
        b.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
        b.extend_from_slice(ext);
    }
    b
}

/// A DTLS 1.2 record of these fields around `payload`.
pub fn record(content_type: u8, epoch: u16, seq: u64, payload: &[u8]) -> Vec<u8> {
    let fields =
        crate::record::RecordFields::new(u64::from(content_type), 0xFEFD, u64::from(epoch), seq)
            .unwrap();
    crate::record::encode_record(&fields, payload).unwrap()
}

/// A datagram of one epoch-0 record holding a whole ClientHello with this
/// cookie (record sequence number 5, message_seq 0).
pub fn client_hello_datagram(cookie: &[u8]) -> Vec<u8> {
    record(
        22,
        0,
        5,
        &handshake_message(1, 0, &client_hello_body(cookie, None)),
    )
}
