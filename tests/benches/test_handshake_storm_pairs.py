"""benches/handshake_storm.py's paired efficiency: libcoap's CPU per
handshake over a server's, run by run, its median and range (the figure that
holds on a machine whose speed drifts between runs). No timing is measured."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _storm_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "handshake_storm_bench", ROOT / "benches" / "handshake_storm.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(us_per_hs: float, handshakes: int = 1000) -> dict[str, Any]:
    return {"server_us_per_hs": us_per_hs, "handshakes": handshakes}


def test_pairs_are_taken_run_by_run_and_failed_runs_left_out() -> None:
    paired = _storm_module()._paired_efficiency
    ours = [_run(100), _run(150), _run(50, handshakes=0), _run(120)]
    libcoap = [_run(110), _run(120), _run(100), _run(240)]
    # 1.10, 0.80 and 2.00: the run without handshakes makes no pair.
    assert paired(ours, libcoap) == "1.10x (0.80 to 2.00)"
    assert paired(libcoap, libcoap) == "-"  # libcoap against itself
    assert paired(ours, []) == "-"
