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
    mutation = draw(st.integers(0, 19))
    if mutation == 0:
        body = body[:-1] + b"!!"  # inconsistent with fragment_length
    elif mutation == 1 and body:
        # Same range, other content: disagrees with any overlapping fragment.
        flip = draw(st.integers(0, len(body) - 1))
        body = body[:flip] + bytes([body[flip] ^ 0x5A]) + body[flip + 1 :]
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


SOURCES = (b"a", b"a", b"b", None)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.one_of(fragments(), st.none(), st.integers(0, 20), st.just("discard")),
        ),
        max_size=80,
    ),
    st.integers(0, 3000),
    st.one_of(st.none(), st.integers(0, 3000)),
)
def test_reassemblers_sharing_a_budget_agree(
    steps: list[tuple[int, bytes | int | str | None]], limit: int, per_source: int | None
) -> None:
    """Four reassemblers (two of one source, one of another, one without)
    share one budget per implementation; a step pushes a fragment to one,
    replaces it by a new one (the old connection goes: None), moves its
    next_seq (an int) or discards what it holds. Both sides agree on everything."""
    if per_source is not None:
        per_source = min(per_source, limit)
    budgets = [m.ReassemblyBudget(limit, per_source) for m in (_core, pure)]

    def fresh(side: int, index: int) -> Any:
        module = (_core, pure)[side]
        return module.HandshakeReassembler(
            max_message_size=1000,
            max_buffered_bytes=1500,
            budget=budgets[side],
            source=SOURCES[index],
        )

    sides = [[fresh(side, i) for i in range(4)] for side in range(2)]
    for which, step in steps:
        if step is None:
            for side in range(2):
                sides[side][which] = fresh(side, which)
            results = [("ok", None)] * 2
        elif isinstance(step, str):  # "discard"
            results = [outcome(side[which].discard) for side in sides]
        elif isinstance(step, int):
            results = [
                outcome(lambda r=side[which], v=step: setattr(r, "next_seq", v)) for side in sides
            ]
        else:
            assert isinstance(step, bytes)
            results = [outcome(lambda r=side[which], p=step: r.push(p)) for side in sides]
        assert results[0] == results[1]
        for rust, python in zip(*sides, strict=True):
            assert rust.next_seq == python.next_seq
            assert rust.buffered_bytes == python.buffered_bytes
            assert rust.dropped == python.dropped
        held = [r.buffered_bytes for r in sides[0]]
        for budget in budgets:
            assert budget.used == sum(held) <= limit
            assert budget.held_by(b"a") == held[0] + held[1] <= budget.per_source
            assert budget.held_by(b"b") == held[2] <= budget.per_source
            assert budget.sources == (held[0] + held[1] > 0) + (held[2] > 0)
        assert budgets[0].refused == budgets[1].refused
