"""Fault tests: the interop harness (tests/interop/peers.py) is importable as ``peers``,
the sans-I/O pair (tests/connection/dtls_pair.py) as ``dtls_pair`` and its PKI as
``pki``, and the CoAP harness (tests/coap/coap_harness.py) as ``coap_harness``;
no peer process may outlive a test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The interop harness, the sans-I/O pair and test PKI of tests/connection, and
# the CoAP harness.
for _helpers in ("interop", "connection", "coap"):
    _path = str(Path(__file__).resolve().parent.parent / _helpers)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from peers import live_started_processes, reap_started_processes  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leaked_fault_peers() -> Iterator[None]:
    """Peers started during a test are gone when it ends (killed by PID otherwise)."""
    before = set(live_started_processes())
    yield
    alive = {p: w for p, w in live_started_processes().items() if p not in before}
    reap_started_processes(alive)
    assert not alive, f"peer processes still running after the test: {alive}"
