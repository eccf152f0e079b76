"""The TLS 1.2 key schedule one step per call (RFC 4279 §2, RFC 8422 §5.10;
RFC 5246 §6.3, §8.1; RFC 7627 §4), Rust and pure twin: ``derive_keys`` (from
the PSK and the ECDH secret) and ``key_block`` (from a master secret) hand
back the record ciphers of one side. Known answers computed with OpenSSL, the two
held to identical keys and errors, and checked against the step-by-step
functions of :mod:`dtlsfast.handshake.prf`."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import outcome

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake import prf as py_prf
from dtlsfast.handshake.suites import AEAD_KEY_IV, ALL_SUITES, CipherSuite

# Computed independently with OpenSSL 3's `openssl kdf TLS1-PRF`, as in
# tests/handshake/test_prf.py: the PSK b"esp32c3_key" (plain PSK premaster),
# client random 0..31, server random 32..63.
PSK = b"esp32c3_key"
CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(32, 64))
MASTER_SHA256 = (
    "1b68b4bf11e0ca4f3b23fcb0bac75b29dc6a62d79ad8d06dbcb760503081264d"
    "4d23eca448197b8e588d063082d01c29"
)
KEY_BLOCK_CCM8 = "d57790e6f4f032bc23f9d7cb8821f2fb798ab094f3f8f79aa66ddcf4a16d3d520b1b2074b5a3d01a"
EMS_SHA256 = (
    "1ab04d336703a94e14e9ca977889261335a7a5a2def5ba17e3940075d1c03191"
    "3af982468a01bfc4851fc9c452815263"
)

SETTINGS = settings(max_examples=200, deadline=None)


def keys_of(result: Any) -> Any:
    """A derive_keys / key_block result with each cipher as its AEAD and
    ``(key, iv)``, so the two backends' results compare."""
    if not isinstance(result, tuple):
        return result
    return tuple(
        item if isinstance(item, bytes) else (item.aead, item.key_material()) for item in result
    )


def same_keys(call: Callable[[ModuleType], Any]) -> Any:
    rust = outcome(lambda: keys_of(call(_core)))
    python = outcome(lambda: keys_of(call(pure)))
    assert rust == python
    return rust[1]


@pytest.mark.parametrize("client", [True, False])
def test_openssl_vectors_each_side_its_ciphers(impl: ModuleType, client: bool) -> None:
    master, read, write = impl.derive_keys(
        "sha256", "AES_128_CCM_8", PSK, None, CLIENT_RANDOM, SERVER_RANDOM, None, client
    )
    assert master.hex() == MASTER_SHA256
    block = bytes.fromhex(KEY_BLOCK_CCM8)
    client_keys = (block[0:16], block[32:36])
    server_keys = (block[16:32], block[36:40])
    mine, theirs = (client_keys, server_keys) if client else (server_keys, client_keys)
    assert write.key_material() == mine and read.key_material() == theirs
    assert read.aead == write.aead == "AES_128_CCM_8"
    # A resumed session's keys: the same key block from the master secret.
    again = impl.key_block("sha256", "AES_128_CCM_8", master, CLIENT_RANDOM, SERVER_RANDOM, client)
    assert keys_of(again) == keys_of((read, write))
    session_hash = hashlib.sha256(b"transcript").digest()
    ems, _, _ = impl.derive_keys(
        "sha256", "AES_128_CCM_8", PSK, None, CLIENT_RANDOM, SERVER_RANDOM, session_hash, client
    )
    assert ems.hex() == EMS_SHA256


def test_what_one_side_seals_the_other_opens() -> None:
    """The client's write cipher is the server's read cipher, across the
    two backends."""
    args = ("sha384", "AES_256_GCM", None, b"ecdh secret", CLIENT_RANDOM, SERVER_RANDOM, None)
    _, client_read, client_write = _core.derive_keys(*args, True)
    _, server_read, server_write = pure.derive_keys(*args, False)
    record = client_write.seal(23, 0xFEFD, 1, 5, b"ping")
    assert server_read.open_parts(23, 0xFEFD, 1, 5, record[13:]) == b"ping"
    record = server_write.seal(23, 0xFEFD, 1, 6, b"pong")
    assert client_read.open_parts(23, 0xFEFD, 1, 6, record[13:]) == b"pong"


randoms = st.binary(min_size=32, max_size=32)


@SETTINGS
@given(
    st.sampled_from(ALL_SUITES),
    st.none() | st.binary(min_size=1, max_size=70),
    st.binary(min_size=0, max_size=70),
    st.booleans(),
    randoms,
    randoms,
    st.none() | st.binary(min_size=32, max_size=48),
    st.booleans(),
)
def test_derive_keys_agree_for_every_suite(
    suite: CipherSuite,
    psk: bytes | None,
    ecdh_secret: bytes,
    plain_psk: bool,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
    client: bool,
) -> None:
    s = suite
    # PSK (no other secret), ECDHE_PSK (both), ECDHE_ECDSA (no PSK).
    other = None if plain_psk and psk is not None else ecdh_secret
    master, (_, read), (_, write) = same_keys(
        lambda m: m.derive_keys(
            s.prf_hash, s.aead, psk, other, client_random, server_random, session_hash, client
        )
    )
    # The same as the step-by-step functions of the key schedule.
    premaster = other if psk is None else py_prf.psk_premaster_secret(psk, other)
    assert premaster is not None
    if session_hash is None:
        expected_master = py_prf.master_secret(s.prf_hash, premaster, client_random, server_random)
    else:
        expected_master = py_prf.extended_master_secret(s.prf_hash, premaster, session_hash)
    assert master == expected_master
    material = py_prf.key_block(s, master, client_random, server_random)
    client_keys = (material.client_write_key, material.client_write_iv)
    server_keys = (material.server_write_key, material.server_write_iv)
    assert (write, read) == ((client_keys, server_keys) if client else (server_keys, client_keys))
    resumed = same_keys(
        lambda m: m.key_block(s.prf_hash, s.aead, master, client_random, server_random, client)
    )
    assert resumed == ((s.aead, read), (s.aead, write))


@SETTINGS
@given(
    st.sampled_from(["sha256", "sha384", "sha1", "SHA256"]),
    st.sampled_from([*AEAD_KEY_IV, "AES_128_CBC", ""]),
    st.none() | st.binary(max_size=4) | st.sampled_from([bytes(65535), bytes(65536)]),
    st.none() | st.binary(max_size=40) | st.just(bytes(65536)),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.none() | st.binary(max_size=60),
    st.booleans(),
)
def test_derive_keys_errors_agree(
    hash_name: str,
    aead: str,
    psk: bytes | None,
    other: bytes | None,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
    client: bool,
) -> None:
    out = same_keys(
        lambda m: m.derive_keys(
            hash_name, aead, psk, other, client_random, server_random, session_hash, client
        )
    )
    if (psk is None and other is None) or psk == b"":
        assert out is ConfigurationError


@SETTINGS
@given(
    st.sampled_from(["sha256", "sha384", "md5"]),
    st.sampled_from([*AEAD_KEY_IV, "NULL"]),
    st.binary(min_size=46, max_size=50),
    st.binary(min_size=31, max_size=33),
    st.binary(min_size=31, max_size=33),
    st.sampled_from([True, False, True, False, 1, None]),
)
def test_key_block_errors_agree(
    hash_name: str,
    aead: str,
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    client: object,
) -> None:
    out = same_keys(
        lambda m: m.key_block(hash_name, aead, master, client_random, server_random, client)
    )
    if client.__class__ is not bool:
        assert out is TypeError
    elif len(master) != 48:
        assert out is ConfigurationError


@pytest.mark.parametrize("name", ["derive_keys", "key_block"])
def test_the_twins_have_one_api(name: str) -> None:
    ours = inspect.signature(getattr(_core, name)).parameters
    theirs = inspect.signature(getattr(pure, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]
