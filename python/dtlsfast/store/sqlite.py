"""The default session store: one SQLite file, every record encrypted.

Layout (format version :data:`STATE_VERSION`)::

    meta(name, value)             format, version, file_id, check, starts
    generations(gen, salt)        one per process that wrote to the file
    sessions(bucket, n, data)     the SessionRecords whose key hashes to bucket
    observations(bucket, n, data) the ObservationRecords of those sessions
    resources(path, n, data)      CoAP resources' saved state (version 3)

Records are grouped in :data:`BUCKETS` buckets by a hash of the session's
key, so that 100,000 sessions are a few thousand rows and AEAD calls, not
100,000 (SQLite's per-row cost dominated otherwise), while a save of a few
changed sessions still rewrites only their buckets (a bucket holds about
``sessions / 4096`` records). A bucket's plaintext is its entries, each
``key_length(1) key value_length(2) value``. Every ``data`` is AES-256-GCM
sealed under the key of generation ``n >> 40`` (HKDF over the key file's
secret and that generation's random salt) with the 12-byte nonce ``n``
(generation, then a per-process counter), and the table and bucket as
additional data, so that rows cannot be swapped. Each process that
opens the file claims a new generation with a fresh salt, so no key ever
sees the same nonce twice, even when a crash threw away a transaction's rows
or the file was restored from a backup. ``check`` is a known value sealed
under the file's key: a wrong key is told apart from corruption at open.

The file is created with mode 0600 (SQLite gives its WAL the same), and an
existing one that group or others can read is refused. A file that is not a
state file, corrupt, truncated, of another version or under another key is
refused at open with a :class:`~dtlsfast.exceptions.StateFileError` naming
the file and what to do, and nothing in it is changed; with
``start_empty=True`` it is moved aside (``PATH.unusable-TIMESTAMP``, never
deleted) and a new file is started. A file of version 2 (before session
records kept record_size_limit and the file kept resources) is migrated in
place once it passed every check: the resources table is added and the
version set to 3 in one transaction; its records are read as they are and
rewritten in the new format when next saved. A dtlsfast that reads only
version 2 then refuses the file with its version error. Writes are WAL transactions with
``synchronous=FULL``: once :meth:`SqliteSessionStore.apply` returns, the
batch survives ``kill -9`` (and a power cut).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import struct
import time
import zlib
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dtlsfast.exceptions import (
    DecodeError,
    StateFileCorruptError,
    StateFileError,
    StateFileKeyError,
    StateFileVersionError,
)
from dtlsfast.secret_file import derive_key, load_or_create_secret
from dtlsfast.store.protocol import BatchStore, StoreBatch
from dtlsfast.store.records import ObservationRecord, SessionRecord

STATE_FORMAT = b"dtlsfast-state"
STATE_VERSION = 3
#: Older versions this one migrates (see the module).
MIGRATED_VERSIONS = (2,)
#: Nonce layout: generation in the high bits, a per-process counter below.
_COUNTER_BITS = 40
_MAX_GENERATION = (1 << 23) - 1  # n stays a positive SQLite integer
_CHECK_PLAINTEXT = b"dtlsfast state file key check"
#: How the error messages tell the user to start empty (the CLI's flag).
START_EMPTY_HINT = "dtlsfast serve --state-reset (serve(state_reset=True), start_empty=True)"

#: Buckets per table (part of the format: a hash of the key picks one).
BUCKETS = 4096
_TABLES = ("sessions", "observations")

_RESOURCES_SCHEMA = (
    "CREATE TABLE resources(path TEXT PRIMARY KEY, n INTEGER NOT NULL, data BLOB NOT NULL) "
    "WITHOUT ROWID"
)
#: A resource's saved state is at most this long (a representation, not a store).
MAX_RESOURCE_STATE = 0xFFFF
_SCHEMA = (
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE generations(gen INTEGER PRIMARY KEY, salt BLOB NOT NULL)",
    "CREATE TABLE sessions(bucket INTEGER PRIMARY KEY, n INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE observations(bucket INTEGER PRIMARY KEY, n INTEGER NOT NULL, data BLOB NOT NULL)",
    _RESOURCES_SCHEMA,
)


def bucket_of(session_key: bytes) -> int:
    """The bucket of a session and of its observations."""
    return zlib.crc32(session_key) % BUCKETS


def _aad(table: str, bucket: int) -> bytes:
    return table.encode() + bucket.to_bytes(4, "big")


def _resource_aad(path: str) -> bytes:
    return b"resources" + path.encode()


def _observation_key(session_key: bytes, token: bytes) -> bytes:
    return bytes([len(session_key)]) + session_key + token


def _pack(entries: dict[bytes, bytes]) -> bytes:
    parts = []
    for key, value in entries.items():
        parts += [_ENTRY_HEAD.pack(len(key)), key, len(value).to_bytes(2, "big"), value]
    return b"".join(parts)


def _unpack(data: bytes) -> dict[bytes, bytes]:
    entries: dict[bytes, bytes] = {}
    offset, end = 0, len(data)
    while offset < end:
        key_end = offset + 1 + data[offset]
        value_end = key_end + 2 + int.from_bytes(data[key_end : key_end + 2], "big")
        if value_end > end:
            raise DecodeError("a bucket is truncated")
        entries[data[offset + 1 : key_end]] = data[key_end + 2 : value_end]
        offset = value_end
    return entries


_ENTRY_HEAD = struct.Struct(">B")


class SqliteSessionStore(BatchStore):
    """The SQLite session store (see the module)."""

    def __init__(
        self, path: str | os.PathLike[str], secret: bytes, *, start_empty: bool = False
    ) -> None:
        """Open (or create) the state file at ``path``, encrypted under keys
        derived from ``secret`` (a key file's content, see
        :mod:`dtlsfast.secret_file`)."""
        self.path = os.fspath(path)
        self._secret = secret
        self._aeads: dict[int, AESGCM] = {}
        self._version = STATE_VERSION
        self.moved_aside: str | None = None
        """Where an unusable file went, when ``start_empty`` moved it."""
        if os.path.lexists(self.path):
            try:
                self._db = self._open_existing()
            except StateFileError:
                if not start_empty:
                    raise
                self.moved_aside = self._move_aside()
                self._db = self._create()
        else:
            self._db = self._create()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if self._version != STATE_VERSION:
            self._migrate()
        self._generation, self._counter = self._claim_generation(), 0

    @classmethod
    def from_key_file(
        cls,
        path: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        *,
        start_empty: bool = False,
    ) -> SqliteSessionStore:
        """The store at ``path`` under the key file ``key_file`` (the state
        key file, or the ticket key file when only that is given; created
        with a fresh secret when missing)."""
        return cls(path, load_or_create_secret(key_file), start_empty=start_empty)

    # -- opening ------------------------------------------------------------

    def _error(self, cls: type[StateFileError], what: str, fix: str) -> StateFileError:
        return cls(f"state file {self.path} {what}; nothing in it was changed. {fix}", self.path)

    def _discard_fix(self) -> str:
        return (
            f"To start with no saved sessions, use {START_EMPTY_HINT} (the file is moved to "
            f"{self.path}.unusable-TIMESTAMP, not deleted)."
        )

    def _open_existing(self) -> sqlite3.Connection:
        info = os.stat(self.path)
        if not stat.S_ISREG(info.st_mode):
            raise self._error(
                StateFileError, "is not a regular file", "Point --state-file to a file."
            )
        if info.st_mode & 0o077:
            raise self._error(
                StateFileError,
                f"is accessible to group or others (mode {stat.S_IMODE(info.st_mode):04o})",
                f"It holds session keys: chmod 600 {self.path}",
            )
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._validate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _validate(self, db: sqlite3.Connection) -> None:
        """Read-only checks: nothing is written before they all pass."""
        try:
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise self._error(
                StateFileCorruptError,
                f"is not a dtlsfast state file, or is corrupt ({exc})",
                self._discard_fix(),
            ) from None
        if meta.get("format") != STATE_FORMAT:
            raise self._error(
                StateFileCorruptError, "is not a dtlsfast state file", self._discard_fix()
            )
        version = meta.get("version")
        if version != STATE_VERSION and version not in MIGRATED_VERSIONS:
            raise self._error(
                StateFileVersionError,
                f"is of format version {version!r}; this dtlsfast reads version {STATE_VERSION}",
                "Run the dtlsfast version that wrote it, or " + self._discard_fix(),
            )
        file_id, check = meta.get("file_id"), meta.get("check")
        if not isinstance(file_id, bytes) or not isinstance(check, bytes):
            raise self._error(StateFileCorruptError, "has a damaged header", self._discard_fix())
        try:
            self._check_aead().decrypt(bytes(12), check, file_id)
        except InvalidTag:
            raise self._error(
                StateFileKeyError,
                "was encrypted under another key than the one given",
                "Give the key file it was written with (--state-key-file, or --ticket-key-file "
                "when it was the only key file), or " + self._discard_fix(),
            ) from None
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            gens = db.execute("SELECT gen, salt FROM generations").fetchall()
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
            gens = []
        if problems != ["ok"]:
            raise self._error(
                StateFileCorruptError,
                f"is corrupt or truncated ({problems[0]})",
                self._discard_fix(),
            )
        for gen, salt in gens:
            self._aeads[gen] = self._row_aead(salt)
        self._version = int(version)

    def _migrate(self) -> None:
        """Bring a file of an older version (checked) to this one (see the module)."""
        with self._transaction():
            if self._version == 2:
                self._db.execute(_RESOURCES_SCHEMA)
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'version'", (STATE_VERSION,))
        self._version = STATE_VERSION

    def _check_aead(self) -> AESGCM:
        return AESGCM(derive_key(self._secret, b"dtlsfast state check"))

    def _row_aead(self, salt: bytes) -> AESGCM:
        return AESGCM(derive_key(self._secret, b"dtlsfast state rows " + salt))

    def _create(self) -> sqlite3.Connection:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StateFileError(
                f"cannot create state file {self.path}: {exc.strerror}; check the directory "
                "exists and is writable",
                self.path,
            ) from None
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
        finally:
            os.close(fd)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        file_id = os.urandom(16)
        db.execute("BEGIN")
        for statement in _SCHEMA:
            db.execute(statement)
        db.executemany(
            "INSERT INTO meta(name, value) VALUES (?, ?)",
            [
                ("format", STATE_FORMAT),
                ("version", STATE_VERSION),
                ("file_id", file_id),
                ("check", self._check_aead().encrypt(bytes(12), _CHECK_PLAINTEXT, file_id)),
            ],
        )
        db.execute("COMMIT")
        return db

    def _move_aside(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = f"{self.path}.unusable-{stamp}"
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, target + suffix)
        os.replace(self.path, target)
        return target

    def begin(self) -> int:
        """One more start counted in ``meta`` (see SessionStore.begin)."""
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'starts'").fetchone()
            starts = (row[0] if row is not None and isinstance(row[0], int) else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO meta(name, value) VALUES ('starts', ?)", (starts,)
            )
        return int(starts)

    def _claim_generation(self) -> int:
        """A new generation with a fresh salt for this process's writes;
        generations no row uses any more are dropped."""
        salt = os.urandom(16)
        with self._transaction():
            self._db.execute(
                "DELETE FROM generations WHERE gen NOT IN (SELECT n >> ? FROM sessions "
                "UNION SELECT n >> ? FROM observations UNION SELECT n >> ? FROM resources)",
                (_COUNTER_BITS, _COUNTER_BITS, _COUNTER_BITS),
            )
            cursor = self._db.execute("INSERT INTO generations(salt) VALUES (?)", (salt,))
            generation = cursor.lastrowid
        if generation is None or generation > _MAX_GENERATION:
            raise self._error(StateFileError, "has run out of generations", self._discard_fix())
        self._aeads[generation] = self._row_aead(salt)
        return generation

    # -- writing ------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateFileError(
                f"cannot write state file {self.path}: {exc}; check the disk (space, "
                "permissions); the sessions are still served",
                self.path,
            ) from None

    def _seal(self, plaintext: bytes, aad: bytes) -> tuple[int, bytes]:
        if self._counter >> _COUNTER_BITS:
            self._generation, self._counter = self._claim_generation(), 0
        n = self._generation << _COUNTER_BITS | self._counter
        self._counter += 1
        return n, self._aeads[self._generation].encrypt(n.to_bytes(12, "big"), plaintext, aad)

    def apply(self, batch: StoreBatch) -> None:
        sessions: dict[int, dict[bytes, bytes | None]] = {}
        observations: dict[int, dict[bytes, bytes | None]] = {}
        dropped: dict[int, set[bytes]] = {}  # sessions whose observations go
        for key in batch.deleted_sessions:
            bucket = bucket_of(key)
            sessions.setdefault(bucket, {})[key] = None
            dropped.setdefault(bucket, set()).add(key)
            observations.setdefault(bucket, {})
        for session_key, token in batch.deleted_observations:
            observations.setdefault(bucket_of(session_key), {})[
                _observation_key(session_key, token)
            ] = None
        crc32 = zlib.crc32  # bucket_of() inlined: 100,000 records on a full save
        for record in batch.sessions:
            key = record.key
            bucket = crc32(key) % BUCKETS
            entries = sessions.get(bucket)
            if entries is None:
                entries = sessions[bucket] = {}
            entries[key] = record.encode()
        for obs in batch.observations:
            observations.setdefault(bucket_of(obs.session_key), {})[
                _observation_key(obs.session_key, obs.token)
            ] = obs.encode()
        resources = []
        for path, state in batch.resources.items():
            if len(state) > MAX_RESOURCE_STATE or len(path.encode()) > MAX_RESOURCE_STATE:
                raise StateFileError(
                    f"the saved state of resource {path[:64]!r} is over {MAX_RESOURCE_STATE} "
                    "bytes; keep a resource's saved state small",
                    self.path,
                )
            n, data = self._seal(state, _resource_aad(path))
            resources.append((path, n, data))
        with self._transaction():
            self._merge("sessions", sessions, {})
            self._merge("observations", observations, dropped)
            self._db.executemany(
                "INSERT OR REPLACE INTO resources(path, n, data) VALUES (?, ?, ?)", resources
            )

    def _merge(
        self,
        table: str,
        changes: dict[int, dict[bytes, bytes | None]],
        dropped: dict[int, set[bytes]],
    ) -> None:
        """Rewrite the buckets that ``changes`` touch (None deletes an
        entry; ``dropped`` deletes a bucket's observations of those sessions)."""
        if not changes:
            return
        if len(changes) > BUCKETS // 8:
            rows = self._db.execute(f"SELECT bucket, n, data FROM {table}").fetchall()
        else:
            rows = []
            for bucket in changes:
                rows += self._db.execute(
                    f"SELECT bucket, n, data FROM {table} WHERE bucket = ?",
                    (bucket,),
                ).fetchall()
        current = {bucket: (n, data) for bucket, n, data in rows if bucket in changes}
        upserts, deletions = [], []
        for bucket, updates in changes.items():
            row = current.get(bucket)
            entries = {} if row is None else self._bucket(table, bucket, *row)
            gone = dropped.get(bucket)
            if gone:
                entries = {k: v for k, v in entries.items() if k[1 : 1 + k[0]] not in gone}
            for key, value in updates.items():
                if value is None:
                    entries.pop(key, None)
                else:
                    entries[key] = value
            if entries:
                n, data = self._seal(_pack(entries), _aad(table, bucket))
                upserts.append((bucket, n, data))
            elif row is not None:
                deletions.append((bucket,))
        self._db.executemany(f"DELETE FROM {table} WHERE bucket = ?", deletions)
        self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", upserts)

    # -- reading ------------------------------------------------------------

    def _damaged(self, what: str) -> StateFileError:
        return self._error(StateFileCorruptError, f"has {what}", self._discard_fix())

    def _bucket(self, table: str, bucket: int, n: int, data: bytes) -> dict[bytes, bytes]:
        aead = self._aeads.get(n >> _COUNTER_BITS)
        try:
            if aead is None:
                raise InvalidTag
            return _unpack(aead.decrypt(n.to_bytes(12, "big"), data, _aad(table, bucket)))
        except (InvalidTag, OverflowError, DecodeError, IndexError):
            raise self._damaged(f"a damaged {table} record") from None

    def _buckets(self, table: str, bucket: int | None = None) -> Iterator[dict[bytes, bytes]]:
        query = f"SELECT bucket, n, data FROM {table}"
        try:
            if bucket is None:
                rows = self._db.execute(query).fetchall()
            else:
                rows = self._db.execute(query + " WHERE bucket = ?", (bucket,)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(f"an unreadable table ({exc})") from None
        for row in rows:
            yield self._bucket(table, *row)

    def load(self, key: bytes) -> SessionRecord | None:
        for entries in self._buckets("sessions", bucket_of(key)):
            value = entries.get(key)
            if value is not None:
                return self._session(key, value)
        return None

    def _session(self, key: bytes, value: bytes) -> SessionRecord:
        try:
            return SessionRecord.decode(key, value)
        except DecodeError as exc:
            raise self._damaged(f"a damaged session ({exc})") from None

    def iterate(self) -> Iterator[SessionRecord]:
        decode = SessionRecord.decode
        for entries in self._buckets("sessions"):
            for key, value in entries.items():
                try:
                    record = decode(key, value)
                except DecodeError:
                    record = self._session(key, value)  # raises, naming the file
                yield record

    def iterate_observations(self) -> Iterator[ObservationRecord]:
        for entries in self._buckets("observations"):
            for key, value in entries.items():
                try:
                    session_key = key[1 : 1 + key[0]]
                    yield ObservationRecord.decode(session_key, key[1 + key[0] :], value)
                except (DecodeError, IndexError) as exc:
                    raise self._damaged(f"a damaged observation ({exc})") from None

    def iterate_resources(self) -> Iterator[tuple[str, bytes]]:
        """Every saved resource state (see ResourceStore)."""
        try:
            rows = self._db.execute("SELECT path, n, data FROM resources").fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(f"an unreadable table ({exc})") from None
        for path, n, data in rows:
            aead = self._aeads.get(n >> _COUNTER_BITS) if isinstance(n, int) else None
            try:
                if aead is None or not isinstance(path, str):
                    raise InvalidTag
                state = aead.decrypt(n.to_bytes(12, "big"), data, _resource_aad(path))
            except (InvalidTag, OverflowError, TypeError):
                raise self._damaged("a damaged resources record") from None
            yield path, state

    def bytes_used(self) -> int:
        """Bytes of the file's pages in use (free pages left out)."""
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(page_size * (pages - free))

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (SQLite also does it by itself)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def __enter__(self) -> SqliteSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SqliteSessionStore {self.path}>"


__all__ = ["MIGRATED_VERSIONS", "START_EMPTY_HINT", "STATE_VERSION", "SqliteSessionStore"]
