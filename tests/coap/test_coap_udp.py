"""CoapClient against CoapServer over real UDP on 127.0.0.1, and the client
against scripted peers (lost ACKs, RST, unknown tokens, silence)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dtlsfast.coap import (
    CoapClient,
    CoapClientConfig,
    CoapRequestError,
    CoapResetError,
    CoapServer,
    CoapServerConfig,
    CoapTimeoutError,
    Code,
    ContentFormat,
    LightResource,
    Message,
    MessageType,
    OptionNumber,
    Request,
    Resource,
    Response,
    TransmissionParameters,
)
from dtlsfast.coap.errors import CoapError
from dtlsfast.coap.uri import parse_uri
from dtlsfast.exceptions import ConfigurationError

FAST = TransmissionParameters(ack_timeout=0.1, max_retransmit=2)


class Echo(Resource):
    async def render_get(self, request: Request) -> Response:
        return Response(Code.CONTENT, ("q=" + "&".join(request.query)).encode())

    async def render_post(self, request: Request) -> Response:
        return Response(Code.CHANGED, request.payload[::-1], request.content_format)


class SlowEcho(Resource):
    async def render_get(self, request: Request) -> Response:
        await asyncio.sleep(0.2)
        return Response(Code.CONTENT, b"slow")


class Big(Resource):
    observable = True

    def __init__(self) -> None:
        self.body = bytes(i % 253 for i in range(5000))

    async def render_get(self, request: Request) -> Response:
        return Response(Code.CONTENT, self.body, ContentFormat.OCTET_STREAM)

    async def render_put(self, request: Request) -> Response:
        self.body = request.payload
        self.notify()
        return Response(Code.CHANGED, str(len(request.payload)).encode())


@pytest.fixture
async def served() -> AsyncIterator[tuple[CoapServer, str]]:
    server = CoapServer(CoapServerConfig(separate_response_after=0.05))
    server.add_resource("light", LightResource())
    server.add_resource("echo", Echo())
    server.add_resource("slow", SlowEcho())
    server.add_resource("big", Big())
    listener = await server.listen_udp("127.0.0.1", 0)
    async with server:
        yield server, f"coap://127.0.0.1:{listener.port}"


async def test_get_put_json(served: tuple[CoapServer, str]) -> None:
    _, base = served
    async with CoapClient() as client:
        r = await client.get(f"{base}/light")
        assert (r.code, r.payload, r.content_format) == (Code.CONTENT, b"off", 0)
        assert r.is_success and r.code_str == "2.05" and r.text() == "off"
        r = await client.put(f"{base}/light", b"on", content_format=0)
        assert r.code == Code.CHANGED
        r = await client.get(f"{base}/light", accept=ContentFormat.JSON)
        assert r.json() == {"on": True}
        r = await client.get(f"{base}/light", accept=ContentFormat.JSON, confirmable=False)
        assert r.json() == {"on": True}
        r = await client.post(f"{base}/echo", b"abc", content_format=0)
        assert (r.code, r.payload, r.content_format) == (Code.CHANGED, b"cba", 0)
        r = await client.get(f"{base}/echo?a=1&b=%262")
        assert r.payload == b"q=a=1&b=&2"
        r = await client.delete(f"{base}/light")
        assert r.code == Code.METHOD_NOT_ALLOWED
        r = await client.get(f"{base}/nope")
        assert r.code == Code.NOT_FOUND
        assert "4.04" in repr(r)


async def test_separate_response(served: tuple[CoapServer, str]) -> None:
    server, base = served
    async with CoapClient() as client:
        r = await client.get(f"{base}/slow")
        assert r.payload == b"slow"
        r = await client.get(f"{base}/slow", confirmable=False)
        assert r.payload == b"slow"
    assert server.counters["separate_responses"] == 1


async def test_block2_and_block1(served: tuple[CoapServer, str]) -> None:
    server, base = served
    big = server.resources["big"]
    assert isinstance(big, Big)
    async with CoapClient() as client:
        r = await client.get(f"{base}/big")
        assert r.payload == big.body
        assert r.get_option(OptionNumber.BLOCK2) is None
        body = bytes(range(256)) * 20
        r = await client.put(f"{base}/big", body)
        assert (r.code, r.payload) == (Code.CHANGED, b"5120")
        assert big.body == body
    async with CoapClient(CoapClientConfig(block_size=64)) as client:
        r = await client.put(f"{base}/big", body[:1000])
        assert r.payload == b"1000"
        r = await client.get(f"{base}/big")
        assert r.payload == body[:1000]


async def test_observe(served: tuple[CoapServer, str]) -> None:
    server, base = served
    async with CoapClient() as client:
        async with client.observe(f"{base}/light") as observation:
            first = await anext(observation)
            assert first.payload == b"off" and first.observe is not None
            assert len(server.observers("light")) == 1
            await client.put(f"{base}/light", b"on")
            second = await asyncio.wait_for(anext(observation), 5)
            assert second.payload == b"on"
            await client.put(f"{base}/light", b"toggle")
            third = await asyncio.wait_for(anext(observation), 5)
            assert third.payload == b"off"
            assert third.observe is not None and second.observe is not None
        # Leaving the block deregistered with Observe=1.
        assert server.observers("light") == []
        assert server.counters["observers_deregistered"] == 1
        with pytest.raises(StopAsyncIteration):
            await anext(observation)


async def test_observe_large_notifications(served: tuple[CoapServer, str]) -> None:
    server, base = served
    async with CoapClient() as client:
        observation = client.observe(f"{base}/big")
        first = await anext(observation)
        assert len(first.payload) == 5000
        await client.put(f"{base}/big", b"y" * 3000)
        second = await asyncio.wait_for(anext(observation), 5)
        assert second.payload == b"y" * 3000
        await observation.cancel(deregister=False)
        await observation.cancel()
        # The server still has the observer; the next notification is
        # rejected with RST and ends it (RFC 7641 §3.6).
        assert len(server.observers("big")) == 1
        await client.put(f"{base}/big", b"z")
        for _ in range(50):
            if not server.observers("big"):
                break
            await asyncio.sleep(0.02)
        assert server.observers("big") == []
        assert client.counters["rst_sent"] >= 1


async def test_observe_not_observable(served: tuple[CoapServer, str]) -> None:
    _, base = served
    async with CoapClient() as client:
        notes = [n async for n in client.observe(f"{base}/echo")]
        assert [n.payload for n in notes] == [b"q="]
        notes = [n async for n in client.observe(f"{base}/nope")]
        assert [n.code for n in notes] == [Code.NOT_FOUND]


async def test_many_concurrent_requests(served: tuple[CoapServer, str]) -> None:
    _, base = served
    async with CoapClient(CoapClientConfig(nstart=4)) as client:
        results = await asyncio.gather(*(client.get(f"{base}/light") for _ in range(40)))
    assert {r.payload for r in results} == {b"off"}


# -- the client against scripted peers ---------------------------------------


class Scripted(asyncio.DatagramProtocol):
    """A fake server: ``script(message, reply)`` decides what to send back."""

    def __init__(self, script: Callable[[Message, Callable[[Message], None]], None]) -> None:
        self.script = script
        self.received: list[Message] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = Message.decode(data)
        self.received.append(msg)
        self.script(msg, lambda reply: self.transport.sendto(reply.encode(), addr))


@contextlib.asynccontextmanager
async def scripted(
    script: Callable[[Message, Callable[[Message], None]], None],
) -> AsyncIterator[tuple[Scripted, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: Scripted(script), local_addr=("127.0.0.1", 0)
    )
    try:
        yield proto, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_client_retransmits_until_ack() -> None:
    def script(msg: Message, reply: Callable[[Message], None]) -> None:
        if msg.is_request and len(peer.received) == 3:
            reply(Message(MessageType.ACK, Code.CONTENT, msg.message_id, msg.token, [], b"ok"))

    async with scripted(script) as (peer, port):
        async with CoapClient(CoapClientConfig(transmission=FAST)) as client:
            r = await client.get(f"coap://127.0.0.1:{port}/x")
            assert r.payload == b"ok"
            assert client.counters["retransmissions"] == 2
        assert len({m.message_id for m in peer.received}) == 1


async def test_client_times_out_and_is_reset() -> None:
    def silent(msg: Message, reply: Callable[[Message], None]) -> None:
        pass

    config = CoapClientConfig(transmission=FAST)
    async with scripted(silent) as (peer, port), CoapClient(config) as client:
        with pytest.raises(CoapTimeoutError, match="MAX_RETRANSMIT"):
            await client.get(f"coap://127.0.0.1:{port}/x")
        assert len(peer.received) == 3
        with pytest.raises(CoapTimeoutError):
            await client.get(f"coap://127.0.0.1:{port}/x", confirmable=False, timeout=0.2)
        with pytest.raises(CoapTimeoutError):
            await client.get(f"coap://127.0.0.1:{port}/x", timeout=0.05)

    def rst(msg: Message, reply: Callable[[Message], None]) -> None:
        reply(Message(MessageType.RST, 0, msg.message_id))

    async with scripted(rst) as (peer, port), CoapClient() as client:
        with pytest.raises(CoapResetError):
            await client.get(f"coap://127.0.0.1:{port}/x")
        with pytest.raises(CoapResetError):
            await anext(client.observe(f"coap://127.0.0.1:{port}/x"))


async def test_client_separate_response_ack_and_duplicates() -> None:
    sent: list[Message] = []

    def script(msg: Message, reply: Callable[[Message], None]) -> None:
        if msg.is_request:
            reply(Message(MessageType.ACK, 0, msg.message_id))
            # A response to someone else's token first, then ours twice.
            stray = Message(MessageType.CON, Code.CONTENT, 0x0100, b"stray", [], b"?")
            ours = Message(MessageType.CON, Code.CONTENT, 0x0101, msg.token, [], b"sep")
            for m in (stray, ours, ours):
                reply(m)
        else:
            sent.append(msg)

    async with scripted(script) as (_peer, port):
        async with CoapClient() as client:
            r = await client.get(f"coap://127.0.0.1:{port}/x")
            assert r.payload == b"sep"
            for _ in range(20):
                if len(sent) >= 3:
                    break
                await asyncio.sleep(0.01)
        # RST for the stray token, ACK for ours, the same ACK for its duplicate.
        assert [(m.type, m.message_id) for m in sent] == [
            (MessageType.RST, 0x0100),
            (MessageType.ACK, 0x0101),
            (MessageType.ACK, 0x0101),
        ]


async def test_client_rejects_garbage_and_requests() -> None:
    def script(msg: Message, reply: Callable[[Message], None]) -> None:
        if msg.is_request:
            peer.transport.sendto(b"\x4f\x01\x00\x07", ("127.0.0.1", addr[1]))
            reply(Message(MessageType.CON, Code.GET, 0x0200, b"q"))
            reply(Message(MessageType.CON, 0, 0x0201))
            reply(Message(MessageType.ACK, Code.CONTENT, msg.message_id, b"wrong", [], b"?"))
            reply(Message(MessageType.RST, 0, 0x3333))
            reply(Message(MessageType.ACK, Code.CONTENT, msg.message_id, msg.token, [], b"ok"))

    addr: list[int] = [0, 0]
    async with scripted(script) as (peer, port):
        async with CoapClient() as client:
            uri = f"coap://127.0.0.1:{port}/x"
            target = parse_uri(uri)
            origin = await client._origin(target)
            assert origin.transport is not None
            sock = origin.transport._transport.get_extra_info("sockname")  # type: ignore[attr-defined]
            addr[1] = sock[1]
            r = await client.get(uri)
            assert r.payload == b"ok"
            await asyncio.sleep(0.05)
            assert client.counters["decode_errors"] == 1
            assert client.counters["unmatched_ack"] == 1
            assert client.counters["unmatched_rst"] == 1
        replies = [m for m in peer.received if not m.is_request]
        assert sorted((m.type, m.message_id) for m in replies) == [
            (MessageType.RST, 0x0007),
            (MessageType.RST, 0x0200),
            (MessageType.RST, 0x0201),
        ]


async def test_client_block2_errors() -> None:
    def changing(msg: Message, reply: Callable[[Message], None]) -> None:
        block = msg.block2
        num = 0 if block is None else block.num
        out = Message(MessageType.ACK, Code.CONTENT, msg.message_id, msg.token)
        out.add_option(OptionNumber.ETAG, bytes([num]))  # a new ETag per block
        out.add_option(OptionNumber.BLOCK2, bytes([(num << 4) | 0x08 | 0]))
        out.payload = b"x" * 16
        reply(out)

    async with scripted(changing) as (_peer, port), CoapClient() as client:
        with pytest.raises(CoapRequestError, match="changed"):
            await client.get(f"coap://127.0.0.1:{port}/x")


async def test_client_misuse() -> None:
    async with CoapClient() as client:
        with pytest.raises(CoapRequestError, match="scheme"):
            await client.get("http://127.0.0.1/x")
        with pytest.raises(CoapRequestError, match="no transport"):
            await client.get("coaps://127.0.0.1/x")
        with pytest.raises(CoapRequestError):
            await client.get("coap:///x")
        with pytest.raises(CoapRequestError):
            await client.get("coap://h/x#frag")
        with pytest.raises(CoapRequestError):
            await client.get("coap://h:99999/x")
    with pytest.raises(CoapError, match="closed"):
        await client.get("coap://127.0.0.1/x")
    with pytest.raises(ConfigurationError):
        CoapClientConfig(block_size=1000)
    with pytest.raises(ConfigurationError):
        CoapClientConfig(nstart=0)


def test_uri_parsing() -> None:
    uri = parse_uri("coap://Example.COM/a/b%2Fc?x=1&y")
    assert uri.origin == ("coap", "example.com", 5683)
    assert uri.path == ("a", "b/c") and uri.query == ("x=1", "y")
    assert uri.options[0] == (OptionNumber.URI_HOST, b"example.com")
    assert parse_uri("coaps://[::1]/").origin == ("coaps", "::1", 5684)
    assert parse_uri("coaps://[::1]/").options == []
    assert parse_uri("coap://127.0.0.1:1234").port == 1234


async def test_transport_factory_hook(served: tuple[CoapServer, str]) -> None:
    """A custom factory (what the DTLS transport will plug in) is used."""
    _, base = served
    from dtlsfast.coap.transport import open_udp_client

    opened: list[tuple[str, str, int]] = []

    async def factory(
        scheme: str, host: str, port: int, on_datagram: Callable[[bytes], None]
    ) -> Any:
        opened.append((scheme, host, port))
        return await open_udp_client("coap", host, port, on_datagram)

    async with CoapClient(transport_factories={"coaps": factory}) as client:
        r = await client.get(base.replace("coap://", "coaps://") + "/light")
        assert r.payload == b"off"
    assert opened and opened[0][0] == "coaps"


async def test_server_attach_hook_round_trip() -> None:
    """Two servers' worth of plumbing without sockets: the attach hook."""
    server = CoapServer()
    server.add_resource("light", LightResource())
    replies: list[tuple[bytes, object]] = []
    receive = server.attach(lambda data, peer: replies.append((data, peer)))
    receive(Message(MessageType.CON, Code.GET, 9, b"k", [(11, b"light")]).encode(), "session-1")
    for _ in range(5):
        await asyncio.sleep(0)
    [(data, peer)] = replies
    assert peer == "session-1"
    assert Message.decode(data).payload == b"off"
    server.close()
    await server.wait_closed()


async def test_client_origins_shared_bounded_and_failing(served: tuple[CoapServer, str]) -> None:
    _, base = served
    port = int(base.rsplit(":", 1)[1])
    from dtlsfast.coap.transport import open_udp_client

    opened: list[str] = []

    async def factory(
        scheme: str, host: str, port_: int, on_datagram: Callable[[bytes], None]
    ) -> Any:
        opened.append(host)
        await asyncio.sleep(0.01)
        if host == "localhost":
            raise OSError("no route")
        return await open_udp_client(scheme, "127.0.0.1", port, on_datagram)

    config = CoapClientConfig(max_origins=2, nstart=8)
    async with CoapClient(config, transport_factories={"coap": factory}) as client:
        # Concurrent first requests to one origin share one transport.
        results = await asyncio.gather(*(client.get(f"{base}/light") for _ in range(5)))
        assert {r.payload for r in results} == {b"off"}
        assert opened == ["127.0.0.1"]
        # A failing factory fails every concurrent waiter.
        outcomes = await asyncio.gather(
            *(client.get("coap://localhost/light") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, OSError) for o in outcomes)
        # Only max_origins transports stay open: the oldest is closed.
        for name in ("a.example", "b.example", "c.example"):
            r = await client.get(f"coap://{name}:{port}/light")
            assert r.payload == b"off"
        assert len(client._origins) == 2


async def test_client_pending_bound(served: tuple[CoapServer, str]) -> None:
    _, base = served
    async with CoapClient(CoapClientConfig(max_pending=1, nstart=4)) as client:
        observation = client.observe(f"{base}/light")
        assert (await anext(observation)).payload == b"off"
        with pytest.raises(CoapError, match="in flight"):
            await client.get(f"{base}/light")
        with pytest.raises(CoapError, match="in flight"):
            await anext(client.observe(f"{base}/light"))
        await observation.cancel(deregister=False)
        assert (await client.get(f"{base}/light")).payload == b"off"
        assert client.counters["requests_refused"] == 2
