"""The DTLS record header codec (RFC 6347 §4.1)."""

from __future__ import annotations

from types import ModuleType

import pytest

from dtlsfast.exceptions import ConfigurationError


def test_constants(impl: ModuleType) -> None:
    assert impl.MAX_SEQUENCE_NUMBER == 2**48 - 1
    assert impl.RECORD_HEADER_LENGTH == 13
    assert impl.HANDSHAKE_HEADER_LENGTH == 12
    assert set(impl.AEAD_NAMES) == {
        "AES_128_CCM_8",
        "AES_128_CCM",
        "AES_128_GCM",
        "AES_256_GCM",
        "CHACHA20_POLY1305",
    }


def test_encode_layout(impl: ModuleType) -> None:
    record = impl.encode_record(23, 0xFEFD, 1, 0x0102030405, b"abc")
    assert record == bytes.fromhex("17 fefd 0001 000102030405 0003") + b"abc"


def test_parse_several_records(impl: ModuleType) -> None:
    a = impl.encode_record(22, 0xFEFF, 0, 0, b"hello")
    b = impl.encode_record(20, 0xFEFD, 0, 1, b"\x01")
    c = impl.encode_record(23, 0xFEFD, 1, 2**48 - 1, b"")
    assert impl.parse_records(a + b + c) == [
        (22, 0xFEFF, 0, 0, b"hello"),
        (20, 0xFEFD, 0, 1, b"\x01"),
        (23, 0xFEFD, 1, 2**48 - 1, b""),
    ]


def test_parse_returns_well_formed_prefix(impl: ModuleType) -> None:
    good = impl.encode_record(22, 0xFEFD, 0, 7, b"data")
    # A second record whose length runs past the end of the datagram.
    truncated = impl.encode_record(22, 0xFEFD, 0, 8, b"more data")[:-1]
    assert impl.parse_records(good + truncated) == [(22, 0xFEFD, 0, 7, b"data")]
    for cut in range(len(good)):
        assert impl.parse_records(good[:cut]) == []
    assert impl.parse_records(b"") == []
    assert impl.parse_records(good + b"\x00" * 12) == [(22, 0xFEFD, 0, 7, b"data")]


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ((256, 0xFEFD, 0, 0), "content_type"),
        ((22, 0x10000, 0, 0), "version"),
        ((22, 0xFEFD, 0x10000, 0), "epoch"),
        ((22, 0xFEFD, 0, 2**48), "sequence_number"),
        ((-1, 0xFEFD, 0, 0), "content_type"),
        ((22, 0xFEFD, 0, -5), "sequence_number"),
    ],
)
def test_encode_rejects_out_of_range(impl: ModuleType, fields: tuple[int, ...], what: str) -> None:
    with pytest.raises(ConfigurationError, match=what):
        impl.encode_record(*fields, b"")
    with pytest.raises(ValueError):  # ConfigurationError is a ValueError too
        impl.encode_record(*fields, b"")


def test_encode_rejects_oversized_fragment(impl: ModuleType) -> None:
    impl.encode_record(23, 0xFEFD, 1, 0, bytes(0xFFFF))
    with pytest.raises(ConfigurationError):
        impl.encode_record(23, 0xFEFD, 1, 0, bytes(0x10000))
