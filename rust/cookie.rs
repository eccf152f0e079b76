//! Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1): HMAC-SHA256 over
//! the canonical bytes of the peer address and the ClientHello fields the
//! second hello must repeat, under a secret that Python rotates; the previous
//! secret is still accepted.
//!
//! The bytes hashed are exactly those of `dtlsfast.handshake.cookies.peer_bytes`
//! and `ClientHello.cookie_input()`, so a cookie made by either implementation
//! verifies in the other. Host strings are parsed here as Python's `ipaddress`
//! module parses them (strict dotted quad, RFC 4291 §2.2 text forms), without
//! calling it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::errors::{CoreError, CoreResult};

type HmacSha256 = Hmac<Sha256>;

/// Cookies are 16..=32 bytes of truncated HMAC-SHA256.
pub const MIN_COOKIE_LENGTH: usize = 16;
pub const MAX_COOKIE_LENGTH: usize = 32;
/// A cookie secret is 16..=64 bytes (the jar draws 32).
pub const MIN_SECRET_LENGTH: usize = 16;
pub const MAX_SECRET_LENGTH: usize = 64;

/// A packed IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpBytes {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl IpBytes {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            IpBytes::V4(b) => b,
            IpBytes::V6(b) => b,
        }
    }
}

/// A dotted quad as `ipaddress.IPv4Address` takes it: four decimal octets of
/// one to three ASCII digits, no leading zero, each at most 255.
pub fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut octets = text.split('.');
    for slot in out.iter_mut() {
        *slot = parse_octet(octets.next()?)?;
    }
    octets.next().is_none().then_some(out)
}

fn parse_octet(text: &str) -> Option<u8> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 3 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes.first() == Some(&b'0') {
        return None;
    }
    text.parse::<u16>().ok().and_then(|v| u8::try_from(v).ok())
}

fn parse_hextet(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    // Python accepts no empty hextet here (int("", 16) fails).
    if bytes.is_empty() || bytes.len() > 4 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

const HEXTETS: usize = 8;

/// An IPv6 address as `ipaddress.IPv6Address._ip_int_from_string` takes it
/// (without a scope id): 3..=9 colon-separated parts, at most one `::`, an
/// optional dotted-quad tail.
pub fn parse_ipv6(text: &str) -> Option<[u8; 16]> {
    if text.is_empty() {
        return None;
    }
    // Up to 9 parts count; more is invalid. An IPv4 tail becomes two parts.
    let mut parts: [&str; 10] = [""; 10];
    let mut tail = [0u16; 2];
    let mut n = 0usize;
    for part in text.split(':') {
        *parts.get_mut(n)? = part;
        n += 1;
    }
    if n < 3 {
        return None;
    }
    // Hextet values of each part; parts before the tail are parsed later.
    let mut has_v4_tail = false;
    let last = *parts.get(n - 1)?;
    if last.contains('.') {
        let v4 = parse_ipv4(last)?;
        tail = [
            u16::from_be_bytes([v4[0], v4[1]]),
            u16::from_be_bytes([v4[2], v4[3]]),
        ];
        has_v4_tail = true;
        // The tail stands for two parts (Python appends two hex strings).
        n += 1;
    }
    if n > HEXTETS + 1 {
        return None;
    }
    // part(i) for i in 0..n, with the IPv4 tail as the last two.
    let part = |i: usize| -> Option<Part<'_>> {
        if has_v4_tail && i >= n - 2 {
            Some(Part::Value(*tail.get(i + 2 - n)?))
        } else {
            Some(Part::Text(parts.get(i)?))
        }
    };
    let is_empty = |i: usize| matches!(part(i), Some(Part::Text("")));

    let mut skip_index = None;
    for i in 1..n - 1 {
        if is_empty(i) {
            if skip_index.is_some() {
                return None;
            }
            skip_index = Some(i);
        }
    }
    let (parts_hi, parts_lo, skipped) = match skip_index {
        Some(skip) => {
            let mut hi = skip;
            let mut lo = n - skip - 1;
            if is_empty(0) {
                hi -= 1;
                if hi != 0 {
                    return None;
                }
            }
            if is_empty(n - 1) {
                lo -= 1;
                if lo != 0 {
                    return None;
                }
            }
            let skipped = HEXTETS.checked_sub(hi + lo).filter(|&s| s >= 1)?;
            (hi, lo, skipped)
        }
        None => {
            if n != HEXTETS || is_empty(0) || is_empty(n - 1) {
                return None;
            }
            (n, 0, 0)
        }
    };
    let mut hextets = [0u16; HEXTETS];
    for (i, slot) in hextets.iter_mut().enumerate().take(parts_hi) {
        *slot = part(i)?.value()?;
    }
    for j in 0..parts_lo {
        *hextets.get_mut(parts_hi + skipped + j)? = part(n - parts_lo + j)?.value()?;
    }
    let mut out = [0u8; 16];
    for (chunk, h) in out.chunks_exact_mut(2).zip(hextets) {
        chunk.copy_from_slice(&h.to_be_bytes());
    }
    Some(out)
}

enum Part<'a> {
    Text(&'a str),
    Value(u16),
}

impl Part<'_> {
    fn value(&self) -> Option<u16> {
        match self {
            Part::Text(t) => parse_hextet(t),
            Part::Value(v) => Some(*v),
        }
    }
}

/// `ipaddress.ip_address(host.split("%", 1)[0])`: IPv4 first, then IPv6.
pub fn parse_host(host: &str) -> Option<IpBytes> {
    let address = host.split('%').next().unwrap_or("");
    if address.contains('/') {
        return None;
    }
    if let Some(v4) = parse_ipv4(address) {
        return Some(IpBytes::V4(v4));
    }
    parse_ipv6(address).map(IpBytes::V6)
}

/// The canonical peer bytes of a `(host, port)` address, appended to `out`:
/// `I` + len + packed address + port for an IP literal, `H` + len + UTF-8
/// host + port otherwise (`cookies.peer_bytes`). `host_utf8` is the host as
/// Python's `encode("utf-8", "surrogatepass")` gives it; `host_text` the same
/// host when it is valid UTF-8 (None for a host with lone surrogates, which
/// is never an IP address).
pub fn push_address_peer(host_text: Option<&str>, host_utf8: &[u8], port: u16, out: &mut Vec<u8>) {
    match host_text.and_then(parse_host) {
        Some(ip) => push_tagged(b'I', ip.as_slice(), out),
        None => push_tagged(b'H', host_utf8, out),
    }
    out.extend_from_slice(&port.to_be_bytes());
}

/// The canonical peer bytes of a socket address: what [`push_address_peer`]
/// gives for the host and port that the socket reports to Python (an IP
/// literal always; IPv6 scope and flow info do not count).
pub fn push_socket_peer(addr: &std::net::SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => push_tagged(b'I', &v4.octets(), out),
        std::net::IpAddr::V6(v6) => push_tagged(b'I', &v6.octets(), out),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The canonical bytes of an opaque peer (a connection ID, a label):
/// `B` + len + bytes, a domain apart from addresses.
pub fn push_opaque_peer(raw: &[u8], out: &mut Vec<u8>) {
    push_tagged(b'B', raw, out);
}

fn push_tagged(tag: u8, raw: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    // Python writes len(raw) in 4 bytes; a peer past 4 GiB cannot reach here.
    let length = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(raw);
}

/// The ClientHello fields a cookie binds (RFC 6347 §4.2.1): version, random,
/// cipher_suites and compression_methods, as `ClientHello.cookie_input()`
/// encodes them. `cipher_suites` is the wire vector body (two bytes a suite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloFields<'a> {
    pub client_version: u16,
    pub random: &'a [u8],
    pub cipher_suites: &'a [u8],
    pub compression_methods: &'a [u8],
}

impl HelloFields<'_> {
    /// Feed the canonical encoding to a MAC: version(2) || len(random)(2) ||
    /// random || count(suites)(4) || suites || len(compression)(2) || compression.
    fn feed(&self, mac: &mut HmacSha256) {
        mac.update(&self.client_version.to_be_bytes());
        mac.update(&length_be::<2>(self.random.len()));
        mac.update(self.random);
        mac.update(&length_be::<4>(self.cipher_suites.len() / 2));
        // An odd trailing byte is not a suite (the parser rejects odd lengths).
        let whole = self.cipher_suites.len() & !1;
        mac.update(self.cipher_suites.get(..whole).unwrap_or(&[]));
        mac.update(&length_be::<2>(self.compression_methods.len()));
        mac.update(self.compression_methods);
    }

    /// The same encoding as bytes (for tests and the Python API).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.random.len() + self.cipher_suites.len());
        out.extend_from_slice(&self.client_version.to_be_bytes());
        out.extend_from_slice(&length_be::<2>(self.random.len()));
        out.extend_from_slice(self.random);
        out.extend_from_slice(&length_be::<4>(self.cipher_suites.len() / 2));
        out.extend_from_slice(
            self.cipher_suites
                .get(..self.cipher_suites.len() & !1)
                .unwrap_or(&[]),
        );
        out.extend_from_slice(&length_be::<2>(self.compression_methods.len()));
        out.extend_from_slice(self.compression_methods);
        out
    }
}

/// `n` as an `N`-byte big-endian field, masked as Python's `to_bytes` of a
/// length that always fits.
fn length_be<const N: usize>(n: usize) -> [u8; N] {
    let wide = (n as u64).to_be_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(wide.get(8 - N..).unwrap_or(&[0; N][..]));
    out
}

/// What a cookie is computed over, after the peer bytes: either the parsed
/// hello fields or bytes already encoded as `cookie_input()` gives them.
#[derive(Clone, Copy, Debug)]
pub enum CookieInput<'a> {
    Hello(HelloFields<'a>),
    Encoded(&'a [u8]),
}

/// The current and previous cookie secrets, keyed once each, and the cookie
/// length. Rotation is Python's decision; this only computes and compares.
#[derive(Clone)]
pub struct CookieKeys {
    current: HmacSha256,
    previous: Option<HmacSha256>,
    length: usize,
}

impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieKeys")
            .field("length", &self.length)
            .field("has_previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

fn keyed(secret: &[u8], which: &str) -> CoreResult<HmacSha256> {
    if !(MIN_SECRET_LENGTH..=MAX_SECRET_LENGTH).contains(&secret.len()) {
        return Err(CoreError::config(format!(
            "the {which} cookie secret is {} bytes; it must be \
             {MIN_SECRET_LENGTH}..{MAX_SECRET_LENGTH}",
            secret.len()
        )));
    }
    HmacSha256::new_from_slice(secret)
        .map_err(|_| CoreError::config(format!("the {which} cookie secret is unusable")))
}

impl CookieKeys {
    pub fn new(current: &[u8], previous: Option<&[u8]>, length: usize) -> CoreResult<Self> {
        if !(MIN_COOKIE_LENGTH..=MAX_COOKIE_LENGTH).contains(&length) {
            return Err(CoreError::config(format!(
                "cookie_length must be {MIN_COOKIE_LENGTH}..{MAX_COOKIE_LENGTH}, not {length}"
            )));
        }
        Ok(CookieKeys {
            current: keyed(current, "current")?,
            previous: previous.map(|p| keyed(p, "previous")).transpose()?,
            length,
        })
    }

    /// Replace both secrets (after Python rotated them); all or nothing.
    pub fn set_secrets(&mut self, current: &[u8], previous: Option<&[u8]>) -> CoreResult<()> {
        let current = keyed(current, "current")?;
        let previous = previous.map(|p| keyed(p, "previous")).transpose()?;
        self.current = current;
        self.previous = previous;
        Ok(())
    }

    pub fn length(&self) -> usize {
        self.length
    }

    fn mac(key: &HmacSha256, peer: &[u8], input: &CookieInput<'_>) -> [u8; 32] {
        let mut mac = key.clone();
        mac.update(peer);
        match input {
            CookieInput::Hello(fields) => fields.feed(&mut mac),
            CookieInput::Encoded(bytes) => mac.update(bytes),
        }
        mac.finalize().into_bytes().into()
    }

    /// The cookie for `peer` (canonical peer bytes) and `input` under the
    /// current secret: the first `length` bytes of the HMAC.
    pub fn make(&self, peer: &[u8], input: &CookieInput<'_>) -> ([u8; MAX_COOKIE_LENGTH], usize) {
        (Self::mac(&self.current, peer, input), self.length)
    }

    /// Whether `cookie` is the cookie of `peer` and `input` under the current
    /// or the previous secret. Both are always computed and compared in
    /// constant time, so timing tells neither which secret matched nor where
    /// a wrong cookie differs.
    pub fn verify(&self, peer: &[u8], input: &CookieInput<'_>, cookie: &[u8]) -> bool {
        let expected = |key: &HmacSha256| {
            let mac = Self::mac(key, peer, input);
            let truncated = mac.get(..self.length).unwrap_or(&[]);
            truncated.ct_eq(cookie)
        };
        let mut ok = expected(&self.current);
        if let Some(previous) = &self.previous {
            ok |= expected(previous);
        }
        bool::from(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Option<[u8; 16]> {
        parse_ipv6(text)
    }

    #[test]
    fn ipv4_is_strict_dotted_decimal() {
        assert_eq!(parse_ipv4("127.0.0.1"), Some([127, 0, 0, 1]));
        assert_eq!(parse_ipv4("255.255.255.255"), Some([255; 4]));
        assert_eq!(parse_ipv4("0.0.0.0"), Some([0; 4]));
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.256",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.0x1",
            "1.2.3.1000",
            "١.2.3.4",
            "1..3.4",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ipv6_text_forms_of_rfc_4291() {
        let loopback = {
            let mut b = [0u8; 16];
            b[15] = 1;
            b
        };
        assert_eq!(v6("::1"), Some(loopback));
        assert_eq!(v6("0:0::1"), Some(loopback));
        assert_eq!(v6("0:0:0:0:0:0:0:1"), Some(loopback));
        assert_eq!(v6("::"), Some([0; 16]));
        let mapped = v6("::ffff:192.0.2.1").unwrap();
        assert_eq!(mapped[10..], [0xff, 0xff, 192, 0, 2, 1]);
        assert_eq!(v6("1::"), v6("1:0:0:0:0:0:0:0"));
        assert_eq!(
            v6("2001:DB8::8:800:200C:417A"),
            v6("2001:db8:0:0:8:800:200c:417a")
        );
        for bad in [
            "",
            ":",
            "1:2",
            ":::",
            "1:::2",
            "1::2::3",
            ":1::2",
            "1::2:",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "12345::",
            "g::",
            "::1.2.3",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5:6:7::8",
            ":1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:",
        ] {
            assert_eq!(v6(bad), None, "{bad:?}");
        }
        assert!(v6("1:2:3:4:5:6:1.2.3.4").is_some());
        assert!(v6("1:2:3:4:5:6:7::").is_some());
        assert!(v6("::2:3:4:5:6:7:8").is_some());
    }

    #[test]
    fn host_scope_is_cut_and_slash_refused() {
        assert_eq!(parse_host("fe80::1%eth0"), v6("fe80::1").map(IpBytes::V6));
        assert_eq!(parse_host("10.0.0.1%x"), Some(IpBytes::V4([10, 0, 0, 1])));
        assert_eq!(parse_host("::1/128"), None);
        assert_eq!(parse_host("localhost"), None);
    }

    #[test]
    fn peer_bytes_layout() {
        let mut out = Vec::new();
        push_address_peer(Some("::1"), b"::1", 5684, &mut out);
        let mut expected = vec![b'I', 0, 0, 0, 16];
        expected.extend_from_slice(&v6("::1").unwrap());
        expected.extend_from_slice(&[0x16, 0x34]);
        assert_eq!(out, expected);
        out.clear();
        push_address_peer(Some("host"), b"host", 1, &mut out);
        assert_eq!(out, b"H\0\0\0\x04host\0\x01");
        out.clear();
        push_opaque_peer(b"xy", &mut out);
        assert_eq!(out, b"B\0\0\0\x02xy");
    }

    #[test]
    fn socket_peer_bytes_are_those_of_the_address_python_sees() {
        for (text, addr) in [
            ("127.0.0.1", "127.0.0.1:5684"),
            ("::1", "[::1]:5684"),
            ("::ffff:10.0.0.1", "[::ffff:10.0.0.1]:5684"),
        ] {
            let mut from_text = Vec::new();
            push_address_peer(Some(text), text.as_bytes(), 5684, &mut from_text);
            let mut from_socket = Vec::new();
            push_socket_peer(&addr.parse().unwrap(), &mut from_socket);
            assert_eq!(from_socket, from_text, "{text}");
        }
    }

    fn hello<'a>(random: &'a [u8], suites: &'a [u8]) -> HelloFields<'a> {
        HelloFields {
            client_version: 0xFEFD,
            random,
            cipher_suites: suites,
            compression_methods: b"\x00",
        }
    }

    #[test]
    fn cookie_input_encoding() {
        let fields = hello(&[5u8; 32], &[0xC0, 0xA8, 0x00, 0xA8]);
        let mut expected = vec![0xFE, 0xFD, 0, 32];
        expected.extend_from_slice(&[5u8; 32]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0xC0, 0xA8, 0x00, 0xA8, 0, 1, 0]);
        assert_eq!(fields.encode(), expected);
    }

    #[test]
    fn cookie_is_truncated_hmac_sha256() {
        // RFC 4231 test case 2 checks the HMAC-SHA256 underneath.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(tag[..8], [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]);

        let secret = [1u8; 32];
        let keys = CookieKeys::new(&secret, None, 20).unwrap();
        let fields = hello(&[5u8; 32], &[0xC0, 0xA8]);
        let encoded = fields.encode();
        let (cookie, n) = keys.make(b"peer", &CookieInput::Hello(fields));
        let (same, _) = keys.make(b"peer", &CookieInput::Encoded(&encoded));
        assert_eq!(cookie, same);
        let mut direct = HmacSha256::new_from_slice(&secret).unwrap();
        direct.update(b"peer");
        direct.update(&encoded);
        let full: [u8; 32] = direct.finalize().into_bytes().into();
        assert_eq!(cookie, full);
        assert_eq!(n, 20);
        assert!(keys.verify(b"peer", &CookieInput::Hello(fields), &cookie[..20]));
        assert!(!keys.verify(b"peer", &CookieInput::Hello(fields), &cookie[..19]));
        assert!(!keys.verify(b"peer", &CookieInput::Hello(fields), &cookie[..21]));
        assert!(!keys.verify(b"other", &CookieInput::Hello(fields), &cookie[..20]));
    }

    #[test]
    fn previous_secret_is_accepted_until_replaced() {
        let fields = hello(&[9u8; 32], &[0xC0, 0xA8]);
        let input = CookieInput::Hello(fields);
        let old = CookieKeys::new(&[1u8; 32], None, 32).unwrap();
        let (cookie, _) = old.make(b"p", &input);
        let mut keys = CookieKeys::new(&[2u8; 32], Some(&[1u8; 32]), 32).unwrap();
        assert!(keys.verify(b"p", &input, &cookie));
        keys.set_secrets(&[3u8; 32], Some(&[2u8; 32])).unwrap();
        assert!(!keys.verify(b"p", &input, &cookie));
        assert!(keys.set_secrets(&[3u8; 8], None).is_err());
        assert!(CookieKeys::new(&[1u8; 32], None, 15).is_err());
        assert!(CookieKeys::new(&[1u8; 32], None, 33).is_err());
    }
}
