"""Counters for operators in the Prometheus text format (``--metrics ADDR:PORT``).

Each process copies its counters (the SIGUSR1 line's: ``dtls_*`` from the
DTLS server, ``coap_*`` from the CoAP server) into ``prometheus_client``
metrics labelled with the worker's index: counters as ``dtlsfast_NAME_total``,
the levels (sessions open, handshakes in progress, table sizes...) as
gauges, and the duration of every completed handshake in the histogram
``dtlsfast_handshake_duration_seconds``. With several workers the metrics
live in ``prometheus_client``'s multiprocess mode: each worker writes its own
files in the supervisor's directory, and the supervisor, asked over HTTP,
first has every worker bring its files up to date and then reads them all
(``MultiProcessCollector``): a scrape and a SIGUSR1 line taken together show
the same totals. A worker that died keeps its counters in the totals
(Prometheus counters never go back); its gauges leave with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger("dtlsfast.workers.metrics")

#: Snapshot entries that are levels, not counts of events.
GAUGES = frozenset(
    {
        "dtls_sessions_open",
        "dtls_handshakes_in_progress",
        "dtls_connection_ids",
        "dtls_auth_filter_sources",
        "dtls_sessions_in_table",
        "dtls_session_table_bytes",
        "dtls_sources_tracked",
        "dtls_cookie_sources_tracked",
        "dtls_reassembly_bytes",
    }
)
#: Handshake durations: from the ClientHello with a valid cookie to Finished.
HANDSHAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Longest request head the metrics endpoint reads, and how long it waits for it.
MAX_REQUEST_HEAD = 8192
REQUEST_TIMEOUT = 5.0
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    return "dtlsfast_" + _NAME.sub("_", name)


class CounterExport:
    """One process's counters as ``prometheus_client`` metrics."""

    def __init__(self, worker: int, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Histogram

        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._worker = str(worker)
        self._metrics: dict[str, Any] = {}
        self._last: dict[str, int] = {}
        self._handshakes = Histogram(
            "dtlsfast_handshake_duration_seconds",
            "DTLS handshake duration, from the ClientHello with a valid cookie to Finished",
            ["worker"],
            buckets=HANDSHAKE_BUCKETS,
            registry=self.registry,
        ).labels(self._worker)

    def observe_handshake(self, seconds: float) -> None:
        self._handshakes.observe(seconds)

    def update(self, snapshot: Mapping[str, int]) -> None:
        """Bring the metrics to ``snapshot`` (counters advance by the difference)."""
        for name, value in snapshot.items():
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = self._make(name)
            if name in GAUGES:
                metric.set(value)
                continue
            delta = value - self._last.get(name, 0)
            if delta > 0:
                metric.inc(delta)
            self._last[name] = max(value, self._last.get(name, 0))

    def _make(self, name: str) -> Any:
        from prometheus_client import Counter, Gauge

        what = f"dtlsfast counter {name} (see the SIGUSR1 line)"
        if name in GAUGES:
            gauge = Gauge(
                metric_name(name),
                what,
                ["worker"],
                registry=self.registry,
                multiprocess_mode="livesum",
            )
            return gauge.labels(self._worker)
        return Counter(metric_name(name), what, ["worker"], registry=self.registry).labels(
            self._worker
        )


def parse_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[V6]:PORT`` or ``:PORT`` (every address)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected ADDR:PORT, such as 127.0.0.1:9100, not {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


async def serve_metrics(
    host: str, port: int, render: Callable[[], Awaitable[bytes]]
) -> asyncio.Server:
    """Answer ``GET /metrics`` (and ``/``) on ``host:port`` with ``render()``."""
    from prometheus_client import CONTENT_TYPE_LATEST

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].split(b"?", 1)[0] if len(parts) >= 2 else b""
            if parts[:1] != [b"GET"] or path not in (b"/metrics", b"/"):
                status, kind, body = b"404 Not Found", b"text/plain", b"GET /metrics\n"
            else:
                status, kind, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), await render()
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port, limit=MAX_REQUEST_HEAD)


__all__ = ["GAUGES", "CounterExport", "metric_name", "parse_address", "serve_metrics"]
