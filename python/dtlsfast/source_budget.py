"""Token buckets per traffic source (address or prefix), in bounded tables.

DESIGN.md's front door: budgets are per source address and per prefix, and
every table is bounded. A :class:`SourceBuckets` is one such budget: a token
bucket per key (``rate`` tokens a second up to ``burst``), created full when a
key is first seen. What happens when the table is full depends on who can
create entries:

- ``when_full="evict"`` (tables charged only after a valid cookie, RFC 6347
  §4.2.1, so only by a source that proved it receives at its address): the
  least recently used entry goes. An evicted bucket comes back full, so
  eviction can only make the table more lenient; it never locks anyone out.
- ``when_full="share"`` (tables charged before any cookie, where source
  addresses are spoofable): entries are never evicted by newcomers, which
  would let a spoofed flood wipe a real source's record; a key without an
  entry is charged to one shared overflow bucket instead. Entries whose
  bucket is full again carry nothing and are pruned first.

:func:`source_keys` names the two sources of a peer address: the address
itself and its prefix (/24 for IPv4, /56 for IPv6 by default; an
IPv4-mapped IPv6 address counts as IPv4).
"""

from __future__ import annotations

import functools
import socket
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Literal

from dtlsfast.exceptions import ConfigurationError

_V4_MAPPED = bytes(10) + b"\xff\xff"


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class SourceBuckets:
    """A token bucket per source key, at most ``capacity`` of them."""

    def __init__(
        self,
        rate: float,
        burst: float,
        capacity: int,
        when_full: Literal["evict", "share"] = "evict",
    ) -> None:
        if not rate > 0 or not burst >= 1:
            raise ConfigurationError(
                f"a source budget needs a rate above 0 and a burst of at least 1, "
                f"not rate={rate!r} burst={burst!r}"
            )
        if capacity < 1:
            raise ConfigurationError(f"a source table holds at least 1 entry, not {capacity!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.capacity = capacity
        self.when_full = when_full
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._overflow: _Bucket | None = None
        self.evicted = 0
        """Entries evicted to make room (``when_full="evict"``)."""
        self.overflowed = 0
        """Charges that went to the shared bucket (``when_full="share"``)."""

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def tokens(self, key: Hashable, now: float) -> float:
        """The tokens ``key`` has now (a key never seen has a full bucket)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst
        return self._refilled(bucket, now)

    def has(self, key: Hashable, now: float, cost: float = 1.0) -> bool:
        """Whether ``key`` could pay ``cost`` now; nothing is taken or created."""
        # tokens() inlined: asked several times per handshake.
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst >= cost
        elapsed = now - bucket.stamp
        if elapsed <= 0:
            return bucket.tokens >= cost
        return min(self.burst, bucket.tokens + elapsed * self.rate) >= cost

    def seconds_until(self, key: Hashable, now: float, cost: float = 1.0) -> float:
        """How long until ``key`` can pay ``cost`` (0 if it can now)."""
        return max(0.0, (cost - self.tokens(key, now)) / self.rate)

    def take(self, key: Hashable, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket if it has them."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key, now)
        else:
            buckets.move_to_end(key)
        # _refill() inlined: taken on every new handshake.
        tokens = bucket.tokens
        if now > bucket.stamp:
            tokens = min(self.burst, tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if tokens < cost:
            bucket.tokens = tokens
            return False
        bucket.tokens = tokens - cost
        return True

    def charge(self, key: Hashable, now: float, cost: float) -> None:
        """Take ``cost`` tokens whatever the balance (work already done); a
        bucket goes no lower than ``-burst``."""
        bucket = self._bucket(key, now)
        self._refill(bucket, now)
        bucket.tokens = max(-self.burst, bucket.tokens - cost)

    def prune(self, now: float) -> int:
        """Forget the buckets that are full again (they hold no information)."""
        full = [k for k, b in self._buckets.items() if self._refilled(b, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        return len(full)

    # -- internals -------------------------------------------------------------

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        elapsed = now - bucket.stamp
        if elapsed <= 0:
            return bucket.tokens
        return min(self.burst, bucket.tokens + elapsed * self.rate)

    def _refill(self, bucket: _Bucket, now: float) -> float:
        bucket.tokens = self._refilled(bucket, now)
        bucket.stamp = max(bucket.stamp, now)
        return bucket.tokens

    def _bucket(self, key: Hashable, now: float) -> _Bucket:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        # A newcomer forgets up to two of the least recently used buckets if
        # they are full again (they carry nothing): a server that sees many
        # sources keeps only those that recently spent, not one entry per
        # source until the next prune (a few hundred bytes each).
        for _ in range(2):
            if not buckets:
                break
            oldest_key, oldest = next(iter(buckets.items()))
            if self._refilled(oldest, now) < self.burst:
                break
            del buckets[oldest_key]
        if len(buckets) >= self.capacity:
            oldest_key, oldest = next(iter(buckets.items()))
            if self.when_full == "evict" or self._refilled(oldest, now) >= self.burst:
                # LRU, or (shared policy) an entry that carries nothing any more.
                del buckets[oldest_key]
                self.evicted += self.when_full == "evict"
            else:
                self.overflowed += 1
                if self._overflow is None:
                    self._overflow = _Bucket(self.burst, now)
                return self._overflow
        bucket = buckets[key] = _Bucket(self.burst, now)
        return bucket


def address_key(addr: Any) -> Hashable:
    """The source address of a peer: the host of ``(host, port, ...)`` without
    an IPv6 scope; anything else (a test's label) as it is."""
    if isinstance(addr, tuple) and addr:
        host = addr[0]
        if isinstance(host, str) and "%" in host:
            return host.split("%", 1)[0]
        return host  # type: ignore[no-any-return]
    return addr  # type: ignore[no-any-return]


def is_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address, or an IPv4-mapped IPv6 one (which
    the prefixes count as IPv4)."""
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, host)[:12] == _V4_MAPPED
    except OSError:
        return False


def prefix_key(addr: Any, v4_bits: int = 24, v6_bits: int = 56) -> Hashable:
    """The network a peer address belongs to: the first ``v4_bits`` of an IPv4
    address (IPv4-mapped IPv6 included) or ``v6_bits`` of an IPv6 address,
    tagged with the family; a host that is no IP literal is its own prefix."""
    host = address_key(addr)
    if not isinstance(host, str):
        return host
    return _host_prefix(host, v4_bits, v6_bits)


@functools.lru_cache(maxsize=4096)
def _host_prefix(host: str, v4_bits: int, v6_bits: int) -> Hashable:
    """:func:`prefix_key` of an address string, remembered for the most
    recent hosts: every handshake asks for its source's prefix three times."""
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
        bits, tag = v4_bits, b"4"
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            return host
        if packed[:12] == _V4_MAPPED:
            packed, bits, tag = packed[12:], v4_bits, b"4"
        else:
            bits, tag = v6_bits, b"6"
    whole, rest = divmod(bits, 8)
    prefix = packed[:whole]
    if rest and whole < len(packed):
        prefix += bytes([packed[whole] & (0xFF << (8 - rest)) & 0xFF])
    return tag + prefix


def source_keys(addr: Any, v4_bits: int = 24, v6_bits: int = 56) -> tuple[Hashable, Hashable]:
    """``(address_key(addr), prefix_key(addr))``."""
    return address_key(addr), prefix_key(addr, v4_bits, v6_bits)


__all__ = ["SourceBuckets", "address_key", "is_ipv4", "prefix_key", "source_keys"]
