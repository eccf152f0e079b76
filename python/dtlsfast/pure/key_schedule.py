"""The TLS 1.2 key schedule one step per call: the pure-Python twin of the
Rust ``derive_keys`` and ``key_block``, on :mod:`dtlsfast.handshake.prf`,
handing back the record ciphers of one side.

RFC 4279 §2, RFC 5489 §2 and RFC 8422 §5.10 (premaster secret), RFC 5246
§8.1 (master secret), §6.3 (key block: a client reads with the server's
write key and IV and writes with its own, a server the reverse); RFC 7627
§4 (extended master secret).
"""

from __future__ import annotations

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake import prf as _prf
from dtlsfast.handshake.suites import AEAD_KEY_IV
from dtlsfast.pure.record_cipher import RecordCipher


def derive_keys(
    hash_name: str,
    aead: str,
    psk: bytes | None,
    other_secret: bytes | None,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
    client: bool,
) -> tuple[bytes, RecordCipher, RecordCipher]:
    """The premaster secret (:func:`premaster_secret`), the master secret
    (extended when ``session_hash`` is given) and the key block of ``aead``:
    ``(master_secret, read_cipher, write_cipher)`` of the client
    (``client``) or the server."""
    _prf.hash_length(hash_name)  # ConfigurationError for an unknown hash
    _aead_lengths(aead)
    premaster = premaster_secret(psk, other_secret)
    if session_hash is None:
        master = _prf.master_secret(hash_name, premaster, client_random, server_random)
    else:
        master = _prf.extended_master_secret(hash_name, premaster, session_hash)
    return (master, *key_block(hash_name, aead, master, client_random, server_random, client))


def premaster_secret(psk: bytes | None, other_secret: bytes | None) -> bytes:
    """With a PSK, RFC 4279 §2's premaster secret of ``psk`` and
    ``other_secret`` (the ECDH shared secret of ECDHE_PSK, RFC 5489 §2, or
    None for plain PSK); without one, the ECDH shared secret itself
    (ECDHE_ECDSA, RFC 8422 §5.10), which must then be given."""
    if psk is not None:
        return _prf.psk_premaster_secret(psk, other_secret)
    if other_secret is None:
        raise ConfigurationError(
            "no premaster secret: give the PSK, the ECDH shared secret or both"
        )
    return bytes(other_secret)


def key_block(
    hash_name: str,
    aead: str,
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    client: bool,
) -> tuple[RecordCipher, RecordCipher]:
    """The key block of a known master secret (a resumed session's, RFC
    5246 §7.3) and this handshake's randoms: ``(read_cipher,
    write_cipher)`` of the client (``client``) or the server."""
    if client.__class__ is not bool:  # as the Rust binding takes it
        raise TypeError(f"client must be a bool, not {type(client).__name__}")
    _prf.hash_length(hash_name)
    key_length, iv_length = _aead_lengths(aead)
    if len(master) != _prf.MASTER_SECRET_LENGTH:
        raise ConfigurationError(
            f"a master secret is {_prf.MASTER_SECRET_LENGTH} bytes, not {len(master)}"
        )
    keys = _prf.split_key_block(
        hash_name, master, client_random, server_random, key_length, iv_length
    )
    client_cipher = RecordCipher(aead, keys.client_write_key, keys.client_write_iv)
    server_cipher = RecordCipher(aead, keys.server_write_key, keys.server_write_iv)
    return (server_cipher, client_cipher) if client else (client_cipher, server_cipher)


def _aead_lengths(aead: str) -> tuple[int, int]:
    lengths = AEAD_KEY_IV.get(aead)
    if lengths is None:
        raise ConfigurationError(f"unknown AEAD {aead!r}; expected one of {', '.join(AEAD_KEY_IV)}")
    return lengths


__all__ = ["derive_keys", "key_block"]
