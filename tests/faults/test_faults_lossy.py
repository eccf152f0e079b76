"""Real peers and dtlsfast through a lossy link: 10 %, 25 % and 40 % loss each way.

The link is :class:`lossy_proxy.LossyProxy` with a fixed seed per case: it
drops that share of the datagrams in each direction, duplicates 5 % and
delays each by up to 20 ms (which reorders). Both sides of every case
retransmit on their own (RFC 6347 §4.2.4): libcoap's coap-client and openssl
s_client against dtlsfast's servers, and the dtlsfast client against openssl
s_server. Application data over DTLS is not retransmitted, so the
data exchange repeats its message until an answer comes back (CoAP's CON
retransmission does that for libcoap).

Each case prints attempts (client runs needed, at most ``MAX_ATTEMPTS``),
completions, the server's retransmission counter, the epoch-0 handshake
retransmissions seen on the wire per direction, and the proxy's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import pytest
from lossy_proxy import DOWN, UP, LossyProxy
from peers import (
    PSK_IDENTITY,
    PSK_KEY,
    CompletedPeer,
    OpenSslServer,
    run_coap_client,
    run_openssl_client,
)

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.coap import CoapServer, LightResource
from dtlsfast.coap.dtls import listen_dtls
from dtlsfast.server import DtlsServer

pytestmark = pytest.mark.interop

#: (loss each way, proxy seed)
LOSS_CASES = [(0.10, 10), (0.25, 25), (0.40, 40)]
LOSS_IDS = [f"loss{int(rate * 100)}" for rate, _ in LOSS_CASES]
DUPLICATE = 0.05
MAX_DELAY = 0.02
MAX_ATTEMPTS = 3


def _proxy(target: tuple[str, int], rate: float, seed: int) -> LossyProxy:
    return LossyProxy(target, seed=seed, drop=rate, duplicate=DUPLICATE, delay=MAX_DELAY)


@dataclass
class WireRetransmissions:
    """Counts epoch-0 handshake records seen twice on the wire (before the proxy's faults).

    Retransmitted flights repeat byte for byte in epoch 0; a new attempt's
    ClientHello has a new random, so it is not counted.
    """

    seen: set[bytes] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})

    def __call__(self, direction: str, datagram: bytes) -> None:
        offset = 0
        while offset + 13 <= len(datagram):
            length = int.from_bytes(datagram[offset + 11 : offset + 13], "big")
            record = datagram[offset : offset + 13 + length]
            offset += 13 + length
            if record[0] != 22 or record[3:5] != b"\x00\x00":  # handshake, epoch 0
                continue
            digest = hashlib.blake2b(direction.encode() + record[13:], digest_size=16).digest()
            if digest in self.seen:
                self.counts[direction] += 1
            else:
                self.seen.add(digest)


def _report(name: str, rate: float, attempts: int, completions: int, **figures: object) -> None:
    extra = " ".join(f"{k}={v}" for k, v in figures.items())
    print(
        f"\n[lossy] {name} loss={rate:.0%}: attempts={attempts} completions={completions} {extra}"
    )


@dataclass
class Attempts:
    """A peer's attempts at one exchange through the lossy link."""

    results: list[CompletedPeer]
    completions: int
    seconds: float


async def _attempt_until_done(
    attempt: Callable[[], Awaitable[CompletedPeer]], done: Callable[[CompletedPeer], bool]
) -> Attempts:
    """Run ``attempt`` until ``done`` says one worked, at most MAX_ATTEMPTS times."""
    started = time.monotonic()
    results: list[CompletedPeer] = []
    completions = 0
    while len(results) < MAX_ATTEMPTS and not completions:
        results.append(await attempt())
        completions += done(results[-1])
    return Attempts(results, completions, time.monotonic() - started)


def _check_against_dtlsfast(
    name: str,
    rate: float,
    attempts: Attempts,
    counters: Mapping[str, int],
    wire: WireRetransmissions,
    proxy: LossyProxy,
) -> None:
    """Report a peer's attempts at a dtlsfast server through the lossy link,
    and check that one completed, the server completed a handshake and the
    link did lose datagrams."""
    _report(
        name,
        rate,
        len(attempts.results),
        attempts.completions,
        seconds=f"{attempts.seconds:.1f}",
        handshakes=counters["handshakes_completed"],
        server_retransmissions=counters["retransmissions"],
        wire_retransmissions=wire.counts,
        proxy=proxy.summary(),
    )
    assert attempts.completions == 1, "\n\n".join(r.describe() for r in attempts.results)
    assert counters["handshakes_completed"] >= 1
    assert proxy.stats[UP].dropped + proxy.stats[DOWN].dropped > 0


# -- (a) libcoap's coap-client against the dtlsfast CoAPS server ----------------


@dataclass
class CoapsSeed:
    coap: CoapServer
    light: LightResource
    dtls: DtlsServer


@pytest.fixture
async def coaps_seed() -> AsyncIterator[CoapsSeed]:
    coap = CoapServer()
    light = LightResource()
    coap.add_resource("light", light)
    dtls = await listen_dtls(
        coap, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    )
    try:
        yield CoapsSeed(coap, light, dtls)
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


@pytest.mark.parametrize(("rate", "seed"), LOSS_CASES, ids=LOSS_IDS)
async def test_libcoap_get_through_lossy_link(
    coaps_seed: CoapsSeed, rate: float, seed: int
) -> None:
    wire = WireRetransmissions()
    async with _proxy(coaps_seed.dtls.address, rate, seed) as proxy:
        proxy.observer = wire
        uri = f"coaps://127.0.0.1:{proxy.port}/light"
        attempts = await _attempt_until_done(
            lambda: run_coap_client(uri, variant="openssl", bound=20, timeout=25),
            lambda r: r.response_code == "2.05" and r.payload == b"off",
        )
    _check_against_dtlsfast(
        "coap-client -> dtlsfast CoAPS", rate, attempts, coaps_seed.dtls.counters, wire, proxy
    )


# -- (b) openssl s_client against a dtlsfast echo server -------------------------


async def _upper_echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data.upper())


@pytest.mark.parametrize(("rate", "seed"), LOSS_CASES, ids=LOSS_IDS)
async def test_openssl_client_echo_through_lossy_link(rate: float, seed: int) -> None:
    wire = WireRetransmissions()
    async with (
        await dtlsfast.serve(
            _upper_echo, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}
        ) as server,
        _proxy(server.address, rate, seed) as proxy,
    ):
        proxy.observer = wire
        attempts = await _attempt_until_done(
            lambda: run_openssl_client(
                proxy.port,
                data=b"ping\n",
                expect=b"PING",
                repeat_every=0.25,
                linger=20,
                timeout=25,
            ),
            lambda r: r.handshake_ok and b"PING\n" in r.app_data,
        )
        counters = server.counters
    _check_against_dtlsfast(
        "openssl s_client -> dtlsfast echo", rate, attempts, counters, wire, proxy
    )


# -- (c) the dtlsfast client against openssl s_server ----------------------------


async def _until(
    predicate: Callable[[], bool],
    action: Callable[[], Awaitable[object] | None],
    *,
    every: float,
    within: float,
) -> bool:
    """Call ``action()`` every ``every`` s until ``predicate()`` holds (True) or time is up."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        result = action()
        if inspect.isawaitable(result):
            await result
        await asyncio.sleep(every)
    return predicate()


async def _ping_pong(session: DtlsSession, peer: OpenSslServer, tag: str) -> str | None:
    """Repeat ``tag`` until s_server prints it, then have s_server send "pong"
    until it arrives; None on success, else what went wrong."""
    sent = await _until(
        lambda: tag in peer.output(),
        lambda: session.send(tag.encode()),
        every=0.2,
        within=10,
    )
    if not sent:
        return f"{tag.strip()} never reached s_server"
    received: list[bytes] = []

    async def send_pong_and_drain() -> None:
        await asyncio.to_thread(peer.send, b"pong\n")
        with contextlib.suppress(TimeoutError):
            received.append(await asyncio.wait_for(session.recv(), 0.2))

    if await _until(lambda: b"pong\n" in received, send_pong_and_drain, every=0.0, within=10):
        return None
    return f"no pong came back (received {received})"


@pytest.mark.parametrize(("rate", "seed"), LOSS_CASES, ids=LOSS_IDS)
async def test_dtlsfast_client_against_openssl_server_through_lossy_link(
    rate: float, seed: int
) -> None:
    wire = WireRetransmissions()
    async with (
        OpenSslServer("PSK-AES128-CCM8", timeout=60) as peer,
        _proxy(("127.0.0.1", peer.port), rate, seed) as proxy,
    ):
        proxy.observer = wire
        attempts = completions = retransmissions = 0
        started = time.monotonic()
        errors: list[str] = []
        while attempts < MAX_ATTEMPTS and not completions:
            attempts += 1
            try:
                session = await dtlsfast.connect(
                    "127.0.0.1",
                    proxy.port,
                    psk=(PSK_IDENTITY, PSK_KEY),
                    initial_timeout=0.5,
                    max_timeout=4,
                    max_retransmissions=10,
                    handshake_timeout=20,
                )
            except dtlsfast.HandshakeError as exc:
                errors.append(f"attempt {attempts}: {exc}")
                continue
            try:
                retransmissions += session.connection.counters["retransmissions"]
                error = await _ping_pong(session, peer, f"ping{attempts}\n")
            finally:
                await session.close()
            if error is None:
                completions += 1
            else:
                errors.append(f"attempt {attempts}: {error}")
        elapsed = time.monotonic() - started
    _report(
        "dtlsfast client -> openssl s_server",
        rate,
        attempts,
        completions,
        seconds=f"{elapsed:.1f}",
        client_retransmissions=retransmissions,
        wire_retransmissions=wire.counts,
        proxy=proxy.summary(),
    )
    assert completions == 1, "\n".join(errors) + "\n" + peer.describe()
    assert proxy.stats[UP].dropped + proxy.stats[DOWN].dropped > 0
