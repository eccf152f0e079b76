"""An established server connection whose record state lives in the session table.

Once the handshake is over (RFC 6347 §4.2.4: nothing left to wait for),
everything :class:`~dtlsfast.connection.DtlsConnection` holds for the
handshake is dead weight: renegotiation is refused, so no handshake runs on
it again. The server swaps the connection for this object right after the
handshake, a few slots, with the keys, the replay window, the write sequence
and any connection IDs (RFC 9146) in the session table (DESIGN.md's fast
path), so that 100,000 established sessions fit in little memory whatever
they do: idle since the handshake, with a CID, observing, exchanging data.

It keeps what an established association still owes its peer: records are
opened and sealed through the table and an invalid one is dropped and counted
(RFC 6347 §4.1.2.7); a close_notify is answered with one and closes, a fatal
alert closes (RFC 5246 §7.2); a ClientHello or HelloRequest is refused with a
warning no_renegotiation (RFC 5746 §4.2). The server's last flight of a full
handshake (ChangeCipherSpec and Finished) is kept as its messages in one bytes
object, a hundred bytes or so: a repeat of the peer's Finished means it was
lost, and is answered with them (RFC 6347 §4.2.4) until the peer's application
data shows it arrived (opened here, or by the session table: the endpoint says
so with :meth:`~SettledConnection.peer_has_final_flight` or, for the table's
batch path, its sweep) or :data:`FINAL_FLIGHT_LIFETIME` has passed; after that
a repeat is ignored. The ClientHello's random is kept with the flight (the
server's test for a retransmitted hello of this handshake) and goes with it;
what sessions have in common (epoch, message_seqs, max_payload, suite, PSK
identity) is one tuple shared by all of them. With connection IDs, records are
tls12_cid records both ways as the handshake agreed, and each one newer than
every one before is counted in ``advances`` (what may move the session to a
new address, RFC 9146 §6, the server's decision). A malformed alert is a
decode_error and a record with more than 2^14 bytes of plaintext a
record_overflow (RFC 5246 §7.2, §6.2.1), both fatal. As on the full
connection, nothing the peer sends makes
:meth:`~SettledConnection.receive_datagram` raise: a defect ends this session
alone with internal_error. Its interface is the part of DtlsConnection the
endpoints use once the handshake is over.
"""

from __future__ import annotations

import contextlib
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cryptography import x509

from dtlsfast.backend import load_backend
from dtlsfast.events import (
    MAX_EVENTS,
    AlertReceived,
    ApplicationDataReceived,
    ConnectionClosed,
    Event,
)
from dtlsfast.exceptions import (
    ConnectionClosedError,
    DecodeError,
    DtlsError,
    HandshakeError,
    InternalError,
    LocalProtocolError,
    RemoteProtocolError,
)
from dtlsfast.handshake.constants import (
    DTLS_1_2,
    AlertDescription,
    AlertLevel,
    ContentType,
    HandshakeType,
    alert_name,
)
from dtlsfast.handshake.messages import (
    CLOSE_NOTIFY_ALERT,
    alert_payload,
    decode_alert,
    parse_handshake_header,
    split_handshake_fragments,
)
from dtlsfast.handshake.suites import SUITES_BY_CODE
from dtlsfast.interning import Interner
from dtlsfast.record_layer import TLS12_CID
from dtlsfast.store.connection_state import PeerValues, build_record, peer_values
from dtlsfast.store.records import SessionRecord

if TYPE_CHECKING:
    from dtlsfast.config import DtlsConfiguration
    from dtlsfast.handshake.cert_types import CertificateType
    from dtlsfast.handshake.signatures import VerifyingKey
    from dtlsfast.handshake.suites import CipherSuite

#: Largest record plaintext, RFC 5246 §6.2.1.
MAX_PLAINTEXT = 16384

#: Seconds the server's last flight is kept for retransmission after the
#: handshake: twice TCP's maximum segment lifetime of two minutes (RFC 6347
#: §4.2.4, RFC 793 §3.3).
FINAL_FLIGHT_LIFETIME = 240.0

#: The head of a kept final flight: its deadline, the next write sequence
#: number of the epoch before the table's and the client's random (the
#: ClientHello's, 32 bytes); the messages follow as they are, each one whole
#: (its handshake header gives its length).
_FINAL = struct.Struct(">dQ32s")

#: What the handshake settled that sessions have in common, one tuple for
#: all of a kind: (read epoch, next message_seq, the peer's last flight's
#: message_seq, max_payload, cipher suite code, extended master secret, PSK
#: identity, the peer's record_size_limit): ints, bytes and None, hashed
#: without a Python call. Bounded: past it a session keeps a tuple of its own.
_SHARED: Interner[tuple[Any, ...]] = Interner(4096)

#: PSK identities in use, one bytes object each for all their sessions (a
#: fleet shares a handful); bounded: past it an identity is kept as it came.
_SHARED_IDENTITIES: Interner[bytes] = Interner(4096)


#: Read when nothing was counted: no Counter per session until one is needed.
_NOTHING: Mapping[str, int] = MappingProxyType(Counter())

#: The counters of a session that counted nothing since it settled.
_ESTABLISHED: Mapping[str, int] = MappingProxyType(Counter(handshakes=1))

#: What the handshake settled, as :class:`SettledConnection` takes it: (read
#: epoch, next message_seq, the message_seq of the peer's last flight's
#: Finished or None, max_payload, cipher suite code or None, extended master
#: secret, PSK identity or None, the peer's record_size_limit or None).
Shared = tuple[int, int, "int | None", int, "int | None", bool, "bytes | None", "int | None"]
#: (the peer's verified chain, its authenticated key, its certificate type).
PeerAuth = tuple["list[x509.Certificate] | None", "VerifyingKey | None", "CertificateType | None"]
#: (until when, next write sequence number of the epoch before the table's,
#: the ClientHello's random, the flight's handshake messages, whole).
FinalFlight = tuple[float, int, bytes, "list[bytes]"]


class SettledConnection:
    """The slim stand-in for a settled server connection (see the module)."""

    __slots__ = (
        "_cids",
        "_events",
        "_final",
        "_out",
        "_peer_auth",
        "_shared",
        "_table",
        "_table_id",
        "advances",
        "authenticated",
        "closed",
        "config",
        "counters",
        "drops",
        "peer",
        "session_id",
    )

    #: Records dropped since the session settled, by reason (read-only: a
    #: shared empty mapping until :meth:`count_drop` adds one).
    drops: Mapping[str, int]
    #: ``handshakes`` (1: this session's), ``renegotiation_refused``,
    #: ``internal_errors``, ``retransmissions`` (of our last flight); shared
    #: until something is counted.
    counters: Mapping[str, int]

    def __init__(
        self,
        table: Any,
        table_id: int,
        config: DtlsConfiguration,
        peer: Any,
        shared: Shared,
        peer_auth: PeerAuth | None = None,
        connection_ids: tuple[bytes, bytes] | None = None,
        final_flight: FinalFlight | None = None,
        session_id: bytes = b"",
    ) -> None:
        """``shared``: what the handshake settled (see :data:`Shared`).
        ``peer_auth``: (the peer's certificates, its public key, its
        certificate type), all None or empty for a PSK session.
        ``connection_ids``: (the CID records to us carry, the one ours
        carry), as the table has them. ``final_flight``: (until when, the
        next write sequence number of the epoch before the table's, the
        ClientHello's random, our last flight's handshake messages, whole:
        those of that epoch, then the Finished): the flight is packed again
        from it, the ChangeCipherSpec before the Finished, on a repeat of the
        peer's Finished until then. ``session_id``: the session_id it may be
        resumed by (RFC 5246 §7.4.1.2). Positional, few and already in
        the form kept: one is made per handshake."""
        self._table = table
        self._table_id = table_id
        self.config = config
        self.peer = peer
        # Sessions share these: one tuple, not eight slots each. The PSK
        # identity is interned on its own only for a tuple not shared yet.
        kept = _SHARED(shared)
        identity = shared[6]
        if kept is shared and identity is not None:
            common = _SHARED_IDENTITIES(identity)
            if common is not identity:
                kept = (*shared[:6], common, shared[7])
        self._shared = kept
        # PSK sessions (most) pay one slot for what certificates would need.
        self._peer_auth = (
            peer_auth
            if peer_auth is not None
            and (peer_auth[0] or peer_auth[1] is not None or peer_auth[2] is not None)
            else None
        )
        # One bytes object: the length of our CID, our CID, the peer's.
        self._cids: bytes | None = None
        if connection_ids is not None:
            local, peer_cid = connection_ids
            self._cids = bytes((len(local),)) + local + peer_cid
        # One bytes object: deadline, sequence number, the client random,
        # then the messages (see _answer_repeated_flight).
        self._final: bytes | None = None
        if final_flight is not None:
            until, sequence, random, messages = final_flight
            self._final = _FINAL.pack(until, sequence, random) + b"".join(messages)
        self.session_id = session_id
        """The session_id it may be resumed by, so that a fatal alert can
        make it non-resumable (RFC 5246 §7.2)."""
        self.authenticated = 0
        """Records opened here (not by the session table's batch path)."""
        self.advances = 0
        """tls12_cid records that authenticated and were newer than every
        record before them (RFC 9146 §6): what may move the session."""
        self.closed = False
        self._out: list[bytes] | None = None
        self._events: list[Event] | None = None
        self.drops = _NOTHING
        self.counters = _ESTABLISHED

    # -- the session store (dtlsfast.store) -----------------------------------

    def session_record(self, key: bytes, limit: int, created: int) -> SessionRecord | None:
        """This session for the store under ``key``: the table's record
        state with the reserved ``limit`` as its write sequence number, and
        what the handshake settled. None once closed or gone from the table."""
        state = None if self.closed else self._table.export_session(self._table_id, limit)
        _, next_seq, peer_seq, _, suite, ems, identity, size_limit = self._shared
        if state is None or suite is None:
            return None
        if self._peer_auth is None:
            # A PSK session (the common case, 100,000 at a time): no conversions.
            record = SessionRecord(key, state, suite, ems, created, next_seq, peer_seq, identity)
            if self._cids is not None:
                record.local_cid, record.peer_cid = self.connection_id, self.peer_connection_id
            if size_limit is not None:
                record.record_size_limit = size_limit
            return record
        return build_record(
            key,
            state,
            created,
            cipher_suite=SUITES_BY_CODE[suite],
            extended_master_secret=self.extended_master_secret,
            next_message_seq=self._next_seq,
            peer_last_message_seq=self._last_peer_seq,
            psk_identity=self.psk_identity,
            peer_certificate_type=self.peer_certificate_type,
            peer_public_key=self.peer_public_key,
            peer_certificates=self.peer_certificates,
            local_cid=self.connection_id,
            peer_cid=self.peer_connection_id,
            record_size_limit=self.record_size_limit,
        )

    @classmethod
    def from_record(
        cls,
        table: Any,
        table_id: int,
        record: SessionRecord,
        *,
        config: DtlsConfiguration,
        peer: Any,
        max_payload: int,
        now: float,
    ) -> SettledConnection:
        """Import a stored session into ``table`` under ``table_id`` (its
        write sequence number starts at the reserved limit) and the slim
        connection that carries it on. ConfigurationError if the record's
        state or suite is not usable."""
        values = peer_values(record)
        table.import_session(table_id, record.record_state, now)
        return cls.restored(
            table, table_id, record, values, config=config, peer=peer, max_payload=max_payload
        )

    @classmethod
    def restored(
        cls,
        table: Any,
        table_id: int,
        record: SessionRecord,
        values: PeerValues,
        *,
        config: DtlsConfiguration,
        peer: Any,
        max_payload: int,
    ) -> SettledConnection:
        """The slim connection of a stored session already imported into
        ``table`` under ``table_id`` (``SessionTable.import_sessions``), its
        connection IDs set here; ``values`` are ``peer_values(record)``."""
        cids = None
        if record.local_cid is not None or record.peer_cid is not None:
            cids = (record.local_cid or b"", record.peer_cid or b"")
            table.set_connection_ids(table_id, *cids)
        return cls(
            table,
            table_id,
            config,
            peer,
            (
                values.read_epoch,
                record.next_message_seq,
                record.peer_last_message_seq,
                max_payload,
                values.cipher_suite.code,
                record.extended_master_secret,
                record.psk_identity,
                record.record_size_limit,
            ),
            (values.peer_certificates, values.peer_public_key, values.peer_certificate_type),
            cids,
        )

    # -- what the endpoints read --------------------------------------------

    @property
    def read_epoch(self) -> int:
        """The epoch of the peer's records (the table's)."""
        return int(self._shared[0])

    @property
    def _next_seq(self) -> int:
        """The handshake message_seq the peer sends next (RFC 6347 §4.2.2)."""
        return int(self._shared[1])

    @property
    def _last_peer_seq(self) -> int | None:
        """The message_seq of the peer's last flight's Finished, if any."""
        value: int | None = self._shared[2]
        return value

    @property
    def max_payload(self) -> int:
        """The largest application data record payload that fits the MTU."""
        return int(self._shared[3])

    @property
    def cipher_suite(self) -> CipherSuite | None:
        code: int | None = self._shared[4]
        return None if code is None else SUITES_BY_CODE[code]

    @property
    def extended_master_secret(self) -> bool:
        """Whether the session's master secret is the RFC 7627 one."""
        return bool(self._shared[5])

    @property
    def psk_identity(self) -> bytes | None:
        """The PSK identity the peer used, if any (one object for its sessions)."""
        identity: bytes | None = self._shared[6]
        return identity

    @property
    def record_size_limit(self) -> int | None:
        """The peer's record_size_limit (RFC 8449), kept for the session store."""
        limit: int | None = self._shared[7]
        return limit

    @property
    def peer_certificates(self) -> list[x509.Certificate] | None:
        """The peer's verified certificate chain, leaf first, if it sent one."""
        return None if self._peer_auth is None else self._peer_auth[0]

    @property
    def peer_public_key(self) -> VerifyingKey | None:
        """The peer's authenticated public key (certificate or raw, RFC 7250)."""
        return None if self._peer_auth is None else self._peer_auth[1]

    @property
    def peer_certificate_type(self) -> CertificateType | None:
        return None if self._peer_auth is None else self._peer_auth[2]

    @property
    def established(self) -> bool:
        return not self.closed

    @property
    def settled(self) -> bool:
        return not self.closed

    @property
    def is_client(self) -> bool:
        return False

    @property
    def connection_id(self) -> bytes | None:
        """The CID the peer puts on records to us (RFC 9146), if negotiated."""
        cids = self._cids
        return None if cids is None else cids[1 : 1 + cids[0]]

    @property
    def peer_connection_id(self) -> bytes | None:
        """The CID we put on records to the peer, if negotiated."""
        cids = self._cids
        return None if cids is None else cids[1 + cids[0] :]

    @property
    def client_random(self) -> bytes:
        """The ClientHello's random while our last flight is kept (the
        server tells a retransmitted ClientHello of this handshake from a
        new one by it, RFC 6347 §4.2.8); b"" once it went."""
        final = self._final
        return b"" if final is None else final[16:48]

    @property
    def holds_final_flight(self) -> bool:
        """Our last flight is still kept for retransmission."""
        return self._final is not None

    def expire_final_flight(self, now: float, table_active: float | None = None) -> None:
        """Let the last flight go once its lifetime is over, or once the
        session table opened application data of the peer after the
        handshake (``table_active``: the table's activity time of the
        session, which the table sets when the session joins and then only
        when it opens application data): the endpoint's sweep."""
        final = self._final
        if final is None:
            return
        until = _FINAL.unpack_from(final)[0]
        if now > until or (
            table_active is not None and table_active + FINAL_FLIGHT_LIFETIME > until
        ):
            self._final = None

    def peer_has_final_flight(self) -> None:
        """The peer's authenticated application data arrived (opened by the
        session table): it has our Finished (RFC 6347 §4.2.4), so our last
        flight need not be kept for it any more."""
        self._final = None

    def count_drop(self, reason: str, count: int = 1) -> None:
        drops = self.drops
        if not isinstance(drops, Counter):
            drops = self.drops = Counter()
        drops[reason] += count

    def clear_counts(self) -> None:
        """Forget the drops and retransmissions (the endpoint took them over)."""
        self.drops = _NOTHING

    # -- the sans-I/O interface ---------------------------------------------

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Open the datagram's records through the session table and act on
        them. Never raises (see the module)."""
        if self.closed:
            return
        try:
            # Without CIDs (most sessions) no property to read.
            local_cid = b"" if self._cids is None else self.connection_id or b""
            if not local_cid:
                # One alert record (a close_notify, mostly) is opened by the
                # table in one call, with the same checks as _receive_records.
                alert = self._table.open_alert(self._table_id, data)
                if alert is not None:
                    if isinstance(alert, str):
                        self.count_drop(alert)  # "replay" or "bad_auth"
                        return
                    self.authenticated += 1
                    self._handle_alert(alert)
                    return
            self._receive_records(data, now, local_cid)
        except Exception as exc:
            self._count("internal_errors")
            error = InternalError(
                f"internal error on the peer's input ({type(exc).__name__}: {exc}); the "
                "session was closed with internal_error. This is a defect in dtlsfast: please "
                "report it"
            )
            error.__cause__ = exc
            with contextlib.suppress(Exception):
                self._send_alert(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
            self._close(error)

    def _receive_records(self, data: bytes, now: float, local_cid: bytes) -> None:
        """Each record of the datagram (``local_cid``: the CID records to us carry)."""
        backend = load_backend(self.config.backend)
        # tls12_cid headers are parsed with the length of our own CID (RFC 9146 §4).
        parsed, consumed, _ = backend.split_records(data, len(local_cid))
        if consumed != len(data):
            self.count_drop("malformed")
        table, table_id = self._table, self._table_id
        for content_type, version, epoch, seq, cid, fragment in parsed:
            if version >> 8 != 0xFE:
                self.count_drop("bad_version")
                continue
            if epoch != self.read_epoch:
                if self._final is not None and epoch == self.read_epoch - 1:
                    # The unprotected part of the peer's last flight again
                    # (RFC 6347 §4.2.4): its Finished is what counts.
                    continue
                self.count_drop("bad_epoch")  # the handshake's epochs are gone
                continue
            if (content_type == TLS12_CID) != bool(local_cid) or cid != local_cid:
                # A CID we did not negotiate, another CID, or a record without
                # the CID this session requires (RFC 9146 §4).
                self.count_drop("bad_cid")
                continue
            if local_cid:
                opened_cid = table.open_cid_record(table_id, version, epoch, seq, cid, fragment)
                if isinstance(opened_cid, tuple):
                    content_type, opened, newest = opened_cid
                    if newest:
                        self.advances += 1
                else:
                    opened = opened_cid
            else:
                opened = table.open_record(table_id, content_type, version, epoch, seq, fragment)
            if isinstance(opened, str):
                self.count_drop(opened)  # "replay" or "bad_auth"
                continue
            if opened is None:
                self.count_drop("bad_epoch")  # the table no longer has the session
                continue
            self.authenticated += 1
            if len(opened) > MAX_PLAINTEXT:
                self._fail(
                    AlertDescription.RECORD_OVERFLOW,
                    f"the peer sent a record of {len(opened)} bytes of plaintext; RFC 5246 "
                    f"§6.2.1 allows at most {MAX_PLAINTEXT}",
                )
                return
            self._handle_record(content_type, bytes(opened), now)
            if self.closed:
                return

    def datagrams_to_send(self, now: float) -> list[bytes]:
        out, self._out = self._out, None
        return out if out is not None else []

    def take_output(self) -> tuple[Sequence[bytes], Sequence[Event]]:
        """The datagrams queued and the pending events in one call, as
        :meth:`DtlsConnection.take_output <dtlsfast.connection.DtlsConnection.take_output>`
        hands them (empty tuples for none)."""
        out, events = self._out, self._events
        self._out = self._events = None
        return out or (), events or ()

    def get_timer(self) -> float | None:
        return None  # no flight is ever retransmitted again

    def handle_timer(self, now: float) -> None:
        return None

    def next_event(self) -> Event | None:
        events = self._events
        if not events:
            return None
        event = events.pop(0)
        if not events:
            self._events = None
        return event

    def send(self, data: bytes) -> None:
        """Send ``data`` as one application_data record."""
        if self.closed:
            raise ConnectionClosedError("the connection is closed; open a new one")
        if len(data) > self.max_payload:
            raise LocalProtocolError(
                f"{len(data)} bytes do not fit in one record here (at most {self.max_payload} "
                f"with mtu={self.config.mtu}); split the data or raise the mtu"
            )
        self._queue(self._table.seal(self._table_id, ContentType.APPLICATION_DATA, bytes(data)))

    def close(self) -> None:
        """Send close_notify and close (RFC 5246 §7.2.1)."""
        if self.closed:
            return
        self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
        self._close(None)

    def abort(self) -> None:
        """Close at once without telling the peer."""
        self._close(None)

    # -- records ------------------------------------------------------------

    def _handle_record(self, content_type: int, payload: bytes, now: float) -> None:
        if content_type == ContentType.APPLICATION_DATA:
            self._final = None  # the peer is in the new epoch: it has our Finished
            events = self._events
            if events is not None and len(events) >= MAX_EVENTS:
                self._count("application_data_dropped")
                return
            self._push(ApplicationDataReceived(payload))
        elif content_type == ContentType.ALERT:
            self._handle_alert(payload)
        elif content_type == ContentType.HANDSHAKE:
            try:
                self._handle_handshake(payload, now)
            except DecodeError as exc:
                self._fail(AlertDescription.DECODE_ERROR, f"malformed handshake message: {exc}")
        elif content_type == ContentType.CHANGE_CIPHER_SPEC:
            self.count_drop("unexpected_change_cipher_spec")
        else:
            self.count_drop("unknown_content_type")

    def _handle_handshake(self, payload: bytes, now: float) -> None:
        for piece in split_handshake_fragments(payload):
            header = parse_handshake_header(piece)
            if header.message_seq < self._next_seq and header.message_seq == self._last_peer_seq:
                # The peer's last flight again (authenticated, new to the
                # window): ours was lost, unless its lifetime is over.
                self._answer_repeated_flight(now)
                continue
            if header.msg_type in (HandshakeType.CLIENT_HELLO, HandshakeType.HELLO_REQUEST):
                self._count("renegotiation_refused")
                self._send_alert(AlertLevel.WARNING, AlertDescription.NO_RENEGOTIATION)

    def _handle_alert(self, payload: bytes) -> None:
        if payload == CLOSE_NOTIFY_ALERT:
            # The alert of almost every session's end: its event made once.
            event = _CLOSE_NOTIFY_RECEIVED
        else:
            try:
                level, description = decode_alert(payload)
            except DecodeError as exc:
                self._fail(AlertDescription.DECODE_ERROR, f"malformed alert: {exc}")
                return
            event = AlertReceived(level, description)
        level, description = event.level, event.description
        if description == AlertDescription.CLOSE_NOTIFY:
            self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
            self.close_notified(event)
            return
        self._push(event)
        if level == AlertLevel.FATAL:
            self._close(RemoteProtocolError(f"peer sent fatal alert {alert_name(description)}"))

    def close_notified(self, event: AlertReceived | None = None) -> None:
        """The peer's close_notify (``event``, by default the usual one)
        arrived and ours answered it (RFC 5246 §7.2.1; sent here, or by the
        session table's batch, which also opened the peer's): the events of
        a clean close."""
        self._push(_CLOSE_NOTIFY_RECEIVED if event is None else event)
        self._close(None)

    def _answer_repeated_flight(self, now: float) -> None:
        final = self._final
        if final is None:
            return
        until, sequence, random = _FINAL.unpack_from(final)
        if now > until:
            self._final = None
            return
        messages = []
        at = _FINAL.size
        while at < len(final):
            # Each message whole: 12 bytes of header, its body's length in
            # bytes 1 to 3 (RFC 6347 §4.2.2).
            end = at + 12 + int.from_bytes(final[at + 1 : at + 4], "big")
            messages.append(final[at:end])
            at = end
        *before, finished = messages
        # New records (RFC 6347 §4.2.4 retransmits messages, not records):
        # those of the epoch before the table's, its ChangeCipherSpec, then
        # the Finished sealed by the table; as many to a datagram as fit.
        backend = load_backend(self.config.backend)
        epoch = self.read_epoch - 1
        records = [
            bytes(backend.encode_record(ContentType.HANDSHAKE, DTLS_1_2, epoch, sequence + i, m))
            for i, m in enumerate(before)
        ]
        records.append(
            bytes(
                backend.encode_record(
                    ContentType.CHANGE_CIPHER_SPEC, DTLS_1_2, epoch, sequence + len(before), b"\x01"
                )
            )
        )
        records.append(bytes(self._table.seal(self._table_id, ContentType.HANDSHAKE, finished)))
        self._final = _FINAL.pack(until, sequence + len(records) - 1, random) + final[_FINAL.size :]
        self._count("retransmissions")
        datagram = b""
        for record in records:
            if datagram and len(datagram) + len(record) > self.config.mtu:
                self._queue(datagram)
                datagram = b""
            datagram += record
        self._queue(datagram)

    # -- output and events --------------------------------------------------

    def _queue(self, datagram: bytes) -> None:
        if self._out is None:
            self._out = [datagram]
        else:
            self._out.append(datagram)

    def _send_alert(self, level: int, description: int) -> None:
        # Past the last sequence number nothing can be sent, not even an alert
        # (try/except: contextlib.suppress costs three calls per close_notify).
        try:
            sealed = self._table.seal(
                self._table_id,
                ContentType.ALERT,
                alert_payload(level, description),
            )
        except DtlsError:
            return
        self._queue(sealed)

    def _fail(self, alert: int, message: str) -> None:
        self._send_alert(AlertLevel.FATAL, alert)
        self._close(HandshakeError(message, alert))

    def _push(self, event: Event) -> None:
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def _count(self, name: str) -> None:
        counters = self.counters
        if not isinstance(counters, Counter):
            counters = self.counters = Counter(handshakes=1)
        counters[name] += 1

    def _close(self, error: DtlsError | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._push(_CLOSED_CLEANLY if error is None else ConnectionClosed(error))


#: The events of a clean close, made once (events are immutable).
_CLOSE_NOTIFY_RECEIVED = AlertReceived(*decode_alert(CLOSE_NOTIFY_ALERT))
_CLOSED_CLEANLY = ConnectionClosed(None)
