"""Block1/Block2 option values and slicing for block-wise transfers (RFC 7959).

A Block option value (§2.2) is an unsigned integer of 0 to 3 bytes holding
NUM (block number, up to 20 bits), M (more blocks follow) and SZX (block size
``2 ** (SZX + 4)``, 16 to 1024 bytes). SZX 7 is reserved: it MUST NOT be sent,
and a request carrying it is answered with 4.00 Bad Request (§2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from dtlsfast.coap.errors import BlockOptionError, CoapEncodeError

#: Largest block number that fits in the 3-byte option value (20 bits).
MAX_NUM = (1 << 20) - 1
#: Largest valid SZX: 1024-byte blocks.
MAX_SZX = 6


def szx_to_size(szx: int) -> int:
    """Block size in bytes for a size exponent 0..6."""
    if not 0 <= szx <= MAX_SZX:
        raise CoapEncodeError(f"SZX must be 0..6, not {szx}")
    return 1 << (szx + 4)


def size_to_szx(size: int) -> int:
    """Size exponent of the largest block size not above ``size`` (16 .. 1024)."""
    if size < 16:
        raise CoapEncodeError(f"block size must be at least 16 bytes, not {size}")
    return min(MAX_SZX, size.bit_length() - 5)


@dataclass(frozen=True, slots=True)
class BlockOption:
    """One Block1 or Block2 option value (RFC 7959 §2.2)."""

    num: int
    more: bool
    szx: int

    def __post_init__(self) -> None:
        if not 0 <= self.num <= MAX_NUM:
            raise CoapEncodeError(f"block number must be 0..{MAX_NUM}, not {self.num}")
        if not 0 <= self.szx <= MAX_SZX:
            raise CoapEncodeError(f"SZX must be 0..6, not {self.szx}")

    @property
    def size(self) -> int:
        """Block size in bytes."""
        return 1 << (self.szx + 4)

    @property
    def offset(self) -> int:
        """Byte offset of this block in the whole body."""
        return self.num << (self.szx + 4)

    def encode(self) -> bytes:
        """The option value, as a minimal-length unsigned integer."""
        value = (self.num << 4) | (int(self.more) << 3) | self.szx
        return value.to_bytes((value.bit_length() + 7) // 8, "big")

    @classmethod
    def decode(cls, value: bytes) -> BlockOption:
        """Parse an option value; raise :class:`BlockOptionError` when it is
        longer than 3 bytes or uses the reserved SZX 7."""
        if len(value) > 3:
            raise BlockOptionError(f"block option value of {len(value)} bytes (at most 3)")
        raw = int.from_bytes(value, "big")
        szx = raw & 7
        if szx == 7:
            raise BlockOptionError("block option with the reserved SZX 7")
        return cls(raw >> 4, bool(raw & 8), szx)


def block_slice(body: bytes, num: int, szx: int) -> tuple[bytes, BlockOption] | None:
    """Block ``num`` of ``body`` at block size ``2 ** (szx + 4)`` and its Block2
    value, or None when the block starts past the end of a non-empty body."""
    size = 1 << (szx + 4)
    start = num * size
    if start >= len(body) and not (start == 0 and not body):
        return None
    chunk = body[start : start + size]
    return chunk, BlockOption(num, start + size < len(body), szx)


__all__ = ["MAX_NUM", "MAX_SZX", "BlockOption", "block_slice", "size_to_szx", "szx_to_size"]
