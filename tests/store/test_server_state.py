"""The session store wired into :func:`dtlsfast.serve` (issue 15), in one
process: sessions saved periodically and by ``close()``, restored by the
next server with no handshake, with or without connection IDs;
``close(keep_sessions=False)`` says close_notify and keeps nothing; a
custom store."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

import dtlsfast
from dtlsfast.connection import DtlsConnection
from dtlsfast.exceptions import ConfigurationError, StateFileError
from dtlsfast.server import DtlsServer
from dtlsfast.session import DtlsSession
from dtlsfast.settled_connection import SettledConnection
from dtlsfast.store import MemorySessionStore

PSK = ("CoAP", "esp32c3_key")
STORE = {b"CoAP": b"esp32c3_key"}


async def _echo(session: DtlsSession) -> None:
    async for message in session:
        await session.send(b"echo:" + message)


async def _serve(port: int = 0, **options: object) -> DtlsServer:
    return await dtlsfast.serve(_echo, "127.0.0.1", port, psk_store=STORE, **options)  # type: ignore[arg-type]


async def _ask(session: DtlsSession, text: bytes) -> bytes:
    await session.send(text)
    return await asyncio.wait_for(session.recv(), 5)


def _server_conn(server: DtlsServer) -> DtlsConnection | SettledConnection:
    (session,) = server.sessions
    return session.connection


# The batch socket is the Rust backend's.
@pytest.mark.parametrize(
    ("backend", "batch_io"), [("rust", True), ("rust", False), ("pure", False)]
)
async def test_a_settled_session_outlives_the_server(
    tmp_path: Path, backend: str, batch_io: bool
) -> None:
    options = {"state_file": tmp_path / "state.db", "backend": backend, "batch_io": batch_io}
    server = await _serve(**options)
    client = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
    try:
        assert await _ask(client, b"one") == b"echo:one"
        assert isinstance(_server_conn(server), SettledConnection)
        port = server.port
        server.close()
        await server.wait_closed()
        assert not client.closed
        server = await _serve(port, **options)
        assert server.state is not None and server.state.counters["sessions_restored"] == 1
        assert isinstance(_server_conn(server), SettledConnection)
        opened = server._table.totals["opened"]
        assert await _ask(client, b"two") == b"echo:two"
        assert server.counters["handshakes_completed"] == 0
        if batch_io:  # bound again: the Rust demultiplexer opened it, not Python
            assert server._table.totals["opened"] == opened + 1
    finally:
        client.abort()
        server.close()
        await server.wait_closed()


async def test_a_connection_id_session_is_restored_with_its_cid(tmp_path: Path) -> None:
    options = {"state_file": tmp_path / "state.db", "connection_id": True}
    server = await _serve(**options)
    client = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, connection_id=True)
    try:
        assert await _ask(client, b"one") == b"echo:one"
        cid = _server_conn(server).connection_id
        assert cid
        port = server.port
        server.close()
        await server.wait_closed()
        server = await _serve(port, **options)
        restored = _server_conn(server)
        assert isinstance(restored, SettledConnection) and restored.connection_id == cid
        assert restored.peer_connection_id == client.connection.connection_id
        assert await _ask(client, b"two") == b"echo:two"
        assert server.counters["handshakes_completed"] == 0
        assert server.counters["connection_ids"] == 1
    finally:
        client.abort()
        server.close()
        await server.wait_closed()


async def test_periodic_saves_and_close_notify_without_keeping(tmp_path: Path) -> None:
    store = MemorySessionStore()
    server = await _serve(session_store=store, state_save_interval=0.05)
    client = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
    other = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
    try:
        await _ask(client, b"x")
        await _ask(other, b"y")
        await asyncio.sleep(0.3)
        assert len(list(store.iterate())) == 2  # saved while running
        await other.close()  # close_notify: the session ends, and leaves the store
        await asyncio.sleep(0.3)
        assert len(list(store.iterate())) == 1
        server.close(keep_sessions=False)
        await server.wait_closed()
        await asyncio.sleep(0.1)
        assert client.closed  # told with close_notify
        assert list(store.iterate()) == []
    finally:
        client.abort()
        other.abort()


async def test_state_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="state_file"):
        await _serve(state_key_file=tmp_path / "key")
    with pytest.raises(ConfigurationError, match="not both"):
        await _serve(state_file=tmp_path / "s.db", session_store=MemorySessionStore())
    (tmp_path / "bad.db").write_bytes(b"not a database at all" * 100)
    (tmp_path / "bad.db").chmod(0o600)
    with pytest.raises(StateFileError, match="state_reset=True"):
        await _serve(state_file=tmp_path / "bad.db")


async def test_the_ticket_key_file_encrypts_the_state_when_alone(tmp_path: Path) -> None:
    tickets = tmp_path / "tickets.key"
    server = await _serve(state_file=tmp_path / "s.db", ticket_key_file=tickets)
    client = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
    try:
        await _ask(client, b"x")
    finally:
        client.abort()
        server.close()
        await server.wait_closed()
    assert tickets.exists() and not (tmp_path / "s.db.key").exists()
    # Another key does not open it: the ticket key file was the one used.
    with pytest.raises(StateFileError, match="another key"):
        await _serve(state_file=tmp_path / "s.db", state_key_file=tmp_path / "other.key")


async def test_a_server_that_cannot_bind_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    options = {"state_file": tmp_path / "state.db"}
    server = await _serve(**options)
    client = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK)
    try:
        await _ask(client, b"x")
        port = server.port
        server.close()
        await server.wait_closed()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            with pytest.raises(OSError):
                await _serve(taken.getsockname()[1], batch_io=False, **options)
        server = await _serve(port, **options)
        assert server.state is not None and server.state.counters["sessions_restored"] == 1
        assert await _ask(client, b"y") == b"echo:y"
    finally:
        client.abort()
        server.close()
        await server.wait_closed()
