"""Connection IDs (RFC 9146) across a NAT rebinding, on loopback.

The client reaches the server through :class:`LossyProxy`, which moves it to a
new source port mid-session (``rebind()``). With connection IDs the session,
and an Observe relation on the seed system's ``light`` resource, follow the
client to its new port; a replayed, older or forged record from another
address does not move the session (RFC 9146 §6).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from lossy_proxy import UP, LossyProxy

import dtlsfast
from dtlsfast import DtlsServer, DtlsSession
from dtlsfast.cli import build_parser, run_client
from dtlsfast.coap.client import CoapClient
from dtlsfast.coap.dtls import coaps_transport_factory, listen_dtls
from dtlsfast.coap.light import LightResource
from dtlsfast.coap.server import CoapServer
from dtlsfast.events import ApplicationDataReceived
from dtlsfast.exceptions import ConfigurationError

PSK = ("CoAP", "esp32c3_key")
PSK_STORE = {"CoAP": b"esp32c3_key"}
TLS12_CID = 25
WAIT = 10.0


async def echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data.upper())


async def eventually(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds (bounded by WAIT; no timing assert)."""
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.01)


async def round_trip(session: DtlsSession, data: bytes) -> None:
    await session.send(data)
    assert await asyncio.wait_for(session.recv(), WAIT) == data.upper()


class _Socket(asyncio.DatagramProtocol):
    """A UDP socket of another host (a spoofer, or the client after a move)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


async def open_socket() -> tuple[asyncio.DatagramTransport, _Socket]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _Socket, local_addr=("127.0.0.1", 0)
    )
    return cast(asyncio.DatagramTransport, transport), protocol


@pytest.fixture
async def echo_server() -> AsyncIterator[DtlsServer]:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, connection_id=True
    ) as server:
        yield server


async def test_echo_survives_nat_rebinding(echo_server: DtlsServer) -> None:
    server = echo_server
    async with LossyProxy(("127.0.0.1", server.port)) as proxy:
        seen: list[bytes] = []
        proxy.observer = lambda direction, data: seen.append(data) if direction == UP else None
        session = await dtlsfast.connect(
            *proxy.address, psk=PSK, connection_id=True, handshake_timeout=WAIT
        )
        assert session.connection.peer_connection_id is not None
        assert len(session.connection.peer_connection_id) == 8
        await round_trip(session, b"before")
        (server_session,) = server.sessions
        (client,) = proxy.clients
        assert server_session.peer_address[1] == proxy.upstream_port(client)

        new_port = await proxy.rebind()
        await round_trip(session, b"after")
        assert server_session.peer_address == ("127.0.0.1", new_port)
        await round_trip(session, b"again")
        assert server.counters["cid_address_updates"] == 1
        assert server.sessions == [server_session]
        assert server.counters["handshakes_completed"] == 1
        # The client's application records carried the server's CID.
        assert seen[-1][0] == TLS12_CID
        assert seen[-1][11:19] == session.connection.peer_connection_id
        await session.close()


async def test_without_connection_id_a_rebinding_loses_the_session() -> None:
    # The control: the same move without CIDs leaves the server unable to
    # tell whose records arrive from the new port.
    async with (
        await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server,
        LossyProxy(("127.0.0.1", server.port)) as proxy,
    ):
        session = await dtlsfast.connect(*proxy.address, psk=PSK, handshake_timeout=WAIT)
        await round_trip(session, b"before")
        await proxy.rebind()
        await session.send(b"after")
        await eventually(lambda: server.counters["dropped_no_session"] >= 1)
        (server_session,) = server.sessions
        assert server_session.peer_address[1] != proxy.port
        await session.close()


async def test_old_replayed_or_forged_records_do_not_move_the_session(
    echo_server: DtlsServer,
) -> None:
    server = echo_server
    async with LossyProxy(("127.0.0.1", server.port)) as proxy:
        seen: list[bytes] = []
        proxy.observer = lambda direction, data: seen.append(data) if direction == UP else None
        session = await dtlsfast.connect(
            *proxy.address, psk=PSK, connection_id=True, handshake_timeout=WAIT
        )
        await round_trip(session, b"first")
        (server_session,) = server.sessions
        home = server_session.peer_address
        already_seen = seen[-1]

        # Records sealed by the client but held back: an older one and the newest.
        conn = session.connection
        loop = asyncio.get_running_loop()
        conn.send(b"older")
        (older,) = conn.datagrams_to_send(loop.time())
        conn.send(b"held")
        (newest,) = conn.datagrams_to_send(loop.time())
        await round_trip(session, b"second")  # newer than both, through the proxy

        rogue, rogue_socket = await open_socket()
        try:
            forged = bytearray(newest)
            forged[-1] ^= 1
            rogue.sendto(bytes(forged), ("127.0.0.1", server.port))  # valid CID, bad MAC
            rogue.sendto(already_seen, ("127.0.0.1", server.port))  # a replay
            rogue.sendto(older, ("127.0.0.1", server.port))  # authentic but not the newest
            # The older record is accepted as data; its echo goes home, not to the rogue.
            assert await asyncio.wait_for(session.recv(), WAIT) == b"OLDER"
            await eventually(lambda: server.counters["cid_address_kept"] == 3)
            counters = server.counters
            assert counters["dropped_bad_auth"] == 1
            assert counters["dropped_replay"] == 1
            assert counters["cid_address_updates"] == 0
            assert server_session.peer_address == home
            assert rogue_socket.received.empty()
            await round_trip(session, b"still home")

            # Unknown CIDs are dropped without touching any session.
            unknown = bytearray(newest)
            unknown[11:19] = bytes(b ^ 0x55 for b in unknown[11:19])
            rogue.sendto(bytes(unknown), ("127.0.0.1", server.port))
            await eventually(lambda: server.counters["dropped_unknown_cid"] == 1)
            assert server_session.peer_address == home
        finally:
            rogue.close()
        await session.close()


async def test_newest_record_from_a_new_address_moves_the_session(
    echo_server: DtlsServer,
) -> None:
    # The positive control of the test above: the same kind of datagram, but
    # the newest one, moves the session (RFC 9146 §6) and the answer follows.
    server = echo_server
    session = await dtlsfast.connect(
        "127.0.0.1", server.port, psk=PSK, connection_id=True, handshake_timeout=WAIT
    )
    await round_trip(session, b"first")
    (server_session,) = server.sessions
    conn = session.connection
    conn.send(b"moved")
    (newest,) = conn.datagrams_to_send(asyncio.get_running_loop().time())
    moved, moved_socket = await open_socket()
    try:
        moved.sendto(newest, ("127.0.0.1", server.port))
        reply = await asyncio.wait_for(moved_socket.received.get(), WAIT)
        assert server_session.peer_address == moved.get_extra_info("sockname")[:2]
        assert server.counters["cid_address_updates"] == 1
        # The reply is the echo, sealed for the client's session.
        conn.receive_datagram(reply, asyncio.get_running_loop().time())
        assert conn.next_event() == ApplicationDataReceived(b"MOVED")
    finally:
        moved.close()
    await session.close()


async def test_observe_on_light_follows_the_rebinding() -> None:
    coap = CoapServer()
    light = LightResource()
    coap.add_resource("light", light)
    dtls = await listen_dtls(coap, "127.0.0.1", 0, psk_store=PSK_STORE, connection_id=True)
    try:
        async with LossyProxy(("127.0.0.1", dtls.port)) as proxy:
            factory = coaps_transport_factory(PSK, connection_id=True, handshake_timeout=WAIT)
            uri = f"coaps://127.0.0.1:{proxy.port}/light"
            async with (
                CoapClient(transport_factories={"coaps": factory}) as client,
                client.observe(uri) as observation,
            ):
                first = await asyncio.wait_for(anext(observation), WAIT)
                assert first.payload == b"off"
                (server_session,) = dtls.sessions
                new_port = await proxy.rebind()
                # The device speaks first after the move (RFC 9146 §6: the
                # address follows records, not the other way round).
                response = await asyncio.wait_for(client.put(uri, b"on"), WAIT)
                assert response.is_success
                assert server_session.peer_address == ("127.0.0.1", new_port)
                notification = await asyncio.wait_for(anext(observation), WAIT)
                assert notification.payload == b"on"
                # A change made by someone else reaches the new port too.
                await change_light_directly(dtls, "off")
                notification = await asyncio.wait_for(anext(observation), WAIT)
                assert notification.payload == b"off"
                assert len(coap.observers("light")) == 1
                assert dtls.counters["cid_address_updates"] == 1
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


async def change_light_directly(dtls: DtlsServer, value: str) -> None:
    """PUT ``value`` from a second client straight to the server (no CID)."""
    factory = coaps_transport_factory(PSK, handshake_timeout=WAIT)
    async with CoapClient(transport_factories={"coaps": factory}) as other:
        put: Awaitable[Any] = other.put(f"coaps://127.0.0.1:{dtls.port}/light", value.encode())
        assert (await asyncio.wait_for(put, WAIT)).is_success


async def test_cid_table_holds_only_live_cid_sessions(echo_server: DtlsServer) -> None:
    server = echo_server
    with_cid = await dtlsfast.connect(
        "127.0.0.1", server.port, psk=PSK, connection_id=True, handshake_timeout=WAIT
    )
    await round_trip(with_cid, b"a")
    assert server.counters["connection_ids"] == 1
    # A client that does not offer connection_id: plain records, no CID kept.
    without = await dtlsfast.connect("127.0.0.1", server.port, psk=PSK, handshake_timeout=WAIT)
    await round_trip(without, b"b")
    assert without.connection.peer_connection_id is None
    assert server.counters["connection_ids"] == 1
    await with_cid.close()
    await eventually(lambda: server.counters["sessions_open"] == 1)
    assert server.counters["connection_ids"] == 0
    await without.close()


async def test_connection_id_length_needs_connection_id() -> None:
    with pytest.raises(ConfigurationError, match="connection_id=True"):
        await dtlsfast.connect("127.0.0.1", 9, psk=PSK, connection_id_length=4)


async def test_command_line_client_offers_connection_id(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    coap = CoapServer()
    coap.add_resource("light", LightResource(on=True))
    dtls = await listen_dtls(coap, "127.0.0.1", 0, psk_store=PSK_STORE, connection_id=True)
    try:
        uri = f"coaps://127.0.0.1:{dtls.port}/light"
        for extra in ([], ["--connection-id"]):
            args = build_parser().parse_args(["get", uri, "-B", str(WAIT), *extra])
            with caplog.at_level(logging.DEBUG, logger="dtlsfast.server"):
                assert await run_client(args) == 0
            assert capsys.readouterr().out == "on\n"
        established = [r.getMessage() for r in caplog.records if "established" in r.getMessage()]
        assert len(established) == 2
        assert "connection ID" not in established[0]
        assert "connection ID" in established[1]
    finally:
        dtls.close()
        await dtls.wait_closed()
        coap.close()


async def test_a_move_onto_a_taken_address_keeps_the_tables_consistent(
    echo_server: DtlsServer,
) -> None:
    # Client A (with CID) shows up from the address of client B: B's NAT
    # binding went to A. B without a CID can no longer be reached and is
    # closed; C with a CID only loses its address entry and gets it back with
    # its next record.
    server = echo_server
    a, b, c = [
        await dtlsfast.connect(
            "127.0.0.1", server.port, psk=PSK, connection_id=cid, handshake_timeout=WAIT
        )
        for cid in (True, False, True)
    ]
    for session in (a, b, c):
        await round_trip(session, b"hello")
    by_address = {s.peer_address: s for s in server.sessions}
    server_a, server_b, server_c = (by_address[_local(s)] for s in (a, b, c))

    loop = asyncio.get_running_loop()
    a.connection.send(b"from b's address")
    (record,) = a.connection.datagrams_to_send(loop.time())
    server.datagram_received(record, server_b.peer_address)
    assert server_a.peer_address == _local(b)
    assert server_b.closed
    assert server.counters["sessions_displaced"] == 1
    assert sorted(map(id, server.sessions)) == sorted(map(id, [server_a, server_c]))

    c.connection.send(b"from a's address")
    (record,) = c.connection.datagrams_to_send(loop.time())
    server.datagram_received(record, _local(b))  # onto A's new address: A has a CID
    assert server_c.peer_address == _local(b) and not server_a.closed
    assert server.counters["sessions_displaced"] == 1
    # Without an address entry A is still a session: counted, swept, closed.
    assert server_a in server.sessions and server.counters["sessions_open"] == 2
    # A speaks from its own socket again: it gets an address entry back.
    await round_trip(a, b"home again")
    assert server_a.peer_address == _local(a)
    assert server.counters["cid_address_updates"] == 3
    assert {s.peer_address for s in server.sessions} == {_local(a), _local(b)}
    for session in (a, b, c):
        await session.close()


def _local(session: DtlsSession) -> Any:
    """The client's own address, as the server sees it."""
    return session._endpoint.transport.get_extra_info("sockname")[:2]  # type: ignore[attr-defined]
