"""The session-ID cache (RFC 5246 §7.4.1.2): bounded LRU with a lifetime;
only the exact session ID finds its session; nothing a peer sends raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.resumption import ResumptionFailure, ResumptionState, SessionIdCache


def _state(created: int = 0, lifetime: int = 3600) -> ResumptionState:
    return ResumptionState(b"m" * 48, 0xC0A8, True, created, lifetime, psk_identity=b"id")


def test_a_stored_session_is_found_by_its_exact_id() -> None:
    cache = SessionIdCache(max_entries=4, lifetime=100)
    sid = cache.new_session_id()
    assert len(sid) == 32 and sid != cache.new_session_id()
    cache.store(sid, _state(), 0)
    assert cache.lookup(sid, 1) == _state()
    for wrong in (sid[:-1], sid[:-1] + bytes([sid[-1] ^ 1]), b"", b"\0" * 33):
        assert cache.lookup(wrong, 1) is ResumptionFailure.UNKNOWN_SESSION
    assert len(cache) == 1


def test_entries_expire_by_cache_lifetime_and_by_their_own() -> None:
    cache = SessionIdCache(max_entries=4, lifetime=100)
    cache.store(b"a", _state(), 0)
    cache.store(b"b", _state(lifetime=10), 0)
    assert cache.lookup(b"b", 10) is ResumptionFailure.EXPIRED
    assert cache.lookup(b"b", 11) is ResumptionFailure.UNKNOWN_SESSION  # gone
    assert cache.lookup(b"a", 99) == _state()
    assert cache.lookup(b"a", 100) is ResumptionFailure.EXPIRED
    cache.store(b"c", _state(), 0)
    cache.store(b"d", _state(), 50)
    assert cache.expire(120) == 1 and len(cache) == 1


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = SessionIdCache(max_entries=3, lifetime=100)
    for sid in (b"1", b"2", b"3"):
        cache.store(sid, _state(), 0)
    assert isinstance(cache.lookup(b"1", 1), ResumptionState)  # 2 is now the oldest
    cache.store(b"4", _state(), 1)
    assert len(cache) == 3
    assert cache.lookup(b"2", 1) is ResumptionFailure.UNKNOWN_SESSION
    assert all(isinstance(cache.lookup(s, 1), ResumptionState) for s in (b"1", b"3", b"4"))


def test_invalidate_forgets_a_session() -> None:
    cache = SessionIdCache()
    cache.store(b"x", _state(), 0)
    assert cache.invalidate(b"x") and not cache.invalidate(b"x") and not cache.invalidate(b"")
    assert cache.lookup(b"x", 0) is ResumptionFailure.UNKNOWN_SESSION


def test_bad_parameters_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        SessionIdCache(max_entries=0)
    with pytest.raises(ConfigurationError):
        SessionIdCache(lifetime=0)
    with pytest.raises(ConfigurationError):
        SessionIdCache().store(b"", _state(), 0)


@given(st.lists(st.binary(max_size=40), max_size=20), st.binary(max_size=40))
def test_lookups_of_peer_input_never_raise(stored: list[bytes], probe: bytes) -> None:
    cache = SessionIdCache(max_entries=8, lifetime=10)
    for sid in stored:
        if 1 <= len(sid) <= 32:
            cache.store(sid, _state(), 0)
    result = cache.lookup(probe, 5)
    valid = [sid for sid in stored if 1 <= len(sid) <= 32]
    recent = list(dict.fromkeys(reversed(valid)))[:8]  # the 8 most recently stored
    if probe in recent:
        assert isinstance(result, ResumptionState)
    else:
        assert isinstance(result, ResumptionFailure)
