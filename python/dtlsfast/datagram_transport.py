"""A UDP transport for asyncio that receives into a buffer it reuses.

asyncio's selector datagram transport calls ``sock.recvfrom(256 KiB)`` for
every datagram: CPython allocates a 256 KiB bytes object and shrinks it,
which glibc serves with mmap, mremap and munmap, since it is above its mmap
threshold (issue 13 measured 41 to 53 µs of CPU per request in the load
generator, most of it that). :class:`ReusingDatagramTransport` receives with
``recvfrom_into`` into one 64 KiB buffer per thread, which holds any UDP
datagram (RFC 768 lengths; IPv6 jumbograms aside), and copies out only the
datagram's bytes.

:func:`open_datagram_endpoint` is a drop-in for
``loop.create_datagram_endpoint`` (``local_addr``, ``remote_addr``,
``family``, ``reuse_port``) that every plain asyncio datagram path of the
project uses: the plain CoAP server and client, the DTLS client, the DTLS
server when it does not batch. On a loop without ``add_reader`` (Windows'
proactor) it falls back to asyncio's own transport.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast

#: The receive buffer: any UDP datagram fits (65,507 bytes over IPv4,
#: 65,527 over IPv6), so none is ever cut short.
BUFFER_SIZE = 65_536
#: Datagrams read per wake-up of the loop, so that one busy socket does not
#: starve timers and the other sockets.
READS_PER_WAKEUP = 16
#: Datagrams waiting for a writable socket before the oldest are dropped.
MAX_PENDING = 1024

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
_local = threading.local()


def receive_buffer() -> memoryview:
    """This thread's receive buffer, allocated once: an event loop runs its
    callbacks one at a time, and every read copies its datagram out before
    the protocol sees it, so the sockets of one loop can share it."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(BUFFER_SIZE))
    return view


class SocketTransport(asyncio.DatagramTransport):
    """What the project's datagram transports share: one non-blocking UDP
    socket owned by the transport, a bounded queue of datagrams waiting for
    it to be writable, and asyncio's transport lifecycle (``close`` calls
    the protocol's ``connection_lost`` on the next loop iteration)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: Any,
        peer: Any = None,
    ) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._peer = peer
        self._pending: deque[tuple[bytes, Any]] = deque()
        self._writing = False
        self._closing = False
        self.dropped = 0
        """Datagrams dropped because the socket did not take them in time."""

    def get_write_buffer_size(self) -> int:
        return sum(len(d) for d, _ in self._pending)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._sock.getsockname()
        if name == "peername":
            return self._peer if self._peer is not None else default
        if name == "socket":
            return self._sock
        return default

    def is_closing(self) -> bool:
        return self._closing

    def abort(self) -> None:
        self._pending.clear()
        self.close()

    def _finish_close(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return cast(asyncio.BaseProtocol, self._protocol)


class ReusingDatagramTransport(SocketTransport):
    """One non-blocking UDP socket (connected or not) driven by the loop's
    reader and writer callbacks; implements :class:`asyncio.DatagramTransport`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        peer: Any = None,
    ) -> None:
        super().__init__(loop, sock, protocol, peer)
        self._reading = False
        self.truncated = 0
        """Datagrams dropped because they did not fit the buffer (none can,
        over UDP: the count is there so that a drop is never silent)."""

    def _start(self) -> None:
        self._protocol.connection_made(self)
        self.resume_reading()

    # -- reading ---------------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading (another reader, such as the load generator's Rust
        client table, takes the socket over); :meth:`resume_reading` undoes it."""
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def _read_ready(self) -> None:
        view = receive_buffer()
        recv = self._sock.recvfrom_into
        for _ in range(READS_PER_WAKEUP):
            if self._closing or not self._reading:
                return
            try:
                size, addr = recv(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            if size >= BUFFER_SIZE:
                self.truncated += 1
                continue
            self._protocol.datagram_received(bytes(view[:size]), addr)

    # -- writing ---------------------------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        if self._peer is not None:
            addr = None  # connected: the kernel knows where
        if not self._pending:
            try:
                if addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append((bytes(data), addr))
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        while self._pending:
            data, addr = self._pending[0]
            try:
                if addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._pending.popleft()
                self._protocol.error_received(exc)
                continue
            self._pending.popleft()
        self._writing = False
        self._loop.remove_writer(self._fd)

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        if self._closing:
            return
        self.pause_reading()
        self._closing = True
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        self._pending.clear()
        self._loop.call_soon(self._finish_close)


async def _resolve(
    loop: asyncio.AbstractEventLoop, where: tuple[Any, ...], family: int
) -> tuple[int, tuple[Any, ...]]:
    """The family and socket address of ``(host, port)``. A numeric host is
    taken as it is, as asyncio does: no trip through getaddrinfo's thread
    pool, whose threads would answer concurrent callers in any order."""
    host, port = where[0], where[1]
    for candidate in (socket.AF_INET, socket.AF_INET6):
        if family not in (0, candidate) or not isinstance(host, str):
            continue
        try:
            socket.inet_pton(candidate, host)
        except OSError:
            continue
        if candidate == socket.AF_INET:
            return candidate, (host, port)
        return candidate, (host, port, *where[2:4]) if len(where) == 4 else (host, port, 0, 0)
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned nothing")
    return int(infos[0][0]), tuple(infos[0][4])


async def open_datagram_endpoint(
    protocol_factory: Callable[[], _P],
    *,
    local_addr: tuple[Any, ...] | None = None,
    remote_addr: tuple[Any, ...] | None = None,
    family: int = 0,
    reuse_port: bool | None = None,
    sock: socket.socket | None = None,
) -> tuple[asyncio.DatagramTransport, _P]:
    """``loop.create_datagram_endpoint`` on a :class:`ReusingDatagramTransport`:
    a socket bound to ``local_addr`` and/or connected to ``remote_addr``
    (the first address ``getaddrinfo`` gives), or ``sock``, a socket already
    bound (a worker's share of a port, :mod:`dtlsfast.workers`). Raises
    OSError as asyncio does."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.SelectorEventLoop):  # a proactor: no add_reader
        if sock is not None:
            return await loop.create_datagram_endpoint(protocol_factory, sock=sock)
        return await loop.create_datagram_endpoint(
            protocol_factory,
            local_addr=local_addr,
            remote_addr=remote_addr,
            family=family,
            reuse_port=reuse_port,
        )
    if sock is not None:
        sock.setblocking(False)
        made = protocol_factory()
        given = ReusingDatagramTransport(loop, sock, cast(asyncio.DatagramProtocol, made))
        given._start()
        return given, made
    where = remote_addr if remote_addr is not None else local_addr
    if where is None:
        raise ValueError("give local_addr, remote_addr or both")
    family, address = await _resolve(loop, where, family)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if local_addr is not None:
            if remote_addr is None:
                sock.bind(address)
            else:
                sock.bind((await _resolve(loop, local_addr, family))[1])
        peer = None
        if remote_addr is not None:
            sock.connect(address)
            peer = sock.getpeername()
        protocol = protocol_factory()
    except BaseException:
        sock.close()
        raise
    transport = ReusingDatagramTransport(loop, sock, cast(asyncio.DatagramProtocol, protocol), peer)
    transport._start()
    return transport, protocol


__all__ = [
    "BUFFER_SIZE",
    "ReusingDatagramTransport",
    "SocketTransport",
    "open_datagram_endpoint",
    "receive_buffer",
]
