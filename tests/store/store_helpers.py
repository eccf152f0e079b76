"""Helpers for the session store tests: a session table with sessions whose
both directions share keys (so a sealed record opens again), and records."""

from __future__ import annotations

import os
from typing import Any

from dtlsfast import _core
from dtlsfast.store import SessionRecord

SECRET = bytes(range(64))


def table_with(count: int, *, start_sequence: int = 1) -> Any:
    table = _core.SessionTable(count + 8)
    for i in range(count):
        cipher = _core.RecordCipher("AES_128_CCM_8", os.urandom(16), os.urandom(4))
        window = _core.ReplayWindow(64)
        window.accept(0)
        table.install(i, cipher, 1, window, cipher, 1, start_sequence)
        table.bind_address(i, (f"10.0.{i >> 8 & 255}.{i & 255}", 5684 + (i >> 16)), 0.0)
    return table


def key_of(i: int) -> bytes:
    return i.to_bytes(8, "big")


def record(table: Any, i: int, limit: int | None = None) -> SessionRecord:
    return SessionRecord(
        key=key_of(i),
        record_state=table.export_session(i, limit),
        cipher_suite=0xC0A8,
        extended_master_secret=True,
        created=1_700_000_000,
        next_message_seq=2,
        peer_last_message_seq=1,
        psk_identity=b"Client_identity",
    )
