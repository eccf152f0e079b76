"""Tests of certificate loading and of the certificate message codecs
(dtlsfast.handshake.certificates, dtlsfast.handshake.cert_types)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast.exceptions import ConfigurationError, DecodeError, HandshakeError, LocalProtocolError
from dtlsfast.handshake import cert_types
from dtlsfast.handshake.cert_types import CertificateType
from dtlsfast.handshake.certificates import (
    ECDSA_SIGN,
    CertificateMessage,
    CertificateRequest,
    CertificateVerify,
    ServerKeyExchangeEcdhe,
    certificate_public_key,
    check_key_matches,
    decode_raw_public_key_certificate,
    encode_raw_public_key_certificate,
    load_certificate_chain,
    load_private_key,
    load_spki,
    load_trust_roots,
    parse_certificate_chain,
    public_key_spki,
)
from dtlsfast.handshake.constants import AlertDescription, NamedGroup, SignatureScheme
from dtlsfast.handshake.ecdhe import KeyShare
from dtlsfast.handshake.messages import encode_handshake, parse_handshake_header
from dtlsfast.handshake.signatures import choose_scheme, sign, verify

NOW = dt.datetime.now(dt.UTC)
P256 = SignatureScheme.ecdsa_secp256r1_sha256
PEM = serialization.Encoding.PEM
PKCS8 = serialization.PrivateFormat.PKCS8
NO_ENCRYPTION = serialization.NoEncryption()

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def _cert(
    cn: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    signer = issuer[1] if issuer else key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, algorithm)
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(PEM)


def _key_pem(key: PrivateKey, fmt: serialization.PrivateFormat = PKCS8) -> bytes:
    return key.private_bytes(PEM, fmt, NO_ENCRYPTION)


@pytest.fixture(scope="module")
def chain() -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """[leaf, intermediate, root] and the leaf's key."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Root", root_key, ca=True)
    inter = _cert("Intermediate", inter_key, (root, root_key), ca=True)
    leaf = _cert("leaf.example", leaf_key, (inter, inter_key))
    return [leaf, inter, root], leaf_key


# ------------------------------------------------------------------ loading


def test_load_chain_and_roots(
    tmp_path: Path, chain: tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]
) -> None:
    certs, key = chain
    certfile = tmp_path / "chain.pem"
    certfile.write_bytes(b"".join(_pem(c) for c in certs[:2]))
    assert load_certificate_chain(certfile) == certs[:2]
    assert load_certificate_chain(str(certfile)) == certs[:2]
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(_pem(certs[2]))
    assert load_trust_roots(cafile) == [certs[2]]
    der = tmp_path / "leaf.der"
    der.write_bytes(certs[0].public_bytes(serialization.Encoding.DER))
    assert load_certificate_chain(der) == [certs[0]]
    keyfile = tmp_path / "key.pem"
    keyfile.write_bytes(_key_pem(key))
    loaded = load_private_key(keyfile)
    assert public_key_spki(loaded) == public_key_spki(key)
    check_key_matches(certs[0], loaded)
    with pytest.raises(ConfigurationError, match="does not match"):
        check_key_matches(certs[1], loaded)


def test_load_chain_errors(
    tmp_path: Path, chain: tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]
) -> None:
    certs, _ = chain
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError, match=r"cannot read certificate file .*missing\.pem"):
        load_certificate_chain(missing)
    with pytest.raises(ConfigurationError, match="CA file"):
        load_trust_roots(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match=r"garbage\.pem.*no valid PEM or DER"):
        load_certificate_chain(garbage)
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ConfigurationError, match=r"empty\.pem"):
        load_trust_roots(empty)
    reversed_chain = tmp_path / "reversed.pem"
    reversed_chain.write_bytes(_pem(certs[1]) + _pem(certs[0]))
    with pytest.raises(ConfigurationError, match="leaf first"):
        load_certificate_chain(reversed_chain)


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["P-256", "P-384", "Ed25519"],
)
def test_load_usable_keys(tmp_path: Path, make_key: Callable[[], PrivateKey]) -> None:
    key = make_key()
    pem = tmp_path / "key.pem"
    pem.write_bytes(_key_pem(key))
    assert public_key_spki(load_private_key(pem)) == public_key_spki(key.public_key())  # type: ignore[arg-type]
    der = tmp_path / "key.der"
    der.write_bytes(key.private_bytes(serialization.Encoding.DER, PKCS8, NO_ENCRYPTION))
    assert public_key_spki(load_private_key(der)) == public_key_spki(key.public_key())  # type: ignore[arg-type]


def test_load_sec1_and_encrypted_keys(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sec1 = tmp_path / "sec1.pem"
    sec1.write_bytes(_key_pem(key, serialization.PrivateFormat.TraditionalOpenSSL))
    assert b"BEGIN EC PRIVATE KEY" in sec1.read_bytes()
    assert public_key_spki(load_private_key(sec1)) == public_key_spki(key)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(PEM, PKCS8, serialization.BestAvailableEncryption(b"secret"))
    )
    assert public_key_spki(load_private_key(encrypted, b"secret")) == public_key_spki(key)
    with pytest.raises(ConfigurationError, match=r"encrypted\.pem"):
        load_private_key(encrypted)
    with pytest.raises(ConfigurationError, match=r"encrypted\.pem"):
        load_private_key(encrypted, b"wrong")


def test_load_unusable_keys(tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(_key_pem(rsa.generate_private_key(65537, 1024)))
    with pytest.raises(ConfigurationError, match=r"rsa\.pem.*RSA.*ECDSA"):
        load_private_key(rsa_key)
    p224 = tmp_path / "p224.pem"
    p224.write_bytes(_key_pem(ec.generate_private_key(ec.SECP224R1())))
    with pytest.raises(ConfigurationError, match=r"p224\.pem.*secp224r1.*P-256"):
        load_private_key(p224)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    with pytest.raises(ConfigurationError, match=r"garbage\.key"):
        load_private_key(garbage)
    with pytest.raises(ConfigurationError, match="cannot read key file"):
        load_private_key(tmp_path / "missing.key")


# ----------------------------------------------------- Certificate message


def test_certificate_message(
    chain: tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey],
) -> None:
    certs, _ = chain
    message = CertificateMessage.from_certificates(certs[:2])
    body = message.encode()
    ders = [c.public_bytes(serialization.Encoding.DER) for c in certs[:2]]
    inner = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    assert body == len(inner).to_bytes(3, "big") + inner
    decoded = CertificateMessage.decode(body)
    assert decoded == message
    assert decoded.certificates() == certs[:2]
    assert CertificateMessage([]).encode() == b"\x00\x00\x00"
    assert CertificateMessage.decode(b"\x00\x00\x00").chain == []
    # carried in a handshake message
    whole = encode_handshake(11, 1, body)
    assert parse_handshake_header(whole).length == len(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x01",
        b"\x00\x00\x03\x00\x00\x00",  # an empty ASN.1Cert
        b"\x00\x00\x04\x00\x00\x02\x30",  # truncated ASN.1Cert
        b"\x00\x00\x05\x00\x00\x01\x30\x00",  # trailing byte inside the list
        b"\x00\x00\x00\x00",  # trailing byte after the list
    ],
)
def test_certificate_message_malformed(body: bytes) -> None:
    with pytest.raises(DecodeError):
        CertificateMessage.decode(body)


def test_certificate_message_encode_errors() -> None:
    with pytest.raises(LocalProtocolError):
        CertificateMessage([b""]).encode()


def test_parse_certificate_chain_errors(
    chain: tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey],
) -> None:
    good = chain[0][0].public_bytes(serialization.Encoding.DER)
    with pytest.raises(HandshakeError, match="certificate 1") as info:
        parse_certificate_chain([good, b"\x30\x03\x02\x01\x01"])
    assert info.value.alert == AlertDescription.BAD_CERTIFICATE
    key = ec.generate_private_key(ec.SECP384R1())
    assert public_key_spki(certificate_public_key(_cert("p384", key))) == public_key_spki(key)
    with pytest.raises(HandshakeError, match="RSA") as info:
        certificate_public_key(_cert("rsa", rsa.generate_private_key(65537, 1024)))
    assert info.value.alert == AlertDescription.UNSUPPORTED_CERTIFICATE


# ------------------------------------------------------ CertificateRequest


def test_certificate_request(
    chain: tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey],
) -> None:
    request = CertificateRequest(bytes([ECDSA_SIGN]), [P256, 0x0503], [b"\x30\x00", b"\x30\x01x"])
    body = request.encode()
    assert body == bytes.fromhex("01400004040305030009000230000003300178")
    assert CertificateRequest.decode(body) == request
    no_cas = CertificateRequest(b"\x40", [P256])
    assert no_cas.encode().endswith(b"\x00\x00")
    assert CertificateRequest.decode(no_cas.encode()) == no_cas
    root = chain[0][2]
    named = CertificateRequest.for_roots([P256], [root])
    assert named.certificate_types == b"\x40"
    decoded = CertificateRequest.decode(named.encode())
    assert decoded.authorities == [root.subject.public_bytes()]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00\x02\x04\x03\x00\x00",  # no certificate types
        b"\x01\x40\x00\x00\x00\x00",  # no signature algorithms
        b"\x01\x40\x00\x03\x04\x03\x05\x00\x00",  # odd signature algorithms
        b"\x01\x40\x00\x02\x04\x03",  # no authorities field
        b"\x01\x40\x00\x02\x04\x03\x00\x02\x00\x00",  # an empty DistinguishedName
        b"\x01\x40\x00\x02\x04\x03\x00\x03\x00\x02\x30",  # truncated name
        b"\x01\x40\x00\x02\x04\x03\x00\x00\x00",  # trailing byte
    ],
)
def test_certificate_request_malformed(body: bytes) -> None:
    with pytest.raises(DecodeError):
        CertificateRequest.decode(body)


def test_certificate_request_encode_errors() -> None:
    with pytest.raises(LocalProtocolError):
        CertificateRequest(b"", [P256]).encode()
    with pytest.raises(LocalProtocolError):
        CertificateRequest(b"\x40", []).encode()
    with pytest.raises(LocalProtocolError):
        CertificateRequest(b"\x40", [P256], [b""]).encode()


# ------------------------------------------------------- CertificateVerify


def test_certificate_verify() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    transcript = b"handshake messages so far"
    message = CertificateVerify(P256, sign(key, P256, transcript))
    body = message.encode()
    assert body[:2] == b"\x04\x03"
    assert int.from_bytes(body[2:4], "big") == len(message.signature)
    decoded = CertificateVerify.decode(body)
    assert decoded == message
    verify(key.public_key(), decoded.scheme, transcript, decoded.signature)
    assert CertificateVerify.decode(b"\x04\x03\x00\x00") == CertificateVerify(P256, b"")
    for bad in (b"", b"\x04", b"\x04\x03", b"\x04\x03\x00", b"\x04\x03\x00\x02\x30",
                b"\x04\x03\x00\x00\x00"):  # fmt: skip
        with pytest.raises(DecodeError):
            CertificateVerify.decode(bad)
    with pytest.raises(LocalProtocolError):
        CertificateVerify(0x10000, b"").encode()
    with pytest.raises(LocalProtocolError):
        CertificateVerify(P256, b"x" * 65536).encode()


# -------------------------------------------------- ServerKeyExchangeEcdhe


@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.secp256r1])
def test_server_key_exchange_ecdhe(group: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    share = KeyShare(group)
    client_random, server_random = os.urandom(32), os.urandom(32)
    unsigned = ServerKeyExchangeEcdhe(group, share.public, P256, b"")
    data = unsigned.signed_data(client_random, server_random)
    params = bytes([3]) + group.to_bytes(2, "big") + bytes([len(share.public)]) + share.public
    assert data == client_random + server_random + params
    scheme = choose_scheme(key, [P256])
    message = ServerKeyExchangeEcdhe(group, share.public, scheme, sign(key, scheme, data))
    body = message.encode()
    assert body[: len(params)] == params
    assert body[len(params) : len(params) + 2] == b"\x04\x03"
    decoded = ServerKeyExchangeEcdhe.decode(body)
    assert decoded == message
    verify(
        key.public_key(),
        decoded.scheme,
        decoded.signed_data(client_random, server_random),
        decoded.signature,
    )
    with pytest.raises(HandshakeError):
        verify(key.public_key(), decoded.scheme, decoded.signed_data(server_random, client_random),
               decoded.signature)  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x01\x00\x17\x01\x04",  # explicit_prime curve type
        b"\x03\x00\x1d\x00",  # empty point
        b"\x03\x00\x1d\x02\x01",  # truncated point
        b"\x03\x00\x1d\x01\x01",  # no signature
        b"\x03\x00\x1d\x01\x01\x04\x03\x00",  # truncated signature length
        b"\x03\x00\x1d\x01\x01\x04\x03\x00\x02\x30",  # truncated signature
        b"\x03\x00\x1d\x01\x01\x04\x03\x00\x00\x00",  # trailing byte
    ],
)
def test_server_key_exchange_ecdhe_malformed(body: bytes) -> None:
    with pytest.raises(DecodeError):
        ServerKeyExchangeEcdhe.decode(body)


def test_server_key_exchange_ecdhe_encode_errors() -> None:
    with pytest.raises(LocalProtocolError):
        ServerKeyExchangeEcdhe(29, b"", P256, b"").encode()
    with pytest.raises(LocalProtocolError):
        ServerKeyExchangeEcdhe(29, b"x" * 256, P256, b"").encode()
    with pytest.raises(LocalProtocolError):
        ServerKeyExchangeEcdhe(29, b"x" * 32, P256, b"").signed_data(b"short", bytes(32))


# ---------------------------------------------------------- raw public keys


@pytest.mark.parametrize(
    "make_key",
    [lambda: ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate],
    ids=["P-256", "Ed25519"],
)
def test_raw_public_key_certificate(make_key: Callable[[], PrivateKey]) -> None:
    key = make_key()
    spki = public_key_spki(key)  # type: ignore[arg-type]
    body = encode_raw_public_key_certificate(key.public_key())  # type: ignore[arg-type]
    assert body == len(spki).to_bytes(3, "big") + spki
    assert encode_raw_public_key_certificate(key) == body  # type: ignore[arg-type]
    assert encode_raw_public_key_certificate(spki) == body
    assert decode_raw_public_key_certificate(body) == spki
    assert public_key_spki(load_spki(spki)) == spki


def test_raw_public_key_errors() -> None:
    for bad in (b"", b"\x00\x00", b"\x00\x00\x00", b"\x00\x00\x02\x30", b"\x00\x00\x01\x30\x00"):
        with pytest.raises(DecodeError):
            decode_raw_public_key_certificate(bad)
    with pytest.raises(HandshakeError) as info:
        load_spki(b"\x30\x00")
    assert info.value.alert == AlertDescription.BAD_CERTIFICATE
    rsa_spki = public_key_spki(rsa.generate_private_key(65537, 1024).public_key())  # type: ignore[arg-type]
    with pytest.raises(HandshakeError, match="RSA") as info:
        load_spki(rsa_spki)
    assert info.value.alert == AlertDescription.UNSUPPORTED_CERTIFICATE
    with pytest.raises(LocalProtocolError):
        encode_raw_public_key_certificate(b"")


# ------------------------------------------------ certificate type extensions


def test_certificate_type_extensions() -> None:
    offered = [CertificateType.RAW_PUBLIC_KEY, CertificateType.X509]
    data = cert_types.encode_certificate_types(offered)
    assert data == b"\x02\x02\x00"
    assert cert_types.decode_certificate_types(data) == offered
    assert cert_types.decode_certificate_types(b"\x01\x07") == [7]
    assert cert_types.encode_certificate_type(CertificateType.RAW_PUBLIC_KEY) == b"\x02"
    assert cert_types.decode_certificate_type(b"\x00") == CertificateType.X509
    assert CertificateType.raw_public_key is CertificateType.RAW_PUBLIC_KEY
    for bad in (b"", b"\x00", b"\x02\x00", b"\x01\x00\x02"):
        with pytest.raises(DecodeError):
            cert_types.decode_certificate_types(bad)
    for bad in (b"", b"\x00\x02"):
        with pytest.raises(DecodeError):
            cert_types.decode_certificate_type(bad)
    for bad_list in ([], [256], [0] * 256, [True]):
        with pytest.raises(LocalProtocolError):
            cert_types.encode_certificate_types(bad_list)
    with pytest.raises(LocalProtocolError):
        cert_types.encode_certificate_type(-1)


def test_choose_certificate_type() -> None:
    rpk, x509_type = CertificateType.RAW_PUBLIC_KEY, CertificateType.X509
    assert cert_types.choose_certificate_type([x509_type, rpk], [rpk, x509_type]) == rpk
    assert cert_types.choose_certificate_type([x509_type], [rpk, x509_type]) == x509_type
    assert cert_types.choose_certificate_type(None, [rpk, x509_type]) == x509_type
    assert cert_types.choose_certificate_type(None, [rpk]) is None
    assert cert_types.choose_certificate_type([1], [rpk, x509_type]) is None


# ------------------------------------------------------------------- fuzz

_DECODERS: list[Callable[[bytes], object]] = [
    CertificateMessage.decode,
    CertificateRequest.decode,
    CertificateVerify.decode,
    ServerKeyExchangeEcdhe.decode,
    decode_raw_public_key_certificate,
    cert_types.decode_certificate_types,
    cert_types.decode_certificate_type,
]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), which=st.integers(0, len(_DECODERS) - 1))
def test_decoders_raise_only_decode_error(data: bytes, which: int) -> None:
    decoder = _DECODERS[which]
    with contextlib.suppress(DecodeError):
        decoder(data)


@settings(max_examples=200, deadline=None)
@given(
    chain=st.lists(st.binary(min_size=1, max_size=40), max_size=4),
    types=st.binary(min_size=1, max_size=4),
    schemes=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=5),
    names=st.lists(st.binary(min_size=1, max_size=20), max_size=3),
    signature=st.binary(max_size=80),
    public=st.binary(min_size=1, max_size=80),
    group=st.integers(0, 0xFFFF),
)
def test_round_trips(
    chain: list[bytes],
    types: bytes,
    schemes: list[int],
    names: list[bytes],
    signature: bytes,
    public: bytes,
    group: int,
) -> None:
    messages: list[
        CertificateMessage | CertificateRequest | CertificateVerify | ServerKeyExchangeEcdhe
    ] = [
        CertificateMessage(chain),
        CertificateRequest(types, schemes, names),
        CertificateVerify(schemes[0], signature),
        ServerKeyExchangeEcdhe(group, public, schemes[0], signature),
    ]
    for message in messages:
        body = message.encode()
        assert type(message).decode(body) == message
        # any strict prefix is truncated: DecodeError, never another error
        for cut in range(len(body)):
            try:
                type(message).decode(body[:cut])
            except DecodeError:
                continue
            # a prefix can only decode when it is itself well-formed: never for
            # these messages, whose outer lengths cover the whole body
            raise AssertionError(f"{type(message).__name__} decoded a truncated body")
