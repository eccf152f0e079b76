"""The SQLite session store: what it saves it restores, encrypted and mode
0600; a file that is corrupt, truncated, of another version or under another
key is refused with a typed error naming it, and left untouched unless the
caller asks to start empty; an applied batch survives kill -9; a typical
PSK session takes at most 300 bytes of the file; resources' saved state is
kept encrypted like the rest; and a version-2 file is migrated in place."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from store_helpers import SECRET, key_of, record, table_with

from dtlsfast.exceptions import (
    StateFileCorruptError,
    StateFileError,
    StateFileKeyError,
    StateFileVersionError,
)
from dtlsfast.store import (
    MemorySessionStore,
    ObservationRecord,
    ResourceStore,
    SessionStore,
    SqliteSessionStore,
    StoreBatch,
)
from dtlsfast.store.sqlite import START_EMPTY_HINT, STATE_VERSION


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _observation(i: int, token: bytes = b"\x01\x02") -> ObservationRecord:
    return ObservationRecord(key_of(i), token, "light", b"\x41\x01\x00\x01", 7 + i, 1_700_000_000)


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    if request.param == "memory":
        return MemorySessionStore()
    return SqliteSessionStore(tmp_path / "state.db", SECRET)


def test_both_stores_implement_the_protocol(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)
    table = table_with(50)
    store.save([record(table, i) for i in range(50)], [_observation(i) for i in range(0, 50, 5)])
    assert {r.key for r in store.iterate()} == {key_of(i) for i in range(50)}
    assert store.load(key_of(7)) == record(table, 7)
    assert store.load(b"absent") is None
    assert sorted(o.observe for o in store.iterate_observations()) == list(range(7, 57, 5))
    # Deleting a session deletes its observations; an observation alone too.
    store.delete([key_of(0), key_of(1)], [(key_of(5), b"\x01\x02")])
    assert store.load(key_of(0)) is None and len(list(store.iterate())) == 48
    assert sorted(o.observe for o in store.iterate_observations()) == list(range(17, 57, 5))
    # An upsert replaces.
    store.save([record(table, 3, 1 << 24)])
    saved = store.load(key_of(3))
    assert saved is not None and saved.record_state == table.export_session(3, 1 << 24)
    store.close()


def test_a_reopened_store_restores_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    table = table_with(300)
    with SqliteSessionStore(path, SECRET) as store:
        store.save([record(table, i) for i in range(300)], [_observation(1)])
    with SqliteSessionStore(path, SECRET) as store:
        assert sorted(r.key for r in store.iterate()) == [key_of(i) for i in range(300)]
        assert list(store.iterate_observations()) == [_observation(1)]


def test_files_are_private_and_keys_never_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = os.umask(0)
    try:
        store = SqliteSessionStore(path, SECRET)
        table = table_with(3)
        store.save([record(table, i) for i in range(3)])
        for name in ("state.db", "state.db-wal"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        state = table.export_session(1)
        key = state[16:32]
        store.close()
    finally:
        os.umask(old)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert key not in raw and b"Client_identity" not in raw


def test_an_open_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteSessionStore(path, SECRET).close()
    path.chmod(0o644)
    with pytest.raises(StateFileError, match=f"chmod 600 {path}"):
        SqliteSessionStore(path, SECRET)


def _assert_refused(
    path: Path, secret: bytes, error: type[StateFileError], match: str
) -> StateFileError:
    before = _digest(path)
    with pytest.raises(error, match=match) as caught:
        SqliteSessionStore(path, secret)
    message = str(caught.value)
    assert str(path) in message and "nothing in it was changed" in message
    assert caught.value.path == str(path)
    assert _digest(path) == before
    return caught.value


def _saved(tmp_path: Path, count: int = 500) -> Path:
    path = tmp_path / "state.db"
    table = table_with(count)
    with SqliteSessionStore(path, SECRET) as store:
        store.save([record(table, i) for i in range(count)])
    return path


def test_another_key_is_told_apart(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    error = _assert_refused(path, os.urandom(64), StateFileKeyError, "another key")
    assert "--state-key-file" in str(error) and START_EMPTY_HINT in str(error)


def test_another_version_is_told_apart(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 99 WHERE name = 'version'")
    db.commit()
    db.close()
    _assert_refused(path, SECRET, StateFileVersionError, "version 99")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other database"])
def test_corrupt_files_are_refused(tmp_path: Path, damage: str) -> None:
    path = _saved(tmp_path)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t(x)")
        db.commit()
        db.close()
        path.chmod(0o600)
    _assert_refused(path, SECRET, StateFileCorruptError, "corrupt|not a dtlsfast state file")


def test_a_tampered_record_is_a_typed_error_on_reading(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    db = sqlite3.connect(path)
    (bucket, data) = db.execute("SELECT bucket, data FROM sessions LIMIT 1").fetchone()
    db.execute(
        "UPDATE sessions SET data = ? WHERE bucket = ?", (bytes([data[0] ^ 1]) + data[1:], bucket)
    )
    db.commit()
    db.close()
    with (
        SqliteSessionStore(path, SECRET) as store,
        pytest.raises(StateFileCorruptError, match="damaged"),
    ):
        list(store.iterate())


def test_starting_empty_moves_the_file_aside(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    before = _digest(path)
    with SqliteSessionStore(path, os.urandom(64), start_empty=True) as store:
        assert list(store.iterate()) == []
        assert store.moved_aside is not None
        moved = Path(store.moved_aside)
        assert moved.name.startswith("state.db.unusable-")
    assert _digest(moved) == before
    with SqliteSessionStore(moved, SECRET) as old:
        assert len(list(old.iterate())) == 500


def test_key_files_give_the_store_its_key(tmp_path: Path) -> None:
    key_file = tmp_path / "state.key"
    table = table_with(2)
    with SqliteSessionStore.from_key_file(tmp_path / "s.db", key_file) as store:
        store.save([record(table, 0)])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with SqliteSessionStore.from_key_file(tmp_path / "s.db", key_file) as store:
        assert store.load(key_of(0)) == record(table, 0)
    with pytest.raises(StateFileKeyError):
        SqliteSessionStore.from_key_file(tmp_path / "s.db", tmp_path / "other.key")


def test_each_opening_writes_under_a_fresh_generation(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    table = table_with(4)
    for i in range(3):
        with SqliteSessionStore(path, SECRET) as store:
            store.save([record(table, i)])
    db = sqlite3.connect(path)
    nonces = [n for (n,) in db.execute("SELECT n FROM sessions")]
    generations = [g for (g,) in db.execute("SELECT gen FROM generations")]
    db.close()
    assert len(set(nonces)) == len(nonces) == 3
    assert len({n >> 40 for n in nonces}) == 3
    assert generations == sorted({n >> 40 for n in nonces})  # unused ones were dropped


def test_an_applied_batch_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    table = table_with(200)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            store = SqliteSessionStore(path, SECRET)
            store.save([record(table, i) for i in range(200)])
            os.write(1, b"")
            (tmp_path / "saved").touch()
            time.sleep(60)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 30
    while not (tmp_path / "saved").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with SqliteSessionStore(path, SECRET) as store:
        assert len(list(store.iterate())) == 200


def test_a_psk_session_takes_at_most_300_bytes(tmp_path: Path) -> None:
    count = 20_000
    table = table_with(count)
    with SqliteSessionStore(tmp_path / "state.db", SECRET) as store:
        store.save([record(table, i, 1 << 24) for i in range(count)])
        store.checkpoint()
        used = store.bytes_used()
    size = (tmp_path / "state.db").stat().st_size
    print(f"\n{used / count:.0f} B per session in use, {size / count:.0f} B per session of file")
    assert size / count <= 300


def test_resource_states_are_kept_encrypted(store: SessionStore, tmp_path: Path) -> None:
    assert isinstance(store, ResourceStore)
    store.apply(StoreBatch(resources={"light": b"\x01", "a/b": b"secret-value"}))
    store.apply(StoreBatch(resources={"light": b"\x00"}))
    assert sorted(store.iterate_resources()) == [("a/b", b"secret-value"), ("light", b"\x00")]
    store.close()
    if isinstance(store, SqliteSessionStore):
        assert b"secret-value" not in (tmp_path / "state.db").read_bytes()
        with SqliteSessionStore(tmp_path / "state.db", SECRET) as reopened:
            assert dict(reopened.iterate_resources())["light"] == b"\x00"
            # Another generation writes now; the rows of the old one stay readable.
            reopened.apply(StoreBatch(resources={"a/b": b"x"}))
        with SqliteSessionStore(tmp_path / "state.db", SECRET) as reopened:
            assert dict(reopened.iterate_resources()) == {"a/b": b"x", "light": b"\x00"}


def test_a_swapped_resource_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteSessionStore(path, SECRET) as store:
        store.apply(StoreBatch(resources={"light": b"\x01", "other": b"\x00"}))
    db = sqlite3.connect(path)
    db.execute("UPDATE resources SET path = 'x' WHERE path = 'light'")
    db.commit()
    db.close()
    with SqliteSessionStore(path, SECRET) as store, pytest.raises(StateFileCorruptError):
        list(store.iterate_resources())


def test_a_version_2_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = _saved(tmp_path, 50)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE resources")
    db.execute("UPDATE meta SET value = 2 WHERE name = 'version'")
    db.commit()
    db.close()
    with SqliteSessionStore(path, SECRET) as store:
        assert len(list(store.iterate())) == 50
        assert list(store.iterate_resources()) == []
        store.apply(StoreBatch(resources={"light": b"\x01"}))
    db = sqlite3.connect(path)
    version = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()[0]
    db.close()
    assert version == STATE_VERSION == 3
    with SqliteSessionStore(path, SECRET) as store:
        assert dict(store.iterate_resources()) == {"light": b"\x01"}
        assert len(list(store.iterate())) == 50


def test_a_version_2_file_under_another_key_is_refused_unmigrated(tmp_path: Path) -> None:
    path = _saved(tmp_path, 5)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE resources")
    db.execute("UPDATE meta SET value = 2 WHERE name = 'version'")
    db.commit()
    db.close()
    _assert_refused(path, os.urandom(64), StateFileKeyError, "another key")
