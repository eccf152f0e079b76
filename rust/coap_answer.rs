//! Published CoAP responses: the one request the gateway's fast path answers
//! without Python (RFC 7252 §5.2.1, a piggybacked response).
//!
//! Python decides: it publishes, per resource path, the encoded response
//! (code, options and payload) of a representation that does not depend on
//! the request, and withdraws or replaces it whenever the resource changes.
//! Rust executes: a Confirmable GET whose only options are Uri-Path
//! segments naming a published path, with no payload, is answered with an
//! ACK carrying the request's message ID and token and the published bytes.
//! Anything else (another method or type, any other option, Observe, Accept,
//! block-wise, a payload, a malformed message) returns None and goes to
//! Python's CoAP server unchanged.

use std::collections::HashMap;

use crate::errors::{CoreError, CoreResult};

/// Paths published at once, and the largest published response.
pub const MAX_PUBLISHED: usize = 256;
pub const MAX_RESPONSE: usize = 1200;
const MAX_PATH: usize = 255;

const URI_PATH: u32 = 11;
const TYPE_CON: u8 = 0;
const TYPE_ACK: u8 = 2;
const GET: u8 = 0x01;

#[derive(Debug, Default)]
pub struct CoapAnswers {
    /// "a/b" -> code(1) || options || (0xFF payload)?
    published: HashMap<Vec<u8>, Vec<u8>>,
    answered: u64,
}

/// Read an option's extended delta or length (RFC 7252 §3.1).
fn extended(nibble: u8, rest: &[u8], at: &mut usize) -> Option<u32> {
    match nibble {
        0..=12 => Some(u32::from(nibble)),
        13 => {
            let b = *rest.get(*at)?;
            *at += 1;
            Some(u32::from(b) + 13)
        }
        14 => {
            let hi = *rest.get(*at)?;
            let lo = *rest.get(*at + 1)?;
            *at += 2;
            Some(u32::from(u16::from_be_bytes([hi, lo])) + 269)
        }
        _ => None,
    }
}

impl CoapAnswers {
    pub fn len(&self) -> usize {
        self.published.len()
    }

    pub fn is_empty(&self) -> bool {
        self.published.is_empty()
    }

    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Publish (`Some`) or withdraw (`None`) the response for `path`
    /// ("light", "sensors/temp": Uri-Path segments joined by '/').
    pub fn publish(&mut self, path: &[u8], response: Option<&[u8]>) -> CoreResult<()> {
        let Some(response) = response else {
            self.published.remove(path);
            return Ok(());
        };
        if path.is_empty() || path.len() > MAX_PATH {
            return Err(CoreError::config(format!(
                "a published path has 1 to {MAX_PATH} bytes"
            )));
        }
        if response.is_empty() || response.len() > MAX_RESPONSE {
            return Err(CoreError::config(format!(
                "a published response (code, options, payload) has 1 to {MAX_RESPONSE} bytes"
            )));
        }
        if !self.published.contains_key(path) && self.published.len() >= MAX_PUBLISHED {
            return Err(CoreError::config(format!(
                "at most {MAX_PUBLISHED} paths can be published"
            )));
        }
        self.published.insert(path.to_vec(), response.to_vec());
        Ok(())
    }

    /// The ACK answering `request`, if it is a plain Confirmable GET of a
    /// published path; None sends the request on to Python.
    pub fn answer(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        if self.published.is_empty() {
            return None;
        }
        let (&first, rest) = request.split_first()?;
        let code = *rest.first()?;
        if first >> 6 != 1 || (first >> 4) & 0x03 != TYPE_CON || code != GET {
            return None;
        }
        let token_length = usize::from(first & 0x0F);
        if token_length > 8 {
            return None;
        }
        let message_id = request.get(2..4)?;
        let token = request.get(4..4 + token_length)?;
        let options = request.get(4 + token_length..)?;
        let mut path: Vec<u8> = Vec::with_capacity(32);
        let mut number = 0u32;
        let mut at = 0usize;
        while at < options.len() {
            let byte = *options.get(at)?;
            if byte == 0xFF {
                return None; // a payload on a GET: Python's business
            }
            at += 1;
            let delta = extended(byte >> 4, options, &mut at)?;
            let length = extended(byte & 0x0F, options, &mut at)? as usize;
            number = number.checked_add(delta)?;
            if number != URI_PATH {
                return None;
            }
            let segment = options.get(at..at.checked_add(length)?)?;
            at += length;
            if segment.is_empty() || segment.contains(&b'/') || segment == b"." || segment == b".."
            {
                return None;
            }
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(segment);
            if path.len() > MAX_PATH {
                return None;
            }
        }
        let response = self.published.get(&path)?;
        let mut out = Vec::with_capacity(4 + token_length + response.len() - 1);
        out.push((1 << 6) | (TYPE_ACK << 4) | first & 0x0F);
        out.extend_from_slice(response.get(..1)?);
        out.extend_from_slice(message_id);
        out.extend_from_slice(token);
        out.extend_from_slice(response.get(1..)?);
        self.answered += 1;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(mid: u16, token: &[u8], segments: &[&[u8]]) -> Vec<u8> {
        let mut m = vec![0x40 | token.len() as u8, 0x01];
        m.extend_from_slice(&mid.to_be_bytes());
        m.extend_from_slice(token);
        let mut first = true;
        for s in segments {
            let delta: u8 = if first { 11 } else { 0 };
            first = false;
            if s.len() < 13 {
                m.push((delta << 4) | s.len() as u8);
            } else {
                m.push((delta << 4) | 13);
                m.push(s.len() as u8 - 13);
            }
            m.extend_from_slice(s);
        }
        m
    }

    fn light() -> CoapAnswers {
        let mut a = CoapAnswers::default();
        // 2.05, Content-Format 0 (empty uint), payload "off"
        a.publish(b"light", Some(b"\x45\xc0\xffoff")).unwrap();
        a
    }

    #[test]
    fn a_published_get_is_answered_piggybacked() {
        let mut a = light();
        let reply = a.answer(&get(0x1234, b"\xaa\xbb", &[b"light"])).unwrap();
        assert_eq!(reply, b"\x62\x45\x12\x34\xaa\xbb\xc0\xffoff");
        assert_eq!(a.answered(), 1);
    }

    #[test]
    fn everything_else_goes_to_python() {
        let mut a = light();
        assert!(a.answer(&get(1, b"", &[b"dark"])).is_none());
        assert!(a.answer(&get(1, b"", &[b"light", b"x"])).is_none());
        assert!(a.answer(&get(1, b"", &[])).is_none());
        let mut non = get(1, b"", &[b"light"]);
        non[0] |= 0x10; // NON
        assert!(a.answer(&non).is_none());
        let mut put = get(1, b"", &[b"light"]);
        put[1] = 0x03;
        assert!(a.answer(&put).is_none());
        let mut observe = get(1, b"", &[]);
        observe.extend_from_slice(b"\x60\xb5light"); // Observe (6), then Uri-Path
        assert!(a.answer(&observe).is_none());
        let mut accept = get(1, b"", &[b"light"]);
        accept.extend_from_slice(b"\x61\x32"); // Accept: 50
        assert!(a.answer(&accept).is_none());
        let mut payload = get(1, b"", &[b"light"]);
        payload.extend_from_slice(b"\xffbody");
        assert!(a.answer(&payload).is_none());
        assert!(a.answer(&get(1, b"", &[b"..", b"light"])).is_none());
        assert_eq!(a.answered(), 0);
    }

    #[test]
    fn truncated_and_garbage_input_never_panics() {
        let mut a = light();
        let whole = get(7, b"\x01\x02\x03", &[b"light"]);
        for cut in 0..whole.len() {
            let _ = a.answer(&whole[..cut]);
        }
        for byte in 0..=255u8 {
            let mut m = whole.clone();
            m[4 + 3] = byte;
            let _ = a.answer(&m);
            let _ = a.answer(&[0x48, 0x01, 0, 0, byte, byte, byte]);
        }
    }

    #[test]
    fn publishing_is_bounded_and_withdrawable() {
        let mut a = light();
        a.publish(b"light", None).unwrap();
        assert!(a.answer(&get(1, b"", &[b"light"])).is_none());
        assert!(a.publish(b"", Some(b"\x45")).is_err());
        assert!(a.publish(b"x", Some(b"")).is_err());
        assert!(a.publish(b"x", Some(&[0x45; MAX_RESPONSE + 1])).is_err());
        for i in 0..MAX_PUBLISHED {
            a.publish(format!("p{i}").as_bytes(), Some(b"\x45"))
                .unwrap();
        }
        assert!(a.publish(b"one-more", Some(b"\x45")).is_err());
        a.publish(b"p0", Some(b"\x44")).unwrap(); // replacing is fine
    }
}
