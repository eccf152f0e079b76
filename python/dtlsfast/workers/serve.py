"""``dtlsfast serve --workers N`` and ``--metrics``, and their Python API.

:func:`run_supervised` is the command line's supervisor (the workers run the
same ``dtlsfast serve`` command line, told by :mod:`dtlsfast.workers.context`
that they are workers); :func:`serve_workers` does the same for a CoAP
application given as ``"module:factory"``; :func:`start_worker` is what a
worker adds to an ordinary server; :func:`serve_single_metrics` is
``--metrics`` for a server without workers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pickle
import signal
import sys
from typing import Any

from dtlsfast.workers.context import WorkerContext
from dtlsfast.workers.metrics import CounterExport, parse_address, serve_metrics
from dtlsfast.workers.shared_state import Replica
from dtlsfast.workers.supervisor import Supervisor, cpu_count, worker_command
from dtlsfast.workers.worker import WorkerRuntime, counter_snapshot, shared_replica

log = logging.getLogger("dtlsfast.cli")


def worker_count(value: str) -> int:
    """``--workers``: a number, or ``auto`` for the CPUs this process may use."""
    if value == "auto":
        return cpu_count()
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number nor auto") from None
    if not 1 <= number <= 256:
        raise argparse.ArgumentTypeError("--workers is 1 to 256, or auto")
    return number


def metrics_address(value: str) -> tuple[str, int]:
    try:
        return parse_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def serve_workers(
    app: str,
    *,
    workers: int,
    host: str = "::",
    port: int | None = 5683,
    coaps_port: int | None = 5684,
    steering: str = "auto",
    metrics: tuple[str, int] | None = None,
    **dtls_options: Any,
) -> Supervisor:
    """Serve the CoAP server that ``app`` (``"module:factory"``, a function
    returning a :class:`~dtlsfast.coap.CoapServer`) builds in ``workers``
    processes sharing ``port`` (plain CoAP) and ``coaps_port`` (CoAPS, with
    ``dtls_options`` for :func:`dtlsfast.coap.dtls.listen_dtls`, which must
    pickle); None disables a port, 0 picks a free one. Returns the started supervisor:
    ``await supervisor.stop()`` then ``supervisor.close()`` ends it."""
    options = dict(dtls_options, app=app)
    supervisor = Supervisor(
        [sys.executable, "-m", "dtlsfast.workers.worker"],
        workers,
        coap=(host, port) if port is not None else None,
        coaps=(host, coaps_port) if coaps_port is not None else None,
        steering=steering,
        metrics=metrics is not None,
        options=pickle.dumps(options).hex(),
    )
    await supervisor.start()
    if metrics is not None:
        await supervisor.serve_metrics(*metrics)
    return supervisor


async def run_supervised(args: argparse.Namespace) -> int:
    """``dtlsfast serve --workers N`` (N > 1): the supervisor's life."""
    supervisor = Supervisor(
        [*worker_command(), *args.argv],
        args.workers,
        coap=(args.bind, args.port) if args.port else None,
        coaps=(args.bind, args.coaps_port) if args.coaps_port else None,
        steering=args.steering,
        metrics=args.metrics is not None,
    )
    await supervisor.start()
    try:
        if supervisor.coap_address is not None:
            log.info(
                "listening on coap://%s/ (plain CoAP, %d workers)",
                _fmt(supervisor.coap_address),
                args.workers,
            )
        if supervisor.coaps_address is not None:
            log.info(
                "listening on coaps://%s/ (DTLS 1.2, %d workers, steering: %s)",
                _fmt(supervisor.coaps_address),
                args.workers,
                supervisor.steering,
            )
        if args.metrics is not None:
            await supervisor.serve_metrics(*args.metrics)
            log.info("metrics on http://%s/metrics", _fmt(args.metrics))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        logging_tasks: set[asyncio.Task[None]] = set()

        def log_counters() -> None:
            task = loop.create_task(supervisor.log_counters())
            logging_tasks.add(task)
            task.add_done_callback(logging_tasks.discard)

        loop.add_signal_handler(signal.SIGUSR1, log_counters)
        log.info(
            "serving /light (GET, PUT, observable) in %d workers; Ctrl-C to stop", args.workers
        )
        await stop.wait()
        log.info("stopping: every worker sends close_notify to its DTLS peers")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
        await supervisor.stop()
    finally:
        await supervisor.stop()
        supervisor.close()
    return supervisor.exit_code


async def start_worker(
    context: WorkerContext,
    coap: Any,
    endpoints: list[Any],
    dtls: Any | None,
    stop: asyncio.Event,
    replica: Replica | None = None,
) -> WorkerRuntime:
    """Make an ordinary server a worker: answer the supervisor, hand over,
    share state (``replica``, made by :func:`shared_replica` before serving)."""
    runtime = WorkerRuntime(context, coap, endpoints, dtls, stop, replica)
    await runtime.start()
    log.debug(
        "worker %d of %d serving (steering: %s)", context.index, context.count, context.steering
    )
    return runtime


async def serve_single_metrics(
    address: tuple[str, int], endpoints: list[Any], coap: Any, dtls: Any | None
) -> asyncio.Server:
    """``--metrics`` without workers: this process's counters, read at each scrape."""
    from prometheus_client import generate_latest

    export = CounterExport(0)
    if dtls is not None:
        dtls.handshake_observer = export.observe_handshake

    async def render() -> bytes:
        export.update(counter_snapshot(endpoints, coap))
        return bytes(generate_latest(export.registry))

    server = await serve_metrics(*address, render)
    log.info("metrics on http://%s/metrics", _fmt(address))
    return server


def _fmt(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = [
    "metrics_address",
    "run_supervised",
    "serve_single_metrics",
    "serve_workers",
    "shared_replica",
    "start_worker",
    "worker_count",
]
