"""Session lifecycle while peers keep talking: graceful shutdown, idle timeout,
least-recently-used eviction at the cap, and a counter for every drop reason.

Each test runs a dtlsfast server with many real client sessions on loopback,
some of them busy while the server acts, and prints its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

import dtlsfast
from dtlsfast import ConfigurationError, ConnectionClosedError, DtlsSession
from dtlsfast.backend import load_backend
from dtlsfast.handshake.constants import DTLS_1_2
from dtlsfast.server import DtlsServer, ServerLimits

PSK_STORE = {"CoAP": b"esp32c3_key"}
PSK = ("CoAP", "esp32c3_key")
BACKEND = load_backend("rust")


async def _echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data.upper())


async def _connect_many(server: DtlsServer, count: int, batch: int = 50) -> list[DtlsSession]:
    sessions: list[DtlsSession] = []
    for start in range(0, count, batch):
        n = min(batch, count - start)
        sessions += await asyncio.gather(
            *(
                dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=20)
                for _ in range(n)
            )
        )
    return sessions


async def _round_trip(session: DtlsSession, data: bytes) -> bytes:
    await session.send(data)
    return await asyncio.wait_for(session.recv(), 5)


async def _closed_by_peer(session: DtlsSession, within: float) -> bool:
    """True once the session ends on the server's close_notify (data is skipped)."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(session.recv(), remaining)
        except ConnectionClosedError:
            return True
        except TimeoutError:
            return False
    return False


class _Chatter:
    """Keeps ``sessions`` busy with echo round trips until stopped."""

    def __init__(self, sessions: Sequence[DtlsSession], every: float) -> None:
        self.sessions = sessions
        self.every = every
        self.round_trips = 0
        self.stopped = False
        self.tasks = [asyncio.ensure_future(self._run(s)) for s in sessions]

    async def _run(self, session: DtlsSession) -> None:
        with contextlib.suppress(ConnectionClosedError):
            # Python 3.11's wait_for can swallow a cancellation that races
            # with its result: the flag ends the loop all the same.
            while not self.stopped:
                assert await _round_trip(session, b"busy") == b"BUSY"
                self.round_trips += 1
                await asyncio.sleep(self.every)

    async def stop(self) -> None:
        self.stopped = True
        for task in self.tasks:
            task.cancel()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        failures = [r for r in results if not isinstance(r, asyncio.CancelledError | None)]
        assert not failures, failures


@contextlib.asynccontextmanager
async def _server(limits: ServerLimits | None = None) -> AsyncIterator[DtlsServer]:
    server = await dtlsfast.serve(_echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def _close_all(sessions: Sequence[DtlsSession]) -> None:
    await asyncio.gather(*(s.close() for s in sessions if not s.closed))


async def test_graceful_shutdown_sends_close_notify_to_every_peer() -> None:
    count = 200
    async with _server() as server:
        sessions = await _connect_many(server, count)
        chatter = _Chatter(sessions[: count // 2], every=0.01)
        await asyncio.sleep(0.3)
        assert server.counters["sessions_open"] == count
        started = time.monotonic()
        server.close()
        closed = await asyncio.gather(*(_closed_by_peer(s, 5) for s in sessions[count // 2 :]))
        await chatter.stop()
        elapsed = time.monotonic() - started
        await server.wait_closed()
    busy_closed = sum(s.closed for s in sessions[: count // 2])
    print(
        f"\n[lifecycle] shutdown with {count} sessions ({count // 2} busy, "
        f"{chatter.round_trips} round trips before): {sum(closed)} idle and {busy_closed} busy "
        f"peers got close_notify within {elapsed:.2f} s"
    )
    assert all(closed)
    assert busy_closed == count // 2
    assert server.counters["sessions_open"] == 0
    await _close_all(sessions)


async def test_idle_sessions_close_while_busy_ones_stay() -> None:
    limits = ServerLimits(idle_timeout=0.6)
    async with _server(limits) as server:
        sessions = await _connect_many(server, 100)
        busy, idle = sessions[:50], sessions[50:]
        chatter = _Chatter(busy, every=0.05)
        try:
            closed = await asyncio.gather(*(_closed_by_peer(s, 5) for s in idle))
            await asyncio.sleep(0.3)
            counters = server.counters
            assert all(not s.closed for s in busy)
        finally:
            await chatter.stop()
        print(
            f"\n[lifecycle] idle timeout 0.6 s, 50 busy and 50 idle sessions: "
            f"{counters['sessions_idle_closed']} closed as idle, {counters['sessions_open']} "
            f"still open after {chatter.round_trips} round trips"
        )
        assert all(closed)
        assert counters["sessions_idle_closed"] == 50
        assert counters["sessions_open"] == 50
        await _close_all(sessions)


async def test_eviction_at_the_cap_takes_the_least_recently_active() -> None:
    cap, extra = 50, 30
    limits = ServerLimits(max_sessions=cap)
    async with _server(limits) as server:
        first = await _connect_many(server, cap)
        # The oldest ten stay busy: they are the most recently active.
        chatter = _Chatter(first[:10], every=0.02)
        try:
            await asyncio.sleep(0.2)
            newcomers = await _connect_many(server, extra, batch=10)
            counters = server.counters
        finally:
            await chatter.stop()
        quiet = first[10:]
        evicted = await asyncio.gather(*(_closed_by_peer(s, 2) for s in quiet[:extra]))
        print(
            f"\n[lifecycle] cap {cap}, {extra} more sessions while 10 old ones chat: "
            f"{counters['sessions_evicted']} evicted, {sum(evicted)} of the {extra} least "
            f"recently active got close_notify, {counters['sessions_open']} open"
        )
        assert counters["sessions_evicted"] == extra
        assert counters["sessions_open"] == cap
        assert all(evicted)
        for session in [*first[:10], *quiet[extra:], *newcomers]:
            # A chatter cancelled mid round trip may have left a b"BUSY" behind.
            await session.send(b"alive")
            while (reply := await asyncio.wait_for(session.recv(), 5)) == b"BUSY":
                pass
            assert reply == b"ALIVE"
        await _close_all([*first, *newcomers])


async def test_a_full_server_evicts_in_batches() -> None:
    # At 512 sessions the batch is 512 / 256 = 2 more than needed: the first
    # newcomer evicts three, the next two find room.
    cap = 512
    async with _server(ServerLimits(max_sessions=cap)) as server:
        first = await _connect_many(server, cap)
        chatter = _Chatter(first[3:], every=0.5)  # all but the oldest three talk
        try:
            await asyncio.sleep(0.3)
            newcomers = [*await _connect_many(server, 1)]
            evicted = await asyncio.gather(*(_closed_by_peer(s, 2) for s in first[:3]))
            assert all(evicted)
            assert server.counters["sessions_evicted"] == 3
            newcomers += await _connect_many(server, 2)
            counters = server.counters
        finally:
            await chatter.stop()
        assert counters["sessions_evicted"] == 3
        assert counters["sessions_open"] == cap
        await _close_all([*first, *newcomers])


def test_the_eviction_batch_is_a_share() -> None:
    with pytest.raises(ConfigurationError, match="share of max_sessions"):
        ServerLimits(eviction_batch=1.5)


def _record(
    content_type: int, epoch: int, seq: int, payload: bytes, version: int = DTLS_1_2
) -> bytes:
    return bytes(BACKEND.encode_record(content_type, version, epoch, seq, payload))


async def test_every_drop_reason_has_a_counter() -> None:
    """Each kind of invalid datagram is dropped and counted under its own name,
    and the session it was aimed at goes on."""
    async with _server() as server:
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
        assert await _round_trip(session, b"before") == b"BEFORE"
        # Send from the session's own address, as a forger or a broken peer would.
        (peer,) = server._peers.values()
        address = peer.session.peer_address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))

            def from_peer(datagram: bytes) -> Callable[[], Awaitable[None]]:
                async def send() -> None:
                    server.datagram_received(datagram, address)

                return send

            def from_stranger(datagram: bytes) -> Callable[[], Awaitable[None]]:
                async def send() -> None:
                    stranger.sendto(datagram, server.address)

                return send

            cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("dropped_no_session", from_stranger(_record(23, 1, 5, os.urandom(40)))),
                ("dropped_malformed", from_peer(b"\x17\xfe\xfd\x00")),
                ("dropped_bad_version", from_peer(_record(23, 1, 7, os.urandom(40), 0x0303))),
                ("dropped_bad_epoch", from_peer(_record(23, 3, 8, os.urandom(40)))),
                ("dropped_bad_auth", from_peer(_record(23, 1, 9, os.urandom(40)))),
                ("dropped_replay", from_peer(_record(23, 1, 0, os.urandom(40)))),
                ("cookie_malformed", from_stranger(_record(22, 0, 0, b"\x01" + bytes(30)))),
            ]
            seen = {}
            for name, send in cases:
                before = server.counters[name]
                await send()
                deadline = time.monotonic() + 5
                while server.counters[name] == before and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                seen[name] = server.counters[name] - before
        print(f"\n[lifecycle] drop counters: {seen}")
        assert all(v == 1 for v in seen.values()), seen
        assert await _round_trip(session, b"after") == b"AFTER"
        await session.close()


@pytest.fixture(autouse=True)
def _enough_file_descriptors() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= 512, f"these tests open a few hundred sockets; ulimit -n is {soft}"
