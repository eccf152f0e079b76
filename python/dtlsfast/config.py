"""Configuration of a DTLS endpoint: role, credentials, suites, MTU and timers.

Defaults follow RFC 6347 §4.2.4 (1 s initial retransmission timer doubling to
60 s) and RFC 7252 §9.1 (TLS_PSK_WITH_AES_128_CCM_8 first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Literal

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.ecdhe import SUPPORTED_GROUPS
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

PskLookup = Callable[[bytes], bytes | None]
"""Server-side PSK store as a callable: identity in, key (or None) out."""

PskStore = Mapping[bytes, bytes] | Mapping[str, bytes] | PskLookup

Backend = Literal["rust", "pure"]


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
    extra: dict[str, object] = field(default_factory=dict)

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
        if not self.cipher_suites:
            raise ConfigurationError("cipher_suites is empty: give at least one suite")
        certificate_suites = [s.name for s in self.cipher_suites if s.key_exchange == "ECDHE_ECDSA"]
        if certificate_suites:
            raise ConfigurationError(
                f"{', '.join(certificate_suites)} need certificates, which this version does "
                "not support yet; use a PSK or ECDHE_PSK suite"
            )
        unknown_groups = [g for g in self.groups if g not in SUPPORTED_GROUPS]
        if unknown_groups or not self.groups:
            raise ConfigurationError(
                f"groups must be a non-empty selection of {list(SUPPORTED_GROUPS)} "
                "(x25519, secp256r1)"
            )
        if self.backend not in ("rust", "pure"):
            raise ConfigurationError(f"backend must be 'rust' or 'pure', got {self.backend!r}")
        if self.is_client:
            if self.psk is None:
                raise ConfigurationError("a client needs psk=(identity, key)")
        elif self.psk_lookup is None:
            raise ConfigurationError("a server needs a psk_store (mapping or callable)")

    @classmethod
    def client(
        cls,
        *,
        psk: tuple[str | bytes, str | bytes],
        ciphers: Iterable[str | int] | None = None,
        **kwargs: object,
    ) -> DtlsConfiguration:
        """Build a client configuration from user-facing arguments."""
        identity, key = psk
        return cls(
            is_client=True,
            psk=(_as_bytes(identity, "PSK identity"), _as_bytes(key, "PSK key")),
            cipher_suites=resolve_suites(ciphers, DEFAULT_SUITES),
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def server(
        cls,
        *,
        psk_store: PskStore,
        identity_hint: str | bytes | None = None,
        ciphers: Iterable[str | int] | None = None,
        **kwargs: object,
    ) -> DtlsConfiguration:
        """Build a server configuration from user-facing arguments."""
        return cls(
            is_client=False,
            psk_lookup=make_psk_lookup(psk_store),
            identity_hint=None if identity_hint is None else _as_bytes(identity_hint, "hint"),
            cipher_suites=resolve_suites(ciphers, DEFAULT_SUITES),
            **kwargs,  # type: ignore[arg-type]
        )
