"""The client_certificate_type and server_certificate_type extensions of raw
public keys (RFC 7250 §3, §4.1).

In a ClientHello each extension carries a list ``CertificateType
types<1..2^8-1>`` in preference order; in a ServerHello it carries the one
type the server chose. Both extensions have the same format, so one pair of
codecs serves both; the extension type says which certificate it is about.
Decoders raise :class:`~dtlsfast.exceptions.DecodeError` and nothing else;
encoders raise :class:`~dtlsfast.exceptions.LocalProtocolError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from dtlsfast.exceptions import DecodeError, LocalProtocolError


class CertificateType(IntEnum):
    """TLS Certificate Types (IANA; RFC 7250 §3). Lower-case aliases exist."""

    X509 = 0
    RAW_PUBLIC_KEY = 2

    x509 = 0
    raw_public_key = 2


def encode_certificate_types(types: Sequence[int]) -> bytes:
    """The ClientHello form: ``CertificateType types<1..2^8-1>``."""
    if not types:
        raise LocalProtocolError("a certificate type list needs at least one type")
    if len(types) > 255 or any(isinstance(t, bool) or not 0 <= t <= 0xFF for t in types):
        raise LocalProtocolError(f"certificate types must be up to 255 byte values: {types!r}")
    return bytes([len(types), *types])


def decode_certificate_types(data: bytes) -> list[int]:
    """The types a client offered, in its order; unknown values included."""
    if not data or data[0] == 0 or data[0] != len(data) - 1:
        raise DecodeError("certificate type list is empty or its length does not match")
    return list(data[1:])


def encode_certificate_type(chosen: int) -> bytes:
    """The ServerHello form: the one chosen ``CertificateType``."""
    if isinstance(chosen, bool) or not 0 <= chosen <= 0xFF:
        raise LocalProtocolError(f"certificate type {chosen!r} is not a byte value")
    return bytes([chosen])


def decode_certificate_type(data: bytes) -> int:
    """The type a server chose (exactly one byte)."""
    if len(data) != 1:
        raise DecodeError(f"a chosen certificate type is 1 byte, not {len(data)}")
    return data[0]


def choose_certificate_type(offered: Sequence[int] | None, supported: Sequence[int]) -> int | None:
    """The first of ``supported`` (our preference order) that the peer
    ``offered``. Without the extension only X.509 is possible (RFC 7250 §4.1).
    None if there is no common type: the server then sends
    unsupported_certificate (RFC 7250 §4.2)."""
    peer = set(offered) if offered is not None else {CertificateType.X509}
    for candidate in supported:
        if candidate in peer:
            return candidate
    return None


__all__ = [
    "CertificateType",
    "choose_certificate_type",
    "decode_certificate_type",
    "decode_certificate_types",
    "encode_certificate_type",
    "encode_certificate_types",
]
