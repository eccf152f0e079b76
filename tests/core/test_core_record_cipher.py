"""AEAD record protection (RFC 6347 §4.1.2.1, RFC 5246 §6.2.3.3, RFC 5288,
RFC 6655, RFC 7905).

First the primitives against published vectors, then every record each
implementation seals is compared with an independent construction written
here from the RFC text on those primitives.
"""

from __future__ import annotations

import struct
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from dtlsfast.exceptions import ConfigurationError

H = bytes.fromhex

# -- published vectors for the primitives ------------------------------------------


def test_kat_aes_128_ccm_8_nist_sp800_38c_example_3() -> None:
    # NIST SP 800-38C Appendix C, Example 3: Tlen 64, 96-bit nonce.
    out = AESCCM(bytes(range(0x40, 0x50)), tag_length=8).encrypt(
        bytes(range(0x10, 0x1C)), bytes(range(0x20, 0x38)), bytes(range(0x00, 0x14))
    )
    assert out == H("e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951")


def test_kat_aes_128_ccm_nist_cavp() -> None:
    # NIST CAVP CCM (VADT, AES-128, Tlen 128, Nlen 96), first vector.
    out = AESCCM(H("005e8f4d8e0cbf4e1ceeb5d87a275848"), tag_length=16).encrypt(
        H("0ec3ac452b547b9062aac8fa"),
        H("b6f345204526439daf84998f380dcfb4b4167c959c04ff65"),
        H("2f1821aa57e5278ffd33c17d46615b77363149dbc98470413f6543a6b749f2ca"),
    )
    assert out == H("9575e16f35da3c88a19c26a7b762044f4d7bbbafeff05d75") + H(
        "4829e2a7752fa3a14890972884b511d8"
    )


def test_kat_aes_128_gcm_mcgrew_viega_test_case_4() -> None:
    # McGrew & Viega, "The Galois/Counter Mode of Operation", Test Case 4.
    out = AESGCM(H("feffe9928665731c6d6a8f9467308308")).encrypt(
        H("cafebabefacedbaddecaf888"),
        H(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ),
        H("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
    )
    assert out[-16:] == H("5bc94fbc3221a5db94fae95ae7121a47")
    assert out[:16] == H("42831ec2217774244b7221b784d0d49c")


def test_kat_chacha20_poly1305_rfc8439_2_8_2() -> None:
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
        b"for the future, sunscreen would be it."
    )
    out = ChaCha20Poly1305(
        H("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    ).encrypt(H("070000004041424344454647"), plaintext, H("50515253c0c1c2c3c4c5c6c7"))
    assert out[:16] == H("d31a8d34648e60db7b86afbc53ef7ec2")
    assert out[-16:] == H("1ae10b594f09e26a7e902ecbd0600691")


# -- records against an independent construction --------------------------------------

SPECS = {
    # name: (key length, iv length, primitive)
    "AES_128_CCM_8": (16, 4, lambda k: AESCCM(k, tag_length=8)),
    "AES_128_CCM": (16, 4, lambda k: AESCCM(k, tag_length=16)),
    "AES_128_GCM": (16, 4, AESGCM),
    "AES_256_GCM": (32, 4, AESGCM),
    "CHACHA20_POLY1305": (32, 12, ChaCha20Poly1305),
}


def reference_seal(
    aead: str, key: bytes, iv: bytes, ctype: int, version: int, epoch: int, seq: int, pt: bytes
) -> bytes:
    """A DTLS 1.2 AEAD record straight from the RFCs."""
    _, _, primitive = SPECS[aead]
    epoch_seq = struct.pack(">H", epoch) + seq.to_bytes(6, "big")
    aad = epoch_seq + struct.pack(">BHH", ctype, version, len(pt))
    if aead == "CHACHA20_POLY1305":
        nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + epoch_seq, strict=True))
        fragment = primitive(key).encrypt(nonce, pt, aad)
    else:
        fragment = epoch_seq + primitive(key).encrypt(iv + epoch_seq, pt, aad)
    header = struct.pack(">BHH", ctype, version, epoch) + seq.to_bytes(6, "big")
    return header + struct.pack(">H", len(fragment)) + fragment


@pytest.mark.parametrize("aead", list(SPECS))
@pytest.mark.parametrize("size", [0, 1, 64, 256, 1200])
def test_seal_matches_reference_and_opens(impl: ModuleType, aead: str, size: int) -> None:
    key_len, iv_len, _ = SPECS[aead]
    key = bytes(range(1, key_len + 1))
    iv = bytes(range(0xA0, 0xA0 + iv_len))
    plaintext = bytes((i * 7) & 0xFF for i in range(size))
    cipher = impl.RecordCipher(aead, key, iv)
    for epoch, seq in [(1, 0), (1, 1), (2, 0x0102030405), (0xFFFF, 2**48 - 1)]:
        record = cipher.seal(23, 0xFEFD, epoch, seq, plaintext)
        assert record == reference_seal(aead, key, iv, 23, 0xFEFD, epoch, seq, plaintext)
        assert len(record) == 13 + size + cipher.overhead
        assert cipher.open(record) == plaintext
        (parts,) = impl.parse_records(record)
        assert cipher.open_parts(*parts) == plaintext


@pytest.mark.parametrize("aead", list(SPECS))
def test_tampering_anywhere_fails(impl: ModuleType, aead: str) -> None:
    key_len, iv_len, _ = SPECS[aead]
    cipher = impl.RecordCipher(aead, bytes(key_len), bytes(iv_len))
    record = cipher.seal(23, 0xFEFD, 1, 5, b"attack at dawn")
    for i in range(len(record)):
        tampered = bytearray(record)
        tampered[i] ^= 0x01
        if i in (11, 12):  # the length field: no longer one record
            assert cipher.open(bytes(tampered)) is None
            continue
        assert cipher.open(bytes(tampered)) is None, f"byte {i} flipped still opened"
    assert cipher.open(record[:-1]) is None
    assert cipher.open(record + b"\x00") is None
    assert cipher.open(b"") is None
    other = impl.RecordCipher(aead, bytes([1]) + bytes(key_len - 1), bytes(iv_len))
    assert other.open(record) is None
    # The epoch is in the additional data: the same bytes under another epoch fail.
    (ctype, version, _, seq, fragment) = impl.parse_records(record)[0]
    assert cipher.open_parts(ctype, version, 2, seq, fragment) is None
    assert cipher.open_parts(ctype, version, 1, seq, fragment) == b"attack at dawn"


def test_explicit_nonce_is_read_from_the_wire(impl: ModuleType) -> None:
    # For GCM/CCM the receiver uses the nonce the sender wrote, as OpenSSL does.
    key, salt = bytes(16), bytes(4)
    epoch_seq = struct.pack(">H", 1) + (9).to_bytes(6, "big")
    aad = epoch_seq + struct.pack(">BHH", 23, 0xFEFD, 2)
    other_nonce = (1234).to_bytes(8, "big")
    fragment = other_nonce + AESGCM(key).encrypt(salt + other_nonce, b"hi", aad)
    cipher = impl.RecordCipher("AES_128_GCM", key, salt)
    assert cipher.open_parts(23, 0xFEFD, 1, 9, fragment) == b"hi"


@pytest.mark.parametrize(
    ("aead", "key", "iv", "match"),
    [
        ("AES_128_CCM_9", bytes(16), bytes(4), "unknown AEAD"),
        ("AES_128_CCM_8", bytes(15), bytes(4), "16-byte key"),
        ("AES_256_GCM", bytes(16), bytes(4), "32-byte key"),
        ("AES_128_GCM", bytes(16), bytes(12), "4-byte iv"),
        ("CHACHA20_POLY1305", bytes(32), bytes(4), "12-byte iv"),
    ],
)
def test_bad_parameters(impl: ModuleType, aead: str, key: bytes, iv: bytes, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        impl.RecordCipher(aead, key, iv)


def test_sequence_and_size_limits(impl: ModuleType) -> None:
    cipher = impl.RecordCipher("AES_128_CCM_8", bytes(16), bytes(4))
    assert cipher.aead == "AES_128_CCM_8" and cipher.overhead == 16
    with pytest.raises(ConfigurationError, match="sequence_number"):
        cipher.seal(23, 0xFEFD, 1, 2**48, b"")
    with pytest.raises(ConfigurationError, match="epoch"):
        cipher.seal(23, 0xFEFD, 0x10000, 0, b"")
    cipher.seal(23, 0xFEFD, 1, 0, bytes(0xFFFF - 16))
    with pytest.raises(ConfigurationError):
        cipher.seal(23, 0xFEFD, 1, 0, bytes(0xFFFF - 15))


def test_overheads(impl: ModuleType) -> None:
    expected = {
        "AES_128_CCM_8": 16,
        "AES_128_CCM": 24,
        "AES_128_GCM": 24,
        "AES_256_GCM": 24,
        "CHACHA20_POLY1305": 16,
    }
    for aead, overhead in expected.items():
        key_len, iv_len, _ = SPECS[aead]
        assert impl.RecordCipher(aead, bytes(key_len), bytes(iv_len)).overhead == overhead
