"""Published responses: plain Confirmable GETs answered below Python
(RFC 7252 §5.2.1). The answer must be byte for byte what the CoAP server
itself would send; every other request must still reach the server; the
published bytes follow the resource's changes; Rust and the pure twin agree."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from coap_harness import PEER, Harness
from hypothesis import given, settings
from hypothesis import strategies as st

import dtlsfast
from dtlsfast import _core, pure
from dtlsfast.coap import CoapClient, CoapServer, LightResource
from dtlsfast.coap.dtls import coaps_transport_factory, listen_dtls
from dtlsfast.coap.message import Code, Message, MessageType, OptionNumber
from dtlsfast.pure.coap_answer import CoapAnswers

PSK = ("CoAP", "esp32c3_key")


def _published(server: CoapServer) -> dict[str, bytes | None]:
    got: dict[str, bytes | None] = {}
    server.add_publisher(lambda path, response: got.__setitem__(path, response))
    return got


@pytest.mark.parametrize("on", [False, True])
async def test_the_published_answer_is_what_the_server_sends(on: bool) -> None:
    # The handler's answer, from a server with no publisher (which would
    # answer from the published bytes itself).
    h = Harness()
    h.server.add_resource("light", LightResource(on=on))
    publishing = CoapServer()
    publishing.add_resource("light", LightResource(on=on))
    published = _published(publishing)
    answers = CoapAnswers()
    answers.publish(b"light", published["light"])
    for token in (b"", b"\x01", bytes(range(8))):
        request = h.request(Code.GET, "light", token=token)
        await h.settle()
        (slow,) = h.raw
        h.raw.clear()
        h.take()
        assert answers.answer(request.encode()) == slow


async def test_the_published_bytes_follow_the_resource() -> None:
    h = Harness()
    light = h.server.add_resource("light", LightResource())
    published = _published(h.server)
    assert published["light"] is not None and published["light"].endswith(b"\xffoff")
    reply = await h.exchange(Code.PUT, "light", payload=b"on")
    assert reply.code == Code.CHANGED
    assert published["light"] is not None and published["light"].endswith(b"\xffon")
    assert isinstance(light, LightResource) and light.on
    h.server.remove_resource("light")
    assert published["light"] is None
    big = LightResource()
    big.published_representation = lambda: None  # type: ignore[method-assign]
    h.server.add_resource("dark", big)
    assert published["dark"] is None


async def test_published_gets_reaching_python_keep_no_exchange_state() -> None:
    # Before a session joins the table its GETs reach Python: they are
    # answered from the same published bytes, and, the representation being
    # idempotent (RFC 7252 §4.5), without a deduplication entry.
    h = Harness()
    h.server.add_resource("light", LightResource())
    published = _published(h.server)
    answers = CoapAnswers()
    answers.publish(b"light", published["light"])
    request = h.request(Code.GET, "light", token=b"\x07")
    await h.settle()
    h.receive(request.encode(), PEER)  # a retransmission
    await h.settle()
    first, again = h.raw
    assert first == again == answers.answer(request.encode())
    assert h.server.counters["published_answered"] == 2
    assert h.server.stats["dedup_entries"] == 0
    h.raw.clear()
    h.take()
    # Anything else is deduplicated and handled as before.
    put = await h.exchange(Code.PUT, "light", payload=b"on")
    assert put.code == Code.CHANGED and h.server.stats["dedup_entries"] == 1
    json_reply = await h.exchange(Code.GET, "light", options=[(OptionNumber.ACCEPT, 50)])
    assert json_reply.payload == b'{"on": true}' and h.server.stats["dedup_entries"] == 2
    assert h.server.counters["published_answered"] == 2
    # Without a publisher, plain GETs are deduplicated like everything else.
    plain = Harness()
    plain.server.add_resource("light", LightResource())
    assert (await plain.exchange(Code.GET, "light")).payload == b"off"
    assert plain.server.stats["dedup_entries"] == 1


requests = st.one_of(
    st.binary(max_size=40),
    st.builds(
        lambda mid, token, segs, extra: Message(
            MessageType.CON,
            Code.GET,
            mid,
            token,
            [(OptionNumber.URI_PATH, s) for s in segs] + extra,
        ).encode(),
        st.integers(0, 0xFFFF),
        st.binary(max_size=8),
        st.lists(st.sampled_from([b"light", b"a", b"b", b"", b"..", b"x" * 20]), max_size=3),
        st.lists(st.tuples(st.sampled_from([6, 17, 15, 60]), st.binary(max_size=3)), max_size=1),
    ),
)


def _answers(core: Any) -> Any:
    table = core.SessionTable(1)
    cipher = core.RecordCipher("AES_128_CCM_8", bytes(16), bytes(4))
    table.install(1, cipher, 1, core.ReplayWindow(64), cipher, 1, 1)
    table.publish(b"light", b"\x45\xc0\xffoff")
    table.publish(b"a/b", b"\x45\xff" + b"z" * 300)
    return table


@settings(max_examples=300, deadline=None)
@given(st.lists(requests, min_size=1, max_size=5))
def test_rust_and_pure_answer_alike(plaintexts: list[bytes]) -> None:
    rust, python = _answers(_core), _answers(pure)
    for plaintext in plaintexts:
        record = rust.seal(1, 23, plaintext)
        assert python.seal(1, 23, plaintext) == record
        assert rust.open_datagram(1, record) == python.open_datagram(1, record)
    assert rust.coap_answered == python.coap_answered


async def test_coaps_gets_are_answered_in_the_core_and_the_rest_in_python() -> None:
    coap = CoapServer()
    light = coap.add_resource("light", LightResource())
    server = await listen_dtls(coap, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"})
    client = CoapClient(transport_factories={"coaps": coaps_transport_factory(PSK)})
    uri = f"coaps://127.0.0.1:{server.port}/light"
    try:
        # In the table since its handshake: the first GET is answered there too.
        assert (await client.get(uri)).payload == b"off"
        assert server.counters["coap_answered_in_table"] == 1
        before = server.counters["coap_answered_in_table"]
        for _ in range(5):
            assert (await client.get(uri)).payload == b"off"
        assert server.counters["coap_answered_in_table"] == before + 5
        assert (await client.put(uri, b"on")).code == Code.CHANGED  # Python
        assert isinstance(light, LightResource) and light.on
        assert (await client.get(uri)).payload == b"on"  # republished
        json_reply = await client.get(uri, accept=50)
        assert json_reply.payload == b'{"on": true}'  # Accept: Python's business
        assert server.counters["coap_answered_in_table"] == before + 6
        assert coap.counters["received"] == 2  # the PUT and the Accept GET
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
        coap.close()


async def test_answer_in_core_can_be_turned_off() -> None:
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    server = await listen_dtls(
        coap, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}, answer_in_core=False
    )
    try:
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
        for mid in range(3):
            request = Message(MessageType.CON, Code.GET, mid, os.urandom(2))
            request.add_option(OptionNumber.URI_PATH, "light")
            await session.send(request.encode())
            reply = Message.decode(await asyncio.wait_for(session.recv(), 5))
            assert reply.payload == b"off" and reply.message_id == mid
        assert server.counters["coap_answered_in_table"] == 0
        assert coap.counters["received"] == 3
        await session.close()
    finally:
        server.close()
        await server.wait_closed()
        coap.close()
