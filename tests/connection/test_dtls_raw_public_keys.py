"""Raw public keys in the handshake (RFC 7250 §4): negotiation of the
client_certificate_type and server_certificate_type extensions, a bare
SubjectPublicKeyInfo as the Certificate, and trust by a configured key set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dtls_pair import Network, Pair, handshake
from pki import Pki

from dtlsfast import DtlsError
from dtlsfast.config import DtlsConfiguration
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import ConfigurationError, HandshakeError
from dtlsfast.handshake.cert_types import CertificateType
from dtlsfast.handshake.certificates import public_key_spki
from dtlsfast.handshake.constants import AlertDescription, ExtensionType
from dtlsfast.handshake.messages import (
    ClientHello,
    ServerHello,
    find_extension,
    split_handshake_fragments,
)


def _key_file(directory: Path, name: str) -> tuple[Path, bytes]:
    """A P-256 private key PEM in ``directory``, and its DER SPKI."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{name}.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, public_key_spki(key)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, bytes]]:
    return {name: _key_file(tmp_path, name) for name in ("server", "client", "stranger")}


def _error(events: list[object]) -> HandshakeError:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed and isinstance(closed[0].error, HandshakeError), events
    return closed[0].error


def _handshake_messages(datagrams: list[bytes]) -> list[bytes]:
    """Unprotected (epoch 0) handshake messages in ``datagrams``, in order."""
    out = []
    for datagram in datagrams:
        offset = 0
        while offset + 13 <= len(datagram):
            length = int.from_bytes(datagram[offset + 11 : offset + 13], "big")
            record = datagram[offset : offset + 13 + length]
            offset += 13 + length
            if record[0] == 22 and record[3:5] == b"\x00\x00":
                out += split_handshake_fragments(record[13:])
    return out


def _hello_extensions(datagrams: list[bytes], msg_type: int) -> list[tuple[int, bytes]]:
    bodies = [m[12:] for m in _handshake_messages(datagrams) if m[0] == msg_type]
    assert bodies, f"no handshake message {msg_type}"
    if msg_type == 1:
        return ClientHello.decode(bodies[-1]).extensions
    return ServerHello.decode(bodies[-1]).extensions


def test_server_authenticates_with_raw_public_key(keys: dict[str, tuple[Path, bytes]]) -> None:
    server_key, server_spki = keys["server"]
    client = DtlsConfiguration.client(trusted_public_keys=[server_spki])
    server = DtlsConfiguration.server(keyfile=server_key, raw_public_key=True)
    pair = handshake(client, server)
    assert pair.established
    assert pair.client.peer_certificate_type == CertificateType.RAW_PUBLIC_KEY
    assert pair.client.peer_public_key is not None
    assert public_key_spki(pair.client.peer_public_key) == server_spki
    assert pair.client.peer_certificates is None
    assert pair.server is not None and pair.server.peer_public_key is None
    done = next(e for e in pair.client_events if isinstance(e, HandshakeCompleted))
    assert done.cipher_suite.startswith("TLS_ECDHE_ECDSA_")
    # On the wire: the client offers RawPublicKey only, the server echoes it,
    # and the Certificate is one SubjectPublicKeyInfo (RFC 7250 §3).
    offered = find_extension(_hello_extensions(pair.to_server, 1), 20)
    assert offered == b"\x01\x02"
    assert find_extension(_hello_extensions(pair.to_server, 1), 19) is None
    assert find_extension(_hello_extensions(pair.to_client, 2), 20) == b"\x02"
    certificate = next(m for m in _handshake_messages(pair.to_client) if m[0] == 11)
    assert certificate[12:] == len(server_spki).to_bytes(3, "big") + server_spki
    pair.client.send(b"raw and sealed")
    pair.transfer()
    assert ApplicationDataReceived(b"raw and sealed") in pair.server_events


@pytest.mark.parametrize("client_auth", ["optional", "required"])
def test_mutual_raw_public_keys(keys: dict[str, tuple[Path, bytes]], client_auth: str) -> None:
    (server_key, server_spki), (client_key, client_spki) = keys["server"], keys["client"]
    client = DtlsConfiguration.client(
        keyfile=client_key, raw_public_key=True, trusted_public_keys=[server_spki]
    )
    server = DtlsConfiguration.server(
        keyfile=server_key,
        raw_public_key=True,
        trusted_public_keys=[client_spki],
        client_auth=client_auth,  # type: ignore[arg-type]
    )
    pair = handshake(client, server, Network(loss=0.2, reorder=0.2, seed=7))
    assert pair.established
    assert pair.server is not None and pair.server.peer_public_key is not None
    assert public_key_spki(pair.server.peer_public_key) == client_spki
    assert pair.server.peer_certificate_type == CertificateType.RAW_PUBLIC_KEY
    assert find_extension(_hello_extensions(pair.to_server, 1), 19) == b"\x01\x02"
    assert find_extension(_hello_extensions(pair.to_client, 2), 19) == b"\x02"
    # The client proved possession of the key: a CertificateVerify was sent.
    assert pair.server.counters["handshakes"] == 1


def test_untrusted_server_key_is_rejected(keys: dict[str, tuple[Path, bytes]]) -> None:
    server_key, server_spki = keys["server"]
    stranger_spki = keys["stranger"][1]
    client = DtlsConfiguration.client(trusted_public_keys=[stranger_spki])
    server = DtlsConfiguration.server(keyfile=server_key, raw_public_key=True)
    pair = handshake(client, server)
    error = _error(pair.client_events)
    assert error.alert == AlertDescription.BAD_CERTIFICATE
    assert hashlib.sha256(server_spki).hexdigest() in str(error)
    assert "server authentication failed" in str(error)
    assert _error(pair.server_events).alert == AlertDescription.BAD_CERTIFICATE
    assert pair.client.counters["untrusted_raw_public_key"] == 1


def test_untrusted_client_key_is_rejected(keys: dict[str, tuple[Path, bytes]]) -> None:
    (server_key, server_spki), (stranger_key, stranger_spki) = keys["server"], keys["stranger"]
    client = DtlsConfiguration.client(
        keyfile=stranger_key, raw_public_key=True, trusted_public_keys=[server_spki]
    )
    server = DtlsConfiguration.server(
        keyfile=server_key,
        raw_public_key=True,
        trusted_public_keys=[keys["client"][1]],
        client_auth="required",
    )
    pair = handshake(client, server)
    error = _error(pair.server_events)
    assert error.alert == AlertDescription.BAD_CERTIFICATE
    assert hashlib.sha256(stranger_spki).hexdigest() in str(error)
    assert "client authentication failed" in str(error)
    assert _error(pair.client_events).alert == AlertDescription.BAD_CERTIFICATE


def test_type_mismatch_fails_with_unsupported_certificate(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    """Server has only an X.509 certificate, client verifies only raw keys."""
    creds = Pki(tmp_path).issue("server.example")
    client = DtlsConfiguration.client(trusted_public_keys=[keys["server"][1]])
    server = DtlsConfiguration.server(certfile=creds.certfile, keyfile=creds.keyfile)
    pair = handshake(client, server)
    error = _error(pair.server_events)
    assert error.alert == AlertDescription.UNSUPPORTED_CERTIFICATE
    assert "RawPublicKey" in str(error) and "X.509" in str(error)
    assert _error(pair.client_events).alert == AlertDescription.UNSUPPORTED_CERTIFICATE


def test_client_without_extension_meets_raw_key_only_server(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    """A client that knows only X.509 (no extension): no common type."""
    pki = Pki(tmp_path)
    client = DtlsConfiguration.client(cafile=pki.cafile)
    server = DtlsConfiguration.server(keyfile=keys["server"][0], raw_public_key=True)
    pair = handshake(client, server)
    assert _error(pair.server_events).alert == AlertDescription.UNSUPPORTED_CERTIFICATE


def test_psk_still_chosen_when_certificate_types_do_not_match(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    creds = Pki(tmp_path).issue("server.example")
    client = DtlsConfiguration.client(
        psk=("CoAP", "esp32c3_key"), trusted_public_keys=[keys["server"][1]]
    )
    server = DtlsConfiguration.server(
        psk_store={"CoAP": b"esp32c3_key"}, certfile=creds.certfile, keyfile=creds.keyfile
    )
    pair = handshake(client, server)
    assert pair.established
    assert pair.client.cipher_suite is not None and pair.client.cipher_suite.uses_psk
    assert find_extension(_hello_extensions(pair.to_client, 2), 20) is None


def test_server_raw_key_client_certificate(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    """Mixed: the server presents a raw key, the client an X.509 certificate."""
    pki = Pki(tmp_path)
    device = pki.issue("device-0042")
    server_key, server_spki = keys["server"]
    client = DtlsConfiguration.client(
        certfile=device.certfile, keyfile=device.keyfile, trusted_public_keys=[server_spki]
    )
    server = DtlsConfiguration.server(
        keyfile=server_key, raw_public_key=True, cafile=pki.cafile, client_auth="required"
    )
    pair = handshake(client, server)
    assert pair.established
    assert pair.client.peer_certificate_type == CertificateType.RAW_PUBLIC_KEY
    assert pair.server is not None and pair.server.peer_certificates is not None
    assert pair.server.peer_certificates[0].subject.rfc4514_string() == "CN=device-0042"
    assert pair.server.peer_certificate_type == CertificateType.X509


def test_server_certificate_client_raw_key(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    """Mixed the other way: the server has a certificate, the client a raw key."""
    pki = Pki(tmp_path)
    creds = pki.issue("server.example", dns=("server.example",))
    client_key, client_spki = keys["client"]
    client = DtlsConfiguration.client(
        cafile=pki.cafile, server_name="server.example", keyfile=client_key, raw_public_key=True
    )
    server = DtlsConfiguration.server(
        certfile=creds.certfile,
        keyfile=creds.keyfile,
        trusted_public_keys=[client_spki],
        client_auth="required",
    )
    pair = handshake(client, server)
    assert pair.established
    assert pair.client.peer_certificates is not None
    assert pair.server is not None and pair.server.peer_public_key is not None
    assert public_key_spki(pair.server.peer_public_key) == client_spki
    assert find_extension(_hello_extensions(pair.to_server, 1), 20) is None


def test_server_prefers_raw_key_when_it_has_both(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    creds = pki.issue("server.example", dns=("server.example",))
    server = DtlsConfiguration.server(
        certfile=creds.certfile, keyfile=creds.keyfile, raw_public_key=True
    )
    server_spki = public_key_spki(server.private_key)  # type: ignore[arg-type]
    both = DtlsConfiguration.client(
        cafile=pki.cafile, server_name="server.example", trusted_public_keys=[server_spki]
    )
    pair = handshake(both, server)
    assert pair.established
    assert pair.client.peer_certificate_type == CertificateType.RAW_PUBLIC_KEY
    x509_only = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    pair = handshake(x509_only, server)
    assert pair.established
    assert pair.client.peer_certificate_type == CertificateType.X509


def test_ed25519_raw_keys(tmp_path: Path) -> None:
    server_key = ed25519.Ed25519PrivateKey.generate()
    client_key = ed25519.Ed25519PrivateKey.generate()
    client = DtlsConfiguration.client(
        private_key=client_key,
        raw_public_key=True,
        trusted_public_keys=[server_key.public_key()],
    )
    server = DtlsConfiguration.server(
        private_key=server_key,
        raw_public_key=True,
        trusted_public_keys=[client_key.public_key()],
        client_auth="required",
    )
    pair = handshake(client, server)
    assert pair.established
    assert pair.server is not None
    assert isinstance(pair.server.peer_public_key, ed25519.Ed25519PublicKey)


def test_trusted_keys_in_every_form(keys: dict[str, tuple[Path, bytes]], tmp_path: Path) -> None:
    server_key, server_spki = keys["server"]
    public = serialization.load_der_public_key(server_spki)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyfile = tmp_path / "trusted.pem"
    # libcoap's -M file holds the public key next to the private key.
    keyfile.write_bytes(pem + server_key.read_bytes())
    server = DtlsConfiguration.server(keyfile=server_key, raw_public_key=True)
    for client in (
        DtlsConfiguration.client(trusted_public_keys=[server_spki]),
        DtlsConfiguration.client(trusted_public_keys=[bytearray(server_spki)]),
        DtlsConfiguration.client(trusted_public_keys=[pem]),
        DtlsConfiguration.client(trusted_public_keys=[public]),  # type: ignore[list-item]
        DtlsConfiguration.client(trusted_keys_file=keyfile),
        DtlsConfiguration.client(
            trusted_keys_file=keyfile, trusted_public_keys=[keys["stranger"][1]]
        ),
    ):
        assert handshake(client, server).established


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"raw_public_key": True}, "needs keyfile="),
        ({"trusted_public_keys": []}, "trusted_public_keys is empty"),
        ({"trusted_public_keys": b"\x30\x00"}, "not one key"),
        ({"trusted_public_keys": "server.pub"}, "trusted_keys_file="),
        ({"trusted_public_keys": Path("server.pub")}, "trusted_keys_file="),
        ({"trusted_public_keys": [b"not a key"]}, "not a DER or PEM SubjectPublicKeyInfo"),
    ],
)
def test_client_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        DtlsConfiguration.client(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, DtlsError)


def test_more_configuration_errors(keys: dict[str, tuple[Path, bytes]], tmp_path: Path) -> None:
    server_key = keys["server"][0]
    with pytest.raises(ConfigurationError, match="raw_public_key=True"):
        DtlsConfiguration.server(keyfile=server_key)
    with pytest.raises(ConfigurationError, match="trusted_public_keys="):
        DtlsConfiguration.server(keyfile=server_key, raw_public_key=True, client_auth="required")
    with pytest.raises(ConfigurationError, match="raw public key"):
        DtlsConfiguration.client(ciphers=["TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"])
    empty = tmp_path / "empty.pem"
    empty.write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError, match="no '-----BEGIN PUBLIC KEY-----' block"):
        DtlsConfiguration.client(trusted_keys_file=empty)
    with pytest.raises(ConfigurationError, match="cannot read"):
        DtlsConfiguration.client(trusted_keys_file=tmp_path / "missing.pem")
    rsa_pem = tmp_path / "secp256k1.pem"
    rsa_pem.write_bytes(
        ec.generate_private_key(ec.SECP256K1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="secp256k1"):
        DtlsConfiguration.client(trusted_keys_file=rsa_pem)


def test_extension_types_are_the_iana_ones() -> None:
    assert ExtensionType.CLIENT_CERTIFICATE_TYPE == 19
    assert ExtensionType.SERVER_CERTIFICATE_TYPE == 20


@pytest.mark.parametrize("client_auth", ["optional", "required"])
def test_client_sending_an_empty_raw_key(
    keys: dict[str, tuple[Path, bytes]], client_auth: str
) -> None:
    """An empty RawPublicKey Certificate is no key: fine only when optional."""
    (server_key, server_spki), (client_key, client_spki) = keys["server"], keys["client"]
    client = DtlsConfiguration.client(
        keyfile=client_key, raw_public_key=True, trusted_public_keys=[server_spki]
    )
    server = DtlsConfiguration.server(
        keyfile=server_key,
        raw_public_key=True,
        trusted_public_keys=[client_spki],
        client_auth=client_auth,  # type: ignore[arg-type]
    )
    pair = Pair(client, server)
    pair.start()
    client.private_key = None  # offered RawPublicKey, then has no key to send
    pair.run()
    if client_auth == "optional":
        assert pair.established
        assert pair.server is not None and pair.server.peer_public_key is None
    else:
        error = _error(pair.server_events)
        assert error.alert == AlertDescription.HANDSHAKE_FAILURE
        assert "raw public key is required" in str(error)


def test_client_refuses_a_type_it_cannot_verify(
    keys: dict[str, tuple[Path, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that answers X.509 to a client offering only raw keys."""
    import dataclasses

    from dtlsfast import pure

    creds = Pki(tmp_path).issue("server.example")
    decode = pure.decode_client_hello
    monkeypatch.setattr(
        pure,
        "decode_client_hello",
        lambda body: dataclasses.replace(decode(body), server_certificate_types=b"\x00"),
    )
    client = DtlsConfiguration.client(trusted_public_keys=[keys["server"][1]])
    server = DtlsConfiguration.server(
        certfile=creds.certfile, keyfile=creds.keyfile, backend="pure"
    )
    pair = handshake(client, server)
    error = _error(pair.client_events)
    assert error.alert == AlertDescription.UNSUPPORTED_CERTIFICATE
    assert "cafile=" in str(error)
    assert pair.client.peer_certificates is None
