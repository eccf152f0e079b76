"""CoAP over DTLS ("coaps", RFC 7252 §9.1): the glue between the CoAP layer
and the dtlsfast DTLS endpoints.

On the server each established DTLS session is one CoAP peer: the session
object itself is the peer key, so a device that reboots and handshakes again
is a new peer, and everything CoAP kept for the old session (observations,
deduplication) is dropped when that session ends. Responses and Observe
notifications go through the session, hence to its current address: with
connection IDs (RFC 9146, ``connection_id=True``) an observation keeps working
after the device's NAT binding changes. On the client,
:func:`coaps_transport_factory` plugs a DTLS session in as the ``coaps``
transport of :class:`~dtlsfast.coap.client.CoapClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from dtlsfast.client import connect
from dtlsfast.coap.server import Attachment, CoapServer
from dtlsfast.coap.transport import ClientTransport, ClientTransportFactory
from dtlsfast.config import PskStore
from dtlsfast.exceptions import DtlsError
from dtlsfast.resumption.saved_session import SavedSession
from dtlsfast.server import DtlsServer, serve
from dtlsfast.session import DtlsSession

#: RFC 7252 §9.1.3.1: CoAP's DTLS profile mandates TLS_PSK_WITH_AES_128_CCM_8.
COAPS_DEFAULT_PORT = 5684


def _send_on_session(data: bytes, peer: Hashable) -> None:
    if isinstance(peer, DtlsSession) and not peer.closed:
        # A response to a session that closed meanwhile is dropped, as UDP would.
        with contextlib.suppress(DtlsError):
            peer.send_nowait(data)


class _CoapSessions:
    """Each established session feeds the CoAP server from the DTLS
    endpoint's callback: no task per session, no task switch per request."""

    def __init__(self, attachment: Attachment) -> None:
        self._attachment = attachment
        self._gone = attachment.peer_gone  # one bound method for every session

    def session_opened(self, session: DtlsSession) -> None:
        # Shared callables for every session: called as (data, session) and (session).
        session.set_receiver(self._attachment)
        session.set_close_callback(self._gone)


async def listen_dtls(
    coap: CoapServer,
    host: str = "::",
    port: int = COAPS_DEFAULT_PORT,
    *,
    psk_store: PskStore | None = None,
    identity_hint: str | bytes | None = None,
    answer_in_core: bool = True,
    **dtls_options: Any,
) -> DtlsServer:
    """Serve ``coap`` over DTLS on ``host:port``; returns the DTLS server
    (``.port``, ``.counters``, ``close()``). ``dtls_options`` go to
    :func:`dtlsfast.serve` (ciphers, mtu, limits, keylog, backend...).

    With ``answer_in_core`` (the default), resources that publish a
    representation (:meth:`Resource.published_representation`, e.g. ``light``)
    have their plain Confirmable GETs answered by the session table without
    entering Python; everything else goes through ``coap`` as usual."""
    attachment = coap.attach(_send_on_session)
    server = await serve(
        _CoapSessions(attachment),
        host,
        port,
        psk_store=psk_store,
        identity_hint=identity_hint,
        **dtls_options,
    )
    if server.state is not None:
        # The observations of restored sessions, and saving them from now on.
        server.state.attach_observations(attachment)
    if answer_in_core:
        coap.add_publisher(server.publish_response)
    return server


class _DtlsClientTransport:
    """A DTLS session as a CoAP client transport."""

    def __init__(self, session: DtlsSession, on_datagram: Callable[[bytes], None]) -> None:
        self._session = session
        self._reader = asyncio.get_running_loop().create_task(self._read(on_datagram))

    async def _read(self, on_datagram: Callable[[bytes], None]) -> None:
        async for datagram in self._session:
            on_datagram(datagram)

    def send(self, data: bytes) -> None:
        self._session.send_nowait(data)

    def close(self) -> None:
        self._reader.cancel()
        if not self._session.closed:
            asyncio.get_running_loop().create_task(self._session.close())


#: Servers whose last session a coaps transport factory keeps for resumption.
MAX_SAVED_SESSIONS = 64


def coaps_transport_factory(
    psk: tuple[str | bytes, str | bytes] | None = None,
    *,
    ciphers: Iterable[str | int] | None = None,
    resume: bool = True,
    **dtls_options: Any,
) -> ClientTransportFactory:
    """A ``coaps`` transport factory for :class:`CoapClient`.

    ``psk=(identity, key)`` and/or certificate options (``cafile``,
    ``certfile``, ``keyfile``, ``server_name``) go to :func:`dtlsfast.connect`.
    With ``resume`` (the default) each reconnection to a server offers the
    previous session to it (:attr:`DtlsSession.resumption`): an abbreviated
    handshake when the server agrees, a full one otherwise. The factory keeps
    the last session of up to :data:`MAX_SAVED_SESSIONS` servers, in memory.
    """
    saved: OrderedDict[tuple[str, int], SavedSession] = OrderedDict()

    async def factory(
        scheme: str, host: str, port: int, on_datagram: Callable[[bytes], None]
    ) -> ClientTransport:
        offer = saved.pop((host, port), None) if resume else None
        session = await connect(host, port, psk=psk, ciphers=ciphers, resume=offer, **dtls_options)
        if resume and (resumption := session.resumption) is not None:
            saved[(host, port)] = resumption
            while len(saved) > MAX_SAVED_SESSIONS:
                saved.popitem(last=False)
        return _DtlsClientTransport(session, on_datagram)

    return factory


__all__ = ["COAPS_DEFAULT_PORT", "coaps_transport_factory", "listen_dtls"]
