"""dtlsfast: DTLS 1.2 (RFC 6347) for Python with a Rust record layer."""

from __future__ import annotations

from dtlsfast.exceptions import (
    ConfigurationError,
    ConnectionClosedError,
    DecodeError,
    DtlsError,
    HandshakeError,
    HandshakeTimeoutError,
    LocalProtocolError,
    RemoteProtocolError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "ConnectionClosedError",
    "DecodeError",
    "DtlsError",
    "HandshakeError",
    "HandshakeTimeoutError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "__version__",
]
