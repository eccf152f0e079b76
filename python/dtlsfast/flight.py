"""Outgoing handshake flights: fragmentation to the MTU and datagram packing.

RFC 6347 §4.2.3 (handshake fragmentation), §4.2.4 (flights are retransmitted
whole, with fresh record sequence numbers) and §4.1.1 (several records per
datagram, each record inside one datagram).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from dtlsfast.exceptions import ConfigurationError, LocalProtocolError
from dtlsfast.handshake.constants import ContentType
from dtlsfast.handshake.messages import HANDSHAKE_HEADER

#: A fragment smaller than this is not worth starting at the end of a datagram;
#: the message starts in the next datagram instead.
MIN_USEFUL_FRAGMENT = 32


class FlightItem(NamedTuple):
    """One message of a flight: a whole handshake message, or a
    ChangeCipherSpec, and the epoch it is sent in. A tuple, so the Rust
    ``pack_flight`` takes it as it is."""

    epoch: int
    content_type: int
    payload: bytes


def _fragment(message: bytes, offset: int, length: int) -> bytes:
    """One fragment of an unfragmented message: its header with the fragment
    offset and length rewritten, then that slice of the body."""
    header = message[:6] + offset.to_bytes(3, "big") + length.to_bytes(3, "big")
    start = HANDSHAKE_HEADER + offset
    return header + message[start : start + length]


def pack_flight(
    items: Sequence[FlightItem],
    mtu: int,
    overhead: Callable[[int], int],
    seal: Callable[[int, bytes, int], bytes],
) -> list[bytes]:
    """Turn a flight into as few datagrams of at most ``mtu`` bytes as fit.

    ``overhead(epoch)`` is the record header plus AEAD expansion of an epoch;
    ``seal(content_type, payload, epoch)`` builds one record with the next
    sequence number of that epoch. Handshake messages too large for the space
    left are fragmented; the first fragment fills the current datagram.

    LocalProtocolError for a handshake item shorter than its header;
    ConfigurationError for an MTU that leaves no room for any fragment body.
    ``dtlsfast._core.pack_flight`` does the same in one call.
    """
    datagrams: list[bytes] = []
    current: list[bytes] = []
    room = mtu

    def flush() -> None:
        nonlocal current, room
        if current:
            datagrams.append(b"".join(current))
        current = []
        room = mtu

    for item in items:
        cost = overhead(item.epoch)
        if item.content_type != ContentType.HANDSHAKE:
            if cost + len(item.payload) > room:
                flush()
            record = seal(item.content_type, item.payload, item.epoch)
            current.append(record)
            room -= len(record)
            continue
        message = item.payload
        body_length = len(message) - HANDSHAKE_HEADER
        if body_length < 0:
            raise LocalProtocolError(
                f"a handshake flight item is a whole message of at least {HANDSHAKE_HEADER} "
                f"bytes, not {len(message)}"
            )
        if cost + len(message) <= room:
            record = seal(item.content_type, message, item.epoch)
            current.append(record)
            room -= len(record)
            continue
        # Fragment: the first piece fills the current datagram when that
        # leaves a useful amount, every further one a datagram of its own.
        offset = 0
        while offset < body_length or (offset == 0 and body_length == 0):
            space = room - cost - HANDSHAKE_HEADER
            if space < MIN_USEFUL_FRAGMENT:
                flush()
                space = room - cost - HANDSHAKE_HEADER
            if space < 1:
                # Without this a fragment of no body would never advance.
                raise ConfigurationError(
                    f"an MTU of {mtu} bytes leaves no room for a handshake fragment in epoch "
                    f"{item.epoch} ({cost} bytes of record overhead and {HANDSHAKE_HEADER} of "
                    "header)"
                )
            piece = _fragment(message, offset, min(space, body_length - offset))
            record = seal(item.content_type, piece, item.epoch)
            current.append(record)
            room -= len(record)
            offset += len(piece) - HANDSHAKE_HEADER
            if body_length == 0:
                break
    flush()
    return datagrams
