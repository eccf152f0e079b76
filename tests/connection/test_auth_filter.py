"""The MAC-error filter's token bucket (dtlsfast.auth_filter)."""

from __future__ import annotations

from dtlsfast.auth_filter import AuthFailureFilter


def test_burst_then_throttled_then_refilled() -> None:
    guard = AuthFailureFilter(burst=4, rate=2.0, now=0.0)
    for _ in range(4):
        assert guard.allows(0.0)
        guard.charge(1, 0.0)
    assert not guard.allows(0.0)
    assert not guard.allows(0.49)
    assert guard.allows(0.5)  # one token back after 1 / rate seconds
    guard.charge(1, 0.5)
    assert not guard.allows(0.5)


def test_refill_is_capped_at_the_burst() -> None:
    guard = AuthFailureFilter(burst=3, rate=100.0, now=0.0)
    guard.charge(10, 0.0)
    assert guard.tokens == 0
    assert guard.allows(1000.0)
    assert guard.tokens == 3
    guard.charge(3, 1000.0)
    assert not guard.allows(1000.0)


def test_a_clock_going_backwards_gives_nothing() -> None:
    guard = AuthFailureFilter(burst=2, rate=1.0, now=10.0)
    guard.charge(2, 10.0)
    assert not guard.allows(5.0)
    assert not guard.allows(10.5)
    assert guard.allows(11.0)
