//! ClientHello (RFC 5246 §7.4.1.2 with the DTLS cookie of RFC 6347 §4.2.1),
//! ServerHello (RFC 5246 §7.4.1.3) and HelloVerifyRequest (RFC 6347 §4.2.1,
//! §4.3.2): decoding of the body, encoding of the whole message.

use super::error::{CodecResult, Message};
use super::extensions::{self as ext, write_extension, HelloExtensions};
use super::header::{finish_message, start_message};
use super::wire::{Prefix, Reader, U16List, Writer};

pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const HELLO_VERIFY_REQUEST: u8 = 3;

pub const RANDOM_LENGTH: usize = 32;
/// `opaque SessionID<0..32>` (RFC 5246 §7.4.1.2).
pub const MAX_SESSION_ID: usize = 32;
/// `opaque cookie<0..2^8-1>` (RFC 6347 §4.2.1).
pub const MAX_COOKIE: usize = 255;

/// A decoded ClientHello; every slice borrows the message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub client_version: u16,
    pub random: &'a [u8; RANDOM_LENGTH],
    pub session_id: &'a [u8],
    pub cookie: &'a [u8],
    pub cipher_suites: U16List<'a>,
    pub compression_methods: &'a [u8],
    pub extensions: HelloExtensions<'a>,
}

impl<'a> ClientHello<'a> {
    pub fn decode(body: &'a [u8]) -> CodecResult<Self> {
        let message = Message::ClientHello;
        let mut r = Reader::new(body, message);
        let client_version = r.u16("client_version")?;
        let random = r.array::<RANDOM_LENGTH>("random")?;
        let session_id = r.vector(Prefix::U8, "session_id", 0, MAX_SESSION_ID)?;
        let cookie = r.vector(Prefix::U8, "cookie", 0, MAX_COOKIE)?;
        let suites = r.vector(Prefix::U16, "cipher_suites", 2, 0xFFFE)?;
        let cipher_suites = U16List::new(suites, message, "cipher_suites")?;
        let compression_methods = r.vector(Prefix::U8, "compression_methods", 1, 0xFF)?;
        let extensions = HelloExtensions::decode(&mut r, message)?;
        Ok(ClientHello {
            client_version,
            random,
            session_id,
            cookie,
            cipher_suites,
            compression_methods,
            extensions,
        })
    }

    /// Bytes of `cookie_input`.
    pub fn cookie_input_length(&self) -> usize {
        (2 + 2 + RANDOM_LENGTH + 4 + 2)
            .saturating_add(self.cipher_suites.as_bytes().len())
            .saturating_add(self.compression_methods.len())
    }

    /// The fields a HelloVerifyRequest cookie binds, canonically encoded:
    /// client_version, random, cipher_suites and compression_methods, each
    /// length-prefixed (RFC 6347 §4.2.1: the second ClientHello repeats
    /// them). session_id, cookie and extensions are left out; see
    /// `dtlsfast.handshake.messages.ClientHello.cookie_input` for why.
    pub fn write_cookie_input(&self, out: &mut Vec<u8>) {
        out.reserve(self.cookie_input_length());
        out.extend_from_slice(&self.client_version.to_be_bytes());
        out.extend_from_slice(&(RANDOM_LENGTH as u16).to_be_bytes());
        out.extend_from_slice(self.random);
        // At most 32767 suites and 255 methods: both fit their prefixes.
        out.extend_from_slice(&(self.cipher_suites.len() as u32).to_be_bytes());
        out.extend_from_slice(self.cipher_suites.as_bytes());
        out.extend_from_slice(&(self.compression_methods.len() as u16).to_be_bytes());
        out.extend_from_slice(self.compression_methods);
    }

    pub fn cookie_input(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_cookie_input(&mut out);
        out
    }
}

/// A decoded ServerHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello<'a> {
    pub server_version: u16,
    pub random: &'a [u8; RANDOM_LENGTH],
    pub session_id: &'a [u8],
    pub cipher_suite: u16,
    pub compression_method: u8,
    pub extensions: HelloExtensions<'a>,
}

fn single(types: Option<&[u8]>) -> Option<u8> {
    types.and_then(|t| t.first().copied())
}

impl<'a> ServerHello<'a> {
    pub fn decode(body: &'a [u8]) -> CodecResult<Self> {
        let message = Message::ServerHello;
        let mut r = Reader::new(body, message);
        let server_version = r.u16("server_version")?;
        let random = r.array::<RANDOM_LENGTH>("random")?;
        let session_id = r.vector(Prefix::U8, "session_id", 0, MAX_SESSION_ID)?;
        let cipher_suite = r.u16("cipher_suite")?;
        let compression_method = r.u8("compression_method")?;
        let extensions = HelloExtensions::decode(&mut r, message)?;
        Ok(ServerHello {
            server_version,
            random,
            session_id,
            cipher_suite,
            compression_method,
            extensions,
        })
    }

    /// The server_certificate_type the server chose (RFC 7250 §4.2).
    pub fn server_certificate_type(&self) -> Option<u8> {
        single(self.extensions.server_certificate_types)
    }

    /// The client_certificate_type the server chose (RFC 7250 §4.2).
    pub fn client_certificate_type(&self) -> Option<u8> {
        single(self.extensions.client_certificate_types)
    }
}

/// Decode a HelloVerifyRequest body: (server_version, cookie).
pub fn decode_hello_verify_request(body: &[u8]) -> CodecResult<(u16, &[u8])> {
    let mut r = Reader::new(body, Message::HelloVerifyRequest);
    let version = r.u16("server_version")?;
    let cookie = r.vector(Prefix::U8, "cookie", 0, MAX_COOKIE)?;
    r.finish()?;
    Ok((version, cookie))
}

fn check_random(w: &Writer, random: &[u8]) -> CodecResult<()> {
    w.check("random", random.len(), RANDOM_LENGTH, RANDOM_LENGTH)
}

/// version(2), random(32), session_id<0..32>: how both hellos begin.
fn write_hello_start(
    w: &mut Writer,
    version: u16,
    random: &[u8],
    session_id: &[u8],
) -> CodecResult<()> {
    w.u16(version);
    w.bytes(random);
    w.vector(Prefix::U8, "session_id", 0, MAX_SESSION_ID, session_id)
}

fn write_extensions(w: &mut Writer, extensions: &[(u16, &[u8])]) -> CodecResult<()> {
    for &(ext_type, data) in extensions {
        write_extension(w, ext_type, data)?;
    }
    Ok(())
}

/// An extension whose data is one `<min..2^8-1>` vector.
fn write_u8_vector_extension(
    w: &mut Writer,
    ext_type: u16,
    field: &'static str,
    min: usize,
    value: &[u8],
) -> CodecResult<()> {
    w.u16(ext_type);
    let data = w.open(Prefix::U16);
    w.vector(Prefix::U8, field, min, 0xFF, value)?;
    w.close(data, Prefix::U16, "extension data", 0, 0xFFFF)
}

/// The fields of a ClientHello to encode; extensions go out as given.
#[derive(Clone, Debug)]
pub struct ClientHelloFields<'a> {
    pub client_version: u16,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    pub cookie: &'a [u8],
    pub cipher_suites: &'a [u16],
    pub compression_methods: &'a [u8],
    pub extensions: &'a [(u16, &'a [u8])],
}

/// A whole ClientHello message (header included).
pub fn encode_client_hello(
    message_seq: u16,
    hello: &ClientHelloFields<'_>,
) -> CodecResult<Vec<u8>> {
    let hint = 48usize
        .saturating_add(hello.cookie.len())
        .saturating_add(hello.cipher_suites.len().saturating_mul(2))
        .saturating_add(hello.extensions.iter().fold(0usize, |n, (_, d)| {
            n.saturating_add(d.len()).saturating_add(4)
        }));
    let mut w = start_message(CLIENT_HELLO, message_seq, hint, Message::ClientHello);
    check_random(&w, hello.random)?;
    if hello.cipher_suites.is_empty() {
        return Err(w.unencodable("cipher_suites", 0, 1, 0x7FFF));
    }
    write_hello_start(&mut w, hello.client_version, hello.random, hello.session_id)?;
    w.vector(Prefix::U8, "cookie", 0, MAX_COOKIE, hello.cookie)?;
    let suites = w.open(Prefix::U16);
    for &suite in hello.cipher_suites {
        w.u16(suite);
    }
    w.close(suites, Prefix::U16, "cipher_suites", 2, 0xFFFE)?;
    w.vector(
        Prefix::U8,
        "compression_methods",
        1,
        0xFF,
        hello.compression_methods,
    )?;
    if !hello.extensions.is_empty() {
        let block = w.open(Prefix::U16);
        write_extensions(&mut w, hello.extensions)?;
        w.close(block, Prefix::U16, "extensions", 0, 0xFFFF)?;
    }
    finish_message(w)
}

/// The fields of a ServerHello to encode. The typed extensions go out in
/// this order, each only when set: renegotiation_info, extended_master_secret,
/// record_size_limit, ec_point_formats, server_certificate_type,
/// client_certificate_type, connection_id, session_ticket; then `extensions`
/// as given.
#[derive(Clone, Debug, Default)]
pub struct ServerHelloFields<'a> {
    pub server_version: u16,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    pub cipher_suite: u16,
    pub compression_method: u8,
    /// renegotiated_connection (RFC 5746 §3.2): empty on an initial handshake.
    pub renegotiation_info: Option<&'a [u8]>,
    pub extended_master_secret: bool,
    pub record_size_limit: Option<u16>,
    pub ec_point_formats: Option<&'a [u8]>,
    pub server_certificate_type: Option<u8>,
    pub client_certificate_type: Option<u8>,
    pub connection_id: Option<&'a [u8]>,
    /// An empty session_ticket: the server will send a NewSessionTicket (RFC 5077 §3.2).
    pub session_ticket: bool,
    pub extensions: &'a [(u16, &'a [u8])],
}

/// A whole ServerHello message (header included), extensions and all.
pub fn encode_server_hello(
    message_seq: u16,
    hello: &ServerHelloFields<'_>,
) -> CodecResult<Vec<u8>> {
    let mut w = start_message(SERVER_HELLO, message_seq, 128, Message::ServerHello);
    check_random(&w, hello.random)?;
    write_hello_start(&mut w, hello.server_version, hello.random, hello.session_id)?;
    w.u16(hello.cipher_suite);
    w.u8(hello.compression_method);
    let block = w.open(Prefix::U16);
    if let Some(verified) = hello.renegotiation_info {
        write_u8_vector_extension(
            &mut w,
            ext::RENEGOTIATION_INFO,
            "renegotiation_info",
            0,
            verified,
        )?;
    }
    if hello.extended_master_secret {
        write_extension(&mut w, ext::EXTENDED_MASTER_SECRET, &[])?;
    }
    if let Some(limit) = hello.record_size_limit {
        if !(ext::MIN_RECORD_SIZE_LIMIT..=ext::MAX_RECORD_SIZE_LIMIT).contains(&limit) {
            return Err(w.unencodable(
                "record_size_limit",
                u64::from(limit),
                u64::from(ext::MIN_RECORD_SIZE_LIMIT),
                u64::from(ext::MAX_RECORD_SIZE_LIMIT),
            ));
        }
        write_extension(&mut w, ext::RECORD_SIZE_LIMIT, &limit.to_be_bytes())?;
    }
    if let Some(formats) = hello.ec_point_formats {
        write_u8_vector_extension(
            &mut w,
            ext::EC_POINT_FORMATS,
            "ec_point_formats",
            1,
            formats,
        )?;
    }
    if let Some(chosen) = hello.server_certificate_type {
        write_extension(&mut w, ext::SERVER_CERTIFICATE_TYPE, &[chosen])?;
    }
    if let Some(chosen) = hello.client_certificate_type {
        write_extension(&mut w, ext::CLIENT_CERTIFICATE_TYPE, &[chosen])?;
    }
    if let Some(cid) = hello.connection_id {
        write_u8_vector_extension(&mut w, ext::CONNECTION_ID, "connection_id", 0, cid)?;
    }
    if hello.session_ticket {
        write_extension(&mut w, ext::SESSION_TICKET, &[])?;
    }
    write_extensions(&mut w, hello.extensions)?;
    if w.position() == block.saturating_add(2) {
        // No extension at all: no block (RFC 5246 §7.4.1.3 lets it be absent).
        w.truncate(block);
    } else {
        w.close(block, Prefix::U16, "extensions", 0, 0xFFFF)?;
    }
    finish_message(w)
}

/// A whole HelloVerifyRequest message (RFC 6347 §4.2.1).
pub fn encode_hello_verify_request(
    message_seq: u16,
    server_version: u16,
    cookie: &[u8],
) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        HELLO_VERIFY_REQUEST,
        message_seq,
        3usize.saturating_add(cookie.len()),
        Message::HelloVerifyRequest,
    );
    w.u16(server_version);
    w.vector(Prefix::U8, "cookie", 0, MAX_COOKIE, cookie)?;
    finish_message(w)
}
