"""Handshake signatures of the ECDHE_ECDSA suites: choosing a scheme, signing
and verifying.

References: RFC 5246 §7.4.1.4.1 (signature_algorithms and its default when
absent), §4.7 (digitally-signed), §7.4.3 (the ServerKeyExchange signature
uses a scheme the client offered); RFC 8422 §5.1.3 (ECDSA and Ed25519 in TLS
1.2), §5.4 (ECDSA signatures are DER ``Ecdsa-Sig-Value``); RFC 8446 §4.2.3
(the two-byte code points, which in TLS 1.2 read as (hash, signature) pairs).

In TLS 1.2 a code point names a hash and a signature algorithm, not a curve:
``0x0403`` is (sha256, ecdsa) and may be used with a P-384 key. dtlsfast signs
with the hash that matches its key's curve when the peer allows it, and
otherwise with another SHA-2 hash the peer offered. SHA-1 is never used.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from dtlsfast.exceptions import ConfigurationError, HandshakeError
from dtlsfast.handshake.constants import AlertDescription, SignatureScheme

#: A private key dtlsfast can sign handshake messages with.
SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
#: A public key whose handshake signatures dtlsfast can verify.
VerifyingKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: (sha512, ecdsa): not in :class:`SignatureScheme`'s list but valid in TLS 1.2.
ECDSA_SHA512 = 0x0603

#: The hash byte of a TLS 1.2 SignatureAndHashAlgorithm (RFC 5246 §7.4.1.4.1).
_ECDSA_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    SignatureScheme.ecdsa_secp256r1_sha256: hashes.SHA256,
    SignatureScheme.ecdsa_secp384r1_sha384: hashes.SHA384,
    ECDSA_SHA512: hashes.SHA512,
}

#: What we put in our signature_algorithms extension, best first: the schemes
#: whose signatures :func:`verify` accepts.
OFFERED_SCHEMES: tuple[int, ...] = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    ECDSA_SHA512,
    SignatureScheme.ed25519,
)

#: The scheme that matches each curve (the TLS 1.3 pairing, preferred in 1.2).
_CURVE_SCHEME: dict[str, int] = {
    "secp256r1": SignatureScheme.ecdsa_secp256r1_sha256,
    "secp384r1": SignatureScheme.ecdsa_secp384r1_sha384,
    "secp521r1": ECDSA_SHA512,
}


def _name(scheme: int) -> str:
    try:
        return SignatureScheme(scheme).name
    except ValueError:
        return "ecdsa_sha512" if scheme == ECDSA_SHA512 else f"0x{scheme:04x}"


def schemes_for_key(key: SigningKey | VerifyingKey) -> tuple[int, ...]:
    """The schemes that can sign with ``key``, best first: for an EC key the
    curve's own hash, then the other SHA-2 hashes; for Ed25519 only ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return (SignatureScheme.ed25519,)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        first = _CURVE_SCHEME.get(key.curve.name)
        if first is None:
            raise ConfigurationError(f"EC curve {key.curve.name} is not supported for signing")
        return (first, *(s for s in _ECDSA_HASHES if s != first))
    raise ConfigurationError(f"{type(key).__name__} keys cannot sign ECDHE_ECDSA handshakes")


def choose_scheme(key: SigningKey, peer_schemes: Sequence[int] | None) -> int:
    """The scheme to sign with ``key`` for a peer that offered ``peer_schemes``
    (its signature_algorithms, or None if it sent none).

    Without the extension RFC 5246 §7.4.1.4.1 says the peer expects
    (sha1, ecdsa). dtlsfast refuses SHA-1 and uses the curve's own scheme
    instead (ecdsa_secp256r1_sha256 for P-256, ecdsa_secp384r1_sha384 for
    P-384), which every ECDSA stack that lacks the extension still verifies;
    Ed25519 needs the extension (RFC 8422 §5.1.3). Raises HandshakeError with
    handshake_failure when the peer offered nothing ``key`` can sign with.
    """
    ours = schemes_for_key(key)
    if peer_schemes is None:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raise HandshakeError(
                "the peer sent no signature_algorithms, so it cannot take an Ed25519 signature",
                AlertDescription.HANDSHAKE_FAILURE,
            )
        return ours[0]
    offered = set(peer_schemes)
    for scheme in ours:
        if scheme in offered:
            return scheme
    raise HandshakeError(
        "no common signature scheme: we can sign with "
        + ", ".join(_name(s) for s in ours)
        + "; the peer offered "
        + (", ".join(_name(s) for s in peer_schemes) or "nothing"),
        AlertDescription.HANDSHAKE_FAILURE,
    )


def sign(key: SigningKey, scheme: int, data: bytes) -> bytes:
    """The signature of ``data`` with ``key`` under ``scheme``: DER-encoded
    ECDSA-Sig-Value for ECDSA (the TLS wire form, RFC 8422 §5.4), 64 bytes for
    Ed25519. ConfigurationError if ``scheme`` does not fit ``key``."""
    if scheme not in schemes_for_key(key):
        raise ConfigurationError(f"scheme {_name(scheme)} cannot sign with {type(key).__name__}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(bytes(data))
    return key.sign(bytes(data), ec.ECDSA(_ECDSA_HASHES[scheme]()))


def verify(
    public_key: VerifyingKey,
    scheme: int,
    data: bytes,
    signature: bytes,
    *,
    allowed: Sequence[int] = OFFERED_SCHEMES,
) -> None:
    """Check the peer's ``signature`` over ``data``.

    ``scheme`` must be one we offered (``allowed``) and fit the key's type,
    else HandshakeError with illegal_parameter (RFC 5246 §7.4.3). A signature
    that does not verify, or is not a valid DER ECDSA-Sig-Value, raises
    HandshakeError with decrypt_error (RFC 5246 §7.2.2).
    """
    if scheme not in allowed:
        raise HandshakeError(
            f"the peer signed with {_name(scheme)}, which we did not offer",
            AlertDescription.ILLEGAL_PARAMETER,
        )
    try:
        usable = schemes_for_key(public_key)
    except ConfigurationError as exc:
        raise HandshakeError(
            f"the peer's key cannot be used: {exc}", AlertDescription.ILLEGAL_PARAMETER
        ) from None
    if scheme not in usable:
        raise HandshakeError(
            f"the peer signed with {_name(scheme)}, which does not fit its "
            f"{type(public_key).__name__}",
            AlertDescription.ILLEGAL_PARAMETER,
        )
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(bytes(signature), bytes(data))
        else:
            public_key.verify(bytes(signature), bytes(data), ec.ECDSA(_ECDSA_HASHES[scheme]()))
    except (InvalidSignature, ValueError):
        raise HandshakeError(
            f"the peer's {_name(scheme)} signature does not verify",
            AlertDescription.DECRYPT_ERROR,
        ) from None


__all__ = [
    "ECDSA_SHA512",
    "OFFERED_SCHEMES",
    "SigningKey",
    "VerifyingKey",
    "choose_scheme",
    "schemes_for_key",
    "sign",
    "verify",
]
