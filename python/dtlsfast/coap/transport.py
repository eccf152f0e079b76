"""Plain UDP transports for CoAP (RFC 7252 §3: one message per datagram).

:class:`UdpServerTransport` is the thin asyncio DatagramProtocol behind
``CoapServer.listen_udp``: every datagram goes to the server's receive
callback with the source address as the peer. :func:`open_udp_client` is the
client's ``coap://`` transport factory (one connected socket per origin).
A DTLS transport offers the same two shapes with a DTLS session underneath.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol, cast

from dtlsfast.datagram_transport import open_datagram_endpoint

log = logging.getLogger("dtlsfast.coap")


class ClientTransport(Protocol):
    """What :class:`~dtlsfast.coap.client.CoapClient` needs of a transport to
    one origin server: send a datagram, close."""

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...


#: ``factory(scheme, host, port, on_datagram)`` opens a transport to one
#: origin and calls ``on_datagram(data)`` for every datagram received from it.
ClientTransportFactory = Callable[
    [str, str, int, Callable[[bytes], None]], Awaitable[ClientTransport]
]


class UdpServerTransport(asyncio.DatagramProtocol):
    """One UDP socket feeding a CoAP server."""

    def __init__(self, on_datagram: Callable[[bytes, Hashable], None] | None = None) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_errors = 0

    @property
    def address(self) -> Any:
        """The bound (host, port, ...) address."""
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")

    @property
    def port(self) -> int:
        return int(self.address[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's datagram transports do not all subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.on_datagram is not None:
            self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error on CoAP socket: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def sendto(self, data: bytes, peer: Hashable) -> None:
        if self.transport is None or self.transport.is_closing():
            self.send_errors += 1
            return
        self.transport.sendto(data, peer)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _UdpClientProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's datagram transports do not all subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: CoAP's retransmission copes.
        log.debug("UDP error on CoAP client socket: %s", exc)


class UdpClientTransport:
    """A connected UDP socket to one origin server."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport

    def send(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.sendto(data)

    def close(self) -> None:
        self._transport.close()


async def open_udp_client(
    scheme: str, host: str, port: int, on_datagram: Callable[[bytes], None]
) -> ClientTransport:
    """The ``coap://`` transport factory."""
    transport, _ = await open_datagram_endpoint(
        lambda: _UdpClientProtocol(on_datagram), remote_addr=(host, port)
    )
    return UdpClientTransport(transport)


__all__ = [
    "ClientTransport",
    "ClientTransportFactory",
    "UdpClientTransport",
    "UdpServerTransport",
    "open_udp_client",
]
