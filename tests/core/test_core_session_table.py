"""The session table of the fast path (RFC 6347 §4.1, §4.1.2.6, §4.1.2.7):
behaviour on both cores, and a differential test that the Rust table and its
pure-Python twin give identical results over generated operation sequences."""

from __future__ import annotations

from functools import partial
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError

KEY, IV = bytes(range(16)), b"\x01\x02\x03\x04"
APPLICATION_DATA, ALERT = 23, 21
BACKENDS = [pytest.param(_core, id="rust"), pytest.param(pure, id="pure")]


def _table(core: ModuleType, *, capacity: int = 4, next_write: int = 1) -> Any:
    """A table with session 1: both directions keyed alike, so a sealed
    record opens again (client and server in one)."""
    table = core.SessionTable(capacity)
    cipher = core.RecordCipher("AES_128_CCM_8", KEY, IV)
    window = core.ReplayWindow(64)
    window.accept(0)  # the peer's Finished
    table.install(1, cipher, 1, window, cipher, 1, next_write)
    return table


@pytest.mark.parametrize("core", BACKENDS)
def test_seal_uses_the_next_sequence_number(core: ModuleType) -> None:
    table = _table(core, next_write=5)
    record = table.seal(1, APPLICATION_DATA, b"hello")
    assert record[:3] == b"\x17\xfe\xfd" and record[3:11] == b"\x00\x01\x00\x00\x00\x00\x00\x05"
    assert table.next_write_sequence(1) == 6
    assert table.next_write_sequence(2) is None


@pytest.mark.parametrize("core", BACKENDS)
def test_the_fast_path_opens_counts_and_hands_back(core: ModuleType) -> None:
    table = _table(core)
    a, b = table.seal(1, APPLICATION_DATA, b"a"), table.seal(1, APPLICATION_DATA, b"b")
    assert table.open_datagram(1, a + b) == ([b"a", b"b"], 0, 0, [])
    assert table.open_datagram(1, a) == ([], 1, 0, [])  # replayed
    forged = bytearray(table.seal(1, APPLICATION_DATA, b"c"))
    forged[-1] ^= 0x80
    assert table.open_datagram(1, bytes(forged)) == ([], 0, 1, [])
    alert = table.seal(1, ALERT, b"\x01\x00")
    assert table.open_datagram(1, alert) is None  # Python's business
    assert table.open_datagram(1, table.seal(1, APPLICATION_DATA, b"d") + alert) is None
    assert table.open_datagram(1, a + b"\x00") is None  # trailing garbage
    assert table.open_datagram(2, a) is None  # unknown session
    # Python opens the handed-back alert through the table: one window.
    header = alert[:13]
    fields = (header[0], int.from_bytes(header[1:3], "big"), 1, int.from_bytes(header[5:11], "big"))
    assert table.open_record(1, *fields, alert[13:]) == b"\x01\x00"
    assert table.open_record(1, *fields, alert[13:]) == "replay"
    assert table.open_record(1, fields[0], fields[1], 0, fields[3], alert[13:]) is None


@pytest.mark.parametrize("core", BACKENDS)
def test_one_alert_record_opens_in_one_call(core: ModuleType) -> None:
    table = _table(core)
    alert = table.seal(1, ALERT, b"\x01\x00")
    data = table.seal(1, APPLICATION_DATA, b"d")
    # Anything but exactly one alert record of the read epoch is declined,
    # and consumes nothing.
    for other in (data, alert + alert, alert + b"\x00", b"", data + alert):
        assert table.open_alert(1, other) is None
    assert table.open_alert(2, alert) is None  # unknown session
    assert table.open_alert(1, alert[:4] + b"\x00" + alert[5:]) is None  # epoch 0
    forged = bytearray(alert)
    forged[-1] ^= 0x80
    assert table.open_alert(1, bytes(forged)) == "bad_auth"
    assert table.open_alert(1, alert) == b"\x01\x00"
    assert table.open_alert(1, alert) == "replay"
    assert table.open_datagram(1, data) == ([b"d"], 0, 0, [])  # one window
    table.set_connection_ids(1, b"\x07", b"")
    assert table.open_alert(1, table.seal(1, ALERT, b"\x01\x00")) is None  # tls12_cid: Python's


@pytest.mark.parametrize("core", BACKENDS)
def test_batches_match_single_calls(core: ModuleType) -> None:
    table = _table(core)
    sealed = table.seal_batch([(1, b"x"), (9, b"y"), (1, b"z")])
    assert sealed[1] is None and sealed[0] is not None and sealed[2] is not None
    opened = table.open_batch([(1, sealed[0]), (1, sealed[0]), (7, sealed[2]), (1, sealed[2])])
    assert opened == [([b"x"], 0, 0, []), ([], 1, 0, []), None, ([b"z"], 0, 0, [])]
    with pytest.raises(ConfigurationError):
        table.open_batch([(1, "not bytes")])
    with pytest.raises(ConfigurationError):
        table.seal_batch([(-1, b"x")])


@pytest.mark.parametrize("core", BACKENDS)
def test_the_table_is_bounded_and_misuse_is_typed(core: ModuleType) -> None:
    table = _table(core, capacity=1)
    cipher = core.RecordCipher("AES_128_CCM_8", KEY, IV)
    with pytest.raises(ConfigurationError, match="full"):
        table.install(2, cipher, 1, core.ReplayWindow(64), cipher, 1, 0)
    assert table.remove(1) and not table.remove(1) and len(table) == 0
    with pytest.raises(ConfigurationError, match="no session"):
        table.seal(1, APPLICATION_DATA, b"x")
    with pytest.raises(ConfigurationError):
        core.SessionTable(0)
    with pytest.raises(ConfigurationError):
        table.install(1, cipher, 1, core.ReplayWindow(64), cipher, 1, 2**48)
    table.install(1, cipher, 1, core.ReplayWindow(64), cipher, 1, 2**48 - 1)
    table.seal(1, APPLICATION_DATA, b"last")
    with pytest.raises(ConfigurationError, match="exhausted"):
        table.seal(1, APPLICATION_DATA, b"one too many")
    assert 1 in table and 2 not in table and "x" not in table
    assert "CoAP" not in repr(table) and KEY.hex() not in repr(table)


# -- differential ------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("seal"),
            st.sampled_from([1, 2]),
            st.sampled_from([21, 22, 23]),
            st.binary(max_size=40),
        ),
        st.tuples(st.just("replay"), st.integers(0, 30), st.integers(0, 3)),
        st.tuples(st.just("flip"), st.integers(0, 30), st.integers(0, 400)),
        st.tuples(st.just("alert"), st.integers(0, 30), st.integers(-100, 400)),
        st.tuples(st.just("garbage"), st.sampled_from([1, 2, 3]), st.binary(max_size=60)),
        st.tuples(st.just("remove"), st.sampled_from([1, 2, 3])),
    ),
    max_size=40,
)


def _run(core: ModuleType, ops: list[tuple[Any, ...]]) -> list[Any]:
    table = core.SessionTable(2)
    for sid, aead, key_len in ((1, "AES_128_CCM_8", 16), (2, "CHACHA20_POLY1305", 32)):
        iv = bytes(12) if aead.startswith("CHACHA") else IV
        cipher = core.RecordCipher(aead, bytes(range(key_len)), iv)
        table.install(sid, cipher, 1, core.ReplayWindow(16), cipher, 1, sid * 3)
    sent: list[tuple[int, bytes]] = []
    results: list[Any] = []

    def attempt(call: Any) -> Any:
        try:
            return ("ok", call())
        except ConfigurationError as exc:
            return ("raised", str(exc))

    for op in ops:
        if op[0] == "seal":
            _, sid, ctype, payload = op
            out = attempt(partial(table.seal, sid, ctype, payload))
            if out[0] == "ok":
                sent.append((sid, out[1]))
            results.append(out)
        elif op[0] in ("replay", "flip") and sent:
            sid, record = sent[op[1] % len(sent)]
            if op[0] == "flip":
                bit = op[2] % (len(record) * 8)
                record = bytearray(record)
                record[bit // 8] ^= 1 << (bit % 8)
                record = bytes(record)
                results.append(table.open_datagram(sid, record))
            else:
                batch = [(sid, record)] * (op[2] + 1)
                results.append(table.open_batch(batch))
        elif op[0] == "alert" and sent:
            sid, record = sent[op[1] % len(sent)]
            if op[2] >= 0:  # a flipped bit, or else the record as sent
                bit = op[2] % (len(record) * 8)
                record = bytearray(record)
                record[bit // 8] ^= 1 << (bit % 8)
                record = bytes(record)
            results.append(table.open_alert(sid, record))
        elif op[0] == "garbage":
            results.append(attempt(partial(table.open_datagram, op[1], op[2])))
            results.append(attempt(partial(table.open_alert, op[1], op[2])))
        elif op[0] == "remove":
            results.append(table.remove(op[1]))
        results.append((len(table), table.next_write_sequence(1), table.next_write_sequence(2)))
    return results


@settings(max_examples=200, deadline=None)
@given(operations)
def test_rust_and_pure_tables_agree(ops: list[tuple[Any, ...]]) -> None:
    assert _run(_core, ops) == _run(pure, ops)


# -- the demultiplexer (serve) ---------------------------------------------------

PEER, OTHER, STRANGER = ("127.0.0.1", 5000), ("127.0.0.1", 5001), ("10.0.0.9", 7)

datagram_kinds = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("data", "get", "alert", "forged", "replay", "garbage"),
                *("hello", "hello_cookie", "hello_fragment", "hello_cut", "close"),
            ]
        ),
        st.sampled_from([PEER, OTHER, STRANGER]),
        st.sampled_from([1, 2]),
    ),
    max_size=30,
)


def _client_hello(n: int, cookie: bytes = b"", *, fragment: bool = False) -> bytes:
    """A datagram of one epoch-0 record holding a ClientHello (RFC 5246
    §7.4.1.2) with this cookie; its first half only if ``fragment``."""
    body = (
        b"\xfe\xfd"
        + bytes([n % 256]) * 32
        + b"\x00"
        + bytes([len(cookie)])
        + cookie
        + b"\x00\x02\xc0\xa8\x01\x00"
    )
    length = len(body).to_bytes(3, "big")
    piece = body[: len(body) // 2] if fragment else body
    message = (
        b"\x01" + length + (n % 7).to_bytes(2, "big") + b"\x00\x00\x00"
        + len(piece).to_bytes(3, "big") + piece
    )  # fmt: skip
    return (
        b"\x16\xfe\xfd\x00\x00" + n.to_bytes(6, "big") + len(message).to_bytes(2, "big") + message
    )


def _serve_run(core: ModuleType, kinds: list[tuple[str, tuple[str, int], int]]) -> list[Any]:
    gate = core.HelloGate(b"\x07" * 32)
    table = core.SessionTable(4)
    cipher = core.RecordCipher("AES_128_CCM_8", KEY, IV)
    for sid in (1, 2):
        table.install(sid, cipher, 1, core.ReplayWindow(64), cipher, 1, 1)
    table.set_auth_filter(3, 2.0)
    table.bind_address(1, PEER, 0.0)
    table.bind_address(2, OTHER, 0.0)
    table.publish(b"light", b"\x45\xc0\xffoff")
    get = bytes([0x40, 0x01, 0x00, 0x07, 0xB5]) + b"light"
    sent: list[bytes] = []
    batch: list[tuple[bytes, tuple[str, int]]] = []
    out: list[Any] = []
    for n, (kind, addr, sid) in enumerate(kinds):
        if kind == "data":
            record = table.seal(sid, APPLICATION_DATA, b"d%d" % n)
        elif kind == "get":
            record = table.seal(sid, APPLICATION_DATA, get)
        elif kind == "alert":
            record = table.seal(sid, ALERT, b"\x02\x28")
        elif kind == "close":
            record = table.seal(sid, ALERT, b"\x01\x00")
        elif kind == "forged":
            record = bytearray(table.seal(sid, APPLICATION_DATA, b"f"))
            record[-1] ^= 1
            record = bytes(record)
        elif kind == "replay" and sent:
            record = sent[n % len(sent)]
        elif kind == "hello":
            record = _client_hello(n)
        elif kind == "hello_cookie":
            record = _client_hello(n, bytes([n % 256]) * 32)
        elif kind == "hello_fragment":
            record = _client_hello(n, fragment=True)
        elif kind == "hello_cut":
            record = _client_hello(n)[: 26 + n % 40]
        else:
            record = bytes([n % 256]) * (n % 20)
        sent.append(record)
        batch.append((record, addr))
        if n % 7 == 6:
            out.append(table.serve(batch, n / 3, gate if n % 2 else None))
            batch = []
    out.append(table.serve(batch, 100.0, gate))
    out.append((table.totals, table.last_active(1), table.last_active(2), table.coap_answered))
    return out


@settings(max_examples=200, deadline=None)
@given(datagram_kinds)
def test_rust_and_pure_demultiplex_alike(kinds: list[tuple[str, tuple[str, int], int]]) -> None:
    assert _serve_run(_core, kinds) == _serve_run(pure, kinds)


@pytest.mark.parametrize("core", BACKENDS)
def test_serve_answers_a_new_peers_first_hello_with_the_gate(core: ModuleType) -> None:
    """RFC 6347 §4.2.1 in the batch: a ClientHello without a cookie from an
    address without a session gets the gate's HelloVerifyRequest, as
    :meth:`HelloGate.check` gives it, and never reaches Python; a hello with
    a cookie, a fragment, or one from a session's address does."""
    gate = core.HelloGate(b"\x07" * 32)
    table = _table(core)
    table.bind_address(1, PEER, 5.0)
    hello, fragment = _client_hello(3), _client_hello(4, fragment=True)
    verdict, expected = gate.check(hello, STRANGER)
    assert verdict == "hello_verify_sent" and expected is not None
    cookie = expected[28:]
    second = _client_hello(3, cookie)
    assert gate.check(second, STRANGER)[0] == "accepted"
    received, to_python, delivered, replies, closed = table.serve(
        [(hello, STRANGER), (second, STRANGER), (fragment, STRANGER), (hello, PEER)], 6.0, gate
    )
    assert (received, delivered, closed) == (4, [], [])
    assert replies == [(expected, STRANGER)]
    assert to_python == [(second, STRANGER), (fragment, STRANGER), (hello, PEER)]
    assert table.totals["hellos_answered"] == 1
    # Without a gate the batch answers no hello.
    assert table.serve([(hello, STRANGER)], 7.0)[1] == [(hello, STRANGER)]


@pytest.mark.parametrize("core", BACKENDS)
def test_serve_answers_a_close_notify_and_unbinds_the_session(core: ModuleType) -> None:
    """RFC 5246 §7.2.1 in the batch: a bound session's close_notify is
    answered with ours and reported closed, the address unbound for the rest
    of the batch; another alert, a forged or a replayed close_notify is
    Python's, the session's window untouched."""
    table = _table(core)
    table.bind_address(1, PEER, 5.0)
    close = table.seal(1, ALERT, b"\x01\x00")
    fatal = table.seal(1, ALERT, b"\x02\x28")
    forged = bytearray(close)
    forged[-1] ^= 1
    after = table.seal(1, APPLICATION_DATA, b"after")
    served = table.serve([(fatal, PEER), (bytes(forged), PEER)], 6.0)
    assert served[1] == [(fatal, PEER), (bytes(forged), PEER)] and served[4] == []
    assert table.open_alert(1, fatal) == b"\x02\x28"  # not consumed by serve
    _, to_python, delivered, replies, closed = table.serve([(close, PEER), (after, PEER)], 7.0)
    assert closed == [(PEER, 1)] and delivered == []
    assert to_python == [(after, PEER)]  # the session left its address
    ((reply, to),) = replies
    assert to == PEER and table.open_alert(1, reply) == b"\x01\x00"
    assert table.totals["closed"] == 1 and table.last_active(1) == 7.0
    assert table.serve([(close, PEER)], 8.0)[1] == [(close, PEER)]
    assert table.open_alert(1, close) == "replay"


@pytest.mark.parametrize("core", BACKENDS)
def test_serve_routes_by_address(core: ModuleType) -> None:
    table = _table(core)
    table.bind_address(1, PEER, 5.0)
    data = table.seal(1, APPLICATION_DATA, b"hello")
    alert = table.seal(1, ALERT, b"\x02\x28")  # fatal: Python's
    received, to_python, delivered, replies, closed = table.serve(
        [(data, PEER), (data, STRANGER), (alert, PEER)], 6.0
    )
    assert received == 3 and replies == [] and closed == []
    assert delivered == [(PEER, b"hello")]
    assert to_python == [(data, STRANGER), (alert, PEER)]
    assert table.last_active(1) == 6.0 and table.totals["opened"] == 1
    table.remove(1)
    assert table.serve([(data, PEER)], 7.0)[1] == [(data, PEER)]
    with pytest.raises(ConfigurationError, match="address"):
        table.serve([(data, ("not-an-ip", 1))], 8.0)
    with pytest.raises(ConfigurationError):
        table.set_auth_filter(0, 1)


@pytest.mark.parametrize("core", BACKENDS)
def test_the_default_filter_opens_every_forged_record_below_its_rate(core: ModuleType) -> None:
    """The MAC-error filter (dtlsfast.auth_filter) by default: 10,000 forged
    records a second from a session's address for 3 s are all opened and the
    genuine record after them is delivered; far past the rate, the session's
    datagrams are dropped unopened until a token comes back."""
    table = _table(core)
    table.bind_address(1, PEER, 0.0)
    forged = bytearray(table.seal(1, APPLICATION_DATA, b"f"))
    forged[-1] ^= 1
    for tick in range(300):
        table.serve([(bytes(forged), PEER)] * 100, tick / 100)
    genuine = table.seal(1, APPLICATION_DATA, b"genuine")
    assert table.serve([(genuine, PEER)], 3.0)[2] == [(PEER, b"genuine")]
    assert (table.totals["bad_auth"], table.totals["throttled"]) == (30_000, 0)
    table.serve([(bytes(forged), PEER)] * 30_000, 4.0)  # the burst is 20,000
    assert table.totals["throttled"] == 10_000
    later = table.seal(1, APPLICATION_DATA, b"later")
    assert table.serve([(later, PEER)], 4.0)[2] == []  # throttled: dropped unopened
    assert table.serve([(later, PEER)], 4.001)[2] == [(PEER, b"later")]


@pytest.mark.parametrize("core", BACKENDS)
@pytest.mark.parametrize("field", ["read_epoch", "write_epoch"])
def test_an_epoch_past_16_bits_is_refused_not_truncated(core: ModuleType, field: str) -> None:
    """Epoch 65536 used to reach the Rust table as epoch 0 (``as u16``)."""
    table = core.SessionTable(4)
    cipher = core.RecordCipher("AES_128_CCM_8", KEY, IV)
    epochs = {"read_epoch": 1, "write_epoch": 1, field: 0x10000}
    with pytest.raises(ConfigurationError, match=field):
        table.install(
            1, cipher, epochs["read_epoch"], core.ReplayWindow(64), cipher, epochs["write_epoch"], 0
        )
    assert len(table) == 0
