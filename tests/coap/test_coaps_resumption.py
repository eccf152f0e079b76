"""The CoAP client's coaps transport resumes its DTLS session when it
reconnects to a server (RFC 5246 §7.3, RFC 5077), and falls back to a full
handshake when the server no longer has it."""

from __future__ import annotations

from dtlsfast.coap import CoapClient, CoapServer, LightResource
from dtlsfast.coap.dtls import coaps_transport_factory, listen_dtls

PSK = ("CoAP", b"esp32c3_key")


async def _get_twice(resume: bool, **server_options: object) -> dict[str, int]:
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    server = await listen_dtls(
        coap, "127.0.0.1", 0, psk_store={"CoAP": b"esp32c3_key"}, **server_options
    )
    factory = coaps_transport_factory(PSK, resume=resume)
    uri = f"coaps://127.0.0.1:{server.port}/light"
    try:
        for _ in range(3):  # three clients one after another: two reconnections
            client = CoapClient(transport_factories={"coaps": factory})
            try:
                assert (await client.get(uri)).payload == b"off"
            finally:
                await client.close()
        return dict(server.counters)
    finally:
        server.close()
        coap.close()


async def test_reconnections_resume_the_session() -> None:
    counters = await _get_twice(resume=True)
    assert counters["resumed_ticket"] == 2
    assert counters["handshakes_completed"] == 3


async def test_resumption_can_be_turned_off() -> None:
    counters = await _get_twice(resume=False)
    assert counters.get("resumed_ticket", 0) == 0
    assert counters["tickets_issued"] == 3


async def test_a_server_without_resumption_gets_full_handshakes() -> None:
    counters = await _get_twice(resume=True, resumption=False)
    assert counters.get("resumed_ticket", 0) == counters.get("resumed_session_id", 0) == 0
    assert counters["handshakes_completed"] == 3
