"""Stateless session tickets (RFC 5077): a :class:`ResumptionState` sealed
under the period's ticket key, so that the server keeps nothing per session.

Ticket layout (RFC 5077 §4's recommendation, with an AEAD in place of
AES-CBC plus HMAC)::

    key_name(16) || nonce(12) || AES-256-GCM(state) || tag(16)

with ``key_name`` as the additional data, so a ticket cannot be moved to
another key. The key name finds the key (:class:`TicketKeys`); nonces are
random (a period's key seals far fewer than the 2**32 tickets NIST SP 800-38D
allows under random nonces). :meth:`TicketSealer.open` never raises for
anything a peer sent: a forged, corrupt, expired, foreign or malformed ticket
is a :class:`ResumptionFailure`, counted by the caller, and the handshake goes
on as a full one (RFC 5077 §3.1).
"""

from __future__ import annotations

import math
import os

from cryptography.exceptions import InvalidTag

from dtlsfast.exceptions import ConfigurationError, DecodeError
from dtlsfast.resumption.session_state import (
    ResumptionFailure,
    ResumptionState,
    StateVersionError,
)
from dtlsfast.resumption.ticket_keys import KEY_NAME_LENGTH, TicketKeys

NONCE_LENGTH = 12
TAG_LENGTH = 16
TICKET_OVERHEAD = KEY_NAME_LENGTH + NONCE_LENGTH + TAG_LENGTH
#: RFC 5077 §3.3: the ticket is an opaque<0..2^16-1>.
MAX_TICKET_LENGTH = 0xFFFF


class TicketSealer:
    """Seals and opens tickets under :class:`TicketKeys`."""

    __slots__ = ("keys", "lifetime")

    def __init__(self, keys: TicketKeys, *, lifetime: float | None = None) -> None:
        """``lifetime`` (seconds, default and at most the key period): how
        long a ticket may be resumed. A longer one would outlive its key."""
        top = math.floor(keys.period)
        chosen = top if lifetime is None else math.floor(lifetime)
        if not 1 <= chosen <= top:
            raise ConfigurationError(
                f"a ticket lifetime must be 1 to {top} s (the ticket key period), got {lifetime}"
            )
        self.keys = keys
        self.lifetime = chosen

    def seal(self, state: ResumptionState, now: float) -> bytes:
        """The ticket for ``state`` (its lifetime capped at this sealer's)."""
        if state.lifetime > self.lifetime:
            state = state._replace(lifetime=self.lifetime)
        key = self.keys.current(now)
        nonce = os.urandom(NONCE_LENGTH)
        ticket = key.name + nonce + key.aead.encrypt(nonce, state.encode(), key.name)
        if len(ticket) > MAX_TICKET_LENGTH:
            raise ConfigurationError(
                f"the session state makes a {len(ticket)}-byte ticket, more than RFC 5077 allows; "
                "keep the leaf certificate only"
            )
        return ticket

    def open(self, ticket: bytes, now: float) -> ResumptionState | ResumptionFailure:
        """The state sealed in ``ticket``, or why it cannot be resumed."""
        if not TICKET_OVERHEAD < len(ticket) <= MAX_TICKET_LENGTH:
            return ResumptionFailure.MALFORMED
        name = ticket[:KEY_NAME_LENGTH]
        key = self.keys.find(name, now)
        if key is None:
            return ResumptionFailure.UNKNOWN_KEY
        nonce = ticket[KEY_NAME_LENGTH : KEY_NAME_LENGTH + NONCE_LENGTH]
        try:
            plaintext = key.aead.decrypt(nonce, ticket[KEY_NAME_LENGTH + NONCE_LENGTH :], name)
        except InvalidTag:
            return ResumptionFailure.BAD_AUTH
        try:
            state = ResumptionState.decode(plaintext)
        except StateVersionError:
            return ResumptionFailure.BAD_VERSION
        except DecodeError:
            return ResumptionFailure.MALFORMED
        return state.age_failure(now, self.keys.clock_skew) or state


__all__ = ["MAX_TICKET_LENGTH", "TICKET_OVERHEAD", "TicketSealer"]
