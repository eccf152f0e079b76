"""The TLS 1.2 key schedule one step per call (RFC 5246 §5, §6.3, §8.1,
§7.4.9; RFC 7627 §4), Rust and pure twin: published PRF vectors, a
cross-check against Python's hmac, and the two held to identical bytes."""

from __future__ import annotations

import hashlib
import hmac
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import same

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake import prf as py_prf
from dtlsfast.handshake.suites import AEAD_KEY_IV, ALL_SUITES

# The TLS 1.2 PRF vectors posted to the IETF TLS working group list
# (ietf.org/mail-archive/web/tls/current/msg03416.html), carried by BearSSL's
# and other stacks' known-answer tests: label "test label".
P_SHA256 = (
    "9bbe436ba940f017b17652849a71db35",
    "a0ba9f936cda311827a6f796ffd5198c",
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
    "87347b66",
)
P_SHA384 = (
    "b80b733d6ceefcdc71566ea48e5567df",
    "cd665cf6a8447dd6ff8b27555edb7465",
    "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
    "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
    "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
    "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
    "91c8f3a26854308d5eaa3be85e0990703d73e56f",
)

SETTINGS = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(("hash_name", "vector"), [("sha256", P_SHA256), ("sha384", P_SHA384)])
def test_published_prf_vectors(impl: ModuleType, hash_name: str, vector: tuple[str, ...]) -> None:
    secret, seed, expected = (bytes.fromhex(v) for v in vector)
    assert impl.prf(hash_name, secret, b"test label", seed, len(expected)) == expected


def p_hash_by_hand(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """RFC 5246 §5 written out on hmac.new, independent of prf.py."""
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


@SETTINGS
@given(
    st.sampled_from(["sha256", "sha384"]),
    st.binary(max_size=200),
    st.binary(max_size=40),
    st.binary(max_size=100),
    st.integers(0, 300),
)
def test_prf_is_p_hash_of_python_hmac(
    hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int
) -> None:
    expected = p_hash_by_hand(hash_name, secret, label + seed, length)
    assert _core.prf(hash_name, secret, label, seed, length) == expected
    assert pure.prf(hash_name, secret, label, seed, length) == expected


randoms = st.binary(min_size=32, max_size=32)


@SETTINGS
@given(
    st.sampled_from(ALL_SUITES),
    st.binary(min_size=1, max_size=140),
    randoms,
    randoms,
    st.none() | st.binary(min_size=32, max_size=48),
)
def test_derive_keys_agree_for_every_suite(
    suite: object,
    premaster: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
) -> None:
    s = suite  # CipherSuite
    keys = same(
        lambda m: m.derive_keys(
            s.prf_hash, s.aead, premaster, client_random, server_random, session_hash
        )
    )
    master, cwk, swk, civ, siv = keys
    # The same as the step-by-step functions the connection uses today.
    if session_hash is None:
        expected_master = py_prf.master_secret(s.prf_hash, premaster, client_random, server_random)
    else:
        expected_master = py_prf.extended_master_secret(s.prf_hash, premaster, session_hash)
    assert master == expected_master
    material = py_prf.key_block(s, master, client_random, server_random)
    assert (cwk, swk, civ, siv) == (
        material.client_write_key,
        material.server_write_key,
        material.client_write_iv,
        material.server_write_iv,
    )
    assert (len(cwk), len(civ)) == (s.key_length, s.fixed_iv_length)


@SETTINGS
@given(
    st.sampled_from(["sha256", "sha384", "sha1", "SHA256"]),
    st.sampled_from([*AEAD_KEY_IV, "AES_128_CBC", ""]),
    st.binary(max_size=64),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.none() | st.binary(max_size=60),
)
def test_derive_keys_errors_agree(
    hash_name: str,
    aead: str,
    premaster: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
) -> None:
    same(
        lambda m: m.derive_keys(
            hash_name, aead, premaster, client_random, server_random, session_hash
        )
    )


@SETTINGS
@given(
    st.sampled_from(["sha256", "sha384", "md5"]),
    st.binary(min_size=48, max_size=48),
    st.sampled_from([b"client finished", b"server finished", b"finished", b""]),
    st.binary(max_size=48),
    st.integers(-2, 70),
)
def test_verify_data_agree(
    hash_name: str, master: bytes, label: bytes, handshake_hash: bytes, length: int
) -> None:
    out = same(lambda m: m.verify_data(hash_name, master, label, handshake_hash, length))
    if isinstance(out, bytes):
        assert out == py_prf.verify_data(hash_name, master, label, handshake_hash, length)


def test_finished_of_a_real_transcript(impl: ModuleType) -> None:
    transcript_hash = hashlib.sha256(b"handshake messages").digest()
    master = bytes(range(48))
    expected = p_hash_by_hand("sha256", master, b"server finished" + transcript_hash, 12)
    assert impl.verify_data("sha256", master, b"server finished", transcript_hash) == expected


@pytest.mark.parametrize("length", [-1, py_prf.MAX_PRF_OUTPUT + 1, 2**70])
def test_prf_length_is_bounded(impl: ModuleType, length: int) -> None:
    with pytest.raises(ConfigurationError):
        impl.prf("sha256", b"k", b"l", b"s", length)


def test_prf_length_at_the_bound(impl: ModuleType) -> None:
    out = impl.prf("sha384", b"k", b"l", b"s", py_prf.MAX_PRF_OUTPUT)
    assert out == p_hash_by_hand("sha384", b"k", b"ls", py_prf.MAX_PRF_OUTPUT)
