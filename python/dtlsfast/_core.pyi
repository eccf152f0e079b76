"""Type stubs for ``dtlsfast._core``, the Rust record-layer hot path.

``dtlsfast.pure`` implements the same names with the same behaviour in Python;
the differential tests hold the two to identical bytes and decisions.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Final, Self, final

MAX_SEQUENCE_NUMBER: Final[int]
"""2**48 - 1, the largest DTLS record sequence number (RFC 6347 §4.1)."""

RECORD_HEADER_LENGTH: Final[int]
"""13: type(1) version(2) epoch(2) sequence_number(6) length(2)."""

HANDSHAKE_HEADER_LENGTH: Final[int]
"""12: msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3)."""

MAX_CID_LENGTH: Final[int]
"""255: a connection ID is ``opaque cid<0..2^8-1>`` (RFC 9146 §3)."""

CID_CONTENT_TYPE: Final[int]
"""25: ContentType tls12_cid, the outer type of records with a CID (RFC 9146 §4)."""

AEAD_NAMES: Final[tuple[str, ...]]
"""The AEAD names RecordCipher accepts."""

def parse_records(datagram: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """Split a datagram into DTLS records (RFC 6347 §4.1).

    Returns ``(content_type, version, epoch, sequence_number, fragment)`` for
    every well-formed record; stops at the first malformed one and returns the
    prefix. Never raises.
    """

def parse_records_cid(
    datagram: bytes, cid_length: int
) -> list[tuple[int, int, int, int, bytes, bytes]]:
    """Split a datagram into DTLS records, tls12_cid ones included (RFC 9146 §4).

    Records of type 25 carry a CID of ``cid_length`` bytes (the receiver's own
    CID length) before the length field. Returns ``(content_type, version,
    epoch, sequence_number, cid, fragment)``, ``cid`` empty for other types;
    stops at the first malformed record. Raises ConfigurationError only for a
    ``cid_length`` outside 0..=255.
    """

def split_records(
    datagram: bytes, cid_length: int
) -> tuple[list[tuple[int, int, int, int, bytes, bytes]], int, bool]:
    """:func:`parse_records_cid` and what a record layer needs besides:
    ``(records, consumed, plaintext)``, ``consumed`` the bytes the records
    took (less than the datagram if something malformed followed them) and
    ``plaintext`` whether every record is an epoch-0, non-tls12_cid record
    of a DTLS version (major 0xFE), true for none."""

def encode_record(
    content_type: int, version: int, epoch: int, sequence_number: int, fragment: bytes
) -> bytes:
    """Build one record: the 13-byte header followed by ``fragment``.

    Raises ValueError (ConfigurationError) for a field out of range.
    """

@final
class RecordCipher:
    """AEAD protection of DTLS records for one epoch and one direction
    (RFC 6347 §4.1.2.1, RFC 5246 §6.2.3.3, RFC 5288, RFC 6655, RFC 7905)."""

    def __new__(cls, aead: str, key: bytes, iv: bytes) -> Self: ...
    @property
    def aead(self) -> str: ...
    @property
    def overhead(self) -> int:
        """Bytes a sealed record adds beyond header and plaintext:
        explicit nonce plus tag (16 for CCM_8, 24 for CCM and GCM, 16 for ChaCha20)."""

    def seal(
        self,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        plaintext: bytes,
    ) -> bytes:
        """Return the whole protected record, header included."""

    def open(self, record: bytes) -> bytes | None:
        """Open one whole record (header included). None if it is malformed or
        does not authenticate; never raises for bad input."""

    def open_parts(
        self,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        fragment: bytes,
    ) -> bytes | None:
        """Open a record already split by :func:`parse_records`."""

    def seal_cid(
        self,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        cid: bytes,
        plaintext: bytes,
        padding: int = 0,
    ) -> bytes:
        """Return a whole tls12_cid record (RFC 9146 §4, §5) carrying ``cid``:
        ``content_type`` is the real type, sealed with the content and
        ``padding`` zero bytes in the DTLSInnerPlaintext."""

    def open_cid(
        self,
        version: int,
        epoch: int,
        sequence_number: int,
        cid: bytes,
        fragment: bytes,
    ) -> tuple[int, bytes] | None:
        """Open the fragment of a tls12_cid record split by
        :func:`parse_records_cid`: ``(real_type, content)``, or None if it does
        not authenticate or its inner plaintext has no content type."""

    def key_material(self) -> tuple[bytes, bytes]:
        """``(key, iv)`` as the constructor took them, for persisting a
        session; never log them."""

@final
class ReplayWindow:
    """Sliding anti-replay window for one epoch (RFC 6347 §4.1.2.6)."""

    def __new__(cls, size: int = 64) -> Self: ...
    @property
    def size(self) -> int: ...
    @property
    def highest(self) -> int | None:
        """The highest sequence number accepted so far, None before the first."""

    def check(self, sequence_number: int) -> bool:
        """True if the record is new and not left of the window."""

    def accept(self, sequence_number: int) -> None:
        """Mark a record seen; call only after it authenticated."""

    def export(self) -> tuple[int | None, bytes]:
        """``(highest, bitmap)`` in canonical form: bit ``i`` (byte ``i // 8``,
        least significant bit first) says whether ``highest - i`` was
        accepted; ``(None, b"")`` before the first record."""

    @staticmethod
    def restore(size: int, highest: int | None, bitmap: bytes) -> ReplayWindow:
        """The window that :meth:`export` described (ConfigurationError if the
        bitmap is not canonical)."""

@final
class ReassemblyBudget:
    """One byte budget shared by the handshake reassemblers of a server: at most
    `limit` bytes in all, and `per_source` for the reassemblers of one source."""

    def __new__(cls, limit: int, per_source: int | None = None) -> Self: ...
    @property
    def limit(self) -> int: ...
    @property
    def per_source(self) -> int: ...
    @property
    def used(self) -> int:
        """Bytes held by all the reassemblers sharing the budget."""

    @property
    def sources(self) -> int:
        """Sources holding bytes."""

    @property
    def refused(self) -> int:
        """Fragments dropped because the budget refused them."""

    def held_by(self, source: bytes) -> int:
        """Bytes held by the reassemblers of `source`."""

@final
class HandshakeReassembler:
    """Handshake fragments in, whole messages out in message_seq order
    (RFC 6347 §4.2.2, §4.2.3)."""

    def __new__(
        cls,
        max_message_size: int = 32768,
        max_buffered_bytes: int = 65536,
        next_seq: int = 0,
        *,
        budget: ReassemblyBudget | None = None,
        source: bytes | None = None,
    ) -> Self: ...
    @property
    def next_seq(self) -> int: ...
    @next_seq.setter
    def next_seq(self, value: int) -> None: ...
    @property
    def buffered_bytes(self) -> int: ...
    def discard(self) -> None:
        """Discard every buffered message and give its bytes back to the budget
        (the connection is going)."""

    @property
    def dropped(self) -> int:
        """Fragments dropped because a bound was hit."""

    def push(self, fragment: bytes) -> list[bytes]:
        """Take one fragment (12-byte header + body); return the messages now
        whole, each as an unfragmented message with its 12-byte header."""

    def push_record(
        self, payload: bytes, offset: int = 0, push: bool = True
    ) -> tuple[list[tuple[int, int, bytes]], list[bytes], int]:
        """The fragments of one handshake record's payload from ``offset`` on:
        ``(judged, messages, offset)`` (rust/reassembly.rs ``push_record``).
        With ``push``, the fragments at or past next_seq are pushed until one
        delivers ``messages``; ``judged`` holds ``(msg_type, message_seq,
        fragment)`` of those left to the caller (below next_seq; without
        ``push``, the first fragment alone). ``offset``: where the next call
        starts, 0 when the record is done."""

@final
class SessionTable:
    """Established sessions' record state for the fast path (DESIGN.md)."""

    def __new__(cls, capacity: int = 100_000) -> Self: ...
    @property
    def capacity(self) -> int: ...
    @property
    def session_footprint(self) -> int:
        """Approximate bytes per installed session (its slots by id and by
        address, key schedules, window)."""

    @property
    def coap_answered(self) -> int:
        """CoAP requests answered from published responses so far."""

    def publish(self, path: bytes, response: bytes | None) -> None:
        """Publish the encoded response (code byte, options, payload marker and
        payload) that answers a Confirmable GET of ``path`` ("light",
        "a/b") whose only options are its Uri-Path segments; None withdraws it."""

    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def install(
        self,
        session_id: int,
        read_cipher: RecordCipher,
        read_epoch: int,
        window: ReplayWindow,
        write_cipher: RecordCipher,
        write_epoch: int,
        next_write_sequence: int,
        version: int = 0xFEFD,
    ) -> None:
        """Take over a session's current epochs: copies of the ciphers and of the
        window, and the next write sequence number. From then on open and seal
        that session's records through the table only."""

    def remove(self, session_id: int) -> bool:
        """Forget a session (its keys go with it); False if it was not there."""

    def export_session(
        self, session_id: int, next_write_sequence: int | None = None
    ) -> bytes | None:
        """The session's record state as bytes for the session store (keys,
        epochs, window, address; see session_export.rs), with
        ``next_write_sequence`` in place of the live one when given (a
        reserved limit); None if the session is unknown. The bytes hold keys:
        encrypt them before they leave the process."""

    def import_session(self, session_id: int, data: bytes, now: float) -> None:
        """Install a session from :meth:`export_session`'s bytes under
        ``session_id`` (replacing any) and bind its address, its activity
        clock starting at ``now``. Malformed bytes: ConfigurationError."""

    def import_sessions(
        self, items: Iterable[tuple[int, bytes, int | None, bool]], now: float
    ) -> list[tuple[Any, ...] | str | None]:
        """Install many sessions from :meth:`export_session`'s bytes in one
        call (a restart's 100,000): ``items`` are ``(session_id, data,
        next_write_sequence, bind)``; each session gets ``next_write_sequence``
        (when not None) in place of the saved one and, with ``bind``, its
        address bound unless another session holds it. One outcome per item:
        the saved address (a socket address tuple, or None), or a str saying
        why it was left out (malformed, address taken, table full)."""

    def next_write_sequence(self, session_id: int) -> int | None:
        """The sequence number the next sealed record gets; None if unknown."""

    def open_record(
        self,
        session_id: int,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        fragment: bytes,
    ) -> bytes | str | None:
        """Open one record for Python's record layer: the plaintext, "replay" or
        "bad_auth"; None if the session is unknown or the epoch is not the
        table's current read epoch."""

    def set_connection_ids(self, session_id: int, read_cid: bytes, write_cid: bytes) -> None:
        """Give the session connection IDs (RFC 9146): ``read_cid`` is the CID
        records to us carry, ``write_cid`` the one sealed records carry (then
        as tls12_cid records); an empty one keeps the plain record format in
        that direction, both empty remove them."""
    def open_cid_record(
        self,
        session_id: int,
        version: int,
        epoch: int,
        sequence_number: int,
        cid: bytes,
        fragment: bytes,
    ) -> tuple[int, bytes, bool] | str | None:
        """Open one tls12_cid record (RFC 9146 §5) carrying ``cid``:
        ``(content_type, plaintext, newest)`` with the real content type and
        whether no earlier record of the session was newer (RFC 9146 §6), or
        "replay" or "bad_auth"; None if the session is unknown, the epoch is
        not its current read epoch or ``cid`` is not its CID."""
    def open_datagram(
        self, session_id: int, datagram: bytes
    ) -> tuple[list[bytes], int, int, list[bytes]] | None:
        """The fast path for one datagram: ``(plaintexts, replayed, bad_auth,
        replies)`` if every record is application data of the current read
        epoch, else None (hand the datagram to Python; nothing was consumed).
        ``replies`` are sealed records answering published CoAP GETs."""

    def open_alert(self, session_id: int, datagram: bytes) -> bytes | str | None:
        """A datagram that is one alert record of the current read epoch (a
        peer's close_notify) opened in one call: its plaintext, "replay" or
        "bad_auth"; None if the datagram is anything else or the session
        expects tls12_cid records (nothing was consumed)."""

    def open_batch(
        self, batch: Iterable[tuple[int, bytes]]
    ) -> list[tuple[list[bytes], int, int, list[bytes]] | None]:
        """:meth:`open_datagram` over ``[(session_id, datagram), ...]`` with the
        GIL released for the AEAD work; one result per item, in order."""

    def seal(self, session_id: int, content_type: int, plaintext: bytes) -> bytes:
        """Seal one record in the session's current write epoch."""

    def seal_batch(self, batch: Iterable[tuple[int, bytes]]) -> list[bytes | None]:
        """Seal application data for ``[(session_id, plaintext), ...]`` with the
        GIL released; None for an item whose session is unknown or exhausted."""

    def bind_address(self, session_id: int, address: tuple[object, ...], now: float) -> None:
        """Route datagrams from ``address`` (a socket-module address tuple) to
        the session in :meth:`serve_batch`; ``now`` starts its activity clock."""

    def set_auth_filter(self, burst: float, rate: float) -> None:
        """The fast path's MAC-error filter: ``burst`` authentication failures
        at once, ``rate`` per second after that, per session (defaults 20,000
        and 200,000: below them every record is opened); past them a
        session's datagrams are dropped unopened (counted as throttled) until
        a token comes back."""

    def last_active(self, session_id: int) -> float | None:
        """When :meth:`serve_batch` last opened a datagram of the session."""

    @property
    def totals(self) -> dict[str, int]:
        """Totals of :meth:`serve_batch` over all sessions, removed ones included:
        ``{"opened", "replayed", "bad_auth", "throttled", "hellos_answered",
        "closed"}`` (ClientHellos without a cookie answered by the gate; sessions
        closed on the peer's close_notify)."""

    def serve(
        self,
        batch: Iterable[tuple[bytes, tuple[object, ...]]],
        now: float,
        gate: HelloGate | None = None,
    ) -> tuple[
        int,
        list[tuple[bytes, tuple[str, int] | tuple[str, int, int, int]]],
        list[tuple[tuple[str, int] | tuple[str, int, int, int], bytes]],
        list[tuple[bytes, tuple[str, int] | tuple[str, int, int, int]]],
        list[tuple[tuple[str, int] | tuple[str, int, int, int], int]],
    ]:
        """The logic of :meth:`serve_batch` without the socket (for tests and
        other transports): ``batch`` is ``[(data, address), ...]``; returns
        ``(received, to_python, delivered, replies, closed)``."""

    def serve_batch(
        self, sock: BatchSocket, now: float, gate: HelloGate | None = None
    ) -> tuple[
        int,
        list[tuple[bytes, tuple[str, int] | tuple[str, int, int, int]]],
        list[tuple[tuple[str, int] | tuple[str, int, int, int], bytes]],
        list[tuple[bytes, tuple[str, int] | tuple[str, int, int, int]]],
        list[tuple[tuple[str, int] | tuple[str, int, int, int], int]],
    ]:
        """One batch of the fast path, the GIL released throughout: receive up to
        a batch of datagrams from ``sock`` (a :class:`BatchSocket`), open those
        of bound sessions, send the answers to published CoAP GETs and, with
        the server's ``gate``, the HelloVerifyRequests to ClientHellos without
        a cookie from other addresses, and the answer to a bound session's
        close_notify (RFC 5246 §7.2.1: the session then leaves its address),
        and return ``(received, to_python, delivered, unsent, closed)``: how
        many datagrams came, those Python must handle as ``(data, address)``,
        application data as ``(address, plaintext)``, answers the socket did
        not take now as ``(data, address)``, and the sessions closed by their
        peer as ``(address, session_id)``, for Python to forget."""

@final
class BatchSocket:
    """Batched datagram I/O on a non-blocking UDP socket's file descriptor:
    recvmmsg/sendmmsg on Linux, the GIL released for the system calls."""

    def __new__(cls, fd: int, batch: int = 64, buffer_size: int = 2048) -> Self: ...
    @property
    def truncated(self) -> int:
        """Datagrams dropped because they were longer than ``buffer_size``."""
    @property
    def muted_hellos(self) -> int:
        """ClientHellos dropped on arrival because their source was muted."""

    def mute(self, host: str, prefix_length: int, seconds: float) -> bool:
        """Drop epoch-0 ClientHellos from the network of ``host``
        (``prefix_length`` bits; IPv4 and IPv4-mapped hosts count in IPv4
        bits) for ``seconds``; False if the table of muted sources is full."""

    def recv(self) -> list[tuple[bytes, tuple[str, int] | tuple[str, int, int, int]]]:
        """Up to ``batch`` waiting datagrams as ``(data, address)``; [] if none."""

    def send(self, items: Iterable[tuple[bytes, tuple[object, ...]]]) -> int:
        """Send ``[(data, address), ...]``; returns how many the socket took now."""

@final
class ClientTable:
    """The load generator's steady state (rust/client_table.rs): established
    sessions keep ``window`` CON requests in flight, sealed, sent, received,
    opened and matched in Rust; Python judges the timers (:meth:`tick`).
    Methods that produce records send those of sessions with a socket and
    return the rest as ``[(index, record), ...]``."""

    def __new__(
        cls,
        code: int,
        tail: bytes,
        *,
        ack_timeout: float = 2.0,
        random_factor: float = 1.5,
        request_timeout: float = 10.0,
        seed: int = 0,
    ) -> Self: ...
    def add(
        self,
        fd: int,
        read_cipher: RecordCipher,
        read_epoch: int,
        window: ReplayWindow,
        write_cipher: RecordCipher,
        write_epoch: int,
        next_write_sequence: int,
        version: int = 0xFEFD,
        mid: int = 0,
        token: int = 0,
    ) -> int:
        """Take over an established session (fd -1: no socket); its index."""

    def fileno(self) -> int:
        """The epoll descriptor over the sessions' sockets; -1 off Linux."""

    def begin(self, window: int, now: float) -> list[tuple[int, bytes]]:
        """Start the load: ``window`` requests on every session."""

    def end(self) -> int:
        """End the load; the requests still in flight."""

    @property
    def running(self) -> bool: ...
    def feed(self, index: int, datagram: bytes, now: float) -> tuple[bool, list[tuple[int, bytes]]]:
        """One datagram of a session without a socket: (taken, unsent)."""

    def poll(self, rounds: int = 8) -> list[tuple[int, bytes]]:
        """Serve the readable sockets; the datagrams the connections must see."""

    def tick(
        self, now: float
    ) -> tuple[list[tuple[int, int, int, float, float, bool]], list[tuple[int, bytes]]]:
        """Requests due for a verdict as (index, token, retransmissions,
        timeout, first_sent, acked), and the unsent records."""

    def retransmit(
        self, index: int, token: int, timeout: float, now: float
    ) -> tuple[bool, list[tuple[int, bytes]]]:
        """Send a request again, its next deadline ``timeout`` s away."""

    def give_up(self, index: int, token: int, now: float) -> tuple[bool, list[tuple[int, bytes]]]:
        """Count a request as timed out and send its replacement."""

    def lose(self, index: int) -> None:
        """The server closed the session: its requests in flight fail."""

    def transport_error(self, index: int) -> None:
        """An ICMP error for the session: its oldest request fails."""

    def next_write_sequence(self, index: int) -> int | None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def retransmissions(self) -> int: ...
    def stats(self, histogram: bool = True) -> dict[str, Any]:
        """Counts, and with ``histogram`` latency_sum/latency_max, codes and
        histogram buckets."""

# -- the handshake's crypto work (prf.rs, cookie.rs, hello_gate.rs,
# -- transcript.rs, flight.rs): one call per handshake step.

def derive_keys(
    hash_name: str,
    aead: str,
    psk: bytes | None,
    other_secret: bytes | None,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
    client: bool,
) -> tuple[bytes, RecordCipher, RecordCipher]:
    """The premaster secret (RFC 4279 §2 of ``psk`` and ``other_secret``,
    the ECDH shared secret of ECDHE_PSK or None for plain PSK; without a
    PSK the ECDH shared secret ``other_secret`` itself, RFC 8422 §5.10), the
    master secret (extended with ``session_hash``, RFC 7627 §4; else RFC
    5246 §8.1) and the key block of ``aead`` (RFC 5246 §6.3) in one step:
    ``(master_secret, read_cipher, write_cipher)`` of the client
    (``client``) or the server."""

def key_block(
    hash_name: str,
    aead: str,
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    client: bool,
) -> tuple[RecordCipher, RecordCipher]:
    """The key block of a known (48-byte) master secret, a resumed
    session's, and this handshake's randoms (RFC 5246 §6.3):
    ``(read_cipher, write_cipher)`` of the client (``client``) or the
    server."""

def peer_bytes(peer: tuple[object, ...] | bytes | bytearray | memoryview) -> bytes:
    """The canonical bytes of a peer address that a cookie binds, exactly
    ``dtlsfast.handshake.cookies.peer_bytes``."""

def pack_flight(
    items: Iterable[tuple[int, int, bytes]],
    mtu: int,
    version: int,
    writers: Iterable[tuple[int, RecordCipher | None, int, bytes]],
) -> tuple[list[bytes], list[int]]:
    """Fragment and seal a flight into datagrams of at most ``mtu`` bytes
    (RFC 6347 §4.2.3, §4.1.1), laid out as ``dtlsfast.flight.pack_flight``
    does. ``items`` are ``(epoch, content_type, payload)`` (a FlightItem);
    ``writers`` are ``(epoch, cipher or None, next_sequence, cid)`` of every
    epoch used. Returns the datagrams and each writer's next sequence number
    afterwards; on an error none has advanced."""

@final
class HelloGate:
    """The stateless HelloVerifyRequest exchange (RFC 6347 §4.2.1) in one call
    per datagram. Secrets come from Python, which rotates them; the previous
    one is still accepted. Holds no per-peer state."""

    def __new__(
        cls,
        secret: bytes,
        previous: bytes | None = None,
        cookie_length: int = 32,
        max_client_hello: int = 4096,
    ) -> Self: ...
    @property
    def cookie_length(self) -> int: ...
    @property
    def max_client_hello(self) -> int: ...
    def set_secrets(self, secret: bytes, previous: bytes | None = None) -> None:
        """Replace the current and previous secrets (after a rotation)."""

    def make_cookie(self, peer: object, cookie_input: bytes) -> bytes:
        """The cookie for ``peer`` and ``cookie_input`` (as
        ``ClientHello.cookie_input()`` encodes it) under the current secret."""

    def verify_cookie(self, peer: object, cookie_input: bytes, cookie: bytes) -> bool:
        """Whether ``cookie`` was made for ``peer`` and ``cookie_input`` under
        the current or the previous secret; both always computed, compared
        in constant time."""

    def check(
        self, datagram: bytes, peer: object, received: int | None = None
    ) -> tuple[str, bytes | None]:
        """Decide on a datagram from ``peer``, which has no connection:
        ``(verdict, data)``. ``verdict`` is the counter name;
        ``data`` is the HelloVerifyRequest to send for ``hello_verify_sent``
        and ``bad_cookie``, the hello's random for ``accepted``, else None.
        ``received`` (default: the datagram's length) bounds the reply."""

@final
class HandshakeTranscript:
    """The handshake transcript (RFC 5246 §7.4.9, RFC 7627 §3, RFC 6347 §4.2.6)."""

    def __new__(cls) -> Self: ...
    def add(self, message: bytes) -> None:
        """Append one whole message (header + complete body), fragment fields
        normalised. LocalProtocolError if it is not one whole message."""

    def digest(self, hash_name: str) -> bytes:
        """The hash of every message so far (``"sha256"`` or ``"sha384"``)."""

    def add_finished(
        self, hash_name: str, master: bytes, label: bytes, message_seq: int, length: int = 12
    ) -> bytes:
        """Our Finished message with ``message_seq`` over the messages so far
        (RFC 5246 §7.4.9), added to them: what the flight sends."""

    def check_finished(
        self, hash_name: str, master: bytes, label: bytes, message: bytes, length: int = 12
    ) -> bool:
        """Whether the peer's Finished ``message`` (header and body) verifies
        over the messages so far, compared in constant time (RFC 5246
        §7.4.9); added to them if it does. DecodeError for an empty body,
        LocalProtocolError if ``message`` is not one whole Finished."""

    def reset(self) -> None:
        """Forget everything (after a HelloVerifyRequest, RFC 6347 §4.2.1)."""

    def data(self) -> bytes:
        """All messages so far, concatenated."""

    @property
    def messages(self) -> tuple[bytes, ...]:
        """The messages added so far, normalised, in order."""

    def __len__(self) -> int: ...

# ---------------------------------------------------------------------------
# Handshake message codecs (rust/hs_codec; twin: dtlsfast.pure.hs_codec).
# Decoders take a message body (no header) and raise DecodeError, or its
# subclass IllegalParameterError where the alert is illegal_parameter; the
# alert is the class attribute ``alert``. Encoders return the whole message,
# 12-byte header included, and raise LocalProtocolError for a value the wire
# cannot carry.

def parse_handshake_header(data: bytes) -> tuple[int, int, int, int, int]:
    """``(msg_type, length, message_seq, fragment_offset, fragment_length)`` of
    the 12-byte header at the start of ``data`` (RFC 6347 §4.2.2)."""

def parse_handshake_fragments(payload: bytes) -> list[tuple[int, int, int, int, int, bytes]]:
    """The handshake fragments of a record's payload (RFC 6347 §4.2.3): the
    five header fields and the fragment's bytes (header and body)."""

def encode_handshake(msg_type: int, message_seq: int, body: bytes) -> bytes:
    """A whole, unfragmented handshake message: header then ``body``."""

@final
class ParsedClientHello:
    """A decoded ClientHello: its fields, and the extensions a server reads
    (None when absent). Other extensions are in ``other_extensions``."""

    @property
    def client_version(self) -> int: ...
    @property
    def random(self) -> bytes: ...
    @property
    def session_id(self) -> bytes: ...
    @property
    def cookie(self) -> bytes: ...
    @property
    def cipher_suites(self) -> tuple[int, ...]: ...
    @property
    def compression_methods(self) -> bytes: ...
    @property
    def supported_groups(self) -> tuple[int, ...] | None: ...
    @property
    def ec_point_formats(self) -> bytes | None: ...
    @property
    def signature_algorithms(self) -> tuple[int, ...] | None: ...
    @property
    def renegotiation_info(self) -> bytes | None: ...
    @property
    def extended_master_secret(self) -> bool: ...
    @property
    def record_size_limit(self) -> int | None: ...
    @property
    def connection_id(self) -> bytes | None: ...
    @property
    def client_certificate_types(self) -> bytes | None: ...
    @property
    def server_certificate_types(self) -> bytes | None: ...
    @property
    def session_ticket(self) -> bytes | None: ...
    @property
    def server_name(self) -> bool: ...
    @property
    def other_extensions(self) -> tuple[tuple[int, bytes], ...]: ...

@final
class ParsedServerHello:
    """A decoded ServerHello and the extensions a client reads. Extensions
    a server must not send land in ``other_extensions``, for the caller to
    refuse."""

    @property
    def server_version(self) -> int: ...
    @property
    def random(self) -> bytes: ...
    @property
    def session_id(self) -> bytes: ...
    @property
    def cipher_suite(self) -> int: ...
    @property
    def compression_method(self) -> int: ...
    @property
    def renegotiation_info(self) -> bytes | None: ...
    @property
    def extended_master_secret(self) -> bool: ...
    @property
    def record_size_limit(self) -> int | None: ...
    @property
    def connection_id(self) -> bytes | None: ...
    @property
    def ec_point_formats(self) -> bytes | None: ...
    @property
    def server_certificate_type(self) -> int | None: ...
    @property
    def client_certificate_type(self) -> int | None: ...
    @property
    def session_ticket(self) -> bytes | None: ...
    @property
    def server_name(self) -> bool: ...
    @property
    def other_extensions(self) -> tuple[tuple[int, bytes], ...]: ...

def decode_client_hello(body: bytes) -> ParsedClientHello:
    """Decode a ClientHello body (RFC 5246 §7.4.1.2, RFC 6347 §4.2.1)."""

def client_hello_cookie(body: bytes) -> tuple[bytes, bytes]:
    """``(cookie, cookie_input)`` of a ClientHello body, checked exactly as
    :func:`decode_client_hello` checks it: what the cookie gate needs."""

def decode_server_hello(body: bytes) -> ParsedServerHello:
    """Decode a ServerHello body (RFC 5246 §7.4.1.3)."""

def decode_hello_verify_request(body: bytes) -> tuple[int, bytes]:
    """``(server_version, cookie)`` of a HelloVerifyRequest body (RFC 6347 §4.2.1)."""

def encode_client_hello(
    message_seq: int,
    client_version: int,
    random: bytes,
    session_id: bytes,
    cookie: bytes,
    cipher_suites: Iterable[int],
    compression_methods: bytes,
    extensions: Iterable[tuple[int, bytes]],
) -> bytes:
    """A whole ClientHello; ``extensions`` are ``(type, data)`` pairs sent as given."""

def encode_server_hello(
    message_seq: int,
    server_version: int,
    random: bytes,
    session_id: bytes,
    cipher_suite: int,
    *,
    renegotiation_info: bytes | None = None,
    extended_master_secret: bool = False,
    record_size_limit: int | None = None,
    ec_point_formats: bytes | None = None,
    server_certificate_type: int | None = None,
    client_certificate_type: int | None = None,
    connection_id: bytes | None = None,
    session_ticket: bool = False,
    extensions: Iterable[tuple[int, bytes]] | None = None,
) -> bytes:
    """A whole ServerHello with its extensions, in one call: the typed ones in
    this order, each when given, then ``extensions`` as given. Compression is
    always null."""

def encode_hello_verify_request(message_seq: int, server_version: int, cookie: bytes) -> bytes:
    """A whole HelloVerifyRequest (RFC 6347 §4.2.1)."""

def decode_server_key_exchange_psk(body: bytes) -> bytes:
    """The psk_identity_hint of a PSK ServerKeyExchange body (RFC 4279 §2)."""

def decode_server_key_exchange_ecdhe_psk(body: bytes) -> tuple[bytes, int, bytes]:
    """``(identity_hint, group, public)`` of an ECDHE_PSK ServerKeyExchange (RFC 5489 §2)."""

def decode_server_key_exchange_ecdhe(body: bytes) -> tuple[int, bytes, int, bytes]:
    """``(group, public, scheme, signature)`` of an ECDHE_ECDSA ServerKeyExchange
    (RFC 8422 §5.4)."""

def decode_client_key_exchange_psk(body: bytes) -> bytes:
    """The psk_identity of a PSK ClientKeyExchange body (RFC 4279 §2)."""

def decode_client_key_exchange_ecdhe_psk(body: bytes) -> tuple[bytes, bytes]:
    """``(identity, public)`` of an ECDHE_PSK ClientKeyExchange (RFC 5489 §2)."""

def decode_client_key_exchange_ecdhe(body: bytes) -> bytes:
    """The client's ECPoint of an ECDHE_ECDSA ClientKeyExchange (RFC 8422 §5.7)."""

def encode_server_key_exchange_psk(message_seq: int, identity_hint: bytes) -> bytes: ...
def encode_server_key_exchange_ecdhe_psk(
    message_seq: int, identity_hint: bytes, group: int, public: bytes
) -> bytes: ...
def encode_server_key_exchange_ecdhe(
    message_seq: int, group: int, public: bytes, scheme: int, signature: bytes
) -> bytes: ...
def ecdhe_signed_params(
    client_random: bytes, server_random: bytes, group: int, public: bytes
) -> bytes:
    """client_random + server_random + ServerECDHParams: what an ECDHE_ECDSA
    ServerKeyExchange signs (RFC 8422 §5.4)."""

def encode_client_key_exchange_psk(message_seq: int, identity: bytes) -> bytes: ...
def encode_client_key_exchange_ecdhe_psk(
    message_seq: int, identity: bytes, public: bytes
) -> bytes: ...
def encode_client_key_exchange_ecdhe(message_seq: int, public: bytes) -> bytes: ...
def decode_certificate(body: bytes) -> tuple[bytes, ...]:
    """The DER certificates of a Certificate body, leaf first (RFC 5246 §7.4.2)."""

def decode_raw_public_key_certificate(body: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a raw public key Certificate body (RFC 7250 §3)."""

def decode_certificate_request(body: bytes) -> tuple[bytes, tuple[int, ...], tuple[bytes, ...]]:
    """``(certificate_types, signature_algorithms, authorities)`` of a
    CertificateRequest body (RFC 5246 §7.4.4)."""

def decode_certificate_verify(body: bytes) -> tuple[int, bytes]:
    """``(scheme, signature)`` of a CertificateVerify body (RFC 5246 §7.4.8)."""

def decode_server_hello_done(body: bytes) -> None:
    """Check a ServerHelloDone body is empty (RFC 5246 §7.4.5)."""

def encode_certificate(message_seq: int, chain: Sequence[bytes]) -> bytes: ...
def encode_raw_public_key_certificate(message_seq: int, spki: bytes) -> bytes: ...
def encode_certificate_request(
    message_seq: int,
    certificate_types: bytes,
    signature_algorithms: Iterable[int],
    authorities: Sequence[bytes],
) -> bytes: ...
def encode_certificate_verify(message_seq: int, scheme: int, signature: bytes) -> bytes: ...
def encode_server_hello_done(message_seq: int) -> bytes: ...
