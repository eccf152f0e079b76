"""Differential tests: the Rust core and its pure-Python twin give identical
bytes, identical accept/reject decisions and identical exception types on
generated inputs, including garbage, truncations and single-bit flips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast import _core, pure

AEADS = {
    "AES_128_CCM_8": (16, 4),
    "AES_128_CCM": (16, 4),
    "AES_128_GCM": (16, 4),
    "AES_256_GCM": (32, 4),
    "CHACHA20_POLY1305": (32, 12),
}

SETTINGS = settings(max_examples=250, deadline=None)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """A call's result, or the type of exception it raised."""
    try:
        return ("ok", call())
    except Exception as exc:
        return ("raised", type(exc))


def same(call: Callable[[Any], Any]) -> Any:
    rust, python = outcome(lambda: call(_core)), outcome(lambda: call(pure))
    assert rust == python
    return rust[1]


fields = st.tuples(
    st.integers(-2, 260),
    st.integers(0, 0x10001),
    st.integers(0, 0x10001),
    st.integers(-1, 2**48 + 1),
)


@SETTINGS
@given(st.binary(max_size=300))
def test_parse_records_garbage(data: bytes) -> None:
    same(lambda m: m.parse_records(data))


@SETTINGS
@given(fields, st.binary(max_size=200), st.binary(max_size=40))
def test_encode_then_parse(f: tuple[int, int, int, int], fragment: bytes, tail: bytes) -> None:
    record = same(lambda m: m.encode_record(*f, fragment))
    if isinstance(record, bytes):
        same(lambda m: m.parse_records(record + tail))
        for cut in range(0, len(record), 7):
            same(lambda m, cut=cut: m.parse_records(record[:cut]))


@st.composite
def sealed(draw: st.DrawFn) -> tuple[str, bytes, bytes, bytes]:
    aead = draw(st.sampled_from(list(AEADS)))
    key_len, iv_len = AEADS[aead]
    key = draw(st.binary(min_size=key_len, max_size=key_len))
    iv = draw(st.binary(min_size=iv_len, max_size=iv_len))
    epoch = draw(st.integers(0, 0xFFFF))
    seq = draw(st.integers(0, 2**48 - 1))
    ctype = draw(st.integers(0, 255))
    plaintext = draw(st.binary(max_size=300))
    record = _core.RecordCipher(aead, key, iv).seal(ctype, 0xFEFD, epoch, seq, plaintext)
    return aead, key, iv, record


@SETTINGS
@given(sealed(), st.data())
def test_seal_and_open_agree(case: tuple[str, bytes, bytes, bytes], data: st.DataObject) -> None:
    aead, key, iv, record = case
    assert (
        pure.RecordCipher(aead, key, iv).seal(
            *_core.parse_records(record)[0][:4],
            _core.RecordCipher(aead, key, iv).open(record) or b"",
        )
        == record
    )
    same(lambda m: m.RecordCipher(aead, key, iv).open(record))
    bit = data.draw(st.integers(0, len(record) * 8 - 1))
    flipped = bytearray(record)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert same(lambda m: m.RecordCipher(aead, key, iv).open(bytes(flipped))) is None
    cut = data.draw(st.integers(0, len(record)))
    same(lambda m: m.RecordCipher(aead, key, iv).open(record[:cut]))
    garbage = data.draw(st.binary(max_size=100))
    same(lambda m: m.RecordCipher(aead, key, iv).open(garbage))
    same(lambda m: m.RecordCipher(aead, key, iv).open_parts(23, 0xFEFD, 1, 0, garbage))


@SETTINGS
@given(st.text(max_size=20), st.binary(max_size=40), st.binary(max_size=16))
def test_constructor_errors_agree(aead: str, key: bytes, iv: bytes) -> None:
    same(lambda m: m.RecordCipher(aead, key, iv).overhead)


@SETTINGS
@given(
    st.integers(1, 300),
    st.lists(st.tuples(st.booleans(), st.integers(-2, 2000)), max_size=200),
)
def test_replay_windows_agree(size: int, ops: list[tuple[bool, int]]) -> None:
    windows = (_core.ReplayWindow(size), pure.ReplayWindow(size))
    for accept, seq in ops:
        if accept:
            results = [outcome(lambda w=w, seq=seq: w.accept(seq)) for w in windows]
        else:
            results = [outcome(lambda w=w, seq=seq: w.check(seq)) for w in windows]
        assert results[0] == results[1]
        assert windows[0].highest == windows[1].highest


def _fragment(msg_type: int, seq: int, length: int, offset: int, flen: int, body: bytes) -> bytes:
    return (
        bytes([msg_type])
        + length.to_bytes(3, "big")
        + seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + flen.to_bytes(3, "big")
        + body
    )


@st.composite
def fragments(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40))  # garbage
    seq = draw(st.integers(0, 20))
    length = draw(st.sampled_from([0, 1, 10, 100, 700]))
    msg_type = draw(st.sampled_from([1, 2, 11]))
    offset = draw(st.integers(0, length))
    flen = draw(st.integers(0, length - offset))
    body = bytes((seq * 31 + i) & 0xFF for i in range(offset, offset + flen))
    if draw(st.integers(0, 19)) == 0:
        body = body[:-1] + b"!!"  # inconsistent
    return _fragment(msg_type, seq, length, offset, flen, body)


@SETTINGS
@given(st.lists(fragments(), max_size=60), st.integers(100, 3000))
def test_reassemblers_agree(pieces: list[bytes], budget: int) -> None:
    machines = (
        _core.HandshakeReassembler(max_message_size=1000, max_buffered_bytes=budget),
        pure.HandshakeReassembler(max_message_size=1000, max_buffered_bytes=budget),
    )
    for piece in pieces:
        results = [outcome(lambda m=m, piece=piece: m.push(piece)) for m in machines]
        assert results[0] == results[1]
        assert machines[0].next_seq == machines[1].next_seq
        assert machines[0].buffered_bytes == machines[1].buffered_bytes
        assert machines[0].dropped == machines[1].dropped
