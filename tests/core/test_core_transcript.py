"""The handshake transcript (RFC 5246 §7.4.9, RFC 7627 §3, RFC 6347 §4.2.6),
Rust and pure twin: run through the same operations, they give the same
digests, bytes and errors, and digests equal hashlib's."""

from __future__ import annotations

import hashlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import outcome

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError, LocalProtocolError
from dtlsfast.handshake.messages import encode_handshake, fragment_handshake


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


messages = st.builds(
    encode_handshake, st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=300)
)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["add", "add", "add", "frag", "junk", "digest", "reset"]))
        if kind == "add":
            ops.append(("add", draw(messages)))
        elif kind == "frag":
            m = draw(messages)
            piece = fragment_handshake(m, draw(st.integers(1, 50)))[0]
            # A first fragment's header over the whole body: normalised.
            ops.append(("add", piece[:12] + m[12:]))
        elif kind == "junk":
            ops.append(("add", draw(st.binary(max_size=30))))
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
        else:
            t.reset()
        results.append((t.data(), t.messages, len(t)))
    return results


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
