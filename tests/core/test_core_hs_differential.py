"""Differential tests of the handshake codecs: the Rust ``_core`` and the
pure-Python twin take the same generated messages, valid and malformed
(truncated, bit-flipped, extended, with duplicated or broken extensions,
fields out of range), and must give the same values of the same types,
the same bytes, and the same exception types (so the same alert)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast import _core, pure
from dtlsfast.handshake.constants import ExtensionType as T

SETTINGS = settings(max_examples=200, deadline=None)


def blob(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[bytes]:
    """Bytes drawn as a list of ints. Hypothesis keys its cache on the
    choices it made, and b"" hashes like 0: with ``st.binary`` a bytes and
    an int choice at one position collide, and comparing them trips -bb."""
    return st.lists(st.integers(0, 255), min_size=min_size, max_size=max_size).map(bytes)


_FIELDS = {
    cls.__name__: [f.name for f in dataclasses.fields(cls)]
    for cls in (pure.ParsedClientHello, pure.ParsedServerHello)
}


def shape(value: Any) -> Any:
    """``value`` with the type of every part spelled out, so that a tuple
    and a list, or a bool and an int, do not compare equal."""
    name = type(value).__name__
    if name in _FIELDS:
        return (name, tuple((f, shape(getattr(value, f))) for f in _FIELDS[name]))
    if isinstance(value, tuple | list):
        return (name, tuple(shape(v) for v in value))
    return (name, value)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", shape(call()))
    except Exception as exc:
        return ("raised", type(exc))


def same(call: Callable[[Any], Any]) -> Any:
    """Run ``call`` on both modules; they must agree; the Rust result (or None)."""
    rust, python = outcome(lambda: call(_core)), outcome(lambda: call(pure))
    if rust != python:
        # Spelled out here: pytest's own diff of bytes against ints trips -bb.
        raise AssertionError(f"the two cores differ:\n rust   {rust!r}\n python {python!r}")
    if rust[0] == "ok":
        return call(_core)
    return None


# ------------------------------------------------------ generators


def vector(size: int, items: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return items.map(lambda data: len(data).to_bytes(size, "big") + data)


def u16_list(min_size: int = 1) -> st.SearchStrategy[bytes]:
    return st.lists(st.integers(0, 0xFFFF), min_size=min_size, max_size=6).map(
        lambda values: b"".join(v.to_bytes(2, "big") for v in values)
    )


#: Well-formed extension_data of the extensions the codecs decode.
VALID_DATA: dict[int, st.SearchStrategy[bytes]] = {
    T.SERVER_NAME: blob(max_size=16),
    T.SUPPORTED_GROUPS: vector(2, u16_list()),
    T.SIGNATURE_ALGORITHMS: vector(2, u16_list()),
    T.EC_POINT_FORMATS: vector(1, blob(min_size=1, max_size=4)),
    T.CLIENT_CERTIFICATE_TYPE: st.one_of(
        vector(1, blob(min_size=1, max_size=3)), blob(min_size=1, max_size=1)
    ),
    T.SERVER_CERTIFICATE_TYPE: st.one_of(
        vector(1, blob(min_size=1, max_size=3)), blob(min_size=1, max_size=1)
    ),
    T.EXTENDED_MASTER_SECRET: st.just(b""),
    T.RECORD_SIZE_LIMIT: st.integers(0, 0xFFFF).map(lambda v: v.to_bytes(2, "big"))
    | st.sampled_from([b"\x00\x3f", b"\x00\x40", b"\x40\x00", b"\x40\x01"]),
    T.SESSION_TICKET: blob(max_size=16),
    T.CONNECTION_ID: vector(1, blob(max_size=8)),
    T.RENEGOTIATION_INFO: vector(1, blob(max_size=4)),
}
TYPES = st.one_of(st.sampled_from([*VALID_DATA, 5, 22, 0x1234]), st.integers(0, 0xFFFF))


@st.composite
def extension(draw: st.DrawFn) -> tuple[int, bytes]:
    ext_type = draw(TYPES)
    if ext_type in VALID_DATA and draw(st.integers(0, 3)):
        return ext_type, draw(VALID_DATA[ext_type])
    return ext_type, draw(blob(max_size=10))


@st.composite
def extensions(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    out = draw(st.lists(extension(), max_size=8))
    if out and draw(st.integers(0, 5)) == 0:
        # A duplicate type somewhere later (RFC 5246 §7.4.1.4).
        twin = draw(st.sampled_from(out))
        out.insert(draw(st.integers(out.index(twin) + 1, len(out))), twin)
    return out


def mostly(valid: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` fifteen times in sixteen, else ``rare``: so that a message
    with many fields is usually encodable, and sometimes not."""
    return st.integers(0, 15).flatmap(lambda i: rare if i == 0 else valid)


def lengths(*sizes: int, max_size: int = 40) -> st.SearchStrategy[bytes]:
    """Bytes, now and then exactly at or past a vector's bound."""
    return mostly(blob(max_size=max_size), st.sampled_from(sizes).map(bytes))


U16 = mostly(st.integers(0, 0xFFFF), st.sampled_from([-1, 0x10000, True]))
U8 = mostly(st.integers(0, 0xFF), st.sampled_from([-1, 0x100, False]))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with a byte changed, inserted or appended."""
    how = draw(st.integers(0, 4))
    if how == 0 or not data:
        return data + draw(blob(min_size=1, max_size=3))
    at = draw(st.integers(0, len(data) - 1))
    if how == 1:
        return data[:at]
    if how == 2:
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if how == 3:
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data[:at] + draw(blob(min_size=1, max_size=2)) + data[at:]


# ------------------------------------------------------------ hellos


#: 32 bytes from one int choice: cheaper to draw than a list of 32.
RANDOM32 = st.integers(0, 2**256 - 1).map(lambda v: v.to_bytes(32, "big"))
RANDOM = mostly(RANDOM32, blob(max_size=33))

client_hello_args = st.tuples(
    U16,
    U16,
    RANDOM,
    lengths(32, 33, max_size=32),
    lengths(255, 256),
    mostly(st.lists(U16, min_size=1, max_size=6), st.just([])),
    mostly(blob(min_size=1, max_size=3), st.sampled_from([b"", bytes(256)])),
    extensions(),
)


@SETTINGS
@given(client_hello_args, st.data())
def test_client_hellos_agree(args: tuple[Any, ...], data: st.DataObject) -> None:
    message = same(lambda m: m.encode_client_hello(*args))
    if message is None:
        return
    body = message[12:]
    for candidate in (body, data.draw(mutated(body)), data.draw(mutated(body))):
        same(lambda m, b=candidate: m.decode_client_hello(b))
        same(lambda m, b=candidate: m.client_hello_cookie(b))
        same(lambda m, b=candidate: m.decode_server_hello(b))


@SETTINGS
@given(
    st.tuples(U16, U16, RANDOM, lengths(32, 33, max_size=32), U16),
    st.fixed_dictionaries(
        {},
        optional={
            "renegotiation_info": lengths(255, 256, max_size=4),
            "extended_master_secret": st.booleans(),
            "record_size_limit": mostly(
                st.integers(64, 16385), st.sampled_from([63, 16386, -1, 70000])
            ),
            "ec_point_formats": mostly(blob(min_size=1, max_size=3), st.just(b"")),
            "server_certificate_type": U8,
            "client_certificate_type": U8,
            "connection_id": lengths(255, 256, max_size=8),
            "session_ticket": st.booleans(),
            "extensions": extensions(),
        },
    ),
    st.data(),
)
def test_server_hellos_agree(
    args: tuple[Any, ...], options: dict[str, Any], data: st.DataObject
) -> None:
    message = same(lambda m: m.encode_server_hello(*args, **options))
    if message is None:
        return
    body = message[12:]
    for candidate in (body, data.draw(mutated(body))):
        same(lambda m, b=candidate: m.decode_server_hello(b))
        same(lambda m, b=candidate: m.decode_client_hello(b))


# ------------------------------------------- the other messages

#: Every decoder of a message body but the hellos.
DECODERS = [
    "decode_hello_verify_request",
    "decode_server_key_exchange_psk",
    "decode_server_key_exchange_ecdhe_psk",
    "decode_server_key_exchange_ecdhe",
    "decode_client_key_exchange_psk",
    "decode_client_key_exchange_ecdhe_psk",
    "decode_client_key_exchange_ecdhe",
    "decode_certificate",
    "decode_raw_public_key_certificate",
    "decode_certificate_request",
    "decode_certificate_verify",
    "decode_server_hello_done",
]

SEQ = mostly(st.integers(0, 0xFFFF), st.sampled_from([-1, 0x10000]))
POINT = mostly(blob(min_size=1, max_size=70), st.sampled_from([b"", bytes(255), bytes(256)]))
OPAQUE16 = lengths(65535, 65536)

#: (encoder, strategy of its arguments after message_seq)
ENCODERS: list[tuple[str, st.SearchStrategy[tuple[Any, ...]]]] = [
    ("encode_hello_verify_request", st.tuples(U16, lengths(0, 255, 256))),
    ("encode_server_key_exchange_psk", st.tuples(OPAQUE16)),
    ("encode_server_key_exchange_ecdhe_psk", st.tuples(blob(max_size=20), U16, POINT)),
    (
        "encode_server_key_exchange_ecdhe",
        st.tuples(U16, POINT, U16, OPAQUE16),
    ),
    ("encode_client_key_exchange_psk", st.tuples(OPAQUE16)),
    ("encode_client_key_exchange_ecdhe_psk", st.tuples(blob(max_size=20), POINT)),
    ("encode_client_key_exchange_ecdhe", st.tuples(POINT)),
    ("encode_certificate", st.tuples(st.lists(lengths(0, max_size=30), max_size=3))),
    ("encode_raw_public_key_certificate", st.tuples(lengths(0))),
    (
        "encode_certificate_request",
        st.tuples(
            mostly(blob(min_size=1, max_size=4), st.sampled_from([b"", bytes(256)])),
            mostly(st.lists(U16, min_size=1, max_size=5), st.just([])),
            st.lists(blob(max_size=12), max_size=3),
        ),
    ),
    ("encode_certificate_verify", st.tuples(U16, OPAQUE16)),
    ("encode_server_hello_done", st.tuples()),
]


@st.composite
def encoded(draw: st.DrawFn) -> tuple[str, tuple[Any, ...]]:
    name, args = draw(st.sampled_from(ENCODERS))
    return name, (draw(SEQ), *draw(args))


@SETTINGS
@given(encoded(), st.data())
def test_messages_agree(call: tuple[str, tuple[Any, ...]], data: st.DataObject) -> None:
    name, args = call
    message = same(lambda m: getattr(m, name)(*args))
    if message is None:
        return
    same(lambda m: m.parse_handshake_header(message))
    body = message[12:]
    for candidate in (body, data.draw(mutated(body)), data.draw(mutated(body))):
        for decoder in DECODERS:
            same(lambda m, d=decoder, b=candidate: getattr(m, d)(b))


@SETTINGS
@given(blob(max_size=80))
def test_garbage_agrees(body: bytes) -> None:
    for decoder in [*DECODERS, "decode_client_hello", "decode_server_hello", "client_hello_cookie"]:
        same(lambda m, d=decoder: getattr(m, d)(body))


@settings(max_examples=100, deadline=None)
@given(RANDOM32, RANDOM, U16, POINT)
def test_signed_params_agree(client: bytes, server: bytes, group: Any, public: bytes) -> None:
    same(lambda m: m.ecdhe_signed_params(client, server, group, public))
    same(lambda m: m.ecdhe_signed_params(server, client, group, public))


# ---------------------------------------------------------- header


@st.composite
def fragment(draw: st.DrawFn) -> bytes:
    length = draw(st.sampled_from([0, 1, 5, 40, 0xFFFFFF]))
    offset = draw(st.integers(0, min(length, 50)))
    flen = draw(st.integers(0, min(length - offset, 30)))
    if draw(st.integers(0, 9)) == 0:
        flen = draw(st.integers(0, 0xFFFFFF))  # inconsistent or truncated
    header = (
        bytes([draw(st.integers(0, 255))])
        + length.to_bytes(3, "big")
        + draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + flen.to_bytes(3, "big")
    )
    return header + bytes(min(flen, 30))


@SETTINGS
@given(st.lists(fragment(), max_size=4), blob(max_size=14), st.data())
def test_fragments_agree(pieces: list[bytes], tail: bytes, data: st.DataObject) -> None:
    payload = b"".join(pieces)
    for candidate in (payload, payload + tail, data.draw(mutated(payload))):
        same(lambda m, p=candidate: m.parse_handshake_fragments(p))
        same(lambda m, p=candidate: m.parse_handshake_header(p))


@SETTINGS
@given(
    st.one_of(st.integers(0, 255), st.sampled_from([-1, 256, True])),
    SEQ,
    blob(max_size=40),
)
def test_encode_handshake_agrees(msg_type: Any, seq: Any, body: bytes) -> None:
    message = same(lambda m: m.encode_handshake(msg_type, seq, body))
    if message is not None:
        assert same(lambda m: m.parse_handshake_fragments(message))[0][5] == message
