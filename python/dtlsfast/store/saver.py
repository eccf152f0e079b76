"""Periodic, incremental saving of established sessions, and the reserved
write sequence numbers that make a restore safe after ``kill -9``.

Sequence numbers (RFC 6347 §4.1) must never repeat under one key, but the
store cannot be written per record. So the store holds, per session, a
*reserved limit* instead of the live number: the live number stays below it,
and a restored session starts at the limit, past anything the dead process
could have sent. The saver renews a session's reservation, ``reserve``
numbers past its live one, once it has used half of the previous one; a
session would have to send ``reserve / 2`` records within one save interval
to outrun it. With the default ``2**24`` that is 8.4 million records in
``interval`` (5 s): 1.7 million records per second for one session, ten times
what the whole server seals on one core. A restart costs a session at most
``reserve`` of its 2**48 numbers, so 16 million restarts before it must
handshake again.

A restart must not wait for 100,000 new reservations to be written before
it serves, so each start of a server is counted in the store
(:meth:`~dtlsfast.store.protocol.SessionStore.begin`, one small durable
write) and each record says at which start it was saved. :meth:`StateSaver.resume`
starts a restored session at its saved limit plus :data:`RESTART_RESERVE`
for every start since then that did not save it again, and lets it use
``RESTART_RESERVE`` numbers from there before it must be saved: a process
that restored it and died before saving it could only have used those. The
session is saved again once it is active or has used half of that.

The saver is sans-I/O apart from the store it is given: the server tells it
which sessions changed (established, received records so that their replay
window moved, closed) and hands it a function that exports one session;
:meth:`StateSaver.flush` writes only what changed since the previous flush,
as one atomic batch. A crash loses what changed after the last flush: the
sessions established since (their peers handshake again) and the replay
window's progress since (see README's security notes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.store.protocol import SessionStore, StoreBatch
from dtlsfast.store.records import ObservationRecord, SessionRecord

MAX_SEQUENCE_NUMBER = (1 << 48) - 1
DEFAULT_RESERVE = 1 << 24
DEFAULT_INTERVAL = 5.0
#: What a restored session may use before it is saved again, and how far
#: each start that did not save it moves the next one on (part of the
#: store's format: changing it could reuse numbers).
RESTART_RESERVE = 1 << 24

#: Builds the record of one session for the store, its write sequence number
#: replaced by ``limit``; None if the session is gone.
Exporter = Callable[[bytes, int], SessionRecord | None]


class StateSaver:
    """Collects changes and writes them to a :class:`SessionStore` in batches."""

    def __init__(
        self,
        store: SessionStore,
        *,
        interval: float = DEFAULT_INTERVAL,
        reserve: int = DEFAULT_RESERVE,
        start: int = 0,
    ) -> None:
        """``start``: this process's start count (``store.begin()``), saved
        with every record (0 when the sessions are not resumed with
        :meth:`resume`)."""
        if not (math.isfinite(interval) and 0 < interval <= 60):
            raise ConfigurationError(f"the save interval must be in (0, 60] s, got {interval}")
        if not 1 << 10 <= reserve <= 1 << 32:
            raise ConfigurationError(f"reserve must be in 2**10..=2**32, got {reserve}")
        self.store = store
        self.interval = float(interval)
        self.reserve = reserve
        self.start = start
        self._limits: dict[bytes, int] = {}
        self._dirty: set[bytes] = set()
        self._removed: set[bytes] = set()
        self._observations: dict[tuple[bytes, bytes], ObservationRecord] = {}
        self._removed_observations: set[tuple[bytes, bytes]] = set()
        self._resources: dict[str, bytes] = {}
        self._last_flush: float | None = None

    # -- what the server reports --------------------------------------------

    def changed(self, key: bytes) -> None:
        """A session was established, restored or its state moved on."""
        self._dirty.add(key)
        self._removed.discard(key)

    def changed_all(self, keys: Iterable[bytes]) -> None:
        """:meth:`changed` for each of ``keys`` (a full save)."""
        self._dirty.update(keys)
        self._removed.difference_update(self._dirty)

    def removed(self, key: bytes) -> None:
        """A session ended (closed, evicted, expired): it is not restored."""
        self._dirty.discard(key)
        self._limits.pop(key, None)
        self._removed.add(key)
        for pair in [p for p in self._observations if p[0] == key]:
            del self._observations[pair]

    def observation_changed(self, observation: ObservationRecord) -> None:
        pair = (observation.session_key, observation.token)
        self._observations[pair] = observation
        self._removed_observations.discard(pair)

    def observation_removed(self, session_key: bytes, token: bytes) -> None:
        pair = (session_key, token)
        self._observations.pop(pair, None)
        self._removed_observations.add(pair)

    def resource_changed(self, path: str, state: bytes) -> None:
        """A shared CoAP resource's state changed (Resource.export_state)."""
        self._resources[path] = state

    def restored(self, key: bytes, limit: int) -> None:
        """A session was restored starting at its saved ``limit``: it needs
        a new reservation before it seals anything (flush first)."""
        self._limits[key] = limit
        self._dirty.add(key)

    def resume(self, record: SessionRecord) -> int | None:
        """Where the restored session of ``record`` starts sealing (see the
        module), with a reservation to there plus :data:`RESTART_RESERVE`
        that needs no save first; None if its sequence numbers would run
        out (it must handshake again)."""
        limit = int.from_bytes(record.record_state[8:16], "big")
        skipped = max(0, self.start - record.saved_at_start - 1)
        begin = limit + skipped * RESTART_RESERVE
        if begin + RESTART_RESERVE > MAX_SEQUENCE_NUMBER:
            return None
        self._limits[record.key] = begin + RESTART_RESERVE
        self._removed.discard(record.key)
        return begin

    def check_sequences(self, live: Iterable[tuple[bytes, int]]) -> int:
        """Mark dirty each session whose live write sequence number has
        used half its reservation; how many. Call before each flush with
        every session's ``(key, next_write_sequence)``."""
        half = self.reserve // 2
        count = 0
        for key, seq in live:
            limit = self._limits.get(key)
            if limit is None or seq + half >= limit:
                self._dirty.add(key)
                count += 1
        return count

    # -- writing -------------------------------------------------------------

    def due(self, now: float) -> bool:
        return self._last_flush is None or now >= self._last_flush + self.interval

    def next_due(self) -> float | None:
        """When the next flush is due (None: at once)."""
        return None if self._last_flush is None else self._last_flush + self.interval

    def limit_for(self, key: bytes, next_write_sequence: int) -> int:
        """The reserved limit to save for a session now: ``reserve`` past
        its live number, and never below one saved before."""
        limit = min(next_write_sequence + self.reserve, MAX_SEQUENCE_NUMBER)
        return max(limit, self._limits.get(key, 0))

    def flush(self, now: float, export: Exporter, live: Callable[[bytes], int | None]) -> int:
        """Write every change since the previous flush as one batch; how
        many sessions were saved. ``live(key)`` is the session's next write
        sequence number now (None if gone); ``export(key, limit)`` its record
        with ``limit`` in place of it. The new limits count only once the
        store has them."""
        batch = StoreBatch(
            deleted_sessions=sorted(self._removed),
            deleted_observations=sorted(self._removed_observations),
            observations=list(self._observations.values()),
            resources=dict(self._resources),
        )
        limits: dict[bytes, int] = {}
        # limit_for() inlined: this loop runs 100,000 times on a full save.
        saved, reserve, start = self._limits.get, self.reserve, self.start
        deleted, sessions = batch.deleted_sessions, batch.sessions
        for key in self._dirty:
            seq = live(key)
            if seq is None:
                deleted.append(key)
                continue
            limit = max(min(seq + reserve, MAX_SEQUENCE_NUMBER), saved(key, 0))
            record = export(key, limit)
            if record is None:
                deleted.append(key)
                continue
            record.saved_at_start = start
            sessions.append(record)
            limits[key] = limit
        if batch:
            self.store.apply(batch)  # raises before anything below is forgotten
        self._limits.update(limits)
        for key in batch.deleted_sessions:
            self._limits.pop(key, None)
        self._dirty.clear()
        self._removed.clear()
        self._observations.clear()
        self._removed_observations.clear()
        self._resources.clear()
        self._last_flush = now
        return len(batch.sessions)

    def saved_limit(self, key: bytes) -> int | None:
        """The limit the store holds for a session (its live number must stay below)."""
        return self._limits.get(key)

    @property
    def pending(self) -> int:
        """Changes waiting for the next flush."""
        return (
            len(self._dirty)
            + len(self._removed)
            + len(self._observations)
            + len(self._removed_observations)
            + len(self._resources)
        )


__all__ = ["DEFAULT_INTERVAL", "DEFAULT_RESERVE", "RESTART_RESERVE", "Exporter", "StateSaver"]
