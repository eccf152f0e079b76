"""100,000 random and mutated datagrams at a running ``dtlsfast serve``,
then the front door's own state: cookie exchanges from 2,000 source
addresses (past ``max_handshakes``: eviction), mutated ClientHellos that
carry their valid cookie (sequence numbers without room, garbled fields), and
one address repeating its cookie'd hello until its hello bucket is empty
(refusals before the cookie, muting in the batch socket).

Afterwards a legitimate client is still served, the established session that
lived through the blast still works, nothing was raised past the endpoint
(the server's log has no traceback), and the server's memory stayed bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest
from front_door import cookie_of, hello_datagram, psk_hello

import dtlsfast
from dtlsfast.coap import CoapClient
from dtlsfast.coap.dtls import coaps_transport_factory
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection

pytestmark = pytest.mark.interop

DATAGRAMS = 100_000
FRONT_DOOR_SOURCES = 2000
REPEATS = 600
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


def _mutated_hello(rng: random.Random, datagram: bytes) -> bytes:
    """A cookie'd ClientHello with its sequence numbers or fields garbled; the
    cookie still verifies whenever the bound fields survive."""
    data = bytearray(datagram)
    choice = rng.random()
    if choice < 0.3:  # record sequence number, often at the top of its range
        seq = rng.choice([2**48 - 1, 2**48 - 2, 2**48 - 3, rng.randrange(2**48)])
        data[5:11] = seq.to_bytes(6, "big")
    elif choice < 0.5:  # message_seq
        data[17:19] = rng.choice([65535, 65534, rng.randrange(65536)]).to_bytes(2, "big")
    elif choice < 0.8:  # past the random and the cookie: suites, extensions
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(92, len(data))] = rng.randrange(256)
    else:  # lengths and anything else
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.5:
            data = data[: rng.randrange(14, len(data))]
    return bytes(data)


def _front_door(host: str, port: int, seed: int) -> tuple[int, int]:
    """Cookie exchanges from FRONT_DOOR_SOURCES addresses, then each sends its
    cookie'd hello and mutations of it; one address repeats its own REPEATS
    times. Returns (cookies got, datagrams sent)."""
    rng = random.Random(seed)
    server = (host, port)
    cookies = sent = 0
    for start in range(0, FRONT_DOOR_SOURCES, 200):
        socks = []
        try:
            for i in range(start, min(start + 200, FRONT_DOOR_SOURCES)):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((f"127.{80 + i // 250}.{i % 250}.1", 0))
                sock.setblocking(False)
                socks.append(sock)
            hellos = [psk_hello() for _ in socks]
            for sock, hello in zip(socks, hellos, strict=True):
                sock.sendto(hello_datagram(hello), server)
            pending = dict(zip(socks, hellos, strict=True))
            deadline = time.monotonic() + 2.0
            while pending and time.monotonic() < deadline:
                readable, _, _ = select.select(list(pending), [], [], 0.05)
                for sock in readable:
                    cookie = cookie_of(sock.recv(4096))
                    hello = pending.pop(sock)
                    if cookie is None:
                        continue
                    cookies += 1
                    cookied = hello_datagram(replace(hello, cookie=cookie), 1, 1)
                    for datagram in (cookied, *(_mutated_hello(rng, cookied) for _ in range(3))):
                        sock.sendto(datagram, server)
                        sent += 1
        finally:
            for sock in socks:
                sock.close()
    # One address starts more handshakes than its hello bucket holds: new
    # hellos (each its own random and cookie), not retransmissions.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.79.0.1", 0))
        sock.settimeout(1.0)
        ready = []
        for _ in range(REPEATS):
            hello = psk_hello()
            sock.sendto(hello_datagram(hello), server)
            cookie = cookie_of(sock.recv(4096))
            if cookie is not None:
                ready.append(hello_datagram(replace(hello, cookie=cookie), 1, 1))
        cookies += len(ready)
        for datagram in ready * 3:
            sock.sendto(datagram, server)
            sent += 1
    return cookies, sent


def _counters(log_path: Path) -> dict[str, int]:
    """The last counters line that SIGUSR1 made ``dtlsfast serve`` log."""
    lines = [line for line in log_path.read_text().splitlines() if "counters {" in line]
    assert lines, "no counters logged"
    counters: dict[str, int] = json.loads(lines[-1].split("counters ", 1)[1])
    return counters


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
        cookies, front_door = await asyncio.to_thread(_front_door, "127.0.0.1", port + 1, 11)
        await asyncio.sleep(0.5)
        assert process.returncode is None, "the server died"
        os.kill(pid, signal.SIGUSR1)  # the server, not the timeout wrapper
        await asyncio.sleep(0.5)
        counters = _counters(log_path)

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
            f"server RSS {rss_before} -> {rss_after} KiB; front door: {cookies} cookies from "
            f"{FRONT_DOOR_SOURCES + 1} addresses, {front_door} cookie'd and mutated hellos: "
            + ", ".join(
                f"{name} {counters.get('dtls_' + name, 0)}"
                for name in (
                    "handshakes_started",
                    "handshakes_evicted",
                    "cookie_sequence_too_high",
                    "dropped_hello_rate_address",
                    "dropped_hello_rate_muted",
                    "handshakes_in_progress",
                    "sources_tracked",
                    "dtls_internal_errors",
                )
            )
        )
        assert handled >= DATAGRAMS * 0.98
        assert growth < 32 * 1024, f"server memory grew by {growth} KiB"
        # The new state was reached: eviction, refusals, per-source buckets.
        assert cookies >= (FRONT_DOOR_SOURCES + REPEATS) * 0.95
        assert counters["dtls_handshakes_evicted"] > 0
        assert counters["dtls_cookie_sequence_too_high"] > 0
        assert counters["dtls_dropped_hello_rate_address"] > 0
        assert counters["dtls_sources_tracked"] > 0
        assert counters.get("dtls_dtls_internal_errors", 0) == 0
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "Exception in callback" not in text, text[-3000:]
