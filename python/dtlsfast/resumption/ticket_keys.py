"""Rotating session ticket keys derived from a shared key file (RFC 5077 §5.5).

Time is cut into periods of ``period`` seconds counted from the Unix epoch;
period ``n``'s key is HKDF over the key file's secret and ``n``
(:func:`dtlsfast.secret_file.derive_key`): a 16-byte key name (RFC 5077 §4's
``key_name``, which reveals nothing about the secret) and a 32-byte AES-256-GCM
key. Tickets are sealed under the current period's key and accepted under the
current and the previous one, so a ticket lives at least one full period and
at most two; a few seconds into the next period are accepted too
(``clock_skew``), for servers whose clocks differ slightly. Every process that
reads the same file derives the same keys without talking to the others, and
rotation needs no coordination. Replacing the file's secret revokes every
outstanding ticket.

Sans-I/O: every call takes ``now`` (seconds since the epoch, e.g.
``time.time()``); nothing here reads a clock.
"""

from __future__ import annotations

import hmac
import math
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.secret_file import MIN_SECRET_LENGTH, derive_key, load_or_create_secret

#: RFC 5077 §4: key_name is 16 bytes.
KEY_NAME_LENGTH = 16
TICKET_KEY_LENGTH = 32
DEFAULT_PERIOD = 12 * 3600.0
DEFAULT_CLOCK_SKEW = 60.0


@dataclass(frozen=True, slots=True)
class TicketKey:
    """The ticket key of one period."""

    period: int
    name: bytes
    aead: AESGCM = field(repr=False)


class TicketKeys:
    """The ticket keys of every period, derived on demand from one secret."""

    __slots__ = ("_cache", "_secret", "clock_skew", "period")

    def __init__(
        self,
        secret: bytes,
        *,
        period: float = DEFAULT_PERIOD,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"a ticket key secret needs at least {MIN_SECRET_LENGTH} bytes, got {len(secret)}"
            )
        if not (math.isfinite(period) and period >= 60.0):
            raise ConfigurationError(f"the ticket key period must be at least 60 s, got {period}")
        if not (math.isfinite(clock_skew) and 0.0 <= clock_skew < period / 2):
            raise ConfigurationError(
                f"clock_skew must be in [0, period / 2), got {clock_skew} for period {period}"
            )
        self._secret = bytes(secret)
        self.period = float(period)
        self.clock_skew = float(clock_skew)
        self._cache: dict[int, TicketKey] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: float) -> TicketKeys:
        """Keys from the key file at ``path`` (created with a fresh secret,
        mode 0600, when missing; see :mod:`dtlsfast.secret_file`)."""
        return cls(load_or_create_secret(path), **options)

    def period_of(self, now: float) -> int:
        return math.floor(now / self.period)

    def key(self, period: int) -> TicketKey:
        """The key of ``period`` (derived once, then cached with its neighbours)."""
        cached = self._cache.get(period)
        if cached is not None:
            return cached
        material = derive_key(
            self._secret,
            b"dtlsfast ticket key " + period.to_bytes(8, "big", signed=True),
            KEY_NAME_LENGTH + TICKET_KEY_LENGTH,
        )
        key = TicketKey(period, material[:KEY_NAME_LENGTH], AESGCM(material[KEY_NAME_LENGTH:]))
        # Only the periods in use are kept: the cache stays bounded.
        for old in [p for p in self._cache if abs(p - period) > 2]:
            del self._cache[old]
        self._cache[period] = key
        return key

    def current(self, now: float) -> TicketKey:
        """The key to seal new tickets under."""
        period = math.floor(now / self.period)  # period_of(now), asked per ticket
        return self._cache.get(period) or self.key(period)

    def accepted(self, now: float) -> list[TicketKey]:
        """The keys a ticket may be sealed under now: current, previous, and
        the next one within ``clock_skew`` of its start."""
        period = self.period_of(now)
        keys = [self.key(period), self.key(period - 1)]
        if self.period_of(now + self.clock_skew) > period:
            keys.append(self.key(period + 1))
        return keys

    def find(self, name: bytes, now: float) -> TicketKey | None:
        """The accepted key named ``name``, or None (a foreign or retired
        key). Every candidate is compared, in constant time.

        The keys of :meth:`accepted`, read from the cache without building
        the list (once per abbreviated handshake)."""
        cache = self._cache
        period = math.floor(now / self.period)
        current = cache.get(period) or self.key(period)
        previous = cache.get(period - 1) or self.key(period - 1)
        found = None
        if hmac.compare_digest(current.name, name):
            found = current
        if hmac.compare_digest(previous.name, name):
            found = previous
        if math.floor((now + self.clock_skew) / self.period) > period:
            following = self.key(period + 1)
            if hmac.compare_digest(following.name, name):
                found = following
        return found

    def __repr__(self) -> str:
        return f"<TicketKeys period={self.period:g}s>"


__all__ = ["DEFAULT_PERIOD", "KEY_NAME_LENGTH", "TicketKey", "TicketKeys"]
