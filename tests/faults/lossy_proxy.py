"""A lossy UDP proxy for the fault tests (in the spirit of mbedTLS's udp_proxy).

:class:`LossyProxy` listens on 127.0.0.1:0 and forwards every client's
datagrams to one target, and the target's answers back. Each client address
gets its own upstream socket (so the target sees one source port per client,
as through a NAT), and :meth:`LossyProxy.rebind` moves a client to a new
upstream source port (a NAT rebinding).

On the way, each datagram may be dropped, duplicated, delayed by a random
extra time (which reorders datagrams) or, past ``mtu`` bytes, dropped (an MTU
clamp). The decisions come from one seeded RNG per direction, so a run is
reproducible as long as the peers send in the same order. Everything is
counted per direction in :attr:`LossyProxy.stats`.

Use as ``async with LossyProxy(target, seed=1, drop=0.25) as proxy:`` and
point the client at ``proxy.address``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

#: direction names: client -> target, target -> client
UP = "up"
DOWN = "down"


@dataclass(frozen=True)
class Faults:
    """What the proxy does to one direction's datagrams."""

    drop: float = 0.0
    """Probability of dropping a datagram."""
    duplicate: float = 0.0
    """Probability of sending a datagram twice (the copy gets its own delay)."""
    delay: float = 0.0
    """Maximum random extra delay, seconds (uniform in [0, delay]); reorders."""
    mtu: int | None = None
    """Datagrams larger than this many bytes are dropped (and counted apart)."""


@dataclass
class DirectionStats:
    """Datagram counts for one direction."""

    received: int = 0
    forwarded: int = 0  #: sent on (duplicates included)
    dropped: int = 0  #: lost at random
    clamped: int = 0  #: dropped for exceeding the MTU
    duplicated: int = 0  #: extra copies sent
    delayed: int = 0  #: sent later than received

    def __str__(self) -> str:
        return (
            f"received={self.received} forwarded={self.forwarded} dropped={self.dropped} "
            f"clamped={self.clamped} duplicated={self.duplicated} delayed={self.delayed}"
        )


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: LossyProxy) -> None:
        self.proxy = proxy
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.proxy._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.proxy.socket_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Upstream(asyncio.DatagramProtocol):
    """One client's socket towards the target."""

    def __init__(self, proxy: LossyProxy, client: Any) -> None:
        self.proxy = proxy
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.proxy._clients.get(self.client) is self:  # not a rebound-away socket
            self.proxy._from_target(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the target is down: lost, like on a network.
        self.proxy.socket_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@dataclass
class _Client:
    upstream: _Upstream | None = None
    pending: list[bytes] = field(default_factory=list)
    ready: asyncio.Task[None] | None = None


class LossyProxy:
    """UDP proxy 127.0.0.1:0 -> ``target`` with seeded faults (see the module doc).

    ``drop``, ``duplicate``, ``delay`` and ``mtu`` apply to both directions
    unless ``up``/``down`` give a :class:`Faults` for one direction.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        seed: int | str = 0,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        mtu: int | None = None,
        up: Faults | None = None,
        down: Faults | None = None,
    ) -> None:
        both = Faults(drop=drop, duplicate=duplicate, delay=delay, mtu=mtu)
        self.target = target
        self.seed = seed
        self.faults = {UP: up or both, DOWN: down or both}
        # str seeds hash deterministically (sha512), unlike hash() of a tuple.
        self._rng = {d: random.Random(f"{seed}/{d}") for d in (UP, DOWN)}
        self.stats = {UP: DirectionStats(), DOWN: DirectionStats()}
        self.socket_errors = 0
        self.rebinds = 0
        self._clients: dict[Any, _Upstream] = {}
        self._setup: dict[Any, _Client] = {}
        self._retired: list[_Upstream] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._listener: _Listener | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._closing = False
        #: called with (direction, datagram) for every datagram the proxy sees
        self.observer: Callable[[str, bytes], None] | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, listener = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._listener = listener
        return self

    async def aclose(self) -> None:
        """Cancel pending delayed sends, close every socket, wait until they are closed."""
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for client in self._setup.values():
            if client.ready is not None and not client.ready.done():
                client.ready.cancel()
        tasks = [c.ready for c in self._setup.values() if c.ready is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        upstreams = [*self._clients.values(), *self._retired]
        self._clients.clear()
        self._setup.clear()
        self._retired.clear()
        waits: list[asyncio.Future[None]] = []
        for up in upstreams:
            if up.transport is not None:
                up.transport.close()
                waits.append(up.closed)
        if self._transport is not None and self._listener is not None:
            self._transport.close()
            waits.append(self._listener.closed)
            self._transport = None
        await asyncio.gather(*waits)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- public --------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def clients(self) -> list[Any]:
        return list(self._clients)

    def upstream_port(self, client: Any) -> int:
        """The source port the target sees for ``client``."""
        return self._clients[client].port

    async def rebind(self, client: Any | None = None) -> int:
        """Move ``client`` (default: the only one) to a new upstream source port.

        Datagrams the target sends to the old port afterwards are lost, as after
        a NAT rebinding. Returns the new port.
        """
        if client is None:
            (client,) = self._clients
        old = self._clients[client]
        new = await self._open_upstream(client)
        self._clients[client] = new
        self._retired.append(old)
        if old.transport is not None:
            old.transport.close()
        self.rebinds += 1
        return new.port

    def summary(self) -> str:
        return f"up: {self.stats[UP]}; down: {self.stats[DOWN]}"

    # -- forwarding ----------------------------------------------------------

    async def _open_upstream(self, client: Any) -> _Upstream:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, client), local_addr=("127.0.0.1", 0), remote_addr=self.target
        )
        return upstream

    async def _connect_client(self, client: Any, setup: _Client) -> None:
        upstream = await self._open_upstream(client)
        if self._closing:
            assert upstream.transport is not None
            upstream.transport.close()
            self._retired.append(upstream)
            return
        self._clients[client] = upstream
        setup.upstream = upstream
        pending, setup.pending = setup.pending, []
        for data in pending:
            self._send_up(upstream, data)

    def _from_client(self, data: bytes, client: Any) -> None:
        if self._closing:
            return
        upstream = self._clients.get(client)
        if upstream is not None:
            self._pass(UP, data, lambda d: self._send_up(upstream, d))
            return
        setup = self._setup.get(client)
        if setup is None:
            setup = self._setup[client] = _Client()
            setup.ready = asyncio.get_running_loop().create_task(
                self._connect_client(client, setup)
            )
        # Decide now (keeps the RNG order), send once the socket exists.
        self._pass(UP, data, setup.pending.append)

    def _send_up(self, upstream: _Upstream, data: bytes) -> None:
        # The client may have been rebound meanwhile: use its current socket.
        current = self._clients.get(upstream.client, upstream)
        if current.transport is not None and not current.transport.is_closing():
            current.transport.sendto(data)

    def _from_target(self, data: bytes, client: Any) -> None:
        if self._closing:
            return
        self._pass(DOWN, data, lambda d: self._send_down(d, client))

    def _send_down(self, data: bytes, client: Any) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, client)

    def _pass(self, direction: str, data: bytes, send: Callable[[bytes], None]) -> None:
        faults, stats, rng = self.faults[direction], self.stats[direction], self._rng[direction]
        stats.received += 1
        if self.observer is not None:
            self.observer(direction, data)
        # Draw every number every time, so one fault's rate does not shift the others.
        lost = rng.random() < faults.drop
        copies = 2 if rng.random() < faults.duplicate else 1
        delays = [rng.uniform(0.0, faults.delay) for _ in range(2)][:copies]
        if faults.mtu is not None and len(data) > faults.mtu:
            stats.clamped += 1
            return
        if lost:
            stats.dropped += 1
            return
        stats.duplicated += copies - 1
        for delay in delays:
            stats.forwarded += 1
            if delay <= 0:
                send(data)
                continue
            stats.delayed += 1
            self._later(delay, send, data)

    def _later(self, delay: float, send: Callable[[bytes], None], data: bytes) -> None:
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            send(data)

        holder.append(asyncio.get_running_loop().call_later(delay, fire))
        self._timers.add(holder[0])


def counters_delta(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Non-zero differences between two counter snapshots."""
    keys = set(before) | set(after)
    return {k: after[k] - before[k] for k in sorted(keys) if after[k] != before[k]}


__all__ = ["DOWN", "UP", "DirectionStats", "Faults", "LossyProxy", "counters_delta"]
