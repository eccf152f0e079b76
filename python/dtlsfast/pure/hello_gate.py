"""The stateless HelloVerifyRequest exchange, one call per datagram: the
pure-Python twin of the Rust ``HelloGate``, on the ClientHello codec and the
cookie functions of :mod:`dtlsfast.handshake.cookies`.

RFC 6347 §4.2.1 (cookies, HelloVerifyRequest with the hello's record
sequence number), §4.1 (records), §4.2.3 (fragments). The decisions are those
of :class:`dtlsfast.cookie_gate.CookieGate`, whose reassembly of fragmented
hellos stays in Python (the verdict ``"fragmented"``).
"""

from __future__ import annotations

from collections.abc import Hashable

from dtlsfast.cookie_gate import (
    MAX_HELLO_MESSAGE_SEQ,
    MAX_HELLO_RECORD_SEQ,
    GateAnswer,
    _peer_key,
)
from dtlsfast.exceptions import ConfigurationError, DecodeError
from dtlsfast.handshake.constants import DTLS_1_0, ContentType, HandshakeType
from dtlsfast.handshake.cookies import cookie_mac, cookie_matches, peer_bytes
from dtlsfast.handshake.messages import (
    HANDSHAKE_HEADER,
    ClientHello,
    HelloVerifyRequest,
    encode_handshake,
    parse_handshake_header,
    split_handshake_fragments,
)
from dtlsfast.pure._args import uint
from dtlsfast.pure.records import encode_record, parse_records

MIN_COOKIE_LENGTH, MAX_COOKIE_LENGTH = 16, 32
MIN_SECRET_LENGTH, MAX_SECRET_LENGTH = 16, 64
DEFAULT_MAX_CLIENT_HELLO = 4096


def _secret(secret: bytes, which: str) -> bytes:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ConfigurationError(
            f"the {which} cookie secret is {len(secret)} bytes; it must be "
            f"{MIN_SECRET_LENGTH}..{MAX_SECRET_LENGTH}"
        )
    return bytes(secret)


class HelloGate:
    """Checks ClientHello cookies and builds HelloVerifyRequests; holds the
    secrets Python gives it and no per-peer state."""

    __slots__ = ("_cookie_length", "_max_client_hello", "_previous", "_secret")

    def __init__(
        self,
        secret: bytes,
        previous: bytes | None = None,
        cookie_length: int = 32,
        max_client_hello: int = DEFAULT_MAX_CLIENT_HELLO,
    ) -> None:
        length = uint(cookie_length, "cookie_length", 0xFF)
        if not MIN_COOKIE_LENGTH <= length <= MAX_COOKIE_LENGTH:
            raise ConfigurationError(
                f"cookie_length must be {MIN_COOKIE_LENGTH}..{MAX_COOKIE_LENGTH}, not {length}"
            )
        self._cookie_length = length
        self._max_client_hello = uint(max_client_hello, "max_client_hello", 1 << 24)
        self._secret = b""
        self._previous: bytes | None = None
        self.set_secrets(secret, previous)

    @property
    def cookie_length(self) -> int:
        return self._cookie_length

    @property
    def max_client_hello(self) -> int:
        return self._max_client_hello

    def set_secrets(self, secret: bytes, previous: bytes | None = None) -> None:
        """Replace the current and previous secrets (after a rotation)."""
        current = _secret(secret, "current")
        self._previous = None if previous is None else _secret(previous, "previous")
        self._secret = current

    def make_cookie(self, peer: Hashable, cookie_input: bytes) -> bytes:
        """The cookie for ``peer`` and ``cookie_input`` under the current secret."""
        return cookie_mac(
            self._secret, peer_bytes(_peer_key(peer)), cookie_input, self._cookie_length
        )

    def verify_cookie(self, peer: Hashable, cookie_input: bytes, cookie: bytes) -> bool:
        """Whether ``cookie`` was made for ``peer`` and ``cookie_input`` under
        the current or the previous secret (constant time)."""
        return cookie_matches(
            bytes(cookie),
            self._secret,
            self._previous,
            peer_bytes(_peer_key(peer)),
            cookie_input,
            self._cookie_length,
        )

    def check(self, datagram: bytes, peer: Hashable, received: int | None = None) -> GateAnswer:
        """Decide on a datagram from ``peer``, which has no connection."""
        budget = len(datagram) if received is None else uint(received, "received", 2**64 - 1)
        peer_raw = peer_bytes(_peer_key(peer))
        for content_type, _version, epoch, record_seq, fragment in parse_records(datagram):
            if content_type != ContentType.HANDSHAKE or epoch != 0:
                continue
            try:
                piece = split_handshake_fragments(fragment)[0]
            except DecodeError:
                return ("malformed", None)
            return self._check_hello(piece, record_seq, peer_raw, budget)
        return ("not_client_hello", None)

    def answer_cookieless(self, datagram: bytes, peer: Hashable) -> bytes | None:
        """The HelloVerifyRequest if :meth:`check` answers ``datagram`` with
        one because its ClientHello has no cookie (``hello_verify_sent``);
        None for anything else. What a server's batch answers without the
        server's Python (:meth:`SessionTable.serve` with a gate)."""
        verdict, reply = self.check(datagram, peer)
        return reply if verdict == "hello_verify_sent" else None

    def _check_hello(
        self, piece: bytes, record_seq: int, peer_raw: bytes, budget: int
    ) -> GateAnswer:
        header = parse_handshake_header(piece)
        if header.msg_type != HandshakeType.CLIENT_HELLO:
            return ("not_client_hello", None)
        if header.length > self._max_client_hello:
            return ("oversize_client_hello", None)
        if record_seq > MAX_HELLO_RECORD_SEQ or header.message_seq > MAX_HELLO_MESSAGE_SEQ:
            return ("sequence_too_high", None)
        if header.fragment_offset != 0 or header.fragment_length != header.length:
            return ("fragmented", None)
        try:
            hello = ClientHello.decode(piece[HANDSHAKE_HEADER:])
        except DecodeError:
            return ("malformed", None)
        cookie_input = hello.cookie_input()
        if hello.cookie and cookie_matches(
            hello.cookie, self._secret, self._previous, peer_raw, cookie_input, self._cookie_length
        ):
            return ("accepted", hello.random)
        cookie = cookie_mac(self._secret, peer_raw, cookie_input, self._cookie_length)
        body = HelloVerifyRequest(server_version=DTLS_1_0, cookie=cookie).encode()
        message = encode_handshake(HandshakeType.HELLO_VERIFY_REQUEST, header.message_seq, body)
        # Same record sequence number as the ClientHello: RFC 6347 §4.2.1.
        reply = encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)
        if len(reply) > budget:
            return ("amplification_refused", None)
        return ("bad_cookie" if hello.cookie else "hello_verify_sent", reply)

    def __repr__(self) -> str:
        return (
            f"<HelloGate cookie_length={self._cookie_length} "
            f"max_client_hello={self._max_client_hello}>"
        )


__all__ = ["HelloGate"]
