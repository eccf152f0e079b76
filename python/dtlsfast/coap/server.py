"""CoAP server: RFC 7252 message layer and request dispatch, RFC 7641 Observe,
RFC 7959 block-wise transfers, RFC 6690 ``/.well-known/core``.

Usage::

    server = CoapServer()

    @server.resource("light", observable=True, rt="light")
    class Light(Resource):
        async def render_get(self, request): ...

    await server.listen_udp("::", 5683)

Transport hook
--------------
The server core never touches a socket. It takes datagrams as
``(data: bytes, peer: Hashable)`` and answers through a ``send(data, peer)``
callable. Any number of transports can feed one server::

    receive = server.attach(send)      # send(data: bytes, peer) -> None
    receive(data, peer)                # for every datagram (DTLS: plaintext)
    receive.peer_gone(peer)            # the peer's session ended
    receive.detach()                   # the transport closed

``peer`` is whatever identifies the other end on that transport: the address
tuple for UDP, the session or its address for DTLS. State is keyed by
(attachment, peer), so the same address on two transports is two endpoints
(RFC 7252 §9.1.1: a coap and a coaps endpoint are different). ``send`` must
not block; exceptions it raises (``OSError``, ``DtlsError``) are counted and
dropped. :meth:`CoapServer.listen_udp` is this hook on a UDP socket; the DTLS
endpoint attaches the same way with ``session.send_nowait`` as ``send``, and
calls ``peer_gone`` when a session closes so that its observations, pending
Confirmable messages, Block1 buffers and deduplication entries go (RFC 7641
§3.6 does not require it, but a new session is a new security context).

Message layer (RFC 7252 §4, §5.2)
---------------------------------
A CON request is answered by a piggybacked ACK when its handler finishes
within ``separate_response_after`` seconds, else by an Empty ACK followed by a
separate CON response, retransmitted with exponential back-off. A NON request
gets a NON response. Duplicates by (endpoint, Message ID) within
EXCHANGE_LIFETIME (CON) or NON_LIFETIME (NON) are processed once: a duplicate
CON gets the same ACK again, a duplicate NON is silently ignored (§4.5). A
malformed CON is rejected with a Reset (§4.2); malformed NON, ACK and RST are
dropped. An Empty CON (ping) gets a Reset (§4.3). All state is bounded: see
:class:`CoapServerConfig`; drops are counted in :attr:`CoapServer.counters`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import socket
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

from dtlsfast.coap.block import BlockOption, block_slice, size_to_szx
from dtlsfast.coap.clock import Clock, LoopClock, TimerHandle
from dtlsfast.coap.eager import finish, is_pending, start_eagerly
from dtlsfast.coap.errors import BlockOptionError, CoapDecodeError
from dtlsfast.coap.exchange import ErrorResponse, Request, Response
from dtlsfast.coap.failure_log import FailureLog
from dtlsfast.coap.linkformat import well_known_core
from dtlsfast.coap.message import (
    Code,
    ContentFormat,
    Message,
    MessageType,
    OptionNumber,
    empty_ack,
    encode_uint,
    is_critical,
    reset,
)
from dtlsfast.coap.observe import Observation, ObserverRegistry, ObserveSequence, Remote
from dtlsfast.coap.params import TransmissionParameters
from dtlsfast.coap.reassembly import Block1Assembler
from dtlsfast.coap.reliability import DedupCache, MessageIdAllocator, Outcome, Retransmitter
from dtlsfast.coap.resource import METHOD_CODES, FunctionResource, Handler, Resource
from dtlsfast.coap.transport import UdpServerTransport
from dtlsfast.datagram_transport import open_datagram_endpoint
from dtlsfast.exceptions import ConfigurationError, DtlsError
from dtlsfast.pure.coap_answer import CoapAnswers

log = logging.getLogger("dtlsfast.coap")

Send = Callable[[bytes, Hashable], None]
T = TypeVar("T")

WELL_KNOWN_CORE = ".well-known/core"

#: (min length, max length, repeatable) of the options the server understands
#: (RFC 7252 §5.10, RFC 7641 §2, RFC 7959 §2.1, RFC 7967 §2). An occurrence
#: outside these is treated as unrecognized (§5.4.3, §5.4.5). If-Match and
#: If-None-Match are not implemented, so requests carrying them get 4.02.
_KNOWN_OPTIONS: dict[int, tuple[int, int, bool]] = {
    OptionNumber.URI_HOST: (1, 255, False),
    OptionNumber.ETAG: (1, 8, True),
    OptionNumber.OBSERVE: (0, 3, False),
    OptionNumber.URI_PORT: (0, 2, False),
    OptionNumber.URI_PATH: (0, 255, True),
    OptionNumber.CONTENT_FORMAT: (0, 2, False),
    OptionNumber.MAX_AGE: (0, 4, False),
    OptionNumber.URI_QUERY: (0, 255, True),
    OptionNumber.ACCEPT: (0, 2, False),
    OptionNumber.BLOCK2: (0, 3, False),
    OptionNumber.BLOCK1: (0, 3, False),
    OptionNumber.SIZE2: (0, 4, False),
    OptionNumber.PROXY_URI: (1, 1034, False),
    OptionNumber.PROXY_SCHEME: (1, 255, False),
    OptionNumber.SIZE1: (0, 4, False),
    OptionNumber.NO_RESPONSE: (0, 1, False),
}
_BODY_METHODS = frozenset({Code.POST, Code.PUT, Code.FETCH, Code.PATCH, Code.IPATCH})
#: Shares a shared resource's new state with sibling servers; may return a
#: future done once they all hold it (:meth:`CoapServer.add_replicator`).
Replicator = Callable[[str, bytes], "asyncio.Future[None] | None"]
#: Methods that change nothing (RFC 7252 §5.1, RFC 8132 §2).
_SAFE = frozenset({Code.GET, Code.FETCH})

#: No-Response bits per response class (RFC 7967 §2.1).
_NO_RESPONSE_BITS = {2: 0x02, 4: 0x08, 5: 0x10}


@dataclass(frozen=True)
class CoapServerConfig:
    """Timing and the bound of every per-peer and total structure."""

    transmission: TransmissionParameters = field(default_factory=TransmissionParameters)
    #: Send an Empty ACK and later a separate response when the handler takes
    #: longer than this (RFC 7252 §5.2.2); must be below ACK_TIMEOUT.
    separate_response_after: float = 0.5
    #: Largest Block2 size served (16..1024); a client may ask for smaller.
    block_size: int = 1024
    #: Largest request body reassembled from Block1 blocks.
    max_body_size: int = 64 * 1024
    dedup_per_peer: int = 256
    dedup_total: int = 16384
    pending_con_per_peer: int = 16
    pending_con_total: int = 4096
    block1_per_peer: int = 4
    block1_total: int = 256
    observers_per_resource: int = 256
    observers_per_peer: int = 32
    observers_total: int = 8192
    #: Handlers running at once; beyond it requests get 5.03 (Max-Age 1).
    max_handler_tasks: int = 1024
    #: Send every notification as CON; otherwise NON, with a CON at least this
    #: often per observer (RFC 7641 §4.5: at least every 24 hours).
    notify_confirmable: bool = False
    notify_con_interval: float = 24 * 3600.0
    #: Remembered NON notification Message IDs, to match a Reset (§3.6).
    recent_non_notifications: int = 4096
    #: A request that changed a shared resource is answered once the sibling
    #: servers hold the new state (see :meth:`CoapServer.add_replicator`), or
    #: after this many seconds when they do not confirm it.
    shared_state_wait: float = 1.0

    def __post_init__(self) -> None:
        if not 16 <= self.block_size <= 1024 or self.block_size & (self.block_size - 1):
            raise ConfigurationError("block_size must be a power of two in 16..1024")
        if not 0 < self.separate_response_after < self.transmission.ack_timeout:
            raise ConfigurationError(
                "separate_response_after must be positive and below ACK_TIMEOUT"
            )
        if not self.shared_state_wait >= 0:
            raise ConfigurationError("shared_state_wait must be 0 or more")
        for name in (
            "dedup_per_peer",
            "dedup_total",
            "pending_con_per_peer",
            "pending_con_total",
            "block1_per_peer",
            "block1_total",
            "observers_per_resource",
            "observers_per_peer",
            "observers_total",
            "max_handler_tasks",
            "recent_non_notifications",
        ):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")


class _Exchange:
    """A request being answered."""

    __slots__ = (
        "acked",
        "block1",
        "block2",
        "done",
        "entry",
        "message",
        "observe_register",
        "remote",
        "timer",
    )

    def __init__(self, remote: Remote, message: Message) -> None:
        self.remote = remote
        self.message = message
        self.entry: Any = None
        self.timer: TimerHandle | None = None
        self.acked = False
        self.done = False
        self.observe_register = False
        self.block1: BlockOption | None = None
        self.block2: BlockOption | None = None


class _NotifyState:
    __slots__ = ("dirty", "task")

    def __init__(self) -> None:
        self.dirty = False
        self.task: asyncio.Task[None] | None = None


class Attachment:
    """The receive side of one transport attached to a server."""

    def __init__(self, server: CoapServer, attachment_id: int) -> None:
        self._server = server
        self.id = attachment_id

    def __call__(self, data: bytes, peer: Hashable) -> None:
        self._server._datagram((self.id, peer), data)

    def peer_gone(self, peer: Hashable) -> None:
        """The peer's session ended: forget everything about it."""
        self._server._remote_gone((self.id, peer))

    def detach(self) -> None:
        self._server._detach(self.id)

    # The saved state (dtlsfast.store.server_state.ObservationSource).

    def export_observations(self) -> list[tuple[Hashable, bytes, str, bytes]]:
        """This transport's observations as ``(peer, token, path, encoded request)``."""
        return self._server._export_observations(self.id)

    def restore_observations(
        self, observations: Iterable[tuple[Hashable, bytes, str, bytes]]
    ) -> int:
        """Register saved observations again (their peers restored); how many."""
        return self._server._restore_observations(self.id, observations)

    @property
    def observe_value(self) -> int:
        """The server's last Observe value (RFC 7641 §4.4)."""
        return self._server._sequence.value

    @observe_value.setter
    def observe_value(self, value: int) -> None:
        self._server._sequence.value = value


class CoapServer:
    """Resources, the message layer and the observers of one CoAP server."""

    def __init__(
        self,
        config: CoapServerConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or CoapServerConfig()
        self._params = self.config.transmission
        self._clock: Clock = clock or LoopClock()
        self._rng = rng or random.Random()
        self.counters: Counter[str] = Counter()
        self._resources: dict[str, Resource] = {}
        self._hooks: dict[str, Callable[[], None]] = {}
        self._changed_hooks: dict[str, Callable[[], None]] = {}
        self._replicators: list[Replicator] = []
        self._unsettled: dict[str, asyncio.Future[None]] = {}
        self._publishers: list[Callable[[str, bytes | None], None]] = []
        #: The published answers themselves, once there is a publisher: GETs
        #: that reach Python are answered as the session table answers them.
        self._answers: CoapAnswers | None = None
        self._senders: dict[int, Send] = {}
        self._attachment_ids = itertools.count(1)
        self._listeners: list[UdpServerTransport] = []
        cfg = self.config
        self._mids = MessageIdAllocator(self._rng, max_remotes=max(4096, cfg.dedup_total))
        self._retx = Retransmitter(
            self._clock,
            self._params,
            self._rng,
            self._send,
            per_remote=cfg.pending_con_per_peer,
            total=cfg.pending_con_total,
            counters=self.counters,
        )
        self._dedup = DedupCache(
            per_remote=cfg.dedup_per_peer, total=cfg.dedup_total, counters=self.counters
        )
        self._block1 = Block1Assembler(
            per_remote=cfg.block1_per_peer,
            total=cfg.block1_total,
            max_body=cfg.max_body_size,
            counters=self.counters,
        )
        self._observers = ObserverRegistry(
            per_resource=cfg.observers_per_resource,
            per_remote=cfg.observers_per_peer,
            total=cfg.observers_total,
            counters=self.counters,
        )
        self._sequence = ObserveSequence(self._rng.randrange(1 << 16))
        self._recent_non: OrderedDict[tuple[Remote, int], Observation] = OrderedDict()
        self._notify_states: dict[str, _NotifyState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._szx = size_to_szx(cfg.block_size)
        self._closed = False
        #: Handler failures: one log line per resource per minute at most.
        self._failures = FailureLog(log)

    # -- resources -------------------------------------------------------

    @property
    def resources(self) -> dict[str, Resource]:
        """Registered resources by path (a copy)."""
        return dict(self._resources)

    def add_resource(self, path: str, resource: Resource) -> Resource:
        """Serve ``resource`` at ``path`` ("light", "sensors/temp")."""
        path = _normalize(path)
        if path == WELL_KNOWN_CORE:
            raise ConfigurationError("/.well-known/core is served by the server itself")
        if path in self._resources:
            self.remove_resource(path)
        hook = partial(self.notify, path)
        resource.bind_notifier(hook)
        self._hooks[path] = hook
        if resource.shared:
            changed = partial(self._state_changed, path)
            resource.bind_changed(changed)
            self._changed_hooks[path] = changed
        self._resources[path] = resource
        self._republish(path)
        return resource

    def remove_resource(self, path: str) -> None:
        """Stop serving ``path``; its observers get a 4.04 notification."""
        path = _normalize(path)
        resource = self._resources.pop(path, None)
        if resource is None:
            return
        resource.unbind_notifier(self._hooks.pop(path))
        changed = self._changed_hooks.pop(path, None)
        if changed is not None:
            resource.unbind_changed(changed)
        self._republish(path)
        self.notify(path)

    def resource(
        self,
        path: str,
        *,
        methods: Iterable[str] = ("GET",),
        observable: bool | None = None,
        rt: str | None = None,
        if_: str | None = None,
        ct: Iterable[int] | None = None,
        title: str | None = None,
    ) -> Callable[[T], T]:
        """Decorator: register a :class:`Resource` subclass (instantiated with
        no arguments) or an ``async def handler(request) -> Response`` for
        ``methods`` at ``path``."""

        def decorator(target: T) -> T:
            if isinstance(target, type) and issubclass(target, Resource):
                res: Resource = target()
            elif isinstance(target, Resource):
                res = target
            elif callable(target):
                existing = self._resources.get(_normalize(path))
                fres = existing if isinstance(existing, FunctionResource) else FunctionResource()
                for name in methods:
                    code = METHOD_CODES.get(name.lower())
                    if code is None:
                        raise ConfigurationError(f"unknown method {name!r}")
                    handler = cast(Handler, target)
                    fres.handlers[code] = handler
                res = fres
            else:
                raise ConfigurationError("@resource decorates a Resource class or a function")
            if observable is not None:
                res.observable = observable
            if rt is not None:
                res.rt = rt
            if if_ is not None:
                res.if_ = if_
            if ct is not None:
                res.ct = tuple(ct)
            if title is not None:
                res.title = title
            if self._resources.get(_normalize(path)) is not res:
                self.add_resource(path, res)
            return target

        return decorator

    def get(self, path: str, **attrs: Any) -> Callable[[T], T]:
        return self.resource(path, methods=("GET",), **attrs)

    def put(self, path: str, **attrs: Any) -> Callable[[T], T]:
        return self.resource(path, methods=("PUT",), **attrs)

    def post(self, path: str, **attrs: Any) -> Callable[[T], T]:
        return self.resource(path, methods=("POST",), **attrs)

    def delete(self, path: str, **attrs: Any) -> Callable[[T], T]:
        return self.resource(path, methods=("DELETE",), **attrs)

    # -- transports ------------------------------------------------------

    def attach(self, send: Send) -> Attachment:
        """Attach a transport; returns its receive callback (see module doc)."""
        aid = next(self._attachment_ids)
        self._senders[aid] = send
        return Attachment(self, aid)

    def _detach(self, aid: int) -> None:
        if self._senders.pop(aid, None) is None:
            return
        for remote in {o.remote for o in self._observers_all() if o.remote[0] == aid}:
            self._remote_gone(remote)

    async def listen_udp(
        self, host: str = "::", port: int = 5683, *, sock: socket.socket | None = None
    ) -> UdpServerTransport:
        """Serve plain CoAP (coap://) on a UDP socket; port 0 picks a free one.
        ``sock``: a bound socket to serve instead (a worker's share of a port)."""
        listener = UdpServerTransport()
        attachment = self.attach(listener.sendto)
        listener.on_datagram = attachment
        try:
            await open_datagram_endpoint(lambda: listener, local_addr=(host, port), sock=sock)
        except BaseException:
            attachment.detach()
            raise
        self._listeners.append(listener)
        return listener

    def peer_gone(self, peer: Hashable) -> None:
        """Forget ``peer`` on every transport (its session ended)."""
        for aid in list(self._senders):
            self._remote_gone((aid, peer))

    def _remote_gone(self, remote: Remote) -> None:
        for obs in self._observers.for_remote(remote):
            self._observers.remove(obs)
            self.counters["observers_peer_gone"] += 1
        self._retx.cancel_remote(remote)
        self._dedup.remove_remote(remote)
        self._block1.remove_remote(remote)

    def _send(self, remote: Hashable, data: bytes) -> None:
        aid, peer = cast(Remote, remote)
        sender = self._senders.get(aid)
        if sender is None:
            self.counters["send_no_transport"] += 1
            return
        try:
            sender(data, peer)
        except (OSError, DtlsError) as exc:
            self.counters["send_errors"] += 1
            log.debug("CoAP send to %r failed: %s", peer, exc)
            return
        self.counters["sent"] += 1

    # -- lifecycle -------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Sizes of the bounded structures, for monitoring."""
        return {
            "dedup_entries": len(self._dedup),
            "pending_con": len(self._retx),
            "block1_buffers": len(self._block1),
            "observers": len(self._observers),
            "handler_tasks": len(self._tasks),
        }

    def observers(self, path: str | None = None) -> list[Observation]:
        """Current observations, of one path or all."""
        if path is None:
            return self._observers_all()
        return self._observers.for_path(_normalize(path))

    def _observers_all(self) -> list[Observation]:
        return self._observers.all()

    def _export_observations(self, aid: int) -> list[tuple[Hashable, bytes, str, bytes]]:
        return [
            (obs.remote[1], obs.token, obs.path, obs.request_data)
            for obs in self._observers.all()
            if obs.remote[0] == aid
        ]

    def _restore_observations(
        self, aid: int, observations: Iterable[tuple[Hashable, bytes, str, bytes]]
    ) -> int:
        count = 0
        now = self._clock.time()
        for peer, token, path, request in observations:
            try:
                Message.decode(request)
            except CoapDecodeError:
                self.counters["observers_not_restored"] += 1
                continue
            if self._observers.add(Observation((aid, peer), token, path, request, now)):
                count += 1
        self.counters["observers_restored"] += count
        return count

    def close(self) -> None:
        """Stop: close UDP sockets, cancel handlers and retransmissions."""
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            listener.close()
        for task in list(self._tasks):
            task.cancel()
        self._retx.close()
        self._observers.clear()
        self._recent_non.clear()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for listener in self._listeners:
            await listener.closed

    async def __aenter__(self) -> CoapServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    # -- receive ---------------------------------------------------------

    def _datagram(self, remote: Remote, data: bytes) -> None:
        if self._closed:
            return
        self.counters["received"] += 1
        if self._answers is not None and (answer := self._answers.answer(data)) is not None:
            # A plain GET of a published representation, answered exactly as
            # the DTLS session table answers it (coap_answer.rs) for sessions
            # that joined it: the representation is idempotent by contract,
            # so, as RFC 7252 §4.5 allows, its GETs are not deduplicated and a
            # gateway keeps no exchange state for them.
            self.counters["published_answered"] += 1
            self._send(remote, answer)
            return
        try:
            msg = Message.decode(data)
        except CoapDecodeError as exc:
            self.counters["decode_errors"] += 1
            if exc.should_reset and exc.message_id is not None:
                self._reject(remote, exc.message_id)
            return
        mtype = msg.type
        if mtype is MessageType.ACK:
            if not self._retx.resolve(remote, msg.message_id, Outcome.ACK):
                self.counters["unmatched_ack"] += 1
        elif mtype is MessageType.RST:
            self._on_reset(remote, msg.message_id)
        elif msg.is_request:
            self._on_request(remote, msg)
        elif mtype is MessageType.CON:
            # A ping (Empty CON, §4.3) or a response we never asked for.
            self._reject(remote, msg.message_id)
        else:
            self.counters["unexpected_non"] += 1

    def _reject(self, remote: Remote, message_id: int) -> None:
        self.counters["rst_sent"] += 1
        self._send(remote, reset(message_id))

    def _on_reset(self, remote: Remote, message_id: int) -> None:
        if self._retx.resolve(remote, message_id, Outcome.RESET):
            return
        obs = self._recent_non.pop((remote, message_id), None)
        if obs is not None and self._observers.remove(obs):
            self.counters["observers_reset"] += 1
        else:
            self.counters["unmatched_rst"] += 1

    def _on_request(self, remote: Remote, msg: Message) -> None:
        now = self._clock.time()
        entry = self._dedup.get(remote, msg.message_id, now)
        if entry is not None:
            self.counters["duplicates"] += 1
            if msg.type is MessageType.CON:
                if entry.reply is not None:
                    self._send(remote, entry.reply)
                elif isinstance(entry.owner, _Exchange):
                    # Still working on it: acknowledge now, answer separately.
                    self._send_empty_ack(entry.owner)
            return
        lifetime = (
            self._params.exchange_lifetime
            if msg.type is MessageType.CON
            else self._params.non_lifetime
        )
        entry = self._dedup.add(remote, msg.message_id, now, lifetime)
        ex = _Exchange(remote, msg)
        ex.entry = entry
        entry.owner = ex
        try:
            prepared = self._prepare(ex, now)
        except ErrorResponse as err:
            self._respond(ex, err.response())
            return
        if prepared is None:
            return
        resource, request = prepared
        if len(self._tasks) >= self.config.max_handler_tasks:
            self.counters["handlers_rejected"] += 1
            busy = Response(Code.SERVICE_UNAVAILABLE, b"busy")
            busy.options.append((OptionNumber.MAX_AGE, encode_uint(1)))
            self._respond(ex, busy)
            return
        # Most handlers answer at once: run the first step here and answer
        # piggybacked, with no task and no separate-response timer.
        render = self._render(resource, request)
        response, waiting_on = start_eagerly(render)
        if not is_pending(response):
            self._respond(ex, response)
            return
        if msg.type is MessageType.CON:
            ex.timer = self._clock.call_later(
                self.config.separate_response_after, partial(self._send_empty_ack, ex)
            )
        self._spawn(self._finish_handler(ex, render, waiting_on))

    def _prepare(self, ex: _Exchange, now: float) -> tuple[Resource, Request] | None:
        """Checks before the handler runs; raises ErrorResponse to answer early.
        None means the request was answered (2.31 Continue, /.well-known/core)."""
        msg = ex.message
        self._check_options(msg)
        if msg.get_option(OptionNumber.PROXY_URI) or msg.get_option(OptionNumber.PROXY_SCHEME):
            raise ErrorResponse(Code.PROXYING_NOT_SUPPORTED, "not a proxy")
        try:
            ex.block2 = msg.block2
            ex.block1 = msg.block1
        except BlockOptionError as exc:
            raise ErrorResponse(Code.BAD_REQUEST, str(exc)) from None
        path = msg.path
        if path == WELL_KNOWN_CORE:
            if msg.code != Code.GET:
                raise ErrorResponse(Code.METHOD_NOT_ALLOWED)
            body = well_known_core(self._resources.items(), msg.uri_query)
            self._respond(ex, Response(Code.CONTENT, body, ContentFormat.LINK_FORMAT))
            return None
        resource = self._resources.get(path)
        if resource is None:
            raise ErrorResponse(Code.NOT_FOUND)
        if msg.code not in resource.methods():
            raise ErrorResponse(Code.METHOD_NOT_ALLOWED)
        observe = msg.observe
        if observe is not None and msg.code == Code.GET:
            if observe == 0 and resource.observable and (ex.block2 is None or ex.block2.num == 0):
                ex.observe_register = True
            elif observe == 1:
                old = self._observers.get(ex.remote, msg.token)
                if old is not None and self._observers.remove(old):
                    self.counters["observers_deregistered"] += 1
        body = msg.payload
        if msg.code in _BODY_METHODS:
            cf = msg.content_format
            accepted = resource.accepted_formats
            if accepted is not None and cf is not None and cf not in accepted:
                raise ErrorResponse(Code.UNSUPPORTED_CONTENT_FORMAT)
            if ex.block1 is not None:
                assembled = self._feed_block1(ex, now)
                if assembled is None:
                    return None
                body = assembled
        else:
            ex.block1 = None
        return resource, Request(msg, ex.remote[1], body)

    def _check_options(self, msg: Message) -> None:
        seen: set[int] = set()
        bad: list[int] = []
        for number, value in msg.options:
            spec = _KNOWN_OPTIONS.get(number)
            if (
                spec is None
                or not spec[0] <= len(value) <= spec[1]
                or (number in seen and not spec[2])
            ):
                if is_critical(number):
                    self.counters["bad_option"] += 1
                    raise ErrorResponse(Code.BAD_OPTION, f"unrecognized critical option {number}")
                bad.append(number)
            seen.add(number)
        if bad:
            # Unrecognized elective options are silently ignored (§5.4.1).
            keep: list[tuple[int, bytes]] = []
            seen.clear()
            for number, value in msg.options:
                spec = _KNOWN_OPTIONS.get(number)
                if (
                    spec is not None
                    and spec[0] <= len(value) <= spec[1]
                    and (spec[2] or number not in seen)
                ):
                    keep.append((number, value))
                seen.add(number)
            msg.options = keep

    def _feed_block1(self, ex: _Exchange, now: float) -> bytes | None:
        msg = ex.message
        block = ex.block1
        assert block is not None
        size1 = msg.size1
        too_large = ErrorResponse(Code.REQUEST_ENTITY_TOO_LARGE, "body too large")
        try:
            if size1 is not None and size1 > self._block1.max_body:
                raise too_large
            # Blocks larger than ours are accepted as they come (§2.3 allows
            # the server to ask for smaller ones; it need not).
            body = self._block1.feed(
                (ex.remote, msg.code, msg.path),
                block,
                msg.payload,
                now,
                self._params.exchange_lifetime,
            )
        except ErrorResponse as err:
            response = err.response()
            if err.code == Code.REQUEST_ENTITY_TOO_LARGE:
                response.options.append((OptionNumber.SIZE1, encode_uint(self._block1.max_body)))
            ex.block1 = None
            self._respond(ex, response)
            return None
        if body is None:
            self._respond(ex, Response(Code.CONTINUE))
            return None
        return body

    # -- handlers --------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _render(self, resource: Resource, request: Request) -> Response:
        try:
            response = await resource.render(request)
        except ErrorResponse as err:
            return err.response()
        except Exception as exc:
            self.counters["handler_errors"] += 1
            self._failures.failed(request.path, "raised", self._clock.time(), exc)
            return Response(Code.INTERNAL_SERVER_ERROR, b"internal server error")
        if not isinstance(response, Response):
            self.counters["handler_errors"] += 1
            returned = f"returned a {type(response).__name__}, not a Response"
            self._failures.failed(request.path, returned, self._clock.time())
            return Response(Code.INTERNAL_SERVER_ERROR, b"internal server error")
        if resource.shared and self._unsettled and request.method not in _SAFE:
            await self._wait_settled(request.path)
        return response

    async def _finish_handler(
        self, ex: _Exchange, render: Coroutine[Any, Any, Response], waiting_on: Any
    ) -> None:
        response = await finish(render, waiting_on)
        if not self._closed:
            self._respond(ex, response)

    def _send_empty_ack(self, ex: _Exchange) -> None:
        if ex.done or ex.acked:
            if ex.acked and not ex.done:
                self._send(ex.remote, empty_ack(ex.message.message_id))
            return
        ex.acked = True
        data = empty_ack(ex.message.message_id)
        ex.entry.reply = data
        self.counters["separate_responses"] += 1
        self._send(ex.remote, data)

    # -- responses -------------------------------------------------------

    def _respond(self, ex: _Exchange, response: Response) -> None:
        if ex.done:
            return
        ex.done = True
        if ex.timer is not None:
            ex.timer.cancel()
        entry = ex.entry
        entry.owner = None
        request = ex.message
        msg = self._response_message(ex, response)
        if ex.observe_register and response.code in (Code.CONTENT, Code.VALID):
            # One str per path for all its observers, not one each.
            path = sys.intern(request.path)
            obs = Observation(ex.remote, request.token, path, request.encode(), self._clock.time())
            if self._observers.add(obs):
                msg.add_option(OptionNumber.OBSERVE, self._sequence.next())
                self.counters["observers_registered"] += 1
        no_response = request.get_uint(OptionNumber.NO_RESPONSE)
        suppress = bool(no_response and no_response & _NO_RESPONSE_BITS.get(msg.code >> 5, 0))
        if request.type is MessageType.CON:
            if not ex.acked:
                if suppress:
                    data = empty_ack(request.message_id)
                else:
                    msg.type = MessageType.ACK
                    msg.message_id = request.message_id
                    data = msg.encode()
                entry.reply = data
                self._send(ex.remote, data)
                return
            if suppress:
                return
            msg.type = MessageType.CON
            msg.message_id = self._mids.next(ex.remote)
            on_result = partial(self._separate_result, ex.remote, request.token)
            if not self._retx.start(ex.remote, msg.message_id, msg.encode(), on_result):
                self.counters["responses_dropped"] += 1
            return
        if suppress:
            return
        msg.type = MessageType.NON
        msg.message_id = self._mids.next(ex.remote)
        self._send(ex.remote, msg.encode())

    def _separate_result(self, remote: Remote, token: bytes, outcome: Outcome) -> None:
        if outcome in (Outcome.RESET, Outcome.TIMEOUT):
            obs = self._observers.get(remote, token)
            if obs is not None and self._observers.remove(obs):
                self.counters["observers_reset"] += 1

    def _response_message(self, ex: _Exchange, response: Response) -> Message:
        request = ex.message
        msg = Message(MessageType.ACK, response.code, 0, request.token, response.all_options())
        if ex.block1 is not None:
            b1 = ex.block1
            more = response.code == Code.CONTINUE
            msg.add_option(OptionNumber.BLOCK1, BlockOption(b1.num, more, b1.szx).encode())
        self._apply_block2(msg, response, ex.block2, request.size2 is not None)
        return msg

    def _apply_block2(
        self, msg: Message, response: Response, wanted: BlockOption | None, size2: bool
    ) -> None:
        payload = response.payload
        szx = self._szx if wanted is None else min(self._szx, wanted.szx)
        size = 1 << (szx + 4)
        if not response.is_success or (wanted is None and len(payload) <= size):
            msg.payload = payload
            return
        num = 0 if wanted is None else wanted.offset // size
        sliced = block_slice(payload, num, szx)
        if sliced is None:
            msg.code = Code.BAD_OPTION
            msg.options = []
            msg.payload = b"block number beyond the representation"
            return
        chunk, block = sliced
        msg.payload = chunk
        msg.add_option(OptionNumber.BLOCK2, block.encode())
        if block.more or num:
            if msg.etag is None:
                msg.add_option(OptionNumber.ETAG, hashlib.blake2s(payload, digest_size=4).digest())
            if size2 or num == 0:
                msg.set_option(OptionNumber.SIZE2, len(payload))

    # -- observe ---------------------------------------------------------

    # -- shared state (resources with ``shared = True``) -------------------

    def add_replicator(self, replicate: Replicator) -> None:
        """Share state with sibling servers: ``replicate(path, state)`` gets
        :meth:`Resource.export_state` of a shared resource each time a request
        changes it (:meth:`Resource.changed`); the siblings take it with
        :meth:`import_state`. It must not block; it may return a future that
        is done once every sibling holds the state: the request is answered
        then (or after ``shared_state_wait``), so that a client's next
        request sees its change whichever sibling serves it."""
        self._replicators.append(replicate)

    def remove_replicator(self, replicate: Replicator) -> None:
        if replicate in self._replicators:
            self._replicators.remove(replicate)

    def shared_states(self) -> dict[str, bytes]:
        """The state of every shared resource, by path."""
        return {path: self._resources[path].export_state() for path in self._changed_hooks}

    def import_state(self, path: str, data: bytes, *, notify: bool = True) -> bool:
        """Give the shared resource at ``path`` a sibling's state and notify
        its observers here, with this server's Observe numbers (RFC 7641
        §4.2, §4.4). False (counted, nothing changed) when ``path`` is no
        shared resource or ``data`` no state of it."""
        path = _normalize(path)
        resource = self._resources.get(path) if path in self._changed_hooks else None
        if resource is None:
            self.counters["state_unknown_path"] += 1
            return False
        try:
            resource.import_state(bytes(data))
        except (ValueError, TypeError):
            self.counters["state_invalid"] += 1
            return False
        self.counters["state_imported"] += 1
        if notify:
            self.notify(path)
        else:
            self._republish(path)
        return True

    def _state_changed(self, path: str) -> None:
        if not self._replicators:
            return
        resource = self._resources.get(path)
        if resource is None:
            return
        state = resource.export_state()
        self.counters["state_shared"] += 1
        for replicate in self._replicators:
            done = replicate(path, state)
            if done is not None and not done.done():
                self._unsettled[path] = done
                done.add_done_callback(partial(self._settled, path))

    def _settled(self, path: str, done: asyncio.Future[None]) -> None:
        if self._unsettled.get(path) is done:
            del self._unsettled[path]

    async def _wait_settled(self, path: str) -> None:
        """Until the latest change of ``path`` is held by every sibling."""
        waiting = self._unsettled.get(_normalize(path))
        if waiting is None:
            return
        await asyncio.wait((waiting,), timeout=self.config.shared_state_wait)
        if not waiting.done():
            self.counters["state_unsettled"] += 1

    # -- published responses (answered below Python) ---------------------

    def add_publisher(self, publish: Callable[[str, bytes | None], None]) -> None:
        """Let a transport answer plain GETs itself (the DTLS endpoint's
        session table does, in Rust): ``publish(path, response)`` gets the
        encoded response of every resource with a
        :meth:`Resource.published_representation`, again whenever the
        resource notifies a change, and None when it is withdrawn."""
        self._publishers.append(publish)
        if self._answers is None:
            self._answers = CoapAnswers()
        for path in self._resources:
            self._republish(path)

    def remove_publisher(self, publish: Callable[[str, bytes | None], None]) -> None:
        if publish in self._publishers:
            self._publishers.remove(publish)
        if not self._publishers:
            self._answers = None

    def _republish(self, path: str) -> None:
        if not self._publishers:
            return
        response = None if self._closed else self._published_response(path)
        if self._answers is not None:
            try:
                self._answers.publish(path.encode(), response)
            except ConfigurationError:
                self._answers.publish(path.encode(), None)  # past the limits: not answered early
        for publish in self._publishers:
            publish(path, response)

    def _published_response(self, path: str) -> bytes | None:
        """Code, options and payload of the piggybacked answer to a plain GET
        of ``path``, exactly as :meth:`_respond` would encode them."""
        resource = self._resources.get(path)
        if resource is None:
            return None
        response = resource.published_representation()
        if response is None or not response.is_success:
            return None
        if len(response.payload) > 1 << (self._szx + 4):
            return None  # block-wise: Python's business
        msg = Message(MessageType.ACK, response.code, 0, b"", response.all_options())
        msg.payload = response.payload
        encoded = msg.encode()
        return encoded[1:2] + encoded[4:]

    def notify(self, path: str) -> None:
        """Send the current state of ``path`` to its observers (RFC 7641 §4.2).

        Calls while a round of notifications is running coalesce into one
        more round, so observers always end with the latest state."""
        path = _normalize(path)
        self._republish(path)
        if self._closed or not self._observers.for_path(path):
            return
        state = self._notify_states.get(path)
        if state is not None:
            state.dirty = True
            return
        state = self._notify_states[path] = _NotifyState()
        self._spawn(self._notify_rounds(path, state))

    async def _notify_rounds(self, path: str, state: _NotifyState) -> None:
        try:
            while True:
                state.dirty = False
                await self._notify_round(path)
                if not state.dirty or self._closed:
                    return
        finally:
            del self._notify_states[path]

    async def _notify_round(self, path: str) -> None:
        resource = self._resources.get(path)
        rendered: dict[tuple[int | None, tuple[str, ...]], Response] = {}
        # One decode per distinct request (observers differ in token and MID).
        requests: dict[bytes, Message] = {}
        for obs in self._observers.for_path(path):
            shape = obs.request_shape
            request = requests.get(shape)
            if request is None:
                request = requests[shape] = obs.request
            if resource is None:
                response = Response(Code.NOT_FOUND)
            else:
                key = (request.accept, tuple(request.uri_query))
                cached = rendered.get(key)
                if cached is None:
                    cached = await self._render(resource, Request(request, obs.remote[1], b""))
                    rendered[key] = cached
                response = cached
            if self._closed or self._observers.get(obs.remote, obs.token) is not obs:
                continue
            self._send_notification(obs, response, request)

    def _send_notification(self, obs: Observation, response: Response, request: Message) -> None:
        msg = Message(MessageType.NON, response.code, 0, obs.token, response.all_options())
        final = response.code not in (Code.CONTENT, Code.VALID)
        try:
            wanted = request.block2
        except BlockOptionError:
            wanted = None
        if wanted is not None:
            wanted = BlockOption(0, False, wanted.szx)
        self._apply_block2(msg, response, wanted, False)
        if final:
            # A non-2.xx notification ends the observation (RFC 7641 §4.2).
            self._observers.remove(obs)
            self.counters["observers_ended"] += 1
        else:
            msg.add_option(OptionNumber.OBSERVE, self._sequence.next())
        now = self._clock.time()
        confirmable = (
            self.config.notify_confirmable
            or obs.pending_mid is not None
            or now - obs.last_con >= self.config.notify_con_interval
        )
        msg.message_id = self._mids.next(obs.remote)
        self.counters["notifications"] += 1
        if confirmable:
            msg.type = MessageType.CON
            data = msg.encode()
            if obs.pending_mid is not None and self._retx.replace(
                obs.remote, obs.pending_mid, msg.message_id, data
            ):
                # §4.5.2: the new state replaces the one still in flight.
                obs.pending_mid = msg.message_id
                return
            if self._retx.start(
                obs.remote, msg.message_id, data, partial(self._notification_result, obs)
            ):
                obs.pending_mid = msg.message_id
                return
            msg.type = MessageType.NON
        self._send(obs.remote, msg.encode())
        key = (obs.remote, msg.message_id)
        self._recent_non[key] = obs
        if len(self._recent_non) > self.config.recent_non_notifications:
            self._recent_non.popitem(last=False)

    def _notification_result(self, obs: Observation, outcome: Outcome) -> None:
        obs.pending_mid = None
        if outcome is Outcome.ACK:
            obs.last_con = self._clock.time()
        elif outcome in (Outcome.RESET, Outcome.TIMEOUT) and self._observers.remove(obs):
            # §3.6 / §4.5: a Reset or an unacknowledged CON ends the observation.
            key = "observers_reset" if outcome is Outcome.RESET else "observers_timed_out"
            self.counters[key] += 1


def _normalize(path: str) -> str:
    return path.strip("/")


__all__ = ["Attachment", "CoapServer", "CoapServerConfig"]
