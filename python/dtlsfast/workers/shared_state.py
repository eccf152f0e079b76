"""One application state across the workers of ``dtlsfast serve --workers N``.

A CoAP resource that opts in (``shared = True``,
:mod:`dtlsfast.coap.resource`; the seed system's ``light`` does) is one
resource however many workers serve it. When a request changes it on a
worker, that worker's :class:`Replica` sends the new state (the resource's
:meth:`~dtlsfast.coap.resource.Resource.export_state`) to the supervisor on
its control socket; the supervisor's :class:`StateBook` gives it the next
version (one order for all paths and all workers) and relays it to every
worker, the sender included. Each worker applies, per path, only versions
above the last it applied, and notifies its own observers with its own
Observe numbers (RFC 7641 §4.2, §4.4): so two concurrent PUTs on two
workers end, on every worker, with the one the supervisor ordered last. A
worker skips the echo of its own change when a newer change of its own is
already on the way, and notifies nobody again when the echo is the state it
has. A new worker (a restart) gets the book's current entries in its context
and applies them before it serves.

So that a client's next request sees its change whichever worker serves it,
each worker acknowledges every entry it applied (``{"op": "applied",
"version"}``), and once every worker has (or ``ACK_WAIT`` passed) the
supervisor tells the origin (``{"op": "settled", "seq"}``): the CoAP server
answers the request then (``shared_state_wait``,
:meth:`~dtlsfast.coap.server.CoapServer.add_replicator`). A worker that does
not acknowledge in time is lagging: later changes do not wait for it until it
has caught up, so a stopped worker costs one wait, not one per request.

Nothing here blocks or grows without bound: the book holds at most
``MAX_PATHS`` paths of at most ``MAX_STATE_BYTES`` each, and every stream
(worker to supervisor, supervisor to each worker) goes through a
:class:`LatestSender`, which writes without waiting and, once ``MAX_BUFFERED``
bytes wait for a slow or stopped reader, keeps only the newest line per path
until the stream drains: the older ones are dropped and counted (the reader
then jumps to the newest state, as RFC 7641 §4.5 lets a server skip
intermediate states), and a log line says so, at most once a minute.

The lines are JSON: worker to supervisor ``{"op": "state", "path", "seq",
"data"}`` (``seq`` counts the worker's own changes), supervisor to worker the
book's entry ``{"op": "state", "path", "version", "origin", "seq", "data"}``
(``origin``: the process ID of the worker that made the change; ``data``:
the state in hex).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dtlsfast.log_limiter import LogLimiter

log = logging.getLogger("dtlsfast.workers")

#: Longest state a resource may share, paths in the book, path length.
MAX_STATE_BYTES = 4096
MAX_PATHS = 256
MAX_PATH_LENGTH = 255
#: Bytes that may wait in a stream's buffer before lines are held back.
MAX_BUFFERED = 256 * 1024
#: How long the supervisor waits for the workers' acknowledgements.
ACK_WAIT = 0.5
#: Changes waiting for acknowledgements, at the supervisor and at a worker.
MAX_PENDING = 1024
#: Longest state line (hex doubles the state, JSON escapes a path character
#: in up to 12 bytes; the rest is JSON around them).
MAX_LINE = 2 * MAX_STATE_BYTES + 12 * MAX_PATH_LENGTH + 256

_limiter = LogLimiter(interval=60.0)


def _log_limited(key: str, message: str, *args: Any) -> None:
    if _limiter.allow(key, time.monotonic()):
        log.warning(message + " (at most one line a minute)", *args)


@dataclass(frozen=True, slots=True)
class Entry:
    """One path's state as the supervisor ordered it."""

    path: str
    version: int
    origin: int
    seq: int
    data: str
    """The state, hex."""

    def line(self) -> bytes:
        return json.dumps({"op": "state", **asdict(self)}).encode() + b"\n"

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Entry:
        """The entry a line carries; ValueError if it is not one."""
        path, data = message.get("path"), message.get("data")
        numbers = [message.get(name) for name in ("version", "origin", "seq")]
        if not isinstance(path, str) or not isinstance(data, str):
            raise ValueError("a state entry has a path and data")
        if not all(type(n) is int and n >= 0 for n in numbers):
            raise ValueError("a state entry's version, origin and seq are integers")
        if not 0 < len(path) <= MAX_PATH_LENGTH or len(data) > 2 * MAX_STATE_BYTES:
            raise ValueError("a state entry's path or data is too long")
        bytes.fromhex(data)
        version, origin, seq = (int(n) for n in numbers)  # type: ignore[arg-type]
        return cls(path, version, origin, seq, data)


class LatestSender:
    """Lines to one reader over an asyncio stream, never waiting and never
    queueing more than ``limit`` bytes; see the module docstring."""

    def __init__(
        self,
        writer: Any,
        counters: Counter[str],
        name: str,
        limit: int = MAX_BUFFERED,
        max_held: int = MAX_PATHS,
        prefix: str = "state",
    ) -> None:
        self._writer = writer
        self._counters = counters
        self._name = name
        self.limit = limit
        self.max_held = max_held
        """Lines held at most (past it, a line for a new key is dropped)."""
        self._prefix = prefix
        """Of the counters: ``<prefix>_dropped_closed``, ``_superseded``, ``_full``."""
        self._held: dict[Hashable, bytes] = {}
        self._flush: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Lines waiting for the stream to drain."""
        return len(self._held)

    def send(self, key: Hashable, line: bytes) -> None:
        """Write ``line`` now, or hold it as the newest for ``key``."""
        writer = self._writer
        if writer is None or writer.is_closing():
            self._counters[f"{self._prefix}_dropped_closed"] += 1
            return
        if not self._held and writer.transport.get_write_buffer_size() + len(line) <= self.limit:
            writer.write(line)
            return
        if key in self._held:
            # Moved to the end: the held lines go out in the order they were
            # made, so an acknowledgement of one covers all before it.
            del self._held[key]
            self._counters[f"{self._prefix}_dropped_superseded"] += 1
            _log_limited(
                f"superseded {self._name}",
                "state for %s: it reads slowly; an older line (%s) was dropped for a newer one",
                self._name,
                key,
            )
        elif len(self._held) >= self.max_held:
            self._counters[f"{self._prefix}_dropped_full"] += 1
            return
        self._held[key] = line
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._send_held())

    async def _send_held(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            while self._held and not self._writer.is_closing():
                await self._writer.drain()
                held, self._held = self._held, {}
                for line in held.values():
                    self._writer.write(line)

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        self._held.clear()
        self._writer = None


@dataclass
class Pending:
    """A change waiting for the workers' acknowledgements."""

    origin: int
    """The index of the worker that made it."""
    seq: int
    waiting: set[int] = field(default_factory=set)
    """The indices of the workers yet to acknowledge it."""


class StateBook:
    """The supervisor's shared state: the latest entry per path, versioned,
    and the changes the workers have yet to acknowledge. Sans-I/O: the
    supervisor relays the entries and sends what :meth:`applied` settles."""

    def __init__(self, max_paths: int = MAX_PATHS, max_pending: int = MAX_PENDING) -> None:
        self.max_paths = max_paths
        self.max_pending = max_pending
        self.version = 0
        self._entries: dict[str, Entry] = {}
        self._pending: OrderedDict[int, Pending] = OrderedDict()
        self.counters: Counter[str] = Counter()

    def update(self, origin: int, message: Mapping[str, Any]) -> Entry | None:
        """Order a worker's change (its line, parsed); None if refused (counted)."""
        try:
            entry = Entry.from_message(dict(message, version=0, origin=origin))
        except ValueError as exc:
            self.counters["state_invalid"] += 1
            _log_limited("invalid", "state from worker pid %d refused: %s", origin, exc)
            return None
        if entry.path not in self._entries and len(self._entries) >= self.max_paths:
            self.counters["state_refused_paths"] += 1
            _log_limited(
                "paths", "state for /%s refused: %d paths are shared", entry.path, self.max_paths
            )
            return None
        self.version += 1
        entry = Entry(entry.path, self.version, origin, entry.seq, entry.data)
        self._entries[entry.path] = entry
        self.counters["state_updates"] += 1
        return entry

    def expect(self, entry: Entry, origin: int, workers: set[int]) -> list[Pending]:
        """``workers`` are to acknowledge ``entry`` (made by worker index
        ``origin``); returns what is settled at once (the oldest, past
        ``max_pending``)."""
        self._pending[entry.version] = Pending(origin, entry.seq, set(workers))
        settled = []
        while len(self._pending) > self.max_pending:
            _, oldest = self._pending.popitem(last=False)
            self.counters["state_settled_early"] += 1
            settled.append(oldest)
        return settled + self._settle()

    def applied(self, worker: int, version: int) -> list[Pending]:
        """Worker index ``worker`` applied every entry up to ``version``."""
        for number, pending in self._pending.items():
            if number > version:
                break
            pending.waiting.discard(worker)
        return self._settle()

    def gone(self, worker: int, *, dead: bool = True) -> list[Pending]:
        """Nothing waits for worker index ``worker`` any more (lagging); if
        it is ``dead``, no one waits for the changes it made either."""
        for number, pending in list(self._pending.items()):
            pending.waiting.discard(worker)
            if dead and pending.origin == worker:
                del self._pending[number]
        return self._settle()

    def overdue(self, version: int) -> set[int]:
        """The workers that have not acknowledged ``version`` yet."""
        pending = self._pending.get(version)
        return set() if pending is None else set(pending.waiting)

    def _settle(self) -> list[Pending]:
        settled = [p for p in self._pending.values() if not p.waiting]
        if settled:
            for number in [n for n, p in self._pending.items() if not p.waiting]:
                del self._pending[number]
            self.counters["state_settled"] += len(settled)
        return settled

    def entries(self, after: int = 0) -> list[Entry]:
        """The current entries newer than version ``after``, oldest first."""
        return sorted((e for e in self._entries.values() if e.version > after), key=_version)


def _version(entry: Entry) -> int:
    return entry.version


class Replica:
    """A worker's side: sends its shared resources' changes, applies the
    supervisor's entries; see the module docstring."""

    def __init__(self, coap: Any, initial: list[dict[str, Any]] | None = None) -> None:
        self._coap = coap
        self._pid = os.getpid()
        self._versions: dict[str, int] = {}
        self._own: dict[str, int] = {}
        self._seq = 0
        self._early: dict[Hashable, bytes] = {}
        self._sender: LatestSender | None = None
        self._waiting: OrderedDict[int, asyncio.Future[None]] = OrderedDict()
        self.counters: Counter[str] = Counter()
        for message in initial or ():
            self.received(message, notify=False)
        coap.add_replicator(self._changed)

    def attach(self, writer: Any) -> None:
        """The control stream is up: send what changed before it was."""
        self._sender = LatestSender(writer, self.counters, "the supervisor")
        early, self._early = self._early, {}
        for key, line in early.items():
            self._sender.send(key, line)

    def _send(self, key: Hashable, message: dict[str, Any]) -> None:
        line = json.dumps(message).encode() + b"\n"
        if self._sender is None:
            self._early[key] = line
        else:
            self._sender.send(key, line)

    def _changed(self, path: str, state: bytes) -> asyncio.Future[None] | None:
        if len(state) > MAX_STATE_BYTES or len(path) > MAX_PATH_LENGTH:
            self.counters["state_too_large"] += 1
            _log_limited(
                f"large {path}",
                "/%s is shared but its state (%d bytes) is over %d: other workers do not see it",
                path,
                len(state),
                MAX_STATE_BYTES,
            )
            return None
        self._seq += 1
        self._own[path] = self._seq
        self.counters["state_sent"] += 1
        self._send(path, {"op": "state", "path": path, "seq": self._seq, "data": state.hex()})
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[self._seq] = settled
        while len(self._waiting) > MAX_PENDING:
            _, oldest = self._waiting.popitem(last=False)
            oldest.set_result(None)
        return settled

    def received(self, message: Mapping[str, Any], *, notify: bool = True) -> None:
        """A line from the supervisor (parsed): an entry or a settlement."""
        if message.get("op") == "settled":
            seq = message.get("seq")
            if type(seq) is int:
                self._settle(seq)
            return
        try:
            entry = Entry.from_message(message)
        except ValueError:
            self.counters["state_invalid"] += 1
            return
        self.counters["state_received"] += 1
        self._apply(entry, notify)
        if notify:
            self._send(("applied",), {"op": "applied", "version": entry.version})

    def _apply(self, entry: Entry, notify: bool) -> None:
        if entry.version <= self._versions.get(entry.path, 0):
            self.counters["state_stale"] += 1
            return
        self._versions[entry.path] = entry.version
        data = bytes.fromhex(entry.data)
        if entry.origin == self._pid:
            if entry.seq < self._own.get(entry.path, 0):
                return  # a newer change of ours comes after it
            if self._coap.shared_states().get(entry.path) == data:
                return  # our own change, already served and notified
        if self._coap.import_state(entry.path, data, notify=notify):
            self.counters["state_applied"] += 1
        else:
            _log_limited(
                f"apply {entry.path}", "the shared state of /%s could not be applied", entry.path
            )

    def _settle(self, seq: int) -> None:
        while self._waiting:
            first = next(iter(self._waiting))
            if first > seq:
                return
            done = self._waiting.pop(first)
            if not done.done():
                done.set_result(None)

    def close(self) -> None:
        self._coap.remove_replicator(self._changed)
        self._settle(self._seq)
        if self._sender is not None:
            self._sender.close()


__all__ = ["ACK_WAIT", "MAX_LINE", "Entry", "LatestSender", "Pending", "Replica", "StateBook"]
