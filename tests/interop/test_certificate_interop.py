"""ECDHE-ECDSA with certificates against OpenSSL and GnuTLS (RFC 8422).

A throwaway P-256 PKI per test; the peers come from Debian's openssl and
gnutls-bin, which .ci/run installs.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from peers import GnuTlsServer, OpenSslServer, run_gnutls_client, run_openssl_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "connection"))
from pki import Pki

import dtlsfast
from dtlsfast import DtlsSession

pytestmark = pytest.mark.interop

OPENSSL_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8": "ECDHE-ECDSA-AES128-CCM8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(b"echo:" + data)


@pytest.mark.parametrize("suite", list(OPENSSL_SUITES))
async def test_client_against_openssl_server(pki: Pki, suite: str) -> None:
    creds = pki.issue("server.example", dns=("server.example",), ips=("127.0.0.1",))
    async with OpenSslServer(
        cipher=OPENSSL_SUITES[suite],
        psk=False,
        extra_args=("-cert", str(creds.certfile), "-key", str(creds.keyfile)),
    ) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, cafile=pki.cafile, ciphers=[suite], handshake_timeout=10
        )
        assert session.cipher_suite == suite
        await session.send(b"certified\n")
        await server.wait_for_output_async("certified", 5)
        await session.close()


async def test_mutual_auth_small_mtu_against_openssl_server(pki: Pki) -> None:
    server_creds = pki.issue("server.example", dns=("server.example",))
    device = pki.issue("device-7")
    async with OpenSslServer(
        cipher="ECDHE-ECDSA-AES128-CCM8",
        psk=False,
        mtu=300,
        extra_args=(
            "-cert", str(server_creds.certfile), "-key", str(server_creds.keyfile),
            "-Verify", "1", "-CAfile", str(pki.cafile),
        ),
    ) as server:  # fmt: skip
        session = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            cafile=pki.cafile,
            certfile=device.certfile,
            keyfile=device.keyfile,
            server_name="server.example",
            mtu=256,
            handshake_timeout=10,
        )
        await session.send(b"mutual\n")
        await server.wait_for_output_async("mutual", 5)
        assert "device-7" in server.all_output()
        await session.close()


@pytest.mark.parametrize("suite", list(OPENSSL_SUITES))
async def test_openssl_client_against_server(pki: Pki, suite: str) -> None:
    creds = pki.issue("server.example", ips=("127.0.0.1",))
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, certfile=creds.certfile, keyfile=creds.keyfile
    ) as server:
        result = await run_openssl_client(
            server.port,
            cipher=OPENSSL_SUITES[suite],
            psk=False,
            data=b"ping\n",
            expect=b"echo:ping",
            extra_args=("-CAfile", str(pki.cafile), "-verify_return_error"),
        )
        assert result.cipher == OPENSSL_SUITES[suite], result.describe()
        assert b"echo:ping" in result.stdout, result.describe()
        assert "Verify return code: 0 (ok)" in result.out, result.describe()


async def test_openssl_client_mutual_auth_fragmented(pki: Pki) -> None:
    creds = pki.issue("server.example", ips=("127.0.0.1",))
    device = pki.issue("device-9")
    subjects: list[str] = []

    async def echo_and_record(session: DtlsSession) -> None:
        peer = session.connection.peer_certificates
        subjects.append(peer[0].subject.rfc4514_string() if peer else "")
        await echo(session)

    async with await dtlsfast.serve(
        echo_and_record,
        "127.0.0.1",
        0,
        certfile=creds.certfile,
        keyfile=creds.keyfile,
        cafile=pki.cafile,
        client_auth="required",
        mtu=300,
    ) as server:
        result = await run_openssl_client(
            server.port,
            cipher="ECDHE-ECDSA-AES128-CCM8",
            psk=False,
            data=b"ping\n",
            expect=b"echo:ping",
            mtu=300,
            extra_args=(
                "-CAfile", str(pki.cafile), "-cert", str(device.certfile),
                "-key", str(device.keyfile),
            ),
        )  # fmt: skip
        assert b"echo:ping" in result.stdout, result.describe()
        assert subjects == ["CN=device-9"]
        assert server.counters["handshakes_completed"] == 1


async def test_client_against_gnutls_server(pki: Pki) -> None:
    creds = pki.issue("server.example", ips=("127.0.0.1",))
    async with GnuTlsServer(
        priority="NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+ECDHE-ECDSA",
        psk=False,
        extra_args=("--x509certfile", str(creds.certfile), "--x509keyfile", str(creds.keyfile)),
    ) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, cafile=pki.cafile, handshake_timeout=10
        )
        assert session.cipher_suite.startswith("TLS_ECDHE_ECDSA_")
        await session.send(b"gnutls certs\n")
        assert await asyncio.wait_for(session.recv(), 5) == b"gnutls certs\n"
        await session.close()


async def test_gnutls_client_against_server(pki: Pki) -> None:
    creds = pki.issue("server.example", ips=("127.0.0.1",))
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, certfile=creds.certfile, keyfile=creds.keyfile
    ) as server:
        result = await run_gnutls_client(
            server.port,
            priority="NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+ECDHE-ECDSA",
            psk=False,
            data=b"ping\n",
            expect=b"echo:ping",
            extra_args=("--x509cafile", str(pki.cafile)),
        )
        assert result.handshake_ok, result.describe()
        assert b"echo:ping" in result.stdout, result.describe()
        assert "The certificate is trusted" in result.out, result.describe()
        assert "(ECDSA-SHA256)" in result.out, result.describe()
