"""CoAP over DTLS against libcoap on loopback (RFC 7252 §9.1, RFC 7641).

libcoap is the library behind the ESP-IDF example: its stock clients must
GET, PUT and observe the seed server's ``light`` with no change on their side,
and the dtlsfast client must talk to libcoap's example server. The peers come
from Debian's libcoap3-bin, which .ci/run installs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from peers import PSK_IDENTITY, PSK_KEY, CoapServerPeer, run_coap_client

from dtlsfast.coap import CoapClient, CoapServer, LightResource
from dtlsfast.coap.dtls import coaps_transport_factory, listen_dtls
from dtlsfast.coap.transport import UdpServerTransport
from dtlsfast.server import DtlsServer

pytestmark = pytest.mark.interop


@dataclass
class SeedServer:
    coap: CoapServer
    light: LightResource
    udp: UdpServerTransport
    dtls: DtlsServer

    def uri(self, path: str = "light", *, secure: bool = True) -> str:
        if secure:
            return f"coaps://127.0.0.1:{self.dtls.port}/{path}"
        return f"coap://127.0.0.1:{self.udp.port}/{path}"


@pytest.fixture
async def seed() -> AsyncIterator[SeedServer]:
    """What ``dtlsfast serve`` runs, on free ports."""
    coap = CoapServer()
    light = LightResource()
    coap.add_resource("light", light)
    udp = await coap.listen_udp("127.0.0.1", 0)
    dtls = await listen_dtls(
        coap, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    )
    try:
        yield SeedServer(coap, light, udp, dtls)
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


@pytest.mark.parametrize("variant", ["openssl", "gnutls"])
async def test_libcoap_client_get_put_get(seed: SeedServer, variant: str) -> None:
    first = await run_coap_client(seed.uri(), variant=variant)
    assert first.response_code == "2.05", first.describe()
    assert first.payload == b"off"
    put = await run_coap_client(seed.uri(), method="put", payload="on", variant=variant)
    assert put.response_code == "2.04", put.describe()
    again = await run_coap_client(seed.uri(), variant=variant)
    assert again.payload == b"on", again.describe()
    assert seed.light.on
    assert seed.dtls.counters["handshakes_completed"] == 3


@pytest.mark.parametrize("variant", ["openssl", "gnutls"])
async def test_libcoap_client_well_known_core(seed: SeedServer, variant: str) -> None:
    result = await run_coap_client(seed.uri(".well-known/core"), variant=variant)
    assert result.response_code == "2.05", result.describe()
    assert result.payload is not None and b"</light>" in result.payload
    assert b"obs" in result.payload


async def test_libcoap_observer_sees_every_change(seed: SeedServer) -> None:
    observer = asyncio.create_task(
        run_coap_client(seed.uri(), variant="openssl", observe_seconds=4, bound=6)
    )
    await asyncio.sleep(1.0)
    for value in ("on", "off", "toggle"):
        put = await run_coap_client(seed.uri(), method="put", payload=value, variant="gnutls")
        assert put.response_code == "2.04", put.describe()
        await asyncio.sleep(0.2)
    result = await observer
    # The registration's answer, then one notification per change.
    assert result.payload == b"offonoffon", result.describe()


async def test_libcoap_plain_coap(seed: SeedServer) -> None:
    put = await run_coap_client(
        seed.uri(secure=False), method="put", payload="on", variant="notls", psk=False
    )
    assert put.response_code == "2.04", put.describe()
    get = await run_coap_client(seed.uri(secure=False), variant="notls", psk=False)
    assert get.payload == b"on", get.describe()


async def test_libcoap_client_wrong_key_is_refused(seed: SeedServer) -> None:
    result = await run_coap_client(
        seed.uri(), variant="openssl", psk=False, extra=("-u", PSK_IDENTITY, "-k", "wrong"), bound=3
    )
    assert result.payload in (None, b""), result.describe()
    assert seed.dtls.counters["handshakes_failed"] >= 1
    assert not seed.light.on


# -- dtlsfast client against libcoap's server ----------------------------------


@pytest.fixture
async def libcoap_server() -> AsyncIterator[CoapServerPeer]:
    async with CoapServerPeer(variant="openssl") as server:
        yield server


def _client() -> CoapClient:
    return CoapClient(
        transport_factories={"coaps": coaps_transport_factory((PSK_IDENTITY, PSK_KEY))}
    )


async def test_client_get_time_from_libcoap(libcoap_server: CoapServerPeer) -> None:
    async with _client() as client:
        response = await asyncio.wait_for(client.get(libcoap_server.uri("time")), 10)
    assert response.code == (2 << 5) | 5
    assert response.payload


async def test_client_observes_libcoap_time(libcoap_server: CoapServerPeer) -> None:
    seen: list[bytes] = []
    async with _client() as client, client.observe(libcoap_server.uri("time")) as observation:
        async for notification in observation:
            seen.append(notification.payload)
            if len(seen) == 3:
                break
    assert len(seen) == 3 and all(seen)


async def test_client_blockwise_from_libcoap(libcoap_server: CoapServerPeer) -> None:
    async with _client() as client:
        response = await asyncio.wait_for(client.get(libcoap_server.uri("example_data")), 20)
    assert response.code == (2 << 5) | 5
    assert len(response.payload) >= 1000


async def test_client_put_creates_on_libcoap(libcoap_server: CoapServerPeer) -> None:
    async with _client() as client:
        created = await asyncio.wait_for(client.put(libcoap_server.uri("light"), b"on"), 10)
        assert created.code >> 5 == 2
        response = await asyncio.wait_for(client.get(libcoap_server.uri("light")), 10)
    assert response.payload == b"on"
