"""Codecs of the DTLS 1.2 handshake messages a PSK handshake uses, of the
12-byte DTLS handshake header and its fragments, and of alerts.

Each message class encodes and decodes the message *body*; the header is
added by :func:`encode_handshake` / :func:`fragment_handshake` and read by
:func:`parse_handshake_header` / :func:`split_handshake_fragments`. Decoding
is strict: anything truncated, trailing or out of range raises
:class:`~dtlsfast.exceptions.DecodeError` (the ``decode_error`` alert) and
nothing else. Encoding a value that cannot be represented raises
:class:`~dtlsfast.exceptions.LocalProtocolError`.

References: RFC 6347 §4.2.2 (handshake header, fragments), §4.2.1 and §4.3.2
(ClientHello with cookie, HelloVerifyRequest); RFC 5246 §7.4.1 (hellos,
extensions, §7.4.1.4 no duplicate extension types: illegal_parameter, as
OpenSSL answers and RFC 8446 §4.2 spells out), §7.4.5 (ServerHelloDone),
§7.4.9 (Finished), §7.2 (alerts), §7.1 (ChangeCipherSpec); RFC 4279 §2
(ServerKeyExchange and ClientKeyExchange of PSK).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Self

from dtlsfast.exceptions import DecodeError, IllegalParameterError, LocalProtocolError
from dtlsfast.handshake.constants import AlertDescription, AlertLevel

#: Bytes of the DTLS handshake header (RFC 6347 §4.2.2).
HANDSHAKE_HEADER = 12
#: The body of a ChangeCipherSpec record (RFC 5246 §7.1).
CHANGE_CIPHER_SPEC = b"\x01"
#: Largest handshake message length the 24-bit length field can carry.
MAX_HANDSHAKE_LENGTH = (1 << 24) - 1

RANDOM_LENGTH = 32
MAX_SESSION_ID = 32
MAX_COOKIE = 255


# --------------------------------------------------------------- reading


class _Reader:
    """Bounds-checked reader over a message body; every failure is DecodeError."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, field_name: str) -> bytes:
        if n > self.remaining():
            raise DecodeError(
                f"{self._what}: truncated {field_name} (need {n} bytes, {self.remaining()} left)"
            )
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint(self, size: int, field_name: str) -> int:
        return int.from_bytes(self.take(size, field_name), "big")

    def vector(
        self, length_size: int, field_name: str, minimum: int = 0, maximum: int | None = None
    ) -> bytes:
        n = self.uint(length_size, f"{field_name} length")
        if n < minimum or (maximum is not None and n > maximum):
            bound = "" if maximum is None else f"..{maximum}"
            raise DecodeError(f"{self._what}: {field_name} length {n} outside {minimum}{bound}")
        return self.take(n, field_name)

    def done(self) -> None:
        if self.remaining():
            raise DecodeError(f"{self._what}: {self.remaining()} trailing bytes")


def _u8(value: int, name: str) -> bytes:
    return _uint(value, 1, name)


def _u16(value: int, name: str) -> bytes:
    return _uint(value, 2, name)


def _uint(value: int, size: int, name: str) -> bytes:
    if isinstance(value, bool) or not 0 <= value < (1 << (8 * size)):
        raise LocalProtocolError(f"{name} {value!r} does not fit in {size} byte(s)")
    return int(value).to_bytes(size, "big")


def _vector(data: bytes, length_size: int, name: str, minimum: int = 0, maximum: int = -1) -> bytes:
    if maximum < 0:
        maximum = (1 << (8 * length_size)) - 1
    if not minimum <= len(data) <= maximum:
        raise LocalProtocolError(f"{name} is {len(data)} bytes; it must be {minimum}..{maximum}")
    return len(data).to_bytes(length_size, "big") + bytes(data)


# ------------------------------------------------------------ extensions


Extension = tuple[int, bytes]


def encode_extensions(extensions: Sequence[Extension]) -> bytes:
    """The extensions block, with its 2-byte length (RFC 5246 §7.4.1.4)."""
    body = b"".join(
        _u16(ext_type, "extension type") + _vector(data, 2, f"extension {ext_type} data")
        for ext_type, data in extensions
    )
    return _vector(body, 2, "extensions block")


def _decode_extensions(reader: _Reader, what: str) -> list[Extension]:
    """Read an optional extensions block that ends the message."""
    if reader.remaining() == 0:
        return []
    block = _Reader(reader.vector(2, "extensions block"), what)
    reader.done()
    extensions: list[Extension] = []
    seen: set[int] = set()
    while block.remaining():
        ext_type = block.uint(2, "extension type")
        data = block.vector(2, f"extension {ext_type} data")
        if ext_type in seen:
            raise IllegalParameterError(f"{what}: extension type {ext_type} appears twice")
        seen.add(ext_type)
        extensions.append((ext_type, data))
    return extensions


def find_extension(extensions: Iterable[Extension], ext_type: int) -> bytes | None:
    """The data of the first extension of ``ext_type``, or None if absent."""
    for candidate, data in extensions:
        if candidate == ext_type:
            return data
    return None


def _check_random(random: bytes) -> None:
    if len(random) != RANDOM_LENGTH:
        raise LocalProtocolError(f"random must be {RANDOM_LENGTH} bytes, not {len(random)}")


# -------------------------------------------------------------- messages


@dataclass
class ClientHello:
    """ClientHello with the DTLS cookie field (RFC 6347 §4.2.1, RFC 5246 §7.4.1.2)."""

    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: list[int]
    compression_methods: bytes = b"\x00"
    extensions: list[Extension] = field(default_factory=list)

    def encode(self) -> bytes:
        _check_random(self.random)
        if not self.cipher_suites:
            raise LocalProtocolError("a ClientHello needs at least one cipher suite")
        suites = b"".join(_u16(code, "cipher suite") for code in self.cipher_suites)
        out = (
            _u16(self.client_version, "client_version")
            + self.random
            + _vector(self.session_id, 1, "session_id", 0, MAX_SESSION_ID)
            + _vector(self.cookie, 1, "cookie", 0, MAX_COOKIE)
            + _vector(suites, 2, "cipher_suites", 2, 0xFFFE)
            + _vector(self.compression_methods, 1, "compression_methods", 1)
        )
        if self.extensions:
            out += encode_extensions(self.extensions)
        return out

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "ClientHello")
        version = r.uint(2, "client_version")
        random = r.take(RANDOM_LENGTH, "random")
        session_id = r.vector(1, "session_id", 0, MAX_SESSION_ID)
        cookie = r.vector(1, "cookie", 0, MAX_COOKIE)
        suites = r.vector(2, "cipher_suites", 2, 0xFFFE)
        if len(suites) % 2:
            raise DecodeError(f"ClientHello: cipher_suites length {len(suites)} is odd")
        compression = r.vector(1, "compression_methods", 1)
        extensions = _decode_extensions(r, "ClientHello")
        return cls(
            client_version=version,
            random=random,
            session_id=session_id,
            cookie=cookie,
            cipher_suites=[
                int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2)
            ],
            compression_methods=compression,
            extensions=extensions,
        )

    def cookie_input(self) -> bytes:
        """The fields a cookie binds, canonically encoded: version, random,
        cipher_suites and compression_methods (RFC 6347 §4.2.1).

        Extensions, session_id and the cookie itself are left out: RFC 6347
        §4.2.1 requires the second ClientHello to repeat the fields bound, while
        the cookie changes, some clients adjust extensions between the two
        hellos, and some draw a new session_id for the second one (mbedTLS 2.28
        offering a session ticket does): binding it would refuse their cookie
        forever. Each field is length-prefixed so no two different hellos give
        the same bytes."""
        return (
            (self.client_version & 0xFFFF).to_bytes(2, "big")
            + len(self.random).to_bytes(2, "big")
            + bytes(self.random)
            + len(self.cipher_suites).to_bytes(4, "big")
            + b"".join((code & 0xFFFF).to_bytes(2, "big") for code in self.cipher_suites)
            + len(self.compression_methods).to_bytes(2, "big")
            + bytes(self.compression_methods)
        )


@dataclass
class HelloVerifyRequest:
    """HelloVerifyRequest (RFC 6347 §4.2.1): the server's stateless cookie."""

    server_version: int
    cookie: bytes

    def encode(self) -> bytes:
        return _u16(self.server_version, "server_version") + _vector(
            self.cookie, 1, "cookie", 0, MAX_COOKIE
        )

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "HelloVerifyRequest")
        version = r.uint(2, "server_version")
        cookie = r.vector(1, "cookie", 0, MAX_COOKIE)
        r.done()
        return cls(server_version=version, cookie=cookie)


@dataclass
class ServerHello:
    """ServerHello (RFC 5246 §7.4.1.3)."""

    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    extensions: list[Extension] = field(default_factory=list)

    def encode(self) -> bytes:
        _check_random(self.random)
        out = (
            _u16(self.server_version, "server_version")
            + self.random
            + _vector(self.session_id, 1, "session_id", 0, MAX_SESSION_ID)
            + _u16(self.cipher_suite, "cipher_suite")
            + _u8(self.compression_method, "compression_method")
        )
        if self.extensions:
            out += encode_extensions(self.extensions)
        return out

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "ServerHello")
        version = r.uint(2, "server_version")
        random = r.take(RANDOM_LENGTH, "random")
        session_id = r.vector(1, "session_id", 0, MAX_SESSION_ID)
        suite = r.uint(2, "cipher_suite")
        compression = r.uint(1, "compression_method")
        extensions = _decode_extensions(r, "ServerHello")
        return cls(
            server_version=version,
            random=random,
            session_id=session_id,
            cipher_suite=suite,
            compression_method=compression,
            extensions=extensions,
        )


@dataclass
class ServerKeyExchangePsk:
    """ServerKeyExchange of plain PSK: the identity hint (RFC 4279 §2)."""

    identity_hint: bytes

    def encode(self) -> bytes:
        return _vector(self.identity_hint, 2, "psk_identity_hint")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "ServerKeyExchange")
        hint = r.vector(2, "psk_identity_hint")
        r.done()
        return cls(identity_hint=hint)


@dataclass
class ClientKeyExchangePsk:
    """ClientKeyExchange of plain PSK: the identity (RFC 4279 §2)."""

    identity: bytes

    def encode(self) -> bytes:
        return _vector(self.identity, 2, "psk_identity")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "ClientKeyExchange")
        identity = r.vector(2, "psk_identity")
        r.done()
        return cls(identity=identity)


@dataclass
class _EmptyMessage:
    """A message whose body is empty; any byte in it is a decode error."""

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, body: bytes) -> Self:
        if body:
            raise DecodeError(f"{cls.__name__}: body must be empty, got {len(body)} bytes")
        return cls()


@dataclass
class ServerHelloDone(_EmptyMessage):
    """ServerHelloDone (RFC 5246 §7.4.5): an empty body."""


@dataclass
class HelloRequest(_EmptyMessage):
    """HelloRequest (RFC 5246 §7.4.1.1): an empty body."""


@dataclass
class Finished:
    """Finished (RFC 5246 §7.4.9). The body is verify_data and nothing else;
    its expected length depends on the suite, so the caller compares it."""

    verify_data: bytes

    def encode(self) -> bytes:
        if not self.verify_data:
            raise LocalProtocolError("Finished.verify_data must not be empty")
        return bytes(self.verify_data)

    @classmethod
    def decode(cls, body: bytes) -> Self:
        if not body:
            raise DecodeError("Finished: empty verify_data")
        return cls(verify_data=bytes(body))


# ------------------------------------------------------ handshake header


class HandshakeHeader(NamedTuple):
    """The 12-byte DTLS handshake header (RFC 6347 §4.2.2)."""

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int


def encode_handshake_header(header: HandshakeHeader) -> bytes:
    """The 12 header bytes of ``header``."""
    return (
        _u8(header.msg_type, "msg_type")
        + _uint(header.length, 3, "length")
        + _u16(header.message_seq, "message_seq")
        + _uint(header.fragment_offset, 3, "fragment_offset")
        + _uint(header.fragment_length, 3, "fragment_length")
    )


def encode_handshake(msg_type: int, message_seq: int, body: bytes) -> bytes:
    """A whole, unfragmented handshake message: header (offset 0, fragment
    length = length) followed by ``body``."""
    n = len(body)
    return encode_handshake_header(HandshakeHeader(msg_type, n, message_seq, 0, n)) + bytes(body)


def parse_handshake_header(data: bytes) -> HandshakeHeader:
    """Read the header at the start of ``data``.

    DecodeError if fewer than 12 bytes, or if the fragment reaches past the
    message (fragment_offset + fragment_length > length). The body bytes are
    not checked here; :func:`split_handshake_fragments` does that.
    """
    if len(data) < HANDSHAKE_HEADER:
        raise DecodeError(f"handshake header truncated: {len(data)} of {HANDSHAKE_HEADER} bytes")
    header = HandshakeHeader(
        msg_type=data[0],
        length=int.from_bytes(data[1:4], "big"),
        message_seq=int.from_bytes(data[4:6], "big"),
        fragment_offset=int.from_bytes(data[6:9], "big"),
        fragment_length=int.from_bytes(data[9:12], "big"),
    )
    if header.fragment_offset + header.fragment_length > header.length:
        raise DecodeError(
            f"handshake fragment {header.fragment_offset}+{header.fragment_length} "
            f"reaches past the message length {header.length}"
        )
    return header


def split_handshake_fragments(record_payload: bytes) -> list[bytes]:
    """Split a handshake record's payload into its fragments (header + fragment
    body each); a record may carry several back to back (RFC 6347 §4.2.3).

    DecodeError on an empty payload or a truncated fragment.
    """
    data = bytes(record_payload)
    if not data:
        raise DecodeError("empty handshake record")
    pieces: list[bytes] = []
    pos = 0
    while pos < len(data):
        header = parse_handshake_header(data[pos : pos + HANDSHAKE_HEADER])
        end = pos + HANDSHAKE_HEADER + header.fragment_length
        if end > len(data):
            raise DecodeError(
                f"handshake fragment truncated: {header.fragment_length} body bytes announced, "
                f"{len(data) - pos - HANDSHAKE_HEADER} present"
            )
        pieces.append(data[pos:end])
        pos = end
    return pieces


def fragment_handshake(message: bytes, max_fragment_body: int) -> list[bytes]:
    """Split a whole message (as :func:`encode_handshake` makes it) into
    fragments of at most ``max_fragment_body`` body bytes, each with its own
    header carrying the message's type, length and sequence number and its own
    offset and length (RFC 6347 §4.2.3). An empty body gives one fragment."""
    if max_fragment_body < 1:
        raise LocalProtocolError(f"max_fragment_body must be at least 1, not {max_fragment_body}")
    try:
        header = parse_handshake_header(message)
    except DecodeError as exc:
        raise LocalProtocolError(f"not a handshake message: {exc}") from None
    body = bytes(message[HANDSHAKE_HEADER:])
    if header.fragment_offset != 0 or header.fragment_length != header.length:
        raise LocalProtocolError("fragment_handshake needs a whole, unfragmented message")
    if header.length != len(body):
        raise LocalProtocolError(
            f"handshake message announces {header.length} bytes but carries {len(body)}"
        )
    fragments: list[bytes] = []
    offset = 0
    while True:
        piece = body[offset : offset + max_fragment_body]
        fragment_header = HandshakeHeader(
            header.msg_type, header.length, header.message_seq, offset, len(piece)
        )
        fragments.append(encode_handshake_header(fragment_header) + piece)
        offset += len(piece)
        if offset >= len(body):
            return fragments


# ----------------------------------------------------------------- alerts


def encode_alert(level: int, description: int) -> bytes:
    """An alert record payload (RFC 5246 §7.2): level byte, description byte."""
    if (
        level in (1, 2)
        and level.__class__ is not bool
        and isinstance(description, int)
        and description.__class__ is not bool
        and 0 <= description <= 0xFF
    ):
        return bytes((level, description))  # every alert the connections send
    return _u8(level, "alert level") + _u8(description, "alert description")


#: close_notify's payload (RFC 5246 §7.2.1), encoded once: the last alert of
#: almost every session, both ways.
CLOSE_NOTIFY_ALERT = encode_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)


def alert_payload(level: int, description: int) -> bytes:
    """:func:`encode_alert`, close_notify's made once (:data:`CLOSE_NOTIFY_ALERT`)."""
    if description == AlertDescription.CLOSE_NOTIFY and level == AlertLevel.WARNING:
        return CLOSE_NOTIFY_ALERT
    return encode_alert(level, description)


def decode_alert(payload: bytes) -> tuple[int, int]:
    """``(level, description)`` of an alert payload; DecodeError unless it is
    exactly 2 bytes with the level warning (1) or fatal (2), RFC 5246 §7.2.
    Unknown descriptions are returned as they are."""
    if len(payload) != 2:
        raise DecodeError(f"alert must be 2 bytes, not {len(payload)}")
    if payload[0] not in (AlertLevel.WARNING, AlertLevel.FATAL):
        raise DecodeError(f"alert level {payload[0]} is neither warning (1) nor fatal (2)")
    return payload[0], payload[1]


__all__ = [
    "CHANGE_CIPHER_SPEC",
    "CLOSE_NOTIFY_ALERT",
    "HANDSHAKE_HEADER",
    "MAX_HANDSHAKE_LENGTH",
    "ClientHello",
    "ClientKeyExchangePsk",
    "Extension",
    "Finished",
    "HandshakeHeader",
    "HelloRequest",
    "HelloVerifyRequest",
    "ServerHello",
    "ServerHelloDone",
    "ServerKeyExchangePsk",
    "alert_payload",
    "decode_alert",
    "encode_alert",
    "encode_extensions",
    "encode_handshake",
    "encode_handshake_header",
    "find_extension",
    "fragment_handshake",
    "parse_handshake_header",
    "split_handshake_fragments",
]
