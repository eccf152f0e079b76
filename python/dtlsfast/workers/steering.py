"""Steering of a port's datagrams to the worker that holds their session.

Workers share each port through SO_REUSEPORT sockets that the supervisor
binds once, in worker order, and keeps open: the kernel's reuseport group
then lists socket ``k`` at index ``k`` for as long as the supervisor lives,
whatever happens to the workers.

A classic BPF program (no eBPF toolchain needed), attached to the group with
``SO_ATTACH_REUSEPORT_CBPF``, returns the index of the socket to deliver to:

- a datagram that starts with a ``tls12_cid`` record (content type 25,
  RFC 9146 §4) goes to the worker named by its CID's first byte (modulo the
  number of workers): the byte at offset 11, after type, version, epoch and
  sequence number. The server puts its worker's index there
  (``connection_id_prefix``), so a client that moves to a new address keeps
  reaching the process that holds its session;
- anything else gets an index past the group, on which the kernel falls back
  to its own reuseport flow hash of the 4-tuple: the steering the workers
  have without any program, which keeps a handshake on one worker. (The
  ancillary ``SKF_AD_RXHASH`` load reads the skb's hash, 0 on loopback
  without RPS: it would send everything to worker 0.)

Where the program cannot be attached (not Linux, a kernel without it), the
workers hand each other's CID records over instead
(:mod:`dtlsfast.workers.handover`).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

#: setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF) on Linux (asm-generic/socket.h).
SO_ATTACH_REUSEPORT_CBPF = 51
#: RFC 9146 §4: the record type whose header carries a CID.
TLS12_CID = 25
#: Where the CID starts in a tls12_cid record (type 1, version 2, epoch 2, sequence 6).
CID_OFFSET = 11
#: A worker index fits in the CID's first byte.
MAX_WORKERS = 256

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_B_ABS = 0x00 | 0x10 | 0x20
_JEQ_K = 0x05 | 0x10 | 0x00
_MOD_K = 0x04 | 0x90 | 0x00
_RET_A = 0x06 | 0x10
_RET_K = 0x06 | 0x00
#: An index past any group: the kernel then picks by its flow hash.
_NO_CHOICE = 0xFFFFFFFF


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def steering_program(workers: int) -> bytes:
    """The program's instructions (``struct sock_filter`` array) for ``workers``."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"1 to {MAX_WORKERS} workers, not {workers}")
    return b"".join(
        (
            _insn(_LD_B_ABS, 0, 0, 0),  # A = content type of the first record
            _insn(_JEQ_K, 0, 3, TLS12_CID),  # not tls12_cid: to the flow hash
            _insn(_LD_B_ABS, 0, 0, CID_OFFSET),  # A = the CID's first byte
            _insn(_MOD_K, 0, 0, workers),
            _insn(_RET_A, 0, 0, 0),
            _insn(_RET_K, 0, 0, _NO_CHOICE),
        )
    )


def attach_steering(sock: socket.socket, workers: int) -> None:
    """Attach the steering program to ``sock``'s reuseport group; OSError
    (or NotImplementedError off Linux) where the kernel refuses it."""
    if not sys.platform.startswith("linux"):
        raise NotImplementedError("SO_ATTACH_REUSEPORT_CBPF is Linux only")
    code = steering_program(workers)
    program = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HP", len(code) // 8, ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def owner_of(datagram: bytes, workers: int) -> int | None:
    """The worker that a tls12_cid datagram's CID names, as the program picks
    it; None for a datagram that is not one (the flow hash decides)."""
    if len(datagram) <= CID_OFFSET or datagram[0] != TLS12_CID:
        return None
    return datagram[CID_OFFSET] % workers


__all__ = [
    "CID_OFFSET",
    "MAX_WORKERS",
    "attach_steering",
    "owner_of",
    "steering_program",
]
