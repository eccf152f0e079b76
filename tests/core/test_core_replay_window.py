"""The anti-replay window (RFC 6347 §4.1.2.6)."""

from __future__ import annotations

from types import ModuleType

import pytest

from dtlsfast.exceptions import ConfigurationError


def test_fresh_window_accepts_anything(impl: ModuleType) -> None:
    window = impl.ReplayWindow()
    assert window.size == 64 and window.highest is None
    assert window.check(0) and window.check(2**48 - 1)


def test_duplicates_and_old_records(impl: ModuleType) -> None:
    window = impl.ReplayWindow(64)
    window.accept(100)
    assert window.highest == 100
    assert not window.check(100)
    assert window.check(99) and window.check(37)  # inside the window
    assert not window.check(36)  # 100 - 64: left of the window
    window.accept(99)
    assert not window.check(99)
    assert window.check(101)


def test_edges_at_window_size(impl: ModuleType) -> None:
    window = impl.ReplayWindow(64)
    window.accept(0)
    window.accept(63)
    assert not window.check(0)
    assert window.check(1)
    window.accept(64)  # 0 leaves the window
    assert not window.check(0)
    assert window.check(1)
    window.accept(64 + 64)  # a jump of exactly the size
    assert not window.check(64)
    assert window.check(65)


def test_large_jump_clears_everything(impl: ModuleType) -> None:
    window = impl.ReplayWindow(128)
    for seq in range(10):
        window.accept(seq)
    window.accept(10_000)
    assert all(not window.check(seq) for seq in range(10))
    assert window.check(10_000 - 127)
    assert not window.check(10_000 - 128)


def test_accepting_an_old_number_changes_nothing(impl: ModuleType) -> None:
    window = impl.ReplayWindow(64)
    window.accept(1000)
    window.accept(5)
    assert window.highest == 1000
    assert window.check(999)


def test_last_sequence_number(impl: ModuleType) -> None:
    window = impl.ReplayWindow()
    window.accept(2**48 - 1)
    assert not window.check(2**48 - 1)
    assert window.check(2**48 - 2)
    assert not window.check(2**48)
    assert not window.check(-1)
    with pytest.raises(ConfigurationError):
        window.accept(2**48)


@pytest.mark.parametrize("size", [1, 64, 65, 1024, 8192])
def test_sizes(impl: ModuleType, size: int) -> None:
    window = impl.ReplayWindow(size)
    window.accept(size * 3)
    assert window.check(size * 3 - size + 1) == (size > 1)
    assert not window.check(size * 2)


@pytest.mark.parametrize("size", [0, 8193, -1])
def test_bad_sizes(impl: ModuleType, size: int) -> None:
    with pytest.raises(ConfigurationError, match="size"):
        impl.ReplayWindow(size)
