"""``--workers 2 --state-file PATH`` and ``kill -9`` of a worker (issue 16):
each worker keeps its own file (PATH.workerK); the replacement restores the
dead worker's sessions, which carry on with no handshake, and the other
worker's sessions are untouched."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from workers_harness import (
    ServeProcess,
    connect,
    eventually,
    get_light,
    worker_lines,
    worker_of,
)

from dtlsfast import DtlsSession

EACH = 2


async def test_killed_worker_restores_its_sessions(tmp_path: Path) -> None:
    sessions: dict[int, list[DtlsSession]] = {0: [], 1: []}
    try:
        await _kill_and_restore(tmp_path, sessions)
    finally:
        for group in sessions.values():
            for session in group:
                session.abort()


async def _kill_and_restore(tmp_path: Path, sessions: dict[int, list[DtlsSession]]) -> None:
    state = tmp_path / "state.db"
    args = ["--workers", "2", "--connection-id", "--state-file", str(state)]
    args += ["--state-save-interval", "0.2"]
    async with ServeProcess(tmp_path / "serve.log", *args) as server:
        for _ in range(64):
            if min(len(v) for v in sessions.values()) >= EACH:
                break
            session = await connect(server.coaps_port, connection_id=True)
            sessions[worker_of(session)].append(session)
        assert min(len(v) for v in sessions.values()) >= EACH
        for group in sessions.values():
            for session in group:
                assert await get_light(session) == b"off"
        assert not state.exists()
        for index in (0, 1):
            await eventually(lambda i=index: Path(f"{state}.worker{i}").exists())
        await server.sigusr1()
        await asyncio.sleep(1.0)  # a few save intervals: the sessions are in the files
        before = worker_lines(server.text())
        victim = before[0][0]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            await server.sigusr1()
            now = worker_lines(server.text())
            return now[0][0] != victim and bool(now[0][1])

        await eventually(replaced)
        # The dead worker's sessions carry on, restored by its replacement.
        for session in sessions[0]:
            assert await get_light(session) == b"off"
        for session in sessions[1]:
            assert await get_light(session) == b"off"
        await server.sigusr1()
        after = worker_lines(server.text())
        fresh = after[0][1]
        assert fresh is not None and fresh.get("dtls_handshakes_completed", 0) == 0
        assert fresh["dtls_sessions_open"] == len(sessions[0])
        old, new = before[1][1], after[1][1]
        assert old is not None and new is not None
        assert new["dtls_handshakes_completed"] == old["dtls_handshakes_completed"]
        assert new["dtls_sessions_open"] == old["dtls_sessions_open"]
    assert "worker 0 (pid" in server.text() and "restarting it" in server.text()
