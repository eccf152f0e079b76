"""The key exchange messages of ECDHE_PSK (RFC 5489 §2) and the client's
ECDHE_ECDSA ClientKeyExchange (RFC 8422 §5.7): round trips, strict decoding,
the alert of an explicit curve (illegal_parameter), and encoders that refuse
what the wire cannot carry with LocalProtocolError."""

from __future__ import annotations

import pytest

from dtlsfast.exceptions import DecodeError, IllegalParameterError, LocalProtocolError
from dtlsfast.handshake.constants import AlertDescription, NamedGroup
from dtlsfast.handshake.ecdhe import (
    ClientKeyExchangeEcdhe,
    ClientKeyExchangeEcdhePsk,
    ServerKeyExchangeEcdhePsk,
    decode_server_ecdh_params,
    encode_server_ecdh_params,
)

X25519_POINT = bytes(range(32))


def test_round_trips() -> None:
    ske = ServerKeyExchangeEcdhePsk(b"CoAP", NamedGroup.x25519, X25519_POINT)
    assert ske.encode() == b"\x00\x04CoAP\x03\x00\x1d\x20" + X25519_POINT
    assert ServerKeyExchangeEcdhePsk.decode(ske.encode()) == ske
    cke = ClientKeyExchangeEcdhePsk(b"CoAP", X25519_POINT)
    assert ClientKeyExchangeEcdhePsk.decode(cke.encode()) == cke
    ecdhe = ClientKeyExchangeEcdhe(b"\x04" + bytes(64))
    assert ecdhe.encode() == b"\x41\x04" + bytes(64)
    assert ClientKeyExchangeEcdhe.decode(ecdhe.encode()) == ecdhe


def test_explicit_curve_is_illegal_parameter() -> None:
    # RFC 8422 §5.4: only named_curve (3); explicit_prime (1) is refused.
    with pytest.raises(IllegalParameterError) as info:
        decode_server_ecdh_params(b"\x01\x00\x1d\x01\x00")
    assert info.value.alert == AlertDescription.ILLEGAL_PARAMETER
    # Too short to hold the fixed fields: a plain decode_error.
    with pytest.raises(DecodeError) as short:
        decode_server_ecdh_params(b"\x01\x00\x1d")
    assert type(short.value) is DecodeError


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x02\x00", b"\x03\x01\x02", b"\x01\x00\x00"])
def test_client_key_exchange_ecdhe_malformed(body: bytes) -> None:
    with pytest.raises(DecodeError):
        ClientKeyExchangeEcdhe.decode(body)


@pytest.mark.parametrize(
    "message",
    [
        ServerKeyExchangeEcdhePsk(bytes(0x10000), NamedGroup.x25519, X25519_POINT),
        ServerKeyExchangeEcdhePsk(b"", 0x10000, X25519_POINT),
        ServerKeyExchangeEcdhePsk(b"", NamedGroup.x25519, b""),
        ServerKeyExchangeEcdhePsk(b"", NamedGroup.x25519, bytes(256)),
        ClientKeyExchangeEcdhePsk(bytes(0x10000), X25519_POINT),
        ClientKeyExchangeEcdhePsk(b"CoAP", b""),
        ClientKeyExchangeEcdhePsk(b"CoAP", bytes(256)),
        ClientKeyExchangeEcdhe(b""),
    ],
)
def test_encoders_refuse_what_does_not_fit(
    message: ServerKeyExchangeEcdhePsk | ClientKeyExchangeEcdhePsk | ClientKeyExchangeEcdhe,
) -> None:
    # Before, these raised OverflowError or ValueError, or encoded an empty point.
    with pytest.raises(LocalProtocolError):
        message.encode()


def test_encode_server_ecdh_params_checks_the_group() -> None:
    with pytest.raises(LocalProtocolError):
        encode_server_ecdh_params(-1, X25519_POINT)
