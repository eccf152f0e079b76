"""Half-open handshakes lock nobody out (issue 12, item 2).

1,100 ports of one address that finished the cookie exchange and went silent
used to fill ``max_handshakes``: every new ClientHello was then dropped
before the cookie gate for 130 to 165 s. Now a full table evicts the
handshake that has waited longest since the server's flight, each source
address and prefix holds at most its share, and a handshake that stalls
goes after seconds; a genuine client whose retransmissions keep arriving is
progress, and stays.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
from front_door import (
    PSK,
    PSK_STORE,
    close_all,
    cookie_exchanges,
    echo,
    many_addresses,
    udp_socket,
    wait_for,
)

import dtlsfast
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection, State
from dtlsfast.server import DtlsServer, ServerLimits

#: The issue's target, asserted generously: handshake and an echo within 3 s.
TARGET = 3.0
NEWCOMERS_PER_ROUND = 5
OPEN_BUCKETS = {
    "hello_rate_per_address": 1e6,
    "hello_burst_per_address": 10**6,
    "hello_rate_per_prefix": 1e6,
    "hello_burst_per_prefix": 10**6,
}


async def _newcomer(server: DtlsServer) -> float:
    """A client from 127.0.0.1 (another address and /24 than the attackers):
    seconds for its handshake and one echo."""
    started = time.monotonic()
    session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=10)
    session.send_nowait(b"newcomer")
    assert await asyncio.wait_for(session.recv(), 5) == b"NEWCOMER"
    elapsed = time.monotonic() - started
    await session.close()
    return elapsed


def _one_address() -> list[socket.socket]:
    return [udp_socket("127.1.0.1") for _ in range(10_000)]


def _many_addresses() -> list[socket.socket]:
    return many_addresses(1000, 10)


@pytest.mark.parametrize(
    ("sources", "settings", "rounds"),
    [
        (_one_address, {}, 2),
        (_one_address, OPEN_BUCKETS, 1),
        (_many_addresses, {}, 1),
    ],
    ids=["10000-ports-of-one-address", "same-hello-buckets-open", "1000-addresses-10-ports-each"],
)
async def test_silent_half_open_handshakes_lock_nobody_out(
    sources: Callable[[], list[socket.socket]], settings: dict[str, float], rounds: int
) -> None:
    """Each round: every attacker port finishes a cookie exchange and goes
    silent; then newcomers from elsewhere connect, one after the other. With
    the hello buckets open, the caps and the eviction alone do it."""
    limits = ServerLimits(**settings)
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        latencies: list[float] = []
        cookies = 0
        started = time.monotonic()
        for _ in range(rounds):
            attackers = sources()
            try:
                got, _ = await cookie_exchanges(server.address, attackers)
                cookies += got
                for _ in range(NEWCOMERS_PER_ROUND):
                    latencies.append(await _newcomer(server))
            finally:
                close_all(attackers)
        elapsed = time.monotonic() - started
        c = server.counters
    print(
        f"\n[half-open] {rounds} round(s) of {len(attackers)} attacker ports finishing cookie "
        f"exchanges and going silent ({elapsed:.1f} s): {cookies} HelloVerifyRequests, "
        f"{c['cookie_accepted']} hellos with a valid cookie, "
        f"{c['handshakes_started']} handshakes started, {c['handshakes_evicted']} evicted, "
        f"refused: {c['dropped_hello_rate_address']} by the address's hello rate "
        f"(before or after the cookie), {c['dropped_hello_rate_prefix']} by the prefix's, "
        f"{c['dropped_handshakes_per_address']} at the address's cap, "
        f"{c['dropped_handshakes_per_prefix']} at the prefix's; in progress at the end "
        f"{c['handshakes_in_progress']} (max {limits.max_handshakes}); newcomer handshake + "
        f"echo: {', '.join(f'{t * 1000:.0f} ms' for t in latencies)}"
    )
    assert len(latencies) == rounds * NEWCOMERS_PER_ROUND
    assert max(latencies) < TARGET
    assert c["handshakes_in_progress"] <= limits.max_handshakes


async def test_stalled_handshakes_go_while_a_retransmitting_client_stays() -> None:
    """200 handshakes (20 addresses, 10 ports each) that go silent after the
    server's flight are gone a few seconds later; a client whose server
    flights are all lost for longer than the stall timeout, but whose
    retransmissions arrive, keeps its handshake (they are progress) and
    completes once the link recovers."""
    stall = 2.0
    limits = ServerLimits(handshake_stall_timeout=stall)
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        silent = many_addresses(20, 10)
        lossy = _LossyClient(server.address, deaf_for=2.5 * stall)
        try:
            started = time.monotonic()
            got, _ = await cookie_exchanges(server.address, silent)
            assert got == len(silent)
            completed = asyncio.ensure_future(lossy.run())
            gone = await wait_for(
                lambda: server.counters["handshakes_stalled"] == len(silent), 4 * stall
            )
            silent_gone_after = time.monotonic() - started
            await asyncio.wait_for(completed, 10)
            counters = server.counters
        finally:
            close_all(silent)
            lossy.close()
    print(
        f"\n[half-open] stall timeout {stall} s: {len(silent)} silent handshakes gone "
        f"{silent_gone_after:.1f} s after their flight ({counters['handshakes_stalled']} "
        f"stalled out); a client deaf for {lossy.deaf_for} s, retransmitting every "
        f"{lossy.interval} s ({lossy.retransmissions} retransmissions), completed after "
        f"{lossy.completed_after:.1f} s with {counters['handshakes_started'] - len(silent)} "
        f"handshake(s) started for it"
    )
    assert gone
    assert silent_gone_after < 3 * stall
    assert counters["handshakes_started"] == len(silent) + 1, "its handshake was never dropped"
    assert counters["handshakes_completed"] == 1


class _LossyClient:
    """A sans-I/O client over a socket that loses every datagram from the
    server for ``deaf_for`` seconds, and retransmits every ``interval``."""

    interval = 0.5

    def __init__(self, server: tuple[str, int], deaf_for: float) -> None:
        self.server = server
        self.deaf_for = deaf_for
        self.sock = udp_socket()
        config = DtlsConfiguration.client(
            psk=PSK,
            initial_timeout=self.interval,
            max_timeout=self.interval,
            max_retransmissions=100,
        )
        self.conn = DtlsConnection(config)
        self.retransmissions = 0
        self.completed_after = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.conn.connect(started)
        while self.conn.state is not State.ESTABLISHED:
            for datagram in self.conn.datagrams_to_send(loop.time()):
                self.sock.sendto(datagram, self.server)
            timer = self.conn.get_timer()
            wait = 0.05 if timer is None else max(0.0, timer - loop.time())
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), wait)
            except TimeoutError:
                self.conn.handle_timer(loop.time())
                self.retransmissions = self.conn.counters["retransmissions"]
                continue
            # The HelloVerifyRequest gets through; after it, nothing for a while.
            deaf = loop.time() - started < self.deaf_for
            if not deaf or data[13:14] == b"\x03":
                self.conn.receive_datagram(data, loop.time())
        for datagram in self.conn.datagrams_to_send(loop.time()):
            self.sock.sendto(datagram, self.server)
        self.completed_after = loop.time() - started

    def close(self) -> None:
        self.sock.close()
