"""The load generator's steady state: the pure-Python twin of the Rust
``ClientTable`` (rust/client_table.rs).

Established sessions (their current read and write epochs, RFC 6347 §4.1)
keep ``window`` Confirmable CoAP requests (RFC 7252 §4.2) in flight: each
request is built (4-byte token, message IDs counting up), sealed and sent;
responses are opened (replay check §4.1.2.6, AEAD; failures dropped,
§4.1.2.7) and matched to their tokens, empty ACKs and resets to their
message IDs, and separate (CON) responses are acknowledged. Anything that is
not application data of the current read epoch is handed back. Python's
policy judges the timers (:meth:`ClientTable.tick`). The same timers'
random draws (splitmix64) and the same latency histogram as the Rust core,
so that the differential tests hold the two to identical bytes and counts.
"""

from __future__ import annotations

import copy
import math
import os
import select
import time
from dataclasses import dataclass, field
from typing import Any

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import MAX_SEQUENCE_NUMBER, uint
from dtlsfast.pure.records import parse_records

APPLICATION_DATA = 23
MAX_WINDOW = 256
#: The latency histogram (the load generator's too): buckets 0.1 % wide from
#: 1 µs to 10,000 s, so that memory stays bounded however long the run.
PER_LOG = 1 / math.log(1.001)
BUCKETS = int(math.log(1e10) * PER_LOG) + 1
_U64 = (1 << 64) - 1
_CON, _ACK, _RST = 0, 2, 3
#: Datagrams read per socket and wake-up, and the largest one: a whole
#: DTLS record (13 + 2^14 + 2,048 bytes).
RECV_BATCH = 16
RECV_BUFFER = 13 + (1 << 14) + 2048

Outgoing = list[tuple[int, bytes]]


@dataclass
class _Pending:
    token: int
    mid: int
    first_sent: float
    deadline: float
    timeout: float
    retransmissions: int = 0
    acked: bool = False


@dataclass
class _Session:
    fd: int
    read: Any
    read_epoch: int
    window: Any
    write: Any
    write_epoch: int
    next_write_sequence: int
    version: int
    mid: int
    token: int
    pending: list[_Pending] = field(default_factory=list)
    deferred: int = 0
    dead: bool = False


def bucket_of(latency: float) -> int:
    """The histogram bucket (0.1 % wide, from 1 µs) of a latency in seconds."""
    micros = latency * 1e6
    return min(int(math.log(micros) * PER_LOG), BUCKETS - 1) if micros > 1.0 else 0


class ClientTable:
    """See the module docstring; the same methods as the Rust core's."""

    def __init__(
        self,
        code: int,
        tail: bytes,
        *,
        ack_timeout: float = 2.0,
        random_factor: float = 1.5,
        request_timeout: float = 10.0,
        seed: int = 0,
    ) -> None:
        if not (ack_timeout > 0.0 and random_factor >= 1.0 and request_timeout > 0.0):
            raise ConfigurationError(
                "ack_timeout and request_timeout must be positive, random_factor at least 1"
            )
        if len(tail) > 1024:
            raise ConfigurationError("the request's options and payload take at most 1,024 bytes")
        self._code = uint(code, "code", 0xFF)
        self._tail = bytes(tail)
        self._ack_timeout = ack_timeout
        self._random_factor = random_factor
        self._request_timeout = request_timeout
        self._rng = uint(seed, "seed", _U64)
        self._running = False
        self._sessions: list[_Session] = []
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "error_responses",
                "resets",
                "timeouts",
                "transport_errors",
                "retransmissions",
                "sessions_lost",
                "bad_records",
                "truncated",
            ),
            0,
        )
        self._latency_sum = 0.0
        self._latency_max = 0.0
        self._codes: dict[int, int] = {}
        self._buckets: dict[int, int] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None

    # -- sessions ----------------------------------------------------------------

    def add(
        self,
        fd: int,
        read_cipher: Any,
        read_epoch: int,
        window: Any,
        write_cipher: Any,
        write_epoch: int,
        next_write_sequence: int,
        version: int = 0xFEFD,
        mid: int = 0,
        token: int = 0,
    ) -> int:
        index = len(self._sessions)
        session = _Session(
            fd,
            read_cipher,
            uint(read_epoch, "read_epoch", 0xFFFF),
            copy.deepcopy(window),
            write_cipher,
            uint(write_epoch, "write_epoch", 0xFFFF),
            uint(next_write_sequence, "next_write_sequence", MAX_SEQUENCE_NUMBER),
            uint(version, "version", 0xFFFF),
            uint(mid, "mid", 0xFFFF),
            uint(token, "token", 0xFFFFFFFF),
        )
        if fd >= 0 and self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
            self._by_fd()[fd] = index
        self._sessions.append(session)
        return index

    def _by_fd(self) -> dict[int, int]:
        if not hasattr(self, "_fds"):
            self._fds: dict[int, int] = {}
        return self._fds

    def _session(self, index: int) -> _Session:
        index = uint(index, "index", 0xFFFFFFFF)
        if index >= len(self._sessions):
            raise ConfigurationError(f"no session {index} in the table")
        return self._sessions[index]

    def __len__(self) -> int:
        return len(self._sessions)

    def fileno(self) -> int:
        return self._epoll.fileno() if self._epoll is not None else -1

    @property
    def running(self) -> bool:
        return self._running

    @property
    def in_flight(self) -> int:
        return sum(len(s.pending) for s in self._sessions)

    @property
    def requests(self) -> int:
        return self._stats["requests"]

    @property
    def errors(self) -> int:
        s = self._stats
        return s["error_responses"] + s["resets"] + s["timeouts"] + s["transport_errors"]

    @property
    def retransmissions(self) -> int:
        return self._stats["retransmissions"]

    def next_write_sequence(self, index: int) -> int | None:
        index = uint(index, "index", 0xFFFFFFFF)
        return self._sessions[index].next_write_sequence if index < len(self._sessions) else None

    def stats(self, histogram: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._stats)
        if not histogram:
            return out
        out["latency_sum"] = self._latency_sum
        out["latency_max"] = self._latency_max
        out["codes"] = dict(sorted(self._codes.items()))
        out["buckets"] = dict(sorted(self._buckets.items()))
        return out

    # -- the load ------------------------------------------------------------------

    def _uniform(self) -> float:
        """splitmix64, as a float in [0, 1)."""
        self._rng = (self._rng + 0x9E3779B97F4A7C15) & _U64
        z = self._rng
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
        z ^= z >> 31
        return (z >> 11) / float(1 << 53)

    def begin(self, window: int, now: float) -> Outgoing:
        if not 1 <= window <= MAX_WINDOW:
            raise ConfigurationError(f"window must be from 1 to {MAX_WINDOW}, not {window}")
        self._running = True
        out: Outgoing = []
        for index in range(len(self._sessions)):
            for _ in range(window):
                self._send_request(index, now, out)
        return self._flush(out)

    def end(self) -> int:
        self._running = False
        return self.in_flight

    def _send_request(self, index: int, now: float, out: Outgoing) -> None:
        if not self._running:
            return
        u = self._uniform()
        timeout = self._ack_timeout * (1.0 + (self._random_factor - 1.0) * u)
        session = self._sessions[index]
        if session.dead or len(session.pending) >= MAX_WINDOW:
            return
        session.mid = (session.mid + 1) & 0xFFFF
        session.token = (session.token + 1) & 0xFFFFFFFF
        deadline = min(now + timeout, now + self._request_timeout)
        session.pending.append(_Pending(session.token, session.mid, now, deadline, timeout))
        self._seal_request(index, session.mid, session.token, out)

    def _seal_request(self, index: int, mid: int, token: int, out: Outgoing) -> None:
        plaintext = (
            bytes((0x44, self._code)) + mid.to_bytes(2, "big") + token.to_bytes(4, "big")
        ) + self._tail
        record = _seal(self._sessions[index], plaintext)
        if record is not None:
            out.append((index, record))

    def feed(self, index: int, datagram: bytes, now: float) -> tuple[bool, Outgoing]:
        out: Outgoing = []
        taken = self._feed(uint(index, "index", 0xFFFFFFFF), bytes(datagram), now, out)
        return taken, self._flush(out)

    def _feed(self, index: int, datagram: bytes, now: float, out: Outgoing) -> bool:
        if index >= len(self._sessions):
            return False
        session = self._sessions[index]
        records = parse_records(datagram)
        if not records or sum(13 + len(r[4]) for r in records) != len(datagram):
            return False
        for content_type, version, epoch, _, _ in records:
            if content_type != APPLICATION_DATA or epoch != session.read_epoch:
                return False
            if version >> 8 != 0xFE:
                return False
        for content_type, version, epoch, seq, fragment in records:
            if not session.window.check(seq):
                self._stats["bad_records"] += 1
                continue
            plaintext = session.read.open_parts(content_type, version, epoch, seq, fragment)
            if plaintext is None:
                self._stats["bad_records"] += 1
                continue
            session.window.accept(seq)
            self._on_coap(index, plaintext, now, out)
        return True

    def _on_coap(self, index: int, data: bytes, now: float, out: Outgoing) -> None:
        if len(data) < 4 or not self._running:
            return
        b0, code = data[0], data[1]
        mtype = (b0 >> 4) & 3
        mid = (data[2] << 8) | data[3]
        session = self._sessions[index]
        if code == 0:
            if mtype == _ACK:
                for entry in session.pending:
                    if entry.mid == mid:
                        entry.acked = True
                        break
            elif mtype == _RST:
                for at, entry in enumerate(session.pending):
                    if entry.mid == mid:
                        del session.pending[at]
                        self._stats["resets"] += 1
                        self._send_request(index, now, out)
                        break
            return
        if mtype == _CON:
            ack = _seal(session, bytes((0x60, 0, data[2], data[3])))
            if ack is not None:
                out.append((index, ack))
        if b0 & 0x0F != 4 or len(data) < 8:
            return
        where = _find(session.pending, int.from_bytes(data[4:8], "big"))
        if where is None:
            return  # late, duplicate or not ours
        found = session.pending.pop(where)
        latency = now - found.first_sent
        self._latency_sum += latency
        if latency > self._latency_max:
            self._latency_max = latency
        bucket = bucket_of(latency)
        self._buckets[bucket] = self._buckets.get(bucket, 0) + 1
        self._stats["requests"] += 1
        self._codes[code] = self._codes.get(code, 0) + 1
        if code >= 0x80:
            self._stats["error_responses"] += 1
        self._send_request(index, now, out)

    def tick(self, now: float) -> tuple[list[tuple[int, int, int, float, float, bool]], Outgoing]:
        out: Outgoing = []
        for index, session in enumerate(self._sessions):
            deferred, session.deferred = session.deferred, 0
            for _ in range(deferred):
                self._send_request(index, now, out)
        limit = self._request_timeout
        due = [
            (index, e.token, e.retransmissions, e.timeout, e.first_sent, e.acked)
            for index, session in enumerate(self._sessions)
            for e in session.pending
            if now - e.first_sent >= limit or (not e.acked and now >= e.deadline)
        ]
        return due, self._flush(out)

    def retransmit(
        self, index: int, token: int, timeout: float, now: float
    ) -> tuple[bool, Outgoing]:
        if math.isnan(timeout) or timeout <= 0.0:
            raise ConfigurationError("the timeout must be positive")
        session = self._session(index)
        at = _find(session.pending, token)
        if at is None:
            return False, []
        entry = session.pending[at]
        entry.retransmissions += 1
        entry.timeout = timeout
        entry.deadline = now + timeout
        self._stats["retransmissions"] += 1
        out: Outgoing = []
        self._seal_request(index, entry.mid, token, out)
        return True, self._flush(out)

    def give_up(self, index: int, token: int, now: float) -> tuple[bool, Outgoing]:
        session = self._session(index)
        at = _find(session.pending, token)
        if at is None:
            return False, []
        del session.pending[at]
        self._stats["timeouts"] += 1
        out: Outgoing = []
        self._send_request(index, now, out)
        return True, self._flush(out)

    def lose(self, index: int) -> None:
        session = self._session(index)
        if session.dead:
            return
        session.dead = True
        lost = len(session.pending)
        session.pending.clear()
        self._stats["sessions_lost"] += 1
        if self._running:
            self._stats["transport_errors"] += lost

    def transport_error(self, index: int) -> None:
        session = self._session(index)
        if not self._running or session.dead:
            return
        if session.pending:
            del session.pending[0]
            session.deferred += 1
        self._stats["transport_errors"] += 1

    # -- I/O -------------------------------------------------------------------

    def _flush(self, out: Outgoing) -> Outgoing:
        """Send the records of sessions with a socket; return the others."""
        kept: Outgoing = []
        for index, record in out:
            fd = self._sessions[index].fd
            if fd < 0:
                kept.append((index, record))
                continue
            try:
                os.write(fd, record)
            except (BlockingIOError, InterruptedError):
                pass  # lost, as UDP would lose it: the timers resend it
            except OSError:
                self.transport_error(index)
        return kept

    def poll(self, rounds: int = 8) -> list[tuple[int, bytes]]:
        to_python: list[tuple[int, bytes]] = []
        if self._epoll is None:
            return to_python
        fds = self._by_fd()
        for _ in range(max(1, rounds)):
            ready = self._epoll.poll(0)
            if not ready:
                break
            for fd, _ in ready:
                index = fds[fd]
                for _ in range(RECV_BATCH):
                    try:
                        data = os.read(fd, RECV_BUFFER + 1)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        self.transport_error(index)
                        break
                    if len(data) > RECV_BUFFER:
                        self._stats["truncated"] += 1
                        continue
                    out: Outgoing = []
                    if not self._feed(index, data, _monotonic(), out):
                        to_python.append((index, data))
                    self._flush(out)
        return to_python

    def __repr__(self) -> str:
        return f"<ClientTable {len(self._sessions)} sessions>"


def _find(pending: list[_Pending], token: int) -> int | None:
    """Where request ``token`` is in flight; None if it is not."""
    for at, entry in enumerate(pending):
        if entry.token == token:
            return at
    return None


def _monotonic() -> float:
    return time.monotonic()


def _seal(session: _Session, plaintext: bytes) -> bytes | None:
    seq = session.next_write_sequence
    if seq > MAX_SEQUENCE_NUMBER:
        return None
    record: bytes = session.write.seal(
        APPLICATION_DATA, session.version, session.write_epoch, seq, plaintext
    )
    session.next_write_sequence = seq + 1
    return record


__all__ = ["BUCKETS", "PER_LOG", "ClientTable", "bucket_of"]
