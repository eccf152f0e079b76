"""flight.pack_flight (RFC 6347 §4.2.3): arguments it cannot lay out are
refused with a typed error, never looped on or dropped."""

from __future__ import annotations

import pytest

from dtlsfast.exceptions import ConfigurationError, LocalProtocolError
from dtlsfast.flight import FlightItem, pack_flight
from dtlsfast.handshake.constants import ContentType
from dtlsfast.handshake.messages import encode_handshake

HS = ContentType.HANDSHAKE


def test_tiny_mtu_is_refused_not_looped() -> None:
    """Regression: an MTU leaving no fragment room raised OverflowError (a
    negative fragment length) or, at exactly zero room, looped forever."""
    items = [FlightItem(0, HS, encode_handshake(11, 0, bytes(100)))]
    for mtu in (20, 25):  # 5 bytes short of a header; no body room at all
        with pytest.raises(ConfigurationError):
            pack_flight(items, mtu, lambda e: 13, lambda c, p, e: b"r" * (13 + len(p)))


def test_short_handshake_item_is_refused_not_dropped() -> None:
    """Regression: a handshake item shorter than its header that did not fit
    the datagram was silently left out of the flight."""
    items = [FlightItem(0, 23, bytes(30)), FlightItem(0, HS, b"\x01\x02")]
    with pytest.raises(LocalProtocolError):
        pack_flight(items, 45, lambda e: 13, lambda c, p, e: b"r" * (13 + len(p)))
