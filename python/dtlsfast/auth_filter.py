"""A MAC-error filter: throttle a peer whose records keep failing authentication.

RFC 6347 §4.1.2.7 has a DTLS endpoint silently discard records that fail
authentication, and lets it keep a count and act once the count is
exceeded. Discarding is cheap for one record, but a sender that knows an
established session's address and port (or spoofs them) can make the
server parse and try to open every forged record. :class:`AuthFailureFilter`
is a token bucket per session: each authentication failure takes a token,
tokens come back at a fixed rate, and while the bucket is empty the
session's datagrams are dropped unopened (counted apart). The session is not
torn down, so the forger cannot close it; a genuine peer behind the same
address gets through again as soon as a token comes back, and its CoAP or
handshake retransmissions cover the gap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AuthFailureFilter:
    """Token bucket over authentication failures for one session."""

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
        """Whether a datagram arriving ``now`` may be processed at all."""
        self._refill(now)
        return self.tokens >= 1.0

    def charge(self, failures: int, now: float) -> None:
        """Take one token per record that failed authentication."""
        self._refill(now)
        self.tokens = max(0.0, self.tokens - failures)

    def _refill(self, now: float) -> None:
        elapsed = now - self.now
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.now = now


__all__ = ["AuthFailureFilter"]
