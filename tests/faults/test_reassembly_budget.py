"""Handshake reassembly memory under attack (issue 12, item 5).

A one-byte first fragment that declared a 32,768-byte message used to
allocate the whole declared length, so two small datagrams made a half-open
handshake hold 64 KiB. Buffers now grow with the bytes that arrive, and all
pending reassembly of a server shares one byte budget, of which one network
may hold only a share.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import time
from pathlib import Path

from front_door import echo, wait_for
from peers import free_udp_port, rss_kib, serve_process, server_pid
from pki import Pki

import dtlsfast
from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.handshake.constants import DTLS_1_2, ContentType, HandshakeType
from dtlsfast.server import DtlsServer, ServerLimits

PSK = ("CoAP", "esp32c3_key")
BACKEND = load_backend("rust")
DECLARED = 32768


def _fragment(message_seq: int, offset: int, body: bytes) -> bytes:
    """A ClientKeyExchange fragment of a message that declares DECLARED bytes."""
    return (
        bytes([HandshakeType.CLIENT_KEY_EXCHANGE])
        + DECLARED.to_bytes(3, "big")
        + message_seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + len(body).to_bytes(3, "big")
        + body
    )


async def _recv(sock: socket.socket, timeout: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)


async def _half_open(source: str, server: tuple[str, int]) -> socket.socket:
    """From ``source``: the cookie exchange and the server's flight; then the
    client is free to send what it likes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    conn = DtlsConnection(DtlsConfiguration.client(psk=PSK))
    conn.connect(0.0)
    for datagram in conn.datagrams_to_send(0.0):
        sock.sendto(datagram, server)
    conn.receive_datagram(await _recv(sock), 0.0)  # HelloVerifyRequest
    for datagram in conn.datagrams_to_send(0.0):
        sock.sendto(datagram, server)  # ClientHello with the cookie
    await _recv(sock)  # the server's flight: the handshake is half-open
    return sock


async def _send_fragments(
    server: tuple[str, int], sockets: list[socket.socket], fragments: list[bytes]
) -> None:
    """Every socket sends ``fragments`` (records 2, 3, ...), round robin, with a
    round trip every 32 datagrams so that the server's socket buffer holds
    them all."""
    sent = 0
    for record_seq, fragment in enumerate(fragments, 2):
        record = bytes(
            BACKEND.encode_record(ContentType.HANDSHAKE, DTLS_1_2, 0, record_seq, fragment)
        )
        for sock in sockets:
            sock.sendto(record, server)
            sent += 1
            if sent % 32 == 0:
                await _sync(server)
    await _sync(server)


_SYNCS = itertools.count()


async def _sync(server: tuple[str, int]) -> None:
    """A cookie-less ClientHello answered: the server read everything sent
    before. Each from an address of its own, so that no per-address budget
    for HelloVerifyRequests holds the answer back."""
    n = next(_SYNCS)
    conn = DtlsConnection(DtlsConfiguration.client(psk=PSK))
    conn.connect(0.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((f"127.254.{n // 250 % 256}.{1 + n % 250}", 0))
        sock.sendto(conn.datagrams_to_send(0.0)[0], server)
        await _recv(sock)


# -- at a running ``dtlsfast serve``: 1,000 half-open handshakes ------------------

HANDSHAKES = 1000
BATCH = 50


def _own_network(i: int) -> str:
    """A loopback address in a /24 of its own for each client, so that
    per-network caps do not decide what is measured here."""
    return f"127.{1 + i // 256}.{i % 256}.1"


async def _counters(process: asyncio.subprocess.Process, log_path: Path) -> dict[str, int]:
    """SIGUSR1: the server logs one line of JSON counters."""
    seen = log_path.read_text().count(" counters {")
    os.kill(server_pid(process.pid), signal.SIGUSR1)
    for _ in range(200):
        lines = [line for line in log_path.read_text().splitlines() if " counters {" in line]
        if len(lines) > seen:
            return dict(json.loads(lines[-1].split(" counters ", 1)[1]))
        await asyncio.sleep(0.025)
    raise AssertionError("dtlsfast serve did not log its counters")


async def test_half_open_handshakes_declaring_32k_messages(tmp_path: Path) -> None:
    """Each half-open handshake sends two 1-byte first fragments of 32 KiB
    messages (message_seq 2 and 3); the server's RSS must grow by < 10 MiB."""
    port = free_udp_port()
    log_path = tmp_path / "serve.log"
    server = ("127.0.0.1", port)
    declare = [_fragment(2, 0, b"\x00"), _fragment(3, 0, b"\x00")]
    async with serve_process(log_path, 0, port, limit=120) as process:
        pid = server_pid(process.pid)
        # Warm up: one full handshake, so what grows below is the attack's.
        session = await dtlsfast.connect(*server, psk=PSK, handshake_timeout=10)
        await session.close()
        await _sync(server)
        before = rss_kib(pid)
        sockets: list[socket.socket] = []
        try:
            for start in range(0, HANDSHAKES, BATCH):
                batch = range(start, min(start + BATCH, HANDSHAKES))
                new = await asyncio.gather(*(_half_open(_own_network(i), server) for i in batch))
                sockets += new
                await _send_fragments(server, new, declare)
            after = rss_kib(pid)
            counters = await _counters(process, log_path)
        finally:
            for sock in sockets:
                sock.close()
    growth = after - before
    print(
        f"\n[reassembly] {HANDSHAKES} half-open handshakes, each with two 1-byte first "
        f"fragments declaring {DECLARED} B: server RSS {before} -> {after} KiB "
        f"(+{growth / 1024:.1f} MiB, {growth * 1024 // HANDSHAKES} B per handshake); "
        f"in progress {counters.get('dtls_handshakes_in_progress')}, reassembly bytes "
        f"{counters.get('dtls_reassembly_bytes')}"
    )
    assert counters["dtls_handshakes_in_progress"] == HANDSHAKES, counters
    assert growth < 10 * 1024, f"server RSS grew by {growth} KiB"
    # Two bytes held per handshake, all under the server's shared budget.
    assert counters["dtls_reassembly_bytes"] == 2 * HANDSHAKES, counters


# -- in process: the shared budget and its share per network ----------------------

PIECE = 1000
PIECES = 60  # 60 KB a connection, under its own 64 KiB cap


def _filler() -> list[bytes]:
    """30 KB of real bytes for each of message_seq 2 and 3, from offset 1 on:
    they never complete."""
    return [
        _fragment(seq, 1 + i * PIECE, os.urandom(PIECE))
        for i in range(PIECES // 2)
        for seq in (2, 3)
    ]


async def _genuine_round_trip(server: DtlsServer, pki: Pki) -> float:
    """A client whose Certificate message comes in fragments (MTU 256), so the
    server must buffer part of it: handshake and one echo; seconds taken."""
    creds = pki.issue("genuine client")
    started = time.monotonic()
    session = await dtlsfast.connect(
        "127.0.0.1",
        server.port,
        cafile=pki.cafile,
        certfile=creds.certfile,
        keyfile=creds.keyfile,
        mtu=256,
        server_name="127.0.0.1",
        handshake_timeout=10,
        local_addr=("127.0.0.1", 0),
    )
    try:
        await session.send(b"through")
        assert await asyncio.wait_for(session.recv(), 5) == b"THROUGH"
    finally:
        await session.close()
    return time.monotonic() - started


async def _attack(server: DtlsServer, networks: range, per_network: int) -> list[socket.socket]:
    """``per_network`` half-open handshakes from each of the /24s ``networks``,
    each sending 60 KB it never completes."""
    address = ("127.0.0.1", server.port)
    sources = [f"127.30.{net}.{1 + i}" for net in networks for i in range(per_network)]
    sockets = list(await asyncio.gather(*(_half_open(s, address) for s in sources)))
    await _send_fragments(address, sockets, _filler())
    return sockets


async def test_one_network_cannot_take_the_reassembly_budget(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    server_creds = pki.issue("server", ips=("127.0.0.1",))
    budget, share = 512 * 1024, 128 * 1024
    limits = ServerLimits(
        reassembly_budget=budget, reassembly_budget_per_prefix=share, handshake_lifetime=6.0
    )
    async with await dtlsfast.serve(
        echo,
        "127.0.0.1",
        0,
        psk_store={"CoAP": b"esp32c3_key"},
        certfile=server_creds.certfile,
        keyfile=server_creds.keyfile,
        cafile=pki.cafile,
        client_auth="optional",
        limits=limits,
    ) as server:
        # One network: 16 handshakes try to hold 60 KB each, 960 KB in all.
        sockets = await _attack(server, range(1), per_network=16)
        try:
            one = server.counters
            genuine = await _genuine_round_trip(server, pki)
            # Four more networks take the rest of the budget, and no more.
            sockets += await _attack(server, range(1, 6), per_network=16)
            full = server.counters
        finally:
            for sock in sockets:
                sock.close()
        # The handshakes expire; their bytes go back to the budget.
        assert await wait_for(lambda: server.counters["handshakes_in_progress"] == 0, 15)
        after = server.counters
    print(
        f"\n[reassembly] budget {budget} B, {share} B per /24: one /24 with 16 handshakes "
        f"sending 60 KB each holds {one['reassembly_bytes']} B "
        f"({one['dropped_reassembly_budget']} fragments refused); a genuine client with a "
        f"fragmented Certificate meanwhile completed handshake + echo in {genuine:.2f} s; "
        f"six /24s hold {full['reassembly_bytes']} B ({full['dropped_reassembly_budget']} "
        f"refused); after the handshakes expired: {after['reassembly_bytes']} B"
    )
    assert share - PIECE < one["reassembly_bytes"] <= share
    # Refused, or taken and then evicted by the connection's next message.
    assert one["dropped_reassembly_budget"] > 0
    assert budget - 5 * PIECE < full["reassembly_bytes"] <= budget
    assert after["reassembly_bytes"] == 0


# -- overlapping fragments that disagree ----------------------------------------


async def test_overlapping_fragments_that_disagree_get_decode_error() -> None:
    """The same bytes of a handshake message sent twice with other content (RFC
    6347 §4.2.3 leaves it open) are an attack or a bug: a fatal decode_error.
    The same bytes with the same content are a retransmission, and fine."""
    async with await dtlsfast.serve(
        echo, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}
    ) as server:
        address = ("127.0.0.1", server.port)
        body = os.urandom(200)
        forged = body[:120] + bytes([body[120] ^ 1]) + body[121:]
        sock = await _half_open("127.0.0.1", address)
        try:
            record_seq = itertools.count(2)

            def send(offset: int, piece: bytes) -> None:
                fragment = _fragment(2, offset, piece)
                record = BACKEND.encode_record(
                    ContentType.HANDSHAKE, DTLS_1_2, 0, next(record_seq), fragment
                )
                sock.sendto(bytes(record), address)

            send(0, body[:150])
            send(100, body[100:200])  # overlaps, agrees: a retransmission
            await _sync(address)
            quiet = server.counters
            send(100, forged[100:200])  # overlaps, disagrees
            alert = await _recv(sock)
        finally:
            sock.close()
        assert await wait_for(lambda: server.counters["handshakes_failed"] == 1)
    print(
        f"\n[reassembly] overlapping fragments: agreeing ones buffered "
        f"({quiet['reassembly_bytes']} B held, handshakes failed {quiet['handshakes_failed']}); "
        f"a disagreeing one answered with alert {alert.hex()}"
    )
    assert quiet["reassembly_bytes"] == 200 and quiet["handshakes_failed"] == 0
    # A plaintext fatal (2) decode_error (50) alert record.
    assert alert[0] == ContentType.ALERT and alert[-2:] == bytes([2, 50]), alert.hex()
