//! The hello extensions block (RFC 5246 §7.4.1.4), with the extensions a
//! DTLS server or client reads decoded in one pass: supported_groups and
//! ec_point_formats (RFC 8422 §5.1.1, §5.1.2), signature_algorithms
//! (RFC 5246 §7.4.1.4.1), renegotiation_info (RFC 5746 §3.2),
//! extended_master_secret (RFC 7627 §5.1), record_size_limit (RFC 8449 §4),
//! connection_id (RFC 9146 §3), client/server_certificate_type (RFC 7250 §3),
//! session_ticket (RFC 5077 §3.2) and the presence of server_name
//! (RFC 6066 §3). Others are kept raw, in wire order.
//!
//! Order of errors, which decides the alert when there are several: the
//! block's structure first (a truncated extension, a duplicate type, bytes
//! after the block), then the first extension, in wire order, whose data is
//! malformed.

use super::error::{CodecError, CodecResult, Message};
use super::wire::{whole_vector, Prefix, Reader, U16List, Writer};

pub const SERVER_NAME: u16 = 0;
pub const SUPPORTED_GROUPS: u16 = 10;
pub const EC_POINT_FORMATS: u16 = 11;
pub const SIGNATURE_ALGORITHMS: u16 = 13;
pub const CLIENT_CERTIFICATE_TYPE: u16 = 19;
pub const SERVER_CERTIFICATE_TYPE: u16 = 20;
pub const EXTENDED_MASTER_SECRET: u16 = 23;
pub const RECORD_SIZE_LIMIT: u16 = 28;
pub const SESSION_TICKET: u16 = 35;
pub const CONNECTION_ID: u16 = 54;
pub const RENEGOTIATION_INFO: u16 = 0xFF01;

/// Smallest record_size_limit (RFC 8449 §4).
pub const MIN_RECORD_SIZE_LIMIT: u16 = 64;
/// Largest record_size_limit a DTLS 1.2 endpoint sends: 2^14 (TLS 1.2) and
/// 2^14+1 (TLS 1.3) are both accepted when encoding (RFC 8449 §4).
pub const MAX_RECORD_SIZE_LIMIT: u16 = (1 << 14) + 1;

/// The decoded extensions of a ClientHello or ServerHello.
///
/// In a ClientHello the certificate types are lists (`types<1..2^8-1>`); in
/// a ServerHello each is the one chosen type (a single byte).
/// supported_groups and signature_algorithms are only decoded in a
/// ClientHello; in a ServerHello they land in `others` like any extension a
/// server must not send, for the caller to refuse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelloExtensions<'a> {
    pub supported_groups: Option<U16List<'a>>,
    pub ec_point_formats: Option<&'a [u8]>,
    pub signature_algorithms: Option<U16List<'a>>,
    pub renegotiation_info: Option<&'a [u8]>,
    pub extended_master_secret: bool,
    pub record_size_limit: Option<u16>,
    pub connection_id: Option<&'a [u8]>,
    pub client_certificate_types: Option<&'a [u8]>,
    pub server_certificate_types: Option<&'a [u8]>,
    pub session_ticket: Option<&'a [u8]>,
    pub server_name: bool,
    /// Every other extension, (type, extension_data), in wire order.
    pub others: Vec<(u16, &'a [u8])>,
}

/// Extension types seen so far in one block, to refuse duplicates in
/// O(1) per extension however many there are.
struct SeenTypes {
    small: [u16; 32],
    count: usize,
    /// One bit per type, once the block has more than `small` holds.
    bitmap: Option<Box<[u64; 1024]>>,
}

impl SeenTypes {
    fn new() -> Self {
        SeenTypes {
            small: [0; 32],
            count: 0,
            bitmap: None,
        }
    }

    fn mark(bitmap: &mut [u64; 1024], t: u16) -> bool {
        let bit = 1u64.checked_shl(u32::from(t & 63)).unwrap_or(0);
        match bitmap.get_mut(usize::from(t >> 6)) {
            Some(word) if *word & bit != 0 => false,
            Some(word) => {
                *word |= bit;
                true
            }
            None => true,
        }
    }

    /// False if `t` was seen before.
    fn insert(&mut self, t: u16) -> bool {
        if let Some(bitmap) = self.bitmap.as_deref_mut() {
            return Self::mark(bitmap, t);
        }
        let seen = self.small.get(..self.count).unwrap_or_default();
        if seen.contains(&t) {
            return false;
        }
        if let Some(slot) = self.small.get_mut(self.count) {
            *slot = t;
            self.count = self.count.saturating_add(1);
            return true;
        }
        let mut bitmap = Box::new([0u64; 1024]);
        for &old in &self.small {
            Self::mark(&mut bitmap, old);
        }
        let fresh = Self::mark(&mut bitmap, t);
        self.bitmap = Some(bitmap);
        fresh
    }
}

fn u16_list<'a>(data: &'a [u8], message: Message, field: &'static str) -> CodecResult<U16List<'a>> {
    U16List::new(
        whole_vector(data, Prefix::U16, message, field, 2)?,
        message,
        field,
    )
}

fn certificate_types<'a>(
    data: &'a [u8],
    message: Message,
    field: &'static str,
) -> CodecResult<&'a [u8]> {
    if message == Message::ServerHello {
        // RFC 7250 §3: the server's answer is the one type it chose.
        if data.len() != 1 {
            return Err(CodecError::LengthMismatch {
                message,
                field,
                declared: 1,
                actual: data.len(),
            });
        }
        return Ok(data);
    }
    whole_vector(data, Prefix::U8, message, field, 1)
}

impl<'a> HelloExtensions<'a> {
    /// Decode one extension's data into its field.
    fn add(&mut self, ext_type: u16, data: &'a [u8], message: Message) -> CodecResult<()> {
        let in_client_hello = message == Message::ClientHello;
        match ext_type {
            SERVER_NAME => self.server_name = true,
            SUPPORTED_GROUPS if in_client_hello => {
                self.supported_groups = Some(u16_list(data, message, "supported_groups")?);
            }
            SIGNATURE_ALGORITHMS if in_client_hello => {
                self.signature_algorithms = Some(u16_list(data, message, "signature_algorithms")?);
            }
            EC_POINT_FORMATS => {
                self.ec_point_formats = Some(whole_vector(
                    data,
                    Prefix::U8,
                    message,
                    "ec_point_formats",
                    1,
                )?);
            }
            CLIENT_CERTIFICATE_TYPE => {
                self.client_certificate_types =
                    Some(certificate_types(data, message, "client_certificate_type")?);
            }
            SERVER_CERTIFICATE_TYPE => {
                self.server_certificate_types =
                    Some(certificate_types(data, message, "server_certificate_type")?);
            }
            EXTENDED_MASTER_SECRET => {
                if !data.is_empty() {
                    return Err(CodecError::NotEmpty {
                        message,
                        field: "extended_master_secret",
                        length: data.len(),
                    });
                }
                self.extended_master_secret = true;
            }
            RECORD_SIZE_LIMIT => {
                let limit: [u8; 2] = data.try_into().map_err(|_| CodecError::LengthMismatch {
                    message,
                    field: "record_size_limit",
                    declared: 2,
                    actual: data.len(),
                })?;
                let limit = u16::from_be_bytes(limit);
                if limit < MIN_RECORD_SIZE_LIMIT {
                    return Err(CodecError::RecordSizeLimitTooSmall { message, limit });
                }
                self.record_size_limit = Some(limit);
            }
            SESSION_TICKET => self.session_ticket = Some(data),
            CONNECTION_ID => {
                self.connection_id =
                    Some(whole_vector(data, Prefix::U8, message, "connection_id", 0)?);
            }
            RENEGOTIATION_INFO => {
                self.renegotiation_info = Some(whole_vector(
                    data,
                    Prefix::U8,
                    message,
                    "renegotiation_info",
                    0,
                )?);
            }
            _ => self.others.push((ext_type, data)),
        }
        Ok(())
    }

    /// Read the optional extensions block that ends a hello.
    pub fn decode(r: &mut Reader<'a>, message: Message) -> CodecResult<Self> {
        let mut out = HelloExtensions::default();
        if r.is_empty() {
            return Ok(out);
        }
        let block = r.vector(Prefix::U16, "extensions", 0, 0xFFFF)?;
        r.finish()?;
        let mut block = Reader::new(block, message);
        let mut seen = SeenTypes::new();
        let mut malformed: Option<CodecError> = None;
        while !block.is_empty() {
            let ext_type = block.u16("extension type")?;
            let data = block.vector(Prefix::U16, "extension data", 0, 0xFFFF)?;
            if !seen.insert(ext_type) {
                return Err(CodecError::DuplicateExtension {
                    message,
                    extension: ext_type,
                });
            }
            if malformed.is_none() {
                malformed = out.add(ext_type, data, message).err();
            }
        }
        match malformed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Write one extension: type, then its data as a `<0..2^16-1>` vector.
pub fn write_extension(w: &mut Writer, ext_type: u16, data: &[u8]) -> CodecResult<()> {
    w.u16(ext_type);
    w.vector(Prefix::U16, "extension data", 0, 0xFFFF, data)
}
