"""Secrets the workers share (issue 16): a session ticket (RFC 5077) that one
worker issued resumes on the other, whether the workers derive their ticket
keys from the supervisor's secret or from one --ticket-key-file."""

from __future__ import annotations

from pathlib import Path

import pytest
from workers_harness import connect, get_light, light_workers, worker_of

MAX_TRIES = 64


@pytest.mark.parametrize("key_file", [False, True])
async def test_a_ticket_from_one_worker_resumes_on_the_other(
    tmp_path: Path, key_file: bool
) -> None:
    options = {"ticket_key_file": tmp_path / "tickets.key"} if key_file else {}
    async with light_workers(2, connection_id=True, **options) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        first = await connect(address[1], connection_id=True)
        issuer = worker_of(first)
        saved = first.resumption
        assert saved is not None
        await first.close()
        for _ in range(MAX_TRIES):
            # Each attempt from a new port; the flow hash picks the worker.
            again = await connect(address[1], connection_id=True, resume=saved)
            other = worker_of(again) != issuer
            if other:
                assert again.resumed == "ticket"
                assert await get_light(again) == b"off"
            saved = again.resumption or saved
            await again.close()
            if other:
                break
        else:
            pytest.fail(f"{MAX_TRIES} new ports all reached worker {issuer}")
        each = [c or {} for c in await supervisor.worker_counters()]
        assert each[1 - issuer]["dtls_resumed_ticket"] >= 1
