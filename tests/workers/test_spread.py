"""1,000 CoAPS sessions over 2 workers (issue 16): every session is
established and served, and both workers hold a share of them."""

from __future__ import annotations

from workers_harness import light_workers

from dtlsfast.loadgen import run_load


async def test_a_thousand_sessions_over_two_workers() -> None:
    async with light_workers(2, connection_id=True) as supervisor:
        address = supervisor.coaps_address
        assert address is not None
        result = await run_load(
            f"coaps://127.0.0.1:{address[1]}/light",
            sessions=1000,
            duration=1.0,
            handshake_concurrency=64,
            request_timeout=10.0,
        )
        assert result.sessions_established == 1000, result.summary()
        assert result.request_errors == 0, result.summary()
        each = await supervisor.worker_counters()
        assert all(c is not None for c in each)
        completed = [c["dtls_handshakes_completed"] for c in each if c]
        assert sum(completed) == 1000
        assert min(completed) > 0, completed
        answered = [
            c.get("coap_received", 0) + c.get("dtls_coap_answered_in_table", 0) for c in each if c
        ]
        assert min(answered) > 0, answered
        assert sum(answered) >= result.requests
