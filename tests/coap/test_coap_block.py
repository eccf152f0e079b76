"""RFC 7959 §2.2 Block option values and slicing."""

from __future__ import annotations

import pytest

from dtlsfast.coap.block import BlockOption, block_slice, size_to_szx, szx_to_size
from dtlsfast.coap.errors import BlockOptionError, CoapEncodeError


@pytest.mark.parametrize(
    ("block", "raw"),
    [
        (BlockOption(0, False, 0), b""),
        (BlockOption(0, True, 6), b"\x0e"),
        (BlockOption(1, False, 6), b"\x16"),
        (BlockOption(15, True, 2), b"\xfa"),
        (BlockOption(16, False, 0), b"\x01\x00"),
        (BlockOption(4095, True, 6), b"\xff\xfe"),
        (BlockOption(4096, False, 1), b"\x01\x00\x01"),
        (BlockOption((1 << 20) - 1, True, 5), b"\xff\xff\xfd"),
    ],
)
def test_encode_decode(block: BlockOption, raw: bytes) -> None:
    assert block.encode() == raw
    assert BlockOption.decode(raw) == block


def test_size_and_offset() -> None:
    block = BlockOption(3, True, 2)
    assert block.size == 64
    assert block.offset == 192
    assert [szx_to_size(s) for s in range(7)] == [16, 32, 64, 128, 256, 512, 1024]
    assert size_to_szx(1024) == 6
    assert size_to_szx(2048) == 6
    assert size_to_szx(100) == 2
    assert size_to_szx(16) == 0


def test_invalid_values() -> None:
    with pytest.raises(BlockOptionError, match="SZX 7"):
        BlockOption.decode(b"\x07")
    with pytest.raises(BlockOptionError, match="at most 3"):
        BlockOption.decode(b"\x00\x00\x00\x01")
    with pytest.raises(CoapEncodeError):
        BlockOption(1 << 20, False, 0)
    with pytest.raises(CoapEncodeError):
        BlockOption(0, False, 7)
    with pytest.raises(CoapEncodeError):
        szx_to_size(7)
    with pytest.raises(CoapEncodeError):
        size_to_szx(8)


def test_block_slice() -> None:
    body = bytes(range(100))
    assert block_slice(body, 0, 1) == (body[:32], BlockOption(0, True, 1))
    assert block_slice(body, 3, 1) == (body[96:], BlockOption(3, False, 1))
    assert block_slice(body, 4, 1) is None
    assert block_slice(b"", 0, 6) == (b"", BlockOption(0, False, 6))
    assert block_slice(bytes(64), 1, 1) == (bytes(32), BlockOption(1, False, 1))
