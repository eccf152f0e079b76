"""benches/gateway.py in its quickest mode against dtlsfast alone, so that the
benchmark README's figures come from cannot rot. No timing is asserted: only
that every part ran, every session and observer was established and every
cell has its server and generator CPU figures. The quick Observe cell has 300
observers, past ``dtlsfast serve``'s default of 256 a resource: all registered
shows that the benchmark's ``--max-observers`` reaches the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "benches" / "gateway.py"
CGEN = os.environ.get("CGEN", "/tmp/cgen")


def run_gateway(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), CGEN=CGEN)
    return subprocess.run(
        [sys.executable, str(GATEWAY), "--quick", "--servers", "dtlsfast", *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip


def test_gateway_quick_against_dtlsfast(tmp_path: Path) -> None:
    has_cgen = Path(CGEN).exists()
    # get and handshakes are driven by cgen (an independent C client, built
    # outside the project); put and observe by dtlsfast's own clients.
    parts = "get,put,observe,handshakes" if has_cgen else "put,observe"
    out = tmp_path / "gateway.json"
    done = run_gateway(tmp_path, "--parts", parts, "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    cells = results["cells"]
    expected = {"put-4", "observe-300"} | (
        {"get-10", "hs-PSK", "hs-ECDHE-PSK", "hs-ECDHE-ECDSA"} if has_cgen else set()
    )
    assert set(cells) == expected
    for key, row in cells.items():
        cell = row["dtlsfast"]
        assert "failed" not in cell, (key, cell)
        assert cell["rate"] > 0 and cell["server_us"] > 0, (key, cell)
        assert cell["gen_cpu_pct"] is not None, (key, cell)
        assert cell["errors"] == 0, (key, cell)
        if "established" in cell:
            assert cell["established"] == {"put": 4, "observe": 300, "get": 10}[key.split("-")[0]]
    assert "| PUT, 4 sessions |" in done.stdout
    assert "µs/notif." in done.stdout


def test_gateway_without_cgen_says_how_to_get_it(tmp_path: Path) -> None:
    env_cgen = str(tmp_path / "no-such-cgen")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), CGEN=env_cgen)
    done = subprocess.run(
        [sys.executable, str(GATEWAY), "--quick", "--servers", "dtlsfast", "--parts", "get"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "cgen" in done.stderr and "README" in done.stderr
