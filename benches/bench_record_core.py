"""Record-core micro-benchmarks: Rust ``_core`` against the pure-Python twin.

Each benchmark is parametrised over ``impl`` in (rust, python) and grouped by
operation and size, so the table shows the two side by side; a correctness
check is stored in ``extra_info`` beside every timing (orjson's style).
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

import pytest

from dtlsfast import _core, pure

IMPLS: dict[str, ModuleType] = {"rust": _core, "python": pure}
AEADS = {
    "AES_128_CCM_8": (16, 4),
    "AES_128_CCM": (16, 4),
    "AES_128_GCM": (16, 4),
    "AES_256_GCM": (32, 4),
    "CHACHA20_POLY1305": (32, 12),
}
SIZES = [64, 256, 1200]


def _cipher(impl: str, aead: str) -> Any:
    key_len, iv_len = AEADS[aead]
    return IMPLS[impl].RecordCipher(aead, bytes(range(key_len)), bytes(range(iv_len)))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("aead", list(AEADS))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_seal(benchmark: Any, impl: str, aead: str, size: int) -> None:
    cipher = _cipher(impl, aead)
    plaintext = bytes(size)
    benchmark.group = f"seal-{aead}-{size}"
    record = benchmark(cipher.seal, 23, 0xFEFD, 1, 42, plaintext)
    benchmark.extra_info["correct"] = cipher.open(record) == plaintext


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("aead", list(AEADS))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_open(benchmark: Any, impl: str, aead: str, size: int) -> None:
    cipher = _cipher(impl, aead)
    plaintext = bytes(size)
    record = cipher.seal(23, 0xFEFD, 1, 42, plaintext)
    benchmark.group = f"open-{aead}-{size}"
    opened = benchmark(cipher.open, record)
    benchmark.extra_info["correct"] = opened == plaintext


@pytest.mark.parametrize("impl", list(IMPLS))
def test_seal_open_ccm8_256(benchmark: Any, impl: str) -> None:
    """The issue's target: Rust seal + open of a 256-byte AES_128_CCM_8
    record at least 3x faster than the pure-Python twin."""
    cipher = _cipher(impl, "AES_128_CCM_8")
    plaintext = bytes(256)

    def roundtrip() -> bytes | None:
        return cipher.open(cipher.seal(23, 0xFEFD, 1, 42, plaintext))

    benchmark.group = "seal+open-AES_128_CCM_8-256"
    benchmark.extra_info["correct"] = benchmark(roundtrip) == plaintext


@pytest.mark.parametrize("impl", list(IMPLS))
def test_replay_check(benchmark: Any, impl: str) -> None:
    window = IMPLS[impl].ReplayWindow(64)
    for seq in range(0, 1000, 3):
        window.accept(seq)

    def check_and_accept() -> bool:
        fresh = window.check(1001)
        stale = window.check(999)
        return fresh and not stale

    benchmark.group = "replay-check"
    benchmark.extra_info["correct"] = benchmark(check_and_accept)


def _fragments(body: bytes) -> list[bytes]:
    n = len(body).to_bytes(3, "big")
    cuts = [(0, 400), (400, 400), (800, len(body) - 800)]
    pieces = [
        b"\x0b"
        + n
        + b"\x00\x00"
        + off.to_bytes(3, "big")
        + ln.to_bytes(3, "big")
        + body[off : off + ln]
        for off, ln in cuts
    ]
    random.Random(3).shuffle(pieces)
    return pieces


@pytest.mark.parametrize("impl", list(IMPLS))
def test_reassembly_three_shuffled_fragments(benchmark: Any, impl: str) -> None:
    body = bytes(range(256)) * 4 + bytes(176)  # 1200 bytes
    pieces = _fragments(body)
    module = IMPLS[impl]

    def reassemble() -> list[bytes]:
        machine = module.HandshakeReassembler()
        out: list[bytes] = []
        for piece in pieces:
            out += machine.push(piece)
        return out

    benchmark.group = "reassembly-1200-in-3"
    (message,) = benchmark(reassemble)
    benchmark.extra_info["correct"] = message[12:] == body
