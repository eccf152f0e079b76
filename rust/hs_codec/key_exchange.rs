//! ServerKeyExchange and ClientKeyExchange of the key exchanges dtlsfast
//! speaks: PSK (RFC 4279 §2), ECDHE_PSK (RFC 5489 §2) and ECDHE_ECDSA
//! (RFC 8422 §5.4 ServerECDHParams + digitally-signed, §5.7
//! ClientECDiffieHellmanPublic).

use super::error::{CodecError, CodecResult, Message};
use super::header::{finish_message, start_message};
use super::hello::RANDOM_LENGTH;
use super::wire::{Prefix, Reader, Writer};

pub const SERVER_KEY_EXCHANGE: u8 = 12;
pub const CLIENT_KEY_EXCHANGE: u8 = 16;
/// ECCurveType named_curve (RFC 8422 §5.4).
pub const NAMED_CURVE: u8 = 3;

/// ServerECDHParams (RFC 8422 §5.4): the group and the server's point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcdhParams<'a> {
    pub group: u16,
    pub public: &'a [u8],
}

/// Read ServerECDHParams: curve_type(1) = named_curve, NamedCurve(2),
/// ECPoint<1..2^8-1>. The four fixed bytes are read before curve_type is
/// judged, so a truncated structure is a decode_error whatever its first byte.
fn read_ecdh_params<'a>(r: &mut Reader<'a>, message: Message) -> CodecResult<EcdhParams<'a>> {
    let curve_type = r.u8("curve_type")?;
    let group = r.u16("namedcurve")?;
    let length = usize::from(r.u8("ECPoint length")?);
    if curve_type != NAMED_CURVE {
        return Err(CodecError::NotNamedCurve {
            message,
            curve_type,
        });
    }
    if length == 0 {
        return Err(CodecError::Empty {
            message,
            field: "ECPoint",
        });
    }
    let public = r.take(length, "ECPoint")?;
    Ok(EcdhParams { group, public })
}

fn write_ecdh_params(w: &mut Writer, params: &EcdhParams<'_>) -> CodecResult<()> {
    w.check("ECPoint", params.public.len(), 1, 0xFF)?;
    w.u8(NAMED_CURVE);
    w.u16(params.group);
    w.vector(Prefix::U8, "ECPoint", 1, 0xFF, params.public)
}

/// ServerKeyExchange of PSK: psk_identity_hint<0..2^16-1>.
pub fn decode_server_key_exchange_psk(body: &[u8]) -> CodecResult<&[u8]> {
    let mut r = Reader::new(body, Message::ServerKeyExchange);
    let hint = r.vector(Prefix::U16, "psk_identity_hint", 0, 0xFFFF)?;
    r.finish()?;
    Ok(hint)
}

/// ServerKeyExchange of ECDHE_PSK: (psk_identity_hint, params).
pub fn decode_server_key_exchange_ecdhe_psk(body: &[u8]) -> CodecResult<(&[u8], EcdhParams<'_>)> {
    let message = Message::ServerKeyExchange;
    let mut r = Reader::new(body, message);
    let hint = r.vector(Prefix::U16, "psk_identity_hint", 0, 0xFFFF)?;
    let params = read_ecdh_params(&mut r, message)?;
    r.finish()?;
    Ok((hint, params))
}

/// ServerKeyExchange of ECDHE_ECDSA: (params, signature scheme, signature).
pub fn decode_server_key_exchange_ecdhe(body: &[u8]) -> CodecResult<(EcdhParams<'_>, u16, &[u8])> {
    let message = Message::ServerKeyExchange;
    let mut r = Reader::new(body, message);
    let params = read_ecdh_params(&mut r, message)?;
    let scheme = r.u16("signature algorithm")?;
    let signature = r.vector(Prefix::U16, "signature", 0, 0xFFFF)?;
    r.finish()?;
    Ok((params, scheme, signature))
}

/// ClientKeyExchange of PSK: psk_identity<0..2^16-1>.
pub fn decode_client_key_exchange_psk(body: &[u8]) -> CodecResult<&[u8]> {
    let mut r = Reader::new(body, Message::ClientKeyExchange);
    let identity = r.vector(Prefix::U16, "psk_identity", 0, 0xFFFF)?;
    r.finish()?;
    Ok(identity)
}

/// ClientKeyExchange of ECDHE_PSK: (psk_identity, ECPoint).
pub fn decode_client_key_exchange_ecdhe_psk(body: &[u8]) -> CodecResult<(&[u8], &[u8])> {
    let mut r = Reader::new(body, Message::ClientKeyExchange);
    let identity = r.vector(Prefix::U16, "psk_identity", 0, 0xFFFF)?;
    let public = r.vector(Prefix::U8, "ECPoint", 1, 0xFF)?;
    r.finish()?;
    Ok((identity, public))
}

/// ClientKeyExchange of ECDHE_ECDSA: the client's ECPoint<1..2^8-1>.
pub fn decode_client_key_exchange_ecdhe(body: &[u8]) -> CodecResult<&[u8]> {
    let mut r = Reader::new(body, Message::ClientKeyExchange);
    let public = r.vector(Prefix::U8, "ECPoint", 1, 0xFF)?;
    r.finish()?;
    Ok(public)
}

pub fn encode_server_key_exchange_psk(
    message_seq: u16,
    identity_hint: &[u8],
) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        SERVER_KEY_EXCHANGE,
        message_seq,
        identity_hint.len().saturating_add(2),
        Message::ServerKeyExchange,
    );
    w.vector(Prefix::U16, "psk_identity_hint", 0, 0xFFFF, identity_hint)?;
    finish_message(w)
}

pub fn encode_server_key_exchange_ecdhe_psk(
    message_seq: u16,
    identity_hint: &[u8],
    params: &EcdhParams<'_>,
) -> CodecResult<Vec<u8>> {
    let hint = identity_hint
        .len()
        .saturating_add(params.public.len())
        .saturating_add(6);
    let mut w = start_message(
        SERVER_KEY_EXCHANGE,
        message_seq,
        hint,
        Message::ServerKeyExchange,
    );
    w.vector(Prefix::U16, "psk_identity_hint", 0, 0xFFFF, identity_hint)?;
    write_ecdh_params(&mut w, params)?;
    finish_message(w)
}

pub fn encode_server_key_exchange_ecdhe(
    message_seq: u16,
    params: &EcdhParams<'_>,
    scheme: u16,
    signature: &[u8],
) -> CodecResult<Vec<u8>> {
    let hint = params
        .public
        .len()
        .saturating_add(signature.len())
        .saturating_add(8);
    let mut w = start_message(
        SERVER_KEY_EXCHANGE,
        message_seq,
        hint,
        Message::ServerKeyExchange,
    );
    write_ecdh_params(&mut w, params)?;
    w.u16(scheme);
    w.vector(Prefix::U16, "signature", 0, 0xFFFF, signature)?;
    finish_message(w)
}

/// What the ServerKeyExchange signature of ECDHE_ECDSA covers:
/// client_random + server_random + ServerECDHParams (RFC 8422 §5.4).
pub fn ecdhe_signed_params(
    client_random: &[u8],
    server_random: &[u8],
    params: &EcdhParams<'_>,
) -> CodecResult<Vec<u8>> {
    let mut w = Writer::with_capacity(
        (2 * RANDOM_LENGTH + 4).saturating_add(params.public.len()),
        Message::SignedParams,
    );
    w.check(
        "client_random",
        client_random.len(),
        RANDOM_LENGTH,
        RANDOM_LENGTH,
    )?;
    w.check(
        "server_random",
        server_random.len(),
        RANDOM_LENGTH,
        RANDOM_LENGTH,
    )?;
    w.bytes(client_random);
    w.bytes(server_random);
    write_ecdh_params(&mut w, params)?;
    Ok(w.into_bytes())
}

pub fn encode_client_key_exchange_psk(message_seq: u16, identity: &[u8]) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        CLIENT_KEY_EXCHANGE,
        message_seq,
        identity.len().saturating_add(2),
        Message::ClientKeyExchange,
    );
    w.vector(Prefix::U16, "psk_identity", 0, 0xFFFF, identity)?;
    finish_message(w)
}

pub fn encode_client_key_exchange_ecdhe_psk(
    message_seq: u16,
    identity: &[u8],
    public: &[u8],
) -> CodecResult<Vec<u8>> {
    let hint = identity
        .len()
        .saturating_add(public.len())
        .saturating_add(3);
    let mut w = start_message(
        CLIENT_KEY_EXCHANGE,
        message_seq,
        hint,
        Message::ClientKeyExchange,
    );
    w.vector(Prefix::U16, "psk_identity", 0, 0xFFFF, identity)?;
    w.vector(Prefix::U8, "ECPoint", 1, 0xFF, public)?;
    finish_message(w)
}

pub fn encode_client_key_exchange_ecdhe(message_seq: u16, public: &[u8]) -> CodecResult<Vec<u8>> {
    let mut w = start_message(
        CLIENT_KEY_EXCHANGE,
        message_seq,
        public.len().saturating_add(1),
        Message::ClientKeyExchange,
    );
    w.vector(Prefix::U8, "ECPoint", 1, 0xFF, public)?;
    finish_message(w)
}
