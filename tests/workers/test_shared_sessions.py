"""The session-ID sharing of the workers, without processes
(:mod:`dtlsfast.workers.shared_sessions`): a worker's batches (one line per
interval, whatever the number of handshakes; split past ``BATCH_BYTES``), the
merge into another worker's cache (same bounds, the lifetime counted from the
first store), invalidations in order, the supervisor's bounded book and what
it gives a new worker, refused lines, and no secret in any log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import pytest

from dtlsfast.resumption import ResumptionFailure, ResumptionState, ServerResumption
from dtlsfast.workers import shared_sessions
from dtlsfast.workers.shared_sessions import SessionBook, SessionSharer, check_ops


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _resumption(clock: Clock, **options: Any) -> ServerResumption:
    return ServerResumption(tickets=False, clock=clock, **options)


def _state(clock: Clock, identity: bytes = b"CoAP", lifetime: int = 3600) -> ResumptionState:
    return ResumptionState(
        master_secret=os.urandom(48),
        cipher_suite=0xC0A8,
        extended_master_secret=True,
        created=int(clock.now),
        lifetime=lifetime,
        psk_identity=identity,
    )


class Wire:
    """The lines a sharer sent, parsed."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def __call__(self, line: bytes) -> None:
        assert line.endswith(b"\n") and len(line) <= shared_sessions.MAX_SESSION_LINE
        self.lines.append(line)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


async def test_a_storm_of_handshakes_is_one_line_per_interval() -> None:
    clock = Clock()
    resumption = _resumption(clock)
    sharer = SessionSharer(resumption, interval=0.01, clock=clock)
    wire = Wire()
    sharer.attach(wire)
    ids = [os.urandom(32) for _ in range(200)]
    for sid in ids:
        resumption.remember(sid, _state(clock))
    assert wire.lines == []  # nothing before the interval ends
    await asyncio.sleep(0.05)
    (message,) = wire.messages()
    assert message["op"] == "sessions"
    assert [op[1] for op in message["ops"]] == [sid.hex() for sid in ids]
    assert message["bound"] == resumption.cache.max_entries  # type: ignore[union-attr]
    assert sharer.counters["sessions_sent"] == 200
    assert sharer.counters["session_batches_sent"] == 1
    sharer.close()


async def test_a_batch_past_its_byte_budget_goes_at_once_in_bounded_lines() -> None:
    clock = Clock()
    resumption = _resumption(clock, cache_size=100_000)
    sharer = SessionSharer(resumption, interval=60.0, clock=clock)
    wire = Wire()
    sharer.attach(wire)
    for _ in range(1000):  # about 200 B of JSON each: several lines
        resumption.remember(os.urandom(32), _state(clock))
    assert len(wire.lines) >= 3
    assert all(len(line) < shared_sessions.BATCH_BYTES + 1024 for line in wire.lines)
    sharer.flush()
    sent = sum(len(m["ops"]) for m in wire.messages())
    assert sent == 1000
    sharer.close()


async def test_sessions_cached_before_the_stream_is_up_go_in_the_first_batch() -> None:
    clock = Clock()
    resumption = _resumption(clock)
    sharer = SessionSharer(resumption, interval=0.01, clock=clock)
    resumption.remember(b"\x01" * 32, _state(clock))
    wire = Wire()
    sharer.attach(wire)
    await asyncio.sleep(0.05)
    assert len(wire.messages()) == 1
    sharer.close()


def _relay(lines: list[bytes], into: SessionSharer) -> None:
    for line in lines:
        into.received(json.loads(line))


async def test_another_worker_merges_and_resumes_and_invalidations_follow() -> None:
    clock = Clock()
    one, two = _resumption(clock), _resumption(clock)
    sharer_one = SessionSharer(one, interval=0.01, clock=clock)
    sharer_two = SessionSharer(two, interval=0.01, clock=clock)
    wire = Wire()
    sharer_one.attach(wire)
    kept, dropped = os.urandom(32), os.urandom(32)
    state = _state(clock)
    one.remember(kept, state)
    one.remember(dropped, _state(clock))
    assert one.invalidate(dropped)
    sharer_one.flush()
    (message,) = wire.messages()
    assert [op[0] for op in message["ops"]] == ["+", "+", "-"]  # in the order they happened
    _relay(wire.lines, sharer_two)
    found = two.find(
        session_id=kept,
        ticket=None,
        offered_suites=[0xC0A8],
        accepted_suites=[0xC0A8],
        client_offers_ems=True,
        require_ems=False,
        identity_known=lambda identity: True,
    )
    assert found is not None and found.state == state and found.via == "session_id"
    assert two.cache is not None and two.cache.lookup(dropped, clock.now) is not state
    assert len(two.cache) == 1
    assert two.counters["session_ids_merged"] == 2
    # A merged entry is not published again (no echo between the workers).
    wire_two = Wire()
    sharer_two.attach(wire_two)
    await asyncio.sleep(0.05)
    assert wire_two.lines == []
    # The other worker's fatal alert reaches this one.
    assert two.invalidate(kept)
    sharer_two.flush()
    _relay(wire_two.lines, sharer_one)
    assert one.cache is not None and len(one.cache) == 0
    assert sharer_one.counters["sessions_invalidated"] == 1
    sharer_one.close()
    sharer_two.close()


def test_the_lifetime_counts_from_the_first_store_and_bounds_hold() -> None:
    clock = Clock()
    origin = _resumption(clock, lifetime=100)
    sharer = SessionSharer(origin, clock=clock)
    wire = Wire()
    sharer.attach(wire)
    receiver = _resumption(clock, cache_size=3, lifetime=100)
    other = SessionSharer(receiver, clock=clock)
    sid = os.urandom(32)
    line = shared_sessions.sessions_line(
        [["+", sid.hex(), _state(clock, lifetime=100).encode().hex(), clock.now]], 10, 100.0
    )
    clock.now += 60
    other.received(json.loads(line))
    assert receiver.cache is not None and len(receiver.cache) == 1
    clock.now += 39
    assert isinstance(receiver.cache.lookup(sid, clock.now), ResumptionState)
    clock.now += 2  # 101 s after the first store: expired, though merged 41 s ago
    assert receiver.cache.lookup(sid, clock.now) is ResumptionFailure.EXPIRED
    # Already expired when it arrives: not kept at all.
    other.received(json.loads(line))
    assert len(receiver.cache) == 0 and other.counters["sessions_stale"] == 1
    # The receiving cache's own bound: the least recently stored go first.
    ids = [os.urandom(32) for _ in range(5)]
    ops = [["+", s.hex(), _state(clock).encode().hex(), clock.now] for s in ids]
    other.received(json.loads(shared_sessions.sessions_line(ops, 10, 100.0)))
    assert len(receiver.cache) == 3
    assert all(isinstance(receiver.cache.lookup(s, clock.now), ResumptionState) for s in ids[2:])
    sharer.close()
    other.close()


def test_the_book_is_bounded_forgets_invalidated_and_expired_and_feeds_a_new_worker() -> None:
    clock = Clock()
    book = SessionBook(clock=clock)
    state = _state(clock).encode().hex()
    ids = [os.urandom(32).hex() for _ in range(8)]
    ops = [["+", sid, state, clock.now] for sid in ids]
    assert book.update({"op": "sessions", "bound": 5, "lifetime": 100, "ops": ops})
    assert len(book) == 5  # the bound the workers' caches have
    book.update({"op": "sessions", "bound": 5, "lifetime": 100, "ops": [["-", ids[7]]]})
    assert len(book) == 4
    given = [op for line in book.lines() for op in json.loads(line)["ops"]]
    assert [op[1] for op in given] == ids[3:7]  # oldest first
    clock.now += 100
    assert book.lines() == [] and len(book) == 0
    assert book.counters["sessions_shared"] == 8 and book.counters["sessions_unshared"] == 1


def test_the_book_splits_what_a_new_worker_gets_into_bounded_lines() -> None:
    clock = Clock()
    book = SessionBook(clock=clock)
    state = _state(clock).encode().hex()
    ops = [["+", os.urandom(32).hex(), state, clock.now] for _ in range(2000)]
    book.update({"op": "sessions", "bound": 10_000, "lifetime": 3600, "ops": ops})
    lines = book.lines()
    assert len(lines) > 1
    assert all(len(line) <= shared_sessions.MAX_SESSION_LINE for line in lines)
    assert sum(len(json.loads(line)["ops"]) for line in lines) == 2000


@pytest.mark.parametrize(
    "message",
    [
        {"op": "sessions"},
        {"op": "sessions", "bound": 0, "lifetime": 10, "ops": []},
        {"op": "sessions", "bound": 10, "lifetime": -1, "ops": []},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": "x"},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["*", "00"]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["-", "zz"]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["-", "00" * 33]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["+", "00", "00"]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["+", "00", "0", 1.0]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["+", "00", "00", "now"]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [["+", "00", "00", float("nan")]]},
        {"op": "sessions", "bound": 10, "lifetime": 10, "ops": [[]]},
    ],
)
def test_a_malformed_line_is_refused_and_counted(message: dict[str, Any]) -> None:
    book = SessionBook()
    assert book.update(message) is False
    assert book.counters["sessions_invalid"] == 1 and len(book) == 0
    receiver = _resumption(Clock())
    sharer = SessionSharer(receiver)
    sharer.received(message)
    if "ops" in message and message["ops"] == []:
        return  # bounds are the supervisor's business; no ops, nothing to do
    assert sharer.counters["sessions_invalid"] == 1
    sharer.close()


def test_an_undecodable_state_is_skipped_the_rest_merged() -> None:
    clock = Clock()
    receiver = _resumption(clock)
    sharer = SessionSharer(receiver, clock=clock)
    good = os.urandom(32)
    ops = [
        ["+", os.urandom(32).hex(), "00" * 70, clock.now],
        ["+", good.hex(), _state(clock).encode().hex(), clock.now],
    ]
    assert check_ops({"ops": ops})
    sharer.received(json.loads(shared_sessions.sessions_line(ops, 10, 100.0)))
    assert sharer.counters["sessions_invalid"] == 1
    assert receiver.cache is not None and len(receiver.cache) == 1
    sharer.close()


async def test_no_secret_reaches_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    one, two = _resumption(clock), _resumption(clock)
    sharer = SessionSharer(one, interval=0.001, clock=clock)
    other = SessionSharer(two, clock=clock)
    wire = Wire()
    sharer.attach(wire)
    state = _state(clock)
    one.remember(os.urandom(32), state)
    await asyncio.sleep(0.02)
    book = SessionBook(clock=clock)
    for line in wire.lines:
        book.update(json.loads(line))
        other.received(json.loads(line))
    book.update({"op": "sessions", "ops": [["+", "00", state.master_secret.hex(), "x"]]})
    assert state.master_secret.hex() not in caplog.text
    assert state.master_secret.hex() in wire.lines[0].decode()  # it does travel, locally
    sharer.close()
    other.close()


class _StuckWriter:
    """A stream whose reader reads nothing: its buffer is always full."""

    class transport:
        @staticmethod
        def get_write_buffer_size() -> int:
            return 1 << 30

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, line: bytes) -> None:
        self.written.append(line)

    async def drain(self) -> None:
        await asyncio.Event().wait()


async def test_held_batches_are_bounded_and_never_crowd_out_the_shared_state() -> None:
    from collections import Counter

    from dtlsfast.workers.shared_state import LatestSender

    writer = _StuckWriter()
    counters: Counter[str] = Counter()
    sessions = LatestSender(writer, counters, "w (sessions)", max_held=2, prefix="sessions")
    state = LatestSender(writer, counters, "w")
    for n in range(5):
        sessions.send(("sessions", n), b"{}\n")
    state.send("light", b"{}\n")
    assert sessions.held == 2 and counters["sessions_dropped_full"] == 3
    assert state.held == 1 and counters["state_dropped_full"] == 0
    sessions.close()
    state.close()
