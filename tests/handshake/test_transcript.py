"""Tests of the handshake transcript (dtlsfast.handshake.transcript)."""

from __future__ import annotations

import hashlib

import pytest

from dtlsfast.exceptions import ConfigurationError, LocalProtocolError
from dtlsfast.handshake.messages import encode_handshake, fragment_handshake
from dtlsfast.handshake.transcript import HandshakeTranscript


def test_digest_covers_whole_messages_with_dtls_headers() -> None:
    t = HandshakeTranscript()
    m1 = encode_handshake(1, 1, b"hello")
    m2 = encode_handshake(2, 1, b"")
    t.add(m1)
    t.add(m2)
    assert len(t) == 2
    assert t.data() == m1 + m2
    assert t.digest("sha256") == hashlib.sha256(m1 + m2).digest()
    assert t.digest("sha384") == hashlib.sha384(m1 + m2).digest()
    # digest does not consume anything
    assert t.digest("sha256") == hashlib.sha256(m1 + m2).digest()


def test_digest_is_of_everything_so_far() -> None:
    t = HandshakeTranscript()
    m1 = encode_handshake(16, 2, b"\x00\x04CoAP")
    t.add(m1)
    first = t.digest("sha256")
    t.add(encode_handshake(20, 3, b"v" * 12))
    assert first == hashlib.sha256(m1).digest()
    assert t.digest("sha256") != first


def test_reset() -> None:
    t = HandshakeTranscript()
    t.add(encode_handshake(1, 0, b"x"))
    t.reset()
    assert len(t) == 0
    assert t.digest("sha256") == hashlib.sha256(b"").digest()


def test_header_from_first_fragment_is_normalised() -> None:
    whole = encode_handshake(11, 4, b"abcdefgh")
    first = fragment_handshake(whole, 3)[0]
    t = HandshakeTranscript()
    t.add(first[:12] + whole[12:])
    assert t.messages == (whole,)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x01\x00",
        encode_handshake(1, 0, b"abc")[:-1],
        fragment_handshake(encode_handshake(1, 0, b"abcdef"), 3)[1],
    ],
)
def test_rejects_partial_messages(message: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        HandshakeTranscript().add(message)


def test_rejects_unknown_hash() -> None:
    with pytest.raises(ConfigurationError):
        HandshakeTranscript().digest("md5")
