"""The seed system's light resource (ESP-IDF CoAP example semantics)."""

from __future__ import annotations

import pytest
from coap_harness import Harness

from dtlsfast.coap import Code, ContentFormat, LightResource, MessageType, OptionNumber

CF = OptionNumber.CONTENT_FORMAT
ACCEPT = OptionNumber.ACCEPT


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.server.add_resource("light", LightResource())
    return harness


def light(h: Harness) -> LightResource:
    res = h.server.resources["light"]
    assert isinstance(res, LightResource)
    return res


async def test_get_text_and_json(h: Harness) -> None:
    reply = await h.exchange(Code.GET, "light")
    assert (reply.code, reply.payload, reply.content_format) == (Code.CONTENT, b"off", 0)
    reply = await h.exchange(Code.GET, "light", options=[(ACCEPT, 0)])
    assert reply.payload == b"off"
    reply = await h.exchange(Code.GET, "light", options=[(ACCEPT, 50)])
    assert reply.payload == b'{"on": false}' and reply.content_format == ContentFormat.JSON
    reply = await h.exchange(Code.GET, "light", options=[(ACCEPT, 41)])
    assert reply.code == Code.NOT_ACCEPTABLE


@pytest.mark.parametrize(
    ("payload", "start", "expected"),
    [
        (b"on", False, True),
        (b"off", True, False),
        (b"1", False, True),
        (b"0", True, False),
        (b"toggle", False, True),
        (b"toggle", True, False),
        (b" ON\n", False, True),
    ],
)
async def test_put_text(h: Harness, payload: bytes, start: bool, expected: bool) -> None:
    light(h).on = start
    reply = await h.exchange(Code.PUT, "light", payload=payload)
    assert reply.code == Code.CHANGED
    assert light(h).on is expected
    reply = await h.exchange(Code.PUT, "light", options=[(CF, 0)], payload=payload)
    assert reply.code == Code.CHANGED


@pytest.mark.parametrize(
    ("payload", "expected"), [(b'{"on": true}', True), (b'{"on":false}', False)]
)
async def test_put_json(h: Harness, payload: bytes, expected: bool) -> None:
    light(h).on = not expected
    reply = await h.exchange(Code.PUT, "light", options=[(CF, 50)], payload=payload)
    assert reply.code == Code.CHANGED
    assert light(h).on is expected


@pytest.mark.parametrize(
    ("cf", "payload"),
    [
        (None, b""),
        (None, b"blink"),
        (0, b"\xff\xfe"),
        (0, b'{"on": true}'),
        (50, b"on"),
        (50, b'{"on": 1}'),
        (50, b"[true]"),
        (50, b"\xff"),
    ],
)
async def test_put_bad_payload_is_400(h: Harness, cf: int | None, payload: bytes) -> None:
    opts = [] if cf is None else [(CF, cf)]
    reply = await h.exchange(Code.PUT, "light", options=opts, payload=payload)
    assert reply.code == Code.BAD_REQUEST
    assert reply.payload  # a diagnostic
    assert light(h).on is False


async def test_put_other_format_is_415(h: Harness) -> None:
    reply = await h.exchange(Code.PUT, "light", options=[(CF, 42)], payload=b"on")
    assert reply.code == Code.UNSUPPORTED_CONTENT_FORMAT


async def test_other_methods_405(h: Harness) -> None:
    for code in (Code.POST, Code.DELETE):
        assert (await h.exchange(code, "light")).code == Code.METHOD_NOT_ALLOWED


async def test_every_successful_put_notifies(h: Harness) -> None:
    """As the seed does: an observer that got ``on`` and then sees three PUTs
    ``on``, ``off``, ``on`` has four values; a refused PUT notifies nothing."""
    h.request(Code.GET, "light", token=b"o", options=[(OptionNumber.OBSERVE, 0)])
    await h.settle()
    h.take()
    h.request(Code.PUT, "light", payload=b"on")
    await h.settle()
    h.take()
    for value in (b"on", b"off", b"on"):
        h.request(Code.PUT, "light", payload=value)
        await h.settle()
    h.request(Code.PUT, "light", payload=b"dim")  # 4.00: no notification
    await h.settle()
    replies = h.take()
    notes = [m for m in replies if m.token == b"o"]
    assert [n.payload for n in notes] == [b"on", b"off", b"on"]
    assert all(n.type is MessageType.NON for n in notes)


async def test_listed_in_well_known_core(h: Harness) -> None:
    reply = await h.exchange(Code.GET, ".well-known/core")
    assert reply.payload == b'</light>;rt="light";if="core.a";ct="0 50";obs;title="Light"'
