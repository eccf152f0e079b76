"""Exceptions raised by dtlsfast, all under :class:`DtlsError`.

The split follows h11: :class:`LocalProtocolError` means the caller misused the
API, :class:`RemoteProtocolError` means the peer misbehaved. The Rust core
(``dtlsfast._core``) imports these classes and raises them, so both
implementations of every hot-path piece raise the same types.
"""

from __future__ import annotations


class DtlsError(Exception):
    """Base class of every error dtlsfast raises on purpose."""


class ConfigurationError(DtlsError, ValueError):
    """A parameter is out of range or inconsistent (a key of the wrong length,
    an unknown cipher suite, a sequence number past 2**48 - 1)."""


class LocalProtocolError(DtlsError):
    """The caller did something the protocol state does not allow (sending
    before the handshake completed, using a closed connection)."""


class RemoteProtocolError(DtlsError):
    """The peer sent something the protocol does not allow."""


class DecodeError(RemoteProtocolError):
    """A message could not be decoded: truncated, inconsistent or oversized.

    In the handshake this maps to the ``decode_error`` alert (RFC 5246 §7.2.2);
    ``alert`` is the alert to send, so a handler can answer ``exc.alert`` for
    this class and its subclass alike.
    """

    alert: int = 50  # AlertDescription.DECODE_ERROR


class IllegalParameterError(DecodeError):
    """A message decoded, but a field holds a value its RFC forbids: a
    duplicated extension (RFC 5246 §7.4.1.4), a record_size_limit below 64
    (RFC 8449 §4), an ECParameters curve_type other than named_curve
    (RFC 8422 §5.4). The alert is ``illegal_parameter`` (RFC 5246 §7.2.2).

    A subclass of DecodeError, so code that drops or counts undecodable
    messages treats it alike; only the alert differs.
    """

    alert: int = 47  # AlertDescription.ILLEGAL_PARAMETER


class HandshakeError(DtlsError):
    """The handshake failed. ``alert`` is the TLS alert description that was
    sent or received (RFC 5246 §7.2), or None when none was involved."""

    def __init__(self, message: str, alert: int | None = None) -> None:
        super().__init__(message)
        self.alert = alert


class HandshakeTimeoutError(HandshakeError):
    """The peer did not answer within the retransmission budget
    (RFC 6347 §4.2.4)."""


class ConnectionClosedError(DtlsError):
    """The connection is closed: by close_notify, by a fatal alert or locally."""


class InternalError(DtlsError):
    """dtlsfast failed on the peer's input where it should have coped: a
    defect. The connection sent a fatal internal_error alert (RFC 5246 §7.2.2)
    and closed; other connections are unaffected. The original exception is
    the ``__cause__``: please report it with the log."""

    alert = 80  # internal_error


class KeyFileError(ConfigurationError):
    """A ticket or state key file cannot be used: too short, readable by
    group or others, not a regular file, or unreadable. The message names the
    file and what to do; ``path`` is the file."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class StateFileError(DtlsError):
    """A session state file cannot be restored. The message names the file
    and what to do; nothing in it was changed. ``path`` is the file."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class StateFileCorruptError(StateFileError):
    """The state file is corrupt or truncated, or not a state file at all."""


class StateFileVersionError(StateFileError):
    """The state file was written by another version of its format."""


class StateFileKeyError(StateFileError):
    """The state file was encrypted under another key than the one given."""


__all__ = [
    "ConfigurationError",
    "ConnectionClosedError",
    "DecodeError",
    "DtlsError",
    "HandshakeError",
    "HandshakeTimeoutError",
    "IllegalParameterError",
    "InternalError",
    "KeyFileError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "StateFileCorruptError",
    "StateFileError",
    "StateFileKeyError",
    "StateFileVersionError",
]
