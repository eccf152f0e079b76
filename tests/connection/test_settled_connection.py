"""The slim SettledConnection a server swaps in once a session joins the table.

Every scenario runs twice, on the full established DtlsConnection and on the
SettledConnection that replaces it (with the Rust and the pure session table),
and must look the same from outside: the same events, the same datagrams back
to the client, the same drops. RFC 6347 §4.1.2.7 (invalid records dropped and
counted), RFC 5246 §7.2 (alerts), RFC 5746 §4.2 (renegotiation refused).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dtls_pair import VARIANTS, Settled, handshake, server_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast.backend import load_backend
from dtlsfast.connection import DtlsConnection
from dtlsfast.events import AlertReceived, ApplicationDataReceived, ConnectionClosed
from dtlsfast.exceptions import (
    ConnectionClosedError,
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from dtlsfast.handshake.constants import (
    AlertDescription,
    AlertLevel,
    ContentType,
    HandshakeType,
)
from dtlsfast.handshake.messages import decode_alert, encode_alert, encode_handshake
from dtlsfast.settled_connection import SettledConnection


@pytest.fixture(params=VARIANTS)
def s(request: pytest.FixtureRequest) -> Settled:
    settled = Settled(request.param)
    settled.baseline = dict(settled.server.drops)
    return settled


def test_application_data_both_ways(s: Settled) -> None:
    assert s.deliver(s.client_record(ContentType.APPLICATION_DATA, b"ping")) == []
    assert s.events() == [ApplicationDataReceived(b"ping")]
    s.server.send(b"pong")
    assert s.client_reads(s.server.datagrams_to_send(1.0)) == [ApplicationDataReceived(b"pong")]
    assert s.server.get_timer() is None and s.server.established and not s.server.closed


def test_close_notify_is_answered_and_closes(s: Settled) -> None:
    s.client.close()
    (close,) = s.client.datagrams_to_send(1.0)
    replies = s.deliver(close)
    assert s.events() == [
        AlertReceived(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY),
        ConnectionClosed(None),
    ]
    assert s.server.closed and not s.server.established
    (reply,) = replies
    opened = list(s.client.records.receive(reply))
    assert [decode_alert(r.payload) for r in opened] == [
        (AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
    ]
    with pytest.raises(ConnectionClosedError):
        s.server.send(b"late")


def test_a_fatal_alert_closes_with_the_alert_named(s: Settled) -> None:
    alert = encode_alert(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
    assert s.deliver(s.client_record(ContentType.ALERT, alert)) == []
    events = s.events()
    assert events[0] == AlertReceived(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
    assert isinstance(events[1], ConnectionClosed)
    assert isinstance(events[1].error, RemoteProtocolError)
    assert "internal_error" in str(events[1].error)


def test_renegotiation_is_refused_with_a_warning(s: Settled) -> None:
    hello = encode_handshake(HandshakeType.CLIENT_HELLO, 9, bytes(40))
    replies = s.deliver(s.client_record(ContentType.HANDSHAKE, hello))
    (event,) = s.client_reads(replies)
    assert event == AlertReceived(AlertLevel.WARNING, AlertDescription.NO_RENEGOTIATION)
    assert s.server.counters["renegotiation_refused"] == 1
    assert s.server.established and s.events() == []


def test_the_peers_last_flight_again_is_ignored(s: Settled) -> None:
    finished_seq = s.client._send_seq - 1  # the client's Finished
    again = encode_handshake(HandshakeType.FINISHED, finished_seq, bytes(12))
    assert s.deliver(s.client_record(ContentType.HANDSHAKE, again)) == []
    assert s.events() == [] and s.drops() == {} and s.server.established


def test_a_malformed_handshake_message_is_a_fatal_decode_error(s: Settled) -> None:
    replies = s.deliver(s.client_record(ContentType.HANDSHAKE, b"\x01\x00\x00"))
    (closed,) = s.events()
    assert isinstance(closed, ConnectionClosed) and isinstance(closed.error, HandshakeError)
    (alert,) = s.client_reads(replies)[:1]
    assert alert == AlertReceived(AlertLevel.FATAL, AlertDescription.DECODE_ERROR)


def _replayed(s: Settled) -> list[bytes]:
    record = s.client_record(ContentType.APPLICATION_DATA, b"once")
    return [record, record]


def _forged(s: Settled) -> list[bytes]:
    record = bytearray(s.client_record(ContentType.APPLICATION_DATA, b"forged"))
    record[-1] ^= 1
    return [bytes(record)]


def _epoch0(s: Settled) -> list[bytes]:
    backend = load_backend(s.client.config.backend)
    return [bytes(backend.encode_record(ContentType.APPLICATION_DATA, 0xFEFD, 0, 99, b"x"))]


def _cid_record(s: Settled) -> list[bytes]:
    record = bytearray(s.client_record(ContentType.APPLICATION_DATA, b"cid"))
    record[0] = 25
    return [bytes(record)]


def _truncated(s: Settled) -> list[bytes]:
    return [s.client_record(ContentType.APPLICATION_DATA, b"cut")[:-3]]


def _change_cipher_spec(s: Settled) -> list[bytes]:
    return [s.client_record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")]


def _unknown_type(s: Settled) -> list[bytes]:
    return [s.client_record(99, b"?")]


@pytest.mark.parametrize(
    ("make", "dropped", "delivered"),
    [
        (_replayed, {"replay": 1}, [b"once"]),
        (_forged, {"bad_auth": 1}, []),
        (_epoch0, {"bad_epoch": 1}, []),
        (_cid_record, {"bad_cid": 1}, []),
        (_truncated, {"malformed": 1}, []),
        (_change_cipher_spec, {"unexpected_change_cipher_spec": 1}, []),
        (_unknown_type, {"unknown_content_type": 1}, []),
    ],
)
def test_invalid_records_are_dropped_and_counted(
    s: Settled,
    make: Callable[[Settled], list[bytes]],
    dropped: dict[str, int],
    delivered: list[bytes],
) -> None:
    for datagram in make(s):
        assert s.deliver(datagram) == []
    assert s.events() == [ApplicationDataReceived(d) for d in delivered]
    assert s.drops() == dropped
    assert s.server.established


def test_too_large_a_payload_is_refused_with_the_limit(s: Settled) -> None:
    with pytest.raises(LocalProtocolError, match="do not fit in one record"):
        s.server.send(bytes(s.server.max_payload + 1))
    s.server.send(bytes(s.server.max_payload))


def test_abort_closes_silently(s: Settled) -> None:
    s.server.abort()
    assert s.server.datagrams_to_send(1.0) == [] and s.server.closed
    assert s.events() == [ConnectionClosed(None)]


def test_what_the_endpoints_read_survives_the_swap() -> None:
    s = Settled("settled-rust")
    full = s.pair.server
    assert full is not None
    settled = s.server
    assert isinstance(settled, SettledConnection)
    assert settled.cipher_suite == full.cipher_suite
    assert settled.psk_identity == full.psk_identity == b"CoAP"
    # The client random goes with the kept final flight (here the client's
    # data already showed the flight arrived, so neither is kept).
    assert not settled.holds_final_flight and settled.client_random == b""
    assert settled.max_payload == full.max_payload
    assert settled.counters["handshakes"] == 1
    assert settled.connection_id is None and not settled.is_client
    with pytest.raises(ConnectionClosedError):
        full.send(b"the full connection handed over its keys")


def test_only_a_settled_server_connection_can_settle() -> None:
    pair = handshake()
    table = load_backend("rust").SessionTable(4)
    fresh = DtlsConnection(server_config(), peer=("127.0.0.1", 1))
    assert not fresh.settled  # no handshake yet
    with pytest.raises(LocalProtocolError, match="settled server connection"):
        fresh.settle_into(table, 1)
    with pytest.raises(LocalProtocolError, match="settled server connection"):
        pair.client.settle_into(table, 2)
    assert len(table) == 0


@settings(max_examples=200, deadline=None)
@given(datagrams=st.lists(st.binary(max_size=80), max_size=6))
def test_garbage_never_raises(datagrams: list[bytes]) -> None:
    s = Settled("settled-rust")
    for datagram in datagrams:
        s.deliver(b"\x17\xfe\xfd\x00\x01" + datagram)
        s.deliver(datagram)
    assert all(not isinstance(e, ConnectionClosed) for e in s.events())


def test_take_output_hands_over_datagrams_and_events_at_once(s: Settled) -> None:
    """Both connection kinds answer the server's one call (take_output) as
    datagrams_to_send and next_event would, in order, and leave nothing behind."""
    assert s.server.take_output() == ((), ())
    s.server.receive_datagram(s.client_record(ContentType.APPLICATION_DATA, b"one"), 1.0)
    s.server.receive_datagram(s.client_record(ContentType.APPLICATION_DATA, b"two"), 1.0)
    s.server.send(b"pong")
    s.client.close()
    (close,) = s.client.datagrams_to_send(1.0)
    s.server.receive_datagram(close, 1.0)
    datagrams, events = s.server.take_output()
    assert list(events) == [
        ApplicationDataReceived(b"one"),
        ApplicationDataReceived(b"two"),
        AlertReceived(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY),
        ConnectionClosed(None),
    ]
    pong, reply = datagrams
    assert [r.payload for r in s.client.records.receive(pong)] == [b"pong"]
    assert [decode_alert(r.payload) for r in s.client.records.receive(reply)] == [
        (AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
    ]
    assert s.server.take_output() == ((), ())
    assert s.server.datagrams_to_send(1.0) == [] and s.server.next_event() is None


def test_take_output_when_empty_is_not_the_queue(s: Settled) -> None:
    """What nothing was queued in stays empty when something is queued later."""
    datagrams, events = s.server.take_output()
    s.server.send(b"later")
    s.server.receive_datagram(s.client_record(ContentType.APPLICATION_DATA, b"in"), 1.0)
    assert (list(datagrams), list(events)) == ([], [])
    later, arrived = s.server.take_output()
    assert len(later) == 1 and list(arrived) == [ApplicationDataReceived(b"in")]
