"""Key files: the shared secret from which ticket keys (RFC 5077 §5.5) and
the state file's encryption key are derived.

A key file holds at least :data:`MIN_SECRET_LENGTH` random bytes (``head -c
64 /dev/urandom > PATH; chmod 600 PATH``). Servers and worker processes that
read the same file derive the same keys, so they need not talk to each other.
A missing file is created with :data:`NEW_SECRET_LENGTH` fresh random bytes
and mode 0600, atomically: the secret is written to a private temporary file
and hard-linked into place, so that two processes starting at once end up
reading the same complete secret. An existing file that is too short, not a
regular file, or readable by group or others is refused with a
:class:`~dtlsfast.exceptions.KeyFileError` that names the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import stat

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dtlsfast.exceptions import KeyFileError

#: RFC 5077 §5.5 asks for keys with enough entropy; 32 bytes is 256 bits.
MIN_SECRET_LENGTH = 32
#: Bytes of a newly created key file.
NEW_SECRET_LENGTH = 64
#: A key file larger than this is not a key file (a wrong path, most likely).
MAX_SECRET_LENGTH = 4096


def load_or_create_secret(path: str | os.PathLike[str]) -> bytes:
    """The secret in the key file at ``path``, created first if missing."""
    name = os.fspath(path)
    try:
        return read_secret(name)
    except FileNotFoundError:
        pass
    _create(name)
    return read_secret(name)


def read_secret(path: str | os.PathLike[str]) -> bytes:
    """The secret in an existing key file; FileNotFoundError if there is none,
    :class:`KeyFileError` if it cannot be used."""
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(
            f"cannot read key file {name}: {exc.strerror}; check the path and its permissions",
            name,
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(
                f"key file {name} is not a regular file; point to a file holding at least "
                f"{MIN_SECRET_LENGTH} random bytes (head -c 64 /dev/urandom > {name})",
                name,
            )
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"key file {name} is readable or writable by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); it holds a secret: chmod 600 {name}",
                name,
            )
        secret = os.read(fd, MAX_SECRET_LENGTH + 1)
    finally:
        os.close(fd)
    if len(secret) < MIN_SECRET_LENGTH:
        raise KeyFileError(
            f"key file {name} holds {len(secret)} bytes; it needs at least {MIN_SECRET_LENGTH} "
            f"random bytes: head -c 64 /dev/urandom > {name} (or remove it and a new one is "
            "created)",
            name,
        )
    if len(secret) > MAX_SECRET_LENGTH:
        raise KeyFileError(
            f"key file {name} is larger than {MAX_SECRET_LENGTH} bytes, so it is probably not a "
            f"key file; point to a file of {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} random bytes",
            name,
        )
    return secret


def derive_key(secret: bytes, purpose: bytes, length: int = 32) -> bytes:
    """A key for one ``purpose`` (HKDF-SHA256, RFC 5869) from a key file's
    secret; different purposes give independent keys."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"dtlsfast key file v1", info=purpose
    ).derive(secret)


def _create(name: str) -> None:
    directory = os.path.dirname(os.path.abspath(name))
    temporary = os.path.join(directory, f".{os.path.basename(name)}.{os.getpid()}.new")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(
            f"cannot create key file {name}: {exc.strerror}; create it yourself "
            f"(head -c 64 /dev/urandom > {name}; chmod 600 {name})",
            name,
        ) from None
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, os.urandom(NEW_SECRET_LENGTH))
            os.fsync(fd)
        finally:
            os.close(fd)
        # Atomic, and never replaces a file: if another process created it
        # first, theirs is the one everybody reads.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, name)
    finally:
        os.unlink(temporary)


__all__ = [
    "MIN_SECRET_LENGTH",
    "NEW_SECRET_LENGTH",
    "derive_key",
    "load_or_create_secret",
    "read_secret",
]
