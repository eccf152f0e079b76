"""Resumption tests: the sans-I/O pair (tests/connection/dtls_pair.py) is
importable as ``dtls_pair``."""

from __future__ import annotations

import sys
from pathlib import Path

_path = str(Path(__file__).resolve().parent.parent / "connection")
if _path not in sys.path:
    sys.path.insert(0, _path)
