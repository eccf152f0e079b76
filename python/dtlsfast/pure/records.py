"""DTLS record header codec (RFC 6347 §4.1): the pure-Python twin of the Rust
``parse_records``, ``parse_records_cid``, ``split_records`` and
``encode_record``.

tls12_cid records (RFC 9146 §4) carry the connection ID between the sequence
number and the length; its length is not on the wire, the receiver parses
with the length of its own CID."""

from __future__ import annotations

import struct

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import record_fields, uint

RECORD_HEADER_LENGTH = 13
MAX_FRAGMENT_LENGTH = 0xFFFF
#: ContentType tls12_cid (RFC 9146 §4).
CID_CONTENT_TYPE = 25
#: ``opaque cid<0..2^8-1>`` (RFC 9146 §3).
MAX_CID_LENGTH = 255

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


def parse_records_cid(
    datagram: bytes, cid_length: int
) -> list[tuple[int, int, int, int, bytes, bytes]]:
    """Every well-formed record of a datagram as ``(type, version, epoch,
    sequence_number, cid, fragment)``: records of type 25 carry a
    ``cid_length``-byte CID (RFC 9146 §4), others an empty one."""
    return split_records(datagram, cid_length)[0]


def split_records(
    datagram: bytes, cid_length: int
) -> tuple[list[tuple[int, int, int, int, bytes, bytes]], int, bool]:
    """:func:`parse_records_cid`'s records, the bytes they took (less than
    the datagram if something malformed followed them) and whether every one
    is an epoch-0, non-tls12_cid record of a DTLS version (major 0xFE)."""
    cid_length = uint(cid_length, "cid_length", MAX_CID_LENGTH)
    data = memoryview(datagram)
    out: list[tuple[int, int, int, int, bytes, bytes]] = []
    offset = 0
    end = len(data)
    plaintext = True
    while True:
        if offset >= end:
            break
        cid_len = cid_length if data[offset] == CID_CONTENT_TYPE else 0
        header_end = offset + RECORD_HEADER_LENGTH + cid_len
        if header_end > end:
            break
        ctype, version, epoch, seq_hi, seq_lo = _PREFIX.unpack_from(data, offset)
        cid = bytes(data[offset + 11 : offset + 11 + cid_len])
        length = int.from_bytes(data[header_end - 2 : header_end], "big")
        if header_end + length > end:
            break
        fragment = bytes(data[header_end : header_end + length])
        out.append((ctype, version, epoch, (seq_hi << 32) | seq_lo, cid, fragment))
        plaintext = plaintext and epoch == 0 and ctype != CID_CONTENT_TYPE and version >> 8 == 0xFE
        offset = header_end + length
    return out, offset, plaintext


#: type(1) version(2) epoch(2) sequence_number(6, as 2 + 4): before the CID.
_PREFIX = struct.Struct(">BHHHI")


def cid_header_bytes(
    version: int, epoch: int, sequence_number: int, cid: bytes, length: int
) -> bytes:
    """The tls12_cid header (RFC 9146 §4) of already range-checked fields."""
    return (
        _PREFIX.pack(
            CID_CONTENT_TYPE, version, epoch, sequence_number >> 32, sequence_number & 0xFFFFFFFF
        )
        + cid
        + length.to_bytes(2, "big")
    )


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
