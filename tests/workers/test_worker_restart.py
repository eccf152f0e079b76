"""``kill -9`` of a worker (issue 16): the supervisor starts a replacement on
the same share of the port (its first backoff delay), the other worker's
sessions go on untouched, and the dead worker's CID records still reach its
slot, where the replacement (without a state file) drops them as unknown."""

from __future__ import annotations

import os
import signal
import time

from workers_harness import connect, eventually, get_light, light_workers, worker_of

from dtlsfast import DtlsSession
from dtlsfast.workers import supervisor as supervision

#: Sessions opened until each worker has at least this many.
EACH = 3
MAX_SESSIONS = 64


async def test_kill_9_replaces_the_worker_and_spares_the_other() -> None:
    opened: list[DtlsSession] = []
    try:
        await _kill_and_replace(opened)
    finally:
        for session in opened:
            await session.close()


async def _kill_and_replace(opened: list[DtlsSession]) -> None:
    async with light_workers(2, connection_id=True) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        by_worker: dict[int, list[DtlsSession]] = {0: [], 1: []}
        for _ in range(MAX_SESSIONS):
            if min(len(v) for v in by_worker.values()) >= EACH:
                break
            session = await connect(address[1], connection_id=True)
            opened.append(session)
            by_worker[worker_of(session)].append(session)
        assert min(len(v) for v in by_worker.values()) >= EACH, by_worker
        for session in by_worker[1]:
            assert await get_light(session) == b"off"
        before = (await supervisor.worker_counters())[1]
        assert before is not None

        # Steady state: the standby process is warm.
        await eventually(lambda: supervisor.standby_ready)
        victim = supervisor.pids[0]
        assert victim is not None
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            pid = supervisor.pids[0]
            return pid not in (None, victim) and (await supervisor.worker_counters())[0] is not None

        await eventually(replaced)
        took = time.monotonic() - killed
        print(f"worker 0 replaced and serving {took:.3f} s after kill -9")
        assert supervisor.restarts == 1
        assert supervision.RESTART_DELAY < 1.0
        # The standby took the dead worker's place, and a new one warms up.
        await eventually(lambda: supervisor.standby_ready)

        # The other worker's sessions: still served, no new handshake, none lost.
        for session in by_worker[1]:
            assert await get_light(session) == b"off"
        after = (await supervisor.worker_counters())[1]
        assert after is not None
        assert after["dtls_handshakes_completed"] == before["dtls_handshakes_completed"]
        assert after["dtls_sessions_open"] == before["dtls_sessions_open"]

        # The dead worker's sessions are gone with it, but their records still
        # reach slot 0: the socket set did not change.
        for session in by_worker[0]:
            await session.send(b"\x40\x01\x00\x01")

        async def dropped() -> bool:
            fresh = (await supervisor.worker_counters())[0] or {}
            return fresh.get("dtls_dropped_unknown_cid", 0) >= len(by_worker[0])

        await eventually(dropped)
        # A new session lands on the replacement as on any worker.
        for _ in range(MAX_SESSIONS):
            session = await connect(address[1], connection_id=True)
            opened.append(session)
            if worker_of(session) == 0:
                assert await get_light(session) == b"off"
                break
        else:
            raise AssertionError("no new session reached the replacement worker")
