"""A datagram transport on recvmmsg/sendmmsg for the server (Linux).

asyncio's datagram transport makes one system call and one event-loop
callback per datagram. :class:`BatchDatagramTransport` reads up to ``batch``
datagrams with one recvmmsg(2) (in the Rust core, the GIL released), hands
them to the protocol (a protocol with ``serve_batch(io)`` reads them itself:
the DTLS server demultiplexes the batch in Rust), and sends everything the
protocol answered meanwhile with one sendmmsg(2). Outside a batch, or after
:meth:`BatchDatagramTransport.send_at_once`, ``sendto`` sends at once.
What the socket does not take now waits, bounded, until it is writable.

One datagram cannot cost the others of its batch: an exception from the
protocol's ``datagram_received`` (or from a whole ``serve_batch``) is counted
in :attr:`BatchDatagramTransport.protocol_errors`, logged at most once per
source a minute, and the loop goes on.

It implements what the DTLS server uses of :class:`asyncio.DatagramTransport`;
:func:`open_batch_transport` returns None where batch I/O is unavailable, and
the server then uses asyncio's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from typing import Any, Protocol

from dtlsfast.datagram_transport import SocketTransport
from dtlsfast.log_limiter import LogLimiter

logger = logging.getLogger("dtlsfast.batch_transport")

#: Datagrams read per recvmmsg call, and calls per wake-up of the loop (so one
#: busy socket cannot starve timers and other sockets).
BATCH = 64
BATCHES_PER_WAKEUP = 8
#: Largest datagram read whole: the largest DTLS record (RFC 6347 §4.1:
#: 13-byte header, 2^14 bytes of plaintext, 2,048 of expansion). A longer one
#: is dropped and counted (``truncated``; the server's ``dropped_truncated``).
BUFFER_SIZE = 13 + 2**14 + 2048
#: Datagrams waiting for a writable socket before the oldest are dropped.
MAX_PENDING = 8192
#: Receive buffer asked for (the kernel caps it at net.core.rmem_max).
RECEIVE_BUFFER = 4 * 1024 * 1024


class BatchProtocol(Protocol):
    """What the transport needs of its protocol (``serve_batch`` is optional)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def error_received(self, exc: Exception) -> None: ...
    def datagram_received(self, data: bytes, addr: Any) -> None: ...


class BatchDatagramTransport(SocketTransport):
    """Batched reads and writes on one non-blocking UDP socket."""

    _protocol: BatchProtocol

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: BatchProtocol,
        io: Any,
    ) -> None:
        super().__init__(loop, sock, protocol)
        self._io = io
        self._in_batch = False
        self.protocol_errors = 0
        """Unexpected exceptions the protocol raised on a datagram or a batch."""
        self._error_log = LogLimiter()
        serve_batch = getattr(protocol, "serve_batch", None)
        self._serve_batch = serve_batch if callable(serve_batch) else self._one_by_one

    @property
    def truncated(self) -> int:
        """Datagrams dropped because they were longer than ``BUFFER_SIZE``."""
        return int(self._io.truncated)

    def _start(self) -> None:
        self._loop.add_reader(self._fd, self._read_ready)
        self._protocol.connection_made(self)

    # -- reading -------------------------------------------------------------

    def _one_by_one(self, io: Any) -> int:
        items = io.recv()
        for data, addr in items:
            try:
                self._protocol.datagram_received(data, addr)
            except Exception as exc:
                self._protocol_error(exc, addr)
        return len(items)

    def _protocol_error(self, exc: Exception, source: Any) -> None:
        self.protocol_errors += 1
        key = source[0] if isinstance(source, tuple) and source else source
        if self._error_log.allow(key, self._loop.time()):
            logger.error(
                "the protocol raised on a datagram batch (%r); going on with the next "
                "datagrams (logged at most once per source a minute)",
                source,
                exc_info=exc,
            )

    def _read_ready(self) -> None:
        for _ in range(BATCHES_PER_WAKEUP):
            if self._closing:
                return
            self._in_batch = True
            try:
                # A protocol with serve_batch(io) reads the batch itself (the
                # DTLS server demultiplexes it in Rust); others get datagrams.
                received = self._serve_batch(self._io)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except Exception as exc:
                # A bug in the protocol's batch handling: this batch is lost,
                # the next ones are read as usual.
                self._protocol_error(exc, "serve_batch")
                received = BATCH
            finally:
                self._in_batch = False
                self._flush()
            if received < BATCH:
                return  # the socket was drained: no need to ask again

    # -- writing -------------------------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append((bytes(data), addr))
        if not self._in_batch and not self._writing:
            self._flush()

    def send_at_once(self) -> None:
        """End the batching of sends until the batch ends: what is queued
        leaves now, and each later ``sendto`` of this batch at once. For a
        batch of one handshake datagram, whose answer (the next flight)
        should not wait for the bookkeeping that follows it."""
        if self._in_batch:
            self._in_batch = False
            if not self._writing:
                self._flush()

    def _flush(self) -> None:
        while self._pending:
            try:
                sent = self._io.send(list(self._pending))
            except OSError as exc:
                # The first datagram failed outright (an ICMP error surfacing,
                # an unreachable address): it is lost, as UDP would lose it.
                self._pending.popleft()
                self._protocol.error_received(exc)
                continue
            for _ in range(sent):
                self._pending.popleft()
            if not sent:
                break
        if self._pending and not self._writing and not self._closing:
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        self._writing = False
        self._loop.remove_writer(self._fd)
        self._flush()

    # -- muting (rust/source_mute.rs) ------------------------------------------

    def mute_hellos(self, host: str, prefix_length: int, seconds: float) -> bool:
        """Drop the ClientHellos of ``host``'s network of ``prefix_length`` bits
        as they are read, for ``seconds`` (the server does so while a source's
        hello budget is empty). False if the socket's table is full."""
        return bool(self._io.mute(host, prefix_length, seconds))

    @property
    def muted_hellos(self) -> int:
        """ClientHellos dropped on arrival from muted sources."""
        return int(self._io.muted_hellos)

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        if self._closing:
            return
        with contextlib.suppress(OSError):
            self._flush()  # close_notify alerts the protocol queued on close
        self._closing = True
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._pending.clear()
        self._loop.call_soon(self._finish_close)


def batch_io_available() -> bool:
    """Whether this platform and build have recvmmsg/sendmmsg."""
    if not sys.platform.startswith("linux"):
        return False
    from dtlsfast import _core

    return hasattr(_core, "BatchSocket")


async def open_batch_transport(
    protocol: BatchProtocol,
    host: str,
    port: int,
    *,
    reuse_port: bool | None = None,
    sock: socket.socket | None = None,
) -> BatchDatagramTransport | None:
    """Bind a UDP socket on ``host:port`` (or take ``sock``, already bound)
    and serve it in batches; None where batch I/O is unavailable (the caller
    falls back to asyncio's transport)."""
    if not batch_io_available():
        return None
    from dtlsfast import _core

    loop = asyncio.get_running_loop()
    if sock is None:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    else:
        address = None
    try:
        if reuse_port and address is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        if address is not None:
            sock.bind(address)
        io = _core.BatchSocket(sock.fileno(), BATCH, BUFFER_SIZE)
    except BaseException:
        sock.close()
        raise
    transport = BatchDatagramTransport(loop, sock, protocol, io)
    transport._start()
    return transport


__all__ = ["BatchDatagramTransport", "batch_io_available", "open_batch_transport"]
