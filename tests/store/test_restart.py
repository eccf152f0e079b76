"""A settled server session saved to the SQLite store and restored into a
new process's table: the client goes on with no handshake, its echo is
answered at sequence numbers past the reserved limit, and a close_notify
still closes. On both cores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "connection"))

from dtls_pair import client_config, handshake, server_config

from dtlsfast.backend import load_backend
from dtlsfast.connection import DtlsConnection
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed
from dtlsfast.exceptions import LocalProtocolError
from dtlsfast.handshake.constants import ContentType
from dtlsfast.settled_connection import SettledConnection
from dtlsfast.store import SqliteSessionStore, StateSaver

RESERVE = 1 << 12


@pytest.mark.parametrize("backend", ["rust", "pure"])
def test_a_restored_session_needs_no_handshake(backend: str, tmp_path: Path) -> None:
    pair = handshake(client_config(backend=backend), server_config(backend=backend))
    client, server = pair.client, pair.server
    first = client.records.seal(ContentType.APPLICATION_DATA, b"hello")
    server.receive_datagram(first, 1.0)
    assert isinstance(server, DtlsConnection) and server.settled
    table = load_backend(backend).SessionTable(4)
    settled = server.settle_into(table, 7)
    max_payload = settled.max_payload

    store = SqliteSessionStore(tmp_path / "state.db", b"k" * 32)
    saver = StateSaver(store, reserve=RESERVE)
    saver.changed(b"peer-1")
    saver.flush(
        2.0,
        lambda key, limit: settled.session_record(key, limit, 1_700_000_000),
        lambda key: table.next_write_sequence(7),
    )
    store.close()  # the process ends without close_notify

    reopened = SqliteSessionStore(tmp_path / "state.db", b"k" * 32)
    (saved,) = list(reopened.iterate())
    new_table = load_backend(backend).SessionTable(4)
    restored = SettledConnection.from_record(
        new_table,
        3,
        saved,
        config=settled.config,
        peer=settled.peer,
        max_payload=max_payload,
        now=3.0,
    )
    reopened.close()
    assert restored.psk_identity == settled.psk_identity
    assert restored.cipher_suite == settled.cipher_suite
    assert restored.extended_master_secret == settled.extended_master_secret
    assert new_table.next_write_sequence(3) == table.next_write_sequence(7) + RESERVE

    restored.receive_datagram(client.records.seal(ContentType.APPLICATION_DATA, b"again"), 4.0)
    assert restored.next_event() == ApplicationDataReceived(b"again")
    restored.send(b"answer")
    for datagram in restored.datagrams_to_send(4.0):
        client.receive_datagram(datagram, 4.0)
    assert client.next_event() == ApplicationDataReceived(b"answer")
    # A replay of what the old process had already received is still refused.
    restored.receive_datagram(first, 4.5)
    assert restored.next_event() is None and dict(restored.drops) == {"replay": 1}
    client.close()
    for datagram in client.datagrams_to_send(5.0):
        restored.receive_datagram(datagram, 5.0)
    events = [restored.next_event(), restored.next_event()]
    assert isinstance(events[-1], ConnectionClosed)


def test_an_established_connection_not_in_the_table_is_saved_too(tmp_path: Path) -> None:
    """A server connection that could not join the table (it was full) is
    exported through a scratch table, and restored into one."""
    pair = handshake(client_config(), server_config())
    client, server = pair.client, pair.server
    assert isinstance(server, DtlsConnection) and server.established
    scratch = load_backend("rust").SessionTable(1)
    record = server.session_record(b"peer-2", 1 << 20, 1_700_000_000, scratch)
    assert record is not None and len(scratch) == 0
    assert record.psk_identity == server.psk_identity
    table = load_backend("rust").SessionTable(4)
    restored = SettledConnection.from_record(
        table, 1, record, config=server.config, peer=None, max_payload=1000, now=1.0
    )
    assert table.next_write_sequence(1) == 1 << 20
    restored.receive_datagram(client.records.seal(ContentType.APPLICATION_DATA, b"hi"), 2.0)
    assert restored.next_event() == ApplicationDataReceived(b"hi")
    restored.send(b"back")
    for datagram in restored.datagrams_to_send(2.0):
        client.receive_datagram(datagram, 2.0)
    assert client.next_event() == ApplicationDataReceived(b"back")


def test_a_restored_session_keeps_the_peers_record_size_limit(tmp_path: Path) -> None:
    """RFC 8449 §4: records to the peer stay within the limit it sent, after
    a restart as before."""
    from dtlsfast.store.connection_state import restored_max_payload

    pair = handshake(client_config(), server_config())
    client, server = pair.client, pair.server
    assert isinstance(server, DtlsConnection)
    server.receive_datagram(client.records.seal(ContentType.APPLICATION_DATA, b"hi"), 1.0)
    server.peer_record_size_limit = 100  # as a ClientHello with record_size_limit sets it
    table = load_backend("rust").SessionTable(4)
    settled = server.settle_into(table, 7)
    assert settled.max_payload == 100 and settled.record_size_limit == 100
    store = SqliteSessionStore(tmp_path / "state.db", b"k" * 32)
    record = settled.session_record(b"peer-1", 1 << 20, 1_700_000_000)
    assert record is not None and record.record_size_limit == 100
    store.save([record])
    store.close()

    with SqliteSessionStore(tmp_path / "state.db", b"k" * 32) as reopened:
        (saved,) = list(reopened.iterate())
    assert saved.record_size_limit == 100
    payload = restored_max_payload(settled.config, saved)
    assert payload == 100
    new_table = load_backend("rust").SessionTable(4)
    restored = SettledConnection.from_record(
        new_table, 3, saved, config=settled.config, peer=None, max_payload=payload, now=2.0
    )
    assert restored.max_payload == 100 and restored.record_size_limit == 100
    with pytest.raises(LocalProtocolError):
        restored.send(b"x" * 101)
    # Saved again, the limit goes along; one without a limit gets the MTU's.
    again = restored.session_record(b"peer-1", 1 << 21, 1_700_000_000)
    assert again is not None and again.record_size_limit == 100
    again.record_size_limit = None
    assert restored_max_payload(settled.config, again) > 100
