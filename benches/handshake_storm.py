"""Full-handshake storms against dtlsfast and libcoap, side by side in one run.

    python benches/handshake_storm.py --cgen /tmp/cgen [--runs 3] [--duration 5]
        [--pki DIR] [--json out.json]

The client is cgen (OpenSSL's DTLS 1.2 client in C, /work/shared/tools/cgen;
``--mode hs``: full handshakes with the cookie exchange, close_notify after
each), so that the client is not the limit: PSK CCM_8 with 64 in flight and
one at a time, ECDHE-PSK ChaCha20 (x25519) with 64 in flight. cgen does no
certificates: the ECDHE-ECDSA storm (P-256 leaf and its CA, AES_128_GCM) uses
dtlsfast's own client, 8 loops of connect and close, and reads the server's
CPU time from /proc. Servers: ``dtlsfast serve`` (Rust core), ``dtlsfast
serve --backend pure`` and libcoap's ``coap-server-openssl``, each a fresh
process pinned to CPU 0, the client on CPU 1; runs are interleaved and the
medians reported, with each server's CPU efficiency against libcoap's over
the rounds' pairs of runs (libcoap's CPU over its own, above 1 when it costs
less). Server CPU per handshake is the comparison that holds when
the client is the limit. Timing lives here, never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PY = sys.executable
STORMS = {
    "PSK CCM_8, 64 in flight": ["--hs-concurrency", "64", "--cipher", "PSK-AES128-CCM8"],
    "PSK CCM_8, one at a time": ["--hs-concurrency", "1", "--cipher", "PSK-AES128-CCM8"],
    "ECDHE-PSK ChaCha20, 64 in flight": [
        "--hs-concurrency",
        "64",
        "--cipher",
        "ECDHE-PSK-CHACHA20-POLY1305",
    ],
}
SERVERS = ("dtlsfast", "dtlsfast-pure", "libcoap")
ECDSA_SUITE = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"

ECDSA_CLIENT = r"""
import asyncio, json, sys, time
import dtlsfast
port, loops, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ca, suite = sys.argv[4], sys.argv[5]
done = failed = 0
counting = False
async def loop():
    global done, failed
    while True:
        try:
            s = await dtlsfast.connect("127.0.0.1", port, cafile=ca, ciphers=[suite],
                                       server_name="localhost", handshake_timeout=5)
            await s.close()
            done += counting
        except Exception:
            failed += counting
async def main():
    global counting
    tasks = [asyncio.create_task(loop()) for _ in range(loops)]
    await asyncio.sleep(1.5)
    print("GO", flush=True)
    counting = True
    start = time.monotonic()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.monotonic() - start
    print(json.dumps({"handshakes": done, "failed": failed, "seconds": elapsed}), flush=True)
    for t in tasks:
        t.cancel()
asyncio.run(main())
"""


def make_pki(directory: Path) -> Path:
    """A P-256 CA and a leaf for localhost/127.0.0.1; chain.pem is leaf + CA."""

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    ssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=storm CA", "-days", "2",
        "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    ssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "leaf.key")
    ssl("req", "-new", "-key", "leaf.key", "-subj", "/CN=localhost", "-out", "leaf.csr")
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "leaf.pem")  # fmt: skip
    (directory / "chain.pem").write_text(
        (directory / "leaf.pem").read_text() + (directory / "ca.pem").read_text()
    )
    return directory


def start(kind: str, pki: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A server on 127.0.0.1 and its CoAPS port (a random one; another if the
    server could not bind it)."""
    for _ in range(5):
        port = random.randrange(20000, 40000) | 1
        process = _start(kind, port, pki)
        if process.poll() is None:
            return process, port
    raise RuntimeError(f"{kind} would not start")


def _start(kind: str, port: int, pki: Path | None) -> subprocess.Popen[bytes]:
    """CoAPS on ``port`` (libcoap serves CoAPS on its CoAP port + 1)."""
    if kind == "libcoap":
        argv = ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port - 1)]
        argv += ["-k", "esp32c3_key", "-h", "CoAP"] if pki is None else [
            "-c", str(pki / "chain.pem"), "-j", str(pki / "leaf.key"), "-n"]  # fmt: skip
    else:
        argv = [PY, "-m", "dtlsfast.cli", "serve", "--bind", "127.0.0.1", "--port", "0",
                "--coaps-port", str(port), "--hello-rate", "1000000", "--crypto-rate", "1000000",
                "--log-level", "warning",
                "--backend", "pure" if kind == "dtlsfast-pure" else "rust"]  # fmt: skip
        if pki is not None:
            argv += ["--cert", str(pki / "chain.pem"), "--key", str(pki / "leaf.key")]
    process = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL)
    time.sleep(1.0 if kind == "libcoap" else 3.0)
    return process


def cgen_storm(cgen: str, kind: str, args: list[str], seconds: float) -> dict[str, Any]:
    server, port = start(kind)
    try:
        argv = [cgen, "--mode", "hs", "--port", str(port), "--duration", str(seconds),
                "--warmup", "1", "--server-pid", str(server.pid), *args]  # fmt: skip
        out = subprocess.run(
            ["taskset", "-c", "1", *argv], capture_output=True, text=True, timeout=120
        ).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result
    finally:
        server.terminate()
        server.wait(10)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ecdsa_storm(kind: str, pki: Path, seconds: float) -> dict[str, Any]:
    server, port = start(kind, pki)
    try:
        client = subprocess.Popen(
            [
                "taskset",
                "-c",
                "1",
                PY,
                "-c",
                ECDSA_CLIENT,
                str(port),
                "8",
                str(seconds),
                str(pki / "ca.pem"),
                ECDSA_SUITE,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdout.readline().strip() == "GO"
        before = _cpu_seconds(server.pid)
        line = client.stdout.readline()
        spent = _cpu_seconds(server.pid) - before
        client.wait(30)
        result: dict[str, Any] = json.loads(line)
        result["per_second"] = result["handshakes"] / result["seconds"]
        result["server_us_per_hs"] = 1e6 * spent / max(1, result["handshakes"])
        return result
    finally:
        server.terminate()
        server.wait(10)


def _paired_efficiency(runs: list[dict[str, Any]], libcoap: list[dict[str, Any]]) -> str:
    """libcoap's CPU per handshake over this server's, run by run (the runs
    of one round are seconds apart, so a shared machine's drift, which can
    exceed the difference between servers, cancels out in each pair): the
    median and the range, ``-`` for libcoap itself or without pairs."""
    ratios = [
        theirs["server_us_per_hs"] / ours["server_us_per_hs"]
        for ours, theirs in zip(runs, libcoap, strict=False)
        if ours is not theirs and ours.get("handshakes") and theirs.get("handshakes")
    ]
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f} to {max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cgen", required=True, help="the cgen binary")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, storm in STORMS.items():
        for _ in range(args.runs):
            for kind in SERVERS:
                r = cgen_storm(args.cgen, kind, storm, args.duration)
                results.setdefault(name, {}).setdefault(kind, []).append(r)
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        name = "ECDHE-ECDSA AES_128_GCM, 8 loops of dtlsfast's client"
        for _ in range(args.runs):
            for kind in ("dtlsfast", "libcoap"):
                r = ecdsa_storm(kind, pki, args.duration)
                results.setdefault(name, {}).setdefault(kind, []).append(r)
    print(
        "| storm | server | server CPU per handshake | handshakes/s "
        "| CPU efficiency vs libcoap, paired runs |"
    )
    print("| --- | --- | ---: | ---: | ---: |")
    for name, by_kind in results.items():
        for kind, runs in by_kind.items():
            ok = [r for r in runs if r.get("handshakes")] or runs
            cpu = statistics.median(r["server_us_per_hs"] for r in ok)
            rate = statistics.median(r["per_second"] for r in ok)
            paired = _paired_efficiency(runs, by_kind.get("libcoap", []))
            print(f"| {name} | {kind} | {cpu:,.0f} µs | {rate:,.0f} | {paired} |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
