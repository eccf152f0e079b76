"""The load generator (``dtlsfast.loadgen``, ``dtlsfast bench``) against
in-process servers: dtlsfast's CoAPS and CoAP servers, servers that are
down or have another key, and scripted UDP servers that lose requests,
answer separately or never answer. No assertion on speed."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dtlsfast import loadgen
from dtlsfast.cli import main
from dtlsfast.coap import CoapServer, LightResource
from dtlsfast.coap.dtls import listen_dtls
from dtlsfast.coap.transport import UdpServerTransport
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.loadgen import LoadResult, Progress, run_load
from dtlsfast.server import DtlsServer

PSK = {b"CoAP": b"esp32c3_key"}
JSON_KEYS = {
    "requests",
    "errors",
    "requests_per_second",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "sessions",
    "sessions_established",
    "handshake_failures",
    "handshake_seconds",
    "retransmissions",
    "duration",
    "method",
    "uri",
}


@dataclass
class Seed:
    coap: CoapServer
    light: LightResource
    udp: UdpServerTransport
    dtls: DtlsServer

    def uri(self, path: str = "light", *, secure: bool = True) -> str:
        if secure:
            return f"coaps://127.0.0.1:{self.dtls.port}/{path}"
        return f"coap://127.0.0.1:{self.udp.port}/{path}"


@pytest.fixture
async def seed() -> AsyncIterator[Seed]:
    coap = CoapServer()
    light = LightResource()
    coap.add_resource("light", light)
    udp = await coap.listen_udp("127.0.0.1", 0)
    dtls = await listen_dtls(coap, "127.0.0.1", 0, psk_store=PSK, identity_hint="CoAP")
    try:
        yield Seed(coap, light, udp, dtls)
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


def check_consistent(result: LoadResult) -> None:
    assert result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert sum(result.response_codes.values()) == result.requests
    payload = json.loads(result.to_json())
    assert payload.keys() >= JSON_KEYS


async def test_coaps_sessions_and_window(seed: Seed) -> None:
    seen: list[Progress] = []
    result = await run_load(
        seed.uri(), sessions=4, window=4, duration=1.0, progress=seen.append, progress_interval=0.2
    )
    assert result.sessions_established == 4
    assert result.handshake_failures == 0
    assert result.cipher_suite == "TLS_PSK_WITH_AES_128_CCM_8"
    assert result.requests > 0
    assert result.errors == 0
    assert result.response_codes == {"2.05": result.requests}
    assert result.p50_ms > 0
    assert result.unanswered <= 16
    check_consistent(result)
    assert seen and seen[-1].requests <= result.requests
    # Every session had its own source port: the server saw four peers.
    assert seed.dtls.counters["handshakes_completed"] == 4


async def test_coaps_put_with_payload_and_chosen_suite(seed: Seed) -> None:
    result = await run_load(
        seed.uri(),
        sessions=2,
        window=2,
        duration=0.5,
        method="put",
        payload=b"on",
        ciphers=["TLS_PSK_WITH_AES_128_GCM_SHA256"],
    )
    assert result.cipher_suite == "TLS_PSK_WITH_AES_128_GCM_SHA256"
    assert result.method == "PUT"
    assert result.requests > 0 and result.errors == 0
    assert result.response_codes == {"2.04": result.requests}
    assert seed.light.on


async def test_plain_coap(seed: Seed) -> None:
    result = await run_load(seed.uri(secure=False), sessions=3, window=2, duration=0.5)
    assert result.sessions_established == 3
    assert result.cipher_suite == ""
    assert result.requests > 0 and result.errors == 0
    check_consistent(result)


async def test_ipv6() -> None:
    # The CI machines have ::1 (the batch I/O tests need it too): no skip.
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    udp = await coap.listen_udp("::1", 0)
    dtls = await listen_dtls(coap, "::1", 0, psk_store=PSK, identity_hint="CoAP")
    try:
        for uri in (f"coaps://[::1]:{dtls.port}/light", f"coap://[::1]:{udp.port}/light"):
            result = await run_load(uri, sessions=2, duration=0.3)
            assert result.sessions_established == 2, result.summary()
            assert result.requests > 0 and result.errors == 0, result.summary()
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


async def test_error_responses_are_counted(seed: Seed) -> None:
    result = await run_load(seed.uri("nothing-here"), duration=0.3)
    assert result.requests > 0
    assert result.response_codes == {"4.04": result.requests}
    assert result.error_responses == result.requests == result.errors


async def test_stop_ends_the_run_early(seed: Seed) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    result = await run_load(seed.uri(), sessions=2, duration=30, stop=stop)
    assert result.interrupted
    assert result.duration < 5
    assert result.requests > 0 and result.errors == 0
    # Stopped during the handshakes: nothing is left open, nothing raised.
    stop = asyncio.Event()
    stop.set()
    result = await run_load(seed.uri(), sessions=2, duration=30, stop=stop)
    assert result.interrupted and result.requests == 0


async def test_sessions_closed_by_the_server(seed: Seed) -> None:
    asyncio.get_running_loop().call_later(0.4, seed.dtls.close)
    result = await run_load(seed.uri(), sessions=3, window=2, duration=1.0)
    assert result.sessions_established == 3
    assert result.sessions_lost == 3
    assert result.requests > 0
    assert result.unanswered == 0
    assert result.errors == result.transport_errors <= 6


async def test_wrong_psk_is_reported_not_raised(seed: Seed) -> None:
    result = await run_load(seed.uri(), sessions=3, duration=0.3, key="not-the-key")
    assert result.sessions_established == 0
    assert result.handshake_failures == 3
    assert result.errors == 3
    assert result.requests == 0
    [reason] = result.handshake_failure_reasons
    assert "bad_record_mac" in reason
    check_consistent(result)


async def test_wrong_identity_is_reported(seed: Seed) -> None:
    result = await run_load(seed.uri(), sessions=2, duration=0.3, identity="nobody")
    assert result.handshake_failures == 2 and result.errors == 2


async def test_coaps_server_down() -> None:
    port = await _closed_port()
    result = await run_load(
        f"coaps://127.0.0.1:{port}/light", sessions=2, duration=0.3, handshake_timeout=3
    )
    assert result.sessions_established == 0
    assert result.handshake_failures == 2 and result.errors == 2


async def test_coap_server_down_counts_errors() -> None:
    port = await _closed_port()
    result = await run_load(
        f"coap://127.0.0.1:{port}/light", sessions=2, duration=1.0, request_timeout=0.4
    )
    assert result.requests == 0
    # ICMP port unreachable, unless the kernel's ICMP rate limit swallowed it:
    # then the requests time out.
    assert result.errors > 0
    assert result.errors == result.request_errors == result.transport_errors + result.timeouts


async def test_unknown_suite_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown cipher suite 'TLS_NOPE'"):
        await run_load("coaps://127.0.0.1:9/light", ciphers=["TLS_NOPE"])
    with pytest.raises(ConfigurationError, match="unknown cipher suite"):
        await run_load("coap://127.0.0.1:9/light", ciphers=["TLS_NOPE"])
    with pytest.raises(ConfigurationError, match="unknown method"):
        await run_load("coap://127.0.0.1:9/light", method="FETCHX")


def test_cli_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "coaps://127.0.0.1:9/light", "--ciphers", "TLS_PSK_WITH_AES_128_CCM_9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown cipher suite 'TLS_PSK_WITH_AES_128_CCM_9'" in err
    assert "TLS_PSK_WITH_AES_128_CCM_8" in err  # the message lists the known ones


def test_cli_rejects_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "coap://127.0.0.1:9/", "--sessions", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "coap://127.0.0.1:9/", "--processes", "0"])
    assert "--processes: must be at least 1" in capsys.readouterr().err


def test_percentiles_nearest_rank() -> None:
    stats = loadgen._Stats()
    for value in range(1, 101):  # 1..100 ms, bucketed as on_coap does
        stats.buckets[int(math.log(value * 1000) * loadgen._PER_LOG)] += 1
    for fraction, expected in ((0.5, 50), (0.9, 90), (0.99, 99), (1.0, 100)):
        got = loadgen._percentile(stats.buckets, fraction, 0.1)
        assert got == pytest.approx(expected, rel=5e-4)
    assert loadgen._percentile(stats.buckets, 1.0, 0.0995) == pytest.approx(99.5)
    assert loadgen._percentile([0] * loadgen._BUCKETS, 0.5, 0.0) == 0


def test_request_tail_matches_the_message_codec() -> None:
    from dtlsfast.coap.message import Code, Message, MessageType, OptionNumber
    from dtlsfast.coap.uri import parse_uri

    uri = parse_uri("coap://example.net/a/very-long-path-segment-of-twenty?q=1")
    tail = loadgen._request_tail(uri.options, b"on", 0)
    header = loadgen._HEADER.pack(0x44, Code.PUT, 7, 0x01020304)
    decoded = Message.decode(header + tail)
    assert decoded.type is MessageType.CON and decoded.code == Code.PUT
    assert decoded.message_id == 7 and decoded.token == bytes([1, 2, 3, 4])
    assert decoded.uri_path == ["a", "very-long-path-segment-of-twenty"]
    assert decoded.get_option(OptionNumber.URI_HOST) == b"example.net"
    assert decoded.content_format == 0 and decoded.payload == b"on"


# -- several generator processes ----------------------------------------------


async def test_processes_split_the_sessions_and_merge(
    seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parent merges what the processes send back: keep a copy.
    merged: list[list[loadgen._Outcome]] = []
    merge = loadgen._merge

    def keep(outcomes: list[loadgen._Outcome], start_at: float | None) -> loadgen._Outcome:
        merged.append(list(outcomes))
        return merge(outcomes, start_at)

    monkeypatch.setattr(loadgen, "_merge", keep)
    seen: list[Progress] = []
    result = await run_load(
        seed.uri(),
        sessions=4,
        window=2,
        duration=1.0,
        processes=2,
        progress=seen.append,
        progress_interval=0.2,
    )
    assert result.sessions_established == 4 and result.handshake_failures == 0
    assert result.cipher_suite == "TLS_PSK_WITH_AES_128_CCM_8"
    assert result.requests > 0 and result.errors == 0
    assert result.response_codes == {"2.05": result.requests}
    check_consistent(result)
    assert seed.dtls.counters["handshakes_completed"] == 4
    [outcomes] = merged
    assert [outcome.established for outcome in outcomes] == [2, 2]
    # One histogram over all the requests, and the counts add up.
    assert result.requests == sum(o.stats.requests for o in outcomes) > 0
    assert all(o.stats.requests > 0 for o in outcomes)
    assert result.requests == sum(sum(o.stats.buckets) for o in outcomes)
    assert result.max_ms == round(max(o.stats.latency_max for o in outcomes) * 1000, 4)
    # One load window: the same start, the same length.
    [started_at] = {o.load_started_at for o in outcomes}
    assert result.load_started_at == round(started_at, 6)
    assert all(1.0 <= o.elapsed < 1.5 for o in outcomes)
    assert result.duration == round(max(o.elapsed for o in outcomes), 6)
    # The generator's CPU share is the sum over the processes (over the same
    # window: the processes' ends differ by a tick at most).
    shares = [o.cpu / o.elapsed * 100 for o in outcomes]
    assert all(share > 0 for share in shares)
    assert result.generator_cpu_percent == pytest.approx(sum(shares), rel=0.1, abs=0.2)
    assert result.generator_cpu_percent == round(
        sum(o.cpu for o in outcomes) / max(o.elapsed for o in outcomes) * 100, 1
    )
    assert "in 2 processes (near 200" in result.summary()
    assert seen and seen[-1].requests > 0
    assert all(later.requests >= p.requests for p, later in itertools.pairwise(seen))


def test_merge_adds_up() -> None:
    outcomes = []
    for latencies, reasons in (([1, 2, 3], "abcdefg"), ([4, 5, 6, 7, 8, 9, 10], "ghijk")):
        stats = loadgen._Stats()
        for value in latencies:  # ms, bucketed as on_coap does
            stats.buckets[int(math.log(value * 1000) * loadgen._PER_LOG)] += 1
            stats.latency_sum += value / 1000
            stats.latency_max = max(stats.latency_max, value / 1000)
            stats.requests += 1
            stats.codes[0x45] += 1
        outcomes.append(
            loadgen._Outcome(
                stats=stats,
                established=1,
                failures=Counter(reasons),
                handshake_seconds=0.5 * len(outcomes) + 0.1,
                handshake_retransmissions=1,
                elapsed=1.0,
                cpu=0.5,
                unanswered=1,
                load_started_at=100.0 + len(outcomes),
                suite="",
                interrupted=False,
            )
        )
    merged = loadgen._merge(outcomes, 99.0)
    assert merged.stats.requests == 10 and merged.stats.codes == {0x45: 10}
    assert merged.stats.latency_max == 0.010 and merged.stats.latency_sum == pytest.approx(0.055)
    assert loadgen._percentile(merged.stats.buckets, 0.5, 0.010) == pytest.approx(5, rel=5e-4)
    assert loadgen._percentile(merged.stats.buckets, 0.9, 0.010) == pytest.approx(9, rel=5e-4)
    assert (merged.established, merged.cpu, merged.elapsed) == (2, 1.0, 1.0)
    assert merged.handshake_seconds == 0.6 and merged.load_started_at == 99.0
    # Reasons stay bounded: the first eight, the rest as "other".
    assert merged.failures == {**dict.fromkeys("abcdefh", 1), "g": 2, "other": 3}


async def test_processes_through_the_cli(seed: Seed) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dtlsfast.cli", "bench", seed.uri(), "--processes", "2",
        "--sessions", "3", "--duration", "0.5", "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    [line] = out.decode().splitlines()
    result = json.loads(line)
    assert result.keys() >= JSON_KEYS
    assert result["sessions_established"] == 3 and result["errors"] == 0
    assert result["requests"] == result["response_codes"]["2.05"] > 0
    assert seed.dtls.counters["handshakes_completed"] == 3


async def test_processes_below_one_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="processes must be at least 1, not 0: give 1"):
        await run_load("coap://127.0.0.1:9/light", processes=0)
    # More processes than sessions: one a session, here one, in this process.
    result = await run_load(f"coap://127.0.0.1:{await _closed_port()}/x", duration=0.2, processes=4)
    assert result.sessions_established == 1 and "processes" not in result.summary()


async def test_stop_ends_a_multi_process_run_early(seed: Seed) -> None:
    stop = asyncio.Event()

    def stop_once_answered(progress: Progress) -> None:
        if progress.requests:
            stop.set()

    result = await run_load(
        seed.uri(),
        sessions=2,
        duration=30,
        processes=2,
        stop=stop,
        progress=stop_once_answered,
        progress_interval=0.1,
    )
    assert result.interrupted
    assert result.duration < 5
    assert result.sessions_established == 2
    assert result.requests > 0 and result.errors == 0
    # Stopped before the processes started: they still report, nothing raised.
    stop = asyncio.Event()
    stop.set()
    result = await run_load(seed.uri(), sessions=2, duration=30, processes=2, stop=stop)
    assert result.interrupted and result.requests == 0


async def test_a_dead_generator_process_is_an_error(seed: Seed) -> None:
    def kill_one(progress: Progress) -> None:
        children = multiprocessing.active_children()
        if children:
            os.kill(children[0].pid or 0, signal.SIGKILL)

    started = time.monotonic()
    with pytest.raises(loadgen.GeneratorProcessError, match=r"killed by signal 9 before"):
        await run_load(
            seed.uri(), sessions=2, duration=30, processes=2, progress=kill_one,
            progress_interval=0.1,
        )  # fmt: skip
    assert time.monotonic() - started < 10
    assert not multiprocessing.active_children()


# -- scripted plain CoAP servers ---------------------------------------------


class Scripted(asyncio.DatagramProtocol):
    """Answers CoAP requests through ``script(request, send)``."""

    def __init__(self, script: Callable[[bytes, Callable[[bytes], None]], None]) -> None:
        self.script = script
        self.transport: Any = None
        self.received: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)
        self.script(data, lambda out: self.transport.sendto(out, addr))


async def scripted(
    script: Callable[[bytes, Callable[[bytes], None]], None],
) -> tuple[Scripted, str]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: Scripted(script), local_addr=("127.0.0.1", 0)
    )
    return proto, f"coap://127.0.0.1:{transport.get_extra_info('sockname')[1]}/x"


def piggybacked(request: bytes, code: int = 0x45) -> bytes:
    tkl = request[0] & 0x0F
    return bytes((0x60 | tkl, code)) + request[2 : 4 + tkl] + b"\xffok"


@pytest.fixture
def fast_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink RFC 7252's 2 s ACK_TIMEOUT so that retransmissions fit in a short test."""
    monkeypatch.setattr(loadgen, "ACK_TIMEOUT", 0.05)
    monkeypatch.setattr(loadgen, "TICK", 0.01)


async def test_lost_requests_are_retransmitted(fast_timers: None) -> None:
    seen: set[bytes] = set()

    def drop_first_copy(request: bytes, send: Callable[[bytes], None]) -> None:
        if request[2:4] in seen:
            send(piggybacked(request))
        else:
            seen.add(request[2:4])

    server, uri = await scripted(drop_first_copy)
    try:
        result = await run_load(uri, sessions=2, window=2, duration=0.6)
    finally:
        server.transport.close()
    assert result.requests > 0 and result.errors == 0
    assert result.retransmissions >= result.requests
    # Latency counts from the first transmission: at least one ACK_TIMEOUT.
    assert result.p50_ms >= 49


async def test_unanswered_requests_time_out(fast_timers: None) -> None:
    server, uri = await scripted(lambda request, send: None)
    try:
        result = await run_load(uri, sessions=1, window=3, duration=0.8, request_timeout=0.3)
    finally:
        server.transport.close()
    assert result.requests == 0
    assert result.timeouts >= 3 and result.errors == result.timeouts
    assert result.retransmissions > 0


async def test_separate_responses_are_acknowledged() -> None:
    acks: list[bytes] = []

    def separate(request: bytes, send: Callable[[bytes], None]) -> None:
        if request[1] == 0:  # our empty ACK of a separate response
            acks.append(request)
            return
        tkl = request[0] & 0x0F
        send(bytes((0x60, 0)) + request[2:4])  # empty ACK
        mid = (int.from_bytes(request[2:4], "big") + 0x8000) & 0xFFFF
        send(bytes((0x40 | tkl, 0x45)) + mid.to_bytes(2, "big") + request[4 : 4 + tkl])

    server, uri = await scripted(separate)
    try:
        result = await run_load(uri, duration=0.3)
        await asyncio.sleep(0.05)  # the last ACK may still be on its way
    finally:
        server.transport.close()
    assert result.requests > 0 and result.errors == 0
    assert len(acks) >= result.requests


async def test_reset_is_an_error() -> None:
    def reset(request: bytes, send: Callable[[bytes], None]) -> None:
        send(bytes((0x70, 0)) + request[2:4])

    server, uri = await scripted(reset)
    try:
        result = await run_load(uri, duration=0.2)
    finally:
        server.transport.close()
    assert result.requests == 0 and result.resets > 0 and result.errors == result.resets


async def _closed_port() -> int:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port: int = transport.get_extra_info("sockname")[1]
    transport.close()
    return port


# -- the steady state in the Rust client table -----------------------------------


async def test_coaps_load_runs_in_the_client_table(
    seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CoAPS sessions hand their load phase to the Rust ClientTable: the
    requests are counted there, and no response goes through the sessions'
    Python receive path."""
    tables: list[loadgen._TableLoad] = []
    start = loadgen._TableLoad.start

    def keep(*args: Any) -> loadgen._TableLoad | None:
        table = start(*args)
        assert table is not None
        tables.append(table)
        return table

    python_path: list[bytes] = []
    on_coap = loadgen._Session.on_coap

    def spy(self: loadgen._Session, data: bytes) -> None:
        python_path.append(data)
        on_coap(self, data)

    monkeypatch.setattr(loadgen._TableLoad, "start", keep)
    monkeypatch.setattr(loadgen._Session, "on_coap", spy)
    result = await run_load(seed.uri(), sessions=3, window=2, duration=0.5)
    assert result.requests > 0 and result.errors == 0
    assert result.response_codes == {"2.05": result.requests}
    [table] = tables
    assert len(table.table) == 3 and table.table.requests == result.requests
    assert python_path == []
    check_consistent(result)
    # The close_notify of each session went out with a fresh sequence number:
    # the server heard every one and holds no session.
    for _ in range(100):
        if seed.dtls.counters["sessions_open"] == 0:
            break
        await asyncio.sleep(0.01)
    assert seed.dtls.counters["sessions_open"] == 0


async def test_steady_state_allocates_nothing_large(seed: Seed) -> None:
    """Issue 13: the load phase allocates no large buffer per datagram (asyncio's
    transport took 256 KiB per receive). Measured from the first progress
    report to the last, in the steady state, with the in-process server's
    paths in it."""
    import tracemalloc

    marks: list[tuple[int, int]] = []

    def mark(_: Progress) -> None:
        if not marks:
            tracemalloc.start()
            tracemalloc.reset_peak()
        marks.append(tracemalloc.get_traced_memory())

    for uri in (seed.uri(), seed.uri(secure=False)):
        marks.clear()
        try:
            result = await run_load(
                uri, sessions=4, duration=1.0, progress=mark, progress_interval=0.2
            )
        finally:
            tracemalloc.stop()
        assert result.requests > 0 and len(marks) >= 3
        # The peak over what is still held at the end: transient allocations
        # (one 256 KiB receive buffer would be one), not what caches keep.
        transient = marks[-1][1] - marks[-1][0]
        print(f"{uri}: peak {transient:,} bytes above the traced memory in the steady state")
        assert transient < 96 * 1024


# -- the handshake storm -------------------------------------------------------------

HANDSHAKE_KEYS = {
    "mode",
    "handshakes",
    "handshakes_per_second",
    "failures",
    "failure_reasons",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "concurrency",
    "generator_us_per_handshake",
}


async def test_handshake_storm(seed: Seed) -> None:
    result = await loadgen.run_handshakes(seed.uri(), concurrency=4, duration=1.0)
    assert result.handshakes > 0 and result.failures == 0
    assert result.handshakes_per_second > 0
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert result.cipher_suite == "TLS_PSK_WITH_AES_128_CCM_8"
    assert json.loads(result.to_json()).keys() >= HANDSHAKE_KEYS
    counters = seed.dtls.counters
    # Every handshake came from a port of its own, and closed its session.
    assert counters["handshakes_completed"] >= result.handshakes
    for _ in range(100):
        if counters["sessions_open"] == 0:
            break
        await asyncio.sleep(0.01)
        counters = seed.dtls.counters
    assert counters["sessions_open"] == 0
    assert "handshakes" in result.summary()


async def test_handshake_storm_resuming_sessions(seed: Seed) -> None:
    result = await loadgen.run_handshakes(seed.uri(), concurrency=2, duration=1.0, resume=True)
    assert result.failures == 0 and result.resume
    # Each slot's first handshake is a full one; the others resumed.
    assert result.handshakes > 2 and result.resumed == result.handshakes - 2
    counters = seed.dtls.counters
    assert counters["resumed_ticket"] >= result.resumed
    assert "resumed" in result.summary()
    plain = await loadgen.run_handshakes(seed.uri(), concurrency=2, duration=0.3)
    assert plain.resumed == 0 and not plain.resume


def test_bench_resume_is_for_handshake_mode(capsys: pytest.CaptureFixture[str]) -> None:
    from dtlsfast.cli import main

    assert main(["bench", "coaps://127.0.0.1:9/light", "--resume", "--duration", "0.1"]) == 2
    assert "--resume is for --mode handshakes" in capsys.readouterr().err


async def test_handshake_storm_counts_failures_by_reason(seed: Seed) -> None:
    result = await loadgen.run_handshakes(
        seed.uri(), concurrency=2, duration=0.5, key="not-the-key"
    )
    assert result.handshakes == 0 and result.failures > 0
    [reason] = result.failure_reasons
    assert "bad_record_mac" in reason


async def test_handshake_storm_in_processes_through_the_cli(seed: Seed) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dtlsfast.cli", "bench", seed.uri(), "--mode", "handshakes",
        "--handshake-concurrency", "4", "--processes", "2", "--duration", "0.5", "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    [line] = out.decode().splitlines()
    result = json.loads(line)
    assert result.keys() >= HANDSHAKE_KEYS
    assert result["mode"] == "handshakes" and result["concurrency"] == 4
    assert result["handshakes"] > 0 and result["failures"] == 0


async def test_handshake_storm_reports_an_unreachable_server() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    result = await loadgen.run_handshakes(
        f"coaps://127.0.0.1:{port}/light", concurrency=2, duration=0.5
    )
    assert result.handshakes == 0 and result.failures > 0
    [reason] = result.failure_reasons
    assert "is a server listening there?" in reason


class _LossyRelay(asyncio.DatagramProtocol):
    """Between the generator and the server: the second datagram from each
    client port (the ClientHello with the cookie) is lost, so that every
    handshake completes only by retransmission."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.upstream: dict[Any, asyncio.DatagramTransport] = {}
        self.seen = Counter[Any]()
        self.lost = 0
        self.opening: set[asyncio.Future[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen[addr] += 1
        if self.seen[addr] == 2:
            self.lost += 1
            return
        upstream = self.upstream.get(addr)
        if upstream is not None:
            upstream.sendto(data)
            return
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _from: Any) -> None:
                if relay.transport is not None:
                    relay.transport.sendto(data, addr)

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


async def test_handshake_storm_retransmits_through_loss(seed: Seed) -> None:
    loop = asyncio.get_running_loop()
    _, relay = await loop.create_datagram_endpoint(
        lambda: _LossyRelay(("127.0.0.1", seed.dtls.port)), local_addr=("127.0.0.1", 0)
    )
    assert relay.transport is not None
    port = relay.transport.get_extra_info("sockname")[1]
    try:
        result = await loadgen.run_handshakes(
            f"coaps://127.0.0.1:{port}/light", concurrency=2, duration=3.5
        )
    finally:
        relay.close()
    # Every handshake lost its second ClientHello and completed only because
    # the storm's timer sweep sent it again (RFC 6347 §4.2.4), a second on.
    assert result.handshakes >= 2 and result.failures == 0
    assert relay.lost >= result.handshakes
    assert result.p50_ms >= 900


async def test_handshake_storm_needs_coaps(seed: Seed) -> None:
    with pytest.raises(ConfigurationError, match="coaps"):
        await loadgen.run_handshakes(seed.uri(secure=False), duration=0.1)


def test_the_old_module_path_still_works() -> None:
    from dtlsfast.coap import loadgen as old

    assert old.run_load is run_load and old.run_handshakes is loadgen.run_handshakes


def test_a_load_plan_repr_keeps_the_psk_key_out() -> None:
    from dtlsfast.loadgen import _Plan

    plan = _Plan("coaps://127.0.0.1/light", 1, 1.0, "CoAP", "a-secret-key", None, 1, 5.0)
    assert plan.key == "a-secret-key" and "a-secret-key" not in repr(plan)
