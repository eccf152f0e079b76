"""Configuration of a DTLS endpoint: role, credentials, suites, MTU and timers.

Defaults follow RFC 6347 §4.2.4 (1 s initial retransmission timer doubling to
60 s) and RFC 7252 §9.1 (TLS_PSK_WITH_AES_128_CCM_8 first). Raw public keys
(RFC 7250): ``raw_public_key=True`` presents the bare key of ``private_key``,
and ``trusted_public_keys`` is the set of peer keys accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

from cryptography import x509

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.cert_types import CertificateType
from dtlsfast.handshake.certificates import (
    check_key_matches,
    load_certificate_chain,
    load_private_key,
    load_public_keys,
    load_trust_roots,
    normalize_public_key,
)
from dtlsfast.handshake.client_hello_plan import ClientHelloPlan, client_hello_plan
from dtlsfast.handshake.ecdhe import SUPPORTED_GROUPS
from dtlsfast.handshake.signatures import SigningKey, VerifyingKey
from dtlsfast.handshake.suites import (
    DEFAULT_PSK_SUITES,
    SUITES_BY_CODE,
    CipherSuite,
    resolve_suites,
)
from dtlsfast.resumption.server_resumption import ServerResumption

#: Plain PSK first with CCM_8 at the head (RFC 7252 §9.1.3.1), then ECDHE_PSK
#: (RFC 5489, RFC 8442), which adds forward secrecy at the cost of an ECDH.
DEFAULT_SUITES: tuple[CipherSuite, ...] = (
    *DEFAULT_PSK_SUITES,
    SUITES_BY_CODE[0xCCAC],  # TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
    SUITES_BY_CODE[0xD001],  # TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256
)
#: Certificate suites (RFC 8422, RFC 7251), CCM_8 first as CoAP's DTLS profile
#: mandates (RFC 7252 §9.1.3.3).
DEFAULT_CERTIFICATE_SUITES: tuple[CipherSuite, ...] = tuple(
    SUITES_BY_CODE[code] for code in (0xC0AE, 0xC0AC, 0xC02B, 0xC02C, 0xCCA9)
)

ClientAuth = Literal["none", "optional", "required"]

TrustedKey = bytes | bytearray | memoryview | VerifyingKey | SigningKey
"""A trusted raw public key: its DER (or PEM) SubjectPublicKeyInfo, or a key
object from ``cryptography`` (EC P-256/P-384/P-521 or Ed25519)."""


PskLookup = Callable[[bytes], bytes | None]
"""Server-side PSK store as a callable: identity in, key (or None) out."""

PskStore = Mapping[bytes, bytes] | Mapping[str, bytes] | PskLookup

Backend = Literal["rust", "pure"]

#: CID length a server chooses when connection IDs are enabled (RFC 9146):
#: 8 random bytes keep collisions negligible for any realistic session count.
DEFAULT_SERVER_CID_LENGTH = 8
#: A client usually needs no CID of its own (its address is the one that
#: changes): it sends an empty one, which lets the server's CID be used.
DEFAULT_CLIENT_CID_LENGTH = 0


def connection_id_length_for(enabled: bool, length: int | None, *, is_client: bool) -> int | None:
    """The ``connection_id_length`` configuration value for the
    ``connection_id``/``connection_id_length`` keyword arguments of connect and serve."""
    if not enabled:
        if length is not None:
            raise ConfigurationError(
                "connection_id_length is set but connection_id is False; "
                "pass connection_id=True to negotiate a connection ID (RFC 9146)"
            )
        return None
    if length is None:
        return DEFAULT_CLIENT_CID_LENGTH if is_client else DEFAULT_SERVER_CID_LENGTH
    return length


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ConfigurationError(f"{what} must be str or bytes, not {type(value).__name__}")


def make_psk_lookup(store: PskStore) -> PskLookup:
    """Normalise a mapping (str or bytes identities) or a callable into a lookup."""
    if callable(store):
        return store
    if isinstance(store, Mapping):
        table = {_as_bytes(k, "PSK identity"): _as_bytes(v, "PSK key") for k, v in store.items()}
        return table.get
    raise ConfigurationError("psk_store must be a mapping of identity to key, or a callable")


@dataclass
class DtlsConfiguration:
    """Everything a :class:`~dtlsfast.connection.DtlsConnection` needs to know.

    Times are in seconds; ``mtu`` is the largest UDP payload to send.
    """

    is_client: bool
    psk: tuple[bytes, bytes] | None = field(default=None, repr=False)
    """Client side: ``(identity, key)``. Left out of the repr, which logs
    and tracebacks show: the key must not reach them."""
    psk_lookup: PskLookup | None = None
    """Server side: identity -> key."""
    identity_hint: bytes | None = None
    """Server side: PSK identity hint sent in ServerKeyExchange (RFC 4279 §2)."""
    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_SUITES
    """Offered (client) or accepted in preference order (server)."""
    prefer_client_order: bool = False
    groups: tuple[int, ...] = SUPPORTED_GROUPS
    """ECDHE groups (RFC 8422 NamedGroup) offered, or accepted in preference
    order: x25519 (29) and secp256r1 (23)."""
    mtu: int = 1400
    initial_timeout: float = 1.0
    max_timeout: float = 60.0
    max_retransmissions: int = 7
    replay_window: int = 64
    max_handshake_message: int = 32768
    backend: Backend = "rust"
    require_extended_master_secret: bool = False
    """Refuse a peer that does not negotiate extended master secret (RFC 7627)."""
    reveal_unknown_psk_identity: bool = False
    """Server side: answer an unknown PSK identity with the unknown_psk_identity
    alert. Off by default: the handshake goes on with a random key (RFC 4279
    §2), so that an unknown identity fails exactly like a wrong key and a
    prober cannot enumerate identities; turn it on only to debug a client."""
    keylog: IO[str] | None = None
    """Write NSS SSLKEYLOGFILE lines here, and only if set."""
    server_name: str | None = None
    """Client side: the name the server's certificate must carry."""
    certificate_chain: list[x509.Certificate] | None = None
    """Our certificate chain, leaf first (server; client for client auth)."""
    private_key: SigningKey | None = None
    trust_roots: list[x509.Certificate] | None = None
    """Roots that peer certificates must chain to."""
    client_auth: ClientAuth = "none"
    """Server side: ask for (optional) or demand (required) a client certificate."""
    raw_public_key: bool = False
    """Present ``private_key`` as a raw public key (RFC 7250) rather than (or,
    with ``certificate_chain`` too, in preference to) a certificate."""
    trusted_public_keys: Iterable[TrustedKey] | None = None
    """Raw public keys (RFC 7250) a peer may authenticate with; normalised to
    a frozenset of DER SubjectPublicKeyInfo bytes."""
    connection_id_length: int | None = None
    """Connection ID (RFC 9146): None does not negotiate one; otherwise the
    length of the random CID we ask the peer to send (0 to 255; 0 asks for
    none but lets the peer have one). Used only if both sides send the
    extension."""
    resumption: ServerResumption | None = None
    """Server side: session IDs and tickets (RFC 5246 §7.3, RFC 5077), one
    :class:`~dtlsfast.resumption.ServerResumption` shared by the server's
    connections; None resumes nothing (every handshake is a full one)."""
    session_tickets: bool = True
    """Client side: ask for a session ticket (RFC 5077 §3.2, an empty
    session_ticket extension) so that the session can be resumed."""
    extra: dict[str, object] = field(default_factory=dict)

    def __setattr__(self, name: str, value: object) -> None:
        # Whatever is worked out once per configuration (client_hello_plan)
        # is forgotten when a field changes: nothing in dtlsfast changes one
        # after __post_init__, but a caller may.
        object.__setattr__(self, name, value)
        self.__dict__.pop("client_hello_plan", None)

    @functools.cached_property
    def client_hello_plan(self) -> ClientHelloPlan:
        """Client side: what every ClientHello of this configuration carries
        (suites and extensions, encoded), worked out on first use and kept."""
        return client_hello_plan(self)

    @property
    def has_certificate(self) -> bool:
        return self.certificate_chain is not None and self.private_key is not None

    @property
    def own_certificate_types(self) -> tuple[CertificateType, ...]:
        """What we can authenticate with, in preference order (RFC 7250 §4.1)."""
        types: list[CertificateType] = []
        if self.raw_public_key and self.private_key is not None:
            types.append(CertificateType.RAW_PUBLIC_KEY)
        if self.has_certificate:
            types.append(CertificateType.X509)
        return tuple(types)

    @property
    def trusted_key_set(self) -> frozenset[bytes]:
        """``trusted_public_keys`` as DER SubjectPublicKeyInfo (empty if unset)."""
        return cast(frozenset[bytes], self.trusted_public_keys or frozenset())

    @property
    def peer_certificate_types(self) -> tuple[CertificateType, ...]:
        """What we can verify a peer with, in preference order: raw public
        keys against ``trusted_public_keys``, X.509 against ``trust_roots``."""
        types: list[CertificateType] = []
        if self.trusted_public_keys:
            types.append(CertificateType.RAW_PUBLIC_KEY)
        if self.trust_roots is not None:
            types.append(CertificateType.X509)
        return tuple(types)

    def __post_init__(self) -> None:
        if not 256 <= self.mtu <= 65507:
            raise ConfigurationError(f"mtu must be between 256 and 65507 bytes, got {self.mtu}")
        if not 0 < self.initial_timeout <= self.max_timeout:
            raise ConfigurationError(
                "initial_timeout must be positive and not above max_timeout "
                f"(got {self.initial_timeout} and {self.max_timeout})"
            )
        if self.max_retransmissions < 0:
            raise ConfigurationError("max_retransmissions must be 0 or more")
        unknown_groups = [g for g in self.groups if g not in SUPPORTED_GROUPS]
        if unknown_groups or not self.groups:
            raise ConfigurationError(
                f"groups must be a non-empty selection of {list(SUPPORTED_GROUPS)} "
                "(x25519, secp256r1)"
            )
        if self.backend not in ("rust", "pure"):
            raise ConfigurationError(f"backend must be 'rust' or 'pure', got {self.backend!r}")
        if self.client_auth not in ("none", "optional", "required"):
            raise ConfigurationError("client_auth must be 'none', 'optional' or 'required'")
        self._check_raw_public_keys()
        has_psk = self.psk is not None if self.is_client else self.psk_lookup is not None
        # A suite needs its credentials: PSK suites a PSK, certificate suites a
        # certificate or raw public key (server) or something to verify the
        # server with (client).
        usable_certs = (
            bool(self.peer_certificate_types)
            if self.is_client
            else bool(self.own_certificate_types)
        )
        self.cipher_suites = tuple(
            s
            for s in self.cipher_suites
            if (s.uses_psk and has_psk) or (s.key_exchange == "ECDHE_ECDSA" and usable_certs)
        )
        if not self.cipher_suites:
            if self.is_client:
                raise ConfigurationError(
                    "no usable cipher suite: give psk=(identity, key) for PSK suites, or "
                    "cafile= (the roots the server's certificate chains to) or "
                    "trusted_public_keys= (the server's raw public key) for certificate suites"
                )
            raise ConfigurationError(
                "no usable cipher suite: give psk_store= for PSK suites, or certfile= and "
                "keyfile= (or keyfile= with raw_public_key=True) for certificate suites"
            )
        if self.connection_id_length is not None and (
            isinstance(self.connection_id_length, bool)
            or not isinstance(self.connection_id_length, int)
            or not 0 <= self.connection_id_length <= 255
        ):
            raise ConfigurationError(
                "connection_id_length must be None or an int from 0 to 255 (RFC 9146 §3), "
                f"got {self.connection_id_length!r}"
            )
        if self.client_auth != "none" and not self.peer_certificate_types:
            raise ConfigurationError(
                "client_auth needs cafile= to verify client certificates, or "
                "trusted_public_keys= for clients' raw public keys"
            )

    def _check_raw_public_keys(self) -> None:
        if self.certificate_chain is not None and self.private_key is None:
            raise ConfigurationError("give both certfile and keyfile, or neither")
        if (
            self.private_key is not None
            and self.certificate_chain is None
            and not self.raw_public_key
        ):
            raise ConfigurationError(
                "a keyfile without a certfile: give the certificate too, or set "
                "raw_public_key=True to authenticate with the bare key (RFC 7250)"
            )
        if self.raw_public_key and self.private_key is None:
            raise ConfigurationError(
                "raw_public_key=True needs keyfile= (or private_key=): the private key whose "
                "public half is presented to the peer"
            )
        if self.trusted_public_keys is not None:
            if isinstance(self.trusted_public_keys, str | Path):
                raise ConfigurationError(
                    "trusted_public_keys takes keys, not a file name: pass the file as "
                    "trusted_keys_file="
                )
            if isinstance(self.trusted_public_keys, bytes | bytearray | memoryview):
                raise ConfigurationError(
                    "trusted_public_keys takes a collection of keys, not one key: "
                    "wrap it in a list, e.g. trusted_public_keys=[spki_der]"
                )
            keys = frozenset(
                normalize_public_key(key, f"trusted public key {index}")
                for index, key in enumerate(self.trusted_public_keys)
            )
            if not keys:
                raise ConfigurationError(
                    "trusted_public_keys is empty: give at least one peer public key "
                    "(DER SubjectPublicKeyInfo, PEM, or key object), or leave it None"
                )
            self.trusted_public_keys = keys

    @classmethod
    def client(
        cls,
        *,
        psk: tuple[str | bytes, str | bytes] | None = None,
        ciphers: Iterable[str | int] | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        cafile: str | Path | None = None,
        trusted_keys_file: str | Path | None = None,
        **kwargs: object,
    ) -> DtlsConfiguration:
        """Build a client configuration from user-facing arguments.

        ``keyfile`` with ``raw_public_key=True`` (and no ``certfile``) is a raw
        public key (RFC 7250); ``trusted_keys_file`` (PEM public keys) or
        ``trusted_public_keys`` name the server keys to accept."""
        key_pair = None
        if psk is not None:
            identity, key = psk
            key_pair = (_as_bytes(identity, "PSK identity"), _as_bytes(key, "PSK key"))
        return cls(
            is_client=True,
            psk=key_pair,
            cipher_suites=resolve_suites(ciphers, DEFAULT_SUITES + DEFAULT_CERTIFICATE_SUITES),
            **_certificate_kwargs(certfile, keyfile, cafile, trusted_keys_file, kwargs),
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def server(
        cls,
        *,
        psk_store: PskStore | None = None,
        identity_hint: str | bytes | None = None,
        ciphers: Iterable[str | int] | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        cafile: str | Path | None = None,
        trusted_keys_file: str | Path | None = None,
        **kwargs: object,
    ) -> DtlsConfiguration:
        """Build a server configuration from user-facing arguments (raw public
        keys as in :meth:`client`; they authenticate clients with ``client_auth``)."""
        return cls(
            is_client=False,
            psk_lookup=None if psk_store is None else make_psk_lookup(psk_store),
            identity_hint=None if identity_hint is None else _as_bytes(identity_hint, "hint"),
            cipher_suites=resolve_suites(ciphers, DEFAULT_SUITES + DEFAULT_CERTIFICATE_SUITES),
            **_certificate_kwargs(certfile, keyfile, cafile, trusted_keys_file, kwargs),
            **kwargs,  # type: ignore[arg-type]
        )


def _certificate_kwargs(
    certfile: str | Path | None,
    keyfile: str | Path | None,
    cafile: str | Path | None,
    trusted_keys_file: str | Path | None,
    kwargs: dict[str, object],
) -> dict[str, Any]:
    """Load PEM files named the ``ssl`` module's way into configuration fields
    (popping from ``kwargs`` what they extend)."""
    out: dict[str, Any] = {}
    raw = bool(kwargs.get("raw_public_key", False))
    if certfile is not None and keyfile is None:
        raise ConfigurationError("give both certfile and keyfile, or neither")
    if keyfile is not None and certfile is None and not raw:
        raise ConfigurationError(
            "keyfile without certfile: give the certificate too, or raw_public_key=True "
            "to authenticate with the bare key (RFC 7250)"
        )
    if keyfile is not None:
        key = load_private_key(keyfile)
        if certfile is not None:
            chain = load_certificate_chain(certfile)
            check_key_matches(chain[0], key)
            out["certificate_chain"] = chain
        out["private_key"] = key
    if cafile is not None:
        out["trust_roots"] = load_trust_roots(cafile)
    if trusted_keys_file is not None:
        given = kwargs.pop("trusted_public_keys", None) or ()
        out["trusted_public_keys"] = [*given, *load_public_keys(trusted_keys_file)]  # type: ignore[misc]
    return out
