//! Any body, given to every ServerKeyExchange and ClientKeyExchange decoder
//! (RFC 4279 §2, RFC 5489 §2, RFC 8422 §5.4, §5.7): no panic, and what
//! decodes re-encodes to the same bytes.
#![no_main]
use _core::hs_codec::*;
use libfuzzer_sys::fuzz_target;

fn same(encoded: CodecResult<Vec<u8>>, data: &[u8]) {
    let encoded = encoded.expect("decoded fields re-encode");
    assert_eq!(&encoded[HEADER_LENGTH..], data);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(hint) = decode_server_key_exchange_psk(data) {
        same(encode_server_key_exchange_psk(0, hint), data);
    }
    if let Ok((hint, params)) = decode_server_key_exchange_ecdhe_psk(data) {
        same(encode_server_key_exchange_ecdhe_psk(0, hint, &params), data);
    }
    if let Ok((params, scheme, signature)) = decode_server_key_exchange_ecdhe(data) {
        same(
            encode_server_key_exchange_ecdhe(0, &params, scheme, signature),
            data,
        );
        let signed = ecdhe_signed_params(&[0; 32], &[1; 32], &params).expect("signed params");
        assert!(data.starts_with(&signed[64..]));
    }
    if let Ok(identity) = decode_client_key_exchange_psk(data) {
        same(encode_client_key_exchange_psk(0, identity), data);
    }
    if let Ok((identity, public)) = decode_client_key_exchange_ecdhe_psk(data) {
        same(
            encode_client_key_exchange_ecdhe_psk(0, identity, public),
            data,
        );
    }
    if let Ok(public) = decode_client_key_exchange_ecdhe(data) {
        same(encode_client_key_exchange_ecdhe(0, public), data);
    }
});
