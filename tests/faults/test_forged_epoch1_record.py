"""Issue 12, item 8: one forged record between the peer's ChangeCipherSpec and
its Finished no longer kills the handshake (RFC 6347 §4.1.2.7: records that
fail authentication are dropped silently, during the handshake too).

The server used to answer any epoch-1 record that failed to open while it
waited for the Finished with a fatal bad_record_mac. Now only the record after
the ChangeCipherSpec in the peer's own datagram (its Finished: a forger
cannot add a record to that datagram) may end the handshake that way, which
keeps the quick, clear failure of a wrong PSK; a record in a datagram of its
own is dropped and counted. Epoch-0 alerts in that window are ignored too:
the peer sends its alerts in the new epoch once its ChangeCipherSpec is out.
"""

from __future__ import annotations

import os

import pytest
from dtls_pair import client_config, server_config
from forge import drain, record, records_of

from dtlsfast.connection import DtlsConnection, State
from dtlsfast.exceptions import HandshakeError, HandshakeTimeoutError
from dtlsfast.handshake.constants import AlertDescription, AlertLevel, ContentType


def _to_client_flight(
    client_psk: tuple[bytes, bytes] = (b"CoAP", b"esp32c3_key"),
) -> tuple[DtlsConnection, DtlsConnection, list[bytes]]:
    """Client and server up to the client's ChangeCipherSpec + Finished
    flight, returned as one record per item (not yet delivered)."""
    client = DtlsConnection(client_config(psk=client_psk), peer=("192.0.2.2", 5684))
    server = DtlsConnection(server_config(), peer=("192.0.2.1", 4000))
    client.connect(0.0)
    server.receive_datagram(client.datagrams_to_send(0.0)[0], 0.0)
    for datagram in server.datagrams_to_send(0.0):
        client.receive_datagram(datagram, 0.0)
    [flight] = client.datagrams_to_send(0.0)
    parsed = records_of(flight)
    assert [r[0] for r in parsed] == [
        ContentType.HANDSHAKE,
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.HANDSHAKE,
    ]
    # Cut the datagram into its records as they are (the last one is sealed).
    out, at = [], 0
    for *_, body in parsed:
        out.append(flight[at : at + 13 + len(body)])
        at += 13 + len(body)
    return client, server, out


FORGERIES = {
    "garbage in epoch 1": lambda: record(ContentType.HANDSHAKE, 1, 7, os.urandom(40)),
    "garbage with the Finished's own sequence number": lambda: record(
        ContentType.HANDSHAKE, 1, 0, os.urandom(40)
    ),
    "fatal alert in epoch 0": lambda: record(
        ContentType.ALERT, 0, 9, bytes([AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE])
    ),
    "close_notify in epoch 0": lambda: record(
        ContentType.ALERT, 0, 9, bytes([AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY])
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_record_between_ccs_and_finished(forgery: str) -> None:
    client, server, (key_exchange, ccs, finished) = _to_client_flight()
    server.receive_datagram(key_exchange + ccs, 0.01)
    assert server.state is State.SERVER_WAIT_FINISHED
    server.receive_datagram(FORGERIES[forgery](), 0.02)
    survived = not server.closed
    server.receive_datagram(finished, 0.03)
    out = drain(server)
    print(f"\n[forged record] {forgery!r} between the client's CCS and Finished: server "
          f"{'survived' if survived else 'was killed'}, state {server.state.value}, "
          f"drops {dict(server.drops)}")  # fmt: skip
    assert survived and server.established
    for datagram in out.datagrams:
        client.receive_datagram(datagram, 0.04)
    assert client.established


def test_forged_record_between_the_servers_ccs_and_finished() -> None:
    """The same on the client: the server's Finished still completes it."""
    client, server, (key_exchange, ccs, finished) = _to_client_flight()
    server.receive_datagram(key_exchange + ccs + finished, 0.01)
    [server_flight] = server.datagrams_to_send(0.01)
    [(_, _, _, ccs_body), (_, _, _, _fin_body)] = records_of(server_flight)
    cut = 13 + len(ccs_body)
    client.receive_datagram(server_flight[:cut], 0.02)
    assert client.state is State.CLIENT_WAIT_FINISHED
    for forged in FORGERIES.values():
        client.receive_datagram(forged(), 0.03)
    assert not client.closed
    client.receive_datagram(server_flight[cut:], 0.04)
    assert client.established


def test_wrong_key_still_fails_at_once_when_the_finished_comes_with_the_ccs() -> None:
    _client, server, pieces = _to_client_flight((b"CoAP", b"another key"))
    server.receive_datagram(b"".join(pieces), 0.01)
    out = drain(server)
    assert out.closed is not None and isinstance(out.closed.error, HandshakeError)
    assert out.closed.error.alert == AlertDescription.BAD_RECORD_MAC
    assert "check the PSK" in str(out.closed.error)
    assert out.alerts_sent == [(AlertLevel.FATAL, AlertDescription.BAD_RECORD_MAC)]


def test_wrong_key_in_separate_datagrams_times_out_with_a_diagnosis() -> None:
    """A client that sends its ChangeCipherSpec and Finished in separate
    datagrams (GnuTLS does) with a wrong key: the Finished could be anyone's,
    so it is dropped; the handshake times out and says why."""
    _client, server, (key_exchange, ccs, finished) = _to_client_flight((b"CoAP", b"another"))
    server.receive_datagram(key_exchange + ccs, 0.01)
    now = 0.02
    for _ in range(3):  # the client's retransmissions of its Finished
        server.receive_datagram(finished, now)
        now += 1.0
    assert not server.closed
    while (timer := server.get_timer()) is not None:
        server.handle_timer(timer)
    out = drain(server)
    error = out.closed.error if out.closed else None
    print(f"\n[forged record] wrong key, Finished in its own datagram: {error}")
    assert isinstance(error, HandshakeTimeoutError)
    assert "failed authentication 3 times" in str(error) and "PSK" in str(error)
