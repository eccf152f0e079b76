"""The front door's small pieces on their own: per-source buckets and their
tables, prefixes, the half-open table, the log limiter and the admission
decisions (dtlsfast.source_budget, handshake_table, log_limiter, admission)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dtlsfast.admission import Admission
from dtlsfast.config import DtlsConfiguration
from dtlsfast.handshake_table import HalfOpenTable
from dtlsfast.log_limiter import LogLimiter
from dtlsfast.server import ServerLimits
from dtlsfast.source_budget import SourceBuckets, address_key, is_ipv4, prefix_key


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    buckets = SourceBuckets(rate=2.0, burst=3, capacity=8)
    assert all(buckets.take("a", 0.0) for _ in range(3))
    assert not buckets.take("a", 0.0)
    assert buckets.seconds_until("a", 0.0) == 0.5
    assert not buckets.take("a", 0.4)
    assert buckets.take("a", 0.5)
    assert buckets.tokens("a", 100.0) == 3.0
    assert buckets.tokens("never seen", 0.0) == 3.0 and "never seen" not in buckets
    buckets.charge("a", 100.0, 10.0)
    assert buckets.tokens("a", 100.0) == -3.0, "no lower than -burst"


def test_the_evicting_table_forgets_the_least_recently_used() -> None:
    buckets = SourceBuckets(rate=1.0, burst=2, capacity=2)
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    buckets.take("a", 0.0)  # a is now the most recently used
    buckets.take("c", 0.0)
    assert "b" not in buckets and "a" in buckets and "c" in buckets
    assert buckets.evicted == 1


def test_the_sharing_table_never_evicts_a_source_with_a_record() -> None:
    buckets = SourceBuckets(rate=1.0, burst=2, capacity=2, when_full="share")
    for key in ("a", "a", "b"):
        buckets.take(key, 0.0)
    # Full of sources that owe: newcomers share one bucket of their own.
    assert buckets.take("x", 0.0) and buckets.take("y", 0.0)
    assert not buckets.take("z", 0.0)
    assert "x" not in buckets and buckets.overflowed == 3
    assert buckets.tokens("a", 0.0) == 0.0, "a kept its record"
    # Once the oldest entry is full again it carries nothing and makes room.
    assert buckets.take("z", 2.0) and "z" in buckets and "a" not in buckets


@given(st.lists(st.tuples(st.integers(0, 50), st.floats(0, 10)), max_size=200))
def test_tables_stay_bounded(charges: list[tuple[int, float]]) -> None:
    for policy in ("evict", "share"):
        buckets = SourceBuckets(rate=1.0, burst=3, capacity=5, when_full=policy)  # type: ignore[arg-type]
        now = 0.0
        for key, step in charges:
            now += step
            buckets.take(key, now)
            assert len(buckets) <= 5
        buckets.prune(now + 10)
        assert len(buckets) == 0


def test_prefixes() -> None:
    assert prefix_key(("192.0.2.7", 1)) == prefix_key(("192.0.2.200", 9)) == b"4\xc0\x00\x02"
    assert prefix_key(("192.0.3.7", 1)) != prefix_key(("192.0.2.7", 1))
    assert prefix_key(("::ffff:192.0.2.9", 1, 0, 0)) == prefix_key(("192.0.2.7", 1))
    v6 = prefix_key(("2001:db8:0:12ab::1", 1, 0, 0))
    assert v6 == prefix_key(("2001:db8:0:12ff:1::2", 5, 0, 0))
    assert v6 != prefix_key(("2001:db8:0:13ab::1", 1, 0, 0))
    assert prefix_key(("fe80::1%eth0", 1, 0, 2), v6_bits=64) == prefix_key(
        ("fe80::9", 1, 0, 2), 24, 64
    )
    assert prefix_key(("192.0.2.7", 1), v4_bits=20) == b"4\xc0\x00\x00"
    assert prefix_key(("localhost", 1)) == "localhost"
    assert prefix_key(b"label") == b"label"
    assert address_key(("fe80::1%eth0", 1, 0, 2)) == "fe80::1"
    assert is_ipv4("192.0.2.1") and is_ipv4("::ffff:192.0.2.1") and not is_ipv4("::1")


def test_the_half_open_table_orders_by_progress() -> None:
    table: HalfOpenTable[object] = HalfOpenTable()
    first, second, third = object(), object(), object()
    table.add(first, "a", "p", 0.0)
    table.add(second, "a", "p", 1.0)
    table.add(third, "b", "p", 2.0)
    table.touch(first, 3.0)
    assert [e.handle for e in table] == [second, third, first]
    oldest_a = table.oldest_at_address("a")
    assert oldest_a is not None and oldest_a.handle is second
    assert [e.handle for e in table.stalled(2.5)] == [second, third]
    assert table.counts("a", "p") == (2, 3, 3)
    assert table.counts("a", "p", without=second) == (1, 2, 2), "the one that gives way"
    assert table.counts("c", "q", without=object()) == (0, 0, 3), "not in the table"
    table.remove(second)
    assert table.at_address("a") == 1 and table.in_prefix("p") == 2 and len(table) == 2
    table.remove(first)
    table.remove(third)
    assert table.at_address("a") == 0 and table.oldest() is None


def test_the_log_limiter_allows_one_line_per_key_an_interval_and_caps_the_total() -> None:
    log = LogLimiter(interval=60.0, capacity=2)
    assert log.allow("a", 0.0)
    assert not log.allow("a", 59.0)
    assert log.allow("b", 1.0)
    assert not log.allow("c", 2.0), "two keys logged this minute already"
    assert log.allow("c", 60.5) and log.allow("a", 61.0)
    assert log.suppressed == 2


def _admission(**limits: float) -> Admission[str]:
    return Admission(ServerLimits(**limits), DtlsConfiguration.server(psk_store={"a": b"k"}))  # type: ignore[arg-type]


def test_a_full_table_evicts_the_longest_waiting_handshake() -> None:
    admission = _admission(max_handshakes=2)
    for name, now in (("h1", 0.0), ("h2", 1.0)):
        assert (
            admission.admit(admission.keys((f"10.0.{now:.0f}.1", 1)), [0xC0A8], now).refused is None
        )
        admission.started(name, admission.keys((f"10.0.{now:.0f}.1", 1)), now)
    admission.progressed("h1", 2.0)
    decision = admission.admit(admission.keys(("10.9.9.9", 1)), [0xC0A8], 2.0)
    assert decision.refused is None and decision.evict == ("h2",)


def test_a_source_at_its_cap_makes_room_only_by_its_own_stalled_handshake() -> None:
    admission = _admission(max_handshakes_per_address=1)
    keys = admission.keys(("10.0.0.1", 1))
    admission.admit(keys, [0xC0A8], 0.0)
    admission.started("mine", keys, 0.0)
    assert admission.admit(keys, [0xC0A8], 0.5).refused == "handshakes_per_address"
    decision = admission.admit(keys, [0xC0A8], 1.5)  # past a retransmission timeout
    assert decision.refused is None and decision.evict == ("mine",)
    # Another source is not held to this one's cap.
    assert admission.admit(admission.keys(("10.0.1.1", 1)), [0xC0A8], 0.5).refused is None


def test_hello_buckets_and_the_crypto_share() -> None:
    admission = _admission(
        hello_burst_per_address=2, crypto_burst=20, crypto_rate=1.0, crypto_share_per_prefix=0.25
    )
    keys = admission.keys(("10.0.0.1", 1))
    assert admission.admit(keys, [0xCCAC], 0.0).refused is None  # ECDHE_PSK: 2 of 5
    admission.charge_crypto(keys[1], "ECDHE_PSK", 0.0)
    assert admission.admit(keys, [0xCCAC], 0.0).refused is None
    admission.charge_crypto(keys[1], "ECDHE_PSK", 0.0)
    assert admission.admit(keys, [0xC0A8], 0.0).refused == "hello_rate_address"
    assert admission.out_of_budget(("10.0.0.1", 2), 0.0) == "hello_rate_address"
    # The same answer from the keys the server already worked out.
    for addr in [("10.0.0.1", 2), ("10.0.0.2", 1), ("10.0.1.2", 1)]:
        assert admission.out_of_budget(addr, 0.0, admission.keys(addr)) == (
            admission.out_of_budget(addr, 0.0)
        )
    # Muted until a token is back: 1 / hello_rate_per_address (100 a second).
    assert admission.mute_for(("10.0.0.1", 2), "hello_rate_address", 0.0) == ("10.0.0.1", 32, 0.01)
    other = admission.keys(("10.0.0.2", 1))  # same /24: its crypto share is spent
    assert admission.admit(other, [0xCCAC], 0.0).refused == "crypto_share"
    assert admission.admit(other, [0xC0A8], 0.0).refused is None  # PSK needs none
    elsewhere = admission.keys(("10.0.1.2", 1))
    assert admission.admit(elsewhere, [0xCCAC], 0.0).refused is None


def test_only_a_server_with_a_suite_that_costs_prices_crypto() -> None:
    psk = DtlsConfiguration.server(psk_store={"a": b"k"}, ciphers=["TLS_PSK_WITH_AES_128_CCM_8"])
    assert not Admission(ServerLimits(), psk).prices_crypto
    ecdhe = DtlsConfiguration.server(
        psk_store={"a": b"k"},
        ciphers=["TLS_PSK_WITH_AES_128_CCM_8", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"],
    )
    assert Admission(ServerLimits(), ecdhe).prices_crypto


def test_a_newcomer_forgets_the_oldest_buckets_that_are_full_again() -> None:
    """Many sources one after another (a fleet connecting): only those that
    recently spent keep a bucket, not one entry per source until a prune."""
    buckets = SourceBuckets(rate=100.0, burst=200.0, capacity=1 << 20)
    for i in range(1000):
        assert buckets.take(f"host-{i}", i * 0.001)  # one every millisecond
    # A bucket refills its token in 10 ms: about ten still carry something.
    assert len(buckets) < 40
    # Those that did not refill yet are kept and still charged.
    assert "host-999" in buckets
    assert buckets.tokens("host-999", 0.999) == 199.0
    # A source that spent its burst keeps its bucket while newcomers come.
    for _ in range(200):
        buckets.take("busy", 1.0)
    for i in range(100):
        buckets.take(f"late-{i}", 1.0 + i * 0.001)
    assert "busy" in buckets and buckets.tokens("busy", 1.1) < 20
