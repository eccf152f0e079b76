"""The per-configuration ClientHello plan (dtlsfast.handshake.client_hello_plan):
worked out once, forgotten when a field changes, and its ServerHello check
answers as walking every extension would (RFC 5246 §7.4.1.4)."""

from __future__ import annotations

from types import SimpleNamespace

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.handshake.constants import ExtensionType

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
