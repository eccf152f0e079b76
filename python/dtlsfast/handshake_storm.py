"""The handshakes of ``dtlsfast bench --mode handshakes``, driven by callbacks.

A storm keeps ``concurrency`` DTLS 1.2 handshakes in flight (RFC 6347 §4.2,
the cookie exchange included), each from a new UDP port and closed with
close_notify (RFC 5246 §7.2.1) once complete, the next one started in its
slot at once. Resuming, each slot offers the session of its last handshake
(RFC 5246 §7.3, RFC 5077), so that all but its first are abbreviated ones.

No task, future or timer per handshake: each socket's reader drives its
sans-I/O connection, and one :meth:`HandshakeStorm.sweep` per tick serves
the retransmission timers (RFC 6347 §4.2.4) and the handshake timeouts of
all of them, so that the generator's time goes to the handshakes rather
than to the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.datagram_transport import receive_buffer
from dtlsfast.events import ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import HandshakeError
from dtlsfast.resumption.saved_session import SavedSession

#: Datagrams read from one socket per wake-up, before the loop moves on.
READS_PER_WAKEUP = 8
#: A slot whose handshake failed waits this long before the next one, so
#: that a refused port is not a busy loop.
RETRY_DELAY = 0.01


class _Attempt:
    """One handshake in flight: its socket, connection and deadline."""

    __slots__ = ("conn", "deadline", "fd", "slot", "sock", "started")

    def __init__(
        self, slot: int, sock: socket.socket, conn: DtlsConnection, started: float, deadline: float
    ) -> None:
        self.slot = slot
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = conn
        self.started = started
        self.deadline = deadline


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
        self._config = config
        self._family = family
        self._address = address
        self._concurrency = concurrency
        self._timeout = handshake_timeout
        self._end = end
        self._resume = resume
        self._on_complete = on_complete
        self._on_failure = on_failure
        self._active: dict[int, _Attempt] = {}
        self._saved: list[SavedSession | None] = [None] * concurrency
        self._waiting = 0  # slots between a failure and their next start
        self.suite = ""
        self.resumed = 0
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
        for slot in range(self._concurrency):
            self._start(slot)

    def sweep(self) -> None:
        """Fire due retransmission timers; give up handshakes past their deadline."""
        now = self._loop.time()
        clock = time.perf_counter()
        for attempt in list(self._active.values()):
            if clock >= attempt.deadline:
                self._failed(attempt, f"no handshake within {self._timeout} s")
                continue
            when = attempt.conn.get_timer()
            if when is not None and when <= now:
                attempt.conn.handle_timer(now)
                self._pump(attempt)

    def close(self) -> None:
        """Stop: every socket closed, handshakes in flight abandoned."""
        for attempt in list(self._active.values()):
            self._teardown(attempt)

    # ------------------------------------------------------------ slots

    def _start(self, slot: int) -> None:
        started = time.perf_counter()
        if started >= self._end:
            return
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self._address)
        except OSError as exc:
            sock.close()
            self._on_failure(f"{type(exc).__name__}: {exc}")
            self._retry(slot)
            return
        conn = DtlsConnection(self._config, peer=self._address, resume=self._saved[slot])
        deadline = started + min(self._timeout, self._end - started + 1.0)
        attempt = _Attempt(slot, sock, conn, started, deadline)
        self._active[attempt.fd] = attempt
        self._loop.add_reader(attempt.fd, self._readable, attempt)
        conn.connect(self._loop.time())
        self._pump(attempt)

    def _retry(self, slot: int) -> None:
        self._waiting += 1
        self._loop.call_later(RETRY_DELAY, self._restart, slot)

    def _restart(self, slot: int) -> None:
        self._waiting -= 1
        self._guarded(self._start, slot)

    def _guarded(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:
            if self.error is None:
                self.error = exc

    # ----------------------------------------------------------- events

    def _readable(self, attempt: _Attempt) -> None:
        try:
            view = receive_buffer()
            sock = attempt.sock
            conn = attempt.conn
            for _ in range(READS_PER_WAKEUP):
                try:
                    size = sock.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    self._failed(attempt, _unreachable(exc))
                    return
                conn.receive_datagram(bytes(view[:size]), self._loop.time())
                if not self._pump(attempt):
                    return
        except Exception as exc:
            if self.error is None:
                self.error = exc

    def _pump(self, attempt: _Attempt) -> bool:
        """Send what the connection has, act on its events; False once the
        attempt is over."""
        conn = attempt.conn
        send = attempt.sock.send
        for datagram in conn.datagrams_to_send(self._loop.time()):
            try:
                send(datagram)
            except (BlockingIOError, InterruptedError):
                pass  # lost, as on the network: the timer sends it again
            except OSError as exc:
                self._failed(attempt, _unreachable(exc))
                return False
        while (event := conn.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self._completed(attempt)
                return False
            if isinstance(event, ConnectionClosed):
                error = event.error or HandshakeError("closed during the handshake")
                self._failed(attempt, f"{type(error).__name__}: {error}")
                return False
        return True

    def _completed(self, attempt: _Attempt) -> None:
        finished = time.perf_counter()
        conn = attempt.conn
        if finished <= self._end:
            self._on_complete(finished - attempt.started)
            if conn.cipher_suite is not None:
                self.suite = conn.cipher_suite.name
            self.resumed += conn.resumed is not None
        if self._resume:
            self._saved[attempt.slot] = conn.resumption
        conn.close()  # close_notify, so that the server frees the session
        for datagram in conn.datagrams_to_send(self._loop.time()):
            try:
                attempt.sock.send(datagram)
            except OSError:
                break
        self._teardown(attempt)
        self._start(attempt.slot)

    def _failed(self, attempt: _Attempt, reason: str) -> None:
        if attempt.fd not in self._active:
            return
        self._teardown(attempt)
        if time.perf_counter() < self._end:  # cut off by the end: neither way
            self._on_failure(reason)
            self._retry(attempt.slot)

    def _teardown(self, attempt: _Attempt) -> None:
        if self._active.pop(attempt.fd, None) is None:
            return
        self._loop.remove_reader(attempt.fd)
        attempt.sock.close()


def _unreachable(exc: OSError) -> str:
    """The reason of a failure to reach the server (an ICMP error on the port)."""
    return f"HandshakeError: {type(exc).__name__} (is a server listening there?)"
