"""Export and import of session table entries (rust/session_export.rs) for
the session store: the documented layout on both cores, a restored session
that carries on where the exported one stopped, canonical replay windows, no
exception but ConfigurationError for malformed bytes, and a differential test
that the Rust table and its pure twin export identical bytes."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError

BACKENDS = [pytest.param(_core, id="rust"), pytest.param(pure, id="pure")]
APPLICATION_DATA = 23
AEADS = ["AES_128_CCM_8", "AES_128_CCM", "AES_128_GCM", "AES_256_GCM", "CHACHA20_POLY1305"]
LENGTHS = {"AES_256_GCM": (32, 4), "CHACHA20_POLY1305": (32, 12)}
PEER4 = ("192.0.2.7", 5684)
PEER6 = ("2001:db8::1", 5684, 0, 0)


def _ciphers(core: ModuleType, aead: str) -> tuple[Any, Any]:
    key_length, iv_length = LENGTHS.get(aead, (16, 4))
    key, iv = bytes(range(key_length)), bytes(range(100, 100 + iv_length))
    return core.RecordCipher(aead, key, iv), core.RecordCipher(aead, key, iv)


def _table(core: ModuleType, aead: str = "AES_128_CCM_8", window_size: int = 64) -> Any:
    table = core.SessionTable(8)
    read, write = _ciphers(core, aead)
    window = core.ReplayWindow(window_size)
    for seq in (0, 1, 2, 5, 70, 68):
        window.accept(seq)
    table.install(1, read, 1, window, write, 1, 42)
    return table


@pytest.mark.parametrize("core", BACKENDS)
def test_the_layout_is_the_documented_one(core: ModuleType) -> None:
    table = _table(core)
    table.bind_address(1, PEER4, 0.0)
    expected = (
        bytes([1, 0, 0xFE, 0xFD, 0, 1, 0, 1])
        + (42).to_bytes(8, "big")
        + (bytes(range(16)) + bytes(range(100, 104))) * 2
        + bytes([0, 64, 1])
        + (70).to_bytes(8, "big")
        + bytes([0b101, 0, 0, 0, 0, 0, 0, 0])
        + bytes([4, 192, 0, 2, 7])
        + (5684).to_bytes(2, "big")
    )
    assert table.export_session(1) == expected
    assert table.export_session(2) is None


@pytest.mark.parametrize("core", BACKENDS)
@pytest.mark.parametrize("aead", AEADS)
def test_an_imported_session_carries_on(core: ModuleType, aead: str) -> None:
    table = _table(core, aead)
    table.bind_address(1, PEER6, 0.0)
    exported = table.export_session(1, 1 << 24)
    restarted = core.SessionTable(8)
    restarted.import_session(5, exported, 10.0)
    assert restarted.next_write_sequence(5) == 1 << 24
    assert restarted.last_active(5) == 10.0
    # The peer (same keys both ways here) opens what the restored side seals,
    # at sequence numbers past the reserved limit.
    record = restarted.seal(5, APPLICATION_DATA, b"after restart")
    assert record[5:11] == (1 << 24).to_bytes(6, "big")
    assert table.open_datagram(1, record) == ([b"after restart"], 0, 0, [])
    # Replays of what the exported side had accepted stay replays.
    old = core.RecordCipher(aead, *table_key(table)).seal(APPLICATION_DATA, 0xFEFD, 1, 68, b"x")
    assert restarted.open_datagram(5, old) == ([], 1, 0, [])
    new = core.RecordCipher(aead, *table_key(table)).seal(APPLICATION_DATA, 0xFEFD, 1, 69, b"y")
    assert restarted.open_datagram(5, new) == ([b"y"], 0, 0, [])
    # Its address routes in serve().
    _, to_python, delivered, _, _ = restarted.serve([(new, PEER6)], 11.0)
    assert to_python == [] and delivered == []  # a replay now: counted, not delivered


def table_key(table: Any) -> tuple[bytes, bytes]:
    exported = table.export_session(1)
    key_length = 32 if exported[1] in (3, 4) else 16
    iv_length = 12 if exported[1] == 4 else 4
    return exported[16 : 16 + key_length], exported[16 + key_length : 16 + key_length + iv_length]


@pytest.mark.parametrize("core", BACKENDS)
def test_ciphers_and_windows_export_their_state(core: ModuleType) -> None:
    cipher = core.RecordCipher("CHACHA20_POLY1305", b"k" * 32, b"i" * 12)
    assert cipher.key_material() == (b"k" * 32, b"i" * 12)
    assert "k" * 8 not in repr(cipher)
    window = core.ReplayWindow(12)
    assert window.export() == (None, b"")
    for seq in (3, 10, 12):
        window.accept(seq)
    # Offsets from 12: 0 (12), 2 (10), 9 (3).
    assert window.export() == (12, bytes([0b101, 0b10]))
    back = core.ReplayWindow.restore(12, 12, bytes([0b101, 0b10]))
    assert back.export() == window.export()
    assert not back.check(10) and not back.check(3) and back.check(11) and back.check(4)
    assert not back.check(0)  # left of the window


@pytest.mark.parametrize("core", BACKENDS)
@pytest.mark.parametrize(
    ("size", "highest", "bitmap"),
    [
        (64, None, b"\0"),
        (64, 3, bytes(8)),  # the highest itself not marked
        (64, 3, bytes([0b10001]) + bytes(7)),  # a bit below sequence number 0
        (4, 10, bytes([0b10001])),  # a bit past the window
        (64, 3, b"\1"),  # wrong length
        (64, 1 << 48, b"\1" + bytes(7)),
        (0, None, b""),
    ],
)
def test_non_canonical_windows_are_refused(
    core: ModuleType, size: int, highest: int | None, bitmap: bytes
) -> None:
    with pytest.raises(ConfigurationError):
        core.ReplayWindow.restore(size, highest, bitmap)


@pytest.mark.parametrize("core", BACKENDS)
def test_malformed_exports_are_configuration_errors(core: ModuleType) -> None:
    table = _table(core, "CHACHA20_POLY1305")
    table.bind_address(1, PEER6, 0.0)
    good = table.export_session(1)
    target = core.SessionTable(2)
    for cut in range(len(good)):
        with pytest.raises(ConfigurationError):
            target.import_session(1, good[:cut], 0.0)
    for bad in (good + b"\0", b"\2" + good[1:], good[:1] + b"\x09" + good[2:]):
        with pytest.raises(ConfigurationError):
            target.import_session(1, bad, 0.0)
    assert len(target) == 0
    with pytest.raises(ConfigurationError):
        table.export_session(1, 1 << 48)


# -- differential ------------------------------------------------------------

exports = st.fixed_dictionaries(
    {
        "aead": st.sampled_from(AEADS),
        "window": st.integers(1, 300),
        "accepts": st.lists(st.integers(0, 2000), max_size=40),
        "next": st.integers(0, (1 << 48) - 1),
        "epochs": st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
        "address": st.sampled_from([None, PEER4, PEER6, ("::1", 1, 7, 3)]),
        "reserve": st.none() | st.integers(0, (1 << 48) - 1),
    }
)


def _export(core: ModuleType, spec: dict[str, Any]) -> bytes:
    table = core.SessionTable(2)
    read, write = _ciphers(core, spec["aead"])
    window = core.ReplayWindow(spec["window"])
    for seq in spec["accepts"]:
        if window.check(seq):
            window.accept(seq)
    read_epoch, write_epoch = spec["epochs"]
    table.install(1, read, read_epoch, window, write, write_epoch, spec["next"])
    if spec["address"] is not None:
        table.bind_address(1, spec["address"], 0.0)
    exported = table.export_session(1, spec["reserve"])
    assert isinstance(exported, bytes)
    return exported


@settings(max_examples=300, deadline=None)
@given(exports)
def test_rust_and_pure_export_identical_bytes(spec: dict[str, Any]) -> None:
    rust, python = _export(_core, spec), _export(pure, spec)
    assert rust == python
    # Each imports what the other exported, and exports it back unchanged.
    for core in (_core, pure):
        table = core.SessionTable(1)
        table.import_session(9, rust, 1.0)
        assert table.export_session(9) == rust


@settings(max_examples=300, deadline=None)
@given(exports, st.data())
def test_rust_and_pure_refuse_the_same_corruptions(spec: dict[str, Any], data: Any) -> None:
    good = _export(_core, spec)
    index = data.draw(st.integers(0, len(good) - 1))
    bad = bytearray(good)
    bad[index] ^= data.draw(st.integers(1, 255))
    outcomes = []
    for core in (_core, pure):
        table = core.SessionTable(1)
        try:
            table.import_session(1, bytes(bad), 0.0)
        except ConfigurationError:
            outcomes.append(None)
        else:
            outcomes.append(table.export_session(1))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("core", BACKENDS)
def test_a_batch_import_installs_the_good_items_and_says_why_not_the_others(
    core: ModuleType,
) -> None:
    table = _table(core)
    table.bind_address(1, PEER4, 0.0)
    first = table.export_session(1)
    table.bind_address(1, PEER6, 0.0)
    second = table.export_session(1)
    restarted = core.SessionTable(3)
    outcomes = restarted.import_sessions(
        [
            (10, first, 1 << 24, True),
            (11, first, None, True),  # the same address: another session has it
            (12, first[:20], None, True),  # malformed
            (13, second, None, False),  # imported, its address not bound
            (14, second, None, True),
            (15, second, None, False),  # the table is full
        ],
        2.0,
    )
    assert outcomes[0] == PEER4
    assert isinstance(outcomes[1], str) and "another session" in outcomes[1]
    assert isinstance(outcomes[2], str)
    assert outcomes[3] == PEER6 and outcomes[4] == PEER6
    assert isinstance(outcomes[5], str) and "full" in outcomes[5]
    assert len(restarted) == 3 and 11 not in restarted and 12 not in restarted
    assert restarted.next_write_sequence(10) == 1 << 24
    assert restarted.next_write_sequence(13) == 42
    assert restarted.last_active(10) == 2.0
    # Bound sessions answer their address in serve(); the unbound one does not.
    assert restarted.export_session(13) == table.export_session(1)[:-27] + b"\0"
    assert restarted.export_session(14) == second
    with pytest.raises(ConfigurationError):
        restarted.import_sessions([(1, first, 1 << 48, True)], 0.0)
    with pytest.raises(ConfigurationError):
        restarted.import_sessions([(1, "not bytes", None, True)], 0.0)
