"""Resumption through the asyncio endpoints: ``dtlsfast.serve`` and
``dtlsfast.connect`` on loopback, the server's counters, its options, and an
abbreviated handshake charged no public-key work by the admission budget."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import dtlsfast
from dtlsfast.exceptions import ConfigurationError, KeyFileError
from dtlsfast.resumption import ServerResumption, TicketKeys

PSK = ("CoAP", "esp32c3_key")
ECDHE_PSK = "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"


async def _echo(session: dtlsfast.DtlsSession) -> None:
    async for data in session:
        await session.send(data)


async def _resume_once(server: dtlsfast.DtlsServer, tickets: bool = True) -> str | None:
    options = {"psk": PSK, "ciphers": [ECDHE_PSK], "session_tickets": tickets}
    first = await dtlsfast.connect("127.0.0.1", server.port, **options)  # type: ignore[arg-type]
    saved = first.resumption
    await first.close()
    second = await dtlsfast.connect(
        "127.0.0.1",
        server.port,
        resume=saved,
        **options,  # type: ignore[arg-type]
    )
    await second.send(b"ping")
    assert await second.recv() == b"ping"
    resumed = second.resumed
    await second.close()
    return resumed


@pytest.mark.parametrize("tickets", [True, False])
async def test_resumed_handshakes_spend_no_crypto_budget(tickets: bool) -> None:
    server = await dtlsfast.serve(_echo, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"})
    try:
        assert await _resume_once(server, tickets) == ("ticket" if tickets else "session_id")
        counters = server.counters
        # The full ECDHE-PSK handshake costs two operations, the resumed one none.
        assert counters["crypto_operations"] == 2
        assert counters["handshakes_completed"] == 2
        kind = "ticket" if tickets else "session_id"
        assert counters[f"resumed_{kind}"] == 1
    finally:
        server.close()


async def test_serve_without_resumption() -> None:
    server = await dtlsfast.serve(
        _echo, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}, resumption=False
    )
    try:
        assert await _resume_once(server) is None
        assert server.counters["crypto_operations"] == 4
    finally:
        server.close()


async def test_serve_with_a_ticket_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "ticket.key"
    key_file.parent.mkdir()
    server = await dtlsfast.serve(
        _echo, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}, ticket_key_file=key_file
    )
    try:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert await _resume_once(server) == "ticket"
    finally:
        server.close()
    # A second server reading the file resumes the first one's tickets.
    first = await dtlsfast.serve(
        _echo, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}, ticket_key_file=key_file
    )
    second = await dtlsfast.serve(
        _echo,
        "127.0.0.1",
        0,
        psk_store={"CoAP": b"esp32c3_key"},
        resumption=ServerResumption(ticket_keys=TicketKeys.from_file(key_file)),
    )
    try:
        session = await dtlsfast.connect("127.0.0.1", first.port, psk=PSK)
        saved = session.resumption
        await session.close()
        again = await dtlsfast.connect("127.0.0.1", second.port, psk=PSK, resume=saved)
        assert again.resumed == "ticket"
        await again.close()
    finally:
        first.close()
        second.close()


async def test_serve_options_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        await dtlsfast.serve(
            _echo,
            "127.0.0.1",
            0,
            psk_store={"CoAP": b"k"},
            resumption=ServerResumption(),
            ticket_key_file=tmp_path / "k",
        )
    with pytest.raises(ConfigurationError, match="resumption enabled"):
        await dtlsfast.serve(
            _echo,
            "127.0.0.1",
            0,
            psk_store={"CoAP": b"k"},
            resumption=False,
            ticket_key_file=tmp_path / "k",
        )
    loose = tmp_path / "loose.key"
    loose.write_bytes(bytes(64))
    loose.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"loose\.key"):
        await dtlsfast.serve(_echo, "127.0.0.1", 0, psk_store={"CoAP": b"k"}, ticket_key_file=loose)
