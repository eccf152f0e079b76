"""RFC 7252 §3 message codec: Appendix A examples, format errors, helpers."""

from __future__ import annotations

import pytest

from dtlsfast.coap import BlockOption, Code, ContentFormat, Message, MessageType, OptionNumber
from dtlsfast.coap.errors import BlockOptionError, CoapDecodeError, CoapEncodeError
from dtlsfast.coap.message import (
    code_str,
    decode_uint,
    empty_ack,
    encode_uint,
    is_critical,
    is_no_cache_key,
    is_unsafe,
    make_code,
    reset,
)
from dtlsfast.exceptions import DecodeError

TEMPERATURE = b"\xbbtemperature"


# RFC 7252 Appendix A: Figure 16 (CON GET /temperature, MID 0x7d34, piggybacked
# 2.05 "22.3 C") and Figure 17 (the same with token 0x20), byte for byte; then
# messages of the same shape for the separate-response and NON flows.
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Figure 16: CON GET /temperature, piggybacked ACK 2.05 "22.3 C".
        (
            b"\x40\x01\x7d\x34" + TEMPERATURE,
            Message(MessageType.CON, Code.GET, 0x7D34, b"", [(11, b"temperature")]),
        ),
        (
            b"\x60\x45\x7d\x34\xff22.3 C",
            Message(MessageType.ACK, Code.CONTENT, 0x7D34, b"", [], b"22.3 C"),
        ),
        # Figure 17: a one-byte token.
        (
            b"\x41\x01\x7d\x35\x20" + TEMPERATURE,
            Message(MessageType.CON, Code.GET, 0x7D35, b"\x20", [(11, b"temperature")]),
        ),
        # Empty ACK, then a separate CON response with a 4-byte token.
        (b"\x60\x00\x7d\x38", Message(MessageType.ACK, Code.EMPTY, 0x7D38)),
        (
            b"\x44\x45\xad\x7b\x00\x00\x44\xa1\xff22.5 C",
            Message(MessageType.CON, Code.CONTENT, 0xAD7B, b"\x00\x00\x44\xa1", [], b"22.5 C"),
        ),
        # NON request and NON response.
        (
            b"\x50\x01\x7d\x40" + TEMPERATURE,
            Message(MessageType.NON, Code.GET, 0x7D40, b"", [(11, b"temperature")]),
        ),
        (
            b"\x51\x45\xad\x7d\x21\xff22.3 C",
            Message(MessageType.NON, Code.CONTENT, 0xAD7D, b"\x21", [], b"22.3 C"),
        ),
        # Reset and the ping.
        (b"\x70\x00\x7d\x39", Message(MessageType.RST, Code.EMPTY, 0x7D39)),
        (b"\x40\x00\x12\x34", Message(MessageType.CON, Code.EMPTY, 0x1234)),
    ],
)
def test_appendix_a_examples(raw: bytes, expected: Message) -> None:
    assert Message.decode(raw) == expected
    assert expected.encode() == raw


def test_extended_delta_and_length() -> None:
    msg = Message(MessageType.CON, Code.GET, 1, b"tk")
    msg.add_option(OptionNumber.URI_PATH, "a" * 12)  # length 12: nibble
    msg.add_option(OptionNumber.URI_QUERY, "q" * 13)  # length 13: +1 byte
    msg.add_option(OptionNumber.PROXY_URI, "p" * 300)  # delta 20, length 300: +2 bytes
    msg.add_option(OptionNumber.NO_RESPONSE, 2)  # delta 223: +1 byte
    msg.add_option(2000, b"x")  # delta 1742: +2 bytes
    msg.add_option(65000, b"")  # largest options
    raw = msg.encode()
    assert Message.decode(raw) == msg
    # Uri-Query after Uri-Path: delta 4, length 13 -> nibble 13 and byte 0.
    i = raw.index(b"a" * 12) + 12
    assert raw[i : i + 2] == b"\x4d\x00"
    # Proxy-Uri: delta 20 -> 13 + 7, length 300 -> 14 + 31 (300 - 269).
    j = raw.index(b"q" * 13) + 13
    assert raw[j : j + 4] == b"\xde\x07\x00\x1f"


def test_repeated_options_keep_order_and_sort() -> None:
    msg = Message(MessageType.CON, Code.GET, 2)
    msg.options = [(15, b"b=2"), (11, b"x"), (15, b"a=1"), (11, b"y")]
    decoded = Message.decode(msg.encode())
    assert decoded.options == [(11, b"x"), (11, b"y"), (15, b"b=2"), (15, b"a=1")]
    decoded.add_option(11, "z")
    decoded.add_option(4, b"e")
    assert [n for n, _ in decoded.options] == [4, 11, 11, 11, 15, 15]
    assert decoded.uri_path == ["x", "y", "z"]
    assert decoded.path == "x/y/z"
    assert decoded.uri_query == ["b=2", "a=1"]


@pytest.mark.parametrize(
    ("raw", "reason", "resettable"),
    [
        (b"", "shorter", False),
        (b"\x40\x01\x00", "shorter", False),
        (b"\x80\x01\x00\x01", "version", False),  # version 2: silently ignored
        (b"\x00\x01\x00\x01", "version", False),
        (b"\x49\x01\x00\x01" + b"t" * 9, "token length", True),
        (b"\x4f\x01\x00\x01", "token length", True),
        (b"\x44\x01\x00\x01tt", "token", True),
        (b"\x40\x01\x00\x01\xff", "payload marker", True),
        (b"\x40\x01\x00\x01\xf1x", "nibble 15", True),
        (b"\x40\x01\x00\x01\x1f", "nibble 15", True),
        (b"\x40\x01\x00\x01\xd1", "truncated option delta", True),
        (b"\x40\x01\x00\x01\xe1\x00", "truncated option delta", True),
        (b"\x40\x01\x00\x01\x1d", "truncated option length", True),
        (b"\x40\x01\x00\x01\x1e\x01", "truncated option length", True),
        (b"\x40\x01\x00\x01\x15abc", "runs past", True),
        (b"\x40\x01\x00\x01\xe0\xff\xff\xe0\xff\xff", "above 65535", True),
        (b"\x41\x00\x00\x01t", "Empty message", True),
        (b"\x40\x00\x00\x01\xff1", "Empty message", True),
        (b"\x50\x00\x00\x01", "Non-confirmable Empty", False),
        (b"\x70\x45\x00\x01", "Reset", False),
        (b"\x60\x01\x00\x01", "Acknowledgement carrying a request", False),
        (b"\x40\x20\x00\x01", "reserved class", True),  # 1.00
        (b"\x40\xc0\x00\x01", "reserved class", True),  # 6.00
        (b"\x50\xe0\x00\x01", "reserved class", False),  # 7.00 NON
    ],
)
def test_format_errors(raw: bytes, reason: str, resettable: bool) -> None:
    with pytest.raises(CoapDecodeError, match=reason) as info:
        Message.decode(raw)
    assert isinstance(info.value, DecodeError)
    assert info.value.should_reset is resettable
    if resettable:
        assert info.value.message_id == 1
        assert info.value.type is MessageType.CON


def test_error_exposes_type_for_non() -> None:
    with pytest.raises(CoapDecodeError) as info:
        Message.decode(b"\x5f\x01\xab\xcd")
    assert info.value.type is MessageType.NON
    assert info.value.message_id == 0xABCD
    assert not info.value.should_reset


def test_encode_rejects_bad_fields() -> None:
    with pytest.raises(CoapEncodeError):
        Message(token=b"123456789").encode()
    with pytest.raises(CoapEncodeError):
        Message(message_id=0x10000).encode()
    with pytest.raises(CoapEncodeError):
        Message(code=256).encode()
    with pytest.raises(CoapEncodeError):
        Message(options=[(0x10000, b"")]).encode()
    with pytest.raises(CoapEncodeError):
        Message(options=[(1, b"x" * (0xFFFF + 270))]).encode()
    with pytest.raises(CoapEncodeError):
        Message(version=2).encode()
    with pytest.raises(ValueError):
        encode_uint(-1)


def test_uint_minimal_length() -> None:
    assert encode_uint(0) == b""
    assert encode_uint(1) == b"\x01"
    assert encode_uint(255) == b"\xff"
    assert encode_uint(256) == b"\x01\x00"
    assert encode_uint(0xFFFFFF) == b"\xff\xff\xff"
    assert decode_uint(b"") == 0
    assert decode_uint(b"\x00\x05") == 5  # leading zeros are tolerated


def test_option_helpers() -> None:
    msg = Message(MessageType.CON, Code.GET, 3)
    msg.add_option(OptionNumber.CONTENT_FORMAT, ContentFormat.JSON)
    msg.add_option(OptionNumber.ACCEPT, 0)
    msg.add_option(OptionNumber.OBSERVE, 0)
    msg.add_option(OptionNumber.MAX_AGE, 60)
    msg.add_option(OptionNumber.ETAG, b"\x01\x02")
    msg.add_option(OptionNumber.SIZE1, 5000)
    msg.add_option(OptionNumber.SIZE2, 0)
    msg.add_option(OptionNumber.BLOCK1, BlockOption(3, True, 2).encode())
    msg.add_option(OptionNumber.BLOCK2, BlockOption(0, False, 6).encode())
    decoded = Message.decode(msg.encode())
    assert decoded.content_format == 50
    assert decoded.accept == 0
    assert decoded.observe == 0
    assert decoded.get_option(OptionNumber.OBSERVE) == b""
    assert decoded.max_age == 60
    assert decoded.etag == b"\x01\x02"
    assert decoded.size1 == 5000
    assert decoded.size2 == 0
    assert decoded.block1 == BlockOption(3, True, 2)
    assert decoded.block2 == BlockOption(0, False, 6)
    assert decoded.get_uint(OptionNumber.URI_PORT) is None
    decoded.set_option(OptionNumber.ACCEPT, 50)
    assert decoded.accept == 50
    decoded.set_option(OptionNumber.ACCEPT, None)
    assert decoded.accept is None
    decoded.set_option(OptionNumber.BLOCK2, b"\x07")
    with pytest.raises(BlockOptionError):
        _ = decoded.block2
    with pytest.raises(CoapEncodeError):
        decoded.add_option(1, True)
    assert "GET" in repr(decoded)


def test_codes_and_option_classes() -> None:
    assert Code.CONTENT == make_code(2, 5) == 69
    assert Code.CONTENT.dotted == "2.05"
    assert code_str(Code.UNSUPPORTED_CONTENT_FORMAT) == "4.15"
    assert code_str(Code.CONTINUE) == "2.31"
    assert Code.REQUEST_ENTITY_INCOMPLETE.dotted == "4.08"
    assert Code.PRECONDITION_FAILED.dotted == "4.12"
    assert Code.SERVICE_UNAVAILABLE.dotted == "5.03"
    assert Code.IPATCH == 7 and Code.FETCH == 5 and Code.PATCH == 6
    assert Code.GET.is_request and not Code.GET.is_success
    assert Code.CHANGED.is_success
    assert [is_critical(n) for n in (1, 3, 4, 6, 11, 12, 60, 258)] == [
        True, True, False, False, True, False, False, False,
    ]  # fmt: skip
    assert is_unsafe(OptionNumber.URI_HOST) and not is_unsafe(OptionNumber.ETAG)
    assert is_no_cache_key(OptionNumber.SIZE1) and not is_no_cache_key(OptionNumber.ACCEPT)
    assert Message(code=Code.GET).is_request
    assert Message(code=Code.CONTENT).is_response
    assert Message().is_empty
    assert Message(code=Code.CONTENT).code_str == "2.05"


def test_empty_ack_and_reset_bytes() -> None:
    assert empty_ack(0x1234) == Message(MessageType.ACK, 0, 0x1234).encode()
    assert reset(0xBEEF) == Message(MessageType.RST, 0, 0xBEEF).encode()
