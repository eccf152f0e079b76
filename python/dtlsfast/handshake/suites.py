"""The cipher suites dtlsfast knows, and how a user's choice maps to them.

Each suite names its key exchange, the AEAD that the Rust ``RecordCipher``
implements under the same name, the key and fixed-IV lengths the key block
yields (RFC 5246 §6.3; AEAD suites have no MAC keys) and the PRF hash.

References: RFC 4279 and RFC 5487 (PSK, PSK with GCM), RFC 6655 and RFC 7251
(AES-CCM, CCM_8), RFC 5288 and RFC 5289 (AES-GCM), RFC 7905 (ChaCha20-Poly1305),
RFC 8442 (ECDHE_PSK with AES-GCM/CCM), RFC 8422 (ECDHE_ECDSA); RFC 7252 §9.1
(CoAP makes TLS_PSK_WITH_AES_128_CCM_8 mandatory, hence first by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from dtlsfast.exceptions import ConfigurationError


@dataclass(frozen=True)
class CipherSuite:
    """One TLS 1.2 cipher suite as the handshake and record layer need it."""

    code: int
    """The two-byte IANA code point."""
    name: str
    """The IANA name, e.g. ``TLS_PSK_WITH_AES_128_CCM_8``."""
    key_exchange: str
    """``"PSK"``, ``"ECDHE_PSK"`` or ``"ECDHE_ECDSA"``."""
    aead: str
    """The ``RecordCipher`` name: ``AES_128_CCM_8``, ``AES_128_CCM``,
    ``AES_128_GCM``, ``AES_256_GCM`` or ``CHACHA20_POLY1305``."""
    key_length: int
    """Bytes of each write key."""
    fixed_iv_length: int
    """Bytes of each implicit IV: 4 (salt) for CCM/GCM, 12 for ChaCha20."""
    prf_hash: str
    """``"sha256"`` or ``"sha384"``."""
    verify_data_length: int = 12
    """Bytes of Finished.verify_data (RFC 5246 §7.4.9)."""

    @property
    def record_iv_length(self) -> int:
        """Bytes of explicit nonce per record: 8 for CCM/GCM (RFC 5288 §3,
        RFC 6655 §3), 0 for ChaCha20-Poly1305 (RFC 7905 §2)."""
        return 0 if self.aead == "CHACHA20_POLY1305" else 8

    @property
    def tag_length(self) -> int:
        """Bytes of AEAD tag: 8 for CCM_8, 16 otherwise."""
        return 8 if self.aead.endswith("CCM_8") else 16

    @property
    def uses_psk(self) -> bool:
        """Whether the key exchange involves a pre-shared key."""
        return self.key_exchange in ("PSK", "ECDHE_PSK")

    @cached_property
    def uses_ecdhe(self) -> bool:
        """Whether the key exchange is ephemeral elliptic-curve Diffie-Hellman
        (worked out once per suite: asked twice per handshake)."""
        return self.key_exchange.startswith("ECDHE")

    def __str__(self) -> str:
        return f"{self.name} (0x{self.code:04X})"


#: AEAD name -> (key length, fixed IV length) of the key block (RFC 5246 §6.3).
AEAD_KEY_IV: dict[str, tuple[int, int]] = {
    "AES_128_CCM_8": (16, 4),
    "AES_128_CCM": (16, 4),
    "AES_128_GCM": (16, 4),
    "AES_256_GCM": (32, 4),
    "CHACHA20_POLY1305": (32, 12),
}


def _suite(code: int, name: str, key_exchange: str, aead: str, prf_hash: str) -> CipherSuite:
    key_length, fixed_iv_length = AEAD_KEY_IV[aead]
    return CipherSuite(code, name, key_exchange, aead, key_length, fixed_iv_length, prf_hash)


TLS_PSK_WITH_AES_128_CCM_8 = _suite(
    0xC0A8, "TLS_PSK_WITH_AES_128_CCM_8", "PSK", "AES_128_CCM_8", "sha256"
)
TLS_PSK_WITH_AES_128_CCM = _suite(
    0xC0A4, "TLS_PSK_WITH_AES_128_CCM", "PSK", "AES_128_CCM", "sha256"
)
TLS_PSK_WITH_AES_128_GCM_SHA256 = _suite(
    0x00A8, "TLS_PSK_WITH_AES_128_GCM_SHA256", "PSK", "AES_128_GCM", "sha256"
)
TLS_PSK_WITH_AES_256_GCM_SHA384 = _suite(
    0x00A9, "TLS_PSK_WITH_AES_256_GCM_SHA384", "PSK", "AES_256_GCM", "sha384"
)
TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = _suite(
    0xCCAB, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", "PSK", "CHACHA20_POLY1305", "sha256"
)
TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = _suite(
    0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", "ECDHE_ECDSA", "AES_128_CCM_8", "sha256"
)
TLS_ECDHE_ECDSA_WITH_AES_128_CCM = _suite(
    0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE_ECDSA", "AES_128_CCM", "sha256"
)
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = _suite(
    0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE_ECDSA", "AES_128_GCM", "sha256"
)
TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = _suite(
    0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE_ECDSA", "AES_256_GCM", "sha384"
)
TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = _suite(
    0xCCA9,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE_ECDSA",
    "CHACHA20_POLY1305",
    "sha256",
)
TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = _suite(
    0xCCAC,
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE_PSK",
    "CHACHA20_POLY1305",
    "sha256",
)
TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256 = _suite(
    0xD001, "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256", "ECDHE_PSK", "AES_128_GCM", "sha256"
)

ALL_SUITES: tuple[CipherSuite, ...] = (
    TLS_PSK_WITH_AES_128_CCM_8,
    TLS_PSK_WITH_AES_128_CCM,
    TLS_PSK_WITH_AES_128_GCM_SHA256,
    TLS_PSK_WITH_AES_256_GCM_SHA384,
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,
)

SUITES_BY_CODE: dict[int, CipherSuite] = {suite.code: suite for suite in ALL_SUITES}
SUITES_BY_NAME: dict[str, CipherSuite] = {suite.name: suite for suite in ALL_SUITES}

#: The PSK suites offered when the user names none, most preferred first.
DEFAULT_PSK_SUITES: tuple[CipherSuite, ...] = (
    TLS_PSK_WITH_AES_128_CCM_8,
    TLS_PSK_WITH_AES_128_CCM,
    TLS_PSK_WITH_AES_128_GCM_SHA256,
    TLS_PSK_WITH_AES_256_GCM_SHA384,
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
)


def _known() -> str:
    return ", ".join(f"{suite.name} (0x{suite.code:04X})" for suite in ALL_SUITES)


def _resolve_one(item: str | int) -> CipherSuite:
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise ConfigurationError(
            f"cipher suites are given by IANA name or code point, not {item!r}; "
            f"known suites: {_known()}"
        )
    if isinstance(item, int):
        suite = SUITES_BY_CODE.get(item)
        if suite is None:
            raise ConfigurationError(
                f"unknown cipher suite code 0x{item:04X}; known suites: {_known()}"
            )
        return suite
    text = item.strip()
    suite = SUITES_BY_NAME.get(text.upper())
    if suite is None and text[:2].lower() == "0x":
        try:
            suite = SUITES_BY_CODE.get(int(text, 16))
        except ValueError:
            suite = None
    if suite is None:
        raise ConfigurationError(f"unknown cipher suite {item!r}; known suites: {_known()}")
    return suite


def resolve_suites(
    names_or_codes: Iterable[str | int] | None,
    default: tuple[CipherSuite, ...] = DEFAULT_PSK_SUITES,
) -> tuple[CipherSuite, ...]:
    """Turn a user's list of suites into :class:`CipherSuite` objects.

    Items are IANA names (case-insensitive, e.g. ``"TLS_PSK_WITH_AES_128_CCM_8"``),
    code points as ints (``0xC0A8``) or hex strings (``"0xC0A8"``). The order is
    kept (it is the preference order) and repeats are dropped. ``None`` means
    ``default``. A lone string is taken as one name, not as characters.

    Raises :class:`ConfigurationError` for an unknown suite (the message lists
    the known ones) or an empty list.
    """
    if names_or_codes is None:
        return tuple(default)
    if isinstance(names_or_codes, str | int):
        names_or_codes = [names_or_codes]
    resolved: list[CipherSuite] = []
    for item in names_or_codes:
        suite = _resolve_one(item)
        if suite not in resolved:
            resolved.append(suite)
    if not resolved:
        raise ConfigurationError(
            f"the list of cipher suites is empty; name at least one of: {_known()}"
        )
    return tuple(resolved)


__all__ = [
    "AEAD_KEY_IV",
    "ALL_SUITES",
    "DEFAULT_PSK_SUITES",
    "SUITES_BY_CODE",
    "SUITES_BY_NAME",
    "CipherSuite",
    "resolve_suites",
]
