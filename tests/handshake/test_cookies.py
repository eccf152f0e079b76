"""Tests of the stateless cookies (dtlsfast.handshake.cookies, RFC 6347 §4.2.1):
the jar's secret rotation, with the cookies made and checked by the
backend's HelloGate holding the jar's secrets, as the server's cookie gate
does it (Rust and pure twin)."""

from __future__ import annotations

import hmac
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.constants import DTLS_1_2
from dtlsfast.handshake.cookies import CookieJar, peer_bytes
from dtlsfast.handshake.messages import ClientHello

PEER = ("192.0.2.10", 5684)


@pytest.fixture(params=["rust", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return _core if request.param == "rust" else pure


class Jar:
    """A CookieJar's secrets in the backend's HelloGate, handed over after
    each rotation as :class:`dtlsfast.cookie_gate.CookieGate` does."""

    def __init__(self, impl: ModuleType, **kwargs: Any) -> None:
        self.jar = CookieJar(**kwargs)
        self.gate = impl.HelloGate(*self.jar.secrets, cookie_length=self.jar.cookie_length)

    @property
    def rotations(self) -> int:
        return self.jar.rotations

    def _refresh(self, now: float) -> None:
        if self.jar.refresh(now):
            self.gate.set_secrets(*self.jar.secrets)

    def make(self, peer: object, hello: ClientHello, now: float) -> bytes:
        self._refresh(now)
        return bytes(self.gate.make_cookie(peer, hello.cookie_input()))

    def verify(self, peer: object, hello: ClientHello, now: float) -> bool:
        self._refresh(now)
        return bool(self.gate.verify_cookie(peer, hello.cookie_input(), hello.cookie))


def _hello(cookie: bytes = b"") -> ClientHello:
    return ClientHello(
        DTLS_1_2, bytes(range(32)), b"", cookie, [0xC0A8, 0x00FF], b"\x00", [(23, b"")]
    )


def _with_cookie(jar: Jar, now: float, peer: object = PEER) -> ClientHello:
    first = _hello()
    return replace(first, cookie=jar.make(peer, first, now))


def test_make_and_verify(impl: ModuleType) -> None:
    jar = Jar(impl, now=0.0)
    hello = _with_cookie(jar, 1.0)
    assert len(hello.cookie) == 32
    assert jar.verify(PEER, hello, 2.0)
    # extensions and session_id may change between the two ClientHellos
    assert jar.verify(PEER, replace(hello, extensions=[]), 2.0)
    assert jar.verify(PEER, replace(hello, session_id=b"\x01" * 32), 2.0)
    # the cookie is deterministic for the same secret and input
    assert jar.make(PEER, _hello(), 3.0) == hello.cookie


def test_verify_rejects_changes(impl: ModuleType) -> None:
    jar = Jar(impl)
    hello = _with_cookie(jar, 1.0)
    assert not jar.verify(("192.0.2.10", 5685), hello, 1.0)
    assert not jar.verify(("192.0.2.11", 5684), hello, 1.0)
    assert not jar.verify(PEER, replace(hello, random=b"\xff" + hello.random[1:]), 1.0)
    assert not jar.verify(PEER, replace(hello, cipher_suites=[0xC0A8]), 1.0)
    assert not jar.verify(PEER, replace(hello, cookie=hello.cookie[:-1]), 1.0)
    assert not jar.verify(PEER, replace(hello, cookie=b""), 1.0)
    flipped = bytes([hello.cookie[0] ^ 1]) + hello.cookie[1:]
    assert not jar.verify(PEER, replace(hello, cookie=flipped), 1.0)


def test_another_jar_does_not_accept(impl: ModuleType) -> None:
    hello = _with_cookie(Jar(impl), 1.0)
    assert not Jar(impl).verify(PEER, hello, 1.0)


def test_rotation_keeps_previous_secret_then_drops_it(impl: ModuleType) -> None:
    jar = Jar(impl, secret_lifetime=10.0, now=0.0)
    hello = _with_cookie(jar, 5.0)
    assert jar.verify(PEER, hello, 9.9)
    assert jar.rotations == 0
    # First rotation: made with the previous secret, still accepted.
    assert jar.verify(PEER, hello, 10.0)
    assert jar.rotations == 1
    assert jar.make(PEER, _hello(), 10.5) != hello.cookie
    assert jar.verify(PEER, hello, 19.9)
    # Second rotation: the secret is two generations old and refused.
    assert not jar.verify(PEER, hello, 20.0)
    assert jar.rotations == 2


def test_long_idle_drops_both_secrets(impl: ModuleType) -> None:
    jar = Jar(impl, secret_lifetime=10.0, now=0.0)
    hello = _with_cookie(jar, 1.0)
    assert not jar.verify(PEER, hello, 25.0)
    fresh = _with_cookie(jar, 25.0)
    assert jar.verify(PEER, fresh, 26.0)


def test_make_rotates_too(impl: ModuleType) -> None:
    jar = Jar(impl, secret_lifetime=10.0, now=0.0)
    old = jar.make(PEER, _hello(), 0.0)
    new = jar.make(PEER, _hello(), 11.0)
    assert old != new and jar.rotations == 1
    assert jar.verify(PEER, _hello(old), 12.0)
    assert jar.verify(PEER, _hello(new), 12.0)


def test_constant_time_compare_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    impl = pure  # the twin's comparisons are visible to a spy
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    jar = Jar(impl, secret_lifetime=10.0)
    hello = _with_cookie(jar, 0.0)
    assert jar.verify(PEER, hello, 1.0)
    assert len(calls) == 1
    calls.clear()
    assert jar.verify(PEER, hello, 11.0)  # current and previous both compared
    assert len(calls) == 2


def test_peer_canonicalisation(impl: ModuleType) -> None:
    assert peer_bytes(("::1", 5684)) == peer_bytes(("0:0::1", 5684, 0, 0))
    assert peer_bytes(("fe80::1", 5684, 7, 3)) == peer_bytes(("fe80::1", 5684))
    assert peer_bytes(("192.0.2.1", 1)) != peer_bytes(("192.0.2.1", 2))
    assert peer_bytes(b"\xc0\x00\x02\x01") != peer_bytes(("192.0.2.1", 0))
    assert peer_bytes(("localhost", 5684)) != peer_bytes(("127.0.0.1", 5684))
    jar = Jar(impl)
    hello = _with_cookie(jar, 0.0, peer=("2001:db8::1", 5684, 0, 0))
    assert jar.verify(("2001:db8:0::1", 5684), hello, 0.0)
    opaque = _with_cookie(jar, 0.0, peer=b"conn-id")
    assert jar.verify(b"conn-id", opaque, 0.0)
    assert not jar.verify(b"conn-ie", opaque, 0.0)


def test_cookie_length_and_validation(impl: ModuleType) -> None:
    jar = Jar(impl, cookie_length=16)
    hello = _with_cookie(jar, 0.0)
    assert len(hello.cookie) == 16 and jar.verify(PEER, hello, 0.0)
    for kwargs in ({"cookie_length": 8}, {"cookie_length": 33}, {"secret_lifetime": 0.0}):
        with pytest.raises(ConfigurationError):
            CookieJar(**kwargs)


def test_no_per_peer_state_and_no_secret_in_repr(impl: ModuleType) -> None:
    jar = Jar(impl)
    before = dict(vars(jar.jar))
    for port in range(1000):
        jar.make(("192.0.2.1", port), _hello(), 1.0)
        jar.verify(("192.0.2.1", port), _hello(b"x" * 32), 1.0)
    assert vars(jar.jar).keys() == before.keys()
    assert all(vars(jar.jar)[k] is before[k] or vars(jar.jar)[k] == before[k] for k in before)
    assert vars(jar.jar)["_secret"].hex() not in repr(jar.jar)
    assert vars(jar.jar)["_secret"].hex() not in repr(jar.gate)
