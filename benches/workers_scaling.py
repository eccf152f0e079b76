"""Scaling of ``dtlsfast serve --workers N``: requests per second and the
server's CPU per request with 1 and 2 workers (issue 16), side by side in one
run, measured by cgen (the C load generator of ../shared/tools/cgen).

    python benches/workers_scaling.py [--cgen /tmp/cgen] [--workers 1,2]
        [--sessions 1000] [--window 1] [--duration 5] [--json out.json]

Each cell starts a fresh server (``--workers 1`` is the plain single
process). Its CPU is the sum of user and system time, from /proc, of the
server process and all its children (the supervisor, the workers and the
idle standby) over cgen's measured phase, divided by the requests cgen
counted. Pinning: with one worker the server runs on the first CPU and cgen
on the second; with N workers the server may use the first N CPUs (all of
them on a 2-core machine, where cgen then shares them: its own CPU is
reported beside). The machine's core count is recorded. Timing lives here,
never in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            todo += [int(c) for c in children]
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


class Sampler:
    """CPU of a process tree sampled every 20 ms, with monotonic times."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pids = tree(self.pid)
        while not self._stop.wait(0.02):
            self.samples.append((time.monotonic(), cpu_seconds(pids)))

    def at(self, when: float) -> float:
        """CPU seconds at ``when`` (the nearest sample at or after it)."""
        for t, cpu in self.samples:
            if t >= when:
                return cpu
        return self.samples[-1][1]


@contextlib.contextmanager
def server(workers: int, port: int, cpus: str) -> Iterator[int]:
    argv = [
        "taskset", "-c", cpus, sys.executable, "-m", "dtlsfast.cli", "serve",
        "--bind", "127.0.0.1", "--port", "0", "--coaps-port", str(port),
        "--hello-rate", "1000000", "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # ready once every worker is up
            if len(tree(process.pid)) >= (1 if workers == 1 else 2 + workers):
                break
            time.sleep(0.1)
        time.sleep(1.0)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_cell(args: argparse.Namespace, workers: int, ncpu: int) -> dict[str, Any]:
    port = free_udp_port()
    server_cpus = "0" if workers == 1 else f"0-{min(workers, ncpu) - 1}"
    gen_cpus = "1" if workers == 1 and ncpu > 1 else f"0-{ncpu - 1}"
    with server(workers, port, server_cpus) as pid, Sampler(pid) as sampler:
        cgen = subprocess.run(
            [
                "taskset",
                "-c",
                gen_cpus,
                args.cgen,
                "--port",
                str(port),
                "--sessions",
                str(args.sessions),
                "--window",
                str(args.window),
                "--duration",
                str(args.duration),
                "--warmup",
                "1",
                "--hs-concurrency",
                "64",
            ],
            capture_output=True,
            text=True,
            timeout=args.duration + 120,
        )
        ended = time.monotonic()
    result: dict[str, Any] = json.loads(cgen.stdout.strip().splitlines()[-1])
    measured = float(result["seconds"])
    cpu = sampler.at(ended) - sampler.at(ended - measured)
    requests = max(int(result["requests"]), 1)
    return {
        "workers": workers,
        "server_cpus": server_cpus,
        "rps": result["rps"],
        "server_us_per_req": round(cpu / requests * 1e6, 2),
        "server_cpu_pct": round(cpu / measured * 100, 1),
        "gen_cpu_pct": result.get("gen_cpu_pct"),
        "other_cpu_pct": result.get("other_cpu_pct"),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "established": result["established"],
        "timeouts": result["timeouts"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cgen", default="/tmp/cgen")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not Path(args.cgen).exists():
        print(f"no cgen at {args.cgen}: see ../shared/tools/cgen/README.md", file=sys.stderr)
        return 2
    ncpu = len(os.sched_getaffinity(0))
    cells = [run_cell(args, int(n), ncpu) for n in args.workers.split(",")]
    base = cells[0]
    for cell in cells:
        cell["rps_ratio"] = round(cell["rps"] / base["rps"], 2)
        cell["cpu_per_req_ratio"] = round(cell["server_us_per_req"] / base["server_us_per_req"], 2)
    report = {"cores": ncpu, "machine": platform.machine(), "cells": cells}
    for cell in cells:
        print(
            f"workers {cell['workers']} (server CPUs {cell['server_cpus']}): "
            f"{cell['rps']:>9,.0f} req/s (x{cell['rps_ratio']}), "
            f"server {cell['server_us_per_req']} µs CPU/req (x{cell['cpu_per_req_ratio']}), "
            f"server {cell['server_cpu_pct']} % CPU, cgen {cell['gen_cpu_pct']} %, "
            f"others {cell['other_cpu_pct']} %, p99 {cell['p99_ms']} ms"
        )
    print(f"cores: {ncpu}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
