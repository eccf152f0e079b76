"""Tests of the TLS 1.2 key schedule (dtlsfast.handshake.prf).

The PRF vectors are the widely used "TLS 1.2 PRF test vectors" posted to the
IETF TLS mailing list by Joseph Birr-Pixton
(https://www.ietf.org/mail-archive/web/tls/current/msg03416.html) and used by
many TLS test suites. The master secret, key block, extended master secret and
verify_data expectations were computed independently with OpenSSL 3's
``openssl kdf TLS1-PRF``; when that command is available the tests also rerun it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.prf import (
    KeyMaterial,
    extended_master_secret,
    hash_length,
    key_block,
    master_secret,
    prf,
    psk_premaster_secret,
    verify_data,
)
from dtlsfast.handshake.suites import SUITES_BY_CODE

PRF_SHA256 = {
    "secret": "9bbe436ba940f017b17652849a71db35",
    "seed": "a0ba9f936cda311827a6f796ffd5198c",
    "label": b"test label",
    "output": (
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66"
    ),
}
PRF_SHA384 = {
    "secret": "b80b733d6ceefcdc71566ea48e5567df",
    "seed": "cd665cf6a8447dd6ff8b27555edb7465",
    "label": b"test label",
    "output": (
        "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
        "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
        "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
        "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
        "91c8f3a26854308d5eaa3be85e0990703d73e56f"
    ),
}

PSK = b"esp32c3_key"
CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(32, 64))
SESSION_HASH = hashlib.sha256(b"transcript").digest()

# Computed with `openssl kdf -kdfopt digest:... TLS1-PRF` (OpenSSL 3.0).
MASTER_SHA256 = (
    "1b68b4bf11e0ca4f3b23fcb0bac75b29dc6a62d79ad8d06dbcb760503081264d"
    "4d23eca448197b8e588d063082d01c29"
)
KEY_BLOCK_CCM8 = "d57790e6f4f032bc23f9d7cb8821f2fb798ab094f3f8f79aa66ddcf4a16d3d520b1b2074b5a3d01a"
MASTER_SHA384 = (
    "e5e35046e37a344f5d5b9ff0779bafae0365130bf6827b3e6e445b55d47cfa1e"
    "b71b0b95ed1128bed8fecb1a7c843593"
)
KEY_BLOCK_AES256_SHA384 = (
    "592eb8327286278316d694a5c3b0987195b5c13fa17f0eb819bc5f752f959f98"
    "34a4e51078e195ab67b4e16e6bcb37011f2facf358fbee191832105c82733c03"
    "03f80efbf9113e32"
)
EMS_SHA256 = (
    "1ab04d336703a94e14e9ca977889261335a7a5a2def5ba17e3940075d1c03191"
    "3af982468a01bfc4851fc9c452815263"
)
CLIENT_VERIFY = "54fb45284ce7d664dccf3697"
SERVER_VERIFY = "ae6650cb19649dc7c6da691e"


@pytest.mark.parametrize("vector", [PRF_SHA256, PRF_SHA384], ids=["sha256", "sha384"])
def test_prf_published_vectors(vector: dict[str, object]) -> None:
    hash_name = "sha256" if vector is PRF_SHA256 else "sha384"
    expected = bytes.fromhex(str(vector["output"]))
    out = prf(
        hash_name,
        bytes.fromhex(str(vector["secret"])),
        vector["label"],  # type: ignore[arg-type]
        bytes.fromhex(str(vector["seed"])),
        len(expected),
    )
    assert out == expected


def test_prf_prefix_property_and_zero_length() -> None:
    secret, seed = b"k" * 16, b"s" * 16
    long = prf("sha256", secret, b"label", seed, 200)
    for n in (0, 1, 31, 32, 33, 64, 199):
        assert prf("sha256", secret, b"label", seed, n) == long[:n]


def test_prf_rejects_unknown_hash() -> None:
    with pytest.raises(ConfigurationError, match="sha256"):
        prf("md5", b"k", b"l", b"s", 12)
    assert hash_length("sha256") == 32
    assert hash_length("sha384") == 48


def test_psk_premaster_secret_rfc4279_layout() -> None:
    pm = psk_premaster_secret(PSK)
    n = len(PSK).to_bytes(2, "big")
    assert pm == n + bytes(len(PSK)) + n + PSK
    assert pm.hex() == "000b0000000000000000000000000b657370333263335f6b6579"
    other = b"\x07" * 32
    assert psk_premaster_secret(PSK, other) == b"\x00\x20" + other + n + PSK


def test_psk_premaster_secret_rejects_bad_keys() -> None:
    with pytest.raises(ConfigurationError):
        psk_premaster_secret(b"")
    with pytest.raises(ConfigurationError):
        psk_premaster_secret(b"x" * 65536)


def test_master_secret_and_key_block_sha256_ccm8() -> None:
    suite = SUITES_BY_CODE[0xC0A8]
    master = master_secret("sha256", psk_premaster_secret(PSK), CLIENT_RANDOM, SERVER_RANDOM)
    assert master.hex() == MASTER_SHA256
    keys = key_block(suite, master, CLIENT_RANDOM, SERVER_RANDOM)
    block = bytes.fromhex(KEY_BLOCK_CCM8)
    assert keys == KeyMaterial(block[0:16], block[16:32], block[32:36], block[36:40])


def test_master_secret_and_key_block_sha384_gcm256() -> None:
    suite = SUITES_BY_CODE[0x00A9]
    master = master_secret("sha384", psk_premaster_secret(PSK), CLIENT_RANDOM, SERVER_RANDOM)
    assert master.hex() == MASTER_SHA384
    keys = key_block(suite, master, CLIENT_RANDOM, SERVER_RANDOM)
    block = bytes.fromhex(KEY_BLOCK_AES256_SHA384)
    assert keys.client_write_key == block[0:32]
    assert keys.server_write_key == block[32:64]
    assert keys.client_write_iv == block[64:68]
    assert keys.server_write_iv == block[68:72]


def test_key_block_chacha_lengths() -> None:
    keys = key_block(SUITES_BY_CODE[0xCCAB], b"m" * 48, CLIENT_RANDOM, SERVER_RANDOM)
    assert [len(x) for x in (keys.client_write_key, keys.server_write_key)] == [32, 32]
    assert [len(x) for x in (keys.client_write_iv, keys.server_write_iv)] == [12, 12]


def test_extended_master_secret_and_verify_data() -> None:
    pm = psk_premaster_secret(PSK)
    assert extended_master_secret("sha256", pm, SESSION_HASH).hex() == EMS_SHA256
    master = bytes.fromhex(MASTER_SHA256)
    assert verify_data("sha256", master, b"client finished", SESSION_HASH).hex() == CLIENT_VERIFY
    assert verify_data("sha256", master, b"server finished", SESSION_HASH).hex() == SERVER_VERIFY
    assert len(verify_data("sha256", master, b"client finished", SESSION_HASH, 16)) == 16
    with pytest.raises(ConfigurationError):
        verify_data("sha256", master, b"finished", SESSION_HASH)


def test_randoms_must_be_32_bytes() -> None:
    with pytest.raises(ConfigurationError):
        master_secret("sha256", b"pm", b"short", SERVER_RANDOM)


def test_key_material_repr_hides_keys() -> None:
    keys = KeyMaterial(b"\xaa" * 16, b"\xbb" * 16, b"\xcc" * 4, b"\xdd" * 4)
    for text in (repr(keys), str(keys), f"{keys}"):
        for secret in ("aa", "bb", "cc", "dd", "\\xaa", "\\xbb"):
            assert secret not in text
        assert "16" in text


def _openssl_prf(digest: str, secret: bytes, label: bytes, seed: bytes, n: int) -> bytes | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    try:
        proc = subprocess.run(
            [
                openssl,
                "kdf",
                "-keylen",
                str(n),
                "-kdfopt",
                f"digest:{digest}",
                "-kdfopt",
                f"hexsecret:{secret.hex()}",
                "-kdfopt",
                f"hexseed:{(label + seed).hex()}",
                "TLS1-PRF",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return bytes.fromhex(proc.stdout.strip().replace(":", ""))


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_cross_check_with_openssl_kdf(hash_name: str) -> None:
    """Rerun OpenSSL's independent TLS1-PRF on a few inputs, when available."""
    cases = [
        (b"\x01" * 48, b"key expansion", SERVER_RANDOM + CLIENT_RANDOM, 72),
        (psk_premaster_secret(PSK), b"master secret", CLIENT_RANDOM + SERVER_RANDOM, 48),
        (b"", b"empty secret", b"seed", 5),
    ]
    for secret, label, seed, n in cases:
        expected = _openssl_prf(hash_name.upper(), secret, label, seed, n)
        assert expected is not None, "openssl kdf TLS1-PRF failed: install openssl 3"
        assert prf(hash_name, secret, label, seed, n) == expected
