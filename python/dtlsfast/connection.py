"""Sans-I/O DTLS 1.2 connection: datagrams in, datagrams and events out.

RFC 6347 (DTLS 1.2) over RFC 5246 (TLS 1.2), with the PSK key exchange of
RFC 4279, extended master secret (RFC 7627) and refused renegotiation
(RFC 5746); ECDHE_ECDSA (RFC 8422) authenticates with X.509 certificates or
raw public keys (RFC 7250 §4: the certificate type extensions). In the style
of aioquic: the caller passes the clock in and owns the socket; the
connection never sleeps or reads a clock.

The handshake is a table of ``(state, message type) -> handler``; a message
not in the table for the current state is an ``unexpected_message``. Flights
are kept whole for retransmission (§4.2.4) and re-sealed with new record
sequence numbers each time.

Hostile input (the peer is not trusted before the handshake authenticates it):

- Nothing the peer sends makes :meth:`DtlsConnection.receive_datagram` or
  :meth:`~DtlsConnection.handle_timer` raise. A malformed message gets its
  alert; anything unexpected (a defect) fails this connection alone with a
  fatal internal_error, a :class:`~dtlsfast.exceptions.InternalError` in
  its ConnectionClosed event and ``counters["internal_errors"]``.
- A ClientHello whose record sequence number or message_seq leaves no room
  for the rest of the handshake is dropped and counted
  (``drops["hello_sequence_exhausted"]``), with no reply and no state.
- Our flight is retransmitted for the peer only on a real retransmission of
  its last flight: a message whose bytes equal the one we received (one that
  an off-path forger cannot know: a hello's random, or an authenticated
  Finished), at most once per timer period, and only when the peer has sent
  at least a third of our flight's size since it last went out (no input is
  answered with more than three times its size).
- Records that fail authentication are dropped and counted (RFC 6347
  §4.1.2.7), during the handshake too. The one exception is the Finished in
  the very datagram whose ChangeCipherSpec opened its epoch: that is the
  peer's own flight, so its failure means another key (usually another PSK)
  and gets a fatal bad_record_mac at once, as §4.1.2.7 allows. A record in
  any other datagram, which anyone can forge, never ends the handshake; if
  the Finished never verifies, the handshake times out with a message that
  counts the failures. Once the peer's ChangeCipherSpec is in, its alerts
  come in the new epoch, so unauthenticated epoch-0 alerts are ignored.
- An unknown PSK identity goes on with a random key (RFC 4279 §2), so that it
  ends exactly as a wrong key does and identities cannot be enumerated;
  ``DtlsConfiguration.reveal_unknown_psk_identity`` restores the explicit
  unknown_psk_identity alert for debugging.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import operator
import os
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.events import (
    MAX_EVENTS,
    AlertReceived,
    ApplicationDataReceived,
    ConnectionClosed,
    Event,
    HandshakeCompleted,
)
from dtlsfast.exceptions import (
    ConfigurationError,
    ConnectionClosedError,
    DecodeError,
    DtlsError,
    HandshakeError,
    HandshakeTimeoutError,
    InternalError,
    LocalProtocolError,
    RemoteProtocolError,
)
from dtlsfast.flight import FlightItem
from dtlsfast.handshake import abbreviated
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.cert_types import (
    CertificateType,
    choose_certificate_type,
)
from dtlsfast.handshake.certificates import (
    ECDSA_SIGN,
    CertificateMessage,
    CertificateRequest,
    CertificateVerify,
    ServerKeyExchangeEcdhe,
    certificate_public_key,
    decode_raw_public_key_certificate,
    encode_raw_public_key_certificate,
    load_spki,
    parse_certificate_chain,
    public_key_spki,
)
from dtlsfast.handshake.constants import (
    DTLS_1_2,
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    alert_name,
)
from dtlsfast.handshake.ecdhe import (
    KeyShare,
    choose_group,
)
from dtlsfast.handshake.messages import (
    alert_payload,
    decode_alert,
)
from dtlsfast.handshake.randoms import hello_random
from dtlsfast.handshake.signatures import (
    OFFERED_SCHEMES,
    VerifyingKey,
    choose_scheme,
    sign,
    verify,
)
from dtlsfast.handshake.suites import SUITES_BY_CODE, CipherSuite
from dtlsfast.handshake.verification import verify_chain, verify_raw_public_key
from dtlsfast.record_layer import Record, RecordLayer, new_counter, write_overhead
from dtlsfast.resumption.saved_session import SavedSession
from dtlsfast.settled_connection import FINAL_FLIGHT_LIFETIME, SettledConnection

if TYPE_CHECKING:
    from dtlsfast.store.records import SessionRecord

#: A client's ClientHello fields, kept to send it again with the cookie:
#: (random, session_id, cipher suite codes, extensions as (type, data)).
_ClientHelloFields = tuple[bytes, bytes, tuple[int, ...], tuple[tuple[int, bytes], ...]]

#: TLS_EMPTY_RENEGOTIATION_INFO_SCSV, RFC 5746 §3.3.
EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
#: Largest record plaintext, RFC 5246 §6.2.1.
MAX_PLAINTEXT = 16384
#: A server may answer with HelloVerifyRequest more than once (a cookie secret
#: rotated between the two hellos); a client stops following after this many.
MAX_HELLO_VERIFY = 4
#: Largest record sequence number (48 bits, RFC 6347 §4.1).
MAX_SEQUENCE_NUMBER = (1 << 48) - 1
#: The server answers a ClientHello in epoch 0 from the hello's own record
#: sequence number on (it must stay above the HelloVerifyRequest's, RFC 6347
#: §4.2.1). A hello that leaves fewer numbers than this is refused: every
#: flight of the handshake, each retransmission of it and the alerts together
#: use a few thousand at most, and a genuine client's second hello has a
#: sequence number near 1.
EPOCH0_SEQUENCE_RESERVE = 1 << 32
#: The handshake messages that follow a ClientHello on either side (the
#: server's ServerHello to Finished: six; the client's Certificate to
#: Finished: four) number from the hello's message_seq on, which is 16 bits
#: (RFC 6347 §4.2.2): a hello above this leaves no room for them.
MAX_HELLO_MESSAGE_SEQ = 0xFFFF - 6
_tuple_new = tuple.__new__
_HANDSHAKE = ContentType.HANDSHAKE
_CHANGE_CIPHER_SPEC = ContentType.CHANGE_CIPHER_SPEC
_ALERT = ContentType.ALERT
_APPLICATION_DATA = ContentType.APPLICATION_DATA

#: RFC 6347 §4.2.4: an implementation answers a retransmitted flight with its
#: own; dtlsfast sends at most this many bytes for every byte the peer sent
#: since our flight last went out (the anti-amplification factor of QUIC,
#: RFC 9000 §8.1).
AMPLIFICATION_LIMIT = 3


class State(enum.Enum):
    """Handshake and connection states."""

    CLIENT_START = "client_start"
    CLIENT_WAIT_SERVER_HELLO = "client_wait_server_hello"
    CLIENT_WAIT_SERVER_HELLO_DONE = "client_wait_server_hello_done"
    CLIENT_WAIT_CHANGE_CIPHER_SPEC = "client_wait_change_cipher_spec"
    CLIENT_WAIT_FINISHED = "client_wait_finished"
    SERVER_LISTEN = "server_listen"
    SERVER_WAIT_CLIENT_KEY_EXCHANGE = "server_wait_client_key_exchange"
    SERVER_WAIT_CERTIFICATE_VERIFY = "server_wait_certificate_verify"
    SERVER_WAIT_CHANGE_CIPHER_SPEC = "server_wait_change_cipher_spec"
    SERVER_WAIT_FINISHED = "server_wait_finished"
    ESTABLISHED = "established"
    CLOSED = "closed"

    # Members are singletons compared by identity: hash them by identity too,
    # in C (Enum's own __hash__ is Python, and every handshake message looks
    # its (state, type) up in _TRANSITIONS).
    __hash__ = object.__hash__


_AWAITING_FINISHED = frozenset(
    {
        State.CLIENT_WAIT_CHANGE_CIPHER_SPEC,
        State.CLIENT_WAIT_FINISHED,
        State.SERVER_WAIT_CHANGE_CIPHER_SPEC,
        State.SERVER_WAIT_FINISHED,
    }
)
#: States in which the peer's ChangeCipherSpec has arrived: it writes epoch 1.
_PEER_IN_NEW_EPOCH = frozenset(
    {State.CLIENT_WAIT_FINISHED, State.SERVER_WAIT_FINISHED, State.ESTABLISHED}
)
#: The states and types the per-record path compares with, as module
#: globals: an Enum attribute costs a class attribute lookup each time.
_SERVER_LISTEN = State.SERVER_LISTEN
_ESTABLISHED = State.ESTABLISHED
_CLOSED = State.CLOSED
_CLOSED_OR_ESTABLISHED = frozenset({State.CLOSED, State.ESTABLISHED})
#: States that judge each handshake fragment before it is pushed (a listening
#: server's ClientHello sequence rules; an established connection pushes none).
_JUDGE_EACH_FRAGMENT = frozenset({State.SERVER_LISTEN, State.ESTABLISHED})
_AWAITING_CHANGE_CIPHER_SPEC = frozenset(
    {State.CLIENT_WAIT_CHANGE_CIPHER_SPEC, State.SERVER_WAIT_CHANGE_CIPHER_SPEC}
)
_CLIENT_WAIT_FINISHED = State.CLIENT_WAIT_FINISHED
_SERVER_WAIT_FINISHED = State.SERVER_WAIT_FINISHED
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
# The same for what every new connection starts with (about 75 ns an Enum
# attribute in CPython 3.11), for the client's states on the way, and for the
# server's state after its flight.
_CLIENT_START = State.CLIENT_START
_CLIENT_WAIT_SERVER_HELLO = State.CLIENT_WAIT_SERVER_HELLO
_CLIENT_WAIT_SERVER_HELLO_DONE = State.CLIENT_WAIT_SERVER_HELLO_DONE
_CLIENT_WAIT_CHANGE_CIPHER_SPEC = State.CLIENT_WAIT_CHANGE_CIPHER_SPEC
_SERVER_WAIT_CLIENT_KEY_EXCHANGE = State.SERVER_WAIT_CLIENT_KEY_EXCHANGE
_X509 = CertificateType.X509
_NEVER = -float("inf")
_NO_EXTENSIONS: frozenset[int] = frozenset()
#: A clean close's event, one for all (events are frozen).
_CLOSED_CLEANLY = ConnectionClosed(None)
#: HandshakeCompleted events by (suite, PSK identity, extended master
#: secret), shared (events are frozen); emptied when it holds this many.
MAX_COMPLETED_EVENTS = 256
_COMPLETED: dict[tuple[str, bytes | None, bool], HandshakeCompleted] = {}
#: The deadline of a final flight kept until the peer's data shows it arrived.
_FOREVER = float("inf")
_FINISHED = HandshakeType.FINISHED
#: A flight item's payload, for map() (settled_final_flight).
_PAYLOAD = operator.attrgetter("payload")
#: take_output()'s answer when nothing is queued (shared: it is empty).
_NOTHING: tuple[()] = ()
#: The ChangeCipherSpec of a handshake's epoch 0 as a flight item, made once.
_CHANGE_CIPHER_SPEC_AT_0 = FlightItem(0, _CHANGE_CIPHER_SPEC, b"\x01")


class _Abort(Exception):
    """Internal: stop the handshake with a fatal alert."""

    def __init__(self, alert: int, message: str) -> None:
        super().__init__(message)
        self.alert = alert


Handler = Callable[["DtlsConnection", bytes, bytes], None]


class DtlsConnection:
    """One DTLS 1.2 association with one peer.

    Drive it with :meth:`receive_datagram`, :meth:`handle_timer` and
    :meth:`datagrams_to_send`; read what happened with :meth:`next_event`
    (or take the datagrams and the events in one call: :meth:`take_output`).
    A client starts with :meth:`connect`; a server connection is created for
    a ClientHello that passed the cookie exchange
    (:class:`~dtlsfast.cookie_gate.CookieGate`) and fed that datagram.
    """

    # Slots, not a __dict__: a gateway holds one connection per session, and
    # a dict of this many attributes costs about a kilobyte more.
    __slots__ = (
        "_auth_failures_at_ccs",
        "_backend",
        "_certificate_requested",
        "_client_certificate_seen",
        "_client_certificate_type",
        "_client_groups",
        "_client_hello",
        "_client_random",
        "_ecdh_secret",
        "_events",
        "_flight",
        "_flight_bytes",
        "_flight_open",
        "_hello_body",
        "_hello_hint",
        "_hello_verify_count",
        "_identity_hint",
        "_key_share",
        "_master",
        "_new_ticket",
        "_offer",
        "_offered_cid",
        "_offered_client_types",
        "_offered_extensions",
        "_offered_server_types",
        "_out",
        "_peer_repeated",
        "_peer_schemes",
        "_peer_trigger",
        "_pending_trigger",
        "_psk",
        "_reassembler",
        "_received_since_flight",
        "_resumed",
        "_retransmits",
        "_send_seq",
        "_server_certificate_type",
        "_server_key_exchange_seen",
        "_server_random",
        "_session_id",
        "_ticket_promised",
        "_timeout",
        "_timer_at",
        "_transcript",
        "_triggered_at",
        "_unknown_identity",
        "_unoffered",
        "cipher_suite",
        "config",
        "connection_id",
        "counters",
        "extended_master_secret",
        "peer",
        "peer_certificate_type",
        "peer_certificates",
        "peer_connection_id",
        "peer_public_key",
        "peer_record_size_limit",
        "psk_identity",
        "records",
        "state",
    )

    def __init__(
        self,
        config: DtlsConfiguration,
        peer: Hashable = None,
        *,
        connection_id: bytes | None = None,
        reassembly_budget: Any = None,
        reassembly_source: bytes | None = None,
        resume: SavedSession | None = None,
    ) -> None:
        """``resume`` (client only): a session to offer to resume (an earlier
        connection's :attr:`resumption`); a full handshake if the server
        refuses it. ``connection_id`` is the CID to offer (RFC 9146 §3), for a server
        that keeps its CIDs unique; by default a random one of
        ``config.connection_id_length`` bytes, or none if that is None.
        ``reassembly_budget`` is the backend's ``ReassemblyBudget`` that a
        server shares among its connections' handshake reassembly, charging
        ``reassembly_source`` (the peer's network)."""
        self.config = config
        self.peer = peer
        if connection_id is None and config.connection_id_length is not None:
            connection_id = os.urandom(config.connection_id_length)
        if connection_id is not None and len(connection_id) > ext.MAX_CONNECTION_ID_LENGTH:
            raise ConfigurationError(
                f"connection_id is {len(connection_id)} bytes; RFC 9146 §3 allows 0 to 255"
            )
        self._offered_cid = connection_id
        self.connection_id: bytes | None = None
        """The CID the peer puts on records to us, once negotiated (RFC 9146)."""
        self.peer_connection_id: bytes | None = None
        """The CID we put on records to the peer, once negotiated (RFC 9146)."""
        self._backend = load_backend(config.backend)
        self.records = RecordLayer(self._backend, config.replay_window)
        self._reassembler: Any = self._backend.HandshakeReassembler(
            max_message_size=config.max_handshake_message,
            max_buffered_bytes=2 * config.max_handshake_message,
            budget=reassembly_budget,
            source=reassembly_source,
        )
        self.state = _CLIENT_START if config.is_client else _SERVER_LISTEN
        self.counters: Counter[str] = new_counter()
        # A list, not a deque: events are drained at once, and a deque costs
        # ~600 bytes per connection even when empty.
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._transcript = self._backend.HandshakeTranscript()
        self._send_seq = 0
        # Retransmission (RFC 6347 §4.2.4).
        self._flight: list[FlightItem] = []
        self._flight_open: list[FlightItem] = []
        self._timer_at: float | None = None
        self._timeout = config.initial_timeout
        self._retransmits = 0
        # What tells a retransmission of the peer's last flight: (epoch, the
        # whole message), see _answer_peer_retransmission.
        self._peer_trigger: tuple[int, bytes] | None = None
        self._pending_trigger: tuple[int, bytes] | None = None
        self._peer_repeated = False
        self._triggered_at = _NEVER
        self._flight_bytes = 0
        self._received_since_flight = 0
        # bad_auth drops counted when a ChangeCipherSpec opened the read epoch
        # in the datagram being handled (None in any other datagram).
        self._auth_failures_at_ccs: int | None = None
        self._unknown_identity = False
        # Negotiated parameters.
        self.cipher_suite: CipherSuite | None = None
        self.psk_identity: bytes | None = None
        self.extended_master_secret = False
        self.peer_record_size_limit: int | None = None
        self._client_random = b""
        self._server_random = b""
        self._master = b""
        # Our ClientHello's fields, sent again with the cookie (RFC 6347
        # §4.2.1): (random, session_id, cipher suites, extensions).
        self._client_hello: _ClientHelloFields | None = None
        self._offered_extensions = _NO_EXTENSIONS
        self._hello_verify_count = 0
        self._identity_hint: bytes | None = None
        self._psk = b""
        # ECDHE_PSK (RFC 5489): our ephemeral key and the ECDH result.
        self._key_share: KeyShare | None = None
        self._ecdh_secret: bytes | None = None
        self._client_groups: list[int] | None = None
        # ECDHE_ECDSA (RFC 8422): certificates and signatures.
        self.peer_certificates: list[x509.Certificate] | None = None
        """The peer's verified certificate chain, leaf first, if it sent one."""
        self.peer_public_key: VerifyingKey | None = None
        """The peer's authenticated public key: the leaf's key, or its raw
        public key (RFC 7250) when that is the negotiated certificate type."""
        self.peer_certificate_type: CertificateType | None = None
        """X509 or RAW_PUBLIC_KEY, once the peer presented a key."""
        # RFC 7250 §4: the certificate types negotiated in the hellos (X.509
        # unless the extensions say otherwise).
        self._server_certificate_type = _X509
        self._client_certificate_type = _X509
        self._offered_server_types: list[int] | None = None
        self._offered_client_types: list[int] | None = None
        self._peer_schemes: list[int] | None = None
        self._certificate_requested = False
        self._client_certificate_seen = False
        self._server_key_exchange_seen = False
        # Resumption (dtlsfast.handshake.abbreviated).
        if resume is not None and not (config.is_client and isinstance(resume, SavedSession)):
            raise ConfigurationError(
                "resume= takes a client connection's .resumption (a SavedSession), "
                "and only for a client"
            )
        self._offer = resume
        self._resumed: str | None = None
        self._session_id = b""
        self._ticket_promised = False
        self._new_ticket: tuple[int, bytes] | None = None
        # (body, decoded, datagram): a ClientHello body the server already
        # decoded for admission, so that the connection does not decode it
        # again; and the datagram it came in if that is one epoch-0 record
        # holding just this whole hello, within max_handshake_message
        # (_receive_whole_hello), else None.
        self._hello_hint: tuple[bytes, Any, bytes | None] | None = None

    # ------------------------------------------------------------------ API

    @property
    def is_client(self) -> bool:
        return self.config.is_client

    @property
    def established(self) -> bool:
        return self.state is State.ESTABLISHED

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def resumption(self) -> SavedSession | None:
        """Client side, once established: what to pass to ``connect(...,
        resume=...)`` to resume this session later (RFC 5246 §7.3, RFC 5077),
        or None if the server offered neither a session ID nor a ticket.
        It holds the session's master secret."""
        return abbreviated.saved_session(self)

    @property
    def resumed(self) -> str | None:
        """How this handshake resumed a session: ``"ticket"`` or
        ``"session_id"``; None for a full handshake."""
        return self._resumed

    @property
    def client_random(self) -> bytes:
        """The ClientHello random of this handshake (empty before it)."""
        return self._client_random

    @property
    def drops(self) -> Counter[str]:
        """Records dropped by the record layer, by reason (RFC 6347 §4.1.2.7)."""
        return self.records.drops

    def count_drop(self, reason: str, count: int = 1) -> None:
        """Count records an endpoint dropped on this connection's behalf."""
        self.records.drops[reason] += count

    def discard_handshake_buffers(self) -> None:
        """Give back what partial handshake messages hold (to the server's
        reassembly budget): the endpoint is done with this connection."""
        self._reassembler.discard()

    def clear_counts(self) -> None:
        """Forget the drops, retransmissions and unknown PSK identities (the
        endpoint took them over)."""
        self.records.drops.clear()
        self.counters["retransmissions"] = 0
        self.counters["unknown_psk_identity"] = 0

    def connect(self, now: float) -> None:
        """Start the handshake (client only): queue the first ClientHello."""
        if self.state is not _CLIENT_START:
            raise LocalProtocolError("connect() is for a new client connection only")
        plan = self.config.client_hello_plan
        random = hello_random()
        self._client_random = random
        if plan.offered_client_types is not None:
            self._offered_client_types = list(plan.offered_client_types)
        cid = self._offered_cid
        session_id, ticket_extensions = abbreviated.client_hello_session(self)
        # One tuple concatenation without a connection ID, the common case.
        if cid is None:
            extensions = plan.extensions + ticket_extensions
        else:
            extensions = (
                *plan.extensions,
                (ExtensionType.CONNECTION_ID, ext.encode_connection_id(cid)),
                *ticket_extensions,
            )
        self._client_hello = (random, session_id, plan.suite_codes, extensions)
        self._offered_extensions, self._unoffered = plan.offered(
            extensions, (cid is not None, len(ticket_extensions))
        )
        self.state = _CLIENT_WAIT_SERVER_HELLO
        # The transcript is new (the state was CLIENT_START): nothing to reset.
        self._hello_body: tuple[_ClientHelloFields, bytes] | None = None
        self._queue_client_hello(b"")
        self._send_flight(now, expect_reply=True)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Process one datagram from the peer.

        Never raises: whatever the peer sends is dropped and counted, or ends
        the connection with the right alert; an unexpected error (a defect)
        ends this connection with internal_error (see the module)."""
        if self.state is _CLOSED:
            return
        try:
            self._receive_datagram(data, now)
        except Exception as exc:
            self._internal_error(exc)

    def _receive_datagram(self, data: bytes, now: float) -> None:
        self._received_since_flight += len(data)
        self._auth_failures_at_ccs = None
        try:
            hint = self._hello_hint
            if hint is not None and hint[2] is data:
                self._receive_whole_hello(data, now)
            else:
                for record in self.records.receive(data):
                    self._handle_record(record, now)
                    if self.state is _CLOSED:
                        return
        except _Abort as abort:
            self._fail(abort.alert, str(abort))
            return
        except DecodeError as exc:
            self._fail(AlertDescription.DECODE_ERROR, f"malformed message: {exc}")
            return
        except HandshakeError as exc:
            self._fail(exc.alert or AlertDescription.HANDSHAKE_FAILURE, str(exc))
            return
        failures_at_ccs = self._auth_failures_at_ccs
        if (
            failures_at_ccs is not None
            and self.records.drops.get("bad_auth", 0) > failures_at_ccs
            and self.state in _AWAITING_FINISHED
        ):
            # The record after the ChangeCipherSpec in the peer's own datagram,
            # its Finished, failed to open: the peer derived other keys, almost
            # always from another PSK. RFC 6347 §4.1.2.7 allows a fatal
            # bad_record_mac; a forger cannot add a record to that datagram.
            self._fail(AlertDescription.BAD_RECORD_MAC, self._finished_failed())
            return
        if self._peer_repeated:
            self._answer_peer_retransmission(now)

    def _finished_failed(self) -> str:
        """What to say when the peer's protected records do not open."""
        role = "server" if self.is_client else "client"
        message = (
            f"the {role}'s Finished failed authentication: the two sides use different keys "
            "(check the PSK)"
        )
        if self._unknown_identity:
            # Only in our own error, never to the peer (RFC 4279 §2).
            message += f"; its PSK identity {self.psk_identity!r} is not in the PSK store"
        return message

    def _internal_error(self, exc: Exception) -> None:
        """A defect met the peer's input: fail this connection alone."""
        self.counters["internal_errors"] += 1
        error = InternalError(
            f"internal error on the peer's input ({type(exc).__name__}: {exc}); the connection "
            "was closed with internal_error. This is a defect in dtlsfast: please report it"
        )
        error.__cause__ = exc
        self._flight_open = []
        with contextlib.suppress(Exception):
            self._send_alert(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
        self._close(error)

    @property
    def settled(self) -> bool:
        """Established with nothing of the handshake left to wait for (no
        timer, no pending epoch) and our last flight, if still owed, in a
        form the slim connection can send again (:meth:`settled_final_flight`):
        the record state may move to a session table, right after the
        handshake (:meth:`settle_into`)."""
        return self.settled_final_flight() is not False

    @property
    def _peer_last_message_seq(self) -> int | None:
        """The message_seq of the peer's last flight's trigger, if any."""
        trigger = self._peer_trigger
        return None if trigger is None else int.from_bytes(trigger[1][4:6], "big")

    def settled_final_flight(self) -> tuple[int, list[bytes]] | Literal[False] | None:
        """False unless :attr:`settled`; else what :meth:`settle_into` takes
        as ``final``: what the slim connection needs to send our last flight
        again, if it answered the peer's Finished (a full handshake; RFC 6347
        §4.2.4) and the peer has not shown it arrived: the next write
        sequence number of the epoch before the current one and the flight's
        handshake messages, those of that epoch (a NewSessionTicket, RFC
        5077) and the Finished last, the ChangeCipherSpec between them
        implied. None if no flight is owed; False too if this one does not
        have that shape, or a message would not fit one datagram unfragmented
        (then the full connection keeps it until the peer's data shows it
        arrived)."""
        if (
            self.state is not State.ESTABLISHED
            or self._timer_at is not None
            or self.records.has_pending_read
        ):
            return False
        trigger = self._peer_trigger
        flight = self._flight
        if trigger is None or trigger[0] == 0 or not flight:
            return None
        epoch = self.records.write_epoch
        *before, ccs, finished = flight
        if (
            ccs != (epoch - 1, ContentType.CHANGE_CIPHER_SPEC, b"\x01")
            or finished.epoch != epoch
            or finished.content_type != ContentType.HANDSHAKE
        ):
            return False
        mtu = self.config.mtu
        for item in before:  # a loop, not any() of a generator: two calls less
            if (
                item.epoch != epoch - 1
                or item.content_type != ContentType.HANDSHAKE
                or 13 + len(item.payload) > mtu
            ):
                return False
        # map() of an attrgetter, not a list comprehension: no Python frame.
        messages = [*map(_PAYLOAD, before), finished.payload]
        return self.records.next_write_sequence(epoch - 1), messages

    def settle_into(
        self,
        table: Any,
        session_id: int,
        now: float | None = None,
        *,
        final: tuple[int, list[bytes]] | Literal[False] | None = False,
    ) -> SettledConnection:
        """Move the record state of a settled server connection into ``table``
        (the backend's SessionTable) under ``session_id`` and return the slim
        connection that carries on in its place (:mod:`dtlsfast.settled_connection`).

        If our last flight answered the peer's Finished (a full handshake:
        a NewSessionTicket perhaps, our ChangeCipherSpec and Finished), what
        it takes to pack it again goes along (:meth:`settled_final_flight`), to be
        sent again, as new records, if the peer repeats its Finished until
        ``now`` + :data:`~dtlsfast.settled_connection.FINAL_FLIGHT_LIFETIME`
        (RFC 6347 §4.2.4; None keeps it until the peer's data arrives). This
        connection must not be used afterwards. ``final``: what
        :meth:`settled_final_flight` just returned, if the caller asked (so
        that it is not worked out twice)."""
        config = self.config
        if config.is_client:
            final = False
        elif final is False:
            final = self.settled_final_flight()
        if final is False:
            raise LocalProtocolError("only a settled server connection can join the session table")
        records = self.records
        read, write = records.install_in_table(table, session_id)
        cids = None
        if read.cid or write.cid:
            table.set_connection_ids(session_id, read.cid, write.cid)
            cids = (read.cid, write.cid)
        self.state = State.CLOSED  # its keys, window and sequence numbers moved
        self._flight = []
        suite = self.cipher_suite
        return SettledConnection(
            table,
            session_id,
            config,
            self.peer,
            (
                records.read_epoch,
                self._reassembler.next_seq,
                self._peer_last_message_seq,
                self._max_payload(write_overhead(write)),
                None if suite is None else suite.code,
                self.extended_master_secret,
                self.psk_identity,
                self.peer_record_size_limit,
            ),
            (self.peer_certificates, self.peer_public_key, self.peer_certificate_type),
            cids,
            None
            if final is None
            else (
                _FOREVER if now is None else now + FINAL_FLIGHT_LIFETIME,
                final[0],
                self._client_random,
                final[1],
            ),
            self._session_id,
        )

    # -- the session store (dtlsfast.store) -----------------------------------

    def session_record(
        self, key: bytes, limit: int, created: int, scratch: Any
    ) -> SessionRecord | None:
        """An established server connection that is not in the session table
        (it was full, or the connection is not settled yet) for the store under ``key``:
        its current epochs with ``limit`` as the write sequence number,
        through ``scratch`` (an empty SessionTable of its backend). None if
        not established."""
        from dtlsfast.store.connection_state import build_record

        if not self.established or self.is_client or self.cipher_suite is None:
            return None
        return build_record(
            key,
            self.records.export_current(scratch, limit, self.peer),
            created,
            cipher_suite=self.cipher_suite,
            extended_master_secret=self.extended_master_secret,
            next_message_seq=self._reassembler.next_seq,
            peer_last_message_seq=self._peer_last_message_seq,
            psk_identity=self.psk_identity,
            peer_certificate_type=self.peer_certificate_type,
            peer_public_key=self.peer_public_key,
            peer_certificates=self.peer_certificates,
            local_cid=self.connection_id,
            peer_cid=self.peer_connection_id,
            record_size_limit=self.peer_record_size_limit,
        )

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Everything queued for the peer since the last call."""
        out, self._out = self._out, []
        return out

    def take_output(self) -> tuple[Sequence[bytes], Sequence[Event]]:
        """What :meth:`datagrams_to_send` and :meth:`next_event` until None
        would hand over, in one call: the datagrams queued for the peer and
        the pending events, oldest first (the caller's to keep; an empty
        tuple for none, so that nothing queued later lands in them). An
        endpoint's per-datagram path (the server's flush) takes both this way."""
        out: Sequence[bytes] = self._out
        events: Sequence[Event] = self._events
        if out:
            self._out = []
        else:
            out = _NOTHING
        if events:
            self._events = []
        else:
            events = _NOTHING
        return out, events

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None."""
        return self._timer_at

    def handle_timer(self, now: float) -> None:
        """Retransmit the last flight if its timer expired (RFC 6347 §4.2.4.1).
        Never raises (see :meth:`receive_datagram`)."""
        if self._timer_at is None or now < self._timer_at:
            return
        try:
            self._handle_timer(now)
        except Exception as exc:
            self._internal_error(exc)

    def _handle_timer(self, now: float) -> None:
        if self._retransmits >= self.config.max_retransmissions:
            self._timer_at = None
            self._close(
                HandshakeTimeoutError(
                    f"handshake timed out: no answer after {self._retransmits} "
                    f"retransmissions{self._timeout_hint()}"
                )
            )
            return
        self._retransmits += 1
        self.counters["retransmissions"] += 1
        self._timeout = min(self._timeout * 2, self.config.max_timeout)
        self._send_flight(now, again=True)
        self._timer_at = now + self._timeout

    def _timeout_hint(self) -> str:
        """Why the handshake probably stalled, for the timeout's message."""
        failures = self.records.drops["bad_auth"]
        if failures and self.state in _AWAITING_FINISHED:
            hint = (
                f"; the peer's protected records failed authentication {failures} times, which "
                "usually means the two sides use different keys (check the PSK)"
            )
            if self._unknown_identity:
                hint += f"; the client's PSK identity {self.psk_identity!r} is not in the PSK store"
            return hint
        suite = self.cipher_suite
        if self.state is State.CLIENT_WAIT_CHANGE_CIPHER_SPEC and suite and suite.uses_psk:
            return (
                "; the server answered our hello but not our Finished, which usually means it "
                f"has another key for PSK identity {self.psk_identity!r}, or does not know it"
            )
        return ""

    def send(self, data: bytes) -> None:
        """Send ``data`` as one application_data record."""
        if self.state is State.CLOSED:
            raise ConnectionClosedError("the connection is closed; open a new one")
        if self.state is not State.ESTABLISHED:
            raise LocalProtocolError("the handshake has not completed; wait for it before send()")
        limit = self.max_payload
        if len(data) > limit:
            raise LocalProtocolError(
                f"{len(data)} bytes do not fit in one record here (at most {limit} with "
                f"mtu={self.config.mtu}); split the data or raise the mtu"
            )
        self._out.append(self.records.seal(ContentType.APPLICATION_DATA, bytes(data)))

    @property
    def max_payload(self) -> int:
        """Largest application payload one record (one datagram) can carry."""
        return self._max_payload(self.records.write_overhead)

    def _max_payload(self, overhead: int) -> int:
        """:attr:`max_payload` with records that add ``overhead`` bytes."""
        limit = min(MAX_PLAINTEXT, self.config.mtu - overhead)
        if self.peer_record_size_limit is not None:
            limit = min(limit, self.peer_record_size_limit)
        return limit

    def close(self) -> None:
        """Send close_notify and close (RFC 5246 §7.2.1)."""
        if self.state is _CLOSED:
            return
        self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
        self._close(None)

    def abort(self) -> None:
        """Close at once without telling the peer (as a reboot would)."""
        self._close(None)

    def next_event(self) -> Event | None:
        """The next pending event, or None."""
        return self._events.pop(0) if self._events else None

    # ----------------------------------------------------------- records

    def _handle_record(self, record: Record, now: float) -> None:
        ctype = record.content_type
        if len(record.payload) > MAX_PLAINTEXT:
            if record.epoch == 0 and self.state in _PEER_IN_NEW_EPOCH:
                self.records.drops["record_overflow"] += 1  # unauthenticated: ignore
                return
            raise _Abort(
                AlertDescription.RECORD_OVERFLOW,
                f"the peer sent a record of {len(record.payload)} bytes of plaintext; "
                f"RFC 5246 §6.2.1 allows at most {MAX_PLAINTEXT}",
            )
        if ctype == _HANDSHAKE:
            if self.state is _ESTABLISHED and record.epoch == 0:
                # Unauthenticated: only good for spotting a retransmitted
                # flight; anything malformed is dropped, never alerted.
                try:
                    self._handle_handshake_record(record, now)
                except (DecodeError, _Abort):
                    self.records.drops["malformed_handshake"] += 1
                return
            self._handle_handshake_record(record, now)
        elif ctype == _CHANGE_CIPHER_SPEC:
            self._handle_change_cipher_spec(record, now)
        elif ctype == _ALERT:
            self._handle_alert(record)
        elif ctype == _APPLICATION_DATA:
            if self.state is not _ESTABLISHED or record.epoch == 0:
                self.records.drops["unexpected_application_data"] += 1
                return
            if self._flight and (not self.config.is_client or self._resumed is not None):
                # The peer sent data in the new epoch, so it has our
                # Finished: the last flight is no longer needed.
                self._flight = []
                self.records.forget_previous_epochs()
            self._push_event(ApplicationDataReceived(record.payload))
        else:
            self.records.drops["unknown_content_type"] += 1

    def _receive_whole_hello(self, data: bytes, now: float) -> None:
        """The server's first datagram when it is one epoch-0 record holding
        just the whole ClientHello it decoded (``_hello_hint``): what the
        record layer and the reassembler would make of it is known, so the
        hello goes straight to the state machine."""
        message_seq = data[17] << 8 | data[18]
        if self.state is _SERVER_LISTEN and self._take_client_hello(
            int.from_bytes(data[5:11], "big"), message_seq
        ):
            self._reassembler.next_seq = message_seq + 1  # delivered, as push() would
            self._handle_message(data[13:], 0, now)

    def _take_client_hello(self, record_sequence: int, message_seq: int) -> bool:
        """A ClientHello to a listening server: our record and message
        sequence numbers continue from the hello's (RFC 6347 §4.2.1, §4.2.2)
        and the next message expected follows it; False if they leave no
        room for our flights (counted; nothing of it is taken over)."""
        if (
            record_sequence > MAX_SEQUENCE_NUMBER - EPOCH0_SEQUENCE_RESERVE
            or message_seq > MAX_HELLO_MESSAGE_SEQ
        ):
            self.records.drops["hello_sequence_exhausted"] += 1
            self._hello_hint = None  # it described this hello
            return False
        self._reassembler.next_seq = message_seq
        self._send_seq = message_seq
        # Stay above the HelloVerifyRequest's record sequence number.
        self.records.set_write_sequence(0, record_sequence)
        return True

    def _handle_handshake_record(self, record: Record, now: float) -> None:
        reassembler = self._reassembler
        payload = record.payload
        epoch = record.epoch
        offset = 0
        while True:
            # The reassembler pushes the fragments itself, stopping after one
            # that delivers messages, and leaves us those below next_seq; a
            # listening server and an established connection judge each
            # fragment first, so they get them one at a time, unpushed.
            judged, messages, offset = reassembler.push_record(
                payload, offset, self.state not in _JUDGE_EACH_FRAGMENT
            )
            for msg_type, message_seq, piece in judged:
                if (
                    self.state is _SERVER_LISTEN
                    and msg_type == _CLIENT_HELLO
                    and not self._take_client_hello(record.sequence_number, message_seq)
                ):
                    continue
                if message_seq < reassembler.next_seq:
                    if self._peer_trigger == (epoch, piece):
                        self._peer_repeated = True
                        self.counters["peer_retransmissions"] += 1
                    elif self.state is _ESTABLISHED and epoch > 0:
                        self._refuse_renegotiation(msg_type)
                    continue
                if self.state is _ESTABLISHED:
                    if epoch == 0:
                        self.records.drops["unexpected_handshake"] += 1
                    else:
                        self._refuse_renegotiation(msg_type)
                    continue
                # The one fragment of a listening server: pushed here.
                messages = reassembler.push(piece)
            for message in messages:
                self._handle_message(message, epoch, now)
                if self.state in _CLOSED_OR_ESTABLISHED:
                    break
            if not offset:
                return

    def _answer_peer_retransmission(self, now: float) -> None:
        """The peer repeated its last flight, so ours was lost: send it again
        (RFC 6347 §4.2.4), at most once per timer period and only when the
        peer sent at least 1/AMPLIFICATION_LIMIT of its size since it last
        went out. Otherwise our own timer resends it."""
        if not self._peer_repeated or not self._flight:
            return
        if now < self._triggered_at + self._timeout:
            return
        if AMPLIFICATION_LIMIT * self._received_since_flight < self._flight_bytes:
            return
        self._triggered_at = now
        self.counters["retransmissions"] += 1
        self._send_flight(now, again=True)

    def _refuse_renegotiation(self, msg_type: int) -> None:
        if msg_type in (HandshakeType.CLIENT_HELLO, HandshakeType.HELLO_REQUEST):
            self.counters["renegotiation_refused"] += 1
            self._send_alert(AlertLevel.WARNING, AlertDescription.NO_RENEGOTIATION)

    def _handle_message(self, message: bytes, epoch: int, now: float) -> None:
        msg_type = message[0]
        handler = _TRANSITIONS.get((self.state, msg_type))
        if handler is None:
            raise _Abort(
                AlertDescription.UNEXPECTED_MESSAGE,
                f"unexpected handshake message {msg_type} in state {self.state.value}",
            )
        if msg_type == _FINISHED and epoch != self.records.read_epoch:
            raise _Abort(AlertDescription.UNEXPECTED_MESSAGE, "Finished outside the new epoch")
        handler(self, message[12:], message)
        if self._flight_open:
            self._send_flight(now, expect_reply=self.state is not _ESTABLISHED)

    def _handle_change_cipher_spec(self, record: Record, now: float) -> None:
        if self.state not in _AWAITING_CHANGE_CIPHER_SPEC:
            # A retransmitted one, one before its time, or a forgery (epoch 0
            # is unauthenticated): dropped before it is even parsed (§4.1).
            self.records.drops["unexpected_change_cipher_spec"] += 1
            return
        if record.payload != b"\x01":
            raise _Abort(AlertDescription.DECODE_ERROR, "malformed ChangeCipherSpec")
        self.state = _CLIENT_WAIT_FINISHED if self.config.is_client else _SERVER_WAIT_FINISHED
        for held in self.records.activate_read():
            self._handle_record(held, now)
            if self.state is _CLOSED:
                return
        # Records held from earlier datagrams may be anyone's: only a failure
        # later in this datagram is the peer's own Finished failing.
        self._auth_failures_at_ccs = self.records.drops.get("bad_auth", 0)

    def _handle_alert(self, record: Record) -> None:
        if record.epoch == 0 and self.state in _PEER_IN_NEW_EPOCH:
            # Unauthenticated once the peer's keys are in use: ignore (anyone
            # can forge it; the peer itself sends alerts in the new epoch).
            self.records.drops["unauthenticated_alert"] += 1
            return
        level, description = decode_alert(record.payload)  # DecodeError: decode_error
        self._push_event(AlertReceived(level, description))
        if description == AlertDescription.CLOSE_NOTIFY:
            self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
            self._close(None)
        elif level == AlertLevel.FATAL:
            name = alert_name(description)
            if self.state is State.ESTABLISHED:
                self._close(RemoteProtocolError(f"peer sent fatal alert {name}"))
            else:
                self._close(
                    HandshakeError(f"handshake failed: peer sent alert {name}", description)
                )

    # ------------------------------------------------------------ flights

    def _queue_message(self, message: bytes) -> None:
        """Queue a whole message encoded with ``self._send_seq`` (the codecs
        of the backend take it), and add it to the transcript (our Finished,
        which the transcript makes, is queued by
        :meth:`_queue_change_cipher_spec_and_finished`)."""
        self._send_seq += 1
        self._transcript.add(message)
        # FlightItem(...) without its Python-level __new__ (one per message).
        self._flight_open.append(
            _tuple_new(FlightItem, (self.records.write_epoch, _HANDSHAKE, message))
        )

    def _send_flight(self, now: float, *, expect_reply: bool = True, again: bool = False) -> None:
        """Seal our flight into datagrams, queue them for the peer and note
        their size (the amplification bound, RFC 6347 §4.2.4): the flight
        just queued (``_flight_open``), whose retransmission state starts
        afresh, with a timer if ``expect_reply``; or, ``again``, the last
        flight once more as new records (a retransmission: the caller sees
        to the timer). One function for both, so that a new flight costs one
        call here."""
        if not again:
            self._flight, self._flight_open = self._flight_open, []
            self._timeout = self.config.initial_timeout
            self._retransmits = 0
            # The peer's flight that this one answers is now its last one.
            self._peer_trigger, self._pending_trigger = self._pending_trigger, None
            self._triggered_at = _NEVER
        datagrams = self.records.pack_flight(self._flight, self.config.mtu)
        if self._out:
            self._out.extend(datagrams)
        else:
            self._out = datagrams  # the usual case: nothing else queued
        self._flight_bytes = sum(map(len, datagrams))
        self._received_since_flight = 0
        self._peer_repeated = False
        if not again:
            self._timer_at = now + self._timeout if expect_reply else None

    def _send_alert(self, level: int, description: int) -> None:
        # Past the last sequence number nothing can be sent, not even an alert.
        # try/except rather than contextlib.suppress: no context manager
        # object per alert (every client handshake ends with close_notify).
        try:  # noqa: SIM105
            self._out.append(self.records.seal(_ALERT, alert_payload(level, description)))
        except DtlsError:
            pass

    def _fail(self, alert: int, message: str) -> None:
        self._send_alert(AlertLevel.FATAL, alert)
        self._close(HandshakeError(message, alert))

    def _close(self, error: DtlsError | None) -> None:
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        self._timer_at = None
        self._flight = []
        # Not application data: no bound to check (_push_event).
        self._events.append(_CLOSED_CLEANLY if error is None else ConnectionClosed(error))

    def _push_event(self, event: Event) -> None:
        if len(self._events) >= MAX_EVENTS and isinstance(event, ApplicationDataReceived):
            self.counters["application_data_dropped"] += 1
            return
        self._events.append(event)

    def _complete(self) -> None:
        assert self.cipher_suite is not None
        self.state = _ESTABLISHED
        self._timer_at = None
        counters = self.counters
        # get(), not += on the Counter: no __missing__ call for the first handshake.
        counters["handshakes"] = counters.get("handshakes", 0) + 1
        # Not application data: no bound to check (_push_event), appended as
        # it is. Events are frozen: one per (suite, identity, EMS) is shared,
        # as _CLOSED_CLEANLY is, rather than a dataclass built per handshake.
        key = (self.cipher_suite.name, self.psk_identity, self.extended_master_secret)
        event = _COMPLETED.get(key)
        if event is None:
            if len(_COMPLETED) >= MAX_COMPLETED_EVENTS:
                _COMPLETED.clear()
            event = _COMPLETED[key] = HandshakeCompleted(*key)
        self._events.append(event)

    def _use_connection_ids(self, local: bytes, peer: bytes) -> None:
        """Both sides sent connection_id (RFC 9146 §3): from epoch 1 on, records
        to us carry ``local`` and records we send carry ``peer`` (an empty one
        keeps the RFC 6347 format in that direction)."""
        self.connection_id = local
        self.peer_connection_id = peer
        self.records.local_cid = local
        self.records.peer_cid = peer

    # -------------------------------------------------------- key schedule

    def _derive_keys(self) -> None:
        suite = self.cipher_suite
        assert suite is not None
        # The premaster secret is built in derive_keys: RFC 4279 §2 with the
        # PSK (and the ECDH secret of ECDHE_PSK), else the ECDH secret alone.
        psk: bytes | None
        if suite.key_exchange == "ECDHE_ECDSA":
            assert self._ecdh_secret is not None
            psk = None  # RFC 8422 §5.10
        elif self.config.is_client:
            assert self.config.psk is not None
            psk = self.config.psk[1]
        else:
            psk = self._psk
        session_hash = (
            self._transcript.digest(suite.prf_hash) if self.extended_master_secret else None
        )
        self._master, read_cipher, write_cipher = self._backend.derive_keys(
            suite.prf_hash,
            suite.aead,
            psk,
            self._ecdh_secret,
            self._client_random,
            self._server_random,
            session_hash,
            self.config.is_client,
        )
        self._install_keys(read_cipher, write_cipher)

    def _install_keys(self, read_cipher: Any, write_cipher: Any) -> None:
        """Our role's ciphers from the key block (RFC 5246 §6.3) as the
        pending epoch, and the master secret to the key log."""
        self.records.install_pending(read_cipher, write_cipher)
        if self.config.keylog is not None:
            # NSS key log format, written only when configured.
            self.config.keylog.write(
                f"CLIENT_RANDOM {self._client_random.hex()} {self._master.hex()}\n"
            )
            self.config.keylog.flush()

    def _queue_change_cipher_spec_and_finished(self, label: bytes) -> None:
        """Queue the end of every handshake flight of ours that has one: a
        ChangeCipherSpec, which moves writing to the pending epoch, and our
        Finished in that epoch (RFC 5246 §7.4.9, ``label`` by our role),
        which the transcript makes over its hash and adds in the same call."""
        suite = self.cipher_suite
        assert suite is not None
        records = self.records
        epoch = records.write_epoch
        records.activate_write()
        message = self._transcript.add_finished(
            suite.prf_hash, self._master, label, self._send_seq, suite.verify_data_length
        )
        self._send_seq += 1
        # FlightItem(...) without its Python-level __new__; the ChangeCipherSpec
        # of epoch 0 (every handshake's) made once.
        self._flight_open += (
            _CHANGE_CIPHER_SPEC_AT_0
            if epoch == 0
            else _tuple_new(FlightItem, (epoch, _CHANGE_CIPHER_SPEC, b"\x01")),
            _tuple_new(FlightItem, (epoch + 1, _HANDSHAKE, message)),
        )

    def _check_peer_finished(self, message: bytes, label: bytes) -> None:
        """The peer's Finished ``message`` must verify (compared in constant
        time by the transcript, which adds it if it does), else decrypt_error
        (RFC 5246 §7.4.9)."""
        suite = self.cipher_suite
        assert suite is not None
        if not self._transcript.check_finished(
            suite.prf_hash, self._master, label, message, suite.verify_data_length
        ):
            raise _Abort(AlertDescription.DECRYPT_ERROR, "the peer's Finished does not verify")

    # ------------------------------------------------------------- client

    def _queue_client_hello(self, cookie: bytes) -> None:
        fields = self._client_hello
        assert fields is not None
        random, session_id, suites, extensions = fields
        first = self._hello_body
        if first is not None and first[0] is fields and len(cookie) <= 0xFF:
            # The hello again with the cookie (RFC 6347 §4.2.1), from the same
            # fields: the first one's body with the cookie spliced in after
            # the session_id (version 2, random 32, session_id<0..32>, cookie<0..255>).
            at = 35 + len(session_id)
            body = first[1][:at] + bytes((len(cookie),)) + cookie + first[1][at + 1 :]
            self._queue_message(self._backend.encode_handshake(_CLIENT_HELLO, self._send_seq, body))
            return
        message = self._backend.encode_client_hello(
            self._send_seq, DTLS_1_2, random, session_id, cookie, suites, b"\x00", extensions
        )
        self._queue_message(message)
        if not cookie:
            self._hello_body = (fields, message[12:])

    def _client_on_hello_verify_request(self, body: bytes, message: bytes) -> None:
        _version, cookie = self._backend.decode_hello_verify_request(body)
        self._hello_verify_count += 1
        if self._hello_verify_count > MAX_HELLO_VERIFY:
            raise _Abort(AlertDescription.HANDSHAKE_FAILURE, "too many HelloVerifyRequests")
        if not cookie:
            raise _Abort(AlertDescription.ILLEGAL_PARAMETER, "HelloVerifyRequest cookie is empty")
        # The hello before the cookie and the HelloVerifyRequest are not part of
        # the handshake hash (RFC 6347 §4.2.6).
        self._transcript.reset()
        # A repeat of this HelloVerifyRequest (its cookie) means our hello was lost.
        self._pending_trigger = (0, message)
        self._queue_client_hello(cookie)

    def _client_on_server_hello(self, body: bytes, message: bytes) -> None:
        self._transcript.add(message)  # before anything can fail
        hello = self._backend.decode_server_hello(body)
        if hello.server_version != DTLS_1_2:
            raise _Abort(
                AlertDescription.PROTOCOL_VERSION,
                f"server chose version {hello.server_version:#06x}, only DTLS 1.2 is supported",
            )
        suite = SUITES_BY_CODE.get(hello.cipher_suite)
        if suite is None or suite not in self.config.cipher_suites:
            raise _Abort(AlertDescription.ILLEGAL_PARAMETER, "server chose a suite not offered")
        if hello.compression_method != 0:
            raise _Abort(AlertDescription.ILLEGAL_PARAMETER, "server chose compression")
        unoffered = self._unoffered(hello)
        if unoffered is not None:
            raise _Abort(
                AlertDescription.UNSUPPORTED_EXTENSION,
                f"server sent extension {unoffered} that was not offered",
            )
        reneg = hello.renegotiation_info
        if reneg is not None and reneg != b"":
            raise _Abort(AlertDescription.HANDSHAKE_FAILURE, "bad renegotiation_info")
        self.extended_master_secret = hello.extended_master_secret
        if self.config.require_extended_master_secret and not self.extended_master_secret:
            raise _Abort(
                AlertDescription.HANDSHAKE_FAILURE,
                "server does not support extended master secret (RFC 7627), which is required",
            )
        formats = hello.ec_point_formats
        if formats is not None and 0 not in formats:
            raise _Abort(
                AlertDescription.ILLEGAL_PARAMETER,
                "the server's ec_point_formats lacks uncompressed (0), RFC 8422 §5.2",
            )
        if hello.record_size_limit is not None:
            self.peer_record_size_limit = hello.record_size_limit
        if suite.key_exchange == "ECDHE_ECDSA":
            self._client_check_certificate_types(
                hello.server_certificate_type, hello.client_certificate_type
            )
        cid = hello.connection_id
        if cid is not None and self._offered_cid is not None:
            # Only an offered extension gets here (checked above).
            self._use_connection_ids(self._offered_cid, cid)
        self.cipher_suite = suite
        self._server_random = hello.random
        # The server's flight ends at ServerHelloDone, which anyone can forge
        # (it is empty): a repeat of the ServerHello (its random) tells
        # that our answer to the flight was lost.
        self._pending_trigger = (0, message)
        ticket = hello.session_ticket
        if ticket is not None and ticket != b"":
            raise _Abort(AlertDescription.DECODE_ERROR, "a ServerHello's session_ticket is empty")
        if abbreviated.client_resumes(self, hello.session_id, ticket is not None):
            return
        self.state = _CLIENT_WAIT_SERVER_HELLO_DONE

    def _client_check_certificate_types(
        self, server_chosen: int | None, client_chosen: int | None
    ) -> None:
        """The types the server chose (RFC 7250 §4.2), from what we offered."""
        server_type = CertificateType.X509 if server_chosen is None else server_chosen
        if server_type not in self.config.peer_certificate_types:
            kind = _type_name(server_type)
            raise _Abort(
                AlertDescription.UNSUPPORTED_CERTIFICATE,
                f"the server authenticates with {kind}, which this client cannot verify: "
                + (
                    "give cafile= (trust roots)"
                    if server_type == CertificateType.X509
                    else "give trusted_public_keys="
                ),
            )
        self._server_certificate_type = CertificateType(server_type)
        if client_chosen is not None:
            client_type = client_chosen
            if client_type not in (self._offered_client_types or ()):
                raise _Abort(
                    AlertDescription.ILLEGAL_PARAMETER,
                    f"the server asks for a client {_type_name(client_type)}, "
                    "which was not offered",
                )
            self._client_certificate_type = CertificateType(client_type)

    def _client_on_server_key_exchange(self, body: bytes, message: bytes) -> None:
        self._transcript.add(message)  # before anything can fail
        assert self.cipher_suite is not None
        self._server_key_exchange_seen = True
        if self.cipher_suite.key_exchange == "ECDHE_ECDSA":
            self._client_on_signed_key_exchange(body)
            return
        if self.cipher_suite.key_exchange != "ECDHE_PSK":
            self._identity_hint = self._backend.decode_server_key_exchange_psk(body)
            return
        hint, group, public = self._backend.decode_server_key_exchange_ecdhe_psk(body)
        if group not in self.config.groups:
            raise _Abort(
                AlertDescription.ILLEGAL_PARAMETER,
                f"server chose ECDHE group {group}, which was not offered",
            )
        self._identity_hint = hint
        self._key_share = KeyShare(group)
        self._ecdh_secret = self._exchange(public)

    def _exchange(self, peer_public: bytes) -> bytes:
        assert self._key_share is not None
        try:
            return self._key_share.exchange(peer_public)
        except RemoteProtocolError as exc:
            raise _Abort(AlertDescription.ILLEGAL_PARAMETER, str(exc)) from None

    def _client_on_server_hello_done(self, body: bytes, message: bytes) -> None:
        self._transcript.add(message)  # before anything can fail
        self._backend.decode_server_hello_done(body)
        assert self.cipher_suite is not None
        if self.cipher_suite.key_exchange == "ECDHE_ECDSA":
            self._client_send_certificate_flight()
            return
        assert self.config.psk is not None
        self.psk_identity = self.config.psk[0]
        if self.cipher_suite.key_exchange == "ECDHE_PSK":
            if self._key_share is None:
                raise _Abort(
                    AlertDescription.UNEXPECTED_MESSAGE,
                    "ECDHE_PSK needs a ServerKeyExchange before ServerHelloDone",
                )
            self._queue_message(
                self._backend.encode_client_key_exchange_ecdhe_psk(
                    self._send_seq, self.psk_identity, self._key_share.public
                )
            )
        else:
            self._queue_message(
                self._backend.encode_client_key_exchange_psk(self._send_seq, self.psk_identity)
            )
        self._derive_keys()
        self._client_finish_flight()

    def _client_finish_flight(self) -> None:
        self._queue_change_cipher_spec_and_finished(b"client finished")
        self.state = _CLIENT_WAIT_CHANGE_CIPHER_SPEC

    # -- client, certificate suites (RFC 8422 §5, RFC 5246 §7.4.2-7.4.8) --

    def _client_on_certificate(self, body: bytes, message: bytes) -> None:
        self._transcript.add(message)  # before anything can fail
        assert self.cipher_suite is not None
        if self.cipher_suite.key_exchange != "ECDHE_ECDSA" or self.peer_public_key is not None:
            raise _Abort(AlertDescription.UNEXPECTED_MESSAGE, "unexpected Certificate")
        if self._server_certificate_type == CertificateType.RAW_PUBLIC_KEY:
            self._accept_raw_public_key(decode_raw_public_key_certificate(body), "server")
            return
        chain = self._verified_chain(CertificateMessage.decode(body).chain, "server")
        if not chain:
            raise _Abort(AlertDescription.BAD_CERTIFICATE, "the server sent no certificate")
        self._accept_chain(chain)

    def _accept_chain(self, chain: list[x509.Certificate]) -> None:
        try:
            self.peer_public_key = certificate_public_key(chain[0])
        except HandshakeError as exc:
            raise _Abort(exc.alert or AlertDescription.UNSUPPORTED_CERTIFICATE, str(exc)) from None
        self.peer_certificates = chain
        self.peer_certificate_type = CertificateType.X509

    def _accept_raw_public_key(self, spki: bytes, role: str) -> None:
        """RFC 7250 §3: the key is authentic only if it is one we trust."""
        try:
            verify_raw_public_key(spki, self.config.trusted_key_set)
            self.peer_public_key = load_spki(spki)
        except HandshakeError as exc:
            self.counters["untrusted_raw_public_key"] += 1
            raise _Abort(
                exc.alert or AlertDescription.BAD_CERTIFICATE,
                f"{role} authentication failed: {exc}; add the key to trusted_public_keys "
                "if it is the right peer",
            ) from None
        self.peer_certificate_type = CertificateType.RAW_PUBLIC_KEY

    def _verified_chain(self, der_chain: list[bytes], purpose: str) -> list[x509.Certificate]:
        """Parse and verify a peer chain against our roots (RFC 5280)."""
        if not der_chain:
            return []
        try:
            chain = parse_certificate_chain(der_chain)
            assert self.config.trust_roots is not None
            verify_chain(
                chain,
                self.config.trust_roots,
                server_name=self.config.server_name if purpose == "server" else None,
                now=datetime.datetime.now(datetime.UTC),
                purpose="server" if purpose == "server" else "client",
            )
        except HandshakeError as exc:
            raise _Abort(exc.alert or AlertDescription.BAD_CERTIFICATE, str(exc)) from None
        return chain

    def _client_on_signed_key_exchange(self, body: bytes) -> None:
        if self.peer_public_key is None:
            raise _Abort(
                AlertDescription.UNEXPECTED_MESSAGE, "ServerKeyExchange before Certificate"
            )
        exchange = ServerKeyExchangeEcdhe.decode(body)
        if exchange.group not in self.config.groups:
            raise _Abort(
                AlertDescription.ILLEGAL_PARAMETER,
                f"server chose ECDHE group {exchange.group}, which was not offered",
            )
        try:
            verify(
                self.peer_public_key,
                exchange.scheme,
                exchange.signed_data(self._client_random, self._server_random),
                exchange.signature,
            )
        except HandshakeError as exc:
            raise _Abort(exc.alert or AlertDescription.DECRYPT_ERROR, str(exc)) from None
        self._key_share = KeyShare(exchange.group)
        self._ecdh_secret = self._exchange(exchange.public)

    def _client_on_certificate_request(self, body: bytes, message: bytes) -> None:
        self._transcript.add(message)  # before anything can fail
        if not self._server_key_exchange_seen or self._certificate_requested:
            raise _Abort(AlertDescription.UNEXPECTED_MESSAGE, "unexpected CertificateRequest")
        request = CertificateRequest.decode(body)
        self._certificate_requested = True
        self._peer_schemes = list(request.signature_algorithms)

    def _client_send_certificate_flight(self) -> None:
        if self._key_share is None:
            raise _Abort(
                AlertDescription.UNEXPECTED_MESSAGE,
                "a certificate suite needs a ServerKeyExchange before ServerHelloDone",
            )
        raw = self._client_certificate_type == CertificateType.RAW_PUBLIC_KEY
        send_certificate = self._certificate_requested and (
            self.config.private_key is not None if raw else self.config.has_certificate
        )
        if self._certificate_requested:
            if raw:
                key = self.config.private_key
                body = b"\x00\x00\x00" if key is None else encode_raw_public_key_certificate(key)
            else:
                chain = self.config.certificate_chain if send_certificate else []
                body = CertificateMessage.from_certificates(chain or []).encode()
            self._queue_message(
                self._backend.encode_handshake(HandshakeType.CERTIFICATE, self._send_seq, body)
            )
        public = self._key_share.public
        self._queue_message(self._backend.encode_client_key_exchange_ecdhe(self._send_seq, public))
        # The extended master secret's session hash ends at ClientKeyExchange.
        self._derive_keys()
        if send_certificate:
            key = self.config.private_key
            assert key is not None
            try:
                scheme = choose_scheme(key, self._peer_schemes)
            except HandshakeError as exc:
                raise _Abort(exc.alert or AlertDescription.HANDSHAKE_FAILURE, str(exc)) from None
            signature = sign(key, scheme, self._transcript.data())
            self._queue_message(
                self._backend.encode_handshake(
                    HandshakeType.CERTIFICATE_VERIFY,
                    self._send_seq,
                    CertificateVerify(scheme, signature).encode(),
                )
            )
        self._client_finish_flight()

    def _client_on_finished(self, body: bytes, message: bytes) -> None:
        if self._resumed is not None:
            abbreviated.client_finish_abbreviated(self, body, message)
            return
        # The client's full handshake hashes nothing after the server's
        # Finished (RFC 5246 §7.4.9): that the check adds it changes nothing.
        self._check_peer_finished(message, b"server finished")
        self._flight = []
        self._complete()

    # ------------------------------------------------------------- server

    def _server_on_client_hello(self, body: bytes, message: bytes) -> None:
        codec = self._backend
        hint, self._hello_hint = self._hello_hint, None
        hello = hint[1] if hint is not None and hint[0] == body else codec.decode_client_hello(body)
        # A repeat of this hello (its random) means our flight was lost.
        self._pending_trigger = (0, message)
        # DTLS 1.2 is 0xFEFD; 1.0 (0xFEFF) is refused, and so is anything that
        # is no DTLS version (TLS's 0x0303, an invented 0xFEFC: a DTLS 1.3
        # client offers 0xFEFD here, RFC 9147 §5.3).
        if hello.client_version != DTLS_1_2:
            raise _Abort(
                AlertDescription.PROTOCOL_VERSION,
                f"client offers version {hello.client_version:#06x}; DTLS 1.2 (0xfefd) is required",
            )
        if 0 not in hello.compression_methods:
            raise _Abort(
                AlertDescription.ILLEGAL_PARAMETER, "client does not offer null compression"
            )
        groups = hello.supported_groups
        self._client_groups = None if groups is None else list(groups)
        formats = hello.ec_point_formats
        if (
            formats is not None
            and 0 not in formats
            and (groups is None or any(g in _EC_GROUPS for g in groups))
        ):
            raise _Abort(
                AlertDescription.ILLEGAL_PARAMETER,
                "the client's ec_point_formats lacks uncompressed (0), which RFC 8422 §5.1.2 "
                "requires of a client offering elliptic curves",
            )
        schemes = hello.signature_algorithms
        self._peer_schemes = None if schemes is None else list(schemes)
        types = hello.server_certificate_types
        self._offered_server_types = None if types is None else list(types)
        types = hello.client_certificate_types
        self._offered_client_types = None if types is None else list(types)
        suite = self._choose_suite(hello.cipher_suites)
        reneg = hello.renegotiation_info
        if reneg is not None and reneg != b"":
            raise _Abort(AlertDescription.HANDSHAKE_FAILURE, "non-empty renegotiation_info")
        secure_reneg = reneg is not None or EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
        self.extended_master_secret = hello.extended_master_secret
        if self.config.require_extended_master_secret and not self.extended_master_secret:
            raise _Abort(
                AlertDescription.HANDSHAKE_FAILURE, "client does not offer extended master secret"
            )
        limit = hello.record_size_limit
        if limit is not None:
            self.peer_record_size_limit = limit
        certificate_types: tuple[int | None, int | None] = (None, None)
        if suite.key_exchange == "ECDHE_ECDSA":
            certificate_types = self._server_choose_certificate_types()
        cid = hello.connection_id
        if cid is not None and self._offered_cid is not None:
            # RFC 9146 §3: answered only when offered, and only if we want CIDs.
            self._use_connection_ids(self._offered_cid, cid)
        else:
            cid = None
        self.cipher_suite = suite
        self._client_random = hello.random
        self._server_random = hello_random()
        self._transcript.reset()
        self._transcript.add(message)
        if abbreviated.server_plan_session(self, hello, message):
            return
        self._queue_message(
            codec.encode_server_hello(
                self._send_seq,
                DTLS_1_2,
                self._server_random,
                self._session_id,
                suite.code,
                renegotiation_info=b"" if secure_reneg else None,
                extended_master_secret=self.extended_master_secret,
                record_size_limit=None if limit is None else MAX_PLAINTEXT,
                # RFC 8422 §5.2: answer the client's ec_point_formats; uncompressed only.
                ec_point_formats=b"\x00" if suite.uses_ecdhe and formats is not None else None,
                server_certificate_type=certificate_types[0],
                client_certificate_type=certificate_types[1],
                connection_id=None if cid is None else self._offered_cid,
                session_ticket=self._ticket_promised,
            )
        )
        if suite.key_exchange == "ECDHE_ECDSA":
            self._server_queue_certificate_messages()
        elif suite.key_exchange == "ECDHE_PSK":
            group = choose_group(self._client_groups, self.config.groups)
            assert group is not None  # _choose_suite only picks ECDHE with a group
            self._key_share = KeyShare(group)
            self._queue_message(
                codec.encode_server_key_exchange_ecdhe_psk(
                    self._send_seq, self.config.identity_hint or b"", group, self._key_share.public
                )
            )
        elif self.config.identity_hint is not None:
            self._queue_message(
                codec.encode_server_key_exchange_psk(self._send_seq, self.config.identity_hint)
            )
        self._queue_message(codec.encode_server_hello_done(self._send_seq))
        self.state = _SERVER_WAIT_CLIENT_KEY_EXCHANGE

    def _server_choose_certificate_types(self) -> tuple[int | None, int | None]:
        """RFC 7250 §4.2: pick both types; the server_certificate_type and
        client_certificate_type to echo (None: no extension), each only if
        the client sent it (the client's only along with a CertificateRequest)."""
        server_type = choose_certificate_type(
            self._offered_server_types, self.config.own_certificate_types
        )
        assert server_type is not None  # _choose_suite checked
        self._server_certificate_type = CertificateType(server_type)
        server_echo = server_type if self._offered_server_types is not None else None
        if self.config.client_auth == "none":
            return server_echo, None
        client_type = choose_certificate_type(
            self._offered_client_types, self.config.peer_certificate_types
        )
        if client_type is None:
            if self.config.client_auth == "required":
                raise _Abort(
                    AlertDescription.UNSUPPORTED_CERTIFICATE,
                    "client authentication is required, but the client offers certificate "
                    f"types {_type_names(self._offered_client_types)} and this server "
                    f"verifies {_type_names(self.config.peer_certificate_types)}",
                )
            return server_echo, None  # optional: do without the client's credentials
        self._client_certificate_type = CertificateType(client_type)
        self._certificate_requested = True
        client_echo = client_type if self._offered_client_types is not None else None
        return server_echo, client_echo

    def _server_queue_certificate_messages(self) -> None:
        codec = self._backend
        key = self.config.private_key
        assert key is not None
        if self._server_certificate_type == CertificateType.RAW_PUBLIC_KEY:
            certificate = codec.encode_raw_public_key_certificate(
                self._send_seq, public_key_spki(key)
            )
        else:
            assert self.config.certificate_chain is not None
            chain = _der_chain(tuple(self.config.certificate_chain))
            certificate = codec.encode_certificate(self._send_seq, chain)
        self._queue_message(certificate)
        group = choose_group(self._client_groups, self.config.groups)
        assert group is not None  # _choose_suite checked
        self._key_share = KeyShare(group)
        public = self._key_share.public
        scheme = choose_scheme(key, self._peer_schemes)
        signed = codec.ecdhe_signed_params(self._client_random, self._server_random, group, public)
        signature = sign(key, scheme, signed)
        self._queue_message(
            codec.encode_server_key_exchange_ecdhe(self._send_seq, group, public, scheme, signature)
        )
        if self._certificate_requested:
            self._queue_message(
                codec.encode_certificate_request(
                    self._send_seq, bytes([ECDSA_SIGN]), OFFERED_SCHEMES, ()
                )
            )

    def _can_sign(self) -> bool:
        key = self.config.private_key
        if key is None:
            return False
        try:
            choose_scheme(key, self._peer_schemes)
        except HandshakeError:
            return False
        return True

    def _has_certificate_type(self) -> bool:
        """A server certificate type both sides accept (RFC 7250 §4.2)."""
        offered = self._offered_server_types
        ours = self.config.own_certificate_types
        return choose_certificate_type(offered, ours) is not None

    def _choose_suite(self, offered: Sequence[int]) -> CipherSuite:
        # An ECDHE suite is only eligible with a group both sides support, a
        # certificate suite only with a signature the client accepts and a
        # certificate type in common; each is looked at only when a suite
        # that needs it comes up (a PSK handshake needs none of them).
        ours = self.config.cipher_suites
        ordered: Iterable[CipherSuite]
        if self.config.prefer_client_order:
            # By code, then the suite itself: `s in ours` would run the
            # dataclass __eq__ on every suite before a match.
            by_code = {s.code: s for s in ours}
            candidates = (SUITES_BY_CODE.get(code) for code in offered)
            ordered = (
                s
                for s in candidates
                if s is not None and ((t := by_code.get(s.code)) is s or (t is not None and t == s))
            )
        else:
            offered_set = set(offered)
            # A list, not a generator: one call, not one per suite.
            ordered = [s for s in ours if s.code in offered_set]
        eligible: dict[str, bool] = {}
        for suite in ordered:
            if suite.uses_ecdhe:
                if "group" not in eligible:
                    eligible["group"] = (
                        choose_group(self._client_groups, self.config.groups) is not None
                    )
                if not eligible["group"]:
                    continue
            if suite.key_exchange == "ECDHE_ECDSA":
                if "sign" not in eligible:
                    eligible["sign"] = self._can_sign() and self._has_certificate_type()
                if not eligible["sign"]:
                    continue
            return suite
        with_type = self._has_certificate_type()
        offered_set = set(offered)
        if not with_type and any(
            s.key_exchange == "ECDHE_ECDSA" and s.code in offered_set
            for s in self.config.cipher_suites
        ):
            # RFC 7250 §4.2: a common suite, but no certificate type in common.
            raise _Abort(
                AlertDescription.UNSUPPORTED_CERTIFICATE,
                "the client accepts server certificate types "
                f"{_type_names(self._offered_server_types)}, but this server authenticates "
                f"with {_type_names(self.config.own_certificate_types)}",
            )
        raise _Abort(
            AlertDescription.HANDSHAKE_FAILURE, "no cipher suite in common with the client"
        )

    def _server_on_client_certificate(self, body: bytes, message: bytes) -> None:
        if not self._certificate_requested or self._client_certificate_seen:
            raise _Abort(AlertDescription.UNEXPECTED_MESSAGE, "unexpected client Certificate")
        self._client_certificate_seen = True
        if self._client_certificate_type == CertificateType.RAW_PUBLIC_KEY:
            if body == b"\x00\x00\x00":
                # No key at all (RFC 7250 §3 has no empty form, but some
                # clients send one): treated as an empty certificate list.
                if self.config.client_auth == "required":
                    raise _Abort(
                        AlertDescription.HANDSHAKE_FAILURE,
                        "a client raw public key is required but none came",
                    )
            else:
                spki = self._backend.decode_raw_public_key_certificate(body)
                self._accept_raw_public_key(spki, "client")
            self._transcript.add(message)
            return
        chain = self._verified_chain(list(self._backend.decode_certificate(body)), "client")
        if not chain and self.config.client_auth == "required":
            raise _Abort(
                AlertDescription.HANDSHAKE_FAILURE, "a client certificate is required but none came"
            )
        if chain:
            self._accept_chain(chain)
        self._transcript.add(message)

    def _server_on_certificate_verify(self, body: bytes, message: bytes) -> None:
        assert self.peer_public_key is not None
        scheme, signature = self._backend.decode_certificate_verify(body)
        try:
            verify(self.peer_public_key, scheme, self._transcript.data(), signature)
        except HandshakeError as exc:
            raise _Abort(exc.alert or AlertDescription.DECRYPT_ERROR, str(exc)) from None
        self._transcript.add(message)
        self.state = State.SERVER_WAIT_CHANGE_CIPHER_SPEC

    def _server_on_certificate_key_exchange(self, body: bytes, message: bytes) -> None:
        if self._certificate_requested and not self._client_certificate_seen:
            raise _Abort(
                AlertDescription.UNEXPECTED_MESSAGE, "ClientKeyExchange before the Certificate"
            )
        self._ecdh_secret = self._exchange(self._backend.decode_client_key_exchange_ecdhe(body))
        self._transcript.add(message)
        self._derive_keys()
        self.state = (
            State.SERVER_WAIT_CERTIFICATE_VERIFY
            if self.peer_public_key is not None
            else State.SERVER_WAIT_CHANGE_CIPHER_SPEC
        )

    def _server_on_client_key_exchange(self, body: bytes, message: bytes) -> None:
        assert self.cipher_suite is not None
        if self.cipher_suite.key_exchange == "ECDHE_ECDSA":
            self._server_on_certificate_key_exchange(body, message)
            return
        if self.cipher_suite.key_exchange == "ECDHE_PSK":
            identity, public = self._backend.decode_client_key_exchange_ecdhe_psk(body)
            self._ecdh_secret = self._exchange(public)
        else:
            identity = self._backend.decode_client_key_exchange_psk(body)
        assert self.config.psk_lookup is not None
        key = self.config.psk_lookup(identity)
        if key is None:
            self.counters["unknown_psk_identity"] += 1
            if self.config.reveal_unknown_psk_identity:
                raise _Abort(
                    AlertDescription.UNKNOWN_PSK_IDENTITY,
                    f"unknown PSK identity {identity[:64]!r}",
                )
            # RFC 4279 §2: go on with a random key, so that the client's
            # Finished fails just as with a wrong key, and a prober cannot
            # tell known identities from unknown ones.
            key = os.urandom(32)
            self._unknown_identity = True
        self._psk = key
        self.psk_identity = identity
        self._transcript.add(message)
        self._derive_keys()
        self.state = State.SERVER_WAIT_CHANGE_CIPHER_SPEC

    def _server_on_finished(self, body: bytes, message: bytes) -> None:
        if self._resumed is not None:
            abbreviated.server_finish_abbreviated(self, body, message)
            return
        self._check_peer_finished(message, b"client finished")  # and adds it
        # A repeat of the client's Finished (authenticated, and new to the
        # replay window) means our Finished was lost.
        self._pending_trigger = (self.records.read_epoch, message)
        resumption = self.config.resumption
        if resumption is not None:  # no call for a server that does not resume
            abbreviated.server_issue_session(self, resumption)
        self._queue_change_cipher_spec_and_finished(b"server finished")
        self._complete()


_TRANSITIONS: dict[tuple[State, int], Handler] = {
    (State.CLIENT_WAIT_SERVER_HELLO, HandshakeType.HELLO_VERIFY_REQUEST): (
        DtlsConnection._client_on_hello_verify_request
    ),
    (
        State.CLIENT_WAIT_SERVER_HELLO,
        HandshakeType.SERVER_HELLO,
    ): DtlsConnection._client_on_server_hello,
    (
        State.CLIENT_WAIT_SERVER_HELLO_DONE,
        HandshakeType.SERVER_KEY_EXCHANGE,
    ): DtlsConnection._client_on_server_key_exchange,
    (
        State.CLIENT_WAIT_SERVER_HELLO_DONE,
        HandshakeType.CERTIFICATE,
    ): DtlsConnection._client_on_certificate,
    (
        State.CLIENT_WAIT_SERVER_HELLO_DONE,
        HandshakeType.CERTIFICATE_REQUEST,
    ): DtlsConnection._client_on_certificate_request,
    (State.SERVER_WAIT_CLIENT_KEY_EXCHANGE, HandshakeType.CERTIFICATE): (
        DtlsConnection._server_on_client_certificate
    ),
    (State.SERVER_WAIT_CERTIFICATE_VERIFY, HandshakeType.CERTIFICATE_VERIFY): (
        DtlsConnection._server_on_certificate_verify
    ),
    (
        State.CLIENT_WAIT_SERVER_HELLO_DONE,
        HandshakeType.SERVER_HELLO_DONE,
    ): DtlsConnection._client_on_server_hello_done,
    (State.CLIENT_WAIT_FINISHED, HandshakeType.FINISHED): DtlsConnection._client_on_finished,
    (State.CLIENT_WAIT_CHANGE_CIPHER_SPEC, HandshakeType.NEW_SESSION_TICKET): (
        abbreviated.client_on_new_session_ticket
    ),
    (State.SERVER_LISTEN, HandshakeType.CLIENT_HELLO): DtlsConnection._server_on_client_hello,
    (
        State.SERVER_WAIT_CLIENT_KEY_EXCHANGE,
        HandshakeType.CLIENT_KEY_EXCHANGE,
    ): DtlsConnection._server_on_client_key_exchange,
    (State.SERVER_WAIT_FINISHED, HandshakeType.FINISHED): DtlsConnection._server_on_finished,
}


#: The elliptic curve groups of RFC 8422 §5.1.1 (secp256r1, secp384r1,
#: secp521r1, x25519, x448): a client offering one must accept uncompressed points.
_EC_GROUPS = frozenset({23, 24, 25, 29, 30})


@functools.lru_cache(maxsize=16)
def _der_chain(chain: tuple[x509.Certificate, ...]) -> tuple[bytes, ...]:
    """A configured chain in DER, leaf first, encoded once rather than per
    handshake."""
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)


def _type_name(certificate_type: int) -> str:
    if certificate_type == CertificateType.X509:
        return "an X.509 certificate"
    if certificate_type == CertificateType.RAW_PUBLIC_KEY:
        return "a raw public key"
    return f"certificate type {certificate_type}"


def _type_names(types: Sequence[int] | None) -> str:
    """Readable list; None is the absent extension, X.509 only (RFC 7250 §4.1)."""
    names: dict[int, str] = {
        CertificateType.X509: "X.509",
        CertificateType.RAW_PUBLIC_KEY: "RawPublicKey",
    }
    return "[" + ", ".join(names.get(t, str(t)) for t in (types or [0])) + "]"
