"""No large allocation per datagram (issue 13): every asyncio datagram path
receives into a buffer it reuses.

asyncio's own datagram transport receives each datagram into a fresh
256 KiB bytes object, which glibc serves with mmap and munmap. tracemalloc
sees that object (CPython allocates bytes through its traced allocator), so
each test runs its exchanges after a warm-up and checks that the traced
memory's peak stayed within ``LIMIT`` of where it started: one 256 KiB
buffer alone would overshoot it.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import dtlsfast
from dtlsfast.coap import CoapClient, CoapServer, LightResource
from dtlsfast.coap.dtls import coaps_transport_factory, listen_dtls
from dtlsfast.datagram_transport import BUFFER_SIZE, receive_buffer
from dtlsfast.session import DtlsSession

PSK = {b"CoAP": b"esp32c3_key"}
#: Growth of the traced peak allowed over a whole phase of exchanges: far
#: below the 256 KiB that a single asyncio receive allocates.
LIMIT = 96 * 1024
EXCHANGES = 40


async def peak_growth(exchange: Callable[[], Awaitable[None]], count: int = EXCHANGES) -> int:
    """How far the traced memory's peak rose above its level at the start
    while ``exchange`` ran ``count`` times (after two warm-up runs)."""
    for _ in range(2):
        await exchange()
    receive_buffer()  # allocated once per thread, before the measurement
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(count):
            await exchange()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = peak - start
    print(f"traced peak grew by {growth:,} bytes over {count} exchanges")
    return growth


@pytest.fixture
async def coap_server() -> AsyncIterator[CoapServer]:
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    try:
        yield coap
    finally:
        coap.close()


async def test_plain_coap_server_and_client(coap_server: CoapServer) -> None:
    udp = await coap_server.listen_udp("127.0.0.1", 0)
    client = CoapClient()
    uri = f"coap://127.0.0.1:{udp.port}/light"

    async def exchange() -> None:
        response = await client.get(uri)
        assert response.code == 0x45

    try:
        assert await peak_growth(exchange) < LIMIT
    finally:
        await client.close()


@pytest.mark.parametrize("backend", ["pure", "rust"])
async def test_dtls_client_and_unbatched_server(coap_server: CoapServer, backend: str) -> None:
    """``dtlsfast.connect`` against a server on the plain asyncio path
    (the pure backend, or the Rust one with batch I/O off)."""

    async def echo(session: DtlsSession) -> None:
        async for data in session:
            await session.send(data)

    server = await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK, backend=backend, batch_io=False
    )
    session = await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))

    async def exchange() -> None:
        await session.send(b"ping")
        assert await session.recv() == b"ping"

    try:
        assert await peak_growth(exchange) < LIMIT
    finally:
        await session.close()
        server.close()
        await server.wait_closed()


async def test_coaps_client(coap_server: CoapServer) -> None:
    dtls = await listen_dtls(coap_server, "127.0.0.1", 0, psk_store=PSK, identity_hint="CoAP")
    client = CoapClient(
        transport_factories={"coaps": coaps_transport_factory(psk=("CoAP", "esp32c3_key"))}
    )
    uri = f"coaps://127.0.0.1:{dtls.port}/light"

    async def exchange() -> None:
        response = await client.get(uri)
        assert response.code == 0x45

    try:
        assert await peak_growth(exchange) < LIMIT
    finally:
        await client.close()
        dtls.close()
        await dtls.wait_closed()


def test_the_shared_buffer_holds_any_udp_datagram() -> None:
    assert len(receive_buffer()) == BUFFER_SIZE >= 65_527
    assert receive_buffer() is receive_buffer()
