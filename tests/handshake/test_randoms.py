"""Hello randoms drawn in blocks from the OS (dtlsfast.handshake.randoms)."""

from __future__ import annotations

import os

import pytest

from dtlsfast.handshake import randoms


def test_randoms_are_32_fresh_bytes_across_blocks() -> None:
    drawn = [randoms.hello_random() for _ in range(3 * randoms.BLOCK + 5)]
    assert all(len(r) == 32 for r in drawn)
    assert len(set(drawn)) == len(drawn)


def test_one_os_call_per_block_and_a_fork_starts_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    randoms._pool.reset()
    first = [randoms.hello_random() for _ in range(randoms.BLOCK)]
    assert calls == [32 * randoms.BLOCK]
    # What os.register_at_fork runs in a child: the parent's block is gone.
    randoms._pool.reset()
    after = randoms.hello_random()
    assert len(calls) == 2 and after not in first
