"""Verifying the peer's certificate chain or raw public key.

Chains are verified with ``cryptography.x509.verification`` (RFC 5280 path
validation with the CA/B Forum profile) against the configured roots, with
two relaxations for the end-entity certificate that constrained devices need:
its subjectAltName and authorityKeyIdentifier may be absent. A name is only
checked when one is asked for: a client that gives ``server_name`` gets the
full RFC 6125 check (a DNS name or an IP address in the subjectAltName; the
common name does not count), and then a SAN is required.

Extended key usage: if the leaf has the extension it must allow the purpose,
serverAuth for a server's certificate, clientAuth for a client's (or
anyExtendedKeyUsage); a leaf without the extension may do both.

Key usage (RFC 5280 §4.2.1.3, RFC 8422 §5.6): the leaf authenticates by
signing (ServerKeyExchange, CertificateVerify), so if it has the keyUsage
extension that must assert digitalSignature (and, as the CA/B Forum profile
has it, not keyCertSign); a keyAgreement-only certificate is refused.

A certificate that ``cryptography`` cannot read (lazily parsed names or
extensions raise late, and not only ValueError) is a bad_certificate here too,
never an exception of another type.

Failures raise :class:`~dtlsfast.exceptions.HandshakeError` whose message
names the certificate (its subject) and the reason, and whose ``alert`` is
unknown_ca (48) when the chain does not lead to a configured root and
bad_certificate (42) otherwise (RFC 5246 §7.2.2). Raw public keys (RFC 7250
§3) are checked against a set of trusted SubjectPublicKeyInfo encodings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Callable, Collection
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    Subject,
    VerificationError,
)

from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.constants import AlertDescription

Purpose = Literal["server", "client"]


def _describe(cert: x509.Certificate) -> str:
    try:
        return repr(cert.subject.rfc4514_string() or "<empty subject>")
    except Exception:  # a malformed name: say so rather than fail here
        return "<malformed subject>"


def _subject_for(server_name: str) -> Subject:
    """DNSName or IPAddress for ``server_name`` (IPv6 may be in brackets)."""
    literal = server_name.strip("[]")
    try:
        return x509.IPAddress(ipaddress.ip_address(literal))
    except ValueError:
        return x509.DNSName(server_name.rstrip(".").lower())


_EkuCheck = Callable[[Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]


def _eku_validator(purpose: Purpose) -> _EkuCheck:
    wanted = (
        ExtendedKeyUsageOID.SERVER_AUTH if purpose == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    )

    def check(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        if eku is None:
            return
        usages = list(eku)
        if wanted not in usages and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
            raise ValueError(
                f"its extended key usage does not allow {purpose} authentication "
                f"({wanted.dotted_string} missing)"
            )

    return check


def _check_key_usage(
    policy: Policy, cert: x509.Certificate, key_usage: x509.KeyUsage | None
) -> None:
    """RFC 5280 §4.2.1.3, RFC 8422 §5.6: the handshake signature needs
    digitalSignature; an end-entity certificate never signs certificates."""
    if key_usage is None:
        return
    if not key_usage.digital_signature:
        raise ValueError(
            "its key usage does not allow digitalSignature, which authenticating with an "
            "ECDSA signature needs (RFC 8422 §5.6)"
        )
    if key_usage.key_cert_sign:
        raise ValueError("EE keyUsage must not assert keyCertSign")


def _builder(
    roots: list[x509.Certificate], now: dt.datetime, purpose: Purpose, *, san_required: bool
) -> PolicyBuilder:
    ee = ExtensionPolicy.webpki_defaults_ee()
    ee = ee.may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
    ee = ee.may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_validator(purpose))
    ee = ee.may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _check_key_usage)
    if not san_required:
        ee = ee.may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return (
        PolicyBuilder()
        .store(Store(roots))
        .time(now)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
    )


def _names(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it has no subjectAltName"
    found = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
    found += [f"IP:{n}" for n in san.get_values_for_type(x509.IPAddress)]
    return "its names are " + (", ".join(found) or "none of DNS or IP type")


def _check_validity(path: list[x509.Certificate], now: dt.datetime) -> None:
    """Name the first certificate on ``path`` that is not valid at ``now``
    (cryptography's own check does not say which one)."""
    for cert in path:
        if now < cert.not_valid_before_utc:
            raise HandshakeError(
                f"certificate {_describe(cert)} is not valid before "
                f"{cert.not_valid_before_utc.isoformat()} (now {now.isoformat()})",
                AlertDescription.BAD_CERTIFICATE,
            )
        if now > cert.not_valid_after_utc:
            raise HandshakeError(
                f"certificate {_describe(cert)} expired on "
                f"{cert.not_valid_after_utc.isoformat()} (now {now.isoformat()})",
                AlertDescription.BAD_CERTIFICATE,
            )


_PROCESSING = re.compile(r"\s*\(encountered processing <Certificate\(subject=<Name\((.*?)\)>.*$")


def _name_path(
    chain: list[x509.Certificate], roots: list[x509.Certificate]
) -> tuple[list[x509.Certificate], bool]:
    """The certificates from the leaf up, following issuer to subject names
    through the sent chain, and whether the last one's issuer is trusted (or it
    is itself a root). Certificates the peer sent that are not on this path
    (old cross-signs and the like) are left out."""
    trusted = {root.subject for root in roots}
    path = [chain[0]]
    while True:
        cert = path[-1]
        if cert.issuer in trusted or cert in roots:
            return path, True
        parents = [c for c in chain[1:] if c.subject == cert.issuer and c not in path]
        if not parents or cert.issuer == cert.subject:
            return path, False
        path.append(parents[0])


def _translate(
    exc: VerificationError, chain: list[x509.Certificate], roots: list[x509.Certificate]
) -> HandshakeError:
    text = str(exc).removeprefix("validation failed: ")
    if text.startswith("candidates exhausted"):
        reason = text.removeprefix("candidates exhausted: ")
        path, anchored = _name_path(chain, roots)
        top = None if anchored else path[-1]
        if top is not None and top.issuer == top.subject:
            return HandshakeError(
                f"certificate {_describe(top)} is a self-signed root that is not trusted",
                AlertDescription.UNKNOWN_CA,
            )
        if top is not None:
            return HandshakeError(
                f"certificate {_describe(top)} does not chain to a trusted root: its issuer "
                f"{top.issuer.rfc4514_string()!r} is neither in the chain nor trusted",
                AlertDescription.UNKNOWN_CA,
            )
        return HandshakeError(
            f"certificate {_describe(chain[0])} does not verify up to a trusted root: {reason}",
            AlertDescription.BAD_CERTIFICATE,
        )
    match = _PROCESSING.search(text)
    subject = repr(match.group(1)) if match else _describe(chain[0])
    reason = _PROCESSING.sub("", text).replace(
        "Python extension validator failed: ValueError: ", ""
    )
    return HandshakeError(f"certificate {subject}: {reason}", AlertDescription.BAD_CERTIFICATE)


def verify_chain(
    chain: list[x509.Certificate],
    roots: list[x509.Certificate],
    *,
    server_name: str | None,
    now: dt.datetime,
    purpose: Purpose,
) -> None:
    """Check the peer's ``chain`` (leaf first, as the Certificate message
    sent it) against the trusted ``roots`` at ``now``.

    ``purpose`` is what the chain must be good for: ``"server"`` when a client
    checks its server, ``"client"`` when a server checks a client. With a
    ``server_name`` (a DNS name or an IP literal) the leaf must carry it in its
    subjectAltName. A naive ``now`` is taken as UTC.
    """
    if purpose not in ("server", "client"):
        raise ValueError(f"purpose must be 'server' or 'client', not {purpose!r}")
    if not chain:
        raise HandshakeError("the peer sent no certificate", AlertDescription.BAD_CERTIFICATE)
    try:
        _verify_chain(chain, roots, server_name, now, purpose)
    except HandshakeError:
        raise
    except Exception as exc:  # a field that does not parse, read late
        raise HandshakeError(
            f"certificate {_describe(chain[0])} cannot be verified: it does not parse "
            f"({type(exc).__name__}: {exc})",
            AlertDescription.BAD_CERTIFICATE,
        ) from None


def _verify_chain(
    chain: list[x509.Certificate],
    roots: list[x509.Certificate],
    server_name: str | None,
    now: dt.datetime,
    purpose: Purpose,
) -> None:
    """verify_chain once its arguments are checked."""
    if not roots:
        raise HandshakeError(
            f"certificate {_describe(chain[0])} cannot be verified: "
            "no trusted roots are configured",
            AlertDescription.UNKNOWN_CA,
        )
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    _check_validity(_name_path(chain, roots)[0], now)
    leaf, intermediates = chain[0], list(chain[1:])
    try:
        if server_name is not None:
            subject = _subject_for(server_name)
            builder = _builder(roots, now, purpose, san_required=True)
            builder.build_server_verifier(subject).verify(leaf, intermediates)
        else:
            builder = _builder(roots, now, purpose, san_required=False)
            builder.build_client_verifier().verify(leaf, intermediates)
    except VerificationError as exc:
        if server_name is not None and "subjectAltName" in str(exc):
            raise HandshakeError(
                f"certificate {_describe(leaf)} is not valid for {server_name!r}: {_names(leaf)}",
                AlertDescription.BAD_CERTIFICATE,
            ) from None
        raise _translate(exc, chain, roots) from None


def verify_raw_public_key(spki_der: bytes, trusted: Collection[bytes]) -> None:
    """Check a raw public key (the DER SubjectPublicKeyInfo a peer sent,
    RFC 7250 §3) against the ``trusted`` SPKI encodings. An unknown key
    fails with bad_certificate (there is no CA to be unknown)."""
    if bytes(spki_der) not in trusted:
        fingerprint = hashlib.sha256(bytes(spki_der)).hexdigest()
        raise HandshakeError(
            f"the peer's raw public key (SPKI SHA-256 {fingerprint}) is not among "
            f"the {len(trusted)} trusted keys",
            AlertDescription.BAD_CERTIFICATE,
        )


__all__ = ["Purpose", "verify_chain", "verify_raw_public_key"]
