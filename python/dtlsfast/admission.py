"""Who may start a handshake: the server's admission policy (sans-I/O).

Everything here happens after the stateless cookie exchange (RFC 6347
§4.2.1) has proved that a ClientHello's source receives at its address, so no
budget can be drained, and nobody locked out, by a sender that spoofs another
source's address. The one check made before the cookie (:meth:`Admission.
out_of_budget`) only reads budgets that valid cookies emptied.

For each new handshake (a retransmitted ClientHello is not one):

1. a token from the source address's bucket and from its prefix's
   (``hello_rate_per_address``, ``hello_rate_per_prefix``): the price of
   asking, paid whatever the outcome, so a source that keeps asking runs dry
   and is then refused before its cookie is even checked;
2. if the hello may lead to ECDHE key generation and signing (it offers a
   suite of ours that needs them), enough of the server-wide budget of
   expensive operations (``crypto_rate``) and of its prefix's share of it
   (``crypto_share_per_prefix``): one source can never take more than that
   share of the core, so a newcomer from elsewhere always finds some left;
   what the handshake really did is charged after the server's flight;
3. room in the half-open table (:mod:`dtlsfast.handshake_table`): a source at
   its cap (``max_handshakes_per_address``, ``max_handshakes_per_prefix``)
   makes room by its own handshake that stalled longest, if one stalled, and
   is refused otherwise; a full table never refuses: it evicts the handshake
   that has waited longest for its peer since the server's flight.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dtlsfast.handshake_table import HalfOpenTable
from dtlsfast.source_budget import (
    SourceBuckets,
    _host_prefix,
    address_key,
    is_ipv4,
    prefix_key,
)

if TYPE_CHECKING:
    from dtlsfast.config import DtlsConfiguration
    from dtlsfast.server import ServerLimits

T = TypeVar("T")

#: Expensive operations a handshake costs the server, by key exchange: an
#: ECDHE key generation and the ECDH with the client's key; a certificate
#: suite adds the ServerKeyExchange signature (RFC 8422 §5.4).
CRYPTO_COST = {"PSK": 0, "ECDHE_PSK": 2, "ECDHE_ECDSA": 3}
#: A client certificate or raw public key adds a chain check and the
#: CertificateVerify signature check (RFC 5246 §7.4.8).
CLIENT_AUTH_COST = 2
#: The most a handshake can cost.
MAX_CRYPTO_COST = max(CRYPTO_COST.values()) + CLIENT_AUTH_COST

_SERVER = "server"


@dataclass(frozen=True, slots=True)
class Decision(Generic[T]):
    """What to do with a new handshake that passed the cookie check."""

    refused: str | None
    """None to admit; else the reason, a counter name (``dropped_<reason>``)."""
    evict: tuple[T, ...] = ()
    """Half-open handshakes to drop first, to make room."""


#: Admitted, nothing to evict (immutable, so shared).
_ADMIT: Decision[Any] = Decision(None)


class Admission(Generic[T]):
    """The admission state of one server: per-source buckets, the crypto
    budget and the half-open table (handles are the server's peers)."""

    def __init__(self, limits: ServerLimits, config: DtlsConfiguration) -> None:
        self.limits = limits
        self.table: HalfOpenTable[T] = HalfOpenTable()
        size = limits.source_table_size
        self.hello_per_address = SourceBuckets(
            limits.hello_rate_per_address, limits.hello_burst_per_address, size
        )
        self.hello_per_prefix = SourceBuckets(
            limits.hello_rate_per_prefix, limits.hello_burst_per_prefix, size
        )
        self.crypto = SourceBuckets(limits.crypto_rate, limits.crypto_burst, 1)
        share = limits.crypto_share_per_prefix
        self.crypto_per_prefix = SourceBuckets(
            limits.crypto_rate * share, limits.crypto_burst * share, size
        )
        #: A stalled handshake waited a retransmission timeout without progress.
        self.stall_grace = config.initial_timeout
        self._client_auth_cost = CLIENT_AUTH_COST if config.client_auth != "none" else 0
        self._suite_cost = {
            s.code: CRYPTO_COST[s.key_exchange]
            + (self._client_auth_cost if s.key_exchange == "ECDHE_ECDSA" else 0)
            for s in config.cipher_suites
        }
        self.prices_crypto = any(self._suite_cost.values())
        """Whether any suite of ours costs expensive operations (a PSK-only
        server's: none, so that nothing is estimated or charged)."""
        self.crypto_spent = 0
        """Expensive operations charged since the start."""

    # -- keys -------------------------------------------------------------------

    def keys(self, addr: Any) -> tuple[Hashable, Hashable]:
        """The source address and the prefix that ``addr`` is charged to."""
        limits = self.limits
        host = address_key(addr)
        if isinstance(host, str):
            return host, _host_prefix(host, limits.prefix_length_v4, limits.prefix_length_v6)
        return host, prefix_key(addr, limits.prefix_length_v4, limits.prefix_length_v6)

    # -- before the cookie --------------------------------------------------------

    def out_of_budget(
        self, addr: Any, now: float, keys: tuple[Hashable, Hashable] | None = None
    ) -> str | None:
        """Why a ClientHello from ``addr`` will be refused whatever its cookie
        (its address's or its prefix's hello bucket is empty), or None. Cheap,
        and reads only buckets that hellos with valid cookies emptied.
        ``keys``: :meth:`keys` of ``addr``, if the caller has them already."""
        per_address, per_prefix = self.hello_per_address, self.hello_per_prefix
        if keys is None:
            keys = self.keys(addr)
        # has() of a source without a bucket is one dict miss: no test of
        # the table's size first (a call of its own, and rarely empty).
        if not per_address.has(keys[0], now):
            return "hello_rate_address"
        if not per_prefix.has(keys[1], now):
            return "hello_rate_prefix"
        return None

    def mute_for(self, addr: Any, reason: str, now: float) -> tuple[str, int, float] | None:
        """What to mute in the batch socket after :meth:`out_of_budget` gave
        ``reason``: ``(host, prefix length, seconds)``, the network whose
        ClientHellos can be dropped on arrival until its bucket has a token
        again; None for an address that is no IP literal."""
        host = address_key(addr)
        if not isinstance(host, str):
            return None
        v4 = is_ipv4(host)
        if reason == "hello_rate_address":
            bits = 32 if v4 else 128
            seconds = self.hello_per_address.seconds_until(host, now)
        else:
            limits = self.limits
            bits = limits.prefix_length_v4 if v4 else limits.prefix_length_v6
            seconds = self.hello_per_prefix.seconds_until(self.keys(addr)[1], now)
        return host, bits, seconds

    # -- after the cookie ---------------------------------------------------------

    def crypto_estimate(self, offered_suites: Sequence[int]) -> int:
        """The most a handshake offering these suites can cost us."""
        return max(map(self._suite_cost.get, offered_suites, repeat(0)), default=0)

    def admit(
        self,
        keys: tuple[Hashable, Hashable],
        offered_suites: Sequence[int],
        now: float,
        replacing: T | None = None,
        *,
        hello_budget_read: bool = False,
    ) -> Decision[T]:
        """Decide on a new handshake from the source ``keys``; ``replacing``
        is a half-open handshake it takes the place of (same address and port),
        which frees its slot. ``hello_budget_read``: :meth:`out_of_budget`
        just found the source's hello buckets not empty at ``now`` (nothing
        took from them since), so they are not read again."""
        address, prefix = keys
        per_address, per_prefix = self.hello_per_address, self.hello_per_prefix
        if not hello_budget_read:
            if not per_address.has(address, now):
                return Decision("hello_rate_address")
            if not per_prefix.has(prefix, now):
                return Decision("hello_rate_prefix")
        per_address.take(address, now)
        per_prefix.take(prefix, now)
        cost = self.crypto_estimate(offered_suites) if self.prices_crypto else 0
        if cost:
            if not self.crypto_per_prefix.has(prefix, now, cost):
                return Decision("crypto_share")
            if not self.crypto.has(_SERVER, now, cost):
                return Decision("crypto_budget")
        return self._make_room(address, prefix, now, replacing)

    def _make_room(
        self, address: Hashable, prefix: Hashable, now: float, replacing: T | None
    ) -> Decision[T]:
        limits, table = self.limits, self.table
        # Each count without the handshake the newcomer replaces (its slot is freed).
        at_address, in_prefix, total = table.counts(address, prefix, replacing)
        if (
            at_address < limits.max_handshakes_per_address
            and in_prefix < limits.max_handshakes_per_prefix
            and total < limits.max_handshakes
        ):
            return _ADMIT  # room everywhere: the usual case
        evict: list[T] = []
        groups = (
            (at_address, table.oldest_at_address(address),
             limits.max_handshakes_per_address, "handshakes_per_address"),
            (in_prefix, table.oldest_in_prefix(prefix),
             limits.max_handshakes_per_prefix, "handshakes_per_prefix"),
        )  # fmt: skip
        for count, oldest, cap, reason in groups:
            if count - len(evict) < cap:
                continue
            # At its cap a source makes room only by its own stalled handshake.
            if (
                oldest is None
                or oldest.handle is replacing
                or any(oldest.handle is e for e in evict)
                or now - oldest.progress < self.stall_grace
            ):
                return Decision(reason)
            evict.append(oldest.handle)
        if total - len(evict) >= limits.max_handshakes:
            for entry in table:
                handle = entry.handle
                if handle is not replacing and not any(handle is e for e in evict):
                    evict.append(handle)
                    break
        return Decision(None, tuple(evict))

    def charge_crypto(self, prefix: Hashable, key_exchange: str | None, now: float) -> None:
        """Charge what the server's flight and the rest of the handshake cost
        (by the key exchange the connection chose; None if it chose none)."""
        if key_exchange is None:
            return
        cost = CRYPTO_COST.get(key_exchange, 0)
        if key_exchange == "ECDHE_ECDSA":
            cost += self._client_auth_cost
        if cost:
            self.crypto.charge(_SERVER, now, cost)
            self.crypto_per_prefix.charge(prefix, now, cost)
            self.crypto_spent += cost

    # -- the half-open table ------------------------------------------------------

    def started(self, handle: T, keys: tuple[Hashable, Hashable], now: float) -> None:
        self.table.add(handle, keys[0], keys[1], now)

    def progressed(self, handle: T, now: float) -> None:
        self.table.touch(handle, now)

    def finished(self, handle: T) -> None:
        """The handshake completed, failed or was dropped."""
        self.table.remove(handle)

    def stalled(self, now: float) -> Iterator[T]:
        """Half-open handshakes without progress for ``handshake_stall_timeout``."""
        for entry in self.table.stalled(now - self.limits.handshake_stall_timeout):
            yield entry.handle

    def prune(self, now: float) -> None:
        """Forget per-source buckets that are full again."""
        for buckets in (self.hello_per_address, self.hello_per_prefix, self.crypto_per_prefix):
            buckets.prune(now)

    @property
    def sources_tracked(self) -> int:
        return (
            len(self.hello_per_address) + len(self.hello_per_prefix) + len(self.crypto_per_prefix)
        )


__all__ = ["CLIENT_AUTH_COST", "CRYPTO_COST", "MAX_CRYPTO_COST", "Admission", "Decision"]
