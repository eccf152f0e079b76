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

Each datagram is decided in one call of the backend's ``HelloGate`` (Rust,
or its pure twin), which parses the record and the hello, computes and
checks the cookie and builds the HelloVerifyRequest; a new peer's datagram
costs Python the gate's answer tuple and nothing else.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dtlsfast.exceptions import DecodeError
from dtlsfast.handshake.constants import DTLS_1_0, ContentType
from dtlsfast.handshake.cookies import CookieJar
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

#: A gate's answer on a datagram: the verdict (the counter it charged) and
#: its data, the reply to send for ``hello_verify_sent`` and ``bad_cookie``;
#: for ``accepted``, :meth:`CookieGate.check` gives the datagram to feed the
#: new connection (reassembled if the hello came in fragments) and a
#: ``HelloGate`` the hello's random; else None.
GateAnswer = tuple[str, bytes | None]


@dataclass
class CookieGate:
    """Checks ClientHellos statelessly and answers HelloVerifyRequests: the
    backend's ``HelloGate`` decides on each datagram in one call; this keeps
    the policy around it (secret rotation, counters, the answers to failing
    cookies, and the reassembly of fragmented hellos)."""

    backend: ModuleType
    jar: CookieJar = field(default_factory=CookieJar)
    counters: Counter[str] = field(default_factory=Counter)
    hello_verify_limit: SourceBuckets | None = None
    """HelloVerifyRequests per source address answering cookies that failed."""
    _fragments: OrderedDict[Hashable, _PartialHello] = field(default_factory=OrderedDict)
    _gate: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._gate = self.backend.HelloGate(
            *self.jar.secrets,
            cookie_length=self.jar.cookie_length,
            max_client_hello=MAX_CLIENT_HELLO,
        )

    def batch_gate(self, now: float) -> Any:
        """The backend's gate, its secrets current at ``now``, for a batch of
        datagrams decided without Python (``SessionTable.serve_batch``
        answers ClientHellos without a cookie with it, counted in the
        table's ``hellos_answered``)."""
        if self.jar.refresh(now):
            self._gate.set_secrets(*self.jar.secrets)
        return self._gate

    def check(self, datagram: bytes, peer: Hashable, now: float) -> GateAnswer:
        """Decide on a datagram from ``peer`` that has no connection yet."""
        if self.jar.refresh(now):
            self._gate.set_secrets(*self.jar.secrets)
        answer: GateAnswer = self._gate.check(datagram, peer)
        verdict = answer[0]
        if verdict == "fragmented":
            # Decided once the hello is whole, on it as one record, the reply
            # bounded by every datagram that carried part of it.
            whole = self._fragmented(datagram, peer)
            if isinstance(whole, str):
                self.counters[whole] += 1
                return (whole, None)
            datagram, received = whole
            answer = self._gate.check(datagram, peer, received)
            verdict = answer[0]
        self.counters[verdict] += 1
        if verdict == "accepted":
            return (verdict, datagram)
        if verdict == "bad_cookie":
            limit = self.hello_verify_limit
            if limit is not None and not limit.take(address_key(peer), now):
                self.counters["hello_verify_throttled"] += 1
                return ("hello_verify_throttled", None)
        return answer

    def _fragmented(self, datagram: bytes, peer: Hashable) -> tuple[bytes, int] | str:
        """A fragment of a ClientHello: buffer it; once the hello is whole,
        that hello as a datagram of one unfragmented record, and the bytes of
        every datagram that carried part of it; else the verdict."""
        # The gate found this record: the datagram's first epoch-0 handshake one.
        _, _, _, record_seq, fragment = next(
            r
            for r in self.backend.parse_records(datagram)
            if r[0] == ContentType.HANDSHAKE and r[2] == 0
        )
        _, _, message_seq, _, _, piece = self.backend.parse_handshake_fragments(fragment)[0]
        reassembled = self._reassemble(piece, peer, message_seq, len(datagram))
        if isinstance(reassembled, str):
            return reassembled
        message, received = reassembled
        # The connection reparses the hello; hand it one unfragmented record.
        whole = bytes(
            self.backend.encode_record(ContentType.HANDSHAKE, DTLS_1_0, 0, record_seq, message)
        )
        return whole, received

    def _reassemble(
        self, piece: bytes, peer: Hashable, message_seq: int, size: int
    ) -> tuple[bytes, int] | str:
        """Buffer a fragment; the whole ClientHello and the bytes of every
        datagram that carried part of it, once complete; else the verdict."""
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
            return "malformed"
        if not whole:
            return "fragments_buffered"
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
