"""Certificates in the handshake: loading PEM files, and the codecs of the
messages of certificate-based key exchange.

Each message class encodes and decodes the message *body* (the DTLS handshake
header is added by :func:`~dtlsfast.handshake.messages.encode_handshake`).
Decoding is strict: anything truncated, trailing or out of range raises
:class:`~dtlsfast.exceptions.DecodeError` and nothing else. Encoding a value
that cannot be represented raises
:class:`~dtlsfast.exceptions.LocalProtocolError`. Decoders do not parse the
DER inside: :func:`parse_certificate_chain` and :func:`load_spki` do that and
raise :class:`~dtlsfast.exceptions.HandshakeError` with the alert to send.

References: RFC 5246 §7.4.2 (Certificate), §7.4.4 (CertificateRequest),
§7.4.8 (CertificateVerify), §4.7 (digitally-signed); RFC 8422 §5.4
(ServerKeyExchange of ECDHE_ECDSA and what it signs), §5.5
(CertificateRequest's ecdsa_sign); RFC 7250 §3 (a Certificate carrying a raw
public key: one SubjectPublicKeyInfo).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from dtlsfast.exceptions import (
    ConfigurationError,
    DecodeError,
    HandshakeError,
    LocalProtocolError,
)
from dtlsfast.handshake.constants import AlertDescription
from dtlsfast.handshake.ecdhe import decode_server_ecdh_params, encode_server_ecdh_params
from dtlsfast.handshake.messages import RANDOM_LENGTH, _Reader, _u16, _vector
from dtlsfast.handshake.signatures import SigningKey, VerifyingKey

#: ClientCertificateType values of CertificateRequest (RFC 5246 §7.4.4,
#: RFC 8422 §5.5).
RSA_SIGN = 1
ECDSA_SIGN = 64

#: The EC curves dtlsfast signs with (RFC 8422 §5.1.1 names).
SIGNING_CURVES = ("secp256r1", "secp384r1")

_MAX24 = (1 << 24) - 1


# ------------------------------------------------------------------ loading


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None


def _load_certificates(path: str | Path, what: str) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigurationError(
            f"{what} {str(path)!r} holds no valid PEM or DER certificate: {exc}"
        ) from None
    return certs


def load_certificate_chain(certfile: str | Path) -> list[x509.Certificate]:
    """The chain in ``certfile``, leaf first, as the ``ssl`` module reads it:
    one or more PEM certificates (or one DER certificate). The leaf is sent
    first and each following certificate should certify the one before it
    (RFC 5246 §7.4.2); that order is checked here, not the trust."""
    certs = _load_certificates(certfile, "certificate file")
    for index, (child, parent) in enumerate(itertools.pairwise(certs)):
        if child.issuer != parent.subject:
            raise ConfigurationError(
                f"certificate file {str(certfile)!r}: certificate {index} "
                f"({child.subject.rfc4514_string()}) was issued by "
                f"{child.issuer.rfc4514_string()}, not by the next certificate "
                f"({parent.subject.rfc4514_string()}); "
                "put the leaf first, then its issuers in order"
            )
    return certs


def load_trust_roots(cafile: str | Path) -> list[x509.Certificate]:
    """The trusted certificates in ``cafile`` (PEM, any number, or one DER)."""
    return _load_certificates(cafile, "CA file")


def load_private_key(keyfile: str | Path, password: bytes | None = None) -> SigningKey:
    """The private key in ``keyfile`` (PEM or DER, PKCS#8 or SEC1).

    The ECDHE_ECDSA suites need an ECDSA key on P-256 or P-384, or an Ed25519
    key (RFC 8422 §5.1.3); any other key (RSA, DSA, other curves) raises
    ConfigurationError saying so, as does an encrypted key without the right
    ``password``.
    """
    data = _read(keyfile, "key file")
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except TypeError as exc:  # password missing or given for an unencrypted key
        raise ConfigurationError(f"key file {str(keyfile)!r}: {exc}") from None
    except ValueError as exc:
        raise ConfigurationError(
            f"key file {str(keyfile)!r} holds no usable private key "
            f"(or the password is wrong): {exc}"
        ) from None
    except Exception as exc:  # unsupported algorithm and the like
        raise ConfigurationError(f"key file {str(keyfile)!r}: {exc}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in SIGNING_CURVES:
            raise ConfigurationError(
                f"key file {str(keyfile)!r} holds an EC key on {key.curve.name}; "
                "dtlsfast signs with P-256 (secp256r1) or P-384 (secp384r1) keys"
            )
        return key
    raise ConfigurationError(
        f"key file {str(keyfile)!r} holds a {type(key).__name__.removeprefix('_')} key; "
        "the ECDHE_ECDSA suites need an ECDSA (P-256 or P-384) or Ed25519 key"
    )


def public_key_spki(key: SigningKey | VerifyingKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key`` (of its public half for a
    private key): what a raw public key Certificate carries and what a set of
    trusted raw public keys holds."""
    public = (
        key.public_key()
        if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
        else key
    )
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_PUBLIC_KEY_PEM = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----", re.DOTALL
)


def normalize_public_key(key: object, what: str = "public key") -> bytes:
    """The DER SubjectPublicKeyInfo of a key given as DER or PEM bytes, or as
    a ``cryptography`` key object (of its public half for a private key).
    ConfigurationError unless it is an EC (P-256, P-384, P-521) or Ed25519
    key, the kinds the ECDHE_ECDSA suites verify (RFC 8422 §5.1.3)."""
    if isinstance(key, bytes | bytearray | memoryview):
        data = bytes(key)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                public: object = serialization.load_pem_public_key(data)
            else:
                public = serialization.load_der_public_key(data)
        except Exception as exc:  # ValueError, UnsupportedAlgorithm
            raise ConfigurationError(
                f"{what} is not a DER or PEM SubjectPublicKeyInfo: {exc}; give the bytes of "
                "key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)"
            ) from None
    elif isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        public = key.public_key()
    else:
        public = key
    try:
        usable = _usable_key(public, what)
    except HandshakeError as exc:
        raise ConfigurationError(f"{exc}; use an EC (P-256, P-384) or Ed25519 key") from None
    return public_key_spki(usable)


def load_public_keys(path: str | Path) -> list[bytes]:
    """The DER SubjectPublicKeyInfo of every ``PUBLIC KEY`` PEM block in
    ``path`` (other blocks, such as a private key next to its public key as
    libcoap's ``-M`` file has them, are skipped), or of a DER file."""
    data = _read(path, "public key file")
    if b"-----BEGIN" not in data:
        return [normalize_public_key(data, f"public key file {str(path)!r}")]
    blocks = _PUBLIC_KEY_PEM.findall(data)
    if not blocks:
        raise ConfigurationError(
            f"public key file {str(path)!r} holds no '-----BEGIN PUBLIC KEY-----' block; "
            "write one with `openssl pkey -in key.pem -pubout`"
        )
    return [
        normalize_public_key(block, f"public key {index} of {str(path)!r}")
        for index, block in enumerate(blocks)
    ]


def check_key_matches(certificate: x509.Certificate, key: SigningKey) -> None:
    """ConfigurationError unless ``key`` is the private half of the public key
    in ``certificate`` (the leaf of the configured chain)."""
    if public_key_spki(key) != certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ConfigurationError(
            "the private key does not match the certificate "
            f"{certificate.subject.rfc4514_string()!r}"
        )


# -------------------------------------------------- parsing what peers send


def _usable_key(public: object, what: str) -> VerifyingKey:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return public
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name in (*SIGNING_CURVES, "secp521r1"):
            return public
        raise HandshakeError(
            f"{what} has an EC key on {public.curve.name}, which is not supported",
            AlertDescription.UNSUPPORTED_CERTIFICATE,
        )
    raise HandshakeError(
        f"{what} has a {type(public).__name__.removeprefix('_')} key; "
        "the ECDSA suites need an EC or Ed25519 key",
        AlertDescription.UNSUPPORTED_CERTIFICATE,
    )


def parse_certificate_chain(chain: list[bytes]) -> list[x509.Certificate]:
    """The certificates of a received Certificate message; HandshakeError with
    bad_certificate naming the one that is not valid DER.

    ``cryptography`` parses some fields only when they are first read (names,
    validity, extensions) and raises more than ValueError (InvalidVersion,
    KeyError for an attribute of an unknown string type, ...): each of them is
    read here, so that a malformed certificate fails now, with
    bad_certificate, and never later in verification."""
    certs: list[x509.Certificate] = []
    for index, der in enumerate(chain):
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            _ = cert.not_valid_before_utc, cert.not_valid_after_utc
            _ = cert.extensions
        except Exception as exc:  # whatever the DER makes the parser raise
            raise HandshakeError(
                f"certificate {index} of the peer's chain is not a valid X.509 certificate: "
                f"{type(exc).__name__}: {exc}",
                AlertDescription.BAD_CERTIFICATE,
            ) from None
        certs.append(cert)
    return certs


def certificate_public_key(certificate: x509.Certificate) -> VerifyingKey:
    """The public key of a peer's leaf, checked to be usable for ECDSA or
    Ed25519 handshake signatures (else unsupported_certificate)."""
    try:
        name = certificate.subject.rfc4514_string()
    except Exception as exc:  # a name parse_certificate_chain did not read
        raise HandshakeError(
            f"the peer's certificate has a malformed subject: {exc}",
            AlertDescription.BAD_CERTIFICATE,
        ) from None
    try:
        public = certificate.public_key()
    except UnsupportedAlgorithm as exc:
        raise HandshakeError(
            f"certificate {name!r} has a key of an unsupported algorithm: {exc}",
            AlertDescription.UNSUPPORTED_CERTIFICATE,
        ) from None
    except Exception as exc:  # a malformed key (a point off its curve, bad DER)
        raise HandshakeError(
            f"certificate {name!r} has a malformed public key: {exc}",
            AlertDescription.BAD_CERTIFICATE,
        ) from None
    return _usable_key(public, f"certificate {name!r}")


def load_spki(spki_der: bytes) -> VerifyingKey:
    """The public key of a raw public key Certificate (RFC 7250 §3):
    bad_certificate if it is not a DER SubjectPublicKeyInfo,
    unsupported_certificate if it is not an EC or Ed25519 key."""
    try:
        public = serialization.load_der_public_key(bytes(spki_der))
    except Exception as exc:  # ValueError, UnsupportedAlgorithm
        raise HandshakeError(
            f"the peer's raw public key is not a valid SubjectPublicKeyInfo: {exc}",
            AlertDescription.BAD_CERTIFICATE,
        ) from None
    return _usable_key(public, "the peer's raw public key")


# ------------------------------------------------------------------ codecs


def _signature_parts(r: _Reader) -> tuple[int, bytes]:
    """digitally-signed in TLS 1.2: SignatureAndHashAlgorithm then
    opaque signature<0..2^16-1> (RFC 5246 §4.7)."""
    scheme = r.uint(2, "signature algorithm")
    signature = r.vector(2, "signature")
    return scheme, signature


@dataclass
class CertificateMessage:
    """Certificate (RFC 5246 §7.4.2): ``ASN.1Cert certificate_list<0..2^24-1>``,
    each ``opaque ASN.1Cert<1..2^24-1>``, leaf first. An empty list is a client
    declining to authenticate."""

    chain: list[bytes] = field(default_factory=list)

    def encode(self) -> bytes:
        body = b"".join(_vector(der, 3, "ASN.1Cert", 1) for der in self.chain)
        return _vector(body, 3, "certificate_list")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "Certificate")
        inner = _Reader(r.vector(3, "certificate_list"), "Certificate")
        r.done()
        chain: list[bytes] = []
        while inner.remaining():
            chain.append(inner.vector(3, "ASN.1Cert", 1))
        return cls(chain=chain)

    @classmethod
    def from_certificates(cls, certificates: list[x509.Certificate]) -> Self:
        """The message that sends ``certificates`` (leaf first)."""
        return cls([c.public_bytes(serialization.Encoding.DER) for c in certificates])

    def certificates(self) -> list[x509.Certificate]:
        """The parsed chain: see :func:`parse_certificate_chain`."""
        return parse_certificate_chain(self.chain)


@dataclass
class CertificateRequest:
    """CertificateRequest of TLS 1.2 (RFC 5246 §7.4.4):
    ``ClientCertificateType certificate_types<1..2^8-1>``,
    ``SignatureAndHashAlgorithm supported_signature_algorithms<2..2^16-2>``,
    ``DistinguishedName certificate_authorities<0..2^16-1>`` with each
    ``DistinguishedName`` an ``opaque<1..2^16-1>`` DER Name."""

    certificate_types: bytes
    signature_algorithms: list[int]
    authorities: list[bytes] = field(default_factory=list)

    def encode(self) -> bytes:
        if not self.signature_algorithms:
            raise LocalProtocolError("CertificateRequest needs at least one signature scheme")
        schemes = b"".join(_u16(s, "signature algorithm") for s in self.signature_algorithms)
        names = b"".join(_vector(name, 2, "DistinguishedName", 1) for name in self.authorities)
        return (
            _vector(bytes(self.certificate_types), 1, "certificate_types", 1)
            + _vector(schemes, 2, "supported_signature_algorithms", 2, 0xFFFE)
            + _vector(names, 2, "certificate_authorities")
        )

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "CertificateRequest")
        types = r.vector(1, "certificate_types", 1)
        raw = r.vector(2, "supported_signature_algorithms", 2, 0xFFFE)
        if len(raw) % 2:
            raise DecodeError(
                f"CertificateRequest: supported_signature_algorithms length {len(raw)} is odd"
            )
        names = _Reader(r.vector(2, "certificate_authorities"), "CertificateRequest")
        r.done()
        authorities: list[bytes] = []
        while names.remaining():
            authorities.append(names.vector(2, "DistinguishedName", 1))
        return cls(
            certificate_types=types,
            signature_algorithms=[
                int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)
            ],
            authorities=authorities,
        )

    @classmethod
    def for_roots(
        cls, signature_algorithms: Sequence[int], roots: Sequence[x509.Certificate] = ()
    ) -> Self:
        """A request for an ecdsa_sign certificate, naming the subjects of
        ``roots`` as acceptable authorities (empty: any)."""
        return cls(
            certificate_types=bytes([ECDSA_SIGN]),
            signature_algorithms=list(signature_algorithms),
            authorities=[root.subject.public_bytes() for root in roots],
        )


@dataclass
class CertificateVerify:
    """CertificateVerify of TLS 1.2 (RFC 5246 §7.4.8): a digitally-signed
    struct, that is SignatureAndHashAlgorithm(2) then ``opaque
    signature<0..2^16-1>``, over all handshake messages so far."""

    scheme: int
    signature: bytes

    def encode(self) -> bytes:
        return _u16(self.scheme, "signature algorithm") + _vector(self.signature, 2, "signature")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        r = _Reader(body, "CertificateVerify")
        scheme, signature = _signature_parts(r)
        r.done()
        return cls(scheme=scheme, signature=signature)


@dataclass
class ServerKeyExchangeEcdhe:
    """ServerKeyExchange of ECDHE_ECDSA (RFC 8422 §5.4): ServerECDHParams
    (curve_type named_curve, NamedCurve, ECPoint) then a digitally-signed
    struct over ``client_random + server_random + ServerECDHParams``."""

    group: int
    public: bytes
    scheme: int
    signature: bytes

    def params(self) -> bytes:
        """The encoded ServerECDHParams."""
        return encode_server_ecdh_params(self.group, self.public)

    def signed_data(self, client_random: bytes, server_random: bytes) -> bytes:
        """What the signature covers (RFC 8422 §5.4)."""
        for name, value in (("client_random", client_random), ("server_random", server_random)):
            if len(value) != RANDOM_LENGTH:
                raise LocalProtocolError(f"{name} must be {RANDOM_LENGTH} bytes")
        return bytes(client_random) + bytes(server_random) + self.params()

    def encode(self) -> bytes:
        return (
            self.params()
            + _u16(self.scheme, "signature algorithm")
            + _vector(self.signature, 2, "signature")
        )

    @classmethod
    def decode(cls, body: bytes) -> Self:
        data = bytes(body)
        group, public, used = decode_server_ecdh_params(data)
        r = _Reader(data[used:], "ServerKeyExchange")
        scheme, signature = _signature_parts(r)
        r.done()
        return cls(group=group, public=public, scheme=scheme, signature=signature)


# --------------------------------------------------------- raw public keys


def encode_raw_public_key_certificate(public_key: SigningKey | VerifyingKey | bytes) -> bytes:
    """The Certificate body carrying a raw public key (RFC 7250 §3): ``opaque
    ASN.1_subjectPublicKeyInfo<1..2^24-1>``. Takes a key, or an SPKI in DER."""
    spki = public_key if isinstance(public_key, bytes) else public_key_spki(public_key)
    return _vector(spki, 3, "ASN.1_subjectPublicKeyInfo", 1)


def decode_raw_public_key_certificate(body: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a raw public key Certificate body; parse
    it with :func:`load_spki`."""
    r = _Reader(body, "Certificate (raw public key)")
    spki = r.vector(3, "ASN.1_subjectPublicKeyInfo", 1)
    r.done()
    return spki


__all__ = [
    "ECDSA_SIGN",
    "RSA_SIGN",
    "SIGNING_CURVES",
    "CertificateMessage",
    "CertificateRequest",
    "CertificateVerify",
    "ServerKeyExchangeEcdhe",
    "certificate_public_key",
    "check_key_matches",
    "decode_raw_public_key_certificate",
    "encode_raw_public_key_certificate",
    "load_certificate_chain",
    "load_private_key",
    "load_public_keys",
    "load_spki",
    "load_trust_roots",
    "normalize_public_key",
    "parse_certificate_chain",
    "public_key_spki",
]
