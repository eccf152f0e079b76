"""RFC 7641 Observe in the server core, driven in memory."""

from __future__ import annotations

import pytest
from coap_harness import PEER, Harness

from dtlsfast.coap import (
    BlockOption,
    CoapServerConfig,
    Code,
    ContentFormat,
    ErrorResponse,
    LightResource,
    Message,
    MessageType,
    OptionNumber,
    Request,
    Resource,
    Response,
)
from dtlsfast.coap.observe import REORDER_WINDOW, ObserveSequence, is_fresh

CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST
OBSERVE = OptionNumber.OBSERVE


class Value(Resource):
    observable = True

    def __init__(self) -> None:
        self.value = b"0"
        self.fail = False
        self.renders = 0

    async def render_get(self, request: Request) -> Response:
        self.renders += 1
        if self.fail:
            raise ErrorResponse(Code.SERVICE_UNAVAILABLE, "gone dark")
        return Response(Code.CONTENT, self.value, ContentFormat.TEXT_PLAIN)

    def set(self, value: bytes) -> None:
        self.value = value
        self.notify()


def make(config: CoapServerConfig | None = None) -> tuple[Harness, Value]:
    h = Harness(config)
    res = Value()
    h.server.add_resource("v", res)
    return h, res


async def register(h: Harness, token: bytes = b"ob", peer: object = PEER) -> Message:
    h.request(Code.GET, "v", token=token, options=[(OBSERVE, 0)], peer=peer)  # type: ignore[arg-type]
    await h.settle()
    [reply] = h.take()
    return reply


async def test_register_notify_deregister() -> None:
    h, res = make()
    reply = await register(h)
    assert reply.code == Code.CONTENT and reply.observe is not None
    assert len(h.server.observers("v")) == 1
    seqs = [reply.observe]
    for value in (b"1", b"2"):
        res.set(value)
        await h.settle()
        [note] = h.take()
        assert note.type is NON and note.token == b"ob" and note.payload == value
        assert note.content_format == 0
        seqs.append(note.observe)
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    # Deregister with Observe=1 (§3.6): a normal response, no Observe option.
    h.request(Code.GET, "v", token=b"ob", options=[(OBSERVE, 1)])
    await h.settle()
    [reply] = h.take()
    assert reply.code == Code.CONTENT and reply.observe is None
    assert h.server.observers() == []
    res.set(b"3")
    await h.settle()
    assert h.take() == []


async def test_observe_on_non_observable_is_plain_get() -> None:
    h = Harness()

    class Plain(Value):
        observable = False

    h.server.add_resource("v", Plain())
    reply = await register(h)
    assert reply.code == Code.CONTENT and reply.observe is None
    assert h.server.observers() == []


async def test_reset_to_non_notification_deregisters() -> None:
    h, res = make()
    await register(h)
    res.set(b"1")
    await h.settle()
    [note] = h.take()
    h.receive(Message(RST, 0, note.message_id).encode(), PEER)
    assert h.server.observers() == []
    assert h.server.counters["observers_reset"] == 1


async def test_con_notifications_ack_and_timeout() -> None:
    h, res = make(CoapServerConfig(notify_confirmable=True))
    await register(h)
    res.set(b"1")
    await h.settle()
    [note] = h.take()
    assert note.type is CON
    h.receive(Message(ACK, 0, note.message_id).encode(), PEER)
    assert len(h.server.observers()) == 1
    res.set(b"2")
    await h.settle()
    [note] = h.take()
    h.clock.advance(1000)  # never acknowledged: 4 retransmissions, then removed
    assert len(h.take()) == 4
    assert h.server.observers() == []
    assert h.server.counters["observers_timed_out"] == 1


async def test_reset_to_con_notification_deregisters() -> None:
    h, res = make(CoapServerConfig(notify_confirmable=True))
    await register(h)
    res.set(b"1")
    await h.settle()
    [note] = h.take()
    h.receive(Message(RST, 0, note.message_id).encode(), PEER)
    assert h.server.observers() == []


async def test_new_state_replaces_outstanding_con() -> None:
    """RFC 7641 §4.5.2: one CON notification in flight per observer."""
    h, res = make(CoapServerConfig(notify_confirmable=True))
    await register(h)
    res.set(b"1")
    await h.settle()
    [first] = h.take()
    res.set(b"2")
    await h.settle()
    [second] = h.take()
    assert second.type is CON and second.payload == b"2"
    assert second.message_id != first.message_id
    assert h.server.stats["pending_con"] == 1
    h.clock.advance(3.1)  # the retransmission carries the newest state
    [again] = h.take()
    assert again == second
    h.receive(Message(ACK, 0, second.message_id).encode(), PEER)
    assert h.server.stats["pending_con"] == 0
    assert len(h.server.observers()) == 1


async def test_periodic_con_notification() -> None:
    h, res = make(CoapServerConfig(notify_con_interval=60.0))
    await register(h)
    res.set(b"1")
    await h.settle()
    assert h.take()[0].type is NON
    h.clock.advance(61)
    res.set(b"2")
    await h.settle()
    [note] = h.take()
    assert note.type is CON  # at least one CON per interval (§4.5)
    h.receive(Message(ACK, 0, note.message_id).encode(), PEER)
    res.set(b"3")
    await h.settle()
    assert h.take()[0].type is NON
    # While a CON is outstanding, the next notification is CON as well.
    h.clock.advance(61)
    res.set(b"4")
    await h.settle()
    assert h.take()[0].type is CON
    res.set(b"5")
    await h.settle()
    assert h.take()[0].type is CON


async def test_error_notification_ends_observation() -> None:
    h, res = make()
    await register(h)
    res.fail = True
    res.notify()
    await h.settle()
    [note] = h.take()
    assert note.code == Code.SERVICE_UNAVAILABLE and note.observe is None
    assert h.server.observers() == []


async def test_removed_resource_notifies_404() -> None:
    h, _ = make()
    await register(h)
    h.server.remove_resource("v")
    await h.settle()
    [note] = h.take()
    assert note.code == Code.NOT_FOUND and note.token == b"ob"
    assert h.server.observers() == []


async def test_observer_bounds() -> None:
    h, _ = make(CoapServerConfig(observers_per_resource=2, observers_per_peer=5))
    assert (await register(h, b"a")).observe is not None
    assert (await register(h, b"b")).observe is not None
    refused = await register(h, b"c")
    assert refused.code == Code.CONTENT and refused.observe is None
    assert h.server.counters["observers_rejected"] == 1
    # Re-registering an existing (peer, token) replaces, it is not refused.
    assert (await register(h, b"a")).observe is not None
    assert len(h.server.observers("v")) == 2


async def test_peer_gone_and_detach() -> None:
    h, res = make()
    await register(h, b"a")
    await register(h, b"b", peer=("192.0.2.77", 1))
    h.server.peer_gone(PEER)
    assert [o.token for o in h.server.observers()] == [b"b"]
    h.receive.peer_gone(("192.0.2.77", 1))
    assert h.server.observers() == []
    await register(h, b"c")
    h.receive.detach()
    assert h.server.observers() == []
    res.notify()
    await h.settle()
    assert h.take() == []


async def test_notifications_coalesce_and_render_once_per_variant() -> None:
    h, res = make()
    await register(h, b"a")
    await register(h, b"b")
    res.renders = 0
    res.set(b"1")
    res.set(b"2")
    res.set(b"3")
    await h.settle()
    notes = h.take()
    # First round sends the state at that time, one more round the latest.
    assert {n.token for n in notes} == {b"a", b"b"}
    assert notes[-1].payload == b"3"
    assert res.renders <= 4


async def test_notification_per_accept_variant() -> None:
    h = Harness()
    light = LightResource()
    h.server.add_resource("light", light)
    h.request(Code.GET, "light", token=b"t", options=[(OBSERVE, 0)])
    h.request(Code.GET, "light", token=b"j", options=[(OBSERVE, 0), (OptionNumber.ACCEPT, 50)])
    await h.settle()
    h.take()
    light.on = True
    light.notify()
    await h.settle()
    notes = {n.token: n for n in h.take()}
    assert notes[b"t"].payload == b"on"
    assert notes[b"j"].payload == b'{"on": true}'
    assert notes[b"j"].content_format == 50


async def test_large_notification_sends_first_block() -> None:
    h = Harness()

    class BigValue(Value):
        async def render_get(self, request: Request) -> Response:
            return Response(Code.CONTENT, self.value * 1500)

    res = BigValue()
    h.server.add_resource("v", res)
    h.request(
        Code.GET,
        "v",
        token=b"ob",
        options=[(OBSERVE, 0), (OptionNumber.BLOCK2, BlockOption(0, False, 4).encode())],
    )
    await h.settle()
    [reply] = h.take()
    assert reply.block2 == BlockOption(0, True, 4) and reply.observe is not None
    res.set(b"x")
    await h.settle()
    [note] = h.take()
    assert note.block2 == BlockOption(0, True, 4)
    assert note.payload == b"x" * 256
    assert note.observe is not None and note.etag


async def test_observe_with_block2_num_above_zero_does_not_register() -> None:
    h, _ = make()
    h.request(
        Code.GET,
        "v",
        options=[(OBSERVE, 0), (OptionNumber.BLOCK2, BlockOption(1, False, 0).encode())],
    )
    await h.settle()
    assert h.server.observers() == []


def test_sequence_wraps_at_24_bits() -> None:
    seq = ObserveSequence((1 << 24) - 2)
    assert [seq.next(), seq.next(), seq.next()] == [(1 << 24) - 1, 0, 1]


@pytest.mark.parametrize(
    ("v1", "v2", "dt", "fresh"),
    [
        (1, 2, 0, True),
        (2, 1, 0, False),
        (5, 5, 0, False),
        ((1 << 24) - 1, 0, 0, True),  # wrapped
        (0, (1 << 24) - 1, 0, False),
        (10, 10 + (1 << 23), 0, False),
        (2, 1, REORDER_WINDOW + 1, True),  # old enough: accept anyway
    ],
)
def test_reordering_rule(v1: int, v2: int, dt: float, fresh: bool) -> None:
    assert is_fresh(v1, 100.0, v2, 100.0 + dt) is fresh
