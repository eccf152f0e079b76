"""asyncio DTLS client: :func:`connect` returns an established session.

A thin driver of :class:`~dtlsfast.connection.DtlsConnection` over one
connected UDP socket, with one ``loop.call_at`` timer for retransmissions
(RFC 6347 §4.2.4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, cast

from dtlsfast.config import (
    Backend,
    DtlsConfiguration,
    TrustedKey,
    connection_id_length_for,
)
from dtlsfast.connection import DtlsConnection
from dtlsfast.datagram_transport import open_datagram_endpoint
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import ConnectionClosedError, HandshakeError
from dtlsfast.resumption.saved_session import SavedSession
from dtlsfast.session import DtlsSession


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self, conn: DtlsConnection) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.session: DtlsSession | None = None
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's datagram transports do not all subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.conn.receive_datagram(data, self.loop.time())
        self.pump()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: UDP says nothing is certain, the
        # retransmission timer decides.
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.session is not None:
            self.session._mark_closed(None)
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionClosedError("the socket closed"))

    # The session's endpoint (dtlsfast.session.SessionEndpoint).

    def send(self, session: DtlsSession, data: bytes) -> None:
        self.conn.send(data)
        self.pump()

    def flush(self, session: DtlsSession) -> None:
        self.pump()

    def pump(self) -> None:
        """Send what the connection queued, deliver its events, re-arm the timer."""
        now = self.loop.time()
        if self.transport is not None:
            for datagram in self.conn.datagrams_to_send(now):
                self.transport.sendto(datagram)
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, ApplicationDataReceived):
                if self.session is not None:
                    self.session._deliver(event.data)
            elif isinstance(event, HandshakeCompleted):
                if not self.handshake.done():
                    self.handshake.set_result(None)
            elif isinstance(event, ConnectionClosed):
                if not self.handshake.done():
                    self.handshake.set_exception(
                        event.error or ConnectionClosedError("closed during the handshake")
                    )
                if self.session is not None:
                    self.session._mark_closed(event.error)
                if self.transport is not None:
                    self.loop.call_soon(self.transport.close)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.conn.get_timer()
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.conn.handle_timer(self.loop.time())
        self.pump()


async def connect(
    host: str,
    port: int,
    *,
    psk: tuple[str | bytes, str | bytes] | None = None,
    ciphers: Iterable[str | int] | None = None,
    mtu: int | None = None,
    groups: Iterable[int] | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    cafile: str | Path | None = None,
    raw_public_key: bool = False,
    trusted_public_keys: Iterable[TrustedKey] | None = None,
    trusted_keys_file: str | Path | None = None,
    server_name: str | None = None,
    initial_timeout: float = 1.0,
    max_timeout: float = 60.0,
    max_retransmissions: int = 7,
    handshake_timeout: float | None = None,
    keylog: IO[str] | None = None,
    backend: Backend = "rust",
    local_addr: tuple[str, int] | None = None,
    connection_id: bool = False,
    connection_id_length: int | None = None,
    require_extended_master_secret: bool = False,
    resume: SavedSession | None = None,
    session_tickets: bool = True,
) -> DtlsSession:
    """Open a DTLS 1.2 session to ``host:port``.

    Credentials: ``psk=(identity, key)`` for the PSK suites, and/or
    ``cafile`` (the roots the server's certificate must chain to) for the
    ECDHE-ECDSA suites, with ``certfile``/``keyfile`` if the server asks for a
    client certificate. Raw public keys (RFC 7250): ``trusted_public_keys``
    (DER SubjectPublicKeyInfo bytes or key objects) and/or
    ``trusted_keys_file`` (PEM public keys) are the server keys to accept;
    ``keyfile`` with ``raw_public_key=True`` is the client's own key, sent
    without a certificate. ``server_name`` (default: ``host``) is what the
    server's certificate must name. ``ciphers`` lists IANA suite names in
    preference order (default: CCM_8 first); ``groups`` limits the ECDHE groups
    offered (29 x25519, 23 secp256r1). Raises :class:`HandshakeError` (or its
    subclass :class:`HandshakeTimeoutError`) when the handshake fails.

    ``connection_id=True`` offers a connection ID (RFC 9146) so the session
    survives a change of our address (a NAT rebinding) if the server agrees;
    the client asks for a zero-length CID of its own unless
    ``connection_id_length`` says otherwise.

    ``require_extended_master_secret=True`` refuses a server that does not
    negotiate the extended master secret (RFC 7627), with handshake_failure.

    ``resume``: an earlier session's :attr:`DtlsSession.resumption`, offered
    to the server (its ticket, else its session ID) for an abbreviated
    handshake (RFC 5246 §7.3, RFC 5077); a server that refuses it gets a full
    handshake. ``session.resumed`` tells which it was. ``session_tickets``:
    ask the server for a ticket (RFC 5077 §3.2), on by default.
    """
    kwargs: dict[str, Any] = {
        "initial_timeout": initial_timeout,
        "max_timeout": max_timeout,
        "max_retransmissions": max_retransmissions,
        "keylog": keylog,
        "backend": backend,
        "server_name": server_name if server_name is not None else host,
        "raw_public_key": raw_public_key,
        "connection_id_length": connection_id_length_for(
            connection_id, connection_id_length, is_client=True
        ),
        "require_extended_master_secret": require_extended_master_secret,
        "session_tickets": session_tickets,
    }
    if trusted_public_keys is not None:
        kwargs["trusted_public_keys"] = trusted_public_keys
    if mtu is not None:
        kwargs["mtu"] = mtu
    if groups is not None:
        kwargs["groups"] = tuple(groups)
    config = DtlsConfiguration.client(
        psk=psk,
        ciphers=ciphers,
        certfile=certfile,
        keyfile=keyfile,
        cafile=cafile,
        trusted_keys_file=trusted_keys_file,
        **kwargs,
    )
    loop = asyncio.get_running_loop()
    conn = DtlsConnection(config, peer=(host, port), resume=resume)
    transport, protocol = await open_datagram_endpoint(
        lambda: _ClientProtocol(conn), remote_addr=(host, port), local_addr=local_addr
    )
    # The session exists from the start so that data arriving in the same
    # datagram as the server's Finished is not lost.
    protocol.session = DtlsSession(conn, (host, port), protocol)
    try:
        conn.connect(loop.time())
        protocol.pump()
        if handshake_timeout is None:
            await protocol.handshake
        else:
            async with asyncio.timeout(handshake_timeout):
                await protocol.handshake
    except BaseException as exc:
        transport.close()
        if isinstance(exc, TimeoutError):
            raise HandshakeError(
                f"no handshake with {host}:{port} within {handshake_timeout} s"
            ) from None
        raise
    protocol.session.peer_address = transport.get_extra_info("peername")
    return protocol.session


__all__ = ["connect"]
