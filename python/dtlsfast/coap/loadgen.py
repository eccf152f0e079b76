"""The load generator's old home, kept importable: the generator is a tool,
not part of the CoAP protocol package (DESIGN.md), and lives in
:mod:`dtlsfast.loadgen`."""

from __future__ import annotations

from dtlsfast.loadgen import (
    GeneratorProcessError,
    HandshakeResult,
    LoadResult,
    Progress,
    run_handshakes,
    run_load,
)

__all__ = [
    "GeneratorProcessError",
    "HandshakeResult",
    "LoadResult",
    "Progress",
    "run_handshakes",
    "run_load",
]
