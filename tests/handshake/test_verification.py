"""Tests of peer chain and raw public key verification
(dtlsfast.handshake.verification), on a small P-256 PKI made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.certificates import public_key_spki
from dtlsfast.handshake.constants import AlertDescription
from dtlsfast.handshake.verification import verify_chain, verify_raw_public_key

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
BAD_CERTIFICATE = AlertDescription.BAD_CERTIFICATE
UNKNOWN_CA = AlertDescription.UNKNOWN_CA


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    aki: bool = True,
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``issuer`` (self-signed if None)."""
    issuer_name = issuer[0].subject if issuer else _name(cn)
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Pki:
    root: x509.Certificate
    intermediate: x509.Certificate
    server: x509.Certificate
    client: x509.Certificate
    device: x509.Certificate
    device_bare: x509.Certificate
    expired: x509.Certificate
    future: x509.Certificate
    expired_intermediate: x509.Certificate
    behind_expired: x509.Certificate
    other_root: x509.Certificate
    wrong_ca: x509.Certificate
    forged: x509.Certificate


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key, inter_key, other_key, old_inter_key = _key(), _key(), _key(), _key()
    root = make_cert("Test Root CA", root_key, ca=True)
    inter = make_cert("Test Intermediate CA", inter_key, (root, root_key), ca=True)
    issuer = (inter, inter_key)
    server = make_cert(
        "server.example",
        _key(),
        issuer,
        san=[
            x509.DNSName("server.example"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ],
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client = make_cert(
        "client-1", _key(), issuer, san=[x509.DNSName("client-1.example")],
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )  # fmt: skip
    device = make_cert("device-42", _key(), issuer)
    device_bare = make_cert("device-43", _key(), issuer, aki=False)
    expired = make_cert(
        "old.example", _key(), issuer, san=[x509.DNSName("old.example")],
        not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1),
    )  # fmt: skip
    future = make_cert("new.example", _key(), issuer, not_before=NOW + dt.timedelta(days=1))
    old_inter = make_cert(
        "Old Intermediate CA", old_inter_key, (root, root_key), ca=True,
        not_before=NOW - dt.timedelta(days=800), not_after=NOW - dt.timedelta(days=2),
    )  # fmt: skip
    behind_expired = make_cert("device-44", _key(), (old_inter, old_inter_key))
    other_root = make_cert("Other Root CA", other_key, ca=True)
    wrong_ca = make_cert(
        "server.example", _key(), (other_root, other_key), san=[x509.DNSName("server.example")]
    )
    # Claims the intermediate as issuer, but signed by another key.
    forged = make_cert("device-45", _key(), (inter, other_key))
    return Pki(
        root, inter, server, client, device, device_bare, expired, future, old_inter,
        behind_expired, other_root, wrong_ca, forged,
    )  # fmt: skip


def _fails(alert: int, *words: str) -> Any:
    """Context: HandshakeError with ``alert`` whose message contains ``words``."""
    return pytest.raises(HandshakeError, match="(?s)" + "".join(f"(?=.*{w})" for w in words))


def _check(info: pytest.ExceptionInfo[HandshakeError], alert: int) -> None:
    assert info.value.alert == alert, (info.value.alert, str(info.value))


# ------------------------------------------------------------------ good


def test_server_chain_with_dns_name(pki: Pki) -> None:
    verify_chain(
        [pki.server, pki.intermediate], [pki.root],
        server_name="server.example", now=NOW, purpose="server",
    )  # fmt: skip
    # case and a trailing dot do not matter
    verify_chain(
        [pki.server, pki.intermediate], [pki.root],
        server_name="Server.Example.", now=NOW, purpose="server",
    )  # fmt: skip


@pytest.mark.parametrize("name", ["127.0.0.1", "::1", "[::1]"])
def test_server_chain_with_ip_address(pki: Pki, name: str) -> None:
    verify_chain(
        [pki.server, pki.intermediate], [pki.root], server_name=name, now=NOW, purpose="server"
    )


def test_server_chain_without_name(pki: Pki) -> None:
    verify_chain([pki.server, pki.intermediate], [pki.root], server_name=None, now=NOW,
                 purpose="server")  # fmt: skip


def test_client_chain(pki: Pki) -> None:
    verify_chain([pki.client, pki.intermediate], [pki.root], server_name=None, now=NOW,
                 purpose="client")  # fmt: skip


@pytest.mark.parametrize("purpose", ["server", "client"])
def test_device_without_san_or_aki(pki: Pki, purpose: str) -> None:
    for leaf in (pki.device, pki.device_bare):
        verify_chain([leaf, pki.intermediate], [pki.root], server_name=None, now=NOW,
                     purpose=purpose)  # type: ignore[arg-type]  # fmt: skip


def test_unrelated_expired_certificate_in_chain_is_ignored(pki: Pki) -> None:
    verify_chain([pki.device, pki.intermediate, pki.expired], [pki.root], server_name=None,
                 now=NOW, purpose="client")  # fmt: skip


def test_chain_sent_with_root_and_out_of_order(pki: Pki) -> None:
    verify_chain([pki.device, pki.root, pki.intermediate], [pki.root], server_name=None,
                 now=NOW, purpose="client")  # fmt: skip


def test_intermediate_as_trust_anchor(pki: Pki) -> None:
    verify_chain([pki.device], [pki.intermediate], server_name=None, now=NOW, purpose="client")


def test_self_signed_leaf_trusted_directly() -> None:
    key = _key()
    cert = make_cert("lonely-device", key)
    verify_chain([cert], [cert], server_name=None, now=NOW, purpose="server")


def test_naive_time_is_utc(pki: Pki) -> None:
    verify_chain([pki.device, pki.intermediate], [pki.root], server_name=None,
                 now=NOW.replace(tzinfo=None), purpose="client")  # fmt: skip


# ------------------------------------------------------------------- bad


def test_wrong_server_name(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "server.example", "other.example", "DNS:server.example") as info:
        verify_chain([pki.server, pki.intermediate], [pki.root], server_name="other.example",
                     now=NOW, purpose="server")  # fmt: skip
    _check(info, BAD_CERTIFICATE)
    with _fails(BAD_CERTIFICATE, "10.0.0.1", "IP:127.0.0.1") as info:
        verify_chain([pki.server, pki.intermediate], [pki.root], server_name="10.0.0.1",
                     now=NOW, purpose="server")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_common_name_is_not_a_server_name(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "device-42", "no subjectAltName") as info:
        verify_chain([pki.device, pki.intermediate], [pki.root], server_name="device-42",
                     now=NOW, purpose="server")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_expired_leaf(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "CN=old.example", "expired") as info:
        verify_chain([pki.expired, pki.intermediate], [pki.root], server_name="old.example",
                     now=NOW, purpose="server")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_not_yet_valid_leaf(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "CN=new.example", "not valid before") as info:
        verify_chain([pki.future, pki.intermediate], [pki.root], server_name=None, now=NOW,
                     purpose="client")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_expired_intermediate_is_named(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "CN=Old Intermediate CA", "expired") as info:
        verify_chain([pki.behind_expired, pki.expired_intermediate], [pki.root],
                     server_name=None, now=NOW, purpose="client")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_wrong_ca(pki: Pki) -> None:
    with _fails(UNKNOWN_CA, "CN=server.example", "issuer 'CN=Other Root CA'", "trusted") as info:
        verify_chain([pki.wrong_ca], [pki.root], server_name="server.example", now=NOW,
                     purpose="server")  # fmt: skip
    _check(info, UNKNOWN_CA)
    # sending the untrusted root along does not help
    with _fails(UNKNOWN_CA, "CN=Other Root CA", "self-signed root that is not trusted") as info:
        verify_chain([pki.wrong_ca, pki.other_root], [pki.root], server_name=None, now=NOW,
                     purpose="server")  # fmt: skip
    _check(info, UNKNOWN_CA)


def test_missing_intermediate(pki: Pki) -> None:
    with _fails(UNKNOWN_CA, "CN=server.example", "Test Intermediate CA") as info:
        verify_chain([pki.server], [pki.root], server_name="server.example", now=NOW,
                     purpose="server")  # fmt: skip
    _check(info, UNKNOWN_CA)


def test_forged_signature(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "CN=device-45", "signature does not match") as info:
        verify_chain([pki.forged, pki.intermediate], [pki.root], server_name=None, now=NOW,
                     purpose="client")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_extended_key_usage_must_fit_the_purpose(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "CN=client-1", "server authentication") as info:
        verify_chain([pki.client, pki.intermediate], [pki.root], server_name=None, now=NOW,
                     purpose="server")  # fmt: skip
    _check(info, BAD_CERTIFICATE)
    with _fails(BAD_CERTIFICATE, "CN=server.example", "client authentication") as info:
        verify_chain([pki.server, pki.intermediate], [pki.root], server_name=None, now=NOW,
                     purpose="client")  # fmt: skip
    _check(info, BAD_CERTIFICATE)
    with _fails(BAD_CERTIFICATE, "CN=client-1") as info:
        verify_chain([pki.client, pki.intermediate], [pki.root],
                     server_name="client-1.example", now=NOW, purpose="server")  # fmt: skip
    _check(info, BAD_CERTIFICATE)


def test_leaf_used_as_issuer(pki: Pki) -> None:
    """A certificate issued by an end entity does not verify."""
    leaf_key = _key()
    leaf = make_cert("not-a-ca", leaf_key, (pki.intermediate, _key()))
    child = make_cert("child", _key(), (leaf, leaf_key))
    with pytest.raises(HandshakeError) as info:
        verify_chain([child, leaf, pki.intermediate], [pki.root], server_name=None, now=NOW,
                     purpose="client")  # fmt: skip
    assert info.value.alert in (BAD_CERTIFICATE, UNKNOWN_CA)


def test_empty_chain_and_no_roots(pki: Pki) -> None:
    with _fails(BAD_CERTIFICATE, "no certificate") as info:
        verify_chain([], [pki.root], server_name=None, now=NOW, purpose="client")
    _check(info, BAD_CERTIFICATE)
    with _fails(UNKNOWN_CA, "device-42", "no trusted roots") as info:
        verify_chain([pki.device], [], server_name=None, now=NOW, purpose="client")
    _check(info, UNKNOWN_CA)


def test_bad_purpose(pki: Pki) -> None:
    with pytest.raises(ValueError, match="purpose"):
        verify_chain([pki.device], [pki.root], server_name=None, now=NOW,
                     purpose="both")  # type: ignore[arg-type]  # fmt: skip


# ------------------------------------------------------- raw public keys


def test_raw_public_key() -> None:
    trusted_key, other_key = _key(), _key()
    trusted = {public_key_spki(trusted_key)}
    verify_raw_public_key(public_key_spki(trusted_key), trusted)
    verify_raw_public_key(bytearray(public_key_spki(trusted_key)), frozenset(trusted))
    with pytest.raises(HandshakeError, match="not among the 1 trusted") as info:
        verify_raw_public_key(public_key_spki(other_key), trusted)
    assert info.value.alert == BAD_CERTIFICATE
    with pytest.raises(HandshakeError) as info:
        verify_raw_public_key(b"", set())
    assert info.value.alert == BAD_CERTIFICATE
