"""A server's established sessions and CoAP observations kept in a session
store while it runs, and restored when it starts again (issue 15).

:class:`ServerState` is what :func:`dtlsfast.serve` drives with
``state_file=``: at start it restores every saved session (the peers carry
on with no handshake), their write sequence numbers past anything a previous
process could have sent (RFC 6347 §4.1: never reused, see
:mod:`dtlsfast.store.saver`); every ``interval`` seconds it saves the
sessions established since the previous save, those whose replay window
moved (they received records) and those whose reservation is half used, and
deletes the sessions that ended; when the server stops with its sessions
kept it saves what changed once more. A crash (``kill -9``, power cut) loses
what happened since the last save: sessions established since then
handshake again; records received since then could be replayed once to the
restarted server (its windows are those of the last save).

CoAP observations (RFC 7641) come from an :class:`ObservationSource` (the
CoAP-over-DTLS glue attaches one); their Observe values are reserved the way
sequence numbers are, so that a restarted server's notifications are newer
than any its predecessor sent (§4.4). A source that is also a
:class:`ResourceStateSource` has the state of its shared resources
(``shared = True``, :meth:`~dtlsfast.coap.resource.Resource.export_state`:
the ``light`` value) kept too, in a store that is a
:class:`~dtlsfast.store.protocol.ResourceStore`: saved when it changed,
given back at start.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Protocol

from dtlsfast.exceptions import ConfigurationError, StateFileError
from dtlsfast.store.connection_state import with_address
from dtlsfast.store.protocol import ResourceStore, SessionStore
from dtlsfast.store.records import ObservationRecord, SessionRecord
from dtlsfast.store.saver import DEFAULT_INTERVAL, DEFAULT_RESERVE, StateSaver
from dtlsfast.store.sqlite import SqliteSessionStore

logger = logging.getLogger("dtlsfast.store")

#: Observe values (24 bits, RFC 7641 §4.4) reserved past the live one: a
#: restarted server starts its notifications there.
OBSERVE_RESERVE = 1 << 16
_OBSERVE_MODULUS = 1 << 24
#: Bytes of the random name each saved session gets in the store.
KEY_LENGTH = 8


class ObservationSource(Protocol):
    """The CoAP side of the state: its observations of DTLS sessions."""

    def export_observations(self) -> list[tuple[Hashable, bytes, str, bytes]]:
        """Every observation as ``(session, token, path, encoded request)``."""

    def restore_observations(
        self, observations: Iterable[tuple[Hashable, bytes, str, bytes]]
    ) -> int:
        """Register observations again (the sessions are restored ones); how many."""

    @property
    def observe_value(self) -> int:
        """The last Observe value used (a 24-bit sequence, §4.4)."""

    @observe_value.setter
    def observe_value(self, value: int) -> None: ...


class ResourceStateSource(Protocol):
    """The CoAP side's shared resources (``shared = True``, Resource.export_state)."""

    def export_resource_states(self) -> dict[str, bytes]:
        """Every resource's saved state by path."""

    def restore_resource_states(self, states: Iterable[tuple[str, bytes]]) -> int:
        """Give the resources back their saved state; how many took it."""


class ServerState:
    """The saving and restoring of one server's sessions (see the module)."""

    def __init__(
        self,
        store: SessionStore,
        *,
        interval: float = DEFAULT_INTERVAL,
        reserve: int = DEFAULT_RESERVE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.saver = StateSaver(store, interval=interval, reserve=reserve)
        self.counters: Counter[str] = Counter()
        self._clock = clock
        self._server: Any = None
        self._peers: dict[bytes, tuple[Any, int]] = {}
        """Saved name -> (the server's peer, when its handshake completed)."""
        self._scratch: Any = None
        self._source: ObservationSource | None = None
        self._restored_observations: list[ObservationRecord] = []
        self._saved_observations: dict[tuple[bytes, bytes], tuple[str, bytes]] = {}
        self._registered: dict[tuple[bytes, bytes], int] = {}
        self._observe_limit: int | None = None
        self._restored_resources: list[tuple[str, bytes]] = []
        self._saved_resources: dict[str, bytes] = {}
        self._checked_activity = -float("inf")
        self._timer: Any = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        *,
        start_empty: bool = False,
        interval: float = DEFAULT_INTERVAL,
    ) -> ServerState:
        """The SQLite state file at ``path`` under the key file ``key_file``
        (created when missing); a StateFileError if the file is unusable."""
        store = SqliteSessionStore.from_key_file(path, key_file, start_empty=start_empty)
        if store.moved_aside is not None:
            logger.warning(
                "state file %s was unusable; moved to %s, starting with no saved sessions",
                path,
                store.moved_aside,
            )
        return cls(store, interval=interval)

    # -- start -----------------------------------------------------------------

    def restore(self, server: Any, now: float) -> int:
        """Restore every saved session into ``server`` (a DtlsServer, before
        its socket opens) and save their new reservations; how many."""
        with _bulk():
            return self._restore(server, now)

    def _restore(self, server: Any, now: float) -> int:
        self._server = server
        self._peers.clear()  # a server that could not open its socket had them
        self._scratch = server._table.__class__(1)
        self.saver.start = self.store.begin()  # durable before anything is sealed
        saved: list[tuple[SessionRecord, int]] = []
        resume, not_restored = self.saver.resume, self.saver.removed
        failed = 0
        for record in self.store.iterate():
            begin = resume(record)
            if begin is None:  # its sequence numbers ran out: it must handshake again
                not_restored(record.key)
                failed += 1
            else:
                saved.append((record, begin))
        restored = 0
        peers = self._peers
        for (record, _), peer in zip(saved, server._restore_sessions(saved, now), strict=True):
            key = record.key
            if peer is None:
                not_restored(key)
                failed += 1
                continue
            peer.state_key = key
            peers[key] = (peer, record.created)
            restored += 1
        if failed:
            self.counters["sessions_not_restored"] += failed
        self._restored_observations = list(self.store.iterate_observations())
        if isinstance(self.store, ResourceStore):
            self._restored_resources = list(self.store.iterate_resources())
        self.counters["sessions_restored"] += restored
        # Restored sessions are saved again once active (or half their
        # reservation used), not all at once now.
        self._checked_activity = now
        if restored:
            logger.info("restored %d DTLS sessions from the state file", restored)
        return restored

    def attach_observations(self, source: ObservationSource) -> int:
        """Take the observations from ``source`` from now on, and give it
        back those saved for restored sessions; how many it took."""
        self._source = source
        saved, self._restored_observations = self._restored_observations, []
        by_key = {key: peer.session for key, (peer, _) in self._peers.items()}
        entries = []
        newest: ObservationRecord | None = None
        for obs in saved:
            session = by_key.get(obs.session_key)
            if session is None:
                continue
            entries.append((session, obs.token, obs.path, obs.request))
            self._registered[(obs.session_key, obs.token)] = obs.registered
            self._saved_observations[(obs.session_key, obs.token)] = (obs.path, obs.request)
            if newest is None or obs.registered >= newest.registered:
                newest = obs
        if newest is not None:
            source.observe_value = newest.observe
            self._observe_limit = newest.observe
        count = source.restore_observations(entries)
        self.counters["observations_restored"] += count
        resources, self._restored_resources = self._restored_resources, []
        restore_states = getattr(source, "restore_resource_states", None)
        if resources and restore_states is not None:
            self._saved_resources = dict(resources)
            self.counters["resources_restored"] += restore_states(resources)
        return count

    # -- what the server reports ---------------------------------------------

    def established(self, peer: Any) -> None:
        """A new session: saved with the next flush."""
        key = os.urandom(KEY_LENGTH)
        while key in self._peers:
            key = os.urandom(KEY_LENGTH)
        peer.state_key = key
        self._peers[key] = (peer, int(self._clock()))
        self.saver.changed(key)

    def ended(self, peer: Any) -> None:
        """A saved session ended (closed, evicted, replaced): it is deleted."""
        key = peer.state_key
        peer.state_key = b""
        if self._peers.pop(key, None) is not None:
            self.saver.removed(key)

    # -- saving ----------------------------------------------------------------

    def start(self, loop: Any) -> None:
        """Save every ``interval`` seconds on ``loop`` until :meth:`close`."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(self.saver.interval, self._tick, loop)

    def _tick(self, loop: Any) -> None:
        self._timer = None
        try:
            self.flush(loop.time())
        except StateFileError as exc:
            self.counters["save_errors"] += 1
            logger.error("%s", exc)
        except Exception:
            self.counters["save_errors"] += 1
            logger.exception("saving the sessions failed; please report it")
        self._timer = loop.call_later(self.saver.interval, self._tick, loop)

    def flush(self, now: float, *, everything: bool = False) -> int:
        """Save what changed (with ``everything``, every session); how many
        sessions were written."""
        if not everything:
            return self._flush(now)
        with _bulk():
            return self._flush(now, everything=True)

    def _flush(self, now: float, *, everything: bool = False) -> int:
        server = self._server
        if server is None:
            return 0
        live: dict[bytes, int] = {}
        since = self._checked_activity
        self._checked_activity = now
        write_sequence, changed = self._write_sequence, self.saver.changed
        table_sequence = server._table.next_write_sequence
        for key, (peer, _) in self._peers.items():
            # _write_sequence() inlined for table sessions: 100,000 on a full save.
            table_id = peer.table_id
            seq = table_sequence(table_id) if table_id is not None else write_sequence(peer)
            if seq is None:
                continue
            live[key] = seq
            if not everything and self._activity(peer) > since:
                changed(key)
        if everything:
            self.saver.changed_all(live)
        else:
            self.saver.check_sequences(live.items())
        self._observations_changed()
        self._resources_changed()
        saved = self.saver.flush(now, self._export, live.get)
        self.counters["sessions_saved"] += saved
        return saved

    def _write_sequence(self, peer: Any) -> int | None:
        if peer.table_id is not None:
            seq = self._server._table.next_write_sequence(peer.table_id)
            return seq if isinstance(seq, int) else None
        conn = peer.conn
        if not conn.established:
            return None
        return int(conn.records.current_write.next_sequence)

    def _activity(self, peer: Any) -> float:
        self._server._refresh_activity(peer)
        return float(peer.session.last_activity)

    def _export(self, key: bytes, limit: int) -> SessionRecord | None:
        entry = self._peers.get(key)
        if entry is None:
            return None
        peer, created = entry
        conn = peer.conn
        if peer.table_id is None:
            return conn.session_record(key, limit, created, self._scratch)  # type: ignore[no-any-return]
        record: SessionRecord | None = conn.session_record(key, limit, created)
        if record is not None and record.local_cid is not None:
            # Not bound in the table (see DtlsServer._join_table): its address is the peer's.
            record.record_state = with_address(record.record_state, peer.addr)
        return record

    def _resources_changed(self) -> None:
        export = getattr(self._source, "export_resource_states", None)
        if export is None or not isinstance(self.store, ResourceStore):
            return
        saved = self._saved_resources
        for path, state in export().items():
            if saved.get(path) != state:
                saved[path] = state
                self.saver.resource_changed(path, state)

    def _observations_changed(self) -> None:
        source = self._source
        if source is None:
            return
        keys = {id(peer.session): key for key, (peer, _) in self._peers.items()}
        current: dict[tuple[bytes, bytes], tuple[str, bytes]] = {}
        for session, token, path, request in source.export_observations():
            key = keys.get(id(session))
            if key is not None:
                current[(key, token)] = (path, request)
        value = source.observe_value
        limit = self._observe_limit
        renew = limit is None or (limit - value) % _OBSERVE_MODULUS <= OBSERVE_RESERVE // 2
        if renew:
            limit = self._observe_limit = (value + OBSERVE_RESERVE) % _OBSERVE_MODULUS
        assert limit is not None
        now = int(self._clock())
        for pair in [p for p in self._saved_observations if p not in current]:
            del self._saved_observations[pair]
            self._registered.pop(pair, None)
            if pair[0] in self._peers:  # an ended session's go with it
                self.saver.observation_removed(*pair)
        for pair, value_ in current.items():
            if renew or self._saved_observations.get(pair) != value_:
                self._saved_observations[pair] = value_
                registered = self._registered.setdefault(pair, now)
                self.saver.observation_changed(
                    ObservationRecord(pair[0], pair[1], value_[0], value_[1], limit, registered)
                )

    # -- stop ------------------------------------------------------------------

    def close(self, now: float, *, save: bool = True) -> None:
        """Stop saving; with ``save``, save what changed since the last save
        first (the server is stopping and keeps its sessions for the next
        start). A session restored and not saved since needs no save: the
        next start begins it past this process's reservation."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            if save:
                with _bulk():
                    self._flush(now)
        finally:
            self._server = None
            self._peers.clear()
            self.store.close()


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """No cyclic garbage collection while 100,000 sessions are restored or
    saved at once: each collection would walk every session object, and a
    bulk restore allocates enough to trigger dozens (a third of its time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def default_key_file(state_file: str | os.PathLike[str]) -> str:
    """The state key file when none is given: beside the state file."""
    return os.fspath(state_file) + ".key"


def open_server_state(
    state_file: str | os.PathLike[str] | None,
    key_file: str | os.PathLike[str] | None,
    store: SessionStore | None,
    *,
    fallback_key_file: str | os.PathLike[str] | None = None,
    start_empty: bool = False,
    interval: float = DEFAULT_INTERVAL,
) -> ServerState | None:
    """The state of :func:`dtlsfast.serve`'s options: None without a state
    file or store; a ConfigurationError for both. The key file is
    ``key_file``, else ``fallback_key_file`` (the ticket key file), else
    :func:`default_key_file`."""
    if state_file is not None and store is not None:
        raise ConfigurationError("give state_file or session_store, not both")
    if store is not None:
        return ServerState(store, interval=interval)
    if state_file is None:
        if key_file is not None or start_empty:
            raise ConfigurationError(
                "state_key_file and state_reset need state_file (--state-file PATH)"
            )
        return None
    key = key_file if key_file is not None else fallback_key_file
    if key is None:
        key = default_key_file(state_file)
    return ServerState.open(state_file, key, start_empty=start_empty, interval=interval)


__all__ = [
    "KEY_LENGTH",
    "OBSERVE_RESERVE",
    "ObservationSource",
    "ResourceStateSource",
    "ServerState",
    "default_key_file",
    "open_server_state",
]
