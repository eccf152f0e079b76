"""ECDHE_PSK (RFC 5489) against OpenSSL, GnuTLS, mbedTLS and libcoap.

TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 is what libcoap's OpenSSL client
prefers and what ESP-IDF's mbedTLS offers; the other stacks here do not
implement TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256 (RFC 8442), which is covered
by the sans-I/O tests.
"""

from __future__ import annotations

import asyncio

import pytest
from peers import (
    PSK_IDENTITY,
    PSK_KEY,
    GnuTlsServer,
    OpenSslServer,
    run_coap_client,
    run_openssl_client,
)
from test_mbedtls_interop import mbedtls_exchange, upper

import dtlsfast
from dtlsfast.coap import CoapServer, LightResource
from dtlsfast.coap.dtls import listen_dtls

pytestmark = pytest.mark.interop

SUITE = "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"
PSK = (PSK_IDENTITY, PSK_KEY)


@pytest.mark.parametrize("groups", [(29,), (23,)])
async def test_client_against_openssl_server(groups: tuple[int, ...]) -> None:
    async with OpenSslServer(cipher="ECDHE-PSK-CHACHA20-POLY1305") as server:
        session = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            psk=PSK,
            ciphers=[SUITE],
            groups=groups,
            handshake_timeout=10,
        )
        assert session.cipher_suite == SUITE
        await session.send(b"ecdhe\n")
        await server.wait_for_output_async("ecdhe", 5)
        await session.close()


async def test_client_against_gnutls_server() -> None:
    async with GnuTlsServer() as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, psk=PSK, ciphers=[SUITE], handshake_timeout=10
        )
        assert session.cipher_suite == SUITE
        await session.send(b"ecdhe gnutls\n")
        assert await asyncio.wait_for(session.recv(), 5) == b"ecdhe gnutls\n"
        await session.close()


async def test_openssl_client_against_server() -> None:
    async with await dtlsfast.serve(
        upper, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, ciphers=[SUITE]
    ) as server:
        result = await run_openssl_client(
            server.port, cipher="ECDHE-PSK-CHACHA20-POLY1305", data=b"ping\n", expect=b"PING"
        )
        assert result.suite == SUITE, result.describe()
        assert b"PING" in result.stdout, result.describe()


async def test_mbedtls_client_against_server() -> None:
    async with await dtlsfast.serve(
        upper, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    ) as server:
        negotiated, reply = await asyncio.wait_for(
            asyncio.to_thread(
                mbedtls_exchange,
                server.port,
                "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256",
                b"esp32",
            ),
            15,
        )
        assert reply == b"ESP32"
        assert negotiated == "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256"
        (session,) = server.sessions
        assert session.cipher_suite == SUITE


async def test_libcoap_client_gets_its_preferred_suite() -> None:
    # With the client's order, libcoap's OpenSSL client lands on ECDHE_PSK
    # with ChaCha20-Poly1305, its first choice.
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    dtls = await listen_dtls(
        coap,
        "127.0.0.1",
        0,
        psk_store={PSK_IDENTITY: PSK_KEY},
        identity_hint=PSK_IDENTITY,
        prefer_client_order=True,
    )
    try:
        result = await run_coap_client(f"coaps://127.0.0.1:{dtls.port}/light", variant="openssl")
        assert result.payload == b"off", result.describe()
        assert dtls.counters["handshakes_completed"] == 1
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()
