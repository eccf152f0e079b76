"""Issue 12, item 7: a forged record no longer makes a connection resend its
flight, and no input is answered with more than three times its size.

RFC 6347 §4.2.4: a retransmission of the peer's last flight means ours was
lost, and is answered with our flight again. The connection used to take any
epoch-0 handshake record carrying the peer's last message_seq for one: a
25-byte forgery (13-byte record header, 12-byte handshake header, no body)
got the whole flight back, 5x for PSK and 30x for ECDHE-ECDSA, every time.
Now only a copy of the peer's own message counts (its hello with the random
in it, or its authenticated Finished), at most once per timer period, and only
when the peer has sent at least a third of our flight's size since it last
went out.

The connections are driven directly and their timers are never fired, so
everything they send here is an answer to the injected input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dtls_pair import client_config, handshake, server_config
from forge import drain, fragment, record, records_of
from pki import Pki

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection, State
from dtlsfast.handshake.constants import ContentType, HandshakeType

FORGERIES = 100
LIMIT = 3


def _forged(msg_type: int, message_seq: int, seq: int) -> bytes:
    datagram = record(ContentType.HANDSHAKE, 0, seq, fragment(msg_type, message_seq))
    assert len(datagram) == 25
    return datagram


def _blast(conn: DtlsConnection, datagrams: list[bytes], start: float, step: float) -> int:
    """Feed ``datagrams`` ``step`` seconds apart; bytes sent back."""
    sent = 0
    for i, datagram in enumerate(datagrams):
        now = start + i * step
        conn.receive_datagram(datagram, now)
        sent += drain(conn, now).sent_bytes
    return sent


def _server_in_flight(
    config: DtlsConfiguration, client: DtlsConfiguration
) -> tuple[DtlsConnection, DtlsConnection, bytes, int]:
    """A server that answered a client's hello (no cookie gate: the server
    connection is what the gate admits), waiting for its next flight."""
    conn = DtlsConnection(client, peer=("192.0.2.2", 5684))
    conn.connect(0.0)
    [hello] = conn.datagrams_to_send(0.0)
    server = DtlsConnection(config, peer=("192.0.2.1", 4000))
    server.receive_datagram(hello, 0.0)
    flight = drain(server).sent_bytes
    assert server.state is State.SERVER_WAIT_CLIENT_KEY_EXCHANGE
    return server, conn, hello, flight


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[DtlsConfiguration, DtlsConfiguration]:
    pki = Pki(tmp_path)
    creds = pki.issue("server.example", dns=("server.example",))
    return (
        DtlsConfiguration.server(certfile=creds.certfile, keyfile=creds.keyfile),
        DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example"),
    )


def _configs(
    kind: str, certificates: tuple[DtlsConfiguration, DtlsConfiguration]
) -> tuple[DtlsConfiguration, DtlsConfiguration]:
    if kind == "psk":
        return server_config(), client_config()
    return certificates


@pytest.mark.parametrize("kind", ["psk", "ecdhe-ecdsa"])
def test_forged_25_byte_records_get_nothing_back(
    kind: str, certificates: tuple[DtlsConfiguration, DtlsConfiguration]
) -> None:
    server, _, hello, flight = _server_in_flight(*_configs(kind, certificates))
    hello_seq = int.from_bytes(hello[17:19], "big")
    forged = [
        _forged(msg_type, hello_seq, 100 + i)
        for i in range(FORGERIES)
        for msg_type in (HandshakeType.CLIENT_HELLO, HandshakeType.CLIENT_KEY_EXCHANGE)
    ]
    sent = _blast(server, forged, 0.01, 0.1)  # 20 s of forgeries: many timer periods
    received = sum(len(d) for d in forged)
    print(
        f"\n[amplification] {kind} server flight {flight} B; {len(forged)} forged 25-byte "
        f"records ({received} B) got {sent} B back: {sent / received:.2f}x "
        f"(before: {flight / 25:.0f}x per record)"
    )
    assert sent <= LIMIT * received
    assert sent == 0  # none of them is a retransmission of the hello
    assert server.state is State.SERVER_WAIT_CLIENT_KEY_EXCHANGE


@pytest.mark.parametrize("kind", ["psk", "ecdhe-ecdsa"])
def test_replayed_hello_is_answered_within_three_times_its_size(
    kind: str, certificates: tuple[DtlsConfiguration, DtlsConfiguration]
) -> None:
    """An on-path attacker can replay the genuine hello: it is a real copy of
    the peer's flight, so it may be answered, but at most once per timer
    period and never with more than three times what came in."""
    server, _, hello, flight = _server_in_flight(*_configs(kind, certificates))
    replays = [hello] * FORGERIES
    sent = _blast(server, replays, 0.01, 0.01)  # 100 copies within one second
    received = len(hello) * len(replays)
    print(
        f"\n[amplification] {kind}: {len(replays)} replays of the {len(hello)}-byte hello "
        f"within 1 s got {sent} B back ({sent / received:.2f}x; flight {flight} B)"
    )
    assert sent <= LIMIT * received
    assert sent <= flight  # once per timer period (1 s)


def test_forged_record_after_the_handshake_gets_nothing_back() -> None:
    """Once established, the server keeps its last flight until the client
    shows it has it; the client's last message is its Finished, in epoch 1: an
    epoch-0 record with its message_seq is no retransmission."""
    pair = handshake()
    assert pair.server is not None and pair.server.established
    finished_seq = (
        max(
            int.from_bytes(body[4:6], "big")
            for d in pair.to_server
            for ctype, epoch, _, body in records_of(d)
            if ctype == ContentType.HANDSHAKE and epoch == 0
        )
        + 1
    )  # the Finished follows the client's last epoch-0 message
    forged = [_forged(HandshakeType.FINISHED, finished_seq, 50 + i) for i in range(FORGERIES)]
    sent = _blast(pair.server, forged, pair.now + 0.01, 0.5)
    print(f"\n[amplification] established server: {len(forged)} forged Finished headers got "
          f"{sent} B back")  # fmt: skip
    assert sent == 0


def test_forged_server_hello_done_does_not_make_the_client_resend() -> None:
    """The server's flight ends with ServerHelloDone, which is empty and so
    trivially forged; the client takes only a copy of the ServerHello (its
    random) as the server's retransmission."""
    client = DtlsConnection(client_config(), peer=("192.0.2.2", 5684))
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    client.connect(0.0)
    server.receive_datagram(client.datagrams_to_send(0.0)[0], 0.0)
    server_flight = server.datagrams_to_send(0.0)
    for datagram in server_flight:
        client.receive_datagram(datagram, 0.0)
    own_flight = drain(client).sent_bytes
    assert client.state is State.CLIENT_WAIT_CHANGE_CIPHER_SPEC
    done_seq = max(
        int.from_bytes(body[4:6], "big")
        for d in server_flight
        for ctype, _, _, body in records_of(d)
        if ctype == ContentType.HANDSHAKE
    )
    forged = [_forged(HandshakeType.SERVER_HELLO_DONE, done_seq, 60 + i) for i in range(20)]
    sent = _blast(client, forged, 0.01, 0.5)
    print(f"\n[amplification] client (flight {own_flight} B): 20 forged ServerHelloDone got "
          f"{sent} B back")  # fmt: skip
    assert sent == 0
    # The server's real retransmission is still answered, once.
    later = 20 * 0.5
    sent = 0
    for datagram in server_flight:
        client.receive_datagram(datagram, later)
        sent += drain(client, later).sent_bytes
    assert sent == own_flight


def test_lost_flight_is_resent_on_the_peers_retransmission() -> None:
    """The genuine case still works: the server's PSK flight is lost, the
    client's timer resends its hello, and the server answers it at once rather
    than at its own (here much later) timer."""
    client = DtlsConnection(client_config(), peer=("192.0.2.2", 5684))
    server = DtlsConnection(server_config(initial_timeout=10.0), peer=("192.0.2.1", 4000))
    client.connect(0.0)
    server.receive_datagram(client.datagrams_to_send(0.0)[0], 0.0)
    server.datagrams_to_send(0.0)  # lost
    timer = client.get_timer()
    assert timer is not None
    client.handle_timer(timer)
    [again] = client.datagrams_to_send(timer)
    server.receive_datagram(again, timer)
    answer = server.datagrams_to_send(timer)
    assert answer and answer[0][13] == HandshakeType.SERVER_HELLO
    assert server.counters["retransmissions"] == 1
    for datagram in answer:
        client.receive_datagram(datagram, timer)
    assert client.state is State.CLIENT_WAIT_CHANGE_CIPHER_SPEC
