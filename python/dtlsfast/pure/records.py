"""DTLS record header codec (RFC 6347 §4.1): the pure-Python twin of the Rust
``parse_records`` and ``encode_record``."""

from __future__ import annotations

import struct

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import record_fields

RECORD_HEADER_LENGTH = 13
MAX_FRAGMENT_LENGTH = 0xFFFF

#: type(1) version(2) epoch(2) sequence_number(6, as 2 + 4) length(2)
HEADER = struct.Struct(">BHHHIH")


def parse_records(datagram: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """Every well-formed record of a datagram; stops at the first record whose
    header or body runs past the end. Never raises for bad bytes."""
    data = memoryview(datagram)
    out: list[tuple[int, int, int, int, bytes]] = []
    offset = 0
    end = len(data)
    while end - offset >= RECORD_HEADER_LENGTH:
        ctype, version, epoch, seq_hi, seq_lo, length = HEADER.unpack_from(data, offset)
        start = offset + RECORD_HEADER_LENGTH
        if start + length > end:
            break
        out.append(
            (ctype, version, epoch, (seq_hi << 32) | seq_lo, bytes(data[start : start + length]))
        )
        offset = start + length
    return out


def header_bytes(
    content_type: int, version: int, epoch: int, sequence_number: int, length: int
) -> bytes:
    """The 13-byte header of already range-checked fields."""
    return HEADER.pack(
        content_type, version, epoch, sequence_number >> 32, sequence_number & 0xFFFFFFFF, length
    )


def encode_record(
    content_type: int, version: int, epoch: int, sequence_number: int, fragment: bytes
) -> bytes:
    """One record: the 13-byte header followed by ``fragment``."""
    fields = record_fields(content_type, version, epoch, sequence_number)
    if len(fragment) > MAX_FRAGMENT_LENGTH:
        raise ConfigurationError(
            f"a record fragment is at most {MAX_FRAGMENT_LENGTH} bytes, got {len(fragment)}"
        )
    return header_bytes(*fields, len(fragment)) + bytes(fragment)
