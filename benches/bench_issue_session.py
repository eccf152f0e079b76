"""What making a full handshake resumable costs the server, alone: the
session ID drawn for its ServerHello (``ServerResumption.new_session_id``)
and ``abbreviated.server_issue_session`` before its last flight, by
session-ID cache (RFC 5246 §7.4.1.2; the path a client without tickets, such
as OpenSSL with SSL_OP_NO_TICKET, makes the server pay) and by ticket (RFC
5077: the state sealed, the NewSessionTicket queued).

    python benches/bench_issue_session.py [--count N] [--rounds R]

The connection is a stand-in holding what a PSK handshake leaves (master
secret, suite, identity, no peer key); the cache starts full, as on a busy
server, so every store evicts. CPU time (``time.process_time``), best round,
so that a shared machine's other work counts less. Timing only: no asserts
on speed.
"""

from __future__ import annotations

import argparse
import os
import time
import types

from dtlsfast.handshake import abbreviated
from dtlsfast.handshake.suites import SUITES_BY_CODE
from dtlsfast.resumption import ServerResumption

PSK_CCM_8 = 0xC0A8


def run(tickets: bool, count: int, rounds: int) -> tuple[float, float]:
    """Best round's µs per session issued and per session ID drawn."""
    resumption = ServerResumption()
    conn = types.SimpleNamespace(
        cipher_suite=SUITES_BY_CODE[PSK_CCM_8],
        _master=os.urandom(48),
        extended_master_secret=True,
        psk_identity=b"CoAP",
        peer_certificate_type=None,
        peer_public_key=None,
        peer_certificates=[],
        _ticket_promised=tickets,
        _session_id=b"",
        config=types.SimpleNamespace(resumption=resumption),
        _send_seq=0,
        _backend=types.SimpleNamespace(encode_handshake=lambda msg_type, seq, body: body),
        _queue_message=lambda message: None,
    )
    issue = abbreviated.server_issue_session
    if resumption.cache is not None and not tickets:
        for _ in range(resumption.cache.max_entries):
            conn._session_id = resumption.new_session_id()
            issue(conn, resumption)  # type: ignore[arg-type]
    best_issue = best_draw = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        ids = [resumption.new_session_id() for _ in range(count)]
        best_draw = min(best_draw, (time.process_time() - started) / count)
        started = time.process_time()
        for session_id in ids:
            conn._session_id = session_id
            issue(conn, resumption)  # type: ignore[arg-type]
        best_issue = min(best_issue, (time.process_time() - started) / count)
    return best_issue * 1e6, best_draw * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for tickets in (False, True):
        issue, draw = run(tickets, args.count, args.rounds)
        via = "ticket" if tickets else "session ID"
        print(f"{via:>10}: server_issue_session {issue:.2f} µs, new_session_id {draw:.2f} µs")


if __name__ == "__main__":
    main()
