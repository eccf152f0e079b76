"""CoAP message codec: RFC 7252 §3 (message format), §3.1 (options), §12.

:class:`Message` is one CoAP message; :meth:`Message.encode` writes the
datagram and :meth:`Message.decode` parses one, raising
:class:`~dtlsfast.coap.errors.CoapDecodeError` for every message format error
of RFC 7252 §3, §4.1, §4.2 and §4.3:

- version other than 1 (§3: silently ignored, so the error carries no type);
- token length 9 to 15 (§3), a token or option running past the datagram;
- option delta or length nibble 15 anywhere but a whole 0xFF payload marker
  (§3.1), a payload marker followed by no payload (§3);
- an Empty message (code 0.00) with a token or any byte after the Message ID
  (§4.1); a Reset that is not Empty (§4.2); an Acknowledgement carrying a
  request (§4.2); a Non-confirmable Empty message (§4.3);
- a code of the reserved classes 1, 6 or 7 (§12.1);
- an option number above 65535 (§12.2).

Options are kept as ``(number, value)`` pairs sorted by number; repeated
options keep their order (§3.1). Option values of the ``uint`` format are
written in minimal length (§3.2): :func:`encode_uint` and :func:`decode_uint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from operator import itemgetter

from dtlsfast.coap.block import BlockOption
from dtlsfast.coap.errors import CoapDecodeError, CoapEncodeError

PAYLOAD_MARKER = 0xFF
_MAX_OPTION_NUMBER = 0xFFFF
_MAX_EXTENDED = 0xFFFF + 269


class MessageType(IntEnum):
    """Message types (RFC 7252 §3, §4)."""

    CON = 0
    NON = 1
    ACK = 2
    RST = 3


def make_code(cls: int, detail: int) -> int:
    """The code byte ``c.dd`` for class ``c`` and detail ``dd``."""
    return (cls << 5) | detail


def code_str(code: int) -> str:
    """A code in the dotted form of RFC 7252 §3: ``"2.05"``."""
    return f"{code >> 5}.{code & 31:02d}"


class Code(IntEnum):
    """Method and response codes (RFC 7252 §12.1, RFC 7959 §2.9, RFC 8132)."""

    EMPTY = 0
    GET = 1
    POST = 2
    PUT = 3
    DELETE = 4
    FETCH = 5
    PATCH = 6
    IPATCH = 7
    CREATED = 65
    DELETED = 66
    VALID = 67
    CHANGED = 68
    CONTENT = 69
    CONTINUE = 95
    BAD_REQUEST = 128
    UNAUTHORIZED = 129
    BAD_OPTION = 130
    FORBIDDEN = 131
    NOT_FOUND = 132
    METHOD_NOT_ALLOWED = 133
    NOT_ACCEPTABLE = 134
    REQUEST_ENTITY_INCOMPLETE = 136
    CONFLICT = 137
    PRECONDITION_FAILED = 140
    REQUEST_ENTITY_TOO_LARGE = 141
    UNSUPPORTED_CONTENT_FORMAT = 143
    UNPROCESSABLE_ENTITY = 150
    TOO_MANY_REQUESTS = 157
    INTERNAL_SERVER_ERROR = 160
    NOT_IMPLEMENTED = 161
    BAD_GATEWAY = 162
    SERVICE_UNAVAILABLE = 163
    GATEWAY_TIMEOUT = 164
    PROXYING_NOT_SUPPORTED = 165

    @property
    def dotted(self) -> str:
        return code_str(self.value)

    @property
    def is_request(self) -> bool:
        return 1 <= self.value <= 31

    @property
    def is_success(self) -> bool:
        return self.value >> 5 == 2


def is_request_code(code: int) -> bool:
    return 1 <= code <= 31


def is_response_code(code: int) -> bool:
    return 2 <= code >> 5 <= 5


class OptionNumber(IntEnum):
    """Option numbers (RFC 7252 §5.10, RFC 7641, RFC 7959, RFC 7967)."""

    IF_MATCH = 1
    URI_HOST = 3
    ETAG = 4
    IF_NONE_MATCH = 5
    OBSERVE = 6
    URI_PORT = 7
    LOCATION_PATH = 8
    URI_PATH = 11
    CONTENT_FORMAT = 12
    MAX_AGE = 14
    URI_QUERY = 15
    ACCEPT = 17
    LOCATION_QUERY = 20
    BLOCK2 = 23
    BLOCK1 = 27
    SIZE2 = 28
    PROXY_URI = 35
    PROXY_SCHEME = 39
    SIZE1 = 60
    NO_RESPONSE = 258


def is_critical(number: int) -> bool:
    """Critical options have odd numbers (RFC 7252 §5.4.6)."""
    return bool(number & 1)


def is_unsafe(number: int) -> bool:
    """Unsafe-to-forward options have bit 1 set (RFC 7252 §5.4.6)."""
    return bool(number & 2)


def is_no_cache_key(number: int) -> bool:
    """NoCacheKey options have bits 2-4 all set (RFC 7252 §5.4.6)."""
    return number & 0x1E == 0x1C


class ContentFormat(IntEnum):
    """Content-Format identifiers (RFC 7252 §12.3, RFC 7049)."""

    TEXT_PLAIN = 0
    LINK_FORMAT = 40
    XML = 41
    OCTET_STREAM = 42
    EXI = 47
    JSON = 50
    CBOR = 60


def encode_uint(value: int) -> bytes:
    """Minimal-length big-endian encoding of an option ``uint`` (RFC 7252 §3.2)."""
    if value < 0:
        raise CoapEncodeError(f"uint option value must not be negative: {value}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_uint(value: bytes) -> int:
    """Value of an option ``uint``; leading zero bytes are accepted (§3.2)."""
    return int.from_bytes(value, "big")


OptionValue = bytes | int | str


def option_bytes(value: OptionValue) -> bytes:
    """Option value from bytes, an int (``uint`` format) or a str (UTF-8)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        raise CoapEncodeError("option values are bytes, int or str, not bool")
    if isinstance(value, int):
        return encode_uint(value)
    return value.encode("utf-8")


def _nibble(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes((value - 13,))
    if value <= _MAX_EXTENDED:
        return 14, (value - 269).to_bytes(2, "big")
    raise CoapEncodeError(f"option delta or length {value} is too large")


@dataclass(slots=True)
class Message:
    """One CoAP message (RFC 7252 §3)."""

    type: MessageType = MessageType.CON
    code: int = Code.EMPTY
    message_id: int = 0
    token: bytes = b""
    options: list[tuple[int, bytes]] = field(default_factory=list)
    payload: bytes = b""
    version: int = 1

    # -- codec -----------------------------------------------------------

    def encode(self) -> bytes:
        """The datagram for this message; options are written sorted by number."""
        token = self.token
        if len(token) > 8:
            raise CoapEncodeError(f"token of {len(token)} bytes (at most 8)")
        if not 0 <= self.code <= 255:
            raise CoapEncodeError(f"code {self.code} does not fit in a byte")
        if not 0 <= self.message_id <= 0xFFFF:
            raise CoapEncodeError(f"message ID {self.message_id} is not 16-bit")
        if self.version != 1:
            raise CoapEncodeError(f"only version 1 can be encoded, not {self.version}")
        mid = self.message_id
        out = bytearray(
            (0x40 | (int(self.type) << 4) | len(token), self.code, mid >> 8, mid & 0xFF)
        )
        out += token
        last = 0
        for number, value in sorted(self.options, key=itemgetter(0)):
            if not 0 <= number <= _MAX_OPTION_NUMBER:
                raise CoapEncodeError(f"option number {number} out of range")
            dn, dx = _nibble(number - last)
            ln, lx = _nibble(len(value))
            out.append((dn << 4) | ln)
            out += dx
            out += lx
            out += value
            last = number
        if self.payload:
            out.append(PAYLOAD_MARKER)
            out += self.payload
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Message:
        """Parse one datagram; raise :class:`CoapDecodeError` on format errors."""
        data = bytes(data)
        n = len(data)
        if n < 4:
            raise CoapDecodeError(f"datagram of {n} bytes is shorter than the CoAP header")
        b0 = data[0]
        mid = (data[2] << 8) | data[3]
        version = b0 >> 6
        if version != 1:
            raise CoapDecodeError(f"unknown CoAP version {version}")
        mtype = MessageType((b0 >> 4) & 3)
        tkl = b0 & 0x0F
        code = data[1]

        def error(what: str, token: bytes | None = None) -> CoapDecodeError:
            return CoapDecodeError(what, message_id=mid, type=mtype, token=token)

        if tkl > 8:
            raise error(f"reserved token length {tkl}")
        pos = 4 + tkl
        if pos > n:
            raise error("token runs past the end of the datagram")
        token = data[4:pos]
        cls_ = code >> 5
        if code == 0:
            if n != 4:
                raise error("Empty message with a token, options or payload")
            if mtype is MessageType.NON:
                raise error("Non-confirmable Empty message")
        elif cls_ in (1, 6, 7):
            raise error(f"code {code_str(code)} of a reserved class", token)
        elif mtype is MessageType.RST:
            raise error("Reset message that is not Empty", token)
        elif mtype is MessageType.ACK and cls_ == 0:
            raise error("Acknowledgement carrying a request", token)

        options: list[tuple[int, bytes]] = []
        payload = b""
        number = 0
        while pos < n:
            byte = data[pos]
            pos += 1
            if byte == PAYLOAD_MARKER:
                if pos == n:
                    raise error("payload marker followed by an empty payload", token)
                payload = data[pos:]
                break
            delta = byte >> 4
            length = byte & 0x0F
            if delta == 15 or length == 15:
                raise error("option delta or length nibble 15", token)
            if delta == 13:
                if pos + 1 > n:
                    raise error("truncated option delta", token)
                delta = data[pos] + 13
                pos += 1
            elif delta == 14:
                if pos + 2 > n:
                    raise error("truncated option delta", token)
                delta = ((data[pos] << 8) | data[pos + 1]) + 269
                pos += 2
            if length == 13:
                if pos + 1 > n:
                    raise error("truncated option length", token)
                length = data[pos] + 13
                pos += 1
            elif length == 14:
                if pos + 2 > n:
                    raise error("truncated option length", token)
                length = ((data[pos] << 8) | data[pos + 1]) + 269
                pos += 2
            number += delta
            if number > _MAX_OPTION_NUMBER:
                raise error(f"option number {number} above 65535", token)
            end = pos + length
            if end > n:
                raise error(f"value of option {number} runs past the datagram", token)
            options.append((number, data[pos:end]))
            pos = end
        return cls(mtype, code, mid, token, options, payload)

    # -- classification --------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return self.code == 0

    @property
    def is_request(self) -> bool:
        return 1 <= self.code <= 31

    @property
    def is_response(self) -> bool:
        return 2 <= self.code >> 5 <= 5

    @property
    def code_str(self) -> str:
        return code_str(self.code)

    # -- options ---------------------------------------------------------

    def get_options(self, number: int) -> list[bytes]:
        """Values of every occurrence of option ``number``, in order."""
        return [v for n, v in self.options if n == number]

    def get_option(self, number: int) -> bytes | None:
        """Value of the first occurrence of option ``number``, or None."""
        for n, v in self.options:
            if n == number:
                return v
        return None

    def get_uint(self, number: int) -> int | None:
        value = self.get_option(number)
        return None if value is None else decode_uint(value)

    def add_option(self, number: int, value: OptionValue) -> None:
        """Append an occurrence, keeping the list sorted (stable for repeats)."""
        raw = option_bytes(value)
        i = len(self.options)
        while i > 0 and self.options[i - 1][0] > number:
            i -= 1
        self.options.insert(i, (number, raw))

    def set_option(self, number: int, value: OptionValue | None) -> None:
        """Replace every occurrence of ``number`` by one value (None: remove)."""
        self.remove_option(number)
        if value is not None:
            self.add_option(number, value)

    def remove_option(self, number: int) -> None:
        self.options = [(n, v) for n, v in self.options if n != number]

    @property
    def uri_path(self) -> list[str]:
        """Uri-Path segments, decoded as UTF-8 (RFC 7252 §5.10.1)."""
        return [v.decode("utf-8", "replace") for v in self.get_options(OptionNumber.URI_PATH)]

    @property
    def path(self) -> str:
        """The Uri-Path segments joined with '/', without a leading slash."""
        return "/".join(self.uri_path)

    @property
    def uri_query(self) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self.get_options(OptionNumber.URI_QUERY)]

    @property
    def content_format(self) -> int | None:
        return self.get_uint(OptionNumber.CONTENT_FORMAT)

    @property
    def accept(self) -> int | None:
        return self.get_uint(OptionNumber.ACCEPT)

    @property
    def observe(self) -> int | None:
        return self.get_uint(OptionNumber.OBSERVE)

    @property
    def max_age(self) -> int | None:
        return self.get_uint(OptionNumber.MAX_AGE)

    @property
    def etag(self) -> bytes | None:
        return self.get_option(OptionNumber.ETAG)

    @property
    def size1(self) -> int | None:
        return self.get_uint(OptionNumber.SIZE1)

    @property
    def size2(self) -> int | None:
        return self.get_uint(OptionNumber.SIZE2)

    @property
    def block1(self) -> BlockOption | None:
        """The Block1 option (RFC 7959); raises BlockOptionError if invalid."""
        value = self.get_option(OptionNumber.BLOCK1)
        return None if value is None else BlockOption.decode(value)

    @property
    def block2(self) -> BlockOption | None:
        """The Block2 option (RFC 7959); raises BlockOptionError if invalid."""
        value = self.get_option(OptionNumber.BLOCK2)
        return None if value is None else BlockOption.decode(value)

    def __repr__(self) -> str:
        opts = ", ".join(f"{n}={v.hex() or '-'}" for n, v in self.options)
        return (
            f"<Message {self.type.name} {_code_name(self.code)} mid={self.message_id}"
            f" token={self.token.hex() or '-'} [{opts}] payload={len(self.payload)}B>"
        )


def _code_name(code: int) -> str:
    try:
        return f"{code_str(code)} {Code(code).name}"
    except ValueError:
        return code_str(code)


def empty_ack(message_id: int) -> bytes:
    """An Empty Acknowledgement (RFC 7252 §4.2) as bytes."""
    return bytes((0x60, 0, message_id >> 8, message_id & 0xFF))


def reset(message_id: int) -> bytes:
    """An Empty Reset (RFC 7252 §4.2) as bytes."""
    return bytes((0x70, 0, message_id >> 8, message_id & 0xFF))


__all__ = [
    "PAYLOAD_MARKER",
    "Code",
    "ContentFormat",
    "Message",
    "MessageType",
    "OptionNumber",
    "code_str",
    "decode_uint",
    "empty_ack",
    "encode_uint",
    "is_critical",
    "is_no_cache_key",
    "is_request_code",
    "is_response_code",
    "is_unsafe",
    "make_code",
    "option_bytes",
    "reset",
]
