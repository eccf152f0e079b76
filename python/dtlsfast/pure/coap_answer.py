"""Published CoAP responses: the pure-Python twin of rust/coap_answer.rs.

A Confirmable GET (RFC 7252 §5.8.1) whose only options are Uri-Path
segments naming a published path, with no payload, is answered with a
piggybacked ACK (§5.2.1) made of the request's message ID and token and the
published code, options and payload. Anything else returns None.
"""

from __future__ import annotations

from dtlsfast.exceptions import ConfigurationError

MAX_PUBLISHED = 256
MAX_RESPONSE = 1200
_MAX_PATH = 255
_URI_PATH = 11


def _extended(nibble: int, data: bytes, at: int) -> tuple[int, int] | None:
    if nibble < 13:
        return nibble, at
    if nibble == 13:
        return (data[at] + 13, at + 1) if at < len(data) else None
    if nibble == 14:
        return (
            (int.from_bytes(data[at : at + 2], "big") + 269, at + 2)
            if at + 2 <= len(data)
            else None
        )
    return None


class CoapAnswers:
    """Published responses by path, and how many requests they answered."""

    def __init__(self) -> None:
        self._published: dict[bytes, bytes] = {}
        self.answered = 0

    def __len__(self) -> int:
        return len(self._published)

    def publish(self, path: bytes, response: bytes | None) -> None:
        path, response = bytes(path), None if response is None else bytes(response)
        if response is None:
            self._published.pop(path, None)
            return
        if not 1 <= len(path) <= _MAX_PATH:
            raise ConfigurationError(f"a published path has 1 to {_MAX_PATH} bytes")
        if not 1 <= len(response) <= MAX_RESPONSE:
            raise ConfigurationError(
                f"a published response (code, options, payload) has 1 to {MAX_RESPONSE} bytes"
            )
        if path not in self._published and len(self._published) >= MAX_PUBLISHED:
            raise ConfigurationError(f"at most {MAX_PUBLISHED} paths can be published")
        self._published[path] = response

    def answer(self, request: bytes) -> bytes | None:
        if not self._published or len(request) < 2:
            return None
        first, code = request[0], request[1]
        if first >> 6 != 1 or (first >> 4) & 3 != 0 or code != 0x01:
            return None
        tkl = first & 0x0F
        if tkl > 8 or len(request) < 4 + tkl:
            return None
        options = request[4 + tkl :]
        segments: list[bytes] = []
        number = at = 0
        while at < len(options):
            byte = options[at]
            if byte == 0xFF:
                return None
            at += 1
            delta = _extended(byte >> 4, options, at)
            if delta is None:
                return None
            length = _extended(byte & 0x0F, options, delta[1])
            if length is None:
                return None
            number += delta[0]
            at = length[1]
            if number != _URI_PATH or at + length[0] > len(options):
                return None
            segment = options[at : at + length[0]]
            at += length[0]
            if not segment or b"/" in segment or segment in (b".", b".."):
                return None
            segments.append(segment)
            if len(b"/".join(segments)) > _MAX_PATH:
                return None
        response = self._published.get(b"/".join(segments))
        if response is None:
            return None
        self.answered += 1
        return bytes([0x60 | tkl, response[0]]) + request[2 : 4 + tkl] + response[1:]


__all__ = ["CoapAnswers"]
