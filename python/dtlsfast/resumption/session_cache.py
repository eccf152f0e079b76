"""The server's session-ID cache (RFC 5246 §7.4.1.2, RFC 6347 §4.2.1):
sessions resumable by the session_id the server chose for them.

Bounded: at most ``max_entries`` sessions, the least recently used evicted
first, each for at most ``lifetime`` seconds (and its own). The session_id
comes from the peer, so it never indexes the table directly: the key is a
MAC of it under a per-cache secret (keyed BLAKE2b, RFC 7693 §2.9), which an
attacker can neither predict (no steered hash collisions) nor probe byte by
byte; the stored session_id is then compared in constant time. A miss, an
expired entry and a wrong ID look the same in time to within one MAC.
Sans-I/O: ``now`` is passed in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
from collections import OrderedDict
from collections.abc import Callable

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.resumption.session_state import ResumptionFailure, ResumptionState

#: RFC 5246 §7.4.1.2: session_id is opaque<0..32>; the server picks 32 bytes.
SESSION_ID_LENGTH = 32
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_LIFETIME = 3600.0

#: A fresh random session_id for a ServerHello: ``os.urandom(SESSION_ID_LENGTH)``
#: in one C call (once per full handshake).
new_session_id: Callable[[], bytes] = functools.partial(os.urandom, SESSION_ID_LENGTH)


class SessionIdCache:
    """Resumable sessions by session ID (see the module)."""

    __slots__ = ("_entries", "_mac", "lifetime", "max_entries")

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, lifetime: float = DEFAULT_LIFETIME
    ) -> None:
        if not (isinstance(max_entries, int) and max_entries >= 1):
            raise ConfigurationError(f"max_entries must be at least 1, got {max_entries!r}")
        if not (math.isfinite(lifetime) and lifetime > 0):
            raise ConfigurationError(f"lifetime must be a positive number of seconds: {lifetime}")
        self.max_entries = max_entries
        self.lifetime = float(lifetime)
        # Keyed BLAKE2b (a PRF in C, about 3x cheaper than HMAC-SHA256
        # through OpenSSL), keyed once: each digest copies the keyed state
        # rather than hashing the key again.
        self._mac = hashlib.blake2b(key=os.urandom(32), digest_size=16)
        # digest -> (session_id, state, stored at)
        self._entries: OrderedDict[bytes, tuple[bytes, ResumptionState, float]] = OrderedDict()

    new_session_id = staticmethod(new_session_id)

    def _digest(self, session_id: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(session_id)
        return mac.digest()

    def store(self, session_id: bytes, state: ResumptionState, now: float) -> None:
        """Remember ``state`` under ``session_id`` (evicting the least
        recently used session if full)."""
        if not 1 <= len(session_id) <= SESSION_ID_LENGTH:
            raise ConfigurationError(
                f"a session_id is 1 to {SESSION_ID_LENGTH} bytes, got {len(session_id)}"
            )
        digest = self._digest(session_id)
        entries = self._entries
        if digest in entries:
            entries.move_to_end(digest)  # a new one goes last anyway
        entries[digest] = (bytes(session_id), state, now)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def lookup(self, session_id: bytes, now: float) -> ResumptionState | ResumptionFailure:
        """The session to resume for a ClientHello's ``session_id``, or why
        there is none. Never raises for what a peer sent."""
        if not 1 <= len(session_id) <= SESSION_ID_LENGTH:
            return ResumptionFailure.UNKNOWN_SESSION
        digest = self._digest(session_id)
        entry = self._entries.get(digest)
        if entry is None or not hmac.compare_digest(entry[0], session_id):
            return ResumptionFailure.UNKNOWN_SESSION
        _, state, stored = entry
        if now >= stored + self.lifetime or now >= state.expires():
            del self._entries[digest]
            return ResumptionFailure.EXPIRED
        self._entries.move_to_end(digest)
        return state

    def invalidate(self, session_id: bytes) -> bool:
        """Forget a session (RFC 5246 §7.2.2: a fatal alert makes it
        non-resumable). False if it was not there."""
        if not 1 <= len(session_id) <= SESSION_ID_LENGTH:
            return False
        return self._entries.pop(self._digest(session_id), None) is not None

    def expire(self, now: float) -> int:
        """Drop expired sessions; how many went. Entries are in use order,
        not expiry order, so this scans; call it now and then, not per hello."""
        dead = [
            digest
            for digest, (_, state, stored) in self._entries.items()
            if now >= stored + self.lifetime or now >= state.expires()
        ]
        for digest in dead:
            del self._entries[digest]
        return len(dead)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<SessionIdCache {len(self._entries)} of {self.max_entries}>"


__all__ = ["SESSION_ID_LENGTH", "SessionIdCache", "new_session_id"]
