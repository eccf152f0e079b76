"""Configuration of a DTLS endpoint: role, credentials, suites, MTU and timers.

Defaults follow RFC 6347 §4.2.4 (1 s initial retransmission timer doubling to
60 s) and RFC 7252 §9.1 (TLS_PSK_WITH_AES_128_CCM_8 first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from cryptography import x509

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.certificates import (
    check_key_matches,
    load_certificate_chain,
    load_private_key,
    load_trust_roots,
)
from dtlsfast.handshake.ecdhe import SUPPORTED_GROUPS
from dtlsfast.handshake.signatures import SigningKey
from dtlsfast.handshake.suites import (
    DEFAULT_PSK_SUITES,
    SUITES_BY_CODE,
    CipherSuite,
    resolve_suites,
)

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
    psk: tuple[bytes, bytes] | None = None
    """Client side: ``(identity, key)``."""
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
    connection_id_length: int | None = None
    """Connection ID (RFC 9146): None does not negotiate one; otherwise the
    length of the random CID we ask the peer to send (0 to 255; 0 asks for
    none but lets the peer have one). Used only if both sides send the
    extension."""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def has_certificate(self) -> bool:
        return self.certificate_chain is not None and self.private_key is not None

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
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ConfigurationError("give both certfile and keyfile, or neither")
        has_psk = self.psk is not None if self.is_client else self.psk_lookup is not None
        # A suite needs its credentials: PSK suites a PSK, certificate suites a
        # certificate (server) or trust roots (client).
        usable_certs = self.trust_roots is not None if self.is_client else self.has_certificate
        self.cipher_suites = tuple(
            s
            for s in self.cipher_suites
            if (s.uses_psk and has_psk) or (s.key_exchange == "ECDHE_ECDSA" and usable_certs)
        )
        if not self.cipher_suites:
            if self.is_client:
                raise ConfigurationError(
                    "no usable cipher suite: give psk=(identity, key) for PSK suites, or "
                    "cafile= (the roots the server's certificate chains to) for certificate "
                    "suites"
                )
            raise ConfigurationError(
                "no usable cipher suite: give psk_store= for PSK suites, or certfile= and "
                "keyfile= for certificate suites"
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
        if self.client_auth != "none" and not self.trust_roots:
            raise ConfigurationError("client_auth needs cafile= to verify client certificates")

    @classmethod
    def client(
        cls,
        *,
        psk: tuple[str | bytes, str | bytes] | None = None,
        ciphers: Iterable[str | int] | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        cafile: str | Path | None = None,
        **kwargs: object,
    ) -> DtlsConfiguration:
        """Build a client configuration from user-facing arguments."""
        key_pair = None
        if psk is not None:
            identity, key = psk
            key_pair = (_as_bytes(identity, "PSK identity"), _as_bytes(key, "PSK key"))
        return cls(
            is_client=True,
            psk=key_pair,
            cipher_suites=resolve_suites(ciphers, DEFAULT_SUITES + DEFAULT_CERTIFICATE_SUITES),
            **_certificate_kwargs(certfile, keyfile, cafile),
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
        **kwargs: object,
    ) -> DtlsConfiguration:
        """Build a server configuration from user-facing arguments."""
        return cls(
            is_client=False,
            psk_lookup=None if psk_store is None else make_psk_lookup(psk_store),
            identity_hint=None if identity_hint is None else _as_bytes(identity_hint, "hint"),
            cipher_suites=resolve_suites(ciphers, DEFAULT_SUITES + DEFAULT_CERTIFICATE_SUITES),
            **_certificate_kwargs(certfile, keyfile, cafile),
            **kwargs,  # type: ignore[arg-type]
        )


def _certificate_kwargs(
    certfile: str | Path | None, keyfile: str | Path | None, cafile: str | Path | None
) -> dict[str, Any]:
    """Load PEM files named the ``ssl`` module's way into configuration fields."""
    out: dict[str, Any] = {}
    if certfile is not None or keyfile is not None:
        if certfile is None or keyfile is None:
            raise ConfigurationError("give both certfile and keyfile, or neither")
        chain = load_certificate_chain(certfile)
        key = load_private_key(keyfile)
        check_key_matches(chain[0], key)
        out["certificate_chain"] = chain
        out["private_key"] = key
    if cafile is not None:
        out["trust_roots"] = load_trust_roots(cafile)
    return out
