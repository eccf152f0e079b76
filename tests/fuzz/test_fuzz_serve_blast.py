"""100,000 random and mutated datagrams at a running ``dtlsfast serve``.

Afterwards a legitimate client is still served, the established session that
lived through the blast still works, nothing was raised past the endpoint
(the server's log has no traceback), and the server's memory stayed bounded.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

import pytest

import dtlsfast
from dtlsfast.coap import CoapClient
from dtlsfast.coap.dtls import coaps_transport_factory
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection

pytestmark = pytest.mark.interop

DATAGRAMS = 100_000
PSK = ("CoAP", "esp32c3_key")


def _udp_drops(ports: list[int]) -> int:
    """Datagrams the kernel dropped for these local ports (/proc/net/udp)."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) in ports:
            total += int(fields[-1])
    return total


def _rx_queued(ports: list[int]) -> int:
    """Bytes waiting in the receive queues of these local ports (/proc/net/udp)."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) in ports:
            total += int(fields[4].split(":")[1], 16)
    return total


def _wait_drained(ports: list[int], within: float) -> bool:
    """Wait until the server has read (nearly) everything sent so far."""
    deadline = time.monotonic() + within
    while _rx_queued(ports) > 16 * 1024:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _seeds() -> list[bytes]:
    """Real first datagrams to mutate: a ClientHello, CoAP requests."""
    client = DtlsConnection(DtlsConfiguration.client(psk=PSK))
    client.connect(0.0)
    hello = client.datagrams_to_send(0.0)[0]
    get_light = bytes.fromhex("4001123 4b56c69676874".replace(" ", ""))
    observe = bytes.fromhex("4201abcd1234 60 556c69676874".replace(" ", ""))
    return [hello, get_light, observe]


def _blast(host: str, ports: list[int], count: int, seed: int) -> int:
    rng = random.Random(seed)
    seeds = _seeds()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
    sent = 0
    try:
        for i in range(count):
            kind = rng.random()
            if kind < 0.4:
                data = bytearray(rng.choice(seeds))
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                if rng.random() < 0.3:
                    data = data[: rng.randrange(1, len(data) + 1)]
            elif kind < 0.7:
                header = bytes([rng.choice([20, 21, 22, 23, 25])]) + b"\xfe\xfd"
                data = bytearray(header + rng.randbytes(rng.randint(0, 120)))
            else:
                data = bytearray(rng.randbytes(rng.randint(0, 200)))
            if i % 200 == 199 and not _wait_drained(ports, 10.0):
                # Paced by the server itself, so that what is measured is what
                # it handles, not how fast this machine is: a server that
                # stops reading ends the blast short, and the test fails.
                break
            sock = socks[i % len(socks)]
            try:
                sock.sendto(bytes(data), (host, rng.choice(ports)))
                sent += 1
            except OSError:
                pass
    finally:
        for sock in socks:
            sock.close()
    return sent


async def test_blast_at_dtlsfast_serve(tmp_path: Path) -> None:
    from peers import free_udp_port_pair, rss_kib, serve_process, server_pid

    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    async with serve_process(log_path, port, port + 1, limit=120) as process:
        survivor = await dtlsfast.connect("127.0.0.1", port + 1, psk=PSK, handshake_timeout=10)
        pid = server_pid(process.pid)
        rss_before = rss_kib(pid)
        drops_before = _udp_drops([port, port + 1])
        sent = await asyncio.to_thread(_blast, "127.0.0.1", [port, port + 1], DATAGRAMS, 7)
        assert sent >= DATAGRAMS * 0.99
        await asyncio.sleep(1.0)  # let the server drain its socket
        rss_after = rss_kib(pid)
        handled = sent - (_udp_drops([port, port + 1]) - drops_before)
        assert process.returncode is None, "the server died"

        # The session that lived through the blast still carries CoAP.
        survivor.send_nowait(bytes.fromhex("40017777b56c69676874"))
        reply = await asyncio.wait_for(survivor.recv(), 10)
        assert reply[1] == 0x45 and reply.endswith(b"off")  # 2.05 "off"
        await survivor.close()
        # And a new client is served.
        factory = coaps_transport_factory(PSK)
        async with CoapClient(transport_factories={"coaps": factory}) as client:
            response = await asyncio.wait_for(client.get(f"coaps://127.0.0.1:{port + 1}/light"), 15)
        assert response.payload == b"off"
        growth = rss_after - rss_before
        print(
            f"{sent} datagrams fired, {handled} reached the server; "
            f"server RSS {rss_before} -> {rss_after} KiB"
        )
        assert handled >= DATAGRAMS * 0.98
        assert growth < 32 * 1024, f"server memory grew by {growth} KiB"
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "Exception in callback" not in text, text[-3000:]
