"""Tests of signature scheme choice, signing and verifying
(dtlsfast.handshake.signatures)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dtlsfast.exceptions import ConfigurationError, HandshakeError
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.constants import AlertDescription, SignatureScheme
from dtlsfast.handshake.signatures import (
    ECDSA_SHA512,
    OFFERED_SCHEMES,
    choose_scheme,
    schemes_for_key,
    sign,
    verify,
)

P256 = SignatureScheme.ecdsa_secp256r1_sha256
P384 = SignatureScheme.ecdsa_secp384r1_sha384
ED25519 = SignatureScheme.ed25519
SHA1_ECDSA = 0x0203
DATA = b"client_random" + b"server_random" + b"params"


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def test_offered_schemes_encode() -> None:
    assert OFFERED_SCHEMES[0] == P256
    assert SHA1_ECDSA not in OFFERED_SCHEMES
    data = ext.encode_signature_algorithms(OFFERED_SCHEMES)
    assert ext.decode_signature_algorithms(data) == list(OFFERED_SCHEMES)


def test_choose_scheme_by_curve(
    p256: ec.EllipticCurvePrivateKey, p384: ec.EllipticCurvePrivateKey
) -> None:
    assert choose_scheme(p256, [P384, P256]) == P256
    assert choose_scheme(p384, [P256, P384]) == P384
    assert choose_scheme(p256, list(OFFERED_SCHEMES)) == P256
    # TLS 1.2 code points name a hash, not a curve: P-256 with SHA-384 is fine
    assert choose_scheme(p256, [SHA1_ECDSA, P384]) == P384
    assert choose_scheme(p384, [0x0401, P256]) == P256
    assert choose_scheme(ed25519.Ed25519PrivateKey.generate(), [P256, ED25519]) == ED25519


def test_choose_scheme_without_extension(
    p256: ec.EllipticCurvePrivateKey, p384: ec.EllipticCurvePrivateKey
) -> None:
    """RFC 5246 §7.4.1.4.1 would mean (sha1, ecdsa); we refuse SHA-1."""
    assert choose_scheme(p256, None) == P256
    assert choose_scheme(p384, None) == P384
    with pytest.raises(HandshakeError) as info:
        choose_scheme(ed25519.Ed25519PrivateKey.generate(), None)
    assert info.value.alert == AlertDescription.HANDSHAKE_FAILURE


def test_choose_scheme_nothing_in_common(p256: ec.EllipticCurvePrivateKey) -> None:
    for offered in ([SHA1_ECDSA], [0x0401, 0x0804], [ED25519], []):
        with pytest.raises(HandshakeError, match="no common signature scheme") as info:
            choose_scheme(p256, offered)
        assert info.value.alert == AlertDescription.HANDSHAKE_FAILURE


def test_schemes_for_unsupported_keys() -> None:
    with pytest.raises(ConfigurationError, match="secp224r1"):
        schemes_for_key(ec.generate_private_key(ec.SECP224R1()))
    with pytest.raises(ConfigurationError, match="RSA"):
        schemes_for_key(rsa.generate_private_key(65537, 1024))  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
@pytest.mark.parametrize("scheme", [P256, P384, ECDSA_SHA512])
def test_sign_verify_ecdsa(curve: ec.EllipticCurve, scheme: int) -> None:
    key = ec.generate_private_key(curve)
    signature = sign(key, scheme, DATA)
    decode_dss_signature(signature)  # DER Ecdsa-Sig-Value, the TLS wire form
    verify(key.public_key(), scheme, DATA, signature)
    # interoperates with a plain cryptography ECDSA verification
    digest = {P256: hashes.SHA256(), P384: hashes.SHA384(), ECDSA_SHA512: hashes.SHA512()}
    key.public_key().verify(signature, DATA, ec.ECDSA(digest[scheme]))
    with pytest.raises(HandshakeError, match="does not verify") as info:
        verify(key.public_key(), scheme, DATA + b"!", signature)
    assert info.value.alert == AlertDescription.DECRYPT_ERROR


def test_sign_verify_ed25519() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signature = sign(key, ED25519, DATA)
    assert len(signature) == 64
    verify(key.public_key(), ED25519, DATA, signature)
    with pytest.raises(HandshakeError) as info:
        verify(key.public_key(), ED25519, DATA, bytes(64))
    assert info.value.alert == AlertDescription.DECRYPT_ERROR


def test_verify_rejects_garbage_and_other_keys(
    p256: ec.EllipticCurvePrivateKey, p384: ec.EllipticCurvePrivateKey
) -> None:
    signature = sign(p256, P256, DATA)
    for bad in (b"", b"\x30\x00", b"\xff" * 70, signature[:-1], signature + b"\x00"):
        with pytest.raises(HandshakeError) as info:
            verify(p256.public_key(), P256, DATA, bad)
        assert info.value.alert == AlertDescription.DECRYPT_ERROR
    with pytest.raises(HandshakeError) as info:
        verify(p384.public_key(), P256, DATA, signature)
    assert info.value.alert == AlertDescription.DECRYPT_ERROR


def test_verify_rejects_schemes_not_offered(p256: ec.EllipticCurvePrivateKey) -> None:
    signature = sign(p256, P256, DATA)
    for scheme in (SHA1_ECDSA, 0x0401, 0x0804):
        with pytest.raises(HandshakeError, match="did not offer") as info:
            verify(p256.public_key(), scheme, DATA, signature)
        assert info.value.alert == AlertDescription.ILLEGAL_PARAMETER
    with pytest.raises(HandshakeError, match="did not offer"):
        verify(p256.public_key(), P384, DATA, signature, allowed=[P256])
    # an ECDSA scheme with an Ed25519 key, and the other way round
    with pytest.raises(HandshakeError, match="does not fit") as info:
        verify(ed25519.Ed25519PrivateKey.generate().public_key(), P256, DATA, signature)
    assert info.value.alert == AlertDescription.ILLEGAL_PARAMETER
    with pytest.raises(HandshakeError, match="does not fit"):
        verify(p256.public_key(), ED25519, DATA, bytes(64))


def test_sign_rejects_mismatched_scheme(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ConfigurationError):
        sign(p256, ED25519, DATA)
    with pytest.raises(ConfigurationError):
        sign(ed25519.Ed25519PrivateKey.generate(), P256, DATA)
    with pytest.raises(ConfigurationError):
        sign(p256, SHA1_ECDSA, DATA)
