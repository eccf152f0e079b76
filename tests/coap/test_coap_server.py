"""The server core driven in memory (RFC 7252 §4, §5; RFC 7959; RFC 6690):
no sockets, a ManualClock for every timer."""

from __future__ import annotations

import asyncio

import pytest
from coap_harness import PEER, Harness

from dtlsfast.coap import (
    BlockOption,
    CoapServer,
    CoapServerConfig,
    Code,
    ContentFormat,
    ErrorResponse,
    FunctionResource,
    Message,
    MessageType,
    OptionNumber,
    Request,
    Resource,
    Response,
    TransmissionParameters,
)
from dtlsfast.exceptions import ConfigurationError

CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST


class Counting(Resource):
    rt = "counter"
    title = 'A "counting" resource'

    def __init__(self) -> None:
        self.calls = 0
        self.body = b""

    async def render_get(self, request: Request) -> Response:
        self.calls += 1
        return Response(Code.CONTENT, str(self.calls).encode(), ContentFormat.TEXT_PLAIN)

    async def render_put(self, request: Request) -> Response:
        self.body = request.payload
        return Response(Code.CHANGED, str(len(request.payload)).encode())


class Slow(Resource):
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def render_get(self, request: Request) -> Response:
        await self.release.wait()
        return Response(Code.CONTENT, b"late")


class Big(Resource):
    body = bytes(i % 251 for i in range(2500))

    async def render_get(self, request: Request) -> Response:
        return Response(Code.CONTENT, self.body, ContentFormat.OCTET_STREAM)


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.server.add_resource("count", Counting())
    return harness


async def test_piggybacked_response(h: Harness) -> None:
    req = h.request(Code.GET, "count", token=b"\x01\x02")
    await h.settle()
    [reply] = h.take()
    assert reply.type is ACK
    assert reply.message_id == req.message_id
    assert reply.token == b"\x01\x02"
    assert reply.code == Code.CONTENT
    assert reply.payload == b"1"
    assert reply.content_format == 0
    assert h.sent == []


async def test_non_request_gets_non_response(h: Harness) -> None:
    req = h.request(Code.GET, "count", type=NON)
    await h.settle()
    [reply] = h.take()
    assert reply.type is NON
    assert reply.message_id != req.message_id
    assert reply.token == req.token


async def test_con_duplicate_replays_cached_ack(h: Harness) -> None:
    h.request(Code.GET, "count", mid=77, token=b"a")
    await h.settle()
    h.request(Code.GET, "count", mid=77, token=b"a")
    await h.settle()
    assert len(h.raw) == 2 and h.raw[0] == h.raw[1]
    assert h.server.resources["count"].calls == 1  # type: ignore[attr-defined]
    assert h.server.counters["duplicates"] == 1


async def test_non_duplicate_is_ignored(h: Harness) -> None:
    h.request(Code.GET, "count", type=NON, mid=78)
    await h.settle()
    h.request(Code.GET, "count", type=NON, mid=78)
    await h.settle()
    assert len(h.take()) == 1


async def test_same_mid_from_other_peer_is_not_duplicate(h: Harness) -> None:
    h.request(Code.GET, "count", mid=79)
    h.request(Code.GET, "count", mid=79, peer=("192.0.2.2", 5683))
    await h.settle()
    assert [m.payload for m in h.take()] == [b"1", b"2"]


async def test_dedup_expires_after_exchange_lifetime(h: Harness) -> None:
    h.request(Code.GET, "count", mid=80)
    await h.settle()
    h.clock.advance(TransmissionParameters().exchange_lifetime + 1)
    h.request(Code.GET, "count", mid=80)
    await h.settle()
    assert [m.payload for m in h.take()] == [b"1", b"2"]


async def test_dedup_bounded_per_peer() -> None:
    h = Harness(CoapServerConfig(dedup_per_peer=4, dedup_total=6))
    h.server.add_resource("count", Counting())
    for mid in range(10):
        h.request(Code.GET, "count", mid=mid)
    h.request(Code.GET, "count", mid=1, peer=("192.0.2.9", 1))
    h.request(Code.GET, "count", mid=2, peer=("192.0.2.9", 1))
    h.request(Code.GET, "count", mid=3, peer=("192.0.2.9", 1))
    await h.settle()
    assert h.server.stats["dedup_entries"] <= 6
    assert h.server.counters["dedup_evicted"] >= 6
    # mid 0 was evicted: processed again, not replayed.
    h.request(Code.GET, "count", mid=0)
    await h.settle()
    assert h.take()[-1].payload == b"14"


@pytest.mark.parametrize("option", [1, 5, 9, 2049])  # If-Match, If-None-Match, unknown odd
async def test_unknown_critical_option_is_402(h: Harness, option: int) -> None:
    reply = await h.exchange(Code.GET, "count", options=[(option, b"x")])
    assert reply.code == Code.BAD_OPTION
    assert reply.type is ACK
    assert h.server.counters["bad_option"] == 1


async def test_unknown_elective_option_is_ignored(h: Harness) -> None:
    reply = await h.exchange(Code.GET, "count", options=[(100, b"x"), (2048, b"")])
    assert reply.code == Code.CONTENT


async def test_bad_length_and_repeats(h: Harness) -> None:
    # Accept (critical) with 3 bytes: unrecognized -> 4.02 (§5.4.3).
    reply = await h.exchange(Code.GET, "count", options=[(OptionNumber.ACCEPT, b"\x00\x00\x00")])
    assert reply.code == Code.BAD_OPTION
    # Uri-Host (critical) twice: the second is unrecognized -> 4.02 (§5.4.5).
    reply = await h.exchange(
        Code.GET, "count", options=[(OptionNumber.URI_HOST, "a"), (OptionNumber.URI_HOST, "b")]
    )
    assert reply.code == Code.BAD_OPTION
    # Max-Age (elective) with 5 bytes, Content-Format twice: ignored.
    reply = await h.exchange(
        Code.PUT,
        "count",
        options=[
            (OptionNumber.MAX_AGE, b"\x00" * 5),
            (OptionNumber.CONTENT_FORMAT, 0),
            (OptionNumber.CONTENT_FORMAT, 50),
        ],
        payload=b"abc",
    )
    assert reply.code == Code.CHANGED


async def test_not_found_and_method_not_allowed(h: Harness) -> None:
    assert (await h.exchange(Code.GET, "nope")).code == Code.NOT_FOUND
    assert (await h.exchange(Code.GET, "")).code == Code.NOT_FOUND
    assert (await h.exchange(Code.DELETE, "count")).code == Code.METHOD_NOT_ALLOWED
    assert (await h.exchange(Code.POST, "count")).code == Code.METHOD_NOT_ALLOWED
    assert (await h.exchange(31, "count")).code == Code.METHOD_NOT_ALLOWED


async def test_unsupported_content_format() -> None:
    h = Harness()

    class OnlyJson(Counting):
        accepted_formats = frozenset({ContentFormat.JSON})

    h.server.add_resource("j", OnlyJson())
    reply = await h.exchange(
        Code.PUT, "j", options=[(OptionNumber.CONTENT_FORMAT, 0)], payload=b"x"
    )
    assert reply.code == Code.UNSUPPORTED_CONTENT_FORMAT
    reply = await h.exchange(
        Code.PUT, "j", options=[(OptionNumber.CONTENT_FORMAT, 50)], payload=b"{}"
    )
    assert reply.code == Code.CHANGED


async def test_handler_exception_is_500_and_server_continues(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    @h.server.resource("boom", methods=("GET", "POST"))
    async def boom(request: Request) -> Response:
        if request.method == Code.POST:
            return "not a response"  # type: ignore[return-value]
        raise RuntimeError("kaput")

    reply = await h.exchange(Code.GET, "boom")
    assert reply.code == Code.INTERNAL_SERVER_ERROR
    assert b"kaput" not in reply.payload
    assert (await h.exchange(Code.POST, "boom")).code == Code.INTERNAL_SERVER_ERROR
    assert (await h.exchange(Code.GET, "count")).code == Code.CONTENT
    assert h.server.counters["handler_errors"] == 2
    assert "kaput" in caplog.text


async def test_error_response_from_handler(h: Harness) -> None:
    @h.server.resource("teapot")
    async def teapot(request: Request) -> Response:
        raise ErrorResponse(Code.FORBIDDEN, "no tea")

    reply = await h.exchange(Code.GET, "teapot")
    assert reply.code == Code.FORBIDDEN
    assert reply.payload == b"no tea"
    assert reply.content_format is None  # diagnostic payload (§5.5.2)


async def test_ping_gets_reset(h: Harness) -> None:
    h.receive(Message(CON, 0, 0x4242).encode(), PEER)
    [reply] = h.take()
    assert reply.type is RST and reply.message_id == 0x4242 and reply.is_empty


async def test_malformed_con_gets_reset_others_ignored(h: Harness) -> None:
    h.receive(b"\x4f\x01\x12\x34", PEER)  # TKL 15 in a CON
    [reply] = h.take()
    assert reply.type is RST and reply.message_id == 0x1234
    h.receive(b"\x5f\x01\x12\x35", PEER)  # the same in a NON
    h.receive(b"\x6f\x45\x12\x36", PEER)  # and in an ACK
    h.receive(b"\x80\x01\x12\x37", PEER)  # version 2: silently ignored
    h.receive(b"\x40", PEER)
    assert h.take() == []
    assert h.server.counters["decode_errors"] == 5
    assert h.server.counters["rst_sent"] == 1


async def test_unsolicited_messages(h: Harness) -> None:
    h.receive(Message(ACK, 0, 5).encode(), PEER)
    h.receive(Message(RST, 0, 6).encode(), PEER)
    h.receive(Message(NON, Code.CONTENT, 7, b"t").encode(), PEER)
    assert h.take() == []
    h.receive(Message(CON, Code.CONTENT, 8, b"t").encode(), PEER)
    [reply] = h.take()
    assert reply.type is RST and reply.message_id == 8
    assert h.server.counters["unmatched_ack"] == 1
    assert h.server.counters["unmatched_rst"] == 1


async def test_block2_option_with_szx7_is_400(h: Harness) -> None:
    reply = await h.exchange(Code.GET, "count", options=[(OptionNumber.BLOCK2, b"\x07")])
    assert reply.code == Code.BAD_REQUEST


async def test_proxy_uri_is_505(h: Harness) -> None:
    reply = await h.exchange(
        Code.GET, "", options=[(OptionNumber.PROXY_URI, "coap://example.com/x")]
    )
    assert reply.code == Code.PROXYING_NOT_SUPPORTED


async def test_separate_response_and_retransmission() -> None:
    h = Harness()
    slow = Slow()
    h.server.add_resource("slow", slow)
    req = h.request(Code.GET, "slow", token=b"s")
    await h.settle()
    assert h.take() == []
    h.clock.advance(0.5)
    [ack] = h.take()
    assert ack.type is ACK and ack.is_empty and ack.message_id == req.message_id
    # A retransmitted request while the handler works: the Empty ACK again.
    h.request(Code.GET, "slow", mid=req.message_id, token=b"s")
    [again] = h.take()
    assert again == ack
    slow.release.set()
    await h.settle()
    [response] = h.take()
    assert response.type is CON
    assert response.token == b"s" and response.payload == b"late"
    assert response.message_id != req.message_id
    # Not acknowledged: retransmitted with back-off, then given up.
    h.clock.advance(3.0)
    h.clock.advance(6.0)
    assert [m.message_id for m in h.take()] == [response.message_id] * 2
    h.receive(Message(ACK, 0, response.message_id).encode(), PEER)
    h.clock.advance(100)
    assert h.take() == []
    assert h.server.counters["retransmissions"] == 2
    assert h.server.stats["pending_con"] == 0
    # The request's duplicate now gets the cached Empty ACK.
    h.request(Code.GET, "slow", mid=req.message_id, token=b"s")
    assert h.take() == [ack]


async def test_separate_response_times_out() -> None:
    h = Harness()
    slow = Slow()
    h.server.add_resource("slow", slow)
    h.request(Code.GET, "slow")
    h.clock.advance(0.5)  # the handler still waits: an empty ACK
    slow.release.set()
    await h.settle()
    sent = h.take()
    assert [m.type for m in sent] == [ACK, CON]
    h.clock.advance(1000)
    assert len(h.take()) == 4  # MAX_RETRANSMIT
    assert h.server.counters["con_timeouts"] == 1


async def test_a_handler_that_does_not_wait_answers_piggybacked() -> None:
    """The handler's first step runs at once: no task, no separate response."""
    h = Harness()
    slow = Slow()
    slow.release.set()
    h.server.add_resource("slow", slow)
    h.request(Code.GET, "slow")
    [reply] = h.take()  # before the event loop ran at all
    assert reply.type is ACK and reply.payload == b"late"
    h.clock.advance(1000)
    assert h.take() == []
    assert h.server.counters["separate_responses"] == 0


async def test_a_waiting_handler_is_cancelled_on_close() -> None:
    h = Harness()
    slow = Slow()
    h.server.add_resource("slow", slow)
    h.request(Code.GET, "slow")
    await h.settle()
    assert len(h.server._tasks) == 1
    h.server.close()
    await h.server.wait_closed()
    assert h.server._tasks == set()
    assert h.take() == []


async def test_non_request_no_separate_ack() -> None:
    h = Harness()
    slow = Slow()
    h.server.add_resource("slow", slow)
    h.request(Code.GET, "slow", type=NON)
    h.clock.advance(1.0)
    slow.release.set()
    await h.settle()
    [reply] = h.take()
    assert reply.type is NON and reply.payload == b"late"


async def test_handler_limit_gives_503() -> None:
    h = Harness(CoapServerConfig(max_handler_tasks=1))
    h.server.add_resource("slow", Slow())
    h.request(Code.GET, "slow")
    reply = await h.exchange(Code.GET, "slow")
    assert reply.code == Code.SERVICE_UNAVAILABLE
    assert reply.max_age == 1
    h.server.close()
    await h.server.wait_closed()


async def test_no_response_option(h: Harness) -> None:
    h.request(Code.GET, "count", type=NON, options=[(OptionNumber.NO_RESPONSE, 2)])
    await h.settle()
    assert h.take() == []
    # 4.xx not suppressed by "not interested in 2.xx".
    reply = await h.exchange(Code.GET, "missing", type=NON, options=[(OptionNumber.NO_RESPONSE, 2)])
    assert reply.code == Code.NOT_FOUND
    # A CON whose response is suppressed still gets an Empty ACK.
    req = h.request(Code.GET, "count", options=[(OptionNumber.NO_RESPONSE, 2)])
    await h.settle()
    [ack] = h.take()
    assert ack.type is ACK and ack.is_empty and ack.message_id == req.message_id


async def test_well_known_core(h: Harness) -> None:
    h.server.add_resource("sensors/temp", Big())

    @h.server.resource("fn", rt="x.y z", if_="core.s", ct=(0, 50), observable=True)
    async def fn(request: Request) -> Response:
        return Response()

    reply = await h.exchange(Code.GET, ".well-known/core")
    assert reply.code == Code.CONTENT
    assert reply.content_format == ContentFormat.LINK_FORMAT
    links = reply.payload.decode().split(",")
    assert '</count>;rt="counter";title="A counting resource"' in links
    assert "</sensors/temp>" in links
    assert '</fn>;rt="x.y z";if="core.s";ct="0 50";obs' in links
    for query, expected in [
        ("rt=counter", ["</count>"]),
        ("rt=z", ["</fn>"]),
        ("rt=x*", ["</fn>"]),
        ("href=/sensors*", ["</sensors/temp>"]),
        ("ct=50", ["</fn>"]),
        ("obs", ["</fn>"]),
        ("title=A*", ["</count>"]),
        ("if=nothing", []),
    ]:
        reply = await h.exchange(
            Code.GET, ".well-known/core", options=[(OptionNumber.URI_QUERY, query)]
        )
        got = [link.split(";")[0] for link in reply.payload.decode().split(",") if link]
        assert got == expected, query
    assert (await h.exchange(Code.POST, ".well-known/core")).code == Code.METHOD_NOT_ALLOWED


async def test_block2_transfer() -> None:
    h = Harness()
    h.server.add_resource("big", Big())
    body = Big.body
    first = await h.exchange(Code.GET, "big")
    assert first.block2 == BlockOption(0, True, 6)
    assert first.payload == body[:1024]
    assert first.size2 == 2500
    etag = first.etag
    assert etag
    got = bytearray(first.payload)
    for num in (1, 2):
        part = await h.exchange(
            Code.GET, "big", options=[(OptionNumber.BLOCK2, BlockOption(num, False, 6).encode())]
        )
        assert part.block2 == BlockOption(num, num < 2, 6)
        assert part.etag == etag
        got += part.payload
    assert got == body
    # The client asks for smaller blocks.
    small = await h.exchange(
        Code.GET, "big", options=[(OptionNumber.BLOCK2, BlockOption(3, False, 2).encode())]
    )
    assert small.block2 == BlockOption(3, True, 2)
    assert small.payload == body[192:256]
    # Beyond the end.
    beyond = await h.exchange(
        Code.GET, "big", options=[(OptionNumber.BLOCK2, BlockOption(3, False, 6).encode())]
    )
    assert beyond.code == Code.BAD_OPTION
    # A small representation with an explicit Block2 request says M=0.
    h.server.add_resource("count", Counting())
    one = await h.exchange(
        Code.GET, "count", options=[(OptionNumber.BLOCK2, BlockOption(0, False, 6).encode())]
    )
    assert one.block2 == BlockOption(0, False, 6)
    assert one.payload == b"1"


async def test_block2_server_block_size_and_larger_client_szx() -> None:
    h = Harness(CoapServerConfig(block_size=256))
    h.server.add_resource("big", Big())
    first = await h.exchange(Code.GET, "big")
    assert first.block2 == BlockOption(0, True, 4)
    # Client asks for 1024-byte block 1; the server answers at its size with
    # the block holding that offset (RFC 7959 §2.4).
    part = await h.exchange(
        Code.GET, "big", options=[(OptionNumber.BLOCK2, BlockOption(1, False, 6).encode())]
    )
    assert part.block2 == BlockOption(4, True, 4)
    assert part.payload == Big.body[1024:1280]


async def test_block1_transfer(h: Harness) -> None:
    body = bytes(range(200))
    replies = []
    for num in range(4):
        chunk = body[num * 64 : (num + 1) * 64]
        opts: list[tuple[int, bytes | int]] = [
            (OptionNumber.BLOCK1, BlockOption(num, num < 3, 2).encode())
        ]
        if num == 0:
            opts.append((OptionNumber.SIZE1, len(body)))
        replies.append(await h.exchange(Code.PUT, "count", options=opts, payload=chunk))
    assert [r.code for r in replies] == [Code.CONTINUE] * 3 + [Code.CHANGED]
    assert [r.block1 for r in replies] == [
        BlockOption(0, True, 2),
        BlockOption(1, True, 2),
        BlockOption(2, True, 2),
        BlockOption(3, False, 2),
    ]
    assert replies[-1].payload == b"200"
    assert h.server.resources["count"].body == body  # type: ignore[attr-defined]
    assert h.server.stats["block1_buffers"] == 0


async def test_block1_errors() -> None:
    h = Harness(CoapServerConfig(max_body_size=100))
    h.server.add_resource("count", Counting())

    def block(num: int, more: bool, szx: int = 2) -> tuple[int, bytes]:
        return (OptionNumber.BLOCK1, BlockOption(num, more, szx).encode())

    # A block out of the blue.
    reply = await h.exchange(Code.PUT, "count", options=[block(1, True)], payload=bytes(64))
    assert reply.code == Code.REQUEST_ENTITY_INCOMPLETE
    # A gap.
    await h.exchange(Code.PUT, "count", options=[block(0, True)], payload=bytes(64))
    reply = await h.exchange(Code.PUT, "count", options=[block(2, False)], payload=b"x")
    assert reply.code == Code.REQUEST_ENTITY_INCOMPLETE
    # Announced too large.
    reply = await h.exchange(
        Code.PUT, "count", options=[block(0, True), (OptionNumber.SIZE1, 5000)], payload=bytes(64)
    )
    assert reply.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert reply.size1 == 100
    # Grows too large.
    await h.exchange(Code.PUT, "count", options=[block(0, True)], payload=bytes(64))
    reply = await h.exchange(Code.PUT, "count", options=[block(1, True)], payload=bytes(64))
    assert reply.code == Code.REQUEST_ENTITY_TOO_LARGE
    # Non-final block of the wrong size.
    reply = await h.exchange(Code.PUT, "count", options=[block(0, True)], payload=bytes(10))
    assert reply.code == Code.BAD_REQUEST
    # Expired between blocks.
    await h.exchange(Code.PUT, "count", options=[block(0, True)], payload=bytes(64))
    h.clock.advance(1000)
    reply = await h.exchange(Code.PUT, "count", options=[block(1, False)], payload=b"x")
    assert reply.code == Code.REQUEST_ENTITY_INCOMPLETE


async def test_block1_buffers_bounded() -> None:
    h = Harness(CoapServerConfig(block1_per_peer=2, block1_total=3))
    for i in range(4):
        h.server.add_resource(f"r{i}", Counting())
    for i in range(4):
        await h.exchange(
            Code.PUT,
            f"r{i}",
            options=[(OptionNumber.BLOCK1, BlockOption(0, True, 0).encode())],
            payload=bytes(16),
        )
    assert h.server.stats["block1_buffers"] == 2
    for i in range(2):
        await h.exchange(
            Code.PUT,
            f"r{i}",
            options=[(OptionNumber.BLOCK1, BlockOption(0, True, 0).encode())],
            payload=bytes(16),
            peer=("192.0.2.50", 1),
        )
    assert h.server.stats["block1_buffers"] == 3
    assert h.server.counters["block1_evicted"] == 3


async def test_decorators_and_function_resources() -> None:
    server = CoapServer()

    @server.resource("cls", observable=True, title="Class")
    class Cls(Resource):
        async def render_get(self, request: Request) -> Response:
            return Response(Code.CONTENT, b"cls")

    @server.get("fn")
    async def get_fn(request: Request) -> Response:
        return Response(Code.CONTENT, b"get")

    @server.put("fn")
    async def put_fn(request: Request) -> Response:
        return Response(Code.CHANGED)

    @server.post("fn")
    async def post_fn(request: Request) -> Response:
        return Response(Code.CREATED)

    @server.delete("fn")
    async def delete_fn(request: Request) -> Response:
        return Response(Code.DELETED)

    instance = Counting()
    server.resource("inst", rt="r")(instance)
    assert isinstance(server.resources["cls"], Cls)
    assert server.resources["cls"].observable and server.resources["cls"].title == "Class"
    fn = server.resources["fn"]
    assert isinstance(fn, FunctionResource)
    assert fn.methods() == {Code.GET, Code.PUT, Code.POST, Code.DELETE}
    assert server.resources["inst"] is instance and instance.rt == "r"
    assert Counting().methods() == {Code.GET, Code.PUT}
    with pytest.raises(ConfigurationError):
        server.resource("x", methods=("BREW",))(get_fn)
    with pytest.raises(ConfigurationError):
        server.resource("x")(42)
    with pytest.raises(ConfigurationError):
        server.add_resource("/.well-known/core", Counting())
    server.remove_resource("inst")
    server.remove_resource("inst")
    assert "inst" not in server.resources


async def test_resource_default_render_methods() -> None:
    h = Harness()
    h.server.add_resource("r", Counting())
    for code in (Code.FETCH, Code.PATCH, Code.IPATCH):
        assert (await h.exchange(code, "r")).code == Code.METHOD_NOT_ALLOWED

    class Everything(Resource):
        pass

    res = Everything()
    request = Request(Message(code=Code.GET), PEER, b"")
    for name in ("get", "post", "put", "delete", "fetch", "patch", "ipatch"):
        with pytest.raises(ErrorResponse):
            await getattr(res, f"render_{name}")(request)
    with pytest.raises(ErrorResponse):
        await res.render(Request(Message(code=30), PEER, b""))
    with pytest.raises(ErrorResponse):
        await FunctionResource().render(request)


def test_config_validation() -> None:
    with pytest.raises(ConfigurationError):
        CoapServerConfig(block_size=100)
    with pytest.raises(ConfigurationError):
        CoapServerConfig(block_size=2048)
    with pytest.raises(ConfigurationError):
        CoapServerConfig(separate_response_after=2.0)
    with pytest.raises(ConfigurationError):
        CoapServerConfig(dedup_total=0)
    with pytest.raises(ConfigurationError):
        TransmissionParameters(ack_timeout=0)
    with pytest.raises(ConfigurationError):
        TransmissionParameters(ack_random_factor=0.5)
    with pytest.raises(ConfigurationError):
        TransmissionParameters(max_retransmit=-1)
    with pytest.raises(ConfigurationError):
        TransmissionParameters(max_latency=-1)
    params = TransmissionParameters()
    assert params.max_transmit_span == 45
    assert params.max_transmit_wait == 93
    assert params.exchange_lifetime == 247
    assert params.non_lifetime == 145


async def test_send_errors_counted_and_detach() -> None:
    server = CoapServer()
    server.add_resource("count", Counting())

    def failing(data: bytes, peer: object) -> None:
        raise OSError("unreachable")

    receive = server.attach(failing)
    receive(Message(CON, Code.GET, 1, b"", [(11, b"count")]).encode(), PEER)
    for _ in range(5):
        await asyncio.sleep(0)
    assert server.counters["send_errors"] == 1
    receive.detach()
    receive.detach()
    receive(Message(CON, 0, 2).encode(), PEER)
    assert server.counters["send_no_transport"] == 1
    server.close()
    server.close()
    receive(Message(CON, 0, 3).encode(), PEER)
    assert server.counters["received"] == 2
    await server.wait_closed()
