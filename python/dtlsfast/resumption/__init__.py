"""Session resumption (RFC 5077 tickets, RFC 5246 session IDs, RFC 7627 §5.3):
rotating ticket keys from a shared key file, the ticket format, the server's
session-ID cache and the state they all carry."""

from dtlsfast.resumption.saved_session import SavedSession
from dtlsfast.resumption.server_resumption import ServerResumption
from dtlsfast.resumption.session_cache import SessionIdCache
from dtlsfast.resumption.session_state import (
    ResumptionFailure,
    ResumptionState,
    client_refusal,
    refusal,
)
from dtlsfast.resumption.ticket_keys import TicketKey, TicketKeys
from dtlsfast.resumption.tickets import TicketSealer

__all__ = [
    "ResumptionFailure",
    "ResumptionState",
    "SavedSession",
    "ServerResumption",
    "SessionIdCache",
    "TicketKey",
    "TicketKeys",
    "TicketSealer",
    "client_refusal",
    "refusal",
]
