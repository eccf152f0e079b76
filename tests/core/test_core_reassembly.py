"""Handshake reassembly (RFC 6347 §4.2.2, §4.2.3)."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from dtlsfast import pure
from dtlsfast.exceptions import ConfigurationError, DecodeError


def whole(msg_type: int, seq: int, body: bytes) -> bytes:
    n = len(body).to_bytes(3, "big")
    return bytes([msg_type]) + n + seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + body


def frag(msg_type: int, seq: int, body: bytes, offset: int, length: int) -> bytes:
    return (
        bytes([msg_type])
        + len(body).to_bytes(3, "big")
        + seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + body[offset : offset + length]
    )


BODY = bytes(range(256)) * 4 + b"tail"


def test_unfragmented_messages_in_order(impl: ModuleType) -> None:
    r = impl.HandshakeReassembler()
    assert r.push(whole(1, 0, b"hello")) == [whole(1, 0, b"hello")]
    assert r.next_seq == 1 and r.buffered_bytes == 0


def test_three_shuffled_fragments(impl: ModuleType) -> None:
    pieces = [frag(11, 0, BODY, 0, 400), frag(11, 0, BODY, 400, 400), frag(11, 0, BODY, 800, 228)]
    for order in ([2, 0, 1], [1, 2, 0], [0, 2, 1]):
        r = impl.HandshakeReassembler()
        out: list[bytes] = []
        for i in order:
            out += r.push(pieces[i])
        assert out == [whole(11, 0, BODY)]


def test_overlapping_and_duplicate_fragments(impl: ModuleType) -> None:
    rng = random.Random(1)
    r = impl.HandshakeReassembler()
    out: list[bytes] = []
    for _ in range(200):
        offset = rng.randrange(len(BODY))
        out += r.push(frag(11, 0, BODY, offset, rng.randrange(1, len(BODY) - offset + 1)))
        if out:
            break
    out += r.push(frag(11, 0, BODY, 0, len(BODY)))
    assert out == [whole(11, 0, BODY)]
    assert r.push(frag(11, 0, BODY, 0, 10)) == []  # already delivered: ignored


def test_later_message_waits_for_earlier(impl: ModuleType) -> None:
    r = impl.HandshakeReassembler()
    assert r.push(whole(14, 1, b"")) == []
    assert r.buffered_bytes == 0  # zero-length: costs nothing, still waits
    assert r.push(whole(2, 0, b"server hello")) == [whole(2, 0, b"server hello"), whole(14, 1, b"")]
    assert r.next_seq == 2


def test_bounds_drop_and_count(impl: ModuleType) -> None:
    r = impl.HandshakeReassembler(max_message_size=2000, max_buffered_bytes=1500)
    assert r.push(whole(1, 17, b"far ahead")) == []
    assert r.dropped == 1
    assert r.push(frag(11, 1, BODY, 0, 1000)) == []
    assert r.buffered_bytes == 1000
    assert r.push(frag(11, 2, BODY, 0, 600)) == []  # would exceed 1500: dropped
    assert r.dropped == 2
    # The message at next_seq evicts the later one rather than being refused.
    assert r.push(frag(11, 0, BODY, 0, 600)) == []
    assert r.dropped == 3 and r.buffered_bytes == 600


def test_memory_grows_with_the_bytes_that_arrive(impl: ModuleType) -> None:
    """Issue 12 item 5: a 1-byte first fragment declaring 32 KiB holds 1 byte."""
    r = impl.HandshakeReassembler()
    declared = bytes(32768)
    assert r.push(frag(16, 2, declared, 0, 1)) == []
    assert r.push(frag(16, 3, declared, 0, 1)) == []
    assert r.buffered_bytes == 2
    # A byte at the far end adds itself and the cost of one gap (the twins agree on it).
    assert r.push(frag(16, 2, declared, 32767, 1)) == []
    assert r.buffered_bytes == 3 + pure.reassembly.GAP_COST


def test_whole_message_at_next_seq_is_delivered_for_nothing(impl: ModuleType) -> None:
    budget = impl.ReassemblyBudget(0)
    r = impl.HandshakeReassembler(budget=budget, source=b"a")
    assert r.push(whole(2, 0, BODY)) == [whole(2, 0, BODY)]
    assert r.push(whole(2, 2, b"later")) == []  # must wait, and the budget is 0
    assert (r.dropped, budget.refused, budget.used) == (1, 1, 0)


def test_overlapping_fragments_that_disagree(impl: ModuleType) -> None:
    """RFC 6347 §4.2.3 leaves it open; a conflicting retransmission is a DecodeError,
    an identical one is fine."""
    forged = bytearray(BODY)
    forged[300] ^= 0xFF
    r = impl.HandshakeReassembler()
    assert r.push(frag(11, 0, BODY, 0, 400)) == []
    assert r.push(frag(11, 0, BODY, 100, 300)) == []  # identical: a retransmission
    with pytest.raises(DecodeError, match="disagree"):
        r.push(frag(11, 0, bytes(forged), 250, 200))
    assert r.buffered_bytes == 400  # nothing of it was kept
    assert r.push(frag(11, 0, BODY, 400, len(BODY) - 400)) == [whole(11, 0, BODY)]


def test_shared_budget(impl: ModuleType) -> None:
    budget = impl.ReassemblyBudget(4000, per_source=2500)
    assert (budget.limit, budget.per_source) == (4000, 2500)
    attacker = [impl.HandshakeReassembler(budget=budget, source=b"10.0.0") for _ in range(3)]
    for r in attacker:
        r.push(frag(11, 1, BODY, 0, 1000))
    # One source stops at per_source, however many connections it has.
    assert [r.buffered_bytes for r in attacker] == [1000, 1000, 0]
    assert (budget.used, budget.held_by(b"10.0.0"), budget.refused) == (2000, 2000, 1)
    # Another source still has room, up to the total.
    genuine = [impl.HandshakeReassembler(budget=budget, source=b"192.0.2") for _ in range(3)]
    for r in genuine:
        r.push(frag(11, 1, BODY, 0, 1000))
    assert [r.buffered_bytes for r in genuine] == [1000, 1000, 0]
    assert (budget.used, budget.sources, budget.refused) == (4000, 2, 2)
    # Connections that go, completed messages and a new handshake's next_seq
    # give their bytes back.
    del attacker[0]
    assert (budget.used, budget.held_by(b"10.0.0")) == (3000, 1000)
    assert genuine[0].push(frag(11, 1, BODY, 1000, 28)) == []
    assert genuine[0].push(whole(1, 0, b"hello"))[1] == whole(11, 1, BODY)
    genuine[1].next_seq = 2
    assert (budget.used, budget.sources) == (1000, 1)
    # Without a source, only the total applies.
    anyone = impl.HandshakeReassembler(budget=budget)
    assert anyone.push(frag(11, 1, BODY + BODY + BODY, 0, 3000)) == []
    assert (anyone.buffered_bytes, budget.used) == (3000, 4000)
    with pytest.raises(ConfigurationError):
        impl.ReassemblyBudget(10, per_source=11)
    with pytest.raises(ConfigurationError):
        impl.ReassemblyBudget(-1)
    assert impl.ReassemblyBudget(800).per_source == 100


def test_decode_errors(impl: ModuleType) -> None:
    r = impl.HandshakeReassembler(max_message_size=1024)
    with pytest.raises(DecodeError):
        r.push(b"\x01\x00\x00")
    with pytest.raises(DecodeError):
        r.push(frag(11, 0, BODY, 0, 10)[:-1])  # body shorter than fragment_length
    bad = bytearray(frag(11, 0, b"abc", 0, 3))
    bad[9:12] = (4).to_bytes(3, "big")  # fragment past the end of the message
    with pytest.raises(DecodeError):
        r.push(bytes(bad) + b"d")
    with pytest.raises(DecodeError):
        r.push(whole(11, 0, bytes(1025)))  # over max_message_size
    r.push(frag(11, 0, bytes(100), 0, 10))
    with pytest.raises(DecodeError):
        r.push(frag(11, 0, bytes(101), 10, 10))  # the length changed
    with pytest.raises(DecodeError):
        r.push(frag(12, 0, bytes(100), 10, 10))  # the type changed


def test_next_seq(impl: ModuleType) -> None:
    r = impl.HandshakeReassembler(next_seq=3)
    assert r.push(whole(1, 2, b"old")) == []
    r.push(whole(1, 5, b"later"))
    r.next_seq = 6
    assert r.buffered_bytes == 0
    with pytest.raises(ConfigurationError):
        r.next_seq = 0x10000
    with pytest.raises(ConfigurationError):
        impl.HandshakeReassembler(next_seq=-1)
