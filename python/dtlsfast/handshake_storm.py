"""The handshakes of ``dtlsfast bench --mode handshakes``, driven by callbacks.

A storm keeps ``concurrency`` DTLS 1.2 handshakes in flight (RFC 6347 §4.2,
the cookie exchange included), each closed with close_notify (RFC 5246
§7.2.1) once complete, the next one started in its slot at once. Resuming,
each slot offers the session of its last handshake (RFC 5246 §7.3, RFC
5077), so that all but its first are abbreviated ones; not resuming, it asks
for no session ticket (RFC 5077 §3.2), which it would never use: the server
issues none, and the generator has no NewSessionTicket to take (as cgen,
the C client of the benches, does).

Each slot keeps its UDP socket (its port) from one handshake to the next:
after close_notify the server has forgotten the peer, and a new ClientHello
from the same port starts a new association (RFC 6347 §4.2.8). A port is
reused only after a clean handshake (no retransmission, done well within the
first retransmission timeout), so that no datagram of the old handshake can
still be on its way to the new one; a slot whose handshake failed or needed
retransmissions starts its next one from a new port. Records of the old
epoch that do arrive (the server's own close_notify) are dropped by the new
connection as from an unknown epoch (RFC 6347 §4.1).

No task, future or timer per handshake, and no event loop callback per
datagram: the slots' sockets sit in one epoll set that the loop watches as
one reader; each wake-up serves every ready socket, and one
:meth:`HandshakeStorm.sweep` per tick serves the retransmission timers (RFC
6347 §4.2.4) and the handshake timeouts of all of them, so that the
generator's time goes to the handshakes rather than to the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection, State
from dtlsfast.datagram_transport import BUFFER_SIZE
from dtlsfast.events import ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import HandshakeError
from dtlsfast.resumption.saved_session import SavedSession

#: Datagrams read from one socket per wake-up, before the loop moves on.
READS_PER_WAKEUP = 8
#: A slot whose handshake failed waits this long before the next one, so
#: that a refused port is not a busy loop.
RETRY_DELAY = 0.01
#: A port is reused only after a handshake this much faster than the first
#: retransmission timeout: then neither side can have retransmitted, and
#: nothing of it is still in flight (see the module).
REUSE_WITHIN = 0.5

# The loop's clock (asyncio's BaseEventLoop.time() is time.monotonic()),
# read without the method's frame, once per datagram.
_monotonic = time.monotonic
_perf_counter = time.perf_counter
_ESTABLISHED = State.ESTABLISHED
_CLOSED = State.CLOSED


class _Slot:
    """One slot: its socket (kept across handshakes), and the handshake in
    flight on it, with its start and deadline."""

    __slots__ = ("conn", "deadline", "fd", "fresh", "handshakes", "index", "sock", "started")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.fd = sock.fileno()
        self.conn: DtlsConnection | None = None
        self.started = 0.0
        self.deadline = 0.0
        #: Nothing has come in yet for the handshake in flight.
        self.fresh = True
        #: Handshakes this port has started (more than one: it was reused).
        self.handshakes = 0


class HandshakeStorm:
    """``concurrency`` slots, each running handshakes back to back until
    ``end`` (a :func:`time.perf_counter` time). Completed handshakes go to
    ``on_complete`` with their latency (first ClientHello to the server's
    Finished, in seconds), failures to ``on_failure`` with their reason; a handshake
    cut off by the end counts neither way. :meth:`start`, then
    :meth:`sweep` every few milliseconds until :attr:`done`, then
    :meth:`close`."""

    def __init__(
        self,
        config: DtlsConfiguration,
        family: int,
        address: tuple[Any, ...],
        *,
        concurrency: int,
        handshake_timeout: float,
        end: float,
        resume: bool,
        on_complete: Callable[[float], None],
        on_failure: Callable[[str], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        if not resume and config.session_tickets:
            config = dataclasses.replace(config, session_tickets=False)
        self._config = config
        self._family = family
        self._address = address
        self._concurrency = concurrency
        self._timeout = handshake_timeout
        self._end = end
        self._resume = resume
        self._on_complete = on_complete
        self._on_failure = on_failure
        self._reuse_within = min(REUSE_WITHIN, config.initial_timeout / 2)
        self._epoll = select.epoll()
        self._loop.add_reader(self._epoll.fileno(), self._poll)
        self._by_fd: dict[int, _Slot] = {}  # open sockets
        self._active: dict[int, _Slot] = {}  # slots with a handshake in flight
        self._saved: list[SavedSession | None] = [None] * concurrency
        self._waiting = 0  # slots between a failure and their next start
        # What the connections gave to send during this wake-up of the loop:
        # (slot, connection, datagrams), sent at its end (_flush).
        self._outbox: list[tuple[_Slot, DtlsConnection, list[bytes]]] = []
        self.suite = ""
        self.resumed = 0
        #: Handshakes started on a port that an earlier one used.
        self.reused = 0
        #: Datagrams of a port's previous association, dropped (see _readable).
        self.stale = 0
        #: The first unexpected exception of a callback (a defect), for the
        #: caller to raise: callbacks have no caller to raise it to.
        self.error: BaseException | None = None

    @property
    def in_flight(self) -> int:
        return len(self._active)

    @property
    def done(self) -> bool:
        """Every slot has stopped (past the end, nothing in flight)."""
        return not self._active and not self._waiting and time.perf_counter() >= self._end

    def start(self) -> None:
        for index in range(self._concurrency):
            self._start(index, None)
        self._flush()

    def sweep(self) -> None:
        """Fire due retransmission timers; give up handshakes past their deadline."""
        now = _monotonic()
        clock = _perf_counter()
        for slot in list(self._active.values()):
            conn = slot.conn
            assert conn is not None
            if clock >= slot.deadline:
                self._failed(slot, f"no handshake within {self._timeout} s")
                continue
            when = conn.get_timer()
            if when is not None and when <= now:
                conn.handle_timer(now)
                self._pump(slot, conn, now)
        self._flush()

    def close(self) -> None:
        """Stop: every socket closed, handshakes in flight abandoned."""
        for slot in list(self._by_fd.values()):
            self._retire(slot)
        self._active.clear()
        self._outbox.clear()
        if not self._epoll.closed:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()

    # ------------------------------------------------------------ slots

    def _start(
        self, index: int, slot: _Slot | None, started: float | None = None, now: float = 0.0
    ) -> None:
        """The next handshake of slot ``index``, on ``slot``'s socket if it
        may be reused, else from a new port; ``started``: the
        :func:`time.perf_counter` time, ``now`` the loop's time, if the
        caller just read them."""
        if started is None:
            started = _perf_counter()
        if started >= self._end:
            if slot is not None:
                self._retire(slot)
            return
        if slot is None:
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(self._address)
            except OSError as exc:
                sock.close()
                self._on_failure(f"{type(exc).__name__}: {exc}")
                self._retry(index)
                return
            slot = _Slot(index, sock)
            self._by_fd[slot.fd] = slot
            self._epoll.register(slot.fd, select.EPOLLIN)
        else:
            self.reused += 1
        conn = DtlsConnection(self._config, peer=self._address, resume=self._saved[index])
        slot.conn = conn
        slot.started = started
        slot.deadline = started + min(self._timeout, self._end - started + 1.0)
        slot.handshakes += 1
        slot.fresh = True
        self._active[slot.fd] = slot
        if not now:
            now = _monotonic()
        conn.connect(now)
        self._pump(slot, conn, now)

    def _retry(self, index: int) -> None:
        self._waiting += 1
        self._loop.call_later(RETRY_DELAY, self._restart, index)

    def _restart(self, index: int) -> None:
        self._waiting -= 1
        try:
            self._start(index, None)
            self._flush()
        except Exception as exc:
            if self.error is None:
                self.error = exc

    # ----------------------------------------------------------- events

    def _poll(self) -> None:
        """The epoll set is readable: serve every ready socket."""
        try:
            by_fd = self._by_fd
            for fd, _ in self._epoll.poll(0):
                slot = by_fd.get(fd)
                if slot is not None:
                    self._readable(slot)
            self._flush()
        except Exception as exc:
            if self.error is None:
                self.error = exc

    def _readable(self, slot: _Slot) -> None:
        recv = slot.sock.recv
        for _ in range(READS_PER_WAKEUP):
            try:
                data = recv(BUFFER_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._failed(slot, _unreachable(exc))
                return
            conn = slot.conn
            if conn is None:
                continue  # between two handshakes: nothing to give it to
            if slot.fresh:
                if len(data) > 4 and (data[3] or data[4]):
                    # The new association's first datagram from the server
                    # (HelloVerifyRequest or ServerHello) is at epoch 0, so
                    # a record of a later epoch before it is the previous
                    # association's (its close_notify in answer to ours).
                    self.stale += 1
                    continue
                slot.fresh = False
            now = _monotonic()
            conn.receive_datagram(data, now)
            sent = self._pump(slot, conn, now)
            if sent:
                # A flight went out (or the handshake is over): the server's
                # flight is whole, its answer is not here yet. Level-triggered,
                # the set reports anything else that is.
                return

    def _pump(self, slot: _Slot, conn: DtlsConnection, now: float) -> bool:
        """Queue what the connection has to send, act on its events; True
        if a flight is going out or the handshake is over. ``now``: the loop's time."""
        datagrams = conn.datagrams_to_send(now)
        if datagrams:
            self._outbox.append((slot, conn, datagrams))
        # The state tells whether there is an event to act on (a handshake
        # completes in ESTABLISHED, a failure ends in CLOSED): no call per
        # datagram to find out that there is none.
        state = conn.state
        if state is _ESTABLISHED:
            self._completed(slot, conn, now)
            return True
        if state is not _CLOSED:
            return bool(datagrams)
        while (event := conn.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                # Completed, then closed by what followed in its datagram.
                self._completed(slot, conn, now)
                return True
            if isinstance(event, ConnectionClosed):
                error = event.error or HandshakeError("closed during the handshake")
                self._failed(slot, f"{type(error).__name__}: {error}")
                return True
        return True

    def _completed(self, slot: _Slot, conn: DtlsConnection, now: float) -> None:
        finished = _perf_counter()
        latency = finished - slot.started
        if finished <= self._end:
            self._on_complete(latency)
            if not self.suite and conn.cipher_suite is not None:
                self.suite = conn.cipher_suite.name
            if self._resume:
                self.resumed += conn.resumed is not None
        if self._resume:
            self._saved[slot.index] = conn.resumption
        conn.close()  # close_notify, so that the server frees the session
        self._outbox.append((slot, conn, conn.datagrams_to_send(now)))
        slot.conn = None
        # The slot stays in _active: _start puts the next handshake there
        # (or _retire takes it out).
        if latency < self._reuse_within and not conn.counters.get("retransmissions"):
            self._start(slot.index, slot, finished, now)
        else:
            self._retire(slot)
            self._start(slot.index, None)

    def _flush(self) -> None:
        """Send what this wake-up queued, in order: the server sees a burst
        (one wake-up of its own for many datagrams, rather than one each).
        A datagram the socket does not take is lost, as on the network (the
        timer sends it again); a socket error fails the slot's handshake if
        it is the one that sent, and is ignored for the close_notify of one
        that is over (its socket may even be closed by now)."""
        outbox = self._outbox
        if not outbox:
            return
        self._outbox = []
        for slot, conn, datagrams in outbox:
            send = slot.sock.send
            for datagram in datagrams:
                try:
                    send(datagram)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    if conn is slot.conn:
                        self._failed(slot, _unreachable(exc))
                    break

    def _failed(self, slot: _Slot, reason: str) -> None:
        if self._active.pop(slot.fd, None) is None:
            return
        self._retire(slot)
        if time.perf_counter() < self._end:  # cut off by the end: neither way
            self._on_failure(reason)
            self._retry(slot.index)

    def _retire(self, slot: _Slot) -> None:
        """Close the slot's socket: its port is not used again (what it has
        queued goes out first: the close_notify of its last handshake)."""
        slot.conn = None
        if self._by_fd.pop(slot.fd, None) is None:
            return
        self._flush()
        self._active.pop(slot.fd, None)
        self._epoll.unregister(slot.fd)
        slot.sock.close()


def _unreachable(exc: OSError) -> str:
    """The reason of a failure to reach the server (an ICMP error on the port)."""
    return f"HandshakeError: {type(exc).__name__} (is a server listening there?)"
