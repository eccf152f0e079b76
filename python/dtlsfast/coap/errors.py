"""Exceptions of the CoAP layer (RFC 7252), all under :class:`dtlsfast.DtlsError`.

:class:`CoapDecodeError` is a message format error (RFC 7252 §3, §4.2, §4.3):
it carries what could be read of the header so that the message layer can
reject a Confirmable message with a matching Reset.
"""

from __future__ import annotations

from enum import IntEnum

from dtlsfast.exceptions import DecodeError, DtlsError, LocalProtocolError


class CoapError(DtlsError):
    """Base class of the CoAP layer's errors."""


class CoapDecodeError(DecodeError, CoapError):
    """A datagram is not a well-formed CoAP message (RFC 7252 §3).

    ``message_id`` and ``type`` are set when the 4-byte header could be read and
    the version is 1; ``type`` is a :class:`~dtlsfast.coap.message.MessageType`.
    A Confirmable message with a format error is rejected with a Reset
    (RFC 7252 §4.2); :attr:`should_reset` says whether that applies.
    """

    def __init__(
        self,
        message: str,
        *,
        message_id: int | None = None,
        type: IntEnum | None = None,
        token: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.message_id = message_id
        self.type = type
        self.token = token

    @property
    def should_reset(self) -> bool:
        """True for a Confirmable message of version 1: reject it with a Reset."""
        return self.message_id is not None and self.type is not None and int(self.type) == 0


class BlockOptionError(CoapDecodeError):
    """A Block1/Block2 option value is invalid (RFC 7959 §2.2): longer than
    3 bytes, or SZX 7, which is reserved and answered with 4.00."""


class CoapEncodeError(LocalProtocolError, ValueError):
    """A message cannot be encoded: token longer than 8 bytes, a field out of
    range. Fix the values given to :class:`~dtlsfast.coap.message.Message`."""


class CoapTimeoutError(CoapError, TimeoutError):
    """No response arrived in time: the Confirmable request was retransmitted
    MAX_RETRANSMIT times without an acknowledgement (RFC 7252 §4.2), or the
    overall timeout given to the request expired."""


class CoapResetError(CoapError):
    """The peer answered the request with a Reset message (RFC 7252 §4.2):
    it could not process it (unknown token, message format error)."""


class CoapRequestError(CoapError):
    """A request could not be built (bad URI, unsupported scheme), or a
    block-wise transfer failed part way (RFC 7959)."""


__all__ = [
    "BlockOptionError",
    "CoapDecodeError",
    "CoapEncodeError",
    "CoapError",
    "CoapRequestError",
    "CoapResetError",
    "CoapTimeoutError",
]
