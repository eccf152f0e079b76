"""aiocoap (PyPI, ``pip install aiocoap``) as a client of CoapServer over UDP:
GET, PUT, block-wise and observe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiocoap
import pytest

from dtlsfast.coap import (
    CoapServer,
    Code,
    ContentFormat,
    LightResource,
    Request,
    Resource,
    Response,
)

pytestmark = pytest.mark.interop


class Big(Resource):
    async def render_get(self, request: Request) -> Response:
        return Response(Code.CONTENT, b"0123456789abcdef" * 200, ContentFormat.TEXT_PLAIN)


@pytest.fixture
async def served() -> AsyncIterator[tuple[CoapServer, str]]:
    server = CoapServer()
    server.add_resource("light", LightResource())
    server.add_resource("big", Big())
    listener = await server.listen_udp("127.0.0.1", 0)
    async with server:
        yield server, f"coap://127.0.0.1:{listener.port}"


async def test_aiocoap_client(served: tuple[CoapServer, str]) -> None:
    server, base = served
    ctx = await aiocoap.Context.create_client_context()
    try:
        r = await ctx.request(aiocoap.Message(code=aiocoap.GET, uri=f"{base}/light")).response
        assert (r.code, r.payload) == (aiocoap.CONTENT, b"off")
        put = aiocoap.Message(code=aiocoap.PUT, uri=f"{base}/light", payload=b"on")
        r = await ctx.request(put).response
        assert r.code == aiocoap.CHANGED
        get = aiocoap.Message(code=aiocoap.GET, uri=f"{base}/light")
        get.opt.accept = 50
        r = await ctx.request(get).response
        assert r.payload == b'{"on": true}'
        r = await ctx.request(aiocoap.Message(code=aiocoap.GET, uri=f"{base}/big")).response
        assert r.payload == b"0123456789abcdef" * 200
        r = await ctx.request(aiocoap.Message(code=aiocoap.GET, uri=f"{base}/x")).response
        assert r.code == aiocoap.NOT_FOUND
        wkc = f"{base}/.well-known/core"
        r = await ctx.request(aiocoap.Message(code=aiocoap.GET, uri=wkc)).response
        assert b"</light>" in r.payload

        request = ctx.request(aiocoap.Message(code=aiocoap.GET, uri=f"{base}/light", observe=0))
        first = await request.response
        assert first.payload == b"on"
        light = server.resources["light"]
        assert isinstance(light, LightResource)
        light.on = False
        light.notify()
        async for note in request.observation:
            assert note.payload == b"off"
            break
        request.observation.cancel()
    finally:
        await ctx.shutdown()
