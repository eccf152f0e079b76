"""The handshake transcript (RFC 5246 §7.4.9, RFC 7627 §3, RFC 6347 §4.2.6),
Rust and pure twin: run through the same operations, they give the same
digests, Finished messages, verdicts, bytes and errors; digests equal
hashlib's and verify_data the PRF written out on Python's hmac."""

from __future__ import annotations

import hashlib
import hmac
import inspect
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import outcome

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError, DecodeError, LocalProtocolError
from dtlsfast.handshake.messages import encode_handshake, fragment_handshake

FINISHED = 20
MASTER = bytes(range(48))


def verify_data_by_hand(hash_name: str, master: bytes, seed: bytes, length: int) -> bytes:
    """PRF(master, seed) of RFC 5246 §5 written out on hmac.new, independent
    of prf.py; ``seed`` is the label and the handshake hash."""
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(master, a, hash_name).digest()
        out += hmac.new(master, a + seed, hash_name).digest()
    return out[:length]


def finished_of(data: bytes, label: bytes, seq: int = 1, hash_name: str = "sha256") -> bytes:
    """The Finished message a transcript of ``data`` gives, by hand."""
    handshake_hash = hashlib.new(hash_name, data).digest()
    return encode_handshake(
        FINISHED, seq, verify_data_by_hand(hash_name, MASTER, label + handshake_hash, 12)
    )


def test_digest_goes_on_and_either_hash_is_right(impl: ModuleType) -> None:
    t = impl.HandshakeTranscript()
    m1, m2 = encode_handshake(1, 0, b"hello" * 30), encode_handshake(2, 1, b"")
    t.add(m1)
    assert t.digest("sha256") == hashlib.sha256(m1).digest()
    t.add(m2)
    assert t.digest("sha256") == hashlib.sha256(m1 + m2).digest()
    # The hash not chosen first is still right (from the kept bytes).
    assert t.digest("sha384") == hashlib.sha384(m1 + m2).digest()
    assert t.data() == m1 + m2 and t.messages == (m1, m2) and len(t) == 2
    t.reset()
    assert len(t) == 0 and t.data() == b""
    assert t.digest("sha384") == hashlib.sha384(b"").digest()


def test_fragment_header_is_normalised(impl: ModuleType) -> None:
    whole = encode_handshake(11, 4, b"abcdefgh")
    first = fragment_handshake(whole, 3)[0]
    t = impl.HandshakeTranscript()
    t.add(first[:12] + whole[12:])
    assert t.data() == whole


def test_errors(impl: ModuleType) -> None:
    t = impl.HandshakeTranscript()
    for bad in (b"", b"\x01" * 11, fragment_handshake(encode_handshake(1, 0, b"abcd"), 2)[1]):
        with pytest.raises(LocalProtocolError):
            t.add(bad)
    with pytest.raises(ConfigurationError):
        t.digest("md5")
    assert len(t) == 0


def test_add_finished_is_the_prf_over_the_messages_and_goes_on(impl: ModuleType) -> None:
    t = impl.HandshakeTranscript()
    m1 = encode_handshake(16, 2, b"key exchange")
    t.add(m1)
    ours = t.add_finished("sha256", MASTER, b"client finished", 3)
    assert ours == finished_of(m1, b"client finished", 3)
    assert t.messages == (m1, ours)
    # The peer's Finished covers ours (the server's, RFC 5246 §7.4.9).
    theirs = finished_of(m1 + ours, b"server finished", 4)
    assert t.check_finished("sha256", MASTER, b"server finished", theirs) is True
    assert t.messages == (m1, ours, theirs)
    longer = t.add_finished("sha384", MASTER, b"client finished", 5, 32)
    assert longer[12:] == verify_data_by_hand(
        "sha384",
        MASTER,
        b"client finished" + hashlib.sha384(m1 + ours + theirs).digest(),
        32,
    )


def test_check_finished_adds_only_what_verifies(impl: ModuleType) -> None:
    t = impl.HandshakeTranscript()
    m1 = encode_handshake(16, 2, b"key exchange")
    t.add(m1)
    good = finished_of(m1, b"client finished")
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    for bad in (flipped, good[:-1], good + b"\x00", finished_of(m1, b"server finished")):
        bad = encode_handshake(FINISHED, 1, bad[12:])
        assert t.check_finished("sha256", MASTER, b"client finished", bad) is False
    assert t.check_finished("sha384", MASTER, b"client finished", good) is False
    assert t.messages == (m1,)
    # A first fragment's header over the whole body is normalised, as by add().
    fragment_header = good[:9] + b"\x00\x00\x05"
    assert t.check_finished("sha256", MASTER, b"client finished", fragment_header + good[12:])
    assert t.messages == (m1, good)


def test_finished_errors(impl: ModuleType) -> None:
    t = impl.HandshakeTranscript()
    for call in (
        lambda: t.add_finished("md5", MASTER, b"client finished", 0),
        lambda: t.add_finished("sha256", MASTER, b"finished", 0),
        lambda: t.add_finished("sha256", MASTER, b"client finished", 0, 0),
        lambda: t.add_finished("sha256", MASTER, b"client finished", 0, -1),
        lambda: t.check_finished("sha256", MASTER, b"", encode_handshake(FINISHED, 0, b"x")),
    ):
        with pytest.raises(ConfigurationError):
            call()
    with pytest.raises(LocalProtocolError):
        t.add_finished("sha256", MASTER, b"client finished", 0x10000)
    for not_a_finished in (
        b"",
        encode_handshake(2, 0, bytes(12)),
        encode_handshake(20, 0, b"")[:11],
    ):
        with pytest.raises(LocalProtocolError):
            t.check_finished("sha256", MASTER, b"client finished", not_a_finished)
    with pytest.raises(DecodeError):
        t.check_finished("sha256", MASTER, b"client finished", encode_handshake(FINISHED, 0, b""))
    assert len(t) == 0


@pytest.mark.parametrize("name", ["add_finished", "check_finished"])
def test_the_twins_have_one_api(name: str) -> None:
    ours = inspect.signature(getattr(_core.HandshakeTranscript(), name)).parameters
    theirs = inspect.signature(getattr(pure.HandshakeTranscript(), name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


messages = st.builds(
    encode_handshake, st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=300)
)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(
            st.sampled_from(
                ["add", "add", "add", "frag", "junk", "digest", "reset", "finished", "check"]
            )
        )
        if kind == "add":
            ops.append(("add", draw(messages)))
        elif kind == "frag":
            m = draw(messages)
            piece = fragment_handshake(m, draw(st.integers(1, 50)))[0]
            # A first fragment's header over the whole body: normalised.
            ops.append(("add", piece[:12] + m[12:]))
        elif kind == "junk":
            ops.append(("add", draw(st.binary(max_size=30))))
        elif kind in ("finished", "check"):
            args = (
                draw(st.sampled_from(["sha256", "sha384", "sha512"])),
                draw(st.binary(min_size=0, max_size=60)),
                draw(st.sampled_from([b"client finished", b"server finished", b"finished"])),
                draw(st.integers(-1, 0x10000)) if kind == "finished" else None,
                draw(st.sampled_from([12, 12, 12, 1, 0, 40, 65537])),
            )
            # check: the right Finished (worked out at run time), one bit
            # off, an empty body, another message type, or junk.
            tamper = draw(st.sampled_from(["right", "right", "bit", "empty", "type", "junk"]))
            ops.append((kind, (args, tamper, draw(st.binary(max_size=30)))))
        elif kind == "digest":
            ops.append(("digest", draw(st.sampled_from(["sha256", "sha384", "sha512"]))))
        else:
            ops.append(("reset", None))
    return ops


def run(impl: ModuleType, ops: list[tuple[str, Any]]) -> list[Any]:
    t = impl.HandshakeTranscript()
    results: list[Any] = []
    for op, arg in ops:
        if op == "add":
            results.append(outcome(lambda arg=arg: t.add(arg)))
        elif op == "digest":
            results.append(outcome(lambda arg=arg: t.digest(arg)))
        elif op == "finished":
            (hash_name, master, label, seq, length), _, _ = arg
            results.append(
                outcome(lambda a=(hash_name, master, label, seq, length): t.add_finished(*a))
            )
        elif op == "check":
            (hash_name, master, label, _, length), tamper, junk = arg
            message = the_peers_finished(t.data(), hash_name, master, label, length, tamper, junk)
            results.append(
                outcome(lambda a=(hash_name, master, label, message, length): t.check_finished(*a))
            )
        else:
            t.reset()
        results.append((t.data(), t.messages, len(t)))
    return results


def the_peers_finished(
    data: bytes, hash_name: str, master: bytes, label: bytes, length: int, tamper: str, junk: bytes
) -> bytes:
    """A Finished message to check against a transcript of ``data``."""
    if tamper == "junk":
        return junk
    if tamper == "empty":
        return encode_handshake(FINISHED, 0, b"")
    body = b"\x00" * 12
    if hash_name in ("sha256", "sha384") and 0 < length <= 1000:
        handshake_hash = hashlib.new(hash_name, data).digest()
        body = verify_data_by_hand(hash_name, master, label + handshake_hash, length)
    if tamper == "bit":
        body = body[:-1] + bytes([body[-1] ^ 0x80])
    return encode_handshake(2 if tamper == "type" else FINISHED, 7, body)


@settings(max_examples=300, deadline=None)
@given(operations())
def test_rust_and_pure_agree(ops: list[tuple[str, Any]]) -> None:
    rust = run(_core, ops)
    assert rust == run(pure, ops)
    data = rust[-1][0]
    t = _core.HandshakeTranscript()
    for m in rust[-1][1]:
        t.add(m)
    assert t.digest("sha384") == hashlib.sha384(data).digest()
