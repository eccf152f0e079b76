"""Session resumption with real peers on loopback (RFC 5246 §7.3, RFC 5077):
OpenSSL and GnuTLS clients resume with ``dtlsfast serve`` (session ID and
ticket), the dtlsfast client resumes with ``openssl s_server`` and
``gnutls-serv``, and two ``dtlsfast serve`` processes sharing a ticket key
file resume each other's sessions.

python-mbedtls 2.10 is not among them: its ``TLSSession`` class has no
methods, and no context or socket takes a session to resume (mbedTLS's
``mbedtls_ssl_get_session``/``set_session`` are not wrapped)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from peers import (
    PSK_IDENTITY,
    PSK_KEY,
    GnuTlsServer,
    OpenSslServer,
    free_udp_port_pair,
    run_gnutls_client,
    run_openssl_client,
    serve_process,
)

import dtlsfast

pytestmark = pytest.mark.interop

CCM8 = "TLS_PSK_WITH_AES_128_CCM_8"


async def _openssl_twice(port: int, session_file: Path, *options: str) -> tuple[str, str]:
    """Two s_client runs: the first saves its session, the second offers it."""
    first = await run_openssl_client(port, extra_args=("-sess_out", str(session_file), *options))
    assert first.handshake_ok, first.describe()
    second = await run_openssl_client(port, extra_args=("-sess_in", str(session_file), *options))
    assert second.handshake_ok, second.describe()
    return first.out, second.out


@pytest.mark.parametrize("kind", ["ticket", "session_id"])
async def test_openssl_client_resumes_with_dtlsfast_serve(tmp_path: Path, kind: str) -> None:
    port = free_udp_port_pair()
    options = () if kind == "ticket" else ("-no_ticket",)
    # "resumed by" ends the per-session line, logged at debug.
    async with serve_process(tmp_path / "serve.log", 0, port, "--log-level", "debug") as process:
        first, second = await _openssl_twice(port, tmp_path / "session.pem", *options)
        assert "New, TLSv1.2, Cipher is PSK-AES128-CCM8" in first
        assert ("TLS session ticket:" in first) == (kind == "ticket")
        assert "Reused, TLSv1.2, Cipher is PSK-AES128-CCM8" in second
        os.kill(process.pid, signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    log = (tmp_path / "serve.log").read_text()
    assert f"resumed by {kind}" in log, log
    assert "Traceback" not in log


async def test_gnutls_client_resumes_with_dtlsfast_serve(tmp_path: Path) -> None:
    port = free_udp_port_pair()
    async with serve_process(tmp_path / "serve.log", 0, port):
        result = await run_gnutls_client(port, extra_args=("--resume",), linger=3.0)
    assert result.handshake_ok, result.describe()
    assert "*** This is a resumed session" in result.out, result.describe()


async def _dtlsfast_twice(port: int, tickets: bool) -> tuple[str | None, str | None]:
    """Two dtlsfast client sessions, the second resuming the first."""
    options = {"psk": (PSK_IDENTITY, PSK_KEY), "ciphers": [CCM8], "session_tickets": tickets}
    first = await dtlsfast.connect("127.0.0.1", port, handshake_timeout=10, **options)
    saved = first.resumption
    assert saved is not None
    assert (saved.ticket is not None) == tickets
    await first.send(b"first\n")
    await first.close()
    await asyncio.sleep(0.3)
    second = await dtlsfast.connect(
        "127.0.0.1", port, handshake_timeout=10, resume=saved, **options
    )
    await second.send(b"second\n")
    await asyncio.sleep(0.2)
    resumed = second.resumed
    await second.close()
    return first.resumed, resumed


@pytest.mark.parametrize("kind", ["ticket", "session_id"])
async def test_dtlsfast_client_resumes_with_openssl_s_server(kind: str) -> None:
    extra = () if kind == "ticket" else ("-no_ticket",)
    with OpenSslServer(CCM8, extra_args=extra) as server:
        first, second = await _dtlsfast_twice(server.port, tickets=kind == "ticket")
        await server.wait_for_output_async("second", timeout=5)
        output = server.output()
    assert (first, second) == (None, kind)
    assert "Reused session-id" in output, output


@pytest.mark.parametrize("kind", ["ticket", "session_id"])
async def test_dtlsfast_client_resumes_with_gnutls_serv(kind: str) -> None:
    extra = () if kind == "ticket" else ("--noticket",)
    with GnuTlsServer(extra_args=extra) as server:
        first, second = await _dtlsfast_twice(server.port, tickets=kind == "ticket")
    assert (first, second) == (None, kind)


async def test_two_servers_sharing_a_ticket_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "ticket.key"
    one, two = free_udp_port_pair(), free_udp_port_pair()
    options = ("--ticket-key-file", str(key_file))
    async with (
        serve_process(tmp_path / "one.log", 0, one, *options),
        serve_process(tmp_path / "two.log", 0, two, *options),
    ):
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert len(key_file.read_bytes()) >= 32
        # The dtlsfast client: a ticket from one, resumed by two.
        credentials = {"psk": (PSK_IDENTITY, PSK_KEY), "handshake_timeout": 10}
        first = await dtlsfast.connect("127.0.0.1", one, **credentials)
        saved = first.resumption
        await first.close()
        second = await dtlsfast.connect("127.0.0.1", two, resume=saved, **credentials)
        assert second.resumed == "ticket"
        await second.close()
        # And OpenSSL's client: a session saved against one, reused with two.
        session = tmp_path / "session.pem"
        out = await run_openssl_client(one, extra_args=("-sess_out", str(session)))
        assert out.handshake_ok, out.describe()
        again = await run_openssl_client(two, extra_args=("-sess_in", str(session)))
        assert "Reused, TLSv1.2" in again.out, again.describe()


async def test_servers_with_other_keys_fall_back_to_a_full_handshake(tmp_path: Path) -> None:
    one, two = free_udp_port_pair(), free_udp_port_pair()
    async with (
        serve_process(tmp_path / "one.log", 0, one, "--ticket-key-file", str(tmp_path / "a")),
        serve_process(tmp_path / "two.log", 0, two, "--ticket-key-file", str(tmp_path / "b")),
    ):
        session = tmp_path / "session.pem"
        out = await run_openssl_client(one, extra_args=("-sess_out", str(session)))
        assert out.handshake_ok, out.describe()
        again = await run_openssl_client(two, extra_args=("-sess_in", str(session)))
        assert again.handshake_ok, again.describe()
        assert "New, TLSv1.2" in again.out and "Reused" not in again.out
