"""Tests of the hello extension codecs (dtlsfast.handshake.extensions)."""

from __future__ import annotations

import pytest

from dtlsfast.exceptions import DecodeError, IllegalParameterError, LocalProtocolError
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.constants import AlertDescription, NamedGroup, SignatureScheme


def test_renegotiation_info() -> None:
    assert ext.encode_renegotiation_info() == b"\x00"
    assert ext.decode_renegotiation_info(b"\x00") == b""
    verified = b"c" * 12 + b"s" * 12
    assert ext.decode_renegotiation_info(ext.encode_renegotiation_info(verified)) == verified
    for bad in (b"", b"\x01", b"\x00\x00", b"\x02a"):
        with pytest.raises(DecodeError):
            ext.decode_renegotiation_info(bad)
    with pytest.raises(LocalProtocolError):
        ext.encode_renegotiation_info(b"x" * 256)


def test_extended_master_secret() -> None:
    assert ext.encode_extended_master_secret() == b""
    ext.decode_extended_master_secret(b"")
    with pytest.raises(DecodeError):
        ext.decode_extended_master_secret(b"\x00")


def test_supported_groups() -> None:
    groups = [NamedGroup.x25519, NamedGroup.secp256r1, 0x0100]
    data = ext.encode_supported_groups(groups)
    assert data == bytes.fromhex("0006001d00170100")
    assert ext.decode_supported_groups(data) == groups
    for bad in (b"", b"\x00", b"\x00\x00", b"\x00\x03\x00\x17\x00", b"\x00\x02\x00"):
        with pytest.raises(DecodeError):
            ext.decode_supported_groups(bad)
    with pytest.raises(LocalProtocolError):
        ext.encode_supported_groups([])
    with pytest.raises(LocalProtocolError):
        ext.encode_supported_groups([0x10000])


def test_ec_point_formats() -> None:
    assert ext.encode_ec_point_formats() == b"\x01\x00"
    assert ext.decode_ec_point_formats(b"\x02\x00\x01") == [0, 1]
    for bad in (b"", b"\x00", b"\x02\x00"):
        with pytest.raises(DecodeError):
            ext.decode_ec_point_formats(bad)
    with pytest.raises(LocalProtocolError):
        ext.encode_ec_point_formats([])


def test_signature_algorithms() -> None:
    schemes = [SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.ed25519]
    data = ext.encode_signature_algorithms(schemes)
    assert data == bytes.fromhex("000404030807")
    assert ext.decode_signature_algorithms(data) == schemes
    with pytest.raises(DecodeError):
        ext.decode_signature_algorithms(b"\x00\x01\x04")


def test_record_size_limit() -> None:
    assert ext.encode_record_size_limit(16384) == b"\x40\x00"
    assert ext.decode_record_size_limit(b"\x40\x00") == 16384
    assert ext.decode_record_size_limit(b"\x00\x40") == 64
    assert ext.decode_record_size_limit(b"\x40\x01") == 2**14 + 1
    # RFC 8449 §4: a server MUST NOT reject a larger value; a client may.
    assert ext.decode_record_size_limit(b"\xff\xff") == 0xFFFF
    with pytest.raises(DecodeError):
        ext.decode_record_size_limit(b"\xff\xff", strict_max=True)
    for bad in (b"", b"\x40", b"\x40\x00\x00"):
        with pytest.raises(DecodeError) as info:
            ext.decode_record_size_limit(bad)
        assert info.value.alert == AlertDescription.DECODE_ERROR
    # RFC 8449 §4: below 64 is illegal_parameter.
    for small in (b"\x00\x3f", b"\x00\x00"):
        with pytest.raises(IllegalParameterError) as illegal:
            ext.decode_record_size_limit(small)
        assert illegal.value.alert == AlertDescription.ILLEGAL_PARAMETER
    for value in (63, 2**14 + 2, 0, -1):
        with pytest.raises(LocalProtocolError):
            ext.encode_record_size_limit(value)


def test_server_name() -> None:
    data = ext.encode_server_name("example.com.")
    assert data == b"\x00\x0e\x00\x00\x0bexample.com"
    assert ext.decode_server_name(data) == "example.com"
    assert ext.decode_server_name(ext.encode_server_name("bücher.example")) == (
        "xn--bcher-kva.example"
    )
    # libcoap sends IP literals; accept them.
    assert ext.decode_server_name(ext.encode_server_name("192.0.2.1")) == "192.0.2.1"
    assert ext.is_ip_literal("192.0.2.1") and ext.is_ip_literal("[::1]")
    assert not ext.is_ip_literal("example.com")
    # The server's acknowledgement is empty.
    assert ext.decode_server_name(b"") is None
    # Unknown name types are skipped.
    other = b"\x07\x00\x01z"
    hostname = b"\x00\x00\x01h"
    assert ext.decode_server_name(b"\x00\x04" + other) is None
    assert ext.decode_server_name(b"\x00\x08" + other + hostname) == "h"
    bad_inputs = [
        b"\x00",
        b"\x00\x00",
        b"\x00\x05\x00\x00\x03ab",
        b"\x00\x02\x00\x00",
        b"\x00\x03\x00\x00\x00",
        b"\x00\x08" + hostname + hostname,
        b"\x00\x05\x00\x00\x02\xc3\xa9",
    ]
    for bad in bad_inputs:
        with pytest.raises(DecodeError):
            ext.decode_server_name(bad)
    with pytest.raises(LocalProtocolError):
        ext.encode_server_name("")


def test_connection_id() -> None:
    assert ext.encode_connection_id(b"") == b"\x00"
    assert ext.decode_connection_id(b"\x02ab") == b"ab"
    with pytest.raises(DecodeError):
        ext.decode_connection_id(b"\x03ab")
