"""Helpers of the workers tests: a supervisor of the light server, raw CoAP
over a DTLS session, a relay whose upstream port can move (a NAT rebinding),
the ``dtlsfast serve --workers`` process, and its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import dtlsfast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))
from peers import free_port, free_udp_port

from dtlsfast import DtlsSession
from dtlsfast.coap.message import Code, Message, OptionNumber
from dtlsfast.server import ServerLimits
from dtlsfast.workers.serve import serve_workers
from dtlsfast.workers.supervisor import Supervisor

PSK = ("CoAP", "esp32c3_key")
PSK_STORE = {"CoAP": b"esp32c3_key"}
WAIT = 15.0
#: Every test's load comes from 127.0.0.1: no per-source handshake budget in the way.
LIMITS = ServerLimits(
    hello_rate_per_address=1e6,
    hello_burst_per_address=1_000_000,
    hello_rate_per_prefix=1e6,
    hello_burst_per_prefix=1_000_000,
    max_handshakes_per_address=1024,
    max_handshakes_per_prefix=1024,
)
#: An epoch-1 application-data record from an address without a session:
#: the worker that the kernel's flow hash picks for its source counts it
#: (``dropped_no_session``). Not a CID record, so the steering leaves it alone.
PROBE = b"\x17\xfe\xfd\x00\x01" + b"\x00" * 6 + b"\x00\x01" + b"\x00"


async def eventually(check: Callable[[], Any], what: str = "") -> None:
    """Wait until ``check()`` holds (bounded by WAIT; no timing assert)."""
    async with asyncio.timeout(WAIT):
        while not await _value(check()):
            await asyncio.sleep(0.02)


async def _value(result: Any) -> Any:
    return await result if asyncio.iscoroutine(result) else result


@contextlib.asynccontextmanager
async def light_workers(
    workers: int = 2, steering: str = "auto", **options: Any
) -> AsyncIterator[Supervisor]:
    supervisor = await serve_workers(
        "dtlsfast.workers.apps:light",
        workers=workers,
        host="127.0.0.1",
        port=None,
        coaps_port=0,
        steering=steering,
        psk_store=PSK_STORE,
        limits=LIMITS,
        **options,
    )
    try:
        yield supervisor
    finally:
        await supervisor.stop()
        supervisor.close()


def coap_get(path: str = "light") -> bytes:
    """A Confirmable GET of ``path`` (RFC 7252 §3; Uri-Path is option 11)."""
    return Message(
        code=Code.GET,
        message_id=random.getrandbits(16),
        token=os.urandom(4),
        options=[(OptionNumber.URI_PATH, path.encode())],
    ).encode()


async def get_light(session: DtlsSession) -> bytes:
    """GET /light on a raw DTLS session: the payload of the response."""
    await session.send(coap_get())
    reply = await asyncio.wait_for(session.recv(), WAIT)
    return bytes(Message.decode(reply).payload)


async def connect(port: int, **options: Any) -> DtlsSession:
    return await dtlsfast.connect("127.0.0.1", port, psk=PSK, **options)


def worker_of(session: DtlsSession) -> int:
    """The worker holding a CID session: its CID's first byte names it."""
    cid = session.connection.peer_connection_id
    assert cid, "the server gave no connection ID"
    return cid[0]


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Any], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, addr)


class MovingRelay:
    """A UDP relay in front of the server whose upstream source port can
    change (``move``), as a NAT rebinding does; ``probe`` sends a datagram
    from the current upstream port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.client: Any = None
        self._front: asyncio.DatagramTransport | None = None
        self._up: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> MovingRelay:
        loop = asyncio.get_running_loop()
        front, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_client), local_addr=("127.0.0.1", 0)
        )
        self._front = cast(asyncio.DatagramTransport, front)
        await self.move()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for transport in (self._front, self._up):
            if transport is not None:
                transport.close()

    @property
    def port(self) -> int:
        assert self._front is not None
        return int(self._front.get_extra_info("sockname")[1])

    async def move(self) -> int:
        """A new upstream port (the old one is closed); returns it."""
        old = self._up
        up, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Side(self._from_server), local_addr=("127.0.0.1", 0), remote_addr=self.target
        )
        self._up = cast(asyncio.DatagramTransport, up)
        if old is not None:
            old.close()
        return int(self._up.get_extra_info("sockname")[1])

    def probe(self, data: bytes = PROBE) -> None:
        assert self._up is not None
        self._up.sendto(data)

    def _from_client(self, data: bytes, addr: Any) -> None:
        self.client = addr
        if self._up is not None:
            self._up.sendto(data)

    def _from_server(self, data: bytes, addr: Any) -> None:
        if self._front is not None and self.client is not None:
            self._front.sendto(data, self.client)


async def flow_worker(supervisor: Supervisor, relay: MovingRelay) -> int:
    """The worker that the kernel's flow hash gives the relay's upstream port."""
    before = [c or {} for c in await supervisor.worker_counters()]
    relay.probe()
    found: list[int] = []

    async def landed() -> bool:
        now = [c or {} for c in await supervisor.worker_counters()]
        found[:] = [
            i
            for i, (b, n) in enumerate(zip(before, now, strict=True))
            if n.get("dtls_dropped_no_session", 0) > b.get("dtls_dropped_no_session", 0)
        ]
        return bool(found)

    await eventually(landed)
    assert len(found) == 1, found
    return found[0]


# -- the command line ----------------------------------------------------------


def free_tcp_port() -> int:
    return free_port(socket.SOCK_STREAM)


class ServeProcess:
    """``dtlsfast serve`` in a process of its own, its log in a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self.coaps_port = free_udp_port()
        self.args = [
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--coaps-port",
            str(self.coaps_port),
            "--hello-rate",
            "100000",
            *args,
        ]
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ServeProcess:
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                "timeout", "-s", "KILL", "120", sys.executable, "-m", "dtlsfast.cli", *self.args,
                stdout=out, stderr=out, env=env,
            )  # fmt: skip
        await eventually(lambda: "; Ctrl-C to stop" in self.text() or self.exited())
        assert not self.exited(), self.text()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            await self.process.wait()

    @property
    def pid(self) -> int:
        """The server's own PID (``timeout`` runs it as its child)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            pids = children.read_text().split()
            if pids:
                return int(pids[0])
        return self.process.pid

    def exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def counter_lines(self, logger: str) -> list[dict[str, int]]:
        """Every SIGUSR1 sum line that ``logger`` wrote, oldest first."""
        marker = f" WARNING {logger}: counters "
        out = []
        for line in self.text().splitlines():
            if marker in line:
                out.append(json.loads(line.split(marker, 1)[1]))
        return out

    async def sigusr1(self, logger: str = "dtlsfast.workers") -> dict[str, int]:
        """Send SIGUSR1 and return the sum line it logs."""
        seen = len(self.counter_lines(logger))
        os.kill(self.pid, signal.SIGUSR1)
        await eventually(lambda: len(self.counter_lines(logger)) > seen)
        return self.counter_lines(logger)[seen]


async def scrape(port: int) -> str:
    """GET /metrics over HTTP."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


def metric_totals(text: str) -> dict[str, float]:
    """Each sample summed over its labels (the workers), by metric name."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("le") is not None:
                continue
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def worker_lines(text: str) -> dict[int, tuple[int, dict[str, int] | None]]:
    """The last SIGUSR1 line of each worker in a supervisor's log: its pid and counters."""
    out: dict[int, tuple[int, dict[str, int] | None]] = {}
    for line in text.splitlines():
        _, found, rest = line.partition(" WARNING dtlsfast.workers: worker ")
        if not found:
            continue
        index, _, rest = rest.partition(" (pid ")
        pid, _, rest = rest.partition(") counters ")
        if pid.isdigit():
            out[int(index)] = (int(pid), json.loads(rest))
    return out
