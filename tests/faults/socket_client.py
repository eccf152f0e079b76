"""A sans-I/O client (DtlsConnection) driven over a plain UDP socket, for
fault tests that need to see and shape every datagram a client sends."""

from __future__ import annotations

import asyncio
import socket

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection, State

PSK = ("CoAP", "esp32c3_key")


class SocketClient:
    """A sans-I/O client connection driven over a plain UDP socket."""

    def __init__(self, server: tuple[str, int], *, connection_id: bool = False) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1", 0))
        extra = {"connection_id_length": 8} if connection_id else {}
        self.conn = DtlsConnection(DtlsConfiguration.client(psk=PSK, **extra))
        self.loop = asyncio.get_running_loop()

    def flush(self) -> int:
        sent = 0
        for datagram in self.conn.datagrams_to_send(self.loop.time()):
            self.sock.sendto(datagram, self.server)
            sent += 1
        return sent

    async def receive(self, timeout: float = 2.0) -> bytes | None:
        try:
            return await asyncio.wait_for(self.loop.sock_recv(self.sock, 4096), timeout)
        except TimeoutError:
            return None

    async def send_cookie_hello(self) -> bool:
        """ClientHello, HelloVerifyRequest, ClientHello with the cookie; then stop."""
        self.conn.connect(self.loop.time())
        self.flush()
        reply = await self.receive(0.3)
        if reply is None:
            return False
        self.conn.receive_datagram(reply, self.loop.time())
        return self.flush() > 0

    async def handshake(self) -> None:
        self.conn.connect(self.loop.time())
        deadline = self.loop.time() + 10
        while self.conn.state is not State.ESTABLISHED:
            assert self.loop.time() < deadline, "handshake over the socket timed out"
            self.flush()
            data = await self.receive(0.2)
            if data is not None:
                self.conn.receive_datagram(data, self.loop.time())
            else:
                self.conn.handle_timer(self.loop.time())
        while self.conn.next_event() is not None:
            pass

    async def echo(self, data: bytes) -> bytes | None:
        """Send application data; the payload of the answer (the server echoes)."""
        self.conn.send(data)
        self.flush()
        reply = await self.receive()
        if reply is None:
            return None
        self.conn.receive_datagram(reply, self.loop.time())
        event = self.conn.next_event()
        return getattr(event, "data", None)

    def close(self) -> None:
        self.sock.close()
