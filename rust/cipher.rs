//! AEAD record protection for one epoch and one direction: RFC 6347 §4.1.2.1
//! with the TLS 1.2 AEAD construction of RFC 5246 §6.2.3.3, the nonces of
//! RFC 5288 (GCM) / RFC 6655 (CCM, CCM_8) and RFC 7905 (ChaCha20-Poly1305).
//!
//! Wire form of a protected record:
//!   header(13) || explicit_nonce(8, GCM/CCM only) || ciphertext || tag
//! additional_data = epoch(2) || seq(6) || type(1) || version(2) || plaintext_length(2)
//!
//! With a connection ID (RFC 9146 §5) the record is
//!   tls12_cid header(13 + cid) || explicit_nonce || AEAD(DTLSInnerPlaintext) || tag
//! DTLSInnerPlaintext = content || real_type(1) || zeros(padding)
//! additional_data = 0xff x 8 || 25 || cid_length || 25 || version(2) || epoch(2)
//!                   || seq(6) || cid || length_of_DTLSInnerPlaintext(2)
//! The nonce is built as without a CID, from the real epoch and sequence number.
//!
//! The AEAD object (key schedule) is built once per `RecordCipher`; seal and
//! open only assemble a 12-byte nonce and the 13-byte additional data on the
//! stack, and write straight into the caller's output buffer.

use aead::{consts::U12, inout::InOutBuf, AeadCore, AeadInOut, KeyInit, Nonce, Tag};
use aes::{Aes128Enc, Aes256Enc};
use aes_gcm::AesGcm;
use ccm::{consts::U16, consts::U8, Ccm};
use chacha20poly1305::ChaCha20Poly1305;

use crate::errors::{CoreError, CoreResult};
use crate::record::{
    check_cid_length, parse_single_record, write_cid_header, RecordFields, CID_CONTENT_TYPE,
    MAX_CID_LENGTH, MAX_FRAGMENT_LENGTH, RECORD_HEADER_LENGTH,
};

// CCM (CTR plus CBC-MAC) and GCM (CTR plus GHASH) only ever run AES
// forward: the encryption-only key schedule is half the size of the full one,
// which matters with 100,000 sessions of two ciphers each in the table.
type Aes128Ccm8 = Ccm<Aes128Enc, U8, U12>;
type Aes128Ccm16 = Ccm<Aes128Enc, U16, U12>;
type Aes128Gcm = AesGcm<Aes128Enc, U12>;
type Aes256Gcm = AesGcm<Aes256Enc, U12>;

/// The names `RecordCipher` accepts, in the order Python sees them.
pub const AEAD_NAMES: [&str; 5] = [
    "AES_128_CCM_8",
    "AES_128_CCM",
    "AES_128_GCM",
    "AES_256_GCM",
    "CHACHA20_POLY1305",
];

/// Length of the 13-byte TLS additional data.
pub const ADDITIONAL_DATA_LENGTH: usize = 13;
const NONCE_LENGTH: usize = 12;
/// The longest key of any AEAD here (AES-256, ChaCha20).
pub const MAX_KEY_LENGTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadKind {
    Aes128Ccm8,
    Aes128Ccm,
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl AeadKind {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "AES_128_CCM_8" => AeadKind::Aes128Ccm8,
            "AES_128_CCM" => AeadKind::Aes128Ccm,
            "AES_128_GCM" => AeadKind::Aes128Gcm,
            "AES_256_GCM" => AeadKind::Aes256Gcm,
            "CHACHA20_POLY1305" => AeadKind::ChaCha20Poly1305,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AeadKind::Aes128Ccm8 => "AES_128_CCM_8",
            AeadKind::Aes128Ccm => "AES_128_CCM",
            AeadKind::Aes128Gcm => "AES_128_GCM",
            AeadKind::Aes256Gcm => "AES_256_GCM",
            AeadKind::ChaCha20Poly1305 => "CHACHA20_POLY1305",
        }
    }

    pub fn key_length(self) -> usize {
        match self {
            AeadKind::Aes256Gcm | AeadKind::ChaCha20Poly1305 => 32,
            _ => 16,
        }
    }

    /// The fixed IV from the key block: the 4-byte implicit salt for GCM and
    /// CCM (RFC 5288 §3, RFC 6655 §3), the whole 12-byte IV for ChaCha20
    /// (RFC 7905 §2).
    pub fn iv_length(self) -> usize {
        match self {
            AeadKind::ChaCha20Poly1305 => 12,
            _ => 4,
        }
    }

    pub fn tag_length(self) -> usize {
        match self {
            AeadKind::Aes128Ccm8 => 8,
            _ => 16,
        }
    }

    /// Bytes of nonce carried on the wire before the ciphertext.
    pub fn explicit_nonce_length(self) -> usize {
        match self {
            AeadKind::ChaCha20Poly1305 => 0,
            _ => 8,
        }
    }

    pub fn overhead(self) -> usize {
        self.explicit_nonce_length() + self.tag_length()
    }
}

/// The keyed AEAD. No Debug: it holds the key schedule. Clone copies the key
/// schedule (the session table takes its own copy of a connection's state).
#[derive(Clone)]
enum Engine {
    Ccm8(Box<Aes128Ccm8>),
    Ccm16(Box<Aes128Ccm16>),
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

fn keyed<A: KeyInit>(key: &[u8]) -> CoreResult<Box<A>> {
    A::new_from_slice(key)
        .map(Box::new)
        .map_err(|_| CoreError::config("invalid key length"))
}

/// Encrypt `plaintext` into `ciphertext` (same length) and write the tag.
fn seal_raw<A>(
    aead: &A,
    nonce: &[u8; NONCE_LENGTH],
    aad: &[u8],
    plaintext: &[u8],
    ciphertext: &mut [u8],
    tag_out: &mut [u8],
) -> Result<(), aead::Error>
where
    A: AeadInOut + AeadCore<NonceSize = U12>,
{
    let buffer = InOutBuf::new(plaintext, ciphertext).map_err(|_| aead::Error)?;
    let tag = aead.encrypt_inout_detached(&Nonce::<A>::from(*nonce), aad, buffer)?;
    if tag_out.len() != tag.len() {
        return Err(aead::Error);
    }
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// Authenticate and decrypt `ciphertext` into `plaintext` (same length).
fn open_raw<A>(
    aead: &A,
    nonce: &[u8; NONCE_LENGTH],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    plaintext: &mut [u8],
) -> Result<(), aead::Error>
where
    A: AeadInOut + AeadCore<NonceSize = U12>,
{
    let tag = Tag::<A>::try_from(tag).map_err(|_| aead::Error)?;
    let buffer = InOutBuf::new(ciphertext, plaintext).map_err(|_| aead::Error)?;
    aead.decrypt_inout_detached(&Nonce::<A>::from(*nonce), aad, buffer, &tag)
}

impl Engine {
    fn new(kind: AeadKind, key: &[u8]) -> CoreResult<Self> {
        Ok(match kind {
            AeadKind::Aes128Ccm8 => Engine::Ccm8(keyed(key)?),
            AeadKind::Aes128Ccm => Engine::Ccm16(keyed(key)?),
            AeadKind::Aes128Gcm => Engine::Gcm128(keyed(key)?),
            AeadKind::Aes256Gcm => Engine::Gcm256(keyed(key)?),
            AeadKind::ChaCha20Poly1305 => Engine::ChaCha(keyed(key)?),
        })
    }

    fn seal(
        &self,
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        plaintext: &[u8],
        ciphertext: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), aead::Error> {
        match self {
            Engine::Ccm8(a) => seal_raw(&**a, nonce, aad, plaintext, ciphertext, tag),
            Engine::Ccm16(a) => seal_raw(&**a, nonce, aad, plaintext, ciphertext, tag),
            Engine::Gcm128(a) => seal_raw(&**a, nonce, aad, plaintext, ciphertext, tag),
            Engine::Gcm256(a) => seal_raw(&**a, nonce, aad, plaintext, ciphertext, tag),
            Engine::ChaCha(a) => seal_raw(&**a, nonce, aad, plaintext, ciphertext, tag),
        }
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        plaintext: &mut [u8],
    ) -> Result<(), aead::Error> {
        match self {
            Engine::Ccm8(a) => open_raw(&**a, nonce, aad, ciphertext, tag, plaintext),
            Engine::Ccm16(a) => open_raw(&**a, nonce, aad, ciphertext, tag, plaintext),
            Engine::Gcm128(a) => open_raw(&**a, nonce, aad, ciphertext, tag, plaintext),
            Engine::Gcm256(a) => open_raw(&**a, nonce, aad, ciphertext, tag, plaintext),
            Engine::ChaCha(a) => open_raw(&**a, nonce, aad, ciphertext, tag, plaintext),
        }
    }
}

/// epoch(2) || seq(6) || type(1) || version(2) || length(2) (RFC 5246 §6.2.3.3,
/// with DTLS's epoch-prefixed sequence number, RFC 6347 §4.1.2.1).
fn additional_data(fields: &RecordFields, plaintext_length: u16) -> [u8; ADDITIONAL_DATA_LENGTH] {
    let [q0, q1, q2, q3, q4, q5, q6, q7] = fields.epoch_and_sequence();
    let [v0, v1] = fields.version.to_be_bytes();
    let [l0, l1] = plaintext_length.to_be_bytes();
    [
        q0,
        q1,
        q2,
        q3,
        q4,
        q5,
        q6,
        q7,
        fields.content_type,
        v0,
        v1,
        l0,
        l1,
    ]
}

/// The fixed part of the RFC 9146 §5 additional data: everything but the CID.
pub const CID_ADDITIONAL_DATA_FIXED: usize = 23;
const CID_ADDITIONAL_DATA_MAX: usize = CID_ADDITIONAL_DATA_FIXED + MAX_CID_LENGTH;

/// RFC 9146 §5 additional data, written into a stack buffer; returns the
/// buffer and the used length. `cid` is at most 255 bytes (checked).
fn cid_additional_data(
    fields: &RecordFields,
    cid: &[u8],
    inner_length: u16,
) -> Option<([u8; CID_ADDITIONAL_DATA_MAX], usize)> {
    let cid_length = u8::try_from(cid.len()).ok()?;
    let mut aad = [0u8; CID_ADDITIONAL_DATA_MAX];
    let used = CID_ADDITIONAL_DATA_FIXED + cid.len();
    let (fixed, rest) = aad.split_at_mut_checked(21)?;
    let [v0, v1] = fields.version.to_be_bytes();
    let [q0, q1, q2, q3, q4, q5, q6, q7] = fields.epoch_and_sequence();
    fixed.copy_from_slice(&[
        0xFF, // seq_num_placeholder (8 bytes of 0xff)
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        CID_CONTENT_TYPE, // tls12_cid
        cid_length,
        CID_CONTENT_TYPE, // tls12_cid
        v0,
        v1,
        q0, // epoch(2) || sequence_number(6)
        q1,
        q2,
        q3,
        q4,
        q5,
        q6,
        q7,
    ]);
    let (cid_out, rest) = rest.split_at_mut_checked(cid.len())?;
    cid_out.copy_from_slice(cid);
    rest.get_mut(..2)?
        .copy_from_slice(&inner_length.to_be_bytes());
    Some((aad, used))
}

/// AEAD record protection for one epoch and direction. Stateless per call:
/// the caller owns sequence numbers and the replay window.
#[derive(Clone)]
pub struct RecordCipher {
    kind: AeadKind,
    engine: Engine,
    /// For GCM/CCM: salt(4) || 0^8, so that `iv XOR (0^4 || explicit)` is
    /// `salt || explicit` (RFC 5288 §3); for ChaCha20 the 12-byte IV that
    /// RFC 7905 §2 XORs with the padded sequence number. One formula for both.
    iv: [u8; NONCE_LENGTH],
    /// The raw key (its first `kind.key_length()` bytes), kept so that a
    /// session can be exported to the state file (see session_export.rs):
    /// the key schedule cannot be turned back into it.
    key: [u8; MAX_KEY_LENGTH],
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCipher")
            .field("aead", &self.kind.name())
            .finish_non_exhaustive()
    }
}

impl RecordCipher {
    pub fn new(aead: &str, key: &[u8], iv: &[u8]) -> CoreResult<Self> {
        let kind = AeadKind::from_name(aead).ok_or_else(|| {
            CoreError::config(format!(
                "unknown AEAD {aead:?}; expected one of {}",
                AEAD_NAMES.join(", ")
            ))
        })?;
        if key.len() != kind.key_length() {
            return Err(CoreError::config(format!(
                "{} needs a {}-byte key, got {} bytes",
                kind.name(),
                kind.key_length(),
                key.len()
            )));
        }
        if iv.len() != kind.iv_length() {
            let what = match kind {
                AeadKind::ChaCha20Poly1305 => "the fixed IV of RFC 7905",
                _ => "the implicit salt of RFC 5288 / RFC 6655",
            };
            return Err(CoreError::config(format!(
                "{} needs a {}-byte iv ({what}), got {} bytes",
                kind.name(),
                kind.iv_length(),
                iv.len()
            )));
        }
        let mut fixed = [0u8; NONCE_LENGTH];
        fixed
            .get_mut(..iv.len())
            .ok_or_else(|| CoreError::config("iv too long"))?
            .copy_from_slice(iv);
        let mut raw = [0u8; MAX_KEY_LENGTH];
        raw.get_mut(..key.len())
            .ok_or_else(|| CoreError::config("key too long"))?
            .copy_from_slice(key);
        Ok(RecordCipher {
            kind,
            engine: Engine::new(kind, key)?,
            iv: fixed,
            key: raw,
        })
    }

    /// The key and fixed IV this cipher was made from, as [`new`](Self::new)
    /// takes them: for persisting a session, never for logs.
    pub fn key_material(&self) -> (&[u8], &[u8]) {
        (
            self.key.get(..self.kind.key_length()).unwrap_or_default(),
            self.iv.get(..self.kind.iv_length()).unwrap_or_default(),
        )
    }

    pub fn kind(&self) -> AeadKind {
        self.kind
    }

    /// Bytes of the boxed key schedule (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        match &self.engine {
            Engine::Ccm8(_) => std::mem::size_of::<Aes128Ccm8>(),
            Engine::Ccm16(_) => std::mem::size_of::<Aes128Ccm16>(),
            Engine::Gcm128(_) => std::mem::size_of::<Aes128Gcm>(),
            Engine::Gcm256(_) => std::mem::size_of::<Aes256Gcm>(),
            Engine::ChaCha(_) => std::mem::size_of::<ChaCha20Poly1305>(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    pub fn overhead(&self) -> usize {
        self.kind.overhead()
    }

    fn nonce(&self, epoch_and_sequence: [u8; 8]) -> [u8; NONCE_LENGTH] {
        let mut nonce = self.iv;
        for (n, s) in nonce.iter_mut().skip(4).zip(epoch_and_sequence) {
            *n ^= s;
        }
        nonce
    }

    /// Total length of the record `seal` builds for a plaintext of this length.
    pub fn sealed_length(&self, plaintext_length: usize) -> CoreResult<usize> {
        let fragment = plaintext_length
            .checked_add(self.overhead())
            .filter(|&n| n <= MAX_FRAGMENT_LENGTH)
            .ok_or_else(|| {
                CoreError::config(format!(
                    "plaintext of {plaintext_length} bytes does not fit one record: {} \
                     with {} bytes of AEAD overhead is at most {} bytes",
                    self.name(),
                    self.overhead(),
                    MAX_FRAGMENT_LENGTH - self.overhead()
                ))
            })?;
        Ok(RECORD_HEADER_LENGTH + fragment)
    }

    /// Build the protected record into `out`, which must be exactly
    /// `sealed_length(plaintext.len())` bytes.
    pub fn seal_into(
        &self,
        fields: &RecordFields,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> CoreResult<()> {
        let total = self.sealed_length(plaintext.len())?;
        if out.len() != total {
            return Err(CoreError::config("output buffer has the wrong length"));
        }
        let header = fields.header(total - RECORD_HEADER_LENGTH)?;
        // sealed_length bounded the plaintext below 2**16.
        let plaintext_length =
            u16::try_from(plaintext.len()).map_err(|_| CoreError::config("plaintext too long"))?;
        let epoch_and_sequence = fields.epoch_and_sequence();
        let nonce = self.nonce(epoch_and_sequence);
        let aad = additional_data(fields, plaintext_length);

        let explicit_length = self.kind.explicit_nonce_length();
        let short = || CoreError::config("output buffer too short");
        let (head, rest) = out
            .split_at_mut_checked(RECORD_HEADER_LENGTH)
            .ok_or_else(short)?;
        let (explicit, rest) = rest
            .split_at_mut_checked(explicit_length)
            .ok_or_else(short)?;
        let (ciphertext, tag) = rest
            .split_at_mut_checked(plaintext.len())
            .ok_or_else(short)?;
        head.copy_from_slice(&header.to_bytes());
        // The explicit nonce is the record's own epoch || seq (RFC 6655 §3
        // recommends it; RFC 5288 allows any unique value).
        explicit.copy_from_slice(
            epoch_and_sequence
                .get(..explicit_length)
                .ok_or_else(short)?,
        );
        self.engine
            .seal(&nonce, &aad, plaintext, ciphertext, tag)
            .map_err(|_| CoreError::config("AEAD encryption failed"))
    }

    pub fn seal(&self, fields: &RecordFields, plaintext: &[u8]) -> CoreResult<Vec<u8>> {
        let mut out = vec![0u8; self.sealed_length(plaintext.len())?];
        self.seal_into(fields, plaintext, &mut out)?;
        Ok(out)
    }

    /// Plaintext length of a protected fragment, None if it is too short to
    /// hold the explicit nonce and the tag, or too long for a record.
    pub fn opened_length(&self, fragment_length: usize) -> Option<usize> {
        fragment_length
            .checked_sub(self.overhead())
            .filter(|&n| n <= MAX_FRAGMENT_LENGTH)
    }

    /// Authenticate and decrypt `fragment` into `out`, which must be exactly
    /// `opened_length(fragment.len())` bytes. False on any failure; `out` is
    /// then garbage (zeroes or partial plaintext) and must be discarded.
    ///
    /// For GCM/CCM the nonce is built from the explicit nonce on the wire, not
    /// from `fields`' epoch and sequence number: RFC 5288 lets the sender pick
    /// any unique explicit nonce, and OpenSSL, GnuTLS and mbedTLS all read it
    /// from the record. The additional data always uses `fields`.
    pub fn open_into(&self, fields: &RecordFields, fragment: &[u8], out: &mut [u8]) -> bool {
        let Some(plaintext_length) = self.opened_length(fragment.len()) else {
            return false;
        };
        let Ok(aad_length) = u16::try_from(plaintext_length) else {
            return false;
        };
        if out.len() != plaintext_length {
            return false;
        }
        let explicit_length = self.kind.explicit_nonce_length();
        let Some((explicit, rest)) = fragment.split_at_checked(explicit_length) else {
            return false;
        };
        let Some((ciphertext, tag)) = rest.split_at_checked(plaintext_length) else {
            return false;
        };
        let nonce = if explicit_length == 0 {
            self.nonce(fields.epoch_and_sequence())
        } else {
            let Ok(explicit) = <[u8; 8]>::try_from(explicit) else {
                return false;
            };
            self.nonce(explicit)
        };
        let aad = additional_data(fields, aad_length);
        self.engine.open(&nonce, &aad, ciphertext, tag, out).is_ok()
    }

    pub fn open_parts(&self, fields: &RecordFields, fragment: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.opened_length(fragment.len())?];
        self.open_into(fields, fragment, &mut out).then_some(out)
    }

    /// Open a buffer holding exactly one whole record, header included.
    pub fn open(&self, record: &[u8]) -> Option<Vec<u8>> {
        let record = parse_single_record(record)?;
        self.open_parts(&record.header.fields(), record.fragment)
    }

    /// Total length of the tls12_cid record `seal_cid` builds (RFC 9146 §4):
    /// header with CID, then the protected DTLSInnerPlaintext.
    pub fn sealed_cid_length(
        &self,
        cid_length: usize,
        plaintext_length: usize,
        padding: usize,
    ) -> CoreResult<usize> {
        check_cid_length(cid_length)?;
        let too_long = || {
            CoreError::config(format!(
                "plaintext of {plaintext_length} bytes with {padding} bytes of padding does not \
                 fit one record: the DTLSInnerPlaintext adds 1 byte and {} {} bytes of AEAD \
                 overhead, at most {MAX_FRAGMENT_LENGTH} in all",
                self.name(),
                self.overhead()
            ))
        };
        let fragment = plaintext_length
            .checked_add(1)
            .and_then(|n| n.checked_add(padding))
            .and_then(|n| n.checked_add(self.overhead()))
            .filter(|&n| n <= MAX_FRAGMENT_LENGTH)
            .ok_or_else(too_long)?;
        Ok(RECORD_HEADER_LENGTH + cid_length + fragment)
    }

    /// Build a tls12_cid record (RFC 9146 §4, §5) into `out`, exactly
    /// `sealed_cid_length(cid.len(), plaintext.len(), padding)` bytes.
    /// `fields.content_type` is the real type, carried inside the
    /// DTLSInnerPlaintext; the header says tls12_cid.
    pub fn seal_cid_into(
        &self,
        fields: &RecordFields,
        cid: &[u8],
        plaintext: &[u8],
        padding: usize,
        out: &mut [u8],
    ) -> CoreResult<()> {
        let total = self.sealed_cid_length(cid.len(), plaintext.len(), padding)?;
        if out.len() != total {
            return Err(CoreError::config("output buffer has the wrong length"));
        }
        let header_length = RECORD_HEADER_LENGTH + cid.len();
        let mut inner = Vec::with_capacity(plaintext.len() + 1 + padding);
        inner.extend_from_slice(plaintext);
        inner.push(fields.content_type);
        inner.resize(plaintext.len() + 1 + padding, 0);
        let inner_length =
            u16::try_from(inner.len()).map_err(|_| CoreError::config("plaintext too long"))?;
        let (aad, aad_length) = cid_additional_data(fields, cid, inner_length)
            .ok_or_else(|| CoreError::config("connection ID too long"))?;
        let aad = aad
            .get(..aad_length)
            .ok_or_else(|| CoreError::config("connection ID too long"))?;
        let epoch_and_sequence = fields.epoch_and_sequence();
        let nonce = self.nonce(epoch_and_sequence);

        let explicit_length = self.kind.explicit_nonce_length();
        let short = || CoreError::config("output buffer too short");
        let (head, rest) = out.split_at_mut_checked(header_length).ok_or_else(short)?;
        write_cid_header(fields, cid, total - header_length, head)?;
        let (explicit, rest) = rest
            .split_at_mut_checked(explicit_length)
            .ok_or_else(short)?;
        let (ciphertext, tag) = rest.split_at_mut_checked(inner.len()).ok_or_else(short)?;
        explicit.copy_from_slice(
            epoch_and_sequence
                .get(..explicit_length)
                .ok_or_else(short)?,
        );
        self.engine
            .seal(&nonce, aad, &inner, ciphertext, tag)
            .map_err(|_| CoreError::config("AEAD encryption failed"))
    }

    pub fn seal_cid(
        &self,
        fields: &RecordFields,
        cid: &[u8],
        plaintext: &[u8],
        padding: usize,
    ) -> CoreResult<Vec<u8>> {
        let mut out = vec![0u8; self.sealed_cid_length(cid.len(), plaintext.len(), padding)?];
        self.seal_cid_into(fields, cid, plaintext, padding, &mut out)?;
        Ok(out)
    }

    /// Authenticate and decrypt the fragment of a tls12_cid record (RFC 9146
    /// §5) and unwrap its DTLSInnerPlaintext: the real content type and the
    /// content, padding removed. None on any failure, including an inner
    /// plaintext of zeros only (no real type). `fields.content_type` is not
    /// used: the additional data names tls12_cid.
    pub fn open_cid(
        &self,
        fields: &RecordFields,
        cid: &[u8],
        fragment: &[u8],
    ) -> Option<(u8, Vec<u8>)> {
        let inner_length = self.opened_length(fragment.len())?;
        let (aad, aad_length) =
            cid_additional_data(fields, cid, u16::try_from(inner_length).ok()?)?;
        let aad = aad.get(..aad_length)?;
        let (explicit, rest) = fragment.split_at_checked(self.kind.explicit_nonce_length())?;
        let (ciphertext, tag) = rest.split_at_checked(inner_length)?;
        let nonce = if explicit.is_empty() {
            self.nonce(fields.epoch_and_sequence())
        } else {
            self.nonce(<[u8; 8]>::try_from(explicit).ok()?)
        };
        let mut inner = vec![0u8; inner_length];
        self.engine
            .open(&nonce, aad, ciphertext, tag, &mut inner)
            .ok()?;
        let type_at = inner.iter().rposition(|&b| b != 0)?;
        let content_type = *inner.get(type_at)?;
        inner.truncate(type_at);
        Some((content_type, inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn engine(kind: AeadKind, key: &[u8]) -> Engine {
        Engine::new(kind, key).unwrap()
    }

    /// Run a published vector through the raw engine path (the one the
    /// record path uses), both directions, plus a tampered tag.
    fn kat(kind: AeadKind, key: &str, nonce: &str, aad: &str, pt: &str, ct: &str, tag: &str) {
        let e = engine(kind, &hex(key));
        let nonce: [u8; 12] = hex(nonce).try_into().unwrap();
        let (aad, pt, ct, tag) = (hex(aad), hex(pt), hex(ct), hex(tag));
        let mut got_ct = vec![0; pt.len()];
        let mut got_tag = vec![0; kind.tag_length()];
        e.seal(&nonce, &aad, &pt, &mut got_ct, &mut got_tag)
            .unwrap();
        assert_eq!(got_ct, ct);
        assert_eq!(got_tag, tag);
        let mut got_pt = vec![0; ct.len()];
        e.open(&nonce, &aad, &ct, &tag, &mut got_pt).unwrap();
        assert_eq!(got_pt, pt);
        let mut bad = tag.clone();
        bad[0] ^= 1;
        assert!(e.open(&nonce, &aad, &ct, &bad, &mut got_pt).is_err());
    }

    #[test]
    fn kat_aes_128_ccm_8_sp800_38c_example_3() {
        // NIST SP 800-38C Appendix C.3 (Example 3): Tlen = 64, Nlen = 96.
        kat(
            AeadKind::Aes128Ccm8,
            "404142434445464748494a4b4c4d4e4f",
            "101112131415161718191a1b",
            "000102030405060708090a0b0c0d0e0f10111213",
            "202122232425262728292a2b2c2d2e2f3031323334353637",
            "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5",
            "484392fbc1b09951",
        );
    }

    #[test]
    fn kat_aes_128_ccm_nist_cavp() {
        // NIST CAVP CCM test data (VADT/VNT, AES-128, Tlen = 128, Nlen = 96),
        // first vector of the 16-byte tag / 12-byte nonce set.
        kat(
            AeadKind::Aes128Ccm,
            "005e8f4d8e0cbf4e1ceeb5d87a275848",
            "0ec3ac452b547b9062aac8fa",
            "2f1821aa57e5278ffd33c17d46615b77363149dbc98470413f6543a6b749f2ca",
            "b6f345204526439daf84998f380dcfb4b4167c959c04ff65",
            "9575e16f35da3c88a19c26a7b762044f4d7bbbafeff05d75",
            "4829e2a7752fa3a14890972884b511d8",
        );
    }

    #[test]
    fn kat_aes_128_gcm_mcgrew_viega_test_case_4() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", Test Case 4.
        kat(
            AeadKind::Aes128Gcm,
            "feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        );
    }

    #[test]
    fn kat_aes_256_gcm_mcgrew_viega_test_case_16() {
        // McGrew & Viega, Test Case 16 (256-bit key, 96-bit IV, with AAD).
        kat(
            AeadKind::Aes256Gcm,
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        );
    }

    #[test]
    fn kat_chacha20_poly1305_rfc8439_2_8_2() {
        // RFC 8439 §2.8.2 AEAD test vector.
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let pt_hex: String = pt.iter().map(|b| format!("{b:02x}")).collect();
        kat(
            AeadKind::ChaCha20Poly1305,
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
            "070000004041424344454647",
            "50515253c0c1c2c3c4c5c6c7",
            &pt_hex,
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
             3ff4def08e4b7a9de576d26586cec64b6116",
            "1ae10b594f09e26a7e902ecbd0600691",
        );
    }

    fn fields(ct: u64, v: u64, e: u64, s: u64) -> RecordFields {
        RecordFields::new(ct, v, e, s).unwrap()
    }

    #[test]
    fn record_layout_gcm_matches_rfc_5288_construction() {
        // Build the record with RecordCipher, then check every byte of the
        // layout by hand: nonce = salt || epoch || seq, AAD as RFC 5246 says.
        let key = [0x11u8; 16];
        let c = RecordCipher::new("AES_128_GCM", &key, &[0xA0, 0xA1, 0xA2, 0xA3]).unwrap();
        let f = fields(23, 0xFEFD, 1, 0x0000_0000_0102);
        let rec = c.seal(&f, b"ping").unwrap();
        assert_eq!(rec.len(), 13 + 8 + 4 + 16);
        assert_eq!(&rec[..13], &hex("17 fefd 0001 000000000102 001c")[..]);
        assert_eq!(&rec[13..21], &hex("0001000000000102")[..]);
        let e = engine(AeadKind::Aes128Gcm, &key);
        let nonce: [u8; 12] = hex("a0a1a2a3 0001000000000102").try_into().unwrap();
        let aad = hex("0001000000000102 17 fefd 0004");
        let mut pt = [0u8; 4];
        e.open(&nonce, &aad, &rec[21..25], &rec[25..], &mut pt)
            .unwrap();
        assert_eq!(&pt, b"ping");
        assert_eq!(c.open(&rec).unwrap(), b"ping");
    }

    #[test]
    fn record_layout_chacha_matches_rfc_7905_construction() {
        let key = [0x22u8; 32];
        let iv = hex("000102030405060708090a0b");
        let c = RecordCipher::new("CHACHA20_POLY1305", &key, &iv).unwrap();
        let f = fields(22, 0xFEFD, 2, 0x0000_0A0B_0C0D);
        let rec = c.seal(&f, b"hello").unwrap();
        assert_eq!(rec.len(), 13 + 5 + 16);
        assert_eq!(&rec[..13], &hex("16 fefd 0002 00000a0b0c0d 0015")[..]);
        let e = engine(AeadKind::ChaCha20Poly1305, &key);
        // iv XOR (0^4 || 0002 00000a0b0c0d)
        let nonce: [u8; 12] = hex("00010203 0407 0607 02020606").try_into().unwrap();
        let aad = hex("000200000a0b0c0d 16 fefd 0005");
        let mut pt = [0u8; 5];
        e.open(&nonce, &aad, &rec[13..18], &rec[18..], &mut pt)
            .unwrap();
        assert_eq!(&pt, b"hello");
    }

    #[test]
    fn round_trip_all_aeads_and_overhead() {
        for (name, overhead) in AEAD_NAMES.iter().zip([16, 24, 24, 24, 16]) {
            let kind = AeadKind::from_name(name).unwrap();
            assert_eq!(kind.name(), *name);
            let key = vec![7u8; kind.key_length()];
            let iv = vec![9u8; kind.iv_length()];
            let c = RecordCipher::new(name, &key, &iv).unwrap();
            assert_eq!(c.overhead(), overhead);
            assert!(!format!("{c:?}").contains("07"));
            for len in [0usize, 1, 15, 16, 17, 64, 1200] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let f = fields(23, 0xFEFD, 3, MAX_SEQ_FOR_TEST - len as u64);
                let rec = c.seal(&f, &pt).unwrap();
                assert_eq!(rec.len(), 13 + overhead + len);
                assert_eq!(c.open(&rec).unwrap(), pt);
                let parsed = parse_single_record(&rec).unwrap();
                assert_eq!(c.open_parts(&f, parsed.fragment).unwrap(), pt);
                // Any header field change breaks the additional data.
                for pos in [0usize, 2, 4, 10] {
                    let mut bad = rec.clone();
                    bad[pos] ^= 1;
                    assert!(c.open(&bad).is_none(), "{name} header byte {pos}");
                }
                // Any fragment byte change breaks authentication.
                for pos in 13..rec.len() {
                    let mut bad = rec.clone();
                    bad[pos] ^= 0x80;
                    assert!(c.open(&bad).is_none(), "{name} byte {pos}");
                }
                // Not exactly one record.
                assert!(c.open(&rec[..rec.len() - 1]).is_none());
                assert!(c.open(&[rec.clone(), vec![0]].concat()).is_none());
                // Another key does not open it.
                let other = RecordCipher::new(name, &vec![8u8; kind.key_length()], &iv).unwrap();
                assert!(other.open(&rec).is_none());
            }
        }
    }

    const MAX_SEQ_FOR_TEST: u64 = crate::record::MAX_SEQUENCE_NUMBER;

    #[test]
    fn gcm_open_uses_explicit_nonce_from_the_wire() {
        // A peer may choose an explicit nonce other than epoch || seq
        // (RFC 5288 §3): the AAD still carries the header's epoch and seq.
        let key = [3u8; 16];
        let salt = [1u8, 2, 3, 4];
        let c = RecordCipher::new("AES_128_CCM_8", &key, &salt).unwrap();
        let f = fields(23, 0xFEFD, 1, 5);
        let explicit = hex("0123456789abcdef");
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&salt);
        nonce[4..].copy_from_slice(&explicit);
        let aad = hex("0001000000000005 17 fefd 0003");
        let e = engine(AeadKind::Aes128Ccm8, &key);
        let mut ct = [0u8; 3];
        let mut tag = [0u8; 8];
        e.seal(&nonce, &aad, b"abc", &mut ct, &mut tag).unwrap();
        let fragment = [&explicit[..], &ct, &tag].concat();
        assert_eq!(c.open_parts(&f, &fragment).unwrap(), b"abc");
        assert!(c.open_parts(&fields(23, 0xFEFD, 1, 6), &fragment).is_none());
    }

    #[test]
    fn short_and_oversized_inputs() {
        for name in AEAD_NAMES {
            let kind = AeadKind::from_name(name).unwrap();
            let c = RecordCipher::new(
                name,
                &vec![0; kind.key_length()],
                &vec![0; kind.iv_length()],
            )
            .unwrap();
            let f = fields(23, 0xFEFD, 1, 1);
            for len in 0..c.overhead() {
                assert!(c.open_parts(&f, &vec![0; len]).is_none());
            }
            assert!(c.open_parts(&f, &vec![0; c.overhead()]).is_none());
            assert!(c.open(&[]).is_none());
            assert!(c.open(&[0; 13]).is_none());
            let max = MAX_FRAGMENT_LENGTH - c.overhead();
            assert!(c.seal(&f, &vec![0; max]).is_ok());
            assert!(matches!(
                c.seal(&f, &vec![0; max + 1]),
                Err(CoreError::Configuration(_))
            ));
            assert!(c
                .open_parts(&f, &vec![0; MAX_FRAGMENT_LENGTH + c.overhead() + 1])
                .is_none());
            let mut wrong = vec![0; 10];
            assert!(c.seal_into(&f, b"x", &mut wrong).is_err());
            assert!(!c.open_into(&f, &[0; 40], &mut wrong));
        }
    }

    #[test]
    fn cid_record_matches_rfc_9146_construction() {
        // Every byte checked by hand: header with CID (RFC 9146 §4), the
        // additional data of §5, and the DTLSInnerPlaintext.
        let key = [0x44u8; 16];
        let salt = [0xB0, 0xB1, 0xB2, 0xB3];
        let c = RecordCipher::new("AES_128_CCM_8", &key, &salt).unwrap();
        let f = fields(23, 0xFEFD, 1, 0x0000_0000_0203);
        let cid = hex("c0ffee");
        let rec = c.seal_cid(&f, &cid, b"hi", 2).unwrap();
        // inner = "hi" || 0x17 || 00 00 (5 bytes); fragment = 8 + 5 + 8.
        assert_eq!(rec.len(), 13 + 3 + 8 + 5 + 8);
        assert_eq!(
            &rec[..16],
            &hex("19 fefd 0001 000000000203 c0ffee 0015")[..]
        );
        assert_eq!(&rec[16..24], &hex("0001000000000203")[..]);
        let aad = hex("ffffffffffffffff 19 03 19 fefd 0001 000000000203 c0ffee 0005");
        assert_eq!(aad.len(), CID_ADDITIONAL_DATA_FIXED + 3);
        let nonce: [u8; 12] = hex("b0b1b2b3 0001000000000203").try_into().unwrap();
        let e = engine(AeadKind::Aes128Ccm8, &key);
        let mut inner = [0u8; 5];
        e.open(&nonce, &aad, &rec[24..29], &rec[29..], &mut inner)
            .unwrap();
        assert_eq!(&inner, b"hi\x17\x00\x00");
        assert_eq!(
            c.open_cid(&f, &cid, &rec[16..]).unwrap(),
            (23, b"hi".to_vec())
        );
        // The CID is authenticated; so are epoch, sequence number and version.
        assert!(c.open_cid(&f, &hex("c0ffef"), &rec[16..]).is_none());
        assert!(c.open_cid(&f, &hex("c0ff"), &rec[16..]).is_none());
        assert!(c
            .open_cid(&fields(23, 0xFEFD, 1, 0x204), &cid, &rec[16..])
            .is_none());
        assert!(c
            .open_cid(&fields(23, 0xFEFF, 1, 0x203), &cid, &rec[16..])
            .is_none());
        // The plain (RFC 6347) additional data does not open it.
        assert!(c.open_parts(&f, &rec[16..]).is_none());
        // The pre-RFC draft layout (seq, tls12_cid, version, cid, cid_length,
        // length) does not open it either.
        let draft = hex("0001000000000203 19 fefd c0ffee 03 0005");
        assert!(e
            .open(&nonce, &draft, &rec[24..29], &rec[29..], &mut inner)
            .is_err());
    }

    #[test]
    fn cid_round_trip_all_aeads() {
        for name in AEAD_NAMES {
            let kind = AeadKind::from_name(name).unwrap();
            let c = RecordCipher::new(
                name,
                &vec![5u8; kind.key_length()],
                &vec![6u8; kind.iv_length()],
            )
            .unwrap();
            for cid_len in [0usize, 1, 8, 255] {
                let cid = vec![0xAB; cid_len];
                for (len, padding) in [(0usize, 0usize), (1, 0), (17, 3), (300, 0)] {
                    let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    let f = fields(22, 0xFEFD, 2, 99);
                    let rec = c.seal_cid(&f, &cid, &pt, padding).unwrap();
                    assert_eq!(
                        rec.len(),
                        c.sealed_cid_length(cid_len, len, padding).unwrap()
                    );
                    let frag = &rec[13 + cid_len..];
                    assert_eq!(c.open_cid(&f, &cid, frag).unwrap(), (22, pt.clone()));
                    for pos in 0..frag.len() {
                        let mut bad = frag.to_vec();
                        bad[pos] ^= 0x01;
                        assert!(c.open_cid(&f, &cid, &bad).is_none(), "{name} {pos}");
                    }
                }
            }
            // An inner plaintext of zeros only has no real type: dropped.
            let f = fields(0, 0xFEFD, 2, 1);
            let rec = c.seal_cid(&f, b"x", b"", 4).unwrap();
            assert!(c.open_cid(&f, b"x", &rec[14..]).is_none());
            // Too short, too long, and bad CID lengths never panic.
            assert!(c.open_cid(&f, b"x", &[]).is_none());
            assert!(c.open_cid(&f, &[0; 256], &rec[14..]).is_none());
            assert!(c.seal_cid(&f, &[0; 256], b"", 0).is_err());
            let max = MAX_FRAGMENT_LENGTH - c.overhead() - 1;
            assert!(c.seal_cid(&f, b"x", &vec![0; max], 0).is_ok());
            assert!(c.seal_cid(&f, b"x", &vec![0; max], 1).is_err());
            assert!(c.seal_cid(&f, b"x", b"", usize::MAX).is_err());
            let mut wrong = vec![0; 3];
            assert!(c.seal_cid_into(&f, b"x", b"", 0, &mut wrong).is_err());
        }
    }

    #[test]
    fn configuration_errors() {
        let err = RecordCipher::new("AES_128_CBC", &[0; 16], &[0; 4]).unwrap_err();
        assert!(err.message().contains("AES_128_CCM_8"), "{err}");
        let err = RecordCipher::new("AES_128_GCM", &[0; 32], &[0; 4]).unwrap_err();
        assert!(err.message().contains("16-byte key"), "{err}");
        let err = RecordCipher::new("AES_256_GCM", &[0; 16], &[0; 4]).unwrap_err();
        assert!(err.message().contains("32-byte key"), "{err}");
        let err = RecordCipher::new("AES_128_CCM_8", &[0; 16], &[0; 12]).unwrap_err();
        assert!(err.message().contains("4-byte iv"), "{err}");
        let err = RecordCipher::new("CHACHA20_POLY1305", &[0; 32], &[0; 4]).unwrap_err();
        assert!(err.message().contains("12-byte iv"), "{err}");
        assert!(matches!(err, CoreError::Configuration(_)));
    }
}
