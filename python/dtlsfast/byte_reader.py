"""A bounds-checked reader over bytes for the stored formats (resumption
state, session store records): every read past the end is a DecodeError."""

from __future__ import annotations

from dtlsfast.exceptions import DecodeError


class ByteReader:
    """Reads fields from ``data`` starting at ``offset``; ``what`` names the
    thing being decoded in error messages."""

    __slots__ = ("data", "offset", "what")

    def __init__(self, data: bytes, offset: int, what: str) -> None:
        self.data, self.offset, self.what = data, offset, what

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise DecodeError(f"{self.what} is truncated")
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def vector(self, length_bytes: int) -> bytes:
        """A field preceded by its length in ``length_bytes`` big-endian bytes."""
        return self.take(int.from_bytes(self.take(length_bytes), "big"))

    def end(self) -> None:
        if self.offset != len(self.data):
            raise DecodeError(f"trailing bytes after {self.what}")


__all__ = ["ByteReader"]
