//! The TLS 1.2 key schedule: P_SHA256 / P_SHA384, master secret, extended
//! master secret, key block and Finished verify_data.
//!
//! RFC 5246 §5 (P_hash and the PRF), §8.1 (master secret), §6.3 (key block),
//! §7.4.9 (verify_data); RFC 7627 §4 (extended master secret); RFC 6347
//! §4.2.6 (DTLS uses the TLS 1.2 PRF unchanged). The pure-Python twin is
//! `dtlsfast.handshake.prf`; each function here is one step of the handshake,
//! so Python crosses the boundary once per step, not once per HMAC.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384};

use crate::cipher::{AeadKind, RecordCipher};
use crate::errors::{CoreError, CoreResult};

/// Bytes of the master secret (RFC 5246 §8.1).
pub const MASTER_SECRET_LENGTH: usize = 48;
/// Bytes of each hello random (RFC 5246 §7.4.1.2).
pub const RANDOM_LENGTH: usize = 32;
/// The most PRF output one call may ask for. TLS needs at most 88 bytes (a
/// ChaCha20 key block); the bound keeps a caller's mistake from allocating
/// without limit.
pub const MAX_PRF_OUTPUT: usize = 1 << 16;

/// The hash a suite's PRF is built on (RFC 5246 §5, RFC 5288 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrfHash {
    Sha256,
    Sha384,
}

impl PrfHash {
    /// `"sha256"` or `"sha384"`, as `dtlsfast.handshake.prf.PRF_HASHES` names them.
    pub fn from_name(name: &str) -> CoreResult<Self> {
        match name {
            "sha256" => Ok(PrfHash::Sha256),
            "sha384" => Ok(PrfHash::Sha384),
            _ => Err(CoreError::config(format!(
                "unsupported PRF hash {name:?}; use one of sha256, sha384"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PrfHash::Sha256 => "sha256",
            PrfHash::Sha384 => "sha384",
        }
    }

    /// Output bytes of the hash: 32 or 48.
    pub fn output_length(self) -> usize {
        match self {
            PrfHash::Sha256 => 32,
            PrfHash::Sha384 => 48,
        }
    }
}

/// P_hash(secret, seed) of RFC 5246 §5 into `out`, for one HMAC type:
/// A(0) = seed, A(i) = HMAC(secret, A(i-1)), output HMAC(secret, A(i) + seed)...
/// The seed arrives in pieces (label, randoms) so nothing is concatenated.
/// The key is absorbed once; each HMAC starts from a clone of that state.
fn p_hash_with<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    // HMAC takes keys of any length (RFC 2104 §2), so this never fails; an
    // empty output is the only fallback if it ever did.
    let Ok(keyed) = <M as KeyInit>::new_from_slice(secret) else {
        out.fill(0);
        return;
    };
    let mut a = {
        let mut mac = keyed.clone();
        for piece in seed {
            mac.update(piece);
        }
        mac.finalize().into_bytes()
    };
    let mut chunks = out.chunks_mut(a.len()).peekable();
    while let Some(chunk) = chunks.next() {
        let mut mac = keyed.clone();
        mac.update(&a);
        for piece in seed {
            mac.update(piece);
        }
        let block = mac.finalize().into_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(block.get(..n).unwrap_or(&[]));
        if chunks.peek().is_some() {
            let mut mac = keyed.clone();
            mac.update(&a);
            a = mac.finalize().into_bytes();
        }
    }
}

/// P_hash into `out` for `hash`.
pub fn p_hash_into(hash: PrfHash, secret: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    match hash {
        PrfHash::Sha256 => p_hash_with::<Hmac<Sha256>>(secret, seed, out),
        PrfHash::Sha384 => p_hash_with::<Hmac<Sha384>>(secret, seed, out),
    }
}

/// PRF(secret, label, seed) = P_hash(secret, label + seed), `length` bytes
/// (RFC 5246 §5). ConfigurationError past `MAX_PRF_OUTPUT`.
pub fn prf(
    hash: PrfHash,
    secret: &[u8],
    label: &[u8],
    seed: &[&[u8]],
    length: usize,
) -> CoreResult<Vec<u8>> {
    if length > MAX_PRF_OUTPUT {
        return Err(CoreError::config(format!(
            "PRF output of {length} bytes asked for; at most {MAX_PRF_OUTPUT} are allowed"
        )));
    }
    let mut out = vec![0u8; length];
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(seed.len() + 1);
    pieces.push(label);
    pieces.extend_from_slice(seed);
    p_hash_into(hash, secret, &pieces, &mut out);
    Ok(out)
}

fn check_randoms(client_random: &[u8], server_random: &[u8]) -> CoreResult<()> {
    if client_random.len() != RANDOM_LENGTH || server_random.len() != RANDOM_LENGTH {
        return Err(CoreError::config(format!(
            "hello randoms are 32 bytes; got {} and {}",
            client_random.len(),
            server_random.len()
        )));
    }
    Ok(())
}

/// PRF(premaster, "master secret", client_random + server_random)[0..47]
/// (RFC 5246 §8.1).
pub fn master_secret(
    hash: PrfHash,
    premaster: &[u8],
    client_random: &[u8],
    server_random: &[u8],
) -> CoreResult<[u8; MASTER_SECRET_LENGTH]> {
    check_randoms(client_random, server_random)?;
    let mut out = [0u8; MASTER_SECRET_LENGTH];
    p_hash_into(
        hash,
        premaster,
        &[b"master secret", client_random, server_random],
        &mut out,
    );
    Ok(out)
}

/// PRF(premaster, "extended master secret", session_hash)[0..47]
/// (RFC 7627 §4); `session_hash` is the transcript hash up to and including
/// ClientKeyExchange (RFC 7627 §3).
pub fn extended_master_secret(
    hash: PrfHash,
    premaster: &[u8],
    session_hash: &[u8],
) -> [u8; MASTER_SECRET_LENGTH] {
    let mut out = [0u8; MASTER_SECRET_LENGTH];
    p_hash_into(
        hash,
        premaster,
        &[b"extended master secret", session_hash],
        &mut out,
    );
    out
}

/// The master secret and both directions' write keys and implicit IVs.
/// Debug prints lengths only: keys never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySchedule {
    pub master_secret: [u8; MASTER_SECRET_LENGTH],
    pub client_write_key: Vec<u8>,
    pub server_write_key: Vec<u8>,
    pub client_write_iv: Vec<u8>,
    pub server_write_iv: Vec<u8>,
}

impl std::fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySchedule")
            .field("key_length", &self.client_write_key.len())
            .field("iv_length", &self.client_write_iv.len())
            .finish_non_exhaustive()
    }
}

/// key_block = PRF(master, "key expansion", server_random + client_random),
/// cut in order into client_write_key, server_write_key, client_write_IV,
/// server_write_IV (RFC 5246 §6.3; AEAD suites have no MAC keys, §6.2.3.3).
pub fn key_block(
    hash: PrfHash,
    master: &[u8; MASTER_SECRET_LENGTH],
    client_random: &[u8],
    server_random: &[u8],
    key_length: usize,
    iv_length: usize,
) -> CoreResult<KeySchedule> {
    check_randoms(client_random, server_random)?;
    // At most 2 * 32 + 2 * 12 bytes for the AEADs the record layer has.
    let mut block = [0u8; 2 * 32 + 2 * 12];
    let total = 2 * key_length + 2 * iv_length;
    let block = block
        .get_mut(..total)
        .ok_or_else(|| CoreError::config(format!("a key block of {total} bytes is too long")))?;
    p_hash_into(
        hash,
        master,
        &[b"key expansion", server_random, client_random],
        block,
    );
    let (client_write_key, rest) = block.split_at(key_length);
    let (server_write_key, rest) = rest.split_at(key_length);
    let (client_write_iv, server_write_iv) = rest.split_at(iv_length);
    Ok(KeySchedule {
        master_secret: *master,
        client_write_key: client_write_key.to_vec(),
        server_write_key: server_write_key.to_vec(),
        client_write_iv: client_write_iv.to_vec(),
        server_write_iv: server_write_iv.to_vec(),
    })
}

fn aead_kind(aead: &str) -> CoreResult<AeadKind> {
    AeadKind::from_name(aead).ok_or_else(|| {
        CoreError::config(format!(
            "unknown AEAD {aead:?}; expected one of {}",
            crate::cipher::AEAD_NAMES.join(", ")
        ))
    })
}

/// One step from the key exchange's secrets to the keys of a suite: the
/// premaster secret ([`premaster_secret`] of `psk` and `other_secret`), the
/// master secret (extended when `session_hash` is given, RFC 7627 §4, else
/// RFC 5246 §8.1), then the key block split for the suite's AEAD (RFC 5246
/// §6.3).
pub fn derive_keys(
    hash: PrfHash,
    aead: &str,
    psk: Option<&[u8]>,
    other_secret: Option<&[u8]>,
    client_random: &[u8],
    server_random: &[u8],
    session_hash: Option<&[u8]>,
) -> CoreResult<KeySchedule> {
    aead_kind(aead)?;
    // Both randoms are checked before any work, extended or not.
    check_randoms(client_random, server_random)?;
    let premaster = premaster_secret(psk, other_secret)?;
    let master = match session_hash {
        Some(hash_value) => extended_master_secret(hash, &premaster, hash_value),
        None => master_secret(hash, &premaster, client_random, server_random)?,
    };
    expand_master_secret(hash, aead, &master, client_random, server_random)
}

/// The key block of a master secret already known (a resumed session's,
/// RFC 5246 §7.3) and this handshake's randoms, split for `aead` (RFC 5246
/// §6.3). ConfigurationError unless `master` is 48 bytes.
pub fn expand_master_secret(
    hash: PrfHash,
    aead: &str,
    master: &[u8],
    client_random: &[u8],
    server_random: &[u8],
) -> CoreResult<KeySchedule> {
    let kind = aead_kind(aead)?;
    let master: &[u8; MASTER_SECRET_LENGTH] = master.try_into().map_err(|_| {
        CoreError::config(format!(
            "a master secret is {MASTER_SECRET_LENGTH} bytes, not {}",
            master.len()
        ))
    })?;
    key_block(
        hash,
        master,
        client_random,
        server_random,
        kind.key_length(),
        kind.iv_length(),
    )
}

/// The two record ciphers of one side of the connection: a client reads
/// with the server's write key and IV and writes with its own, a server
/// the reverse (RFC 5246 §6.3).
pub struct RoleCiphers {
    pub read: RecordCipher,
    pub write: RecordCipher,
}

impl KeySchedule {
    /// This key block's ciphers for `aead` (the one it was cut for), as the
    /// client (`client`) or the server uses them.
    pub fn role_ciphers(&self, aead: &str, client: bool) -> CoreResult<RoleCiphers> {
        let client_cipher =
            || RecordCipher::new(aead, &self.client_write_key, &self.client_write_iv);
        let server_cipher =
            || RecordCipher::new(aead, &self.server_write_key, &self.server_write_iv);
        Ok(if client {
            RoleCiphers {
                read: server_cipher()?,
                write: client_cipher()?,
            }
        } else {
            RoleCiphers {
                read: client_cipher()?,
                write: server_cipher()?,
            }
        })
    }
}

/// Finished.verify_data = PRF(master, label, Hash(handshake_messages))
/// [0..length-1] (RFC 5246 §7.4.9); `label` is `client finished` or
/// `server finished`.
pub fn verify_data(
    hash: PrfHash,
    master: &[u8],
    label: &[u8],
    handshake_hash: &[u8],
    length: usize,
) -> CoreResult<Vec<u8>> {
    if label != b"client finished" && label != b"server finished" {
        return Err(CoreError::config(format!(
            "Finished label must be b'client finished' or b'server finished', not {}",
            String::from_utf8_lossy(label)
        )));
    }
    prf(hash, master, label, &[handshake_hash], length)
}

/// The premaster secret of a key exchange: with a PSK, RFC 4279 §2's of
/// `psk` and `other_secret` ([`psk_premaster_secret`]: the ECDH shared
/// secret of ECDHE_PSK, or None for plain PSK); without one, the ECDH shared
/// secret itself (ECDHE_ECDSA, RFC 8422 §5.10), which must then be given.
pub fn premaster_secret<'a>(
    psk: Option<&[u8]>,
    other_secret: Option<&'a [u8]>,
) -> CoreResult<Cow<'a, [u8]>> {
    match (psk, other_secret) {
        (Some(psk), other) => Ok(Cow::Owned(psk_premaster_secret(psk, other)?)),
        (None, Some(shared)) => Ok(Cow::Borrowed(shared)),
        (None, None) => Err(CoreError::config(
            "no premaster secret: give the PSK, the ECDH shared secret or both",
        )),
    }
}

/// The premaster secret of a PSK key exchange (RFC 4279 §2):
/// `other_secret<0..2^16-1> || psk<0..2^16-1>`; for plain PSK `other_secret`
/// is `len(psk)` zero bytes (pass None), for ECDHE_PSK the ECDH shared secret
/// (RFC 5489 §2).
pub fn psk_premaster_secret(psk: &[u8], other_secret: Option<&[u8]>) -> CoreResult<Vec<u8>> {
    if psk.is_empty() {
        return Err(CoreError::config(
            "the PSK is empty; give a key of at least one byte",
        ));
    }
    let psk_length = u16::try_from(psk.len()).map_err(|_| {
        CoreError::config(format!(
            "the PSK is {} bytes; at most 65535 fit (RFC 4279)",
            psk.len()
        ))
    })?;
    let zeros;
    let other = match other_secret {
        Some(other) => other,
        None => {
            zeros = vec![0u8; psk.len()];
            &zeros
        }
    };
    let other_length = u16::try_from(other.len()).map_err(|_| {
        CoreError::config(format!(
            "other_secret is {} bytes; at most 65535 fit",
            other.len()
        ))
    })?;
    let mut out = Vec::with_capacity(4 + other.len() + psk.len());
    out.extend_from_slice(&other_length.to_be_bytes());
    out.extend_from_slice(other);
    out.extend_from_slice(&psk_length.to_be_bytes());
    out.extend_from_slice(psk);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // The TLS 1.2 PRF test vectors posted to the IETF TLS working group list
    // (ietf.org/mail-archive/web/tls/current/msg03416.html), the ones BearSSL's
    // and many other TLS stacks' known-answer tests carry: label "test label".
    #[test]
    fn p_sha256_vector() {
        let secret = unhex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35");
        let seed = unhex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c");
        let expected = unhex(
            "e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4
             e6 1e db 5a 6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17
             ab fd 37 97 c0 56 4b ab 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1
             22 ee 42 c5 a7 2e 5a 51 10 ff f7 01 87 34 7b 66",
        );
        let out = prf(
            PrfHash::Sha256,
            &secret,
            b"test label",
            &[&seed],
            expected.len(),
        )
        .unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn p_sha384_vector() {
        let secret = unhex("b8 0b 73 3d 6c ee fc dc 71 56 6e a4 8e 55 67 df");
        let seed = unhex("cd 66 5c f6 a8 44 7d d6 ff 8b 27 55 5e db 74 65");
        let expected = unhex(
            "7b 0c 18 e9 ce d4 10 ed 18 04 f2 cf a3 4a 33 6a 1c 14 df fb 49 00 bb 5f d7 94 21 07
             e8 1c 83 cd e9 ca 0f aa 60 be 9f e3 4f 82 b1 23 3c 91 46 a0 e5 34 cb 40 0f ed 27 00
             88 4f 9d c2 36 f8 0e dd 8b fa 96 11 44 c9 e8 d7 92 ec a7 22 a7 b3 2f c3 d4 16 d4 73
             eb c2 c5 fd 4a bf da d0 5d 91 84 25 9b 5b f8 cd 4d 90 fa 0d 31 e2 de c4 79 e4 f1 a2
             60 66 f2 ee a9 a6 92 36 a3 e5 26 55 c9 e9 ae e6 91 c8 f3 a2 68 54 30 8d 5e aa 3b e8
             5e 09 90 70 3d 73 e5 6f",
        );
        let out = prf(
            PrfHash::Sha384,
            &secret,
            b"test label",
            &[&seed],
            expected.len(),
        )
        .unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn every_prefix_is_a_prefix_of_the_longer_output() {
        let long = prf(PrfHash::Sha256, b"k", b"l", &[b"s"], 200).unwrap();
        for n in [0, 1, 31, 32, 33, 64, 65, 199] {
            assert_eq!(
                prf(PrfHash::Sha256, b"k", b"l", &[b"s"], n).unwrap(),
                long[..n]
            );
        }
    }

    #[test]
    fn seed_pieces_are_the_concatenated_seed() {
        let joined = prf(PrfHash::Sha384, b"key", b"label", &[b"abcdef"], 100).unwrap();
        let split = prf(
            PrfHash::Sha384,
            b"key",
            b"label",
            &[b"ab", b"", b"cdef"],
            100,
        )
        .unwrap();
        assert_eq!(joined, split);
    }

    #[test]
    fn master_secret_is_the_prf_with_its_label() {
        let cr = [1u8; 32];
        let sr = [2u8; 32];
        let expected = prf(PrfHash::Sha256, b"pms", b"master secret", &[&cr, &sr], 48).unwrap();
        assert_eq!(
            master_secret(PrfHash::Sha256, b"pms", &cr, &sr).unwrap()[..],
            expected[..]
        );
        let ems = prf(
            PrfHash::Sha384,
            b"pms",
            b"extended master secret",
            &[b"hash"],
            48,
        )
        .unwrap();
        assert_eq!(
            extended_master_secret(PrfHash::Sha384, b"pms", b"hash")[..],
            ems[..]
        );
    }

    #[test]
    fn key_block_is_split_in_rfc_order() {
        let master = [7u8; 48];
        let cr = [1u8; 32];
        let sr = [2u8; 32];
        for aead in crate::cipher::AEAD_NAMES {
            let kind = AeadKind::from_name(aead).unwrap();
            let (k, v) = (kind.key_length(), kind.iv_length());
            let block = prf(
                PrfHash::Sha256,
                &master,
                b"key expansion",
                &[&sr, &cr],
                2 * k + 2 * v,
            )
            .unwrap();
            let keys = key_block(PrfHash::Sha256, &master, &cr, &sr, k, v).unwrap();
            assert_eq!(keys.client_write_key, block[..k]);
            assert_eq!(keys.server_write_key, block[k..2 * k]);
            assert_eq!(keys.client_write_iv, block[2 * k..2 * k + v]);
            assert_eq!(keys.server_write_iv, block[2 * k + v..]);
        }
    }

    #[test]
    fn derive_keys_is_master_then_key_block() {
        let cr = [3u8; 32];
        let sr = [4u8; 32];
        let keys = derive_keys(
            PrfHash::Sha256,
            "AES_128_CCM_8",
            None,
            Some(b"pms"),
            &cr,
            &sr,
            None,
        )
        .unwrap();
        let master = master_secret(PrfHash::Sha256, b"pms", &cr, &sr).unwrap();
        assert_eq!(keys.master_secret, master);
        assert_eq!(
            keys,
            key_block(PrfHash::Sha256, &master, &cr, &sr, 16, 4).unwrap()
        );
        let ems = derive_keys(
            PrfHash::Sha384,
            "AES_256_GCM",
            None,
            Some(b"pms"),
            &cr,
            &sr,
            Some(b"h"),
        )
        .unwrap();
        assert_eq!(
            ems.master_secret,
            extended_master_secret(PrfHash::Sha384, b"pms", b"h")
        );
        assert_eq!(ems.client_write_key.len(), 32);
        assert!(derive_keys(PrfHash::Sha256, "NULL", None, Some(b"p"), &cr, &sr, None).is_err());
        assert!(derive_keys(
            PrfHash::Sha256,
            "AES_128_GCM",
            None,
            Some(b"p"),
            &cr[..31],
            &sr,
            None
        )
        .is_err());
        assert!(derive_keys(
            PrfHash::Sha256,
            "AES_128_GCM",
            None,
            Some(b"p"),
            &cr,
            &[],
            Some(b"h")
        )
        .is_err());
        assert!(!format!("{keys:?}").contains("master_secret: ["));
    }

    // Computed with OpenSSL 3's `openssl kdf TLS1-PRF` (tests/handshake/test_prf.py):
    // the PSK b"esp32c3_key", client random 0..32, server random 32..64.
    const MASTER_SHA256: &str = "1b68b4bf11e0ca4f3b23fcb0bac75b29dc6a62d79ad8d06dbcb760503081264d
                                 4d23eca448197b8e588d063082d01c29";
    const KEY_BLOCK_CCM8: &str =
        "d57790e6f4f032bc23f9d7cb8821f2fb798ab094f3f8f79aa66ddcf4a16d3d520b1b2074b5a3d01a";
    const EMS_SHA256: &str = "1ab04d336703a94e14e9ca977889261335a7a5a2def5ba17e3940075d1c03191
                              3af982468a01bfc4851fc9c452815263";

    fn openssl_randoms() -> ([u8; 32], [u8; 32]) {
        let cr: [u8; 32] = std::array::from_fn(|i| i as u8);
        let sr: [u8; 32] = std::array::from_fn(|i| 32 + i as u8);
        (cr, sr)
    }

    #[test]
    fn derive_keys_gives_each_side_its_ciphers_openssl_vector() {
        let (cr, sr) = openssl_randoms();
        let psk = Some(&b"esp32c3_key"[..]);
        let keys =
            derive_keys(PrfHash::Sha256, "AES_128_CCM_8", psk, None, &cr, &sr, None).unwrap();
        assert_eq!(keys.master_secret[..], unhex(MASTER_SHA256)[..]);
        let block = unhex(KEY_BLOCK_CCM8);
        let (client_key, server_key) = (&block[..16], &block[16..32]);
        let (client_iv, server_iv) = (&block[32..36], &block[36..40]);
        let client = keys.role_ciphers("AES_128_CCM_8", true).unwrap();
        let server = keys.role_ciphers("AES_128_CCM_8", false).unwrap();
        assert_eq!(client.write.key_material(), (client_key, client_iv));
        assert_eq!(client.read.key_material(), (server_key, server_iv));
        assert_eq!(server.write.key_material(), (server_key, server_iv));
        assert_eq!(server.read.key_material(), (client_key, client_iv));
        // What one side seals, the other opens.
        let fields = crate::record::RecordFields {
            content_type: 23,
            version: 0xFEFD,
            epoch: 1,
            sequence_number: 7,
        };
        let sealed = client.write.seal(&fields, b"ping").unwrap();
        assert_eq!(server.read.open(&sealed).unwrap(), b"ping");
        assert!(client.read.open(&sealed).is_none());
        let ems_hash = Sha256::digest(b"transcript");
        let ems = derive_keys(
            PrfHash::Sha256,
            "AES_128_CCM_8",
            psk,
            None,
            &cr,
            &sr,
            Some(&ems_hash),
        )
        .unwrap();
        assert_eq!(ems.master_secret[..], unhex(EMS_SHA256)[..]);
    }

    #[test]
    fn expand_master_secret_is_derive_keys_without_the_master() {
        let (cr, sr) = openssl_randoms();
        for aead in crate::cipher::AEAD_NAMES {
            let keys = derive_keys(
                PrfHash::Sha384,
                aead,
                Some(b"psk"),
                Some(b"ecdh"),
                &cr,
                &sr,
                None,
            )
            .unwrap();
            let again =
                expand_master_secret(PrfHash::Sha384, aead, &keys.master_secret, &cr, &sr).unwrap();
            assert_eq!(keys, again);
        }
        let master = [5u8; 48];
        assert!(
            expand_master_secret(PrfHash::Sha256, "AES_128_GCM", &master[..47], &cr, &sr).is_err()
        );
        assert!(expand_master_secret(PrfHash::Sha256, "NULL", &master, &cr, &sr).is_err());
        assert!(
            expand_master_secret(PrfHash::Sha256, "AES_128_GCM", &master, &cr[..31], &sr).is_err()
        );
        let keys = expand_master_secret(PrfHash::Sha256, "AES_128_GCM", &master, &cr, &sr).unwrap();
        // Cut for 16-byte keys: a 32-byte-key AEAD cannot take them.
        assert!(keys.role_ciphers("AES_256_GCM", true).is_err());
    }

    #[test]
    fn verify_data_checks_its_label_and_length_bound() {
        let vd = verify_data(PrfHash::Sha256, &[9u8; 48], b"client finished", b"h", 12).unwrap();
        assert_eq!(
            vd,
            prf(PrfHash::Sha256, &[9u8; 48], b"client finished", &[b"h"], 12).unwrap()
        );
        assert!(verify_data(PrfHash::Sha256, &[9u8; 48], b"finished", b"h", 12).is_err());
        assert!(prf(PrfHash::Sha256, b"", b"", &[], MAX_PRF_OUTPUT + 1).is_err());
        assert!(PrfHash::from_name("md5").is_err());
    }

    #[test]
    fn psk_premaster_secret_layout() {
        assert_eq!(
            psk_premaster_secret(b"ab", None).unwrap(),
            [0, 2, 0, 0, 0, 2, b'a', b'b']
        );
        assert_eq!(
            psk_premaster_secret(b"k", Some(b"xyz")).unwrap(),
            [0, 3, b'x', b'y', b'z', 0, 1, b'k']
        );
        assert!(psk_premaster_secret(b"", None).is_err());
        assert!(psk_premaster_secret(&vec![1u8; 65536], None).is_err());
    }

    #[test]
    fn premaster_secret_by_key_exchange() {
        // PSK and ECDHE_PSK: RFC 4279 §2; ECDHE_ECDSA: the shared secret.
        let psk = premaster_secret(Some(b"ab"), None).unwrap();
        assert_eq!(psk, psk_premaster_secret(b"ab", None).unwrap());
        let ecdhe_psk = premaster_secret(Some(b"k"), Some(b"xyz")).unwrap();
        assert_eq!(ecdhe_psk, psk_premaster_secret(b"k", Some(b"xyz")).unwrap());
        assert_eq!(
            premaster_secret(None, Some(b"xyz")).unwrap()[..],
            b"xyz"[..]
        );
        assert!(premaster_secret(None, None).is_err());
        assert!(premaster_secret(Some(b""), Some(b"xyz")).is_err());
        // The premaster secret derive_keys takes is that one.
        let (cr, sr) = openssl_randoms();
        let direct = derive_keys(
            PrfHash::Sha256,
            "AES_128_GCM",
            None,
            Some(&ecdhe_psk),
            &cr,
            &sr,
            None,
        );
        let built = derive_keys(
            PrfHash::Sha256,
            "AES_128_GCM",
            Some(b"k"),
            Some(b"xyz"),
            &cr,
            &sr,
            None,
        );
        assert_eq!(direct.unwrap(), built.unwrap());
        assert!(derive_keys(PrfHash::Sha256, "AES_128_GCM", None, None, &cr, &sr, None).is_err());
    }
}
