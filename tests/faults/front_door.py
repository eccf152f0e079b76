"""Crafting what an attacker sends to a server's front door: ClientHellos, the
cookie exchange from many source ports and addresses, poisoned hellos.

Loopback only: every address of 127.0.0.0/8 is local on Linux, so a test can
be "1,000 addresses" by binding sockets to 127.x.y.z.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from dtlsfast import DtlsSession
from dtlsfast.backend import load_backend
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.constants import DTLS_1_0, DTLS_1_2, ExtensionType, HandshakeType
from dtlsfast.handshake.messages import ClientHello, HelloVerifyRequest, encode_handshake

BACKEND = load_backend("rust")
PSK_STORE = {"CoAP": b"esp32c3_key"}
PSK = ("CoAP", "esp32c3_key")
#: TLS_PSK_WITH_AES_128_CCM_8 and TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8.
PSK_SUITE = 0xC0A8
ECDSA_SUITE = 0xC0AE


def _hello(suite: int, *extensions: tuple[int, bytes]) -> ClientHello:
    return ClientHello(
        client_version=DTLS_1_2,
        random=os.urandom(32),
        session_id=b"",
        cookie=b"",
        cipher_suites=[suite],
        compression_methods=b"\x00",
        extensions=[(ExtensionType.EXTENDED_MASTER_SECRET, b""), *extensions],
    )


def psk_hello() -> ClientHello:
    """A minimal ClientHello for the PSK suite CoAP mandates."""
    return _hello(PSK_SUITE)


def ecdsa_hello() -> ClientHello:
    """A ClientHello that makes the server generate an ECDHE key and sign."""
    return _hello(
        ECDSA_SUITE,
        (ExtensionType.SUPPORTED_GROUPS, ext.encode_supported_groups([23])),
        (ExtensionType.EC_POINT_FORMATS, ext.encode_ec_point_formats()),
        (ExtensionType.SIGNATURE_ALGORITHMS, ext.encode_signature_algorithms([0x0403])),
    )


async def echo(session: DtlsSession) -> None:
    """The servers' session handler: every datagram back, upper-cased."""
    async for data in session:
        await session.send(data.upper())


async def wait_for(predicate: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll ``predicate`` (the server runs meanwhile) until true or ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.002)
    return True


def hello_datagram(hello: ClientHello, message_seq: int = 0, record_seq: int = 0) -> bytes:
    message = encode_handshake(HandshakeType.CLIENT_HELLO, message_seq, hello.encode())
    return bytes(BACKEND.encode_record(22, DTLS_1_0, 0, record_seq, message))


def cookie_of(reply: bytes) -> bytes | None:
    """The cookie of a HelloVerifyRequest datagram, None for anything else."""
    if len(reply) < 25 or reply[0] != 22 or reply[13] != HandshakeType.HELLO_VERIFY_REQUEST:
        return None
    return HelloVerifyRequest.decode(reply[25:]).cookie


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((host, 0))
    return sock


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on a non-blocking socket."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


async def _let_server_run() -> None:
    # An in-process server reads a whole batch per wake-up of the loop.
    for _ in range(3):
        await asyncio.sleep(0)


async def cookie_exchanges(
    server: tuple[str, int],
    sockets: Sequence[socket.socket],
    *,
    chunk: int = 250,
) -> tuple[int, list[bytes | None]]:
    """From each socket: a ClientHello, then, if a HelloVerifyRequest came back,
    the same hello with its cookie (message_seq 1, record seq 1), and nothing
    more. The server runs in this process. Returns how many got a cookie, and
    each socket's cookie'd datagram (None where no cookie came)."""
    cookied: list[bytes | None] = []
    for start in range(0, len(sockets), chunk):
        batch = sockets[start : start + chunk]
        hellos = [psk_hello() for _ in batch]
        for sock, hello in zip(batch, hellos, strict=True):
            sock.sendto(hello_datagram(hello), server)
        await _let_server_run()
        for sock, hello in zip(batch, hellos, strict=True):
            cookie = next(filter(None, map(cookie_of, drain(sock))), None)
            if cookie is None:
                cookied.append(None)
                continue
            datagram = hello_datagram(replace(hello, cookie=cookie), 1, 1)
            sock.sendto(datagram, server)
            cookied.append(datagram)
        await _let_server_run()
    return sum(d is not None for d in cookied), cookied


def many_addresses(count: int, ports_each: int, first_octet: int = 20) -> list[socket.socket]:
    """``ports_each`` sockets on each of ``count`` addresses, each address in
    its own /24: 127.<first_octet + i // 256>.<i % 256>.1."""
    return [
        udp_socket(f"127.{first_octet + i // 256}.{i % 256}.1")
        for i in range(count)
        for _ in range(ports_each)
    ]


def close_all(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
