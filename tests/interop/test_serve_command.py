"""``dtlsfast serve`` as a user runs it: a real process, reached by libcoap's
stock clients over coap and coaps, stopped by SIGTERM with a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from peers import free_udp_port_pair, run_coap_client

pytestmark = pytest.mark.interop


async def _wait_for(path: Path, text: str, timeout: float = 10.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server log:\n{content}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_serve_light_and_stop(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            "timeout", "60", sys.executable, "-m", "dtlsfast.cli", "serve",
            "--bind", "127.0.0.1", "--port", str(port), "--coaps-port", str(port + 1),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        await _wait_for(log_path, "serving /light")
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
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = log_path.read_text()
    assert "session with 127.0.0.1" in text
    assert "stopping: close_notify to every DTLS peer" in text
    assert "Traceback" not in text
