"""A server's resumption policy (RFC 5246 §7.3, RFC 5077 §3, RFC 7627 §5.3):
which sessions it offers to resume later, and whether a ClientHello's ticket
or session ID may resume one now.

One :class:`ServerResumption` is shared by every connection of a server (it
sits in :attr:`DtlsConfiguration.resumption`). It holds the session-ID cache
(bounded LRU) and the ticket sealer; the connections hold nothing of it
before the cookie exchange, since they exist only after it. Every refusal is
counted (``resumption_refused_<reason>``, see :class:`ResumptionFailure`) and
the handshake goes on as a full one.

Session IDs can be shared between processes (``dtlsfast serve --workers
N``): a :attr:`ServerResumption.publisher` is told of each session cached and
each one invalidated (:mod:`dtlsfast.workers.shared_sessions` sends them to
the other workers, which :meth:`~ServerResumption.merge` them).

Tickets carry wall-clock times (their keys rotate by period of wall time,
shared between processes), so this object reads ``clock`` (``time.time`` by
default); tests pass a fixed one. The connections' own ``now`` stays the
monotonic clock of their driver.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.resumption.session_cache import (
    DEFAULT_LIFETIME,
    DEFAULT_MAX_ENTRIES,
    SESSION_ID_LENGTH,
    SessionIdCache,
    new_session_id,
)
from dtlsfast.resumption.session_state import (
    ResumptionFailure,
    ResumptionState,
    lifetime_hint,
    refusal,
)
from dtlsfast.resumption.ticket_keys import KEY_NAME_LENGTH, TicketKeys
from dtlsfast.resumption.tickets import TicketSealer

#: The counter of a resumption, by how the session was found.
_RESUMED_COUNTER = {"ticket": "resumed_ticket", "session_id": "resumed_session_id"}


@dataclass(frozen=True, slots=True)
class Resumable:
    """A session a ClientHello may resume, and how it was found."""

    state: ResumptionState
    via: str
    """``"ticket"`` or ``"session_id"``."""
    renew_ticket: bool
    """Send a fresh ticket in this abbreviated handshake (RFC 5077 §3.1):
    the offered one is sealed under a key that is no longer the current one."""


class SessionPublisher(Protocol):
    """Told of the session-ID cache's own changes (not of merged ones)."""

    def added(self, session_id: bytes, state: ResumptionState, stored: float) -> None: ...

    def dropped(self, session_id: bytes) -> None: ...


class ServerResumption:
    """Session IDs and session tickets for one server (see the module)."""

    __slots__ = (
        "_clock",
        "allow_legacy_resumption",
        "cache",
        "counters",
        "lifetime",
        "new_session_id",
        "publisher",
        "sealer",
    )

    def __init__(
        self,
        *,
        session_ids: bool = True,
        cache_size: int = DEFAULT_MAX_ENTRIES,
        lifetime: float = DEFAULT_LIFETIME,
        tickets: bool = True,
        ticket_keys: TicketKeys | None = None,
        allow_legacy_resumption: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``session_ids``: give each full handshake a session ID and keep it
        in a cache of ``cache_size`` sessions (least recently used evicted).
        ``tickets``: issue RFC 5077 tickets to clients that ask, sealed under
        ``ticket_keys`` (by default a random in-memory secret: tickets then
        die with the process; pass ``TicketKeys.from_file(path)`` to share
        them between processes and restarts). ``lifetime``: seconds a session
        may be resumed (tickets: at most the key period).
        ``allow_legacy_resumption``: resume sessions without extended master
        secret (RFC 7627 §5.3 says SHOULD NOT: off by default)."""
        if not (math.isfinite(lifetime) and lifetime >= 1):
            raise ConfigurationError(f"lifetime must be at least 1 s, got {lifetime}")
        if not (session_ids or tickets):
            raise ConfigurationError(
                "resumption with neither session IDs nor tickets: pass resumption=None instead"
            )
        self.cache = SessionIdCache(cache_size, lifetime) if session_ids else None
        self.new_session_id: Callable[[], bytes] = new_session_id if session_ids else bytes
        """The session_id for a full handshake's ServerHello: a fresh random
        one, or empty when session IDs are off (the session is not resumable
        by ID). A C callable, not a method: one call per full handshake."""
        if tickets:
            keys = ticket_keys if ticket_keys is not None else TicketKeys(os.urandom(64))
            self.sealer: TicketSealer | None = TicketSealer(
                keys, lifetime=min(lifetime, keys.period)
            )
        else:
            self.sealer = None
        self.lifetime = math.floor(lifetime)
        self.allow_legacy_resumption = allow_legacy_resumption
        self._clock = clock
        self.counters: Counter[str] = Counter()
        """``resumed_session_id``, ``resumed_ticket``, ``tickets_issued``,
        ``session_ids_cached``, ``session_ids_invalidated``,
        ``session_ids_merged`` and ``resumption_refused_<reason>``."""
        self.publisher: SessionPublisher | None = None
        """Told of each session cached and invalidated here (the workers'
        sharing, :mod:`dtlsfast.workers.shared_sessions`)."""

    def now(self) -> float:
        return self._clock()

    # ------------------------------------------------------------- accept

    def find(
        self,
        *,
        session_id: bytes,
        ticket: bytes | None,
        offered_suites: Sequence[int],
        accepted_suites: Sequence[int],
        client_offers_ems: bool,
        require_ems: bool,
        identity_known: Callable[[bytes], bool],
        needs_peer_key: bool = False,
    ) -> Resumable | None:
        """The session a ClientHello offers (its ``ticket``, else its
        ``session_id``) if it may be resumed, else None (counted). Never
        raises for what the peer sent."""
        now = self._clock()
        found: ResumptionState | ResumptionFailure | None = None
        via = ""
        renew = False
        sealer = self.sealer
        if ticket and sealer is not None:
            found = sealer.open(ticket, now)
            via = "ticket"
            renew = isinstance(found, ResumptionState) and (
                ticket[:KEY_NAME_LENGTH] != sealer.keys.current(now).name
            )
        elif session_id and self.cache is not None:
            found = self.cache.lookup(session_id, now)
            via = "session_id"
        if found is None:
            return None
        if isinstance(found, ResumptionState):
            found = self._check(
                found,
                offered_suites,
                accepted_suites,
                client_offers_ems,
                require_ems,
                identity_known,
                needs_peer_key,
            )
        if isinstance(found, ResumptionFailure):
            self.counters[found.counter] += 1
            return None
        self.counters[_RESUMED_COUNTER[via]] += 1
        return Resumable(found, via, renew)

    def _check(
        self,
        state: ResumptionState,
        offered_suites: Sequence[int],
        accepted_suites: Sequence[int],
        client_offers_ems: bool,
        require_ems: bool,
        identity_known: Callable[[bytes], bool],
        needs_peer_key: bool,
    ) -> ResumptionState | ResumptionFailure:
        failure = refusal(
            state,
            client_offers_ems=client_offers_ems,
            require_ems=require_ems,
            allow_legacy_resumption=self.allow_legacy_resumption,
        )
        if failure is not None:
            return failure
        # RFC 5246 §7.4.1.2: the hello must offer the session's suite; and
        # this server must still accept it and the client's identity.
        if state.cipher_suite not in offered_suites or state.cipher_suite not in accepted_suites:
            return ResumptionFailure.PARAMETERS
        if state.psk_identity is not None and not identity_known(state.psk_identity):
            return ResumptionFailure.PARAMETERS
        if needs_peer_key and state.psk_identity is None and state.peer_public_key is None:
            # A certificate session without the client's key, now that one is required.
            return ResumptionFailure.PARAMETERS
        return state

    # -------------------------------------------------------------- issue

    def issues_tickets(self, client_asks: bool) -> bool:
        """Whether a full handshake sends NewSessionTicket (RFC 5077 §3.2:
        only to a client that sent the session_ticket extension)."""
        return client_asks and self.sealer is not None

    def state_for(
        self,
        master_secret: bytes,
        cipher_suite: int,
        extended_master_secret: bool,
        psk_identity: bytes | None = None,
        peer_certificate_type: int | None = None,
        peer_public_key: bytes | None = None,
        peer_certificates: tuple[bytes, ...] = (),
    ) -> ResumptionState:
        """The state of the session a full handshake here has just
        negotiated, created now, with this server's lifetime
        (:meth:`ResumptionState.negotiated`: ConfigurationError if what the
        peer chose is too large to keep)."""
        return ResumptionState.negotiated(
            master_secret,
            cipher_suite,
            extended_master_secret,
            math.floor(self._clock()),
            self.lifetime,
            psk_identity,
            peer_certificate_type,
            peer_public_key,
            peer_certificates,
        )

    def seal(self, state: ResumptionState) -> tuple[int, bytes]:
        """``(ticket_lifetime_hint, ticket)`` for a NewSessionTicket."""
        sealer = self.sealer
        assert sealer is not None
        now = self._clock()
        ticket = sealer.seal(state, now)
        self.counters["tickets_issued"] += 1
        return min(lifetime_hint(state, now), sealer.lifetime), ticket

    def remember(self, session_id: bytes, state: ResumptionState) -> None:
        """Keep a completed full handshake's session under its session ID."""
        cache = self.cache
        if cache is not None and session_id:
            now = self._clock()
            cache.store(session_id, state, now)
            self.counters["session_ids_cached"] += 1
            if self.publisher is not None:
                self.publisher.added(session_id, state, now)

    def invalidate(self, session_id: bytes) -> bool:
        """RFC 5246 §7.2: a session whose connection ended with a fatal
        alert is no longer resumable. Forgets it here and, if it was here,
        tells the publisher (so that no other worker resumes it either).
        False if the cache did not hold it."""
        if self.cache is None or not session_id or not self.cache.invalidate(session_id):
            return False
        self.counters["session_ids_invalidated"] += 1
        if self.publisher is not None:
            self.publisher.dropped(session_id)
        return True

    def merge(self, session_id: bytes, state: ResumptionState | None, stored: float) -> bool:
        """Another process's change: its session cached at ``stored`` (wall
        clock, so the lifetime counts from there), or with ``state`` None
        invalidated. Not published again. False if there is no cache or the
        entry is of no use (expired, malformed ID)."""
        cache = self.cache
        if cache is None or not 1 <= len(session_id) <= SESSION_ID_LENGTH:
            return False
        if state is None:
            return cache.invalidate(session_id)
        now = self._clock()
        if now >= stored + cache.lifetime or now >= state.expires():
            return False
        cache.store(session_id, state, min(stored, now))
        self.counters["session_ids_merged"] += 1
        return True

    def __repr__(self) -> str:
        return (
            f"<ServerResumption session_ids={self.cache is not None} "
            f"tickets={self.sealer is not None}>"
        )


def encode_new_session_ticket(lifetime_hint: int, ticket: bytes) -> bytes:
    """A NewSessionTicket body (RFC 5077 §3.3)."""
    return _NEW_SESSION_TICKET_HEAD.pack(lifetime_hint, len(ticket)) + ticket


# ticket_lifetime_hint(4) ticket<0..2^16-1>
_NEW_SESSION_TICKET_HEAD = struct.Struct(">IH")


__all__ = ["Resumable", "ServerResumption", "SessionPublisher", "encode_new_session_ticket"]
