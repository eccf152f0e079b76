"""Tests of the handshake message codecs (dtlsfast.handshake.messages):
round trips, strict decoding, fragments, alerts, and ClientHellos captured
from real OpenSSL and GnuTLS clients."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsfast.exceptions import DecodeError, IllegalParameterError, LocalProtocolError
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.constants import (
    DTLS_1_0,
    DTLS_1_2,
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from dtlsfast.handshake.messages import (
    CHANGE_CIPHER_SPEC,
    HANDSHAKE_HEADER,
    ClientHello,
    ClientKeyExchangePsk,
    Finished,
    HandshakeHeader,
    HelloRequest,
    HelloVerifyRequest,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangePsk,
    decode_alert,
    encode_alert,
    encode_handshake,
    find_extension,
    fragment_handshake,
    parse_handshake_header,
    split_handshake_fragments,
)

# First datagram of `openssl s_client -dtls1_2 -psk 657370333263335f6b6579
# -psk_identity CoAP -cipher PSK-AES128-CCM8` (OpenSSL 3.0.22), captured on
# loopback by a plain UDP socket: a 13-byte record header, then the ClientHello.
OPENSSL_CLIENT_HELLO = bytes.fromhex(
    "16feff00000000000000000074010000680000000000000068fefdd91e43076ddbe3d99f"
    "11b694c1f7e3d44981b60eac7233c18f745eae7f3c02d600000004c0a800ff0100003a00"
    "2300000016000000170000000d002a0028040305030603080708080809080a080b080408"
    "050806040105010601030303010302040205020602"
)
# First datagram of `gnutls-cli --udp --pskusername CoAP --pskkey
# 657370333263335f6b6579 --priority 'NORMAL:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8'`
# (GnuTLS 3.7.9), captured the same way.
GNUTLS_CLIENT_HELLO = bytes.fromhex(
    "16feff0000000000000000009e010000920000000000000092fefdfec0101049df703452"
    "160874c8d2fc3eba2596e4edc5dc5882c3a730e4b0cea700000002c0a801000066000500"
    "050100000000000a00160014001700180019001d001e01000101010201030104000b0002"
    "0100000d00220020040108090804040308070501080a0805050308080601080b08060603"
    "02010203001600000017000000230000ff01000100001c00024000"
)

RECORD_HEADER = 13


def _unwrap(datagram: bytes) -> tuple[HandshakeHeader, bytes]:
    assert datagram[0] == ContentType.HANDSHAKE
    assert int.from_bytes(datagram[1:3], "big") in (DTLS_1_0, DTLS_1_2)
    record_length = int.from_bytes(datagram[11:13], "big")
    payload = datagram[RECORD_HEADER:]
    assert len(payload) == record_length
    (fragment,) = split_handshake_fragments(payload)
    header = parse_handshake_header(fragment)
    return header, fragment[HANDSHAKE_HEADER:]


def test_openssl_client_hello() -> None:
    header, body = _unwrap(OPENSSL_CLIENT_HELLO)
    assert header == HandshakeHeader(HandshakeType.CLIENT_HELLO, len(body), 0, 0, len(body))
    hello = ClientHello.decode(body)
    assert hello.client_version == DTLS_1_2
    assert hello.session_id == b""
    assert hello.cookie == b""
    assert hello.cipher_suites == [0xC0A8, 0x00FF]  # + TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    assert hello.compression_methods == b"\x00"
    types = [t for t, _ in hello.extensions]
    assert types == [
        ExtensionType.SESSION_TICKET,
        ExtensionType.ENCRYPT_THEN_MAC,
        ExtensionType.EXTENDED_MASTER_SECRET,
        ExtensionType.SIGNATURE_ALGORITHMS,
    ]
    assert find_extension(hello.extensions, ExtensionType.EXTENDED_MASTER_SECRET) == b""
    sigs = find_extension(hello.extensions, ExtensionType.SIGNATURE_ALGORITHMS)
    assert sigs is not None
    assert 0x0403 in ext.decode_signature_algorithms(sigs)
    assert hello.encode() == body
    assert (
        encode_handshake(HandshakeType.CLIENT_HELLO, 0, hello.encode())
        == (OPENSSL_CLIENT_HELLO[RECORD_HEADER:])
    )


def test_gnutls_client_hello() -> None:
    header, body = _unwrap(GNUTLS_CLIENT_HELLO)
    assert header.msg_type == HandshakeType.CLIENT_HELLO
    hello = ClientHello.decode(body)
    assert hello.client_version == DTLS_1_2
    assert hello.cipher_suites == [0xC0A8]
    assert hello.encode() == body
    reneg = find_extension(hello.extensions, ExtensionType.RENEGOTIATION_INFO)
    assert reneg is not None and ext.decode_renegotiation_info(reneg) == b""
    limit = find_extension(hello.extensions, ExtensionType.RECORD_SIZE_LIMIT)
    assert limit is not None and ext.decode_record_size_limit(limit) == 16384
    groups = find_extension(hello.extensions, ExtensionType.SUPPORTED_GROUPS)
    assert groups is not None and 29 in ext.decode_supported_groups(groups)
    formats = find_extension(hello.extensions, ExtensionType.EC_POINT_FORMATS)
    assert formats is not None and ext.decode_ec_point_formats(formats) == [0]
    assert find_extension(hello.extensions, ExtensionType.SERVER_NAME) is None


def _client_hello(**overrides: Any) -> ClientHello:
    fields: dict[str, Any] = {
        "client_version": DTLS_1_2,
        "random": bytes(range(32)),
        "session_id": b"",
        "cookie": b"\x42" * 32,
        "cipher_suites": [0xC0A8, 0xC0A4],
        "compression_methods": b"\x00",
        "extensions": [(0xFF01, b"\x00"), (23, b""), (28, b"\x40\x00")],
    }
    fields.update(overrides)
    return ClientHello(**fields)


SAMPLES: list[Any] = [
    _client_hello(),
    _client_hello(extensions=[], cookie=b"", session_id=b"s" * 32),
    HelloVerifyRequest(DTLS_1_0, b"c" * 32),
    HelloVerifyRequest(DTLS_1_2, b""),
    ServerHello(DTLS_1_2, b"r" * 32, b"id", 0xC0A8, 0, [(0xFF01, b"\x00"), (23, b"")]),
    ServerHello(DTLS_1_2, b"r" * 32, b"", 0xC0A8, 0, []),
    ServerKeyExchangePsk(b"CoAP"),
    ServerKeyExchangePsk(b""),
    ServerHelloDone(),
    ClientKeyExchangePsk(b"CoAP"),
    Finished(b"v" * 12),
    HelloRequest(),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Any) -> None:
    body = msg.encode()
    assert type(msg).decode(body) == msg
    assert type(msg).decode(body).encode() == body


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_truncation_and_trailing_bytes(msg: Any) -> None:
    cls = type(msg)
    body = msg.encode()
    for n in range(len(body)):
        prefix = body[:n]
        try:
            decoded = cls.decode(prefix)
        except DecodeError:
            continue
        # Only legitimate shorter forms may decode: a hello without its
        # extensions block, a shorter Finished.
        assert decoded.encode() == prefix
        assert isinstance(decoded, ClientHello | ServerHello | Finished)
    if not isinstance(msg, Finished):
        with pytest.raises(DecodeError):
            cls.decode(body + b"\x00")


def test_client_hello_without_and_with_empty_extensions_block() -> None:
    hello = _client_hello(extensions=[])
    body = hello.encode()
    assert ClientHello.decode(body).extensions == []
    assert ClientHello.decode(body + b"\x00\x00").extensions == []
    with pytest.raises(DecodeError):
        ClientHello.decode(body + b"\x00")


def test_extensions_keep_order_and_reject_duplicates() -> None:
    exts = [(23, b""), (0, b"abc"), (0xFF01, b"\x00"), (9999, b"unknown")]
    hello = ClientHello.decode(_client_hello(extensions=exts).encode())
    assert hello.extensions == exts
    assert find_extension(hello.extensions, 0) == b"abc"
    assert find_extension(hello.extensions, 28) is None
    # RFC 5246 §7.4.1.4 forbids duplicates; the alert is illegal_parameter.
    dup = _client_hello(extensions=[(23, b""), (0, b""), (23, b"")]).encode()
    with pytest.raises(IllegalParameterError, match="twice") as info:
        ClientHello.decode(dup)
    assert info.value.alert == AlertDescription.ILLEGAL_PARAMETER
    server_dup = ServerHello(DTLS_1_2, b"r" * 32, b"", 1, 0, [(23, b""), (23, b"")]).encode()
    with pytest.raises(IllegalParameterError):
        ServerHello.decode(server_dup)


def test_extension_block_length_mismatch() -> None:
    body = _client_hello(extensions=[(23, b"")]).encode()
    # extensions block says 4 bytes; make the inner extension claim 1 byte of data
    bad = body[:-2] + b"\x00\x01"
    with pytest.raises(DecodeError):
        ClientHello.decode(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("session_id", b"s" * 33),
        ("cookie", b"c" * 256),
        ("cipher_suites", []),
        ("compression_methods", b""),
        ("random", b"r" * 31),
        ("client_version", 0x10000),
        ("cipher_suites", [0x10000]),
    ],
)
def test_client_hello_encode_refuses_out_of_range(field: str, value: object) -> None:
    with pytest.raises(LocalProtocolError):
        _client_hello(**{field: value}).encode()


def test_client_hello_decode_out_of_range() -> None:
    body = bytearray(_client_hello(cookie=b"", extensions=[]).encode())
    # session_id length byte sits after version (2) and random (32)
    bad = bytes(body[:34]) + b"\x21" + b"s" * 33 + bytes(body[35:])
    with pytest.raises(DecodeError, match="session_id"):
        ClientHello.decode(bad)
    odd = _client_hello(cipher_suites=[1], cookie=b"", extensions=[]).encode()
    odd_suites = odd[:36] + b"\x00\x03\x00\x01\x02" + odd[40:]
    with pytest.raises(DecodeError, match="odd"):
        ClientHello.decode(odd_suites)
    empty = odd[:36] + b"\x00\x00" + odd[40:]
    with pytest.raises(DecodeError):
        ClientHello.decode(empty)
    no_compression = odd[:40] + b"\x00"
    with pytest.raises(DecodeError):
        ClientHello.decode(no_compression)


def test_cookie_input_binds_fields_but_not_cookie_session_id_or_extensions() -> None:
    base = _client_hello()
    same = _client_hello(cookie=b"", extensions=[(0, b"x")], session_id=b"\x07" * 32)
    assert base.cookie_input() == same.cookie_input()
    for change in (
        {"client_version": DTLS_1_0},
        {"random": b"\x01" * 32},
        {"cipher_suites": [0xC0A8]},
        {"cipher_suites": [0xC0A4, 0xC0A8]},
        {"compression_methods": b"\x00\x01"},
    ):
        assert _client_hello(**change).cookie_input() != base.cookie_input(), change
    # Length prefixes keep field boundaries apart.
    a = _client_hello(cipher_suites=[0xC0A8, 0x0001], compression_methods=b"\x00")
    b = _client_hello(cipher_suites=[0xC0A8], compression_methods=b"\x00\x01\x00")
    assert a.cookie_input() != b.cookie_input()


def test_empty_messages_reject_body() -> None:
    with pytest.raises(DecodeError):
        ServerHelloDone.decode(b"\x00")
    with pytest.raises(DecodeError):
        HelloRequest.decode(b"x")
    with pytest.raises(DecodeError):
        Finished.decode(b"")
    assert ServerHelloDone.decode(b"") == ServerHelloDone()


def test_psk_messages_layout() -> None:
    assert ServerKeyExchangePsk(b"CoAP").encode() == b"\x00\x04CoAP"
    assert ClientKeyExchangePsk(b"CoAP").encode() == b"\x00\x04CoAP"
    with pytest.raises(DecodeError):
        ClientKeyExchangePsk.decode(b"\x00\x05CoAP")
    with pytest.raises(DecodeError):
        ServerKeyExchangePsk.decode(b"\x00")
    assert HelloVerifyRequest(DTLS_1_0, b"ab").encode() == b"\xfe\xff\x02ab"


# ------------------------------------------------------------ header / fragments


def test_encode_and_parse_header() -> None:
    message = encode_handshake(HandshakeType.FINISHED, 5, b"x" * 12)
    assert message[:HANDSHAKE_HEADER] == bytes.fromhex("1400000c000500000000000c")
    assert parse_handshake_header(message) == HandshakeHeader(20, 12, 5, 0, 12)
    with pytest.raises(DecodeError):
        parse_handshake_header(message[:11])
    with pytest.raises(DecodeError):  # offset + fragment_length > length
        parse_handshake_header(bytes.fromhex("1400000c000500000800000c"))
    with pytest.raises(LocalProtocolError):
        encode_handshake(1, 0x10000, b"")


def test_split_several_fragments_in_one_record() -> None:
    a = encode_handshake(2, 1, b"server hello")
    b = encode_handshake(12, 2, b"\x00\x04CoAP")
    c = encode_handshake(14, 3, b"")
    assert split_handshake_fragments(a + b + c) == [a, b, c]
    whole = a + b + c
    boundaries = {len(a), len(a + b), len(whole)}
    for end in range(1, len(whole)):
        if end in boundaries:
            assert b"".join(split_handshake_fragments(whole[:end])) == whole[:end]
        else:
            with pytest.raises(DecodeError):
                split_handshake_fragments(whole[:end])
    with pytest.raises(DecodeError):
        split_handshake_fragments(b"")


@pytest.mark.parametrize("size", [1, 3, 7, 100, 1000])
def test_fragment_handshake(size: int) -> None:
    body = bytes(range(256)) * 2
    message = encode_handshake(11, 7, body)
    fragments = fragment_handshake(message, size)
    assert len(fragments) == -(-len(body) // size)
    rebuilt = bytearray()
    for frag in fragments:
        header = parse_handshake_header(frag)
        assert (header.msg_type, header.length, header.message_seq) == (11, len(body), 7)
        assert header.fragment_offset == len(rebuilt)
        assert header.fragment_length == len(frag) - HANDSHAKE_HEADER <= size
        rebuilt += frag[HANDSHAKE_HEADER:]
    assert bytes(rebuilt) == body
    assert split_handshake_fragments(b"".join(fragments)) == fragments


def test_fragment_empty_message_and_misuse() -> None:
    message = encode_handshake(14, 3, b"")
    assert fragment_handshake(message, 10) == [message]
    with pytest.raises(LocalProtocolError):
        fragment_handshake(message, 0)
    with pytest.raises(LocalProtocolError):
        fragment_handshake(fragment_handshake(encode_handshake(1, 0, b"abcd"), 2)[1], 10)
    with pytest.raises(LocalProtocolError):
        fragment_handshake(encode_handshake(1, 0, b"abcd")[:-1], 10)


# -------------------------------------------------------------------- alerts


def test_alerts_and_change_cipher_spec() -> None:
    payload = encode_alert(AlertLevel.FATAL, AlertDescription.UNKNOWN_PSK_IDENTITY)
    assert payload == b"\x02\x73"
    assert decode_alert(payload) == (2, 115)
    assert decode_alert(b"\x01\x00") == (AlertLevel.WARNING, AlertDescription.close_notify)
    for bad in (b"", b"\x01", b"\x01\x00\x00"):
        with pytest.raises(DecodeError):
            decode_alert(bad)
    with pytest.raises(LocalProtocolError):
        encode_alert(256, 0)
    assert CHANGE_CIPHER_SPEC == b"\x01"
    assert int(AlertDescription.NO_RENEGOTIATION) == 100


# ------------------------------------------------------------------ fuzzing

DECODERS: list[Callable[[bytes], object]] = [
    ClientHello.decode,
    HelloVerifyRequest.decode,
    ServerHello.decode,
    ServerKeyExchangePsk.decode,
    ServerHelloDone.decode,
    ClientKeyExchangePsk.decode,
    Finished.decode,
    HelloRequest.decode,
    parse_handshake_header,
    split_handshake_fragments,
    decode_alert,
    ext.decode_renegotiation_info,
    ext.decode_extended_master_secret,
    ext.decode_supported_groups,
    ext.decode_ec_point_formats,
    ext.decode_signature_algorithms,
    ext.decode_record_size_limit,
    ext.decode_server_name,
    ext.decode_connection_id,
]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DecodeError):
            decode(data)


def _mutations(body: bytes) -> st.SearchStrategy[bytes]:
    """Valid bodies with one byte changed, cut or extended: close to valid."""
    return st.one_of(
        st.tuples(st.integers(0, max(len(body) - 1, 0)), st.integers(0, 255)).map(
            lambda p: body[: p[0]] + bytes([p[1]]) + body[p[0] + 1 :]
        ),
        st.integers(0, len(body)).map(lambda n: body[:n]),
        st.binary(max_size=8).map(lambda tail: body + tail),
    )


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        _mutations(OPENSSL_CLIENT_HELLO[RECORD_HEADER + HANDSHAKE_HEADER :]),
        _mutations(GNUTLS_CLIENT_HELLO[RECORD_HEADER + HANDSHAKE_HEADER :]),
        _mutations(SAMPLES[4].encode()),
        _mutations(GNUTLS_CLIENT_HELLO[RECORD_HEADER:]),
    )
)
def test_near_valid_bytes_raise_only_decode_error(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DecodeError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(
    version=st.integers(0, 0xFFFF),
    random=st.binary(min_size=32, max_size=32),
    session_id=st.binary(max_size=32),
    cookie=st.binary(max_size=255),
    suites=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40),
    compression=st.binary(min_size=1, max_size=4),
    extensions=st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=6),
)
def test_client_hello_round_trip_generated(
    version: int,
    random: bytes,
    session_id: bytes,
    cookie: bytes,
    suites: list[int],
    compression: bytes,
    extensions: dict[int, bytes],
) -> None:
    hello = ClientHello(
        version, random, session_id, cookie, suites, compression, list(extensions.items())
    )
    body = hello.encode()
    assert ClientHello.decode(body) == hello
    message = encode_handshake(1, 0, body)
    for frag_size in (1, 50):
        frags = fragment_handshake(message, frag_size)
        assert b"".join(f[HANDSHAKE_HEADER:] for f in frags) == body
