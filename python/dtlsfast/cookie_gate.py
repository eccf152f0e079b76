"""The stateless front of a DTLS server: the HelloVerifyRequest exchange.

RFC 6347 §4.2.1. A server answers a ClientHello without a valid cookie with a
HelloVerifyRequest and keeps nothing; only a ClientHello carrying a cookie
that verifies (HMAC over the peer address and the ClientHello, see
:mod:`dtlsfast.handshake.cookies`) may create a connection. The reply is never
larger than what it answers (the datagram, or for a fragmented ClientHello
the datagrams that carried its fragments), so the exchange cannot amplify.

Two more refusals, both counted and stateless: a ClientHello whose record
sequence number or message_seq leaves no room for the server's flights (the
server continues both from the client's, RFC 6347 §4.2.1 and §4.2.2), and,
with a :class:`~dtlsfast.source_budget.SourceBuckets` as
``hello_verify_limit``, a HelloVerifyRequest to a source that keeps sending
cookies that fail: such a source gets a bounded number a second. A hello
without a cookie is always answered, so a sender spoofing someone's address
cannot use up that address's answers.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dtlsfast.exceptions import DecodeError
from dtlsfast.handshake.constants import DTLS_1_0, ContentType, HandshakeType
from dtlsfast.handshake.cookies import CookieJar
from dtlsfast.handshake.messages import (
    ClientHello,
    HelloVerifyRequest,
    encode_handshake,
    parse_handshake_header,
    split_handshake_fragments,
)
from dtlsfast.source_budget import SourceBuckets, address_key

#: Fragmented ClientHellos are reassembled in a small shared pool before the
#: cookie is known: bounded in entries and in bytes per message, oldest first
#: out. It is the only thing the gate holds, and no connection state.
MAX_FRAGMENTED_HELLOS = 128
MAX_CLIENT_HELLO = 4096
#: The server's epoch-0 records continue from the ClientHello's record
#: sequence number, and its messages from the hello's message_seq: leave room
#: for the largest flight, fragmented to a small MTU, sent 1 + 7 times (2**16
#: records), and for the rest of the handshake's messages (16).
MAX_HELLO_RECORD_SEQ = 2**48 - 1 - 2**16
MAX_HELLO_MESSAGE_SEQ = 2**16 - 1 - 16


@dataclass(frozen=True)
class GateVerdict:
    """What to do with one datagram from an address without a connection."""

    accepted: bool
    """A ClientHello with a valid cookie: create the connection, feed it."""
    reply: bytes | None = None
    """A HelloVerifyRequest to send back, when not accepted."""
    client_hello: ClientHello | None = None
    hello_datagram: bytes | None = None
    """The datagram to feed the new connection (reassembled if it came in
    fragments)."""


@dataclass
class CookieGate:
    """Checks ClientHellos statelessly and answers HelloVerifyRequests."""

    backend: ModuleType
    jar: CookieJar = field(default_factory=CookieJar)
    counters: Counter[str] = field(default_factory=Counter)
    hello_verify_limit: SourceBuckets | None = None
    """HelloVerifyRequests per source address answering cookies that failed."""
    _fragments: OrderedDict[Hashable, _PartialHello] = field(default_factory=OrderedDict)

    def check(self, datagram: bytes, peer: Hashable, now: float) -> GateVerdict:
        """Decide on a datagram from ``peer`` that has no connection yet."""
        records = self.backend.parse_records(datagram)
        for content_type, _version, epoch, record_seq, fragment in records:
            if content_type != ContentType.HANDSHAKE or epoch != 0:
                continue
            try:
                pieces = split_handshake_fragments(fragment)
            except DecodeError:
                self.counters["malformed"] += 1
                return GateVerdict(False)
            for piece in pieces:
                verdict = self._check_fragment(piece, record_seq, datagram, peer, now)
                if verdict is not None:
                    return verdict
            return GateVerdict(False)
        self.counters["not_client_hello"] += 1
        return GateVerdict(False)

    def _check_fragment(
        self, piece: bytes, record_seq: int, datagram: bytes, peer: Hashable, now: float
    ) -> GateVerdict | None:
        header = parse_handshake_header(piece)
        if header.msg_type != HandshakeType.CLIENT_HELLO:
            self.counters["not_client_hello"] += 1
            return GateVerdict(False)
        if header.length > MAX_CLIENT_HELLO:
            self.counters["oversize_client_hello"] += 1
            return GateVerdict(False)
        if record_seq > MAX_HELLO_RECORD_SEQ or header.message_seq > MAX_HELLO_MESSAGE_SEQ:
            self.counters["sequence_too_high"] += 1
            return GateVerdict(False)
        hello_datagram = datagram
        received = len(datagram)
        if header.fragment_offset != 0 or header.fragment_length != header.length:
            reassembled = self._reassemble(piece, peer, header.message_seq, len(datagram))
            if reassembled is None:
                return None
            message, received = reassembled
            # The connection reparses the hello; hand it one unfragmented record.
            hello_datagram = bytes(
                self.backend.encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)
            )
            piece = message
        try:
            hello = ClientHello.decode(piece[12:])
        except DecodeError:
            self.counters["malformed"] += 1
            return GateVerdict(False)
        if hello.cookie and self.jar.verify(_peer_key(peer), hello, now):
            self.counters["accepted"] += 1
            return GateVerdict(True, client_hello=hello, hello_datagram=hello_datagram)
        if not hello.cookie:
            self.counters["hello_verify_sent"] += 1
        else:
            self.counters["bad_cookie"] += 1
            limit = self.hello_verify_limit
            if limit is not None and not limit.take(address_key(peer), now):
                self.counters["hello_verify_throttled"] += 1
                return GateVerdict(False)
        cookie = self.jar.make(_peer_key(peer), hello, now)
        body = HelloVerifyRequest(server_version=DTLS_1_0, cookie=cookie).encode()
        message = encode_handshake(HandshakeType.HELLO_VERIFY_REQUEST, header.message_seq, body)
        # Same record sequence number as the ClientHello: RFC 6347 §4.2.1.
        reply = bytes(
            self.backend.encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)
        )
        if len(reply) > received:
            self.counters["amplification_refused"] += 1
            return GateVerdict(False)
        return GateVerdict(False, reply=reply)

    def _reassemble(
        self, piece: bytes, peer: Hashable, message_seq: int, size: int
    ) -> tuple[bytes, int] | None:
        """Buffer a fragment; the whole ClientHello and the bytes of every
        datagram that carried part of it, once complete."""
        key = (peer, message_seq)
        partial = self._fragments.get(key)
        if partial is None:
            if len(self._fragments) >= MAX_FRAGMENTED_HELLOS:
                self._fragments.popitem(last=False)
                self.counters["fragment_pool_evicted"] += 1
            reassembler = self.backend.HandshakeReassembler(
                max_message_size=MAX_CLIENT_HELLO,
                max_buffered_bytes=MAX_CLIENT_HELLO,
                next_seq=message_seq,
            )
            partial = self._fragments[key] = _PartialHello(reassembler)
        partial.received = min(partial.received + size, 2 * MAX_CLIENT_HELLO)
        try:
            whole = partial.reassembler.push(piece)
        except DecodeError:
            self._fragments.pop(key, None)
            self.counters["malformed"] += 1
            return None
        if not whole:
            self.counters["fragments_buffered"] += 1
            return None
        self._fragments.pop(key, None)
        return bytes(whole[0]), partial.received


@dataclass
class _PartialHello:
    """A ClientHello being reassembled, and the datagram bytes it arrived in."""

    reassembler: Any
    received: int = 0


def _peer_key(peer: Hashable) -> tuple[str, int] | bytes:
    """The address the cookie binds: host and port, or opaque bytes."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    if isinstance(peer, bytes):
        return peer
    return repr(peer).encode()
