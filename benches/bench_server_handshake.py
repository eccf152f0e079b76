"""The DTLS server's own time per handshake, in memory: a ``DtlsServer`` fed
datagrams by dtlsfast clients through a transport that only collects what it
sends, no socket, so that the figure is the server's Python and Rust work
(cookie gate, admission, connection, session table, close_notify) without
the kernel, and steady on a shared machine.

    python benches/bench_server_handshake.py [--suite PSK|ECDHE-PSK] [--resume]
        [--no-tickets] [--count N] [--rounds R] [--profile FILE]
        [--profile-client FILE]

Only the server's calls (``datagram_received``) are timed; the best round
counts, printed per step too (first hello, second hello, the client's last
flight, close_notify). ``--resume``: each client offers the session of an earlier one (an
abbreviated handshake, RFC 5246 §7.3). ``--no-tickets``: the clients do not
offer the session_ticket extension (as an OpenSSL client with SSL_OP_NO_TICKET,
e.g. cgen, does not), so a full handshake ends with the server caching the
session under its session ID instead of sealing a ticket, and ``--resume``
resumes by session ID. ``--profile-client``: a cProfile of the clients'
calls instead (their DtlsConnection from construction to close_notify: the
client side of ``dtlsfast bench --mode handshakes``). Timing only: no asserts
on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.resumption import ServerResumption
from dtlsfast.server import DtlsServer, ServerLimits
from dtlsfast.session import DtlsSession

SUITES = {
    "PSK": "TLS_PSK_WITH_AES_128_CCM_8",
    "ECDHE-PSK": "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
}
PSK = ("CoAP", b"esp32c3_key")


class _Listener:
    def session_opened(self, session: DtlsSession) -> None:
        pass


class _Transport:
    """What the server sends, by address."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append((bytes(data), addr))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5684) if name == "sockname" else default


def _server(suite: str) -> DtlsServer:
    config = DtlsConfiguration.server(
        psk_store={PSK[0]: PSK[1]}, ciphers=[suite], resumption=ServerResumption()
    )
    limits = ServerLimits(
        hello_rate_per_address=1e9,
        hello_burst_per_address=1e9,
        hello_rate_per_prefix=1e9,
        hello_burst_per_prefix=1e9,
        crypto_rate=1e9,
        crypto_burst=2e9,
    )
    server = DtlsServer(_Listener(), config, limits, 3600.0)
    server.connection_made(_Transport())  # type: ignore[arg-type]
    return server


#: Set by ``--profile``: a cProfile enabled around the server's calls only.
PROFILE: Any = None
#: Set by ``--profile-client``: one enabled around the clients' calls only.
CLIENT_PROFILE: Any = None
#: The server's seconds by step (first hello, second hello, the client's
#: last flight, close_notify), summed over the handshakes of a round.
STEPS: list[float] = []


def handshake(
    server: DtlsServer, client_config: DtlsConfiguration, addr: Any, resume: Any
) -> tuple[float, Any]:
    """One handshake and close_notify from ``addr``; the server's seconds."""
    transport = server._transport
    assert isinstance(transport, _Transport)
    if CLIENT_PROFILE is not None:
        CLIENT_PROFILE.enable()
    client = DtlsConnection(client_config, peer="server", resume=resume)
    client.connect(0.0)
    spent = 0.0
    closing = False
    step = 0
    for _ in range(20):
        out = client.datagrams_to_send(0.0)
        if not out:
            if client.established and not closing:
                saved = client.resumption
                client.close()
                closing = True
                continue
            break
        if CLIENT_PROFILE is not None:
            CLIENT_PROFILE.disable()
        transport.sent.clear()
        if PROFILE is not None:
            PROFILE.enable()
        started = time.perf_counter()
        for datagram in out:
            server.datagram_received(datagram, addr)
        took = time.perf_counter() - started
        spent += took
        if step < len(STEPS):
            STEPS[step] += took
        step += 1
        if PROFILE is not None:
            PROFILE.disable()
        if CLIENT_PROFILE is not None:
            CLIENT_PROFILE.enable()
        for datagram, _ in transport.sent:
            client.receive_datagram(datagram, 0.0)
    if CLIENT_PROFILE is not None:
        CLIENT_PROFILE.disable()
    assert closing, "the handshake did not complete"
    return spent, saved


def run(suite: str, resume: bool, count: int, rounds: int, tickets: bool = True) -> float:
    """Best round's server microseconds per handshake."""

    steps: list[float] = []

    async def main() -> float:
        server = _server(SUITES[suite])
        client_config = DtlsConfiguration.client(
            psk=(PSK[0], PSK[1]), ciphers=[SUITES[suite]], session_tickets=tickets
        )
        _, saved = handshake(server, client_config, ("127.0.0.1", 1), None)
        best = float("inf")
        port = 2
        for _ in range(rounds):
            STEPS[:] = [0.0] * 4
            total = 0.0
            for _ in range(count):
                spent, _ = handshake(
                    server, client_config, ("127.0.0.1", port), saved if resume else None
                )
                port = port % 60000 + 2
                total += spent
            if total / count < best:
                best = total / count
                steps[:] = [t / count * 1e6 for t in STEPS]
        server.close()
        return best * 1e6

    us = asyncio.run(main())
    print("per step (µs):", " / ".join(f"{t:.1f}" for t in steps))
    return us


def main() -> None:
    global PROFILE, CLIENT_PROFILE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="PSK")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--no-tickets",
        action="store_true",
        help="clients offer no session ticket: the session-ID cache path (as cgen)",
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of the server's calls here")
    parser.add_argument("--profile-client", help="write a cProfile of the clients' calls here")
    args = parser.parse_args()
    if args.profile:
        import cProfile

        PROFILE = cProfile.Profile()
    if args.profile_client:
        import cProfile

        CLIENT_PROFILE = cProfile.Profile()
    us = run(args.suite, args.resume, args.count, args.rounds, not args.no_tickets)
    if args.profile:
        PROFILE.dump_stats(args.profile)
    if args.profile_client:
        CLIENT_PROFILE.dump_stats(args.profile_client)
    kind = "abbreviated" if args.resume else "full"
    via = "session ID" if args.no_tickets else "ticket"
    print(f"{SUITES[args.suite]} {kind} ({via}): {us:.1f} µs of server time per handshake")


if __name__ == "__main__":
    main()
