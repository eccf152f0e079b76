"""What one forged record costs the server on each path: opened (and dropped
for failing authentication) against dropped unopened by the MAC-error filter.

The defaults of :mod:`dtlsfast.auth_filter` (``ServerLimits.auth_failure_*``)
come from these figures: a filter saves only the difference between the two,
so it throttles only at rates where that difference is a real share of a core.
Paths: the Rust session table's batch path (``SessionTable.serve``, 64
datagrams a call, as recvmmsg hands them over), the settled path without
batch I/O, the full DtlsConnection of a CID session, and records naming that
session's CID from another address; each with the Rust core and with
``backend="pure"``. ``extra_info["us_per_record"]`` is the mean per record.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.server import DtlsServer, ServerLimits

PSK_STORE = {"CoAP": b"esp32c3_key"}
PSK = ("CoAP", "esp32c3_key")
BATCH = 64
#: Never throttles (every record opened), and throttles everything after one.
OPEN_ALL = ServerLimits(
    auth_failure_burst=10**9,
    auth_failure_rate=1e9,
    auth_failure_table_burst=10**9,
    auth_failure_table_rate=1e9,
)
OPEN_NONE = ServerLimits(
    auth_failure_burst=1,
    auth_failure_rate=0.0,
    auth_failure_table_burst=1,
    auth_failure_table_rate=0.0,
)


@dataclass(frozen=True)
class Path:
    backend: str
    batch_io: bool
    connection_id: bool
    from_elsewhere: bool = False


PATHS = {
    "rust-table-batch": Path("rust", True, False),
    "rust-settled": Path("rust", False, False),
    "rust-connection-cid": Path("rust", False, True),
    "rust-cid-from-elsewhere": Path("rust", False, True, True),
    "pure-settled": Path("pure", False, False),
    "pure-connection-cid": Path("pure", False, True),
    "pure-cid-from-elsewhere": Path("pure", False, True, True),
}


async def _echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data)


@dataclass
class Setup:
    loop: asyncio.AbstractEventLoop
    server: DtlsServer
    client: DtlsSession
    addr: Any
    record: bytes


async def _start(path: Path, limits: ServerLimits) -> tuple[DtlsServer, DtlsSession]:
    server = await dtlsfast.serve(
        _echo,
        "127.0.0.1",
        0,
        psk_store=PSK_STORE,
        backend=path.backend,  # type: ignore[arg-type]
        batch_io=path.batch_io,
        connection_id=path.connection_id,
        limits=limits,
    )
    client = await dtlsfast.connect(
        "127.0.0.1",
        server.port,
        psk=PSK,
        backend=path.backend,  # type: ignore[arg-type]
        connection_id=path.connection_id,
    )
    await client.send(b"settle")
    assert await asyncio.wait_for(client.recv(), 5) == b"settle"
    return server, client


def _forged(cid: bytes) -> bytes:
    """An epoch-1 record, newer than any the client sent, that fails
    authentication (so it never enters the window: one record serves every
    round)."""
    payload = os.urandom(48)
    kind = 25 if cid else 23  # tls12_cid (RFC 9146 §4) or application data
    header = bytes([kind, 0xFE, 0xFD, 0, 1]) + (1 << 40).to_bytes(6, "big") + cid
    return header + len(payload).to_bytes(2, "big") + payload


@pytest.fixture
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    path, fate = request.param
    loop = asyncio.new_event_loop()
    server, client = loop.run_until_complete(
        _start(path, OPEN_ALL if fate == "opened" else OPEN_NONE)
    )
    (peer,) = server._peers.values()
    addr = peer.addr
    if path.from_elsewhere:
        addr = (addr[0], addr[1] + 1 if addr[1] < 65535 else addr[1] - 1)
    yield Setup(loop, server, client, addr, _forged(peer.cid))
    loop.run_until_complete(client.close())
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


CASES = [(p, fate) for p in PATHS.values() for fate in ("opened", "unopened")]
IDS = [f"{name}-{fate}" for name in PATHS for fate in ("opened", "unopened")]


@pytest.mark.parametrize("setup", CASES, ids=IDS, indirect=True)
def test_forged_record(benchmark: Any, setup: Setup) -> None:
    server, addr, record = setup.server, setup.addr, setup.record
    batched = server._batched
    if batched:
        table = server._table
        batch = [(record, addr)] * BATCH
        table.serve(batch[:1], 0.0)  # OPEN_NONE: the bucket is empty from now on

        def run() -> None:
            table.serve(batch, 0.0)

        per_call = BATCH
    else:
        server.datagram_received(record, addr)

        def run() -> None:
            server.datagram_received(record, addr)

        per_call = 1
    before = server.counters
    benchmark.group = "forged-record"
    benchmark(run)
    after = server.counters
    opened = after["dropped_bad_auth"] - before["dropped_bad_auth"]
    throttled = after["dropped_auth_throttled"] - before["dropped_auth_throttled"]
    benchmark.extra_info["us_per_record"] = benchmark.stats.stats.mean / per_call * 1e6
    benchmark.extra_info["correct"] = (opened > 0) != (throttled > 0) and after[
        "sessions_open"
    ] == 1
