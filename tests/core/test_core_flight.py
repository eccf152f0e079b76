"""Sealing a flight into datagrams in one call (RFC 6347 §4.2.3, §4.2.4,
§4.1.1; RFC 9146 §4), Rust and pure twin: identical datagrams and sequence
numbers, the layout of flight.pack_flight over the record layer's seal."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import AEADS, outcome

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError, LocalProtocolError
from dtlsfast.flight import FlightItem, pack_flight
from dtlsfast.handshake.constants import DTLS_1_2, ContentType
from dtlsfast.handshake.messages import encode_handshake
from dtlsfast.record_layer import RecordLayer

HS, CCS = ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC


def server_flight() -> list[FlightItem]:
    return [
        FlightItem(0, HS, encode_handshake(2, 1, bytes(range(70)))),
        FlightItem(0, HS, encode_handshake(11, 2, bytes(3000))),
        FlightItem(0, HS, encode_handshake(14, 3, b"")),
    ]


def test_a_flight_fragments_to_the_mtu_and_numbers_its_records(impl: ModuleType) -> None:
    datagrams, sequences = impl.pack_flight(server_flight(), 1000, DTLS_1_2, [(0, None, 5, b"")])
    assert all(len(d) <= 1000 for d in datagrams) and len(datagrams) == 4
    seqs = [r[3] for d in datagrams for r in _core.parse_records(d)]
    assert seqs == list(range(5, 5 + len(seqs))) and sequences == [5 + len(seqs)]
    reassembler = _core.HandshakeReassembler(next_seq=1)
    out = [m for d in datagrams for r in _core.parse_records(d) for m in reassembler.push(r[4])]
    assert out == [item.payload for item in server_flight()]


def test_finished_flight_seals_epoch_one(impl: ModuleType) -> None:
    cipher = impl.RecordCipher("AES_128_CCM_8", bytes(16), bytes(4))
    fin = encode_handshake(20, 5, bytes(12))
    items = [FlightItem(0, CCS, b"\x01"), FlightItem(1, HS, fin)]
    writers = [(0, None, 3, b""), (1, cipher, 0, b"")]
    [datagram], sequences = impl.pack_flight(items, 1400, DTLS_1_2, writers)
    assert sequences == [4, 1]
    records = _core.parse_records(datagram)
    assert [r[:4] for r in records] == [(CCS, DTLS_1_2, 0, 3), (HS, DTLS_1_2, 1, 0)]
    assert cipher.open_parts(*records[1]) == fin


def test_errors_leave_the_sequence_numbers(impl: ModuleType) -> None:
    big = encode_handshake(11, 0, bytes(500))
    with pytest.raises(LocalProtocolError):
        impl.pack_flight([(1, HS, big)], 1400, DTLS_1_2, [(0, None, 0, b"")])
    with pytest.raises(LocalProtocolError):
        impl.pack_flight([(0, HS, b"short")], 1400, DTLS_1_2, [(0, None, 0, b"")])
    with pytest.raises(ConfigurationError):
        impl.pack_flight([(0, HS, big)], 20, DTLS_1_2, [(0, None, 0, b"")])
    with pytest.raises(ConfigurationError):
        impl.pack_flight([(0, HS, big)], 1400, DTLS_1_2, [(0, None, 2**48, b"")])
    with pytest.raises(ConfigurationError):
        impl.pack_flight([], 2**16, DTLS_1_2, [])
    with pytest.raises(TypeError):
        impl.pack_flight([(0, HS)], 1400, DTLS_1_2, [(0, None, 0, b"")])
    assert impl.pack_flight([], 1400, DTLS_1_2, [(0, None, 9, b"")]) == ([], [9])


def test_record_layer_packs_in_one_call(impl: ModuleType) -> None:
    """RecordLayer.pack_flight gives what pack_flight over RecordLayer.seal
    gives today, and leaves the same next sequence numbers."""
    layers = [RecordLayer(impl), RecordLayer(impl)]
    for layer in layers:
        layer.peer_cid = b"\x07\x08"
        layer.install_pending(
            impl.RecordCipher("AES_128_GCM", bytes(16), bytes(4)),
            impl.RecordCipher("AES_128_GCM", bytes(range(16)), bytes(4)),
        )
        layer.set_write_sequence(0, 11)
    items = [*server_flight(), FlightItem(0, CCS, b"\x01"), FlightItem(1, HS, bytes(12) + b"x")]
    old = pack_flight(items, 600, layers[0].overhead_for, lambda c, p, e: layers[0].seal(c, p, e))
    new = layers[1].pack_flight(items, 600)
    assert new == old
    assert [layers[1]._write[e].next_sequence for e in (0, 1)] == [
        layers[0]._write[e].next_sequence for e in (0, 1)
    ]


# ----------------------------------------------------------- generated


@st.composite
def flights(draw: st.DrawFn) -> tuple[list[tuple[int, int, bytes]], int, list[Any], list[Any]]:
    aead = draw(st.sampled_from(list(AEADS)))
    key_len, iv_len = AEADS[aead]
    key = draw(st.binary(min_size=key_len, max_size=key_len))
    iv = draw(st.binary(min_size=iv_len, max_size=iv_len))
    cid = draw(st.sampled_from([b"", b"\x01", b"\x01\x02\x03\x04"]))
    seqs = (draw(st.integers(0, 2**48 - 40)), draw(st.integers(0, 2**48 - 40)))
    items: list[tuple[int, int, bytes]] = []
    for seq in range(draw(st.integers(0, 7))):
        epoch = draw(st.sampled_from([0, 1, 2]))
        if draw(st.integers(0, 5)) == 0:
            items.append(
                (epoch, draw(st.sampled_from([CCS, 21, 23])), draw(st.binary(max_size=80)))
            )
        else:
            size = draw(st.sampled_from([0, 1, 12, 40, 200, 1000, 2500]))
            items.append((epoch, HS, encode_handshake(draw(st.integers(0, 255)), seq, bytes(size))))
    mtu = draw(st.sampled_from([40, 60, 100, 256, 576, 1200, 1400]))

    def writers(m: ModuleType) -> list[Any]:
        return [(0, None, seqs[0], b""), (1, m.RecordCipher(aead, key, iv), seqs[1], cid)]

    return items, mtu, writers(_core), writers(pure)


@settings(max_examples=300, deadline=None)
@given(flights())
def test_rust_and_pure_agree(case: tuple[Any, int, list[Any], list[Any]]) -> None:
    items, mtu, rust_writers, pure_writers = case
    rust = outcome(lambda: _core.pack_flight(items, mtu, DTLS_1_2, rust_writers))
    python = outcome(lambda: pure.pack_flight(items, mtu, DTLS_1_2, pure_writers))
    assert rust == python
    if rust[0] == "ok":
        datagrams, _ = rust[1]
        handshake_only_fits = all(len(d) <= mtu for d in datagrams)
        oversized_other = any(it[1] != HS and len(it[2]) + 13 + 42 > mtu for it in items)
        assert handshake_only_fits or oversized_other
