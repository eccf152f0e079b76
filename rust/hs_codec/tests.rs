//! `cargo test` of the handshake codecs: real messages captured from OpenSSL,
//! GnuTLS, libcoap and Mbed TLS (captures.rs), structures built by hand from
//! their RFC definitions, every error path, and a seeded random search for
//! panics over mutated and random input.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::captures::*;
use super::error::{CodecError, ErrorKind, Message};
use super::extensions as ext;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Header fields and body of a whole captured message.
fn whole(message: &[u8]) -> (HandshakeHeader, &[u8]) {
    let header = HandshakeHeader::parse(message).expect("header");
    assert!(header.is_whole());
    assert_eq!(header.length as usize, message.len() - HEADER_LENGTH);
    (header, &message[HEADER_LENGTH..])
}

/// The raw (type, data) pairs of an extensions block, for re-encoding.
fn raw_extensions(block: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        out.push((t, &rest[4..4 + n]));
        rest = &rest[4 + n..];
    }
    out
}

/// The extensions block at the end of a ClientHello body.
fn client_hello_block(body: &[u8]) -> &[u8] {
    let mut at = 2 + 32;
    at += 1 + usize::from(body[at]);
    at += 1 + usize::from(body[at]);
    at += 2 + usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    at += 1 + usize::from(body[at]);
    &body[at + 2..]
}

fn kind<T: std::fmt::Debug>(result: CodecResult<T>) -> ErrorKind {
    result.expect_err("must fail").kind()
}

// ------------------------------------------------------------ header

#[test]
fn header_of_rfc6347_structure() {
    // RFC 6347 §4.2.2: msg_type 1, length 0x000102, message_seq 7, a
    // fragment of 0x10 bytes at offset 0x20.
    let data = hex("01000102000700002000001000");
    let header = HandshakeHeader::parse(&data).unwrap();
    assert_eq!(
        header,
        HandshakeHeader {
            msg_type: 1,
            length: 0x102,
            message_seq: 7,
            fragment_offset: 0x20,
            fragment_length: 0x10,
        }
    );
    assert!(!header.is_whole());
}

#[test]
fn header_errors() {
    for n in 0..HEADER_LENGTH {
        let data = vec![0u8; n];
        assert_eq!(kind(HandshakeHeader::parse(&data)), ErrorKind::DecodeError);
    }
    // offset 5 + fragment_length 6 > length 10.
    let past = hex("0100000a0000000005000006");
    assert!(matches!(
        HandshakeHeader::parse(&past),
        Err(CodecError::FragmentPastMessage {
            offset: 5,
            fragment_length: 6,
            length: 10
        })
    ));
    // Largest values: no overflow, and a fragment that ends exactly at the end.
    let max = hex("01ffffffffff000000ffffff");
    assert!(HandshakeHeader::parse(&max).unwrap().is_whole());
    let over = hex("01ffffffffff000001ffffff");
    assert_eq!(kind(HandshakeHeader::parse(&over)), ErrorKind::DecodeError);
}

#[test]
fn fragments_of_a_record_carrying_several_messages() {
    // RFC 6347 §4.2.3: several messages back to back in one record, as a
    // server's flight (ServerHello, ServerKeyExchange, ServerHelloDone) may be.
    let mut payload = hex(OPENSSL_SERVER_HELLO_PSK);
    payload.extend(hex(OPENSSL_SERVER_KEY_EXCHANGE_PSK));
    payload.extend(hex(OPENSSL_SERVER_HELLO_DONE));
    let pieces = parse_fragments(&payload).unwrap();
    let types: Vec<u8> = pieces.iter().map(|f| f.header.msg_type).collect();
    assert_eq!(types, [2, 12, 14]);
    let seqs: Vec<u16> = pieces.iter().map(|f| f.header.message_seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(
        pieces[1].bytes,
        hex(OPENSSL_SERVER_KEY_EXCHANGE_PSK).as_slice()
    );
    assert_eq!(pieces[1].body(), b"\x00\x04CoAP");
    assert!(pieces[2].body().is_empty());
}

#[test]
fn fragments_reassemble_the_openssl_certificate() {
    let whole_message = hex(OPENSSL_SERVER_CERTIFICATE);
    let (header, body) = whole(&whole_message);
    let mut rebuilt = vec![0u8; body.len()];
    let mut covered = 0;
    for f in [
        OPENSSL_SERVER_CERTIFICATE_FRAGMENT_0,
        OPENSSL_SERVER_CERTIFICATE_FRAGMENT_1,
        OPENSSL_SERVER_CERTIFICATE_FRAGMENT_2,
        OPENSSL_SERVER_CERTIFICATE_FRAGMENT_3,
        OPENSSL_SERVER_CERTIFICATE_FRAGMENT_4,
    ] {
        let payload = hex(f);
        let pieces = parse_fragments(&payload).unwrap();
        assert_eq!(pieces.len(), 1);
        let piece = pieces[0];
        assert_eq!(piece.header.length, header.length);
        assert_eq!(piece.header.message_seq, header.message_seq);
        let at = piece.header.fragment_offset as usize;
        assert_eq!(at, covered, "OpenSSL sends the fragments in order");
        rebuilt[at..at + piece.body().len()].copy_from_slice(piece.body());
        covered += piece.body().len();
    }
    assert_eq!(covered, body.len());
    assert_eq!(rebuilt, body);
}

#[test]
fn fragment_errors() {
    assert!(matches!(
        parse_fragments(b""),
        Err(CodecError::Empty {
            message: Message::HandshakeRecord,
            ..
        })
    ));
    let mut payload = hex(OPENSSL_CLIENT_KEY_EXCHANGE_PSK);
    // A second fragment whose body is cut short.
    let second = hex(OPENSSL_SERVER_KEY_EXCHANGE_PSK);
    payload.extend(&second[..second.len() - 1]);
    assert!(matches!(
        parse_fragments(&payload),
        Err(CodecError::Truncated {
            field: "fragment body",
            ..
        })
    ));
    // The iterator yields the good fragment, then the error, then stops.
    let items: Vec<_> = fragments(&payload).unwrap().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok() && items[1].is_err());
    // A stray byte after the last fragment is a truncated header.
    let mut stray = hex(OPENSSL_SERVER_HELLO_DONE);
    stray.push(0);
    assert_eq!(kind(parse_fragments(&stray)), ErrorKind::DecodeError);
}

#[test]
fn encode_handshake_writes_a_whole_message() {
    let out = encode_handshake(12, 2, b"\x00\x04CoAP", Message::ServerKeyExchange).unwrap();
    assert_eq!(out, hex(OPENSSL_SERVER_KEY_EXCHANGE_PSK));
    let empty = encode_handshake(14, 3, b"", Message::ServerHelloDone).unwrap();
    assert_eq!(empty, hex(OPENSSL_SERVER_HELLO_DONE));
    let big = vec![0u8; 0x100_0000];
    assert_eq!(
        kind(encode_handshake(11, 0, &big, Message::Certificate)),
        ErrorKind::Unencodable
    );
}

// ------------------------------------------------------- ClientHello

const CLIENT_HELLOS: [&str; 7] = [
    OPENSSL_CLIENT_HELLO,
    OPENSSL_CLIENT_HELLO_COOKIE,
    GNUTLS_CLIENT_HELLO,
    COAP_CLIENT_OPENSSL_CLIENT_HELLO,
    COAP_CLIENT_GNUTLS_CLIENT_HELLO,
    COAP_CLIENT_GNUTLS_RPK_CLIENT_HELLO,
    MBEDTLS_CLIENT_HELLO,
];

#[test]
fn openssl_client_hello() {
    let message = hex(OPENSSL_CLIENT_HELLO);
    let (header, body) = whole(&message);
    assert_eq!((header.msg_type, header.message_seq), (1, 0));
    let hello = ClientHello::decode(body).unwrap();
    assert_eq!(hello.client_version, 0xFEFD);
    assert!(hello.session_id.is_empty() && hello.cookie.is_empty());
    assert_eq!(
        hello.cipher_suites.iter().collect::<Vec<_>>(),
        [0xC0A8, 0x00FF]
    );
    assert_eq!(hello.compression_methods, [0]);
    let e = &hello.extensions;
    assert!(e.extended_master_secret);
    assert_eq!(e.session_ticket, Some(&[][..]));
    assert_eq!(e.signature_algorithms.unwrap().len(), 20);
    assert!(e.signature_algorithms.unwrap().contains(0x0403));
    assert_eq!(e.supported_groups, None);
    assert!(!e.server_name);
    assert_eq!(e.others, [(22, &[][..])], "encrypt_then_mac is kept raw");
}

#[test]
fn second_hello_carries_the_cookie_and_repeats_what_it_binds() {
    let first = hex(OPENSSL_CLIENT_HELLO);
    let second = hex(OPENSSL_CLIENT_HELLO_COOKIE);
    let a = ClientHello::decode(whole(&first).1).unwrap();
    let b = ClientHello::decode(whole(&second).1).unwrap();
    assert_eq!(b.cookie.len(), 32);
    assert_eq!(a.cookie_input(), b.cookie_input());
    let input = a.cookie_input();
    assert_eq!(input.len(), a.cookie_input_length());
    // version, len(random)=32, random, 2 suites, 1 compression method.
    let mut expected = hex("fefd0020");
    expected.extend(a.random);
    expected.extend(hex("00000002c0a800ff000100"));
    assert_eq!(input, expected);
}

#[test]
fn libcoap_openssl_client_hello() {
    let message = hex(COAP_CLIENT_OPENSSL_CLIENT_HELLO);
    let hello = ClientHello::decode(whole(&message).1).unwrap();
    assert_eq!(hello.cipher_suites.len(), 49);
    assert!(hello.cipher_suites.contains(0xC0A8));
    assert!(hello.cipher_suites.contains(0xCCAC));
    let e = &hello.extensions;
    assert!(e.server_name, "libcoap sends SNI with an IP literal");
    assert_eq!(
        e.supported_groups.unwrap().iter().collect::<Vec<_>>(),
        [29, 23, 30, 25, 24]
    );
    assert_eq!(e.ec_point_formats, Some(&[0, 1, 2][..]));
    assert!(e.extended_master_secret);
    assert_eq!(e.renegotiation_info, None);
}

#[test]
fn gnutls_client_hellos() {
    for capture in [GNUTLS_CLIENT_HELLO, COAP_CLIENT_GNUTLS_CLIENT_HELLO] {
        let message = hex(capture);
        let hello = ClientHello::decode(whole(&message).1).unwrap();
        let e = &hello.extensions;
        assert_eq!(e.record_size_limit, Some(16384));
        assert_eq!(e.renegotiation_info, Some(&[][..]));
        assert!(e.extended_master_secret);
        assert!(e.supported_groups.unwrap().contains(23));
        assert_eq!(e.ec_point_formats, Some(&[0][..]));
    }
    let message = hex(GNUTLS_CLIENT_HELLO);
    let hello = ClientHello::decode(whole(&message).1).unwrap();
    assert_eq!(
        hello.extensions.others[0].0, 5,
        "status_request is kept raw"
    );
}

#[test]
fn gnutls_raw_public_key_hello() {
    let message = hex(COAP_CLIENT_GNUTLS_RPK_CLIENT_HELLO);
    let hello = ClientHello::decode(whole(&message).1).unwrap();
    let e = &hello.extensions;
    // RFC 7250 §3: the client offers to send a raw public key, and accepts
    // an X.509 certificate or a raw public key from the server.
    assert_eq!(e.client_certificate_types, Some(&[2][..]));
    assert_eq!(e.server_certificate_types, Some(&[0, 2][..]));
    assert!(e.server_name);
}

#[test]
fn mbedtls_client_hello() {
    let message = hex(MBEDTLS_CLIENT_HELLO);
    let hello = ClientHello::decode(whole(&message).1).unwrap();
    assert_eq!(hello.cipher_suites.len(), 166);
    assert!(hello.cipher_suites.contains(0xC0A8));
    let e = &hello.extensions;
    assert_eq!(e.signature_algorithms.unwrap().len(), 8);
    assert_eq!(e.supported_groups.unwrap().len(), 13);
    assert!(e.extended_master_secret);
}

#[test]
fn client_hellos_re_encode_to_the_captured_bytes() {
    for capture in CLIENT_HELLOS {
        let message = hex(capture);
        let (header, body) = whole(&message);
        let hello = ClientHello::decode(body).unwrap();
        let suites: Vec<u16> = hello.cipher_suites.iter().collect();
        let extensions = raw_extensions(client_hello_block(body));
        let fields = ClientHelloFields {
            client_version: hello.client_version,
            random: hello.random,
            session_id: hello.session_id,
            cookie: hello.cookie,
            cipher_suites: &suites,
            compression_methods: hello.compression_methods,
            extensions: &extensions,
        };
        assert_eq!(
            encode_client_hello(header.message_seq, &fields).unwrap(),
            message
        );
    }
}

/// A ClientHello body with these extensions (type, data).
fn hello_with(extensions: &[(u16, &[u8])]) -> Vec<u8> {
    let fields = ClientHelloFields {
        client_version: 0xFEFD,
        random: &[7; 32],
        session_id: b"",
        cookie: b"",
        cipher_suites: &[0xC0A8],
        compression_methods: &[0],
        extensions,
    };
    encode_client_hello(0, &fields).unwrap()[HEADER_LENGTH..].to_vec()
}

#[test]
fn client_hello_extension_values() {
    let body = hello_with(&[
        (ext::CONNECTION_ID, b"\x03abc"),
        (ext::RECORD_SIZE_LIMIT, &64u16.to_be_bytes()),
        (ext::SESSION_TICKET, b"ticket"),
        (ext::EXTENDED_MASTER_SECRET, b""),
        (0x1234, b"raw"),
    ]);
    let e = ClientHello::decode(&body).unwrap().extensions;
    assert_eq!(e.connection_id, Some(&b"abc"[..]));
    assert_eq!(e.record_size_limit, Some(64));
    assert_eq!(e.session_ticket, Some(&b"ticket"[..]));
    assert!(e.extended_master_secret);
    assert_eq!(e.others, [(0x1234, &b"raw"[..])]);
    // An empty connection_id: the client sends CIDs but wants none (RFC 9146 §3).
    let body = hello_with(&[(ext::CONNECTION_ID, b"\x00")]);
    assert_eq!(
        ClientHello::decode(&body).unwrap().extensions.connection_id,
        Some(&[][..])
    );
    // No extensions at all, and an empty block: both valid.
    let mut bare = hello_with(&[]);
    assert_eq!(
        ClientHello::decode(&bare).unwrap().extensions,
        HelloExtensions::default()
    );
    bare.extend([0, 0]);
    assert_eq!(
        ClientHello::decode(&bare).unwrap().extensions,
        HelloExtensions::default()
    );
}

#[test]
fn malformed_extensions_are_decode_errors() {
    let cases: [(u16, &[u8]); 14] = [
        (ext::SUPPORTED_GROUPS, b""),
        (ext::SUPPORTED_GROUPS, b"\x00\x00"),
        (ext::SUPPORTED_GROUPS, b"\x00\x03\x00\x17\x00"),
        (ext::SUPPORTED_GROUPS, b"\x00\x04\x00\x17"),
        (ext::SIGNATURE_ALGORITHMS, b"\x00\x01\x04"),
        (ext::EC_POINT_FORMATS, b"\x00"),
        (ext::EC_POINT_FORMATS, b"\x02\x00"),
        (ext::EXTENDED_MASTER_SECRET, b"\x00"),
        (ext::RECORD_SIZE_LIMIT, b"\x40"),
        (ext::RECORD_SIZE_LIMIT, b"\x40\x00\x00"),
        (ext::CONNECTION_ID, b""),
        (ext::RENEGOTIATION_INFO, b"\x01"),
        (ext::CLIENT_CERTIFICATE_TYPE, b"\x00"),
        (ext::SERVER_CERTIFICATE_TYPE, b"\x02\x00"),
    ];
    for (t, data) in cases {
        let body = hello_with(&[(t, data)]);
        let err = ClientHello::decode(&body).expect_err("malformed");
        assert_eq!(err.kind(), ErrorKind::DecodeError, "{t}: {err}");
        assert_eq!(err.alert(), Some(50));
    }
}

#[test]
fn illegal_parameters() {
    // RFC 8449 §4: a record_size_limit below 64 is illegal_parameter.
    let body = hello_with(&[(ext::RECORD_SIZE_LIMIT, &63u16.to_be_bytes())]);
    let err = ClientHello::decode(&body).unwrap_err();
    assert_eq!(
        err,
        CodecError::RecordSizeLimitTooSmall {
            message: Message::ClientHello,
            limit: 63
        }
    );
    assert_eq!(err.alert(), Some(47));
    // RFC 5246 §7.4.1.4: no extension type twice.
    let body = hello_with(&[
        (ext::EXTENDED_MASTER_SECRET, b""),
        (ext::EXTENDED_MASTER_SECRET, b""),
    ]);
    assert_eq!(
        ClientHello::decode(&body).unwrap_err(),
        CodecError::DuplicateExtension {
            message: Message::ClientHello,
            extension: 23
        }
    );
    // Unknown types too.
    let body = hello_with(&[(0x7777, b"a"), (1, b""), (0x7777, b"b")]);
    assert_eq!(
        kind(ClientHello::decode(&body)),
        ErrorKind::IllegalParameter
    );
}

#[test]
fn error_precedence_follows_the_python_codecs() {
    // Structure before content: a malformed extension before a duplicate
    // still gives the duplicate.
    let body = hello_with(&[(ext::RECORD_SIZE_LIMIT, b"\x00"), (9, b""), (9, b"")]);
    assert_eq!(
        kind(ClientHello::decode(&body)),
        ErrorKind::IllegalParameter
    );
    // Content errors in wire order: the first malformed one decides.
    let body = hello_with(&[
        (ext::EXTENDED_MASTER_SECRET, b"x"),
        (ext::RECORD_SIZE_LIMIT, b"\x00\x01"),
    ]);
    assert_eq!(kind(ClientHello::decode(&body)), ErrorKind::DecodeError);
    let body = hello_with(&[
        (ext::RECORD_SIZE_LIMIT, b"\x00\x01"),
        (ext::EXTENDED_MASTER_SECRET, b"x"),
    ]);
    assert_eq!(
        kind(ClientHello::decode(&body)),
        ErrorKind::IllegalParameter
    );
    // Bytes after the block come before what is inside it.
    let mut body = hello_with(&[(9, b""), (9, b"")]);
    body.push(0);
    assert!(matches!(
        ClientHello::decode(&body),
        Err(CodecError::Trailing { .. })
    ));
    // A truncated extension is reported before a duplicate of its type.
    let mut body = hello_with(&[(9, b""), (9, b"xy")]);
    body.pop();
    let n = body.len();
    let block_len = u16::from_be_bytes([body[n - 13], body[n - 12]]);
    assert!(block_len > 0);
    let len_at = client_hello_block_offset(&body);
    let declared = u16::from_be_bytes([body[len_at], body[len_at + 1]]) - 1;
    body[len_at..len_at + 2].copy_from_slice(&declared.to_be_bytes());
    assert_eq!(kind(ClientHello::decode(&body)), ErrorKind::DecodeError);
}

fn client_hello_block_offset(body: &[u8]) -> usize {
    body.len() - client_hello_block(body).len() - 2
}

#[test]
fn many_extensions_and_a_late_duplicate() {
    // Past 32 types the duplicate check moves to a bitmap: same answers.
    let types: Vec<u16> = (0..200).map(|i| 1000 + i).collect();
    let mut list: Vec<(u16, &[u8])> = types.iter().map(|&t| (t, &b""[..])).collect();
    assert!(ClientHello::decode(&hello_with(&list)).is_ok());
    list.push((1003, b""));
    assert_eq!(
        kind(ClientHello::decode(&hello_with(&list))),
        ErrorKind::IllegalParameter
    );
    list.pop();
    list.push((1199, b""));
    assert_eq!(
        kind(ClientHello::decode(&hello_with(&list))),
        ErrorKind::IllegalParameter
    );
    // A block of 16383 empty extensions of distinct types decodes in one pass.
    let all: Vec<(u16, &[u8])> = (0..16383u16).map(|t| (t + 100, &b""[..])).collect();
    let body = hello_with(&all);
    assert_eq!(
        ClientHello::decode(&body).unwrap().extensions.others.len(),
        16383
    );
}

#[test]
fn client_hello_field_errors() {
    let good = hello_with(&[]);
    // Every truncation of every captured hello is a decode_error.
    for capture in CLIENT_HELLOS {
        let message = hex(capture);
        let body = whole(&message).1;
        for cut in 0..body.len() {
            let result = ClientHello::decode(&body[..cut]);
            // A cut exactly before the extensions block is a valid hello.
            if cut != client_hello_block_offset(body) {
                assert_eq!(kind(result), ErrorKind::DecodeError, "{cut}");
            }
        }
    }
    let mut odd = good.clone();
    // cipher_suites length 3.
    odd[2 + 32 + 1 + 1 + 1] = 3;
    assert_eq!(kind(ClientHello::decode(&odd)), ErrorKind::DecodeError);
    let mut long_session = good.clone();
    long_session[34] = 33;
    assert!(matches!(
        ClientHello::decode(&long_session),
        Err(CodecError::LengthOutOfRange {
            field: "session_id",
            ..
        })
    ));
    let no_compression = {
        let mut b = good[..good.len() - 2].to_vec();
        b.push(0);
        b
    };
    assert!(matches!(
        ClientHello::decode(&no_compression),
        Err(CodecError::LengthOutOfRange {
            field: "compression_methods",
            ..
        })
    ));
}

#[test]
fn client_hello_encoding_errors() {
    let base = ClientHelloFields {
        client_version: 0xFEFD,
        random: &[0; 32],
        session_id: b"",
        cookie: b"",
        cipher_suites: &[0xC0A8],
        compression_methods: &[0],
        extensions: &[],
    };
    let bad = [
        ClientHelloFields {
            random: &[0; 31],
            ..base.clone()
        },
        ClientHelloFields {
            session_id: &[0; 33],
            ..base.clone()
        },
        ClientHelloFields {
            cookie: &[0; 256],
            ..base.clone()
        },
        ClientHelloFields {
            cipher_suites: &[],
            ..base.clone()
        },
        ClientHelloFields {
            compression_methods: &[],
            ..base.clone()
        },
    ];
    for fields in bad {
        assert_eq!(
            kind(encode_client_hello(0, &fields)),
            ErrorKind::Unencodable
        );
    }
    let big = vec![0u8; 0x10000];
    let extensions = [(1u16, &big[..])];
    let fields = ClientHelloFields {
        extensions: &extensions,
        ..base.clone()
    };
    assert_eq!(
        kind(encode_client_hello(0, &fields)),
        ErrorKind::Unencodable
    );
}

// ------------------------------------------------------- ServerHello

#[test]
fn captured_server_hellos() {
    let message = hex(OPENSSL_SERVER_HELLO_PSK);
    let (header, body) = whole(&message);
    assert_eq!((header.msg_type, header.message_seq), (2, 1));
    let hello = ServerHello::decode(body).unwrap();
    assert_eq!(
        (
            hello.server_version,
            hello.cipher_suite,
            hello.compression_method
        ),
        (0xFEFD, 0xC0A8, 0)
    );
    assert_eq!(hello.extensions.renegotiation_info, Some(&[][..]));
    assert!(hello.extensions.extended_master_secret);
    assert_eq!(hello.extensions.session_ticket, Some(&[][..]));

    let message = hex(GNUTLS_SERVER_HELLO);
    let body = whole(&message).1;
    let hello = ServerHello::decode(body).unwrap();
    assert_eq!(hello.session_id.len(), 32);
    assert_eq!(hello.extensions.record_size_limit, Some(16384));
    assert!(hello.extensions.others.is_empty());
    // Re-encoded with its extensions given raw, in their order: the same bytes.
    let at = 2 + 32 + 1 + 32 + 2 + 1 + 2;
    let extensions = raw_extensions(&body[at..]);
    let fields = ServerHelloFields {
        server_version: hello.server_version,
        random: hello.random,
        session_id: hello.session_id,
        cipher_suite: hello.cipher_suite,
        extensions: &extensions,
        ..Default::default()
    };
    assert_eq!(encode_server_hello(1, &fields).unwrap(), message);
}

#[test]
fn server_hello_with_every_typed_extension() {
    // RFC 5246 §7.4.1.3, RFC 5746, RFC 7627, RFC 8449, RFC 8422, RFC 7250,
    // RFC 9146, RFC 5077: the typed extensions in their fixed order.
    let fields = ServerHelloFields {
        server_version: 0xFEFD,
        random: &[0xAB; 32],
        session_id: b"",
        cipher_suite: 0xC0AE,
        compression_method: 0,
        renegotiation_info: Some(b""),
        extended_master_secret: true,
        record_size_limit: Some(16384),
        ec_point_formats: Some(&[0]),
        server_certificate_type: Some(2),
        client_certificate_type: Some(0),
        connection_id: Some(b"\x01\x02"),
        session_ticket: true,
        extensions: &[(0x1234, b"x")],
    };
    let out = encode_server_hello(1, &fields).unwrap();
    let mut body = hex("fefd");
    body.extend([0xAB; 32]);
    body.extend(hex("00c0ae00"));
    let exts = hex(concat!(
        "ff01000100",
        "00170000",
        "001c00024000",
        "000b00020100",
        "0014000102",
        "0013000100",
        "0036000302",
        "0102",
        "00230000",
        "1234000178"
    ));
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(&exts);
    assert_eq!(out[HEADER_LENGTH..], body[..]);
    assert_eq!(
        out[..HEADER_LENGTH],
        encode_handshake(2, 1, &body, Message::ServerHello).unwrap()[..HEADER_LENGTH]
    );
    let hello = ServerHello::decode(&body).unwrap();
    assert_eq!(hello.server_certificate_type(), Some(2));
    assert_eq!(hello.client_certificate_type(), Some(0));
    assert_eq!(hello.extensions.connection_id, Some(&b"\x01\x02"[..]));
    assert_eq!(hello.extensions.others, [(0x1234, &b"x"[..])]);
    // Without any extension there is no block at all.
    let bare = ServerHelloFields {
        random: &[0; 32],
        ..Default::default()
    };
    assert_eq!(
        encode_server_hello(0, &bare).unwrap().len(),
        HEADER_LENGTH + 2 + 32 + 1 + 3
    );
}

#[test]
fn server_hello_rules() {
    // supported_groups is not a ServerHello extension: kept raw for Python to refuse.
    let mut body = hex("fefd");
    body.extend([0; 32]);
    body.extend(hex("00c0a800"));
    body.extend(hex("0006000a00020017"));
    let hello = ServerHello::decode(&body).unwrap();
    assert_eq!(hello.extensions.supported_groups, None);
    assert_eq!(hello.extensions.others, [(10, &hex("0017")[..])]);
    // A certificate type list is not a ServerHello's answer (RFC 7250 §4.2).
    let mut listed = body[..38].to_vec();
    listed.extend(hex("0006001400020102"));
    assert_eq!(kind(ServerHello::decode(&listed)), ErrorKind::DecodeError);
    for bad in [
        ServerHelloFields {
            random: &[0; 33],
            ..Default::default()
        },
        ServerHelloFields {
            random: &[0; 32],
            record_size_limit: Some(63),
            ..Default::default()
        },
        ServerHelloFields {
            random: &[0; 32],
            record_size_limit: Some(16386),
            ..Default::default()
        },
        ServerHelloFields {
            random: &[0; 32],
            ec_point_formats: Some(b""),
            ..Default::default()
        },
        ServerHelloFields {
            random: &[0; 32],
            connection_id: Some(&[0; 256]),
            ..Default::default()
        },
        ServerHelloFields {
            random: &[0; 32],
            renegotiation_info: Some(&[0; 256]),
            ..Default::default()
        },
        ServerHelloFields {
            random: &[0; 32],
            session_id: &[0; 33],
            ..Default::default()
        },
    ] {
        assert_eq!(kind(encode_server_hello(0, &bad)), ErrorKind::Unencodable);
    }
}

// ------------------------------------------------ HelloVerifyRequest

#[test]
fn hello_verify_requests() {
    for (capture, cookie_length) in [
        (OPENSSL_HELLO_VERIFY_REQUEST, 20),
        (GNUTLS_HELLO_VERIFY_REQUEST, 16),
    ] {
        let message = hex(capture);
        let (header, body) = whole(&message);
        let (version, cookie) = decode_hello_verify_request(body).unwrap();
        // RFC 6347 §4.2.1: DTLS 1.0 in the HelloVerifyRequest whatever is negotiated.
        assert_eq!((version, cookie.len()), (0xFEFF, cookie_length));
        assert_eq!(
            encode_hello_verify_request(header.message_seq, version, cookie).unwrap(),
            message
        );
    }
    assert_eq!(
        kind(decode_hello_verify_request(&hex("feff0200"))),
        ErrorKind::DecodeError
    );
    assert_eq!(
        kind(decode_hello_verify_request(&hex("feff000000"))),
        ErrorKind::DecodeError
    );
    assert_eq!(
        kind(encode_hello_verify_request(0, 0xFEFF, &[0; 256])),
        ErrorKind::Unencodable
    );
}

// ------------------------------------------------------ key exchange

#[test]
fn psk_key_exchange() {
    // RFC 4279 §2.
    let message = hex(OPENSSL_SERVER_KEY_EXCHANGE_PSK);
    let (header, body) = whole(&message);
    let hint = decode_server_key_exchange_psk(body).unwrap();
    assert_eq!(hint, b"CoAP");
    assert_eq!(
        encode_server_key_exchange_psk(header.message_seq, hint).unwrap(),
        message
    );
    let message = hex(OPENSSL_CLIENT_KEY_EXCHANGE_PSK);
    let (header, body) = whole(&message);
    let identity = decode_client_key_exchange_psk(body).unwrap();
    assert_eq!(identity, b"CoAP");
    assert_eq!(
        encode_client_key_exchange_psk(header.message_seq, identity).unwrap(),
        message
    );
    // An empty hint is valid (RFC 4279 §2: the server may send none).
    assert_eq!(decode_server_key_exchange_psk(&[0, 0]).unwrap(), b"");
    for bad in [&b""[..], b"\x00", b"\x00\x02a", b"\x00\x01ab"] {
        assert_eq!(
            kind(decode_server_key_exchange_psk(bad)),
            ErrorKind::DecodeError
        );
        assert_eq!(
            kind(decode_client_key_exchange_psk(bad)),
            ErrorKind::DecodeError
        );
    }
    assert_eq!(
        kind(encode_client_key_exchange_psk(0, &[0; 0x10000])),
        ErrorKind::Unencodable
    );
}

#[test]
fn ecdhe_psk_key_exchange() {
    // RFC 5489 §2.
    let message = hex(OPENSSL_SERVER_KEY_EXCHANGE_ECDHE_PSK);
    let (header, body) = whole(&message);
    let (hint, params) = decode_server_key_exchange_ecdhe_psk(body).unwrap();
    assert_eq!(
        (hint, params.group, params.public.len()),
        (&b"CoAP"[..], 29, 32)
    );
    assert_eq!(
        encode_server_key_exchange_ecdhe_psk(header.message_seq, hint, &params).unwrap(),
        message
    );
    let message = hex(OPENSSL_CLIENT_KEY_EXCHANGE_ECDHE_PSK);
    let (header, body) = whole(&message);
    let (identity, public) = decode_client_key_exchange_ecdhe_psk(body).unwrap();
    assert_eq!((identity, public.len()), (&b"CoAP"[..], 32));
    assert_eq!(
        encode_client_key_exchange_ecdhe_psk(header.message_seq, identity, public).unwrap(),
        message
    );
    // An empty hint with a P-256 point.
    let mut built = hex("0000030017 41".replace(' ', "").as_str());
    built.extend([4; 65]);
    let (hint, params) = decode_server_key_exchange_ecdhe_psk(&built).unwrap();
    assert_eq!((hint.len(), params.group, params.public.len()), (0, 23, 65));
    for bad in [
        "0000030017",
        "000003001700",
        "0000030017020a",
        "0000030017010a00",
    ] {
        assert_eq!(
            kind(decode_server_key_exchange_ecdhe_psk(&hex(bad))),
            ErrorKind::DecodeError,
            "{bad}"
        );
    }
    // explicit_prime (1) is refused with illegal_parameter (RFC 8422 §5.4)...
    assert_eq!(
        kind(decode_server_key_exchange_ecdhe_psk(&hex("000001001d0101"))),
        ErrorKind::IllegalParameter
    );
    // ...once the four fixed bytes are there; before that it is truncated.
    assert_eq!(
        kind(decode_server_key_exchange_ecdhe_psk(&hex("000001001d"))),
        ErrorKind::DecodeError
    );
    for bad in ["0000", "000000", "000000ff", "0004436f4150", "0000010203"] {
        assert_eq!(
            kind(decode_client_key_exchange_ecdhe_psk(&hex(bad))),
            ErrorKind::DecodeError,
            "{bad}"
        );
    }
    assert_eq!(
        kind(encode_client_key_exchange_ecdhe_psk(0, b"", b"")),
        ErrorKind::Unencodable
    );
    let empty = EcdhParams {
        group: 29,
        public: b"",
    };
    assert_eq!(
        kind(encode_server_key_exchange_ecdhe_psk(0, b"", &empty)),
        ErrorKind::Unencodable
    );
}

#[test]
fn ecdhe_ecdsa_key_exchange() {
    // RFC 8422 §5.4 and §5.7.
    let message = hex(OPENSSL_SERVER_KEY_EXCHANGE_ECDHE);
    let (header, body) = whole(&message);
    let (params, scheme, signature) = decode_server_key_exchange_ecdhe(body).unwrap();
    assert_eq!(
        (params.group, params.public.len(), scheme),
        (29, 32, 0x0403)
    );
    assert_eq!(signature[0], 0x30, "a DER ECDSA signature");
    assert_eq!(
        encode_server_key_exchange_ecdhe(header.message_seq, &params, scheme, signature).unwrap(),
        message
    );
    let signed = ecdhe_signed_params(&[1; 32], &[2; 32], &params).unwrap();
    assert_eq!(signed[..64], [[1u8; 32], [2; 32]].concat()[..]);
    assert_eq!(signed[64..], body[..4 + 32]);
    assert_eq!(
        kind(ecdhe_signed_params(&[1; 31], &[2; 32], &params)),
        ErrorKind::Unencodable
    );
    let message = hex(OPENSSL_CLIENT_KEY_EXCHANGE_ECDHE);
    let (header, body) = whole(&message);
    let public = decode_client_key_exchange_ecdhe(body).unwrap();
    assert_eq!(public.len(), 32);
    assert_eq!(
        encode_client_key_exchange_ecdhe(header.message_seq, public).unwrap(),
        message
    );
    for bad in ["", "00", "0201", "010203"] {
        assert_eq!(
            kind(decode_client_key_exchange_ecdhe(&hex(bad))),
            ErrorKind::DecodeError,
            "{bad}"
        );
    }
    assert_eq!(
        kind(decode_server_key_exchange_ecdhe(&body[..0])),
        ErrorKind::DecodeError
    );
    let mut trailing = whole(&hex(OPENSSL_SERVER_KEY_EXCHANGE_ECDHE)).1.to_vec();
    trailing.push(0);
    assert_eq!(
        kind(decode_server_key_exchange_ecdhe(&trailing)),
        ErrorKind::DecodeError
    );
}

// ------------------------------------------------------ certificates

#[test]
fn certificates() {
    let message = hex(OPENSSL_SERVER_CERTIFICATE);
    let (header, body) = whole(&message);
    let chain = decode_certificate(body).unwrap();
    assert_eq!(chain.len(), 2, "leaf and CA");
    assert!(chain.iter().all(|der| der.starts_with(&[0x30, 0x82])));
    assert_eq!(
        encode_certificate(header.message_seq, &chain).unwrap(),
        message
    );
    let message = hex(OPENSSL_CLIENT_CERTIFICATE);
    let chain = decode_certificate(whole(&message).1).unwrap();
    assert_eq!(chain.len(), 2, "s_client sends its CA along");
    // An empty certificate_list: a client without a certificate (RFC 5246 §7.4.6).
    assert!(decode_certificate(&[0, 0, 0]).unwrap().is_empty());
    for bad in [
        "",
        "0000",
        "000001",
        "0000040000020a",
        "000003000000",
        "00000000",
    ] {
        assert_eq!(
            kind(decode_certificate(&hex(bad))),
            ErrorKind::DecodeError,
            "{bad}"
        );
    }
    assert_eq!(kind(encode_certificate(0, &[b""])), ErrorKind::Unencodable);
    // RFC 7250 §3: one SubjectPublicKeyInfo.
    let rpk = encode_raw_public_key_certificate(2, b"spki").unwrap();
    assert_eq!(rpk[HEADER_LENGTH..], hex("00000473706b69")[..]);
    assert_eq!(
        decode_raw_public_key_certificate(&rpk[HEADER_LENGTH..]).unwrap(),
        b"spki"
    );
    for bad in ["000000", "00000161ff", "0000"] {
        assert_eq!(
            kind(decode_raw_public_key_certificate(&hex(bad))),
            ErrorKind::DecodeError
        );
    }
    assert_eq!(
        kind(encode_raw_public_key_certificate(0, b"")),
        ErrorKind::Unencodable
    );
}

#[test]
fn certificate_request() {
    let message = hex(OPENSSL_CERTIFICATE_REQUEST);
    let (header, body) = whole(&message);
    let request = decode_certificate_request(body).unwrap();
    assert_eq!(request.certificate_types, [1, 2, 64]);
    assert!(request.signature_algorithms.contains(0x0403));
    assert_eq!(request.authorities.len(), 1);
    let schemes: Vec<u16> = request.signature_algorithms.iter().collect();
    assert_eq!(
        encode_certificate_request(
            header.message_seq,
            request.certificate_types,
            &schemes,
            &request.authorities
        )
        .unwrap(),
        message
    );
    for bad in [
        "",
        "00",
        "01400000",
        "0140000104030000",
        "014000020403000100",
        "01400002040300000000",
    ] {
        assert_eq!(
            kind(decode_certificate_request(&hex(bad))),
            ErrorKind::DecodeError,
            "{bad}"
        );
    }
    assert!(
        decode_certificate_request(&hex("014000020403 0000".replace(' ', "").as_str())).is_ok()
    );
    assert_eq!(
        kind(encode_certificate_request(0, &[64], &[], &[])),
        ErrorKind::Unencodable
    );
    assert_eq!(
        kind(encode_certificate_request(0, &[], &[0x0403], &[])),
        ErrorKind::Unencodable
    );
    assert_eq!(
        kind(encode_certificate_request(0, &[64], &[0x0403], &[b""])),
        ErrorKind::Unencodable
    );
}

#[test]
fn certificate_verify() {
    let message = hex(OPENSSL_CERTIFICATE_VERIFY);
    let (header, body) = whole(&message);
    let (scheme, signature) = decode_certificate_verify(body).unwrap();
    assert_eq!((scheme, signature[0]), (0x0403, 0x30));
    assert_eq!(
        encode_certificate_verify(header.message_seq, scheme, signature).unwrap(),
        message
    );
    for bad in ["", "04", "0403", "040300", "04030001", "0403000100ff"] {
        assert_eq!(
            kind(decode_certificate_verify(&hex(bad))),
            ErrorKind::DecodeError,
            "{bad}"
        );
    }
    assert_eq!(
        kind(encode_certificate_verify(0, 0x0403, &[0; 0x10000])),
        ErrorKind::Unencodable
    );
}

#[test]
fn server_hello_done_and_finished() {
    let message = hex(OPENSSL_SERVER_HELLO_DONE);
    let (header, body) = whole(&message);
    decode_server_hello_done(body).unwrap();
    assert_eq!(
        encode_server_hello_done(header.message_seq).unwrap(),
        message
    );
    assert_eq!(
        kind(decode_server_hello_done(b"\x00")),
        ErrorKind::DecodeError
    );
    // RFC 5246 §7.4.9: 12 bytes of verify_data for every suite dtlsfast has.
    let verify = [0x5A; 12];
    let out = encode_finished(4, &verify).unwrap();
    assert_eq!(
        out[..HEADER_LENGTH],
        hex("140000 0c 0004 000000 00000c".replace(' ', "").as_str())[..]
    );
    assert_eq!(decode_finished(&out[HEADER_LENGTH..]).unwrap(), verify);
    assert_eq!(kind(decode_finished(b"")), ErrorKind::DecodeError);
    assert_eq!(kind(encode_finished(0, b"")), ErrorKind::Unencodable);
}

#[test]
fn errors_name_their_field() {
    let err = ClientHello::decode(&hex("fefd00")).unwrap_err();
    assert_eq!(err.field(), "random");
    assert_eq!(
        err.to_string(),
        "ClientHello: truncated random (need 32 bytes, 1 left)"
    );
    let err = decode_certificate_verify(&hex("0403")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CertificateVerify: truncated signature length (need 2 bytes, 0 left)"
    );
    let err = encode_hello_verify_request(0, 0, &[0; 300]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HelloVerifyRequest: cookie is 300; it must be 0..255"
    );
}

// ------------------------------------------------- random inputs

/// xorshift64*: a fixed seed, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Feed `data` to every decoder: none may panic, and whatever decodes
/// re-encodes to the same bytes where the codec is a bijection.
fn every_decoder(data: &[u8]) {
    if let Ok(h) = ClientHello::decode(data) {
        assert!(h.cookie_input().len() == h.cookie_input_length());
    }
    let _ = ServerHello::decode(data);
    if let Ok((v, cookie)) = decode_hello_verify_request(data) {
        assert_eq!(
            encode_hello_verify_request(0, v, cookie).unwrap()[HEADER_LENGTH..],
            *data
        );
    }
    if let Ok(hint) = decode_server_key_exchange_psk(data) {
        assert_eq!(
            encode_server_key_exchange_psk(0, hint).unwrap()[HEADER_LENGTH..],
            *data
        );
    }
    if let Ok((hint, params)) = decode_server_key_exchange_ecdhe_psk(data) {
        assert_eq!(
            encode_server_key_exchange_ecdhe_psk(0, hint, &params).unwrap()[HEADER_LENGTH..],
            *data
        );
    }
    if let Ok((params, scheme, sig)) = decode_server_key_exchange_ecdhe(data) {
        assert_eq!(
            encode_server_key_exchange_ecdhe(0, &params, scheme, sig).unwrap()[HEADER_LENGTH..],
            *data
        );
    }
    let _ = decode_client_key_exchange_psk(data);
    let _ = decode_client_key_exchange_ecdhe_psk(data);
    let _ = decode_client_key_exchange_ecdhe(data);
    if let Ok(chain) = decode_certificate(data) {
        assert_eq!(
            encode_certificate(0, &chain).unwrap()[HEADER_LENGTH..],
            *data
        );
    }
    let _ = decode_raw_public_key_certificate(data);
    if let Ok(r) = decode_certificate_request(data) {
        let schemes: Vec<u16> = r.signature_algorithms.iter().collect();
        assert_eq!(
            encode_certificate_request(0, r.certificate_types, &schemes, &r.authorities).unwrap()
                [HEADER_LENGTH..],
            *data
        );
    }
    let _ = decode_certificate_verify(data);
    let _ = decode_server_hello_done(data);
    let _ = decode_finished(data);
    let _ = HandshakeHeader::parse(data);
    if let Ok(pieces) = parse_fragments(data) {
        let joined: Vec<u8> = pieces
            .iter()
            .flat_map(|f| f.bytes.iter().copied())
            .collect();
        assert_eq!(joined, data);
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds: Vec<Vec<u8>> = CLIENT_HELLOS
        .iter()
        .chain(&[
            OPENSSL_SERVER_HELLO_PSK,
            GNUTLS_SERVER_HELLO,
            OPENSSL_HELLO_VERIFY_REQUEST,
            OPENSSL_SERVER_KEY_EXCHANGE_ECDHE,
            OPENSSL_SERVER_KEY_EXCHANGE_ECDHE_PSK,
            OPENSSL_CLIENT_KEY_EXCHANGE_ECDHE_PSK,
            OPENSSL_SERVER_CERTIFICATE,
            OPENSSL_CERTIFICATE_REQUEST,
            OPENSSL_CERTIFICATE_VERIFY,
        ])
        .map(|s| hex(s))
        .collect();
    for round in 0..20_000 {
        let data: Vec<u8> = if round % 4 == 0 {
            let n = rng.below(80);
            (0..n).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = seeds[rng.below(seeds.len())].clone();
            if round % 2 == 0 {
                d.drain(..HEADER_LENGTH);
            }
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 if !d.is_empty() => {
                        let i = rng.below(d.len());
                        d[i] ^= 1 << rng.below(8);
                    }
                    1 if !d.is_empty() => {
                        let i = rng.below(d.len());
                        d[i] = rng.next() as u8;
                    }
                    2 => d.truncate(rng.below(d.len() + 1)),
                    _ => {
                        let i = rng.below(d.len() + 1);
                        d.insert(i, rng.next() as u8);
                    }
                }
            }
            d
        };
        every_decoder(&data);
    }
}
