//! Any body, given to the decoders of Certificate (X.509 list and raw public
//! key), CertificateRequest, CertificateVerify, ServerHelloDone and Finished
//! (RFC 5246 §7.4, RFC 7250 §3): no panic, and what decodes re-encodes to
//! the same bytes.
#![no_main]
use _core::hs_codec::*;
use libfuzzer_sys::fuzz_target;

fn same(encoded: CodecResult<Vec<u8>>, data: &[u8]) {
    let encoded = encoded.expect("decoded fields re-encode");
    assert_eq!(&encoded[HEADER_LENGTH..], data);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(chain) = decode_certificate(data) {
        same(encode_certificate(0, &chain), data);
    }
    if let Ok(spki) = decode_raw_public_key_certificate(data) {
        same(encode_raw_public_key_certificate(0, spki), data);
    }
    if let Ok(request) = decode_certificate_request(data) {
        let schemes: Vec<u16> = request.signature_algorithms.iter().collect();
        same(
            encode_certificate_request(
                0,
                request.certificate_types,
                &schemes,
                &request.authorities,
            ),
            data,
        );
    }
    if let Ok((scheme, signature)) = decode_certificate_verify(data) {
        same(encode_certificate_verify(0, scheme, signature), data);
    }
    if decode_server_hello_done(data).is_ok() {
        same(encode_server_hello_done(0), data);
    }
    if let Ok(verify_data) = decode_finished(data) {
        same(encode_finished(0, verify_data), data);
    }
});
