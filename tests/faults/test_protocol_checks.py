"""Issue 12, the smaller points of the review that live in the connection:

- RFC 7627 §5.1: extended_master_secret carries no data; with data it is a
  decode_error. ``serve()``, ``connect()`` and the CLI (``--require-ems``) can
  require the extended master secret.
- RFC 8422 §5.1.2: ec_point_formats without uncompressed (0) is an
  illegal_parameter.
- A client_version that is no DTLS 1.2 (TLS's 0x0303, an invented 0xFEFC) is a
  protocol_version.
- An alert whose level is neither warning nor fatal is a decode_error (it
  used to be taken for a close_notify when its description was 0).
- A record with more than 2^14 bytes of plaintext is a record_overflow
  (RFC 5246 §6.2.1), on the full and on the settled connection; the session
  table's fast path leaves such a record to Python rather than open it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from dtls_pair import VARIANTS, Settled, client_config, server_config
from forge import drain, record, records_of
from peers import GnuTlsServer, free_udp_port_pair, serve_process

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.backend import load_backend
from dtlsfast.connection import DtlsConnection
from dtlsfast.events import ConnectionClosed
from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.constants import (
    DTLS_1_0,
    DTLS_1_2,
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from dtlsfast.handshake.messages import (
    ClientHello,
    HelloVerifyRequest,
    ServerHello,
    encode_handshake,
)

EMS = ExtensionType.EXTENDED_MASTER_SECRET
POINT_FORMATS = ExtensionType.EC_POINT_FORMATS
GROUPS = ExtensionType.SUPPORTED_GROUPS


def _hello(**changes: object) -> ClientHello:
    hello = ClientHello(
        client_version=DTLS_1_2,
        random=os.urandom(32),
        session_id=b"",
        cookie=b"",
        cipher_suites=[0xC0A8, 0xCCAC],  # PSK_AES_128_CCM_8, ECDHE_PSK_CHACHA20
        compression_methods=b"\x00",
        extensions=[(EMS, b""), (GROUPS, b"\x00\x02\x00\x1d"), (POINT_FORMATS, b"\x01\x00")],
    )
    return replace(hello, **changes)  # type: ignore[arg-type]


def _server_answer(hello: ClientHello) -> tuple[DtlsConnection, list[tuple[int, int]], object]:
    """Feed ``hello`` to a server connection: the alerts it sent and how it closed."""
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    message = encode_handshake(HandshakeType.CLIENT_HELLO, 0, hello.encode())
    server.receive_datagram(record(ContentType.HANDSHAKE, 0, 0, message), 0.0)
    out = drain(server)
    return server, out.alerts_sent, out.closed.error if out.closed else None


HELLO_CASES = {
    "extended_master_secret with data": (
        {"extensions": [(EMS, b"\x00"), (GROUPS, b"\x00\x02\x00\x1d")]},
        AlertDescription.DECODE_ERROR,
    ),
    "ec_point_formats without uncompressed": (
        {"extensions": [(EMS, b""), (GROUPS, b"\x00\x02\x00\x1d"), (POINT_FORMATS, b"\x01\x01")]},
        AlertDescription.ILLEGAL_PARAMETER,
    ),
    "ec_point_formats without uncompressed, no supported_groups": (
        {"extensions": [(EMS, b""), (POINT_FORMATS, b"\x02\x01\x02")]},
        AlertDescription.ILLEGAL_PARAMETER,
    ),
    "client_version 0x0303 (TLS 1.2)": ({"client_version": 0x0303}, 70),
    "client_version 0xFEFC": ({"client_version": 0xFEFC}, AlertDescription.PROTOCOL_VERSION),
    "client_version 0xFEFE": ({"client_version": 0xFEFE}, AlertDescription.PROTOCOL_VERSION),
    "client_version 0xFEFF (DTLS 1.0)": ({"client_version": DTLS_1_0}, 70),
}


@pytest.mark.parametrize("case", HELLO_CASES)
def test_malformed_hello_gets_its_alert(case: str) -> None:
    changes, alert = HELLO_CASES[case]
    server, alerts, error = _server_answer(_hello(**changes))
    print(f"\n[hello checks] {case}: alerts sent {alerts}, error {error}")
    assert alerts == [(AlertLevel.FATAL, alert)]
    assert isinstance(error, HandshakeError) and error.alert == alert
    assert server.closed


def test_a_good_hello_is_answered() -> None:
    server, alerts, error = _server_answer(_hello())
    assert alerts == [] and error is None and not server.closed


def _server_hello_edited(extensions: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """A client receives the server's real flight with the ServerHello's
    extensions replaced: the alerts it sends back."""
    client = DtlsConnection(client_config(ciphers=["TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"]),
                            peer=("192.0.2.2", 5684))  # fmt: skip
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    client.connect(0.0)
    server.receive_datagram(client.datagrams_to_send(0.0)[0], 0.0)
    [(_, _, _, message), *_rest] = records_of(server.datagrams_to_send(0.0)[0])
    assert message[0] == HandshakeType.SERVER_HELLO
    hello = replace(ServerHello.decode(message[12:]), extensions=extensions)
    forged = encode_handshake(HandshakeType.SERVER_HELLO, 0, hello.encode())
    client.receive_datagram(record(ContentType.HANDSHAKE, 0, 1, forged), 0.0)
    return drain(client).alerts_sent


def test_server_hello_checks() -> None:
    ems_data = _server_hello_edited([(EMS, b"\x00")])
    no_uncompressed = _server_hello_edited([(EMS, b""), (POINT_FORMATS, b"\x01\x01")])
    print(f"\n[hello checks] ServerHello with EMS data: {ems_data}; "
          f"ec_point_formats [1]: {no_uncompressed}")  # fmt: skip
    assert ems_data == [(AlertLevel.FATAL, AlertDescription.DECODE_ERROR)]
    assert no_uncompressed == [(AlertLevel.FATAL, AlertDescription.ILLEGAL_PARAMETER)]


# ------------------------------------------------- alerts and record sizes


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("level", [0, 3, 255])
def test_alert_of_an_unknown_level_is_a_decode_error(variant: str, level: int) -> None:
    s = Settled(variant)
    replies = s.deliver(s.client_record(ContentType.ALERT, bytes([level, 0])))
    events = s.events()
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    told = s.client_reads(replies)
    print(f"\n[alert level] {variant}: level {level} close_notify -> server sent {told}")
    assert closed and isinstance(closed[0].error, HandshakeError)
    assert closed[0].error.alert == AlertDescription.DECODE_ERROR
    assert told[0] == dtlsfast.AlertReceived(AlertLevel.FATAL, AlertDescription.DECODE_ERROR)


@pytest.mark.parametrize("variant", VARIANTS)
def test_record_over_two_to_the_fourteen_is_a_record_overflow(variant: str) -> None:
    s = Settled(variant)
    at_limit = s.client_record(ContentType.APPLICATION_DATA, bytes(16384))
    assert s.deliver(at_limit) == [] and not s.server.closed
    over = s.client_record(ContentType.APPLICATION_DATA, bytes(16385))
    replies = s.deliver(over)
    closed = [e for e in s.events() if isinstance(e, ConnectionClosed)]
    told = s.client_reads(replies)
    print(f"\n[record overflow] {variant}: 16,385 bytes of plaintext -> {told}")
    assert closed and isinstance(closed[0].error, HandshakeError)
    assert closed[0].error.alert == AlertDescription.RECORD_OVERFLOW
    assert told[0] == dtlsfast.AlertReceived(AlertLevel.FATAL, AlertDescription.RECORD_OVERFLOW)


@pytest.mark.parametrize("backend", ["rust", "pure"])
def test_the_fast_path_leaves_oversized_records_to_python(backend: str) -> None:
    s = Settled(f"settled-{backend}")
    address = ("192.0.2.1", 4000)
    s.table.bind_address(7, address, 1.0)
    small = s.client_record(ContentType.APPLICATION_DATA, b"ping")
    big = s.client_record(ContentType.APPLICATION_DATA, bytes(16385))
    served = s.table.serve([(small, address), (big, address)], 1.0)
    to_python = served[1]
    delivered = served[2]
    assert [data for data, _ in to_python] == [big]
    assert [plaintext for _, plaintext in delivered] == [b"ping"]


def test_plaintext_record_over_the_limit_during_the_handshake() -> None:
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    server.receive_datagram(record(ContentType.HANDSHAKE, 0, 0, bytes(16385)), 0.0)
    out = drain(server)
    assert out.alerts_sent == [(AlertLevel.FATAL, AlertDescription.RECORD_OVERFLOW)]


# ------------------------------------------------ requiring the extended master secret


async def _idle(session: DtlsSession) -> None:
    async for _ in session:
        pass


async def _reply_to_cookied_hello(address: tuple[str, int], hello: ClientHello) -> bytes:
    """The cookie exchange of RFC 6347 §4.2.1 by hand; the server's answer to
    the hello that carries the cookie."""
    loop = asyncio.get_running_loop()
    backend = load_backend("rust")

    def datagram(h: ClientHello, seq: int) -> bytes:
        message = encode_handshake(HandshakeType.CLIENT_HELLO, seq, h.encode())
        return bytes(backend.encode_record(22, DTLS_1_0, 0, seq, message))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        await loop.sock_sendto(sock, datagram(hello, 0), address)
        reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5.0)
        cookie = HelloVerifyRequest.decode(reply[25:]).cookie
        await loop.sock_sendto(sock, datagram(replace(hello, cookie=cookie), 1), address)
        return await asyncio.wait_for(loop.sock_recv(sock, 4096), 5.0)


WITHOUT_EMS = _hello(extensions=[(GROUPS, b"\x00\x02\x00\x1d")])


async def test_serve_can_require_the_extended_master_secret() -> None:
    async with await dtlsfast.serve(
        _idle, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"},
        require_extended_master_secret=True,
    ) as server:  # fmt: skip
        reply = await _reply_to_cookied_hello(server.address, WITHOUT_EMS)
        with_ems = await _reply_to_cookied_hello(server.address, _hello())
    print(f"\n[require EMS] serve(): a hello without EMS got {reply.hex()}")
    assert records_of(reply) == [
        (ContentType.ALERT, 0, 1, bytes([AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE]))
    ]
    assert with_ems[13] == HandshakeType.SERVER_HELLO


async def test_connect_can_require_the_extended_master_secret() -> None:
    async with GnuTlsServer(
        "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8"
        ":%NO_SESSION_HASH"  # no extended_master_secret (RFC 7627)
    ) as server:
        session = await dtlsfast.connect("127.0.0.1", server.port, psk=("CoAP", b"esp32c3_key"),
                                         handshake_timeout=10)  # fmt: skip
        assert not session.connection.extended_master_secret
        await session.close()
        with pytest.raises(HandshakeError) as refused:
            await dtlsfast.connect(
                "127.0.0.1", server.port, psk=("CoAP", b"esp32c3_key"), handshake_timeout=10,
                require_extended_master_secret=True,
            )  # fmt: skip
    print(f"\n[require EMS] connect() to a server without EMS: {refused.value}")
    assert refused.value.alert == AlertDescription.HANDSHAKE_FAILURE
    assert "extended master secret" in str(refused.value)


async def test_cli_require_ems(tmp_path: Path) -> None:
    """``--require-ems`` on a client command and on ``serve``."""
    async with GnuTlsServer(
        "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8"
        ":%NO_SESSION_HASH"  # no extended_master_secret (RFC 7627)
    ) as peer:
        process = await asyncio.create_subprocess_exec(
            "timeout", "30", sys.executable, "-m", "dtlsfast.cli", "get", "--require-ems",
            "-B", "10", f"coaps://127.0.0.1:{peer.port}/light",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 35)
    print(f"\n[require EMS] dtlsfast get --require-ems: exit {process.returncode}, {err!r}")
    assert process.returncode != 0 and b"extended master secret" in err
    port = free_udp_port_pair()
    async with serve_process(tmp_path / "serve.log", 0, port + 1, "--require-ems"):
        reply = await _reply_to_cookied_hello(("127.0.0.1", port + 1), WITHOUT_EMS)
    assert records_of(reply)[0][3] == bytes([AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE])
