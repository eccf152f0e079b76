"""What the persistent session store keeps: one :class:`SessionRecord` per
established session and one :class:`ObservationRecord` per CoAP observation
(RFC 7641 §4.1), each with a compact, versioned binary encoding.

A session record is everything a restarted server needs to go on with no
handshake: the record state of RFC 6347 §4.1 as the session table exports it
(``record_state``: keys and IVs per direction, epochs, the write sequence
number, the replay window and the peer address; see rust/session_export.rs),
and what the connection knew of the handshake: the cipher suite, the
extended-master-secret flag (RFC 7627), the PSK identity or the peer's key,
the connection IDs (RFC 9146), the record_size_limit the peer sent (RFC 8449
§4: a restored session keeps within it) and the handshake message sequence
numbers. Records of format 2 (before record_size_limit was kept) decode
with no limit; every record is written in format :data:`RECORD_FORMAT`.
The write sequence number in ``record_state`` is a *reserved limit*, not the
live value (see :mod:`dtlsfast.store.saver`), and ``saved_at_start`` the
start (:meth:`~dtlsfast.store.protocol.SessionStore.begin`) of the process
that saved it: a restored session starts at the limit, plus one restart
reservation per start since then that did not save it again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from dtlsfast.byte_reader import ByteReader
from dtlsfast.exceptions import ConfigurationError, DecodeError

RECORD_FORMAT = 3
#: The formats the decoders read (2: a session record with no record_size_limit).
READABLE_FORMATS = (2, 3)
#: A store key: whatever the server names a session by (≤ 32 bytes).
MAX_KEY_LENGTH = 32

#: format flags suite created next_msg_seq state_len saved_at_start record_size_limit
#: (0: none; RFC 8449 §4 allows 64 to 2^14 + 1)
_SESSION_HEAD = struct.Struct(">BBHIHHIH")
_SESSION_HEAD_2 = struct.Struct(">BBHIHHI")
_EMS, _PSK, _PEER_TYPE, _PEER_KEY, _LOCAL_CID, _PEER_CID, _PEER_SEQ, _CHAIN = (
    1 << i for i in range(8)
)
#: A PSK record in one Struct per (record state, identity) length: a few in use.
_PSK_PACKERS: dict[tuple[int, int], struct.Struct] = {}
_MAX_PACKERS = 64
_OBSERVATION_HEAD = struct.Struct(">BIIHH")
_U8, _U16, _U16X2 = (
    struct.Struct(">B"),
    struct.Struct(">H"),
    struct.Struct(">HH"),
)  # format observe registered path_len request_len


@dataclass(slots=True, eq=True)
class SessionRecord:
    """One established session as the store keeps it (see the module).

    Built and read 100,000 at a time, so the bounds are checked when the
    record is encoded (a ConfigurationError), not when it is made."""

    key: bytes
    record_state: bytes = field(repr=False)
    """``SessionTable.export_session(id, reserved_limit)``: it holds the
    session's record keys, so it is left out of the repr."""
    cipher_suite: int
    extended_master_secret: bool
    created: int
    """Seconds since the epoch when the handshake completed."""
    next_message_seq: int = 0
    peer_last_message_seq: int | None = None
    psk_identity: bytes | None = None
    peer_certificate_type: int | None = None
    peer_public_key: bytes | None = None
    """SubjectPublicKeyInfo DER."""
    peer_certificates: tuple[bytes, ...] = ()
    local_cid: bytes | None = None
    """The CID the peer puts on records to us (RFC 9146), if negotiated."""
    peer_cid: bytes | None = None
    saved_at_start: int = 0
    """The store's start count when this record was saved (see the module)."""
    record_size_limit: int | None = None
    """The peer's record_size_limit (RFC 8449), if it sent one."""

    def encode(self) -> bytes:
        """The record without its key (the store keeps the key beside it)."""
        key = self.key
        if type(key) is not bytes or not 0 < len(key) <= MAX_KEY_LENGTH:
            _check_key(key)  # raises, saying why
        identity, peer_key = self.psk_identity, self.peer_public_key
        flags = _EMS if self.extended_master_secret else 0
        if (
            flags
            and identity is not None
            and self.peer_last_message_seq is not None
            and peer_key is None
            and self.peer_certificate_type is None
            and self.local_cid is None
            and self.peer_cid is None
            and not self.peer_certificates
        ):
            # The common case (a PSK session with EMS), in one pack: decode()'s fast path.
            state = self.record_state
            try:
                lengths = (len(state), len(identity))
                packer = _PSK_PACKERS.get(lengths)
                if packer is None:
                    packer = struct.Struct(f"{_SESSION_HEAD.format}{lengths[0]}sHH{lengths[1]}s")
                    if len(_PSK_PACKERS) < _MAX_PACKERS:
                        _PSK_PACKERS[lengths] = packer
                return packer.pack(
                    RECORD_FORMAT,
                    _EMS | _PSK | _PEER_SEQ,
                    self.cipher_suite,
                    self.created,
                    self.next_message_seq,
                    lengths[0],
                    self.saved_at_start,
                    self.record_size_limit or 0,
                    state,
                    self.peer_last_message_seq,
                    lengths[1],
                    identity,
                )
            except (struct.error, OverflowError, TypeError) as exc:
                raise ConfigurationError(f"a session record field is out of range: {exc}") from None
        try:
            parts = [b"", self.record_state]
            if self.peer_last_message_seq is not None:
                flags |= _PEER_SEQ
                parts.append(_U16.pack(self.peer_last_message_seq))
            if identity is not None:
                flags |= _PSK
                parts += [_U16.pack(len(identity)), identity]
            if self.peer_certificate_type is not None:
                flags |= _PEER_TYPE
                parts.append(_U8.pack(self.peer_certificate_type))
            if peer_key is not None:
                flags |= _PEER_KEY
                parts += [_U16.pack(len(peer_key)), peer_key]
            for cid, flag in ((self.local_cid, _LOCAL_CID), (self.peer_cid, _PEER_CID)):
                if cid is not None:
                    flags |= flag
                    parts += [_U8.pack(len(cid)), cid]
            if self.peer_certificates:
                flags |= _CHAIN
                parts.append(_U8.pack(len(self.peer_certificates)))
                for der in self.peer_certificates:
                    if len(der) >> 24:
                        raise struct.error("certificate too large")
                    parts += [len(der).to_bytes(3, "big"), der]
            parts[0] = _SESSION_HEAD.pack(
                RECORD_FORMAT,
                flags,
                self.cipher_suite,
                self.created,
                self.next_message_seq,
                len(self.record_state),
                self.saved_at_start,
                self.record_size_limit or 0,
            )
        except (struct.error, OverflowError, TypeError) as exc:
            raise ConfigurationError(f"a session record field is out of range: {exc}") from None
        return b"".join(parts)

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> SessionRecord:
        """The inverse of :meth:`encode`; DecodeError for anything else."""
        try:
            if data[:1] == b"\x02":
                fmt, flags, suite, created, next_seq, state_end, start = (
                    _SESSION_HEAD_2.unpack_from(data)
                )
                head, limit = _SESSION_HEAD_2.size, 0
            else:
                fmt, flags, suite, created, next_seq, state_end, start, limit = (
                    _SESSION_HEAD.unpack_from(data)
                )
                head = _SESSION_HEAD.size
        except struct.error:
            raise DecodeError("a session record is truncated") from None
        if fmt not in READABLE_FORMATS:
            raise DecodeError(f"a session record of format {fmt}, expected {RECORD_FORMAT}")
        state_end += head
        if flags == _EMS | _PSK | _PEER_SEQ and len(data) >= state_end + 4:
            # The common case (a PSK session): no general reader, one constructor call.
            peer_seq, length = _U16X2.unpack_from(data, state_end)
            if state_end + 4 + length != len(data):
                raise DecodeError("a session record's length is wrong")
            return cls(
                key,
                data[head:state_end],
                suite,
                True,
                created,
                next_seq,
                peer_seq,
                data[state_end + 4 :],
                None,
                None,
                (),
                None,
                None,
                start,
                limit or None,
            )
        record = cls(key, data[head:state_end], suite, bool(flags & _EMS), created)
        record.next_message_seq = next_seq
        record.saved_at_start = start
        if limit:
            record.record_size_limit = limit
        r = ByteReader(data, state_end, "a session record")
        if len(data) < state_end:
            raise DecodeError("a session record is truncated")
        if flags & _PEER_SEQ:
            record.peer_last_message_seq = int.from_bytes(r.take(2), "big")
        if flags & _PSK:
            record.psk_identity = r.vector(2)
        if flags & _PEER_TYPE:
            record.peer_certificate_type = r.take(1)[0]
        if flags & _PEER_KEY:
            record.peer_public_key = r.vector(2)
        if flags & _LOCAL_CID:
            record.local_cid = r.vector(1)
        if flags & _PEER_CID:
            record.peer_cid = r.vector(1)
        if flags & _CHAIN:
            record.peer_certificates = tuple(r.vector(3) for _ in range(r.take(1)[0]))
        r.end()
        return record


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """One CoAP observation (RFC 7641 §4.1): the observer's session, its
    token, the resource path, the registering request (encoded, for its
    options) and the last Observe value sent (§4.4), so that a restarted
    server sends the next notification with a larger one."""

    session_key: bytes
    token: bytes
    path: str
    request: bytes
    observe: int
    registered: int
    """Seconds since the epoch of the registration (or last Confirmable ack)."""

    def __post_init__(self) -> None:
        _check_key(self.session_key)
        if len(self.token) > 8:
            raise ConfigurationError(f"a CoAP token is 0 to 8 bytes, got {len(self.token)}")
        if not 0 <= self.observe < 1 << 24:
            raise ConfigurationError(f"an Observe value is 24 bits, got {self.observe}")
        if not 0 <= self.registered <= 0xFFFFFFFF:
            raise ConfigurationError("registered must be in 0..=2**32-1")
        if len(self.path.encode()) > 0xFFFF or len(self.request) > 0xFFFF:
            raise ConfigurationError("an observation's path and request are at most 64 KiB")

    def encode(self) -> bytes:
        """The record without its session key and token (the store's key)."""
        path = self.path.encode()
        return (
            _OBSERVATION_HEAD.pack(
                RECORD_FORMAT, self.observe, self.registered, len(path), len(self.request)
            )
            + path
            + self.request
        )

    @classmethod
    def decode(cls, session_key: bytes, token: bytes, data: bytes) -> ObservationRecord:
        if len(data) < _OBSERVATION_HEAD.size:
            raise DecodeError("an observation record is truncated")
        fmt, observe, registered, path_length, request_length = _OBSERVATION_HEAD.unpack_from(data)
        if fmt not in READABLE_FORMATS:
            raise DecodeError(f"an observation record of format {fmt}, expected {RECORD_FORMAT}")
        r = ByteReader(data, _OBSERVATION_HEAD.size, "an observation record")
        try:
            path = r.take(path_length).decode()
        except UnicodeDecodeError:
            raise DecodeError("an observation's path is not UTF-8") from None
        request = r.take(request_length)
        r.end()
        try:
            return cls(session_key, token, path, request, observe, registered)
        except ConfigurationError as exc:
            raise DecodeError(f"an observation record is out of bounds: {exc}") from None


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ConfigurationError(f"a store key is 1 to {MAX_KEY_LENGTH} bytes, got {key!r}")


__all__ = [
    "MAX_KEY_LENGTH",
    "READABLE_FORMATS",
    "RECORD_FORMAT",
    "ObservationRecord",
    "SessionRecord",
]
