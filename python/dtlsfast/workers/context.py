"""What a worker process is told by its supervisor (:mod:`dtlsfast.workers`).

A worker is started with ``DTLSFAST_WORKER_CONTROL`` naming the file
descriptor of its control socket (a Unix stream socket to the supervisor);
the first line on it, with the sockets passed along (SCM_RIGHTS), is the
worker's :class:`WorkerContext` in JSON: its
index, how many workers there are, the descriptors of its share of each port
(SO_REUSEPORT sockets bound by the supervisor), the handover sockets, the
steering in use, the shared cookie seed, the metrics directory and the
shared resources' current state (:mod:`dtlsfast.workers.shared_state`). Secrets
never go through the environment or the command line.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dtlsfast.exceptions import ConfigurationError

#: The environment variable that makes a process a worker.
CONTROL_ENV = "DTLSFAST_WORKER_CONTROL"
#: Longest first line the supervisor sends (the context, with the shared
#: state: 256 paths of up to 4 KiB, hex), and most descriptors.
MAX_CONTEXT_LINE = 4 * 1024 * 1024
_READ = 64 * 1024
MAX_FDS = 3 + 256
#: What a worker says once it is ready for its context.
WARM = b'{"warm": true}\n'
#: What a worker imports before it waits for its context.
PRELOAD = ("dtlsfast.coap.dtls", "dtlsfast.workers.worker", "dtlsfast.workers.apps")


@dataclass
class WorkerContext:
    """A worker's place among its siblings; see the module docstring."""

    index: int
    count: int
    control_fd: int
    cookie_seed_hex: str
    steering: str
    """``bpf`` (the kernel steers CID records) or ``handover`` (workers pass
    them to each other, :mod:`dtlsfast.workers.handover`)."""
    coap_fd: int | None = None
    coaps_fd: int | None = None
    handover_fd: int | None = None
    """This worker's end for receiving handed-over datagrams."""
    handover_fds: list[int] = field(default_factory=list)
    """Every worker's sending end, by index."""
    metrics_dir: str | None = None
    options: str = ""
    """The Python API's pickled worker options (hex), empty for the CLI."""
    ticket_secret_hex: str = ""
    """The workers' ticket key secret (RFC 5077) when no key file is given."""
    shared_state: list[dict[str, Any]] = field(default_factory=list)
    """The shared resources' current entries (:mod:`dtlsfast.workers.shared_state`),
    applied before the worker serves."""
    passed: list[int] = field(default_factory=list)
    """The supervisor's descriptors, in the order it passes them
    (SCM_RIGHTS); the worker maps them to its own with :meth:`adopt`."""

    def adopt(self, received: list[int], control_fd: int) -> None:
        """Name the descriptors as this process received them."""
        if len(received) != len(self.passed):
            raise ConfigurationError(
                f"the supervisor passed {len(received)} descriptors, not {len(self.passed)}"
            )
        mine = dict(zip(self.passed, received, strict=True))
        self.control_fd = control_fd
        self.coap_fd = None if self.coap_fd is None else mine[self.coap_fd]
        self.coaps_fd = None if self.coaps_fd is None else mine[self.coaps_fd]
        self.handover_fd = None if self.handover_fd is None else mine[self.handover_fd]
        self.handover_fds = [mine[fd] for fd in self.handover_fds]
        self.passed = received

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> WorkerContext:
        data: dict[str, Any] = json.loads(line)
        return cls(**data)

    @property
    def cookie_seed(self) -> bytes:
        return bytes.fromhex(self.cookie_seed_hex)

    def coap_socket(self) -> socket.socket:
        assert self.coap_fd is not None
        return socket.socket(fileno=self.coap_fd)

    def coaps_socket(self) -> socket.socket:
        assert self.coaps_fd is not None
        return socket.socket(fileno=self.coaps_fd)

    def dtls_options(self, connection_id: bool) -> dict[str, Any]:
        """What :func:`dtlsfast.serve` takes to be this worker: its socket,
        the shared cookie seed, and CIDs that start with its index."""
        return {
            "sock": self.coaps_socket(),
            "cookie_secret_seed": self.cookie_seed,
            "connection_id_prefix": bytes([self.index]) if connection_id else b"",
        }

    def shared_resumption(self) -> Any:
        """Resumption with ticket keys derived from the secret every worker
        holds, so a ticket one worker issued resumes on any other (session
        IDs travel between the workers instead: :mod:`dtlsfast.workers.shared_sessions`)."""
        from dtlsfast.resumption import ServerResumption, TicketKeys

        return ServerResumption(ticket_keys=TicketKeys(bytes.fromhex(self.ticket_secret_hex)))

    def own_path(self, path: str | Path) -> Path:
        """This worker's own file beside ``path`` (``PATH.workerK``): a state
        file is per worker, since each holds its own sessions."""
        path = Path(path)
        return path.with_name(f"{path.name}.worker{self.index}")


_context: WorkerContext | None = None
_looked = False


def worker_context() -> WorkerContext | None:
    """This process's context if a supervisor started it, else None. The
    first call waits for it on the control socket, after importing what a
    server needs: a worker started in advance (the supervisor's standby)
    then takes a dead worker's place in milliseconds."""
    global _context, _looked
    if _looked:
        return _context
    _looked = True
    fd = os.environ.pop(CONTROL_ENV, None)
    if fd is None:
        return None
    try:
        control = socket.socket(fileno=int(fd))
    except (ValueError, OSError) as exc:
        raise ConfigurationError(f"{CONTROL_ENV}={fd!r} is not an open socket: {exc}") from None
    for name in PRELOAD:
        importlib.import_module(name)
    control.setblocking(True)
    control.sendall(WARM)
    line, fds, _, _ = socket.recv_fds(control, _READ, MAX_FDS)
    while line and not line.endswith(b"\n") and len(line) <= MAX_CONTEXT_LINE:
        chunk = control.recv(_READ)
        if not chunk:
            break
        line += chunk
    if not line:
        # A standby that the supervisor dismissed (or a supervisor gone).
        raise SystemExit(0)
    if not line.endswith(b"\n"):
        raise ConfigurationError("the supervisor sent a context without its end of line")
    control.detach()
    context = WorkerContext.from_line(line)
    context.adopt(fds, int(fd))
    _context = context
    return _context


__all__ = ["CONTROL_ENV", "WorkerContext", "worker_context"]
