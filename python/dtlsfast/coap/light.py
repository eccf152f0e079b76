"""The seed system's ``light`` resource: the ESP-IDF CoAP+DTLS example's
observable light switch, over RFC 7252 §5.8 GET/PUT and RFC 7641 Observe.

- GET: 2.05 with ``on`` or ``off`` as text/plain (Content-Format 0), or
  ``{"on": true}`` as application/json (50) when the request has Accept: 50.
  Any other Accept gets 4.06 Not Acceptable (RFC 7252 §5.10.4).
- PUT: ``on``, ``off``, ``1``, ``0`` or ``toggle`` as text/plain (or with no
  Content-Format), or ``{"on": <bool>}`` as JSON, gets 2.04 Changed; anything
  else 4.00 Bad Request with a diagnostic payload (§5.5.2), JSON nested too
  deeply to parse included; another Content-Format 4.15. Observers are
  notified after every successful PUT, changed or not, as the ESP-IDF
  example calls ``coap_resource_notify_observers`` after each one.
- Shared (``shared = True``): its state is ``on`` or ``off``, so the workers
  of ``dtlsfast serve --workers N`` serve one light.
"""

from __future__ import annotations

import json

from dtlsfast.coap.exchange import ErrorResponse, Request, Response
from dtlsfast.coap.message import Code, ContentFormat
from dtlsfast.coap.resource import Resource

_TEXT_VALUES = {"on": True, "1": True, "off": False, "0": False}
_FORMATS = (ContentFormat.TEXT_PLAIN, ContentFormat.JSON)


class LightResource(Resource):
    """An observable on/off light, initially off."""

    observable = True
    rt = "light"
    if_ = "core.a"
    ct = (ContentFormat.TEXT_PLAIN, ContentFormat.JSON)
    title = "Light"
    shared = True

    def __init__(self, on: bool = False) -> None:
        self.on = on

    async def render_get(self, request: Request) -> Response:
        accept = request.accept
        if accept is None or accept == ContentFormat.TEXT_PLAIN:
            text = b"on" if self.on else b"off"
            return Response(Code.CONTENT, text, ContentFormat.TEXT_PLAIN)
        if accept == ContentFormat.JSON:
            body = json.dumps({"on": self.on}).encode()
            return Response(Code.CONTENT, body, ContentFormat.JSON)
        raise ErrorResponse(Code.NOT_ACCEPTABLE, "text/plain (0) or application/json (50)")

    def published_representation(self) -> Response:
        """The plain GET's answer: every change goes through :meth:`notify`."""
        return Response(Code.CONTENT, b"on" if self.on else b"off", ContentFormat.TEXT_PLAIN)

    async def render_put(self, request: Request) -> Response:
        cf = request.content_format
        if cf is not None and cf not in _FORMATS:
            raise ErrorResponse(
                Code.UNSUPPORTED_CONTENT_FORMAT, "text/plain (0) or application/json (50)"
            )
        new = self._parse_json(request.payload) if cf == 50 else self._parse_text(request.payload)
        self.on = new
        self.changed()
        return Response(Code.CHANGED)

    def export_state(self) -> bytes:
        return b"on" if self.on else b"off"

    def import_state(self, data: bytes) -> None:
        if data not in (b"on", b"off"):
            raise ValueError("a light's state is b'on' or b'off'")
        self.on = data == b"on"

    def _parse_text(self, payload: bytes) -> bool:
        try:
            text = payload.decode("utf-8").strip().lower()
        except UnicodeDecodeError:
            text = None
        if text == "toggle":
            return not self.on
        if text not in _TEXT_VALUES:
            raise ErrorResponse(Code.BAD_REQUEST, 'expected "on", "off", "1", "0" or "toggle"')
        return _TEXT_VALUES[text]

    @staticmethod
    def _parse_json(payload: bytes) -> bool:
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise ErrorResponse(Code.BAD_REQUEST, "invalid JSON") from None
        except RecursionError:
            # The parser recurses per nesting level; a peer chooses the depth.
            raise ErrorResponse(Code.BAD_REQUEST, "JSON nested too deeply") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("on"), bool):
            raise ErrorResponse(Code.BAD_REQUEST, 'expected {"on": true} or {"on": false}')
        return bool(doc["on"])


__all__ = ["LightResource"]
