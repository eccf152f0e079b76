"""Forged records do not keep an idle session alive (issue 12, item 4).

Records that fail authentication, or replays of the peer's own records, are
not the peer's activity: a forger who knows a session's address (or its
connection ID) must not be able to hold it open past the idle timeout, and
so keep a gateway's session table full. Checked on each path a record can
take: the Rust session table's batch path, the settled session of
``backend="pure"`` (the table's open_datagram), and the full DtlsConnection of
a connection-ID session.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from socket_client import SocketClient

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.server import ServerLimits

IDLE_TIMEOUT = 1.0
FLOOD_SECONDS = 3.0
FLOOD_RATE = 400.0


async def _echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data)


def _forged(connection_id: bytes | None, seq: int) -> bytes:
    payload = os.urandom(40)
    if connection_id:
        body = connection_id + len(payload).to_bytes(2, "big") + payload
        return bytes([25, 0xFE, 0xFD, 0, 1]) + seq.to_bytes(6, "big") + body
    return (
        bytes([23, 0xFE, 0xFD, 0, 1])
        + seq.to_bytes(6, "big")
        + len(payload).to_bytes(2, "big")
        + payload
    )


@pytest.mark.parametrize(
    ("backend", "connection_id"),
    [("rust", False), ("pure", False), ("rust", True)],
    ids=["rust-table-batch", "pure-settled", "cid-full-connection"],
)
async def test_forged_records_do_not_keep_a_session_alive(
    backend: str, connection_id: bool
) -> None:
    limits = ServerLimits(idle_timeout=IDLE_TIMEOUT)
    async with await dtlsfast.serve(
        _echo,
        "127.0.0.1",
        0,
        psk_store={"CoAP": b"esp32c3_key"},
        limits=limits,
        backend=backend,  # type: ignore[arg-type]
        connection_id=connection_id,
    ) as server:
        client = SocketClient(server.address, connection_id=connection_id)
        try:
            await client.handshake()
            assert await client.echo(b"ping") == b"ping"  # the session settles
            cid = client.conn.peer_connection_id or None
            replay = None
            start = time.monotonic()
            sent = 0
            seq = 1 << 40
            closed_after = None
            while (elapsed := time.monotonic() - start) < FLOOD_SECONDS:
                while sent < elapsed * FLOOD_RATE:
                    client.sock.sendto(_forged(cid, seq), server.address)
                    seq += 1
                    sent += 1
                    if replay is None:
                        # The client's own last record, replayed as well.
                        client.conn.send(b"again")
                        replay = client.conn.datagrams_to_send(client.loop.time())[0]
                        client.sock.sendto(replay, server.address)
                    else:
                        client.sock.sendto(replay, server.address)
                if closed_after is None and server.counters["sessions_idle_closed"]:
                    closed_after = elapsed
                await asyncio.sleep(0.005)
            counters = server.counters
        finally:
            client.close()
    print(
        f"\n[forged keep-alive] {backend}{' with CID' if connection_id else ''}: "
        f"{sent} forged records and {sent} replays over {FLOOD_SECONDS} s at an idle timeout of "
        f"{IDLE_TIMEOUT} s; idle-closed after "
        f"{'-' if closed_after is None else f'{closed_after:.1f} s'}; "
        f"bad_auth {counters['dropped_bad_auth']}, replay {counters['dropped_replay']}"
    )
    assert counters["sessions_idle_closed"] == 1, "forged records kept the session alive"
    assert closed_after is not None and closed_after < IDLE_TIMEOUT + 1.5
    assert counters["dropped_bad_auth"] > 0
