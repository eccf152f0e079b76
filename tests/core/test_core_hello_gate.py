"""The cookie gate's fast path in one call (RFC 6347 §4.2.1), Rust and pure
twin: the same verdicts and reply bytes as each other, cookie bytes exactly
those of handshake.cookies, and the server's CookieGate around it."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import same

from dtlsfast import _core, pure
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.constants import DTLS_1_0, DTLS_1_2
from dtlsfast.handshake.cookies import CookieJar, cookie_mac, peer_bytes
from dtlsfast.handshake.messages import (
    ClientHello,
    HelloVerifyRequest,
    encode_handshake,
    fragment_handshake,
    parse_handshake_header,
)
from dtlsfast.source_budget import SourceBuckets

SETTINGS = settings(max_examples=300, deadline=None)
PEER = ("192.0.2.10", 5684)
SECRET, OLD = bytes(range(32)), bytes(range(100, 132))


def hello(cookie: bytes = b"", **changes: Any) -> ClientHello:
    h = ClientHello(
        DTLS_1_2, bytes(range(32)), b"\x01" * 8, cookie, [0xC0A8, 0x00A8], b"\x00", [(23, b"")]
    )
    return replace(h, **changes)


def datagram(h: ClientHello, record_seq: int = 0, message_seq: int = 0) -> bytes:
    message = encode_handshake(1, message_seq, h.encode())
    return _core.encode_record(22, 0xFEFF, 0, record_seq, message)


def gate(impl: ModuleType, **kwargs: Any) -> Any:
    return impl.HelloGate(SECRET, **kwargs)


def test_first_hello_gets_a_hello_verify_request(impl: ModuleType) -> None:
    g = gate(impl)
    verdict, reply = g.check(datagram(hello(), record_seq=7, message_seq=2), PEER)
    assert verdict == "hello_verify_sent"
    assert isinstance(reply, bytes)
    [(ctype, version, epoch, seq, fragment)] = _core.parse_records(reply)
    assert (ctype, version, epoch, seq) == (22, DTLS_1_0, 0, 7)
    header = parse_handshake_header(fragment)
    assert (header.msg_type, header.message_seq) == (3, 2)
    hvr = HelloVerifyRequest.decode(fragment[12:])
    assert hvr.server_version == DTLS_1_0 and len(hvr.cookie) == 32
    # The cookie is the jar's: HMAC-SHA256 over peer bytes and cookie_input.
    assert hvr.cookie == g.make_cookie(PEER, hello().cookie_input())
    second = datagram(hello(hvr.cookie, session_id=b"", extensions=[]), record_seq=8)
    assert g.check(second, PEER) == ("accepted", hello().random)
    assert g.check(second, (PEER[0], PEER[1] + 1))[0] == "bad_cookie"
    assert g.check(second, (*PEER, 0, 0)) == ("accepted", hello().random)


def test_previous_secret_then_gone(impl: ModuleType) -> None:
    old = impl.HelloGate(OLD)
    cookie = old.make_cookie(PEER, hello().cookie_input())
    g = impl.HelloGate(SECRET, OLD)
    assert g.check(datagram(hello(cookie)), PEER)[0] == "accepted"
    assert g.verify_cookie(PEER, hello().cookie_input(), cookie)
    g.set_secrets(bytes(32), SECRET)
    verdict, reply = g.check(datagram(hello(cookie)), PEER)
    assert verdict == "bad_cookie" and reply is not None
    assert not g.verify_cookie(PEER, hello().cookie_input(), cookie)


def test_cookie_matches_the_jar() -> None:
    jar = CookieJar(now=0.0)
    current, previous = jar.secrets
    assert previous is None
    for impl in (_core, pure):
        g = impl.HelloGate(current)
        for peer in (PEER, ("::1", 1, 0, 0), b"cid"):
            expected = cookie_mac(current, peer_bytes(peer), hello().cookie_input(), 32)
            assert g.make_cookie(peer, hello().cookie_input()) == expected
    jar.rotate(1.0)
    current, previous = jar.secrets
    assert previous is not None
    cookie = cookie_mac(current, peer_bytes(PEER), hello().cookie_input(), 32)
    for impl in (_core, pure):
        assert impl.HelloGate(previous, current).verify_cookie(PEER, hello().cookie_input(), cookie)


def test_refresh_says_when_to_hand_over_the_secrets() -> None:
    jar = CookieJar(secret_lifetime=10.0, now=0.0)
    assert not jar.refresh(9.0)
    assert jar.refresh(10.0) and jar.rotations == 1
    assert jar.secrets[1] is not None


def test_never_larger_than_what_it_answers(impl: ModuleType) -> None:
    d = datagram(hello())
    assert gate(impl).check(d, PEER, 59) == ("amplification_refused", None)
    assert gate(impl).check(d, PEER, 60)[0] == "hello_verify_sent"
    small = gate(impl, cookie_length=16)
    assert len(small.check(d, PEER, 44)[1]) == 44


def test_what_is_not_a_plain_hello(impl: ModuleType) -> None:
    g = gate(impl)
    h = encode_handshake(1, 0, hello().encode())
    cases = {
        b"": "not_client_hello",
        _core.encode_record(23, 0xFEFD, 0, 0, b"data"): "not_client_hello",
        _core.encode_record(22, 0xFEFD, 1, 0, h): "not_client_hello",
        _core.encode_record(22, 0xFEFD, 0, 0, encode_handshake(2, 0, b"x")): "not_client_hello",
        _core.encode_record(22, 0xFEFD, 0, 0, b""): "malformed",
        _core.encode_record(22, 0xFEFD, 0, 0, h[:-1]): "malformed",
        _core.encode_record(22, 0xFEFD, 0, 0, h + b"\x01"): "malformed",
        _core.encode_record(22, 0xFEFD, 0, 0, encode_handshake(1, 0, b"\x00" * 4097)): (
            "oversize_client_hello"
        ),
        _core.encode_record(22, 0xFEFD, 0, 0, fragment_handshake(h, 40)[0]): "fragmented",
        datagram(hello(extensions=[(23, b""), (23, b"")])): "malformed",
    }
    for d, expected in cases.items():
        assert g.check(d, PEER) == (expected, None), d


def test_argument_errors(impl: ModuleType) -> None:
    for kwargs in ({"cookie_length": 15}, {"cookie_length": 33}, {"max_client_hello": -1}):
        with pytest.raises(ConfigurationError):
            gate(impl, **kwargs)
    for secret in (b"", b"x" * 15, b"x" * 65):
        with pytest.raises(ConfigurationError):
            impl.HelloGate(secret)
    g = gate(impl)
    with pytest.raises(ConfigurationError):
        g.set_secrets(SECRET, b"short")
    with pytest.raises(ConfigurationError):
        g.check(datagram(hello()), PEER, -1)
    assert SECRET.hex() not in repr(g)


# ----------------------------------------------------------- generated


@st.composite
def client_hellos(draw: st.DrawFn) -> ClientHello:
    ext_types = draw(st.lists(st.integers(0, 0xFFFF), max_size=6, unique=True))
    return ClientHello(
        client_version=draw(st.sampled_from([DTLS_1_2, DTLS_1_0, 0])),
        random=draw(st.binary(min_size=32, max_size=32)),
        session_id=draw(st.binary(max_size=32)),
        cookie=b"",
        cipher_suites=draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8)),
        compression_methods=draw(st.binary(min_size=1, max_size=3)),
        extensions=[(t, draw(st.binary(max_size=8))) for t in ext_types],
    )


@st.composite
def gate_inputs(draw: st.DrawFn) -> tuple[bytes, Any, int]:
    """A datagram to a gate holding SECRET and OLD, the peer, the budget."""
    peer = draw(st.sampled_from([PEER, ("::1", 5684, 0, 0), ("10.0.0.1", 1), b"cid"]))
    h = draw(client_hellos())
    cookie_kind = draw(st.sampled_from(["none", "current", "previous", "other", "random"]))
    if cookie_kind != "none":
        secret = {"current": SECRET, "previous": OLD}.get(cookie_kind, bytes(32))
        cookie = _core.HelloGate(secret).make_cookie(peer, h.cookie_input())
        if cookie_kind == "random":
            cookie = draw(st.binary(min_size=1, max_size=40))
        h = replace(h, cookie=cookie)
    message = encode_handshake(1, draw(st.integers(0, 0xFFFF)), h.encode())
    payload = message
    shape = draw(st.sampled_from(["whole", "whole", "cut", "flip", "tail", "fragment", "junk"]))
    if shape == "cut":
        payload = message[: draw(st.integers(0, len(message) - 1))]
    elif shape == "flip":
        i = draw(st.integers(0, len(message) - 1))
        payload = message[:i] + bytes([message[i] ^ draw(st.integers(1, 255))]) + message[i + 1 :]
    elif shape == "tail":
        payload = message + draw(st.binary(min_size=1, max_size=20))
    elif shape == "fragment":
        payload = fragment_handshake(message, draw(st.integers(1, 200)))[0]
    elif shape == "junk":
        payload = draw(st.binary(max_size=120))
    record = _core.encode_record(
        22, 0xFEFD, draw(st.sampled_from([0, 0, 0, 1])), draw(st.integers(0, 2**48 - 1)), payload
    )
    before = draw(st.sampled_from([b"", _core.encode_record(23, 0xFEFD, 0, 0, b"x")]))
    after = draw(st.binary(max_size=10))
    d = before + record + after
    budget = draw(st.sampled_from([len(d), len(d), 0, 60, 10_000]))
    return d, peer, budget


@SETTINGS
@given(gate_inputs())
def test_rust_and_pure_agree(case: tuple[bytes, Any, int]) -> None:
    d, peer, budget = case
    same(lambda m: m.HelloGate(SECRET, OLD).check(d, peer, budget))
    same(lambda m: m.HelloGate(SECRET).check(d, peer))


@SETTINGS
@given(st.binary(max_size=400), st.integers(0, 1000))
def test_garbage_agrees(d: bytes, budget: int) -> None:
    same(lambda m: m.HelloGate(SECRET, OLD).check(d, PEER, budget))


def test_cookie_gate_counts_the_verdicts_and_reassembles(impl: ModuleType) -> None:
    """The server's CookieGate: the HelloGate's verdicts, counted; a hello in
    fragments reassembled and decided whole, the reply bounded by every
    datagram that carried it; failing cookies throttled per source."""
    jar = CookieJar(secret_lifetime=1e9, now=0.0)
    g = CookieGate(impl, jar)
    first = datagram(hello(), record_seq=3)
    verdict, reply = g.check(first, PEER, 0.0)
    assert verdict == "hello_verify_sent" and reply is not None
    cookie = HelloVerifyRequest.decode(_core.parse_records(reply)[0][4][12:]).cookie
    message = encode_handshake(1, 0, hello(cookie).encode())
    pieces = fragment_handshake(message, 40)
    assert len(pieces) > 2
    datagrams = [_core.encode_record(22, 0xFEFF, 0, 4 + i, p) for i, p in enumerate(pieces)]
    for d in datagrams[:-1]:
        assert g.check(d, PEER, 0.0) == ("fragments_buffered", None)
    verdict, whole = g.check(datagrams[-1], PEER, 0.0)
    assert verdict == "accepted" and whole is not None
    [(ctype, _, epoch, _, fragment)] = _core.parse_records(whole)
    assert (ctype, epoch, fragment) == (22, 0, message)
    assert len(g._fragments) == 0
    assert g.check(datagram(hello(cookie)), PEER, 0.0) == ("accepted", datagram(hello(cookie)))
    limit = SourceBuckets(1.0, 2, 16)
    throttled = CookieGate(impl, jar, hello_verify_limit=limit)
    bad = datagram(hello(b"\x00" * 32))
    answers = [throttled.check(bad, PEER, 0.0)[0] for _ in range(3)]
    assert answers == ["bad_cookie", "bad_cookie", "hello_verify_throttled"]
    assert dict(+g.counters) == {"hello_verify_sent": 1, "fragments_buffered": 2, "accepted": 2}
    assert throttled.counters["hello_verify_throttled"] == 1


# ------------------------------------------------------------ peer bytes

HOST_CHARS = "0123456789abcdefABCDEF:.%/ gx"


@st.composite
def hosts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["v4", "v6", "v6-long", "mapped", "scoped", "chars", "text"]))
    if kind == "v4":
        return str(draw(st.ip_addresses(v=4)))
    address = draw(st.ip_addresses(v=6))
    if kind == "v6":
        return str(address)
    if kind == "v6-long":
        text = address.exploded
        return text.upper() if draw(st.booleans()) else text
    if kind == "mapped":
        v4 = draw(st.ip_addresses(v=4))
        return f"{draw(st.sampled_from(['::ffff:', '::', '1:2:3:4:5:6:', '1::']))}{v4}"
    if kind == "scoped":
        return f"{address}%{draw(st.text('abc019', min_size=0, max_size=4))}"
    if kind == "chars":
        return draw(st.text(HOST_CHARS, max_size=45))
    return draw(st.text(max_size=20))


@settings(max_examples=1000, deadline=None)
@given(hosts(), st.integers(-(2**70), 2**70))
def test_peer_bytes_agree_with_ipaddress(host: str, port: int) -> None:
    for peer in ((host, port), (host, port, 0, 7)):
        assert _core.peer_bytes(peer) == peer_bytes(peer)  # type: ignore[arg-type]


def test_peer_bytes_edge_cases() -> None:
    for peer in [
        ("01.2.3.4", 1),
        ("1.2.3.4%", 1),
        ("::1%", 1),
        ("::1/128", 1),
        ("\udc80", 2),
        ("é", 3),
        (7, "80"),
        ("1.2.3.4", True),
        b"",
        bytearray(b"ab"),
        memoryview(b"cd"),
    ]:
        assert _core.peer_bytes(peer) == peer_bytes(peer), peer  # type: ignore[arg-type]
    packed = ipaddress.ip_address("2001:db8::1").packed
    assert _core.peer_bytes(("2001:DB8:0::1", 5684)) == b"I\0\0\0\x10" + packed + b"\x16\x34"
    with pytest.raises(IndexError):
        _core.peer_bytes(("1.2.3.4",))


def test_gate_peer_forms_agree() -> None:
    h = hello().cookie_input()
    for peer in (PEER, (*PEER, 1, 2), b"cid", bytearray(b"cid"), "label", 42, ("x",)):
        same(lambda m, peer=peer: m.HelloGate(SECRET).make_cookie(peer, h))


def test_verdicts_are_interned_strings() -> None:
    """A verdict costs no new object: the same str each time, so a new peer's
    path creates only the answer tuple and its reply."""
    g = _core.HelloGate(SECRET)
    d = datagram(hello())
    first = g.check(d, PEER)
    second = g.check(d, PEER)
    assert first[0] is second[0]
    verdicts = [g.check(garbage, PEER)[0] for garbage in (b"", b"\x17" * 13)]
    assert verdicts == ["not_client_hello"] * 2 and verdicts[0] is verdicts[1]
