"""The cookie does not bind session_id (RFC 6347 §4.2.1; issue 12, item 9).

mbedTLS 2.28 with a session ticket draws a new random session_id for the
ClientHello that answers a HelloVerifyRequest. When the cookie bound
session_id, that second hello failed the cookie check, drew another
HelloVerifyRequest, and so on forever. Here a client follows the cookie
exchange exactly as that client does, against a running server.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.backend import load_backend
from dtlsfast.handshake.constants import DTLS_1_0, DTLS_1_2, HandshakeType
from dtlsfast.handshake.messages import ClientHello, HelloVerifyRequest, encode_handshake
from dtlsfast.server import DtlsServer

BACKEND = load_backend("rust")


async def _idle(session: DtlsSession) -> None:
    async for _ in session:
        pass


@pytest.fixture
async def server() -> AsyncIterator[DtlsServer]:
    async with await dtlsfast.serve(
        _idle, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}
    ) as srv:
        yield srv


def _datagram(hello: ClientHello, message_seq: int, record_seq: int) -> bytes:
    message = encode_handshake(HandshakeType.CLIENT_HELLO, message_seq, hello.encode())
    return bytes(BACKEND.encode_record(22, DTLS_1_0, 0, record_seq, message))


async def _exchange(sock: socket.socket, datagram: bytes, addr: tuple[str, int]) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, datagram, addr)
    return await asyncio.wait_for(loop.sock_recv(sock, 4096), 2.0)


async def test_second_hello_with_a_new_session_id_is_accepted(server: DtlsServer) -> None:
    first = ClientHello(
        client_version=DTLS_1_2,
        random=os.urandom(32),
        session_id=os.urandom(32),  # the ticket's session_id, as mbedTLS sends it
        cookie=b"",
        cipher_suites=[0xC0A8],
        compression_methods=b"\x00",
        extensions=[(0x0023, os.urandom(96))],  # session_ticket
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        reply = await _exchange(sock, _datagram(first, 0, 0), server.address)
        assert reply[13] == HandshakeType.HELLO_VERIFY_REQUEST
        cookie = HelloVerifyRequest.decode(reply[25:]).cookie
        # A fresh session_id in the hello that carries the cookie.
        second = replace(first, cookie=cookie, session_id=os.urandom(32))
        answers = []
        for attempt in range(3):
            reply = await _exchange(sock, _datagram(second, 1, 1 + attempt), server.address)
            answers.append(reply[13])
            if reply[13] == HandshakeType.SERVER_HELLO:
                break
    counters = server.counters
    print(
        f"\n[cookie/session_id] answers to the cookie'd hello with a new session_id: {answers}; "
        f"cookie counters: accepted {counters['cookie_accepted']}, "
        f"bad {counters['cookie_bad_cookie']}"
    )
    assert answers[0] == HandshakeType.SERVER_HELLO, answers
    assert counters["cookie_bad_cookie"] == 0
    assert counters["cookie_accepted"] == 1
