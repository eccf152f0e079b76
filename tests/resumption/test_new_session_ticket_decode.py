"""NewSessionTicket bodies (RFC 5077 §3.3): the encoding's layout, and
decode_new_session_ticket's fast path for a well-formed body answers exactly
as the bounds-checked reader does, errors included."""

from __future__ import annotations

import random

import pytest

from dtlsfast.byte_reader import ByteReader
from dtlsfast.exceptions import DecodeError
from dtlsfast.resumption.saved_session import decode_new_session_ticket
from dtlsfast.resumption.server_resumption import encode_new_session_ticket


def test_new_session_ticket_reads_as_the_byte_reader_does() -> None:
    def by_reader(body: bytes) -> tuple[int, bytes]:
        reader = ByteReader(body, 0, "a NewSessionTicket")
        hint = int.from_bytes(reader.take(4), "big")
        ticket = reader.vector(2)
        reader.end()
        return hint, ticket

    rng = random.Random(7)
    for _ in range(2000):
        size = rng.randrange(0, 14)
        body = bytes(rng.randrange(256) for _ in range(size))
        if size >= 6 and rng.random() < 0.5:
            body = body[:4] + (size - 6).to_bytes(2, "big") + body[6:]
        try:
            expected: object = by_reader(body)
        except DecodeError as exc:
            with pytest.raises(DecodeError, match=str(exc)):
                decode_new_session_ticket(body)
            continue
        assert decode_new_session_ticket(body) == expected


@pytest.mark.parametrize("hint", [0, 1, 7200, 0xFFFFFFFF])
@pytest.mark.parametrize("length", [0, 1, 100, 0xFFFF])
def test_new_session_ticket_encoding_is_the_rfc_layout(hint: int, length: int) -> None:
    # ticket_lifetime_hint(4) ticket<0..2^16-1>, big-endian (RFC 5077 §3.3).
    ticket = bytes(range(256)) * (length // 256) + bytes(length % 256)
    body = encode_new_session_ticket(hint, ticket)
    assert body == hint.to_bytes(4, "big") + length.to_bytes(2, "big") + ticket
    assert decode_new_session_ticket(body) == (hint, ticket)
