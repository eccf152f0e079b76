//! Any ClientHello body: decoding must not panic; what decodes gives a
//! cookie input of the announced length, and its fields re-encoded (the
//! unknown extensions as they were) decode to the same fields.
#![no_main]
use _core::hs_codec::{encode_client_hello, ClientHello, ClientHelloFields, HEADER_LENGTH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(hello) = ClientHello::decode(data) else {
        return;
    };
    assert_eq!(hello.cookie_input().len(), hello.cookie_input_length());
    let suites: Vec<u16> = hello.cipher_suites.iter().collect();
    let fields = ClientHelloFields {
        client_version: hello.client_version,
        random: hello.random,
        session_id: hello.session_id,
        cookie: hello.cookie,
        cipher_suites: &suites,
        compression_methods: hello.compression_methods,
        extensions: &hello.extensions.others,
    };
    let again = encode_client_hello(0, &fields).expect("decoded fields re-encode");
    let other = ClientHello::decode(&again[HEADER_LENGTH..]).expect("re-encoded hello decodes");
    assert_eq!(other.cookie_input(), hello.cookie_input());
    assert_eq!(other.extensions.others, hello.extensions.others);
});
