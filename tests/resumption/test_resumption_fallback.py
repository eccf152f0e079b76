"""A ticket or session ID that cannot be resumed falls back to a full
handshake, counted by reason (RFC 5077 §3.1, RFC 7627 §5.3); a server that
resumes a session against its terms is refused by the client."""

from __future__ import annotations

from pathlib import Path

import pytest
from dtls_pair import Pair, client_config, handshake, server_config
from test_abbreviated_handshake import T0, Clock, first_session, resume

from dtlsfast.events import ConnectionClosed
from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.constants import AlertDescription
from dtlsfast.resumption import (
    ResumptionFailure,
    ResumptionState,
    SavedSession,
    ServerResumption,
    TicketKeys,
)


def _refused(resumption: ServerResumption) -> dict[str, int]:
    return {k: v for k, v in resumption.counters.items() if k.startswith("resumption_refused")}


def _falls_back(
    saved: SavedSession, resumption: ServerResumption, reason: ResumptionFailure
) -> Pair:
    kind = "ticket" if saved.ticket is not None else "session_id"
    pair = resume(saved, resumption, kind=kind)
    assert pair.established, (pair.client_events, pair.server_events)
    assert pair.client.resumed is None and pair.server is not None and pair.server.resumed is None
    assert _refused(resumption) == {reason.counter: 1}
    assert resumption.counters[f"resumed_{kind}"] == 0
    # The full handshake issued a new session in its place.
    fresh = pair.client.resumption
    assert fresh is not None and fresh.state.master_secret != saved.state.master_secret
    return pair


def _with_ticket(saved: SavedSession, ticket: bytes) -> SavedSession:
    return SavedSession(saved.state, saved.session_id, ticket)


def test_forged_ticket() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    assert saved.ticket is not None
    forged = bytearray(saved.ticket)
    forged[40] ^= 1
    _falls_back(_with_ticket(saved, bytes(forged)), resumption, ResumptionFailure.BAD_AUTH)


def test_corrupt_truncated_ticket() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    assert saved.ticket is not None
    _falls_back(_with_ticket(saved, saved.ticket[:30]), resumption, ResumptionFailure.MALFORMED)


def test_foreign_ticket() -> None:
    other = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", other)
    _falls_back(saved, ServerResumption(clock=Clock()), ResumptionFailure.UNKNOWN_KEY)


def test_expired_ticket() -> None:
    clock = Clock()
    resumption = ServerResumption(lifetime=600, clock=clock)
    saved, _ = first_session("ticket", resumption)
    clock.now += 601
    _falls_back(saved, resumption, ResumptionFailure.EXPIRED)


def test_ticket_from_the_future() -> None:
    clock = Clock()
    resumption = ServerResumption(clock=clock)
    saved, _ = first_session("ticket", resumption)
    clock.now -= 600  # a server whose clock is ten minutes behind
    _falls_back(saved, resumption, ResumptionFailure.FUTURE)


def test_unknown_session_id() -> None:
    saved, _ = first_session("session_id", ServerResumption(clock=Clock()))
    _falls_back(saved, ServerResumption(clock=Clock()), ResumptionFailure.UNKNOWN_SESSION)


def test_evicted_session_id() -> None:
    resumption = ServerResumption(cache_size=1, clock=Clock())
    saved, _ = first_session("session_id", resumption)
    first_session("session_id", resumption)  # takes the only place
    _falls_back(saved, resumption, ResumptionFailure.UNKNOWN_SESSION)


def test_expired_session_id() -> None:
    clock = Clock()
    resumption = ServerResumption(lifetime=60, clock=clock)
    saved, _ = first_session("session_id", resumption)
    clock.now += 61
    _falls_back(saved, resumption, ResumptionFailure.EXPIRED)


def test_session_without_extended_master_secret_is_not_resumed() -> None:
    """RFC 7627 §5.3: a ClientHello with EMS never resumes a session without it."""
    clock = Clock()
    resumption = ServerResumption(clock=clock)
    saved, _ = first_session("ticket", resumption)
    legacy = saved.state._replace(extended_master_secret=False, created=int(T0))
    assert resumption.sealer is not None
    ticket = resumption.sealer.seal(legacy, clock.now)
    _falls_back(SavedSession(legacy, b"", ticket), resumption, ResumptionFailure.NO_EMS)


def test_ems_session_needs_ems_in_the_client_hello() -> None:
    """RFC 7627 §5.3, the other way: checked where the server decides."""
    resumption = ServerResumption(clock=Clock())
    state = ResumptionState(b"m" * 48, 0xC0A8, True, int(T0), 3600, psk_identity=b"CoAP")
    assert resumption.sealer is not None
    ticket = resumption.sealer.seal(state, T0)
    common = {
        "session_id": b"",
        "ticket": ticket,
        "offered_suites": [0xC0A8],
        "accepted_suites": [0xC0A8],
        "require_ems": False,
        "identity_known": lambda identity: True,
    }
    assert resumption.find(client_offers_ems=False, **common) is None  # type: ignore[arg-type]
    assert _refused(resumption) == {ResumptionFailure.EMS_MISSING.counter: 1}
    found = resumption.find(client_offers_ems=True, **common)  # type: ignore[arg-type]
    assert found is not None and found.state == state and found.via == "ticket"


def test_suite_no_longer_offered() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    pair = Pair(
        client_config(ciphers=["TLS_PSK_WITH_AES_128_GCM_SHA256"]),
        server_config(resumption=resumption),
        resume=saved,
    )
    pair.start()
    pair.run()
    assert pair.established and pair.client.resumed is None
    assert _refused(resumption) == {ResumptionFailure.PARAMETERS.counter: 1}


def test_identity_no_longer_in_the_psk_store() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    pair = Pair(
        client_config(),
        server_config(resumption=resumption, psk_store={b"someone-else": b"esp32c3_key"}),
        resume=saved,
    )
    pair.start()
    pair.run()
    assert _refused(resumption) == {ResumptionFailure.PARAMETERS.counter: 1}
    assert not pair.established  # and the full handshake fails as for any unknown identity


def _closed_error(events: list[object]) -> HandshakeError:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed and isinstance(closed[0].error, HandshakeError)
    return closed[0].error


def test_client_refuses_a_resumption_that_drops_extended_master_secret() -> None:
    """RFC 7627 §5.3: the ServerHello's EMS must match the session's."""
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    # The client remembers the session as without EMS; the server (its
    # ticket) resumes it with EMS: the two disagree, the client aborts.
    mismatched = SavedSession(
        saved.state._replace(extended_master_secret=False), saved.session_id, saved.ticket
    )
    pair = resume(mismatched, resumption)
    error = _closed_error(pair.client_events)
    assert error.alert == AlertDescription.HANDSHAKE_FAILURE
    assert "RFC 7627" in str(error)


def test_client_refuses_a_resumption_with_another_suite() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    other = SavedSession(saved.state._replace(cipher_suite=0xC0A4), b"", saved.ticket)
    pair = resume(other, resumption)
    assert _closed_error(pair.client_events).alert == AlertDescription.ILLEGAL_PARAMETER


def test_client_does_not_offer_an_expired_session() -> None:
    resumption = ServerResumption(clock=Clock())
    saved, _ = first_session("ticket", resumption)
    old = SavedSession(saved.state._replace(created=0, lifetime=60), b"", saved.ticket)
    pair = resume(old, resumption)
    assert pair.established and pair.client.resumed is None
    assert _refused(resumption) == {}  # nothing was offered


def test_a_server_without_resumption_ignores_tickets_and_session_ids() -> None:
    saved, _ = first_session("ticket", ServerResumption(clock=Clock()))
    pair = Pair(client_config(), server_config(), resume=saved)
    pair.start()
    pair.run()
    assert pair.established and pair.client.resumed is None
    assert pair.client.resumption is None  # no session ID, no ticket


@pytest.mark.parametrize("kind", ["ticket", "session_id"])
def test_shared_key_file_resumes_across_processes(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    one = ServerResumption(ticket_keys=TicketKeys.from_file(path), clock=Clock())
    two = ServerResumption(ticket_keys=TicketKeys.from_file(path), clock=Clock())
    assert path.stat().st_mode & 0o777 == 0o600
    saved, _ = first_session(kind, one)
    pair = resume(saved, two, kind=kind)
    if kind == "ticket":
        assert pair.client.resumed == "ticket"
    else:  # session IDs live in one process's memory
        assert pair.client.resumed is None
        assert _refused(two) == {ResumptionFailure.UNKNOWN_SESSION.counter: 1}


def test_handshake_helper_without_resumption_is_unchanged() -> None:
    pair = handshake()
    assert pair.established and pair.client.resumption is None


def test_certificate_session_resumes_with_the_clients_key(tmp_path: Path) -> None:
    from pki import Pki

    from dtlsfast.config import DtlsConfiguration

    pki = Pki(tmp_path)
    server_creds = pki.issue("server.example", dns=("server.example",))
    device = pki.issue("device-7")
    resumption = ServerResumption(clock=Clock())

    def server(client_auth: str) -> DtlsConfiguration:
        return DtlsConfiguration.server(
            certfile=server_creds.certfile,
            keyfile=server_creds.keyfile,
            cafile=pki.cafile,
            client_auth=client_auth,  # type: ignore[arg-type]
            resumption=resumption,
        )

    with_cert = DtlsConfiguration.client(
        cafile=pki.cafile,
        certfile=device.certfile,
        keyfile=device.keyfile,
        server_name="server.example",
    )
    first = handshake(with_cert, server("required"))
    saved = first.client.resumption
    assert saved is not None and first.server is not None
    pair = Pair(with_cert, server("required"), resume=saved)
    pair.start()
    pair.run()
    assert pair.client.resumed == "ticket" and pair.server is not None
    # The server knows who the client is without a Certificate this time.
    assert pair.server.peer_public_key is not None
    assert pair.server.peer_certificates is not None
    assert pair.server.peer_certificates[0].subject == first.server.peer_certificates[0].subject  # type: ignore[index]
    # A session without a client certificate is not resumed where one is required.
    anonymous = DtlsConfiguration.client(cafile=pki.cafile, server_name="server.example")
    no_cert = handshake(anonymous, server("optional")).client.resumption
    assert no_cert is not None
    refused = Pair(with_cert, server("required"), resume=no_cert)
    refused.start()
    refused.run()
    assert refused.established and refused.client.resumed is None
    assert _refused(resumption) == {ResumptionFailure.PARAMETERS.counter: 1}
