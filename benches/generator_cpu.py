"""The load generator's own cost: CPU per request and per handshake, beside
the independent C generator (cgen, ../shared/tools/cgen), against one
``dtlsfast serve`` (or ``coap-server-openssl``) process.

    python benches/generator_cpu.py [--sessions 100,1000,10000] [--duration 5]
        [--cgen /tmp/cgen] [--processes 1] [--mode load|handshakes]
        [--server dtlsfast|libcoap] [--json out.json]

The server runs on CPU 0 and the generator on CPU 1 (``taskset``). Both
processes' CPU time (utime + stime from /proc, the generator's child
processes included) is sampled every 20 ms while the generator runs, and
read over exactly its measured phase (the window its JSON report gives):
CPU per request (or per handshake) is that CPU time divided by what was
done in the window. A fresh server for every cell. Loopback only; every
process is bounded by ``timeout`` and stopped by its own PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and of its live children (one level: the
    generator's worker processes), in seconds; 0 when it is gone."""
    total = 0.0
    for candidate in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(c) for c in text.split()]
    return found + [g for c in found for g in children(c)]


class Sampler:
    """(wall clock, server CPU, generator CPU) every 20 ms in a thread."""

    def __init__(self, server: int, generator: int) -> None:
        self.server, self.generator = server, generator
        self.samples: list[tuple[float, float, float]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self.samples.append(
                (time.time(), cpu_seconds(self.server), cpu_seconds(self.generator))
            )
            time.sleep(0.02)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def between(self, start: float, end: float) -> tuple[float, float, float]:
        """(seconds, server CPU, generator CPU) between the samples nearest
        inside ``start`` and ``end``."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0, 0.0
        first, last = inside[0], inside[-1]
        return last[0] - first[0], last[1] - first[1], last[2] - first[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server_process(kind: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    if kind == "dtlsfast":
        argv = [
            sys.executable,
            "-m",
            "dtlsfast.cli",
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--coaps-port",
            str(port),
            "--log-level",
            "warning",
        ]
    else:
        argv = ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port - 1), "-k",
                "esp32c3_key", "-h", "CoAP", "-d", "10"]  # fmt: skip
    proc = subprocess.Popen(
        ["taskset", "-c", "0", "timeout", "600", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5 if kind == "dtlsfast" else 0.5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_pid(proc: subprocess.Popen[bytes]) -> int:
    """The server itself: taskset execs timeout, which forks the server."""
    kids = children(proc.pid)
    return kids[-1] if kids else proc.pid


@dataclass
class Cell:
    generator: str
    sessions: int
    done: int
    seconds: float
    server_cpu: float
    generator_cpu: float

    def row(self, unit: str) -> dict[str, Any]:
        per = self.done / self.seconds if self.seconds else 0.0
        return {
            "generator": self.generator,
            "sessions": self.sessions,
            f"{unit}_per_second": round(per),
            f"generator_us_per_{unit}": round(self.generator_cpu / self.done * 1e6, 2)
            if self.done
            else None,
            f"server_us_per_{unit}": round(self.server_cpu / self.done * 1e6, 2)
            if self.done
            else None,
        }


def run_dtlsfast_bench(
    port: int, sessions: int, args: argparse.Namespace, server: int
) -> Cell | None:
    argv = [
        sys.executable, "-m", "dtlsfast.cli", "bench", f"coaps://127.0.0.1:{port}/light",
        "--sessions", str(sessions), "--duration", str(args.duration), "--json",
        "--processes", str(args.processes), "--handshake-concurrency", "64",
    ]  # fmt: skip
    if args.mode == "handshakes":
        argv += ["--mode", "handshakes"]
    gen = subprocess.Popen(
        ["taskset", "-c", "1", "timeout", "600", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sampler = Sampler(server, gen.pid)
    out, err = gen.communicate()
    sampler.stop()
    try:
        report = json.loads(out)
    except ValueError:
        print(f"dtlsfast bench failed: {err.decode()[-2000:]}", file=sys.stderr)
        return None
    start = report["load_started_at"]
    # Ignore the first and last 0.3 s: the phase's edges.
    seconds, server_cpu, gen_cpu = sampler.between(start + 0.3, start + report["duration"] - 0.3)
    rate = report["handshakes" if args.mode == "handshakes" else "requests"]
    done = rate / report["duration"] * seconds if report["duration"] else 0
    return Cell("dtlsfast bench", sessions, int(done), seconds, server_cpu, gen_cpu)


def run_cgen(port: int, sessions: int, args: argparse.Namespace, server: int) -> Cell | None:
    argv = [
        args.cgen, "--port", str(port), "--sessions", str(sessions), "--duration",
        str(args.duration), "--warmup", "1", "--hs-concurrency", "64",
    ]  # fmt: skip
    if args.mode == "handshakes":
        argv += ["--mode", "hs"]
    gen = subprocess.Popen(
        ["taskset", "-c", "1", "timeout", "600", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started = time.time()
    sampler = Sampler(server, gen.pid)
    out, err = gen.communicate()
    ended = time.time()
    sampler.stop()
    try:
        report = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        print(f"cgen failed: {err.decode()[-2000:]}", file=sys.stderr)
        return None
    # cgen measures the last `duration` seconds before it exits (after its
    # handshakes and warm-up); its close takes a moment after that.
    end = ended - 0.3
    begin = max(started, end - args.duration + 0.6)
    seconds, server_cpu, gen_cpu = sampler.between(begin, end)
    rate = float(report.get("per_second") or report.get("rps") or 0.0)
    return Cell("cgen (C)", sessions, int(rate * seconds), seconds, server_cpu, gen_cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="100,1000,10000")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--mode", choices=("load", "handshakes"), default="load")
    parser.add_argument("--server", choices=("dtlsfast", "libcoap"), default="dtlsfast")
    parser.add_argument("--cgen", default="/tmp/cgen")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        print("needs taskset and two CPUs", file=sys.stderr)
        return 1
    unit = "handshake" if args.mode == "handshakes" else "request"
    rows: list[dict[str, Any]] = []
    for sessions in (int(s) for s in args.sessions.split(",")):
        runners = [run_dtlsfast_bench]
        if args.cgen and Path(args.cgen).exists():
            runners.append(run_cgen)
        for runner in runners:
            port = free_port()
            with server_process(args.server, port) as proc:
                cell = runner(port, sessions, args, server_pid(proc))
            if cell is not None:
                row = cell.row(unit)
                row["server"] = args.server
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
