"""``dtlsfast serve --workers 2`` stopped by SIGTERM or SIGINT (issue 16):
every worker sends close_notify to its peers, and everything exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from workers_harness import WAIT, ServeProcess, connect, eventually, get_light, worker_of

from dtlsfast import DtlsSession


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_every_worker_with_close_notify(
    tmp_path: Path, stop: signal.Signals
) -> None:
    sessions: list[DtlsSession] = []
    async with ServeProcess(tmp_path / "serve.log", "--workers", "2", "--connection-id") as server:
        text = server.text()
        assert text.count("listening on coaps://") == 1, text
        assert "steering: bpf" in text
        on: set[int] = set()
        for _ in range(64):
            session = await connect(server.coaps_port, connection_id=True)
            sessions.append(session)
            on.add(worker_of(session))
            if on == {0, 1}:
                break
        assert on == {0, 1}
        for session in sessions:
            assert await get_light(session) == b"off"
        os.kill(server.pid, stop)
        assert server.process is not None
        assert await asyncio.wait_for(server.process.wait(), WAIT) == 0
        # close_notify reached every session, whichever worker held it.
        await eventually(lambda: all(s.closed for s in sessions))
    text = server.text()
    for index in (0, 1):
        assert f"[worker {index}]: stopping: close_notify to every DTLS peer" in text
    assert "restarting" not in text
    assert "Traceback" not in text
