"""A connection-ID session whose client moves to a port that the kernel's flow
hash gives to the other worker (issue 16): it keeps working and keeps its
CoAP observation, with the kernel's steering program and with the handover
between workers that replaces it where it cannot be attached."""

from __future__ import annotations

import asyncio

import pytest
from workers_harness import PSK, WAIT, MovingRelay, flow_worker, light_workers

from dtlsfast.coap.client import CoapClient
from dtlsfast.coap.dtls import coaps_transport_factory
from dtlsfast.workers.supervisor import Supervisor

#: Moves tried until one lands on the other worker: all 40 on one side is 2**-40.
MOVES = 40


async def _owner(supervisor: Supervisor) -> int:
    each = [c or {} for c in await supervisor.worker_counters()]
    owners = [i for i, c in enumerate(each) if c.get("dtls_connection_ids")]
    assert len(owners) == 1, each
    return owners[0]


@pytest.mark.parametrize("steering", ["bpf", "handover"])
async def test_cid_session_and_observation_follow_the_client(steering: str) -> None:
    async with light_workers(2, steering=steering, connection_id=True) as supervisor:
        assert supervisor.steering == steering
        address = supervisor.coaps_address
        assert address is not None
        moving = coaps_transport_factory(PSK, connection_id=True)
        async with (
            MovingRelay(address) as relay,
            CoapClient(transport_factories={"coaps": moving}) as observer,
        ):
            uri = f"coaps://127.0.0.1:{relay.port}/light"
            async with observer.observe(uri) as observation:
                first = await asyncio.wait_for(observation.__anext__(), WAIT)
                assert first.payload == b"off"
                owner = await _owner(supervisor)
                for _ in range(MOVES):
                    await relay.move()
                    if await flow_worker(supervisor, relay) != owner:
                        break
                else:
                    pytest.fail(f"{MOVES} new ports all hashed to worker {owner}")
                # From the new port: a request, and a notification of a change.
                got = await asyncio.wait_for(observer.get(uri), WAIT)
                assert got.payload == b"off"
                # Each worker has its own light: the change goes through the
                # moved session itself, to the worker holding the observation.
                put = await asyncio.wait_for(observer.put(uri, b"on"), WAIT)
                assert put.code >> 5 == 2
                note = await asyncio.wait_for(observation.__anext__(), WAIT)
                assert note.payload == b"on"
        each = [c or {} for c in await supervisor.worker_counters()]
        assert each[owner]["dtls_cid_address_updates"] >= 1
        assert each[owner]["coap_notifications"] >= 1
        other = each[1 - owner]
        if steering == "bpf":
            # The kernel delivered the moved session's records to its owner.
            assert "worker_handover_sent" not in other
            assert other.get("dtls_dropped_unknown_cid", 0) == 0
        else:
            assert other["worker_handover_sent"] >= 1
            assert each[owner]["worker_handover_received"] == other["worker_handover_sent"]
