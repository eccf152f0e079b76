"""The load generator's client table (rust/client_table.rs) and its pure twin
(dtlsfast.pure.client_table): requests sealed, responses opened and matched
(RFC 7252 §4.2, RFC 6347 §4.1.2.6-7), timers listed for Python's policy;
the two held to identical bytes and counts on generated runs, and the Rust
one driving real sockets."""

from __future__ import annotations

import socket
import time
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError

AEAD = "AES_128_CCM_8"
UP = (b"\x01" * 16, b"\x02" * 4)  # client -> server
DOWN = (b"\x03" * 16, b"\x04" * 4)  # server -> client
TAIL = b"\xb5light"


class Server:
    """The other end, in the test: opens requests, seals answers."""

    def __init__(self) -> None:
        self.read = pure.RecordCipher(AEAD, *UP)
        self.write = pure.RecordCipher(AEAD, *DOWN)
        self.seq = 1

    def request(self, record: bytes) -> bytes:
        plain = self.read.open(record)
        assert plain is not None
        return plain

    def answer(self, request: bytes, mtype: int, code: int) -> bytes:
        """A response to ``request``: piggybacked (ACK), separate (CON/NON),
        an empty ACK (code 0) or a reset (mtype 3)."""
        if mtype == 3 or code == 0:
            coap = bytes(((1 << 6) | (mtype << 4), 0)) + request[2:4]
        else:
            coap = bytes(((1 << 6) | (mtype << 4) | 4, code)) + request[2:8] + b"\xffon"
        self.seq += 1
        return self.write.seal(23, 0xFEFD, 1, self.seq, coap)


def table(impl: ModuleType, sessions: int = 2, fd: int = -1, **kwargs: Any) -> Any:
    t = impl.ClientTable(1, TAIL, seed=7, **kwargs)
    for n in range(sessions):
        t.add(
            fd,
            impl.RecordCipher(AEAD, *DOWN),
            1,
            impl.ReplayWindow(64),
            impl.RecordCipher(AEAD, *UP),
            1,
            1,
            mid=0xFFFF - n,
            token=0xFFFFFFFF - n,
        )
    return t


@pytest.fixture(params=["rust", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return _core if request.param == "rust" else pure


def test_requests_are_sealed_and_responses_matched(impl: ModuleType) -> None:
    t = table(impl)
    server = Server()
    sent = t.begin(2, 0.0)
    assert [index for index, _ in sent] == [0, 0, 1, 1]
    first = server.request(sent[0][1])
    # Message IDs and tokens count up (and wrap) from the ones given.
    assert first == b"\x44\x01\x00\x00\x00\x00\x00\x00" + TAIL
    taken, more = t.feed(0, server.answer(first, 2, 0x45), 0.25)
    assert taken and len(more) == 1 and more[0][0] == 0
    assert server.request(more[0][1])[2:8] == b"\x00\x02\x00\x00\x00\x02"
    stats = t.stats()
    assert stats["requests"] == 1 and stats["codes"] == {0x45: 1}
    assert stats["latency_sum"] == stats["latency_max"] == 0.25
    assert sum(stats["buckets"].values()) == 1
    assert t.in_flight == 4
    # An alert is not the table's: handed back whole.
    assert t.feed(0, bytes.fromhex("15fefd00010000000000090002" + "0100"), 0.3) == (False, [])
    assert t.end() == 4


def test_timers_resets_and_lost_sessions(impl: ModuleType) -> None:
    t = table(impl, sessions=1, request_timeout=5.0)
    server = Server()
    request = server.request(t.begin(1, 0.0)[0][1])
    due, _ = t.tick(1.0)
    assert due == []
    (entry,), _ = t.tick(3.5)
    index, token, retransmissions, timeout, first_sent, acked = entry
    assert (index, retransmissions, first_sent, acked) == (0, 0, 0.0, False)
    assert 2.0 <= timeout <= 3.0
    found, again = t.retransmit(index, token, timeout * 2, 3.5)
    assert found and server.request(again[0][1]) == request
    # An empty ACK stops the retransmissions; the overall timeout still applies.
    t.feed(0, server.answer(request, 2, 0), 3.6)
    assert t.tick(4.9)[0] == []
    (entry,), _ = t.tick(5.0 + 0.01)
    assert entry[5] is True
    found, replacement = t.give_up(0, token, 5.01)
    assert found and len(replacement) == 1
    assert t.give_up(0, token, 5.02) == (False, [])
    # A reset fails the request and sends its replacement.
    reset = server.answer(server.request(replacement[0][1]), 3, 0)
    assert len(t.feed(0, reset, 5.1)[1]) == 1
    t.lose(0)
    stats = t.stats()
    assert (stats["timeouts"], stats["resets"], stats["retransmissions"]) == (1, 1, 1)
    assert (stats["transport_errors"], stats["sessions_lost"], t.in_flight) == (1, 1, 0)
    with pytest.raises(ConfigurationError):
        t.lose(5)
    with pytest.raises(ConfigurationError):
        t.retransmit(0, 1, 0.0, 1.0)
    with pytest.raises(ConfigurationError):
        t.begin(0, 1.0)


def test_bad_plans_are_refused(impl: ModuleType) -> None:
    with pytest.raises(ConfigurationError):
        impl.ClientTable(1, b"", ack_timeout=0.0)
    with pytest.raises(ConfigurationError):
        impl.ClientTable(1, b"", random_factor=0.5)
    with pytest.raises(ConfigurationError):
        impl.ClientTable(1, bytes(2000))


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("answer"),
            st.integers(0, 2),  # session
            st.integers(0, 7),  # which request in flight
            st.sampled_from([0, 1, 2, 3]),  # CON, NON, ACK, RST
            st.sampled_from([0, 0x45, 0x84, 0xA0]),
        ),
        st.tuples(st.just("replay"), st.integers(0, 2)),
        st.tuples(st.just("tick"), st.floats(0.0, 4.0)),
        st.tuples(st.just("icmp"), st.integers(0, 2)),
        st.tuples(st.just("lose"), st.integers(0, 2)),
        st.tuples(st.just("garbage"), st.integers(0, 2), st.binary(max_size=40)),
        st.tuples(st.just("flip"), st.integers(0, 2), st.integers(0, 200)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations, st.integers(1, 3))
def test_rust_and_pure_agree(ops: list[tuple[Any, ...]], window: int) -> None:
    tables = [table(_core, 3, request_timeout=6.0), table(pure, 3, request_timeout=6.0)]
    server = Server()
    now = 0.0
    outs = [t.begin(window, now) for t in tables]
    assert outs[0] == outs[1]
    in_flight: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    last: dict[int, bytes] = {}

    def saw(records: list[tuple[int, bytes]]) -> None:
        for index, record in records:
            in_flight[index].append(server.request(record))

    def both(method: str, *args: Any) -> Any:
        results = [getattr(t, method)(*args) for t in tables]
        assert results[0] == results[1]
        return results[0]

    saw(outs[0])
    for op in ops:
        now += 0.01
        kind = op[0]
        if kind == "answer" and in_flight[op[1]]:
            requests = in_flight[op[1]]
            request = requests[op[2] % len(requests)]
            last[op[1]] = server.answer(request, op[3], op[4])
            saw(both("feed", op[1], last[op[1]], now)[1])
        elif kind == "replay" and op[1] in last:
            both("feed", op[1], last[op[1]], now)
        elif kind == "flip" and op[1] in last:
            damaged = bytearray(last[op[1]])
            damaged[op[2] % len(damaged)] ^= 0x10
            both("feed", op[1], bytes(damaged), now)
        elif kind == "garbage":
            both("feed", op[1], op[2], now)
        elif kind == "tick":
            now += op[1]
            due, unsent = both("tick", now)
            saw(unsent)
            for index, token, retransmissions, timeout, first_sent, _ in due:
                if now - first_sent >= 6.0 or retransmissions >= 4:
                    saw(both("give_up", index, token, now)[1])
                else:
                    saw(both("retransmit", index, token, timeout * 2, now)[1])
        elif kind == "icmp":
            both("transport_error", op[1])
        elif kind == "lose":
            both("lose", op[1])
        counts = [(t.in_flight, t.requests, t.errors, t.retransmissions) for t in tables]
        assert counts[0] == counts[1]
    both("stats")
    for index in range(4):
        both("next_write_sequence", index)
    assert both("end") == tables[0].in_flight


@pytest.mark.parametrize("impl", [_core, pure], ids=["rust", "pure"])
def test_poll_drives_connected_sockets(impl: ModuleType) -> None:
    """The table reads and writes the sessions' sockets itself: requests go
    out at begin, each answer read by poll() brings the next request; an
    alert comes back to the caller; a datagram over the largest DTLS record
    (13 + 2^14 + 2,048 bytes) is a counted drop."""
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_sock.bind(("127.0.0.1", 0))
    server_sock.settimeout(5)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server_sock.getsockname())
    client.setblocking(False)
    server = Server()
    try:
        t = table(impl, sessions=1, fd=client.fileno())
        assert t.fileno() >= 0
        assert t.begin(1, time.monotonic()) == []
        record, peer = server_sock.recvfrom(4096)
        for answered in range(5):
            server_sock.sendto(server.answer(server.request(record), 2, 0x45), peer)
            deadline = time.monotonic() + 5
            while t.requests == answered and time.monotonic() < deadline:
                assert t.poll() == []
            record, _ = server_sock.recvfrom(4096)
        alert = bytes.fromhex("15fefd00010000000000090002" + "0100")
        server_sock.sendto(alert, peer)
        server_sock.sendto(bytes(13 + 2**14 + 2048 + 1), peer)
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 5
        while (not got or t.stats()["truncated"] == 0) and time.monotonic() < deadline:
            got += t.poll()
        assert got == [(0, alert)]
        assert t.requests == 5 and t.stats()["truncated"] == 1
    finally:
        client.close()
        server_sock.close()
