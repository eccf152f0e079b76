"""The session store's restart target (issue 15): 100,000 established PSK
sessions saved (exported from the session table, encoded, encrypted,
written) plus loaded (read, decrypted, decoded, imported into a fresh
table) in under 2 s in all, at most 300 B per session in the file.

Run: ``python -m pytest benches/bench_session_store.py --benchmark-only -s``.
Each round saves into a new file, then reopens it and restores every session;
``extra_info`` holds the split, the CPU time and the bytes per session.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import pytest

from dtlsfast import _core
from dtlsfast.store import SessionRecord, SqliteSessionStore, StateSaver

SESSIONS = 100_000
SECRET = os.urandom(64)


def _table(count: int) -> Any:
    table = _core.SessionTable(count)
    for i in range(count):
        read = _core.RecordCipher("AES_128_CCM_8", os.urandom(16), os.urandom(4))
        write = _core.RecordCipher("AES_128_CCM_8", os.urandom(16), os.urandom(4))
        window = _core.ReplayWindow(64)
        window.accept(i % 50)
        table.install(i, read, 1, window, write, 1, 7)
        table.bind_address(i, (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 5684), 0.0)
    return table


def _restart(table: Any, directory: str) -> dict[str, float]:
    path = os.path.join(directory, f"state-{time.monotonic_ns()}.db")
    store = SqliteSessionStore(path, SECRET)
    saver = StateSaver(store)
    for i in range(SESSIONS):
        saver.changed(i.to_bytes(8, "big"))

    def export(key: bytes, limit: int) -> SessionRecord:
        state = table.export_session(int.from_bytes(key, "big"), limit)
        return SessionRecord(key, state, 0xC0A8, True, 1_700_000_000, 2, 1, b"Client_identity")

    def live(key: bytes) -> int | None:
        seq = table.next_write_sequence(int.from_bytes(key, "big"))
        return seq if isinstance(seq, int) else None

    wall, cpu = time.perf_counter(), time.process_time()
    saver.flush(0.0, export, live)
    store.close()
    saved_wall, saved_cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = os.path.getsize(path)
    wall, cpu = time.perf_counter(), time.process_time()
    restored = _core.SessionTable(SESSIONS)
    with SqliteSessionStore(path, SECRET) as reopened:
        for n, record in enumerate(reopened.iterate()):
            restored.import_session(n, record.record_state, 1.0)
    loaded_wall, loaded_cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(restored) == SESSIONS
    os.unlink(path)
    return {
        "save_s": saved_wall,
        "load_s": loaded_wall,
        "total_s": saved_wall + loaded_wall,
        "total_cpu_s": saved_cpu + loaded_cpu,
        "save_cpu_s": saved_cpu,
        "load_cpu_s": loaded_cpu,
        "bytes_per_session": size / SESSIONS,
    }


@pytest.mark.parametrize("sessions", [SESSIONS])
def test_save_and_restore(benchmark: Any, sessions: int) -> None:
    table = _table(sessions)
    benchmark.group = f"session-store-{sessions}"
    figures: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as directory:
        benchmark.pedantic(
            lambda: figures.append(_restart(table, directory)), rounds=3, iterations=1
        )
    best = min(figures, key=lambda f: f["total_s"])
    benchmark.extra_info.update(best)
    print(
        f"\n{sessions} sessions: save {best['save_s']:.2f} s + load {best['load_s']:.2f} s = "
        f"{best['total_s']:.2f} s ({best['total_cpu_s']:.2f} s CPU: save {best['save_cpu_s']:.2f}, "
        f"load {best['load_cpu_s']:.2f}), "
        f"{best['bytes_per_session']:.0f} B per session"
    )
    assert best["bytes_per_session"] <= 300
