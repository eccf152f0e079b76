"""The MAC-error filter: open every record until forgeries cost real CPU.

RFC 6347 §4.1.2.7 has a DTLS endpoint silently discard records that fail
authentication, and lets it keep a count and act once the count is exceeded.
The action must not hand the forger what it wants: anyone who knows a
session's address (or its connection ID, RFC 9146, which travels in clear)
can send records that fail authentication, and a filter that drops a
session's datagrams unopened after a few failures shuts the genuine peer out
for the price of a few forged records a second.

So the filter throttles only where opening costs real CPU. What one forged
record costs the server (``benches/bench_forged_records.py``, medians on a
loaded 2-core machine; opened and dropped, against dropped unopened):

=============================================  ============  ============
path                                           opened        unopened
=============================================  ============  ============
Rust session table, batch path (64 a call)     0.5 µs        0.34 µs
settled session, asyncio transport             3.2 µs        1.4 µs
full DtlsConnection (CID session, handshake)   6 to 12 µs    1.6 to 2.6 µs
the same two with ``backend="pure"``           17 to 35 µs   1.3 to 3.2 µs
=============================================  ============  ============

(asyncio's own 3 to 5 µs per received datagram come on top on the Python
paths, throttled or not.) A filter saves only the difference between the
columns, so below rates where that difference is a real share of a core,
every record is opened:

- **A session's own address** (the address its records come from, the only
  one the session table's demultiplexer routes): a token bucket per session.
  Each failure takes a token; while the bucket is empty the session's
  datagrams are dropped unopened (``dropped_auth_throttled``), and they are
  opened again as soon as a token comes back. Defaults, about a tenth of a
  core each: 20,000 failures a second after a burst of 2,000 for records
  opened in Python (``ServerLimits.auth_failure_rate`` and ``_burst``),
  200,000 after 20,000 in the Rust table (``auth_failure_table_rate`` and
  ``_burst``; its own bucket, in rust/session_table.rs, and the pure twin's).
  Past them the genuine peer's records are opened in the proportion of the
  tokens that come back to the datagrams that arrive.
- **Anyone else** (a record naming a session's CID from an address that is
  not the session's): a bucket per *source* host, held in
  :class:`SourceFilters`, a bounded table, never the session's. The forger
  throttles itself: the session and its genuine records are untouched, and
  its peer's move to a new address (RFC 9146 §6) waits only if the new host
  is the forger. The
  table holds at most ``capacity`` sources; a newcomer takes the slot of the
  least recently charged source once that one's bucket is full again (so
  forgetting it forgets nothing), and while every slot is in use, newcomers
  share one overflow bucket, so that spoofing many source addresses buys no
  more openings than one source gets.

Neither bucket ever closes a session: a forger cannot tear it down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class AuthFailureFilter:
    """Token bucket over authentication failures (one session, or one source)."""

    burst: float
    """Failures tolerated at once before throttling starts."""
    rate: float
    """Failures per second tolerated in the long run (the refill rate)."""
    now: float
    """Time of the last update (the caller's clock, seconds)."""
    tokens: float = -1.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def allows(self, now: float) -> bool:
        """Whether a datagram arriving ``now`` may be opened at all."""
        self._refill(now)
        return self.tokens >= 1.0

    def charge(self, failures: int, now: float) -> None:
        """Take one token per record that failed authentication."""
        self._refill(now)
        self.tokens = max(0.0, self.tokens - failures)

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled to its burst (it remembers nothing)."""
        self._refill(now)
        return self.tokens >= self.burst

    def _refill(self, now: float) -> None:
        elapsed = now - self.now
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.now = now


def source_key(addr: Any) -> Any:
    """The host of a socket address: a source's ports share its bucket."""
    return addr[0] if isinstance(addr, tuple) and addr else addr


class SourceFilters:
    """Buckets of sources that sent records for a session not theirs, at
    most ``capacity`` of them, least recently charged first (see the module)."""

    __slots__ = ("_buckets", "_burst", "_capacity", "_overflow", "_rate")

    def __init__(self, capacity: int, burst: float, rate: float) -> None:
        self._capacity = capacity
        self._burst = burst
        self._rate = rate
        self._buckets: dict[Any, AuthFailureFilter] = {}
        self._overflow: AuthFailureFilter | None = None

    def __len__(self) -> int:
        return len(self._buckets)

    def allows(self, source: Any, now: float) -> bool:
        """Whether a datagram from ``source`` (a host) may be opened."""
        buckets = self._buckets
        guard = buckets.get(source)
        if guard is None:
            if len(buckets) < self._capacity or buckets[next(iter(buckets))].full(now):
                return True  # it would get a bucket of its own
            guard = self._overflow
        return guard is None or guard.allows(now)

    def charge(self, source: Any, failures: int, now: float) -> None:
        """Take ``failures`` tokens from ``source``'s bucket."""
        if failures <= 0:
            return
        buckets = self._buckets
        guard = buckets.pop(source, None)
        if guard is None:
            if len(buckets) >= self._capacity:
                oldest = next(iter(buckets))
                if not buckets[oldest].full(now):
                    self._charge_overflow(failures, now)
                    return
                del buckets[oldest]
            guard = AuthFailureFilter(self._burst, self._rate, now)
        buckets[source] = guard  # the most recently charged last
        guard.charge(failures, now)

    def _charge_overflow(self, failures: int, now: float) -> None:
        if self._overflow is None:
            self._overflow = AuthFailureFilter(self._burst, self._rate, now)
        self._overflow.charge(failures, now)


__all__ = ["AuthFailureFilter", "SourceFilters", "source_key"]
