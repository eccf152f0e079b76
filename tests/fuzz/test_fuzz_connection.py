"""Hypothesis fuzzing of the sans-I/O DTLS connection (RFC 6347 §4.1.2.7:
invalid records are dropped, never raised).

Random and mutated datagrams are fed to client and server connections in
every handshake state; nothing may raise out of receive_datagram or
handle_timer, no input may reach the internal_error path (that would be a
defect), and a connection that was established stays usable unless a valid
close_notify or fatal alert could have been forged (impossible without the
keys). Forged handshake records, with the peer's own message_seq among them,
never get back more than three times their size (RFC 6347 §4.2.4, issue 12
item 7), and hellos whose sequence numbers leave no room are refused without
a trace (item 1).
"""

from __future__ import annotations

from dtls_pair import Pair, client_config, handshake, server_config
from fuzz_settings import SETTINGS
from hypothesis import given
from hypothesis import strategies as st

from dtlsfast.connection import (
    EPOCH0_SEQUENCE_RESERVE,
    MAX_HELLO_MESSAGE_SEQ,
    MAX_SEQUENCE_NUMBER,
    DtlsConnection,
    State,
)


def _record(ctype: int, epoch: int, seq: int, body: bytes) -> bytes:
    return (
        bytes([ctype, 0xFE, 0xFD])
        + epoch.to_bytes(2, "big")
        + seq.to_bytes(6, "big")
        + len(body).to_bytes(2, "big")
        + body
    )


def _handshake_fragment(msg_type: int, length: int, seq: int, offset: int, body: bytes) -> bytes:
    return (
        bytes([msg_type])
        + length.to_bytes(3, "big")
        + seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + len(body).to_bytes(3, "big")
        + body
    )


handshake_bodies = st.builds(
    _handshake_fragment,
    st.sampled_from([0, 1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 20, 99]),
    st.integers(0, 300),
    st.integers(0, 6),
    st.integers(0, 300),
    st.binary(max_size=120),
)
records = st.one_of(
    st.builds(
        _record,
        st.sampled_from([20, 21, 22, 23, 25, 99]),
        st.integers(0, 3),
        st.integers(0, 20),
        st.one_of(st.binary(max_size=80), handshake_bodies),
    ),
    st.binary(max_size=60),
)
datagrams = st.lists(records, min_size=1, max_size=4).map(b"".join)


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for position, bit in flips:
        if out:
            out[position % len(out)] ^= 1 << bit
    return bytes(out[: max(0, len(out) - cut)])


mutations = st.tuples(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=4),
                      st.integers(0, 20))  # fmt: skip


def _no_defect(*conns: DtlsConnection | None) -> None:
    for conn in conns:
        if conn is not None:
            assert conn.counters["internal_errors"] == 0, "a defect was reached"


def _pair_at(step: int) -> Pair:
    """A pair run forward ``step`` deliveries into its handshake."""
    pair = Pair(client_config(), server_config())
    pair.start()
    for _ in range(step):
        pair.run(until=pair.now + 0.006, stop_when_established=False)
    return pair


@SETTINGS
@given(st.lists(datagrams, min_size=1, max_size=6), st.integers(0, 8))
def test_random_datagrams_in_every_state(batch: list[bytes], step: int) -> None:
    pair = _pair_at(step)
    targets = [pair.client] + ([pair.server] if pair.server is not None else [])
    for conn in targets:
        for datagram in batch:
            conn.receive_datagram(datagram, pair.now)
            conn.datagrams_to_send(pair.now)
            while conn.next_event() is not None:
                pass
        conn.handle_timer(pair.now + 100)
    _no_defect(*targets)


@SETTINGS
@given(st.data(), mutations)
def test_mutated_handshake_flights(
    data: st.DataObject, mutation: tuple[list[tuple[int, int]], int]
) -> None:
    """Replay the real handshake with one datagram mutated: either the pair
    still completes, or one side fails with a typed error event."""
    reference = handshake()
    sent = reference.to_server
    index = data.draw(st.integers(0, len(sent) - 1))
    server = DtlsConnection(server_config(), peer=("127.0.0.1", 1))
    for i, datagram in enumerate(sent[1:], start=1):  # the gate admitted the hello
        if i == index:
            datagram = _mutate(datagram, *mutation)
        server.receive_datagram(datagram, 0.0)
        server.datagrams_to_send(0.0)
    while (event := server.next_event()) is not None:
        assert event is not None
    server.handle_timer(1000.0)
    _no_defect(server)


@SETTINGS
@given(st.lists(datagrams, min_size=1, max_size=8))
def test_established_sessions_survive_garbage(batch: list[bytes]) -> None:
    pair = handshake()
    assert pair.server is not None
    for datagram in batch:
        pair.server.receive_datagram(datagram, pair.now)
        pair.client.receive_datagram(datagram, pair.now)
    # Without the keys nothing can close or corrupt an established session.
    assert pair.server.established and pair.client.established
    pair.client.send(b"still here")
    pair.transfer()
    assert pair.server_events[-1].data == b"still here"  # type: ignore[attr-defined]


def _cid_record(epoch: int, seq: int, cid: bytes, body: bytes) -> bytes:
    """A tls12_cid record (RFC 9146 §4): the CID sits before the length."""
    return (
        bytes([25, 0xFE, 0xFD])
        + epoch.to_bytes(2, "big")
        + seq.to_bytes(6, "big")
        + cid
        + len(body).to_bytes(2, "big")
        + body
    )


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 20),
            st.one_of(st.none(), st.binary(max_size=10)),  # None: the receiver's real CID
            st.binary(max_size=80),
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(datagrams, max_size=4),
)
def test_established_cid_sessions_survive_garbage(
    forged: list[tuple[int, int, bytes | None, bytes]], batch: list[bytes]
) -> None:
    pair = handshake(client_config(connection_id_length=3), server_config(connection_id_length=8))
    assert pair.server is not None
    for conn, cid in (
        (pair.server, pair.server.connection_id),
        (pair.client, pair.client.connection_id),
    ):
        assert cid is not None
        for epoch, seq, other, body in forged:
            conn.receive_datagram(
                _cid_record(epoch, seq, cid if other is None else other, body), pair.now
            )
        for datagram in batch:
            conn.receive_datagram(datagram, pair.now)
    assert pair.server.established and pair.client.established
    pair.client.send(b"still here")
    pair.transfer()
    assert pair.server_events[-1].data == b"still here"  # type: ignore[attr-defined]


# ---------------------------------------------- bounded retransmissions


forged_handshake = st.builds(
    lambda msg_type, seq_delta, length, body, record_seq: _record(
        22, 0, record_seq, _handshake_fragment(msg_type, length, seq_delta, 0, body)
    ),
    st.sampled_from([1, 2, 11, 12, 14, 16, 20]),
    st.integers(0, 4),  # message_seq: the peer's last ones among them
    st.integers(0, 64),
    st.binary(max_size=64),
    st.integers(0, 50),
)


@SETTINGS
@given(
    st.integers(0, 8),
    st.lists(st.tuples(forged_handshake, st.floats(0.0, 3.0)), min_size=1, max_size=30),
)
def test_forged_handshake_records_are_not_amplified(
    step: int, forged: list[tuple[bytes, float]]
) -> None:
    """At any point of the handshake, forged epoch-0 handshake records (the
    peer's own message_seq values among them) get back at most three times
    their size; timers are not fired, so all output answers the forgeries."""
    pair = _pair_at(step)
    pair.run(until=pair.now + 0.006, stop_when_established=False)
    pair._collect()
    targets = [pair.client] + ([pair.server] if pair.server is not None else [])
    for conn in targets:
        conn.datagrams_to_send(pair.now)
        now, received, sent = pair.now, 0, 0
        for datagram, gap in forged:
            now += gap
            conn.receive_datagram(datagram, now)
            received += len(datagram)
            sent += sum(len(d) for d in conn.datagrams_to_send(now))
        assert sent <= 3 * received, (conn.state, sent, received)
    _no_defect(*targets)


@SETTINGS
@given(
    st.one_of(st.integers(0, 50), st.integers((1 << 48) - (1 << 33), (1 << 48) - 1)),
    st.one_of(st.integers(0, 20), st.integers(0xFFF0, 0xFFFF)),
)
def test_hellos_without_room_are_refused(record_seq: int, message_seq: int) -> None:
    client = DtlsConnection(client_config(), peer=("192.0.2.2", 5684))
    client.connect(0.0)
    [datagram] = client.datagrams_to_send(0.0)
    body = datagram[13:]
    hello = _record(22, 0, record_seq, body[:4] + message_seq.to_bytes(2, "big") + body[6:])
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    server.receive_datagram(hello, 0.0)
    out = server.datagrams_to_send(0.0)
    refused = (
        record_seq > MAX_SEQUENCE_NUMBER - EPOCH0_SEQUENCE_RESERVE
        or message_seq > MAX_HELLO_MESSAGE_SEQ
    )
    if refused:
        assert out == [] and server.state is State.SERVER_LISTEN
        assert server.drops["hello_sequence_exhausted"] == 1
    else:
        assert out and server.state is State.SERVER_WAIT_CLIENT_KEY_EXCHANGE
        # The whole handshake (and its retransmissions) fits.
        for _ in range(server.config.max_retransmissions + 1):
            timer = server.get_timer()
            assert timer is not None
            server.handle_timer(timer)
        assert server.closed
    _no_defect(server)
