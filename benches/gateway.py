"""The gateway benchmark: dtlsfast against the C and pure-Python servers,
side by side, in one run on one machine.

    python benches/gateway.py [--duration 10] [--window 1] [--generator-processes N]
                              [--no-pin] [--json out.json] [--markdown out.md]

1. **CoAPS throughput.** GET /light (a 3-byte resource) from 1, 100 and 1,000
   sessions, ``--window`` requests in flight per session (1 is CoAP's NSTART),
   driven by ``dtlsfast bench`` in processes of its own (``--processes``:
   ``--generator-processes`` of them for 2 sessions and more, by default one
   per client CPU; 1 for one session), against a fresh
   server process for every cell: ``dtlsfast serve`` (Rust core, batched I/O),
   ``dtlsfast serve --backend pure`` (the pure-Python record core), libcoap's
   ``coap-server-openssl`` (C, OpenSSL), and aiocoap's server over plain CoAP
   (the pure-Python reference; no DTLS at all).
2. **Full PSK handshakes per second**, one at a time (cookie exchange
   included, TLS_PSK_WITH_AES_128_CCM_8), the same client (``dtlsfast.connect``
   then close_notify) against ``dtlsfast serve`` and ``openssl s_server``;
   and against dtlsfast with 32 handshakes in flight (``dtlsfast bench``).
3. **Memory per established session** with 10,000 and 100,000 sessions, each
   from its own source address with one GET done: the server's RSS growth
   divided by the sessions, and the Rust session table's own bytes.

Everything runs on loopback. Every server runs on the first CPU and every
client on the others (``taskset``; ``--no-pin`` leaves it to the scheduler,
whose placement of three busy processes on two cores made the same cell vary
twofold from run to run). Timing lives here, never in the test suite's asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PSK_HEX = "657370333263335f6b6579"
SESSIONS = (1, 100, 1000)

#: CPU lists for ``taskset -c``: (the server's, the clients'), or None when
#: not pinning (see :func:`plan_cpus`).
PINNING: tuple[str, str] | None = None


def plan_cpus(enabled: bool) -> tuple[str, str] | None:
    """The server on the first CPU this process may use, every client (load
    generator, handshake client) on the others. Unpinned, three busy processes
    on two cores settle wherever the scheduler's wake-ups put them: loopback
    ping-pong tends to pile them onto one core, and the same cell measured
    anywhere from 48,000 to 104,000 requests per second from run to run."""
    if not enabled or not hasattr(os, "sched_getaffinity") or shutil.which("taskset") is None:
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return str(cpus[0]), ",".join(map(str, cpus[1:]))


def pinned(argv: list[str], role: str) -> list[str]:
    """``argv`` run on the ``role``'s CPUs ("server" or "client")."""
    if PINNING is None:
        return argv
    return ["taskset", "-c", PINNING[0] if role == "server" else PINNING[1], *argv]


PY = sys.executable

AIOCOAP_SERVER = """
import asyncio, sys
import aiocoap, aiocoap.resource as resource

class Light(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=b"off")

async def main():
    site = resource.Site()
    site.add_resource(["light"], Light())
    await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", int(sys.argv[1])))
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""

SEQUENTIAL_HANDSHAKES = """
import asyncio, json, sys, time
import dtlsfast

async def main(port, seconds):
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session = await dtlsfast.connect(
            "127.0.0.1", port, psk=("CoAP", "esp32c3_key"),
            ciphers=["TLS_PSK_WITH_AES_128_CCM_8"], handshake_timeout=5,
        )
        await session.close()
        done += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"handshakes": done, "seconds": elapsed}))

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
"""

MANY_SESSIONS = """
import asyncio, json, sys, time
import dtlsfast

GET = bytes([0x40, 0x01, 0x00, 0x01, 0xB5]) + b"light"

async def main(port, count):
    limit = asyncio.Semaphore(64)
    failed = 0

    async def one(i):
        nonlocal failed
        # Every session from its own address (127.2.0.1 ...), so none replaces another.
        local = (f"127.{2 + i // 50000}.{(i // 200) % 250}.{1 + i % 200}", 0)
        async with limit:
            try:
                session = await dtlsfast.connect(
                    "127.0.0.1", port, psk=("CoAP", "esp32c3_key"), local_addr=local,
                    handshake_timeout=20,
                )
                await session.send(GET)
                await asyncio.wait_for(session.recv(), 10)
                session.abort()  # the server keeps the session: no close_notify
            except Exception:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    print(json.dumps({"opened": count - failed, "failed": failed,
                      "seconds": time.perf_counter() - started}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def free_port_pair() -> int:
    """A port P with P and P + 1 free for UDP (CoAP and CoAPS)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
            t.bind(("127.0.0.1", port + 1))
            return port
    raise RuntimeError("no free UDP port pair")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    uri: str
    log: Path

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) if match else 0

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick


class CpuSampler:
    """Samples a server's CPU time every 20 ms, so that the load phase alone
    (after the handshakes) can be cut out afterwards."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                user, system = self.srv.cpu_seconds()
                self.samples.append((time.time(), user, system))
            self._stop.wait(0.02)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> tuple[float, float]:
        """(user, system) CPU seconds spent between two wall-clock times."""

        def at(when: float) -> tuple[float, float]:
            before = [s for s in self.samples if s[0] <= when]
            chosen = before[-1] if before else self.samples[0]
            return chosen[1], chosen[2]

        (u0, s0), (u1, s1) = at(start), at(end)
        return u1 - u0, s1 - s0


def _wait_for_log(log: Path, text: str, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {within} s:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def server(kind: str, workdir: Path, extra: tuple[str, ...] = ()) -> Iterator[Server]:
    """A fresh ``kind`` server process (``extra``: more ``dtlsfast serve`` options)."""
    port = free_port_pair()
    log = workdir / f"{kind}-{port}.log"
    out = log.open("wb")
    if kind in ("dtlsfast", "dtlsfast-pure"):
        argv = [PY, "-m", "dtlsfast.cli", "serve", "--bind", "127.0.0.1", "--port", "0",
                "--coaps-port", str(port + 1), "--log-level", "warning"]  # fmt: skip
        if kind == "dtlsfast-pure":
            argv += ["--backend", "pure"]
        # Every client here comes from one address (loopback): open the
        # per-source hello budget, which tests/faults measures on its own.
        argv += ["--hello-rate", "1000000", *extra]
        uri, ready = f"coaps://127.0.0.1:{port + 1}/light", None
    elif kind == "libcoap":
        argv = ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port),
                "-k", "esp32c3_key", "-h", "CoAP", "-d", "10"]  # fmt: skip
        uri, ready = f"coaps://127.0.0.1:{port + 1}/light", None
    elif kind == "aiocoap":
        argv = [PY, "-c", AIOCOAP_SERVER, str(port)]
        uri, ready = f"coap://127.0.0.1:{port}/light", "ready"
    else:
        raise ValueError(kind)
    process = subprocess.Popen(
        pinned(argv, "server"), stdin=subprocess.DEVNULL, stdout=out, stderr=out
    )
    try:
        if ready is not None:
            _wait_for_log(log, ready, process, 20)
        else:
            _wait_until_serving(uri, kind, process)
        yield Server(kind, process, uri, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def _wait_until_serving(uri: str, kind: str, process: subprocess.Popen[bytes]) -> None:
    """Until a client gets "off" from /light (on libcoap's server a PUT creates
    it first: coap-client exits 0 even on 4.04, so the GET is what tells)."""
    base = ["coap-client-openssl", "-B", "2", "-u", "CoAP", "-k", "esp32c3_key"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} exited early")
        if kind == "libcoap":
            subprocess.run([*base, "-m", "put", "-e", "off", uri], capture_output=True, timeout=10)
        done = subprocess.run([*base, uri], capture_output=True, timeout=10)
        if b"off" in done.stdout:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{kind} does not serve {uri}")


def run_bench(
    uri: str, sessions: int, window: int, duration: float, processes: int = 1
) -> dict[str, Any]:
    argv = [PY, "-m", "dtlsfast.cli", "bench", uri, "--sessions", str(sessions),
            "--window", str(window), "--duration", str(duration), "--json", "--no-progress",
            "--handshake-concurrency", "64", "--processes", str(processes)]  # fmt: skip
    done = subprocess.run(pinned(argv, "client"), capture_output=True, timeout=duration + 300)
    if not done.stdout.strip():
        raise RuntimeError(f"dtlsfast bench printed nothing: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- 1. throughput ------------------------------------------------------------

SERVERS = {
    "dtlsfast": "dtlsfast serve (Rust core)",
    "dtlsfast-pure": "dtlsfast serve --backend pure",
    "libcoap": "libcoap coap-server-openssl (C)",
    "aiocoap": "aiocoap, plain CoAP (no DTLS)",
}


def throughput(
    workdir: Path, duration: float, window: int, generator_processes: int
) -> list[dict[str, Any]]:
    rows = []
    for kind in SERVERS:
        for sessions in SESSIONS:
            # One session cannot be split: one generator process.
            processes = generator_processes if sessions >= 2 else 1
            with server(kind, workdir) as srv, CpuSampler(srv) as sampler:
                result = run_bench(srv.uri, sessions, window, duration, processes)
            start = result["load_started_at"]
            user, system = sampler.between(start, start + result["duration"])
            requests = max(1, result["requests"])
            row = {
                "server": kind,
                "sessions": sessions,
                "window": window,
                "requests_per_second": result["requests_per_second"],
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "errors": result["errors"],
                "retransmissions": result["retransmissions"],
                "sessions_established": result.get("sessions_established", sessions),
                "generator_processes": processes,
                # The sum over the generator processes (200: two cores busy).
                "generator_cpu_percent": result.get("generator_cpu_percent"),
                "requests": result["requests"],
                "response_codes": result.get("response_codes", {}),
                # Server CPU per answered request during the load phase (the
                # handshakes cut out): what one core can serve when the
                # generator is the limit. User time is the server's own code,
                # system time the kernel's UDP work on its behalf.
                "server_cpu_us_per_request": round((user + system) / requests * 1e6, 1),
                "server_user_us_per_request": round(user / requests * 1e6, 1),
                "server_system_us_per_request": round(system / requests * 1e6, 1),
            }
            print(f"[throughput] {json.dumps(row)}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


# -- 2. handshakes ------------------------------------------------------------


def handshakes(workdir: Path, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with server("dtlsfast", workdir) as srv:
        port = int(srv.uri.rsplit(":", 1)[1].split("/")[0])
        done = subprocess.run(
            pinned([PY, "-c", SEQUENTIAL_HANDSHAKES, str(port), str(seconds)], "client"),
            capture_output=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
        out["dtlsfast_sequential"] = json.loads(done.stdout)
    with server("dtlsfast", workdir) as srv:
        result = run_bench(srv.uri, 2000, 1, 0.5)
        out["dtlsfast_concurrent"] = {
            "handshakes": result["sessions_established"],
            "per_second": result["handshakes_per_second"],
        }
    port = free_port_pair()
    s_server = subprocess.Popen(
        pinned(["openssl", "s_server", "-dtls1_2", "-accept", f"127.0.0.1:{port}", "-psk", PSK_HEX,
         "-psk_hint", "CoAP", "-psk_identity", "CoAP", "-nocert", "-cipher", "PSK-AES128-CCM8",
         "-quiet"], "server"),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        done = subprocess.run(
            pinned([PY, "-c", SEQUENTIAL_HANDSHAKES, str(port), str(seconds)], "client"),
            capture_output=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
        out["openssl_sequential"] = json.loads(done.stdout)
    finally:
        s_server.kill()
        s_server.wait()
    for key in ("dtlsfast_sequential", "openssl_sequential"):
        figures = out[key]
        figures["per_second"] = round(figures["handshakes"] / figures["seconds"], 1)
    print(f"[handshakes] {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


# -- 3. memory ------------------------------------------------------------------


def _counters(srv: Server) -> dict[str, int]:
    """Ask the server for its counters (SIGUSR1 logs them as JSON)."""
    before = srv.log.read_text(errors="replace").count("counters {")
    srv.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = srv.log.read_text(errors="replace")
        if text.count("counters {") > before:
            line = text[text.rindex("counters {") + len("counters ") :].splitlines()[0]
            counters: dict[str, int] = json.loads(line)
            return counters
        time.sleep(0.05)
    raise RuntimeError("the server did not report its counters")


def memory(workdir: Path, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for count in sizes:
        # Room for every session: none evicted at the cap (100,000 by default).
        with server("dtlsfast", workdir, ("--max-sessions", str(count + 1000))) as srv:
            port = int(srv.uri.rsplit(":", 1)[1].split("/")[0])
            # Warm up: first sessions allocate what every later one reuses.
            subprocess.run(
                pinned([PY, "-c", MANY_SESSIONS, str(port), "50"], "client"),
                check=True, timeout=120,
            )  # fmt: skip
            rss0 = srv.rss_kib()
            done = subprocess.run(
                pinned([PY, "-c", MANY_SESSIONS, str(port), str(count)], "client"),
                capture_output=True, timeout=3600, check=True,
            )  # fmt: skip
            opened = json.loads(done.stdout)
            counters = _counters(srv)
            rss1 = srv.rss_kib()
        # The warm-up sessions stay too, unless the cap evicted them (LRU).
        sessions = min(opened["opened"], counters["dtls_sessions_open"])
        row = {
            "sessions": sessions,
            "opened": opened,
            "rss_growth_kib": rss1 - rss0,
            "bytes_per_session": round((rss1 - rss0) * 1024 / max(1, sessions)),
            "table_bytes_per_session": round(
                counters["dtls_session_table_bytes"] / max(1, counters["dtls_sessions_in_table"])
            ),
            "sessions_in_table": counters["dtls_sessions_in_table"],
        }
        print(f"[memory] {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


# -- report -----------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        if match:
            cpu = match.group(1).strip()
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"CPython {platform.python_version()}"
    )


def _throughput_markdown(rows: list[dict[str, Any]], cpus: dict[str, str] | None) -> list[str]:
    lines: list[str] = []
    window = rows[0]["window"] if rows else 1
    by = {(r["server"], r["sessions"]): r for r in rows}
    # Runs from before --generator-processes had one generator process.
    generators = {r["sessions"]: r.get("generator_processes", 1) for r in rows}
    placement = (
        f"Each server runs on CPU {cpus['server']} and the generator (`dtlsfast bench`, in "
        f"the number of processes each column names) on CPU {cpus['clients']} (taskset)"
        if cpus
        else "The generator (`dtlsfast bench`, in the number of processes each column "
        "names) and the server share the machine's cores"
    )
    lines += [
        f"CoAPS GET /light, {window} request(s) in flight per session: requests per second "
        "(p50 / p99 latency, ms) and the server's CPU time per request during the load phase. "
        f"{placement}; where the generator is the limit (its CPU share near 100 % per "
        "process), the server's CPU time per request is the fair comparison (1 s / that = "
        "requests per second one core can serve).",
        "",
        "| server | "
        + " | ".join(
            f"{n:,} sessions ({generators.get(n, 1)} generator "
            f"process{'es' * (generators.get(n, 1) > 1)})"
            for n in SESSIONS
        )
        + " |",
        "| --- |" + " ---: |" * len(SESSIONS),
    ]
    for kind, label in SERVERS.items():
        cells = []
        for n in SESSIONS:
            r = by.get((kind, n))
            if r is None:
                cells.append("-")
                continue
            errors = f", {r['errors']} errors" if r["errors"] else ""
            cells.append(
                f"{r['requests_per_second']:,.0f} ({r['p50_ms']:.2f} / {r['p99_ms']:.2f}{errors}); "
                f"{r['server_cpu_us_per_request']:.1f} µs"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        "dtlsfast (Rust core) against the others: requests per second / server CPU per "
        "request / the server's user-space CPU per request (its own code, the kernel's UDP "
        "work left out); above 1 is dtlsfast ahead:",
        "",
        "| against | " + " | ".join(f"{n:,} sessions" for n in SESSIONS) + " |",
        "| --- |" + " ---: |" * len(SESSIONS),
    ]
    for other in ("libcoap", "dtlsfast-pure", "aiocoap"):
        cells = []
        for n in SESSIONS:
            ours, theirs = by.get(("dtlsfast", n)), by.get((other, n))
            if not ours or not theirs or not ours["server_cpu_us_per_request"]:
                cells.append("-")
                continue
            rate = ours["requests_per_second"] / max(1e-9, theirs["requests_per_second"])
            cpu = theirs["server_cpu_us_per_request"] / ours["server_cpu_us_per_request"]
            user = theirs["server_user_us_per_request"] / max(
                0.05, ours["server_user_us_per_request"]
            )
            cells.append(f"{rate:.2f}x / {cpu:.2f}x / {user:.1f}x")
        lines.append(f"| {SERVERS[other]} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Machine: {results['machine']}. Command: `{results['command']}`.", ""]
    rows = results.get("throughput", [])
    if rows:
        lines += _throughput_markdown(rows, results.get("cpus"))
    hs = results.get("handshakes")
    if hs:
        lines += [
            "Full PSK handshakes per second (cookie exchange included, CCM_8):",
            "",
            "| server | one at a time, same client | 64 in flight (dtlsfast bench) |",
            "| --- | ---: | ---: |",
            f"| dtlsfast serve | {hs['dtlsfast_sequential']['per_second']:,.0f} | "
            f"{hs['dtlsfast_concurrent']['per_second']:,.0f} |",
            f"| openssl s_server | {hs['openssl_sequential']['per_second']:,.0f} | "
            "(serves one client at a time) |",
            "",
        ]
    mem = results.get("memory")
    if mem:
        lines += [
            "Memory per established session (each with one CoAP exchange done):",
            "",
            "| sessions | server RSS growth | per session | of which the Rust table |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for r in mem:
            lines.append(
                f"| {r['sessions']:,} | {r['rss_growth_kib'] / 1024:,.1f} MiB | "
                f"{r['bytes_per_session']:,} B | {r['table_bytes_per_session']:,} B |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per cell")
    parser.add_argument("--window", type=int, default=1, help="requests in flight per session")
    parser.add_argument(
        "--generator-processes",
        type=int,
        default=None,
        help="dtlsfast bench --processes for the cells with 2 sessions or more (default: one "
        "per client CPU when pinning, else 2)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler place the server and the clients (default: the server on the "
        "first CPU, the clients on the others, with taskset)",
    )
    parser.add_argument("--handshake-seconds", type=float, default=5.0)
    parser.add_argument(
        "--memory-sessions", default="10000,100000", help="session counts, comma separated"
    )
    parser.add_argument("--skip", default="", help="parts to skip: throughput,handshakes,memory")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    args = parser.parse_args()
    global PINNING
    PINNING = plan_cpus(not args.no_pin)
    if args.generator_processes is None:
        args.generator_processes = len(PINNING[1].split(",")) if PINNING else 2
    if args.generator_processes < 1:
        parser.error("--generator-processes must be at least 1")
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, Any] = {
        "machine": machine(),
        "command": "python benches/gateway.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "generator_processes": args.generator_processes,
        "cpus": {"server": PINNING[0], "clients": PINNING[1]} if PINNING else None,
    }
    with tempfile.TemporaryDirectory(prefix="dtlsfast-gateway-") as tmp:
        workdir = Path(tmp)
        if "throughput" not in skip:
            results["throughput"] = throughput(
                workdir, args.duration, args.window, args.generator_processes
            )
        if "handshakes" not in skip:
            results["handshakes"] = handshakes(workdir, args.handshake_seconds)
        if "memory" not in skip:
            sizes = tuple(int(n) for n in args.memory_sessions.split(","))
            results["memory"] = memory(workdir, sizes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
