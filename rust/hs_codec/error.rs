//! The handshake codecs' error type: which message, which field, what was
//! wrong, and from that the alert the peer must get (RFC 5246 §7.2.2).
//!
//! Decoding errors split by alert: most are `decode_error` (a length out of
//! its bounds, a truncation, trailing bytes); a few are `illegal_parameter`,
//! where an RFC or the established practice of TLS stacks names it: a
//! duplicated extension (RFC 5246 §7.4.1.4 forbids them; OpenSSL and RFC 8446
//! §4.2 answer illegal_parameter), a record_size_limit below 64 (RFC 8449
//! §4), an ECParameters curve_type other than named_curve (RFC 8422 §5.4).
//! Encoding errors are the caller's: a value the wire format cannot carry.

use std::fmt;

/// The message (or structure) an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    HandshakeHeader,
    HandshakeRecord,
    ClientHello,
    ServerHello,
    HelloVerifyRequest,
    ServerKeyExchange,
    ClientKeyExchange,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ServerHelloDone,
    Finished,
    /// The bytes a ServerKeyExchange signature covers (RFC 8422 §5.4).
    SignedParams,
}

impl Message {
    pub fn name(self) -> &'static str {
        match self {
            Message::HandshakeHeader => "handshake header",
            Message::HandshakeRecord => "handshake record",
            Message::ClientHello => "ClientHello",
            Message::ServerHello => "ServerHello",
            Message::HelloVerifyRequest => "HelloVerifyRequest",
            Message::ServerKeyExchange => "ServerKeyExchange",
            Message::ClientKeyExchange => "ClientKeyExchange",
            Message::Certificate => "Certificate",
            Message::CertificateRequest => "CertificateRequest",
            Message::CertificateVerify => "CertificateVerify",
            Message::ServerHelloDone => "ServerHelloDone",
            Message::Finished => "Finished",
            Message::SignedParams => "ServerKeyExchange signed params",
        }
    }
}

/// What went wrong, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// A field runs past the end of the bytes that hold it.
    Truncated {
        message: Message,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    /// The length prefix of a vector runs past the end.
    TruncatedLength {
        message: Message,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    /// Bytes left after the last field.
    Trailing { message: Message, count: usize },
    /// A vector's length outside the bounds of its definition.
    LengthOutOfRange {
        message: Message,
        field: &'static str,
        length: usize,
        min: usize,
        max: usize,
    },
    /// A vector that must fill its container exactly does not.
    LengthMismatch {
        message: Message,
        field: &'static str,
        declared: usize,
        actual: usize,
    },
    /// A list of 16-bit values with an odd number of bytes.
    OddLength {
        message: Message,
        field: &'static str,
        length: usize,
    },
    /// A field that must be empty is not.
    NotEmpty {
        message: Message,
        field: &'static str,
        length: usize,
    },
    /// A field that must not be empty is.
    Empty {
        message: Message,
        field: &'static str,
    },
    /// A handshake fragment reaches past the message it belongs to (RFC 6347 §4.2.2).
    FragmentPastMessage {
        offset: u32,
        fragment_length: u32,
        length: u32,
    },
    /// The same extension type twice in one block (RFC 5246 §7.4.1.4): illegal_parameter.
    DuplicateExtension { message: Message, extension: u16 },
    /// record_size_limit below 64 (RFC 8449 §4): illegal_parameter.
    RecordSizeLimitTooSmall { message: Message, limit: u16 },
    /// ECParameters.curve_type other than named_curve (RFC 8422 §5.4): illegal_parameter.
    NotNamedCurve { message: Message, curve_type: u8 },
    /// Encoding: a value the wire format cannot carry (the caller's mistake).
    Unencodable {
        message: Message,
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// How the bindings raise an error, and so which alert the handshake sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The `decode_error` alert (50).
    DecodeError,
    /// The `illegal_parameter` alert (47).
    IllegalParameter,
    /// Not the peer's fault: LocalProtocolError, no alert.
    Unencodable,
}

/// TLS AlertDescription decode_error (RFC 5246 §7.2).
pub const ALERT_DECODE_ERROR: u8 = 50;
/// TLS AlertDescription illegal_parameter (RFC 5246 §7.2).
pub const ALERT_ILLEGAL_PARAMETER: u8 = 47;

impl CodecError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CodecError::DuplicateExtension { .. }
            | CodecError::RecordSizeLimitTooSmall { .. }
            | CodecError::NotNamedCurve { .. } => ErrorKind::IllegalParameter,
            CodecError::Unencodable { .. } => ErrorKind::Unencodable,
            _ => ErrorKind::DecodeError,
        }
    }

    /// The alert to send the peer; None for an encoding error.
    pub fn alert(&self) -> Option<u8> {
        match self.kind() {
            ErrorKind::DecodeError => Some(ALERT_DECODE_ERROR),
            ErrorKind::IllegalParameter => Some(ALERT_ILLEGAL_PARAMETER),
            ErrorKind::Unencodable => None,
        }
    }

    /// The field the error names (the extension name for extension errors).
    pub fn field(&self) -> &'static str {
        match self {
            CodecError::Truncated { field, .. }
            | CodecError::TruncatedLength { field, .. }
            | CodecError::LengthOutOfRange { field, .. }
            | CodecError::LengthMismatch { field, .. }
            | CodecError::OddLength { field, .. }
            | CodecError::NotEmpty { field, .. }
            | CodecError::Empty { field, .. }
            | CodecError::Unencodable { field, .. } => field,
            CodecError::Trailing { .. } => "end of message",
            CodecError::FragmentPastMessage { .. } => "fragment_length",
            CodecError::DuplicateExtension { .. } => "extensions",
            CodecError::RecordSizeLimitTooSmall { .. } => "record_size_limit",
            CodecError::NotNamedCurve { .. } => "curve_type",
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated {
                message,
                field,
                needed,
                available,
            } => write!(
                f,
                "{}: truncated {field} (need {needed} bytes, {available} left)",
                message.name()
            ),
            CodecError::TruncatedLength {
                message,
                field,
                needed,
                available,
            } => write!(
                f,
                "{}: truncated {field} length (need {needed} bytes, {available} left)",
                message.name()
            ),
            CodecError::Trailing { message, count } => {
                write!(f, "{}: {count} trailing bytes", message.name())
            }
            CodecError::LengthOutOfRange {
                message,
                field,
                length,
                min,
                max,
            } => write!(
                f,
                "{}: {field} length {length} outside {min}..{max}",
                message.name()
            ),
            CodecError::LengthMismatch {
                message,
                field,
                declared,
                actual,
            } => write!(
                f,
                "{}: {field} length {declared} but {actual} bytes follow",
                message.name()
            ),
            CodecError::OddLength {
                message,
                field,
                length,
            } => write!(f, "{}: {field} length {length} is odd", message.name()),
            CodecError::NotEmpty {
                message,
                field,
                length,
            } => write!(
                f,
                "{}: {field} must be empty, got {length} bytes",
                message.name()
            ),
            CodecError::Empty { message, field } => {
                write!(f, "{}: {field} must not be empty", message.name())
            }
            CodecError::FragmentPastMessage {
                offset,
                fragment_length,
                length,
            } => write!(
                f,
                "handshake fragment {offset}+{fragment_length} reaches past the message \
                 length {length}"
            ),
            CodecError::DuplicateExtension { message, extension } => write!(
                f,
                "{}: extension type {extension} appears twice (RFC 5246 §7.4.1.4)",
                message.name()
            ),
            CodecError::RecordSizeLimitTooSmall { message, limit } => write!(
                f,
                "{}: record_size_limit {limit} is below 64 (RFC 8449 §4)",
                message.name()
            ),
            CodecError::NotNamedCurve {
                message,
                curve_type,
            } => write!(
                f,
                "{}: ECParameters curve_type {curve_type} is not named_curve (3)",
                message.name()
            ),
            CodecError::Unencodable {
                message,
                field,
                value,
                min,
                max,
            } => write!(
                f,
                "{}: {field} is {value}; it must be {min}..{max}",
                message.name()
            ),
        }
    }
}

impl std::error::Error for CodecError {}

pub type CodecResult<T> = Result<T, CodecError>;
