"""``dtlsfast bench`` as a user runs it: a process printing JSON, against
``dtlsfast serve`` and against libcoap's example server (``coap-server-openssl``)
over coaps and coap. No assertion on speed."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from peers import CoapServerPeer, free_udp_port_pair, serve_process

from dtlsfast.loadgen import run_load

pytestmark = pytest.mark.interop

KEYS = (
    "requests",
    "errors",
    "requests_per_second",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "sessions",
    "handshake_failures",
    "handshake_seconds",
    "retransmissions",
    "duration",
    "method",
    "uri",
)


async def bench(
    *args: str, limit: float = 60, prefix: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any], str]:
    """Run ``dtlsfast bench --json ARGS`` (under ``prefix``, a command such as
    strace); return the exit code, the JSON and stderr."""
    process = await asyncio.create_subprocess_exec(
        "timeout", str(limit), *prefix, sys.executable, "-m", "dtlsfast.cli", "bench", "--json",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), limit + 5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = out.decode()
    assert len(text.splitlines()) == 1, f"not one line of JSON on stdout:\n{text}\n{err!r}"
    result = json.loads(text)
    assert all(key in result for key in KEYS), result
    return process.returncode or 0, result, err.decode(errors="replace")


@pytest.fixture
async def dtlsfast_serve(tmp_path: Path) -> AsyncIterator[int]:
    """``dtlsfast serve`` on free ports; yields the plain CoAP port (CoAPS is
    the next), and checks the server stops cleanly on SIGTERM."""
    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    async with serve_process(log_path, port, port + 1, limit=90) as process:
        yield port
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert "Traceback" not in log_path.read_text()


async def test_bench_json_against_dtlsfast_serve(dtlsfast_serve: int) -> None:
    uri = f"coaps://127.0.0.1:{dtlsfast_serve + 1}/light"
    code, result, err = await bench(uri, "--sessions", "4", "--window", "4", "--duration", "1")
    assert code == 0, err
    assert err == ""  # no progress lines with --json
    assert result["uri"] == uri and result["method"] == "GET"
    assert result["sessions"] == result["sessions_established"] == 4
    assert result["requests"] > 0 and result["errors"] == 0
    assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]


def strace_counts(path: Path) -> dict[str, int]:
    """System calls by name from ``strace -c``'s summary table."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


@pytest.mark.parametrize("scheme", ["coaps", "coap"])
async def test_bench_maps_no_memory_per_request(
    dtlsfast_serve: int, tmp_path: Path, scheme: str
) -> None:
    """Issue 13: asyncio's datagram transport received every datagram into a
    fresh 256 KiB buffer, which glibc maps and unmaps (mmap, mremap, munmap:
    3.4 calls per request). Counted with strace over a whole run: what is left
    is the interpreter's start-up, not a call per request."""
    port = dtlsfast_serve + (scheme == "coaps")
    trace = tmp_path / "strace.txt"
    strace = ("strace", "--seccomp-bpf", "-f", "-qq", "-c", "-o", str(trace),
              "-e", "trace=mmap,munmap,mremap")  # fmt: skip
    code, result, err = await bench(
        f"{scheme}://127.0.0.1:{port}/light", "--sessions", "4", "--duration", "2", prefix=strace
    )
    assert code == 0, err
    calls = strace_counts(trace)
    requests = result["requests"]
    unmapped = calls.get("munmap", 0) + calls.get("mremap", 0)
    print(f"{scheme}: {requests} requests, system calls {calls}")
    assert requests > 0 and calls.get("mmap", 0) > 0
    assert unmapped < 200 + requests / 20


async def test_bench_plain_put_against_dtlsfast_serve(dtlsfast_serve: int) -> None:
    uri = f"coap://127.0.0.1:{dtlsfast_serve}/light"
    code, result, err = await bench(uri, "-m", "put", "-e", "on", "--duration", "0.5")
    assert code == 0, err
    assert result["requests"] > 0 and result["errors"] == 0
    assert result["response_codes"] == {"2.04": result["requests"]}


async def test_bench_wrong_key_exits_1_with_json(dtlsfast_serve: int) -> None:
    uri = f"coaps://127.0.0.1:{dtlsfast_serve + 1}/light"
    code, result, _ = await bench(uri, "-k", "wrong", "--sessions", "2", "--duration", "0.5")
    assert code == 1
    assert result["handshake_failures"] == 2 and result["errors"] == 2
    assert result["requests"] == 0


async def test_bench_human_report(dtlsfast_serve: int) -> None:
    process = await asyncio.create_subprocess_exec(
        "timeout", "60", sys.executable, "-m", "dtlsfast.cli", "bench",
        f"coaps://127.0.0.1:{dtlsfast_serve + 1}/light", "--duration", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 65)
    assert process.returncode == 0, err
    text = out.decode()
    assert "req/s" in text and "p99" in text and "TLS_PSK_WITH_AES_128_CCM_8" in text
    assert err == b""  # stderr is not a terminal here: no progress lines


@pytest.fixture
async def libcoap() -> AsyncIterator[CoapServerPeer]:
    async with CoapServerPeer(variant="openssl") as server:
        yield server


async def test_bench_libcoap_coaps_time(libcoap: CoapServerPeer) -> None:
    code, result, err = await bench(
        libcoap.uri("time"), "--sessions", "3", "--window", "2", "--duration", "1"
    )
    assert code == 0, f"{err}\n{libcoap.describe()}"
    assert result["sessions_established"] == 3
    assert result["requests"] > 0 and result["errors"] == 0, result
    assert set(result["response_codes"]) == {"2.05"}


@pytest.mark.parametrize(
    "cipher",
    [
        "TLS_PSK_WITH_AES_128_CCM_8",
        "TLS_PSK_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    ],
)
async def test_bench_libcoap_suites(libcoap: CoapServerPeer, cipher: str) -> None:
    result = await run_load(
        libcoap.uri("time"), sessions=2, window=2, duration=0.5, ciphers=[cipher]
    )
    assert result.cipher_suite == cipher
    assert result.requests > 0 and result.errors == 0, result.summary()


async def test_bench_libcoap_put_creates_light(libcoap: CoapServerPeer) -> None:
    # coap-server -d 10: the first PUT creates /light (2.01), the rest change it (2.04).
    result = await run_load(
        libcoap.uri("light"), sessions=2, window=2, duration=0.5, method="PUT", payload=b"on"
    )
    assert result.requests > 0 and result.errors == 0, result.summary()
    assert set(result.response_codes) <= {"2.01", "2.04"}
    plain = await run_load(libcoap.uri("light", secure=False), duration=0.5)
    assert plain.requests > 0 and plain.errors == 0, plain.summary()
    assert set(plain.response_codes) == {"2.05"}


async def test_bench_libcoap_wrong_key(libcoap: CoapServerPeer) -> None:
    result = await run_load(
        libcoap.uri("time"), sessions=2, duration=0.3, key="wrong", handshake_timeout=2
    )
    assert result.sessions_established == 0
    assert result.handshake_failures == 2 and result.errors == 2
