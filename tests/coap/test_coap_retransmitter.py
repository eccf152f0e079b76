"""The Confirmable-message retransmitter (RFC 7252 §4.2, §4.8) by remote: a
session that ends cancels its own messages in flight, in the order they were
sent, and no other remote's, and the per-remote count follows replacements
(RFC 7641 §4.5.2)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable

from dtlsfast.coap import ManualClock
from dtlsfast.coap.params import TransmissionParameters
from dtlsfast.coap.reliability import Outcome, Retransmitter


def _retransmitter() -> tuple[Retransmitter, list[tuple[Hashable, bytes]], ManualClock]:
    sent: list[tuple[Hashable, bytes]] = []
    clock = ManualClock()
    retx = Retransmitter(
        clock,
        TransmissionParameters(),
        random.Random(1),
        lambda remote, data: sent.append((remote, data)),
        per_remote=4,
        total=8,
        counters=Counter(),
    )
    return retx, sent, clock


def test_cancel_remote_cancels_that_remote_only_in_sending_order() -> None:
    retx, _, _ = _retransmitter()
    results: list[tuple[str, int, Outcome]] = []
    for remote, mid in (("a", 7), ("b", 1), ("a", 3), ("a", 9)):
        assert retx.start(
            remote, mid, b"%d" % mid, lambda o, r=remote, m=mid: results.append((r, m, o))
        )
    assert retx.replace("a", 3, 4, b"4")  # a notification replaced in flight
    assert (retx.count("a"), retx.count("b"), len(retx)) == (3, 1, 4)
    retx.cancel_remote("a")
    assert results == [
        ("a", 7, Outcome.CANCELLED),
        ("a", 9, Outcome.CANCELLED),
        ("a", 3, Outcome.CANCELLED),
    ]
    assert (retx.count("a"), retx.count("b"), len(retx)) == (0, 1, 1)
    assert ("b", 1) in retx
    retx.cancel_remote("nobody")  # nothing in flight: nothing happens
    assert retx.resolve("b", 1, Outcome.ACK)
    assert results[-1] == ("b", 1, Outcome.ACK) and len(retx) == 0


def test_the_per_remote_bound_counts_what_is_in_flight() -> None:
    retx, sent, clock = _retransmitter()
    for mid in range(4):
        assert retx.start("a", mid, b"x", lambda o: None)
    assert not retx.start("a", 99, b"x", lambda o: None)  # at per_remote
    assert retx.resolve("a", 0, Outcome.ACK)
    assert retx.start("a", 99, b"x", lambda o: None)
    clock.advance(1000.0)  # every message times out after its retransmissions
    assert retx.count("a") == 0 and len(retx) == 0
    assert len(sent) > 5
