"""Argument checks shared by the pure-Python record core, mirroring the Rust
bindings: integers out of range raise ConfigurationError, non-integers
TypeError."""

from __future__ import annotations

import operator

from dtlsfast.exceptions import ConfigurationError

MAX_SEQUENCE_NUMBER = (1 << 48) - 1


def uint(value: object, name: str, maximum: int) -> int:
    """``value`` as an int in ``0..=maximum``."""
    number = operator.index(value)  # type: ignore[arg-type]
    if not 0 <= number <= maximum:
        raise ConfigurationError(f"{name} must be in 0..={maximum}, got {number}")
    return int(number)


def record_fields(
    content_type: object, version: object, epoch: object, sequence_number: object
) -> tuple[int, int, int, int]:
    """The four header fields of a record, range-checked (RFC 6347 §4.1)."""
    return (
        uint(content_type, "content_type", 0xFF),
        uint(version, "version", 0xFFFF),
        uint(epoch, "epoch", 0xFFFF),
        uint(sequence_number, "sequence_number", MAX_SEQUENCE_NUMBER),
    )
