"""One light for ``--workers 2`` (issue 16, :mod:`dtlsfast.workers.shared_state`):
a PUT answered by one worker is what every GET on either worker sees next,
an observer on each worker hears of a PUT the other worker handled, two
concurrent PUTs end with the same light everywhere, a stopped worker does
not hold the other up, and the replacement of a worker killed with ``kill
-9`` serves the current light. Sessions come from many source ports; which
worker holds each is read from the workers' own counters."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from pathlib import Path

from workers_harness import (
    WAIT,
    ServeProcess,
    connect,
    eventually,
    get_light,
    light_workers,
    worker_lines,
)

from dtlsfast import DtlsSession
from dtlsfast.coap.message import Code, Message, MessageType, OptionNumber
from dtlsfast.workers.supervisor import Supervisor

EACH = 2
MAX_SESSIONS = 64


async def _worker_counters(supervisor: Supervisor) -> list[dict[str, int]]:
    return [c or {} for c in await supervisor.worker_counters()]


async def _open_on(
    supervisor: Supervisor, opened: list[DtlsSession], wanted: int, each: int = EACH
) -> dict[int, list[DtlsSession]]:
    """Sessions, each from a new source port, until ``wanted`` workers hold
    ``each``; a session's worker is the one whose handshake count grew."""
    address = supervisor.coaps_address
    assert address is not None
    by_worker: dict[int, list[DtlsSession]] = {i: [] for i in range(wanted)}
    for _ in range(MAX_SESSIONS):
        if min(len(v) for v in by_worker.values()) >= each:
            break
        before = await _worker_counters(supervisor)
        session = await connect(address[1])
        opened.append(session)
        after = await _worker_counters(supervisor)
        grown = [
            i
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            if a.get("dtls_handshakes_completed", 0) > b.get("dtls_handshakes_completed", 0)
        ]
        assert len(grown) == 1, grown
        if grown[0] in by_worker:
            by_worker[grown[0]].append(session)
    assert min(len(v) for v in by_worker.values()) >= each, by_worker
    return by_worker


def _request(code: int, payload: bytes = b"", observe: bool = False) -> Message:
    options = [(OptionNumber.URI_PATH, b"light")]
    if observe:
        options.insert(0, (OptionNumber.OBSERVE, b""))
    message = Message(
        code=code, message_id=random.getrandbits(16), token=os.urandom(4), options=options
    )
    message.payload = payload
    return message


async def _response(session: DtlsSession, request: Message) -> Message:
    """The response to ``request``: piggybacked, or separate after an Empty ACK."""
    async with asyncio.timeout(WAIT):
        while True:
            reply = Message.decode(await session.recv())
            if reply.code == 0 or reply.token != request.token:
                continue
            if reply.type == MessageType.CON:
                ack = Message(type=MessageType.ACK, code=0, message_id=reply.message_id)
                await session.send(ack.encode())
            return reply


async def put_light(session: DtlsSession, value: bytes) -> None:
    request = _request(Code.PUT, value)
    await session.send(request.encode())
    reply = await _response(session, request)
    assert reply.code == Code.CHANGED, reply


async def observe(session: DtlsSession) -> bytes:
    """Register as an observer of /light (RFC 7641 §3.1); the first answer."""
    request = _request(Code.GET, observe=True)
    await session.send(request.encode())
    reply = await _response(session, request)
    assert reply.code == Code.CONTENT and reply.observe is not None, reply
    return bytes(reply.payload)


async def notified(session: DtlsSession, value: bytes) -> int:
    """Read notifications until one says ``value``; its Observe number."""
    async with asyncio.timeout(WAIT):
        while True:
            note = Message.decode(await session.recv())
            if note.type == MessageType.CON:
                ack = Message(type=MessageType.ACK, code=0, message_id=note.message_id)
                await session.send(ack.encode())
            if note.code == Code.CONTENT and note.observe is not None and note.payload == value:
                return int(note.observe)


async def _is_on(session: DtlsSession) -> bool:
    return await get_light(session) == b"on"


async def _close(opened: list[DtlsSession]) -> None:
    for session in opened:
        await session.close()


async def test_a_put_on_either_worker_is_what_every_get_sees() -> None:
    opened: list[DtlsSession] = []
    try:
        async with light_workers(2) as supervisor:
            by_worker = await _open_on(supervisor, opened, 2)
            everyone = [s for sessions in by_worker.values() for s in sessions]
            for round_ in range(6):
                writer = by_worker[round_ % 2][(round_ // 2) % EACH]
                value = b"on" if round_ % 2 == 0 else b"off"
                await put_light(writer, value)
                for session in everyone:
                    assert await get_light(session) == value, (round_, value)
            each = await _worker_counters(supervisor)
            # Both workers made changes, and both applied the other's.
            assert all(c.get("coap_state_shared", 0) >= 3 for c in each), each
            assert all(c.get("worker_state_applied", 0) >= 1 for c in each), each
            assert all(c.get("coap_state_unsettled", 0) == 0 for c in each), [
                {k: v for k, v in c.items() if "state" in k} for c in each
            ] + [dict(supervisor.state_counters)]
            assert supervisor.state_counters["state_updates"] == 6
    finally:
        await _close(opened)


async def test_an_observer_on_each_worker_hears_the_other_workers_put() -> None:
    opened: list[DtlsSession] = []
    try:
        async with light_workers(2) as supervisor:
            by_worker = await _open_on(supervisor, opened, 2)
            watchers = {i: by_worker[i][0] for i in (0, 1)}
            writers = {i: by_worker[i][1] for i in (0, 1)}
            for watcher in watchers.values():
                assert await observe(watcher) == b"off"
            last = {0: -1, 1: -1}
            for origin, value in ((0, b"on"), (1, b"off"), (1, b"on"), (0, b"off")):
                await put_light(writers[origin], value)
                for index, watcher in watchers.items():
                    number = await notified(watcher, value)
                    # Each worker numbers its own notifications (RFC 7641 §4.4).
                    assert number > last[index], (index, number, last[index])
                    last[index] = number
    finally:
        await _close(opened)


async def test_concurrent_puts_on_two_workers_end_with_one_light() -> None:
    opened: list[DtlsSession] = []
    try:
        async with light_workers(2) as supervisor:
            by_worker = await _open_on(supervisor, opened, 2)
            everyone = [s for sessions in by_worker.values() for s in sessions]
            for round_ in range(8):
                first, second = (b"on", b"off") if round_ % 2 else (b"off", b"on")
                await asyncio.gather(
                    put_light(by_worker[0][0], first), put_light(by_worker[1][0], second)
                )
                seen = {await get_light(session) for session in everyone}
                assert len(seen) == 1, (round_, seen)
    finally:
        await _close(opened)


async def test_a_stopped_worker_holds_no_one_up_and_catches_up() -> None:
    opened: list[DtlsSession] = []
    try:
        async with light_workers(2) as supervisor:
            by_worker = await _open_on(supervisor, opened, 2)
            stopped = supervisor.pids[1]
            assert stopped is not None
            os.kill(stopped, signal.SIGSTOP)
            try:
                for value in (b"on", b"off", b"on"):
                    await put_light(by_worker[0][0], value)
                    assert await get_light(by_worker[0][1]) == value
                assert supervisor.state_counters["state_lagging"] >= 1
            finally:
                os.kill(stopped, signal.SIGCONT)
            # It reads its backlog as it wakes: a lagging worker is caught up
            # eventually, not by the next request.
            for session in by_worker[1]:
                await eventually(lambda s=session: _is_on(s))
            # Caught up: its next changes and acknowledgements count again.
            await put_light(by_worker[1][0], b"off")
            for session in by_worker[0]:
                assert await get_light(session) == b"off"
    finally:
        await _close(opened)


async def test_the_replacement_of_a_killed_worker_serves_the_current_light() -> None:
    opened: list[DtlsSession] = []
    try:
        async with light_workers(2) as supervisor:
            by_worker = await _open_on(supervisor, opened, 2, each=1)
            await put_light(by_worker[0][0], b"on")
            await eventually(lambda: supervisor.standby_ready)
            victim = supervisor.pids[0]
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            # Changed while worker 0 is dead or being replaced.
            await put_light(by_worker[1][0], b"off")
            await put_light(by_worker[1][0], b"on")

            async def replaced() -> bool:
                pid = supervisor.pids[0]
                return (
                    pid not in (None, victim)
                    and (await supervisor.worker_counters())[0] is not None
                )

            await eventually(replaced)
            fresh = await _open_on(supervisor, opened, 1, each=1)
            assert await get_light(fresh[0][0]) == b"on"
            # The replacement shares its own changes too.
            await put_light(fresh[0][0], b"off")
            assert await get_light(by_worker[1][0]) == b"off"
    finally:
        await _close(opened)


async def test_the_command_line_with_two_workers_serves_one_light(tmp_path: Path) -> None:
    """``dtlsfast serve --workers 2``, each worker's sessions told apart by
    the handshakes in its SIGUSR1 line."""
    opened: list[DtlsSession] = []
    try:
        async with ServeProcess(tmp_path / "serve.log", "--workers", "2") as server:
            by_worker: dict[int, list[DtlsSession]] = {0: [], 1: []}

            async def sigusr1() -> None:
                # The sum line first, then each worker's, then the supervisor's.
                await server.sigusr1()
                sums = len(server.counter_lines("dtlsfast.workers"))
                last = " WARNING dtlsfast.workers: worker 1 (pid "
                await eventually(lambda: server.text().count(last) >= sums)

            async def handshakes() -> dict[int, int]:
                await sigusr1()
                lines = worker_lines(server.text())
                return {
                    i: (c or {}).get("dtls_handshakes_completed", 0) for i, (_, c) in lines.items()
                }

            before = await handshakes()
            for _ in range(MAX_SESSIONS):
                if min(len(v) for v in by_worker.values()) >= 1:
                    break
                session = await connect(server.coaps_port)
                opened.append(session)
                after = await handshakes()
                (grown,) = [i for i in after if after[i] > before.get(i, 0)]
                by_worker[grown].append(session)
                before = after
            assert min(len(v) for v in by_worker.values()) >= 1, by_worker
            for origin, value in ((0, b"on"), (1, b"off"), (1, b"on")):
                await put_light(by_worker[origin][0], value)
                for index in (0, 1):
                    assert await get_light(by_worker[index][0]) == value, (origin, index)
            marker = " WARNING dtlsfast.workers: supervisor shared state "
            await server.sigusr1()
            await eventually(lambda: marker in server.text())
            (line,) = [x for x in server.text().splitlines() if marker in x][-1:]
            assert json.loads(line.split(marker, 1)[1])["state_updates"] == 3
    finally:
        await _close(opened)
