"""A CoAP/CoAPS load generator: many sessions, a window of requests each.

:func:`run_load` opens ``sessions`` DTLS sessions (PSK) to any CoAPS server,
or plain UDP sockets for ``coap://``, each on its own UDP source port, and
keeps ``window`` Confirmable requests in flight on each for ``duration``
seconds; it returns a :class:`LoadResult` with the request rate, latency
percentiles, errors and retransmissions. ``dtlsfast bench`` is its command
line. :func:`run_handshakes` (``dtlsfast bench --mode handshakes``) is a
handshake storm instead: full handshakes from new ports, closed at once.

The generator is built to cost little CPU per request so that it measures the
server, not itself. The sans-I/O :class:`DtlsConnection` runs each session's
handshake over a transport that receives into a reused buffer
(:mod:`dtlsfast.datagram_transport`). Then the load phase of CoAPS sessions
runs in the Rust core's ``ClientTable`` (rust/client_table.rs): requests are
built, sealed and sent, responses received (epoll, recvmmsg), opened and
matched there with the GIL released, and Python keeps the policy: one
ticker per run judges the requests whose timers expired (RFC 7252 §4.2:
ACK_TIMEOUT 2 s, random factor 1.5, doubling, MAX_RETRANSMIT 4), and every
record the table does not take (alerts, retransmitted handshake flights)
goes to the session's connection. Plain CoAP (and a platform without epoll)
keeps the Python path: one ``DatagramProtocol`` per session, pre-encoded
requests, no task per request.

Counting: ``requests`` are requests that got a response (any code) within
the run; ``request_errors`` are requests answered with 4.xx/5.xx, reset,
given up (``request_timeout`` or MAX_RETRANSMIT exhausted), or hit by an ICMP
error (the replacement of such a request waits for the next tick, 0.1 s, so
that a refused port is not a busy loop); ``errors`` adds the failed
handshakes. Requests still in flight when the run ends are ``unanswered``,
neither answered nor errors.
Latency is measured from the first transmission to the response
(``time.perf_counter``), retransmissions included, and kept in a histogram
with 0.1 % wide buckets: percentiles are exact to 0.05 %, the maximum and the
mean exactly, and memory does not grow with the run.

Each request is one exchange: of a block-wise (RFC 7959) body only the first
block is fetched. Message IDs wrap after 65536 requests per session, well inside RFC 7252's
EXCHANGE_LIFETIME at benchmark rates: a server that keeps every message ID
for 247 s (rather than a bounded number per peer) would see duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.process
import pickle
import random
import signal
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import InitVar, asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, cast

from dtlsfast.backend import load_backend
from dtlsfast.coap.message import PAYLOAD_MARKER, Code, OptionNumber, encode_uint
from dtlsfast.coap.uri import CoapUri, parse_uri
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.datagram_transport import (
    ReusingDatagramTransport,
    open_datagram_endpoint,
)
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import ConfigurationError, DtlsError, HandshakeError
from dtlsfast.handshake_storm import HandshakeStorm
from dtlsfast.pure.client_table import BUCKETS as _BUCKETS
from dtlsfast.pure.client_table import PER_LOG as _PER_LOG
from dtlsfast.pure.client_table import bucket_of

#: RFC 7252 §4.8 transmission parameters.
ACK_TIMEOUT = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
#: How often the ticker looks for requests due for retransmission.
TICK = 0.1
#: How often a handshake storm serves its timers (the retransmission timers
#: start at 1 s, RFC 6347 §4.2.4.1, so this costs them little precision).
SWEEP = 0.02
#: Distinct handshake failure reasons kept in the result.
MAX_FAILURE_REASONS = 8

_APPLICATION_DATA = 23
_METHODS = {"GET": Code.GET, "POST": Code.POST, "PUT": Code.PUT, "DELETE": Code.DELETE}
_HEADER = struct.Struct("!BBHI")  # ver/type/tkl, code, message ID, 4-byte token
_CON_TKL4 = 0x44
_ACK = 2
_RST = 3


@dataclass
class LoadResult:
    """What one run measured. Times are seconds unless the name says ms."""

    uri: str
    method: str
    sessions: int
    """Sessions asked for."""
    sessions_established: int
    handshake_failures: int
    handshake_seconds: float
    """Wall time of the handshake phase (all sessions, bounded concurrency)."""
    handshakes_per_second: float
    duration: float
    """Wall time of the load phase."""
    window: int
    requests: int
    """Requests that got a response, whatever its code."""
    errors: int
    """Everything that failed: handshakes and requests (``request_errors``)."""
    request_errors: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    retransmissions: int
    timeouts: int
    resets: int
    error_responses: int
    """Responses with a 4.xx or 5.xx code (also counted in ``requests``)."""
    transport_errors: int
    """ICMP errors reported by the socket (port unreachable and the like)."""
    unanswered: int
    """Requests still in flight when the run ended (not errors)."""
    sessions_lost: int
    """Sessions the server closed during the run (close_notify or an alert);
    their requests in flight count as ``transport_errors``."""
    handshake_retransmissions: int
    """DTLS flights the established sessions sent again during their
    handshakes (RFC 6347 §4.2.4)."""
    generator_cpu_percent: float
    """CPU time of this process during the load phase, in percent of the
    phase's wall time (100 is one core). Near 100, the generator, not the
    server, sets the pace. It counts every thread, and an in-process server.
    With ``processes`` > 1 it is the sum over the generator processes (200 is
    two cores busy; the pace is the generator's near 100 times the processes),
    and the parent process, which only gathers their reports, is not counted."""
    load_started_at: float
    """Wall-clock time (``time.time()``) the load phase began, so that an
    observer can measure the server over exactly that phase."""
    cipher_suite: str
    interrupted: bool
    """The run was stopped early (``stop`` was set)."""
    handshake_failure_reasons: dict[str, int] = field(default_factory=dict)
    response_codes: dict[str, int] = field(default_factory=dict)
    processes: InitVar[int] = 1
    """Generator processes (``run_load(processes=...)``): only for
    :meth:`summary`, not a field of the JSON object."""

    def __post_init__(self, processes: int) -> None:
        self._processes = processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """One JSON object on one line."""
        import json

        return json.dumps(self.to_dict(), sort_keys=False)

    def summary(self) -> str:
        """Human-readable report, several lines."""
        lines = [
            f"{self.method} {self.uri}" + (" (stopped early)" * self.interrupted),
            f"  sessions    {self.sessions_established}/{self.sessions} established "
            f"in {self.handshake_seconds:.2f} s ({self.handshakes_per_second:,.0f}/s), "
            f"{self.handshake_failures} failed"
            + (f" ({self.cipher_suite})" if self.cipher_suite else ""),
        ]
        for reason, count in self.handshake_failure_reasons.items():
            lines.append(f"    {count} x {reason}")
        lines += [
            f"  requests    {self.requests} in {self.duration:.2f} s, window {self.window}: "
            f"{self.requests_per_second:,.0f} req/s",
            f"  latency ms  p50 {self.p50_ms:.3f}  p90 {self.p90_ms:.3f}  "
            f"p99 {self.p99_ms:.3f}  max {self.max_ms:.3f}  mean {self.mean_ms:.3f}",
            f"  errors      {self.request_errors} requests (timeouts {self.timeouts}, "
            f"resets {self.resets}, 4.xx/5.xx {self.error_responses}, "
            f"ICMP {self.transport_errors}); "
            f"retransmissions {self.retransmissions}; unanswered at the end {self.unanswered}"
            + (f"; sessions closed by the server {self.sessions_lost}" * bool(self.sessions_lost)),
            f"  generator   {self.generator_cpu_percent:.0f}% CPU during the load "
            + (
                f"in {self._processes} processes (near {100 * self._processes}: "
                if self._processes > 1
                else "(near 100: "
            )
            + "the generator, not the server, sets the pace)",
            "  codes       "
            + ", ".join(f"{code} x {n}" for code, n in sorted(self.response_codes.items())),
        ]
        return "\n".join(lines)


@dataclass
class Progress:
    """A snapshot handed to the ``progress`` callback about once a second."""

    elapsed: float
    requests: int
    errors: int
    retransmissions: int
    in_flight: int
    requests_per_second: float
    """Over the last interval."""


class _Stats:
    __slots__ = (
        "buckets",
        "codes",
        "error_responses",
        "latency_max",
        "latency_sum",
        "requests",
        "resets",
        "retransmissions",
        "sessions_lost",
        "timeouts",
        "transport_errors",
    )

    def __init__(self) -> None:
        self.buckets = [0] * _BUCKETS
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.requests = 0
        self.error_responses = 0
        self.resets = 0
        self.timeouts = 0
        self.transport_errors = 0
        self.retransmissions = 0
        self.sessions_lost = 0
        self.codes: Counter[int] = Counter()

    @property
    def errors(self) -> int:
        return self.error_responses + self.resets + self.timeouts + self.transport_errors

    def record(self, latency: float) -> None:
        """One answered request (or completed handshake) and its latency, in
        the histogram shared with the client table (``bucket_of``)."""
        self.latency_sum += latency
        if latency > self.latency_max:
            self.latency_max = latency
        self.buckets[bucket_of(latency)] += 1
        self.requests += 1

    def add(self, other: _Stats) -> None:
        """Add another generator process's counts and latency histogram."""
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        self.requests += other.requests
        self.error_responses += other.error_responses
        self.resets += other.resets
        self.timeouts += other.timeouts
        self.transport_errors += other.transport_errors
        self.retransmissions += other.retransmissions
        self.sessions_lost += other.sessions_lost
        self.codes.update(other.codes)


class _Session(asyncio.DatagramProtocol):
    """One UDP socket, optionally one DTLS connection, ``window`` requests in flight.

    A pending request is a list ``[message_id, first_sent, deadline, timeout,
    retransmissions, datagram, acked]`` keyed by its 4-byte token.
    """

    def __init__(self, run: _Run, conn: DtlsConnection | None) -> None:
        self.run = run
        self.stats = run.stats
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        if conn is None:
            self.handshake.set_result(None)  # plain CoAP: nothing to wait for
        self.deferred = 0
        self.dead = False
        self.pending: dict[bytes, list[Any]] = {}
        self.table_index = -1
        self.next_check = float("inf")
        self.mid = random.getrandbits(16)
        self.token = random.getrandbits(32)
        self._timer: asyncio.TimerHandle | None = None
        # Fast path state, set once the handshake completed.
        self._wcipher: Any = None
        self._wstate: Any = None
        self._wepoch = 0
        self._rcipher: Any = None
        self._rwindow: Any = None
        self._repoch = -1
        self._parse: Callable[[bytes], list[tuple[int, int, int, int, bytes]]] | None = None

    # -- asyncio ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        if not self.handshake.done() and self.conn is not None:
            self.handshake.set_exception(
                HandshakeError(f"{type(exc).__name__}: {exc} (is a server listening there?)")
            )
            return
        if self.run.running and not self.dead:
            self.stats.transport_errors += 1
            if self.pending:
                # Blame the oldest request: UDP cannot say which one it was.
                # Its replacement waits for the next tick, so that a refused
                # port does not turn into a busy loop.
                del self.pending[next(iter(self.pending))]
                self.deferred += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError("the socket closed"))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        parse = self._parse
        if parse is not None:
            records = parse(data)
            if len(records) == 1:
                ctype, version, epoch, seq, fragment = records[0]
                if ctype == _APPLICATION_DATA and epoch == self._repoch:
                    window = self._rwindow
                    if not window.check(seq):
                        return
                    plain = self._rcipher.open_parts(ctype, version, epoch, seq, fragment)
                    if plain is None:
                        return
                    window.accept(seq)
                    self.on_coap(plain)
                    return
        conn = self.conn
        if conn is None:
            self.on_coap(data)
            return
        conn.receive_datagram(data, self.loop.time())
        self.pump()

    # -- DTLS -------------------------------------------------------------

    def pump(self) -> None:
        """Send what the connection queued, handle its events, re-arm its timer."""
        conn = self.conn
        assert conn is not None
        transport = self.transport
        for datagram in conn.datagrams_to_send(self.loop.time()):
            if transport is not None:
                transport.sendto(datagram)
        while (event := conn.next_event()) is not None:
            if isinstance(event, ApplicationDataReceived):
                self.on_coap(event.data)
            elif isinstance(event, HandshakeCompleted):
                self._enable_fast_path(conn)
                if not self.handshake.done():
                    self.handshake.set_result(None)
            elif isinstance(event, ConnectionClosed):
                self._parse = self._wstate = None
                if self.handshake.done():
                    self._lost()
                else:
                    self.handshake.set_exception(
                        event.error or HandshakeError("closed during the handshake")
                    )
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = conn.get_timer()
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.conn is not None:
            self.conn.handle_timer(self.loop.time())
            self.pump()

    def _enable_fast_path(self, conn: DtlsConnection) -> None:
        # The record layer's own state objects: sequence numbers and the
        # replay window stay shared with the connection, which still handles
        # everything else (alerts, close_notify, retransmitted flights).
        records = conn.records
        self._wepoch = records.write_epoch
        self._wstate = records.current_write
        self._wcipher = self._wstate.cipher
        self._repoch = records.read_epoch
        read = records.current_read
        self._rcipher, self._rwindow = read.cipher, read.window
        self._parse = records.backend.parse_records

    def send_plain(self, data: bytes) -> None:
        """Send one CoAP datagram, sealed when the session is DTLS."""
        transport = self.transport
        if transport is None:
            return
        if self.conn is None:
            transport.sendto(data)
            return
        state = self._wstate
        if state is None:
            return  # not established yet, or closed by the peer
        seq = state.next_sequence
        state.next_sequence = seq + 1
        transport.sendto(self._wcipher.seal(_APPLICATION_DATA, 0xFEFD, self._wepoch, seq, data))

    # -- CoAP -------------------------------------------------------------

    def _lost(self) -> None:
        """The server closed the session (close_notify or a fatal alert):
        its requests in flight fail and it sends no more."""
        if self.dead:
            return
        self.dead = True
        stats = self.stats
        stats.sessions_lost += 1
        if self.run.running:
            stats.transport_errors += len(self.pending)
        self.pending.clear()

    def send_request(self) -> None:
        run = self.run
        if not run.running or self.dead:
            return
        mid = self.mid = (self.mid + 1) & 0xFFFF
        token = self.token = (self.token + 1) & 0xFFFFFFFF
        datagram = _HEADER.pack(_CON_TKL4, run.code, mid, token) + run.tail
        now = time.perf_counter()
        timeout = random.uniform(ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR)
        deadline = now + timeout
        self.pending[datagram[4:8]] = [mid, now, deadline, timeout, 0, datagram, False]
        if deadline < self.next_check:
            self.next_check = deadline
        self.send_plain(datagram)

    def on_coap(self, data: bytes) -> None:
        if len(data) < 4 or not self.run.running:
            return  # after the end, responses count for nothing
        b0 = data[0]
        mtype = (b0 >> 4) & 3
        code = data[1]
        if code == 0:
            # Empty ACK (a separate response follows) or RST.
            if mtype in (_ACK, _RST):
                mid = (data[2] << 8) | data[3]
                for token, entry in self.pending.items():
                    if entry[0] == mid:
                        if mtype == _ACK:
                            entry[6] = True
                        else:
                            del self.pending[token]
                            self.stats.resets += 1
                            self.send_request()
                        break
            return
        tkl = b0 & 0x0F
        if mtype == 0:
            # A separate response in a CON: acknowledge it.
            self.send_plain(bytes((0x60, 0, data[2], data[3])))
        found = self.pending.pop(data[4 : 4 + tkl], None) if tkl == 4 else None
        if found is None:
            return  # late, duplicate or not ours
        stats = self.stats
        stats.record(time.perf_counter() - found[1])
        stats.codes[code] += 1
        if code >= 0x80:
            stats.error_responses += 1
        self.send_request()

    def check_retransmissions(self, now: float) -> None:
        """Retransmit requests whose timer expired; give up on exhausted ones."""
        while self.deferred:
            self.deferred -= 1
            self.send_request()
        if now < self.next_check:
            return
        stats = self.stats
        limit = self.run.request_timeout
        next_check = float("inf")
        expired: list[bytes] = []
        for token, entry in self.pending.items():
            if now - entry[1] >= limit:
                expired.append(token)
                continue
            deadline = entry[2]
            if now >= deadline and not entry[6]:
                if entry[4] >= MAX_RETRANSMIT:
                    expired.append(token)
                    continue
                entry[4] += 1
                entry[3] *= 2
                deadline = entry[2] = now + entry[3]
                stats.retransmissions += 1
                self.send_plain(entry[5])
            elif entry[6]:
                deadline = entry[1] + limit
            next_check = min(next_check, deadline, entry[1] + limit)
        self.next_check = next_check
        for token in expired:
            del self.pending[token]
            stats.timeouts += 1
            self.send_request()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self.conn
        if conn is not None and not conn.closed and self.transport is not None:
            conn.close()  # close_notify, so that the server frees the session
            for datagram in conn.datagrams_to_send(self.loop.time()):
                self.transport.sendto(datagram)
        if self.transport is not None:
            self.transport.close()


class _TableLoad:
    """The load phase of CoAPS sessions in the Rust core's ClientTable:
    the table seals, sends, receives, opens and matches every request with
    the GIL released (woken by the event loop when its epoll descriptor is
    readable); Python keeps the retransmission policy (RFC 7252 §4.2, in
    :meth:`tick`), the connections for everything that is not application
    data (alerts, close_notify, handshake retransmissions), and the report."""

    def __init__(self, run: _Run, sessions: list[_Session], table: Any) -> None:
        self.run = run
        self.sessions = sessions
        self.table = table
        self.loop = asyncio.get_running_loop()
        self.fd = table.fileno()
        self.reading = False

    @classmethod
    def start(cls, run: _Run, sessions: list[_Session], window: int) -> _TableLoad | None:
        """Hand established CoAPS sessions over to a table; None where
        there is none to be had (plain CoAP, no epoll), and the sessions
        stay on the Python path."""
        core = load_backend("rust")
        table_type = getattr(core, "ClientTable", None)
        if (
            table_type is None
            or not sessions
            or any(
                s.conn is None or s._wstate is None or not isinstance(s.transport, _OURS)
                for s in sessions
            )
        ):
            return None
        table = table_type(
            run.code,
            run.tail,
            ack_timeout=ACK_TIMEOUT,
            random_factor=ACK_RANDOM_FACTOR,
            request_timeout=run.request_timeout,
            seed=random.getrandbits(64),
        )
        if table.fileno() < 0:
            return None
        for session in sessions:
            conn = session.conn
            transport = session.transport
            assert conn is not None and isinstance(transport, ReusingDatagramTransport)
            records = conn.records
            read, write = records.current_read, records.current_write
            transport.pause_reading()
            session.table_index = table.add(
                transport.get_extra_info("socket").fileno(),
                read.cipher,
                records.read_epoch,
                read.window,
                write.cipher,
                records.write_epoch,
                write.next_sequence,
                mid=session.mid,
                token=session.token,
            )
        return cls(run, sessions, table)

    @property
    def in_flight(self) -> int:
        return int(self.table.in_flight)

    def begin(self, window: int) -> None:
        self.table.begin(window, time.perf_counter())
        self.loop.add_reader(self.fd, self._ready)
        self.reading = True

    def _ready(self) -> None:
        for index, datagram in self.table.poll():
            session = self.sessions[index]
            conn = session.conn
            assert conn is not None
            conn.receive_datagram(datagram, self.loop.time())
            for event in iter(conn.next_event, None):
                if isinstance(event, ConnectionClosed):
                    self.table.lose(index)
                    session.dead = True
            transport = session.transport
            for out in conn.datagrams_to_send(self.loop.time()):
                if transport is not None:
                    transport.sendto(out)

    def tick(self, now: float) -> None:
        """RFC 7252 §4.2 on the requests the table lists as due: a request
        past the overall timeout, or retransmitted MAX_RETRANSMIT times, is
        given up (and replaced); others go again with their timeout doubled."""
        table = self.table
        due, _ = table.tick(now)
        limit = self.run.request_timeout
        for index, token, retransmissions, timeout, first_sent, _acked in due:
            if now - first_sent >= limit or retransmissions >= MAX_RETRANSMIT:
                table.give_up(index, token, now)
            else:
                table.retransmit(index, token, timeout * 2, now)

    def sync(self, histogram: bool = False) -> dict[str, Any]:
        """The table's counts into the run's stats (for progress reports);
        returns what the table measured (its histogram too with ``histogram``)."""
        counts: dict[str, Any] = self.table.stats(histogram)
        stats = self.run.stats
        for name in _TABLE_COUNTS:
            setattr(stats, name, counts[name])
        return counts

    def finish(self) -> int:
        """End the load: the table's measurements into the run's stats, the
        sessions' write sequence numbers back to their connections (for
        close_notify), reading back to the transports. Returns the requests
        still in flight."""
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
        table = self.table
        unanswered = int(table.end())
        counts = self.sync(histogram=True)
        stats = self.run.stats
        stats.sessions_lost += counts["sessions_lost"]
        stats.latency_sum = counts["latency_sum"]
        stats.latency_max = counts["latency_max"]
        stats.codes.update(counts["codes"])
        buckets = stats.buckets
        for bucket, count in counts["buckets"].items():
            buckets[bucket] += count
        for session in self.sessions:
            conn = session.conn
            assert conn is not None
            sequence = table.next_write_sequence(session.table_index)
            if sequence is not None:
                conn.records.current_write.next_sequence = sequence
            transport = session.transport
            if isinstance(transport, ReusingDatagramTransport):
                transport.resume_reading()
        return unanswered


_OURS = ReusingDatagramTransport
#: The counts the table keeps for the run (``_Stats`` fields of the same names).
_TABLE_COUNTS = (
    "requests",
    "error_responses",
    "resets",
    "timeouts",
    "transport_errors",
    "retransmissions",
)


@dataclass
class _Run:
    code: int
    tail: bytes
    request_timeout: float
    stats: _Stats = field(default_factory=_Stats)
    running: bool = False


def _request_tail(uri_options: list[tuple[int, bytes]], payload: bytes, fmt: int | None) -> bytes:
    """Options and payload of the request: everything after the token."""
    options = list(uri_options)
    if fmt is not None:
        options.append((OptionNumber.CONTENT_FORMAT, encode_uint(fmt)))
    options.sort(key=lambda item: item[0])
    out = bytearray()
    last = 0
    for number, value in options:
        delta, length = number - last, len(value)
        head = 0
        ext = bytearray()
        for shift, n in ((4, delta), (0, length)):
            if n < 13:
                head |= n << shift
            elif n < 269:
                head |= 13 << shift
                ext.append(n - 13)
            else:
                head |= 14 << shift
                ext += (n - 269).to_bytes(2, "big")
        out.append(head)
        out += ext
        out += value
        last = number
    if payload:
        out.append(PAYLOAD_MARKER)
        out += payload
    return bytes(out)


def _latencies(stats: _Stats) -> dict[str, Any]:
    """The latency fields of a report, in ms: percentiles, maximum, mean."""
    largest = stats.latency_max
    count = stats.requests
    out = {
        f"p{int(q * 100)}_ms": round(_percentile(stats.buckets, q, largest), 4)
        for q in (0.50, 0.90, 0.99)
    }
    out["max_ms"] = round(largest * 1000.0, 4)
    out["mean_ms"] = round(stats.latency_sum / count * 1000.0, 4) if count else 0.0
    return out


async def _load_start(gate: _Gate | None) -> tuple[float, float]:
    """Wait for the other generator processes (``gate``), then the start of
    the load phase as ``(time.perf_counter(), time.time())``, set back to the
    common start the gate answered: every process ends at the same time."""
    start_at = await gate("load") if gate is not None else None
    load_started = time.perf_counter()
    load_started_at = time.time()
    if start_at is not None:
        load_started -= load_started_at - start_at
        load_started_at = start_at
    return load_started, load_started_at


def _percentile(buckets: list[int], fraction: float, largest: float) -> float:
    """The nearest-rank percentile in ms: the bucket holding the smallest
    latency with at least ``fraction`` of all at or below it, at its geometric
    middle (within 0.05 %), never above ``largest`` (seconds)."""
    total = sum(buckets)
    if not total:
        return 0.0
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            middle = math.exp((index + 0.5) / _PER_LOG) / 1e6 if index else 1e-6
            return min(middle, largest) * 1000.0
    return largest * 1000.0


async def _close_paced(sessions: list[_Session], batch: int) -> None:
    """Close every session (close_notify for DTLS), ``batch`` at a time.

    A thousand close_notify records at once overflow a server's socket buffer;
    a session the server never hears closing lingers there, and a later run
    that gets the same source port finds a stale session and no handshake.
    """
    remaining = list(sessions)
    try:
        while remaining:
            for session in remaining[:batch]:
                session.close()
            del remaining[:batch]
            if remaining:
                await asyncio.sleep(0.002)
    finally:
        for session in remaining:
            session.close()


async def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    """The first address of ``host`` (an IPv6 one is a 4-tuple) and its family."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    return int(infos[0][0]), tuple(infos[0][4])


@dataclass(frozen=True)
class _Plan:
    """The arguments of one run (or of one generator process's share of it),
    as given: picklable, so that a spawned process gets them as they are."""

    uri: str
    sessions: int
    duration: float
    identity: str | bytes
    key: str | bytes = field(repr=False)  # the PSK: never in a repr or a traceback
    ciphers: tuple[str | int, ...] | None
    handshake_concurrency: int
    handshake_timeout: float
    window: int = 1
    method: str = "GET"
    payload: bytes = b""
    content_format: int | None = None
    request_timeout: float = 10.0
    mode: str = "load"
    """"load" (sessions, then requests) or "handshakes" (a handshake storm)."""
    resume: bool = False
    """Handshake storm: resume each slot's previous session."""


@dataclass
class _Outcome:
    """What one generator process measured, before it becomes a
    :class:`LoadResult`: raw counts and the latency histogram, so that the
    outcomes of several processes add up exactly (:func:`_merge`)."""

    stats: _Stats
    established: int
    failures: Counter[str]
    handshake_seconds: float
    handshake_retransmissions: int
    elapsed: float
    """Wall time of the load phase."""
    cpu: float
    """CPU seconds of the process during the load phase."""
    unanswered: int
    load_started_at: float
    suite: str
    interrupted: bool
    resumed: int = 0
    """Handshake storm: handshakes that resumed a session."""


#: A generator process's rendezvous with the others: called with "handshakes"
#: before the handshake phase and "load" before the load phase, it returns
#: once every process is there, with the common start of the load phase
#: (``time.time()``), or None when the run is being stopped.
_Gate = Callable[[str], Awaitable[float | None]]


def _count_failure(failures: Counter[str], reason: str, count: int = 1) -> None:
    """Count a failed handshake, keeping at most MAX_FAILURE_REASONS reasons."""
    if reason in failures or len(failures) < MAX_FAILURE_REASONS:
        failures[reason] += count
    else:
        failures["other"] += count


def _prepare(plan: _Plan) -> tuple[CoapUri, int, DtlsConfiguration | None]:
    """Check the arguments: the target, the method's code and the client
    configuration (None for coap://). Raises :class:`ConfigurationError`."""
    target = parse_uri(plan.uri)
    code = _METHODS.get(plan.method.upper())
    if code is None:
        raise ConfigurationError(
            f"unknown method {plan.method!r}: use one of {', '.join(_METHODS)}"
        )
    if plan.sessions < 1 or plan.window < 1 or plan.handshake_concurrency < 1:
        raise ConfigurationError("sessions, window and handshake concurrency must be at least 1")
    if plan.duration <= 0 or plan.handshake_timeout <= 0 or plan.request_timeout <= 0:
        raise ConfigurationError("duration and timeouts must be positive")
    psk = (plan.identity, plan.key)
    config: DtlsConfiguration | None = None
    if target.scheme == "coaps":
        config = DtlsConfiguration.client(psk=psk, ciphers=plan.ciphers, server_name=target.host)
    elif plan.ciphers is not None:
        # Still validate the names, so that a typo is not silently ignored.
        DtlsConfiguration.client(psk=psk, ciphers=plan.ciphers)
    return target, int(code), config


async def run_load(
    uri: str,
    *,
    sessions: int = 1,
    window: int = 1,
    duration: float = 10.0,
    method: str = "GET",
    payload: bytes = b"",
    content_format: int | None = None,
    identity: str | bytes = "CoAP",
    key: str | bytes = "esp32c3_key",
    ciphers: Iterable[str | int] | None = None,
    handshake_concurrency: int = 32,
    handshake_timeout: float = 10.0,
    request_timeout: float = 10.0,
    progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 1.0,
    stop: asyncio.Event | None = None,
    processes: int = 1,
) -> LoadResult:
    """Load ``uri`` (coap:// or coaps://) and report what was measured.

    Phase one opens the sessions, at most ``handshake_concurrency`` handshakes
    at a time, each given up after ``handshake_timeout`` s; a failed session
    is counted, not fatal. Phase two keeps ``window`` CON requests in flight
    on every established session for ``duration`` s. ``ciphers`` lists IANA
    suite names to offer (default: the client's PSK suites, CCM_8 first).
    Setting ``stop`` ends the run early (Ctrl-C in ``dtlsfast bench``); the
    result covers the time run so far. Raises :class:`ConfigurationError` for
    bad arguments (an unknown suite, an unknown method) before sending
    anything.

    ``processes`` above 1 (at most ``sessions`` are used) splits the sessions,
    and the handshake concurrency (at least one each), over that many
    generator processes, so that the generator is not what sets the pace:
    see :func:`_run_processes`. The result is one :class:`LoadResult` over
    all of them. They are started with multiprocessing's "spawn" method: a
    script that calls this needs the ``if __name__ == "__main__":`` guard.
    With 1 (the default) everything runs in this process, on this event loop.
    """
    plan = _Plan(
        uri=uri,
        sessions=sessions,
        window=window,
        duration=duration,
        method=method,
        payload=payload,
        content_format=content_format,
        identity=identity,
        key=key,
        ciphers=tuple(ciphers) if ciphers is not None else None,
        handshake_concurrency=handshake_concurrency,
        handshake_timeout=handshake_timeout,
        request_timeout=request_timeout,
    )
    if processes != 1:
        _prepare(plan)  # the same checks, before any process starts
        if processes < 1:
            raise ConfigurationError(
                f"processes must be at least 1, not {processes}: give 1 to run the "
                "generator in this process, or N to split the sessions over N processes"
            )
        if min(processes, sessions) > 1:
            result = await _run_processes(
                plan, min(processes, sessions), progress, progress_interval, stop
            )
            return cast(LoadResult, result)
    return _result(plan, await _generate(plan, progress, progress_interval, stop))


async def _generate(
    plan: _Plan,
    progress: Callable[[Progress], None] | None,
    progress_interval: float,
    stop: asyncio.Event | None,
    gate: _Gate | None = None,
) -> _Outcome:
    """The generator itself, in this process: both phases of :func:`run_load`.

    ``gate`` (generator processes only) is awaited before each phase, and
    its answer is the common start of the load phase.
    """
    target, code, config = _prepare(plan)
    load_backend("rust")
    family, address = await _resolve(target.host, target.port)
    tail = _request_tail(target.options, plan.payload, plan.content_format)
    run = _Run(code, tail, plan.request_timeout)
    handshake_timeout = plan.handshake_timeout
    loop = asyncio.get_running_loop()
    if plan.mode == "handshakes":
        if config is None:
            raise ConfigurationError("--mode handshakes needs a coaps:// URI")
        return await _storm(plan, config, family, address, run, progress, progress_interval,
                            stop, gate)  # fmt: skip

    # -- phase one: sessions -------------------------------------------------
    failures: Counter[str] = Counter()
    established: list[_Session] = []
    limiter = asyncio.Semaphore(plan.handshake_concurrency)

    async def open_session() -> None:
        async with limiter:
            conn = DtlsConnection(config, peer=address) if config is not None else None
            try:
                _, proto = await open_datagram_endpoint(
                    lambda: _Session(run, conn), remote_addr=address[:2], family=family
                )
            except OSError as exc:
                failures[f"socket: {exc}"] += 1
                return
            session = proto
            if conn is None:
                established.append(session)
                return
            try:
                conn.connect(loop.time())
                session.pump()
                async with asyncio.timeout(handshake_timeout):
                    await session.handshake
            except asyncio.CancelledError:
                session.close()
                raise
            except Exception as exc:
                reason = (
                    f"no handshake within {handshake_timeout} s"
                    if isinstance(exc, TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                _count_failure(failures, reason)
                session.close()
                return
            established.append(session)

    if gate is not None:
        await gate("handshakes")
    started = time.perf_counter()
    opening = asyncio.gather(*(open_session() for _ in range(plan.sessions)))
    if stop is None:
        await opening
    else:
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait((opening, stopped), return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not opening.done():
            opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening
    handshake_seconds = time.perf_counter() - started
    suite = ""
    if established and established[0].conn is not None:
        negotiated = established[0].conn.cipher_suite
        suite = negotiated.name if negotiated is not None else ""

    # -- phase two: load -------------------------------------------------------
    stats = run.stats
    handshake_retransmissions = sum(
        s.conn.counters["retransmissions"] for s in established if s.conn is not None
    )
    load_started, load_started_at = await _load_start(gate)
    cpu_started = time.process_time()
    elapsed = cpu = 0.0
    table = _TableLoad.start(run, established, plan.window)
    try:
        if established and not (stop is not None and stop.is_set()):
            run.running = True
            if table is not None:
                table.begin(plan.window)
            else:
                for session in established:
                    for _ in range(plan.window):
                        session.send_request()
            end = load_started + plan.duration
            next_report = load_started + progress_interval
            last_requests = 0
            while True:
                now = time.perf_counter()
                if now >= end or (stop is not None and stop.is_set()):
                    break
                if table is not None:
                    table.tick(now)
                else:
                    for session in established:
                        session.check_retransmissions(now)
                if progress is not None and now >= next_report:
                    if table is not None:
                        table.sync()
                    in_flight = (
                        table.in_flight
                        if table is not None
                        else sum(len(s.pending) for s in established)
                    )
                    progress(
                        Progress(
                            elapsed=now - load_started,
                            requests=stats.requests,
                            errors=stats.errors,
                            retransmissions=stats.retransmissions,
                            in_flight=in_flight,
                            requests_per_second=(stats.requests - last_requests)
                            / progress_interval,
                        )
                    )
                    last_requests = stats.requests
                    next_report += progress_interval
                await asyncio.sleep(min(TICK, end - now))
        elapsed = time.perf_counter() - load_started
        cpu = time.process_time() - cpu_started
    finally:
        run.running = False
        unanswered = sum(len(s.pending) for s in established)
        if table is not None:
            unanswered += table.finish()
        await _close_paced(established, plan.handshake_concurrency)

    return _Outcome(
        stats=stats,
        established=len(established),
        failures=failures,
        handshake_seconds=handshake_seconds,
        handshake_retransmissions=handshake_retransmissions,
        elapsed=elapsed,
        cpu=cpu,
        unanswered=unanswered,
        load_started_at=load_started_at,
        suite=suite,
        interrupted=stop is not None and stop.is_set(),
    )


async def _storm(
    plan: _Plan,
    config: DtlsConfiguration,
    family: int,
    address: tuple[Any, ...],
    run: _Run,
    progress: Callable[[Progress], None] | None,
    progress_interval: float,
    stop: asyncio.Event | None,
    gate: _Gate | None,
) -> _Outcome:
    """``dtlsfast bench --mode handshakes``: ``handshake_concurrency`` full
    handshakes in flight for ``duration`` s, each closed (close_notify) once
    complete, a slot's next one from the same UDP port after a clean one.
    Completed handshakes count as the outcome's requests, their latencies
    (first ClientHello to the server's Finished, the cookie exchange
    included) go into the histogram, and the failures by reason; handshakes
    still going at the end count for nothing.
    With ``plan.resume`` each slot resumes the session of its last handshake
    (abbreviated handshakes, RFC 5246 §7.3; a full one to begin with, and
    whenever the server refuses): the outcome counts those that resumed."""
    stats = run.stats
    failures: Counter[str] = Counter()
    if gate is not None:
        await gate("handshakes")
    load_started, load_started_at = await _load_start(gate)
    end = load_started + plan.duration
    cpu_started = time.process_time()

    storm = HandshakeStorm(
        config,
        family,
        address,
        concurrency=plan.handshake_concurrency,
        handshake_timeout=plan.handshake_timeout,
        end=end,
        resume=plan.resume,
        on_complete=stats.record,
        on_failure=lambda reason: _count_failure(failures, reason),
    )
    storm.start()
    try:
        next_report = load_started + progress_interval
        last = 0
        while not storm.done and storm.error is None:
            await asyncio.sleep(SWEEP)
            storm.sweep()
            now = time.perf_counter()
            if now >= end + 1.0 or (stop is not None and stop.is_set()):
                break
            if progress is not None and now >= next_report:
                progress(
                    Progress(
                        elapsed=now - load_started,
                        requests=stats.requests,
                        errors=sum(failures.values()),
                        retransmissions=0,
                        in_flight=storm.in_flight,
                        requests_per_second=(stats.requests - last) / progress_interval,
                    )
                )
                last = stats.requests
                next_report += progress_interval
    finally:
        storm.close()
    elapsed = min(time.perf_counter(), end) - load_started
    cpu = time.process_time() - cpu_started
    if storm.error is not None:
        raise storm.error
    return _Outcome(
        stats=stats,
        established=stats.requests,
        failures=failures,
        handshake_seconds=elapsed,
        handshake_retransmissions=0,
        elapsed=elapsed,
        cpu=cpu,
        unanswered=0,
        load_started_at=load_started_at,
        suite=storm.suite,
        interrupted=stop is not None and stop.is_set(),
        resumed=storm.resumed,
    )


@dataclass
class HandshakeResult:
    """What ``dtlsfast bench --mode handshakes`` measured (times in seconds
    unless the name says ms)."""

    uri: str
    mode: str
    concurrency: int
    duration: float
    handshakes: int
    """Handshakes completed (and closed) within the run."""
    handshakes_per_second: float
    failures: int
    failure_reasons: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    generator_cpu_percent: float
    generator_us_per_handshake: float
    """The generator's CPU time per completed handshake, in µs."""
    load_started_at: float
    cipher_suite: str
    interrupted: bool
    resume: bool = False
    """``--resume``: each slot resumed its previous session."""
    resumed: int = 0
    """Handshakes that resumed a session (abbreviated)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict())

    def summary(self) -> str:
        lines = [
            f"handshakes to {self.uri}"
            + (" (resuming sessions)" * self.resume)
            + (" (stopped early)" * self.interrupted),
            f"  handshakes  {self.handshakes} in {self.duration:.2f} s, {self.concurrency} in "
            f"flight: {self.handshakes_per_second:,.0f}/s"
            + (f" ({self.cipher_suite})" if self.cipher_suite else ""),
            f"  latency ms  p50 {self.p50_ms:.3f}  p90 {self.p90_ms:.3f}  "
            f"p99 {self.p99_ms:.3f}  max {self.max_ms:.3f}  mean {self.mean_ms:.3f}",
            f"  failures    {self.failures}",
        ]
        if self.resume:
            full = self.handshakes - self.resumed
            lines.insert(2, f"  resumed     {self.resumed} (abbreviated), {full} full")
        lines += [f"    {n} x {reason}" for reason, n in self.failure_reasons.items()]
        lines.append(
            f"  generator   {self.generator_cpu_percent:.0f}% CPU, "
            f"{self.generator_us_per_handshake:,.0f} µs per handshake"
        )
        return "\n".join(lines)


def _handshake_result(plan: _Plan, outcome: _Outcome) -> HandshakeResult:
    stats = outcome.stats
    elapsed = outcome.elapsed
    count = stats.requests
    return HandshakeResult(
        uri=plan.uri,
        mode="handshakes",
        concurrency=plan.handshake_concurrency,
        duration=round(elapsed, 6),
        handshakes=count,
        handshakes_per_second=round(count / elapsed, 3) if elapsed > 0 else 0.0,
        failures=sum(outcome.failures.values()),
        failure_reasons=dict(outcome.failures),
        **_latencies(stats),
        generator_cpu_percent=round(outcome.cpu / elapsed * 100, 1) if elapsed > 0 else 0.0,
        generator_us_per_handshake=round(outcome.cpu / count * 1e6, 1) if count else 0.0,
        load_started_at=round(outcome.load_started_at, 6),
        cipher_suite=outcome.suite,
        interrupted=outcome.interrupted,
        resume=plan.resume,
        resumed=outcome.resumed,
    )


async def run_handshakes(
    uri: str,
    *,
    concurrency: int = 32,
    duration: float = 10.0,
    identity: str | bytes = "CoAP",
    key: str | bytes = "esp32c3_key",
    ciphers: Iterable[str | int] | None = None,
    handshake_timeout: float = 10.0,
    progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 1.0,
    stop: asyncio.Event | None = None,
    processes: int = 1,
    resume: bool = False,
) -> HandshakeResult:
    """A handshake storm against ``uri`` (coaps://): ``concurrency`` full PSK
    handshakes in flight for ``duration`` s, each closed with close_notify
    (a slot's next one from the same UDP port after a clean one); reports
    handshakes per second, failures by reason and latency percentiles.
    ``processes`` splits the concurrency over generator processes, as in
    :func:`run_load`. ``resume``: each handshake offers the session of the
    one before it in its slot, so that (after the first) they are
    abbreviated ones if the server resumes."""
    plan = _Plan(
        uri=uri,
        sessions=concurrency,  # so that processes split it as the concurrency
        duration=duration,
        identity=identity,
        key=key,
        ciphers=tuple(ciphers) if ciphers is not None else None,
        handshake_concurrency=concurrency,
        handshake_timeout=handshake_timeout,
        mode="handshakes",
        resume=resume,
    )
    _, _, config = _prepare(plan)
    if config is None:
        raise ConfigurationError(f"a handshake storm needs a coaps:// URI, not {uri}")
    if processes < 1:
        raise ConfigurationError(f"processes must be at least 1, not {processes}")
    count = min(processes, concurrency)
    if count > 1:
        outcome = await _run_processes(plan, count, progress, progress_interval, stop, raw=True)
    else:
        outcome = await _generate(plan, progress, progress_interval, stop)
    return _handshake_result(plan, outcome)


def _result(plan: _Plan, outcome: _Outcome, processes: int = 1) -> LoadResult:
    """The report of a run: ``outcome`` is one process's, or the merged
    outcome of ``processes`` generator processes."""
    stats = outcome.stats
    sessions = plan.sessions
    established = outcome.established
    handshake_seconds = outcome.handshake_seconds
    elapsed = outcome.elapsed
    return LoadResult(
        uri=plan.uri,
        method=plan.method.upper(),
        sessions=sessions,
        sessions_established=established,
        handshake_failures=sessions - established,
        handshake_seconds=round(handshake_seconds, 6),
        handshakes_per_second=round(established / handshake_seconds, 3)
        if handshake_seconds > 0
        else 0.0,
        duration=round(elapsed, 6),
        window=plan.window,
        requests=stats.requests,
        errors=stats.errors + sessions - established,
        request_errors=stats.errors,
        requests_per_second=round(stats.requests / elapsed, 3) if elapsed > 0 else 0.0,
        **_latencies(stats),
        retransmissions=stats.retransmissions,
        timeouts=stats.timeouts,
        resets=stats.resets,
        error_responses=stats.error_responses,
        transport_errors=stats.transport_errors,
        unanswered=outcome.unanswered,
        sessions_lost=stats.sessions_lost,
        handshake_retransmissions=outcome.handshake_retransmissions,
        generator_cpu_percent=round(outcome.cpu / elapsed * 100, 1) if elapsed > 0 else 0.0,
        load_started_at=round(outcome.load_started_at, 6),
        cipher_suite=outcome.suite,
        interrupted=outcome.interrupted,
        handshake_failure_reasons=dict(outcome.failures),
        response_codes={f"{c >> 5}.{c & 0x1F:02d}": n for c, n in sorted(stats.codes.items())},
        processes=processes,
    )


# -- several generator processes ---------------------------------------------------

#: How long a spawned generator process may take to start (a fresh
#: interpreter importing dtlsfast) and report for its handshakes.
STARTUP_TIMEOUT = 60.0
#: Slack on every other wait for the generator processes: the handshake
#: phase's worst case, the load phase's duration.
_WAIT_SLACK = 60.0
#: How long stopped generator processes get to close their sessions and exit.
_EXIT_TIMEOUT = 10.0
_PHASES = ("handshakes", "load")
_EXIT_HINT = (
    ": its error output says why (a script that calls run_load with processes > 1"
    " needs the `if __name__ == '__main__':` guard, as every multiprocessing program)"
)


class GeneratorProcessError(DtlsError):
    """A generator process of a ``processes`` > 1 run died, or did not report in time."""


def _split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by at most one, each at least 1."""
    return [max(1, total // parts + (index < total % parts)) for index in range(parts)]


def _merge(outcomes: Sequence[_Outcome], start_at: float | None) -> _Outcome:
    """One outcome for the whole run from the generator processes' outcomes.

    Counts and latency histograms add up, so the percentiles are those of
    all the requests; CPU seconds add up too, so the CPU percentage is the
    sum over the processes. The processes started each phase together: a
    phase lasted as long as its longest process's. ``start_at`` is the common
    start of the load phase, None when the run stopped before it.
    """
    stats = _Stats()
    failures: Counter[str] = Counter()
    for outcome in outcomes:
        stats.add(outcome.stats)
        for reason, count in outcome.failures.items():
            _count_failure(failures, reason, count)
    started = [o.load_started_at for o in outcomes]
    return _Outcome(
        stats=stats,
        established=sum(o.established for o in outcomes),
        failures=failures,
        handshake_seconds=max((o.handshake_seconds for o in outcomes), default=0.0),
        handshake_retransmissions=sum(o.handshake_retransmissions for o in outcomes),
        elapsed=max((o.elapsed for o in outcomes), default=0.0),
        cpu=sum(o.cpu for o in outcomes),
        unanswered=sum(o.unanswered for o in outcomes),
        load_started_at=start_at if start_at is not None else min(started, default=time.time()),
        suite=next((o.suite for o in outcomes if o.suite), ""),
        interrupted=any(o.interrupted for o in outcomes),
        resumed=sum(o.resumed for o in outcomes),
    )


class _Workers:
    """The generator processes of one run, seen from the parent: a pipe to
    each, read by the event loop (``add_reader``), so that the parent never
    blocks its loop (which may be running the server under test)."""

    def __init__(self, plans: Sequence[_Plan], progress_interval: float | None) -> None:
        self.plans = plans
        self.progress_interval = progress_interval
        self.loop = asyncio.get_running_loop()
        self.inbox: asyncio.Queue[tuple[int, tuple[Any, ...] | None]] = asyncio.Queue()
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        #: The latest (requests, errors, retransmissions, in flight) of each.
        self.counts: list[tuple[int, ...]] = [(0, 0, 0, 0)] * len(plans)

    def start(self) -> None:
        """Start one process a plan, with the "spawn" method: a fresh
        interpreter, never a fork of this process and its running loop."""
        context = multiprocessing.get_context("spawn")
        for index, plan in enumerate(self.plans):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(theirs, plan, self.progress_interval),
                name=f"dtlsfast-bench-{index + 1}",
                daemon=True,
            )
            self.pipes.append(ours)
            try:
                process.start()
            finally:
                theirs.close()  # the child has its own copy: its exit is our EOF
            self.processes.append(process)
            self.loop.add_reader(ours.fileno(), self._readable, index)

    def _readable(self, index: int) -> None:
        pipe = self.pipes[index]
        try:
            while pipe.poll():
                self.inbox.put_nowait((index, pipe.recv()))
        except (EOFError, OSError):
            self.loop.remove_reader(pipe.fileno())
            self.inbox.put_nowait((index, None))  # the process is gone
        except Exception as exc:  # a message that does not unpickle here
            error = GeneratorProcessError(f"generator process {index + 1} sent {exc!r}")
            self.inbox.put_nowait((index, ("error", error)))

    def send(self, index: int, message: tuple[Any, ...]) -> None:
        """Send a message to one process, if it still listens."""
        with contextlib.suppress(OSError):
            self.pipes[index].send(message)

    def send_all(self, message: tuple[Any, ...]) -> None:
        for index in range(len(self.pipes)):
            self.send(index, message)

    async def exit_code(self, index: int, within: float = 1.0) -> int | None:
        """The process's exit status, waiting up to ``within`` s; None if it still runs."""
        process = self.processes[index]
        deadline = self.loop.time() + within
        while process.exitcode is None and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        return process.exitcode

    async def close(self) -> None:
        """Stop the processes, give them ``_EXIT_TIMEOUT`` s to close their
        sessions and exit (still reading their pipes), kill the rest."""
        self.send_all(("stop",))
        deadline = self.loop.time() + _EXIT_TIMEOUT
        for index, process in enumerate(self.processes):
            if await self.exit_code(index, deadline - self.loop.time()) is None:
                process.kill()
                process.join(_EXIT_TIMEOUT)
        for pipe in self.pipes:
            self.loop.remove_reader(pipe.fileno())
            pipe.close()


async def _run_processes(
    plan: _Plan,
    count: int,
    progress: Callable[[Progress], None] | None,
    progress_interval: float,
    stop: asyncio.Event | None,
    *,
    raw: bool = False,
) -> Any:
    """Run ``plan`` on ``count`` generator processes; merge what they measured
    (the merged :class:`_Outcome` itself with ``raw``, else its report).

    Each process runs :func:`_generate` on its share of the sessions and of
    the handshake concurrency. They start their handshakes together, wait for
    each other, and start the load phase together at one ``time.time()``,
    which every one ends ``duration`` s later: one wall-clock window. They
    send back their raw outcomes (:func:`_merge`) and, for ``progress``, their
    counts every 0.2 s at most. ``stop`` is passed on to them. A process that
    dies, or does not report in time, raises :class:`GeneratorProcessError`
    after the others were stopped, unless the run was being stopped: then
    its sessions count as failed handshakes.
    """
    plans = [
        replace(plan, sessions=sessions, handshake_concurrency=concurrency)
        for sessions, concurrency in zip(
            _split(plan.sessions, count), _split(plan.handshake_concurrency, count), strict=True
        )
    ]
    workers = _Workers(plans, min(progress_interval, 0.2) if progress is not None else None)
    loop = asyncio.get_running_loop()
    outcomes: dict[int, _Outcome] = {}
    ready: dict[str, set[int]] = {phase: set() for phase in _PHASES}
    released: dict[str, float] = {}
    waves = -(-max(p.sessions for p in plans) // min(p.handshake_concurrency for p in plans))
    limits = {
        "handshakes": (STARTUP_TIMEOUT, "start"),
        "load": (waves * plan.handshake_timeout + _WAIT_SLACK, "open their sessions"),
        "end": (plan.duration + _WAIT_SLACK, "report their results"),
    }
    limit, doing = limits["handshakes"]
    deadline = loop.time() + limit
    tasks: list[asyncio.Future[None]] = []
    if stop is not None:
        tasks.append(asyncio.ensure_future(_pass_stop_on(stop, workers)))
    try:
        workers.start()
        while len(outcomes) < count:
            try:
                async with asyncio.timeout_at(deadline):
                    index, message = await workers.inbox.get()
            except TimeoutError:
                raise GeneratorProcessError(
                    f"the generator processes did not {doing} within {limit:.0f} s"
                ) from None
            if message is None:
                if index not in outcomes:
                    code = await workers.exit_code(index)
                    why = f"generator process {index + 1} of {count} " + (
                        f"was killed by signal {-code}"
                        if code is not None and code < 0
                        else f"exited with code {code}"
                    )
                    if stop is None or not stop.is_set():
                        hint = "" if code is None or code < 0 else _EXIT_HINT
                        raise GeneratorProcessError(f"{why} before it reported{hint}")
                    outcomes[index] = _lost(why, plans[index].sessions)
            elif message[0] == "ready":
                ready[message[1]].add(index)
            elif message[0] == "progress":
                workers.counts[index] = message[1:]
            elif message[0] == "result":
                outcomes[index] = message[1]
            else:  # "error": what the process raised, raised here
                raise message[1]
            for phase, following in zip(_PHASES, ("load", "end"), strict=True):
                if phase in released or any(
                    i not in ready[phase] and i not in outcomes for i in range(count)
                ):
                    continue
                released[phase] = time.time()
                workers.send_all(("go", phase, released[phase]))
                limit, doing = limits[following]
                deadline = loop.time() + limit
                if phase == "load" and progress is not None:
                    report = _report_progress(progress, progress_interval, workers, plan.duration)
                    tasks.append(asyncio.ensure_future(report))
    finally:
        for task in tasks:
            task.cancel()
        await workers.close()
    merged = _merge([outcomes[index] for index in range(count)], released.get("load"))
    merged.interrupted = merged.interrupted or (stop is not None and stop.is_set())
    return merged if raw else _result(plan, merged, count)


def _lost(why: str, sessions: int) -> _Outcome:
    """The outcome of a generator process that exited without one while the
    run was being stopped (Ctrl-C while it started): its sessions failed."""
    return _Outcome(
        stats=_Stats(),
        established=0,
        failures=Counter({why: sessions}),
        handshake_seconds=0.0,
        handshake_retransmissions=0,
        elapsed=0.0,
        cpu=0.0,
        unanswered=0,
        load_started_at=time.time(),
        suite="",
        interrupted=True,
    )


async def _pass_stop_on(stop: asyncio.Event, workers: _Workers) -> None:
    await stop.wait()
    workers.send_all(("stop",))


async def _report_progress(
    progress: Callable[[Progress], None], interval: float, workers: _Workers, duration: float
) -> None:
    """Call ``progress`` every ``interval`` s of the load phase with the sum
    of the counts the processes last sent."""
    started = time.perf_counter()
    next_report = started + interval
    last_requests = 0
    while next_report < started + duration:
        await asyncio.sleep(next_report - time.perf_counter())
        totals = [sum(column) for column in zip(*workers.counts, strict=True)]
        requests, errors, retransmissions, in_flight = totals
        progress(
            Progress(
                elapsed=time.perf_counter() - started,
                requests=requests,
                errors=errors,
                retransmissions=retransmissions,
                in_flight=in_flight,
                requests_per_second=(requests - last_requests) / interval,
            )
        )
        last_requests = requests
        next_report += interval


def _worker(pipe: Connection, plan: _Plan, progress_interval: float | None) -> None:
    """A generator process (``processes`` > 1): run ``plan`` between the
    parent's go signals, send back the outcome, or what went wrong."""
    # Ctrl-C reaches the whole process group; the parent passes it on as a
    # stop message, so that every process still reports what it measured.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        outcome = asyncio.run(_worker_run(pipe, plan, progress_interval))
    except Exception as exc:
        error: Exception = exc
        try:
            pickle.dumps(error)
        except Exception:
            error = GeneratorProcessError(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            pipe.send(("error", error))
        raise SystemExit(1) from None
    with contextlib.suppress(OSError):
        pipe.send(("result", outcome))


async def _worker_run(pipe: Connection, plan: _Plan, progress_interval: float | None) -> _Outcome:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    go: dict[str, asyncio.Future[float]] = {phase: loop.create_future() for phase in _PHASES}

    def readable() -> None:
        try:
            while pipe.poll():
                message = pipe.recv()
                if message[0] == "go" and not go[message[1]].done():
                    go[message[1]].set_result(message[2])
                elif message[0] == "stop":
                    stop.set()
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            stop.set()  # the parent is gone

    async def gate(phase: str) -> float | None:
        if stop.is_set():
            return None
        pipe.send(("ready", phase))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait((go[phase], stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        return go[phase].result() if go[phase].done() else None

    def report(p: Progress) -> None:
        with contextlib.suppress(OSError):
            pipe.send(("progress", p.requests, p.errors, p.retransmissions, p.in_flight))

    loop.add_reader(pipe.fileno(), readable)
    try:
        return await _generate(
            plan, report if progress_interval else None, progress_interval or 1.0, stop, gate
        )
    finally:
        loop.remove_reader(pipe.fileno())


__all__ = [
    "GeneratorProcessError",
    "HandshakeResult",
    "LoadResult",
    "Progress",
    "run_handshakes",
    "run_load",
]
