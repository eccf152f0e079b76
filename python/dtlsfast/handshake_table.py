"""The server's half-open handshakes, in the order of their last progress.

A handshake is half-open from the ClientHello that carried a valid cookie
(RFC 6347 §4.2.1) until it completes. Its *progress* is the last time its
peer moved it on: a new message, or a retransmission of the peer's last
flight (RFC 6347 §4.2.4: the peer lost ours, and is alive). The table keeps
the handshakes ordered by progress, so that the one that has waited longest
since the server's flight is always first: the one to evict when the table is
full, and the first to expire when handshakes stall. It also counts them per
source address and per prefix (:mod:`dtlsfast.source_budget`), so that one
source can be held to its share.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class HalfOpen(Generic[T]):
    """One handshake in the table."""

    handle: T
    address: Hashable
    prefix: Hashable
    progress: float
    """When its peer last moved it on (or when it started)."""


class HalfOpenTable(Generic[T]):
    """Half-open handshakes keyed by the identity of their handle."""

    def __init__(self) -> None:
        self._all: OrderedDict[int, HalfOpen[T]] = OrderedDict()
        self._by_address: dict[Hashable, OrderedDict[int, HalfOpen[T]]] = {}
        self._by_prefix: dict[Hashable, OrderedDict[int, HalfOpen[T]]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, handle: object) -> bool:
        return id(handle) in self._all

    def __iter__(self) -> Iterator[HalfOpen[T]]:
        """The handshakes, the one that has waited longest first (do not
        change the table while iterating)."""
        return iter(self._all.values())

    def add(self, handle: T, address: Hashable, prefix: Hashable, now: float) -> None:
        entry = HalfOpen(handle, address, prefix, now)
        key = id(handle)
        self._all[key] = entry
        # Both groups spelt out: a loop over them costs a tuple of pairs per handshake.
        group = self._by_address.get(address)
        if group is None:
            group = self._by_address[address] = OrderedDict()
        group[key] = entry
        group = self._by_prefix.get(prefix)
        if group is None:
            group = self._by_prefix[prefix] = OrderedDict()
        group[key] = entry

    def touch(self, handle: T, now: float) -> None:
        """The handshake made progress: it goes to the back of every queue."""
        key = id(handle)
        entry = self._all.get(key)
        if entry is None:
            return
        entry.progress = now
        self._all.move_to_end(key)
        self._by_address[entry.address].move_to_end(key)
        self._by_prefix[entry.prefix].move_to_end(key)

    def remove(self, handle: T) -> None:
        key = id(handle)
        entry = self._all.pop(key, None)
        if entry is None:
            return
        for groups, group_key in (
            (self._by_address, entry.address),
            (self._by_prefix, entry.prefix),
        ):
            group = groups[group_key]
            del group[key]
            if not group:
                del groups[group_key]

    def at_address(self, address: Hashable) -> int:
        group = self._by_address.get(address)
        return 0 if group is None else len(group)

    def in_prefix(self, prefix: Hashable) -> int:
        group = self._by_prefix.get(prefix)
        return 0 if group is None else len(group)

    def counts(
        self, address: Hashable, prefix: Hashable, without: T | None = None
    ) -> tuple[int, int, int]:
        """The handshakes at ``address``, in ``prefix`` and in all (one
        call for the three), each less one if ``without`` is in the table:
        a handshake of that address that gives way."""
        freed = 1 if without is not None and id(without) in self._all else 0
        group = self._by_address.get(address)
        at_address = (0 if group is None else len(group)) - freed
        group = self._by_prefix.get(prefix)
        in_prefix = (0 if group is None else len(group)) - freed
        return at_address, in_prefix, len(self._all) - freed

    def oldest(self) -> HalfOpen[T] | None:
        """The handshake that has waited longest for its peer."""
        return next(iter(self._all.values()), None)

    def oldest_at_address(self, address: Hashable) -> HalfOpen[T] | None:
        group = self._by_address.get(address)
        return None if group is None else next(iter(group.values()), None)

    def oldest_in_prefix(self, prefix: Hashable) -> HalfOpen[T] | None:
        group = self._by_prefix.get(prefix)
        return None if group is None else next(iter(group.values()), None)

    def stalled(self, before: float) -> Iterator[HalfOpen[T]]:
        """The handshakes without progress since ``before``, oldest first (a
        snapshot: the caller may remove them while iterating)."""
        out = []
        for entry in self._all.values():
            if entry.progress >= before:
                break
            out.append(entry)
        return iter(out)


__all__ = ["HalfOpen", "HalfOpenTable"]
