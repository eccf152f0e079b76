"""``--metrics ADDR:PORT`` (issue 16): the counters, gauges and handshake
histogram in the Prometheus text format, scraped over HTTP during a load,
agree with the SIGUSR1 line, with two workers (prometheus_client's
multiprocess mode) and without workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from workers_harness import ServeProcess, free_tcp_port, metric_totals, scrape

from dtlsfast.loadgen import run_load
from dtlsfast.workers.metrics import GAUGES, metric_name


def _metric(name: str) -> str:
    return metric_name(name) if name in GAUGES else metric_name(name) + "_total"


@pytest.mark.parametrize("workers", [2, 1])
async def test_metrics_during_load_agree_with_sigusr1(tmp_path: Path, workers: int) -> None:
    port = free_tcp_port()
    args = ["--metrics", f"127.0.0.1:{port}"]
    if workers > 1:
        args += ["--workers", str(workers)]
    logger = "dtlsfast.workers" if workers > 1 else "dtlsfast.cli"
    async with ServeProcess(tmp_path / "serve.log", *args) as server:
        load = asyncio.create_task(
            run_load(f"coaps://127.0.0.1:{server.coaps_port}/light", sessions=8, duration=3.0)
        )
        # During the load: a scrape falls between the SIGUSR1 lines around it.
        checked = 0
        while not load.done() and checked < 3:
            before = await server.sigusr1(logger)
            during = metric_totals(await scrape(port))
            after = await server.sigusr1(logger)
            for name in ("dtls_handshakes_completed", "coap_received", "dtls_cookie_accepted"):
                if name in before:
                    assert before[name] <= during[_metric(name)] <= after[name], name
            checked += 1
            await asyncio.sleep(0.3)
        assert checked >= 1
        result = await load
        assert result.requests > 0 and result.request_errors == 0, result.summary()
        # Once still: the same totals, counter by counter.
        for _ in range(20):
            first = metric_totals(await scrape(port))
            line = await server.sigusr1(logger)
            second = metric_totals(await scrape(port))
            if first == second:
                break
            await asyncio.sleep(0.2)
        assert first == second
        for name, value in line.items():
            assert first[_metric(name)] == value, name
        assert line["dtls_handshakes_completed"] >= 8
        histogram = first["dtlsfast_handshake_duration_seconds_count"]
        assert histogram == line["dtls_handshakes_completed"]
        if workers > 1:
            text = await scrape(port)
            assert 'worker="0"' in text and 'worker="1"' in text
