"""``dtlsfast serve --state-file`` as a user runs it (issue 15): sessions of
a dtlsfast client and a libcoap observer outlive SIGTERM and ``kill -9``
with no new handshake, the restarted server's record sequence numbers are
past everything its predecessor sent, the light's value PUT before a restart
is what a GET sees after it, and a state file that cannot be used stops the
server with an error naming it, untouched."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from peers import free_udp_port_pair, run_coap_client, serve_process, server_pid

import dtlsfast
from dtlsfast.connection import DtlsConnection
from dtlsfast.session import DtlsSession

pytestmark = pytest.mark.interop

PSK = ("CoAP", "esp32c3_key")


def _get(message_id: int) -> bytes:
    """A Confirmable CoAP GET of /light (RFC 7252 §3)."""
    return b"\x40\x01" + message_id.to_bytes(2, "big") + b"\xb5light"


def _newest_sequence(session: DtlsSession) -> tuple[int, int]:
    """(epoch, sequence number) of the newest record the client authenticated."""
    conn = session.connection
    assert isinstance(conn, DtlsConnection)
    return conn.records.newest


async def _request(session: DtlsSession, message_id: int) -> bytes:
    await session.send(_get(message_id))
    answer = await asyncio.wait_for(session.recv(), 5)
    assert answer[:1] == b"\x60" and answer[2:4] == message_id.to_bytes(2, "big"), answer
    return answer


def _established(log: Path) -> int:
    return len(re.findall(r"session with \S+ established", log.read_text()))


async def test_sessions_and_observers_survive_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    port = free_udp_port_pair()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    # _established() counts the per-session lines, logged at debug.
    options = ("--state-file", str(state), "--log-level", "debug")
    secure = f"coaps://127.0.0.1:{port + 1}/light"
    session: DtlsSession | None = None
    try:
        async with serve_process(first_log, 0, port + 1, *options) as first:
            session = await dtlsfast.connect("127.0.0.1", port + 1, psk=PSK)
            await _request(session, 1)
            before = _newest_sequence(session)
            observer = asyncio.create_task(run_coap_client(secure, observe_seconds=8, bound=12))
            while _established(first_log) < 2:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the observer's registration answered
            first.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(first.wait(), 10) == 0
        text = first_log.read_text()
        assert "saving the DTLS sessions" in text and "Traceback" not in text
        assert os.stat(state).st_mode & 0o777 == 0o600
        assert os.stat(f"{state}.key").st_mode & 0o777 == 0o600
        assert not session.closed  # no close_notify

        async with serve_process(second_log, 0, port + 1, *options):
            answer = await _request(session, 2)
            assert answer.endswith(b"off")
            after = _newest_sequence(session)
            assert after[0] == before[0] and after[1] > before[1]
            put = await run_coap_client(secure, method="put", payload="on")
            assert put.response_code == "2.04", put.describe()
            watched = await observer
            # The observation registered with the first server is notified by the second.
            assert watched.payload is not None and watched.payload.endswith(b"on"), (
                watched.describe()
            )
            assert not session.closed
        text = second_log.read_text()
        assert "restored 2 DTLS sessions" in text, text
        # Only the PUT's client handshook with the second server.
        assert _established(second_log) == 1, text
    finally:
        if session is not None:
            session.abort()


def _put(message_id: int, value: bytes) -> bytes:
    """A Confirmable CoAP PUT of /light with ``value`` as its payload."""
    return b"\x40\x03" + message_id.to_bytes(2, "big") + b"\xb5light\xff" + value


async def test_the_light_value_survives_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    port = free_udp_port_pair()
    options = ("--state-file", str(state))
    session: DtlsSession | None = None
    try:
        async with serve_process(tmp_path / "first.log", 0, port + 1, *options) as first:
            session = await dtlsfast.connect("127.0.0.1", port + 1, psk=PSK)
            assert (await _request(session, 1)).endswith(b"off")
            await session.send(_put(2, b"on"))
            changed = await asyncio.wait_for(session.recv(), 5)
            assert changed[:4] == b"\x60\x44\x00\x02", changed  # 2.04 Changed
            first.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(first.wait(), 10) == 0
        async with serve_process(tmp_path / "second.log", 0, port + 1, *options):
            # The restored session's GET, answered in the session table.
            assert (await _request(session, 3)).endswith(b"on")
            # A new client sees it too, through the CoAP server.
            got = await run_coap_client(f"coaps://127.0.0.1:{port + 1}/light")
            assert got.payload is not None and got.payload.endswith(b"on"), got.describe()
            assert not session.closed
        assert "restored 1 DTLS sessions" in (tmp_path / "second.log").read_text()
    finally:
        if session is not None:
            session.abort()


async def test_kill_9_never_reuses_sequence_numbers(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    port = free_udp_port_pair()
    options = ("--state-file", str(state), "--state-save-interval", "0.2", "--log-level", "debug")
    session: DtlsSession | None = None
    try:
        async with serve_process(tmp_path / "first.log", 0, port + 1, *options) as first:
            session = await dtlsfast.connect("127.0.0.1", port + 1, psk=PSK)
            await _request(session, 1)
            await asyncio.sleep(0.6)  # a periodic save has the session
            for message_id in range(2, 12):  # records the store never hears of
                await _request(session, message_id)
            before = _newest_sequence(session)
            os.kill(server_pid(first.pid), signal.SIGKILL)  # the server, not `timeout`
            await asyncio.wait_for(first.wait(), 10)
        async with serve_process(tmp_path / "second.log", 0, port + 1, *options):
            await _request(session, 12)
            after = _newest_sequence(session)
            assert after[0] == before[0] and after[1] > before[1]
        assert "restored 1 DTLS sessions" in (tmp_path / "second.log").read_text()
        assert _established(tmp_path / "second.log") == 0
    finally:
        if session is not None:
            session.abort()


async def _serve_fails(state: Path, *options: str) -> str:
    port = free_udp_port_pair()
    process = await asyncio.create_subprocess_exec(
        "timeout", "--foreground", "30", sys.executable, "-m", "dtlsfast.cli", "serve",
        "--bind", "127.0.0.1", "--port", "0", "--coaps-port", str(port + 1),
        "--state-file", str(state), *options,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2, out
    return out.decode()


async def _saved_state(tmp_path: Path) -> Path:
    """A state file holding one session, written by a real server."""
    state = tmp_path / "state.db"
    port = free_udp_port_pair()
    async with serve_process(tmp_path / "writer.log", 0, port + 1, "--state-file", str(state)):
        session = await dtlsfast.connect("127.0.0.1", port + 1, psk=PSK)
        try:
            await _request(session, 1)
        finally:
            session.abort()  # no close_notify: the session stays in the file
    return state


def _truncate(state: Path) -> None:
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])


def _other_version(state: Path) -> None:
    db = sqlite3.connect(state)
    db.execute("UPDATE meta SET value = 99 WHERE name = 'version'")
    db.commit()
    db.close()


def _garbage(state: Path) -> None:
    state.write_bytes(os.urandom(8192))


def _other_key(state: Path) -> None:
    key = Path(f"{state}.key")
    key.write_bytes(os.urandom(64))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_garbage, "is not a dtlsfast state file"),
        (_truncate, "corrupt"),
        (_other_version, "format version 99"),
        (_other_key, "another key"),
    ],
)
async def test_an_unusable_state_file_is_refused_untouched(
    tmp_path: Path, damage: object, words: str
) -> None:
    state = await _saved_state(tmp_path)
    assert callable(damage)
    damage(state)
    os.chmod(state, 0o600)
    before = state.read_bytes()
    out = await _serve_fails(state)
    assert str(state) in out and words in out and "--state-reset" in out, out
    assert "Traceback" not in out
    assert state.read_bytes() == before
    assert not list(tmp_path.glob("state.db.unusable-*"))
    # The explicit choice: moved aside, not deleted, and a new file started.
    port = free_udp_port_pair()
    log = tmp_path / "reset.log"
    async with serve_process(log, 0, port + 1, "--state-file", str(state), "--state-reset"):
        pass
    (aside,) = tmp_path.glob("state.db.unusable-*[0-9]")
    assert aside.read_bytes() == before
    assert "was unusable; moved to" in log.read_text()
