"""The abbreviated handshake (RFC 5246 §7.3, RFC 6347 §4.2.4) by ticket (RFC
5077) and by session ID, sans-I/O: its flights, through loss, reordering and
duplication, and its retransmissions; the cookie exchange still comes first."""

from __future__ import annotations

from typing import Any

import pytest
from dtls_pair import CLIENT_ADDR, Network, Pair, client_config, handshake, server_config

from dtlsfast.events import ApplicationDataReceived, HandshakeCompleted
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.constants import ContentType, HandshakeType
from dtlsfast.resumption import SavedSession, ServerResumption, TicketKeys

T0 = 1_800_000_000.0
KINDS = ["ticket", "session_id"]


class Clock:
    """Wall-clock time for the server's tickets, moved by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _server(resumption: ServerResumption, **kwargs: Any) -> Any:
    return server_config(resumption=resumption, **kwargs)


def first_session(
    kind: str, resumption: ServerResumption, **kwargs: Any
) -> tuple[SavedSession, Pair]:
    """A full handshake that leaves a session to resume (a ticket, or a
    session ID when the client asks for no ticket)."""
    pair = handshake(
        client_config(session_tickets=kind == "ticket", **kwargs), _server(resumption, **kwargs)
    )
    assert pair.established
    saved = pair.client.resumption
    assert saved is not None
    assert (saved.ticket is not None) == (kind == "ticket")
    return saved, pair


def resume(
    saved: SavedSession,
    resumption: ServerResumption,
    network: Network | None = None,
    *,
    kind: str = "ticket",
    **kwargs: Any,
) -> Pair:
    pair = Pair(
        client_config(session_tickets=kind == "ticket", **kwargs),
        _server(resumption, **kwargs),
        network,
        resume=saved,
    )
    pair.start()
    pair.run()
    return pair


def _handshake_types(datagrams: list[bytes]) -> list[int]:
    """Message types of the epoch-0 handshake records (unfragmented, one
    message per record is enough for these flights), and 20 for a CCS."""
    out = []
    for datagram in datagrams:
        offset = 0
        while offset + 13 <= len(datagram):
            ctype, epoch = datagram[offset], datagram[offset + 3 : offset + 5]
            length = int.from_bytes(datagram[offset + 11 : offset + 13], "big")
            payload = datagram[offset + 13 : offset + 13 + length]
            if ctype == ContentType.CHANGE_CIPHER_SPEC:
                out.append(20)
            elif ctype == ContentType.HANDSHAKE and epoch == b"\x00\x00":
                out.append(payload[0])
            elif ctype == ContentType.HANDSHAKE:
                out.append(-1)  # an encrypted Finished
            offset += 13 + length
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_abbreviated_handshake_flights(kind: str) -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session(kind, resumption)
    pair = resume(saved, resumption, kind=kind)
    assert pair.established
    assert pair.client.resumed == kind and pair.server is not None and pair.server.resumed == kind
    assert resumption.counters[f"resumed_{kind}"] == 1
    # Client: ClientHello, ClientHello with the cookie, then CCS + Finished.
    assert _handshake_types(pair.to_server) == [
        HandshakeType.CLIENT_HELLO,
        HandshakeType.CLIENT_HELLO,
        20,
        -1,
    ]
    # Server: HelloVerifyRequest, then ServerHello, CCS, Finished: its Finished first.
    assert _handshake_types(pair.to_client) == [
        HandshakeType.HELLO_VERIFY_REQUEST,
        HandshakeType.SERVER_HELLO,
        20,
        -1,
    ]
    completed = [e for e in pair.server_events if isinstance(e, HandshakeCompleted)]
    assert completed[0].psk_identity == b"CoAP" and completed[0].extended_master_secret
    pair.client.send(b"resumed")
    pair.transfer()
    assert ApplicationDataReceived(b"resumed") in pair.server_events
    pair.server.send(b"answer")
    pair.transfer()
    assert ApplicationDataReceived(b"answer") in pair.client_events
    assert pair.server.settled  # nothing kept for retransmission
    # The session resumed stays resumable, after close_notify too (RFC 5246 §7.2.1).
    assert pair.client.resumption == saved
    pair.client.close()
    assert pair.client.closed and pair.client.resumption == saved


@pytest.mark.parametrize("kind", KINDS)
def test_abbreviated_handshake_on_the_pure_backend(kind: str) -> None:
    """The pure-Python twin of the core runs the same handshake, both sides."""
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session(kind, resumption, backend="pure")
    pair = resume(saved, resumption, Network(loss=0.2, seed=3), kind=kind, backend="pure")
    assert pair.established and pair.client.resumed == kind
    # And across backends: a session from the Rust core resumes on the pure one.
    rust_saved, _ = first_session(kind, resumption)
    assert resume(rust_saved, resumption, kind=kind, backend="pure").client.resumed == kind


def test_full_handshake_issues_a_ticket_in_the_last_flight() -> None:
    resumption = ServerResumption(clock=Clock())
    _, pair = first_session("ticket", resumption)
    types = _handshake_types(pair.to_client)
    # ... ServerHelloDone, then NewSessionTicket, CCS, Finished (RFC 5077 §3.3).
    assert types[-3:] == [HandshakeType.NEW_SESSION_TICKET, 20, -1]
    assert resumption.counters["tickets_issued"] == 1
    assert len(resumption.cache or ()) == 0  # the ticket holds it, not the server


def test_session_ids_only_and_tickets_only() -> None:
    by_id = ServerResumption(tickets=False, clock=Clock())
    saved, _ = first_session("session_id", by_id)
    assert resume(saved, by_id, kind="session_id").client.resumed == "session_id"
    # The client asks for a ticket, the server issues none: its session ID serves.
    pair = handshake(client_config(), _server(by_id))
    assert pair.client.resumption is not None and pair.client.resumption.ticket is None
    by_ticket = ServerResumption(session_ids=False, clock=Clock())
    saved, _ = first_session("ticket", by_ticket)
    assert not saved.session_id
    assert resume(saved, by_ticket).client.resumed == "ticket"
    # Neither: nothing to resume.
    plain = handshake(client_config(session_tickets=False), _server(by_ticket))
    assert plain.client.resumption is None
    with pytest.raises(ConfigurationError, match="resumption=None"):
        ServerResumption(session_ids=False, tickets=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(10))
def test_abbreviated_handshake_through_30_percent_loss(kind: str, seed: int) -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session(kind, resumption)
    pair = resume(saved, resumption, Network(loss=0.3, seed=seed), kind=kind)
    assert pair.established, (pair.client_events, pair.server_events)
    assert pair.client.resumed == kind
    pair.network.loss = 0.0
    pair.client.send(b"after loss")
    pair.transfer()
    assert ApplicationDataReceived(b"after loss") in pair.server_events


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(8))
def test_abbreviated_handshake_through_reordering_and_duplication(kind: str, seed: int) -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session(kind, resumption)
    pair = resume(saved, resumption, Network(duplicate=0.3, reorder=0.5, seed=seed), kind=kind)
    assert pair.established and pair.client.resumed == kind
    assert pair.now < 10.0


@pytest.mark.parametrize("seed", range(8))
def test_abbreviated_handshake_through_everything(seed: int) -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption, mtu=256)
    net = Network(loss=0.3, duplicate=0.2, reorder=0.3, seed=200 + seed)
    pair = resume(saved, resumption, net, mtu=256)
    assert pair.established and pair.client.resumed == "ticket"


def _run_until_server_flight(pair: Pair) -> None:
    """Deliver everything until the server has sent its abbreviated flight."""
    pair.start()
    while pair.server is None or pair.server.state.value != "server_wait_change_cipher_spec":
        pair.run(until=pair.now + 0.001, stop_when_established=False)
        pair.now += 0.001


def test_lost_client_flight_is_resent_when_the_server_repeats_its_own() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    pair = Pair(client_config(), _server(resumption), resume=saved)
    _run_until_server_flight(pair)
    # Let the server's flight through, lose the client's CCS + Finished.
    while not pair.client.established:
        pair.run(until=pair.now + 0.001, stop_when_established=False)
        pair.now += 0.001
    pair.client.datagrams_to_send(pair.now)
    pair._queue.clear()
    assert pair.server is not None and not pair.server.established
    # The server's timer resends its flight; the repeated ServerHello makes
    # the (established) client resend its last flight; no timer of its own.
    assert pair.client.get_timer() is None
    pair.run()
    assert pair.established
    assert pair.server.counters["retransmissions"] == 1
    assert pair.client.counters["retransmissions"] == 1
    assert pair.client.counters["peer_retransmissions"] == 1


def test_lost_server_flight_is_resent_on_the_repeated_client_hello() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("session_id", resumption)
    pair = Pair(client_config(session_tickets=False), _server(resumption), resume=saved)
    _run_until_server_flight(pair)
    pair.server.datagrams_to_send(pair.now) if pair.server else None
    pair._queue.clear()
    pair.run()
    assert pair.established and pair.client.resumed == "session_id"
    assert pair.client.counters["retransmissions"] >= 1
    assert pair.server is not None and pair.server.counters["retransmissions"] >= 1


def test_no_ticket_is_opened_before_the_cookie() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    pair = Pair(client_config(), _server(resumption), resume=saved)
    pair.client.connect(pair.now)
    hello = pair.client.datagrams_to_send(pair.now)[0]
    verdict, answer = pair.gate.check(hello, CLIENT_ADDR, pair.now)
    assert verdict != "accepted" and answer is not None
    assert resumption.counters["resumed_ticket"] == 0
    assert sum(v for k, v in resumption.counters.items() if k.startswith("resumption_")) == 0


def test_two_servers_sharing_a_ticket_key_resume_each_others_sessions() -> None:
    secret = bytes(range(64))
    one = ServerResumption(ticket_keys=TicketKeys(secret), clock=Clock())
    two = ServerResumption(ticket_keys=TicketKeys(secret), clock=Clock(T0 + 30))
    saved, _ = first_session("ticket", one)
    assert resume(saved, two).client.resumed == "ticket"
    assert two.counters["resumed_ticket"] == 1


def test_a_ticket_from_the_previous_period_resumes_and_is_renewed() -> None:
    keys = TicketKeys(bytes(64), period=3600.0)
    clock = Clock(keys.period_of(T0) * keys.period + 3000)  # late in a period
    resumption = ServerResumption(ticket_keys=keys, lifetime=3600.0, clock=clock)
    saved, _ = first_session("ticket", resumption)
    clock.now += 610  # early in the next one
    pair = resume(saved, resumption)
    assert pair.client.resumed == "ticket"
    renewed = pair.client.resumption
    assert renewed is not None and renewed.ticket not in (None, saved.ticket)
    assert resumption.counters["tickets_issued"] == 2
    types = _handshake_types(pair.to_client)
    assert types[-3:] == [HandshakeType.NEW_SESSION_TICKET, 20, -1]


def test_resume_is_for_clients_only() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    from dtlsfast.connection import DtlsConnection

    with pytest.raises(ConfigurationError, match="resume="):
        DtlsConnection(_server(resumption), resume=saved)
    with pytest.raises(ConfigurationError, match="resume="):
        DtlsConnection(client_config(), resume=b"ticket")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_a_session_too_large_to_keep_is_counted_and_not_kept(kind: str) -> None:
    # A PSK identity the store accepts but a resumption state cannot hold
    # (more than 1024 bytes): the handshake completes, nothing is kept.
    identity = b"i" * 1100
    resumption = ServerResumption(clock=Clock())
    pair = handshake(
        client_config(psk=(identity, b"key"), session_tickets=kind == "ticket"),
        _server(resumption, psk_store={identity: b"key"}),
    )
    assert pair.established
    assert resumption.counters["sessions_not_resumable"] == 1
    assert len(resumption.cache or ()) == 0
    assert resumption.counters["session_ids_cached"] == resumption.counters["tickets_issued"] == 0
    # A promised ticket is sent empty (RFC 5077 §3.3).
    assert pair.client._new_ticket == ((0, b"") if kind == "ticket" else None)
    # Nor does the client keep it: nothing to offer, not an error.
    assert pair.client.resumption is None


def test_each_full_handshake_gets_a_fresh_session_id() -> None:
    with_ids = ServerResumption(clock=Clock())
    first, second = with_ids.new_session_id(), with_ids.new_session_id()
    assert len(first) == len(second) == 32 and first != second
    assert ServerResumption(session_ids=False).new_session_id() == b""
