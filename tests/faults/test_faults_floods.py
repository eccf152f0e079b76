"""Floods at a running dtlsfast server, each with a figure.

(a) ClientHellos without cookies from thousands of source ports leave no
per-peer state and bounded memory; (b) the HelloVerifyRequest never
amplifies; (c) half-finished handshakes are capped and stall out; (d) a peer
sending records that fail authentication far above the MAC-error filter's
rate is throttled while others are served, and forgers of a session's CID
from elsewhere are throttled by source, in a bounded table of sources.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable

import pytest
from front_door import wait_for
from socket_client import SocketClient

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.cookie_gate import MAX_FRAGMENTED_HELLOS
from dtlsfast.handshake.constants import DTLS_1_0, DTLS_1_2, HandshakeType
from dtlsfast.handshake.messages import ClientHello, encode_handshake
from dtlsfast.server import DtlsServer, ServerLimits

PSK_STORE = {"CoAP": b"esp32c3_key"}
PSK = ("CoAP", "esp32c3_key")
BACKEND = load_backend("rust")

FLOOD_HELLOS = 5000
FLOOD_BATCH = 100
FRAGMENT_FLOOD = 1000


async def _echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data.upper())


@pytest.fixture
async def server() -> AsyncIterator[DtlsServer]:
    async with await dtlsfast.serve(_echo, "127.0.0.1", 0, psk_store=PSK_STORE) as srv:
        yield srv


async def _echo_round_trip(session: DtlsSession, data: bytes) -> bytes:
    await session.send(data)
    return await asyncio.wait_for(session.recv(), 5)


# -- crafting ClientHellos -------------------------------------------------------


def _hello_message(
    *,
    session_id: bytes = b"",
    cookie: bytes = b"",
    suites: int = 1,
    extensions_bytes: int = 0,
    message_seq: int = 0,
) -> bytes:
    """A ClientHello handshake message; ``extensions_bytes`` of padding (0x0015) if > 0."""
    hello = ClientHello(
        client_version=DTLS_1_2,
        random=os.urandom(32),
        session_id=session_id,
        cookie=cookie,
        cipher_suites=[0xC0A8 + i for i in range(suites)],
    )
    body = hello.encode()
    if extensions_bytes:
        pad = max(0, extensions_bytes - 4)
        ext = b"\x00\x15" + pad.to_bytes(2, "big") + bytes(pad)
        body += len(ext).to_bytes(2, "big") + ext
    return encode_handshake(HandshakeType.CLIENT_HELLO, message_seq, body)


def _record(payload: bytes, seq: int = 0, epoch: int = 0, content_type: int = 22) -> bytes:
    return bytes(BACKEND.encode_record(content_type, DTLS_1_0, epoch, seq, payload))


def _fragments(message: bytes, cut: int) -> list[bytes]:
    """The handshake ``message`` as two fragments: body[:cut] and body[cut:]."""
    header, body = message[:12], message[12:]
    msg_type, length, seq = header[0], header[1:4], header[4:6]
    out = []
    for offset, piece in ((0, body[:cut]), (cut, body[cut:])):
        out.append(
            bytes([msg_type])
            + length
            + seq
            + offset.to_bytes(3, "big")
            + len(piece).to_bytes(3, "big")
            + piece
        )
    return out


def _real_client_hello() -> bytes:
    conn = DtlsConnection(DtlsConfiguration.client(psk=PSK))
    conn.connect(0.0)
    (datagram,) = conn.datagrams_to_send(0.0)
    return datagram


# -- (a) cookie-less hellos from thousands of source ports -----------------------


async def _send_from_many_ports(
    server: DtlsServer,
    datagram: bytes,
    count: int,
    seen: Callable[[], int],
    ports: set[int] | None = None,
) -> tuple[int, int]:
    """Send ``datagram`` once from each of ``count`` fresh sockets, in batches; wait
    until ``seen()`` (a server count) rose by each batch; return (replies, max reply size).

    The source ports used go into ``ports`` (the kernel reuses closed ones)."""
    replies = largest = 0
    for start in range(0, count, FLOOD_BATCH):
        n = min(FLOOD_BATCH, count - start)
        target = seen() + n
        socks = []
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.setblocking(False)
                s.bind(("127.0.0.1", 0))
                if ports is not None:
                    ports.add(s.getsockname()[1])
                s.sendto(datagram, server.address)
            assert await wait_for(lambda t=target: seen() >= t), (
                f"the server saw {seen()} of {target}: {server.counters}"
            )
            await asyncio.sleep(0)  # replies are sent synchronously; let them land
            for s in socks:
                try:
                    reply = s.recv(4096)
                except BlockingIOError:
                    continue
                replies += 1
                largest = max(largest, len(reply))
        finally:
            for s in socks:
                s.close()
    return replies, largest


def answered_in_batch(server: DtlsServer) -> int:
    """ClientHellos without a cookie that the session table's batch answered."""
    return int(server._table.totals["hellos_answered"])


def _hvr_sent(server: DtlsServer) -> Callable[[], int]:
    # The public figure: the gate's own count and the HelloVerifyRequests the
    # session table's batch answered with it.
    return lambda: server.counters["cookie_hello_verify_sent"]


async def test_cookieless_hello_flood_leaves_no_state(server: DtlsServer) -> None:
    hello = _real_client_hello()
    await _send_from_many_ports(server, hello, FLOOD_BATCH, _hvr_sent(server))  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        replies, largest = await _send_from_many_ports(
            server, hello, FLOOD_HELLOS, _hvr_sent(server)
        )
        elapsed = time.monotonic() - started
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    counters = server.counters
    per_hello = (after - before) / FLOOD_HELLOS
    print(
        f"\n[flood] {FLOOD_HELLOS} cookie-less ClientHellos ({len(hello)} B) from "
        f"{FLOOD_HELLOS} ports in {elapsed:.1f} s: {replies} HelloVerifyRequests "
        f"(largest {largest} B), retained {after - before} B = {per_hello:.2f} B/hello, "
        f"peak {peak - before} B above start; peers={len(server._peers)} "
        f"in_progress={counters['handshakes_in_progress']}"
    )
    assert replies == FLOOD_HELLOS
    assert largest <= len(hello)
    assert counters["cookie_hello_verify_sent"] == FLOOD_HELLOS + FLOOD_BATCH
    # Each answered in the Rust batch, none in the server's Python.
    assert answered_in_batch(server) == FLOOD_HELLOS + FLOOD_BATCH
    assert counters["handshakes_in_progress"] == 0
    assert counters["sessions_open"] == 0
    assert len(server._peers) == 0
    assert len(server._gate._fragments) == 0
    # Nothing per peer is kept: what remains is noise (counters, caches), not O(N).
    assert after - before < 64 * 1024, f"{per_hello:.1f} B retained per hello"
    # The server still serves a legitimate client afterwards.
    session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
    assert await _echo_round_trip(session, b"after the flood") == b"AFTER THE FLOOD"
    await session.close()


async def test_fragmented_hello_flood_is_bounded(server: DtlsServer) -> None:
    """First fragments that never complete fill only the gate's small shared pool."""
    first, _ = _fragments(_hello_message(extensions_bytes=200), 100)
    datagram = _record(first)
    gate = server._gate

    def buffered() -> int:
        return gate.counters["fragments_buffered"]

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ports: set[int] = set()
        replies, _ = await _send_from_many_ports(server, datagram, FRAGMENT_FLOOD, buffered, ports)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    print(
        f"\n[flood] {FRAGMENT_FLOOD} first fragments of ClientHellos ({len(datagram)} B) from "
        f"{FRAGMENT_FLOOD} ports: pool holds {len(gate._fragments)} "
        f"(max {MAX_FRAGMENTED_HELLOS}), evicted {gate.counters['fragment_pool_evicted']}, "
        f"retained {after - before} B for the full pool"
    )
    assert replies == 0
    assert len(gate._fragments) == MAX_FRAGMENTED_HELLOS
    assert gate.counters["fragments_buffered"] == FRAGMENT_FLOOD
    # One pool entry per source address; a port the kernel reused is the same
    # peer again if its entry is still in the pool.
    evicted = gate.counters["fragment_pool_evicted"]
    assert len(ports) - MAX_FRAGMENTED_HELLOS <= evicted <= FRAGMENT_FLOOD - MAX_FRAGMENTED_HELLOS
    assert server.counters["handshakes_in_progress"] == 0 and len(server._peers) == 0
    # The pool's bound, not the flood's size, bounds memory (under ~3 KiB per entry).
    assert after - before < MAX_FRAGMENTED_HELLOS * 3 * 1024


# -- (b) no amplification --------------------------------------------------------


async def _reply_to(server: DtlsServer, datagram: bytes) -> bytes | None:
    """Send ``datagram`` from a fresh port; the reply, or None once the gate decided."""
    gate = server._gate

    def decisions() -> int:
        # The gate's verdicts in Python and those the session table's batch
        # answered with it (ClientHellos without a cookie).
        return sum(gate.counters.values()) + len(gate._fragments) + answered_in_batch(server)

    decided = decisions()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
        s.sendto(datagram, server.address)
        assert await wait_for(lambda: decisions() > decided)
        await asyncio.sleep(0)
        try:
            return s.recv(4096)
        except BlockingIOError:
            return None


def _amplification_cases() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = [("real dtlsfast ClientHello", _real_client_hello())]
    for sid in (0, 1, 8, 16, 32):
        for suites in (1, 2, 4, 16):
            cases.append(
                (
                    f"minimal sid={sid} suites={suites}",
                    _record(_hello_message(session_id=bytes(sid), suites=suites)),
                )
            )
    for ext in (4, 16, 64, 256, 1024, 3000):
        cases.append((f"padded extensions={ext}", _record(_hello_message(extensions_bytes=ext))))
    for cookie in (1, 16, 31, 32, 33, 255):
        cases.append((f"wrong cookie of {cookie} B", _record(_hello_message(cookie=bytes(cookie)))))
    return cases


async def test_hello_verify_request_never_amplifies(server: DtlsServer) -> None:
    rows = []
    for name, datagram in _amplification_cases():
        reply = await _reply_to(server, datagram)
        rows.append((name, len(datagram), None if reply is None else len(reply)))
    answered = [(n, q, r) for n, q, r in rows if r is not None]
    worst = max(r / q for _, q, r in answered)
    print(
        f"\n[amplification] {len(rows)} ClientHellos of {min(q for _, q, _ in rows)}.."
        f"{max(q for _, q, _ in rows)} B: {len(answered)} answered, worst reply/request "
        f"ratio {worst:.3f}; refused {server._gate.counters['amplification_refused']}"
    )
    for name, q, r in rows:
        print(f"  {name:32} request {q:5} B  reply {r if r is not None else '-':>5} B")
    assert all(r <= q for _, q, r in answered), rows
    assert len(answered) == len(rows), "every well-formed ClientHello gets an answer"


async def test_fragmented_hello_with_a_small_last_fragment(server: DtlsServer) -> None:
    """The amplification budget of a fragmented ClientHello is every datagram it
    came in: a last fragment smaller than the HelloVerifyRequest still gets one."""
    message = _hello_message(extensions_bytes=60)
    first, last = _fragments(message, len(message) - 12 - 2)
    small = _record(last, seq=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
        s.sendto(_record(first), server.address)
        s.sendto(small, server.address)
        assert await wait_for(lambda: server._gate.counters["hello_verify_sent"] == 1)
        await asyncio.sleep(0)
        reply = s.recv(4096)
    assert len(reply) > len(small), "the test needs a last fragment smaller than the reply"
    assert len(reply) <= len(_record(first)) + len(small)
    assert server._gate.counters["amplification_refused"] == 0
    assert len(server._gate._fragments) == 0


# -- (c) half-finished handshakes are capped and stall out ---------------------------


async def test_half_finished_handshakes_are_capped_and_stall_out() -> None:
    """Past the cap the handshake that waited longest gives way (no newcomer
    with a valid cookie is refused), and silent ones go after the stall timeout."""
    limits = ServerLimits(
        max_handshakes=64,
        max_handshakes_per_address=1000,
        max_handshakes_per_prefix=1000,
        handshake_stall_timeout=2.0,
        hello_burst_per_address=1000,  # every client is on 127.0.0.1
        hello_burst_per_prefix=1000,
    )
    clients = 300
    async with await dtlsfast.serve(
        _echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        started = time.monotonic()
        sockets = [SocketClient(server.address) for _ in range(clients)]
        tracemalloc.start()
        try:
            stalled = []
            for start in range(0, clients, 50):  # batches the socket buffer holds
                batch = sockets[start : start + 50]
                stalled += await asyncio.gather(*(c.send_cookie_hello() for c in batch))
            # Every cookie ClientHello started a handshake; past the cap each
            # evicted the one that had waited longest.
            cookied = sum(stalled)  # the clients that got their cookie in time
            assert await wait_for(lambda: server.counters["handshakes_started"] == cookied), (
                server.counters
            )
            counters = server.counters
            gc.collect()
            full = tracemalloc.get_traced_memory()[0]
            assert await wait_for(
                lambda: server.counters["handshakes_stalled"] == limits.max_handshakes, within=10
            )
            stalled_after = time.monotonic() - started
            gc.collect()
            # The clients are still alive: what was freed is the server's state.
            held = full - tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
            for c in sockets:
                c.close()
        after = server.counters
        print(
            f"\n[flood] {clients} clients stop after the cookie exchange, cap "
            f"{limits.max_handshakes}: {sum(stalled)} got a HelloVerifyRequest, "
            f"{counters['handshakes_started']} handshakes started, "
            f"{counters['handshakes_evicted']} evicted at the cap, in progress "
            f"{counters['handshakes_in_progress']}, held {held} B "
            f"({held // limits.max_handshakes} B per half-finished handshake); the last "
            f"{after['handshakes_stalled']} stalled out {stalled_after:.1f} s after the start "
            f"(stall timeout {limits.handshake_stall_timeout} s)"
        )
        assert cookied >= 0.9 * clients
        assert counters["handshakes_in_progress"] == limits.max_handshakes
        assert counters["handshakes_evicted"] == cookied - limits.max_handshakes
        assert after["handshakes_in_progress"] == 0 and len(server._peers) == 0
        assert after["handshakes_failed"] == cookied
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
        assert await _echo_round_trip(session, b"room again") == b"ROOM AGAIN"
        await session.close()


# -- (d) a MAC-error filter throttles forged records ------------------------------

FORGED_RECORDS = 20_000
#: A filter scaled down so that a sender in this process is far above its rate
#: (the defaults, tens of thousands a second, are exercised at 5,000 forged
#: records a second in test_faults_forged_records.py).
LOW_FILTER = ServerLimits(
    auth_failure_burst=32,
    auth_failure_rate=200.0,
    auth_failure_table_burst=32,
    auth_failure_table_rate=200.0,
)


def _cid_record(cid: bytes, payload: bytes, seq: int) -> bytes:
    """A tls12_cid record (RFC 9146 §4) of epoch 1 that fails authentication."""
    header = bytes([25, 0xFE, 0xFD, 0, 1]) + seq.to_bytes(6, "big") + cid
    return header + len(payload).to_bytes(2, "big") + payload


@pytest.mark.parametrize(
    "path", ["python-path", "rust-path", "cid-from-elsewhere"], ids=lambda p: str(p)
)
async def test_forged_records_are_throttled_while_others_are_served(path: str) -> None:
    """Without batched I/O a session's records are opened one datagram at a
    time and judged by Python's filter; with it, in the Rust session table's
    batch path; with connection IDs, records naming the session from another
    address are charged to that source. All three throttle a forger far above
    the rate, never close the session, and a throttled source costs the
    genuine peer nothing: it is served during the flood (from elsewhere) or as
    soon as a token is back (from its address)."""
    cid = path == "cid-from-elsewhere"
    async with await dtlsfast.serve(
        _echo,
        "127.0.0.1",
        0,
        psk_store=PSK_STORE,
        limits=LOW_FILTER,
        connection_id=cid,
        batch_io=None if path == "rust-path" else False,
    ) as server:
        await _throttle_forger(server, path)


async def _throttle_forger(server: DtlsServer, path: str) -> None:
    cid = path == "cid-from-elsewhere"
    victim = SocketClient(server.address, connection_id=cid)
    forger = SocketClient(server.address) if cid else victim
    bystander = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=5)
    try:
        await victim.handshake()
        if path == "rust-path":
            assert await victim.echo(b"join") == b"JOIN"
            # The victim and the bystander, each since its handshake.
            assert server.counters["sessions_in_table"] == 2
        limits = server.limits
        counters = server.counters
        before_bad, before_throttled = counters["dropped_bad_auth"], 0
        payload = os.urandom(48)
        started = time.monotonic()
        round_trips = 0

        def judged() -> int:
            c = server.counters
            return c["dropped_bad_auth"] + c["dropped_auth_throttled"] - before_bad

        for seq in range(FORGED_RECORDS):
            if cid:
                assert victim.conn.peer_connection_id is not None
                record = _cid_record(victim.conn.peer_connection_id, payload, 1_000 + seq)
            else:
                record = _record(payload, seq=1_000 + seq, epoch=1, content_type=23)
            forger.sock.sendto(record, server.address)
            if seq % FLOOD_BATCH == FLOOD_BATCH - 1:
                # Let the server drain its socket (the kernel buffer holds a few hundred).
                assert await wait_for(lambda s=seq: judged() > s - FLOOD_BATCH // 2)
            if seq % 1000 == 999:
                # Another peer is served meanwhile; the victim too, if the
                # forger is not at its address.
                got = await _echo_round_trip(bystander, b"still here %d" % seq)
                assert got == b"STILL HERE %d" % seq
                if cid:
                    assert await victim.echo(b"me too %d" % seq) == b"ME TOO %d" % seq
                round_trips += 1
        assert await wait_for(lambda: judged() >= FORGED_RECORDS * 0.95, within=10)
        elapsed = time.monotonic() - started
        counters = server.counters
        opened = counters["dropped_bad_auth"] - before_bad
        throttled = counters["dropped_auth_throttled"] - before_throttled
        if path == "rust-path":
            burst, rate = limits.auth_failure_table_burst, limits.auth_failure_table_rate
        else:
            burst, rate = limits.auth_failure_burst, limits.auth_failure_rate
        budget = burst + rate * elapsed
        print(
            f"\n[flood] {FORGED_RECORDS} forged records ({path}) at "
            f"{FORGED_RECORDS / elapsed:.0f}/s against a filter of {rate:.0f}/s "
            f"in {elapsed:.1f} s: {opened} tried and failed authentication (budget "
            f"{budget:.0f}), {throttled} dropped unopened; {round_trips} echo round trips of "
            f"another peer{' and of the victim' if cid else ''} served meanwhile; sessions "
            f"open {counters['sessions_open']}"
        )
        assert opened <= budget + 1
        assert throttled >= FORGED_RECORDS * 0.95 - opened
        assert counters["sessions_open"] == 2, "the forger cannot close the session"
        if cid:
            assert counters["auth_filter_sources"] == 1  # the forger's bucket, not the session's
        # Once a token is back, the genuine peer is served again.
        await asyncio.sleep(1.5 / rate)
        assert await victim.echo(b"genuine") == b"GENUINE"
    finally:
        victim.close()
        forger.close()
        await bystander.close()


async def test_forgers_from_many_hosts_fill_a_bounded_table_of_sources() -> None:
    """Records with a session's CID from 64 hosts (127.0.0.0/8 is loopback):
    the server keeps buckets for at most ``auth_failure_sources`` of them, the
    rest share one, so that spoofing many hosts buys no more than one more
    bucket's worth of openings; the victim is served throughout."""
    limits = ServerLimits(auth_failure_sources=8, auth_failure_burst=4, auth_failure_rate=10.0)
    hosts, per_host = 64, 20
    async with await dtlsfast.serve(
        _echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits, connection_id=True
    ) as server:
        victim = SocketClient(server.address, connection_id=True)
        forgers = []
        try:
            await victim.handshake()
            cid = victim.conn.peer_connection_id
            assert cid is not None
            before = server.counters
            started = time.monotonic()
            for n in range(hosts):
                forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                forgers.append(forger)
                forger.bind((f"127.0.0.{2 + n}", 0))
                for seq in range(per_host):
                    forger.sendto(_cid_record(cid, os.urandom(32), 1_000 + seq), server.address)
                if n % 8 == 7:
                    assert await victim.echo(b"host %d" % n) == b"HOST %d" % n

            def judged() -> int:
                c = server.counters
                return sum(c[k] - before[k] for k in ("dropped_bad_auth", "dropped_auth_throttled"))

            assert await wait_for(lambda: judged() >= hosts * per_host)
            elapsed = time.monotonic() - started
            counters = server.counters
        finally:
            victim.close()
            for forger in forgers:
                forger.close()
        opened = counters["dropped_bad_auth"] - before["dropped_bad_auth"]
        buckets = limits.auth_failure_sources + 1  # and the overflow bucket
        budget = buckets * (limits.auth_failure_burst + limits.auth_failure_rate * elapsed)
        print(
            f"\n[flood] {hosts * per_host} forged CID records from {hosts} hosts in "
            f"{elapsed:.1f} s: {counters['auth_filter_sources']} sources with a bucket (cap "
            f"{limits.auth_failure_sources}), {opened} opened (budget {budget:.0f}), the victim "
            f"served {hosts // 8} times meanwhile"
        )
        assert counters["auth_filter_sources"] == limits.auth_failure_sources
        assert opened <= budget + 1
        assert counters["sessions_open"] == 1
