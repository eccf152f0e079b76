"""Selects the record-core implementation: the Rust ``_core`` or ``pure``.

Both expose the same names (see ``_core.pyi``); the connection never imports
either directly, so one flag switches a whole endpoint to pure Python for
benchmarks and for the differential tests.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dtlsfast.exceptions import ConfigurationError

_MODULES = {"rust": "dtlsfast._core", "pure": "dtlsfast.pure"}
_LOADED: dict[str, ModuleType] = {}


def load_backend(name: str) -> ModuleType:
    """Return the module implementing the record core for ``name`` (looked
    up once: every connection asks)."""
    module = _LOADED.get(name)
    if module is None:
        path = _MODULES.get(name)
        if path is None:
            raise ConfigurationError(f"unknown backend {name!r}: use 'rust' or 'pure'")
        module = _LOADED[name] = importlib.import_module(path)
    return module
