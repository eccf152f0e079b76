"""Shared resources (``shared = True``, RFC 7641 §4.2 across sibling
servers): what a request changes goes to the replicators, a sibling's state
is imported and notified with this server's own Observe numbers, bad state
changes nothing, and a changing request is answered once the replicator says
the siblings hold the state (or ``shared_state_wait`` passed)."""

from __future__ import annotations

import asyncio

from coap_harness import Harness

from dtlsfast.coap import CoapServerConfig, Code, LightResource, OptionNumber, Resource
from dtlsfast.coap.exchange import Request, Response

OBSERVE = OptionNumber.OBSERVE


class Plain(Resource):
    async def render_put(self, request: Request) -> Response:
        self.changed()  # not shared: nothing to replicate
        return Response(Code.CHANGED)


def _harness(config: CoapServerConfig | None = None) -> tuple[Harness, list[tuple[str, bytes]]]:
    h = Harness(config)
    h.server.add_resource("light", LightResource())
    h.server.add_resource("plain", Plain())
    shared: list[tuple[str, bytes]] = []
    h.server.add_replicator(lambda path, state: shared.append((path, state)))
    return h, shared


async def test_a_put_goes_to_the_replicators_and_plain_resources_do_not() -> None:
    h, shared = _harness()
    assert (await h.exchange(Code.PUT, "light", payload=b"on")).code == Code.CHANGED
    assert (await h.exchange(Code.PUT, "light", payload=b"toggle")).code == Code.CHANGED
    assert (await h.exchange(Code.PUT, "plain")).code == Code.CHANGED
    assert shared == [("light", b"on"), ("light", b"off")]
    assert h.server.shared_states() == {"light": b"off"}
    assert h.server.counters["state_shared"] == 2


async def test_an_imported_state_is_served_and_notified_with_our_numbers() -> None:
    h, shared = _harness()
    first = await h.exchange(Code.GET, "light", options=[(OBSERVE, 0)])
    assert first.payload == b"off" and first.observe is not None
    assert h.server.import_state("light", b"on")
    await h.settle()
    (note,) = h.take()
    assert note.payload == b"on" and note.observe is not None and note.observe > first.observe
    assert (await h.exchange(Code.GET, "light")).payload == b"on"
    assert shared == []  # an imported state is not sent back out
    assert h.server.counters["state_imported"] == 1


async def test_bad_state_or_an_unshared_path_changes_nothing() -> None:
    h, _ = _harness()
    assert not h.server.import_state("light", b"maybe")
    assert not h.server.import_state("plain", b"on")
    assert not h.server.import_state("nothing/here", b"on")
    assert (await h.exchange(Code.GET, "light")).payload == b"off"
    assert h.server.counters["state_invalid"] == 1
    assert h.server.counters["state_unknown_path"] == 2


async def test_the_answer_waits_for_the_siblings() -> None:
    h = Harness()
    h.server.add_resource("light", LightResource())
    settled: list[asyncio.Future[None]] = []

    def replicate(path: str, state: bytes) -> asyncio.Future[None]:
        settled.append(asyncio.get_running_loop().create_future())
        return settled[-1]

    h.server.add_replicator(replicate)
    h.request(Code.PUT, "light", payload=b"on")
    await h.settle()
    assert h.take() == [] and len(settled) == 1
    settled[0].set_result(None)
    await h.settle()
    (reply,) = h.take()
    assert reply.code == Code.CHANGED
    # A GET waits for nothing.
    assert (await h.exchange(Code.GET, "light")).payload == b"on"
    assert h.server.counters["state_unsettled"] == 0


async def test_siblings_that_never_confirm_delay_the_answer_only_so_long() -> None:
    h = Harness(CoapServerConfig(shared_state_wait=0.01))
    h.server.add_resource("light", LightResource())
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    h.server.add_replicator(lambda path, state: never)
    h.request(Code.PUT, "light", payload=b"on")
    for _ in range(200):
        await asyncio.sleep(0.01)
        if h.sent:
            break
    (reply,) = h.take()
    assert reply.code == Code.CHANGED
    assert h.server.counters["state_unsettled"] == 1
