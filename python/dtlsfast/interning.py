"""Bounded interning: one object for all equal values, so that many sessions
holding the same bytes or tuple pay for it once.

Used for what a fleet of sessions has in common (PSK identities, the shared
part of a settled session, observers' registering requests). The table is
bounded: once ``limit`` values are kept, a new value is returned as it came
(still correct, only not shared), so an attacker who varies the value cannot
grow it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Interner(Generic[T]):
    """``interner(value)``: the kept object equal to ``value``, or ``value``
    itself (kept too while there is room)."""

    __slots__ = ("_kept", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: dict[T, T] = {}

    def __call__(self, value: T) -> T:
        kept = self._kept.get(value)
        if kept is not None:
            return kept
        if len(self._kept) < self.limit:
            self._kept[value] = value
        return value

    def __len__(self) -> int:
        return len(self._kept)
