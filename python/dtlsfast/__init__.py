"""dtlsfast: DTLS 1.2 (RFC 6347) for Python with a Rust record layer.

``await dtlsfast.connect(host, port, psk=(identity, key))`` opens a client
session; ``await dtlsfast.serve(handler, host, port, psk_store={...})`` serves
many peers on one socket. :class:`DtlsConnection` is the sans-I/O core under
both. The endpoint API is imported on first use, so importing the exceptions
or the record core stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dtlsfast.exceptions import (
    ConfigurationError,
    ConnectionClosedError,
    DecodeError,
    DtlsError,
    HandshakeError,
    HandshakeTimeoutError,
    IllegalParameterError,
    InternalError,
    LocalProtocolError,
    RemoteProtocolError,
)

if TYPE_CHECKING:
    from dtlsfast.client import connect
    from dtlsfast.config import DtlsConfiguration
    from dtlsfast.connection import DtlsConnection
    from dtlsfast.events import (
        AlertReceived,
        ApplicationDataReceived,
        ConnectionClosed,
        Event,
        HandshakeCompleted,
    )
    from dtlsfast.server import DtlsServer, ServerLimits, serve
    from dtlsfast.session import DtlsSession

__version__ = "0.1.0"

_LAZY = {
    "connect": "dtlsfast.client",
    "DtlsConfiguration": "dtlsfast.config",
    "DtlsConnection": "dtlsfast.connection",
    "AlertReceived": "dtlsfast.events",
    "ApplicationDataReceived": "dtlsfast.events",
    "ConnectionClosed": "dtlsfast.events",
    "Event": "dtlsfast.events",
    "HandshakeCompleted": "dtlsfast.events",
    "DtlsServer": "dtlsfast.server",
    "ServerLimits": "dtlsfast.server",
    "serve": "dtlsfast.server",
    "DtlsSession": "dtlsfast.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dtlsfast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AlertReceived",
    "ApplicationDataReceived",
    "ConfigurationError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "DecodeError",
    "DtlsConfiguration",
    "DtlsConnection",
    "DtlsError",
    "DtlsServer",
    "DtlsSession",
    "Event",
    "HandshakeCompleted",
    "HandshakeError",
    "HandshakeTimeoutError",
    "IllegalParameterError",
    "InternalError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ServerLimits",
    "__version__",
    "connect",
    "serve",
]
