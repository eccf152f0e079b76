"""Handshake reassembly (RFC 6347 §4.2.2, §4.2.3): fragments in any order,
duplicated or overlapping, out; whole messages in message_seq order. The
pure-Python twin of the Rust ``HandshakeReassembler``, with the same bounds.

Rules shared with the Rust core: a message costs its full length from its
first fragment; a later message that does not fit ``max_buffered_bytes`` is
dropped and counted, while the message at ``next_seq`` evicts buffered later
ones (highest message_seq first) unless it alone is too large; fragments more
than 16 messages ahead are dropped; a message longer than
``max_message_size`` is a DecodeError even when its message_seq is old.
"""

from __future__ import annotations

import bisect

from dtlsfast.exceptions import DecodeError
from dtlsfast.pure._args import uint

HANDSHAKE_HEADER_LENGTH = 12
MAX_LOOKAHEAD = 16
_U64 = (1 << 64) - 1


class _Pending:
    __slots__ = ("length", "message", "msg_type", "received", "seq")

    def __init__(self, msg_type: int, length: int, seq: int) -> None:
        self.seq = seq
        self.msg_type = msg_type
        self.length = length
        header = (
            bytes([msg_type])
            + length.to_bytes(3, "big")
            + seq.to_bytes(2, "big")
            + b"\x00\x00\x00"
            + length.to_bytes(3, "big")
        )
        self.message = bytearray(header) + bytearray(length)
        #: Received body ranges [start, end): sorted, disjoint, non-adjacent.
        self.received: list[tuple[int, int]] = []

    def complete(self) -> bool:
        return self.length == 0 or self.received == [(0, self.length)]

    def add(self, offset: int, body: memoryview) -> None:
        if not body or self.complete():
            return
        start = HANDSHAKE_HEADER_LENGTH + offset
        self.message[start : start + len(body)] = body
        lo, hi = offset, offset + len(body)
        ranges = self.received
        first = bisect.bisect_left([end for _, end in ranges], lo)
        last = first
        while last < len(ranges) and ranges[last][0] <= hi:
            lo = min(lo, ranges[last][0])
            hi = max(hi, ranges[last][1])
            last += 1
        ranges[first:last] = [(lo, hi)]


class HandshakeReassembler:
    """Collects fragments and delivers whole, unfragmented messages."""

    __slots__ = ("_buffered", "_dropped", "_max_buffered", "_max_message", "_next", "_pending")

    def __init__(
        self,
        max_message_size: int = 32768,
        max_buffered_bytes: int = 65536,
        next_seq: int = 0,
    ) -> None:
        self._max_message = uint(max_message_size, "max_message_size", _U64)
        self._max_buffered = uint(max_buffered_bytes, "max_buffered_bytes", _U64)
        self._next = uint(next_seq, "next_seq", 0xFFFF)
        self._pending: list[_Pending] = []  # sorted by message_seq
        self._buffered = 0
        self._dropped = 0

    @property
    def next_seq(self) -> int:
        return self._next

    @next_seq.setter
    def next_seq(self, value: int) -> None:
        self._next = uint(value, "next_seq", 0xFFFF)
        kept = [p for p in self._pending if p.seq >= self._next]
        self._buffered -= sum(p.length for p in self._pending if p.seq < self._next)
        self._pending = kept

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    @property
    def dropped(self) -> int:
        return self._dropped

    def __repr__(self) -> str:
        return (
            f"<HandshakeReassembler next_seq={self._next} buffered_bytes={self._buffered} "
            f"dropped={self._dropped}>"
        )

    def push(self, fragment: bytes) -> list[bytes]:
        data = memoryview(fragment)
        if len(data) < HANDSHAKE_HEADER_LENGTH:
            raise DecodeError(
                f"handshake fragment is {len(data)} bytes, shorter than its "
                f"{HANDSHAKE_HEADER_LENGTH}-byte header"
            )
        msg_type = data[0]
        length = int.from_bytes(data[1:4], "big")
        seq = int.from_bytes(data[4:6], "big")
        offset = int.from_bytes(data[6:9], "big")
        frag_length = int.from_bytes(data[9:12], "big")
        body = data[HANDSHAKE_HEADER_LENGTH:]
        if len(body) != frag_length:
            raise DecodeError(
                f"handshake fragment body is {len(body)} bytes but its fragment_length "
                f"is {frag_length}"
            )
        if offset + frag_length > length:
            raise DecodeError(
                f"handshake fragment covers bytes {offset}..{offset + frag_length} of a "
                f"{length}-byte message"
            )
        if length > self._max_message:
            raise DecodeError(
                f"handshake message of {length} bytes exceeds max_message_size "
                f"({self._max_message})"
            )
        if seq >= self._next:
            if seq - self._next > MAX_LOOKAHEAD:
                self._dropped += 1
            else:
                self._store(msg_type, length, seq, offset, body)
        return self._deliver()

    def _store(self, msg_type: int, length: int, seq: int, offset: int, body: memoryview) -> None:
        pending = self._pending
        index = bisect.bisect_left([p.seq for p in pending], seq)
        if index < len(pending) and pending[index].seq == seq:
            existing = pending[index]
            if existing.msg_type != msg_type or existing.length != length:
                raise DecodeError(
                    f"fragments of message_seq {seq} disagree: msg_type {msg_type} length "
                    f"{length} after msg_type {existing.msg_type} length {existing.length}"
                )
            existing.add(offset, body)
            return
        if self._buffered + length > self._max_buffered:
            if seq != self._next or length > self._max_buffered:
                self._dropped += 1
                return
            # Everything buffered is later than next_seq: evict from the top.
            while self._buffered + length > self._max_buffered and pending:
                evicted = pending.pop()
                self._buffered -= evicted.length
                self._dropped += 1
        message = _Pending(msg_type, length, seq)
        message.add(offset, body)
        pending.insert(min(index, len(pending)), message)
        self._buffered += length

    def _deliver(self) -> list[bytes]:
        out: list[bytes] = []
        pending = self._pending
        while pending and pending[0].seq == self._next and pending[0].complete():
            message = pending.pop(0)
            self._buffered -= message.length
            self._next += 1
            out.append(bytes(message.message))
        return out
