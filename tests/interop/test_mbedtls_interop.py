"""mbedTLS 2.28 (python-mbedtls), the stack ESP-IDF's CoAP example runs on:
as a DTLS client of the dtlsfast server (PSK, ECDHE-PSK, certificates), and
as a DTLS server for the dtlsfast client (the device-as-server case of the
ESP-IDF example)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mbedtls import tls
from peers import PSK_IDENTITY, PSK_KEY

import dtlsfast
from dtlsfast import DtlsSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "connection"))
from pki import Pki

pytestmark = pytest.mark.interop

#: IANA name -> mbedTLS name
SUITES = {
    "TLS_PSK_WITH_AES_128_CCM_8": "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS_PSK_WITH_AES_128_CCM": "TLS-PSK-WITH-AES-128-CCM",
    "TLS_PSK_WITH_AES_128_GCM_SHA256": "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS_PSK_WITH_AES_256_GCM_SHA384": "TLS-PSK-WITH-AES-256-GCM-SHA384",
    "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256": "TLS-PSK-WITH-CHACHA20-POLY1305-SHA256",
}


def mbedtls_exchange(port: int, cipher: str, payload: bytes) -> tuple[str, bytes]:
    """A blocking mbedTLS DTLS client: handshake, send, receive one reply."""
    config = tls.DTLSConfiguration(
        pre_shared_key=(PSK_IDENTITY, PSK_KEY), ciphers=[cipher], validate_certificates=False
    )
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = tls.ClientContext(config).wrap_socket(raw, server_hostname=None)
    try:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.do_handshake()
        sock.send(payload)
        reply = sock.recv(1500)
        negotiated = sock.cipher()
        return (negotiated[0] if isinstance(negotiated, tuple) else str(negotiated), reply)
    finally:
        sock.close()


async def upper(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data.upper())


@pytest.mark.parametrize("suite", list(SUITES))
async def test_mbedtls_client_against_server(suite: str) -> None:
    async with await dtlsfast.serve(
        upper, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    ) as server:
        negotiated, reply = await asyncio.wait_for(
            asyncio.to_thread(mbedtls_exchange, server.port, SUITES[suite], b"hello mbedtls"), 15
        )
        assert reply == b"HELLO MBEDTLS"
        assert negotiated == SUITES[suite]
        (session,) = server.sessions
        assert session.cipher_suite == suite


def mbedtls_certificate_exchange(port: int, cafile: str, cipher: str) -> tuple[str, bytes]:
    """mbedTLS verifying our certificate chain and name, then one exchange."""
    from mbedtls import x509 as mbedtls_x509

    config = tls.DTLSConfiguration(
        trust_store=tls.TrustStore([mbedtls_x509.CRT.from_file(cafile)]),
        ciphers=[cipher],
        validate_certificates=True,
    )
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = tls.ClientContext(config).wrap_socket(raw, server_hostname="server.example")
    try:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.do_handshake()
        sock.send(b"device with a certificate")
        reply = sock.recv(1500)
        negotiated = sock.cipher()
        return (negotiated[0] if isinstance(negotiated, tuple) else str(negotiated), reply)
    finally:
        sock.close()


@pytest.mark.parametrize(
    "cipher",
    [
        "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8",
        "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
        "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    ],
)
async def test_mbedtls_certificate_client_against_server(cipher: str, tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    creds = pki.issue("server.example", dns=("server.example",))
    async with await dtlsfast.serve(
        upper, "127.0.0.1", 0, certfile=creds.certfile, keyfile=creds.keyfile
    ) as server:
        negotiated, reply = await asyncio.wait_for(
            asyncio.to_thread(mbedtls_certificate_exchange, server.port, str(pki.cafile), cipher),
            15,
        )
        assert (negotiated, reply) == (cipher, b"DEVICE WITH A CERTIFICATE")


def _mbedtls_server_once(config: tls.DTLSConfiguration, ready: Callable[[int], None]) -> str:
    """An mbedTLS DTLS server for one session: the cookie exchange, then it
    upper-cases one datagram back. Returns the negotiated suite."""
    sock = tls.ServerContext(config).wrap_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # accept() rebinds
    sock.bind(("127.0.0.1", 0))
    opened: list[Any] = [sock]
    try:
        ready(sock.getsockname()[1])
        hello, addr = sock.accept()
        opened.append(hello)
        hello.setcookieparam(addr[0].encode("ascii"))
        with contextlib.suppress(tls.HelloVerifyRequest):
            hello.do_handshake()
        conn, addr = hello.accept()
        opened.append(conn)
        conn.setcookieparam(addr[0].encode("ascii"))
        conn.do_handshake()
        conn.send(conn.recv(4096).upper())
        negotiated = conn.cipher()
        return negotiated[0] if isinstance(negotiated, tuple) else str(negotiated)
    finally:
        for each in reversed(opened):
            with contextlib.suppress(Exception):
                each.close()


async def _against_mbedtls_server(config: tls.DTLSConfiguration, **connect: Any) -> str:
    loop = asyncio.get_running_loop()
    port: asyncio.Future[int] = loop.create_future()
    server = asyncio.create_task(
        asyncio.to_thread(
            _mbedtls_server_once, config, lambda p: loop.call_soon_threadsafe(port.set_result, p)
        )
    )
    session = await dtlsfast.connect(
        "127.0.0.1", await asyncio.wait_for(port, 5), handshake_timeout=10, **connect
    )
    await session.send(b"to the device")
    assert await asyncio.wait_for(session.recv(), 5) == b"TO THE DEVICE"
    negotiated = await asyncio.wait_for(server, 10)
    await session.close()
    return negotiated


@pytest.mark.parametrize(
    "cipher",
    ["TLS-PSK-WITH-AES-128-CCM-8", "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256"],
)
async def test_client_against_mbedtls_server_psk(cipher: str) -> None:
    config = tls.DTLSConfiguration(
        pre_shared_key_store={PSK_IDENTITY: PSK_KEY}, ciphers=[cipher], validate_certificates=False
    )
    assert await _against_mbedtls_server(config, psk=(PSK_IDENTITY, PSK_KEY)) == cipher


async def test_client_against_mbedtls_server_certificate(tmp_path: Path) -> None:
    from mbedtls import pk
    from mbedtls import x509 as mbedtls_x509

    pki = Pki(tmp_path)
    creds = pki.issue("device.example", dns=("device.example",))
    config = tls.DTLSConfiguration(
        certificate_chain=(
            (mbedtls_x509.CRT.from_file(str(creds.certfile)),),
            pk.ECC.from_file(str(creds.keyfile)),
        ),
        ciphers=["TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"],
        validate_certificates=False,
    )
    negotiated = await _against_mbedtls_server(
        config, cafile=pki.cafile, server_name="device.example"
    )
    assert negotiated == "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"
