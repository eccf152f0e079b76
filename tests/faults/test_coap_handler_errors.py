"""CoAP requests that make handlers fail (issue 12, item 10).

A PUT to ``light`` with deeply nested JSON (1,000 ``[``) raised RecursionError:
5.00 and a full traceback per request, over plain CoAP too. It is a client
error (4.00 with a diagnostic, RFC 7252 §5.9.2.1); and any handler exception
gets 5.00 with one log line per resource per minute, not a traceback each.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from coap_harness import Harness
from peers import free_udp_port_pair, serve_process

from dtlsfast.coap import (
    CoapClient,
    Code,
    ContentFormat,
    Message,
    MessageType,
    Request,
    Resource,
    Response,
)
from dtlsfast.coap.dtls import coaps_transport_factory
from dtlsfast.coap.message import OptionNumber

PSK = ("CoAP", "esp32c3_key")
NESTED = b"[" * 1000
REQUESTS = 50


def _put_nested(mid: int) -> bytes:
    msg = Message(MessageType.CON, Code.PUT, mid, mid.to_bytes(2, "big"))
    msg.add_option(OptionNumber.URI_PATH, "light")
    msg.add_option(OptionNumber.CONTENT_FORMAT, ContentFormat.JSON)
    msg.payload = NESTED
    return msg.encode()


async def test_nested_json_put_to_light_is_400(tmp_path: Path) -> None:
    """Against ``dtlsfast serve``: over plain CoAP 50 times, over CoAPS, and
    block-wise (Block1) with the nesting spread over several blocks."""
    port = free_udp_port_pair()
    log_path = tmp_path / "serve.log"
    loop = asyncio.get_running_loop()
    async with serve_process(log_path, port, port + 1) as _process:
        codes: list[int] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(("127.0.0.1", port))
            for mid in range(1, REQUESTS + 1):
                await loop.sock_sendall(sock, _put_nested(mid))
                reply = Message.decode(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5))
                codes.append(reply.code)
                diagnostic = reply.payload
        factory = coaps_transport_factory(PSK)
        async with CoapClient(transport_factories={"coaps": factory}) as client:
            secure = await asyncio.wait_for(
                client.put(
                    f"coaps://127.0.0.1:{port + 1}/light", NESTED, content_format=ContentFormat.JSON
                ),
                15,
            )
            blockwise = await asyncio.wait_for(
                client.put(
                    f"coap://127.0.0.1:{port}/light",
                    b"[" * 5000,
                    content_format=ContentFormat.JSON,
                ),
                15,
            )
            # The light still works.
            on = await client.put(
                f"coap://127.0.0.1:{port}/light", b'{"on": true}', content_format=50
            )
    log = log_path.read_text()
    print(
        f"\n[coap] {REQUESTS} PUTs of 1,000 nested '[' over plain CoAP: codes "
        f"{sorted({f'{c >> 5}.{c & 31:02d}' for c in codes})}, diagnostic {diagnostic!r}; "
        f"over CoAPS {secure.code_str}, 5,000 block-wise {blockwise.code_str}; "
        f"server log: {log.count('Traceback')} tracebacks, {log.count(' ERROR ')} error lines"
    )
    assert codes == [Code.BAD_REQUEST] * REQUESTS
    assert b"nested" in diagnostic
    assert secure.code == Code.BAD_REQUEST and blockwise.code == Code.BAD_REQUEST
    assert on.code == Code.CHANGED
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


class _Broken(Resource):
    """A resource whose GET handler raises, as buggy application code does."""

    async def render_get(self, request: Request) -> Response:
        raise ValueError("broken handler\nsecond line " + "x" * 500)


async def test_handler_errors_are_logged_once_per_resource_per_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    h.server.add_resource("broken", _Broken())
    h.server.add_resource("also-broken", _Broken())
    caplog.set_level(logging.INFO, logger="dtlsfast.coap")
    codes = [(await h.exchange(Code.GET, "broken")).code for _ in range(REQUESTS)]
    codes.append((await h.exchange(Code.GET, "also-broken")).code)
    first = [r for r in caplog.records if r.name == "dtlsfast.coap"]
    h.clock.advance(61.0)
    codes.append((await h.exchange(Code.GET, "broken")).code)
    lines = [r for r in caplog.records if r.name == "dtlsfast.coap"]
    print(
        f"\n[coap] {REQUESTS + 2} failing requests to two resources: "
        f"{len(first)} log lines in the first minute, {len(lines)} after it; "
        f"handler_errors {h.server.counters['handler_errors']}; last line: "
        f"{lines[-1].getMessage() if lines else None}"
    )
    assert codes == [Code.INTERNAL_SERVER_ERROR] * (REQUESTS + 2)
    assert h.server.counters["handler_errors"] == REQUESTS + 2
    # One line per resource per minute, none with a traceback, each on one line.
    assert len(first) == 2 and len(lines) == 3
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    assert "/broken" in first[0].getMessage() and "ValueError" in first[0].getMessage()
    assert f"{REQUESTS - 1} more failures" in lines[-1].getMessage()
