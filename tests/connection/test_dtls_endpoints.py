"""The asyncio client and server on loopback: dtlsfast talking to itself."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref

import pytest

import dtlsfast
from dtlsfast import DtlsSession, HandshakeError
from dtlsfast.exceptions import ConfigurationError, ConnectionClosedError

PSK_STORE = {"CoAP": b"esp32c3_key"}


async def echo(session: DtlsSession) -> None:
    async for data in session:
        await session.send(data.upper())


async def test_connect_serve_echo() -> None:
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"), handshake_timeout=10
        )
        assert session.cipher_suite == "TLS_PSK_WITH_AES_128_CCM_8"
        assert session.peer_address[1] == server.port
        for word in (b"one", b"two", b"three"):
            await session.send(word)
            assert await asyncio.wait_for(session.recv(), 5) == word.upper()
        counters = server.counters
        assert counters["handshakes_completed"] == 1
        assert counters["sessions_open"] == 1
        assert counters["cookie_hello_verify_sent"] == 1
        await session.close()
        with pytest.raises(ConnectionClosedError):
            await session.send(b"closed")
        for _ in range(50):
            if server.counters["sessions_open"] == 0:
                break
            await asyncio.sleep(0.02)
        assert server.counters["sessions_open"] == 0


async def test_many_clients_and_a_bad_one() -> None:
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        sessions = await asyncio.gather(
            *(
                dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))
                for _ in range(20)
            )
        )
        with pytest.raises(HandshakeError) as failure:
            await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "not the key"))
        assert "PSK" in str(failure.value) or failure.value.alert == 20
        for i, session in enumerate(sessions):
            await session.send(b"n%d" % i)
        replies = await asyncio.gather(*(asyncio.wait_for(s.recv(), 5) for s in sessions))
        assert replies == [b"N%d" % i for i in range(20)]
        assert server.counters["handshakes_completed"] == 20
        assert server.counters["handshakes_failed"] == 1
        for session in sessions:
            await session.close()


async def test_handshake_timeout_against_silence() -> None:
    # A UDP socket that never answers.
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        with pytest.raises(dtlsfast.HandshakeTimeoutError):
            await dtlsfast.connect(
                "127.0.0.1",
                port,
                psk=("CoAP", "esp32c3_key"),
                initial_timeout=0.05,
                max_retransmissions=2,
            )
    finally:
        transport.close()


async def test_handler_errors_do_not_stop_the_server() -> None:
    async def broken(session: DtlsSession) -> None:
        raise RuntimeError("handler bug")

    async with await dtlsfast.serve(broken, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        for _ in range(2):
            session = await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(session.recv(), 5)
        assert server.counters["handler_errors"] == 2


async def test_pure_backend_endpoint() -> None:
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, backend="pure"
    ) as server:
        session = await dtlsfast.connect(
            "127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"), backend="pure"
        )
        await session.send(b"pure")
        assert await asyncio.wait_for(session.recv(), 5) == b"PURE"
        await session.close()


async def test_misuse_is_typed() -> None:
    with pytest.raises(ConfigurationError, match="cipher"):
        await dtlsfast.connect("127.0.0.1", 9, psk=("CoAP", "k"), ciphers=["NOT_A_SUITE"])
    with pytest.raises(ConfigurationError, match="mtu"):
        await dtlsfast.connect("127.0.0.1", 9, psk=("CoAP", "k"), mtu=10)


async def test_rebooted_device_replaces_its_session() -> None:
    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        first = await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))
        (old,) = server.sessions
        port = old.peer_address[1]
        # The device reboots: no close_notify, same address and port, and no
        # memory of the session.
        first.abort()
        await asyncio.sleep(0.01)
        second = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            psk=("CoAP", "esp32c3_key"),
            local_addr=("127.0.0.1", port),
        )
        await second.send(b"again")
        assert await asyncio.wait_for(second.recv(), 5) == b"AGAIN"
        assert server.counters["sessions_replaced"] == 1
        assert server.counters["sessions_open"] == 1
        assert old.closed
        await second.close()


async def test_idle_sessions_are_closed() -> None:
    limits = dtlsfast.ServerLimits(idle_timeout=0.3)
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(session.recv(), 5)  # the server's close_notify
        assert server.counters["sessions_idle_closed"] == 1
        assert server.counters["sessions_open"] == 0


async def test_session_cap_evicts_least_recently_active() -> None:
    limits = dtlsfast.ServerLimits(max_sessions=3)
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store=PSK_STORE, limits=limits
    ) as server:
        sessions = []
        for _ in range(5):
            sessions.append(
                await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))
            )
        assert server.counters["sessions_open"] == 3
        assert server.counters["sessions_evicted"] == 2
        await sessions[-1].send(b"newest")
        assert await asyncio.wait_for(sessions[-1].recv(), 5) == b"NEWEST"
        for session in sessions:
            await session.close()


async def test_restarted_handshake_replaces_the_abandoned_one() -> None:
    from dtlsfast.config import DtlsConfiguration
    from dtlsfast.connection import DtlsConnection, State

    class Abandoning(asyncio.DatagramProtocol):
        """A client that gets as far as the server's second flight, then
        goes silent: the server holds a half-finished handshake."""

        def __init__(self) -> None:
            self.conn = DtlsConnection(DtlsConfiguration.client(psk=("CoAP", "esp32c3_key")))
            self.transport: asyncio.DatagramTransport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            self.conn.connect(0.0)
            self.flush()

        def datagram_received(self, data: bytes, addr: object) -> None:
            self.conn.receive_datagram(data, 0.0)
            self.flush()

        def flush(self) -> None:
            out = self.conn.datagrams_to_send(0.0)
            if self.conn.state is State.CLIENT_WAIT_SERVER_HELLO and self.transport:
                for datagram in out:
                    self.transport.sendto(datagram)

    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            Abandoning, remote_addr=("127.0.0.1", server.port)
        )
        port = transport.get_extra_info("sockname")[1]
        for _ in range(100):
            if protocol.conn.state is State.CLIENT_WAIT_CHANGE_CIPHER_SPEC:
                break
            await asyncio.sleep(0.01)
        assert server.counters["handshakes_in_progress"] == 1
        transport.close()
        await asyncio.sleep(0.05)
        session = await dtlsfast.connect(
            "127.0.0.1",
            server.port,
            psk=("CoAP", "esp32c3_key"),
            local_addr=("127.0.0.1", port),
            handshake_timeout=5,
        )
        await session.send(b"retry")
        assert await asyncio.wait_for(session.recv(), 5) == b"RETRY"
        assert server.counters["handshakes_restarted"] == 1
        assert server.counters["handshakes_in_progress"] == 0
        await session.close()


async def test_established_sessions_move_to_the_session_table() -> None:
    """After the first application data the record state lives in the
    server's session table: replays are still dropped, alerts still reach
    the connection, and the entry goes when the session does."""
    from dtlsfast.config import DtlsConfiguration
    from dtlsfast.connection import DtlsConnection, State
    from dtlsfast.events import ApplicationDataReceived

    async with await dtlsfast.serve(echo, "127.0.0.1", 0, psk_store=PSK_STORE) as server:
        loop = asyncio.get_running_loop()
        conn = DtlsConnection(DtlsConfiguration.client(psk=("CoAP", "esp32c3_key")))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(("127.0.0.1", server.port))

            def flush() -> list[bytes]:
                out = conn.datagrams_to_send(loop.time())
                for datagram in out:
                    sock.send(datagram)
                return out

            async def receive() -> bytes:
                return await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)

            conn.connect(loop.time())
            while conn.state is not State.ESTABLISHED:
                flush()
                conn.receive_datagram(await receive(), loop.time())
            flush()
            while conn.next_event() is not None:
                pass
            for n in range(3):
                conn.send(b"ping %d" % n)
                (record,) = flush()
                conn.receive_datagram(await receive(), loop.time())
                event = conn.next_event()
                assert isinstance(event, ApplicationDataReceived)
                assert event.data == b"PING %d" % n
            assert server.counters["sessions_in_table"] == 1
            sock.send(record)  # a replay of the last request
            await asyncio.sleep(0.05)
            assert server.counters["dropped_replay"] == 1
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.1)
            conn.close()  # close_notify: handed back by the table to the connection
            flush()
            await asyncio.sleep(0.05)
            assert server.counters["sessions_open"] == 0
            assert server.counters["sessions_in_table"] == 0


async def test_closed_sessions_are_freed_without_the_cycle_collector() -> None:
    """A closed session is freed by reference counting, with its peer and
    connection: it drops its endpoint (which refers back to it) and its
    receiver, so a server closing thousands a second leaves the cycle
    collector nothing to do. Through the CoAP layer, as ``dtlsfast serve``."""
    from dtlsfast.coap.dtls import listen_dtls
    from dtlsfast.coap.light import LightResource
    from dtlsfast.coap.server import CoapServer

    coap = CoapServer()
    coap.add_resource("light", LightResource())
    server = await listen_dtls(coap, "127.0.0.1", 0, psk_store=PSK_STORE, identity_hint="CoAP")
    gc.disable()
    try:
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", "esp32c3_key"))
        for _ in range(100):
            if server.sessions:
                break
            await asyncio.sleep(0.01)
        [served] = server.sessions
        freed = weakref.ref(served)
        del served
        await session.close()
        for _ in range(100):
            if server.counters["sessions_open"] == 0:
                break
            await asyncio.sleep(0.01)
        assert server.counters["sessions_open"] == 0
        assert freed() is None
    finally:
        gc.enable()
        server.close()
        await server.wait_closed()
