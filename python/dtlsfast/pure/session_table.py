"""The session table of the fast path: the pure-Python twin of the Rust
``SessionTable`` (rust/session_table.rs).

Established sessions' record state keyed by a session id: the current read
epoch's cipher and replay window (RFC 6347 §4.1.2.6), the current write
epoch's cipher and next sequence number (§4.1). A datagram whose records are
all application data of the current read epoch is judged here; anything else
is handed back whole (None). Batches have no GIL to release here; they exist
so that the two implementations are interchangeable. A session with
connection IDs (RFC 9146) seals tls12_cid records and opens them through
:meth:`SessionTable.open_cid_record`; its datagrams are never the fast path's.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import MAX_SEQUENCE_NUMBER, record_fields, uint
from dtlsfast.pure.coap_answer import CoapAnswers
from dtlsfast.pure.hello_gate import HelloGate
from dtlsfast.pure.record_cipher import AEAD_NAMES, RecordCipher, key_and_iv_lengths
from dtlsfast.pure.records import RECORD_HEADER_LENGTH, parse_records
from dtlsfast.pure.replay_window import ReplayWindow

APPLICATION_DATA = 23
ALERT = 21
#: Largest record plaintext (RFC 5246 §6.2.1): a record that would open to
#: more goes to Python, which answers it with record_overflow.
MAX_PLAINTEXT_LENGTH = 1 << 14
#: The MAC-error filter's default burst and rate per session (those of the
#: Rust table; see dtlsfast.auth_filter). Below them every record is opened.
DEFAULT_AUTH_BURST = 20_000.0
DEFAULT_AUTH_RATE = 200_000.0
_U64 = (1 << 64) - 1


@dataclass
class _Session:
    read: Any
    read_epoch: int
    window: Any
    write: Any
    write_epoch: int
    next_write_sequence: int
    version: int
    address: tuple[object, ...] | None = None
    last_active: float = 0.0
    auth_tokens: float = 0.0
    auth_updated: float = 0.0
    read_cid: bytes = b""
    write_cid: bytes = b""


def _address(address: object) -> tuple[object, ...]:
    """An address as the Rust core returns it: (host, port) for IPv4,
    (host, port, flowinfo, scope_id) for IPv6."""
    if not isinstance(address, tuple) or len(address) < 2:
        raise ConfigurationError(
            "expected an address tuple (host, port[, flowinfo, scope_id]) with a numeric host, "
            f"got {address!r}"
        )
    host = str(address[0]).split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigurationError(
            "expected an address tuple (host, port[, flowinfo, scope_id]) with a numeric host, "
            f"got {address!r}"
        ) from None
    port = int(address[1])
    if ip.version == 4:
        return (str(ip), port)
    flow = int(address[2]) if len(address) > 2 else 0
    scope = int(address[3]) if len(address) > 3 else 0
    return (str(ip), port, flow, scope)


#: The close_notify alert (RFC 5246 §7.2.1): level warning, description 0.
CLOSE_NOTIFY = b"\x01\x00"


def is_client_hello(data: bytes) -> bool:
    """Whether a datagram starts with an epoch-0 record holding a
    ClientHello (type 22, epoch 0, handshake type 1 at offset 13): what the
    server and the batch socket's muting take as a hello."""
    return len(data) > 25 and data[0] == 22 and data[3] == 0 and data[4] == 0 and data[13] == 1


def _of_read_epoch(session: _Session, record: tuple[int, int, int, int, bytes], ctype: int) -> bool:
    """Whether a parsed record is one the table's fast paths may open: of
    ``ctype``, in the session's current read epoch, a DTLS version, and no
    longer than a protected record of at most 2^14 bytes of plaintext
    (RFC 6347 §4.1, RFC 5246 §6.2.3). Anything else goes to Python."""
    content_type, version, epoch, _seq, fragment = record
    return (
        content_type == ctype
        and epoch == session.read_epoch
        and version >> 8 == 0xFE
        and len(fragment) <= MAX_PLAINTEXT_LENGTH + session.read.overhead
    )


def _batch(batch: Iterable[object]) -> list[tuple[int, bytes]]:
    items = []
    for item in batch:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[1], bytes):
            raise ConfigurationError("batch items must be (session_id, bytes) tuples")
        items.append((uint(item[0], "session_id", _U64), item[1]))
    return items


class SessionTable:
    """Established sessions' record state for the fast path (DESIGN.md)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = uint(capacity, "capacity", 0xFFFFFFFF)
        if self._capacity == 0:
            raise ConfigurationError("capacity must be at least 1")
        self._sessions: dict[int, _Session] = {}
        self._answers = CoapAnswers()
        self._by_address: dict[tuple[object, ...], int] = {}
        self._auth_burst, self._auth_rate = DEFAULT_AUTH_BURST, DEFAULT_AUTH_RATE
        self._totals = {
            "opened": 0,
            "replayed": 0,
            "bad_auth": 0,
            "throttled": 0,
            "hellos_answered": 0,
            "closed": 0,
        }

    @property
    def totals(self) -> dict[str, int]:
        """Totals of :meth:`serve` over all sessions, removed ones included."""
        return dict(self._totals)

    def bind_address(self, session_id: int, address: tuple[object, ...], now: float) -> None:
        """Route datagrams from ``address`` to the session in :meth:`serve`."""
        sid = uint(session_id, "session_id", _U64)
        session = self._sessions.get(sid)
        if session is None:
            raise ConfigurationError(f"no session {sid} in the table")
        key = _address(address)
        if session.address is not None and self._by_address.get(session.address) == sid:
            del self._by_address[session.address]
        session.address, session.last_active = key, float(now)
        session.auth_tokens, session.auth_updated = self._auth_burst, float(now)
        previous = self._by_address.get(key)
        if previous is not None and previous != sid and previous in self._sessions:
            self._sessions[previous].address = None
        self._by_address[key] = sid

    def set_auth_filter(self, burst: float, rate: float) -> None:
        if not (burst >= 1 and rate >= 0 and math.isfinite(burst) and math.isfinite(rate)):
            raise ConfigurationError("the MAC-error filter needs burst >= 1 and a finite rate >= 0")
        self._auth_burst, self._auth_rate = float(burst), float(rate)

    def last_active(self, session_id: int) -> float | None:
        session = self._sessions.get(uint(session_id, "session_id", _U64))
        return None if session is None else session.last_active

    def serve(
        self, batch: Iterable[object], now: float, gate: HelloGate | None = None
    ) -> tuple[
        int,
        list[tuple[bytes, tuple[object, ...]]],
        list[tuple[tuple[object, ...], bytes]],
        list[tuple[bytes, tuple[object, ...]]],
        list[tuple[tuple[object, ...], int]],
    ]:
        """The fast path for a batch of ``(data, address)``: datagrams from a
        bound address are opened by their session, and a close_notify is
        answered (RFC 5246 §7.2.1), the session unbound and reported closed;
        with the server's ``gate``, a ClientHello without a cookie from
        another address is answered with its HelloVerifyRequest (RFC 6347
        §4.2.1); the rest goes to Python."""
        items = []
        for item in batch:
            if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], bytes):
                raise ConfigurationError("items must be (bytes, address) tuples")
            items.append((item[0], _address(item[1])))
        to_python: list[tuple[bytes, tuple[object, ...]]] = []
        delivered: list[tuple[tuple[object, ...], bytes]] = []
        replies: list[tuple[bytes, tuple[object, ...]]] = []
        closed: list[tuple[tuple[object, ...], int]] = []
        for data, addr in items:
            sid = self._by_address.get(addr)
            if sid is None:
                if gate is not None and is_client_hello(data):
                    answer = gate.answer_cookieless(data, addr)
                    if answer is not None:
                        replies.append((answer, addr))
                        self._totals["hellos_answered"] += 1
                        continue
                to_python.append((data, addr))
                continue
            session = self._sessions[sid]
            elapsed = now - session.auth_updated
            if elapsed > 0:
                session.auth_tokens = min(
                    self._auth_burst, session.auth_tokens + elapsed * self._auth_rate
                )
                session.auth_updated = now
            if session.auth_tokens < 1:
                self._totals["throttled"] += 1
                continue
            fast = self.open_datagram(sid, data)
            if fast is None:
                if self._close_notified(session, data, now):
                    replies += [(reply, addr) for reply in self._close_reply(session)]
                    del self._by_address[addr]
                    session.address = None
                    self._totals["closed"] += 1
                    closed.append((addr, sid))
                    continue
                to_python.append((data, addr))
                continue
            plaintexts, replayed, bad_auth, answers = fast
            self._totals["opened"] += 1
            self._totals["replayed"] += replayed
            self._totals["bad_auth"] += bad_auth
            if plaintexts or answers:  # forged or replayed records are no activity
                session.last_active = now
            if bad_auth:
                session.auth_tokens = max(0.0, session.auth_tokens - bad_auth)
            replies += [(reply, addr) for reply in answers]
            delivered += [(addr, plaintext) for plaintext in plaintexts]
        return len(items), to_python, delivered, replies, closed

    def _close_notified(self, session: _Session, datagram: bytes, now: float) -> bool:
        """Whether the datagram is one close_notify of the session's read
        epoch, new and authentic (then taken into the window); anything else
        leaves the session as it was."""
        record = self._one_alert(session, datagram)
        if record is None:
            return False
        _, _, _, seq, _ = record
        opened = self._unsealed(session, *record)
        if not isinstance(opened, bytes) or opened != CLOSE_NOTIFY:
            return False
        session.window.accept(seq)
        session.last_active = now
        return True

    def _close_reply(self, session: _Session) -> list[bytes]:
        """Our close_notify, if a sequence number is left for it."""
        try:
            return [self._seal(session, ALERT, CLOSE_NOTIFY)]
        except ConfigurationError:
            return []

    @property
    def coap_answered(self) -> int:
        """CoAP requests answered from published responses so far."""
        return self._answers.answered

    def publish(self, path: bytes, response: bytes | None) -> None:
        """Publish (or with None withdraw) the response to a plain GET of ``path``."""
        self._answers.publish(path, response)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def session_footprint(self) -> int:
        """Approximate bytes per installed session (the state object only)."""
        for session in self._sessions.values():
            return sys.getsizeof(session) + sys.getsizeof(session.__dict__)
        return 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return isinstance(session_id, int) and session_id in self._sessions

    def install(
        self,
        session_id: int,
        read_cipher: Any,
        read_epoch: int,
        window: Any,
        write_cipher: Any,
        write_epoch: int,
        next_write_sequence: int,
        version: int = 0xFEFD,
    ) -> None:
        """Take over a session's current epochs (the window is copied; the
        ciphers are stateless, so they are shared)."""
        sid = uint(session_id, "session_id", _U64)
        session = _Session(
            read_cipher,
            uint(read_epoch, "read_epoch", 0xFFFF),
            copy.deepcopy(window),
            write_cipher,
            uint(write_epoch, "write_epoch", 0xFFFF),
            uint(next_write_sequence, "next_write_sequence", MAX_SEQUENCE_NUMBER),
            uint(version, "version", 0xFFFF),
        )
        if sid not in self._sessions and len(self._sessions) >= self._capacity:
            raise ConfigurationError(
                f"the session table is full ({self._capacity} sessions): remove one before "
                "installing another"
            )
        self._sessions[sid] = session

    def remove(self, session_id: int) -> bool:
        sid = uint(session_id, "session_id", _U64)
        session = self._sessions.pop(sid, None)
        if session is None:
            return False
        if session.address is not None and self._by_address.get(session.address) == sid:
            del self._by_address[session.address]
        return True

    def export_session(
        self, session_id: int, next_write_sequence: int | None = None
    ) -> bytes | None:
        """The session's record state as bytes (the layout of
        rust/session_export.rs), with ``next_write_sequence`` in place of the
        live one when given; None if unknown."""
        session = self._sessions.get(uint(session_id, "session_id", _U64))
        if session is None:
            return None
        seq = session.next_write_sequence
        if next_write_sequence is not None:
            seq = uint(next_write_sequence, "next_write_sequence", MAX_SEQUENCE_NUMBER)
        return encode_export(session, seq)

    def import_session(self, session_id: int, data: bytes, now: float) -> None:
        """Install a session from :meth:`export_session`'s bytes and bind
        its address (ConfigurationError if malformed)."""
        sid = uint(session_id, "session_id", _U64)
        read, read_epoch, window, write, write_epoch, seq, version, address = decode_export(data)
        self.install(sid, read, read_epoch, window, write, write_epoch, seq, version)
        if address is not None:
            self.bind_address(sid, address, now)

    def import_sessions(
        self, items: Iterable[tuple[int, bytes, int | None, bool]], now: float
    ) -> list[tuple[object, ...] | str | None]:
        """Install many sessions from :meth:`export_session`'s bytes: each
        ``(session_id, data, next_write_sequence, bind)`` gets
        ``next_write_sequence`` (unless None) and, with ``bind``, its address
        bound unless another session holds it. One outcome per item: the
        saved address (or None), or a str saying why it was left out."""
        parsed = []
        for item in items:
            if not isinstance(item, tuple) or len(item) != 4 or not isinstance(item[1], bytes):
                raise ConfigurationError(
                    "import_sessions takes (session_id, bytes, next_write_sequence or None, "
                    "bind) tuples"
                )
            sid = uint(item[0], "session_id", _U64)
            seq = item[2]
            if seq is not None:
                seq = uint(seq, "next_write_sequence", MAX_SEQUENCE_NUMBER)
            parsed.append((sid, item[1], seq, bool(item[3])))
        outcomes: list[tuple[object, ...] | str | None] = []
        for sid, data, seq, bind in parsed:
            try:
                read, read_epoch, window, write, write_epoch, saved, version, address = (
                    decode_export(data)
                )
                if seq is not None:
                    saved = seq
                if bind and address is not None:
                    other = self._by_address.get(address)
                    if other is not None and other != sid:
                        raise ConfigurationError(f"another session has the address {address}")
                self.install(sid, read, read_epoch, window, write, write_epoch, saved, version)
                if bind and address is not None:
                    self.bind_address(sid, address, now)
            except ConfigurationError as exc:
                outcomes.append(str(exc))
                continue
            outcomes.append(address)
        return outcomes

    def next_write_sequence(self, session_id: int) -> int | None:
        session = self._sessions.get(uint(session_id, "session_id", _U64))
        return None if session is None else session.next_write_sequence

    def open_record(
        self,
        session_id: int,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        fragment: bytes,
    ) -> bytes | str | None:
        sid = uint(session_id, "session_id", _U64)
        fields = record_fields(content_type, version, epoch, sequence_number)
        session = self._sessions.get(sid)
        if session is None or fields[2] != session.read_epoch or session.read_cid:
            return None
        return self._open(session, *fields, fragment)

    def set_connection_ids(self, session_id: int, read_cid: bytes, write_cid: bytes) -> None:
        """Give the session connection IDs (RFC 9146); empty keeps the plain
        record format in that direction."""
        if len(read_cid) > 255 or len(write_cid) > 255:
            raise ConfigurationError("a connection ID is at most 255 bytes (RFC 9146 §3)")
        sid = uint(session_id, "session_id", _U64)
        session = self._sessions.get(sid)
        if session is None:
            raise ConfigurationError(f"no session {sid} in the table")
        session.read_cid, session.write_cid = bytes(read_cid), bytes(write_cid)

    def open_cid_record(
        self,
        session_id: int,
        version: int,
        epoch: int,
        sequence_number: int,
        cid: bytes,
        fragment: bytes,
    ) -> tuple[int, bytes, bool] | str | None:
        """Open one tls12_cid record carrying ``cid``: ``(content_type,
        plaintext, newest)``, "replay" or "bad_auth"; None if not the table's
        to judge (unknown session, another epoch, another CID)."""
        sid = uint(session_id, "session_id", _U64)
        _, ver, ep, seq = record_fields(25, version, epoch, sequence_number)
        session = self._sessions.get(sid)
        if session is None or ep != session.read_epoch or not session.read_cid:
            return None
        if bytes(cid) != session.read_cid:
            return None
        window = session.window
        if not window.check(seq):
            return "replay"
        highest = window.highest
        newest = highest is None or seq > highest
        opened = session.read.open_cid(ver, ep, seq, cid, fragment)
        if opened is None:
            return "bad_auth"
        window.accept(seq)
        return opened[0], bytes(opened[1]), newest

    def open_datagram(
        self, session_id: int, datagram: bytes
    ) -> tuple[list[bytes], int, int, list[bytes]] | None:
        session = self._sessions.get(uint(session_id, "session_id", _U64))
        if session is None or session.read_cid:
            return None
        records = parse_records(datagram)
        if not records or sum(RECORD_HEADER_LENGTH + len(r[4]) for r in records) != len(datagram):
            return None
        for record in records:
            if not _of_read_epoch(session, record, APPLICATION_DATA):
                return None
        plaintexts: list[bytes] = []
        replies: list[bytes] = []
        replayed = bad_auth = 0
        for record in records:
            result = self._open(session, *record)
            if isinstance(result, bytes):
                reply = self._answers.answer(result)
                if reply is not None:
                    try:
                        replies.append(self._seal(session, APPLICATION_DATA, reply))
                        continue
                    except ConfigurationError:
                        pass
                plaintexts.append(result)
            elif result == "replay":
                replayed += 1
            else:
                bad_auth += 1
        return plaintexts, replayed, bad_auth, replies

    def open_alert(self, session_id: int, datagram: bytes) -> bytes | str | None:
        session = self._sessions.get(uint(session_id, "session_id", _U64))
        if session is None:
            return None
        record = self._one_alert(session, datagram)
        return None if record is None else self._open(session, *record)

    @staticmethod
    def _one_alert(session: _Session, datagram: bytes) -> tuple[int, int, int, int, bytes] | None:
        """The datagram's one record if it is an alert of the session's read
        epoch (a session without tls12_cid records) and nothing follows it."""
        if session.read_cid:
            return None
        records = parse_records(datagram)
        if (
            len(records) != 1
            or RECORD_HEADER_LENGTH + len(records[0][4]) != len(datagram)
            or not _of_read_epoch(session, records[0], ALERT)
        ):
            return None
        return records[0]

    def open_batch(
        self, batch: Iterable[object]
    ) -> list[tuple[list[bytes], int, int, list[bytes]] | None]:
        return [self.open_datagram(sid, data) for sid, data in _batch(batch)]

    def seal(self, session_id: int, content_type: int, plaintext: bytes) -> bytes:
        sid = uint(session_id, "session_id", _U64)
        ctype = uint(content_type, "content_type", 0xFF)
        session = self._sessions.get(sid)
        if session is None:
            raise ConfigurationError(f"no session {sid} in the table")
        return self._seal(session, ctype, plaintext)

    @staticmethod
    def _seal(session: _Session, ctype: int, plaintext: bytes) -> bytes:
        seq = session.next_write_sequence
        if seq > MAX_SEQUENCE_NUMBER:
            raise ConfigurationError("the write sequence number is exhausted: close the session")
        if session.write_cid:
            sealed = bytes(
                session.write.seal_cid(
                    ctype, session.version, session.write_epoch, seq, session.write_cid, plaintext
                )
            )
        else:
            sealed = bytes(
                session.write.seal(ctype, session.version, session.write_epoch, seq, plaintext)
            )
        session.next_write_sequence = seq + 1
        return sealed

    def seal_batch(self, batch: Iterable[object]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for sid, plaintext in _batch(batch):
            try:
                out.append(self.seal(sid, APPLICATION_DATA, plaintext))
            except ConfigurationError:
                out.append(None)
        return out

    @staticmethod
    def _open(
        session: _Session, ctype: int, version: int, epoch: int, seq: int, fragment: bytes
    ) -> bytes | str:
        opened = SessionTable._unsealed(session, ctype, version, epoch, seq, fragment)
        if isinstance(opened, bytes):
            session.window.accept(seq)
        return opened

    @staticmethod
    def _unsealed(
        session: _Session, ctype: int, version: int, epoch: int, seq: int, fragment: bytes
    ) -> bytes | str:
        """The record's plaintext if it is new to the window and
        authenticates, else why not; the window is left as it was."""
        if not session.window.check(seq):
            return "replay"
        plaintext = session.read.open_parts(ctype, version, epoch, seq, fragment)
        if plaintext is None:
            return "bad_auth"
        return bytes(plaintext)

    def __repr__(self) -> str:
        return f"<SessionTable {len(self._sessions)} of {self._capacity} sessions>"


_EXPORT_FORMAT = 1
_EXPORT_HEAD = struct.Struct(">BBHHHQ")


def encode_export(session: _Session, next_write_sequence: int) -> bytes:
    """rust/session_export.rs's ``encode_session``."""
    parts = [
        _EXPORT_HEAD.pack(
            _EXPORT_FORMAT,
            AEAD_NAMES.index(session.read.aead),
            session.version,
            session.read_epoch,
            session.write_epoch,
            next_write_sequence,
        )
    ]
    for cipher in (session.read, session.write):
        parts += cipher.key_material()
    highest, bitmap = session.window.export()
    parts.append(struct.pack(">H", session.window.size))
    parts.append(b"\0" if highest is None else b"\1" + highest.to_bytes(8, "big") + bitmap)
    address = session.address
    if address is None:
        parts.append(b"\0")
    else:
        ip = ipaddress.ip_address(str(address[0]))
        port = int(address[1])  # type: ignore[call-overload]
        if ip.version == 4:
            parts.append(b"\4" + ip.packed + port.to_bytes(2, "big"))
        else:
            flow, scope = (int(v) for v in address[2:4])  # type: ignore[call-overload]
            parts.append(b"\6" + ip.packed + struct.pack(">HII", port, flow, scope))
    return b"".join(parts)


def decode_export(
    data: bytes,
) -> tuple[Any, int, Any, Any, int, int, int, tuple[object, ...] | None]:
    """rust/session_export.rs's ``decode_session``: the install() arguments
    and the address."""

    def malformed(why: str) -> ConfigurationError:
        return ConfigurationError(f"a session export is malformed: {why}")

    view = memoryview(data)
    offset = 0

    def take(n: int) -> bytes:
        nonlocal offset
        if offset + n > len(view):
            raise malformed("it is truncated")
        out = bytes(view[offset : offset + n])
        offset += n
        return out

    fmt, aead_index, version, read_epoch, write_epoch, seq = _EXPORT_HEAD.unpack(
        take(_EXPORT_HEAD.size)
    )
    if fmt != _EXPORT_FORMAT:
        raise ConfigurationError(f"a session export of format {fmt}, expected {_EXPORT_FORMAT}")
    if aead_index >= len(AEAD_NAMES):
        raise malformed("unknown AEAD")
    name = AEAD_NAMES[aead_index]
    key_length, iv_length = key_and_iv_lengths(name)
    read = RecordCipher(name, take(key_length), take(iv_length))
    write = RecordCipher(name, take(key_length), take(iv_length))
    size = int.from_bytes(take(2), "big")
    flag = take(1)[0]
    if flag == 0:
        window = ReplayWindow.restore(size, None, b"")
    elif flag == 1:
        highest = int.from_bytes(take(8), "big")
        window = ReplayWindow.restore(size, highest, take((size + 7) // 8))
    else:
        raise malformed("bad window flag")
    family = take(1)[0]
    address: tuple[object, ...] | None
    if family == 0:
        address = None
    elif family == 4:
        address = (str(ipaddress.IPv4Address(take(4))), int.from_bytes(take(2), "big"))
    elif family == 6:
        ip = str(ipaddress.IPv6Address(take(16)))
        port, flow, scope = struct.unpack(">HII", take(10))
        address = (ip, port, flow, scope)
    else:
        raise malformed("bad address family")
    if offset != len(view):
        raise malformed("trailing bytes")
    return read, read_epoch, window, write, write_epoch, seq, version, address


__all__ = ["SessionTable"]
