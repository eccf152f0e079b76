"""Fixtures for the interop tests: no peer process may outlive the test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import live_started_processes, reap_started_processes

#: names of the programs the interop tests start (for the stray-child check)
_PEER_COMMS = ("timeout", "openssl", "gnutls-serv", "gnutls-cli", "coap-server-", "coap-client-")


def _peer_children() -> dict[int, str]:
    """Running children of this pytest process that look like peers (PID -> cmdline)."""
    found: dict[int, str] = {}
    me = os.getpid()
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            kids = Path(f"/proc/{me}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                comm = Path(f"/proc/{kid}/comm").read_text().strip()
                cmdline = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if comm.startswith(_PEER_COMMS):
                found[kid] = cmdline.decode(errors="replace").strip()
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_stray_peers() -> Iterator[None]:
    """At the end of the session, kill (by PID) peers this package started and fail if any
    were still running, or if other peer-looking children of pytest are left over."""
    before = set(_peer_children())
    yield
    leaked = reap_started_processes()
    unknown = {pid: cmd for pid, cmd in _peer_children().items() if pid not in before}
    problems = [f"  pid {pid} (killed): {what}" for pid, what in leaked.items()]
    problems += [f"  pid {pid} (not ours, left alone): {cmd}" for pid, cmd in unknown.items()]
    assert not problems, "peer processes outlived the interop tests:\n" + "\n".join(problems)


@pytest.fixture
def no_leaked_peers() -> Iterator[None]:
    """Per-test variant: peers started during the test (not by wider-scoped fixtures
    set up before it) are gone when it ends; stray ones are killed by PID, and fail it."""
    before = set(live_started_processes())
    yield
    alive = {p: w for p, w in live_started_processes().items() if p not in before}
    reap_started_processes(alive)
    assert not alive, f"peer processes still running after the test: {alive}"
