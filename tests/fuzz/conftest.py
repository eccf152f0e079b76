"""Fuzz tests reuse the sans-I/O pair from tests/connection."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "connection"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))
