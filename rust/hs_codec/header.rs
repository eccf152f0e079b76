//! The 12-byte DTLS handshake header (RFC 6347 §4.2.2) and the handshake
//! fragments a record carries back to back (RFC 6347 §4.2.3):
//! msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3).

use super::error::{CodecError, CodecResult, Message};
use super::wire::{Reader, Writer};

/// Bytes of the DTLS handshake header.
pub const HEADER_LENGTH: usize = 12;
/// The largest body the 24-bit length field can announce.
pub const MAX_BODY_LENGTH: usize = 0xFF_FFFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeHeader {
    pub msg_type: u8,
    pub length: u32,
    pub message_seq: u16,
    pub fragment_offset: u32,
    pub fragment_length: u32,
}

impl HandshakeHeader {
    /// Read the header at the start of `data` (which may go on past it) and
    /// check the fragment lies within the message. The body is not checked.
    pub fn parse(data: &[u8]) -> CodecResult<Self> {
        let mut r = Reader::new(data, Message::HandshakeHeader);
        if r.remaining() < HEADER_LENGTH {
            return Err(CodecError::Truncated {
                message: Message::HandshakeHeader,
                field: "header",
                needed: HEADER_LENGTH,
                available: r.remaining(),
            });
        }
        let header = HandshakeHeader {
            msg_type: r.u8("msg_type")?,
            length: r.u24("length")?,
            message_seq: r.u16("message_seq")?,
            fragment_offset: r.u24("fragment_offset")?,
            fragment_length: r.u24("fragment_length")?,
        };
        // Both are 24-bit values: the sum fits a u32 comfortably.
        let end = header
            .fragment_offset
            .saturating_add(header.fragment_length);
        if end > header.length {
            return Err(CodecError::FragmentPastMessage {
                offset: header.fragment_offset,
                fragment_length: header.fragment_length,
                length: header.length,
            });
        }
        Ok(header)
    }

    /// Whether the fragment is the whole message.
    pub fn is_whole(&self) -> bool {
        self.fragment_offset == 0 && self.fragment_length == self.length
    }
}

/// One handshake fragment of a record: its parsed header and its bytes
/// (header and body), as a reassembler takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub header: HandshakeHeader,
    pub bytes: &'a [u8],
}

impl<'a> Fragment<'a> {
    /// The fragment's body, without the header.
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LENGTH..).unwrap_or_default()
    }
}

/// Iterates the fragments of a handshake record's payload; yields an error
/// (and then stops) at the first fragment that is truncated or inconsistent.
pub struct Fragments<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Fragments<'a> {
    type Item = CodecResult<Fragment<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let item = next_fragment(self.rest);
        match item {
            Ok((fragment, rest)) => {
                self.rest = rest;
                Some(Ok(fragment))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn next_fragment(data: &[u8]) -> CodecResult<(Fragment<'_>, &[u8])> {
    let header = HandshakeHeader::parse(data)?;
    let end = HEADER_LENGTH.saturating_add(header.fragment_length as usize);
    let Some((bytes, rest)) = data.split_at_checked(end) else {
        return Err(CodecError::Truncated {
            message: Message::HandshakeRecord,
            field: "fragment body",
            needed: header.fragment_length as usize,
            available: data.len().saturating_sub(HEADER_LENGTH),
        });
    };
    Ok((Fragment { header, bytes }, rest))
}

/// The fragments of a handshake record's payload, several back to back
/// (RFC 6347 §4.2.3). An empty payload is an error, as is any malformed
/// fragment: check every item.
pub fn fragments(payload: &[u8]) -> CodecResult<Fragments<'_>> {
    if payload.is_empty() {
        return Err(CodecError::Empty {
            message: Message::HandshakeRecord,
            field: "payload",
        });
    }
    Ok(Fragments {
        rest: payload,
        failed: false,
    })
}

/// All the fragments of a record's payload, or the first error.
pub fn parse_fragments(payload: &[u8]) -> CodecResult<Vec<Fragment<'_>>> {
    fragments(payload)?.collect()
}

/// A writer positioned after a whole-message header; `finish_message`
/// fills in the length (RFC 6347 §4.2.2: offset 0, fragment_length = length).
pub fn start_message(msg_type: u8, message_seq: u16, body_hint: usize, message: Message) -> Writer {
    let mut w = Writer::with_capacity(HEADER_LENGTH.saturating_add(body_hint), message);
    w.u8(msg_type);
    w.bytes(&[0, 0, 0]);
    w.u16(message_seq);
    w.bytes(&[0; 6]);
    w
}

/// Close a message begun by `start_message`: its body must fit 24 bits.
pub fn finish_message(w: Writer) -> CodecResult<Vec<u8>> {
    let body = w.position().saturating_sub(HEADER_LENGTH);
    w.check("message body", body, 0, MAX_BODY_LENGTH)?;
    let mut out = w.into_bytes();
    let [_, a, b, c] = u32::try_from(body).unwrap_or(0).to_be_bytes();
    if let Some(length) = out.get_mut(1..4) {
        length.copy_from_slice(&[a, b, c]);
    }
    if let Some(fragment_length) = out.get_mut(9..12) {
        fragment_length.copy_from_slice(&[a, b, c]);
    }
    Ok(out)
}

/// A whole, unfragmented message: header then `body`.
pub fn encode_handshake(
    msg_type: u8,
    message_seq: u16,
    body: &[u8],
    message: Message,
) -> CodecResult<Vec<u8>> {
    let mut w = start_message(msg_type, message_seq, body.len(), message);
    w.bytes(body);
    finish_message(w)
}
