"""A throwaway P-256 PKI for tests: a CA, and leaf certificates it signs,
written as PEM files the way users hand them to dtlsfast."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtlsfast.config import DtlsConfiguration


@dataclass(frozen=True)
class Credentials:
    certfile: Path
    keyfile: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def key_usage(**asserted: bool) -> x509.KeyUsage:
    """A KeyUsage asserting the named bits (digital_signature=True, ...) only."""
    bits = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    bits.update(asserted)
    return x509.KeyUsage(**bits)


class Pki:
    """A CA in ``directory``; :meth:`issue` makes leaf credentials."""

    def __init__(self, directory: Path, name: str = "dtlsfast test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cafile = directory / f"{name.replace(' ', '-')}.pem"
        self.cafile.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        common_name: str,
        *,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        key_usage: x509.KeyUsage | None = None,
    ) -> Credentials:
        """Leaf credentials; ``key_usage`` adds that (critical) extension."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        certificate = builder.sign(self.key, hashes.SHA256())
        stem = self.directory / common_name.replace(" ", "-")
        creds = Credentials(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        creds.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, creds.keyfile)
        return creds


def mutual_auth_configs(
    pki: Pki, server: Credentials, client: Credentials
) -> tuple[DtlsConfiguration, DtlsConfiguration]:
    """(client, server) configurations that both authenticate with
    certificates of ``pki``, the server requiring the client's; the server's
    certificate must name server.example."""
    return (
        DtlsConfiguration.client(
            cafile=pki.cafile,
            server_name="server.example",
            certfile=client.certfile,
            keyfile=client.keyfile,
        ),
        DtlsConfiguration.server(
            certfile=server.certfile,
            keyfile=server.keyfile,
            cafile=pki.cafile,
            client_auth="required",
        ),
    )
