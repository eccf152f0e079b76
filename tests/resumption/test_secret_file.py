"""Key files (dtlsfast.secret_file): created with a fresh secret and mode
0600 when missing, refused with a typed error naming the file when too short,
too open or not a file, and the same secret for every process that reads it."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from dtlsfast.exceptions import ConfigurationError, KeyFileError
from dtlsfast.secret_file import (
    MIN_SECRET_LENGTH,
    NEW_SECRET_LENGTH,
    derive_key,
    load_or_create_secret,
    read_secret,
)


def test_a_missing_file_is_created_private_with_a_fresh_secret(tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    old = os.umask(0)  # even a permissive umask gives 0600
    try:
        secret = load_or_create_secret(path)
    finally:
        os.umask(old)
    assert len(secret) == NEW_SECRET_LENGTH
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == secret
    assert load_or_create_secret(tmp_path / "other.key") != secret
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.key", "ticket.key"]


def test_an_existing_secret_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"\x07" * MIN_SECRET_LENGTH)
    path.chmod(0o400)
    assert load_or_create_secret(path) == b"\x07" * MIN_SECRET_LENGTH


def test_a_short_file_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "short.key"
    path.write_bytes(b"x" * (MIN_SECRET_LENGTH - 1))
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as caught:
        load_or_create_secret(path)
    assert str(path) in str(caught.value) and "head -c 64 /dev/urandom" in str(caught.value)
    assert caught.value.path == str(path)
    assert isinstance(caught.value, ConfigurationError)
    assert path.read_bytes() == b"x" * (MIN_SECRET_LENGTH - 1)  # left alone


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "open.key"
    path.write_bytes(os.urandom(64))
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"chmod 600 {path}"):
        read_secret(path)


def test_a_directory_or_a_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_secret(tmp_path)
    big = tmp_path / "big"
    big.write_bytes(b"\0" * 10_000)
    big.chmod(0o600)
    with pytest.raises(KeyFileError, match="probably not a key file"):
        read_secret(big)


def test_an_uncreatable_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create key file"):
        load_or_create_secret(tmp_path / "missing-dir" / "k")


def _load(path: str, queue: multiprocessing.Queue[bytes]) -> None:
    queue.put(load_or_create_secret(path))


def test_processes_creating_the_file_at_once_share_one_secret(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.key")
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bytes] = ctx.Queue()
    workers = [ctx.Process(target=_load, args=(path, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    secrets = {queue.get(timeout=30) for _ in workers}
    for w in workers:
        w.join(30)
    assert secrets == {read_secret(path)}
    assert os.listdir(tmp_path) == ["shared.key"]  # no temporary file left


def test_derived_keys_depend_on_secret_and_purpose() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert derive_key(a, b"x") == derive_key(a, b"x")
    assert len({derive_key(a, b"x"), derive_key(a, b"y"), derive_key(b, b"x")}) == 3
    assert len(derive_key(a, b"x", 48)) == 48
