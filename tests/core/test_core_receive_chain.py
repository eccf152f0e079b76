"""The receive chain's engine calls in both cores: ``split_records`` (a
datagram's records, the bytes they took, whether all are epoch-0 plaintext;
RFC 6347 §4.1, RFC 9146 §4) and ``HandshakeReassembler.push_record`` (one
record's handshake fragments, RFC 6347 §4.2.2-§4.2.3), the Rust core and its
pure twin agreeing on generated inputs, call after call."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import outcome, same

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError, DecodeError

SETTINGS = settings(max_examples=250, deadline=None)


def record(ctype: int, version: int, epoch: int, seq: int, fragment: bytes) -> bytes:
    return bytes(_core.encode_record(ctype, version, epoch, seq, fragment))


def test_split_records(impl: ModuleType) -> None:
    hello = record(22, 0xFEFD, 0, 1, b"abc")
    ccs = record(20, 0xFEFF, 0, 2, b"\x01")
    records, consumed, plaintext = impl.split_records(hello + ccs + b"\x16\xfe", 0)
    assert records == impl.parse_records_cid(hello + ccs, 0)
    assert (consumed, plaintext) == (len(hello + ccs), True)
    for other in (record(23, 0xFEFD, 1, 1, b"x"), record(22, 0x0303, 0, 1, b"x")):
        assert impl.split_records(hello + other, 0)[1:] == (len(hello + other), False)
    assert impl.split_records(b"", 0) == ([], 0, True)
    with pytest.raises(ConfigurationError):
        impl.split_records(hello, 256)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from([20, 22, 23, 25]),
            st.sampled_from([0xFEFD, 0xFEFF, 0x0303]),
            st.integers(0, 2),
            st.integers(0, 2**48 - 1),
            st.binary(max_size=30),
        ),
        max_size=4,
    ),
    st.binary(max_size=20),
    st.integers(0, 3),
)
def test_split_records_same(
    parts: list[tuple[int, int, int, int, bytes]], tail: bytes, cid_length: int
) -> None:
    datagram = b"".join(record(*p) for p in parts) + tail
    same(lambda m: m.split_records(datagram, cid_length))


def fragment(msg_type: int, seq: int, body: bytes, start: int, end: int) -> bytes:
    """A fragment of ``body`` (bytes ``start..end``) as message ``seq``."""
    length = len(body).to_bytes(3, "big")
    return (
        bytes([msg_type])
        + length
        + seq.to_bytes(2, "big")
        + start.to_bytes(3, "big")
        + (end - start).to_bytes(3, "big")
        + body[start:end]
    )


def test_push_record(impl: ModuleType) -> None:
    reassembler = impl.HandshakeReassembler()
    a, b = fragment(1, 0, b"hello", 0, 5), fragment(2, 1, b"", 0, 0)
    assert reassembler.push_record(a + b) == ([], [a], len(a))
    assert reassembler.push_record(a + b, len(a)) == ([], [b], 0)
    assert reassembler.push_record(a + b) == ([(1, 0, a), (2, 1, b)], [], 0)
    assert reassembler.push_record(a + b, 0, False) == ([(1, 0, a)], [], len(a))
    with pytest.raises(DecodeError):
        reassembler.push_record(a + b"\x01")
    with pytest.raises(ConfigurationError):
        reassembler.push_record(a, len(a) + 1)
    with pytest.raises(ConfigurationError):
        reassembler.push_record(a, -1)


def _run(
    module: ModuleType, calls: list[tuple[bytes, bool]], next_seq: int, max_message: int
) -> list[Any]:
    """Each record pushed to the end as a connection does, outcome by outcome."""
    reassembler = module.HandshakeReassembler(max_message, 4 * max_message, next_seq)
    results: list[Any] = []
    for payload, push in calls:
        offset = 0
        for _ in range(len(payload) + 1):
            result = outcome(lambda p=payload, o=offset, u=push: reassembler.push_record(p, o, u))
            results.append(result)
            if result[0] != "ok" or not result[1][2]:
                break
            offset = result[1][2]
        results.append((reassembler.next_seq, reassembler.buffered_bytes, reassembler.dropped))
    return results


pieces = st.tuples(
    st.integers(0, 3),  # msg_type
    st.integers(0, 4),  # message_seq
    st.binary(max_size=40),  # body
    st.integers(0, 40),
    st.integers(0, 40),
)


@SETTINGS
@given(
    st.lists(st.tuples(st.lists(pieces, min_size=0, max_size=4), st.booleans()), max_size=6),
    st.integers(0, 2),
    st.sampled_from([8, 32, 100]),
    st.binary(max_size=3),
)
def test_push_record_same(
    records: list[tuple[list[tuple[int, int, bytes, int, int]], bool]],
    next_seq: int,
    max_message: int,
    junk: bytes,
) -> None:
    calls = []
    for frags, push in records:
        payload = b""
        for msg_type, seq, body, i, j in frags:
            start, end = sorted((min(i, len(body)), min(j, len(body))))
            # The same message_seq always has the same body (a retransmission),
            # unless msg_type says otherwise: conflicts come up too.
            payload += fragment(msg_type, seq, body if msg_type else bytes(len(body)), start, end)
        calls.append((payload + junk if not frags else payload, push))
    assert _run(_core, calls, next_seq, max_message) == _run(pure, calls, next_seq, max_message)
