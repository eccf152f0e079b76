"""PSK handshakes between two sans-I/O connections (RFC 6347, RFC 4279)."""

from __future__ import annotations

import io

import pytest
from dtls_pair import PSK, Network, Pair, client_config, handshake, server_config

from dtlsfast.connection import DtlsConnection, State
from dtlsfast.events import (
    AlertReceived,
    ApplicationDataReceived,
    ConnectionClosed,
    HandshakeCompleted,
)
from dtlsfast.exceptions import (
    ConfigurationError,
    ConnectionClosedError,
    HandshakeError,
    HandshakeTimeoutError,
    LocalProtocolError,
)
from dtlsfast.handshake.constants import AlertDescription, ContentType, HandshakeType

PSK_SUITES = [
    "TLS_PSK_WITH_AES_128_CCM_8",
    "TLS_PSK_WITH_AES_128_CCM",
    "TLS_PSK_WITH_AES_128_GCM_SHA256",
    "TLS_PSK_WITH_AES_256_GCM_SHA384",
    "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
]


@pytest.fixture(params=["rust", "pure"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _completed(events: list[object]) -> HandshakeCompleted:
    done = [e for e in events if isinstance(e, HandshakeCompleted)]
    assert len(done) == 1, events
    return done[0]


def _closed_error(events: list[object]) -> BaseException | None:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed, events
    return closed[0].error


@pytest.mark.parametrize("suite", PSK_SUITES)
def test_handshake_and_data_each_suite(suite: str, backend: str) -> None:
    pair = handshake(
        client_config(ciphers=[suite], backend=backend),
        server_config(ciphers=[suite], backend=backend),
    )
    assert pair.established
    assert _completed(pair.client_events).cipher_suite == suite
    done = _completed(pair.server_events)
    assert done.psk_identity == PSK[0]
    assert done.extended_master_secret
    assert pair.server is not None
    pair.client.send(b"hello server")
    pair.server.send(b"hello client")
    pair.transfer()
    assert ApplicationDataReceived(b"hello server") in pair.server_events
    assert ApplicationDataReceived(b"hello client") in pair.client_events


ECDHE_PSK_SUITES = [
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256",
]


@pytest.mark.parametrize("suite", ECDHE_PSK_SUITES)
@pytest.mark.parametrize(
    ("client_groups", "server_groups", "chosen"),
    [
        ((29, 23), (29, 23), 29),
        ((23,), (29, 23), 23),
        ((29, 23), (23, 29), 23),  # the server's preference wins
        ((29,), (29,), 29),
    ],
)
def test_ecdhe_psk_handshake(
    suite: str, client_groups: tuple[int, ...], server_groups: tuple[int, ...], chosen: int
) -> None:
    pair = handshake(
        client_config(ciphers=[suite], groups=client_groups),
        server_config(groups=server_groups),
    )
    assert pair.established
    assert _completed(pair.client_events).cipher_suite == suite
    assert pair.server is not None and pair.server._key_share is not None
    assert pair.server._key_share.group == chosen
    pair.client.send(b"forward secret")
    pair.transfer()
    assert ApplicationDataReceived(b"forward secret") in pair.server_events


def test_ecdhe_needs_a_common_group() -> None:
    suites = [*ECDHE_PSK_SUITES, "TLS_PSK_WITH_AES_128_GCM_SHA256"]
    pair = handshake(
        client_config(ciphers=suites, groups=(29,)),
        server_config(ciphers=suites, groups=(23,)),
    )
    assert _completed(pair.client_events).cipher_suite == "TLS_PSK_WITH_AES_128_GCM_SHA256"


def test_certificate_suites_need_roots() -> None:
    with pytest.raises(ConfigurationError, match="cafile"):
        client_config(ciphers=["TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"])


def test_server_preference_ccm8_first() -> None:
    pair = handshake(client_config(ciphers=list(reversed(PSK_SUITES))), server_config())
    assert _completed(pair.client_events).cipher_suite == "TLS_PSK_WITH_AES_128_CCM_8"


def test_client_order_when_configured() -> None:
    pair = handshake(
        client_config(ciphers=["TLS_PSK_WITH_AES_128_GCM_SHA256", "TLS_PSK_WITH_AES_128_CCM_8"]),
        server_config(prefer_client_order=True),
    )
    assert _completed(pair.client_events).cipher_suite == "TLS_PSK_WITH_AES_128_GCM_SHA256"


def test_cookie_exchange_precedes_server_state() -> None:
    pair = Pair(client_config(), server_config())
    pair.start()
    first = pair.to_server[0]
    pair.run(until=0.007, stop_when_established=False)
    hvr = pair.to_client[0]
    # A HelloVerifyRequest, smaller than the ClientHello it answers.
    assert hvr[0] == ContentType.HANDSHAKE and hvr[13] == HandshakeType.HELLO_VERIFY_REQUEST
    assert len(hvr) < len(first)
    # Its record sequence number echoes the ClientHello's (RFC 6347 §4.2.1).
    assert hvr[5:11] == first[5:11]
    pair.run()
    assert pair.established
    assert pair.gate.counters["hello_verify_sent"] == 1
    assert pair.gate.counters["accepted"] == 1


def test_no_state_for_hellos_without_cookie() -> None:
    pair = Pair(client_config(), server_config())
    pair.start()
    hello = pair.to_server[0]
    for port in range(1000, 3000):
        verdict, reply = pair.gate.check(hello, ("10.0.0.1", port), 0.0)
        assert verdict == "hello_verify_sent" and reply is not None
    assert len(pair.gate._fragments) == 0
    assert pair.server is None


def test_identity_hint_is_sent_and_ignored_by_client() -> None:
    pair = handshake(client_config(), server_config(identity_hint="CoAP"))
    assert pair.established


def test_unknown_identity_fails_like_a_wrong_key() -> None:
    pair = handshake(client_config(psk=("nobody", b"esp32c3_key")), server_config())
    assert not pair.client.established
    error = _closed_error(pair.client_events)
    assert isinstance(error, HandshakeError)
    assert error.alert == AlertDescription.BAD_RECORD_MAC  # RFC 4279 §2: no enumeration
    assert pair.server is not None and pair.server.closed
    assert pair.server.counters["unknown_psk_identity"] == 1
    server_error = _closed_error(pair.server_events)
    assert "not in the PSK store" in str(server_error)


def test_unknown_identity_alert_when_revealed() -> None:
    pair = handshake(
        client_config(psk=("nobody", b"esp32c3_key")),
        server_config(reveal_unknown_psk_identity=True),
    )
    error = _closed_error(pair.client_events)
    assert isinstance(error, HandshakeError)
    assert error.alert == AlertDescription.UNKNOWN_PSK_IDENTITY


def test_wrong_key_fails_with_bad_record_mac() -> None:
    pair = handshake(client_config(psk=("CoAP", b"wrong key")), server_config())
    error = _closed_error(pair.client_events)
    assert isinstance(error, HandshakeError)
    assert error.alert == AlertDescription.BAD_RECORD_MAC
    server_error = _closed_error(pair.server_events)
    assert isinstance(server_error, HandshakeError)
    assert "PSK" in str(server_error)


@pytest.mark.parametrize("liar", ["client", "server"])
def test_a_finished_that_does_not_verify_is_decrypt_error(
    liar: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its record opens but its verify_data is wrong (the liar makes its
    Finished from another master secret): the other side answers
    decrypt_error (RFC 5246 §7.4.9), and its check added nothing."""
    queue_finished = DtlsConnection._queue_change_cipher_spec_and_finished

    def lie(self: DtlsConnection, label: bytes) -> None:
        if self.is_client != (liar == "client"):
            queue_finished(self, label)
            return
        master, self._master = self._master, bytes(48)
        queue_finished(self, label)
        self._master = master

    monkeypatch.setattr(DtlsConnection, "_queue_change_cipher_spec_and_finished", lie)
    pair = handshake(client_config(backend=backend), server_config(backend=backend))
    assert pair.server is not None and not pair.client.established
    liar_conn, victim = (
        (pair.client, pair.server) if liar == "client" else (pair.server, pair.client)
    )
    error = _closed_error(pair.server_events if liar == "client" else pair.client_events)
    assert isinstance(error, HandshakeError)
    assert error.alert == AlertDescription.DECRYPT_ERROR
    assert "does not verify" in str(error)
    lie_message = liar_conn._transcript.messages[-1]
    assert lie_message[0] == HandshakeType.FINISHED
    assert lie_message not in victim._transcript.messages


def test_psk_store_callable() -> None:
    seen: list[bytes] = []

    def lookup(identity: bytes) -> bytes | None:
        seen.append(identity)
        return b"esp32c3_key" if identity == b"CoAP" else None

    pair = handshake(client_config(), server_config(psk_store=lookup))
    assert pair.established and seen == [b"CoAP"]


def test_no_common_suite() -> None:
    pair = handshake(
        client_config(ciphers=["TLS_PSK_WITH_AES_128_GCM_SHA256"]),
        server_config(ciphers=["TLS_PSK_WITH_AES_128_CCM_8"]),
    )
    error = _closed_error(pair.client_events)
    assert isinstance(error, HandshakeError)
    assert error.alert == AlertDescription.HANDSHAKE_FAILURE


@pytest.mark.parametrize("seed", range(12))
def test_handshake_through_30_percent_loss(seed: int) -> None:
    net = Network(loss=0.3, seed=seed)
    pair = handshake(network=net)
    assert pair.established, (pair.client_events, pair.server_events)
    # Within the timer envelope: 1 + 2 + 4 + ... capped at 60 s, 7 retransmissions.
    assert pair.now < 1 + 2 + 4 + 8 + 16 + 32 + 60 + 60
    pair.client.send(b"after loss")
    pair.network.loss = 0.0
    pair.transfer()
    assert ApplicationDataReceived(b"after loss") in pair.server_events


@pytest.mark.parametrize("seed", range(8))
def test_handshake_through_reordering_and_duplication(seed: int) -> None:
    pair = handshake(network=Network(duplicate=0.3, reorder=0.5, seed=seed))
    assert pair.established
    assert pair.now < 10.0


@pytest.mark.parametrize("seed", range(8))
def test_handshake_through_everything(seed: int) -> None:
    net = Network(loss=0.3, duplicate=0.2, reorder=0.3, seed=100 + seed)
    pair = handshake(client_config(mtu=256), server_config(mtu=256), network=net)
    assert pair.established


def test_timeout_after_bounded_retransmissions() -> None:
    pair = Pair(client_config(max_retransmissions=3), server_config(), Network(loss=1.0))
    pair.start()
    pair.run()
    error = _closed_error(pair.client_events)
    assert isinstance(error, HandshakeTimeoutError)
    assert pair.client.counters["retransmissions"] == 3
    # 1 s, then 2, 4, 8: the timeout fires at 1 + 2 + 4 + 8 = 15 s.
    assert pair.now == pytest.approx(15.0, abs=0.01)


def test_timer_doubles_and_caps() -> None:
    pair = Pair(
        client_config(initial_timeout=1.0, max_timeout=4.0, max_retransmissions=5),
        server_config(),
        Network(loss=1.0),
    )
    pair.start()
    fired = []
    while (timer := pair.client.get_timer()) is not None:
        fired.append(timer)
        pair.client.handle_timer(timer)
    assert fired == [1.0, 3.0, 7.0, 11.0, 15.0, 19.0]


def test_lost_final_flight_is_resent_on_peer_retransmission() -> None:
    pair = Pair(client_config(), server_config())
    pair.start()
    # Let everything through until the server sends its last flight, then lose it.
    while pair.server is None or not pair.server.established:
        pair.run(until=pair.now + 0.001, stop_when_established=False)
        pair.now += 0.001
    pair._queue.clear()
    resent_before = pair.server.counters["retransmissions"]
    pair.run()
    assert pair.established
    assert pair.client.counters["retransmissions"] >= 1
    assert pair.server.counters["retransmissions"] == resent_before + 1


def test_fragmented_client_hello_and_key_exchange() -> None:
    identity = b"device-" + b"x" * 600
    store = {identity: b"secret"}
    pair = handshake(
        client_config(psk=(identity, b"secret"), mtu=256, server_name="a" * 200 + ".example"),
        server_config(psk_store=store, mtu=256),
    )
    assert pair.established
    assert all(len(d) <= 256 for d in pair.to_server + pair.to_client)
    assert pair.gate.counters["accepted"] == 1


def test_replayed_and_forged_records_are_dropped() -> None:
    pair = handshake()
    assert pair.server is not None
    pair.client.send(b"once")
    record = pair.client.datagrams_to_send(pair.now)[0]
    pair.inject_to_server(record)
    pair.inject_to_server(record)
    pair.client.send(b"forged")
    forged = bytearray(pair.client.datagrams_to_send(pair.now)[0])
    forged[-1] ^= 1
    pair.inject_to_server(bytes(forged))
    wrong_epoch = bytearray(record)
    wrong_epoch[4] = 7
    pair.inject_to_server(bytes(wrong_epoch))
    pair.inject_to_server(b"\x17\xfe\xfd garbage")
    pair.transfer()
    received = [e for e in pair.server_events if isinstance(e, ApplicationDataReceived)]
    assert received == [ApplicationDataReceived(b"once")]
    drops = pair.server.drops
    assert drops["replay"] == 1
    assert drops["bad_auth"] == 1
    assert drops["bad_epoch"] == 1
    assert drops["malformed"] == 1
    assert pair.server.established


def test_renegotiation_is_refused() -> None:
    pair = handshake()
    assert pair.server is not None
    # A ClientHello inside the protected epoch asks to renegotiate.
    hello = pair.to_server[-1]
    body = b"\x01" + b"\x00\x00\x00" + b"\x00\x09" + b"\x00" * 6
    pair.inject_to_server(pair.client.records.seal(ContentType.HANDSHAKE, body))
    pair.transfer()
    assert pair.server.established and pair.client.established
    assert pair.server.counters["renegotiation_refused"] == 1
    assert AlertReceived(1, AlertDescription.NO_RENEGOTIATION) in pair.client_events
    assert hello  # the handshake itself is untouched


def test_close_notify_both_ways() -> None:
    pair = handshake()
    assert pair.server is not None
    pair.client.close()
    pair.transfer()
    assert ConnectionClosed(None) in pair.server_events
    assert pair.server.closed and pair.client.closed
    with pytest.raises(ConnectionClosedError):
        pair.client.send(b"late")


def test_send_before_handshake_is_misuse() -> None:
    pair = Pair(client_config(), server_config())
    with pytest.raises(LocalProtocolError, match="handshake"):
        pair.client.send(b"early")
    with pytest.raises(LocalProtocolError):
        pair.client.connect(0.0)
        pair.client.connect(0.0)


def test_oversized_send_says_what_to_do() -> None:
    pair = handshake(client_config(mtu=300), server_config())
    with pytest.raises(LocalProtocolError, match="mtu"):
        pair.client.send(b"x" * 400)


def test_keylog_written_only_when_configured() -> None:
    log = io.StringIO()
    pair = handshake(client_config(keylog=log), server_config())
    assert pair.established
    line = log.getvalue().strip()
    label, client_random, master = line.split(" ")
    assert label == "CLIENT_RANDOM"
    assert len(bytes.fromhex(client_random)) == 32 and len(bytes.fromhex(master)) == 48


def test_rebooted_client_replaces_session() -> None:
    pair = handshake()
    old_server = pair.server
    assert old_server is not None
    # The device reboots: a fresh client from the same address.
    pair.client = pair.client.__class__(client_config(), peer=pair.client.peer)
    pair.client_events.clear()
    pair.start()
    pair.run()
    assert pair.established
    assert pair.server is not old_server
    assert old_server.state is State.ESTABLISHED  # the endpoint retires it


def test_garbage_never_raises(backend: str) -> None:
    pair = handshake(client_config(backend=backend), server_config(backend=backend))
    assert pair.server is not None
    import random

    rng = random.Random(7)
    for _ in range(2000):
        size = rng.randrange(0, 80)
        data = bytes(rng.randrange(256) for _ in range(size))
        if rng.random() < 0.5 and size > 13:
            data = b"\x16\xfe\xfd\x00\x01" + data[5:]
        pair.server.receive_datagram(data, pair.now)
        pair.client.receive_datagram(data, pair.now)
    assert pair.server.established and pair.client.established


def test_client_hello_record_version_dtls10_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many clients (OpenSSL among them) send their first ClientHello in a
    # record marked DTLS 1.0; the record version of epoch 0 is not protected.
    pair = Pair(client_config(), server_config())
    original = DtlsConnection.datagrams_to_send
    first = True

    def relabel(self: DtlsConnection, now: float) -> list[bytes]:
        nonlocal first
        out = original(self, now)
        if self is pair.client and first and out:
            out = [b"\x16\xfe\xff" + out[0][3:], *out[1:]]
            first = False
        return out

    monkeypatch.setattr(DtlsConnection, "datagrams_to_send", relabel)
    pair.start()
    assert pair.to_server[0][1:3] == b"\xfe\xff"
    pair.run()
    assert pair.established


def test_completed_events_are_shared_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # One HandshakeCompleted per (suite, identity, EMS) is shared by the
    # connections that complete with it (events are frozen); the table of
    # them never holds more than its bound, whatever identities come.
    from dtlsfast import connection

    monkeypatch.setattr(connection, "MAX_COMPLETED_EVENTS", 2)
    monkeypatch.setattr(connection, "_COMPLETED", {})
    events = []
    for identity in (b"a", b"b", b"c", b"a"):
        key = (identity, b"esp32c3_key")
        pair = handshake(client_config(psk=key), server_config(psk_store=dict([key])))
        assert pair.established
        events.append(_completed(pair.client_events))
        assert len(connection._COMPLETED) <= 2
    assert [e.psk_identity for e in events] == [b"a", b"b", b"c", b"a"]
    assert events[0] == events[3]
    same = handshake(
        client_config(psk=(b"c", b"esp32c3_key")), server_config(psk_store={b"c": b"esp32c3_key"})
    )
    assert _completed(same.client_events) is events[2]
