"""The CoAP messaging sublayer's state: RFC 7252 §4.2, §4.4, §4.5.

- :class:`MessageIdAllocator`: Message IDs per remote endpoint, sequential from
  a random start so that one is not reused within EXCHANGE_LIFETIME (§4.4).
- :class:`Retransmitter`: Confirmable messages waiting for an ACK or RST, sent
  again with exponential back-off from a random initial timeout until
  MAX_RETRANSMIT retransmissions have gone unanswered (§4.2).
- :class:`DedupCache`: recently received (remote, Message ID) pairs with the
  reply that was sent, so a duplicate is answered with the same ACK and
  processed only once (§4.5).

Every structure has a per-remote and a total bound; hitting one evicts or
refuses and counts, it never grows.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable

from dtlsfast.coap.clock import Clock, TimerHandle
from dtlsfast.coap.params import TransmissionParameters


class MessageIdAllocator:
    """Sequential 16-bit Message IDs per remote endpoint (RFC 7252 §4.4)."""

    def __init__(self, rng: random.Random, max_remotes: int = 4096) -> None:
        self._rng = rng
        self._max = max_remotes
        self._next: OrderedDict[Hashable, int] = OrderedDict()

    def next(self, remote: Hashable) -> int:
        mid = self._next.pop(remote, None)
        if mid is None:
            mid = self._rng.randrange(0x10000)
            if len(self._next) >= self._max:
                self._next.popitem(last=False)
        self._next[remote] = (mid + 1) & 0xFFFF
        return mid


class Outcome(enum.Enum):
    """How a Confirmable transmission ended."""

    ACK = "ack"
    RESET = "reset"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class _Outgoing:
    __slots__ = ("data", "handle", "key", "on_result", "retransmits", "timeout")

    def __init__(
        self,
        key: tuple[Hashable, int],
        data: bytes,
        timeout: float,
        on_result: Callable[[Outcome], None],
    ) -> None:
        self.key = key
        self.data = data
        self.timeout = timeout
        self.retransmits = 0
        self.on_result = on_result
        self.handle: TimerHandle | None = None


class Retransmitter:
    """Confirmable messages in flight, keyed by (remote, Message ID)."""

    def __init__(
        self,
        clock: Clock,
        params: TransmissionParameters,
        rng: random.Random,
        send: Callable[[Hashable, bytes], None],
        *,
        per_remote: int,
        total: int,
        counters: Counter[str],
    ) -> None:
        self._clock = clock
        self._params = params
        self._rng = rng
        self._send = send
        self._per_remote = per_remote
        self._total = total
        self._counters = counters
        self._pending: dict[tuple[Hashable, int], _Outgoing] = {}
        # The Message IDs in flight by remote, in the order of _pending (a
        # dict as an ordered set): its count, and what a closed session
        # cancels without a scan of every remote's messages.
        self._ids: dict[Hashable, dict[int, None]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def count(self, remote: Hashable) -> int:
        ids = self._ids.get(remote)
        return 0 if ids is None else len(ids)

    def start(
        self,
        remote: Hashable,
        message_id: int,
        data: bytes,
        on_result: Callable[[Outcome], None],
    ) -> bool:
        """Send ``data`` now and keep retransmitting it; False (and nothing
        sent) when the remote or the total is at its bound."""
        if len(self._pending) >= self._total or self.count(remote) >= self._per_remote:
            self._counters["con_dropped_limit"] += 1
            return False
        key = (remote, message_id)
        if key in self._pending:
            self._counters["con_dropped_limit"] += 1
            return False
        out = _Outgoing(key, data, self._params.initial_timeout(self._rng), on_result)
        self._pending[key] = out
        self._ids.setdefault(remote, {})[message_id] = None
        self._send(remote, data)
        self._arm(out)
        return True

    def _arm(self, out: _Outgoing) -> None:
        out.handle = self._clock.call_later(out.timeout, lambda: self._fire(out))

    def _fire(self, out: _Outgoing) -> None:
        if self._pending.get(out.key) is not out:
            return
        if out.retransmits >= self._params.max_retransmit:
            self._counters["con_timeouts"] += 1
            self._finish(out, Outcome.TIMEOUT)
            return
        out.retransmits += 1
        out.timeout *= 2
        self._counters["retransmissions"] += 1
        self._send(out.key[0], out.data)
        self._arm(out)

    def _finish(self, out: _Outgoing, outcome: Outcome) -> None:
        del self._pending[out.key]
        remote, message_id = out.key
        ids = self._ids[remote]
        del ids[message_id]
        if not ids:
            del self._ids[remote]
        if out.handle is not None:
            out.handle.cancel()
        out.on_result(outcome)

    def resolve(self, remote: Hashable, message_id: int, outcome: Outcome) -> bool:
        """An ACK or RST matched a message in flight: stop it and report."""
        out = self._pending.get((remote, message_id))
        if out is None:
            return False
        self._finish(out, outcome)
        return True

    def replace(self, remote: Hashable, old_id: int, new_id: int, data: bytes) -> bool:
        """Send new content in place of a message in flight, keeping its
        retransmission counter and timeout (RFC 7641 §4.5.2)."""
        out = self._pending.pop((remote, old_id), None)
        if out is None:
            return False
        out.key = (remote, new_id)
        out.data = data
        self._pending[out.key] = out
        ids = self._ids[remote]
        del ids[old_id]
        ids[new_id] = None
        self._send(remote, data)
        return True

    def cancel_remote(self, remote: Hashable) -> None:
        """Stop every message in flight to ``remote`` (its session ended)."""
        for message_id in list(self._ids.get(remote, ())):
            self._finish(self._pending[(remote, message_id)], Outcome.CANCELLED)

    def close(self) -> None:
        for out in list(self._pending.values()):
            self._finish(out, Outcome.CANCELLED)


class DedupEntry:
    """What was sent in reply to one received message (§4.5)."""

    __slots__ = ("expires", "owner", "reply")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.reply: bytes | None = None
        #: The exchange still working on the request, if any.
        self.owner: object | None = None


class DedupCache:
    """Received (remote, Message ID) pairs within their lifetime (§4.5)."""

    def __init__(self, *, per_remote: int, total: int, counters: Counter[str]) -> None:
        self._per_remote = per_remote
        self._total = total
        self._counters = counters
        self._all: OrderedDict[tuple[Hashable, int], DedupEntry] = OrderedDict()
        # The Message IDs of each remote, oldest first: the ID itself for a
        # remote with one (most of a gateway's peers: no container per
        # peer), a plain dict (insertion-ordered) for more.
        self._by_remote: dict[Hashable, int | dict[int, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def get(self, remote: Hashable, message_id: int, now: float) -> DedupEntry | None:
        entry = self._all.get((remote, message_id))
        if entry is None:
            return None
        if entry.expires <= now:
            self._drop(remote, message_id)
            return None
        return entry

    def add(self, remote: Hashable, message_id: int, now: float, lifetime: float) -> DedupEntry:
        self._expire(now)
        self._drop(remote, message_id)
        mine = self._by_remote.get(remote)
        if mine is not None and (1 if isinstance(mine, int) else len(mine)) >= self._per_remote:
            self._drop(remote, mine if isinstance(mine, int) else next(iter(mine)))
            self._counters["dedup_evicted"] += 1
        if len(self._all) >= self._total:
            old_remote, old_mid = next(iter(self._all))
            self._drop(old_remote, old_mid)
            self._counters["dedup_evicted"] += 1
        entry = DedupEntry(now + lifetime)
        self._all[(remote, message_id)] = entry
        mine = self._by_remote.get(remote)
        if mine is None:
            self._by_remote[remote] = message_id
        elif isinstance(mine, int):
            self._by_remote[remote] = {mine: None, message_id: None}
        else:
            mine[message_id] = None
        return entry

    def _drop(self, remote: Hashable, message_id: int) -> None:
        if self._all.pop((remote, message_id), None) is None:
            return
        mine = self._by_remote[remote]
        if isinstance(mine, int):
            del self._by_remote[remote]
            return
        del mine[message_id]
        if len(mine) == 1:
            (self._by_remote[remote],) = mine

    def _expire(self, now: float) -> None:
        while self._all:
            (remote, mid), entry = next(iter(self._all.items()))
            if entry.expires > now:
                return
            self._drop(remote, mid)

    def remove_remote(self, remote: Hashable) -> None:
        mine = self._by_remote.pop(remote, None)
        if mine is None:
            return
        for mid in (mine,) if isinstance(mine, int) else mine:
            del self._all[(remote, mid)]


__all__ = ["DedupCache", "DedupEntry", "MessageIdAllocator", "Outcome", "Retransmitter"]
