"""Several processes serving one port: ``dtlsfast serve --workers N``.

A supervisor (:mod:`dtlsfast.workers.supervisor`) binds each port's
SO_REUSEPORT sockets once and starts N workers on them; connection ID
records reach the worker that holds their session through a classic BPF
program (:mod:`dtlsfast.workers.steering`) or, where it cannot be attached,
through the handover between workers (:mod:`dtlsfast.workers.handover`);
the cookie secret is shared (a seed, :class:`dtlsfast.handshake.cookies.CookieJar`);
counters are summed on SIGUSR1 and served to Prometheus
(:mod:`dtlsfast.workers.metrics`); the state of the CoAP resources that opt
in is one across the workers (:mod:`dtlsfast.workers.shared_state`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dtlsfast.workers.serve import serve_workers
    from dtlsfast.workers.supervisor import Supervisor

_LAZY = {"serve_workers": "dtlsfast.workers.serve", "Supervisor": "dtlsfast.workers.supervisor"}


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m dtlsfast.workers.worker`` imports nothing twice.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["Supervisor", "serve_workers"]
