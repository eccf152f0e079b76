"""What one light across the workers costs a PUT: sequential PUTs and GETs of
``/light`` over one CoAPS session against ``serve_workers`` with 1 and 2
workers, their median and 99th percentile round trips. A PUT is answered
once every worker holds the new state (:mod:`dtlsfast.workers.shared_state`),
so it pays a round trip through the supervisor to the other workers; a GET
pays nothing. Run: ``python benches/workers_put.py [--requests N]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time

import dtlsfast
from dtlsfast.coap.message import Code, Message, OptionNumber
from dtlsfast.server import ServerLimits
from dtlsfast.workers.serve import serve_workers

LIMITS = ServerLimits(hello_rate_per_address=1e6, hello_burst_per_address=1_000_000)


def _request(code: int, payload: bytes = b"") -> bytes:
    message = Message(
        code=code,
        message_id=random.getrandbits(16),
        token=os.urandom(4),
        options=[(OptionNumber.URI_PATH, b"light")],
    )
    message.payload = payload
    return message.encode()


async def _round_trips(port: int, code: int, count: int) -> list[float]:
    session = await dtlsfast.connect("127.0.0.1", port, psk=("CoAP", "esp32c3_key"))
    took = []
    try:
        for i in range(count):
            payload = (b"on", b"off")[i % 2] if code == Code.PUT else b""
            start = time.perf_counter()
            await session.send(_request(code, payload))
            await asyncio.wait_for(session.recv(), 5.0)
            took.append(time.perf_counter() - start)
    finally:
        await session.close()
    return took


def _summary(took: list[float]) -> str:
    ordered = sorted(took)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(took) * 1e6:7.0f} µs, p99 {p99 * 1e6:7.0f} µs"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.requests} sequential requests per row")
    for workers in (1, 2):
        supervisor = await serve_workers(
            "dtlsfast.workers.apps:light",
            workers=workers,
            host="127.0.0.1",
            port=None,
            coaps_port=0,
            psk_store={"CoAP": b"esp32c3_key"},
            limits=LIMITS,
        )
        try:
            address = supervisor.coaps_address
            assert address is not None
            for name, code in (("PUT", Code.PUT), ("GET", Code.GET)):
                took = await _round_trips(address[1], code, args.requests)
                print(f"{workers} worker(s), {name}: {_summary(took)}")
        finally:
            await supervisor.stop()
            supervisor.close()


if __name__ == "__main__":
    asyncio.run(main())
