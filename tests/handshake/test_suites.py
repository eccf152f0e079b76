"""Tests of the cipher-suite table and resolve_suites (dtlsfast.handshake.suites)."""

from __future__ import annotations

import pytest

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.suites import (
    ALL_SUITES,
    DEFAULT_PSK_SUITES,
    SUITES_BY_CODE,
    SUITES_BY_NAME,
    CipherSuite,
    resolve_suites,
)

EXPECTED = {
    0xC0A8: ("TLS_PSK_WITH_AES_128_CCM_8", "PSK", "AES_128_CCM_8", 16, 4, "sha256"),
    0xC0A4: ("TLS_PSK_WITH_AES_128_CCM", "PSK", "AES_128_CCM", 16, 4, "sha256"),
    0x00A8: ("TLS_PSK_WITH_AES_128_GCM_SHA256", "PSK", "AES_128_GCM", 16, 4, "sha256"),
    0x00A9: ("TLS_PSK_WITH_AES_256_GCM_SHA384", "PSK", "AES_256_GCM", 32, 4, "sha384"),
    0xCCAB: (
        "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
        "PSK",
        "CHACHA20_POLY1305",
        32,
        12,
        "sha256",
    ),
    0xC0AE: (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
        "ECDHE_ECDSA",
        "AES_128_CCM_8",
        16,
        4,
        "sha256",
    ),
    0xC0AC: ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE_ECDSA", "AES_128_CCM", 16, 4, "sha256"),
    0xC02B: (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE_ECDSA",
        "AES_128_GCM",
        16,
        4,
        "sha256",
    ),
    0xC02C: (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE_ECDSA",
        "AES_256_GCM",
        32,
        4,
        "sha384",
    ),
    0xCCA9: (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE_ECDSA",
        "CHACHA20_POLY1305",
        32,
        12,
        "sha256",
    ),
    0xCCAC: (
        "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE_PSK",
        "CHACHA20_POLY1305",
        32,
        12,
        "sha256",
    ),
    0xD001: (
        "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256",
        "ECDHE_PSK",
        "AES_128_GCM",
        16,
        4,
        "sha256",
    ),
}


def test_table_matches_iana_and_rfcs() -> None:
    assert set(SUITES_BY_CODE) == set(EXPECTED)
    for code, (name, kx, aead, key_len, iv_len, prf_hash) in EXPECTED.items():
        suite = SUITES_BY_CODE[code]
        assert (suite.code, suite.name, suite.key_exchange, suite.aead) == (code, name, kx, aead)
        assert (suite.key_length, suite.fixed_iv_length, suite.prf_hash) == (
            key_len,
            iv_len,
            prf_hash,
        )
        assert suite.verify_data_length == 12
        assert SUITES_BY_NAME[name] is suite
    assert len(ALL_SUITES) == len(EXPECTED)


def test_derived_properties() -> None:
    ccm8 = SUITES_BY_CODE[0xC0A8]
    assert (ccm8.tag_length, ccm8.record_iv_length, ccm8.uses_psk, ccm8.uses_ecdhe) == (
        8,
        8,
        True,
        False,
    )
    chacha = SUITES_BY_CODE[0xCCAC]
    assert (chacha.tag_length, chacha.record_iv_length, chacha.uses_psk, chacha.uses_ecdhe) == (
        16,
        0,
        True,
        True,
    )
    assert "0xC0A8" in str(ccm8)


def test_default_psk_suites_order() -> None:
    assert [s.code for s in DEFAULT_PSK_SUITES] == [0xC0A8, 0xC0A4, 0x00A8, 0x00A9, 0xCCAB]
    assert all(s.key_exchange == "PSK" for s in DEFAULT_PSK_SUITES)


def test_suites_are_frozen_and_hashable() -> None:
    suite = SUITES_BY_CODE[0xC0A8]
    with pytest.raises(AttributeError):
        suite.code = 1  # type: ignore[misc]
    assert {suite: 1}[SUITES_BY_CODE[0xC0A8]] == 1
    assert isinstance(suite, CipherSuite)


def test_resolve_suites() -> None:
    assert resolve_suites(None, DEFAULT_PSK_SUITES) == DEFAULT_PSK_SUITES
    got = resolve_suites(["TLS_PSK_WITH_AES_128_GCM_SHA256", 0xC0A8, "0xccab"], ())
    assert [s.code for s in got] == [0x00A8, 0xC0A8, 0xCCAB]
    assert resolve_suites(["tls_psk_with_aes_128_ccm_8", 0xC0A8], ()) == (SUITES_BY_CODE[0xC0A8],)
    assert resolve_suites("TLS_PSK_WITH_AES_128_CCM", ()) == (SUITES_BY_CODE[0xC0A4],)


@pytest.mark.parametrize("bad", [["NOPE"], [0x1301], [True], [1.5], ["0xZZ"], []])
def test_resolve_suites_rejects(bad: list[object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_suites(bad, DEFAULT_PSK_SUITES)  # type: ignore[arg-type]
    assert "TLS_PSK_WITH_AES_128_CCM_8" in str(info.value)
