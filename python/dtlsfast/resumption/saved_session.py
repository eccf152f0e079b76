"""What a client keeps of a session to resume it (RFC 5246 §7.4.1.2, RFC
5077 §3.4): :class:`SavedSession`, read from an established connection's
``resumption`` and passed back to ``connect(..., resume=...)``.

It holds the session's master secret: keep it in memory, or encrypted at
rest; whoever has it can read and forge that session's records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dtlsfast.byte_reader import ByteReader
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.resumption.session_cache import SESSION_ID_LENGTH
from dtlsfast.resumption.session_state import ResumptionState
from dtlsfast.resumption.tickets import MAX_TICKET_LENGTH


@dataclass(frozen=True, slots=True)
class SavedSession:
    """A session the client may offer to resume: the server's session ID, its
    ticket if it sent one, and the state both sides keep (suite, master
    secret, extended master secret, PSK identity). ``state.created`` and
    ``state.lifetime`` are the client's view: when it got the session and
    the server's ticket lifetime hint (or a default)."""

    state: ResumptionState
    session_id: bytes = b""
    ticket: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.session_id) > SESSION_ID_LENGTH:
            raise ConfigurationError(f"a session_id is at most {SESSION_ID_LENGTH} bytes")
        if self.ticket is not None and not 0 < len(self.ticket) <= MAX_TICKET_LENGTH:
            raise ConfigurationError(f"a ticket is 1 to {MAX_TICKET_LENGTH} bytes")
        if not self.session_id and self.ticket is None:
            raise ConfigurationError("a saved session needs a session_id or a ticket")

    def offered_session_id(self) -> bytes:
        """The session_id a ClientHello carries: the server's one, or with a
        ticket and none, a random one (RFC 5077 §3.4: the server echoes it to
        say it accepted the ticket)."""
        return self.session_id or os.urandom(SESSION_ID_LENGTH)

    def usable(self, now: float) -> bool:
        """Not yet past its lifetime at wall-clock ``now``."""
        return now < self.state.expires()

    def __repr__(self) -> str:
        kind = "ticket" if self.ticket is not None else "session_id"
        return f"<SavedSession {kind} suite={self.state.cipher_suite:#06x}>"


def decode_new_session_ticket(body: bytes) -> tuple[int, bytes]:
    """``(ticket_lifetime_hint, ticket)`` of a NewSessionTicket body (RFC
    5077 §3.3); DecodeError if malformed."""
    if len(body) >= 6 and int.from_bytes(body[4:6], "big") == len(body) - 6:
        # Well formed (what the reader below accepts), read without it: a
        # client reads one per full handshake.
        return int.from_bytes(body[:4], "big"), body[6:]
    reader = ByteReader(body, 0, "a NewSessionTicket")
    hint = int.from_bytes(reader.take(4), "big")
    ticket = reader.vector(2)
    reader.end()
    return hint, ticket


__all__ = ["SavedSession", "decode_new_session_ticket"]
