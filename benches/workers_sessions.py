"""What sharing session IDs between the workers costs
(:mod:`dtlsfast.workers.shared_sessions`), in one process, per session: the
worker that caches it (``remember`` with and without its sharer, the batch
lines included), the supervisor (parsing the line, checking and keeping it;
it relays the line as it came), and each other worker (parsing and merging it
into its cache). Every full handshake pays the first once; the last is paid
by each of the other workers. Run: ``python benches/workers_sessions.py
[--sessions N]`` (pin it with ``taskset -c 1`` on a busy machine)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from dtlsfast.resumption import ResumptionState, ServerResumption
from dtlsfast.workers.shared_sessions import SessionBook, SessionSharer


def _sessions(count: int) -> list[tuple[bytes, ResumptionState]]:
    now = int(time.time())
    return [
        (os.urandom(32), ResumptionState(os.urandom(48), 0xC0A8, True, now, 3600, b"CoAP"))
        for _ in range(count)
    ]


async def _remember(count: int, shared: bool, rounds: int) -> tuple[float, list[bytes]]:
    best, lines = float("inf"), []
    for _ in range(rounds):
        resumption = ServerResumption(tickets=False, cache_size=count)
        lines = []
        sharer = SessionSharer(resumption) if shared else None
        if sharer is not None:
            sharer.attach(lines.append)
        sessions = _sessions(count)
        start = time.perf_counter()
        for session_id, state in sessions:
            resumption.remember(session_id, state)
        if sharer is not None:
            sharer.flush()
            sharer.close()
        best = min(best, time.perf_counter() - start)
    return best / count, lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count = args.sessions
    alone, _ = await _remember(count, False, args.rounds)
    shared, lines = await _remember(count, True, args.rounds)
    book, receiver = SessionBook(), ServerResumption(tickets=False, cache_size=count)
    sharer = SessionSharer(receiver)
    start = time.perf_counter()
    for line in lines:
        book.update(json.loads(line))
    supervisor = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for line in lines:
        sharer.received(json.loads(line))
    merge = (time.perf_counter() - start) / count
    assert receiver.counters["session_ids_merged"] == count
    print(f"{count} sessions in {len(lines)} lines ({sum(map(len, lines)) / count:.0f} B each)")
    print(f"worker, remember: {alone * 1e6:.2f} us alone, {shared * 1e6:.2f} us shared")
    print(f"supervisor, parse and keep: {supervisor * 1e6:.2f} us")
    print(f"other worker, parse and merge: {merge * 1e6:.2f} us")


if __name__ == "__main__":
    asyncio.run(main())
