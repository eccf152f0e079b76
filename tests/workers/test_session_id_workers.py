"""Session-ID resumption across workers (issues 15 and 16): a session that one
worker cached under its session ID resumes, abbreviated, on whichever worker
a client's new source port reaches; a session invalidated by a fatal alert
(RFC 5246 §7.2) resumes on none; a killed worker's replacement resumes
the sessions established before it started; and ``openssl s_client
-no_ticket -sess_out/-sess_in`` reuses its session on both workers of
``dtlsfast serve --workers 2``. Tickets are off throughout, so
only the session ID can resume (:mod:`dtlsfast.workers.shared_sessions`)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from workers_harness import (
    ServeProcess,
    connect,
    eventually,
    get_light,
    light_workers,
    worker_lines,
    worker_of,
)

from dtlsfast import DtlsSession
from dtlsfast.handshake.constants import AlertDescription
from dtlsfast.workers.supervisor import Supervisor

#: New ports tried until each worker has resumed at least RESUMES sessions.
MAX_TRIES = 64
RESUMES = 3


async def _first(port: int) -> tuple[Any, int]:
    first = await connect(port, connection_id=True, session_tickets=False)
    issuer = worker_of(first)
    assert await get_light(first) == b"off"
    saved = first.resumption
    assert saved is not None and saved.session_id and not saved.ticket
    await first.close()
    return saved, issuer


async def _each(supervisor: Supervisor) -> list[dict[str, int]]:
    return [c or {} for c in await supervisor.worker_counters()]


async def _merged_everywhere(supervisor: Supervisor, count: int = 1) -> None:
    """Every worker holds ``count`` sessions more than it cached itself."""

    async def merged() -> bool:
        each = await _each(supervisor)
        cached = sum(c.get("dtls_session_ids_cached", 0) for c in each)
        return all(
            c.get("dtls_session_ids_cached", 0) + c.get("dtls_session_ids_merged", 0)
            >= max(cached, count)
            for c in each
        )

    await eventually(merged)


async def _resume_on_both(port: int, saved: Any) -> dict[int, int]:
    """Resume ``saved`` from new ports until both workers did RESUMES times."""
    resumed = {0: 0, 1: 0}
    for _ in range(MAX_TRIES):
        if min(resumed.values()) >= RESUMES:
            break
        again = await connect(port, connection_id=True, session_tickets=False, resume=saved)
        try:
            assert again.resumed == "session_id"
            assert await get_light(again) == b"off"
            resumed[worker_of(again)] += 1
        finally:
            await again.close()
    assert min(resumed.values()) >= RESUMES, f"{MAX_TRIES} new ports: {resumed}"
    return resumed


async def test_a_session_id_from_one_worker_resumes_on_both() -> None:
    async with light_workers(2, connection_id=True) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        saved, issuer = await _first(address[1])
        await _merged_everywhere(supervisor)
        resumed = await _resume_on_both(address[1], saved)
        each = await _each(supervisor)
        for index in (0, 1):
            assert each[index]["dtls_resumed_session_id"] == resumed[index]
            assert each[index].get("dtls_resumption_refused_unknown_session", 0) == 0
        assert each[1 - issuer]["dtls_session_ids_merged"] >= 1
        assert each[issuer]["worker_session_batches_sent"] >= 1


async def _end_with_fatal_alert(session: DtlsSession) -> None:
    """The client ends its session with a fatal alert (internal_error)."""
    session.connection._fail(AlertDescription.INTERNAL_ERROR, "the test ends it")
    session._endpoint.flush(session)


async def test_a_fatal_alert_invalidates_the_session_on_every_worker() -> None:
    async with light_workers(2, connection_id=True) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        session = await connect(address[1], connection_id=True, session_tickets=False)
        holder = worker_of(session)
        saved = session.resumption
        assert saved is not None and saved.session_id
        await _merged_everywhere(supervisor)
        await _end_with_fatal_alert(session)
        await session.close()

        async def invalidated() -> bool:
            each = await _each(supervisor)
            return (
                each[holder].get("dtls_session_ids_invalidated", 0) == 1
                and each[1 - holder].get("worker_sessions_invalidated", 0) == 1
            )

        await eventually(invalidated)
        seen = set()
        for _ in range(MAX_TRIES):
            again = await connect(
                address[1], connection_id=True, session_tickets=False, resume=saved
            )
            seen.add(worker_of(again))
            assert again.resumed is None  # a full handshake
            await again.close()
            if len(seen) == 2:
                break
        assert seen == {0, 1}
        each = await _each(supervisor)
        assert sum(c.get("dtls_resumed_session_id", 0) for c in each) == 0


async def test_a_replaced_worker_resumes_sessions_from_before_it_started() -> None:
    async with light_workers(2, connection_id=True) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        saved, _ = await _first(address[1])
        await _merged_everywhere(supervisor)
        await eventually(lambda: supervisor.standby_ready)
        victim = supervisor.pids[0]
        assert victim is not None
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            pid = supervisor.pids[0]
            return pid not in (None, victim) and (await supervisor.worker_counters())[0] is not None

        await eventually(replaced)

        # The replacement got the supervisor's entries: the session is in its cache.
        async def known() -> bool:
            return (await _each(supervisor))[0].get("dtls_session_ids_merged", 0) >= 1

        await eventually(known)
        resumed = await _resume_on_both(address[1], saved)
        assert resumed[0] >= RESUMES


async def _one(port: int) -> None:
    session = await connect(port, connection_id=True, session_tickets=False)
    await session.close()


@pytest.mark.parametrize("sessions", [40])
async def test_a_burst_of_sessions_reaches_every_worker(sessions: int) -> None:
    async with light_workers(2, connection_id=True) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        await asyncio.gather(*(_one(address[1]) for _ in range(sessions)))
        await _merged_everywhere(supervisor, sessions)
        each = await _each(supervisor)
        assert sum(c["dtls_session_ids_cached"] for c in each) == sessions
        for c in each:
            assert c["dtls_session_ids_cached"] + c.get("dtls_session_ids_merged", 0) == sessions
            # One line per batch, at most one per session (fewer in a storm).
            assert c.get("worker_session_batches_sent", 0) <= c["dtls_session_ids_cached"]


@pytest.mark.interop
async def test_openssl_s_client_resumes_by_session_id_on_both_workers(tmp_path: Path) -> None:
    """``dtlsfast serve --workers 2`` and ``openssl s_client -no_ticket``:
    the session saved with ``-sess_out`` is reused with ``-sess_in`` from new
    source ports, on both workers (the workers' debug lines say which)."""
    from peers import run_openssl_client  # on the path once workers_harness is imported

    session = tmp_path / "session.pem"
    args = ("--workers", "2", "--log-level", "debug")
    async with ServeProcess(tmp_path / "serve.log", *args) as server:
        first = await run_openssl_client(
            server.coaps_port, extra_args=("-no_ticket", "-sess_out", str(session)), linger=0.2
        )
        assert first.handshake_ok, first.describe()
        assert "New, TLSv1.2" in first.out

        async def merged() -> bool:
            await server.sigusr1()
            lines = worker_lines(server.text())
            return len(lines) == 2 and all(
                (c or {}).get("dtls_session_ids_cached", 0)
                + (c or {}).get("dtls_session_ids_merged", 0)
                >= 1
                for _, c in lines.values()
            )

        await eventually(merged)
        for _ in range(MAX_TRIES // 2):
            again = await run_openssl_client(
                server.coaps_port, extra_args=("-no_ticket", "-sess_in", str(session)), linger=0.2
            )
            assert "Reused, TLSv1.2" in again.out, again.describe()
            resumed_by = {
                index
                for line in server.text().splitlines()
                if "resumed by session_id" in line
                for index in (0, 1)
                if f"[worker {index}]: session with" in line
            }
            if resumed_by == {0, 1}:
                break
        else:
            pytest.fail(f"{MAX_TRIES // 2} s_client runs did not reach both workers")
    assert "Traceback" not in server.text()
