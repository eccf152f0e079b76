"""Session and observation records of the store: their encodings round trip
every field, refuse truncation and bad formats, and check bounds on encode;
records of format 2 (before record_size_limit was kept) still decode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtlsfast.exceptions import ConfigurationError, DecodeError
from dtlsfast.store import ObservationRecord, SessionRecord
from dtlsfast.store.records import _SESSION_HEAD_2, RECORD_FORMAT

sessions = st.builds(
    SessionRecord,
    key=st.binary(min_size=1, max_size=32),
    record_state=st.binary(max_size=200),
    cipher_suite=st.integers(0, 0xFFFF),
    extended_master_secret=st.booleans(),
    created=st.integers(0, 0xFFFFFFFF),
    next_message_seq=st.integers(0, 0xFFFF),
    peer_last_message_seq=st.none() | st.integers(0, 0xFFFF),
    psk_identity=st.none() | st.binary(max_size=64),
    peer_certificate_type=st.none() | st.integers(0, 255),
    peer_public_key=st.none() | st.binary(max_size=100),
    peer_certificates=st.lists(st.binary(max_size=50), max_size=3).map(tuple),
    local_cid=st.none() | st.binary(max_size=20),
    peer_cid=st.none() | st.binary(max_size=20),
    saved_at_start=st.integers(0, 0xFFFFFFFF),
    record_size_limit=st.none() | st.integers(64, 16385),
)
observations = st.builds(
    ObservationRecord,
    session_key=st.binary(min_size=1, max_size=32),
    token=st.binary(max_size=8),
    path=st.text(max_size=30),
    request=st.binary(max_size=100),
    observe=st.integers(0, (1 << 24) - 1),
    registered=st.integers(0, 0xFFFFFFFF),
)


@given(sessions)
def test_session_records_round_trip(record: SessionRecord) -> None:
    encoded = record.encode()
    assert SessionRecord.decode(record.key, encoded) == record
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            SessionRecord.decode(record.key, encoded[:cut])
    with pytest.raises(DecodeError):
        SessionRecord.decode(record.key, encoded + b"\0")
    with pytest.raises(DecodeError):
        SessionRecord.decode(record.key, bytes([RECORD_FORMAT + 1]) + encoded[1:])


@given(observations)
def test_observation_records_round_trip(obs: ObservationRecord) -> None:
    encoded = obs.encode()
    assert ObservationRecord.decode(obs.session_key, obs.token, encoded) == obs
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            ObservationRecord.decode(obs.session_key, obs.token, encoded[:cut])


def test_bounds_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="store key"):
        SessionRecord(b"", b"", 1, True, 0).encode()
    with pytest.raises(ConfigurationError, match="out of range"):
        SessionRecord(b"k", b"", 0x10000, True, 0).encode()
    with pytest.raises(ConfigurationError, match="out of range"):
        SessionRecord(b"k", b"", 1, True, 0, local_cid=b"x" * 256).encode()
    with pytest.raises(ConfigurationError, match="token"):
        ObservationRecord(b"k", b"123456789", "light", b"", 0, 0)
    with pytest.raises(ConfigurationError, match="24 bits"):
        ObservationRecord(b"k", b"", "light", b"", 1 << 24, 0)


@given(sessions)
def test_format_2_session_records_decode_with_no_record_size_limit(
    record: SessionRecord,
) -> None:
    """A version-2 state file's records: the head had no record_size_limit."""
    record.record_size_limit = 99
    encoded = record.encode()
    head = _SESSION_HEAD_2.size
    old = bytes([2]) + encoded[1:head] + encoded[head + 2 :]
    decoded = SessionRecord.decode(record.key, old)
    record.record_size_limit = None
    assert decoded == record
    with pytest.raises(DecodeError):
        SessionRecord.decode(record.key, old + b"\0")


def test_old_observation_records_decode() -> None:
    obs = ObservationRecord(b"k", b"t", "light", b"\x41\x01", 5, 1_700_000_000)
    old = bytes([2]) + obs.encode()[1:]
    assert ObservationRecord.decode(b"k", b"t", old) == obs


@given(sessions)
def test_a_session_record_repr_keeps_its_record_keys_out(record: SessionRecord) -> None:
    """The exported record state holds the session's keys: never in a log
    line or a traceback."""
    from dataclasses import replace

    record = replace(record, record_state=bytes(range(0x80, 0xB0)))
    assert "\\x80\\x81\\x82" not in repr(record)
    assert repr(record).startswith(f"SessionRecord(key={record.key!r}, cipher_suite=")
