"""One worker process: its share of the ports, its control channel, its counters.

A worker is a whole server (``dtlsfast serve`` with the same arguments, or
the Python API's application) serving the sockets its supervisor bound (see
:mod:`dtlsfast.workers.context`). :class:`WorkerRuntime` adds what a worker
needs beyond that: answers to the supervisor's requests on the control socket
(counters, metrics), the handover of other workers' CID records where the
kernel does not steer them, the shared resources' state
(:class:`~dtlsfast.workers.shared_state.Replica`), the sessions resumable by
session ID on every worker (:class:`~dtlsfast.workers.shared_sessions.SessionSharer`),
and an end when the supervisor goes away.

``python -m dtlsfast.workers.worker`` runs a worker of the Python API
(:func:`dtlsfast.workers.serve_workers`): the application factory and the
DTLS options come pickled in the context.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import logging
import pickle
import signal
import socket
import sys
from collections.abc import Iterable
from typing import Any

from dtlsfast.workers.context import WorkerContext, worker_context
from dtlsfast.workers.handover import Handover
from dtlsfast.workers.shared_sessions import MAX_HELD_BATCHES, MAX_SESSION_LINE, SessionSharer
from dtlsfast.workers.shared_state import MAX_LINE, LatestSender, Replica

log = logging.getLogger("dtlsfast.workers")

#: Longest line the supervisor sends (a request, a shared state, sessions).
MAX_REQUEST = max(4096, MAX_LINE, MAX_SESSION_LINE)


def counter_snapshot(endpoints: Iterable[Any], coap: Any) -> dict[str, int]:
    """The SIGUSR1 line's counters: ``dtls_*`` summed over the endpoints
    that have counters, ``coap_*`` from the CoAP server."""
    counters: dict[str, int] = {}
    for endpoint in endpoints:
        for name, value in getattr(endpoint, "counters", {}).items():
            counters[f"dtls_{name}"] = counters.get(f"dtls_{name}", 0) + int(value)
    for name, value in coap.counters.items():
        counters[f"coap_{name}"] = int(value)
    return counters


class WorkerRuntime:
    """A worker's duties towards its supervisor; see the module docstring."""

    def __init__(
        self,
        context: WorkerContext,
        coap: Any,
        endpoints: list[Any],
        dtls: Any | None,
        stop: asyncio.Event,
        replica: Replica | None = None,
    ) -> None:
        self.context = context
        self.replica = replica if replica is not None else shared_replica(context, coap)
        self._coap = coap
        self._endpoints = endpoints
        self._stop = stop
        self.handover: Handover | None = None
        if dtls is not None and context.steering == "handover" and context.handover_fd is not None:
            senders = [socket.socket(fileno=fd) for fd in context.handover_fds]
            receiver = socket.socket(fileno=context.handover_fd)
            self.handover = Handover(context.index, senders, receiver, dtls.datagram_received)
            dtls.foreign_cid = self.handover.forward
        self.export = None
        if context.metrics_dir is not None:
            from dtlsfast.workers.metrics import CounterExport

            self.export = CounterExport(context.index)
            if dtls is not None:
                dtls.handshake_observer = self.export.observe_handshake
        self.sessions: SessionSharer | None = None
        resumption = getattr(getattr(dtls, "config", None), "resumption", None)
        if resumption is not None and resumption.cache is not None:
            self.sessions = SessionSharer(resumption)
        self._session_sender: LatestSender | None = None
        self._task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, int]:
        """This worker's counters, with its handover's."""
        counters = counter_snapshot(self._endpoints, self._coap)
        if self.handover is not None:
            for name, value in self.handover.counters.items():
                counters[f"worker_{name}"] = value
        for name, value in self.replica.counters.items():
            counters[f"worker_{name}"] = value
        if self.sessions is not None:
            for name, value in self.sessions.counters.items():
                counters[f"worker_{name}"] = value
        return counters

    async def start(self) -> None:
        """Tell the supervisor this worker serves, then answer it."""
        sock = socket.socket(fileno=self.context.control_fd)
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_REQUEST)
        writer.write(json.dumps({"ready": True}).encode() + b"\n")
        self.replica.attach(writer)
        if self.sessions is not None:
            sender = LatestSender(
                writer,
                self.sessions.counters,
                "the supervisor (sessions)",
                max_held=MAX_HELD_BATCHES,
                prefix="sessions",
            )
            batches = itertools.count()
            self._session_sender = sender
            self.sessions.attach(lambda line: sender.send(("sessions", next(batches)), line))
        await writer.drain()
        self._task = asyncio.get_running_loop().create_task(self._serve(reader, writer))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                if not isinstance(request, dict):
                    continue
                if request.get("op") in ("state", "settled"):
                    self.replica.received(request)
                    continue
                if request.get("op") == "sessions":
                    if self.sessions is not None:
                        self.sessions.received(request)
                    continue
                reply: dict[str, Any] = {"id": request.get("id")}
                counters = self.snapshot()
                if request.get("op") == "metrics" and self.export is not None:
                    self.export.update(counters)
                reply["counters"] = counters
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        # The supervisor is gone (or spoke nonsense): a worker never outlives it.
        log.info("the supervisor closed the control socket: stopping")
        self._stop.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.replica.close()
        if self.sessions is not None:
            self.sessions.close()
        if self._session_sender is not None:
            self._session_sender.close()
        if self.handover is not None:
            self.handover.close()


def shared_replica(context: WorkerContext, coap: Any) -> Replica:
    """The worker's side of the shared state, the current state applied:
    made before the worker serves, so its first answer is already the
    state every worker serves."""
    return Replica(coap, context.shared_state)


async def run_api_worker(context: WorkerContext) -> int:
    """A worker of :func:`dtlsfast.workers.serve_workers`."""
    from dtlsfast.coap.dtls import listen_dtls

    options: dict[str, Any] = pickle.loads(bytes.fromhex(context.options))
    module, _, name = str(options.pop("app")).partition(":")
    coap = getattr(importlib.import_module(module), name)()
    replica = shared_replica(context, coap)
    endpoints: list[Any] = []
    dtls = None
    try:
        if context.coap_fd is not None:
            endpoints.append(await coap.listen_udp(sock=context.coap_socket()))
        if context.coaps_fd is not None:
            connection_id = bool(options.get("connection_id"))
            if "ticket_key_file" not in options and options.get("resumption", True) is True:
                options["resumption"] = context.shared_resumption()
            dtls = await listen_dtls(coap, **options, **context.dtls_options(connection_id))
            endpoints.append(dtls)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runtime = WorkerRuntime(context, coap, endpoints, dtls, stop, replica)
        await runtime.start()
        await stop.wait()
        runtime.close()
    finally:
        for endpoint in endpoints:
            endpoint.close()
        coap.close()
    return 0


def main() -> int:
    context = worker_context()
    if context is None:
        print("dtlsfast.workers.worker runs under a supervisor only", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s %(name)s[worker {context.index}]: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_api_worker(context))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
