"""The TLS 1.2 key schedule one step per call: the pure-Python twin of the
Rust ``prf``, ``derive_keys`` and ``verify_data``, on
:mod:`dtlsfast.handshake.prf`.

RFC 5246 §5 (PRF), §8.1 (master secret), §6.3 (key block), §7.4.9
(verify_data); RFC 7627 §4 (extended master secret).
"""

from __future__ import annotations

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake import prf as _prf
from dtlsfast.handshake.suites import AEAD_KEY_IV
from dtlsfast.pure._args import uint


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) on SHA-256 or SHA-384, ``length`` bytes."""
    return _prf.prf(hash_name, secret, label, seed, uint(length, "length", _prf.MAX_PRF_OUTPUT))


def derive_keys(
    hash_name: str,
    aead: str,
    premaster: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None = None,
) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The master secret (extended when ``session_hash`` is given) and the
    key block of ``aead``: ``(master_secret, client_write_key,
    server_write_key, client_write_iv, server_write_iv)``."""
    _prf.hash_length(hash_name)  # ConfigurationError for an unknown hash
    lengths = AEAD_KEY_IV.get(aead)
    if lengths is None:
        raise ConfigurationError(f"unknown AEAD {aead!r}; expected one of {', '.join(AEAD_KEY_IV)}")
    if session_hash is None:
        master = _prf.master_secret(hash_name, premaster, client_random, server_random)
    else:
        master = _prf.extended_master_secret(hash_name, premaster, session_hash)
    keys = _prf.split_key_block(hash_name, master, client_random, server_random, *lengths)
    return (
        master,
        keys.client_write_key,
        keys.server_write_key,
        keys.client_write_iv,
        keys.server_write_iv,
    )


def verify_data(
    hash_name: str, master: bytes, label: bytes, handshake_hash: bytes, length: int = 12
) -> bytes:
    """Finished.verify_data (RFC 5246 §7.4.9)."""
    return _prf.verify_data(
        hash_name, master, label, handshake_hash, uint(length, "length", _prf.MAX_PRF_OUTPUT)
    )


__all__ = ["derive_keys", "prf", "verify_data"]
