"""Issue 12, item 6: a malformed certificate or key from the peer gets
bad_certificate (decode_error for broken framing), on the server and on the
client, never a traceback or a hang.

The certificates are real ones from a test CA, hand-edited in their DER:
``cryptography`` refuses some edits when loading (X.509 version 66 raises
InvalidVersion, which is not a ValueError) and others only when a field is
first read (a subject attribute of the NULL type raises KeyError from
``cert.subject``, an issuer that is not UTF-8 raises ValueError from
``cert.issuer``: both were read late, in verification.py). Each is sent by a
peer that is otherwise genuine, so the handshake gets as far as the
Certificate message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dtls_pair import Pair, handshake
from pki import Pki, mutual_auth_configs

import dtlsfast.connection as connection_module
from dtlsfast import pure
from dtlsfast.config import DtlsConfiguration
from dtlsfast.events import ConnectionClosed
from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.certificates import encode_raw_public_key_certificate, public_key_spki
from dtlsfast.handshake.constants import AlertDescription
from dtlsfast.handshake.messages import _vector

LEAF = "leaf-under-test"
CA_NAME = "dtlsfast test CA"


class _RawCertificate:
    """Stands for an x509.Certificate in a configuration and sends ``der``."""

    def __init__(self, der: bytes) -> None:
        self.der = der

    def public_bytes(self, encoding: object) -> bytes:
        return self.der


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _element(data: bytes, at: int) -> tuple[int, int]:
    """(start of content, end) of the DER element at ``at``."""
    first = data[at + 1]
    if first < 0x80:
        return at + 2, at + 2 + first
    size = first & 0x7F
    length = int.from_bytes(data[at + 2 : at + 2 + size], "big")
    return at + 2 + size, at + 2 + size + length


def _resigned(
    der: bytes, edit: Callable[[bytes], bytes], ca_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """``der`` with ``edit`` applied to its TBSCertificate, signed again by the
    CA: the certificate chains to the trusted root, only its content is bad."""
    content, _ = _element(der, 0)
    _, tbs_end = _element(der, content)
    _, alg_end = _element(der, tbs_end)
    tbs = edit(der[content:tbs_end])
    signature = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    body = tbs + der[tbs_end:alg_end] + b"\x03" + _der_length(len(signature) + 1) + b"\x00"
    body += signature
    return b"\x30" + _der_length(len(body)) + body


def _version_66(der: bytes) -> bytes:
    at = der.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT Version v3
    return der[: at + 4] + b"\x42" + der[at + 5 :]


def _subject_null_type(der: bytes) -> bytes:
    at = der.rindex(LEAF.encode())  # the subject's CN (the last name in the TBS)
    assert der[at - 2] == 0x0C  # UTF8String
    return der[: at - 2] + b"\x05" + der[at - 1 :]


def _issuer_not_utf8(der: bytes) -> bytes:
    at = der.index(CA_NAME.encode())  # the issuer's CN (before the subject)
    return der[:at] + b"\xff\xfe" + der[at + 2 :]


def _truncated(der: bytes) -> bytes:
    """The TBSCertificate claims its full length but holds half of it."""
    return der[: len(der) // 2]


def _key_off_the_curve(der: bytes) -> bytes:
    at = der.index(bytes.fromhex("03420004"))  # BIT STRING of the uncompressed point
    return der[: at + 4] + bytes(64) + der[at + 68 :]


EDITS: dict[str, Callable[[bytes], bytes]] = {
    "version 66": _version_66,
    "subject of type NULL": _subject_null_type,
    "issuer not UTF-8": _issuer_not_utf8,
    "truncated": _truncated,
    "key off the curve": _key_off_the_curve,
}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, name=CA_NAME)


def _edited_leaf(pki: Pki, config: DtlsConfiguration, edit: str) -> list[_RawCertificate]:
    assert config.certificate_chain is not None
    der = config.certificate_chain[0].public_bytes(serialization.Encoding.DER)
    return [_RawCertificate(_resigned(der, EDITS[edit], pki.key))]


def _closed_error(events: list[object]) -> HandshakeError:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert len(closed) == 1, events
    assert isinstance(closed[0].error, HandshakeError), closed[0].error
    return closed[0].error


def _check(pair: Pair, verifier: str, edit: str) -> None:
    assert pair.server is not None
    verifying, sending = (
        (pair.server_events, pair.client_events)
        if verifier == "server"
        else (pair.client_events, pair.server_events)
    )
    error = _closed_error(verifying)
    told = _closed_error(sending)
    print(f"\n[malformed certificate] {edit!r} checked by the {verifier}: alert "
          f"{error.alert} ({error}); the sender was told alert {told.alert}")  # fmt: skip
    assert error.alert == AlertDescription.BAD_CERTIFICATE
    assert told.alert == AlertDescription.BAD_CERTIFICATE
    assert pair.client.closed and pair.server.closed  # no hang


@pytest.mark.parametrize("edit", EDITS)
def test_malformed_client_certificate(pki: Pki, edit: str) -> None:
    server_creds = pki.issue("server.example", dns=("server.example",))
    client_creds = pki.issue(LEAF)
    client, server = mutual_auth_configs(pki, server_creds, client_creds)
    client.certificate_chain = _edited_leaf(pki, client, edit)  # type: ignore[assignment]
    _check(handshake(client, server), "server", edit)


@pytest.mark.parametrize("edit", EDITS)
def test_malformed_server_certificate(pki: Pki, edit: str) -> None:
    server_creds = pki.issue(LEAF, dns=("server.example",))
    server = DtlsConfiguration.server(certfile=server_creds.certfile, keyfile=server_creds.keyfile)
    server.certificate_chain = _edited_leaf(pki, server, edit)  # type: ignore[assignment]
    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    _check(handshake(client, server), "client", edit)


SPKI_EDITS: dict[str, Callable[[bytes], bytes]] = {
    "garbage": lambda spki: b"\x30\x03\x02\x01\x00",
    "point off the curve": lambda spki: spki[:-64] + bytes(64),
    "truncated": lambda spki: spki[:20],
}


@pytest.mark.parametrize("edit", SPKI_EDITS)
@pytest.mark.parametrize("verifier", ["server", "client"])
def test_malformed_raw_public_key(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, verifier: str, edit: str
) -> None:
    creds = pki.issue(LEAF)
    other = pki.issue("the other side")
    if verifier == "server":
        # The client presents a raw public key; the server has a certificate.
        client = DtlsConfiguration.client(
            cafile=pki.cafile, keyfile=creds.keyfile, raw_public_key=True
        )
        assert client.private_key is not None
        server = DtlsConfiguration.server(
            certfile=other.certfile,
            keyfile=other.keyfile,
            trusted_public_keys=[public_key_spki(client.private_key)],
            client_auth="required",
        )
    else:
        server = DtlsConfiguration.server(keyfile=creds.keyfile, raw_public_key=True)
        assert server.private_key is not None
        client = DtlsConfiguration.client(trusted_public_keys=[public_key_spki(server.private_key)])

    def forged(key: object) -> bytes:
        spki = public_key_spki(key)  # type: ignore[arg-type]
        return _vector(SPKI_EDITS[edit](spki), 3, "ASN.1_subjectPublicKeyInfo", 1)

    # The client encodes its Certificate body in Python, the server its whole
    # message through the backend's codec from the key's SPKI: forge both.
    monkeypatch.setattr(connection_module, "encode_raw_public_key_certificate", forged)
    monkeypatch.setattr(
        connection_module, "public_key_spki", lambda key: SPKI_EDITS[edit](public_key_spki(key))
    )
    pair = handshake(client, server)
    monkeypatch.setattr(
        connection_module, "encode_raw_public_key_certificate", encode_raw_public_key_certificate
    )
    monkeypatch.setattr(connection_module, "public_key_spki", public_key_spki)
    _check(pair, verifier, f"raw public key: {edit}")


def test_broken_certificate_framing_is_decode_error(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Certificate whose certificate_list lengths disagree is a decode_error."""
    server_creds = pki.issue("server.example", dns=("server.example",))
    server = DtlsConfiguration.server(
        certfile=server_creds.certfile, keyfile=server_creds.keyfile, backend="pure"
    )
    client = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    original = pure.encode_certificate

    def misframed(message_seq: int, chain: list[bytes]) -> bytes:
        message = original(message_seq, chain)
        # The first ASN.1Cert's length, after the 12-byte header and the list's.
        return message[:15] + b"\xff\xff\xff" + message[18:]

    monkeypatch.setattr(pure, "encode_certificate", misframed)
    pair = handshake(client, server)
    assert _closed_error(pair.client_events).alert == AlertDescription.DECODE_ERROR
    assert _closed_error(pair.server_events).alert == AlertDescription.DECODE_ERROR
