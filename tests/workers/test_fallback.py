"""Where the kernel refuses the steering program, the supervisor falls back
to the handover and says so in its log; ``--steering bpf`` then refuses to
start; ``--workers auto`` is the CPUs this process may use."""

from __future__ import annotations

import logging
import os
import socket

import pytest
from workers_harness import connect, get_light, light_workers

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.workers import supervisor as supervision
from dtlsfast.workers.serve import worker_count


def _refuse(sock: socket.socket, workers: int) -> None:
    raise OSError(22, "Invalid argument")


async def test_refused_program_falls_back_to_handover(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervision, "attach_steering", _refuse)
    caplog.set_level(logging.INFO, "dtlsfast.workers")
    async with light_workers(2, connection_id=True) as supervisor:
        assert supervisor.steering == "handover"
        address = supervisor.coaps_address
        assert address is not None
        session = await connect(address[1], connection_id=True)
        assert await get_light(session) == b"off"
        await session.close()
    assert "steering: handover (the steering program could not be attached" in caplog.text


async def test_bpf_insisted_on_fails_when_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "attach_steering", _refuse)
    with pytest.raises(ConfigurationError, match="--steering handover"):
        async with light_workers(2, steering="bpf", connection_id=True):
            pass


def test_workers_auto_is_the_affinity() -> None:
    assert worker_count("auto") == len(os.sched_getaffinity(0))
    assert worker_count("3") == 3
