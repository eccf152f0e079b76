"""Stateless DTLS cookies (RFC 6347 §4.2.1).

A cookie is HMAC-SHA256 over the peer's address and the ClientHello fields the
second hello must repeat (:meth:`ClientHello.cookie_input`), under a server
secret that rotates. The previous secret is still accepted, so a cookie stays
valid for between one and two rotation periods. The jar keeps no per-peer
state: verifying needs only the peer address and the hello itself, which is
what lets a server answer a flood of spoofed ClientHellos without allocating
anything (RFC 6347 §4.2.1, DESIGN.md "Boundaries").

Several processes serving one port (:mod:`dtlsfast.workers`) give their jars
one ``seed``: the secret of each period (``floor(now / secret_lifetime)`` on
the caller's clock, the system-wide monotonic clock for the server) is then
derived from the seed, so a cookie one worker made verifies on every other,
and they rotate together without talking to each other.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os

from dtlsfast.exceptions import ConfigurationError

#: A peer as asyncio reports it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6, or opaque bytes (a
#: connection ID, a test's label...).
Peer = tuple[str, int] | tuple[str, int, int, int] | bytes

SECRET_LENGTH = 32
MIN_COOKIE_LENGTH = 16
MAX_COOKIE_LENGTH = hashlib.sha256().digest_size


def peer_bytes(peer: Peer) -> bytes:
    """The canonical bytes of a peer address that a cookie binds.

    For a tuple, only host and port count (IPv6 flowinfo and scope_id are
    ignored); a host that parses as an IP address is taken in packed form, so
    ``"::1"`` and ``"0:0::1"`` agree. Bytes are taken as they are, in a
    separate domain so they never collide with an address.
    """
    if isinstance(peer, bytes | bytearray | memoryview):
        raw = bytes(peer)
        return b"B" + len(raw).to_bytes(4, "big") + raw
    host, port = str(peer[0]), int(peer[1])
    try:
        host_raw = ipaddress.ip_address(host.split("%", 1)[0]).packed
        tag = b"I"
    except ValueError:
        host_raw = host.encode("utf-8", "surrogatepass")
        tag = b"H"
    return tag + len(host_raw).to_bytes(4, "big") + host_raw + (port & 0xFFFF).to_bytes(2, "big")


def cookie_mac(secret: bytes, peer_raw: bytes, cookie_input: bytes, length: int) -> bytes:
    """The cookie: HMAC-SHA256(secret, peer bytes + hello fields), its first
    ``length`` bytes. ``peer_raw`` is :func:`peer_bytes` of the peer,
    ``cookie_input`` is :meth:`ClientHello.cookie_input`."""
    return hmac.digest(secret, peer_raw + cookie_input, "sha256")[:length]


def cookie_matches(
    cookie: bytes,
    secret: bytes,
    previous: bytes | None,
    peer_raw: bytes,
    cookie_input: bytes,
    length: int,
) -> bool:
    """Whether ``cookie`` is the cookie of ``peer_raw`` and ``cookie_input``
    under ``secret`` or ``previous``, compared in constant time. Both are
    always computed, so timing does not tell which secret matched."""
    ok = hmac.compare_digest(cookie, cookie_mac(secret, peer_raw, cookie_input, length))
    if previous is not None:
        ok_previous = hmac.compare_digest(
            cookie, cookie_mac(previous, peer_raw, cookie_input, length)
        )
        ok = ok or ok_previous
    return ok and len(cookie) == length


class CookieJar:
    """The cookie secrets and their rotation; see the module docstring. The
    backend's ``HelloGate`` makes and checks the cookies with them
    (:class:`dtlsfast.cookie_gate.CookieGate` hands them over).

    ``secret_lifetime`` is the rotation period in seconds; ``now`` is the clock
    reading at creation (the caller's clock: the jar never reads one);
    ``cookie_length`` is 16..32 bytes of truncated HMAC-SHA256.
    """

    def __init__(
        self,
        secret_lifetime: float = 300.0,
        now: float = 0.0,
        cookie_length: int = 32,
        *,
        seed: bytes | None = None,
    ) -> None:
        if not secret_lifetime > 0:
            raise ConfigurationError(
                f"secret_lifetime must be a positive number of seconds, not {secret_lifetime!r}"
            )
        if not MIN_COOKIE_LENGTH <= cookie_length <= MAX_COOKIE_LENGTH:
            raise ConfigurationError(
                f"cookie_length must be {MIN_COOKIE_LENGTH}..{MAX_COOKIE_LENGTH}, "
                f"not {cookie_length!r}"
            )
        if seed is not None and len(seed) < SECRET_LENGTH:
            raise ConfigurationError(
                f"a shared cookie seed is at least {SECRET_LENGTH} random bytes, not {len(seed)}"
            )
        self.secret_lifetime = float(secret_lifetime)
        self.cookie_length = cookie_length
        self._seed = seed
        self._secret = os.urandom(SECRET_LENGTH)
        self._previous: bytes | None = None
        self._created = now
        self._period = 0
        self.rotations = 0
        """How many times the secret has rotated (for counters and tests)."""
        if seed is not None:
            self._derive(self._period_of(now))

    def __repr__(self) -> str:
        return (
            f"CookieJar(secret_lifetime={self.secret_lifetime}, "
            f"cookie_length={self.cookie_length}, rotations={self.rotations})"
        )

    def _period_of(self, now: float) -> int:
        return math.floor(now / self.secret_lifetime)

    def _derive(self, period: int) -> None:
        """The seeded secrets of ``period`` and of the one before it."""
        assert self._seed is not None
        self._period = period
        self._secret = _seeded_secret(self._seed, period)
        self._previous = _seeded_secret(self._seed, period - 1)

    def rotate(self, now: float) -> None:
        """Rotate now: the current secret becomes the previous one."""
        if self._seed is not None:
            raise ConfigurationError(
                "a cookie jar with a shared seed rotates with the clock only, so that every "
                "process holding the seed agrees on the secrets: leave rotate() out"
            )
        self._previous = self._secret
        self._secret = os.urandom(SECRET_LENGTH)
        self._created = now
        self.rotations += 1

    def refresh(self, now: float) -> bool:
        """Rotate if the secret's lifetime is over; whether it rotated (so a
        :class:`~dtlsfast._core.HelloGate` holding the secrets is given the
        new ones, see :attr:`secrets`)."""
        if self._seed is None and now - self._created < self.secret_lifetime:
            return False  # the usual case, asked on every ClientHello
        rotations = self.rotations
        self._maybe_rotate(now)
        return self.rotations != rotations

    @property
    def secrets(self) -> tuple[bytes, bytes | None]:
        """The current and the previous secret, for a gate that checks
        cookies itself; rotation stays here."""
        return self._secret, self._previous

    def _maybe_rotate(self, now: float) -> None:
        if self._seed is not None:
            period = self._period_of(now)
            if period != self._period:
                self._derive(period)
                self.rotations += 1
            return
        elapsed = now - self._created
        if elapsed < self.secret_lifetime:
            return
        self.rotate(now)
        if elapsed >= 2 * self.secret_lifetime:
            # Idle for two periods or more: the secret that just became
            # "previous" would also have expired by now.
            self.rotate(now)


def _seeded_secret(seed: bytes, period: int) -> bytes:
    return hmac.digest(seed, b"dtlsfast cookie secret " + str(period).encode(), "sha256")


__all__ = ["CookieJar", "Peer", "cookie_mac", "cookie_matches", "peer_bytes"]
