"""Every record-core test runs against both implementations: the Rust
``dtlsfast._core`` and its pure-Python twin ``dtlsfast.pure``."""

from __future__ import annotations

from types import ModuleType

import pytest

from dtlsfast import _core, pure


@pytest.fixture(params=["rust", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return _core if request.param == "rust" else pure
