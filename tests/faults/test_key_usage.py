"""Issue 12, item 11: keyUsage of end-entity certificates is enforced on both
sides (RFC 5280 §4.2.1.3, RFC 8422 §5.6).

In ECDHE_ECDSA the server's certificate key signs the ServerKeyExchange and a
client's signs the CertificateVerify: both need digitalSignature when the
certificate has a keyUsage extension. A keyAgreement-only certificate used to
authenticate anyway.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from dtls_pair import Pair, handshake
from pki import Pki, key_usage, mutual_auth_configs

from dtlsfast.events import ConnectionClosed
from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.constants import AlertDescription

KEY_AGREEMENT_ONLY = key_usage(key_agreement=True)
SIGNING = key_usage(digital_signature=True)
SIGNING_AND_AGREEMENT = key_usage(digital_signature=True, key_agreement=True)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def _outcome(events: list[object]) -> HandshakeError | None:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    if not closed:
        return None
    assert isinstance(closed[0].error, HandshakeError), closed[0].error
    return closed[0].error


def _pair(
    pki: Pki, server_usage: x509.KeyUsage | None, client_usage: x509.KeyUsage | None
) -> tuple[Pair, HandshakeError | None, HandshakeError | None]:
    server_creds = pki.issue("server.example", dns=("server.example",), key_usage=server_usage)
    client_creds = pki.issue("client.example", key_usage=client_usage)
    client, server = mutual_auth_configs(pki, server_creds, client_creds)
    pair = handshake(client, server)
    return pair, _outcome(pair.client_events), _outcome(pair.server_events)


@pytest.mark.parametrize("holder", ["client", "server"])
def test_key_agreement_only_certificate_is_refused(pki: Pki, holder: str) -> None:
    usages = (SIGNING, KEY_AGREEMENT_ONLY) if holder == "client" else (KEY_AGREEMENT_ONLY, SIGNING)
    _, client_error, server_error = _pair(pki, *usages)
    checker, told = (
        (server_error, client_error) if holder == "client" else (client_error, server_error)
    )
    print(f"\n[keyUsage] keyAgreement-only {holder} certificate: its peer says {checker}")
    assert isinstance(checker, HandshakeError)
    assert checker.alert == AlertDescription.BAD_CERTIFICATE
    assert "digitalSignature" in str(checker)
    assert isinstance(told, HandshakeError)
    assert told.alert == AlertDescription.BAD_CERTIFICATE


@pytest.mark.parametrize("usage", [SIGNING, SIGNING_AND_AGREEMENT, None])
def test_signing_certificates_still_authenticate(pki: Pki, usage: x509.KeyUsage | None) -> None:
    pair, client_error, server_error = _pair(pki, usage, usage)
    assert client_error is None and server_error is None
    assert pair.established


def test_end_entity_may_not_sign_certificates(pki: Pki) -> None:
    """The CA/B Forum rule that the default policy had stays: keyCertSign on a
    leaf is refused."""
    usage = key_usage(digital_signature=True, key_cert_sign=True)
    _, client_error, _ = _pair(pki, usage, SIGNING)
    assert isinstance(client_error, HandshakeError)
    assert client_error.alert == AlertDescription.BAD_CERTIFICATE
    assert "keyCertSign" in str(client_error)
