"""ECDHE-ECDSA handshakes with certificates (RFC 8422, RFC 5246 §7.4.2-7.4.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dtls_pair import Pair, handshake
from pki import Pki

from dtlsfast.config import DtlsConfiguration
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import ConfigurationError, HandshakeError
from dtlsfast.handshake.constants import AlertDescription

CERT_SUITES = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def _server(pki: Pki, **kwargs: object) -> DtlsConfiguration:
    creds = pki.issue("server.example", dns=("server.example",), ips=("127.0.0.1",))
    return DtlsConfiguration.server(certfile=creds.certfile, keyfile=creds.keyfile, **kwargs)  # type: ignore[arg-type]


def _error(events: list[object]) -> HandshakeError:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed and isinstance(closed[0].error, HandshakeError), events
    return closed[0].error


@pytest.mark.parametrize("suite", CERT_SUITES)
def test_certificate_handshake_each_suite(pki: Pki, suite: str) -> None:
    client = DtlsConfiguration.client(
        cafile=pki.cafile, ciphers=[suite], server_name="server.example"
    )
    pair = handshake(client, _server(pki))
    assert pair.established
    done = next(e for e in pair.client_events if isinstance(e, HandshakeCompleted))
    assert done.cipher_suite == suite and done.psk_identity is None
    assert pair.client.peer_certificates is not None
    assert pair.server is not None and pair.server.peer_certificates is None
    pair.client.send(b"signed and sealed")
    pair.transfer()
    assert ApplicationDataReceived(b"signed and sealed") in pair.server_events


def test_certificate_flight_fragmented_to_small_mtu(pki: Pki) -> None:
    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="127.0.0.1", mtu=300)
    pair = handshake(client, _server(pki, mtu=300))
    assert pair.established
    assert all(len(d) <= 300 for d in pair.to_client)
    assert len(pair.to_client) > 3  # the certificate flight needed several datagrams


def test_wrong_server_name_fails_with_bad_certificate(pki: Pki) -> None:
    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="other.example")
    pair = handshake(client, _server(pki))
    error = _error(pair.client_events)
    assert error.alert == AlertDescription.BAD_CERTIFICATE
    assert "other.example" in str(error)


def test_unknown_ca_fails_with_unknown_ca(pki: Pki, tmp_path: Path) -> None:
    other = Pki(tmp_path, name="another CA")
    client = DtlsConfiguration.client(cafile=other.cafile, server_name="server.example")
    pair = handshake(client, _server(pki))
    assert _error(pair.client_events).alert == AlertDescription.UNKNOWN_CA
    assert _error(pair.server_events).alert == AlertDescription.UNKNOWN_CA


@pytest.mark.parametrize("client_auth", ["optional", "required"])
def test_mutual_authentication(pki: Pki, client_auth: str) -> None:
    device = pki.issue("device-0042")  # no SAN, as devices often are
    client = DtlsConfiguration.client(
        cafile=pki.cafile,
        certfile=device.certfile,
        keyfile=device.keyfile,
        server_name="server.example",
    )
    pair = handshake(client, _server(pki, cafile=pki.cafile, client_auth=client_auth))
    assert pair.established
    assert pair.server is not None and pair.server.peer_certificates is not None
    subject = pair.server.peer_certificates[0].subject.rfc4514_string()
    assert subject == "CN=device-0042"


def test_optional_client_auth_without_certificate(pki: Pki) -> None:
    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    pair = handshake(client, _server(pki, cafile=pki.cafile, client_auth="optional"))
    assert pair.established
    assert pair.server is not None and pair.server.peer_certificates is None


def test_required_client_auth_without_certificate(pki: Pki) -> None:
    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    pair = handshake(client, _server(pki, cafile=pki.cafile, client_auth="required"))
    assert _error(pair.server_events).alert == AlertDescription.HANDSHAKE_FAILURE


def test_client_certificate_from_another_ca(pki: Pki, tmp_path: Path) -> None:
    rogue = Pki(tmp_path, name="rogue CA").issue("device-rogue")
    client = DtlsConfiguration.client(
        cafile=pki.cafile,
        certfile=rogue.certfile,
        keyfile=rogue.keyfile,
        server_name="server.example",
    )
    pair = handshake(client, _server(pki, cafile=pki.cafile, client_auth="required"))
    assert _error(pair.server_events).alert == AlertDescription.UNKNOWN_CA


def test_psk_and_certificates_on_one_server(pki: Pki) -> None:
    server = _server(pki, psk_store={"CoAP": b"esp32c3_key"})
    psk_client = DtlsConfiguration.client(psk=("CoAP", "esp32c3_key"))
    assert handshake(psk_client, server).established
    cert_client = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    pair = handshake(cert_client, server)
    assert pair.established
    assert pair.client.cipher_suite is not None
    assert pair.client.cipher_suite.key_exchange == "ECDHE_ECDSA"


def test_configuration_errors_say_what_to_give(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="cafile"):
        DtlsConfiguration.client(ciphers=["TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"])
    with pytest.raises(ConfigurationError, match="certfile"):
        DtlsConfiguration.server(ciphers=["TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"])
    creds = pki.issue("lonely")
    with pytest.raises(ConfigurationError, match="keyfile"):
        DtlsConfiguration.server(certfile=creds.certfile)
    with pytest.raises(ConfigurationError, match="cafile"):
        _server(pki, client_auth="required")


def test_lossy_certificate_handshake(pki: Pki) -> None:
    from dtls_pair import Network

    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example", mtu=400)
    for seed in range(4):
        pair = Pair(client, _server(pki, mtu=400), Network(loss=0.3, reorder=0.3, seed=seed))
        pair.start()
        pair.run()
        assert pair.established, seed
