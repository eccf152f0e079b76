"""What the memory savings of settled sessions must not change.

The kept final flight (RFC 6347 §4.2.4) is still sent again when the
client repeats its Finished after the server settled, and is let go as soon
as the peer's authenticated application data shows it arrived, whichever
path opened that data (the settled connection, the session table's single
datagram path, or the table's batch path as the sweep reads it); the client
random lives in the kept flight. See benches/session_memory.py for the
memory itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from dtls_pair import PSK
from test_settle_at_handshake import _events, _lose_the_final_flight

from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.events import ApplicationDataReceived
from dtlsfast.server import DtlsServer, ServerLimits
from dtlsfast.session import DtlsSession
from dtlsfast.settled_connection import FINAL_FLIGHT_LIFETIME, SettledConnection


def _repeat_finished(client: DtlsConnection, slim: SettledConnection) -> list[bytes]:
    """The client's timer fires and it repeats its last flight; what the
    settled server answers."""
    timer = client.get_timer()
    assert timer is not None
    client.handle_timer(timer)
    answers: list[bytes] = []
    for datagram in client.datagrams_to_send(timer):
        slim.receive_datagram(datagram, timer)
        answers += slim.datagrams_to_send(timer)
    return answers


def test_the_client_random_is_kept_with_the_final_flight(tmp_path: Path) -> None:
    pair, slim, _ = _lose_the_final_flight("psk", tmp_path)
    assert slim.holds_final_flight
    assert slim.client_random == pair.client.client_random
    assert len(slim.client_random) == 32
    # A retransmission of the flight keeps it (and the random) as they were.
    assert _repeat_finished(pair.client, slim)
    assert slim.client_random == pair.client.client_random
    slim.peer_has_final_flight()
    assert slim.client_random == b""


def test_the_final_flight_goes_on_the_peers_application_data_from_the_table(
    tmp_path: Path,
) -> None:
    """The table opened the peer's data (the fast path): the endpoint tells
    the slim connection, and a later repeat of the Finished (a stale copy) is
    not answered."""
    pair, slim, _ = _lose_the_final_flight("psk", tmp_path)
    slim.peer_has_final_flight()
    assert not slim.holds_final_flight
    assert _repeat_finished(pair.client, slim) == []
    assert slim.counters.get("retransmissions", 0) == 0


def test_the_sweep_lets_the_flight_go_once_the_table_opened_data(tmp_path: Path) -> None:
    pair, slim, _ = _lose_the_final_flight("psk", tmp_path)
    settled_at = pair.now
    # The table's activity time as the session joined it: no data yet.
    slim.expire_final_flight(settled_at + 1, table_active=settled_at)
    assert slim.holds_final_flight
    slim.expire_final_flight(settled_at + 1, table_active=None)
    assert slim.holds_final_flight
    # The table opened application data of the peer after it joined.
    slim.expire_final_flight(settled_at + 2, table_active=settled_at + 1.5)
    assert not slim.holds_final_flight
    # Still the lifetime alone when the table saw nothing.
    pair2, slim2, _ = _lose_the_final_flight("psk", tmp_path)
    slim2.expire_final_flight(pair2.now + FINAL_FLIGHT_LIFETIME + 1, table_active=pair2.now)
    assert not slim2.holds_final_flight


# -- through the server -----------------------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.sent: dict[Any, list[bytes]] = {}

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.setdefault(addr, []).append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class _Listener:
    def __init__(self) -> None:
        self.sessions: list[DtlsSession] = []

    def session_opened(self, session: DtlsSession) -> None:
        self.sessions.append(session)


async def test_the_server_resends_its_lost_final_flight_after_settling_then_drops_it() -> None:
    """Through DtlsServer: the server's final flight is lost, the session
    settles at once; the client's repeat of its Finished is answered from
    the compact form; the client's first application data (opened by the
    session table) lets the flight go."""
    listener = _Listener()
    server = DtlsServer(
        listener,
        DtlsConfiguration.server(psk_store={PSK[0]: PSK[1]}),
        ServerLimits(hello_rate_per_prefix=1e9, hello_burst_per_prefix=1 << 20),
        300.0,
    )
    transport = _Transport()
    server.connection_made(transport)  # type: ignore[arg-type]
    addr = ("127.9.0.1", 40000)
    client = DtlsConnection(DtlsConfiguration.client(psk=PSK), peer=("127.0.0.1", 5684))
    client.connect(0.0)
    now = 0.0
    for _ in range(10):
        for datagram in client.datagrams_to_send(now):
            server.datagram_received(datagram, addr)
        answers = transport.sent.pop(addr, [])
        if server.counters["sessions_in_table"]:
            break  # these answers are the final flight: lost
        for datagram in answers:
            client.receive_datagram(datagram, now)
    assert server.counters["sessions_in_table"] == 1 and not client.established
    (session,) = server.sessions
    slim = session.connection
    assert isinstance(slim, SettledConnection) and slim.holds_final_flight
    assert slim.client_random == client.client_random
    timer = client.get_timer()
    assert timer is not None
    client.handle_timer(timer)
    for datagram in client.datagrams_to_send(timer):
        server.datagram_received(datagram, addr)
    answers = transport.sent.pop(addr, [])
    assert answers, "the repeated Finished is answered with the final flight"
    for datagram in answers:
        client.receive_datagram(datagram, timer)
    assert client.established
    assert slim.counters["retransmissions"] == 1 and slim.holds_final_flight
    received: list[bytes] = []
    session.set_receiver(lambda data, _session: received.append(data))
    client.send(b"ping")
    for datagram in client.datagrams_to_send(timer):
        server.datagram_received(datagram, addr)
    assert received == [b"ping"]
    assert not slim.holds_final_flight and slim.client_random == b""
    # The session goes on as before.
    await session.send(b"pong")
    for datagram in transport.sent.pop(addr, []):
        client.receive_datagram(datagram, timer)
    assert _events(client)[-1] == ApplicationDataReceived(b"pong")
    await asyncio.sleep(0)
    server.close()


def test_psk_identities_are_shared_by_sessions(tmp_path: Path) -> None:
    _, one, _ = _lose_the_final_flight("psk", tmp_path)
    _, two, _ = _lose_the_final_flight("psk", tmp_path)
    assert one.psk_identity == two.psk_identity == PSK[0]
    assert one.psk_identity is two.psk_identity


@pytest.mark.parametrize("seconds", [0.0, 30.0])
def test_the_kept_flight_of_an_idle_session_lasts_its_lifetime(
    seconds: float, tmp_path: Path
) -> None:
    """No data from the peer: kept for the whole 2MSL (RFC 6347 §4.2.4)."""
    pair, slim, _ = _lose_the_final_flight("psk", tmp_path)
    slim.expire_final_flight(pair.now + seconds, table_active=pair.now)
    assert slim.holds_final_flight
    assert _repeat_finished(pair.client, slim)
