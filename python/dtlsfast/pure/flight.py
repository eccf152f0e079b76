"""Sealing a handshake flight into datagrams in one call: the pure-Python
twin of the Rust ``pack_flight``, on :func:`dtlsfast.flight.pack_flight` and
the record layer's sealing.

RFC 6347 §4.2.3 (fragmentation), §4.2.4 (fresh sequence numbers for each
transmission), §4.1.1 (records in datagrams); RFC 9146 §4 (tls12_cid).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dtlsfast import flight as _flight
from dtlsfast.exceptions import LocalProtocolError
from dtlsfast.pure import records as _records
from dtlsfast.pure._args import MAX_SEQUENCE_NUMBER, uint
from dtlsfast.record_layer import _WriteState, seal_record, write_overhead

Writer = tuple[int, Any, int, bytes]
"""``(epoch, cipher or None, next_sequence, cid)`` of one write epoch."""


def pack_flight(
    items: Iterable[tuple[int, int, bytes]],
    mtu: int,
    version: int,
    writers: Iterable[Writer],
) -> tuple[list[bytes], list[int]]:
    """The datagrams of a flight and each writer's next sequence number
    afterwards; on an error no sequence number has advanced."""
    mtu = uint(mtu, "mtu", 0xFFFF)
    version = uint(version, "version", 0xFFFF)
    flight_items = [_item(item) for item in items]
    states = [_writer(writer) for writer in writers]
    by_epoch: dict[int, _WriteState] = {}
    for epoch, state in states:
        by_epoch.setdefault(epoch, state)

    def state_for(epoch: int) -> _WriteState:
        state = by_epoch.get(epoch)
        if state is None:
            raise LocalProtocolError(f"no write state for epoch {epoch}")
        return state

    datagrams = _flight.pack_flight(
        flight_items,
        mtu,
        lambda epoch: write_overhead(state_for(epoch)),
        lambda ctype, payload, epoch: seal_record(
            _records, state_for(epoch), ctype, version, epoch, payload
        ),
    )
    return datagrams, [state.next_sequence for _, state in states]


def _item(item: object) -> _flight.FlightItem:
    if not isinstance(item, tuple) or len(item) != 3:
        raise TypeError("pack_flight: items are (epoch, content_type, payload) tuples")
    epoch = uint(item[0], "epoch", 0xFFFF)
    content_type = uint(item[1], "content_type", 0xFF)
    if not isinstance(item[2], bytes):
        raise TypeError("pack_flight: an item's payload must be bytes")
    return _flight.FlightItem(epoch, content_type, item[2])


def _writer(writer: object) -> tuple[int, _WriteState]:
    if not isinstance(writer, tuple) or len(writer) != 4:
        raise TypeError("pack_flight: writers are (epoch, cipher, next_sequence, cid) tuples")
    epoch = uint(writer[0], "epoch", 0xFFFF)
    next_sequence = uint(writer[2], "next_sequence", MAX_SEQUENCE_NUMBER + 1)
    if not isinstance(writer[3], bytes):
        raise TypeError("pack_flight: a writer's cid must be bytes")
    # A copy: the caller's state advances only with the returned numbers.
    return epoch, _WriteState(writer[1], next_sequence, writer[3])


__all__ = ["pack_flight"]
