"""Sliding anti-replay window for one epoch (RFC 6347 §4.1.2.6): the
pure-Python twin of the Rust ``ReplayWindow``, a Python int as the bitmap."""

from __future__ import annotations

import operator

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import MAX_SEQUENCE_NUMBER, uint

MAX_WINDOW_SIZE = 8192


class ReplayWindow:
    """Bit ``i`` of the bitmap stands for sequence number ``highest - i``."""

    __slots__ = ("_bits", "_highest", "_size")

    def __init__(self, size: int = 64) -> None:
        number = operator.index(size)
        if not 1 <= number <= MAX_WINDOW_SIZE:
            raise ConfigurationError(
                f"replay window size must be in 1..={MAX_WINDOW_SIZE}, got {number}"
            )
        self._size = int(number)
        self._highest: int | None = None
        self._bits = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def highest(self) -> int | None:
        return self._highest

    def check(self, sequence_number: int) -> bool:
        """True if the record is new and not left of the window."""
        seq = operator.index(sequence_number)
        if not 0 <= seq <= MAX_SEQUENCE_NUMBER:
            return False
        highest = self._highest
        if highest is None or seq > highest:
            return True
        offset = highest - seq
        return offset < self._size and not (self._bits >> offset) & 1

    def accept(self, sequence_number: int) -> None:
        """Mark a record seen; call only after it authenticated."""
        seq = uint(sequence_number, "sequence_number", MAX_SEQUENCE_NUMBER)
        highest = self._highest
        if highest is None:
            self._highest, self._bits = seq, 1
        elif seq > highest:
            shift = seq - highest
            mask = (1 << self._size) - 1
            self._bits = ((self._bits << shift) | 1) & mask if shift < self._size else 1
            self._highest = seq
        elif highest - seq < self._size:
            self._bits |= 1 << (highest - seq)

    def export(self) -> tuple[int | None, bytes]:
        """``(highest, bitmap)``: the bitmap's bit ``i`` (least significant
        first) stands for ``highest - i``, as in the Rust core."""
        if self._highest is None:
            return None, b""
        return self._highest, self._bits.to_bytes((self._size + 7) // 8, "little")

    @staticmethod
    def restore(size: int, highest: int | None, bitmap: bytes) -> ReplayWindow:
        """The window :meth:`export` described; the bitmap must be canonical."""
        window = ReplayWindow(size)
        if highest is None:
            if bitmap:
                raise ConfigurationError("a replay window with no highest has no bitmap")
            return window
        top = uint(highest, "highest", MAX_SEQUENCE_NUMBER)
        if len(bitmap) != (window._size + 7) // 8:
            raise ConfigurationError(
                "a replay window's bitmap is size/8 bytes and its highest at most 2**48-1"
            )
        bits = int.from_bytes(bitmap, "little")
        if not bits & 1:
            raise ConfigurationError("a replay window's highest must be marked accepted")
        if bits >> min(window._size, top + 1):
            raise ConfigurationError(
                "a replay window's bitmap marks a sequence number outside the window"
            )
        window._highest, window._bits = top, bits
        return window

    def __repr__(self) -> str:
        return f"<ReplayWindow size={self._size} highest={self._highest}>"
