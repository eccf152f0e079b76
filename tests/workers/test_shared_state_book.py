"""The pieces of :mod:`dtlsfast.workers.shared_state` without processes:
the supervisor's book (one order, bounded, settled by acknowledgements), the
sender that never waits and keeps only the newest line per key for a slow
reader, and a worker's replica (versions in order, its own echoes)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from typing import Any

from dtlsfast.coap import CoapServer, LightResource
from dtlsfast.workers.shared_state import (
    MAX_LINE,
    MAX_PATH_LENGTH,
    MAX_STATE_BYTES,
    Entry,
    LatestSender,
    Replica,
    StateBook,
)


def _change(path: str, seq: int, data: bytes) -> dict[str, Any]:
    return {"op": "state", "path": path, "seq": seq, "data": data.hex()}


def test_the_book_orders_every_change_and_is_bounded() -> None:
    book = StateBook(max_paths=2)
    first = book.update(100, _change("light", 1, b"on"))
    second = book.update(200, _change("light", 1, b"off"))
    assert first is not None and second is not None
    assert (first.version, second.version) == (1, 2)
    assert [e.data for e in book.entries()] == [b"off".hex()]
    assert book.update(100, _change("other", 2, b"x")) is not None
    assert book.update(100, _change("third", 3, b"x")) is None  # past max_paths
    for bad in (
        {"op": "state", "path": "light", "seq": "1", "data": "00"},
        {"op": "state", "path": "", "seq": 1, "data": "00"},
        {"op": "state", "path": "light", "seq": 1, "data": "zz"},
        {"op": "state", "path": "light", "seq": -1, "data": "00"},
        {"op": "state", "path": "light", "seq": 1, "data": "00" * 5000},
    ):
        assert book.update(100, bad) is None
    assert book.counters["state_refused_paths"] == 1
    assert book.counters["state_invalid"] == 5
    assert [e.path for e in book.entries(after=2)] == ["other"]


def test_acknowledgements_settle_changes_and_the_dead_hold_none() -> None:
    book = StateBook()
    entry = book.update(100, _change("light", 7, b"on"))
    assert entry is not None
    assert book.expect(entry, 0, {0, 1}) == []
    assert book.applied(0, entry.version) == []
    assert book.overdue(entry.version) == {1}
    (settled,) = book.applied(1, entry.version)
    assert (settled.origin, settled.seq) == (0, 7)
    # A worker that dies settles what waited for it, and drops what it made.
    mine = book.update(100, _change("light", 8, b"off"))
    theirs = book.update(200, _change("light", 1, b"on"))
    assert mine is not None and theirs is not None
    book.expect(mine, 0, {0, 1})
    book.expect(theirs, 1, {0, 1})
    assert book.applied(1, theirs.version) == []
    (left,) = book.gone(0)
    assert (left.origin, left.seq) == (1, 1)
    # A lagging one (not dead): its own changes still settle.
    late = book.update(100, _change("light", 9, b"on"))
    assert late is not None
    book.expect(late, 0, {0, 1})
    (done,) = book.gone(0, dead=False) + book.applied(1, late.version)
    assert done.seq == 9


def test_the_book_holds_only_so_many_unsettled_changes() -> None:
    book = StateBook(max_pending=2)
    settled = []
    for seq in range(1, 5):
        entry = book.update(100, _change("light", seq, b"on"))
        assert entry is not None
        settled += book.expect(entry, 0, {1})
    assert [p.seq for p in settled] == [1, 2]
    assert book.counters["state_settled_early"] == 2


class _Transport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Writer:
    """A stream whose reader stops until ``drain`` is released."""

    def __init__(self) -> None:
        self.transport = _Transport()
        self.lines: list[bytes] = []
        self.drained = asyncio.Event()

    def is_closing(self) -> bool:
        return False

    def write(self, line: bytes) -> None:
        self.lines.append(line)
        self.transport.buffered += len(line)

    async def drain(self) -> None:
        await self.drained.wait()
        self.transport.buffered = 0


async def test_a_slow_reader_gets_the_newest_line_per_key_and_no_one_waits() -> None:
    writer = _Writer()
    counters: Counter[str] = Counter()
    sender = LatestSender(writer, counters, "worker 1", limit=10)
    sender.send("light", b"light=on\n")
    sender.send("light", b"light=off\n")  # over the limit: held
    sender.send("other", b"other=1\n")
    sender.send("light", b"light=on!\n")  # replaces the held one
    assert writer.lines == [b"light=on\n"] and sender.held == 2
    assert counters["state_dropped_superseded"] == 1
    writer.drained.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert writer.lines == [b"light=on\n", b"other=1\n", b"light=on!\n"]
    assert sender.held == 0
    sender.close()
    sender.send("light", b"late\n")
    assert counters["state_dropped_closed"] == 1


def _entry(version: int, origin: int, seq: int, data: bytes) -> dict[str, Any]:
    return json.loads(Entry("light", version, origin, seq, data.hex()).line())


async def test_a_replica_applies_in_version_order_and_knows_its_own_echo() -> None:
    coap = CoapServer()
    light = coap.add_resource("light", LightResource())
    assert isinstance(light, LightResource)
    replica = Replica(coap, [_entry(3, 1, 1, b"on")])
    assert light.on
    writer = _Writer()
    writer.transport.buffered = -(10**9)  # never full
    replica.attach(writer)
    replica.received(_entry(2, 1, 1, b"off"))  # older than what it has
    assert light.on and replica.counters["state_stale"] == 1
    # Two changes of its own; the first one's echo is skipped.
    light.on = False
    first = replica._changed("light", b"off")
    light.on = True
    second = replica._changed("light", b"on")
    assert first is not None and second is not None
    replica.received(_entry(4, os.getpid(), 1, b"off"))
    assert light.on
    replica.received(_entry(5, os.getpid(), 2, b"on"))
    assert light.on and replica.counters["state_applied"] == 1
    replica.received({"op": "settled", "seq": 1})
    assert first.done() and not second.done()
    replica.received({"op": "settled", "seq": 2})
    assert second.done()
    sent = [json.loads(line) for line in writer.lines]
    assert [m["op"] for m in sent] == ["applied", "state", "state", "applied", "applied"]
    assert [m["seq"] for m in sent if m["op"] == "state"] == [1, 2]
    replica.received({"op": "state", "path": "light"})  # not an entry
    assert replica.counters["state_invalid"] == 1
    replica.close()


def test_the_longest_entry_fits_in_a_line() -> None:
    book = StateBook()
    path = "\U0001f4a1" * MAX_PATH_LENGTH
    entry = book.update(2**31, _change(path, 2**40, b"\xff" * MAX_STATE_BYTES))
    assert entry is not None and len(entry.line()) <= MAX_LINE
