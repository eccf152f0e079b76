"""The supervisor of ``dtlsfast serve --workers N``: one port, N processes.

The supervisor binds every worker's SO_REUSEPORT socket for each port once,
in worker order, attaches the steering program
(:mod:`dtlsfast.workers.steering`) to the CoAPS group or, where the kernel
refuses it, sets up the handover (:mod:`dtlsfast.workers.handover`), and
starts the workers with their sockets (file descriptors passed down, the rest
on the control socket, :mod:`dtlsfast.workers.context`). It keeps the
sockets for its whole life, so the reuseport group, and with it every flow's
worker, stays the same while a worker restarts.

A worker that dies is started again after a backoff (``RESTART_DELAY``,
doubled on each quick death up to ``MAX_RESTART_DELAY``). SIGTERM and
SIGINT go to every worker, each of which sends close_notify to its peers and
exits 0. SIGUSR1 logs the counters summed over the workers and each worker's
line; ``--metrics`` serves them over HTTP (:mod:`dtlsfast.workers.metrics`).
A shared resource's change on one worker reaches every worker through the
supervisor, which orders the changes and gives a new worker the current
state (:mod:`dtlsfast.workers.shared_state`); so do the sessions a worker
caches under a session ID, in batches, so that a client resumes by session ID
on whichever worker its new port reaches (:mod:`dtlsfast.workers.shared_sessions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.workers.context import CONTROL_ENV, WARM, WorkerContext
from dtlsfast.workers.shared_sessions import MAX_HELD_BATCHES, MAX_SESSION_LINE, SessionBook
from dtlsfast.workers.shared_state import ACK_WAIT, MAX_LINE, LatestSender, Pending, StateBook
from dtlsfast.workers.steering import MAX_WORKERS, attach_steering

log = logging.getLogger("dtlsfast.workers")

#: First delay before restarting a worker that died, and the longest.
RESTART_DELAY = 0.05
MAX_RESTART_DELAY = 10.0
#: A worker that lived this long gets the first delay again when it dies.
STABLE_AFTER = 30.0
#: How long a worker may take to start, and to stop after SIGTERM.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: How long the supervisor waits for a worker's answer (counters, metrics).
ASK_TIMEOUT = 5.0
#: Longest line a worker sends (its counters, or a shared state).
MAX_REPLY = max(1024 * 1024, MAX_LINE, MAX_SESSION_LINE)


def cpu_count() -> int:
    """The CPUs this process may run on (``--workers auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def bind_group(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` UDP sockets bound to ``host:port`` with SO_REUSEPORT, in
    order (port 0: the first picks a free port, the others join it). The
    default ``::`` falls back to IPv4 where the machine has no IPv6."""
    try:
        return _bind_group(host, port, count)
    except OSError:
        if host != "::":
            raise
        return _bind_group("0.0.0.0", port, count)


def _bind_group(host: str, port: int, count: int) -> list[socket.socket]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, kind, proto, _, address = infos[0]
    group: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            group.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            if not port:
                port = int(sock.getsockname()[1])
                address = (address[0], port, *address[2:])
            sock.set_inheritable(True)
    except BaseException:
        for sock in group:
            sock.close()
        raise
    return group


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    control: socket.socket | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    ready: asyncio.Future[None] | None = None
    waiting: dict[int, asyncio.Future[dict[str, int]]] = field(default_factory=dict)
    started: float = 0.0
    delay: float = RESTART_DELAY
    restarts: int = 0
    monitor: asyncio.Task[None] | None = None
    sender: LatestSender | None = None
    """Shared state to this worker (:mod:`dtlsfast.workers.shared_state`)."""
    session_sender: LatestSender | None = None
    """Sessions to this worker (:mod:`dtlsfast.workers.shared_sessions`)."""
    lagging: bool = False
    """It did not acknowledge a shared state in time: no change waits for it."""
    settled_seq: int = 0
    serving: bool = False
    """It said it is ready: it reads its control socket, sessions go to it."""

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class Supervisor:
    """Starts, watches and stops the workers; see the module docstring.

    ``command`` starts one worker (it reads its context from the control
    socket named by ``DTLSFAST_WORKER_CONTROL``); ``coap`` and ``coaps`` are
    the ``(host, port)`` to share, or None. ``steering`` is ``auto`` (the
    kernel program where it attaches, else the handover), ``bpf`` (insist)
    or ``handover``. With ``standby`` one more process waits, its imports
    done, to replace a worker that dies at once (a cold start of Python and
    dtlsfast takes about half a second, longer on a busy machine).
    """

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        *,
        coap: tuple[str, int] | None = None,
        coaps: tuple[str, int] | None = None,
        steering: str = "auto",
        metrics: bool = False,
        options: str = "",
        standby: bool = True,
    ) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigurationError(f"--workers is 1 to {MAX_WORKERS} (or auto), not {workers}")
        if steering not in ("auto", "bpf", "handover"):
            raise ConfigurationError(f"steering is auto, bpf or handover, not {steering!r}")
        self._command = list(command)
        self._count = workers
        self._coap_at = coap
        self._coaps_at = coaps
        self._requested_steering = steering
        self.steering = "none"
        """What steers CID records: ``bpf``, ``handover`` (or ``none``: no CoAPS)."""
        self._options = options
        self._cookie_seed = secrets.token_bytes(32)
        self._ticket_secret = secrets.token_bytes(32)
        self._metrics_dir = tempfile.mkdtemp(prefix="dtlsfast-metrics-") if metrics else None
        self._coap: list[socket.socket] = []
        self._coaps: list[socket.socket] = []
        self._handover: list[tuple[socket.socket, socket.socket]] = []
        self._workers = [_Worker(i) for i in range(workers)]
        self._stopping = False
        self._started = False
        self._metrics_server: asyncio.Server | None = None
        self._use_standby = standby
        self._spare: tuple[asyncio.subprocess.Process, socket.socket] | None = None
        self._refill: asyncio.Task[None] | None = None
        self._ids = 0
        self._book = StateBook()
        self.state_counters = self._book.counters
        """The shared state's counts: updates ordered, refused, dropped for
        slow workers; sessions shared and invalidated."""
        self._sessions = SessionBook(counters=self.state_counters)
        self._session_batches = itertools.count()
        self.exit_code = 0
        self.restarts = 0
        """Workers started again after dying."""

    # -- public ------------------------------------------------------------

    @property
    def coap_address(self) -> tuple[str, int] | None:
        return _name(self._coap[0]) if self._coap else None

    @property
    def coaps_address(self) -> tuple[str, int] | None:
        return _name(self._coaps[0]) if self._coaps else None

    @property
    def pids(self) -> list[int | None]:
        """Each worker's process ID (None while it is being restarted)."""
        return [w.pid for w in self._workers]

    async def start(self) -> None:
        """Bind, steer, start every worker and wait until each serves."""
        try:
            if self._coap_at is not None:
                self._coap = bind_group(*self._coap_at, self._count)
            if self._coaps_at is not None:
                self._coaps = bind_group(*self._coaps_at, self._count)
                self._choose_steering()
            for worker in self._workers:
                await self._spawn(worker)
            for worker in self._workers:
                assert worker.ready is not None
                async with asyncio.timeout(READY_TIMEOUT):
                    await worker.ready
            self._started = True
            self._schedule_refill()
        except BaseException:
            await self.stop()
            self._close_sockets()
            raise

    def _choose_steering(self) -> None:
        if self._requested_steering != "handover":
            try:
                attach_steering(self._coaps[0], self._count)
                self.steering = "bpf"
                log.info(
                    "steering: a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) sends each "
                    "connection ID record to the worker its CID names"
                )
                return
            except (OSError, NotImplementedError) as exc:
                if self._requested_steering == "bpf":
                    raise ConfigurationError(
                        f"cannot attach the steering program ({exc}); use --steering handover"
                    ) from None
                reason = f" (the steering program could not be attached: {exc})"
        else:
            reason = ""
        self.steering = "handover"
        self._handover = [
            socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in self._workers
        ]
        for pair in self._handover:
            for end in pair:
                end.set_inheritable(True)
        log.info(
            "steering: handover%s: a worker that receives a connection ID record of "
            "another worker passes it to that worker over a Unix socket",
            reason,
        )

    async def worker_counters(self) -> list[dict[str, int] | None]:
        """Each worker's counters (None for a worker that did not answer)."""
        return list(await asyncio.gather(*(self._ask(w, "counters") for w in self._workers)))

    async def counters(self) -> dict[str, int]:
        """The counters summed over the workers."""
        return _sum(await self.worker_counters())

    async def log_counters(self) -> None:
        """SIGUSR1: the sum, then each worker's line (JSON)."""
        each = await self.worker_counters()
        log.warning("counters %s", json.dumps(_sum(each), sort_keys=True))
        for worker, counters in zip(self._workers, each, strict=True):
            log.warning(
                "worker %d (pid %s) counters %s",
                worker.index,
                worker.pid,
                json.dumps(counters, sort_keys=True),
            )
        if self.state_counters:
            log.warning(
                "supervisor shared state %s", json.dumps(dict(self.state_counters), sort_keys=True)
            )

    async def render_metrics(self) -> bytes:
        """The Prometheus text of every worker, brought up to date first."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        await asyncio.gather(*(self._ask(w, "metrics") for w in self._workers))
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._metrics_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    async def serve_metrics(self, host: str, port: int) -> asyncio.Server:
        """Serve :meth:`render_metrics` over HTTP on ``host:port``."""
        from dtlsfast.workers.metrics import serve_metrics

        self._metrics_server = await serve_metrics(host, port, self.render_metrics)
        return self._metrics_server

    async def stop(self) -> None:
        """SIGTERM to every worker; wait for them (SIGKILL after ``STOP_TIMEOUT``)."""
        self._stopping = True
        if self._metrics_server is not None:
            self._metrics_server.close()
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        for worker in self._workers:
            if worker.process is None:
                continue
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    code = await worker.process.wait()
            except TimeoutError:
                log.error("worker %d did not stop in %g s: killing it", worker.index, STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                code = await worker.process.wait()
            if code != 0:
                self.exit_code = 1
        for worker in self._workers:
            if worker.monitor is not None:
                worker.monitor.cancel()
            self._drop_control(worker)
        if self._refill is not None:
            with contextlib.suppress(BaseException):
                await self._refill
        if self._spare is not None:
            spare, ours = self._spare
            self._spare = None
            ours.close()  # the standby reads the end of its control socket and exits
            with contextlib.suppress(ProcessLookupError):
                spare.send_signal(signal.SIGTERM)
            await spare.wait()

    def close(self) -> None:
        """Release the sockets and the metrics directory (after :meth:`stop`)."""
        self._close_sockets()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    # -- workers -------------------------------------------------------------

    async def _start_process(self) -> tuple[asyncio.subprocess.Process, socket.socket]:
        """A worker process, waiting (warm) for its context on the control socket."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env[CONTROL_ENV] = str(theirs.fileno())
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if self._metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self._metrics_dir
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command, pass_fds=[theirs.fileno()], env=env, start_new_session=True
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return process, ours

    async def _standby(self) -> tuple[asyncio.subprocess.Process, socket.socket]:
        """The standby process if it is alive, else a new one; a new standby
        is started in the background either way."""
        spare, self._spare = self._spare, None
        if spare is not None and spare[0].returncode is not None:
            spare[1].close()
            spare = None
        if spare is None:
            spare = await self._start_process()
        if self._started:
            self._schedule_refill()
        return spare

    def _schedule_refill(self) -> None:
        if not self._use_standby or self._stopping:
            return
        if self._refill is None or self._refill.done():
            self._refill = asyncio.get_running_loop().create_task(self._refill_standby())

    async def _refill_standby(self) -> None:
        """Start the standby; it stands by once its imports are done."""
        if self._spare is not None or self._stopping:
            return
        try:
            process, ours = await self._start_process()
        except OSError as exc:
            log.error("could not start a standby worker: %s", exc)
            return
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        said = b""
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                while not said.endswith(b"\n") and len(said) < len(WARM):
                    chunk = await loop.sock_recv(ours, len(WARM) - len(said))
                    if not chunk:
                        break
                    said += chunk
        except (OSError, TimeoutError):
            pass
        if said != WARM or self._stopping:
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if not self._stopping:
                log.error("the standby worker did not start")
            return
        ours.setblocking(True)
        self._spare = (process, ours)

    @property
    def standby_ready(self) -> bool:
        """Whether a standby process waits, warm, to replace a worker."""
        return self._spare is not None and self._spare[0].returncode is None

    async def _spawn(self, worker: _Worker) -> None:
        process, ours = await self._standby()
        index = worker.index
        passed = [
            s.fileno() for s in (*self._coap[index : index + 1], *self._coaps[index : index + 1])
        ]
        if self._handover:
            passed.append(self._handover[index][1].fileno())
            passed += [pair[0].fileno() for pair in self._handover]
        context = WorkerContext(
            index=index,
            count=self._count,
            control_fd=-1,
            cookie_seed_hex=self._cookie_seed.hex(),
            ticket_secret_hex=self._ticket_secret.hex(),
            steering=self.steering,
            coap_fd=self._coap[index].fileno() if self._coap else None,
            coaps_fd=self._coaps[index].fileno() if self._coaps else None,
            handover_fd=self._handover[index][1].fileno() if self._handover else None,
            handover_fds=[pair[0].fileno() for pair in self._handover],
            metrics_dir=self._metrics_dir,
            options=self._options,
            shared_state=[json.loads(e.line()) for e in self._book.entries()],
            passed=passed,
        )
        known = self._book.version
        try:
            socket.send_fds(ours, [context.to_line()], passed)
        except OSError:
            ours.close()
            raise
        worker.process = process
        worker.started = time.monotonic()
        ours.setblocking(False)
        worker.control = ours
        worker.reader, worker.writer = await asyncio.open_unix_connection(
            sock=ours, limit=MAX_REPLY
        )
        worker.sender = LatestSender(worker.writer, self.state_counters, f"worker {index}")
        worker.session_sender = LatestSender(
            worker.writer,
            self.state_counters,
            f"worker {index} (sessions)",
            max_held=MAX_HELD_BATCHES,
            prefix="sessions",
        )
        worker.lagging, worker.settled_seq = False, 0
        for entry in self._book.entries(after=known):  # changed while the worker connected
            worker.sender.send(entry.path, entry.line())
        worker.serving = False
        loop = asyncio.get_running_loop()
        worker.ready = loop.create_future()
        worker.monitor = loop.create_task(self._watch(worker))

    async def _watch(self, worker: _Worker) -> None:
        """Read the worker's replies until it exits; then restart it."""
        assert worker.reader is not None and worker.process is not None
        reader, process, ready = worker.reader, worker.process, worker.ready
        with contextlib.suppress(OSError, ValueError, asyncio.LimitOverrunError):
            while line := await reader.readline():
                message = json.loads(line)
                if not isinstance(message, dict):
                    continue
                if message.get("op") == "state":
                    self._shared_state(worker, process.pid, message)
                    continue
                if message.get("op") == "applied":
                    self._applied(worker, message.get("version"))
                    continue
                if message.get("op") == "sessions":
                    self._shared_sessions(worker, message, line)
                    continue
                if message.get("ready") and ready is not None and not ready.done():
                    ready.set_result(None)
                    self._sessions_to_new(worker)
                waiting = worker.waiting.pop(int(message.get("id") or 0), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(message.get("counters") or {})
        code = await process.wait()
        self._settled(self._book.gone(worker.index))
        for waiting in worker.waiting.values():
            if not waiting.done():
                waiting.set_result({})
        worker.waiting.clear()
        if self._metrics_dir is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        if self._stopping:
            return
        if ready is not None and not ready.done() and not self._started:
            ready.set_exception(
                ConfigurationError(f"worker {worker.index} exited ({code}) before serving")
            )
            return
        lived = time.monotonic() - worker.started
        if lived >= STABLE_AFTER:
            worker.delay = RESTART_DELAY
        log.error(
            "worker %d (pid %d) exited with %s after %.1f s: restarting it in %.2f s",
            worker.index,
            process.pid,
            code,
            lived,
            worker.delay,
        )
        delay, worker.delay = worker.delay, min(worker.delay * 2, MAX_RESTART_DELAY)
        self._drop_control(worker)
        worker.process = None
        await asyncio.sleep(delay)
        if self._stopping:
            return
        worker.restarts += 1
        self.restarts += 1
        try:
            await self._spawn(worker)
        except OSError as exc:
            log.error("could not restart worker %d: %s", worker.index, exc)

    async def _ask(self, worker: _Worker, op: str) -> dict[str, int] | None:
        if worker.writer is None or worker.ready is None or not worker.ready.done():
            return None
        self._ids += 1
        ask = self._ids
        future: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()
        worker.waiting[ask] = future
        try:
            worker.writer.write(json.dumps({"id": ask, "op": op}).encode() + b"\n")
            async with asyncio.timeout(ASK_TIMEOUT):
                return await future
        except (OSError, TimeoutError):
            return None
        finally:
            worker.waiting.pop(ask, None)

    def _shared_state(self, origin: _Worker, pid: int, message: dict[str, object]) -> None:
        """A worker's change of a shared resource: order it, relay it to
        all, and wait for their acknowledgements (not those of lagging ones)."""
        entry = self._book.update(pid, message)
        if entry is None:
            return
        line = entry.line()
        waiting = set()
        for worker in self._workers:
            if worker.sender is not None:
                worker.sender.send(entry.path, line)
                if not worker.lagging:
                    waiting.add(worker.index)
        self._settled(self._book.expect(entry, origin.index, waiting))
        asyncio.get_running_loop().call_later(ACK_WAIT, self._overdue, entry.version)

    def _shared_sessions(self, origin: _Worker, message: dict[str, object], line: bytes) -> None:
        """A worker's batch of sessions cached and invalidated: keep it for
        workers yet to start, relay it (as it came) to the others."""
        if not self._sessions.update(message):
            return
        if not line.endswith(b"\n"):
            line += b"\n"  # the last line before the worker's end
        key = ("sessions", next(self._session_batches))
        for worker in self._workers:
            if worker is not origin and worker.serving and worker.session_sender is not None:
                worker.session_sender.send(key, line)

    def _sessions_to_new(self, worker: _Worker) -> None:
        """A worker that starts to serve gets the sessions resumable so far,
        then every batch: not before, so that nothing follows its context
        line on the control socket before it reads it as a stream."""
        worker.serving = True
        if worker.session_sender is not None:
            for line in self._sessions.lines():
                worker.session_sender.send(("sessions", next(self._session_batches)), line)

    def _applied(self, worker: _Worker, version: object) -> None:
        if type(version) is not int:
            return
        if worker.lagging and version >= self._book.version:
            worker.lagging = False
            log.info("worker %d caught up with the shared state", worker.index)
        self._settled(self._book.applied(worker.index, version))

    def _overdue(self, version: int) -> None:
        if self._stopping:
            return
        for index in self._book.overdue(version):
            worker = self._workers[index]
            worker.lagging = True
            self.state_counters["state_lagging"] += 1
            log.warning(
                "worker %d did not acknowledge shared state %d in %g s: changes no longer "
                "wait for it until it catches up",
                index,
                version,
                ACK_WAIT,
            )
            self._settled(self._book.gone(index, dead=False))

    def _settled(self, settled: list[Pending]) -> None:
        """Tell each origin that its changes are held by every worker."""
        for pending in settled:
            worker = self._workers[pending.origin]
            if worker.sender is None:
                continue
            worker.settled_seq = max(worker.settled_seq, pending.seq)
            line = json.dumps({"op": "settled", "seq": worker.settled_seq}).encode() + b"\n"
            worker.sender.send(("settled",), line)

    def _drop_control(self, worker: _Worker) -> None:
        for sender in (worker.sender, worker.session_sender):
            if sender is not None:
                sender.close()
        worker.sender = worker.session_sender = None
        if worker.writer is not None:
            worker.writer.close()
        worker.reader = worker.writer = worker.control = None

    def _close_sockets(self) -> None:
        for sock in (*self._coap, *self._coaps):
            sock.close()
        for pair in self._handover:
            for end in pair:
                end.close()
        self._coap, self._coaps, self._handover = [], [], []


def _sum(each: Sequence[dict[str, int] | None]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counters in each:
        for name, value in (counters or {}).items():
            total[name] = total.get(name, 0) + value
    return total


def _name(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return str(name[0]), int(name[1])


def worker_command() -> list[str]:
    """The command of a CLI worker: this Python, ``dtlsfast.cli``."""
    return [sys.executable, "-m", "dtlsfast.cli"]


__all__ = ["Supervisor", "bind_group", "cpu_count", "worker_command"]
