"""Hypothesis: decode never raises anything but CoapDecodeError, and
encode/decode round-trips every valid message (RFC 7252 §3)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast.coap import Message, MessageType
from dtlsfast.coap.block import BlockOption
from dtlsfast.coap.errors import BlockOptionError, CoapDecodeError

request_codes = st.integers(1, 31)
response_codes = st.integers(64, 191)  # classes 2..5
options = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 300), st.integers(0, 0xFFFF)),
        st.binary(max_size=300),
    ),
    max_size=8,
).map(lambda opts: sorted(opts, key=lambda o: o[0]))


@st.composite
def valid_messages(draw: st.DrawFn) -> Message:
    mtype = draw(st.sampled_from(list(MessageType)))
    empty = mtype is not MessageType.NON and draw(st.booleans())
    mid = draw(st.integers(0, 0xFFFF))
    if mtype is MessageType.RST or empty:
        return Message(mtype, 0, mid)
    if mtype is MessageType.ACK:
        code = draw(response_codes)
    else:
        code = draw(st.one_of(request_codes, response_codes))
    return Message(
        mtype,
        code,
        mid,
        draw(st.binary(max_size=8)),
        draw(options),
        draw(st.binary(max_size=64)),
    )


@settings(max_examples=400)
@given(st.binary(max_size=128))
def test_decode_raises_only_decode_error(data: bytes) -> None:
    try:
        msg = Message.decode(data)
    except CoapDecodeError:
        return
    # Whatever decodes, encodes back to the same bytes (canonical encodings
    # only exist for minimal extended nibbles, which decode accepts only).
    assert Message.decode(msg.encode()) == msg


@settings(max_examples=400)
@given(st.binary(min_size=4, max_size=64))
def test_decode_of_version_1_header_fuzz(tail: bytes) -> None:
    data = bytes([0x40 | (tail[0] & 0x3F)]) + tail[1:]
    try:
        Message.decode(data)
    except CoapDecodeError as exc:
        assert exc.message_id is not None


@settings(max_examples=400)
@given(valid_messages())
def test_round_trip(msg: Message) -> None:
    raw = msg.encode()
    assert Message.decode(raw) == msg
    assert Message.decode(raw).encode() == raw


@given(st.binary(max_size=4))
def test_block_decode_raises_only_block_error(value: bytes) -> None:
    try:
        block = BlockOption.decode(value)
    except BlockOptionError:
        return
    assert BlockOption.decode(block.encode()) == block
