"""``dtlsfast serve`` as a user runs it: a real process, reached by libcoap's
stock clients over coap and coaps, stopped by SIGTERM with a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from peers import free_udp_port_pair, run_coap_client, serve_process

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_serve_light_and_stop(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    # Per-session lines are at debug (a gateway logs no line per handshake).
    async with serve_process(log_path, port, port + 1, "--log-level", "debug") as process:
        secure = f"coaps://127.0.0.1:{port + 1}/light"
        got = await run_coap_client(secure, variant="openssl")
        assert got.payload == b"off", got.describe()
        put = await run_coap_client(secure, method="put", payload="on", variant="gnutls")
        assert put.response_code == "2.04", put.describe()
        plain = await run_coap_client(f"coap://127.0.0.1:{port}/light", variant="notls", psk=False)
        assert plain.payload == b"on", plain.describe()
        # `timeout` forwards the signal to the server it runs.
        os.kill(process.pid, stop)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    text = log_path.read_text()
    assert "session with 127.0.0.1" in text
    assert "stopping: close_notify to every DTLS peer" in text
    assert "Traceback" not in text


async def test_serve_with_certificates(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "connection"))
    from pki import Pki

    pki = Pki(tmp_path)
    server = pki.issue("light-server", ips=("127.0.0.1",))
    device = pki.issue("device-3")
    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    async with serve_process(
        log_path,
        port,
        port + 1,
        "--cert",
        str(server.certfile),
        "--key",
        str(server.keyfile),
        "--ca",
        str(pki.cafile),
        "--log-level",  # the per-session lines checked below are at debug
        "debug",
    ) as process:
        secure = f"coaps://127.0.0.1:{port + 1}/light"
        with_cert = await run_coap_client(
            secure,
            variant="openssl",
            psk=False,
            extra=("-c", str(device.certfile), "-j", str(device.keyfile), "-C", str(pki.cafile)),
        )
        assert with_cert.payload == b"off", with_cert.describe()
        with_psk = await run_coap_client(secure, variant="openssl")
        assert with_psk.payload == b"off", with_psk.describe()
        os.kill(process.pid, signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    text = log_path.read_text()
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8" in text
    assert "TLS_PSK_WITH_AES_128_CCM_8" in text


async def test_serve_session_limits(tmp_path: Path) -> None:
    # --max-sessions 2: a third session evicts the least recently active one
    # (close_notify); --idle-timeout 1: a quiet session is closed after a second.
    import dtlsfast

    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    get = bytes.fromhex("40011234b56c69676874")  # CON GET /light
    async with serve_process(
        log_path, 0, port + 1, "--max-sessions", "2", "--idle-timeout", "1"
    ) as process:
        sessions = []
        for _ in range(3):
            session = await dtlsfast.connect(
                "127.0.0.1", port + 1, psk=("CoAP", "esp32c3_key"), handshake_timeout=10
            )
            await session.send(get)
            assert (await asyncio.wait_for(session.recv(), 5)).endswith(b"off")
            sessions.append(session)
        oldest, *others = sessions
        with pytest.raises(dtlsfast.ConnectionClosedError):
            await asyncio.wait_for(oldest.recv(), 5)  # evicted: close_notify
        for session in others:  # idle for over a second: closed too
            with pytest.raises(dtlsfast.ConnectionClosedError):
                await asyncio.wait_for(session.recv(), 5)
        os.kill(process.pid, signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert "Traceback" not in log_path.read_text()
