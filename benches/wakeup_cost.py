"""What one wake-up of a sleeping server costs, apart from the work it does.

    python benches/wakeup_cost.py [--datagrams 3000] [--gap 0.0003]

Two measurements, to tell where the extra CPU of handshakes one at a time
goes (issue 14):

1. Server CPU per datagram when datagrams arrive one every ``--gap`` seconds
   (the server sleeps between them): a blocking ``recv`` loop (the floor the
   kernel and the machine set), asyncio's datagram transport, and ``dtlsfast
   serve`` (a junk record, dropped by the Rust demultiplexer; and a
   ClientHello without cookie, answered with a HelloVerifyRequest). CPU is
   the scheduler's run time of the server (/proc/PID/schedstat).
2. The same sans-I/O server handshake work (PSK, ``DtlsConnection`` in one
   process, no sockets) back to back and after a sleep of 30 µs to 1 ms
   before each server step: what a cold cache costs the same code.

Servers are pinned to CPU 0, the client to CPU 1. Timing lives here, never
in the test suite; on a shared machine, run it a few times.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import socket
import subprocess
import sys
import time

PY = sys.executable
_BLOCKING = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('127.0.0.1',int(sys.argv[1])))\n"
    "while True: s.recv(65536)\n"
)
_ASYNCIO = (
    "import asyncio,sys\n"
    "class P(asyncio.DatagramProtocol):\n"
    "    def datagram_received(self,d,a): pass\n"
    "async def main():\n"
    "    await asyncio.get_running_loop().create_datagram_endpoint(\n"
    "        P,local_addr=('127.0.0.1',int(sys.argv[1])))\n"
    "    await asyncio.sleep(3600)\n"
    "asyncio.run(main())\n"
)
JUNK = b"\x17\xfe\xfd" + bytes(20)


def _client_hello() -> bytes:
    from dtlsfast.config import DtlsConfiguration
    from dtlsfast.connection import DtlsConnection

    conn = DtlsConnection(
        DtlsConfiguration(is_client=True, psk=(b"CoAP", b"esp32c3_key")), peer=("127.0.0.1", 1)
    )
    conn.connect(0.0)
    return conn.datagrams_to_send(0.0)[0]


def _server(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "blocking recv":
        argv = [PY, "-c", _BLOCKING, str(port)]
    elif kind == "asyncio":
        argv = [PY, "-c", _ASYNCIO, str(port)]
    else:
        argv = [PY, "-m", "dtlsfast.cli", "serve", "--bind", "127.0.0.1", "--port", "0",
                "--coaps-port", str(port), "--hello-rate", "1000000", "--crypto-rate",
                "1000000", "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL)
    time.sleep(3.0)
    return process


def _run_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def per_datagram(kind: str, data: bytes, count: int, gap: float) -> float:
    """Server CPU (µs) per datagram, one datagram every ``gap`` seconds."""
    port = random.randrange(20000, 40000) | 1
    server = _server(kind, port)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", port))
        for _ in range(200):  # warm-up
            sock.send(data)
            time.sleep(gap)
        before = _run_seconds(server.pid)
        for _ in range(count):
            sock.send(data)
            end = time.perf_counter() + gap
            while time.perf_counter() < end:  # a busy wait: the server's gap is exact
                pass
        return 1e6 * (_run_seconds(server.pid) - before) / count
    finally:
        server.terminate()
        server.wait(10)


def cold_handshake_work(gaps: tuple[float, ...], count: int) -> dict[float, float]:
    """Server-side CPU (µs) of one PSK handshake, sans-I/O, with a sleep of
    ``gap`` seconds before each server step (0: back to back)."""
    from dtlsfast.config import DtlsConfiguration, make_psk_lookup
    from dtlsfast.connection import DtlsConnection

    client_config = DtlsConfiguration(is_client=True, psk=(b"CoAP", b"esp32c3_key"))
    server_config = DtlsConfiguration(
        is_client=False, psk_lookup=make_psk_lookup({b"CoAP": b"esp32c3_key"})
    )
    poller = select.epoll()

    def one(gap: float) -> float:
        client = DtlsConnection(client_config, peer=("127.0.0.1", 1))
        server = DtlsConnection(server_config, peer=("127.0.0.1", 2))
        client.connect(0.0)
        spent = 0.0
        while out := client.datagrams_to_send(0.0):
            if gap:
                poller.poll(gap)
            started = time.thread_time()
            for datagram in out:
                server.receive_datagram(datagram, 0.0)
            back = server.datagrams_to_send(0.0)
            spent += time.thread_time() - started
            for datagram in back:
                client.receive_datagram(datagram, 0.0)
        assert server.established
        return spent

    return {gap: 1e6 * sum(one(gap) for _ in range(count)) / count for gap in gaps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=3000)
    parser.add_argument("--gap", type=float, default=0.0003)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    hello = _client_hello()
    print(f"| server, a datagram every {args.gap * 1e6:.0f} µs | server CPU per datagram |")
    print("| --- | ---: |")
    for kind, data, what in (
        ("blocking recv", JUNK, "junk"),
        ("asyncio", JUNK, "junk"),
        ("dtlsfast", JUNK, "junk record"),
        ("dtlsfast", hello, "ClientHello, HelloVerifyRequest back"),
    ):
        cpu = per_datagram(kind, data, args.datagrams, args.gap)
        print(f"| {kind} ({what}) | {cpu:.1f} µs |")
    os.sched_setaffinity(0, {0})
    print("\n| sleep before each server step | server handshake work (sans-I/O, PSK) |")
    print("| ---: | ---: |")
    for gap, cpu in cold_handshake_work((0.0, 3e-5, 3e-4, 1e-3), 1000).items():
        print(f"| {gap * 1e6:.0f} µs | {cpu:.1f} µs |")


if __name__ == "__main__":
    main()
