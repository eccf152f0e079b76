"""The reused-buffer datagram transport (dtlsfast.datagram_transport): a
drop-in for ``loop.create_datagram_endpoint``."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dtlsfast.datagram_transport import ReusingDatagramTransport, open_datagram_endpoint


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.lost = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_numeric_hosts_skip_getaddrinfo(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A numeric address is used as it is: concurrent endpoints are set up in
    the order asked (getaddrinfo's thread pool answers in any order)."""
    loop = asyncio.get_running_loop()

    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("getaddrinfo called for a numeric host")

    monkeypatch.setattr(loop, "getaddrinfo", no_lookup)
    server, listener = await open_datagram_endpoint(Collect, local_addr=(host, 0))
    port = server.get_extra_info("sockname")[1]
    client, _ = await open_datagram_endpoint(Collect, remote_addr=(host, port))
    try:
        assert isinstance(client, ReusingDatagramTransport)
        assert client.get_extra_info("peername")[:2] == (host, port)
        client.sendto(b"ping")
        data, addr = await asyncio.wait_for(listener.got.get(), 5)
        assert data == b"ping" and addr == client.get_extra_info("sockname")
        server.sendto(b"pong", addr)
    finally:
        client.close()
        server.close()
    assert await asyncio.wait_for(listener.lost, 5) is None


async def test_names_are_resolved_and_reading_pauses() -> None:
    server, listener = await open_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client, collected = await open_datagram_endpoint(
        Collect, remote_addr=("localhost", port), family=socket.AF_INET
    )
    assert isinstance(client, ReusingDatagramTransport)
    try:
        client.sendto(b"hello")
        _, addr = await asyncio.wait_for(listener.got.get(), 5)
        client.pause_reading()
        server.sendto(b"later", addr)
        await asyncio.sleep(0.05)
        assert collected.got.empty()
        client.resume_reading()
        assert await asyncio.wait_for(collected.got.get(), 5) == (b"later", ("127.0.0.1", port))
        assert client.truncated == client.dropped == 0
    finally:
        client.close()
        server.close()
