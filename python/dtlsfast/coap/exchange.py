"""Requests and responses as resource handlers and client callers see them
(RFC 7252 §5: request/response semantics, above the messaging sublayer).

A handler receives a :class:`Request` (the whole body, after any Block1
reassembly) and returns a :class:`Response`, or raises :class:`ErrorResponse`
to answer with an error code and a diagnostic payload (§5.5.2). The client
returns the same :class:`Response` type.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from dtlsfast.coap.errors import CoapError
from dtlsfast.coap.message import Code, Message, OptionNumber, code_str, encode_uint


@dataclass(slots=True)
class Request:
    """A request as a resource handler sees it."""

    message: Message
    remote: Hashable
    payload: bytes

    @property
    def method(self) -> int:
        return self.message.code

    @property
    def path(self) -> str:
        return self.message.path

    @property
    def query(self) -> list[str]:
        return self.message.uri_query

    @property
    def content_format(self) -> int | None:
        return self.message.content_format

    @property
    def accept(self) -> int | None:
        return self.message.accept

    @property
    def token(self) -> bytes:
        return self.message.token

    def text(self) -> str:
        return self.payload.decode("utf-8")


@dataclass(slots=True)
class Response:
    """A response: code, payload, Content-Format and other options.

    ``options`` holds options other than Content-Format; the server adds
    Observe, Block1/Block2, Size2 and ETag for block-wise transfers itself.
    """

    code: int = Code.CONTENT
    payload: bytes = b""
    content_format: int | None = None
    options: list[tuple[int, bytes]] = field(default_factory=list)
    #: The message this response was read from (client side), else None.
    message: Message | None = None

    @classmethod
    def from_message(cls, message: Message, payload: bytes | None = None) -> Response:
        return cls(
            message.code,
            message.payload if payload is None else payload,
            message.content_format,
            [(n, v) for n, v in message.options if n != OptionNumber.CONTENT_FORMAT],
            message,
        )

    def all_options(self) -> list[tuple[int, bytes]]:
        opts = [(n, v) for n, v in self.options if n != OptionNumber.CONTENT_FORMAT]
        if self.content_format is not None:
            opts.append((OptionNumber.CONTENT_FORMAT, encode_uint(self.content_format)))
        return opts

    def get_option(self, number: int) -> bytes | None:
        for n, v in self.options:
            if n == number:
                return v
        return None

    @property
    def is_success(self) -> bool:
        return self.code >> 5 == 2

    @property
    def code_str(self) -> str:
        return code_str(self.code)

    @property
    def observe(self) -> int | None:
        value = self.get_option(OptionNumber.OBSERVE)
        return None if value is None else int.from_bytes(value, "big")

    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)

    def __repr__(self) -> str:
        cf = "" if self.content_format is None else f" cf={self.content_format}"
        return f"<Response {code_str(self.code)}{cf} {self.payload[:40]!r}>"


class ErrorResponse(CoapError):
    """Raised by a handler to answer with ``code`` and a diagnostic payload."""

    def __init__(self, code: int, diagnostic: str = "") -> None:
        super().__init__(f"{code_str(code)} {diagnostic}".strip())
        self.code = code
        self.diagnostic = diagnostic

    def response(self) -> Response:
        # A diagnostic payload carries no Content-Format (RFC 7252 §5.5.2).
        return Response(self.code, self.diagnostic.encode("utf-8"))


__all__ = ["ErrorResponse", "Request", "Response"]
