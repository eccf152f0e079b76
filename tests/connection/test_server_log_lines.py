"""The server's log: a line per session at debug only, a periodic summary at info.

A gateway that logs a line per device per handshake pays for it in every
reconnection storm; the per-session lines are at debug and an info line every
``SUMMARY_INTERVAL`` counts what happened.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import dtlsfast
from dtlsfast import DtlsSession

PSK_STORE = {"CoAP": b"esp32c3_key"}
PSK = ("CoAP", "esp32c3_key")


async def echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "dtlsfast.server" and r.levelno == level
    ]


async def test_sessions_logged_at_debug_and_summed_up_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dtlsfast.server")
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        for _ in range(2):
            session = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
            await session.close()
        for _ in range(100):
            if server.counters["sessions_open"] == 0:
                break
            await asyncio.sleep(0.02)
        debug = _messages(caplog, logging.DEBUG)
        assert sum("established (TLS_PSK_WITH_AES_128_CCM_8" in m for m in debug) == 2
        assert sum(m.endswith(" closed") for m in debug) == 2
        assert not any("established" in m for m in _messages(caplog, logging.INFO))

        now = asyncio.get_running_loop().time()
        server._log_summary(now)
        server._log_summary(now)  # nothing new: no second line
        summary = [m for m in _messages(caplog, logging.INFO) if "handshakes completed" in m]
        assert summary == [
            "2 handshakes completed (0 resumed) and 0 failed in the last 10 s; "
            "0 sessions established"
        ]
