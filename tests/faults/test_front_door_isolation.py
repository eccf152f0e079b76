"""One datagram never costs another peer anything (issue 12, item 1).

A ClientHello with a valid cookie whose record sequence number (2^48-1, -2,
-3) or message_seq (65535) leaves the server no room for its flights used to
make the server's next record overflow: the exception left
``datagram_received``, ``serve_batch`` and the batched transport, and took
the rest of the recvmmsg batch with it (a victim whose requests each
followed such a datagram got 0 to 7 of 100 answered). Such hellos are now
refused by the cookie gate, and, as a rule, any unexpected error while
handling one datagram, timer or sweep fails only the connection it was for
(internal_error), is counted in ``dtls_internal_errors``, is logged at most
once per source a minute, and the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from front_door import (
    PSK,
    PSK_STORE,
    cookie_of,
    drain,
    echo,
    hello_datagram,
    psk_hello,
    udp_socket,
    wait_for,
)

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.batch_transport import open_batch_transport
from dtlsfast.connection import DtlsConnection
from dtlsfast.server import DtlsServer, ServerLimits

REQUESTS_PER_POISON = 25
#: How long the victim waits for each answer (an unanswered request costs this).
ANSWER_WAIT = 0.2
POISONS = [
    ("record seq 2^48-1", 0, 2**48 - 1),
    ("record seq 2^48-2", 0, 2**48 - 2),
    ("record seq 2^48-3", 0, 2**48 - 3),
    ("message_seq 65535", 65535, 1),
]
ATTACKER = "127.0.0.9"


async def _cookie_hello(server: DtlsServer, sock: Any, message_seq: int, record_seq: int) -> bytes:
    """The attacker's hello with a valid cookie, at the given sequence numbers."""
    hello = psk_hello()
    sock.sendto(hello_datagram(hello), server.address)
    loop = asyncio.get_running_loop()
    reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
    cookie = cookie_of(reply)
    assert cookie is not None, reply
    return hello_datagram(replace(hello, cookie=cookie), message_seq, record_seq)


async def _answered_after(
    poison: bytes, attacker: Any, server: DtlsServer, victim: DtlsSession
) -> int:
    """Send the poison and then one victim request, so that both land in the
    same read of the server's socket; how many of the requests were answered."""
    answered = 0
    for i in range(REQUESTS_PER_POISON):
        attacker.sendto(poison, server.address)
        request = b"request %d" % i
        victim.send_nowait(request)
        try:
            while await asyncio.wait_for(victim.recv(), ANSWER_WAIT) != request.upper():
                pass  # a late answer to an earlier request
            answered += 1
        except TimeoutError:
            pass
    return answered


async def test_poisoned_hellos_cost_the_victim_nothing() -> None:
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        assert server._batched, "this test is about the batched transport (Linux)"
        victim = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
        victim.send_nowait(b"join the table")
        assert await asyncio.wait_for(victim.recv(), 5) == b"JOIN THE TABLE"
        assert server.counters["sessions_in_table"] == 1
        attacker = udp_socket(ATTACKER)
        rows = []
        try:
            for name, message_seq, record_seq in POISONS:
                poison = await _cookie_hello(server, attacker, message_seq, record_seq)
                rows.append((name, await _answered_after(poison, attacker, server, victim)))
                drain(attacker)
        finally:
            attacker.close()
            await victim.close()
        counters = server.counters
    total = sum(answered for _, answered in rows)
    print(
        f"\n[isolation] victim requests each sent right after a poisoned ClientHello with a "
        f"valid cookie, in the same batch: {total} of {len(rows) * REQUESTS_PER_POISON} "
        f"answered ({', '.join(f'{name}: {n}' for name, n in rows)}); refused by the gate "
        f"{counters['cookie_sequence_too_high']}, internal errors "
        f"{counters['dtls_internal_errors']}, handshakes started {counters['handshakes_started']}"
    )
    assert total == len(POISONS) * REQUESTS_PER_POISON
    assert counters["cookie_sequence_too_high"] == len(POISONS) * REQUESTS_PER_POISON
    assert counters["handshakes_started"] == 1  # the victim's: the poison leaves no state
    assert counters["dtls_internal_errors"] == 0


def _faulty(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of DtlsConnection, raising for connections of ATTACKER: a bug
    that only that peer's input reaches."""

    def wrapped(self: DtlsConnection, *args: Any) -> Any:
        if isinstance(self.peer, tuple) and self.peer[0] == ATTACKER:
            raise RuntimeError("a bug only the attacker's datagrams reach")
        return method(self, *args)

    return wrapped


def _is_internal_error_alert(datagram: bytes) -> bool:
    # An epoch-0 alert record: level fatal (2), internal_error (80).
    return datagram[0] == 21 and datagram[13:15] == b"\x02\x50"


def _error_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        r.name == "dtlsfast.server" and r.levelno == logging.ERROR and ATTACKER in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("batch_io", [True, False], ids=["batched", "asyncio"])
async def test_an_unexpected_error_fails_only_its_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, batch_io: bool
) -> None:
    monkeypatch.setattr(
        DtlsConnection, "receive_datagram", _faulty(DtlsConnection.receive_datagram)
    )
    caplog.set_level(logging.ERROR, logger="dtlsfast.server")
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, batch_io=batch_io
    ) as server:
        victim = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
        attacker = udp_socket(ATTACKER)
        try:
            poison = await _cookie_hello(server, attacker, 1, 1)
            answered = await _answered_after(poison, attacker, server, victim)
            await asyncio.sleep(0.05)
            replies = drain(attacker)
            # Still served after it all.
            victim.send_nowait(b"after")
            assert await asyncio.wait_for(victim.recv(), 5) == b"AFTER"
        finally:
            attacker.close()
            await victim.close()
        counters = server.counters
    alerts = sum(map(_is_internal_error_alert, replies))
    lines = _error_lines(caplog)
    print(
        f"\n[isolation] {REQUESTS_PER_POISON} ClientHellos that hit a bug, each followed by a "
        f"victim request ({'recvmmsg batches' if batch_io else 'asyncio transport'}): "
        f"{answered} answered; dtls_internal_errors {counters['dtls_internal_errors']}, "
        f"internal_error alerts to the sender {alerts}, log lines for it {lines}, "
        f"handshakes in progress {counters['handshakes_in_progress']}"
    )
    assert answered == REQUESTS_PER_POISON
    assert counters["dtls_internal_errors"] == REQUESTS_PER_POISON
    assert alerts == REQUESTS_PER_POISON
    assert lines == 1, "logged once per source a minute"
    assert counters["handshakes_in_progress"] == 0


async def test_a_timer_that_raises_fails_only_its_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(DtlsConnection, "handle_timer", _faulty(DtlsConnection.handle_timer))
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        attacker = udp_socket(ATTACKER)
        try:
            attacker.sendto(await _cookie_hello(server, attacker, 1, 1), server.address)
            assert await wait_for(lambda: server.counters["handshakes_in_progress"] == 1)
            # The server's retransmission timer (1 s) fires and hits the bug.
            assert await wait_for(lambda: server.counters["dtls_internal_errors"] == 1, 3)
            await asyncio.sleep(0.05)
            alerts = sum(map(_is_internal_error_alert, drain(attacker)))
        finally:
            attacker.close()
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
        session.send_nowait(b"served")
        assert await asyncio.wait_for(session.recv(), 5) == b"SERVED"
        await session.close()
        counters = server.counters
    print(
        f"\n[isolation] a retransmission timer that raises: dtls_internal_errors "
        f"{counters['dtls_internal_errors']}, internal_error alerts {alerts}, handshakes in "
        f"progress {counters['handshakes_in_progress']}; another client served"
    )
    assert alerts == 1
    assert counters["handshakes_in_progress"] == 0


class _Listener:
    """A SessionListener whose close callback raises for the first session."""

    def __init__(self) -> None:
        self.opened = 0

    def session_opened(self, session: DtlsSession) -> None:
        self.opened += 1
        if self.opened == 1:
            session.set_close_callback(self._raise)

    def _raise(self, session: DtlsSession) -> None:
        raise RuntimeError("an application callback with a bug")


async def test_the_sweep_goes_on_after_an_error() -> None:
    """The idle sweep closes a session whose application callback raises;
    sessions that go idle later are still closed (before, the sweep stopped)."""
    limits = ServerLimits(idle_timeout=0.6)
    listener = _Listener()
    async with await dtlsfast.serve(
        listener, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        first = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
        assert await wait_for(lambda: server.counters["sessions_idle_closed"] == 1, 5)
        later = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
        closed_later = await wait_for(lambda: server.counters["sessions_idle_closed"] == 2, 5)
        counters = server.counters
        await first.close()
        await later.close()
    print(
        f"\n[isolation] idle sweep meets a raising close callback: sessions idle-closed "
        f"{counters['sessions_idle_closed']}, dtls_internal_errors "
        f"{counters['dtls_internal_errors']}"
    )
    assert closed_later, "the sweep stopped after the error"
    assert counters["dtls_internal_errors"] == 1


class _RaisingProtocol:
    """A datagram protocol that raises on b"poison" and keeps everything else."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def error_received(self, exc: Exception) -> None:
        pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data == b"poison":
            raise RuntimeError("a protocol bug")
        self.received.append(data)


async def test_the_batched_transport_isolates_each_datagram(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="dtlsfast.batch_transport")
    protocol = _RaisingProtocol()
    transport = await open_batch_transport(protocol, "127.0.0.1", 0)
    assert transport is not None, "batch I/O is available on Linux"
    sender = udp_socket()
    try:
        address = transport.get_extra_info("sockname")
        for i in range(50):
            sender.sendto(b"poison", address)
            sender.sendto(b"good %d" % i, address)
        await wait_for(lambda: len(protocol.received) == 50, 2)
    finally:
        sender.close()
        transport.close()
    lines = sum(r.name == "dtlsfast.batch_transport" for r in caplog.records)
    print(
        f"\n[isolation] 50 datagrams that raise in the protocol, each before a good one: "
        f"{len(protocol.received)} good ones delivered, protocol_errors "
        f"{transport.protocol_errors}, log lines {lines}"
    )
    assert protocol.received == [b"good %d" % i for i in range(50)]
    assert transport.protocol_errors == 50
    assert lines == 1
