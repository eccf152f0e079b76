"""One server connection to and from a :class:`~dtlsfast.store.records.SessionRecord`.

The session table exports the record state of a settled session (RFC 6347
§4.1: keys, epochs, write sequence number, replay window, peer address);
this module adds what the handshake settled (suite, extended master secret
of RFC 7627, PSK identity or the peer's key, connection IDs of RFC 9146)
and turns a record back into those values, and reads or replaces the peer
address in a record state. A full :class:`~dtlsfast.connection.DtlsConnection`
that is established but not settled yet is exported the same way, through
a scratch table.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.suites import SUITES_BY_CODE
from dtlsfast.pure.record_cipher import AEAD_NAMES, key_and_iv_lengths
from dtlsfast.store.records import SessionRecord

if TYPE_CHECKING:
    from dtlsfast.handshake.cert_types import CertificateType
    from dtlsfast.handshake.signatures import VerifyingKey
    from dtlsfast.handshake.suites import CipherSuite


def build_record(
    key: bytes,
    state: bytes,
    created: int,
    *,
    cipher_suite: CipherSuite,
    extended_master_secret: bool,
    next_message_seq: int,
    peer_last_message_seq: int | None,
    psk_identity: bytes | None,
    peer_certificate_type: CertificateType | None,
    peer_public_key: VerifyingKey | None,
    peer_certificates: list[x509.Certificate] | None,
    local_cid: bytes | None = None,
    peer_cid: bytes | None = None,
    record_size_limit: int | None = None,
) -> SessionRecord:
    """A session record from a connection's values (keys as DER)."""
    key_der = None
    if peer_public_key is not None:
        key_der = peer_public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return SessionRecord(
        key=key,
        record_state=state,
        cipher_suite=cipher_suite.code,
        extended_master_secret=extended_master_secret,
        created=created,
        next_message_seq=next_message_seq,
        peer_last_message_seq=peer_last_message_seq,
        psk_identity=psk_identity,
        peer_certificate_type=None if peer_certificate_type is None else int(peer_certificate_type),
        peer_public_key=key_der,
        peer_certificates=tuple(c.public_bytes(Encoding.DER) for c in peer_certificates or ()),
        local_cid=local_cid,
        peer_cid=peer_cid,
        record_size_limit=record_size_limit,
    )


class PeerValues(NamedTuple):
    """What a record says of the handshake, as the connections hold it (a
    NamedTuple: made 100,000 times in a restore)."""

    cipher_suite: CipherSuite
    peer_public_key: VerifyingKey | None = None
    peer_certificates: list[x509.Certificate] | None = None
    peer_certificate_type: CertificateType | None = None
    read_epoch: int = 0


def peer_values(record: SessionRecord) -> PeerValues:
    """The record's suite and peer credentials; ConfigurationError if unusable."""
    read_epoch = int.from_bytes(record.record_state[4:6], "big")
    psk = (
        record.peer_public_key is None
        and record.peer_certificate_type is None
        and not record.peer_certificates
    )
    if psk:
        # PSK: nothing to parse, and one shared tuple per suite and epoch.
        shared = _PSK_VALUES.get((record.cipher_suite, read_epoch))
        if shared is not None:
            return shared
    suite = SUITES_BY_CODE.get(record.cipher_suite)
    if suite is None:
        raise ConfigurationError(f"a stored session has unknown suite {record.cipher_suite:#06x}")
    if psk:
        values = PeerValues(suite, read_epoch=read_epoch)
        if len(_PSK_VALUES) < _MAX_SHARED:
            _PSK_VALUES[(record.cipher_suite, read_epoch)] = values
        return values
    from dtlsfast.handshake.cert_types import CertificateType

    try:
        peer_key = None
        if record.peer_public_key is not None:
            peer_key = load_der_public_key(record.peer_public_key)
        certificates = [x509.load_der_x509_certificate(c) for c in record.peer_certificates]
        cert_type = (
            None
            if record.peer_certificate_type is None
            else CertificateType(record.peer_certificate_type)
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"a stored session's peer credentials are unusable: {exc}"
        ) from None
    return PeerValues(
        suite,
        peer_key,  # type: ignore[arg-type]
        certificates or None,
        cert_type,
        read_epoch,
    )


#: (suite code, read epoch) -> the PeerValues of a PSK session: a handful in use.
_PSK_VALUES: dict[tuple[int, int], PeerValues] = {}
_MAX_SHARED = 256


def restored_max_payload(config: Any, record: SessionRecord) -> int:
    """The largest application payload of one record of a restored session:
    what fits the MTU after the header, explicit nonce and tag (RFC 5246
    §6.2.1's 2^14 at most), and no more than the record_size_limit the peer
    sent (RFC 8449 §4), as the session had before the restart."""
    mtu = int(config.mtu)
    key = (record.cipher_suite, mtu, record.record_size_limit)
    found = _MAX_PAYLOADS.get(key)
    if found is not None:
        return found
    suite = SUITES_BY_CODE.get(record.cipher_suite)
    if suite is None:
        raise ConfigurationError(f"a stored session has unknown suite {record.cipher_suite:#06x}")
    if len(_MAX_PAYLOADS) >= _MAX_SHARED:
        _MAX_PAYLOADS.clear()
    overhead = 13 + suite.record_iv_length + suite.tag_length
    payload = max(0, min(1 << 14, mtu - overhead))
    if record.record_size_limit is not None:
        payload = min(payload, record.record_size_limit)
    _MAX_PAYLOADS[key] = payload
    return payload


#: (suite code, MTU, record_size_limit) -> max payload: a handful in use (bounded).
_MAX_PAYLOADS: dict[tuple[int, int, int | None], int] = {}


def _address_offset(state: bytes) -> int:
    """Where the address family byte of a record state is."""
    offset: int = _ADDRESS_OFFSETS[state[1]]
    size = int.from_bytes(state[offset : offset + 2], "big")
    return offset + 3 + (8 + (size + 7) // 8 if state[offset + 2] else 0)


def record_address(state: bytes) -> tuple[object, ...] | None:
    """The peer address a record state holds (its tail, read without
    building the ciphers); ConfigurationError if malformed."""
    try:
        offset = _address_offset(state)
        family = state[offset]
        if family == 4:
            host = socket.inet_ntop(socket.AF_INET, state[offset + 1 : offset + 5])
            return (host, int.from_bytes(state[offset + 5 : offset + 7], "big"))
        if family == 0:
            return None
        # inet_ntop spells addresses as the socket module does ("::ffff:1.2.3.4").
        host = socket.inet_ntop(socket.AF_INET6, state[offset + 1 : offset + 17])
        port, flowinfo, scope_id = _V6_TAIL.unpack_from(state, offset + 17)
        return (host, port, flowinfo, scope_id)
    except (IndexError, KeyError, ValueError, OSError, struct.error):
        raise ConfigurationError("a stored session's record state is malformed") from None


def without_address(state: bytes) -> bytes:
    """The record state with no address (importing it binds none)."""
    try:
        return state[: _address_offset(state)] + b"\0"
    except (IndexError, KeyError):
        raise ConfigurationError("a stored session's record state is malformed") from None


def with_address(state: bytes, address: Any) -> bytes:
    """The record state with ``address`` (a socket address tuple) in place
    of whatever it had: what the table exports for a bound session."""
    try:
        head = state[: _address_offset(state)]
        host, port = str(address[0]), int(address[1])
        if len(address) == 2:
            return head + b"\4" + socket.inet_pton(socket.AF_INET, host) + port.to_bytes(2, "big")
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return head + b"\6" + packed + _V6_TAIL.pack(port, int(address[2]), int(address[3]))
    except (IndexError, KeyError, ValueError, TypeError, OSError, struct.error):
        raise ConfigurationError(f"cannot save the address {address!r} of a session") from None


_V6_TAIL = struct.Struct(">HII")
#: Where the window begins in a record state, by AEAD index: after the
#: 16-byte head and both directions' key and IV.
_ADDRESS_OFFSETS = {
    index: 16 + 2 * sum(key_and_iv_lengths(name)) for index, name in enumerate(AEAD_NAMES)
}


__all__ = [
    "PeerValues",
    "build_record",
    "peer_values",
    "record_address",
    "restored_max_payload",
    "with_address",
    "without_address",
]
