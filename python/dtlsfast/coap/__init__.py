"""CoAP (RFC 7252) with Observe (RFC 7641), block-wise transfers (RFC 7959)
and the CoRE link format (RFC 6690), over plain UDP or a DTLS session.

:class:`CoapServer` serves :class:`Resource` objects through any number of
transports (``listen_udp`` for coap://, ``attach`` for anything else);
:class:`CoapClient` sends requests and observes resources;
:class:`LightResource` is the seed system's ``light``.
"""

from __future__ import annotations

from dtlsfast.coap.block import BlockOption
from dtlsfast.coap.client import CoapClient, CoapClientConfig, Observation
from dtlsfast.coap.clock import Clock, LoopClock, ManualClock
from dtlsfast.coap.errors import (
    BlockOptionError,
    CoapDecodeError,
    CoapEncodeError,
    CoapError,
    CoapRequestError,
    CoapResetError,
    CoapTimeoutError,
)
from dtlsfast.coap.exchange import ErrorResponse, Request, Response
from dtlsfast.coap.light import LightResource
from dtlsfast.coap.message import Code, ContentFormat, Message, MessageType, OptionNumber
from dtlsfast.coap.params import TransmissionParameters
from dtlsfast.coap.resource import FunctionResource, Resource
from dtlsfast.coap.server import Attachment, CoapServer, CoapServerConfig

__all__ = [
    "Attachment",
    "BlockOption",
    "BlockOptionError",
    "Clock",
    "CoapClient",
    "CoapClientConfig",
    "CoapDecodeError",
    "CoapEncodeError",
    "CoapError",
    "CoapRequestError",
    "CoapResetError",
    "CoapServer",
    "CoapServerConfig",
    "CoapTimeoutError",
    "Code",
    "ContentFormat",
    "ErrorResponse",
    "FunctionResource",
    "LightResource",
    "LoopClock",
    "ManualClock",
    "Message",
    "MessageType",
    "Observation",
    "OptionNumber",
    "Request",
    "Resource",
    "Response",
    "TransmissionParameters",
]
