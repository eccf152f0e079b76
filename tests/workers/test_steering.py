"""The steering program (dtlsfast.workers.steering) in a real reuseport group:
tls12_cid records go to the socket their CID's first byte names (modulo the
group), everything else to the kernel's flow hash; and the handover codec."""

from __future__ import annotations

import select
import socket

import pytest

from dtlsfast.workers.handover import decode, encode
from dtlsfast.workers.steering import CID_OFFSET, attach_steering, owner_of, steering_program
from dtlsfast.workers.supervisor import bind_group


def _cid_record(first_byte: int) -> bytes:
    header = bytes([25, 0xFE, 0xFD, 0, 1]) + b"\x00" * 6
    return header + bytes([first_byte]) + b"\x07" * 7 + b"\x00\x10" + b"\x00" * 16


def _receivers(group: list[socket.socket]) -> list[int]:
    """Which sockets of the group hold a datagram (each read once)."""
    got = []
    for index, sock in enumerate(group):
        while select.select([sock], [], [], 0.0)[0]:
            sock.recv(2048)
            got.append(index)
    return got


def _send(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(data, ("127.0.0.1", port))


def _wait_one(group: list[socket.socket]) -> int:
    ready, _, _ = select.select(group, [], [], 5.0)
    assert ready, "no socket of the group received the datagram"
    got = _receivers(group)
    assert len(got) == 1, got
    return got[0]


@pytest.mark.parametrize("workers", [2, 3])
def test_cid_records_reach_the_worker_their_cid_names(workers: int) -> None:
    group = bind_group("127.0.0.1", 0, workers)
    try:
        attach_steering(group[0], workers)
        port = group[0].getsockname()[1]
        for first in (0, 1, 2, 5, 255):
            for _ in range(3):  # from new source ports each time
                _send(port, _cid_record(first))
                assert _wait_one(group) == first % workers
    finally:
        for sock in group:
            sock.close()


def test_other_datagrams_keep_the_kernel_flow_hash() -> None:
    group = bind_group("127.0.0.1", 0, 2)
    try:
        attach_steering(group[0], 2)
        port = group[0].getsockname()[1]
        seen = set()
        for _ in range(64):
            _send(port, b"\x16\xfe\xff" + b"\x00" * 30)  # a handshake record
            seen.add(_wait_one(group))
        # 64 source ports all hashed to one socket: 2**-63.
        assert seen == {0, 1}
        # One source port always reaches the same socket.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            where = set()
            for _ in range(8):
                client.sendto(b"\x17" + b"\x00" * 20, ("127.0.0.1", port))
                where.add(_wait_one(group))
            assert len(where) == 1
    finally:
        for sock in group:
            sock.close()


def test_program_and_owner_agree() -> None:
    assert len(steering_program(4)) == 6 * 8
    with pytest.raises(ValueError):
        steering_program(0)
    assert owner_of(_cid_record(7), 4) == 3
    assert owner_of(b"\x17" + b"\x00" * 20, 4) is None
    assert owner_of(b"\x19" + b"\x00" * (CID_OFFSET - 1), 4) is None  # too short


@pytest.mark.parametrize("addr", [("127.0.0.1", 40000), ("::1", 5684, 0, 0), ("fe80::1", 1, 7, 3)])
def test_handover_message_round_trip(addr: tuple[object, ...]) -> None:
    data = _cid_record(1)
    assert decode(encode(data, addr)) == (data, addr)
    assert decode(b"\x04") is None
