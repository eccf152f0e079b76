"""Fuzz tests reuse the sans-I/O pair from tests/connection and the front-door
crafting helpers from tests/faults."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "connection"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))
