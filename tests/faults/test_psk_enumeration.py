"""Issue 12, item 12: PSK identities cannot be enumerated.

An unknown identity used to get unknown_psk_identity and a known one with the
wrong key bad_record_mac, so a prober could list the identities a server
knows. By default the server now goes on with a random key (RFC 4279 §2): the
client's Finished fails to authenticate exactly as with a wrong key, with the
same alert after the same exchange. ``reveal_unknown_psk_identity=True``
keeps the explicit alert for debugging; the server counts unknown identities
either way, where the peer cannot see it.

The reconciliation with item 8 (forged records are dropped): the server sends
bad_record_mac only when the record after the client's ChangeCipherSpec in
the same datagram (its Finished) fails; see test_forged_epoch1_record.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dtls_pair import Pair, client_config, server_config
from forge import records_of

import dtlsfast
from dtlsfast import DtlsSession
from dtlsfast.events import ConnectionClosed
from dtlsfast.exceptions import HandshakeError
from dtlsfast.handshake.constants import AlertDescription
from dtlsfast.server import DtlsServer

KNOWN = ("CoAP", b"esp32c3_key")


def _exchange(identity: str, key: bytes, **server: object) -> tuple[list[tuple[object, ...]], int]:
    """What the client sees of a failing handshake: each datagram the server
    sent (simulated arrival time, length, record types) and the alert that
    ended it."""
    pair = Pair(client_config(psk=(identity, key)), server_config(**server))
    pair.start()
    pair.run(until=30.0)
    closed = [e for e in pair.client_events if isinstance(e, ConnectionClosed)]
    assert closed and isinstance(closed[0].error, HandshakeError)
    alert = closed[0].error.alert
    assert alert is not None
    shape = [
        (len(d), tuple((ctype, epoch) for ctype, epoch, _, _ in records_of(d)))
        for d in pair.to_client
    ]
    return shape, alert


def test_unknown_identity_looks_like_a_wrong_key() -> None:
    wrong_key, wrong_key_alert = _exchange("CoAP", b"not the key")
    unknown, unknown_alert = _exchange("nobody", b"esp32c3_key")
    print(
        f"\n[psk enumeration] wrong key: alert {wrong_key_alert}, server sent {wrong_key}\n"
        f"[psk enumeration] unknown identity: alert {unknown_alert}, server sent {unknown}"
    )
    assert wrong_key_alert == unknown_alert == AlertDescription.BAD_RECORD_MAC
    assert unknown == wrong_key  # same datagrams, same sizes, same order


def test_unknown_identity_is_revealed_only_when_asked() -> None:
    _, alert = _exchange("nobody", b"esp32c3_key", reveal_unknown_psk_identity=True)
    assert alert == AlertDescription.UNKNOWN_PSK_IDENTITY


async def _idle(session: DtlsSession) -> None:
    async for _ in session:
        pass


@pytest.fixture(params=[False, True], ids=["default", "revealed"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[DtlsServer]:
    async with await dtlsfast.serve(
        _idle,
        "127.0.0.1",
        0,
        psk_store={KNOWN[0]: KNOWN[1]},
        reveal_unknown_psk_identity=request.param,
    ) as srv:
        yield srv


async def test_server_counts_unknown_identities(server: DtlsServer) -> None:
    alerts = []
    for identity, key in (("nobody", KNOWN[1]), ("CoAP", b"wrong"), ("somebody", b"x")):
        with pytest.raises(HandshakeError) as failure:
            await dtlsfast.connect(
                "127.0.0.1", server.port, psk=(identity, key), handshake_timeout=5
            )
        alerts.append(failure.value.alert)
    session = await dtlsfast.connect("127.0.0.1", server.port, psk=KNOWN, handshake_timeout=5)
    await session.close()
    counters = server.counters
    print(f"\n[psk enumeration] alerts for (unknown, wrong key, unknown): {alerts}; "
          f"server unknown_psk_identities={counters['unknown_psk_identities']}")  # fmt: skip
    assert counters["unknown_psk_identities"] == 2
    if server.config.reveal_unknown_psk_identity:
        assert alerts == [115, 20, 115]
    else:
        assert alerts == [20, 20, 20]
