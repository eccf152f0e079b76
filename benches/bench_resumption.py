"""Abbreviated (resumed, RFC 5246 §7.3) against full handshakes on the same
server: the server's own time per handshake, cookie exchange included.

In memory (pytest-benchmark, or ``python benches/bench_resumption.py``):
only the server's calls are timed (cookie gate, its connection, the
datagrams it receives and sends), the client's work is left out; full and
abbreviated rounds alternate and the best round of each counts, so the
ratio is "server handshakes per second, resumed / full". With ``--live``
the script also runs ``dtlsfast serve`` in a process pinned to CPU 0 and
``dtlsfast bench --mode handshakes`` (with and without ``--resume``,
alternating) pinned to CPU 1, and reports both rates and their ratio, and
the server's CPU time per handshake of each (from /proc; its ratio is
"server CPU per full / per abbreviated", the figure that does not depend
on how fast the Python client is).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "connection"))

from dtls_pair import client_config, server_config
from pki import Pki

from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.handshake.cookies import CookieJar
from dtlsfast.resumption import SavedSession, ServerResumption

SUITES = [
    "TLS_PSK_WITH_AES_128_CCM_8",
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
]
PEER = ("127.0.0.1", 40000)


def server_seconds(
    client_cfg: DtlsConfiguration,
    server_cfg: DtlsConfiguration,
    gate: CookieGate,
    resume: SavedSession | None = None,
) -> tuple[float, DtlsConnection]:
    """One lossless handshake; the seconds the server spent on it."""
    spent = 0.0
    client = DtlsConnection(client_cfg, peer="server", resume=resume)
    client.connect(0.0)
    server: DtlsConnection | None = None
    to_server = client.datagrams_to_send(0.0)
    while to_server:
        to_client: list[bytes] = []
        started = time.perf_counter()
        for datagram in to_server:
            if server is None:
                verdict, answer = gate.check(datagram, PEER, 0.0)
                if answer is None:
                    continue
                if verdict != "accepted":
                    to_client.append(answer)
                    continue
                server = DtlsConnection(server_cfg, peer=PEER)
                datagram = answer
            server.receive_datagram(datagram, 0.0)
        if server is not None:
            to_client.extend(server.datagrams_to_send(0.0))
        spent += time.perf_counter() - started
        for datagram in to_client:
            client.receive_datagram(datagram, 0.0)
        to_server = client.datagrams_to_send(0.0)
    assert client.established and server is not None and server.established
    assert (client.resumed is not None) == (resume is not None)
    return spent, client


def configs(suite: str, workdir: Path) -> tuple[DtlsConfiguration, DtlsConfiguration]:
    resumption = ServerResumption()
    if "ECDSA" in suite:
        workdir.mkdir(parents=True, exist_ok=True)
        pki = Pki(workdir)
        creds = pki.issue("server.example", dns=("server.example",))
        client = DtlsConfiguration.client(
            cafile=pki.cafile, ciphers=[suite], server_name="server.example"
        )
        server = DtlsConfiguration.server(
            certfile=creds.certfile, keyfile=creds.keyfile, ciphers=[suite], resumption=resumption
        )
        return client, server
    return client_config(ciphers=[suite]), server_config(ciphers=[suite], resumption=resumption)


def compare(suite: str, workdir: Path, count: int = 300, rounds: int = 5) -> dict[str, float]:
    """Server handshakes per second, full and abbreviated (best round of each)."""
    client_cfg, server_cfg = configs(suite, workdir)
    gate = CookieGate(load_backend("rust"), CookieJar(now=0.0))
    _, first = server_seconds(client_cfg, server_cfg, gate)
    saved = first.resumption
    assert saved is not None
    full = abbreviated = float("inf")
    for _ in range(rounds):
        full = min(full, sum(server_seconds(client_cfg, server_cfg, gate)[0] for _ in range(count)))
        abbreviated = min(
            abbreviated,
            sum(server_seconds(client_cfg, server_cfg, gate, saved)[0] for _ in range(count)),
        )
    return {
        "full_per_second": count / full,
        "abbreviated_per_second": count / abbreviated,
        "ratio": full / abbreviated,
    }


def test_abbreviated_against_full(benchmark: Any, tmp_path: Path) -> None:
    for suite in SUITES:
        result = compare(suite, tmp_path / suite, count=100, rounds=3)
        benchmark.extra_info[suite] = result
        assert result["ratio"] > 0
    client_cfg, server_cfg = configs(SUITES[0], tmp_path / "bench")
    gate = CookieGate(load_backend("rust"), CookieJar(now=0.0))
    saved = server_seconds(client_cfg, server_cfg, gate)[1].resumption
    benchmark.group = "resumption"
    benchmark(server_seconds, client_cfg, server_cfg, gate, saved)


# ----------------------------------------------------------------- live


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def live(duration: float = 4.0, rounds: int = 3, concurrency: int = 8) -> dict[str, Any]:
    """``dtlsfast serve`` on CPU 0, ``dtlsfast bench`` on CPU 1."""
    port = _free_port()
    env = dict(os.environ)
    serve = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "dtlsfast.cli", "serve",
         "--bind", "127.0.0.1", "--port", "0", "--coaps-port", str(port),
         "--hello-rate", "1000000", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rates: dict[str, list[float]] = {"full": [], "abbreviated": []}
    server_us: dict[str, list[float]] = {"full": [], "abbreviated": []}
    try:
        time.sleep(1.5)
        for _ in range(rounds):
            for name, extra in (("full", []), ("abbreviated", ["--resume"])):
                cpu0 = _cpu_seconds(serve.pid)
                out = subprocess.run(
                    ["taskset", "-c", "1", sys.executable, "-m", "dtlsfast.cli", "bench",
                     f"coaps://127.0.0.1:{port}/light", "--mode", "handshakes", "--json",
                     "--duration", str(duration), "--handshake-concurrency", str(concurrency),
                     *extra],
                    env=env, capture_output=True, text=True, timeout=duration + 30, check=True,
                )  # fmt: skip
                result = json.loads(out.stdout)
                rates[name].append(result["handshakes_per_second"])
                # The server's CPU over the whole run (its warm-up included).
                spent = _cpu_seconds(serve.pid) - cpu0
                server_us[name].append(round(1e6 * spent / max(1, result["handshakes"]), 1))
    finally:
        serve.terminate()
        serve.wait(10)
    best = {name: max(values) for name, values in rates.items()}
    least = {name: min(values) for name, values in server_us.items()}
    return {
        "rounds": rates,
        "best": best,
        "ratio": best["abbreviated"] / best["full"],
        "server_us_per_handshake": server_us,
        "server_cpu_ratio": least["full"] / least["abbreviated"],
    }


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        for suite in SUITES:
            result = compare(suite, Path(workdir) / suite)
            print(
                f"{suite:45s} server: full {result['full_per_second']:7,.0f}/s  "
                f"abbreviated {result['abbreviated_per_second']:7,.0f}/s  "
                f"ratio {result['ratio']:.2f}"
            )
    if "--live" in sys.argv:
        print("live (dtlsfast serve + dtlsfast bench --mode handshakes):", json.dumps(live()))
