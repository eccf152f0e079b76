"""What a worker process is told by its supervisor (:mod:`dtlsfast.workers`).

A worker is started with ``DTLSFAST_WORKER_CONTROL`` naming the file
descriptor of its control socket (a Unix stream socket to the supervisor);
the first line on it is the worker's :class:`WorkerContext` in JSON: its
index, how many workers there are, the descriptors of its share of each port
(SO_REUSEPORT sockets bound by the supervisor), the handover sockets, the
steering in use, the shared cookie seed and the metrics directory. Secrets
never go through the environment or the command line.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dtlsfast.exceptions import ConfigurationError

#: The environment variable that makes a process a worker.
CONTROL_ENV = "DTLSFAST_WORKER_CONTROL"
#: Longest first line the supervisor sends (the context).
MAX_CONTEXT_LINE = 64 * 1024


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

    def own_path(self, path: str | Path) -> Path:
        """This worker's own file beside ``path`` (``PATH.workerK``): a state
        file is per worker, since each holds its own sessions."""
        path = Path(path)
        return path.with_name(f"{path.name}.worker{self.index}")


_context: WorkerContext | None = None
_looked = False


def worker_context() -> WorkerContext | None:
    """This process's context if a supervisor started it, else None. The
    first call reads it from the control socket."""
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
    control.setblocking(True)
    line = b""
    while not line.endswith(b"\n"):
        chunk = control.recv(1)
        if not chunk or len(line) > MAX_CONTEXT_LINE:
            raise ConfigurationError("the supervisor closed the control socket before the context")
        line += chunk
    control.detach()
    _context = WorkerContext.from_line(line)
    return _context


__all__ = ["CONTROL_ENV", "WorkerContext", "worker_context"]
