"""The gateway benchmark: what a CoAPS gateway does all day, against dtlsfast
and the C and pure-Python servers, side by side, in one run on one machine.

    python benches/gateway.py [--quick] [--rounds 3] [--servers a,b] [--parts a,b]
                              [--json out.json] [--markdown out.md]

Servers, started afresh for every workload, all pinned to CPU 0 and idle
while another is measured: ``dtlsfast serve`` (Rust core), the same given two cores
(``--workers 2`` where ``serve`` has it, else ``taskset -c 0,1``: then it
shares CPU 1 with the generator), ``dtlsfast serve --backend pure``,
libcoap's ``coap-server-openssl`` and aiocoap's experimental coaps server
(tinydtls through DTLSSocket; PSK only: tinydtls has no ECDHE-PSK and
aiocoap's server takes no certificate). Parts:

- ``get``: GET /light (a published 3-byte answer) at 100, 1,000 and 10,000
  sessions, one request in flight per session, driven by ``/tmp/cgen``
  (OpenSSL's DTLS client in C, one socket per session, epoll);
- ``put``: PUT /light ``on`` from 100 sessions, by ``dtlsfast bench``: the
  handler runs in Python on dtlsfast (``LightResource.render_put``, which
  also notifies observers) and aiocoap, in C on libcoap;
- ``observe``: 10,000 sessions observe /light, one more PUTs it in a closed
  loop (the next PUT once 99 % of the previous round arrived, or after 2 s);
  notifications delivered per second, latency from PUT to arrival;
- ``handshakes``: full handshakes per second with the cookie exchange and
  close_notify, 64 in flight (cgen ``--mode hs``), for PSK
  (PSK-AES128-CCM8), ECDHE-PSK (x25519, ECDHE-PSK-CHACHA20-POLY1305) and
  ECDHE-ECDSA (P-256 leaf and CA, ECDHE-ECDSA-AES128-CCM8).

Every cell reports the server's own CPU time over the measured phase (from
/proc/PID/stat: per request, per notification, per handshake) and the
generator's CPU share. Each cell is the median of ``--rounds`` rounds (by
requests per second) and the rounds alternate between the servers, so that
the noise of a shared machine hits them all alike. Timing lives here, never
in the test suite's asserts.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY = sys.executable
CGEN = os.environ.get("CGEN", "/tmp/cgen")
SERVER_CPUS = "0"
CLIENT_CPUS = "1"

SERVERS = {
    "dtlsfast": "dtlsfast serve",
    "dtlsfast-2": "dtlsfast serve, 2 cores",
    "dtlsfast-pure": "dtlsfast serve --backend pure",
    "libcoap": "libcoap coap-server-openssl",
    "aiocoap": "aiocoap (tinydtls)",
}
SUITES = {
    "PSK": "PSK-AES128-CCM8",
    "ECDHE-PSK": "ECDHE-PSK-CHACHA20-POLY1305",
    "ECDHE-ECDSA": "ECDHE-ECDSA-AES128-CCM8",
}
#: What each server cannot do at all (no cell rather than a failure).
UNSUPPORTED = {"aiocoap": {"ECDHE-PSK", "ECDHE-ECDSA"}}
PARTS = ("get", "put", "observe", "handshakes")


@dataclass(frozen=True)
class Plan:
    """The sizes of one run: ``--quick`` shrinks every one of them."""

    rounds: int
    duration: float
    warmup: float
    get_sessions: tuple[int, ...]
    put_sessions: int
    observers: int
    hs_concurrency: int


FULL = Plan(3, 4.0, 1.0, (100, 1000, 10000), 100, 10000, 64)
QUICK = Plan(1, 1.0, 0.3, (10,), 4, 300, 8)


AIOCOAP_SERVER = """
import asyncio, sys
import aiocoap, aiocoap.resource as resource

class Light(resource.ObservableResource):
    def __init__(self):
        super().__init__()
        self.state = b"off"

    async def render_get(self, request):
        return aiocoap.Message(payload=self.state)

    async def render_put(self, request):
        self.state = request.payload
        self.updated_state()
        return aiocoap.Message(code=aiocoap.CHANGED)

async def main():
    site = resource.Site()
    site.add_resource(["light"], Light())
    # The coaps port is the bind port + 1 (aiocoap's own rule).
    ctx = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", int(sys.argv[1])))
    ctx.server_credentials.load_from_dict({":client": {"dtls": {
        "psk": {"ascii": "esp32c3_key"}, "client-identity": {"ascii": "CoAP"}}}})
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""

#: Observers: argv port count duration server_pid; one JSON line.
OBSERVERS = """
import asyncio, json, os, sys, time
import dtlsfast

PSK = ("CoAP", "esp32c3_key")

def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def has_observe(data):
    i, number = 4 + (data[0] & 15), 0
    while i < len(data) and data[i] != 0xFF:
        delta, length = data[i] >> 4, data[i] & 15
        i += 1
        if delta == 13:
            delta, i = data[i] + 13, i + 1
        elif delta == 14:
            delta, i = (data[i] << 8 | data[i + 1]) + 269, i + 2
        if length == 13:
            length, i = data[i] + 13, i + 1
        elif length == 14:
            length, i = (data[i] << 8 | data[i + 1]) + 269, i + 2
        number += delta
        if number == 6:
            return True
        if number > 6:
            return False
        i += length
    return False

async def main(port, count, duration, server_pid):
    registered, refused, arrived, latencies = 0, 0, 0, []
    state = {"sent_at": 0.0, "measuring": False}
    sessions = []
    limit = asyncio.Semaphore(64)
    failed = 0

    async def observer(i):
        nonlocal registered, refused, arrived, failed
        async with limit:
            try:
                s = await dtlsfast.connect("127.0.0.1", port, psk=PSK, handshake_timeout=30)
            except Exception:
                failed += 1
                return
        sessions.append(s)
        token = i.to_bytes(4, "big")
        mid = i & 0xFFFF
        # CON GET, Observe: 0, Uri-Path: light
        await s.send(bytes([0x44, 0x01, mid >> 8, mid & 255]) + token + b"\\x60\\x55light")
        first = True
        while True:
            try:
                data = await s.recv()
            except Exception:
                return
            if len(data) < 4:
                continue
            kind = (data[0] >> 4) & 3
            if kind == 0:  # CON notification: ACK it, or the server drops us
                s.send_nowait(bytes([0x60, 0, data[2], data[3]]))
            if data[1] != 0x45:
                continue
            if first:
                first = False
                if has_observe(data):
                    registered += 1
                else:
                    refused += 1  # answered, not registered: the server's cap
                    return
            elif state["measuring"]:
                arrived += 1
                latencies.append(time.perf_counter() - state["sent_at"])

    tasks = [asyncio.ensure_future(observer(i)) for i in range(count)]
    trigger = await dtlsfast.connect("127.0.0.1", port, psk=PSK, handshake_timeout=30)
    deadline = time.monotonic() + 200
    while registered + refused + failed < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    puts, mid, value = 0, 0, b"on"
    state["measuring"] = True
    t0, c0, s0 = time.perf_counter(), time.process_time(), cpu(server_pid)
    while time.perf_counter() - t0 < duration:
        target = arrived + 0.99 * registered
        mid = (mid + 1) & 0xFFFF
        state["sent_at"] = time.perf_counter()
        await trigger.send(bytes([0x40, 0x03, mid >> 8, mid & 255, 0xB5]) + b"light\\xff" + value)
        puts += 1
        value = b"off" if value == b"on" else b"on"
        round_end = time.perf_counter() + 2.0
        while arrived < target and time.perf_counter() < round_end:
            await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    gen, served = time.process_time() - c0, cpu(server_pid) - s0
    state["measuring"] = False
    latencies.sort()
    def pick(q):
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3, 2)
    print(json.dumps({
        "observers": registered, "refused": refused, "failed": failed, "puts": puts,
        "notifications": arrived,
        "seconds": elapsed, "per_second": arrived / elapsed,
        "p50_ms": pick(0.5), "p99_ms": pick(0.99),
        "gen_cpu_pct": 100 * gen / elapsed,
        "server_us_per_notification": 1e6 * served / max(1, arrived),
    }), flush=True)
    for t in tasks:
        t.cancel()
    for s in sessions:
        s.abort()
    trigger.abort()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
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


def make_certificates(workdir: Path) -> tuple[Path, Path]:
    """A P-256 CA and a leaf for 127.0.0.1 signed by it: (chain, leaf key)."""

    def ssl(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=workdir)

    ssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    ssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=gateway-bench CA",
        "-days", "2", "-out", "ca.pem")  # fmt: skip
    ssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "leaf.key")
    ssl("req", "-new", "-key", "leaf.key", "-subj", "/CN=127.0.0.1", "-out", "leaf.csr")
    (workdir / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "leaf.pem")  # fmt: skip
    chain = workdir / "chain.pem"
    chain.write_text((workdir / "leaf.pem").read_text() + (workdir / "ca.pem").read_text())
    return chain, workdir / "leaf.key"


def serve_has_workers() -> bool:
    done = subprocess.run(
        [PY, "-m", "dtlsfast.cli", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--workers" in done.stdout


@dataclass
class Server:
    kind: str
    process: subprocess.Popen[bytes]
    port: int
    """The CoAPS port."""
    log: Path

    @property
    def uri(self) -> str:
        return f"coaps://127.0.0.1:{self.port}/light"

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds so far, the process and its children
        that exited (``--workers``' are live: see :func:`_tree_cpu`)."""
        return _tree_cpu(self.process.pid)

    def pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        kids = [int(p) for p in text.split()]
        return kids + [g for k in kids for g in _children(k)]
    return []


def _tree_cpu(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in (pid, *_children(pid)):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _wait_for_log(log: Path, text: str, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {within} s:\n{log.read_text(errors='replace')}")


def _wait_until_serving(srv: Server) -> None:
    """Until a client gets "off" from /light (on libcoap's server a PUT creates
    it first: coap-client exits 0 even on 4.04, so the GET is what tells)."""
    base = ["coap-client-openssl", "-B", "2", "-u", "CoAP", "-k", "esp32c3_key"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if srv.process.poll() is not None:
            raise RuntimeError(f"{srv.kind} exited early:\n{srv.log.read_text(errors='replace')}")
        if srv.kind == "libcoap":
            subprocess.run(
                [*base, "-m", "put", "-e", "off", srv.uri], capture_output=True, timeout=10
            )
        done = subprocess.run([*base, srv.uri], capture_output=True, timeout=10)
        if b"off" in done.stdout:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{srv.kind} does not serve {srv.uri}")


@contextlib.contextmanager
def server(
    kind: str, workdir: Path, certs: tuple[Path, Path], workers: bool, observers: int
) -> Iterator[Server]:
    """A ``kind`` server process on SERVER_CPUS (two CPUs for dtlsfast-2)."""
    port = free_port_pair()
    log = workdir / f"{kind}-{port}.log"
    out = log.open("wb")
    chain, key = certs
    cpus = SERVER_CPUS
    env = dict(os.environ)
    if kind.startswith("dtlsfast"):
        argv = [PY, "-m", "dtlsfast.cli", "serve", "--bind", "127.0.0.1", "--port", "0",
                "--coaps-port", str(port + 1), "--log-level", "warning",
                "--cert", str(chain), "--key", str(key),
                # Every client here comes from one address (loopback): open
                # the per-source hello and public-key budgets, which
                # tests/faults measures (the default lets one prefix a
                # quarter of 1,000 ECDHE/ECDSA operations a second).
                "--hello-rate", "1000000", "--crypto-rate", "1000000"]  # fmt: skip
        # Room for every observer (the default is 256 of a resource).
        argv += ["--max-observers", str(max(256, observers + 64))]
        if kind == "dtlsfast-pure":
            argv += ["--backend", "pure"]
        if kind == "dtlsfast-2":
            if workers:
                argv += ["--workers", "2"]
            cpus = f"{SERVER_CPUS},{CLIENT_CPUS}"
        ready = None
    elif kind == "libcoap":
        argv = ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port),
                "-k", "esp32c3_key", "-h", "CoAP", "-d", "10",
                "-c", str(chain), "-j", str(key), "-n"]  # fmt: skip
        ready = None
    elif kind == "aiocoap":
        argv = [PY, "-c", AIOCOAP_SERVER, str(port)]
        env["AIOCOAP_SERVER_TRANSPORT"] = "tinydtls_server"
        ready = "ready"
    else:
        raise ValueError(kind)
    process = subprocess.Popen(
        ["taskset", "-c", cpus, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
    )
    srv = Server(kind, process, port + 1, log)
    try:
        if ready is not None:
            _wait_for_log(log, ready, process, 30)
        _wait_until_serving(srv)
        yield srv
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def _client(argv: list[str]) -> list[str]:
    return ["taskset", "-c", CLIENT_CPUS, *argv]


def _json_line(done: subprocess.CompletedProcess[bytes], what: str) -> dict[str, Any]:
    for line in reversed(done.stdout.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"{what} printed no result: {done.stderr.decode(errors='replace')[-2000:]}")


def cgen(srv: Server, plan: Plan, *extra: str) -> dict[str, Any]:
    """One cgen run against ``srv``, its CPU measured over the phase."""
    argv = [CGEN, "--port", str(srv.port), "--duration", str(plan.duration),
            "--warmup", str(plan.warmup), "--server-pid", str(srv.process.pid), *extra]  # fmt: skip
    cpu0 = srv.cpu_seconds()
    done = subprocess.run(_client(argv), capture_output=True, timeout=300)
    result = _json_line(done, "cgen")
    result["server_tree_cpu_s"] = srv.cpu_seconds() - cpu0
    return result


class CpuSampler:
    """Samples a server's CPU time every 20 ms, so that a phase announced
    afterwards (``dtlsfast bench``'s load phase) can be cut out."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.srv.cpu_seconds()))
            self._stop.wait(0.02)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        def at(when: float) -> float:
            before = [s for s in self.samples if s[0] <= when]
            return (before[-1] if before else self.samples[0])[1]

        return at(end) - at(start)


# -- the parts: each returns one cell's figures --------------------------------


def _server_us(srv: Server, result: dict[str, Any], key: str, count: int) -> float:
    """The server's CPU µs per unit: cgen's figure (the measured phase, from
    /proc of ``--server-pid``), or, for a server with worker processes, which
    cgen does not see, the whole tree's over the whole run (handshakes and
    warm-up included: an overestimate, said in the table's heading)."""
    if len(srv.pids()) == 1:
        return float(result[key])
    return round(result["server_tree_cpu_s"] / count * 1e6, 1)


def cell_get(srv: Server, plan: Plan, sessions: int) -> dict[str, Any]:
    r = cgen(srv, plan, "--sessions", str(sessions), "--hs-concurrency", "64", "--timeout", "5")
    requests = max(1, r["requests"])
    return {
        "rate": r["rps"],
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        "server_us": _server_us(srv, r, "server_us_per_req", requests),
        "server_user_us": r["server_user_us_per_req"],
        "server_sys_us": r["server_sys_us_per_req"],
        "gen_cpu_pct": r["gen_cpu_pct"],
        "established": r["established"],
        "errors": r["bad_code"] + r["timeouts"] + r["hs_failed"],
    }


def cell_put(srv: Server, plan: Plan, sessions: int) -> dict[str, Any]:
    argv = [PY, "-m", "dtlsfast.cli", "bench", srv.uri, "-m", "put", "-e", "on",
            "--sessions", str(sessions), "--duration", str(plan.duration), "--json",
            "--no-progress", "--handshake-concurrency", "64"]  # fmt: skip
    with CpuSampler(srv) as sampler:
        done = subprocess.run(_client(argv), capture_output=True, timeout=300)
    r = _json_line(done, "dtlsfast bench")
    start = r["load_started_at"]
    served = sampler.between(start, start + r["duration"])
    return {
        "rate": r["requests_per_second"],
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        "server_us": round(served / max(1, r["requests"]) * 1e6, 1),
        "gen_cpu_pct": r.get("generator_cpu_percent"),
        "established": r.get("sessions_established", sessions),
        "errors": r["errors"],
        "codes": r.get("response_codes", {}),
    }


def cell_observe(srv: Server, plan: Plan, observers: int) -> dict[str, Any]:
    argv = [PY, "-c", OBSERVERS, str(srv.port), str(observers), str(plan.duration),
            str(srv.process.pid)]  # fmt: skip
    cpu0 = srv.cpu_seconds()
    done = subprocess.run(_client(argv), capture_output=True, timeout=300)
    r = _json_line(done, "the observers")
    served = srv.cpu_seconds() - cpu0
    return {
        "rate": round(r["per_second"], 1),
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        # With worker processes, the whole tree over the whole run (see _server_us).
        "server_us": round(r["server_us_per_notification"], 1)
        if len(srv.pids()) == 1
        else round(served / max(1, r["notifications"]) * 1e6, 1),
        "gen_cpu_pct": round(r["gen_cpu_pct"], 1),
        "established": r["observers"],
        "errors": r["failed"],
        "refused": r["refused"],
        "puts": r["puts"],
        "server_cpu_s_whole_run": round(served, 2),
    }


def cell_handshakes(srv: Server, plan: Plan, suite: str) -> dict[str, Any]:
    r = cgen(srv, plan, "--mode", "hs", "--hs-concurrency", str(plan.hs_concurrency),
             "--cipher", SUITES[suite], "--timeout", "5")  # fmt: skip
    done = max(1, r["handshakes"])
    return {
        "rate": r["per_second"],
        "p50_ms": r["hs_p50_ms"],
        "p99_ms": r["hs_p99_ms"],
        "server_us": _server_us(srv, r, "server_us_per_hs", done),
        "gen_cpu_pct": r["gen_cpu_pct"],
        "errors": r["failed"],
    }


def median_cell(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate, and every round's rate beside it."""
    ordered = sorted(rounds, key=lambda c: c["rate"])
    cell = dict(ordered[(len(ordered) - 1) // 2])
    cell["rounds"] = [c["rate"] for c in rounds]
    return cell


def run_all(
    plan: Plan, kinds: list[str], parts: list[str], workdir: Path, workers: bool
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every (workload, server) cell: {workload: {server: cell}}."""
    certs = make_certificates(workdir)
    workloads: list[tuple[str, str, Callable[[Server], dict[str, Any]]]] = []
    if "get" in parts:
        for n in plan.get_sessions:
            workloads.append(
                (f"get-{n}", f"GET, {n:,} sessions", lambda s, n=n: cell_get(s, plan, n))
            )
    if "put" in parts:
        n = plan.put_sessions
        workloads.append((f"put-{n}", f"PUT, {n:,} sessions", lambda s, n=n: cell_put(s, plan, n)))
    if "observe" in parts:
        n = plan.observers
        workloads.append(
            (
                f"observe-{n}",
                f"Observe, {n:,} observers",
                lambda s, n=n: cell_observe(s, plan, n),
            )
        )
    if "handshakes" in parts:
        for suite in SUITES:
            workloads.append(
                (
                    f"hs-{suite}",
                    f"{suite} handshakes",
                    lambda s, x=suite: cell_handshakes(s, plan, x),
                )
            )
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for key, label, measure in workloads:
        # Fresh servers for every workload: what one leaves behind (libcoap
        # keeps closed sessions a while and slows down with each) must not
        # weigh on the next.
        with contextlib.ExitStack() as stack:
            servers = {
                k: stack.enter_context(server(k, workdir, certs, workers, plan.observers))
                for k in kinds
            }
            results[key] = {"_label": {"label": label}}
            for kind in kinds:
                results[key][kind] = {"rounds": []}
            for round_no in range(plan.rounds):
                # Alternate the order too, so that no server always goes first.
                order = kinds if round_no % 2 == 0 else kinds[::-1]
                for kind in order:
                    if key.startswith("hs-") and key[3:] in UNSUPPORTED.get(kind, set()):
                        continue
                    if key.startswith("observe") and round_no > 0:
                        continue  # 10,000 sessions once per server: see README
                    srv = servers[kind]
                    if srv.process.poll() is not None:
                        continue
                    try:
                        cell = measure(srv)
                    except (RuntimeError, subprocess.TimeoutExpired, KeyError) as exc:
                        cell = {"rate": 0.0, "failed": str(exc)[-300:]}
                    print(
                        f"[{key} {kind} #{round_no}] {json.dumps(cell)}",
                        file=sys.stderr,
                        flush=True,
                    )
                    results[key][kind]["rounds"].append(cell)
            for kind in kinds:
                measured = results[key][kind]["rounds"]
                results[key][kind] = median_cell(measured) if measured else {}
    return results


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


def _cell(c: dict[str, Any], unit: str) -> str:
    if not c:
        return "n/a"
    if "failed" in c:
        return "failed"
    errors = f", {c['errors']:,} errors" if c.get("errors") else ""
    if c.get("refused"):
        errors += f", {c['established']:,} registered ({c['refused']:,} refused)"
    gen = c.get("gen_cpu_pct")
    gen_text = f"gen {gen:.0f} %" if gen is not None else "gen ?"
    return (
        f"{c['rate']:,.0f}/s ({c['p50_ms']:.1f} / {c['p99_ms']:.1f} ms{errors}); "
        f"{c['server_us']:,.1f} µs/{unit}; {gen_text}"
    )


def markdown(results: dict[str, Any]) -> str:
    cells = results["cells"]
    kinds = results["servers"]
    two = results["two_cores"]
    lines = [
        f"Machine: {results['machine']}. Command: `{results['command']}`. "
        f"{results['rounds']} round(s) per cell (median by rate), rounds alternating between "
        f"servers. Servers on CPU {SERVER_CPUS}, generators on CPU {CLIENT_CPUS} (taskset); "
        f"'{SERVERS['dtlsfast-2']}' is {two}.",
        "",
        "Each cell: rate (p50 / p99 latency); the server's CPU time per request, notification "
        "or handshake over the measured phase; the generator's CPU share (gen, % of one core: "
        "near 100 % the generator sets the pace and the server's CPU time is the fair "
        "comparison).",
        "",
        "| workload | " + " | ".join(SERVERS[k] for k in kinds) + " |",
        "| --- |" + " ---: |" * len(kinds),
    ]
    for key, row in cells.items():
        unit = "hs" if key.startswith("hs-") else "notif." if key.startswith("observe") else "req"
        lines.append(
            f"| {row['_label']['label']} | "
            + " | ".join(_cell(row.get(k, {}), unit) for k in kinds)
            + " |"
        )
    lines.append("")
    others = [k for k in kinds if k != "dtlsfast"]
    if "dtlsfast" in kinds and others:
        lines += [
            "dtlsfast serve (one core) against each: the other's server CPU per unit over "
            "dtlsfast's (above 1: dtlsfast needs less), and rate over rate in parentheses:",
            "",
            "| workload | " + " | ".join(SERVERS[k] for k in others) + " |",
            "| --- |" + " ---: |" * len(others),
        ]
        for row in cells.values():
            ours = row.get("dtlsfast", {})
            out = []
            for k in others:
                theirs = row.get(k, {})
                if (
                    not ours.get("server_us")
                    or not theirs.get("server_us")
                    or not theirs.get("rate")
                ):
                    out.append("n/a")
                    continue
                out.append(
                    f"{theirs['server_us'] / ours['server_us']:.2f}x "
                    f"({ours['rate'] / theirs['rate']:.2f}x)"
                )
            lines.append(f"| {row['_label']['label']} | " + " | ".join(out) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (seconds)")
    parser.add_argument("--rounds", type=int, help="rounds per cell (default 3; 1 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds measured per cell (default 4)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma separated")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma separated")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds is not None:
        plan = Plan(max(1, args.rounds), *list(plan.__dict__.values())[1:])
    if args.duration is not None:
        plan = Plan(plan.rounds, args.duration, *list(plan.__dict__.values())[2:])
    kinds = [k for k in args.servers.split(",") if k]
    parts = [p for p in args.parts.split(",") if p]
    for name, allowed in ((kinds, SERVERS), (parts, PARTS)):
        unknown = set(name) - set(allowed)
        if unknown:
            parser.error(f"unknown {sorted(unknown)}: choose from {', '.join(allowed)}")
    needs_cgen = {"get", "handshakes"} & set(parts)
    if needs_cgen and not shutil.which(CGEN) and not os.path.exists(CGEN):
        parser.error(f"no cgen at {CGEN}: see /work/shared/tools/cgen/README.md (or set CGEN)")
    workers = serve_has_workers()
    results: dict[str, Any] = {
        "machine": machine(),
        "command": "python benches/gateway.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "plan": plan.__dict__,
        "servers": kinds,
        "two_cores": "`--workers 2` on CPUs 0,1"
        if workers
        else "`taskset -c 0,1` (serve has no --workers yet: one process on two CPUs, "
        "sharing CPU 1 with the generator)",
        "rounds": plan.rounds,
    }
    with tempfile.TemporaryDirectory(prefix="dtlsfast-gateway-") as tmp:
        results["cells"] = run_all(plan, kinds, parts, Path(tmp), workers)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
