"""The MAC-error filter's token bucket (dtlsfast.auth_filter)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast.auth_filter import AuthFailureFilter, SourceFilters, source_key
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.server import ServerLimits


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


# -- SourceFilters: buckets of sources sending records for sessions not theirs ----


def test_a_source_throttles_itself_only() -> None:
    sources = SourceFilters(capacity=4, burst=3, rate=1.0)
    for _ in range(3):
        assert sources.allows("192.0.2.1", 0.0)
        sources.charge("192.0.2.1", 1, 0.0)
    assert not sources.allows("192.0.2.1", 0.0)
    assert sources.allows("192.0.2.2", 0.0)  # another source has its own bucket
    assert sources.allows("192.0.2.1", 1.0)  # a token back after 1 / rate
    sources.charge("192.0.2.2", 0, 0.0)  # no failure: no bucket
    assert len(sources) == 1


def test_the_ports_of_a_host_share_its_bucket() -> None:
    assert source_key(("192.0.2.1", 5683)) == source_key(("192.0.2.1", 40000)) == "192.0.2.1"
    assert source_key(("2001:db8::1", 5684, 0, 0)) == "2001:db8::1"


def test_the_table_is_bounded_and_forgets_only_refilled_sources() -> None:
    sources = SourceFilters(capacity=2, burst=2, rate=1.0)
    sources.charge("a", 2, 0.0)
    sources.charge("b", 2, 0.0)
    # Full of sources still in debt: a newcomer shares the overflow bucket,
    # which spoofing more hosts does not multiply.
    for host in ("c", "d", "e"):
        assert sources.allows(host, 0.0) is (host != "e")
        sources.charge(host, 1, 0.0)
    assert len(sources) == 2
    assert not sources.allows("a", 0.0) and not sources.allows("f", 0.0)
    # Once the least recently charged source has refilled, forgetting it
    # forgets nothing: a newcomer takes its slot.
    assert sources.allows("f", 2.0)
    sources.charge("f", 2, 2.0)
    assert not sources.allows("f", 2.0)
    assert sources.allows("b", 2.0) and len(sources) == 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 3), st.floats(0, 0.5)),
        max_size=200,
    )
)
def test_never_more_than_capacity_sources(ops: list[tuple[int, int, float]]) -> None:
    sources = SourceFilters(capacity=5, burst=2, rate=4.0)
    now = 0.0
    for host, failures, step in ops:
        now += step
        if sources.allows(host, now):
            sources.charge(host, failures, now)
        assert len(sources) <= 5


@pytest.mark.parametrize(
    "field, value",
    [
        ("auth_failure_burst", 0),
        ("auth_failure_table_burst", 0),
        ("auth_failure_sources", 0),
        ("auth_failure_rate", -1.0),
        ("auth_failure_table_rate", float("inf")),
        ("auth_failure_rate", float("nan")),
    ],
)
def test_server_limits_refuse_a_filter_that_cannot_work(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=field):
        ServerLimits(**{field: value})  # type: ignore[arg-type]
