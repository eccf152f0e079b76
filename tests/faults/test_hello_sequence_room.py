"""Issue 12, item 1, connection side: a ClientHello whose record sequence
number or message_seq leaves no room for the server's flights is refused, and
no peer input makes an exception leave the connection.

The server copies the hello's record sequence number into its own epoch-0
write counter (so that its flight stays above the HelloVerifyRequest's, RFC
6347 §4.2.1) and the hello's message_seq into its own (§4.2.2). From 2^48-1
or 65535 the next flight overflowed and ConfigurationError or
LocalProtocolError escaped receive_datagram. Here a server DtlsConnection is
driven directly, without the cookie gate, as the server does once a hello
carries a valid cookie.
"""

from __future__ import annotations

import pytest
from dtls_pair import client_config, handshake, server_config
from forge import drain, hello_datagram

import dtlsfast.connection as connection_module
from dtlsfast.connection import DtlsConnection, State
from dtlsfast.events import ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import InternalError, LocalProtocolError
from dtlsfast.handshake.constants import AlertDescription, AlertLevel, HandshakeType
from dtlsfast.settled_connection import SettledConnection

MAX_SEQ = (1 << 48) - 1


@pytest.mark.parametrize(
    ("record_seq", "message_seq"),
    [(MAX_SEQ, 1), (MAX_SEQ - 1, 1), (MAX_SEQ - 2, 1), (1, 0xFFFF), (1, 0xFFFE)],
)
def test_hello_without_room_is_refused(record_seq: int, message_seq: int) -> None:
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    poison = hello_datagram(client_config(), record_seq=record_seq, message_seq=message_seq)
    for _ in range(3):  # resent, as the review did: each is refused the same way
        server.receive_datagram(poison, 0.0)
    out = drain(server)
    print(
        f"\n[hello room] record seq {record_seq:#x}, message_seq {message_seq}: "
        f"{len(out.datagrams)} datagrams back, state {server.state.value}, "
        f"drops {dict(server.drops)}"
    )
    assert out.datagrams == [] and out.events == []
    assert server.state is State.SERVER_LISTEN
    assert server.drops["hello_sequence_exhausted"] == 3
    # Nothing was taken over: a genuine hello afterwards is answered from scratch.
    server.receive_datagram(hello_datagram(client_config(), record_seq=1, message_seq=1), 0.0)
    reply = drain(server)
    assert reply.datagrams and reply.datagrams[0][13] == HandshakeType.SERVER_HELLO
    assert reply.datagrams[0][5:11] == (1).to_bytes(6, "big")  # from the hello's number on


def test_hello_with_room_at_the_edge_completes() -> None:
    """The refusal leaves genuine values alone: a hello with message_seq 5 and
    a large record sequence number still gets the whole handshake."""
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    server.receive_datagram(hello_datagram(client_config(), record_seq=1 << 40, message_seq=5), 0)
    out = drain(server)
    assert out.datagrams and server.state is State.SERVER_WAIT_CLIENT_KEY_EXCHANGE


def _closed(events: list[object]) -> ConnectionClosed:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert len(closed) == 1, events
    return closed[0]


def test_unexpected_error_fails_the_connection_not_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A defect met by the peer's input (here: a handler that raises) ends
    that connection with internal_error, counted; nothing is raised."""

    def broken(self: DtlsConnection, body: bytes, message: bytes) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setitem(
        connection_module._TRANSITIONS,
        (State.SERVER_WAIT_CLIENT_KEY_EXCHANGE, HandshakeType.CLIENT_KEY_EXCHANGE),
        broken,
    )
    pair = handshake()
    assert pair.server is not None and pair.server.closed
    error = _closed(pair.server_events).error
    print(f"\n[internal error] server closed with {type(error).__name__}: {error}")
    assert isinstance(error, InternalError)
    assert isinstance(error.__cause__, RuntimeError)
    assert pair.server.counters["internal_errors"] == 1
    # The client was told: a fatal internal_error alert.
    client_error = _closed(pair.client_events).error
    assert getattr(client_error, "alert", None) == AlertDescription.INTERNAL_ERROR


def test_unexpected_error_in_the_timer_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    server.receive_datagram(hello_datagram(client_config(), record_seq=1, message_seq=1), 0.0)
    drain(server)

    def broken(self: DtlsConnection, *args: object) -> None:
        raise ValueError("a defect in packing")

    monkeypatch.setattr(DtlsConnection, "_send_flight", broken)
    timer = server.get_timer()
    assert timer is not None
    server.handle_timer(timer)
    out = drain(server)
    assert server.closed and server.counters["internal_errors"] == 1
    assert isinstance(_closed(out.events).error, InternalError)
    assert out.alerts_sent == [(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)]


def test_unexpected_error_in_a_settled_session_is_contained() -> None:
    class BrokenTable:
        def open_record(self, *args: object) -> bytes:
            raise RuntimeError("a defect in the table")

        def seal(self, session_id: int, content_type: int, payload: bytes) -> bytes:
            return b"sealed alert"

    pair = handshake()
    assert pair.server is not None
    settled = SettledConnection(
        BrokenTable(),
        1,
        pair.server.config,
        ("192.0.2.1", 4000),
        (1, 3, 2, 1000, None, True, None, None),
    )
    pair.client.send(b"hello")
    [datagram] = pair.client.datagrams_to_send(pair.now)
    settled.receive_datagram(datagram, 0.0)
    out = drain(settled)
    assert settled.closed and settled.counters["internal_errors"] == 1
    assert isinstance(_closed(out.events).error, InternalError)
    assert out.datagrams == [b"sealed alert"]


def test_local_misuse_still_raises() -> None:
    """API misuse by the caller is not the peer's input: it raises as before."""
    conn = DtlsConnection(client_config(), peer=("192.0.2.1", 5684))
    with pytest.raises(LocalProtocolError):
        conn.send(b"too early")
    conn.connect(0.0)
    with pytest.raises(LocalProtocolError):
        conn.connect(0.0)
    pair = handshake()
    assert any(isinstance(e, HandshakeCompleted) for e in pair.client_events)
    with pytest.raises(LocalProtocolError):
        pair.client.send(b"x" * 20000)


@pytest.mark.parametrize(
    ("record_seq", "message_seq"), [(1, 0), (1, 1), (1 << 40, 5), (MAX_SEQ, 1), (1, 0xFFFF)]
)
def test_a_hello_handed_straight_to_the_state_machine_ends_as_the_general_path(
    record_seq: int, message_seq: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's hint (the hello it decoded, and the datagram when that is
    one record of just the whole hello) skips the record layer and the
    reassembler; everything observable is what the general path gives."""
    datagram = hello_datagram(client_config(), record_seq=record_seq, message_seq=message_seq)
    body = datagram[25:]
    results = []
    records_handled: list[object] = []
    general = DtlsConnection._handle_record
    monkeypatch.setattr(
        DtlsConnection,
        "_handle_record",
        lambda self, record, now: records_handled.append(record) or general(self, record, now),
    )
    for hint in (
        None,
        (body, connection_module.load_backend("rust").decode_client_hello(body), datagram),
    ):
        server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
        server._hello_hint = hint  # what DtlsServer sets
        server.receive_datagram(datagram, 0.0)
        out = drain(server)
        results.append(
            (
                server.state,
                dict(server.drops),
                server._send_seq,
                server._reassembler.next_seq,
                server.records.next_write_sequence(0),
                [(len(d), d[:3], d[5:11], d[13:25]) for d in out.datagrams],
                out.events,
            )
        )
    assert len(records_handled) == 1, "the hinted hello skipped the record layer"
    assert results[0] == results[1]
