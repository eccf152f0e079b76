"""An established DTLS session as the application sees it: send, recv, close.

Shared by the asyncio client (:func:`dtlsfast.connect`) and server
(:func:`dtlsfast.serve`). Received application data waits in a bounded queue;
when the application does not keep up, the oldest datagrams are dropped and
counted, as UDP would.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from cryptography import x509

from dtlsfast.connection import DtlsConnection
from dtlsfast.exceptions import ConnectionClosedError, DtlsError
from dtlsfast.handshake.signatures import VerifyingKey
from dtlsfast.resumption.saved_session import SavedSession
from dtlsfast.settled_connection import SettledConnection

#: Received datagrams held for a slow reader before the oldest are dropped.
RECV_QUEUE_LIMIT = 256


class SessionEndpoint(Protocol):
    """What drives a session: the client's protocol, or the server's record of
    one peer. An object with methods rather than callbacks, so that a session
    costs no bound method or closure (a gateway holds 100,000)."""

    def send(self, session: DtlsSession, data: bytes, /) -> None:
        """Send one record of application data (raise the connection's error)."""

    def flush(self, session: DtlsSession, /) -> None:
        """Send what the connection queued and deliver its events."""


class _Closed:
    """The endpoint of a closed session: nothing is sent or flushed any more.
    Closing drops the real endpoint, which refers back to the session, so
    that the two are freed at once rather than by the cycle collector (a
    server that closes thousands of sessions a second spent a quarter of its
    time collecting them)."""

    def send(self, session: DtlsSession, data: bytes, /) -> None:
        raise ConnectionClosedError("the session is closed")

    def flush(self, session: DtlsSession, /) -> None:
        return None


_CLOSED = _Closed()


class DtlsSession:
    """One established association, driven by an endpoint.

    ``send`` and ``recv`` are datagram-oriented: one ``send`` is one record,
    one ``recv`` returns one record's payload.
    """

    # Slots: a gateway keeps one session object per peer.
    __slots__ = (
        "__weakref__",
        "_closed",
        "_conn",
        "_endpoint",
        "_error",
        "_on_close",
        "_queue",
        "_receiver",
        "_waiter",
        "dropped",
        "last_activity",
        "peer_address",
    )

    def __init__(
        self,
        connection: DtlsConnection | SettledConnection,
        peer_address: Hashable,
        endpoint: SessionEndpoint,
    ) -> None:
        #: The endpoint swaps in a SettledConnection once the session table
        #: holds the session's keys (a server's established session).
        self._conn = connection
        self.peer_address: Any = peer_address
        self._endpoint = endpoint
        self._queue: deque[bytes] | None = None  # created on first use
        self._waiter: asyncio.Future[None] | None = None
        self._error: DtlsError | None = None
        self._closed = False
        self.dropped = 0
        self.last_activity = 0.0
        self._receiver: Callable[[bytes, DtlsSession], None] | None = None
        self._on_close: Callable[[DtlsSession], None] | None = None

    @property
    def cipher_suite(self) -> str:
        """IANA name of the negotiated cipher suite."""
        suite = self._conn.cipher_suite
        return suite.name if suite is not None else ""

    @property
    def psk_identity(self) -> bytes | None:
        return self._conn.psk_identity

    @property
    def peer_certificates(self) -> list[x509.Certificate] | None:
        """The peer's verified certificate chain, leaf first, if it sent one."""
        return self._conn.peer_certificates

    @property
    def peer_public_key(self) -> VerifyingKey | None:
        """The peer's authenticated public key: its raw public key (RFC 7250)
        or its certificate's key; None for PSK sessions."""
        return self._conn.peer_public_key

    @property
    def resumption(self) -> SavedSession | None:
        """Client side: what to pass to ``connect(..., resume=...)`` to resume
        this session later (a session ID or ticket and the session's master
        secret), or None if the server offered neither. Still there after
        close() (a close_notify leaves a session resumable, RFC 5246 §7.2.1)."""
        conn = self._conn
        return conn.resumption if isinstance(conn, DtlsConnection) else None

    @property
    def resumed(self) -> str | None:
        """Client side: ``"ticket"`` or ``"session_id"`` if the handshake
        resumed an earlier session, None for a full one."""
        conn = self._conn
        return conn.resumed if isinstance(conn, DtlsConnection) else None

    @property
    def connection(self) -> DtlsConnection | SettledConnection:
        """The sans-I/O connection underneath (for counters and tests): on a
        server, the slim :class:`SettledConnection` once the session table
        holds the session's record state."""
        return self._conn

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_payload(self) -> int:
        return self._conn.max_payload

    async def send(self, data: bytes) -> None:
        """Send one datagram of application data."""
        self.send_nowait(data)

    def send_nowait(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosedError(
                "the session is closed" + (f": {self._error}" if self._error else "")
            )
        self._endpoint.send(self, data)

    async def recv(self) -> bytes:
        """The next datagram of application data; raises ConnectionClosedError
        once the session is closed and nothing is left."""
        while not self._queue:
            if self._closed:
                raise ConnectionClosedError(
                    "the session is closed" + (f": {self._error}" if self._error else "")
                ) from self._error
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        assert self._queue is not None
        return self._queue.popleft()

    async def close(self) -> None:
        """Send close_notify and close the session."""
        if self._closed:
            return
        self._conn.close()
        self._endpoint.flush(self)
        self._mark_closed(None)

    def abort(self) -> None:
        """Close at once, sending nothing to the peer."""
        if self._closed:
            return
        self._conn.abort()
        self._endpoint.flush(self)
        self._mark_closed(None)

    def set_receiver(self, receiver: Callable[[bytes, DtlsSession], None] | None) -> None:
        """Have each datagram of application data handed to ``receiver(data, session)``
        as it is decrypted, instead of queued for :meth:`recv`.

        For protocol layers that work on datagrams (CoAP): it saves a task
        switch per datagram. What was queued before is handed over first.
        ``receiver`` must not block; an exception it raises propagates to the
        endpoint's datagram callback. ``None`` goes back to queueing.
        """
        self._receiver = receiver
        while receiver is not None and self._queue:
            receiver(self._queue.popleft(), self)

    def set_close_callback(self, callback: Callable[[DtlsSession], None] | None) -> None:
        """Call ``callback(session)`` once when the session closes, however it
        closes (it runs at once if the session is already closed)."""
        if self._closed and callback is not None:
            callback(self)
            return
        self._on_close = callback

    def __aiter__(self) -> DtlsSession:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosedError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> DtlsSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- endpoint side -----------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        if self._receiver is not None:
            self._receiver(data, self)
            return
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= RECV_QUEUE_LIMIT:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(data)
        self._wake()

    def _mark_closed(self, error: DtlsError | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._wake()
        self._endpoint = _CLOSED
        self._receiver = None  # a protocol layer's, which may refer back to the session
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<DtlsSession {self.peer_address!r} {self.cipher_suite} {state}>"
