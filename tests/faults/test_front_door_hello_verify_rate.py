"""A source that keeps failing the cookie gets a bounded number of
HelloVerifyRequests a second (issue 12, item 9, second half).

mbedTLS 2.28 with a ticket once answered every HelloVerifyRequest with a
cookie that could not verify, 2,200 round trips a second. The gate now
answers failing cookies from one source address from a token bucket
(``hello_verify_rate_per_address``). The table of those buckets is filled
before any cookie, by addresses that may be spoofed, so it is bounded and,
once full, newcomers share one bucket rather than evicting a tracked
source: a spoofed flood neither frees a looping source of its bound nor
grows the table. A ClientHello without a cookie is always answered, so the
same flood sent in a genuine client's name cannot lock that client out.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import replace

from front_door import (
    PSK,
    PSK_STORE,
    close_all,
    cookie_of,
    drain,
    echo,
    hello_datagram,
    psk_hello,
    udp_socket,
)

import dtlsfast
from dtlsfast.server import DtlsServer, ServerLimits

LOOP_SECONDS = 2.0
#: ServerLimits.hello_verify_table_size's default, and more sources than it.
TABLE = 4096
FLOOD_SOURCES = 5000
ROUNDS = 3


def _bad_cookie_hello() -> bytes:
    return hello_datagram(replace(psk_hello(), cookie=os.urandom(32)), 1, 1)


async def _loop_on_bad_cookies(
    server: DtlsServer, sock: socket.socket, seconds: float
) -> tuple[int, int]:
    """Answer every HelloVerifyRequest with a hello whose cookie fails, at
    once, as the looping client did; (hellos sent, HelloVerifyRequests got)."""
    loop = asyncio.get_running_loop()
    sent = answers = 0
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        sock.sendto(_bad_cookie_hello(), server.address)
        sent += 1
        try:
            reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.02)
        except TimeoutError:
            continue
        answers += cookie_of(reply) is not None
    return sent, answers


async def test_a_source_looping_on_bad_cookies_is_bounded() -> None:
    limits = ServerLimits()
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        looper = udp_socket("127.0.0.5")
        flood = [udp_socket(f"127.60.{i // 250}.{i % 250 + 1}") for i in range(FLOOD_SOURCES)]
        try:
            sent, answers = await _loop_on_bad_cookies(server, looper, LOOP_SECONDS)
            looped = time.monotonic()
            # A spoofed flood of failing cookies from many more sources than
            # the table holds.
            throttled_before = server.counters["cookie_hello_verify_throttled"]
            for _ in range(ROUNDS):
                for start in range(0, FLOOD_SOURCES, 500):
                    for sock in flood[start : start + 500]:
                        sock.sendto(_bad_cookie_hello(), server.address)
                    await asyncio.sleep(0.01)
            flood_answers = sum(cookie_of(d) is not None for s in flood for d in drain(s))
            tracked = server.counters["cookie_sources_tracked"]
            flood_throttled = server.counters["cookie_hello_verify_throttled"] - throttled_before
            shared = server._gate.hello_verify_limit.overflowed  # type: ignore[union-attr]
            # The looping source is still held to its rate, not back to a full burst.
            started = time.monotonic()
            sent_after, answers_after = await _loop_on_bad_cookies(server, looper, 1.0)
            after_for = time.monotonic() - started
            since_loop = time.monotonic() - looped
            # A newcomer that follows the protocol is served all along.
            session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
            session.send_nowait(b"served")
            assert await asyncio.wait_for(session.recv(), 5) == b"SERVED"
            await session.close()
        finally:
            looper.close()
            close_all(flood)
        counters = server.counters
    bound = limits.hello_verify_burst_per_address + limits.hello_verify_rate_per_address * (
        LOOP_SECONDS + 0.2
    )
    bound_after = limits.hello_verify_rate_per_address * since_loop + 1
    print(
        f"\n[hello-verify] a source answering every HelloVerifyRequest with a failing cookie "
        f"for {LOOP_SECONDS:.0f} s: {sent} hellos, {answers} HelloVerifyRequests "
        f"({answers / LOOP_SECONDS:.1f}/s; bound {bound:.0f}); then {ROUNDS * FLOOD_SOURCES} "
        f"failing cookies from {FLOOD_SOURCES} other sources: {flood_answers} answered, "
        f"{flood_throttled} throttled, {shared} charged to the shared bucket while the table "
        f"was full of sources still owing (table {tracked} of {TABLE}); the looping source "
        f"afterwards: {answers_after} answers "
        f"to {sent_after} hellos in {after_for:.1f} s; throttled in all "
        f"{counters['cookie_hello_verify_throttled']}"
    )
    assert answers <= bound
    assert tracked <= TABLE
    assert answers_after <= bound_after, "the flood freed the looping source of its bound"
    # Past a table full of sources that still owe, newcomers shared one bucket.
    assert shared > 0 and flood_throttled > 0


async def test_a_flood_in_a_clients_name_does_not_lock_it_out() -> None:
    """Failing cookies "from" a client's address (on loopback, sent from it)
    use up that address's answers to failing cookies, never its answers to
    hellos without one: the client still gets its cookie and its session."""
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        spoofer = udp_socket("127.0.0.7")
        try:
            for _ in range(500):
                spoofer.sendto(_bad_cookie_hello(), server.address)
            await asyncio.sleep(0.1)
            drain(spoofer)
            throttled = server.counters["cookie_hello_verify_throttled"]
            started = time.monotonic()
            session = await dtlsfast.connect(
                "127.0.0.1", server.port, psk=PSK, handshake_timeout=5, local_addr=("127.0.0.7", 0)
            )
            elapsed = time.monotonic() - started
            session.send_nowait(b"still me")
            assert await asyncio.wait_for(session.recv(), 5) == b"STILL ME"
            await session.close()
        finally:
            spoofer.close()
    print(
        f"\n[hello-verify] 500 failing cookies in a client's name ({throttled} throttled): the "
        f"client's own handshake and echo took {elapsed * 1000:.0f} ms"
    )
    assert throttled > 0
    assert elapsed < 1.0
