"""Server-side Block1 reassembly of large request bodies (RFC 7959 §2.3, §2.5).

Blocks are collected per (remote, method, path) and handed to the resource
only when the last one arrives (atomic mode, §2.5). A block that does not
continue the body where it ends, or arrives for a body that was never started
or already expired, is answered with 4.08 Request Entity Incomplete (§2.9.2);
a body larger than the limit with 4.13 Request Entity Too Large (§2.9.3).
Buffers are bounded per remote and in total: the oldest is evicted and counted.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable

from dtlsfast.coap.block import BlockOption
from dtlsfast.coap.exchange import ErrorResponse
from dtlsfast.coap.message import Code

Key = tuple[Hashable, int, str]


class _Buffer:
    __slots__ = ("data", "expires")

    def __init__(self, expires: float) -> None:
        self.data = bytearray()
        self.expires = expires


class Block1Assembler:
    """Partial request bodies, bounded."""

    def __init__(
        self, *, per_remote: int, total: int, max_body: int, counters: Counter[str]
    ) -> None:
        self.max_body = max_body
        self._per_remote = per_remote
        self._total = total
        self._counters = counters
        self._buffers: OrderedDict[Key, _Buffer] = OrderedDict()
        self._count: Counter[Hashable] = Counter()

    def __len__(self) -> int:
        return len(self._buffers)

    def feed(
        self, key: Key, block: BlockOption, payload: bytes, now: float, lifetime: float
    ) -> bytes | None:
        """Add one block; the whole body when it was the last, else None.
        Raises :class:`ErrorResponse` (4.00, 4.08, 4.13) when the block is refused."""
        if block.more and len(payload) != block.size:
            self._pop(key)
            raise ErrorResponse(Code.BAD_REQUEST, "block size does not match SZX")
        if len(payload) > block.size:
            self._pop(key)
            raise ErrorResponse(Code.BAD_REQUEST, "block larger than SZX")
        if block.num == 0:
            self._pop(key)
            if not block.more:
                return payload
            buf = self._new(key, now)
        else:
            found = self._buffers.get(key)
            if found is None or found.expires <= now or block.offset != len(found.data):
                self._pop(key)
                raise ErrorResponse(Code.REQUEST_ENTITY_INCOMPLETE, "missing earlier blocks")
            buf = found
        if len(buf.data) + len(payload) > self.max_body:
            self._pop(key)
            self._counters["block1_too_large"] += 1
            raise ErrorResponse(Code.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} B")
        buf.data += payload
        buf.expires = now + lifetime
        self._buffers.move_to_end(key)
        if block.more:
            return None
        self._pop(key)
        return bytes(buf.data)

    def _new(self, key: Key, now: float) -> _Buffer:
        remote = key[0]
        while self._buffers:
            oldest_key, oldest = next(iter(self._buffers.items()))
            if oldest.expires > now:
                break
            self._pop(oldest_key)
        if self._count[remote] >= self._per_remote:
            victim = next(k for k in self._buffers if k[0] == remote)
            self._pop(victim)
            self._counters["block1_evicted"] += 1
        if len(self._buffers) >= self._total:
            self._pop(next(iter(self._buffers)))
            self._counters["block1_evicted"] += 1
        buf = _Buffer(now)
        self._buffers[key] = buf
        self._count[remote] += 1
        return buf

    def _pop(self, key: Key) -> None:
        if self._buffers.pop(key, None) is not None:
            remote = key[0]
            self._count[remote] -= 1
            if self._count[remote] <= 0:
                del self._count[remote]

    def remove_remote(self, remote: Hashable) -> None:
        if remote not in self._count:
            return  # most remotes: no body in progress, no scan
        for key in [k for k in self._buffers if k[0] == remote]:
            self._pop(key)


__all__ = ["Block1Assembler"]
