"""A client and a server DtlsConnection joined by a simulated lossy network.

Deterministic: a seeded RNG decides loss, duplication and delay, and a
simulated clock drives the retransmission timers, so a test through 30 % loss
runs in milliseconds and always the same way (in the style of aioquic's
``client_and_server()`` and h11's helpers).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.events import ApplicationDataReceived, Event
from dtlsfast.handshake.constants import ContentType
from dtlsfast.handshake.cookies import CookieJar
from dtlsfast.settled_connection import SettledConnection

PSK = (b"CoAP", b"esp32c3_key")
CLIENT_ADDR = ("127.0.0.1", 40000)
SERVER_ADDR = ("127.0.0.1", 5684)


@dataclass
class Network:
    """Loss, duplication and reordering (random extra delay), all seeded."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    latency: float = 0.005
    seed: int = 0
    rng: random.Random = field(init=False)
    delivered: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def schedule(self, now: float) -> list[float]:
        """Arrival times of the copies of one datagram (empty when lost)."""
        if self.rng.random() < self.loss:
            self.dropped += 1
            return []
        copies = 2 if self.rng.random() < self.duplicate else 1
        times = []
        for _ in range(copies):
            delay = self.latency
            if self.rng.random() < self.reorder:
                delay += self.rng.uniform(0.0, 0.1)
            times.append(now + delay)
        return times


def client_config(**kwargs: Any) -> DtlsConfiguration:
    kwargs.setdefault("psk", PSK)
    return DtlsConfiguration.client(**kwargs)


def server_config(**kwargs: Any) -> DtlsConfiguration:
    kwargs.setdefault("psk_store", {PSK[0]: PSK[1]})
    return DtlsConfiguration.server(**kwargs)


def _is_epoch0_client_hello(data: bytes) -> bool:
    return len(data) > 25 and data[0] == 22 and data[3:5] == b"\x00\x00" and data[13] == 1


class Pair:
    """Client, stateless cookie gate, and the server connection it admits."""

    def __init__(
        self,
        client: DtlsConfiguration,
        server: DtlsConfiguration,
        network: Network | None = None,
        *,
        resume: Any = None,
    ) -> None:
        self.now = 0.0
        self.network = network or Network()
        self.client = DtlsConnection(client, peer=SERVER_ADDR, resume=resume)
        self.server_config = server
        self.gate = CookieGate(load_backend(server.backend), CookieJar(now=0.0))
        self.server: DtlsConnection | None = None
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        self.to_server: list[bytes] = []
        """Every datagram the client sent, in order (before loss)."""
        self.to_client: list[bytes] = []
        self._queue: list[tuple[float, int, str, bytes]] = []
        self._counter = 0

    # -- driving --------------------------------------------------------

    def start(self) -> None:
        self.client.connect(self.now)
        self._collect()

    def inject_to_server(self, data: bytes) -> None:
        self._queue_datagram("server", data, [self.now])

    def inject_to_client(self, data: bytes) -> None:
        self._queue_datagram("client", data, [self.now])

    def run(self, until: float = 600.0, stop_when_established: bool = True) -> None:
        """Deliver datagrams and fire timers in time order."""
        while True:
            self._collect()
            if stop_when_established and self.established:
                return
            candidates = [t for t in self._timers() if t is not None]
            if self._queue:
                candidates.append(self._queue[0][0])
            if not candidates:
                return
            nxt = min(candidates)
            if nxt > until:
                return
            self.now = max(self.now, nxt)
            if self._queue and self._queue[0][0] <= self.now:
                _, _, target, data = heapq.heappop(self._queue)
                self._deliver(target, data)
            for conn in (self.client, self.server):
                if conn is not None:
                    timer = conn.get_timer()
                    if timer is not None and timer <= self.now:
                        conn.handle_timer(self.now)

    @property
    def established(self) -> bool:
        return self.client.established and self.server is not None and self.server.established

    def transfer(self) -> None:
        """Run until nothing is in flight (no timers considered)."""
        self.run(stop_when_established=False, until=self.now + 5.0)

    # -- internals --------------------------------------------------------

    def _timers(self) -> list[float | None]:
        timers = [self.client.get_timer()]
        if self.server is not None:
            timers.append(self.server.get_timer())
        return timers

    def _deliver(self, target: str, data: bytes) -> None:
        self.network.delivered += 1
        if target == "client":
            self.client.receive_datagram(data, self.now)
            return
        if self.server is None or (self.server.established and _is_epoch0_client_hello(data)):
            verdict, answer = self.gate.check(data, CLIENT_ADDR, self.now)
            if answer is None:
                return
            if verdict != "accepted":
                self.to_client.append(answer)
                self._queue_datagram("client", answer, self.network.schedule(self.now))
                return
            if self.server is None or self.server.established:
                self.server = DtlsConnection(self.server_config, peer=CLIENT_ADDR)
            data = answer
        self.server.receive_datagram(data, self.now)

    def _collect(self) -> None:
        for datagram in self.client.datagrams_to_send(self.now):
            self.to_server.append(datagram)
            self._queue_datagram("server", datagram, self.network.schedule(self.now))
        if self.server is not None:
            for datagram in self.server.datagrams_to_send(self.now):
                self.to_client.append(datagram)
                self._queue_datagram("client", datagram, self.network.schedule(self.now))
        while (event := self.client.next_event()) is not None:
            self.client_events.append(event)
        if self.server is not None:
            while (event := self.server.next_event()) is not None:
                self.server_events.append(event)

    def _queue_datagram(self, target: str, data: bytes, times: list[float]) -> None:
        for when in times:
            self._counter += 1
            heapq.heappush(self._queue, (when, self._counter, target, data))


def handshake(
    client: DtlsConfiguration | None = None,
    server: DtlsConfiguration | None = None,
    network: Network | None = None,
) -> Pair:
    pair = Pair(client or client_config(), server or server_config(), network)
    pair.start()
    pair.run()
    return pair


VARIANTS = ["full", "settled-rust", "settled-pure"]


class Settled:
    """An established pair whose server connection is either the full one or,
    after the client's first application data settled it, the slim one."""

    def __init__(self, variant: str) -> None:
        backend = "pure" if variant == "settled-pure" else "rust"
        self.pair = handshake(client_config(backend=backend), server_config(backend=backend))
        self.client = self.pair.client
        self.server: DtlsConnection | SettledConnection = self.pair.server  # type: ignore[assignment]
        assert self.deliver(self.client_record(ContentType.APPLICATION_DATA, b"hello")) == []
        assert self.events() == [ApplicationDataReceived(b"hello")]
        assert isinstance(self.server, DtlsConnection) and self.server.settled
        self.table: Any = None
        if variant != "full":
            self.table = load_backend(backend).SessionTable(4)
            self.server = self.server.settle_into(self.table, 7)
            assert len(self.table) == 1

    def client_record(self, content_type: int, payload: bytes) -> bytes:
        return self.client.records.seal(content_type, payload)

    def deliver(self, datagram: bytes) -> list[bytes]:
        """Feed the server one datagram; what it sends back."""
        self.server.receive_datagram(datagram, 1.0)
        return self.server.datagrams_to_send(1.0)

    def events(self) -> list[Event]:
        out = []
        while (event := self.server.next_event()) is not None:
            out.append(event)
        return out

    def client_reads(self, datagrams: list[bytes]) -> list[Event]:
        for datagram in datagrams:
            self.client.receive_datagram(datagram, 1.0)
        out = []
        while (event := self.client.next_event()) is not None:
            out.append(event)
        return out

    def drops(self) -> dict[str, int]:
        drops = {k: v for k, v in self.server.drops.items() if v}
        if isinstance(self.server, DtlsConnection):
            # What the handshake dropped before the comparison starts.
            for reason in list(drops):
                drops[reason] -= self.baseline.get(reason, 0)
                if not drops[reason]:
                    del drops[reason]
        return drops

    baseline: dict[str, int] = {}
