"""Peer-to-peer sanity checks of the interop harness (tests/interop/peers.py).

Before dtlsfast is tested against a peer, the peer must be known to work: each
PSK suite runs openssl s_client -> gnutls-serv and gnutls-cli -> openssl
s_server (also with a 300-byte MTU), and libcoap's clients talk to libcoap's
server. A missing program fails the test with the Debian package to install.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest
from peers import (
    DEBIAN_PACKAGES,
    GNUTLS_ALL_PSK_PRIORITY,
    GNUTLS_CLI_BROKEN_SUITES,
    OPENSSL_ALL_PSK_CIPHERS,
    PSK_KEY,
    PSK_KEY_HEX,
    PSK_SUITES,
    SUITES,
    CoapServerPeer,
    GnuTlsServer,
    OpenSslServer,
    PeerMissingError,
    coap_ping,
    free_udp_port,
    free_udp_port_pair,
    live_started_processes,
    require_binary,
    run_coap_client,
    run_gnutls_client,
    run_openssl_client,
)

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("no_leaked_peers")]

MTUS = [None, 300]


def _alive(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- basics


@pytest.mark.parametrize("program", sorted(DEBIAN_PACKAGES))
def test_peer_program_installed(program: str) -> None:
    require_binary(program)  # raises PeerMissingError naming the Debian package


def test_missing_program_names_its_package() -> None:
    with pytest.raises(PeerMissingError, match="apt-get install"):
        require_binary("coap-client-doesnotexist")


def test_psk_constants() -> None:
    assert PSK_KEY == b"esp32c3_key"
    assert PSK_KEY_HEX == "657370333263335f6b6579"
    assert {SUITES[s].code for s in PSK_SUITES} == {0xC0A8, 0xC0A4, 0x00A8, 0x00A9, 0xCCAB, 0xCCAC}


def test_free_ports() -> None:
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))
    pair = free_udp_port_pair()
    for p in (pair, pair + 1):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", p))


# --------------------------------------------------------------------------- DTLS peers


@pytest.mark.parametrize("mtu", MTUS)
@pytest.mark.parametrize("suite", PSK_SUITES)
async def test_openssl_client_to_gnutls_server(suite: str, mtu: int | None) -> None:
    data = f"ping {suite}\n".encode()
    async with GnuTlsServer(GNUTLS_ALL_PSK_PRIORITY, mtu=mtu, timeout=30) as server:
        result = await run_openssl_client(
            server.port, cipher=suite, data=data, mtu=mtu, expect=data, linger=5
        )
        assert result.handshake_ok, result.describe() + "\n" + server.describe()
        assert result.suite == suite, result.describe()
        assert result.protocol == "DTLSv1.2", result.describe()
        assert data in result.app_data, result.describe()  # gnutls-serv --echo
        await server.wait_for_output_async("Processing", timeout=2)
    assert result.returncode == 0, result.describe()
    assert not _alive(server.pid)


@pytest.mark.parametrize("mtu", MTUS)
@pytest.mark.parametrize("suite", PSK_SUITES)
async def test_gnutls_client_to_openssl_server(suite: str, mtu: int | None) -> None:
    data = f"ping {suite}\n".encode()
    if suite in GNUTLS_CLI_BROKEN_SUITES:
        await _gnutls_client_known_crash(suite, mtu)
        return
    async with OpenSslServer(suite, mtu=mtu, timeout=30) as server:
        client = asyncio.create_task(
            run_gnutls_client(
                server.port, priority=suite, data=data, mtu=mtu, expect=b"pong", linger=5
            )
        )
        await server.wait_for_output_async(data.decode(), timeout=5)
        server.send(b"pong\n")  # s_server sends its stdin to the client
        result = await client
        assert result.handshake_ok, result.describe() + "\n" + server.describe()
        assert result.suite == suite, result.describe()
        assert result.protocol == "DTLS1.2", result.describe()
        assert b"pong" in result.app_data, result.describe()
        assert server.negotiated_suite() == suite, server.describe()
    assert result.returncode == 0, result.describe()
    assert not _alive(server.pid)


async def _gnutls_client_known_crash(suite: str, mtu: int | None) -> None:
    """Pin down the known gnutls-cli crash, so that a fixed gnutls-cli gets noticed."""
    async with OpenSslServer(suite, mtu=mtu, timeout=30) as server:
        result = await run_gnutls_client(server.port, priority=suite, data=b"x\n", mtu=mtu)
        await server.wait_for_output_async("CIPHER is", timeout=2)  # the handshake did finish
        assert server.negotiated_suite() == suite, server.describe()
    assert result.crashed, (
        f"gnutls-cli no longer crashes with {suite}: drop it from GNUTLS_CLI_BROKEN_SUITES "
        f"({GNUTLS_CLI_BROKEN_SUITES[suite]})\n{result.describe()}"
    )
    assert result.protocol == "DTLS1.2", result.describe()  # line-buffered: printed pre-crash


async def test_openssl_pair_all_suites_offered() -> None:
    """s_server accepting every suite and s_client offering every suite agree on one."""
    async with OpenSslServer(OPENSSL_ALL_PSK_CIPHERS) as server:
        result = await run_openssl_client(
            server.port, cipher=OPENSSL_ALL_PSK_CIPHERS, data=b"x\n", linger=0.3
        )
        await server.wait_for_output_async("x\n")
    assert result.handshake_ok, result.describe()
    assert result.suite in SUITES, result.describe()


async def test_suite_mismatch_reports_failed_handshake() -> None:
    """No shared suite: neither client gets an alert it acts on; both hang until killed."""
    ccm8 = "TLS_PSK_WITH_AES_128_CCM_8"
    gcm = "TLS_PSK_WITH_AES_128_GCM_SHA256"
    async with GnuTlsServer(ccm8) as gserver:
        res = await run_openssl_client(gserver.port, cipher=gcm, data=b"x\n", timeout=2)
    assert res.handshake_ok is False and res.suite is None, res.describe()
    assert res.returncode != 0, res.describe()
    assert "no supported cipher suites" in gserver.errors().lower(), gserver.describe()
    async with OpenSslServer(ccm8) as oserver:
        res = await run_gnutls_client(oserver.port, priority=gcm, data=b"x\n", timeout=2)
    assert res.handshake_ok is False and res.suite is None, res.describe()
    assert res.returncode != 0, res.describe()
    assert "no shared cipher" in oserver.errors(), oserver.describe()


def test_sync_server_stop_is_by_pid_and_idempotent() -> None:
    server = OpenSslServer()
    with server:
        assert _alive(server.pid)
        assert server.pid in live_started_processes()
        assert "ACCEPT" in server.output()
    assert not _alive(server.pid)
    assert server.pid not in live_started_processes()
    assert "ACCEPT" in server.output()  # output stays readable after stop
    server.stop()


# --------------------------------------------------------------------------- libcoap


@pytest.fixture(scope="module")
def coap_server() -> Iterator[CoapServerPeer]:
    with CoapServerPeer("openssl", timeout=60) as server:
        yield server


def test_coap_server_ready(coap_server: CoapServerPeer) -> None:
    assert coap_ping(coap_server.port)
    assert coap_server.coaps_port == coap_server.port + 1


@pytest.mark.parametrize("variant", ["openssl", "gnutls"])
async def test_coap_client_coaps(coap_server: CoapServerPeer, variant: str) -> None:
    time_ = await run_coap_client(coap_server.uri("time"), variant=variant)
    assert time_.returncode == 0 and time_.response_code == "2.05", time_.describe()
    assert time_.payload, time_.describe()

    core = await run_coap_client(coap_server.uri(".well-known/core"), variant=variant)
    assert core.response_code == "2.05", core.describe()
    assert core.payload is not None and b"</time>" in core.payload, core.describe()

    light = coap_server.uri(f"light-{variant}")
    put = await run_coap_client(light, method="put", payload="on", variant=variant)
    assert put.response_code == "2.01", put.describe()  # created (-d 10)
    get = await run_coap_client(light, variant=variant)
    assert get.response_code == "2.05" and get.payload == b"on", get.describe()

    missing = await run_coap_client(coap_server.uri("missing"), variant=variant, verbose=None)
    assert missing.returncode == 0, missing.describe()  # libcoap exits 0 on 4.04
    assert missing.response_code == "4.04", missing.describe()


async def test_coap_client_plain_and_blockwise(coap_server: CoapServerPeer) -> None:
    res = await run_coap_client(coap_server.uri("time", secure=False), variant="notls")
    assert res.response_code == "2.05" and res.payload, res.describe()
    big = await run_coap_client(coap_server.uri("example_data"), variant="openssl")
    assert big.response_code == "2.05", big.describe()
    assert big.payload is not None and len(big.payload) >= 1000, big.describe()


async def test_coap_client_observe(coap_server: CoapServerPeer) -> None:
    res = await run_coap_client(coap_server.uri("time"), observe_seconds=2)
    # first response plus about one notification a second
    assert len(res.response_codes) >= 2, res.describe()
    assert set(res.response_codes) == {"2.05"}, res.describe()
