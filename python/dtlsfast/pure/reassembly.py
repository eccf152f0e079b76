"""Handshake reassembly (RFC 6347 §4.2.2, §4.2.3): fragments in any order,
duplicated or overlapping, out; whole messages in message_seq order. The
pure-Python twin of the Rust ``HandshakeReassembler``, with the same bounds.

Rules shared with the Rust core: memory grows with the bytes that arrive, not
with the length a fragment declares: a message costs its received bytes plus
``GAP_COST`` per gap between received chunks, and a whole message at
``next_seq`` is delivered at once for nothing. What is buffered stays within
``max_buffered_bytes`` and what a shared :class:`ReassemblyBudget` grants the
reassembler's ``source``; a
fragment that does not fit is dropped and counted, while the message at
``next_seq`` evicts buffered later ones (highest message_seq first) when that
makes room. Fragments more than 16 messages ahead are dropped; a message
longer than ``max_message_size`` is a DecodeError even when its message_seq is
old, and so are overlapping fragments that disagree on the bytes they share.
"""

from __future__ import annotations

import bisect

from dtlsfast.exceptions import ConfigurationError, DecodeError
from dtlsfast.pure._args import uint
from dtlsfast.pure.hs_codec import parse_handshake_fragments
from dtlsfast.pure.reassembly_budget import ReassemblyBudget

HANDSHAKE_HEADER_LENGTH = 12
MAX_LOOKAHEAD = 16
GAP_COST = 64
_U64 = (1 << 64) - 1


def _cost(received: int, chunks: int) -> int:
    return received + GAP_COST * max(0, chunks - 1)


class _Placement:
    """Where a fragment lands: chunks[first:last] merge with it into one."""

    __slots__ = ("cost_after", "first", "last", "new_bytes")

    def __init__(self, first: int, last: int, new_bytes: int, cost_after: int) -> None:
        self.first = first
        self.last = last
        self.new_bytes = new_bytes
        self.cost_after = cost_after


class _Pending:
    __slots__ = ("chunks", "length", "msg_type", "received", "seq", "starts")

    def __init__(self, msg_type: int, length: int, seq: int) -> None:
        self.seq = seq
        self.msg_type = msg_type
        self.length = length
        #: Received body bytes: chunks[i] starts at starts[i]; sorted,
        #: disjoint, non-adjacent.
        self.starts: list[int] = []
        self.chunks: list[bytearray] = []
        self.received = 0

    def cost(self) -> int:
        return _cost(self.received, len(self.chunks))

    def complete(self) -> bool:
        return self.length == 0 or self.received == self.length

    def place(self, lo: int, body: memoryview) -> _Placement:
        hi = lo + len(body)
        starts, chunks = self.starts, self.chunks
        first = bisect.bisect_left([s + len(c) for s, c in zip(starts, chunks, strict=True)], lo)
        last, span_lo, span_hi, touched = first, lo, hi, 0
        while last < len(chunks) and starts[last] <= hi:
            start, chunk = starts[last], chunks[last]
            end = start + len(chunk)
            a, b = max(lo, start), min(hi, end)
            if a < b and body[a - lo : b - lo] != chunk[a - start : b - start]:
                raise DecodeError(
                    f"overlapping fragments of handshake message_seq {self.seq} disagree on "
                    f"bytes {a}..{b}: a conflicting retransmission"
                )
            span_lo, span_hi = min(span_lo, start), max(span_hi, end)
            touched += len(chunk)
            last += 1
        new_bytes = (span_hi - span_lo) - touched
        chunks_after = len(chunks) - (last - first) + 1
        return _Placement(first, last, new_bytes, _cost(self.received + new_bytes, chunks_after))

    def add(self, placement: _Placement, lo: int, body: memoryview) -> None:
        hi = lo + len(body)
        first, last = placement.first, placement.last
        touched = list(zip(self.starts[first:last], self.chunks[first:last], strict=True))
        if touched and touched[0][0] <= lo:
            start, data = touched.pop(0)
        else:
            start, data = lo, bytearray()
        pos = start + len(data)
        for chunk_start, chunk in touched:
            if pos < chunk_start:
                data += body[pos - lo : chunk_start - lo]
                pos = chunk_start
            data += chunk[pos - chunk_start :]
            pos = max(pos, chunk_start + len(chunk))
        if pos < hi:
            data += body[pos - lo :]
        self.starts[first:last] = [start]
        self.chunks[first:last] = [data]
        self.received += placement.new_bytes

    def message(self) -> bytes:
        """The complete message, unfragmented, with its 12-byte header."""
        length = self.length.to_bytes(3, "big")
        header = bytes([self.msg_type]) + length + self.seq.to_bytes(2, "big") + bytes(3) + length
        return header + b"".join(self.chunks)


class HandshakeReassembler:
    """Collects fragments and delivers whole, unfragmented messages."""

    __slots__ = (
        "_budget",
        "_buffered",
        "_dropped",
        "_max_buffered",
        "_max_message",
        "_next",
        "_pending",
        "_source",
    )

    def __init__(
        self,
        max_message_size: int = 32768,
        max_buffered_bytes: int = 65536,
        next_seq: int = 0,
        *,
        budget: ReassemblyBudget | None = None,
        source: bytes | None = None,
    ) -> None:
        self._budget: ReassemblyBudget | None = None
        self._source = None if source is None else bytes(source)
        self._buffered = 0
        self._max_message = uint(max_message_size, "max_message_size", _U64)
        self._max_buffered = uint(max_buffered_bytes, "max_buffered_bytes", _U64)
        self._next = uint(next_seq, "next_seq", 0xFFFF)
        if budget is not None and not isinstance(budget, ReassemblyBudget):
            raise TypeError(f"budget must be a ReassemblyBudget, not {type(budget).__name__}")
        self._budget = budget
        self._pending: list[_Pending] = []  # sorted by message_seq
        self._dropped = 0

    def __del__(self) -> None:
        # The connection goes: what it held goes back to the shared budget.
        budget = getattr(self, "_budget", None)
        if budget is not None:
            budget._give_back(self._source, self._buffered)

    @property
    def next_seq(self) -> int:
        return self._next

    @next_seq.setter
    def next_seq(self, value: int) -> None:
        self._next = uint(value, "next_seq", 0xFFFF)
        freed = sum(p.cost() for p in self._pending if p.seq < self._next)
        self._pending = [p for p in self._pending if p.seq >= self._next]
        self._release(freed)

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    def discard(self) -> None:
        """Discard every buffered message and give its bytes back to the budget
        (the connection is going)."""
        self._pending = []
        self._release(self._buffered)

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
        out: list[bytes] = []
        if seq >= self._next:
            if seq - self._next > MAX_LOOKAHEAD:
                self._dropped += 1
            elif self._store(msg_type, length, seq, offset, body):
                # A whole message at next_seq: delivered as it came.
                out.append(bytes(data))
                self._next += 1
        self._deliver(out)
        return out

    def push_record(
        self, payload: bytes, offset: int = 0, push: bool = True
    ) -> tuple[list[tuple[int, int, bytes]], list[bytes], int]:
        """The fragments of one handshake record's payload from ``offset``
        on: ``(judged, messages, offset)``. The framing of all of them is
        checked first. With ``push``, the fragments at or past next_seq are
        pushed until one delivers ``messages``; ``judged`` holds
        ``(msg_type, message_seq, fragment)`` of those left to the caller
        (below next_seq; without ``push``, the first fragment alone; a push
        that fails after one was left to the caller stops before its
        fragment). ``offset``: where the next call starts, 0 when done."""
        start = uint(offset, "offset", _U64)
        if start > len(payload):
            raise ConfigurationError("offset is past the end of the record")
        fragments = parse_handshake_fragments(bytes(payload[start:]))
        judged: list[tuple[int, int, bytes]] = []
        messages: list[bytes] = []
        at = start
        for msg_type, _length, message_seq, _offset, _fragment_length, piece in fragments:
            here = at
            at += len(piece)
            if not push or message_seq < self._next:
                judged.append((msg_type, message_seq, piece))
                if not push:
                    break
                continue
            try:
                messages = self.push(piece)
            except DecodeError:
                if not judged:
                    raise
                return judged, [], here
            if messages:
                break
        return judged, messages, 0 if at >= len(payload) else at

    def _store(self, msg_type: int, length: int, seq: int, offset: int, body: memoryview) -> bool:
        """Buffer a fragment; True if it is the whole message at next_seq with
        nothing buffered for it, to be delivered without buffering."""
        pending = self._pending
        index = bisect.bisect_left([p.seq for p in pending], seq)
        if index < len(pending) and pending[index].seq == seq:
            existing = pending[index]
            if existing.msg_type != msg_type or existing.length != length:
                raise DecodeError(
                    f"fragments of message_seq {seq} disagree: msg_type {msg_type} length "
                    f"{length} after msg_type {existing.msg_type} length {existing.length}"
                )
            placement = existing.place(offset, body)
            if placement.new_bytes == 0:
                return False  # a retransmission: nothing new
            cost_before = existing.cost()
        else:
            if seq == self._next and offset == 0 and len(body) == length:
                return True
            if not body and length:
                return False  # nothing to hold
            placement = _Pending(msg_type, length, seq).place(offset, body)
            cost_before = 0
        if not self._make_room(seq, cost_before, placement.cost_after):
            return False
        index = min(index, len(pending))
        if index == len(pending) or pending[index].seq != seq:
            pending.insert(index, _Pending(msg_type, length, seq))
        pending[index].add(placement, offset, body)
        return False

    def _fits(self, cost: int, freed: int) -> tuple[bool, bool]:
        """Whether ``cost`` more bytes fit once ``freed`` are given back:
        under the own cap, and under the shared budget."""
        held = max(0, self._buffered - freed)
        own = held + cost <= self._max_buffered
        budget = self._budget
        if budget is None:
            shared = True
        else:
            used, source_used = budget._state(self._source)
            if source_used is not None:
                source_used = max(0, source_used - freed)
            shared = budget._allows(max(0, used - freed), source_used, cost)
        return own, shared

    def _make_room(self, seq: int, before: int, after: int) -> bool:
        if after <= before:
            self._release(before - after)
            return True
        cost = after - before
        freed = 0
        if seq == self._next and self._fits(cost, 0) != (True, True):
            later = sum(p.cost() for p in self._pending if p.seq > seq)
            if self._fits(cost, later) == (True, True):
                while (
                    self._fits(cost, 0) != (True, True)
                    and self._pending
                    and self._pending[-1].seq > seq
                ):
                    self._release(self._pending.pop().cost())
                    self._dropped += 1
            else:
                freed = later
        own, shared = self._fits(cost, freed)
        budget = self._budget
        if not (own and shared and (budget is None or budget._try_take(self._source, cost))):
            self._dropped += 1
            if own and budget is not None:
                budget._count_refusal()
            return False
        self._buffered += cost
        return True

    def _release(self, cost: int) -> None:
        self._buffered = max(0, self._buffered - cost)
        if self._budget is not None:
            self._budget._give_back(self._source, cost)

    def _deliver(self, out: list[bytes]) -> None:
        pending = self._pending
        while pending and pending[0].seq == self._next and pending[0].complete():
            message = pending.pop(0)
            self._release(message.cost())
            self._next += 1
            out.append(message.message())
