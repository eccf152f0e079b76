//! Codecs of the DTLS 1.2 handshake messages, free of PyO3: the 12-byte
//! handshake header and the fragments of a record (RFC 6347 §4.2.2, §4.2.3),
//! ClientHello with the extensions a server reads already decoded,
//! ServerHello, HelloVerifyRequest (RFC 6347 §4.2.1), ServerKeyExchange and
//! ClientKeyExchange of PSK, ECDHE_PSK and ECDHE_ECDSA (RFC 4279 §2,
//! RFC 5489 §2, RFC 8422 §5.4, §5.7), Certificate, CertificateRequest,
//! CertificateVerify, ServerHelloDone and Finished (RFC 5246 §7.4).
//!
//! Decoders take a message body and borrow from it; encoders return the
//! whole message, 12-byte header included (offset 0, unfragmented), ready
//! for the transcript and the flight. Nothing here decides anything: which
//! suite, group or certificate type to take is Python's policy.
//!
//! Any byte string is safe input: reads are bounds-checked (no indexing
//! that can panic, no unchecked arithmetic: the clippy lints below hold the
//! module to it), every length is checked against the bounds of its RFC
//! definition, and every failure is a `CodecError` naming the message and
//! the field, whose `kind()` says which alert it deserves.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod certificate;
pub mod error;
pub mod extensions;
pub mod header;
pub mod hello;
pub mod key_exchange;
pub mod wire;

#[cfg(test)]
mod captures;
#[cfg(test)]
mod tests;

pub use certificate::{
    decode_certificate, decode_certificate_request, decode_certificate_verify, decode_finished,
    decode_raw_public_key_certificate, decode_server_hello_done, encode_certificate,
    encode_certificate_request, encode_certificate_verify, encode_finished,
    encode_raw_public_key_certificate, encode_server_hello_done, CertificateRequest,
};
pub use error::{CodecError, CodecResult, ErrorKind, Message};
pub use extensions::HelloExtensions;
pub use header::{
    encode_handshake, fragments, parse_fragments, Fragment, HandshakeHeader, HEADER_LENGTH,
};
pub use hello::{
    decode_hello_verify_request, encode_client_hello, encode_hello_verify_request,
    encode_server_hello, ClientHello, ClientHelloFields, ServerHello, ServerHelloFields,
};
pub use key_exchange::{
    decode_client_key_exchange_ecdhe, decode_client_key_exchange_ecdhe_psk,
    decode_client_key_exchange_psk, decode_server_key_exchange_ecdhe,
    decode_server_key_exchange_ecdhe_psk, decode_server_key_exchange_psk, ecdhe_signed_params,
    encode_client_key_exchange_ecdhe, encode_client_key_exchange_ecdhe_psk,
    encode_client_key_exchange_psk, encode_server_key_exchange_ecdhe,
    encode_server_key_exchange_ecdhe_psk, encode_server_key_exchange_psk, EcdhParams,
};
pub use wire::U16List;
