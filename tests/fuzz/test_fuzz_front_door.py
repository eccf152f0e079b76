"""Hypothesis drives a server's front door through sequences of hellos (with
and without cookies, with sequence numbers that leave no room, mutated),
garbage, real clients and the passing of time, from a handful of sources in
two prefixes, against small limits: per-source buckets run dry, the half-open
table evicts, handshakes stall out.

The server runs on a fake clock and a fake transport (its timers fire when
the test advances time). Nothing may raise, no internal error may occur, and
the admission state must agree with the server's peers after every step.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dtls_pair import client_config, server_config
from front_door import cookie_of, hello_datagram, psk_hello
from fuzz_settings import SETTINGS
from hypothesis import event, given
from hypothesis import strategies as st

from dtlsfast.connection import DtlsConnection
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.constants import ExtensionType
from dtlsfast.server import DtlsServer, ServerLimits
from dtlsfast.session import DtlsSession

LIMITS = ServerLimits(
    max_handshakes=4,
    max_handshakes_per_address=2,
    max_handshakes_per_prefix=3,
    handshake_stall_timeout=3.0,
    hello_rate_per_address=1.0,
    hello_burst_per_address=3,
    hello_rate_per_prefix=2.0,
    hello_burst_per_prefix=5,
    crypto_rate=1.0,
    crypto_burst=10,
    crypto_share_per_prefix=0.5,
    hello_verify_rate_per_address=1.0,
    hello_verify_burst_per_address=2,
    source_table_size=3,
    hello_verify_table_size=2,
)
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "10.0.1.1", "10.0.2.1"]
PORTS = [1000, 1001, 1002]
#: (message_seq, record sequence number) of a cookie'd hello.
SEQUENCES = [(1, 1), (1, 2**48 - 1), (1, 2**48 - 3), (65535, 1), (65519, 1), (2, 7)]


#: The states the search is meant to reach (see the statistics).
REACHED = (
    "handshakes_completed",
    "handshakes_evicted",
    "handshakes_stalled",
    "handshakes_restarted",
    "dropped_hello_rate_address",
    "dropped_hello_rate_prefix",
    "dropped_handshakes_per_address",
    "dropped_handshakes_per_prefix",
    "dropped_crypto_share",
    "dropped_crypto_budget",
    "cookie_sequence_too_high",
    "cookie_hello_verify_throttled",
)


class _Handle:
    """asyncio.TimerHandle's part the server uses."""

    def __init__(self, at: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.at, self.callback, self.args, self.cancelled = at, callback, args, False

    def when(self) -> float:
        return self.at

    def cancel(self) -> None:
        self.cancelled = True


class _Clock:
    """The parts of an event loop the server uses, on a clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._timers: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> _Handle:
        handle = _Handle(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> _Handle:
        return self.call_at(self.now + delay, callback, *args)

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            when, _, handle = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not handle.cancelled:
                handle.callback(*handle.args)
        self.now = until


class _Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((bytes(data), addr))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5684) if name == "sockname" else default

    def close(self) -> None:
        pass

    def take(self, addr: Any) -> list[bytes]:
        mine = [d for d, a in self.sent if a == addr]
        self.sent = [(d, a) for d, a in self.sent if a != addr]
        return mine


class _Echo:
    def session_opened(self, session: DtlsSession) -> None:
        session.set_receiver(lambda data, s: s.send_nowait(data))


def _ecdhe_psk(hello: Any) -> Any:
    return replace(
        hello,
        cipher_suites=[0xCCAC],
        extensions=[
            *hello.extensions,
            (ExtensionType.SUPPORTED_GROUPS, ext.encode_supported_groups([29])),
        ],
    )


sources = st.tuples(st.sampled_from(HOSTS), st.sampled_from(PORTS))
actions = st.one_of(
    st.tuples(st.just("cookied"), sources, st.sampled_from(SEQUENCES), st.booleans()),
    st.tuples(st.just("mutated"), sources, st.integers(14, 200), st.integers(0, 255)),
    st.tuples(st.just("bad_cookie"), sources, st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("garbage"), sources, st.binary(max_size=80)),
    st.tuples(st.just("client"), sources, st.integers(1, 4)),
    st.tuples(st.just("ecdhe_burst"), st.sampled_from(HOSTS)),
    st.tuples(st.just("advance"), st.sampled_from([0.01, 0.5, 1.5, 4.0, 20.0])),
)


class _Run:
    def __init__(self, server: DtlsServer, clock: _Clock, transport: _Transport) -> None:
        self.server, self.clock, self.transport = server, clock, transport
        self.clients: dict[Any, DtlsConnection] = {}

    def deliver(self, data: bytes, addr: Any) -> None:
        self.server.datagram_received(data, addr)

    def cookied(self, addr: Any, message_seq: int, record_seq: int, ecdhe: bool) -> bytes | None:
        hello = _ecdhe_psk(psk_hello()) if ecdhe else psk_hello()
        self.transport.take(addr)
        self.deliver(hello_datagram(hello), addr)
        cookie = next(filter(None, map(cookie_of, self.transport.take(addr))), None)
        if cookie is None:
            return None
        datagram = hello_datagram(replace(hello, cookie=cookie), message_seq, record_seq)
        self.deliver(datagram, addr)
        return datagram

    def client(self, addr: Any, rounds: int) -> None:
        conn = self.clients.get(addr)
        if conn is None or conn.closed:
            conn = self.clients[addr] = DtlsConnection(client_config())
            conn.connect(self.clock.now)
        for _ in range(rounds):
            for datagram in conn.datagrams_to_send(self.clock.now):
                self.deliver(datagram, addr)
            for datagram in self.transport.take(addr):
                conn.receive_datagram(datagram, self.clock.now)
            conn.handle_timer(self.clock.now)
            while conn.next_event() is not None:
                pass
            if conn.established:
                conn.send(b"ping")

    def act(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "cookied":
            _, addr, (message_seq, record_seq), ecdhe = action
            self.cookied(addr, message_seq, record_seq, ecdhe)
        elif kind == "mutated":
            _, addr, position, value = action
            datagram = self.cookied(addr, 1, 1, False)
            if datagram is not None:
                mutated = bytearray(datagram)
                mutated[position % len(mutated)] = value
                self.deliver(bytes(mutated), addr)
        elif kind == "bad_cookie":
            _, addr, cookie = action
            self.deliver(hello_datagram(replace(psk_hello(), cookie=cookie), 1, 1), addr)
        elif kind == "garbage":
            _, addr, data = action
            self.deliver(data, addr)
        elif kind == "ecdhe_burst":  # more key generations than the prefix's share
            for port in PORTS:
                self.cookied((action[1], port), 1, 1, True)
        elif kind == "client":
            _, addr, rounds = action
            self.client(addr, rounds)
        else:
            self.clock.advance(action[1])

    def check(self) -> None:
        server = self.server
        counters = server.counters
        assert counters["dtls_internal_errors"] == 0, counters
        admission = server._admission
        table = admission.table
        limits = server.limits
        assert len(table) <= limits.max_handshakes
        half_open = {id(p): p for p in server._live() if not p.conn.established and not p.forgotten}
        in_table = {id(e.handle) for e in table}
        assert in_table == set(half_open), (in_table, set(half_open))
        for entry in table:
            assert table.at_address(entry.address) <= limits.max_handshakes_per_address
            assert table.in_prefix(entry.prefix) <= limits.max_handshakes_per_prefix
        for buckets in (
            admission.hello_per_address,
            admission.hello_per_prefix,
            admission.crypto_per_prefix,
        ):
            assert len(buckets) <= limits.source_table_size
        assert counters["cookie_sources_tracked"] <= limits.hello_verify_table_size


async def _run(steps: list[tuple[Any, ...]]) -> None:
    server = DtlsServer(_Echo(), server_config(), LIMITS, 300.0)
    clock = _Clock(asyncio.get_running_loop().time())
    server._loop = clock  # type: ignore[assignment]
    transport = _Transport()
    server.connection_made(transport)  # type: ignore[arg-type]
    run = _Run(server, clock, transport)
    for step in steps:
        run.act(step)
        run.check()
    clock.advance(200.0)  # everything half-open stalls or expires
    run.check()
    counters = server.counters
    assert counters["handshakes_in_progress"] == 0
    for name in REACHED:
        if counters[name]:
            event(name)  # shown by --hypothesis-show-statistics


@SETTINGS
@given(st.lists(actions, min_size=1, max_size=40))
def test_the_front_door_holds_under_any_sequence(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(_run(steps))
