//! Any record opened with every AEAD: no panic, and nothing forged opens.
#![no_main]
use _core::cipher::RecordCipher;
use _core::record::parse_single_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(record) = parse_single_record(data) else {
        return;
    };
    for (aead, key_len, iv_len) in [
        ("AES_128_CCM_8", 16, 4),
        ("AES_128_GCM", 16, 4),
        ("CHACHA20_POLY1305", 32, 12),
    ] {
        let cipher = RecordCipher::new(aead, &vec![7u8; key_len], &vec![9u8; iv_len])
            .expect("valid parameters");
        if let Some(length) = cipher.opened_length(record.fragment.len()) {
            let mut out = vec![0u8; length];
            // Random bytes authenticating would be a forgery.
            assert!(!cipher.open_into(&record.header.fields(), record.fragment, &mut out));
        }
    }
});
