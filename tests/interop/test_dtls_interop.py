"""dtlsfast against OpenSSL and GnuTLS on loopback, both directions (RFC 6347).

Every PSK suite of the issue, client and server side, plus handshakes
fragmented to a small MTU. The peers come from Debian's openssl and gnutls-bin
packages, which .ci/run installs: a missing binary fails, never skips.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from peers import (
    PSK_IDENTITY,
    PSK_KEY,
    GnuTlsServer,
    OpenSslServer,
    gnutls_priority,
    openssl_cipher,
    run_gnutls_client,
    run_openssl_client,
)

import dtlsfast
from dtlsfast import DtlsSession

pytestmark = pytest.mark.interop

SUITES = [
    "TLS_PSK_WITH_AES_128_CCM_8",
    "TLS_PSK_WITH_AES_128_CCM",
    "TLS_PSK_WITH_AES_128_GCM_SHA256",
    "TLS_PSK_WITH_AES_256_GCM_SHA384",
    "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
]
PSK = (PSK_IDENTITY, PSK_KEY)
#: A PSK identity long enough that ClientKeyExchange does not fit one
#: 256-byte datagram: the handshake is fragmented and reassembled.
LONG_IDENTITY = "device-" + "x" * 240


async def echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(b"echo:" + data)


# -- dtlsfast client ----------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
async def test_client_against_openssl_server(suite: str) -> None:
    async with OpenSslServer(cipher=openssl_cipher(suite)) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, psk=PSK, ciphers=[suite], handshake_timeout=10
        )
        assert session.cipher_suite == suite
        await session.send(b"hello openssl\n")
        await server.wait_for_output_async("hello openssl", 5)
        server.send(b"hello dtlsfast\n")
        assert await asyncio.wait_for(session.recv(), 5) == b"hello dtlsfast\n"
        await session.close()


@pytest.mark.parametrize("suite", SUITES)
async def test_client_against_gnutls_server(suite: str) -> None:
    async with GnuTlsServer() as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, psk=PSK, ciphers=[suite], handshake_timeout=10
        )
        assert session.cipher_suite == suite
        await session.send(b"hello gnutls\n")
        assert await asyncio.wait_for(session.recv(), 5) == b"hello gnutls\n"
        await session.close()


async def test_client_fragmented_handshake_against_openssl() -> None:
    key_hex = PSK_KEY.hex()
    async with OpenSslServer(
        cipher="PSK-AES128-CCM8",
        mtu=300,
        extra_args=("-psk_identity", LONG_IDENTITY, "-psk", key_hex),
    ) as server:
        session = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            psk=(LONG_IDENTITY, PSK_KEY),
            mtu=256,
            handshake_timeout=10,
        )
        await session.send(b"fragmented\n")
        await server.wait_for_output_async("fragmented", 5)
        await session.close()


async def test_client_keylog_matches_openssl(tmp_path: Path) -> None:
    keylog = io.StringIO()
    theirs_path = tmp_path / "openssl-keys.txt"
    async with OpenSslServer(cipher="PSK-AES128-GCM-SHA256", keylog_file=theirs_path) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, psk=PSK, keylog=keylog, handshake_timeout=10
        )
        await session.send(b"logged\n")
        await server.wait_for_output_async("logged", 5)
        await session.close()
    # Both sides derived the same master secret for the same client random.
    ours = keylog.getvalue().split()
    assert ours[0] == "CLIENT_RANDOM"
    assert " ".join(ours) in theirs_path.read_text()


# -- dtlsfast server ----------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
async def test_openssl_client_against_server(suite: str) -> None:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    ) as server:
        result = await run_openssl_client(
            server.port, cipher=openssl_cipher(suite), data=b"ping\n", expect=b"echo:ping"
        )
        assert result.handshake_ok, result.describe()
        assert result.suite == suite, result.describe()
        assert b"echo:ping" in result.stdout, result.describe()
        assert server.counters["handshakes_completed"] == 1


@pytest.mark.parametrize("suite", SUITES)
async def test_gnutls_client_against_server(suite: str) -> None:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, identity_hint=PSK_IDENTITY
    ) as server:
        result = await run_gnutls_client(
            server.port, priority=gnutls_priority(suite), data=b"ping\n", expect=b"echo:ping"
        )
        assert result.handshake_ok, result.describe()
        assert result.suite == suite, result.describe()
        assert b"echo:ping" in result.stdout, result.describe()


async def test_openssl_client_fragmented_handshake_against_server() -> None:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store={LONG_IDENTITY: PSK_KEY}, mtu=256
    ) as server:
        result = await run_openssl_client(
            server.port,
            cipher="PSK-AES128-CCM8",
            data=b"ping\n",
            expect=b"echo:ping",
            mtu=300,
            psk=False,
            extra_args=("-psk_identity", LONG_IDENTITY, "-psk", PSK_KEY.hex()),
        )
        assert result.handshake_ok, result.describe()
        assert b"echo:ping" in result.stdout, result.describe()


async def test_gnutls_client_small_mtu_against_server() -> None:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store={PSK_IDENTITY: PSK_KEY}, mtu=256
    ) as server:
        result = await run_gnutls_client(
            server.port,
            priority=gnutls_priority("TLS_PSK_WITH_AES_128_CCM_8"),
            data=b"ping\n",
            expect=b"echo:ping",
            mtu=256,
        )
        assert result.handshake_ok, result.describe()
        assert b"echo:ping" in result.stdout, result.describe()


async def test_wrong_key_from_openssl_client_fails_cleanly() -> None:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store={PSK_IDENTITY: b"another key"}
    ) as server:
        result = await run_openssl_client(
            server.port, cipher="PSK-AES128-CCM8", data=b"ping\n", timeout=4, linger=0.5
        )
        # s_client prints its session summary before the Finished exchange
        # fails, so the alert is what tells.
        assert "alert bad record mac" in result.err, result.describe()
        assert server.counters["handshakes_failed"] == 1
        assert server.counters["handshakes_completed"] == 0, server.counters
