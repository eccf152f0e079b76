"""The ECDHE_ECDSA signature wire form against OpenSSL (RFC 8422 §5.4).

A hand-built DTLS 1.2 ClientHello offering only
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 goes to ``openssl s_server`` with a
P-256 certificate; the server's flight is reassembled, and dtlsfast's
ServerKeyExchangeEcdhe codec and signature check must accept OpenSSL's
signature over client_random + server_random + ServerECDHParams with the
certificate's public key. A missing openssl binary fails, never skips.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from peers import OpenSslServer

from dtlsfast._core import HandshakeReassembler, encode_record, parse_records
from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.certificates import (
    CertificateMessage,
    ServerKeyExchangeEcdhe,
    certificate_public_key,
)
from dtlsfast.handshake.constants import (
    DTLS_1_0,
    DTLS_1_2,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    SignatureScheme,
)
from dtlsfast.handshake.messages import (
    HANDSHAKE_HEADER,
    ClientHello,
    HelloVerifyRequest,
    ServerHello,
    encode_alert,
    encode_handshake,
    parse_handshake_header,
    split_handshake_fragments,
)
from dtlsfast.handshake.signatures import verify

pytestmark = pytest.mark.interop

SUITE = 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def _self_signed(tmp_path: Path) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl-wire-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "c.pem", tmp_path / "k.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile, cert


class _Client:
    """Just enough of a DTLS client to get the server's first flight."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(0.5)
        self.record_seq = 0

    def send_handshake(self, msg_type: int, message_seq: int, body: bytes) -> None:
        message = encode_handshake(msg_type, message_seq, body)
        version = DTLS_1_0 if self.record_seq == 0 else DTLS_1_2
        self.sock.send(encode_record(ContentType.HANDSHAKE, version, 0, self.record_seq, message))
        self.record_seq += 1

    def handshake_fragments(self) -> list[bytes]:
        """The handshake fragments of one datagram (empty on a timeout)."""
        try:
            datagram = self.sock.recv(65536)
        except TimeoutError:
            return []
        fragments: list[bytes] = []
        for content_type, _version, epoch, _seq, fragment in parse_records(datagram):
            if content_type == ContentType.HANDSHAKE and epoch == 0:
                fragments += split_handshake_fragments(fragment)
        return fragments


def _hello(random: bytes, cookie: bytes) -> ClientHello:
    return ClientHello(
        client_version=DTLS_1_2,
        random=random,
        session_id=b"",
        cookie=cookie,
        cipher_suites=[SUITE],
        extensions=[
            (ExtensionType.SUPPORTED_GROUPS, ext.encode_supported_groups([NamedGroup.secp256r1])),
            (ExtensionType.EC_POINT_FORMATS, ext.encode_ec_point_formats([0])),
            (
                ExtensionType.SIGNATURE_ALGORITHMS,
                ext.encode_signature_algorithms([SignatureScheme.ecdsa_secp256r1_sha256]),
            ),
        ],
    )


def _server_flight(client: _Client, client_random: bytes) -> dict[int, bytes]:
    """Send the ClientHello, answer the cookie, and return the bodies of the
    server's second flight by handshake type."""
    deadline = time.monotonic() + 8
    cookie = b""
    hello_seq = 0
    reassembler = HandshakeReassembler()
    messages: dict[int, bytes] = {}
    while time.monotonic() < deadline:
        if HandshakeType.SERVER_HELLO_DONE in messages:
            return messages
        if not messages:  # (re)send the current ClientHello until the server answers
            client.send_handshake(
                HandshakeType.CLIENT_HELLO, hello_seq, _hello(client_random, cookie).encode()
            )
        for fragment in client.handshake_fragments():
            for whole in reassembler.push(fragment):
                header = parse_handshake_header(whole)
                body = whole[HANDSHAKE_HEADER:]
                if header.msg_type == HandshakeType.HELLO_VERIFY_REQUEST and not cookie:
                    cookie = HelloVerifyRequest.decode(body).cookie
                    hello_seq = 1
                    reassembler = HandshakeReassembler(next_seq=1)
                    break
                messages[header.msg_type] = body
    raise AssertionError(f"no complete server flight; got types {sorted(messages)}")


def test_openssl_server_key_exchange_signature_verifies(tmp_path: Path) -> None:
    certfile, keyfile, cert = _self_signed(tmp_path)
    server = OpenSslServer(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        psk=False,
        extra_args=("-cert", str(certfile), "-key", str(keyfile)),
        timeout=10,
    )
    with server:
        client = _Client(server.port)
        try:
            client_random = os.urandom(32)
            flight = _server_flight(client, client_random)
            client.sock.send(encode_record(ContentType.ALERT, DTLS_1_2, 0, client.record_seq,
                                           encode_alert(2, 90)))  # fmt: skip
        finally:
            client.sock.close()

    server_hello = ServerHello.decode(flight[HandshakeType.SERVER_HELLO])
    assert server_hello.cipher_suite == SUITE, server.describe()
    chain = CertificateMessage.decode(flight[HandshakeType.CERTIFICATE]).certificates()
    assert chain == [cert]

    ske = ServerKeyExchangeEcdhe.decode(flight[HandshakeType.SERVER_KEY_EXCHANGE])
    assert ske.group == NamedGroup.secp256r1
    assert ske.scheme == SignatureScheme.ecdsa_secp256r1_sha256
    assert ske.encode() == flight[HandshakeType.SERVER_KEY_EXCHANGE]  # byte-exact re-encoding
    signed = ske.signed_data(client_random, server_hello.random)
    verify(certificate_public_key(chain[0]), ske.scheme, signed, ske.signature)

    # and a tampered transcript does not verify
    with pytest.raises(HandshakeError, match="does not verify"):
        verify(certificate_public_key(chain[0]), ske.scheme, signed[::-1], ske.signature)
