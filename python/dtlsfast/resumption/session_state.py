"""What a server keeps of a session to resume it, and when it may.

:class:`ResumptionState` is the session state of RFC 5246 §7.4.1.2 and RFC
5077 §4 (protocol version, cipher suite, master secret, the client's identity,
creation time) plus the extended-master-secret flag that RFC 7627 §5.3 makes
part of it, and the lifetime. One binary encoding (versioned, every field
bounded) serves the session tickets, which seal it (:mod:`.tickets`), and the
session-ID cache (:mod:`.session_cache`). :func:`refusal` is the RFC 7627 §5.3
rule for the server; :func:`client_refusal` the one for the client.
"""

from __future__ import annotations

import enum
import math
import struct
from typing import Any, NamedTuple

from dtlsfast.byte_reader import ByteReader
from dtlsfast.exceptions import ConfigurationError, DecodeError
from dtlsfast.handshake.constants import DTLS_1_2

#: Version of the encoding below; a state of another version is refused.
STATE_FORMAT = 1
MASTER_SECRET_LENGTH = 48
#: Bounds: a ticket is at most 65,535 bytes (RFC 5077 §3.3), and a state
#: this large would already cost several datagrams.
MAX_IDENTITY_LENGTH = 1024
MAX_PUBLIC_KEY_LENGTH = 1024
MAX_CERTIFICATES = 8
MAX_CERTIFICATE_BYTES = 16384
MAX_LIFETIME = 7 * 24 * 3600  # RFC 5077 §5.6 suggests a bounded lifetime
_MAX_CREATED = (1 << 64) - 1

# format(1) version(2) suite(2) flags(1) created(8) lifetime(4) master(48)
_HEAD = struct.Struct(">BHHBQI48s")
# The same, then a PSK identity's length.
_PSK_HEAD = struct.Struct(">BHHBQI48sH")
_FLAG_EMS = 1
_FLAG_PSK = 2
_FLAG_PEER_KEY = 4
_FLAG_PEER_TYPE = 8
_new_tuple = tuple.__new__


class ResumptionFailure(enum.Enum):
    """Why a ticket or session ID was not resumed (the counter is
    ``resumption_refused_<value>``); the handshake goes on as a full one."""

    MALFORMED = "malformed"
    """Too short, too long, or its state does not decode."""
    UNKNOWN_KEY = "unknown_key"
    """Sealed under a key not accepted now: foreign, or two periods old."""
    BAD_AUTH = "bad_auth"
    """The AEAD tag does not verify: forged or corrupt."""
    BAD_VERSION = "bad_version"
    """A state encoding of another version."""
    EXPIRED = "expired"
    FUTURE = "future"
    """Created later than now (beyond the allowed clock skew)."""
    UNKNOWN_SESSION = "unknown_session"
    """A session ID the cache does not hold (never, or evicted)."""
    EMS_MISSING = "ems_missing"
    """RFC 7627 §5.3: the session used extended master secret, the new
    ClientHello does not offer it."""
    NO_EMS = "no_ems"
    """RFC 7627 §5.3: the session did not use extended master secret (the
    ClientHello offers it, or EMS is required, or legacy resumption is off)."""
    PARAMETERS = "parameters"
    """The ClientHello does not offer the session's suite, or the session's
    PSK identity or peer key is no longer accepted."""

    @property
    def counter(self) -> str:
        return f"resumption_refused_{self.value}"


class _Fields(NamedTuple):
    master_secret: bytes
    cipher_suite: int
    extended_master_secret: bool
    created: int
    lifetime: int
    psk_identity: bytes | None = None
    peer_certificate_type: int | None = None
    peer_public_key: bytes | None = None
    peer_certificates: tuple[bytes, ...] = ()
    version: int = DTLS_1_2


class ResumptionState(_Fields):
    """One resumable session (see the module): an immutable tuple of

    - ``master_secret``, ``cipher_suite`` (the suite's two-byte code),
      ``extended_master_secret``;
    - ``created``: seconds since the epoch when the full handshake completed;
      ``lifetime``: seconds the session may be resumed for, from ``created``;
    - ``psk_identity``; ``peer_certificate_type``: the RFC 7250 certificate
      type the peer authenticated with (X.509 or raw public key), None for
      PSK; ``peer_public_key``: the peer's authenticated key as
      SubjectPublicKeyInfo DER; ``peer_certificates``: the peer's chain as
      DER, leaf first (empty for PSK and raw keys);
    - ``version``.

    The constructor (and :meth:`decode` and ``_replace``) checks every
    bound, ConfigurationError if one is not met; the tuple's own ``_make``
    does not. :meth:`negotiated` is the server's own builder for the
    session it has just negotiated, which checks only the fields of the
    peer's choosing. A tuple rather than a frozen dataclass: built once per
    full handshake, it costs one allocation, not one ``object.__setattr__``
    per field.
    """

    __slots__ = ()

    def __new__(
        cls,
        master_secret: bytes,
        cipher_suite: int,
        extended_master_secret: bool,
        created: int,
        lifetime: int,
        psk_identity: bytes | None = None,
        peer_certificate_type: int | None = None,
        peer_public_key: bytes | None = None,
        peer_certificates: tuple[bytes, ...] = (),
        version: int = DTLS_1_2,
    ) -> ResumptionState:
        if len(master_secret) != MASTER_SECRET_LENGTH:
            raise ConfigurationError(
                f"a master secret is {MASTER_SECRET_LENGTH} bytes, got {len(master_secret)}"
            )
        if not (
            isinstance(cipher_suite, int)
            and isinstance(version, int)
            and isinstance(created, int)
            and isinstance(lifetime, int)
            and 0 <= cipher_suite <= 0xFFFF
            and 0 <= version <= 0xFFFF
            and 0 <= created <= _MAX_CREATED
            and 0 <= lifetime <= MAX_LIFETIME
        ):
            # One test for the usual case (every state decoded); the checks
            # one by one say which field is wrong.
            _check_range(cipher_suite, 0xFFFF, "cipher_suite")
            _check_range(version, 0xFFFF, "version")
            _check_range(created, _MAX_CREATED, "created")
            _check_range(lifetime, MAX_LIFETIME, "lifetime")
        if peer_certificate_type is not None:
            _check_range(peer_certificate_type, 0xFE, "peer_certificate_type")
        _check_peer(psk_identity, peer_public_key, peer_certificates)
        return _new_tuple(
            cls,
            (
                master_secret,
                cipher_suite,
                extended_master_secret,
                created,
                lifetime,
                psk_identity,
                peer_certificate_type,
                peer_public_key,
                peer_certificates,
                version,
            ),
        )

    def __repr__(self) -> str:
        # The master secret is the session's key: never in a log line or a
        # traceback (the tuple's own repr would print it).
        fields = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if name != "master_secret"
        )
        return f"ResumptionState(master_secret=<{len(self.master_secret)} bytes>, {fields})"

    @classmethod
    def negotiated(
        cls,
        master_secret: bytes,
        cipher_suite: int,
        extended_master_secret: bool,
        created: int,
        lifetime: int,
        psk_identity: bytes | None = None,
        peer_certificate_type: int | None = None,
        peer_public_key: bytes | None = None,
        peer_certificates: tuple[bytes, ...] = (),
    ) -> ResumptionState:
        """The state of a DTLS 1.2 session this process has just negotiated.
        The master secret (the PRF's 48 bytes), the suite, the certificate
        type and the times are its own and not checked again; the fields the
        peer chose are (ConfigurationError if the PSK identity, key or chain
        is too large to keep), but nothing is done for those a PSK session
        does not have."""
        if (
            peer_public_key is not None
            or peer_certificates
            or (psk_identity is not None and len(psk_identity) > MAX_IDENTITY_LENGTH)
        ):
            _check_peer(psk_identity, peer_public_key, peer_certificates)
        return _new_tuple(
            cls,
            (
                master_secret,
                cipher_suite,
                extended_master_secret,
                created,
                lifetime,
                psk_identity,
                peer_certificate_type,
                peer_public_key,
                peer_certificates,
                DTLS_1_2,
            ),
        )

    def _replace(self, **changes: Any) -> ResumptionState:
        """A copy with ``changes``, checked as by the constructor."""
        return ResumptionState(**{**self._asdict(), **changes})

    def expires(self) -> int:
        return self.created + self.lifetime

    def age_failure(self, now: float, clock_skew: float = 60.0) -> ResumptionFailure | None:
        """EXPIRED or FUTURE if the state cannot be resumed at ``now``."""
        if now >= self.expires():
            return ResumptionFailure.EXPIRED
        if self.created > now + clock_skew:
            return ResumptionFailure.FUTURE
        return None

    def encode(self) -> bytes:
        identity = self.psk_identity
        if (
            identity is not None
            and self.peer_certificate_type is None
            and self.peer_public_key is None
            and not self.peer_certificates
        ):
            # A PSK session (every ticket a PSK gateway issues): the same
            # bytes as below, in one pack.
            return (
                _PSK_HEAD.pack(
                    STATE_FORMAT,
                    self.version,
                    self.cipher_suite,
                    _FLAG_PSK | _FLAG_EMS if self.extended_master_secret else _FLAG_PSK,
                    self.created,
                    self.lifetime,
                    self.master_secret,
                    len(identity),
                )
                + identity
                + b"\x00"
            )
        flags = (
            (_FLAG_EMS if self.extended_master_secret else 0)
            | (_FLAG_PSK if self.psk_identity is not None else 0)
            | (_FLAG_PEER_KEY if self.peer_public_key is not None else 0)
            | (_FLAG_PEER_TYPE if self.peer_certificate_type is not None else 0)
        )
        parts = [
            _HEAD.pack(
                STATE_FORMAT,
                self.version,
                self.cipher_suite,
                flags,
                self.created,
                self.lifetime,
                self.master_secret,
            )
        ]
        if self.psk_identity is not None:
            parts += [len(self.psk_identity).to_bytes(2, "big"), self.psk_identity]
        if self.peer_certificate_type is not None:
            parts.append(bytes([self.peer_certificate_type]))
        if self.peer_public_key is not None:
            parts += [len(self.peer_public_key).to_bytes(2, "big"), self.peer_public_key]
        parts.append(bytes([len(self.peer_certificates)]))
        for der in self.peer_certificates:
            parts += [len(der).to_bytes(3, "big"), der]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> ResumptionState:
        """The inverse of :meth:`encode`; DecodeError for anything else
        (StateVersionError, a DecodeError, for another format version)."""
        if len(data) > _PSK_HEAD.size:
            # A PSK session (most of a gateway's): head, identity, no chain,
            # in one unpack (every abbreviated handshake). Anything else,
            # including every malformed state, takes the general path below.
            fmt, version, suite, flags, created, lifetime, master, length = _PSK_HEAD.unpack_from(
                data
            )
            if (
                fmt == STATE_FORMAT
                and (flags == _FLAG_PSK or flags == _FLAG_PSK | _FLAG_EMS)
                and len(data) == _PSK_HEAD.size + length + 1
                and data[-1] == 0
            ):
                try:
                    return cls(
                        master,
                        suite,
                        flags != _FLAG_PSK,
                        created,
                        lifetime,
                        data[_PSK_HEAD.size : -1],
                        None,
                        None,
                        (),
                        version,
                    )
                except ConfigurationError as exc:
                    raise DecodeError(f"resumption state out of bounds: {exc}") from None
        if len(data) < _HEAD.size:
            raise DecodeError(f"a resumption state is at least {_HEAD.size} bytes")
        fmt, version, suite, flags, created, lifetime, master = _HEAD.unpack_from(data)
        if fmt != STATE_FORMAT:
            raise StateVersionError(f"resumption state format {fmt}, expected {STATE_FORMAT}")
        if flags & ~(_FLAG_EMS | _FLAG_PSK | _FLAG_PEER_KEY | _FLAG_PEER_TYPE):
            raise DecodeError("unknown flags in a resumption state")
        reader = ByteReader(data, _HEAD.size, "a resumption state")
        identity = reader.vector(2) if flags & _FLAG_PSK else None
        peer_type = reader.take(1)[0] if flags & _FLAG_PEER_TYPE else None
        peer_key = reader.vector(2) if flags & _FLAG_PEER_KEY else None
        chain = tuple(reader.vector(3) for _ in range(reader.take(1)[0]))
        reader.end()
        try:
            return cls(
                master_secret=master,
                cipher_suite=suite,
                extended_master_secret=bool(flags & _FLAG_EMS),
                created=created,
                lifetime=lifetime,
                psk_identity=identity,
                peer_certificate_type=peer_type,
                peer_public_key=peer_key,
                peer_certificates=chain,
                version=version,
            )
        except ConfigurationError as exc:
            raise DecodeError(f"resumption state out of bounds: {exc}") from None


class StateVersionError(DecodeError):
    """A resumption state encoded by another format version."""


def refusal(
    state: ResumptionState,
    *,
    client_offers_ems: bool,
    require_ems: bool,
    allow_legacy_resumption: bool = False,
) -> ResumptionFailure | None:
    """RFC 7627 §5.3 for a server: None if the session may be resumed for a
    ClientHello that does (not) offer extended master secret, else why a
    full handshake must be done instead.

    - The session used EMS, the ClientHello does not offer it: the RFC says
      abort the abbreviated handshake; dtlsfast falls back to a full one.
    - The session did not use EMS and the ClientHello offers it: a full
      handshake, as the RFC says.
    - Neither uses it: the RFC says SHOULD abort (the session is exposed to
      the triple handshake attack); refused unless EMS is not required and
      ``allow_legacy_resumption`` is set.
    """
    if state.extended_master_secret:
        return None if client_offers_ems else ResumptionFailure.EMS_MISSING
    if client_offers_ems or require_ems or not allow_legacy_resumption:
        return ResumptionFailure.NO_EMS
    return None


def client_refusal(state: ResumptionState, *, server_sent_ems: bool) -> str | None:
    """RFC 7627 §5.3 for a client whose offered session the server resumed:
    the handshake must be aborted (with handshake_failure) when the
    ServerHello's extended_master_secret differs from the session's. Returns
    the message to abort with, or None."""
    if state.extended_master_secret and not server_sent_ems:
        return "the server resumed an extended-master-secret session without the extension"
    if not state.extended_master_secret and server_sent_ems:
        return "the server resumed a session without extended master secret but sent the extension"
    return None


def _check_peer(
    psk_identity: bytes | None, peer_public_key: bytes | None, peer_certificates: tuple[bytes, ...]
) -> None:
    """The bounds of what the peer chose (ConfigurationError if one is not met)."""
    if psk_identity is not None and len(psk_identity) > MAX_IDENTITY_LENGTH:
        raise ConfigurationError(f"a PSK identity is at most {MAX_IDENTITY_LENGTH} bytes")
    if peer_public_key is not None and len(peer_public_key) > MAX_PUBLIC_KEY_LENGTH:
        raise ConfigurationError(f"a peer public key is at most {MAX_PUBLIC_KEY_LENGTH} bytes")
    if peer_certificates and (
        len(peer_certificates) > MAX_CERTIFICATES
        or sum(len(c) for c in peer_certificates) > MAX_CERTIFICATE_BYTES
    ):
        raise ConfigurationError(
            f"a resumable chain is at most {MAX_CERTIFICATES} certificates and "
            f"{MAX_CERTIFICATE_BYTES} bytes; keep the leaf only"
        )


def _check_range(value: int, top: int, name: str) -> None:
    if not isinstance(value, int) or not 0 <= value <= top:
        raise ConfigurationError(f"{name} must be an integer in 0..={top}, got {value!r}")


def lifetime_hint(state: ResumptionState, now: float) -> int:
    """RFC 5077 §3.3 ticket_lifetime_hint: seconds the state stays valid."""
    return max(0, math.floor(state.created + state.lifetime - now))  # expires(), per ticket


__all__ = [
    "MASTER_SECRET_LENGTH",
    "STATE_FORMAT",
    "ResumptionFailure",
    "ResumptionState",
    "StateVersionError",
    "client_refusal",
    "lifetime_hint",
    "refusal",
]
