"""Memory per established session, every kind, at up to 100,000 sessions in
one server process.

    python benches/session_memory.py [--sessions 100000] [--kinds idle,cid,observer,exchanged]
                                     [--paths inproc,serve] [--json out.json]

Kinds of session (all TLS_PSK_WITH_AES_128_CCM_8 unless the path says otherwise):

- ``idle``: the handshake completed and nothing else happened since.
- ``cid``: the same with a connection ID (RFC 9146) in both directions.
- ``observer``: one GET of ``/light`` with Observe (RFC 7641): the session
  holds an observation.
- ``exchanged``: one confirmable GET of ``/light`` answered.

Two paths measure them:

- ``inproc``: a :class:`~dtlsfast.server.DtlsServer` with the CoAP server of
  ``dtlsfast serve`` on a transport of this script (no socket), its clients
  sans-I/O ``DtlsConnection`` objects in this process, each from its own
  address and dropped as soon as its session is up, so that only the server's
  state remains. Reports the RSS growth (which includes the Rust session
  table) and the table's own bytes, each per session; ``inproc-trace`` the
  Python heap the sessions hold (tracemalloc: the allocations traced between
  before and after, after a full collection; the Rust table is outside its
  view), in a run of its own with ``--trace-sessions`` (tracing is slow and
  its bookkeeping would inflate the RSS). Every kind.
- ``serve``: a ``dtlsfast serve`` subprocess (pinned to the first CPU) against
  the independent C generator ``/tmp/cgen`` (../shared/tools/cgen, each
  session from its own 127.x.y.z, pinned to the second CPU): ``--mode hold``
  for ``exchanged`` (in processes of ``HOLD_CHUNK`` sessions, one descriptor
  each), and for ``idle`` a handshake storm without close_notify
  (``--mode hs --no-close``), which leaves each handshake's session on the
  server. Reports the server's RSS growth per session (cgen has no CID and no
  Observe: those kinds are in-process only).

A warm-up of a few hundred sessions comes first on both paths: the first
sessions allocate what every later one reuses (interned strings, the
allocator's arenas). Memory, not timing: the numbers are stable from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KINDS = ("idle", "cid", "observer", "exchanged")
PSK = (b"CoAP", b"esp32c3_key")
CGEN = os.environ.get("CGEN", "/tmp/cgen")
PY = sys.executable
WARMUP = 300
#: Sessions per cgen --mode hold process: one descriptor each, under the
#: usual limit of 20,000 descriptors a process.
HOLD_CHUNK = 16_000

#: CoAP messages (RFC 7252 §3): CON GET /light, and the same with Observe: 0.
GET_LIGHT = bytes([0x40, 0x01, 0x00, 0x01, 0xB5]) + b"light"
OBSERVE_LIGHT = bytes([0x41, 0x01, 0x00, 0x02, 0x07, 0x60, 0x55]) + b"light"


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) * 1024 if match else 0


# -- in-process -----------------------------------------------------------------


class _Transport:
    """What the server sends, by address, for the client in this process."""

    def __init__(self) -> None:
        self.sent: dict[Any, list[bytes]] = {}

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.setdefault(addr, []).append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5684) if name == "sockname" else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _address(i: int) -> tuple[str, int]:
    # Each session from its own address (cgen's layout), so none replaces another.
    return (f"127.{2 + i // 50000}.{(i // 200) % 250}.{1 + i % 200}", 40000 + i % 20000)


class InProcess:
    """The server of ``dtlsfast serve`` (CoAP, /light) on a socketless transport."""

    def __init__(self, kind: str, sessions: int) -> None:
        from dtlsfast.coap import CoapServer, LightResource
        from dtlsfast.coap.dtls import _CoapSessions, _send_on_session
        from dtlsfast.coap.server import CoapServerConfig
        from dtlsfast.config import DtlsConfiguration
        from dtlsfast.server import DtlsServer, ServerLimits

        self.kind = kind
        room = sessions + 2 * WARMUP  # every observer is kept (RFC 7641 §4.1)
        coap = CoapServer(CoapServerConfig(observers_per_resource=room, observers_total=room))
        coap.add_resource("light", LightResource())
        self.coap = coap
        cid = 8 if kind == "cid" else None
        config = DtlsConfiguration.server(
            psk_store={PSK[0]: PSK[1]}, identity_hint=PSK[0], connection_id_length=cid
        )
        # The defaults of dtlsfast serve (its sweep every 30 s included, which
        # forgets the front door's buckets of sources that refilled), with
        # room for every session and handshakes from one /24 as fast as come.
        limits = ServerLimits(
            max_sessions=sessions + 2 * WARMUP,
            hello_rate_per_prefix=1e9,
            hello_burst_per_prefix=1 << 30,
        )
        self.server = DtlsServer(_CoapSessions(coap.attach(_send_on_session)), config, limits, 1e6)
        self.transport = _Transport()
        self.server.connection_made(self.transport)  # type: ignore[arg-type]
        coap.add_publisher(self.server.publish_response)
        self.client_config = DtlsConfiguration.client(
            psk=PSK, ciphers=["TLS_PSK_WITH_AES_128_CCM_8"], connection_id_length=cid
        )
        self.opened = 0

    def open(self, i: int) -> None:
        """One session from address ``i``: handshake, then what its kind does."""
        from dtlsfast.connection import DtlsConnection

        addr = _address(i)
        client = DtlsConnection(self.client_config, peer=("127.0.0.1", 5684))
        client.connect(0.0)
        loop_time = self.server._loop.time
        for _ in range(20):
            for datagram in client.datagrams_to_send(0.0):
                self.server.datagram_received(datagram, addr)
            for datagram in self.transport.sent.pop(addr, ()):
                client.receive_datagram(datagram, loop_time())
            if client.established and not self.transport.sent.get(addr):
                break
        if not client.established:
            raise RuntimeError(f"session {i} did not establish")
        if self.kind in ("observer", "exchanged"):
            client.send(OBSERVE_LIGHT if self.kind == "observer" else GET_LIGHT)
            for datagram in client.datagrams_to_send(0.0):
                self.server.datagram_received(datagram, addr)
            if not self.transport.sent.pop(addr, None):
                raise RuntimeError(f"session {i}: no answer to the GET")
        self.transport.sent.pop(addr, None)
        self.opened += 1

    async def open_many(self, first: int, count: int) -> None:
        """Sessions ``first`` to ``first + count - 1``, letting the event loop
        run between them as a server's would (it drops the cancelled
        retransmission timers of finished handshakes)."""
        for i in range(first, first + count):
            self.open(i)
            if i % 64 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0)


def measure_inproc(kind: str, sessions: int, trace: bool) -> dict[str, Any]:
    """One kind in this process: RSS growth, or with ``trace`` the Python heap
    by tracemalloc (whose own bookkeeping would inflate the RSS)."""

    async def run() -> dict[str, Any]:
        bench = InProcess(kind, sessions)
        await bench.open_many(sessions, WARMUP)
        gc.collect()
        if trace:
            tracemalloc.start()
        heap0 = tracemalloc.get_traced_memory()[0]
        rss0 = rss_bytes()
        started = time.perf_counter()
        await bench.open_many(0, sessions)
        seconds = time.perf_counter() - started
        gc.collect()
        heap1 = tracemalloc.get_traced_memory()[0]
        rss1 = rss_bytes()
        tracemalloc.stop()
        counters = bench.server.counters
        open_now = counters["sessions_open"]
        if open_now != sessions + WARMUP:
            raise RuntimeError(f"{open_now} sessions open, expected {sessions + WARMUP}")
        table = counters["sessions_in_table"]
        row = {
            "path": "inproc",
            "kind": kind,
            "sessions": sessions,
            "sessions_in_table": table - min(table, WARMUP),
            "measured": "python_heap" if trace else "rss",
            "per_session": round(((heap1 - heap0) if trace else (rss1 - rss0)) / sessions),
            "table_bytes_per_session": round(
                counters["session_table_bytes"] / max(1, counters["sessions_in_table"])
            )
            if table
            else 0,
            "observations": bench.coap.counters["observers_registered"],
            "seconds": round(seconds, 1),
        }
        bench.server.close()
        return row

    return asyncio.run(run())


# -- dtlsfast serve against cgen --------------------------------------------------


def _pinned(argv: list[str], cpu: str) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *argv]
    return argv


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) * 1024 if match else 0


@contextlib.contextmanager
def _serve(sessions: int, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = _free_port()
    log = workdir / f"serve-{port}.log"
    out = log.open("wb")
    argv = [PY, "-m", "dtlsfast.cli", "serve", "--bind", "127.0.0.1", "--port", "0",
            "--coaps-port", str(port), "--log-level", "warning",
            "--hello-rate", "1000000", "--max-sessions", str(sessions + 4 * WARMUP),
            "--idle-timeout", "100000"]  # fmt: skip
    process = subprocess.Popen(_pinned(argv, "0"), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(log.read_text(errors="replace"))
            probe = subprocess.run(
                [CGEN, "--port", str(port), "--mode", "hold", "--sessions", "1",
                 "--addr-base", "199999", "--timeout", "2"],
                capture_output=True, timeout=30,
            )  # fmt: skip
            if b'"established":1' in probe.stdout:
                break
            time.sleep(0.2)
        yield process, port, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def _server_counters(process: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    before = log.read_text(errors="replace").count("counters {")
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if text.count("counters {") > before:
            line = text[text.rindex("counters {") + len("counters ") :].splitlines()[0]
            counters: dict[str, int] = json.loads(line)
            return counters
        time.sleep(0.05)
    raise RuntimeError("the server did not report its counters")


def _cgen(argv: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        _pinned([CGEN, *argv], "1"), capture_output=True, timeout=timeout, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def measure_serve(kind: str, sessions: int, workdir: Path) -> dict[str, Any]:
    with _serve(sessions, workdir) as (process, port, log):
        common = ["--port", str(port), "--hs-concurrency", "64", "--timeout", "5"]
        _cgen([*common, "--mode", "hold", "--sessions", str(WARMUP), "--addr-base", "150000"], 300)
        time.sleep(0.5)
        before = _server_counters(process, log)["dtls_sessions_open"]
        rss0 = _proc_rss(process.pid)
        started = time.perf_counter()
        if kind == "exchanged":
            # One socket per session: a process holds at most HOLD_CHUNK of
            # them (the descriptor limit), and leaves them on the server.
            gen = {"established": 0, "hs_failed": 0, "answered": 0}
            for first in range(0, sessions, HOLD_CHUNK):
                count = min(HOLD_CHUNK, sessions - first)
                chunk = _cgen([*common, "--mode", "hold", "--sessions", str(count),
                               "--addr-base", str(first)], 3600)  # fmt: skip
                for name in gen:
                    gen[name] += chunk[name]
        elif kind == "idle":
            # A storm without close_notify until enough sessions are left over.
            gen = {}
            while True:
                open_now = _server_counters(process, log)["dtls_sessions_open"] - before
                if open_now >= sessions:
                    break
                rate = 1500.0
                seconds = max(1.0, min(30.0, (sessions - open_now) / rate))
                gen = _cgen([*common, "--mode", "hs", "--no-close", "--duration",
                             f"{seconds:.1f}", "--warmup", "0", "--addr-base", "0"],
                            600)  # fmt: skip
        else:
            raise ValueError(f"cgen cannot make {kind} sessions")
        seconds = time.perf_counter() - started
        time.sleep(1.0)
        counters = _server_counters(process, log)
        rss1 = _proc_rss(process.pid)
    made = counters["dtls_sessions_open"] - before
    return {
        "path": "serve",
        "kind": kind,
        "sessions": made,
        "sessions_in_table": counters["dtls_sessions_in_table"],
        "rss_per_session": round((rss1 - rss0) / max(1, made)),
        "table_bytes_per_session": round(
            counters["dtls_session_table_bytes"] / max(1, counters["dtls_sessions_in_table"])
        ),
        "generator": gen,
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--paths", default="inproc,inproc-trace,serve")
    parser.add_argument(
        "--trace-sessions",
        type=int,
        default=10_000,
        help="sessions of the tracemalloc runs (inproc-trace; tracing is slow)",
    )
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    paths = [p for p in args.paths.split(",") if p]
    rows = []
    with tempfile.TemporaryDirectory(prefix="session-memory-") as tmp:
        for path in paths:
            for kind in kinds:
                if path in ("inproc", "inproc-trace"):
                    # A process of its own per kind and measure: nothing of one
                    # run's allocations is reused by the next.
                    count = args.sessions if path == "inproc" else args.trace_sessions
                    done = subprocess.run(
                        [PY, __file__, "--sessions", str(count), "--kinds", kind,
                         "--paths", f"{path}-here"],
                        capture_output=True, check=True, timeout=7200,
                    )  # fmt: skip
                    row = json.loads(done.stdout.decode().strip().splitlines()[-1])
                elif path in ("inproc-here", "inproc-trace-here"):
                    row = measure_inproc(kind, args.sessions, trace=path == "inproc-trace-here")
                    print(json.dumps(row), flush=True)
                    continue
                elif path == "serve":
                    if kind not in ("idle", "exchanged"):
                        continue
                    if not os.access(CGEN, os.X_OK):
                        print(f"[skip] {CGEN} not built (../shared/tools/cgen)", file=sys.stderr)
                        continue
                    row = measure_serve(kind, args.sessions, Path(tmp))
                else:
                    raise SystemExit(f"unknown path {path!r}")
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
