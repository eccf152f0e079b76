"""RFC 5246 §7.2: a connection that ends with a fatal alert, whichever side
sends it, leaves its session non-resumable by session ID; close_notify does
not. Through the asyncio endpoints on loopback, tickets off."""

from __future__ import annotations

import asyncio

import pytest

import dtlsfast
from dtlsfast.handshake.constants import AlertDescription, ContentType

PSK = ("CoAP", "esp32c3_key")


async def _echo(session: dtlsfast.DtlsSession) -> None:
    async for data in session:
        await session.send(data)


def _client_sends_fatal(session: dtlsfast.DtlsSession) -> None:
    session.connection._fail(AlertDescription.INTERNAL_ERROR, "the test ends it")
    session._endpoint.flush(session)


def _server_sends_fatal(session: dtlsfast.DtlsSession) -> None:
    # A one-byte alert: the server answers decode_error, fatal.
    conn = session.connection
    conn._out.append(conn.records.seal(ContentType.ALERT, b"\x02"))
    session._endpoint.flush(session)


@pytest.mark.parametrize("ending", ["close_notify", "client_fatal", "server_fatal"])
async def test_a_fatal_alert_makes_the_session_id_unresumable(ending: str) -> None:
    server = await dtlsfast.serve(_echo, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"})
    try:
        options = {"psk": PSK, "session_tickets": False}
        first = await dtlsfast.connect("127.0.0.1", server.port, **options)  # type: ignore[arg-type]
        await first.send(b"ping")
        assert await first.recv() == b"ping"
        saved = first.resumption
        assert saved is not None and saved.session_id
        if ending == "client_fatal":
            _client_sends_fatal(first)
        elif ending == "server_fatal":
            _server_sends_fatal(first)
            with pytest.raises(dtlsfast.DtlsError):
                await first.recv()
        await first.close()
        fatal = ending != "close_notify"

        for _ in range(500):  # the server reads the alert (no timing assert)
            if server.counters["sessions_open"] == 0:
                break
            await asyncio.sleep(0.01)
        assert server.counters["session_ids_invalidated"] == int(fatal)
        again = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            resume=saved,
            **options,  # type: ignore[arg-type]
        )
        assert again.resumed == (None if fatal else "session_id")
        await again.close()
        assert server.counters["resumption_refused_unknown_session"] == int(fatal)
    finally:
        server.close()
