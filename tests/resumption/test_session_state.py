"""The resumption state (RFC 5077 §4, RFC 7627 §5.3): its encoding round
trips every field, every bound holds, and the extended-master-secret rules
for resuming on both sides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtlsfast.exceptions import ConfigurationError, DecodeError
from dtlsfast.resumption import ResumptionFailure, ResumptionState, client_refusal, refusal
from dtlsfast.resumption.session_state import lifetime_hint

#: The fields every state has, whatever its kind.
common_fields = {
    "master_secret": st.binary(min_size=48, max_size=48),
    "cipher_suite": st.integers(0, 0xFFFF),
    "extended_master_secret": st.booleans(),
    "created": st.integers(0, 2**40),
    "lifetime": st.integers(0, 7 * 24 * 3600),
}

states = st.builds(
    ResumptionState,
    **common_fields,
    psk_identity=st.none() | st.binary(max_size=64),
    peer_certificate_type=st.none() | st.integers(0, 0xFE),
    peer_public_key=st.none() | st.binary(max_size=120),
    peer_certificates=st.lists(st.binary(max_size=300), max_size=3).map(tuple),
    version=st.integers(0, 0xFFFF),
)


def _dtls_1_2(state: ResumptionState) -> ResumptionState:
    return state._replace(version=0xFEFD)


@given(states)
def test_the_encoding_round_trips(state: ResumptionState) -> None:
    assert ResumptionState.decode(state.encode()) == state


@given(states, st.data())
def test_truncations_and_extensions_are_decode_errors(
    state: ResumptionState, data: st.DataObject
) -> None:
    encoded = state.encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        ResumptionState.decode(encoded[:cut])
    with pytest.raises(DecodeError):
        ResumptionState.decode(encoded + b"\0")


def test_bounds_are_enforced() -> None:
    with pytest.raises(ConfigurationError, match="48 bytes"):
        ResumptionState(b"x", 1, True, 0, 0)
    with pytest.raises(ConfigurationError, match="lifetime"):
        ResumptionState(b"x" * 48, 1, True, 0, 10**9)
    with pytest.raises(ConfigurationError, match="leaf only"):
        ResumptionState(b"x" * 48, 1, True, 0, 0, peer_certificates=(b"c" * 9000,) * 2)


def test_lifetime_hint_counts_down() -> None:
    state = ResumptionState(b"x" * 48, 1, True, created=1000, lifetime=100)
    assert lifetime_hint(state, 1000) == 100
    assert lifetime_hint(state, 1099.5) == 0
    assert lifetime_hint(state, 5000) == 0


@pytest.mark.parametrize(
    ("session_ems", "offered", "require", "legacy", "expected"),
    [
        (True, True, False, False, None),
        (True, True, True, False, None),
        (True, False, False, False, ResumptionFailure.EMS_MISSING),
        (False, True, False, True, ResumptionFailure.NO_EMS),
        (False, False, True, True, ResumptionFailure.NO_EMS),
        (False, False, False, False, ResumptionFailure.NO_EMS),
        (False, False, False, True, None),
    ],
)
def test_rfc_7627_section_5_3_on_the_server(
    session_ems: bool,
    offered: bool,
    require: bool,
    legacy: bool,
    expected: ResumptionFailure | None,
) -> None:
    state = ResumptionState(b"x" * 48, 1, session_ems, 0, 60)
    assert (
        refusal(
            state,
            client_offers_ems=offered,
            require_ems=require,
            allow_legacy_resumption=legacy,
        )
        is expected
    )


def test_rfc_7627_section_5_3_on_the_client() -> None:
    with_ems = ResumptionState(b"x" * 48, 1, True, 0, 60)
    without = ResumptionState(b"x" * 48, 1, False, 0, 60)
    assert client_refusal(with_ems, server_sent_ems=True) is None
    assert client_refusal(without, server_sent_ems=False) is None
    assert client_refusal(with_ems, server_sent_ems=False) is not None
    assert client_refusal(without, server_sent_ems=True) is not None
    assert ResumptionFailure.EMS_MISSING.counter == "resumption_refused_ems_missing"


psk_states = st.builds(
    ResumptionState,
    **common_fields,
    psk_identity=st.binary(max_size=1024),
    # builds() draws a tuple's defaulted fields too: a PSK state has none.
    peer_certificate_type=st.none(),
    peer_public_key=st.none(),
    peer_certificates=st.just(()),
    version=st.integers(0, 0xFFFF),
)


@given(psk_states)
def test_a_psk_state_has_the_documented_layout(state: ResumptionState) -> None:
    # The one-pack path for PSK sessions writes the general layout:
    # format(1) version(2) suite(2) flags(1) created(8) lifetime(4)
    # master(48) identity<2> chain_count(1) = 0.
    identity = state.psk_identity
    assert identity is not None
    flags = 2 | (1 if state.extended_master_secret else 0)
    expected = (
        bytes([1])
        + state.version.to_bytes(2, "big")
        + state.cipher_suite.to_bytes(2, "big")
        + bytes([flags])
        + state.created.to_bytes(8, "big")
        + state.lifetime.to_bytes(4, "big")
        + state.master_secret
        + len(identity).to_bytes(2, "big")
        + identity
        + b"\x00"
    )
    assert state.encode() == expected
    assert ResumptionState.decode(expected) == state


def test_a_psk_state_out_of_bounds_is_a_decode_error() -> None:
    state = ResumptionState(b"m" * 48, 0xC0A8, True, 1, 2, b"CoAP")
    encoded = state.encode()
    with pytest.raises(DecodeError):
        ResumptionState.decode(encoded[:-1] + b"\x01")  # a chain count with no chain
    too_long = bytearray(ResumptionState(b"m" * 48, 0xC0A8, True, 1, 2, b"x" * 1024).encode())
    too_long[67:69] = (1025).to_bytes(2, "big")
    with pytest.raises(DecodeError):
        ResumptionState.decode(bytes(too_long[:-1] + b"x\x00"))  # a 1025-byte identity
    big_lifetime = bytearray(encoded)
    big_lifetime[14:18] = (7 * 24 * 3600 + 1).to_bytes(4, "big")
    with pytest.raises(DecodeError):
        ResumptionState.decode(bytes(big_lifetime))


@given(states.map(_dtls_1_2))
def test_negotiated_builds_what_the_constructor_builds(state: ResumptionState) -> None:
    assert ResumptionState.negotiated(*state[:-1]) == state
    assert type(ResumptionState.negotiated(*state[:-1])) is ResumptionState


def test_negotiated_checks_what_the_peer_chose() -> None:
    master = b"m" * 48
    with pytest.raises(ConfigurationError, match="PSK identity"):
        ResumptionState.negotiated(master, 0xC0A8, True, 0, 60, b"i" * 1025)
    with pytest.raises(ConfigurationError, match="public key"):
        ResumptionState.negotiated(master, 0xC0AC, True, 0, 60, None, 2, b"k" * 1025)
    with pytest.raises(ConfigurationError, match="leaf only"):
        ResumptionState.negotiated(master, 0xC0AC, True, 0, 60, None, 0, b"k", (b"c" * 16385,))
    largest = ResumptionState.negotiated(master, 0xC0A8, True, 0, 60, b"i" * 1024)
    assert ResumptionState.decode(largest.encode()) == largest


def test_a_changed_state_is_checked_like_a_new_one() -> None:
    state = ResumptionState(b"m" * 48, 0xC0A8, True, 1, 2, b"CoAP")
    assert state._replace(lifetime=60) == ResumptionState(b"m" * 48, 0xC0A8, True, 1, 60, b"CoAP")
    with pytest.raises(ConfigurationError, match="lifetime"):
        state._replace(lifetime=10**9)
    with pytest.raises(ConfigurationError, match="48 bytes"):
        state._replace(master_secret=b"short")


@given(states)
def test_the_repr_keeps_the_master_secret_out_and_the_rest_in(state: ResumptionState) -> None:
    """A state in a log line or a traceback must not give the session's key away."""
    from dtlsfast.resumption import SavedSession

    # A secret no other field can hold by chance (their bytes are shown).
    state = state._replace(master_secret=bytes(range(0x80, 0xB0)))
    shown = repr(state) + str(state) + repr(SavedSession(state, b"\x01" * 32))
    assert "\\x80\\x81\\x82" not in shown and "808182" not in shown
    assert repr(state).startswith("ResumptionState(master_secret=<48 bytes>, cipher_suite=")
    assert f"psk_identity={state.psk_identity!r}" in repr(state)


def test_a_client_configuration_repr_keeps_the_psk_key_out() -> None:
    from dtlsfast.config import DtlsConfiguration

    config = DtlsConfiguration.client(psk=("CoAP", "a-secret-key"))
    assert config.psk == (b"CoAP", b"a-secret-key")
    assert "a-secret-key" not in repr(config) and "a-secret-key" not in str(config)
