"""Connection ID negotiation and records (RFC 9146) between two sans-I/O
connections: both sides, one side only, zero-length CIDs, and what the record
layer does with records that carry the wrong CID or none."""

from __future__ import annotations

import pytest
from dtls_pair import Network, Pair, client_config, handshake, server_config

from dtlsfast import _core
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.constants import ExtensionType
from dtlsfast.handshake.messages import ClientHello, find_extension

TLS12_CID = 25


def exchange(pair: Pair, data: bytes = b"ping") -> None:
    """Client -> server and back; both must receive the data."""
    pair.client.send(data)
    pair.transfer()
    assert ApplicationDataReceived(data) in pair.server_events
    assert pair.server is not None
    pair.server.send(data.upper())
    pair.transfer()
    assert ApplicationDataReceived(data.upper()) in pair.client_events


def record_types(datagrams: list[bytes], cid_length: int) -> list[tuple[int, int]]:
    """(content_type, epoch) of every record sent."""
    return [(r[0], r[2]) for d in datagrams for r in _core.parse_records_cid(d, cid_length)]


def client_hello_cid(pair: Pair) -> bytes | None:
    first = pair.to_server[0]
    hello = ClientHello.decode(first[13 + 12 :])
    return find_extension(hello.extensions, ExtensionType.CONNECTION_ID)


@pytest.mark.parametrize("backend", ["rust", "pure"])
def test_server_cid_only_client_sends_zero_length(backend: str) -> None:
    # The usual deployment: the client's address changes, so only the server
    # needs a CID; the client announces an empty one (RFC 9146 §3).
    pair = handshake(
        client_config(connection_id_length=0, backend=backend),
        server_config(connection_id_length=8, backend=backend),
    )
    assert pair.established and pair.server is not None
    assert client_hello_cid(pair) == b"\x00"
    server_cid = pair.server.connection_id
    assert server_cid is not None and len(server_cid) == 8
    assert pair.client.peer_connection_id == server_cid
    assert pair.client.connection_id == b""
    assert pair.server.peer_connection_id == b""
    exchange(pair)
    # Client records from epoch 1 on are tls12_cid with the server's CID;
    # the server's records stay in the RFC 6347 format.
    sent = record_types(pair.to_server, 8)
    assert {t for t, e in sent if e >= 1} == {TLS12_CID}
    assert all(
        r[4] == server_cid
        for d in pair.to_server
        for r in _core.parse_records_cid(d, 8)
        if r[0] == TLS12_CID
    )
    assert TLS12_CID not in {t for t, _ in record_types(pair.to_client, 0)}
    assert not pair.server.drops and not pair.client.drops


def test_client_cid_with_a_zero_length_server_cid() -> None:
    pair = handshake(client_config(connection_id_length=5), server_config(connection_id_length=0))
    assert pair.established and pair.server is not None
    assert pair.server.peer_connection_id == pair.client.connection_id
    assert pair.client.peer_connection_id == b""
    exchange(pair)
    assert {t for t, e in record_types(pair.to_client, 5) if e >= 1} == {TLS12_CID}
    assert TLS12_CID not in {t for t, _ in record_types(pair.to_server, 0)}


def test_cids_in_both_directions() -> None:
    pair = handshake(client_config(connection_id_length=4), server_config(connection_id_length=6))
    assert pair.established and pair.server is not None
    assert pair.client.connection_id is not None and len(pair.client.connection_id) == 4
    assert pair.server.peer_connection_id == pair.client.connection_id
    exchange(pair)
    assert {t for t, e in record_types(pair.to_client, 4) if e >= 1} == {TLS12_CID}
    assert {t for t, e in record_types(pair.to_server, 6) if e >= 1} == {TLS12_CID}
    # The CID costs its length plus the inner type byte of every record.
    plain = handshake()
    assert pair.client.max_payload == plain.client.max_payload - 7
    assert pair.server.max_payload == plain.server.max_payload - 5


@pytest.mark.parametrize(
    ("client_len", "server_len"), [(None, 8), (0, None), (4, None), (None, None)]
)
def test_one_side_only_negotiates_nothing(client_len: int | None, server_len: int | None) -> None:
    pair = handshake(
        client_config(connection_id_length=client_len),
        server_config(connection_id_length=server_len),
    )
    assert pair.established and pair.server is not None
    for conn in (pair.client, pair.server):
        assert conn.connection_id is None and conn.peer_connection_id is None
    exchange(pair)
    assert TLS12_CID not in {t for t, _ in record_types(pair.to_server, 0)}
    assert TLS12_CID not in {t for t, _ in record_types(pair.to_client, 0)}
    assert (client_hello_cid(pair) is not None) == (client_len is not None)


def test_zero_length_both_ways_keeps_the_plain_format() -> None:
    pair = handshake(client_config(connection_id_length=0), server_config(connection_id_length=0))
    assert pair.established and pair.server is not None
    assert pair.server.connection_id == b"" and pair.server.peer_connection_id == b""
    exchange(pair)
    assert TLS12_CID not in {t for t, _ in record_types(pair.to_server + pair.to_client, 0)}


@pytest.mark.parametrize("seed", range(4))
def test_cid_handshake_through_loss_and_reordering(seed: int) -> None:
    pair = handshake(
        client_config(connection_id_length=3),
        server_config(connection_id_length=5),
        Network(loss=0.3, reorder=0.3, duplicate=0.2, seed=seed),
    )
    assert pair.established
    pair.network = Network()
    exchange(pair)


def test_records_with_wrong_or_missing_cid_are_dropped() -> None:
    pair = handshake(client_config(connection_id_length=0), server_config(connection_id_length=8))
    assert pair.server is not None and pair.server.connection_id is not None
    cid = pair.server.connection_id
    pair.client.send(b"one")
    (datagram,) = pair.client.datagrams_to_send(pair.now)
    ((ctype, version, epoch, seq, got_cid, fragment),) = _core.parse_records_cid(datagram, 8)
    assert (ctype, got_cid) == (TLS12_CID, cid)

    # Another CID of the same length: dropped before any decryption.
    other = bytes(b ^ 0xFF for b in cid)
    pair.inject_to_server(datagram[:11] + other + datagram[19:])
    # The same protected bytes as a plain record: no CID where one is required.
    pair.inject_to_server(_core.encode_record(23, version, epoch, seq, fragment))
    pair.transfer()
    assert pair.server.drops["bad_cid"] == 2
    assert not any(isinstance(e, ApplicationDataReceived) for e in pair.server_events)

    # The genuine record is accepted once; its replay is dropped.
    pair.inject_to_server(datagram)
    pair.inject_to_server(datagram)
    pair.transfer()
    assert pair.server_events.count(ApplicationDataReceived(b"one")) == 1
    assert pair.server.drops["replay"] == 1

    # A newer sequence number on the same bytes fails authentication (the
    # additional data covers it), and so does a flipped bit.
    newer = datagram[:5] + (seq + 100).to_bytes(6, "big") + datagram[11:]
    flipped = bytearray(newer)
    flipped[-1] ^= 1
    pair.inject_to_server(newer)
    pair.inject_to_server(bytes(flipped))
    pair.transfer()
    assert pair.server.drops["bad_auth"] == 2
    assert pair.server_events.count(ApplicationDataReceived(b"one")) == 1


def test_cid_record_to_a_peer_without_cid_is_dropped() -> None:
    pair = handshake()
    assert pair.server is not None
    pair.client.send(b"x")
    (datagram,) = pair.client.datagrams_to_send(pair.now)
    pair.inject_to_server(bytes([TLS12_CID]) + datagram[1:])
    pair.transfer()
    assert pair.server.drops["bad_cid"] == 1


def test_malformed_connection_id_extension_is_a_decode_error() -> None:
    pair = Pair(client_config(connection_id_length=2), server_config(connection_id_length=8))
    pair.start()
    hello = pair.client._client_hello
    assert hello is not None
    # The ClientHello sent again with the cookie carries a bad length prefix.
    random, session_id, suites, extensions = hello
    pair.client._client_hello = (
        random,
        session_id,
        suites,
        [(t, b"\x05ab" if t == ExtensionType.CONNECTION_ID else d) for t, d in extensions],
    )
    pair.run()
    assert not pair.established
    assert pair.server is not None and pair.server.closed
    assert any(
        isinstance(e, ConnectionClosed) and "connection_id" in str(e.error)
        for e in pair.server_events
    )


@pytest.mark.parametrize("length", [-1, 256, True, 2.0])
def test_connection_id_length_is_checked(length: object) -> None:
    with pytest.raises(ConfigurationError, match="connection_id_length"):
        client_config(connection_id_length=length)
