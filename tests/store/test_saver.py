"""Incremental saving with reserved write sequence numbers: only changed
sessions are written, a restored session starts past every sequence number
the previous process could have used (even killed between saves), and its
peer's records keep opening with no handshake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_helpers import SECRET, key_of, record, table_with

from dtlsfast import _core
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.store import MemorySessionStore, SessionRecord, SqliteSessionStore, StateSaver
from dtlsfast.store.saver import MAX_SEQUENCE_NUMBER, RESTART_RESERVE

APPLICATION_DATA = 23
RESERVE = 1 << 12


def _id(key: bytes) -> int:
    return int.from_bytes(key, "big")


class Server:
    """The part of a server the saver talks to: its table and export."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.exported: list[bytes] = []

    def export(self, key: bytes, limit: int) -> SessionRecord | None:
        self.exported.append(key)
        if _id(key) not in self.table:
            return None
        return record(self.table, _id(key), limit)

    def live(self, key: bytes) -> int | None:
        seq = self.table.next_write_sequence(_id(key))
        return seq if isinstance(seq, int) else None

    def flush(self, saver: StateSaver, now: float) -> int:
        return saver.flush(now, self.export, self.live)


def _sequence(record_bytes: bytes) -> int:
    return int.from_bytes(record_bytes[5:11], "big")


def test_only_changed_sessions_are_written() -> None:
    server = Server(table_with(10))
    saver = StateSaver(MemorySessionStore(), reserve=RESERVE)
    for i in range(10):
        saver.changed(key_of(i))
    assert saver.due(0.0) and server.flush(saver, 0.0) == 10
    assert not saver.due(4.9) and saver.due(5.0) and saver.next_due() == 5.0
    server.exported.clear()
    saver.changed(key_of(3))
    assert saver.pending == 1 and server.flush(saver, 5.0) == 1
    assert server.exported == [key_of(3)]
    assert server.flush(saver, 10.0) == 0  # nothing changed: nothing written


def test_removed_sessions_and_their_observations_leave_the_store() -> None:
    server = Server(table_with(3))
    store = MemorySessionStore()
    saver = StateSaver(store, reserve=RESERVE)
    for i in range(3):
        saver.changed(key_of(i))
    server.flush(saver, 0.0)
    saver.removed(key_of(1))
    server.table.remove(2)
    saver.changed(key_of(2))  # gone from the table by the time of the flush
    server.flush(saver, 1.0)
    assert [r.key for r in store.iterate()] == [key_of(0)]
    assert saver.saved_limit(key_of(1)) is None and saver.saved_limit(key_of(2)) is None


def test_a_reservation_is_renewed_once_half_used() -> None:
    server = Server(table_with(2))
    saver = StateSaver(MemorySessionStore(), reserve=RESERVE)
    saver.changed(key_of(0))
    saver.changed(key_of(1))
    server.flush(saver, 0.0)
    assert saver.saved_limit(key_of(0)) == 1 + RESERVE
    for _ in range(RESERVE // 2 - 1):
        server.table.seal(0, APPLICATION_DATA, b"x")
    live = [(key_of(i), server.table.next_write_sequence(i)) for i in range(2)]
    assert saver.check_sequences(live) == 0
    server.table.seal(0, APPLICATION_DATA, b"x")
    live = [(key_of(i), server.table.next_write_sequence(i)) for i in range(2)]
    assert saver.check_sequences(live) == 1
    server.flush(saver, 5.0)
    assert saver.saved_limit(key_of(0)) == 1 + RESERVE // 2 + RESERVE


def test_sequence_numbers_are_never_reused_across_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    table = table_with(1)
    server = Server(table)
    store = SqliteSessionStore(path, SECRET)
    saver = StateSaver(store, reserve=RESERVE)
    saver.changed(key_of(0))
    server.flush(saver, 0.0)
    sent = [_sequence(table.seal(0, APPLICATION_DATA, b"before")) for _ in range(100)]
    # kill -9 here: no further save; the store holds the reserved limit only.
    del saver, store
    restored_store = SqliteSessionStore(path, SECRET)
    (saved,) = list(restored_store.iterate())
    restored = _core.SessionTable(4)
    restored.import_session(0, saved.record_state, 1.0)
    new_saver = StateSaver(restored_store, reserve=RESERVE)
    start = restored.next_write_sequence(0)
    new_saver.restored(saved.key, start)
    # The new reservation is stored before anything is sealed.
    Server(restored).flush(new_saver, 1.0)
    assert new_saver.saved_limit(key_of(0)) == start + RESERVE
    after = _sequence(restored.seal(0, APPLICATION_DATA, b"after"))
    assert after > max(sent) and after == 1 + RESERVE
    # The peer (same keys both ways here) opens what the restored side sent,
    # and the restored side still refuses the records it had seen.
    assert table.open_datagram(0, restored.seal(0, APPLICATION_DATA, b"hi")) == (
        [b"hi"],
        0,
        0,
        [],
    )
    restored_store.close()


def test_a_failed_write_keeps_the_changes_for_the_next_flush() -> None:
    class Failing(MemorySessionStore):
        fail = True

        def apply(self, batch: Any) -> None:
            if self.fail:
                raise OSError("disk full")
            super().apply(batch)

    store = Failing()
    server = Server(table_with(1))
    saver = StateSaver(store, reserve=RESERVE)
    saver.changed(key_of(0))
    with pytest.raises(OSError):
        server.flush(saver, 0.0)
    assert saver.saved_limit(key_of(0)) is None and saver.pending == 1
    store.fail = False
    assert server.flush(saver, 1.0) == 1


def test_bad_parameters_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        StateSaver(MemorySessionStore(), interval=0)
    with pytest.raises(ConfigurationError):
        StateSaver(MemorySessionStore(), reserve=10)


def test_restarts_that_die_before_saving_never_reuse_numbers() -> None:
    """Each start is counted in the store; a session restored by a process
    that died before saving it again starts one RESTART_RESERVE further on
    (the most that process could use), and a process that saved it again
    moves its limit on for the next."""
    store = MemorySessionStore()
    table = table_with(1, start_sequence=100)
    first = StateSaver(store, reserve=RESERVE, start=store.begin())
    first.changed(key_of(0))
    server = Server(table)
    first.flush(0.0, server.export, server.live)
    (saved,) = store.iterate()
    assert saved.saved_at_start == 1
    limit = int.from_bytes(saved.record_state[8:16], "big")
    assert limit == 100 + RESERVE

    used = []
    for start in (2, 3, 4):  # three processes, each killed before any save
        saver = StateSaver(store, reserve=RESERVE, start=store.begin())
        assert saver.start == start
        begin = saver.resume(saved)
        assert begin is not None
        # What this process may seal before its first save, all of it beyond
        # anything every process before it could have used.
        assert begin >= max(used, default=limit)
        assert saver.saved_limit(saved.key) == begin + RESTART_RESERVE
        used.append(begin + RESTART_RESERVE)
    assert used[-1] == limit + 3 * RESTART_RESERVE

    # The fifth saves it at once: the sixth starts at its new limit.
    fifth = StateSaver(store, reserve=RESERVE, start=store.begin())
    begin = fifth.resume(saved)
    assert begin == used[-1]
    restored = _core.SessionTable(2)
    restored.import_session(
        0, saved.record_state[:8] + begin.to_bytes(8, "big") + saved.record_state[16:], 0.0
    )
    fifth.changed(key_of(0))
    fifth.flush(1.0, Server(restored).export, Server(restored).live)
    (again,) = store.iterate()
    assert again.saved_at_start == 5
    sixth = StateSaver(store, reserve=RESERVE, start=store.begin())
    assert sixth.resume(again) == begin + RESTART_RESERVE


def test_a_session_out_of_numbers_is_not_resumed() -> None:
    store = MemorySessionStore()
    saver = StateSaver(store, start=store.begin())
    state = bytearray(table_with(1).export_session(0, MAX_SEQUENCE_NUMBER - 5))
    old = SessionRecord(key_of(0), bytes(state), 0xC0A8, True, 0, saved_at_start=0)
    assert saver.resume(old) is None
