"""CoAP client: requests over RFC 7252's message layer, RFC 7959 block-wise
transfers and RFC 7641 observations.

Usage::

    async with CoapClient() as client:
        response = await client.get("coap://127.0.0.1/light")
        await client.put("coap://127.0.0.1/light", b"on", content_format=0)
        async with client.observe("coap://127.0.0.1/light") as observation:
            async for notification in observation:
                print(notification.payload)

Transports: the client opens one transport per origin (scheme, host, port)
through ``transport_factories[scheme]``, a coroutine
``factory(scheme, host, port, on_datagram) -> ClientTransport`` (an object
with ``send(data)`` and ``close()``) that calls ``on_datagram(data)`` for each
datagram from the origin. ``coap`` maps to plain UDP; a DTLS client plugs in
``coaps`` the same way, with the session's plaintext as the datagrams.

Message layer: a CON request is retransmitted with exponential back-off
(§4.2) until an ACK, a RST or MAX_RETRANSMIT; responses are matched by token
and, for piggybacked ones, by Message ID too (§5.3.2). A separate response is
acknowledged (duplicates again, from the deduplication cache, §4.5). A
response or notification with an unknown token is rejected with RST (§5.3.2,
RFC 7641 §3.6). At most NSTART interactions per origin are outstanding (§4.7).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dtlsfast.coap.block import BlockOption, size_to_szx
from dtlsfast.coap.clock import Clock, LoopClock
from dtlsfast.coap.errors import (
    BlockOptionError,
    CoapDecodeError,
    CoapError,
    CoapRequestError,
    CoapResetError,
    CoapTimeoutError,
)
from dtlsfast.coap.exchange import Response
from dtlsfast.coap.message import (
    Code,
    Message,
    MessageType,
    OptionNumber,
    empty_ack,
    reset,
)
from dtlsfast.coap.observe import is_fresh
from dtlsfast.coap.params import TransmissionParameters
from dtlsfast.coap.reliability import DedupCache, MessageIdAllocator, Outcome, Retransmitter
from dtlsfast.coap.transport import ClientTransport, ClientTransportFactory, open_udp_client
from dtlsfast.coap.uri import CoapUri, parse_uri
from dtlsfast.exceptions import ConfigurationError, DtlsError

log = logging.getLogger("dtlsfast.coap")

OriginKey = tuple[str, str, int]


@dataclass(frozen=True)
class CoapClientConfig:
    transmission: TransmissionParameters = field(default_factory=TransmissionParameters)
    #: Block size for Block1 uploads and the largest Block2 size asked for.
    block_size: int = 1024
    #: Largest body reassembled from Block2 blocks.
    max_body_size: int = 1 << 20
    #: Outstanding interactions per origin (RFC 7252 §4.7).
    nstart: int = 1
    #: Overall time a request may take, including a separate response.
    request_timeout: float = 93.0
    #: Notifications buffered per observation; the oldest are dropped beyond.
    observation_queue: int = 64
    max_origins: int = 64
    max_pending: int = 256
    dedup_per_origin: int = 256

    def __post_init__(self) -> None:
        if not 16 <= self.block_size <= 1024 or self.block_size & (self.block_size - 1):
            raise ConfigurationError("block_size must be a power of two in 16..1024")
        if self.nstart < 1:
            raise ConfigurationError("nstart must be at least 1")


class _Origin:
    def __init__(self, key: OriginKey, nstart: int) -> None:
        self.key = key
        self.transport: ClientTransport | None = None
        self.slots = asyncio.Semaphore(nstart)


class _Pending:
    """A token waiting for responses."""

    __slots__ = ("deliver", "fail", "mid", "slot")

    def __init__(
        self,
        mid: int,
        deliver: Callable[[Message], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        self.mid = mid
        self.deliver = deliver
        self.fail = fail
        #: Releases the NSTART slot once; None when released.
        self.slot: Callable[[], None] | None = None

    def release(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            slot()


class CoapClient:
    """A CoAP client for coap:// (and coaps:// through a transport factory)."""

    def __init__(
        self,
        config: CoapClientConfig | None = None,
        *,
        transport_factories: dict[str, ClientTransportFactory] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or CoapClientConfig()
        self._factories: dict[str, ClientTransportFactory] = {"coap": open_udp_client}
        if transport_factories:
            self._factories.update(transport_factories)
        self._clock: Clock = clock or LoopClock()
        self._rng = rng or random.Random()
        self.counters: Counter[str] = Counter()
        self._origins: OrderedDict[OriginKey, _Origin] = OrderedDict()
        self._opening: dict[OriginKey, asyncio.Future[_Origin]] = {}
        self._pending: dict[tuple[OriginKey, bytes], _Pending] = {}
        self._mids = MessageIdAllocator(self._rng)
        self._retx = Retransmitter(
            self._clock,
            self.config.transmission,
            self._rng,
            self._send,
            per_remote=self.config.max_pending,
            total=self.config.max_pending * 4,
            counters=self.counters,
        )
        self._dedup = DedupCache(
            per_remote=self.config.dedup_per_origin,
            total=self.config.dedup_per_origin * self.config.max_origins,
            counters=self.counters,
        )
        self._token_counter = secrets.randbits(32)
        self._szx = size_to_szx(self.config.block_size)
        self._closed = False

    async def __aenter__(self) -> CoapClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every transport and fail what is still waiting."""
        self._closed = True
        for pending in list(self._pending.values()):
            pending.fail(CoapError("the client was closed"))
        self._pending.clear()
        self._retx.close()
        for origin in self._origins.values():
            if origin.transport is not None:
                origin.transport.close()
        self._origins.clear()

    # -- public API ------------------------------------------------------

    async def get(self, uri: str, **kwargs: Any) -> Response:
        return await self.request(Code.GET, uri, **kwargs)

    async def put(self, uri: str, payload: bytes = b"", **kwargs: Any) -> Response:
        return await self.request(Code.PUT, uri, payload, **kwargs)

    async def post(self, uri: str, payload: bytes = b"", **kwargs: Any) -> Response:
        return await self.request(Code.POST, uri, payload, **kwargs)

    async def delete(self, uri: str, **kwargs: Any) -> Response:
        return await self.request(Code.DELETE, uri, **kwargs)

    async def request(
        self,
        method: int,
        uri: str,
        payload: bytes = b"",
        *,
        content_format: int | None = None,
        accept: int | None = None,
        confirmable: bool = True,
        timeout: float | None = None,
        options: Iterable[tuple[int, bytes]] = (),
    ) -> Response:
        """Send a request and return the whole response (Block1/Block2 done).

        Raises :class:`CoapTimeoutError` when no response arrives in time and
        :class:`CoapResetError` when the server rejects the request."""
        target = parse_uri(uri)
        base = self._base_message(method, target, content_format, accept, confirmable, options)
        deadline = self._clock.time() + (
            self.config.request_timeout if timeout is None else timeout
        )
        origin = await self._origin(target)
        if len(payload) > self.config.block_size:
            msg = await self._upload(origin, base, payload, deadline)
        else:
            base.payload = payload
            msg = await self._exchange(origin, base, deadline)
        return await self._complete(origin, base, msg, deadline)

    def observe(
        self,
        uri: str,
        *,
        accept: int | None = None,
        confirmable: bool = True,
        timeout: float | None = None,
    ) -> Observation:
        """Observe ``uri`` (RFC 7641): an async iterator of notifications,
        best used as ``async with client.observe(uri) as obs: async for ...``
        so that leaving the block deregisters."""
        target = parse_uri(uri)
        base = self._base_message(Code.GET, target, None, accept, confirmable, ())
        return Observation(self, target, base, timeout)

    # -- building --------------------------------------------------------

    @staticmethod
    def _base_message(
        method: int,
        target: CoapUri,
        content_format: int | None,
        accept: int | None,
        confirmable: bool,
        options: Iterable[tuple[int, bytes]],
    ) -> Message:
        msg = Message(MessageType.CON if confirmable else MessageType.NON, method)
        for number, value in [*target.options, *options]:
            msg.add_option(number, value)
        if content_format is not None:
            msg.set_option(OptionNumber.CONTENT_FORMAT, content_format)
        if accept is not None:
            msg.set_option(OptionNumber.ACCEPT, accept)
        return msg

    def _new_token(self) -> bytes:
        """4 bytes of counter (no repeats) and 4 random bytes (§5.3.1)."""
        self._token_counter = (self._token_counter + 1) & 0xFFFFFFFF
        return self._token_counter.to_bytes(4, "big") + secrets.token_bytes(4)

    @staticmethod
    def _copy(base: Message) -> Message:
        return Message(base.type, base.code, 0, b"", list(base.options), base.payload)

    # -- origins and transport -------------------------------------------

    async def _origin(self, target: CoapUri) -> _Origin:
        if self._closed:
            raise CoapError("the client is closed")
        key = target.origin
        origin = self._origins.get(key)
        if origin is not None:
            self._origins.move_to_end(key)
            return origin
        opening = self._opening.get(key)
        if opening is not None:
            return await asyncio.shield(opening)
        factory = self._factories.get(key[0])
        if factory is None:
            raise CoapRequestError(
                f"no transport for {key[0]}:// (pass transport_factories={{{key[0]!r}: ...}})"
            )
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Origin] = loop.create_future()
        self._opening[key] = fut
        origin = _Origin(key, self.config.nstart)
        try:
            origin.transport = await factory(key[0], key[1], key[2], partial(self._datagram, key))
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: concurrent waiters re-raise it
            raise
        except BaseException:
            fut.cancel()
            raise
        finally:
            del self._opening[key]
        if not fut.done():
            fut.set_result(origin)
        while len(self._origins) >= self.config.max_origins:
            _, old = self._origins.popitem(last=False)
            self._drop_origin(old)
        self._origins[key] = origin
        return origin

    def _drop_origin(self, origin: _Origin) -> None:
        for (okey, token), pending in list(self._pending.items()):
            if okey == origin.key:
                del self._pending[(okey, token)]
                pending.fail(CoapError("too many origins: connection closed"))
        self._retx.cancel_remote(origin.key)
        self._dedup.remove_remote(origin.key)
        if origin.transport is not None:
            origin.transport.close()

    def _send(self, okey: Any, data: bytes) -> None:
        origin = self._origins.get(okey)
        if origin is None or origin.transport is None:
            self.counters["send_no_transport"] += 1
            return
        try:
            origin.transport.send(data)
        except (OSError, DtlsError) as exc:
            self.counters["send_errors"] += 1
            log.debug("CoAP send to %r failed: %s", okey, exc)
            return
        self.counters["sent"] += 1

    # -- receive ---------------------------------------------------------

    def _datagram(self, okey: OriginKey, data: bytes) -> None:
        self.counters["received"] += 1
        try:
            msg = Message.decode(data)
        except CoapDecodeError as exc:
            self.counters["decode_errors"] += 1
            if exc.should_reset and exc.message_id is not None:
                self._send(okey, reset(exc.message_id))
            return
        mid = msg.message_id
        if msg.type is MessageType.ACK:
            self._retx.resolve(okey, mid, Outcome.ACK)
            if not msg.is_empty:
                pending = self._pending.get((okey, msg.token))
                if pending is not None and pending.mid == mid:
                    pending.deliver(msg)
                else:
                    self.counters["unmatched_ack"] += 1
            return
        if msg.type is MessageType.RST:
            if not self._retx.resolve(okey, mid, Outcome.RESET):
                self.counters["unmatched_rst"] += 1
            return
        if not msg.is_response:
            # A ping or a request: a client has nothing to serve (§4.2).
            if msg.type is MessageType.CON:
                self._send(okey, reset(mid))
            return
        pending = self._pending.get((okey, msg.token))
        now = self._clock.time()
        entry = self._dedup.get(okey, mid, now)
        if entry is not None:
            self.counters["duplicates"] += 1
            if msg.type is MessageType.CON and entry.reply is not None:
                self._send(okey, entry.reply)
            return
        params = self.config.transmission
        lifetime = params.exchange_lifetime if msg.type is MessageType.CON else params.non_lifetime
        entry = self._dedup.add(okey, mid, now, lifetime)
        if pending is None:
            # Unknown token: reject (RFC 7252 §5.3.2, RFC 7641 §3.6).
            self.counters["rst_sent"] += 1
            entry.reply = reset(mid)
            self._send(okey, entry.reply)
            return
        if msg.type is MessageType.CON:
            entry.reply = empty_ack(mid)
            self._send(okey, entry.reply)
        # A separate response also ends the retransmission of the request.
        self._retx.resolve(okey, pending.mid, Outcome.ACK)
        pending.deliver(msg)

    # -- exchanges -------------------------------------------------------

    async def _exchange(
        self,
        origin: _Origin,
        msg: Message,
        deadline: float,
        token: bytes | None = None,
    ) -> Message:
        """One request message, one response message."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Message] = loop.create_future()

        def deliver(response: Message) -> None:
            if not fut.done():
                fut.set_result(response)

        def fail(exc: BaseException) -> None:
            if not fut.done():
                fut.set_exception(exc)

        remaining = deadline - self._clock.time()
        if remaining <= 0:
            raise CoapTimeoutError("the request timed out")
        try:
            await asyncio.wait_for(origin.slots.acquire(), remaining)
        except TimeoutError:
            raise CoapTimeoutError("timed out waiting for an NSTART slot") from None
        if len(self._pending) >= self.config.max_pending:
            origin.slots.release()
            self.counters["requests_refused"] += 1
            raise CoapError(f"more than {self.config.max_pending} requests in flight")
        token = self._new_token() if token is None else token
        msg.token = token
        msg.message_id = self._mids.next(origin.key)
        pending = _Pending(msg.message_id, deliver, fail)
        pending.slot = origin.slots.release
        key = (origin.key, token)
        self._pending[key] = pending
        try:
            return await self._wait_response(origin, msg, pending, fut, deadline)
        finally:
            pending.release()
            if self._pending.get(key) is pending:
                del self._pending[key]
            self._retx.resolve(origin.key, msg.message_id, Outcome.CANCELLED)

    async def _wait_response(
        self,
        origin: _Origin,
        msg: Message,
        pending: _Pending,
        fut: asyncio.Future[Message],
        deadline: float,
    ) -> Message:
        data = msg.encode()
        if msg.type is MessageType.CON:

            def on_result(outcome: Outcome) -> None:
                if outcome is Outcome.ACK:
                    pending.release()  # no longer outstanding (§4.7)
                elif outcome is Outcome.TIMEOUT:
                    pending.fail(CoapTimeoutError("no acknowledgement after MAX_RETRANSMIT"))
                elif outcome is Outcome.RESET:
                    pending.fail(CoapResetError("the server rejected the request with RST"))

            if not self._retx.start(origin.key, msg.message_id, data, on_result):
                raise CoapError("too many Confirmable requests in flight")
        else:
            self._send(origin.key, data)
        remaining = deadline - self._clock.time()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, remaining))
        except CoapError:
            raise  # CoapTimeoutError is a TimeoutError too: keep its message
        except TimeoutError:
            raise CoapTimeoutError("no response before the timeout") from None

    async def _upload(
        self, origin: _Origin, base: Message, payload: bytes, deadline: float
    ) -> Message:
        """Send ``payload`` in Block1 blocks (RFC 7959 §2.5); the final response."""
        szx = self._szx
        offset = 0
        first = True
        while True:
            size = 1 << (szx + 4)
            num = offset // size
            chunk = payload[offset : offset + size]
            more = offset + len(chunk) < len(payload)
            msg = self._copy(base)
            msg.payload = chunk
            msg.set_option(OptionNumber.BLOCK1, BlockOption(num, more, szx).encode())
            if first:
                msg.set_option(OptionNumber.SIZE1, len(payload))
                first = False
            response = await self._exchange(origin, msg, deadline)
            if not more or response.code != Code.CONTINUE:
                return response
            try:
                ack = response.block1
            except BlockOptionError:
                ack = None
            offset += len(chunk)
            if ack is not None and ack.szx < szx:
                szx = ack.szx  # the server asked for smaller blocks (§2.5)

    async def _complete(
        self, origin: _Origin, base: Message, msg: Message, deadline: float
    ) -> Response:
        """Fetch the rest of a Block2 body (RFC 7959 §2.4) and build a Response."""
        try:
            block = msg.block2
        except BlockOptionError as exc:
            raise CoapRequestError(f"bad Block2 option in the response: {exc}") from None
        if block is None or not block.more:
            return Response.from_message(msg)
        body = bytearray(msg.payload)
        etag = msg.etag
        if block.offset != 0:
            raise CoapRequestError("the first Block2 response is not block 0")
        while block.more:
            nxt = BlockOption((block.offset + block.size) // block.size, False, block.szx)
            if block.offset + block.size != len(body):
                raise CoapRequestError("Block2 block of the wrong size")
            request = self._copy(base)
            request.payload = b""
            request.remove_option(OptionNumber.OBSERVE)
            request.remove_option(OptionNumber.BLOCK1)
            request.remove_option(OptionNumber.SIZE1)
            request.set_option(OptionNumber.BLOCK2, nxt.encode())
            part = await self._exchange(origin, request, deadline)
            if not part.is_response or part.code >> 5 != 2:
                return Response.from_message(part)
            try:
                got = part.block2
            except BlockOptionError as exc:
                raise CoapRequestError(f"bad Block2 option: {exc}") from None
            if got is None or got.offset != len(body):
                raise CoapRequestError("Block2 response out of order")
            if part.etag != etag:
                raise CoapRequestError("the representation changed during a Block2 transfer")
            body += part.payload
            if len(body) > self.config.max_body_size:
                raise CoapRequestError(f"Block2 body over {self.config.max_body_size} bytes")
            block = got
        response = Response.from_message(msg, bytes(body))
        response.options = [(n, v) for n, v in response.options if n != OptionNumber.BLOCK2]
        return response


_END = object()


class Observation:
    """Notifications of one observed resource (RFC 7641)."""

    def __init__(
        self, client: CoapClient, target: CoapUri, base: Message, timeout: float | None
    ) -> None:
        self._client = client
        self._target = target
        self._base = base
        self._timeout = timeout
        self._queue: deque[Message | BaseException | object] = deque()
        self._wakeup: asyncio.Event | None = None
        self._origin: _Origin | None = None
        self._token = b""
        self._started = False
        self._finished = False
        self._last: tuple[int, float] | None = None
        self.dropped = 0

    @property
    def token(self) -> bytes:
        return self._token

    async def __aenter__(self) -> Observation:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()

    def __aiter__(self) -> Observation:
        return self

    async def __anext__(self) -> Response:
        if not self._started:
            await self._start()
        assert self._wakeup is not None
        while not self._queue:
            if self._finished:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue.popleft()
        if item is _END:
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._finish()
            raise item
        assert isinstance(item, Message)
        assert self._origin is not None
        deadline = self._client._clock.time() + self._client.config.request_timeout
        response = await self._client._complete(self._origin, self._base, item, deadline)
        if item.observe is None or not response.is_success:
            # Not (or no longer) observed: this is the last one (§3.2, §4.2).
            self._finish()
        return response

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        client = self._client
        self._wakeup = asyncio.Event()
        self._origin = origin = await client._origin(self._target)
        if len(client._pending) >= client.config.max_pending:
            client.counters["requests_refused"] += 1
            self._push(CoapError(f"more than {client.config.max_pending} requests in flight"))
            return
        self._token = client._new_token()
        msg = client._copy(self._base)
        msg.set_option(OptionNumber.OBSERVE, 0)
        msg.token = self._token
        msg.message_id = client._mids.next(origin.key)
        pending = _Pending(msg.message_id, self._push, self._push)
        client._pending[(origin.key, self._token)] = pending
        if msg.type is MessageType.CON:

            def on_result(outcome: Outcome) -> None:
                if outcome is Outcome.TIMEOUT:
                    self._push(CoapTimeoutError("no acknowledgement of the registration"))
                elif outcome is Outcome.RESET:
                    self._push(CoapResetError("the server rejected the registration"))

            if not client._retx.start(origin.key, msg.message_id, msg.encode(), on_result):
                self._push(CoapError("too many Confirmable requests in flight"))
        else:
            client._send(origin.key, msg.encode())

    def _push(self, item: Message | BaseException) -> None:
        if self._finished:
            return
        if isinstance(item, Message):
            value = item.observe
            now = self._client._clock.time()
            if value is not None:
                if self._last is not None and not is_fresh(*self._last, value, now):
                    self._client.counters["stale_notifications"] += 1
                    return
                self._last = (value, now)
        if len(self._queue) >= self._client.config.observation_queue:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(item)
        if self._wakeup is not None:
            self._wakeup.set()

    def _finish(self) -> None:
        self._finished = True
        if self._origin is not None:
            key = (self._origin.key, self._token)
            pending = self._client._pending.get(key)
            if pending is not None and pending.deliver == self._push:
                del self._client._pending[key]

    async def cancel(self, *, deregister: bool = True) -> None:
        """Stop observing: a GET with Observe=1 and the same token (§3.6), or
        with ``deregister=False`` just forget the token, so that the next
        notification is answered with RST."""
        if self._finished or not self._started or self._origin is None:
            self._finished = True
            return
        self._finish()
        self._queue.append(_END)
        if self._wakeup is not None:
            self._wakeup.set()
        if not deregister or self._client._closed:
            return
        msg = self._client._copy(self._base)
        msg.set_option(OptionNumber.OBSERVE, 1)
        timeout = self._timeout if self._timeout is not None else 5.0
        deadline = self._client._clock.time() + timeout
        try:
            await self._client._exchange(self._origin, msg, deadline, token=self._token)
        except CoapError as exc:
            log.debug("deregistration failed: %s", exc)


__all__ = ["CoapClient", "CoapClientConfig", "Observation"]
