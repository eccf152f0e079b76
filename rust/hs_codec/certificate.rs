//! The messages of certificate authentication and the two fixed ones:
//! Certificate (RFC 5246 §7.4.2; a raw public key, RFC 7250 §3),
//! CertificateRequest (RFC 5246 §7.4.4), CertificateVerify (RFC 5246 §7.4.8,
//! digitally-signed §4.7), ServerHelloDone (§7.4.5) and Finished (§7.4.9).
//! The DER inside is not parsed here: `cryptography.x509` does that.

use super::error::{CodecError, CodecResult, Message};
use super::header::{finish_message, start_message};
use super::wire::{Prefix, Reader, U16List};

pub const CERTIFICATE: u8 = 11;
pub const CERTIFICATE_REQUEST: u8 = 13;
pub const SERVER_HELLO_DONE: u8 = 14;
pub const CERTIFICATE_VERIFY: u8 = 15;
pub const FINISHED: u8 = 20;

const MAX24: usize = 0xFF_FFFF;

/// Iterates the entries of a vector of vectors (a certificate_list, a list
/// of DistinguishedNames), each `<min..max>` with a `prefix`-byte length.
pub struct Entries<'a> {
    reader: Reader<'a>,
    prefix: Prefix,
    field: &'static str,
    min: usize,
    max: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = CodecResult<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.is_empty() {
            return None;
        }
        let item = self
            .reader
            .vector(self.prefix, self.field, self.min, self.max);
        if item.is_err() {
            // Stop after the first error.
            self.reader = Reader::new(&[], Message::Certificate);
        }
        Some(item)
    }
}

fn entries<'a>(
    data: &'a [u8],
    message: Message,
    prefix: Prefix,
    field: &'static str,
    max: usize,
) -> Entries<'a> {
    Entries {
        reader: Reader::new(data, message),
        prefix,
        field,
        min: 1,
        max,
    }
}

/// Certificate: `ASN.1Cert certificate_list<0..2^24-1>`, each
/// `opaque ASN.1Cert<1..2^24-1>`, leaf first. Empty: a client declining.
pub fn decode_certificate(body: &[u8]) -> CodecResult<Vec<&[u8]>> {
    let message = Message::Certificate;
    let mut r = Reader::new(body, message);
    let list = r.vector(Prefix::U24, "certificate_list", 0, MAX24)?;
    r.finish()?;
    entries(list, message, Prefix::U24, "ASN.1Cert", MAX24).collect()
}

/// Certificate carrying a raw public key (RFC 7250 §3):
/// `opaque ASN.1_subjectPublicKeyInfo<1..2^24-1>`.
pub fn decode_raw_public_key_certificate(body: &[u8]) -> CodecResult<&[u8]> {
    let mut r = Reader::new(body, Message::Certificate);
    let spki = r.vector(Prefix::U24, "ASN.1_subjectPublicKeyInfo", 1, MAX24)?;
    r.finish()?;
    Ok(spki)
}

/// A decoded CertificateRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest<'a> {
    pub certificate_types: &'a [u8],
    pub signature_algorithms: U16List<'a>,
    pub authorities: Vec<&'a [u8]>,
}

/// CertificateRequest: `ClientCertificateType certificate_types<1..2^8-1>`,
/// `SignatureAndHashAlgorithm supported_signature_algorithms<2..2^16-2>`,
/// `DistinguishedName certificate_authorities<0..2^16-1>` of `opaque<1..2^16-1>`.
pub fn decode_certificate_request(body: &[u8]) -> CodecResult<CertificateRequest<'_>> {
    let message = Message::CertificateRequest;
    let mut r = Reader::new(body, message);
    let certificate_types = r.vector(Prefix::U8, "certificate_types", 1, 0xFF)?;
    let raw = r.vector(Prefix::U16, "supported_signature_algorithms", 2, 0xFFFE)?;
    let signature_algorithms = U16List::new(raw, message, "supported_signature_algorithms")?;
    let names = r.vector(Prefix::U16, "certificate_authorities", 0, 0xFFFF)?;
    r.finish()?;
    let authorities = entries(names, message, Prefix::U16, "DistinguishedName", 0xFFFF)
        .collect::<CodecResult<Vec<_>>>()?;
    Ok(CertificateRequest {
        certificate_types,
        signature_algorithms,
        authorities,
    })
}

/// CertificateVerify: SignatureAndHashAlgorithm(2), `opaque signature<0..2^16-1>`.
pub fn decode_certificate_verify(body: &[u8]) -> CodecResult<(u16, &[u8])> {
    let mut r = Reader::new(body, Message::CertificateVerify);
    let scheme = r.u16("signature algorithm")?;
    let signature = r.vector(Prefix::U16, "signature", 0, 0xFFFF)?;
    r.finish()?;
    Ok((scheme, signature))
}

/// ServerHelloDone: an empty body.
pub fn decode_server_hello_done(body: &[u8]) -> CodecResult<()> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(CodecError::NotEmpty {
            message: Message::ServerHelloDone,
            field: "body",
            length: body.len(),
        })
    }
}

/// Finished: verify_data, the whole body; its expected length depends on
/// the suite, so the caller compares it (in constant time).
pub fn decode_finished(body: &[u8]) -> CodecResult<&[u8]> {
    if body.is_empty() {
        return Err(CodecError::Empty {
            message: Message::Finished,
            field: "verify_data",
        });
    }
    Ok(body)
}

pub fn encode_certificate(message_seq: u16, chain: &[&[u8]]) -> CodecResult<Vec<u8>> {
    let hint = chain.iter().fold(3usize, |n, der| {
        n.saturating_add(der.len()).saturating_add(3)
    });
    let mut w = start_message(CERTIFICATE, message_seq, hint, Message::Certificate);
    let list = w.open(Prefix::U24);
    for der in chain {
        w.vector(Prefix::U24, "ASN.1Cert", 1, MAX24, der)?;
    }
    w.close(list, Prefix::U24, "certificate_list", 0, MAX24)?;
    finish_message(w)
}

pub fn encode_raw_public_key_certificate(message_seq: u16, spki: &[u8]) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        CERTIFICATE,
        message_seq,
        spki.len().saturating_add(3),
        Message::Certificate,
    );
    w.vector(Prefix::U24, "ASN.1_subjectPublicKeyInfo", 1, MAX24, spki)?;
    finish_message(w)
}

pub fn encode_certificate_request(
    message_seq: u16,
    certificate_types: &[u8],
    signature_algorithms: &[u16],
    authorities: &[&[u8]],
) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        CERTIFICATE_REQUEST,
        message_seq,
        64,
        Message::CertificateRequest,
    );
    if signature_algorithms.is_empty() {
        return Err(w.unencodable("supported_signature_algorithms", 0, 1, 0x7FFF));
    }
    w.vector(Prefix::U8, "certificate_types", 1, 0xFF, certificate_types)?;
    let schemes = w.open(Prefix::U16);
    for &scheme in signature_algorithms {
        w.u16(scheme);
    }
    w.close(
        schemes,
        Prefix::U16,
        "supported_signature_algorithms",
        2,
        0xFFFE,
    )?;
    let names = w.open(Prefix::U16);
    for name in authorities {
        w.vector(Prefix::U16, "DistinguishedName", 1, 0xFFFF, name)?;
    }
    w.close(names, Prefix::U16, "certificate_authorities", 0, 0xFFFF)?;
    finish_message(w)
}

pub fn encode_certificate_verify(
    message_seq: u16,
    scheme: u16,
    signature: &[u8],
) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        CERTIFICATE_VERIFY,
        message_seq,
        signature.len().saturating_add(4),
        Message::CertificateVerify,
    );
    w.u16(scheme);
    w.vector(Prefix::U16, "signature", 0, 0xFFFF, signature)?;
    finish_message(w)
}

pub fn encode_server_hello_done(message_seq: u16) -> CodecResult<Vec<u8>> {
    finish_message(start_message(
        SERVER_HELLO_DONE,
        message_seq,
        0,
        Message::ServerHelloDone,
    ))
}

pub fn encode_finished(message_seq: u16, verify_data: &[u8]) -> CodecResult<Vec<u8>> {
    let mut w = start_message(FINISHED, message_seq, verify_data.len(), Message::Finished);
    if verify_data.is_empty() {
        return Err(w.unencodable("verify_data", 0, 1, MAX24 as u64));
    }
    w.bytes(verify_data);
    finish_message(w)
}
