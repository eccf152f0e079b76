"""The handshake storm's ports (``dtlsfast.handshake_storm``): a slot keeps
its port from one clean handshake to the next (RFC 6347 §4.2.8), drops the
previous association's records, and moves to a new port after a handshake
that needed retransmissions; two handshakes on one port never mix. Driven
against dtlsfast's own server through a relay that sees every datagram. No
assertion on speed."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dtlsfast.coap import CoapServer, LightResource
from dtlsfast.coap.dtls import listen_dtls
from dtlsfast.config import DtlsConfiguration
from dtlsfast.handshake_storm import HandshakeStorm
from dtlsfast.server import DtlsServer

PSK = {b"CoAP": b"esp32c3_key"}
HELLO_VERIFY_REQUEST = 3


def _is_client_hello_without_cookie(data: bytes) -> bool:
    """A datagram starting with a first ClientHello (an empty cookie):
    the start of a new handshake from its port."""
    if len(data) < 13 + 12 + 2 + 32 + 1 or data[0] != 22 or data[13] != 1:
        return False
    session_id_length = data[13 + 12 + 2 + 32]
    cookie_at = 13 + 12 + 2 + 32 + 1 + session_id_length
    return len(data) > cookie_at and data[cookie_at] == 0


def _epoch(data: bytes) -> int:
    return int.from_bytes(data[3:5], "big") if len(data) >= 13 else -1


class _Relay(asyncio.DatagramProtocol):
    """Between the storm and the server, one upstream socket per client
    port. Counts the handshakes each client port started; with ``lose_second``
    the second datagram from each client port is lost (so that its first
    handshake retransmits); with ``replay_stale`` a record of a later epoch
    from the server (its close_notify) is sent to the client port again
    right after the HelloVerifyRequest of the port's next handshake, where
    the connection of that handshake, not the storm, has to drop it."""

    def __init__(
        self, server: tuple[str, int], *, lose_second: bool = False, replay_stale: bool = False
    ) -> None:
        self.server = server
        self.lose_second = lose_second
        self.replay_stale = replay_stale
        self.transport: asyncio.DatagramTransport | None = None
        self.upstream: dict[Any, asyncio.DatagramTransport] = {}
        self.seen = Counter[Any]()
        self.handshakes = Counter[Any]()
        self.stale: dict[Any, bytes] = {}
        self.replayed = 0
        self.lost = 0
        self.opening: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _back(self, data: bytes, addr: Any) -> None:
        if self.transport is None:
            return
        self.transport.sendto(data, addr)
        if not self.replay_stale:
            return
        if _epoch(data) > 0:
            self.stale[addr] = data
        elif data[0] == 22 and len(data) > 13 and data[13] == HELLO_VERIFY_REQUEST:
            stale = self.stale.pop(addr, None)
            if stale is not None:
                self.replayed += 1
                self.transport.sendto(stale, addr)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen[addr] += 1
        if _is_client_hello_without_cookie(data):
            self.handshakes[addr] += 1
        if self.lose_second and self.seen[addr] == 2:
            self.lost += 1
            return
        upstream = self.upstream.get(addr)
        if upstream is not None:
            upstream.sendto(data)
            return
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _from: Any) -> None:
                relay._back(data, addr)

        async def open_upstream() -> None:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.server)
            self.upstream[addr] = transport
            transport.sendto(data)

        task = asyncio.ensure_future(open_upstream())
        self.opening.add(task)
        task.add_done_callback(self.opening.discard)

    def close(self) -> None:
        for transport in self.upstream.values():
            transport.close()
        if self.transport is not None:
            self.transport.close()


@pytest.fixture
async def server() -> AsyncIterator[DtlsServer]:
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    dtls = await listen_dtls(coap, "127.0.0.1", 0, psk_store=PSK, identity_hint="CoAP")
    try:
        yield dtls
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


async def _relay(server: DtlsServer, **options: bool) -> tuple[_Relay, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    _, relay = await loop.create_datagram_endpoint(
        lambda: _Relay(("127.0.0.1", server.port), **options), local_addr=("127.0.0.1", 0)
    )
    assert relay.transport is not None
    return relay, relay.transport.get_extra_info("sockname")


async def _storm(
    address: tuple[str, int], *, concurrency: int, duration: float, resume: bool = False
) -> tuple[HandshakeStorm, list[float], list[str]]:
    """Run a storm as ``dtlsfast bench --mode handshakes`` does."""
    latencies: list[float] = []
    failures: list[str] = []
    storm = HandshakeStorm(
        DtlsConfiguration.client(psk=("CoAP", "esp32c3_key")),
        socket.AF_INET,
        address,
        concurrency=concurrency,
        handshake_timeout=5.0,
        end=time.perf_counter() + duration,
        resume=resume,
        on_complete=latencies.append,
        on_failure=failures.append,
    )
    storm.start()
    try:
        while not storm.done and storm.error is None:
            await asyncio.sleep(0.02)
            storm.sweep()
    finally:
        storm.close()
    if storm.error is not None:
        raise storm.error
    return storm, latencies, failures


async def _sessions_closed(server: DtlsServer) -> int:
    for _ in range(100):
        if server.counters["sessions_open"] == 0:
            break
        await asyncio.sleep(0.01)
    return server.counters["sessions_open"]


async def test_a_slot_keeps_its_port_across_clean_handshakes(server: DtlsServer) -> None:
    relay, address = await _relay(server)
    try:
        storm, latencies, failures = await _storm(address, concurrency=2, duration=0.6)
    finally:
        relay.close()
    assert not failures and len(latencies) > 4
    # Far fewer ports than handshakes, each port's handshakes one after the
    # other, and every one of them completed and closed on the server.
    assert storm.reused > 0
    assert len(relay.handshakes) < sum(relay.handshakes.values())
    assert server.counters["handshakes_completed"] >= len(latencies)
    assert await _sessions_closed(server) == 0
    # The server answers close_notify with its own (RFC 5246 §7.2.1): that
    # record of the old association reached the port's next handshake first,
    # and the storm dropped it.
    assert storm.stale > 0


async def test_a_late_record_of_the_old_association_does_not_mix_in(
    server: DtlsServer,
) -> None:
    relay, address = await _relay(server, replay_stale=True)
    try:
        storm, latencies, failures = await _storm(address, concurrency=1, duration=0.5)
    finally:
        relay.close()
    # The old association's close_notify came again in the middle of the
    # next handshake on the port: that connection dropped it (an epoch it
    # has no keys for, RFC 6347 §4.1) and completed.
    assert relay.replayed > 0 and storm.reused > 0
    assert not failures and len(latencies) >= relay.replayed


async def test_a_handshake_that_retransmitted_moves_its_slot_to_a_new_port(
    server: DtlsServer,
) -> None:
    relay, address = await _relay(server, lose_second=True)
    try:
        storm, latencies, failures = await _storm(address, concurrency=1, duration=2.5)
    finally:
        relay.close()
    # Each port lost its second datagram, the handshake completed by
    # retransmission, and the next one came from a new port.
    assert not failures and len(latencies) >= 2
    assert storm.reused == 0
    assert relay.lost >= len(latencies)
    assert set(relay.handshakes.values()) == {1}


async def test_a_storm_that_does_not_resume_asks_for_no_ticket(server: DtlsServer) -> None:
    # Not resuming, a ticket would never be used: the storm does not ask for
    # one (RFC 5077 §3.2), so the server issues none; resuming, it does.
    address = ("127.0.0.1", server.port)
    _, latencies, failures = await _storm(address, concurrency=2, duration=0.3)
    assert not failures and latencies
    assert server.counters["tickets_issued"] == 0
    _, latencies, failures = await _storm(address, concurrency=2, duration=0.3, resume=True)
    assert not failures and latencies
    assert server.counters["tickets_issued"] > 0
