"""Selects the record-core implementation: the Rust ``_core`` or ``pure``.

Both expose the same names (see ``_core.pyi``); the connection never imports
either directly, so one flag switches a whole endpoint to pure Python for
benchmarks and for the differential tests.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dtlsfast.exceptions import ConfigurationError


def load_backend(name: str) -> ModuleType:
    """Return the module implementing the record core for ``name``."""
    if name == "rust":
        return importlib.import_module("dtlsfast._core")
    if name == "pure":
        return importlib.import_module("dtlsfast.pure")
    raise ConfigurationError(f"unknown backend {name!r}: use 'rust' or 'pure'")
