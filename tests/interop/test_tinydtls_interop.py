"""tinydtls (through aiocoap and DTLSSocket) as a CoAPS client of dtlsfast.

tinydtls is the DTLS stack of many constrained devices: it offers only
TLS_PSK_WITH_AES_128_CCM_8 and TLS_PSK_WITH_AES_128_CCM and no extension but
extended_master_secret, so this covers the leanest ClientHello we meet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiocoap
import pytest
from peers import PSK_IDENTITY, PSK_KEY

from dtlsfast.coap import CoapServer, LightResource
from dtlsfast.coap.dtls import listen_dtls
from dtlsfast.server import DtlsServer

pytestmark = pytest.mark.interop


@pytest.fixture
async def served() -> AsyncIterator[tuple[DtlsServer, LightResource]]:
    coap = CoapServer()
    light = LightResource()
    coap.add_resource("light", light)
    dtls = await listen_dtls(
        coap, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    )
    try:
        yield dtls, light
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


@pytest.fixture
async def tinydtls_client() -> AsyncIterator[aiocoap.Context]:
    context = await aiocoap.Context.create_client_context(transports=["tinydtls"])
    context.client_credentials.load_from_dict(
        {
            "coaps://127.0.0.1*": {
                "dtls": {
                    "psk": {"ascii": PSK_KEY.decode()},
                    "client-identity": {"ascii": PSK_IDENTITY},
                }
            }
        }
    )
    try:
        yield context
    finally:
        await context.shutdown()


async def test_tinydtls_get_put_observe(
    served: tuple[DtlsServer, LightResource], tinydtls_client: aiocoap.Context
) -> None:
    dtls, light = served
    uri = f"coaps://127.0.0.1:{dtls.port}/light"

    async def request(code: aiocoap.Code, payload: bytes = b"") -> aiocoap.Message:
        message = aiocoap.Message(code=code, uri=uri, payload=payload)
        return await asyncio.wait_for(tinydtls_client.request(message).response, 10)

    got = await request(aiocoap.GET)
    assert (got.code, got.payload) == (aiocoap.CONTENT, b"off")

    observation = tinydtls_client.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
    first = await asyncio.wait_for(observation.response, 10)
    assert first.payload == b"off"
    changed = await request(aiocoap.PUT, b"on")
    assert changed.code == aiocoap.CHANGED and light.on
    notifications = observation.observation.__aiter__()
    notification = await asyncio.wait_for(notifications.__anext__(), 10)
    assert notification.payload == b"on"
    observation.observation.cancel()

    (session,) = dtls.sessions
    assert session.cipher_suite == "TLS_PSK_WITH_AES_128_CCM_8"
    assert dtls.counters["handshakes_completed"] == 1
