"""The per-configuration ClientHello plan (dtlsfast.handshake.client_hello_plan):
worked out once, forgotten when a field changes, and its ServerHello check
answers as walking every extension would (RFC 5246 §7.4.1.4); the hello
with the cookie (RFC 6347 §4.2.1) is the codec's own."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.handshake.constants import DTLS_1_2, ExtensionType

PSK = ("CoAP", "esp32c3_key")


def _hello(**present: object) -> SimpleNamespace:
    fields: dict[str, object] = {
        "other_extensions": (),
        "ec_point_formats": None,
        "record_size_limit": None,
        "connection_id": None,
        "session_ticket": None,
        "server_certificate_type": None,
        "client_certificate_type": None,
        "server_name": False,
    }
    fields.update(present)
    return SimpleNamespace(**fields)


def test_plan_is_worked_out_once_per_configuration() -> None:
    config = DtlsConfiguration.client(psk=PSK)
    assert config.client_hello_plan is config.client_hello_plan


def test_plan_follows_a_changed_field() -> None:
    config = DtlsConfiguration.client(psk=PSK, server_name="127.0.0.1")
    types = [t for t, _ in config.client_hello_plan.extensions]
    assert ExtensionType.SERVER_NAME not in types  # an address gets no server_name
    config.server_name = "coap.example"
    assert config.client_hello_plan.extensions[0][0] == ExtensionType.SERVER_NAME


def test_server_hello_check_reports_the_first_unoffered_extension() -> None:
    config = DtlsConfiguration.client(psk=PSK, ciphers=["TLS_PSK_WITH_AES_128_CCM_8"])
    conn = DtlsConnection(config)
    conn.connect(0.0)
    check = conn._unoffered
    assert check(_hello()) is None
    assert check(_hello(session_ticket=b"")) is None  # asked for a ticket
    assert check(_hello(server_name=True)) == ExtensionType.SERVER_NAME
    assert check(_hello(connection_id=b"", server_name=True)) == ExtensionType.CONNECTION_ID
    assert check(_hello(ec_point_formats=b"\x00")) == ExtensionType.EC_POINT_FORMATS
    # Unknown extensions come first; one that was offered passes.
    assert check(_hello(other_extensions=((99, b""),), record_size_limit=64)) == 99
    assert check(_hello(other_extensions=((ExtensionType.RENEGOTIATION_INFO, b""),))) is None
    assert check(_hello(record_size_limit=0)) == ExtensionType.RECORD_SIZE_LIMIT


def test_connections_offering_a_cid_or_not_get_their_own_check() -> None:
    config = DtlsConfiguration.client(psk=PSK, ciphers=["TLS_PSK_WITH_AES_128_CCM_8"])
    plain, with_cid = DtlsConnection(config), DtlsConnection(config, connection_id=b"")
    plain.connect(0.0)
    with_cid.connect(0.0)
    assert plain._unoffered(_hello(connection_id=b"\x01")) == ExtensionType.CONNECTION_ID
    assert with_cid._unoffered(_hello(connection_id=b"\x01")) is None


@pytest.mark.parametrize("backend", ["rust", "pure"])
def test_hello_with_cookie_is_the_codecs_own(backend: str) -> None:
    """The second hello splices the cookie into the first one's body: byte for
    byte what encode_client_hello makes, whatever the session_id and cookie."""
    rng = random.Random(3)
    config = DtlsConfiguration.client(psk=PSK, server_name="coap.example", backend=backend)
    for _ in range(50):
        cid = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9)))
        conn = DtlsConnection(config, connection_id=cid if rng.random() < 0.5 else None)
        conn.connect(0.0)
        assert conn._client_hello is not None
        hello_random, _, suites, extensions = conn._client_hello
        session_id = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 33)))
        conn._client_hello = (hello_random, session_id, suites, extensions)
        conn._hello_body = None
        conn._queue_client_hello(b"")  # the first hello, with this session_id
        cookie = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 256)))
        conn._flight_open = []
        seq = conn._send_seq
        conn._queue_client_hello(cookie)
        expected = conn._backend.encode_client_hello(
            seq, DTLS_1_2, hello_random, session_id, cookie, suites, b"\x00", extensions
        )
        assert bytes(conn._flight_open[0].payload) == bytes(expected)
