"""The TLS 1.2 key schedule: PRF, premaster and master secrets, key block and
Finished verify_data.

References: RFC 5246 §5 (P_hash and the PRF), §8.1 (master secret), §6.3 (key
block), §7.4.9 (verify_data); RFC 4279 §2 (the PSK premaster secret) and
RFC 5489 §2 (its ECDHE_PSK form); RFC 7627 §4 (extended master secret);
RFC 6347 §4.2.6 (DTLS uses the TLS 1.2 PRF unchanged).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dtlsfast.exceptions import ConfigurationError

if TYPE_CHECKING:
    from dtlsfast.handshake.suites import CipherSuite

#: Hashes the TLS 1.2 PRF is defined with here (RFC 5246 §5, RFC 5288 §3).
PRF_HASHES = ("sha256", "sha384")

MASTER_SECRET_LENGTH = 48
#: The most PRF output one call may ask for: TLS needs at most 88 bytes (a
#: ChaCha20 key block); the bound keeps a mistake from allocating without limit.
MAX_PRF_OUTPUT = 1 << 16


def _check_hash(hash_name: str) -> str:
    if hash_name not in PRF_HASHES:
        raise ConfigurationError(
            f"unsupported PRF hash {hash_name!r}; use one of {', '.join(PRF_HASHES)}"
        )
    return hash_name


def hash_length(hash_name: str) -> int:
    """Output length in bytes of ``hash_name`` (32 for sha256, 48 for sha384)."""
    return hashlib.new(_check_hash(hash_name)).digest_size


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash(secret, seed) of RFC 5246 §5, cut to ``length`` bytes.

    A(0) = seed, A(i) = HMAC(secret, A(i-1)); output HMAC(secret, A(i) + seed)...
    """
    _check_hash(hash_name)
    if not 0 <= length <= MAX_PRF_OUTPUT:
        raise ConfigurationError(f"PRF output length must be 0..{MAX_PRF_OUTPUT}, not {length}")
    output = bytearray()
    a = seed
    while len(output) < length:
        a = hmac.digest(secret, a, hash_name)
        output += hmac.digest(secret, a + seed, hash_name)
    return bytes(output[:length])


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label + seed) (RFC 5246 §5)."""
    return p_hash(hash_name, secret, label + seed, length)


def psk_premaster_secret(psk: bytes, other_secret: bytes | None = None) -> bytes:
    """The premaster secret of a PSK key exchange (RFC 4279 §2)::

        struct { opaque other_secret<0..2^16-1>; opaque psk<0..2^16-1>; }

    For plain PSK ``other_secret`` is ``len(psk)`` zero bytes (pass None); for
    ECDHE_PSK it is the ECDH shared secret (RFC 5489 §2).
    """
    if not psk:
        raise ConfigurationError("the PSK is empty; give a key of at least one byte")
    if len(psk) > 0xFFFF:
        raise ConfigurationError(f"the PSK is {len(psk)} bytes; at most 65535 fit (RFC 4279)")
    if other_secret is None:
        other_secret = bytes(len(psk))
    if len(other_secret) > 0xFFFF:
        raise ConfigurationError(f"other_secret is {len(other_secret)} bytes; at most 65535 fit")
    return len(other_secret).to_bytes(2, "big") + other_secret + len(psk).to_bytes(2, "big") + psk


def master_secret(
    hash_name: str, premaster: bytes, client_random: bytes, server_random: bytes
) -> bytes:
    """PRF(premaster, "master secret", client_random + server_random)[0..47]
    (RFC 5246 §8.1)."""
    _check_randoms(client_random, server_random)
    return prf(
        hash_name, premaster, b"master secret", client_random + server_random, MASTER_SECRET_LENGTH
    )


def extended_master_secret(hash_name: str, premaster: bytes, session_hash: bytes) -> bytes:
    """PRF(premaster, "extended master secret", session_hash)[0..47] (RFC 7627 §4).

    ``session_hash`` is the transcript hash up to and including
    ClientKeyExchange (RFC 7627 §3).
    """
    return prf(hash_name, premaster, b"extended master secret", session_hash, MASTER_SECRET_LENGTH)


@dataclass(frozen=True)
class KeyMaterial:
    """The write keys and implicit IVs of both directions (RFC 5246 §6.3).

    Its repr names only the lengths: keys never reach logs.
    """

    client_write_key: bytes
    server_write_key: bytes
    client_write_iv: bytes
    server_write_iv: bytes

    def __repr__(self) -> str:
        return (
            f"KeyMaterial(key_length={len(self.client_write_key)}, "
            f"iv_length={len(self.client_write_iv)}, <secret>)"
        )

    __str__ = __repr__


def key_block(
    suite: CipherSuite, master: bytes, client_random: bytes, server_random: bytes
) -> KeyMaterial:
    """Expand the master secret into the suite's keys and IVs (RFC 5246 §6.3);
    see :func:`split_key_block`."""
    return split_key_block(
        suite.prf_hash,
        master,
        client_random,
        server_random,
        suite.key_length,
        suite.fixed_iv_length,
    )


def split_key_block(
    hash_name: str,
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    key_length: int,
    iv_length: int,
) -> KeyMaterial:
    """key_block = PRF(master, "key expansion", server_random + client_random),
    cut in order into client_write_key, server_write_key, client_write_IV,
    server_write_IV (RFC 5246 §6.3). AEAD suites have no MAC keys (RFC 5246
    §6.2.3.3)."""
    _check_randoms(client_random, server_random)
    k, v = key_length, iv_length
    block = prf(hash_name, master, b"key expansion", server_random + client_random, 2 * k + 2 * v)
    return KeyMaterial(
        client_write_key=block[0:k],
        server_write_key=block[k : 2 * k],
        client_write_iv=block[2 * k : 2 * k + v],
        server_write_iv=block[2 * k + v : 2 * k + 2 * v],
    )


def verify_data(
    hash_name: str, master: bytes, label: bytes, handshake_hash: bytes, length: int = 12
) -> bytes:
    """PRF(master, label, Hash(handshake_messages))[0..length-1] (RFC 5246 §7.4.9).

    ``label`` is ``b"client finished"`` or ``b"server finished"``.
    """
    if label not in (b"client finished", b"server finished"):
        raise ConfigurationError(
            f"Finished label must be b'client finished' or b'server finished', not {label!r}"
        )
    return prf(hash_name, master, label, handshake_hash, length)


def _check_randoms(client_random: bytes, server_random: bytes) -> None:
    if len(client_random) != 32 or len(server_random) != 32:
        raise ConfigurationError(
            f"hello randoms are 32 bytes; got {len(client_random)} and {len(server_random)}"
        )


__all__ = [
    "MASTER_SECRET_LENGTH",
    "MAX_PRF_OUTPUT",
    "PRF_HASHES",
    "KeyMaterial",
    "extended_master_secret",
    "hash_length",
    "key_block",
    "master_secret",
    "p_hash",
    "prf",
    "psk_premaster_secret",
    "split_key_block",
    "verify_data",
]
