"""Raw public keys (RFC 7250) against GnuTLS and libcoap's GnuTLS build.

gnutls-serv / gnutls-cli take ``--rawpkkeyfile`` and ``--rawpkfile`` and a
priority with ``+CTYPE-SRV-RAWPK:+CTYPE-CLI-RAWPK``; libcoap's
``coap-{client,server}-gnutls`` take ``-M`` (OpenSSL 3.0 has no RPK). Keys are
generated per test; .ci/run installs the peers, so nothing here skips.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest
from peers import (
    GNUTLS_RPK_PRIORITY,
    CoapServerPeer,
    GnuTlsServer,
    RawKeyFiles,
    free_udp_port_pair,
    make_raw_key,
    run_coap_client,
    run_gnutls_client,
    run_peer,
    serve_process,
)

import dtlsfast
from dtlsfast import DtlsSession, HandshakeError
from dtlsfast.handshake.certificates import public_key_spki
from dtlsfast.handshake.constants import AlertDescription

pytestmark = pytest.mark.interop


@pytest.fixture
def server_key(tmp_path: Path) -> RawKeyFiles:
    return make_raw_key(tmp_path, "server")


@pytest.fixture
def client_key(tmp_path: Path) -> RawKeyFiles:
    return make_raw_key(tmp_path, "client")


def _gnutls_server(key: RawKeyFiles, *extra: str) -> GnuTlsServer:
    return GnuTlsServer(
        priority=GNUTLS_RPK_PRIORITY,
        psk=False,
        extra_args=("--rawpkkeyfile", str(key.keyfile), "--rawpkfile", str(key.pubfile), *extra),
    )


# ------------------------------------------------------- dtlsfast client


async def test_client_against_gnutls_server(server_key: RawKeyFiles) -> None:
    async with _gnutls_server(server_key) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, trusted_keys_file=server_key.pubfile, handshake_timeout=10
        )
        assert session.cipher_suite.startswith("TLS_ECDHE_ECDSA_")
        assert session.peer_certificates is None
        assert session.peer_public_key is not None
        assert public_key_spki(session.peer_public_key) == server_key.spki
        await session.send(b"raw key\n")
        assert await asyncio.wait_for(session.recv(), 5) == b"raw key\n"
        await session.close()


async def test_mutual_against_gnutls_server_requiring_client_key(
    server_key: RawKeyFiles, client_key: RawKeyFiles
) -> None:
    async with _gnutls_server(server_key, "--require-client-cert") as server:
        session = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            keyfile=client_key.keyfile,
            raw_public_key=True,
            trusted_public_keys=[server_key.spki],
            handshake_timeout=10,
        )
        await session.send(b"mutual raw keys\n")
        assert await asyncio.wait_for(session.recv(), 5) == b"mutual raw keys\n"
        await session.close()


async def test_gnutls_server_refuses_client_without_key(server_key: RawKeyFiles) -> None:
    """The control for the test above: --require-client-cert is enforced."""
    async with _gnutls_server(server_key, "--require-client-cert") as server:
        with pytest.raises(HandshakeError):
            await dtlsfast.connect(
                "127.0.0.1",
                server.port,
                trusted_keys_file=server_key.pubfile,
                handshake_timeout=2,
            )
        assert "No certificate was found" in server.errors()


async def test_untrusted_gnutls_server_key_rejected(
    server_key: RawKeyFiles, tmp_path: Path
) -> None:
    other = make_raw_key(tmp_path, "other")
    async with _gnutls_server(server_key) as server:
        with pytest.raises(HandshakeError) as info:
            await dtlsfast.connect(
                "127.0.0.1", server.port, trusted_keys_file=other.pubfile, handshake_timeout=10
            )
    assert info.value.alert == AlertDescription.BAD_CERTIFICATE
    assert hashlib.sha256(server_key.spki).hexdigest() in str(info.value)


# ------------------------------------------------------- dtlsfast server


async def _echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(b"echo:" + data)


async def test_gnutls_client_against_server(server_key: RawKeyFiles) -> None:
    async with await dtlsfast.serve(
        _echo, "127.0.0.1", 0, keyfile=server_key.keyfile, raw_public_key=True
    ) as server:
        result = await run_gnutls_client(
            server.port,
            priority=GNUTLS_RPK_PRIORITY,
            psk=False,
            data=b"ping\n",
            expect=b"echo:ping",
            # gnutls-cli cannot check a raw key against a trust store: it prints
            # the key (--verbose) and we compare it below.
            extra_args=("--insecure", "--verbose"),
        )
    assert result.handshake_ok, result.describe()
    assert b"echo:ping" in result.stdout, result.describe()
    assert "- Certificate type: Raw Public Key" in result.out, result.describe()
    assert server_key.pubfile.read_text().strip() in result.out, result.describe()


async def test_gnutls_client_mutual_against_server(
    server_key: RawKeyFiles, client_key: RawKeyFiles
) -> None:
    seen: list[bytes] = []

    async def record_and_echo(session: DtlsSession) -> None:
        assert session.peer_public_key is not None
        seen.append(public_key_spki(session.peer_public_key))
        await _echo(session)

    async with await dtlsfast.serve(
        record_and_echo,
        "127.0.0.1",
        0,
        keyfile=server_key.keyfile,
        raw_public_key=True,
        trusted_keys_file=client_key.pubfile,
        client_auth="required",
    ) as server:
        result = await run_gnutls_client(
            server.port,
            priority=GNUTLS_RPK_PRIORITY,
            psk=False,
            data=b"ping\n",
            expect=b"echo:ping",
            extra_args=(
                "--insecure",
                "--rawpkkeyfile", str(client_key.keyfile),
                "--rawpkfile", str(client_key.pubfile),
            ),
        )  # fmt: skip
    assert b"echo:ping" in result.stdout, result.describe()
    assert "(DTLS1.2-Raw Public Key)" in result.out, result.describe()
    assert seen == [client_key.spki]


async def test_gnutls_client_with_untrusted_key_rejected(
    server_key: RawKeyFiles, client_key: RawKeyFiles, tmp_path: Path
) -> None:
    stranger = make_raw_key(tmp_path, "stranger")
    async with await dtlsfast.serve(
        _echo,
        "127.0.0.1",
        0,
        keyfile=server_key.keyfile,
        raw_public_key=True,
        trusted_public_keys=[client_key.spki],
        client_auth="required",
    ) as server:
        result = await run_gnutls_client(
            server.port,
            priority=GNUTLS_RPK_PRIORITY,
            psk=False,
            data=b"ping\n",
            extra_args=(
                "--insecure",
                "--rawpkkeyfile", str(stranger.keyfile),
                "--rawpkfile", str(stranger.pubfile),
            ),
        )  # fmt: skip
        assert server.counters["handshakes_completed"] == 0
    assert not result.handshake_ok, result.describe()
    assert "Certificate is bad" in result.out + result.err, result.describe()


# ------------------------------------------------------- libcoap over GnuTLS


async def test_coap_client_gnutls_against_dtlsfast_serve(
    tmp_path: Path, server_key: RawKeyFiles, client_key: RawKeyFiles
) -> None:
    stranger = make_raw_key(tmp_path, "stranger")
    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    async with serve_process(
        log_path, port, port + 1,
        "--rpk", str(server_key.libcoap), "--rpk-trust", str(client_key.pubfile),
        # The per-session lines checked below (established, failed) are at debug.
        "--log-level", "debug",
    ) as process:  # fmt: skip
        secure = f"coaps://127.0.0.1:{port + 1}/light"
        got = await run_coap_client(
            secure, variant="gnutls", psk=False, extra=("-M", str(client_key.libcoap))
        )
        assert got.payload == b"off", got.describe()
        refused = await run_coap_client(
            secure, variant="gnutls", psk=False, bound=2, extra=("-M", str(stranger.libcoap))
        )
        assert refused.payload in (None, b""), refused.describe()
        assert "Alert '42'" in refused.out + refused.err, refused.describe()
        os.kill(process.pid, signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    text = log_path.read_text()
    assert "raw public key" in text
    assert "TLS_ECDHE_ECDSA_" in text
    assert hashlib.sha256(stranger.spki).hexdigest() in text
    assert "Traceback" not in text


async def test_dtlsfast_get_against_coap_server_gnutls(
    server_key: RawKeyFiles, client_key: RawKeyFiles, tmp_path: Path
) -> None:
    cli = [sys.executable, "-m", "dtlsfast.cli", "get", "-v", "-B", "5"]
    async with CoapServerPeer(
        "gnutls", psk=False, extra_args=("-M", str(server_key.libcoap))
    ) as server:
        rc, out, err, _, _ = await run_peer(
            [
                *cli,
                "-M", str(client_key.libcoap),
                "--rpk-trust", str(server_key.pubfile),
                server.uri(""),
            ],
            timeout=15,
        )  # fmt: skip
        assert rc == 0 and b"2.05" in err, (rc, out, err)
        assert b"libcoap" in out
        other = make_raw_key(tmp_path, "other")
        rc, out, err, _, _ = await run_peer(
            [*cli, "--rpk-trust", str(other.pubfile), server.uri("")], timeout=15
        )
        assert rc == 2, (rc, out, err)
        assert hashlib.sha256(server_key.spki).hexdigest().encode() in err, err
