"""The session store's interface: what a server needs to persist its
established sessions and CoAP observations, and to restore them at start.

A deployment can keep them anywhere that implements :class:`SessionStore`;
:class:`~dtlsfast.store.sqlite.SqliteSessionStore` is the default and
:class:`MemorySessionStore` the reference (for tests). Every write is a
:class:`StoreBatch` applied atomically: after a crash the store holds the
batches applied before it, whole, and nothing of a later one. The records
hold session keys: an implementation must keep them encrypted at rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from dtlsfast.store.records import ObservationRecord, SessionRecord


@dataclass(slots=True)
class StoreBatch:
    """Changes applied together: upserts (by key, the last one wins) and
    deletions. Deleting a session deletes its observations."""

    sessions: list[SessionRecord] = field(default_factory=list)
    observations: list[ObservationRecord] = field(default_factory=list)
    deleted_sessions: list[bytes] = field(default_factory=list)
    deleted_observations: list[tuple[bytes, bytes]] = field(default_factory=list)
    """``(session_key, token)`` pairs."""
    resources: dict[str, bytes] = field(default_factory=dict)
    """Shared CoAP resources' state by path (upserts; ``Resource.export_state``)."""

    def __bool__(self) -> bool:
        return bool(
            self.sessions
            or self.observations
            or self.deleted_sessions
            or self.deleted_observations
            or self.resources
        )


@runtime_checkable
class SessionStore(Protocol):
    """Where established sessions and observations outlive the process."""

    def begin(self) -> int:
        """Count one more start of a server on this store, durably, and
        return the count (1 for the first): restored sessions' sequence
        numbers depend on it (:meth:`dtlsfast.store.StateSaver.resume`)."""

    def apply(self, batch: StoreBatch) -> None:
        """Apply ``batch`` atomically (deletions first, then upserts) and
        durably: once this returns, a crash of the process loses none of it."""

    def save(
        self, sessions: Iterable[SessionRecord], observations: Iterable[ObservationRecord] = ()
    ) -> None:
        """Upsert sessions and observations (one batch)."""

    def delete(
        self, sessions: Iterable[bytes], observations: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        """Delete sessions (with their observations) and observations (one batch)."""

    def load(self, key: bytes) -> SessionRecord | None:
        """One session, or None."""

    def iterate(self) -> Iterator[SessionRecord]:
        """Every session (in no particular order)."""

    def iterate_observations(self) -> Iterator[ObservationRecord]:
        """Every observation (in no particular order)."""

    def close(self) -> None:
        """Release the store; it is not used afterwards."""


@runtime_checkable
class ResourceStore(Protocol):
    """What a :class:`SessionStore` adds to keep CoAP resources' state as
    well (``StoreBatch.resources``, e.g. the ``light`` value): optional, so
    that stores written before it still serve; one without it keeps no
    resource state and a restarted server's resources start afresh."""

    def iterate_resources(self) -> Iterator[tuple[str, bytes]]:
        """Every saved resource state as ``(path, state)``."""


class BatchStore:
    """``save`` and ``delete`` in terms of ``apply``, for implementations."""

    def apply(self, batch: StoreBatch) -> None:
        raise NotImplementedError

    def save(
        self, sessions: Iterable[SessionRecord], observations: Iterable[ObservationRecord] = ()
    ) -> None:
        self.apply(StoreBatch(sessions=list(sessions), observations=list(observations)))

    def delete(
        self, sessions: Iterable[bytes], observations: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        self.apply(
            StoreBatch(deleted_sessions=list(sessions), deleted_observations=list(observations))
        )


class MemorySessionStore(BatchStore):
    """A store in a dict: the reference implementation of the protocol
    (nothing outlives the process)."""

    def __init__(self) -> None:
        self._starts = 0
        self._sessions: dict[bytes, SessionRecord] = {}
        self._observations: dict[tuple[bytes, bytes], ObservationRecord] = {}
        self._resources: dict[str, bytes] = {}

    def apply(self, batch: StoreBatch) -> None:
        for key in batch.deleted_sessions:
            self._sessions.pop(key, None)
            for pair in [p for p in self._observations if p[0] == key]:
                del self._observations[pair]
        for pair in batch.deleted_observations:
            self._observations.pop(pair, None)
        for record in batch.sessions:
            self._sessions[record.key] = record
        for obs in batch.observations:
            self._observations[(obs.session_key, obs.token)] = obs
        self._resources.update(batch.resources)

    def begin(self) -> int:
        self._starts += 1
        return self._starts

    def load(self, key: bytes) -> SessionRecord | None:
        return self._sessions.get(key)

    def iterate(self) -> Iterator[SessionRecord]:
        return iter(list(self._sessions.values()))

    def iterate_observations(self) -> Iterator[ObservationRecord]:
        return iter(list(self._observations.values()))

    def iterate_resources(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self._resources.items()))

    def close(self) -> None:
        pass


__all__ = ["BatchStore", "MemorySessionStore", "ResourceStore", "SessionStore", "StoreBatch"]
