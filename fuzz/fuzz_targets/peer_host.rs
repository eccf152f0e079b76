//! Any host string through the cookie's address parser: no panic, and a
//! parsed address is 4 or 16 bytes that an equivalent text form reproduces.
#![no_main]
use _core::cookie::{parse_host, IpBytes};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    match parse_host(host) {
        Some(IpBytes::V4(b)) => {
            assert_eq!(
                parse_host(&Ipv4Addr::from(b).to_string()),
                Some(IpBytes::V4(b))
            );
        }
        Some(IpBytes::V6(b)) => {
            let text = Ipv6Addr::from(b).to_string();
            // Rust prints IPv4-mapped addresses with a dotted tail; both parse.
            assert_eq!(parse_host(&text), Some(IpBytes::V6(b)));
        }
        None => {}
    }
});
