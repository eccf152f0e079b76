"""Events a sans-I/O :class:`~dtlsfast.connection.DtlsConnection` reports.

Small frozen dataclasses named ``NounVerbed`` in the style of h11 and aioquic;
the caller drains them with ``DtlsConnection.next_event()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtlsfast.exceptions import DtlsError

#: Pending application data and events of one connection are bounded; past
#: this the newest application data is dropped and counted.
MAX_EVENTS = 1024


@dataclass(frozen=True)
class Event:
    """Base class of every connection event."""


@dataclass(frozen=True)
class HandshakeCompleted(Event):
    """The handshake finished; application data may flow."""

    cipher_suite: str
    """IANA name of the negotiated suite, e.g. ``TLS_PSK_WITH_AES_128_CCM_8``."""
    psk_identity: bytes | None
    """The PSK identity used, on both sides; None for certificate suites."""
    extended_master_secret: bool


@dataclass(frozen=True)
class ApplicationDataReceived(Event):
    """One record of application data arrived."""

    data: bytes


@dataclass(frozen=True)
class AlertReceived(Event):
    """The peer sent an alert (RFC 5246 §7.2)."""

    level: int
    description: int


@dataclass(frozen=True)
class ConnectionClosed(Event):
    """The connection is closed. ``error`` is None for a clean close_notify."""

    error: DtlsError | None = None


__all__ = [
    "AlertReceived",
    "ApplicationDataReceived",
    "ConnectionClosed",
    "Event",
    "HandshakeCompleted",
]
