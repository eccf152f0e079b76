"""Ticket keys (RFC 5077 §5.5) and tickets (RFC 5077 §4): keys rotate by
period from a shared secret, the previous period's tickets still open, and a
forged, corrupt, expired, foreign or malformed ticket is a typed failure,
never an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.resumption import (
    ResumptionFailure,
    ResumptionState,
    TicketKeys,
    TicketSealer,
)
from dtlsfast.resumption.session_state import STATE_FORMAT
from dtlsfast.resumption.tickets import TICKET_OVERHEAD

SECRET = bytes(range(64))
PERIOD = 3600.0
T0 = 1_700_000_400.0  # a period starts at 1_699_999_200; T0 is 1,200 s into it


def _state(**changes: object) -> ResumptionState:
    base = ResumptionState(
        master_secret=bytes(range(48)),
        cipher_suite=0xC0A8,
        extended_master_secret=True,
        created=int(T0),
        lifetime=int(PERIOD),
        psk_identity=b"Client_identity",
    )
    return base._replace(**changes)


def _sealer(secret: bytes = SECRET, **options: float) -> TicketSealer:
    return TicketSealer(TicketKeys(secret, period=PERIOD, **options))


def test_a_ticket_round_trips_and_is_opaque() -> None:
    sealer = _sealer()
    state = _state()
    ticket = sealer.seal(state, T0)
    assert sealer.open(ticket, T0 + 1) == state
    assert len(ticket) == TICKET_OVERHEAD + len(state.encode())
    assert state.master_secret not in ticket and b"Client_identity" not in ticket
    assert sealer.seal(state, T0) != ticket  # fresh nonce each time


def test_servers_sharing_a_key_file_open_each_other_s_tickets(tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    first = TicketSealer(TicketKeys.from_file(path, period=PERIOD))
    second = TicketSealer(TicketKeys.from_file(path, period=PERIOD))
    ticket = first.seal(_state(), T0)
    assert second.open(ticket, T0) == _state()
    other = TicketSealer(TicketKeys.from_file(tmp_path / "another.key", period=PERIOD))
    assert other.open(ticket, T0) is ResumptionFailure.UNKNOWN_KEY


def test_keys_rotate_and_the_previous_period_is_still_accepted() -> None:
    keys = TicketKeys(SECRET, period=PERIOD, clock_skew=0)
    assert keys.current(T0).name != keys.current(T0 + PERIOD).name
    assert keys.current(T0) == keys.current(T0 + 100)
    sealer = TicketSealer(keys)
    state = _state(lifetime=int(PERIOD))
    ticket = sealer.seal(state, T0)
    # Next period: still accepted (the previous key), if not expired.
    assert sealer.open(ticket, T0 + PERIOD - 1) == state
    late = sealer.seal(_state(created=int(T0 + 2000)), T0 + 2000)
    assert sealer.open(late, T0 + PERIOD + 100) == _state(created=int(T0 + 2000))
    # Two periods on, the key is retired even for a state that has not expired.
    assert sealer.open(late, T0 + 2 * PERIOD + 1) in (
        ResumptionFailure.UNKNOWN_KEY,
        ResumptionFailure.EXPIRED,
    )
    long_lived = TicketSealer(TicketKeys(SECRET, period=PERIOD * 10, clock_skew=0))
    assert long_lived.open(late, T0 + 2000) is ResumptionFailure.UNKNOWN_KEY


def test_a_server_slightly_ahead_issues_tickets_others_accept() -> None:
    start_of_next = (int(T0 // PERIOD) + 1) * PERIOD
    ahead = _sealer(clock_skew=30)
    behind = _sealer(clock_skew=30)
    ticket = ahead.seal(_state(created=int(start_of_next)), start_of_next + 1)
    assert behind.open(ticket, start_of_next - 20) == _state(created=int(start_of_next))
    assert _sealer(clock_skew=0).open(ticket, start_of_next - 20) is ResumptionFailure.UNKNOWN_KEY


def test_expired_and_future_tickets_are_refused() -> None:
    sealer = _sealer()
    ticket = sealer.seal(_state(lifetime=60), T0)
    assert sealer.open(ticket, T0 + 59) == _state(lifetime=60)
    assert sealer.open(ticket, T0 + 60) is ResumptionFailure.EXPIRED
    future = sealer.seal(_state(created=int(T0 + 600)), T0)
    assert sealer.open(future, T0) is ResumptionFailure.FUTURE


def test_the_lifetime_is_capped_at_the_key_period() -> None:
    sealer = _sealer()
    ticket = sealer.seal(_state(lifetime=int(PERIOD * 5)), T0)
    opened = sealer.open(ticket, T0)
    assert isinstance(opened, ResumptionState) and opened.lifetime == int(PERIOD)
    with pytest.raises(ConfigurationError):
        TicketSealer(TicketKeys(SECRET, period=PERIOD), lifetime=PERIOD * 2)


def test_forged_corrupt_and_malformed_tickets_are_typed_failures() -> None:
    sealer = _sealer()
    ticket = sealer.seal(_state(), T0)
    for i in (16, 30, len(ticket) - 1):  # nonce, ciphertext, tag
        bad = bytearray(ticket)
        bad[i] ^= 1
        assert sealer.open(bytes(bad), T0) is ResumptionFailure.BAD_AUTH
    renamed = bytearray(ticket)
    renamed[0] ^= 1
    assert sealer.open(bytes(renamed), T0) is ResumptionFailure.UNKNOWN_KEY
    assert sealer.open(b"", T0) is ResumptionFailure.MALFORMED
    assert sealer.open(ticket[:TICKET_OVERHEAD], T0) is ResumptionFailure.MALFORMED
    assert sealer.open(ticket[:-1], T0) is ResumptionFailure.BAD_AUTH
    assert sealer.open(b"\0" * 70_000, T0) is ResumptionFailure.MALFORMED


def _seal_raw(sealer: TicketSealer, plaintext: bytes, now: float) -> bytes:
    key = sealer.keys.current(now)
    nonce = b"\x01" * 12
    return key.name + nonce + key.aead.encrypt(nonce, plaintext, key.name)


def test_a_genuine_ticket_of_another_format_or_garbage_state_is_refused() -> None:
    sealer = _sealer()
    encoded = _state().encode()
    other_version = bytes([STATE_FORMAT + 1]) + encoded[1:]
    assert sealer.open(_seal_raw(sealer, other_version, T0), T0) is ResumptionFailure.BAD_VERSION
    assert sealer.open(_seal_raw(sealer, encoded + b"\0", T0), T0) is ResumptionFailure.MALFORMED
    assert sealer.open(_seal_raw(sealer, encoded[:-3], T0), T0) is ResumptionFailure.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.floats(min_value=0, max_value=4e9))
def test_no_input_raises(data: bytes, now: float) -> None:
    result = _sealer().open(data, now)
    assert isinstance(result, ResumptionFailure)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_sealed_plaintext_opens_to_a_state_or_a_failure(plaintext: bytes) -> None:
    sealer = _sealer()
    result = sealer.open(_seal_raw(sealer, plaintext, T0), T0)
    assert isinstance(result, ResumptionState | ResumptionFailure)


def test_bad_key_parameters_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        TicketKeys(b"short")
    with pytest.raises(ConfigurationError, match="period"):
        TicketKeys(SECRET, period=1)
    with pytest.raises(ConfigurationError, match="clock_skew"):
        TicketKeys(SECRET, period=120, clock_skew=60)


@settings(max_examples=200)
@given(
    st.lists(st.floats(0, 1e6 * PERIOD), min_size=1, max_size=20),
    st.integers(-3, 3),
    st.floats(0, 0.5 * PERIOD, exclude_max=True),
)
def test_find_accepts_exactly_the_accepted_keys_and_the_cache_stays_bounded(
    times: list[float], offset: int, skew: float
) -> None:
    keys = TicketKeys(SECRET, period=PERIOD, clock_skew=skew)
    for now in times:
        period = keys.period_of(now)
        name = keys.key(period + offset).name
        accepted = [k for k in keys.accepted(now) if k.name == name]
        assert keys.find(name, now) == (accepted[0] if accepted else None)
        assert keys.current(now) == keys.key(period)
        assert len(keys._cache) <= 5
