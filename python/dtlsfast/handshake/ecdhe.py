"""Ephemeral elliptic-curve Diffie-Hellman for the TLS 1.2 handshake.

RFC 8422 §5.4 (ServerECDHParams: curve_type named_curve, NamedCurve, ECPoint;
any other curve_type is illegal_parameter, as OpenSSL answers it),
§5.7 (ClientECDiffieHellmanPublic), §5.10 (the premaster is the x-coordinate,
or the X25519 output); RFC 5489 §2 (ECDHE_PSK key exchange messages and its
premaster secret). Groups: x25519 and secp256r1 (uncompressed points only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dtlsfast.exceptions import (
    ConfigurationError,
    DecodeError,
    IllegalParameterError,
    RemoteProtocolError,
)
from dtlsfast.handshake.constants import NamedGroup
from dtlsfast.handshake.messages import _Reader, _u16, _vector

#: ECParameters.curve_type named_curve (RFC 8422 §5.4).
NAMED_CURVE = 3
#: Our preference, strongest-and-fastest first.
SUPPORTED_GROUPS: tuple[int, ...] = (NamedGroup.x25519, NamedGroup.secp256r1)


class KeyShare:
    """One ephemeral key pair on a named group."""

    def __init__(self, group: int) -> None:
        self.group = group
        if group == NamedGroup.x25519:
            self._x25519 = x25519.X25519PrivateKey.generate()
            self.public = self._x25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif group == NamedGroup.secp256r1:
            self._p256 = ec.generate_private_key(ec.SECP256R1())
            self.public = self._p256.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
        else:
            raise ConfigurationError(f"unsupported ECDHE group {group}")

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's public value (RFC 8422 §5.10).

        Raises RemoteProtocolError for a point that is not on the curve or an
        all-zero X25519 result (RFC 7748 §6.1).
        """
        try:
            if self.group == NamedGroup.x25519:
                if len(peer_public) != 32:
                    raise ValueError("X25519 public keys are 32 bytes")
                peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
                return self._x25519.exchange(peer)
            if not peer_public or peer_public[0] != 4:
                raise ValueError("only uncompressed points are supported")
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public)
            return self._p256.exchange(ec.ECDH(), point)
        except ValueError as exc:
            raise RemoteProtocolError(f"bad ECDHE public value: {exc}") from None


def choose_group(
    client_groups: Sequence[int] | None, ours: Sequence[int] = SUPPORTED_GROUPS
) -> int | None:
    """The group a server picks: ours in preference order among the client's.

    A client that sends no supported_groups extension supports secp256r1
    (RFC 8422 §4: the server may assume so; in practice every stack does).
    """
    offered = set(client_groups) if client_groups is not None else {NamedGroup.secp256r1}
    for group in ours:
        if group in offered:
            return group
    return None


def encode_server_ecdh_params(group: int, public: bytes) -> bytes:
    """ServerECDHParams: curve_type(1)=3, NamedCurve(2), ECPoint<1..255>.
    LocalProtocolError for a group or point that does not fit."""
    return bytes([NAMED_CURVE]) + _u16(group, "group") + _vector(public, 1, "ECPoint", 1)


def decode_server_ecdh_params(data: bytes) -> tuple[int, bytes, int]:
    """Parse ServerECDHParams at the start of ``data``.

    Returns ``(group, public, consumed)``; DecodeError if truncated,
    IllegalParameterError if the four fixed bytes are there but the curve
    type is not named_curve.
    """
    if len(data) < 4:
        raise DecodeError("ServerECDHParams is truncated")
    if data[0] != NAMED_CURVE:
        raise IllegalParameterError(f"ECParameters curve_type {data[0]} is not named_curve")
    group = int.from_bytes(data[1:3], "big")
    length = data[3]
    if length == 0 or len(data) < 4 + length:
        raise DecodeError("ServerECDHParams public value is empty or truncated")
    return group, bytes(data[4 : 4 + length]), 4 + length


@dataclass
class ServerKeyExchangeEcdhePsk:
    """RFC 5489 §2: psk_identity_hint<0..2^16-1> then ServerECDHParams."""

    identity_hint: bytes
    group: int
    public: bytes

    def encode(self) -> bytes:
        hint = _vector(self.identity_hint, 2, "psk_identity_hint")
        return hint + encode_server_ecdh_params(self.group, self.public)

    @classmethod
    def decode(cls, body: bytes) -> ServerKeyExchangeEcdhePsk:
        if len(body) < 2:
            raise DecodeError("ServerKeyExchange is truncated")
        hint_length = int.from_bytes(body[:2], "big")
        if len(body) < 2 + hint_length:
            raise DecodeError("ServerKeyExchange identity hint is truncated")
        group, public, used = decode_server_ecdh_params(body[2 + hint_length :])
        if 2 + hint_length + used != len(body):
            raise DecodeError("trailing bytes after ServerECDHParams")
        return cls(bytes(body[2 : 2 + hint_length]), group, public)


@dataclass
class ClientKeyExchangeEcdhePsk:
    """RFC 5489 §2: psk_identity<0..2^16-1> then ECPoint<1..255>."""

    identity: bytes
    public: bytes

    def encode(self) -> bytes:
        return _vector(self.identity, 2, "psk_identity") + _vector(self.public, 1, "ECPoint", 1)

    @classmethod
    def decode(cls, body: bytes) -> ClientKeyExchangeEcdhePsk:
        if len(body) < 2:
            raise DecodeError("ClientKeyExchange is truncated")
        identity_length = int.from_bytes(body[:2], "big")
        rest = body[2 + identity_length :]
        if len(body) < 2 + identity_length or not rest:
            raise DecodeError("ClientKeyExchange identity is truncated")
        if rest[0] == 0 or len(rest) != 1 + rest[0]:
            raise DecodeError("ClientKeyExchange ECPoint length does not match")
        return cls(bytes(body[2 : 2 + identity_length]), bytes(rest[1:]))


@dataclass
class ClientKeyExchangeEcdhe:
    """ClientKeyExchange of ECDHE_ECDSA: ClientECDiffieHellmanPublic, one
    ``ECPoint<1..2^8-1>`` (RFC 8422 §5.7; always explicit here, as the
    client has no certificate-bound fixed key)."""

    public: bytes

    def encode(self) -> bytes:
        return _vector(self.public, 1, "ECPoint", 1)

    @classmethod
    def decode(cls, body: bytes) -> ClientKeyExchangeEcdhe:
        r = _Reader(body, "ClientKeyExchange")
        public = r.vector(1, "ECPoint", 1)
        r.done()
        return cls(public)
