"""Session-ID resumption across the workers of ``dtlsfast serve --workers N``
(RFC 5246 §7.4.1.2 session IDs, §7.2 invalidation by a fatal alert).

Tickets resume on any worker because every worker derives the same ticket
keys; a session ID names an entry of one process's cache
(:class:`~dtlsfast.resumption.SessionIdCache`), and a client that resumes by
session ID from a new source port may reach another worker. So each worker's
:class:`SessionSharer` is the :attr:`~dtlsfast.resumption.ServerResumption.publisher`
of its cache: it collects the sessions its worker caches and the ones a
fatal alert invalidates, and every ``BATCH_INTERVAL`` (or once
``BATCH_BYTES`` wait) sends them as one line to the supervisor, so that a
handshake storm costs a line per batch, not per handshake. The supervisor's
:class:`SessionBook` checks the line, keeps the entries (bounded like a
cache, least recently stored dropped first, expired ones skipped) and
relays the line to every other worker, which merges it into its own cache
(:meth:`~dtlsfast.resumption.ServerResumption.merge`: the same bounds and
lifetime, counted from when the session was first stored, by the wall clock
every process on the machine shares). A worker that starts (a restart
included) is sent the book's current entries, then every batch, once it
says it serves (not before: nothing may follow its context line on the
control socket until it reads it as a stream), so it resumes the sessions
established before it started (a dead worker's last batch, up to
``BATCH_INTERVAL`` of its sessions, dies with it).

The lines carry master secrets between the processes of one server only:
over the control socket (a Unix socketpair), never a network socket; nothing
here logs an entry. Each stream (worker to supervisor, supervisor to each
worker) has a :class:`~dtlsfast.workers.shared_state.LatestSender` of its
own for sessions, beside the shared state's on the same socket, so that
batches never crowd out a resource's state: past ``MAX_HELD_BATCHES`` lines
waiting for a slow reader, batches are dropped (counted,
``sessions_dropped_full``), and a session a worker missed costs a full
handshake there, nothing more.

The line is JSON, ``{"op": "sessions", "bound": N, "lifetime": S, "ops":
[...]}``: each op ``["+", session_id, state, stored]`` (hex, hex of
:meth:`~dtlsfast.resumption.ResumptionState.encode`, wall-clock seconds) or
``["-", session_id]``, in the order they happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from dtlsfast.exceptions import DecodeError
from dtlsfast.resumption.server_resumption import ServerResumption
from dtlsfast.resumption.session_cache import SESSION_ID_LENGTH
from dtlsfast.resumption.session_state import MAX_LIFETIME, ResumptionState

log = logging.getLogger("dtlsfast.workers")

#: How long a worker gathers its new sessions before it sends them.
BATCH_INTERVAL = 0.015
#: Bytes of ops after which a batch goes at once.
BATCH_BYTES = 48 * 1024
#: Longest sessions line (a batch ends before it would pass this; one
#: session larger than it, a long certificate chain, is not shared).
MAX_SESSION_LINE = 128 * 1024
#: Most entries the supervisor's book keeps, whatever the workers' caches say.
MAX_BOOK = 1_000_000
#: Batch lines a stream holds while its reader is slow (each under about
#: ``BATCH_BYTES``: 48 MiB, some 200,000 sessions); past it, batches are dropped.
MAX_HELD_BATCHES = 1024
#: The longest encoded state a line may carry (hex).
MAX_STATE_HEX = MAX_SESSION_LINE - 512

_Op = list[Any]


def _op_size(op: _Op) -> int:
    return sum(len(str(part)) for part in op) + 12


def sessions_line(ops: list[_Op], bound: int, lifetime: float) -> bytes:
    return (
        json.dumps(
            {"op": "sessions", "bound": bound, "lifetime": lifetime, "ops": ops},
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )


def parse_op(op: Any) -> tuple[bytes, bytes | None, float]:
    """One op of a sessions line: (session ID, the encoded state or None
    for an invalidation, when it was stored); ValueError if it is not one.
    The state is not decoded here."""
    if type(op) is not list or not op:
        raise ValueError("an op is a list")
    size = len(op)
    sid = bytes.fromhex(op[1]) if size > 1 and type(op[1]) is str else b""
    if not 1 <= len(sid) <= SESSION_ID_LENGTH:
        raise ValueError("an op's session ID is 1 to 32 bytes, hex")
    if op[0] == "-" and size == 2:
        return sid, None, 0.0
    if op[0] != "+" or size != 4:
        raise ValueError("an op is [+, session ID, state, stored] or [-, session ID]")
    state, stored = op[2], op[3]
    if type(state) is not str or len(state) > MAX_STATE_HEX:
        raise ValueError("an op's state is hex, and bounded")
    if type(stored) not in (int, float) or not 0 <= stored < math.inf:  # NaN fails too
        raise ValueError("an op's time is a number of seconds")
    return sid, bytes.fromhex(state), float(stored)


def check_ops(message: Mapping[str, Any]) -> list[_Op]:
    """The ops of a sessions line (parsed), each checked (:func:`parse_op`);
    ValueError if any is not an op."""
    ops = message.get("ops")
    if type(ops) is not list:
        raise ValueError("a sessions line has a list of ops")
    for op in ops:
        parse_op(op)
    return ops


def _bounds(message: Mapping[str, Any]) -> tuple[int, float]:
    bound: Any = message.get("bound")
    lifetime: Any = message.get("lifetime")
    if type(bound) is not int or bound < 1:
        raise ValueError("a sessions line's bound is a positive integer")
    if type(lifetime) not in (int, float) or not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError("a sessions line's lifetime is a positive number of seconds")
    return min(bound, MAX_BOOK), float(lifetime)


class SessionSharer:
    """A worker's side: publishes its cache's changes in batches, merges
    the other workers'; see the module docstring."""

    def __init__(
        self,
        resumption: ServerResumption,
        *,
        interval: float = BATCH_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resumption = resumption
        self.interval = interval
        self._clock = clock
        self._ops: list[_Op] = []
        self._bytes = 0
        self._send: Callable[[bytes], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.counters: Counter[str] = Counter()
        """``sessions_sent`` (entries), ``session_batches_sent``,
        ``sessions_received`` (merged: the resumption's ``session_ids_merged``),
        ``sessions_invalidated``
        (by another worker), ``sessions_stale``, ``sessions_invalid``,
        ``sessions_too_large``."""
        assert resumption.cache is not None, "session IDs are off: nothing to share"
        resumption.publisher = self

    # -- to the supervisor -----------------------------------------------------

    def attach(self, send: Callable[[bytes], None]) -> None:
        """The control stream is up: ``send`` writes a line to the
        supervisor. What was cached before goes in the next batch."""
        self._send = send
        if self._ops:
            self._schedule()

    def added(self, session_id: bytes, state: ResumptionState, stored: float) -> None:
        op: _Op = ["+", session_id.hex(), state.encode().hex(), stored]
        if len(op[2]) > MAX_STATE_HEX:
            self.counters["sessions_too_large"] += 1
            return
        self._add(op)

    def dropped(self, session_id: bytes) -> None:
        self._add(["-", session_id.hex()])

    def _add(self, op: _Op) -> None:
        size = _op_size(op)
        if self._bytes + size > BATCH_BYTES and self._ops:
            self.flush()
        self._ops.append(op)
        self._bytes += size
        if self._bytes >= BATCH_BYTES:
            self.flush()
        else:
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and self._send is not None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Send the batch now (one line), if there is one and a stream."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._ops or self._send is None:
            return
        ops, self._ops, self._bytes = self._ops, [], 0
        cache = self.resumption.cache
        assert cache is not None
        self._send(sessions_line(ops, cache.max_entries, cache.lifetime))
        self.counters["session_batches_sent"] += 1
        self.counters["sessions_sent"] += sum(op[0] == "+" for op in ops)

    # -- from the supervisor -----------------------------------------------------

    def received(self, message: Mapping[str, Any]) -> None:
        """A sessions line from the supervisor (parsed): merge it, op by op
        (a malformed op is counted and skipped)."""
        ops = message.get("ops")
        if type(ops) is not list:
            self.counters["sessions_invalid"] += 1
            return
        counters, merge, decode = self.counters, self.resumption.merge, ResumptionState.decode
        for op in ops:
            try:
                sid, encoded, stored = parse_op(op)
                if encoded is None:
                    if merge(sid, None, 0.0):
                        counters["sessions_invalidated"] += 1
                    continue
                counters["sessions_received"] += 1
                if not merge(sid, decode(encoded), stored):
                    counters["sessions_stale"] += 1
            except (ValueError, DecodeError):
                counters["sessions_invalid"] += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.resumption.publisher is self:
            self.resumption.publisher = None
        self._send = None


class SessionBook:
    """The supervisor's side: the sessions every worker may resume, bounded,
    and the lines to relay. Sans-I/O (``clock`` is the wall clock)."""

    def __init__(
        self, clock: Callable[[], float] = time.time, counters: Counter[str] | None = None
    ) -> None:
        self._clock = clock
        # session ID (hex) -> (state hex, stored, expires)
        self._entries: OrderedDict[str, tuple[str, float, float]] = OrderedDict()
        self.bound = 1
        self.lifetime = 1.0
        self.counters: Counter[str] = Counter() if counters is None else counters
        """``sessions_shared``, ``sessions_unshared`` (invalidations),
        ``session_batches``, ``sessions_invalid``."""

    def update(self, message: Mapping[str, Any]) -> bool:
        """A worker's sessions line (parsed): keep its entries; False if it
        is refused (counted, never logged: it holds secrets). The caller
        relays the line as it came."""
        try:
            bound, lifetime = _bounds(message)
            ops = check_ops(message)
        except ValueError:
            self.counters["sessions_invalid"] += 1
            return False
        self.bound = max(self.bound, bound)
        self.lifetime = max(self.lifetime, lifetime)
        entries = self._entries
        for op in ops:
            if op[0] == "-":
                entries.pop(op[1], None)
                self.counters["sessions_unshared"] += 1
                continue
            entries[op[1]] = (op[2], op[3], op[3] + lifetime)
            entries.move_to_end(op[1])
            self.counters["sessions_shared"] += 1
        while len(entries) > self.bound:
            entries.popitem(last=False)
        self.counters["session_batches"] += 1
        return True

    def lines(self) -> list[bytes]:
        """The current entries (expired ones dropped) as sessions lines, the
        oldest first, each under ``BATCH_BYTES`` of ops: what a new worker
        is sent."""
        now = self._clock()
        for sid in [s for s, (_, _, expires) in self._entries.items() if now >= expires]:
            del self._entries[sid]
        lines: list[bytes] = []
        ops: list[_Op] = []
        size = 0
        for sid, (state, stored, _) in self._entries.items():
            op: _Op = ["+", sid, state, stored]
            ops.append(op)
            size += _op_size(op)
            if size >= BATCH_BYTES:
                lines.append(sessions_line(ops, self.bound, self.lifetime))
                ops, size = [], 0
        if ops:
            lines.append(sessions_line(ops, self.bound, self.lifetime))
        return lines

    def __len__(self) -> int:
        return len(self._entries)


__all__ = [
    "BATCH_INTERVAL",
    "MAX_HELD_BATCHES",
    "MAX_SESSION_LINE",
    "SessionBook",
    "SessionSharer",
    "check_ops",
    "parse_op",
    "sessions_line",
]
