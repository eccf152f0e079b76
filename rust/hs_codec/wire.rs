//! Bounds-checked reading and writing of the TLS presentation language
//! (RFC 5246 §4): fixed-size integers and length-prefixed vectors. Every read
//! either returns bytes that exist or an error naming the field; every write
//! checks the length against the vector's bounds first.

use super::error::{CodecError, CodecResult, Message};

/// Size of a vector's length prefix: 1, 2 or 3 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    U8,
    U16,
    U24,
}

impl Prefix {
    pub const fn size(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16 => 2,
            Prefix::U24 => 3,
        }
    }

    /// The largest length the prefix can carry.
    pub const fn max(self) -> usize {
        match self {
            Prefix::U8 => 0xFF,
            Prefix::U16 => 0xFFFF,
            Prefix::U24 => 0xFF_FFFF,
        }
    }
}

/// A cursor over one message body (or one nested vector).
pub struct Reader<'a> {
    rest: &'a [u8],
    message: Message,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], message: Message) -> Self {
        Reader {
            rest: data,
            message,
        }
    }

    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> CodecResult<&'a [u8]> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(CodecError::Truncated {
                message: self.message,
                field,
                needed: n,
                available: self.rest.len(),
            }),
        }
    }

    pub fn array<const N: usize>(&mut self, field: &'static str) -> CodecResult<&'a [u8; N]> {
        let message = self.message;
        let available = self.rest.len();
        self.take(N, field)?
            .try_into()
            .map_err(|_| CodecError::Truncated {
                message,
                field,
                needed: N,
                available,
            })
    }

    pub fn u8(&mut self, field: &'static str) -> CodecResult<u8> {
        let [b] = *self.array::<1>(field)?;
        Ok(b)
    }

    pub fn u16(&mut self, field: &'static str) -> CodecResult<u16> {
        Ok(u16::from_be_bytes(*self.array::<2>(field)?))
    }

    pub fn u24(&mut self, field: &'static str) -> CodecResult<u32> {
        let [a, b, c] = *self.array::<3>(field)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    fn length(&mut self, prefix: Prefix, field: &'static str) -> CodecResult<usize> {
        let truncated = CodecError::TruncatedLength {
            message: self.message,
            field,
            needed: prefix.size(),
            available: self.rest.len(),
        };
        let n = match prefix {
            Prefix::U8 => self.u8(field).map(usize::from),
            Prefix::U16 => self.u16(field).map(usize::from),
            Prefix::U24 => self.u24(field).map(|v| v as usize),
        };
        n.map_err(|_| truncated)
    }

    /// A vector `<min..max>` with a `prefix`-byte length (RFC 5246 §4.3).
    pub fn vector(
        &mut self,
        prefix: Prefix,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> CodecResult<&'a [u8]> {
        let n = self.length(prefix, field)?;
        if n < min || n > max {
            return Err(CodecError::LengthOutOfRange {
                message: self.message,
                field,
                length: n,
                min,
                max,
            });
        }
        self.take(n, field)
    }

    /// Error unless every byte was read.
    pub fn finish(&self) -> CodecResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing {
                message: self.message,
                count: self.rest.len(),
            })
        }
    }
}

/// The whole of `data` is one vector with a `prefix`-byte length of at least
/// `min` (the form of most extension_data, RFC 5246 §7.4.1.4).
pub fn whole_vector<'a>(
    data: &'a [u8],
    prefix: Prefix,
    message: Message,
    field: &'static str,
    min: usize,
) -> CodecResult<&'a [u8]> {
    let mut r = Reader::new(data, message);
    let n = r.length(prefix, field)?;
    if n != r.remaining() {
        return Err(CodecError::LengthMismatch {
            message,
            field,
            declared: n,
            actual: r.remaining(),
        });
    }
    if n < min {
        return Err(CodecError::LengthOutOfRange {
            message,
            field,
            length: n,
            min,
            max: prefix.max(),
        });
    }
    Ok(r.rest)
}

/// A list of 16-bit values: an even number of bytes, iterated big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct U16List<'a>(&'a [u8]);

impl<'a> U16List<'a> {
    /// Check `raw` has an even length.
    pub fn new(raw: &'a [u8], message: Message, field: &'static str) -> CodecResult<Self> {
        if raw.len() % 2 != 0 {
            return Err(CodecError::OddLength {
                message,
                field,
                length: raw.len(),
            });
        }
        Ok(U16List(raw))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|pair| <[u8; 2]>::try_from(pair).map_or(0, u16::from_be_bytes))
    }

    pub fn contains(&self, value: u16) -> bool {
        self.iter().any(|v| v == value)
    }
}

/// The big-endian length prefix of `n`; `n` was checked to fit.
fn prefix_bytes(prefix: Prefix, n: usize) -> PrefixBytes {
    let [.., b2, b1, b0] = (n as u64).to_be_bytes();
    match prefix {
        Prefix::U8 => PrefixBytes([b0, 0, 0], 1),
        Prefix::U16 => PrefixBytes([b1, b0, 0], 2),
        Prefix::U24 => PrefixBytes([b2, b1, b0], 3),
    }
}

struct PrefixBytes([u8; 3], usize);

impl PrefixBytes {
    fn as_slice(&self) -> &[u8] {
        self.0.get(..self.1).unwrap_or_default()
    }
}

/// Builds one message; vectors are opened, filled, then closed, which writes
/// their length and checks it against their bounds.
pub struct Writer {
    buf: Vec<u8>,
    message: Message,
}

impl Writer {
    pub fn with_capacity(capacity: usize, message: Message) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
            message,
        }
    }

    pub fn position(&self) -> usize {
        self.buf.len()
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u24(&mut self, v: u32) -> CodecResult<()> {
        let [top, a, b, c] = v.to_be_bytes();
        if top != 0 {
            return Err(self.unencodable("24-bit value", u64::from(v), 0, 0xFF_FFFF));
        }
        self.buf.extend_from_slice(&[a, b, c]);
        Ok(())
    }

    pub fn bytes(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn unencodable(&self, field: &'static str, value: u64, min: u64, max: u64) -> CodecError {
        CodecError::Unencodable {
            message: self.message,
            field,
            value,
            min,
            max,
        }
    }

    /// Check a length against `min..=max` before writing what it measures.
    pub fn check(
        &self,
        field: &'static str,
        length: usize,
        min: usize,
        max: usize,
    ) -> CodecResult<()> {
        if length < min || length > max {
            return Err(self.unencodable(field, length as u64, min as u64, max as u64));
        }
        Ok(())
    }

    /// Write a whole vector `<min..max>`.
    pub fn vector(
        &mut self,
        prefix: Prefix,
        field: &'static str,
        min: usize,
        max: usize,
        data: &[u8],
    ) -> CodecResult<()> {
        self.check(field, data.len(), min, max.min(prefix.max()))?;
        self.length(prefix, data.len());
        self.bytes(data);
        Ok(())
    }

    fn length(&mut self, prefix: Prefix, n: usize) {
        self.buf
            .extend_from_slice(prefix_bytes(prefix, n).as_slice());
    }

    /// Reserve a length prefix; returns the position to pass to `close`.
    pub fn open(&mut self, prefix: Prefix) -> usize {
        let at = self.buf.len();
        self.buf.resize(at.saturating_add(prefix.size()), 0);
        at
    }

    /// Fill in the length of the vector opened at `at`.
    pub fn close(
        &mut self,
        at: usize,
        prefix: Prefix,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> CodecResult<()> {
        let start = at.saturating_add(prefix.size());
        let n = self.buf.len().saturating_sub(start);
        self.check(field, n, min, max.min(prefix.max()))?;
        if let Some(slot) = self.buf.get_mut(at..start) {
            slot.copy_from_slice(prefix_bytes(prefix, n).as_slice());
        }
        Ok(())
    }

    /// Drop everything written from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}
