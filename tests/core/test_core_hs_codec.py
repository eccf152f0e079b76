"""The handshake message codecs on both implementations (Rust ``_core`` and
``dtlsfast.pure``): messages captured from OpenSSL, GnuTLS, libcoap and
Mbed TLS decode to what their peers sent and re-encode to the same bytes;
malformed ones raise DecodeError or IllegalParameterError with the right
alert (RFC 5246 §7.2.2)."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest
from hs_vectors import CLIENT_HELLOS, VECTORS

from dtlsfast import _core, pure
from dtlsfast.exceptions import DecodeError, IllegalParameterError, LocalProtocolError
from dtlsfast.handshake.constants import AlertDescription, ExtensionType
from dtlsfast.handshake.messages import ClientHello


def body(name: str) -> bytes:
    return VECTORS[name][12:]


def hello_body(impl: ModuleType, extensions: list[tuple[int, bytes]]) -> bytes:
    message = impl.encode_client_hello(
        0, 0xFEFD, bytes(32), b"", b"", [0xC0A8], b"\x00", extensions
    )
    return message[12:]


@pytest.mark.parametrize("name", sorted(CLIENT_HELLOS))
def test_captured_client_hellos(impl: ModuleType, name: str) -> None:
    message = CLIENT_HELLOS[name]
    msg_type, length, seq, offset, fragment_length = impl.parse_handshake_header(message)
    assert (msg_type, offset, fragment_length) == (1, 0, length)
    hello = impl.decode_client_hello(message[12:])
    reference = ClientHello.decode(message[12:])
    assert hello.cipher_suites == tuple(reference.cipher_suites)
    assert hello.cookie == reference.cookie
    # The gate's view: the same checks, and the cookie input the jar binds.
    assert impl.client_hello_cookie(message[12:]) == (reference.cookie, reference.cookie_input())
    # Re-encoded with its extensions as they came: the captured bytes.
    again = impl.encode_client_hello(
        seq,
        hello.client_version,
        hello.random,
        hello.session_id,
        hello.cookie,
        hello.cipher_suites,
        hello.compression_methods,
        reference.extensions,
    )
    assert again == message


def test_libcoap_hello_as_the_server_reads_it(impl: ModuleType) -> None:
    hello = impl.decode_client_hello(body("COAP_CLIENT_OPENSSL_CLIENT_HELLO"))
    assert len(hello.cipher_suites) == 49 and 0xC0A8 in hello.cipher_suites
    assert hello.supported_groups == (29, 23, 30, 25, 24)
    assert hello.ec_point_formats == b"\x00\x01\x02"
    assert hello.signature_algorithms is not None and 0x0403 in hello.signature_algorithms
    assert hello.extended_master_secret is True
    assert hello.session_ticket == b""
    assert hello.server_name is True
    assert hello.renegotiation_info is None and hello.record_size_limit is None
    assert hello.other_extensions == ((ExtensionType.ENCRYPT_THEN_MAC, b""),)


def test_gnutls_raw_public_key_hello(impl: ModuleType) -> None:
    hello = impl.decode_client_hello(body("COAP_CLIENT_GNUTLS_RPK_CLIENT_HELLO"))
    assert hello.client_certificate_types == b"\x02"
    assert hello.server_certificate_types == b"\x00\x02"
    assert hello.record_size_limit == 16384
    assert hello.renegotiation_info == b""


def test_server_hellos(impl: ModuleType) -> None:
    hello = impl.decode_server_hello(body("GNUTLS_SERVER_HELLO"))
    assert (hello.server_version, hello.cipher_suite, hello.compression_method) == (
        0xFEFD,
        0xC0A8,
        0,
    )
    assert len(hello.session_id) == 32
    assert hello.record_size_limit == 16384 and hello.extended_master_secret
    assert hello.renegotiation_info == b"" and hello.session_ticket == b""
    assert hello.server_certificate_type is None and hello.other_extensions == ()
    # What dtlsfast's server sends, built in one call and read back.
    message = impl.encode_server_hello(
        1,
        0xFEFD,
        bytes(range(32)),
        b"",
        0xC0AE,
        renegotiation_info=b"",
        extended_master_secret=True,
        record_size_limit=16384,
        ec_point_formats=b"\x00",
        server_certificate_type=2,
        connection_id=b"\x07",
    )
    assert impl.parse_handshake_header(message) == (2, len(message) - 12, 1, 0, len(message) - 12)
    hello = impl.decode_server_hello(message[12:])
    assert (hello.cipher_suite, hello.server_certificate_type, hello.client_certificate_type) == (
        0xC0AE,
        2,
        None,
    )
    assert hello.connection_id == b"\x07" and hello.ec_point_formats == b"\x00"


@pytest.mark.parametrize(
    ("name", "decode", "expected"),
    [
        ("OPENSSL_HELLO_VERIFY_REQUEST", "decode_hello_verify_request", 0xFEFF),
        ("OPENSSL_SERVER_KEY_EXCHANGE_PSK", "decode_server_key_exchange_psk", b"CoAP"),
        ("OPENSSL_CLIENT_KEY_EXCHANGE_PSK", "decode_client_key_exchange_psk", b"CoAP"),
        ("OPENSSL_SERVER_KEY_EXCHANGE_ECDHE_PSK", "decode_server_key_exchange_ecdhe_psk", b"CoAP"),
        ("OPENSSL_CLIENT_KEY_EXCHANGE_ECDHE_PSK", "decode_client_key_exchange_ecdhe_psk", b"CoAP"),
        ("OPENSSL_SERVER_KEY_EXCHANGE_ECDHE", "decode_server_key_exchange_ecdhe", 29),
        ("OPENSSL_CERTIFICATE_VERIFY", "decode_certificate_verify", 0x0403),
        ("OPENSSL_CERTIFICATE_REQUEST", "decode_certificate_request", b"\x01\x02\x40"),
    ],
)
def test_captured_messages_re_encode(
    impl: ModuleType, name: str, decode: str, expected: object
) -> None:
    message = VECTORS[name]
    seq = impl.parse_handshake_header(message)[2]
    decoded = getattr(impl, decode)(message[12:])
    fields = decoded if isinstance(decoded, tuple) else (decoded,)
    assert fields[0] == expected
    encoder = getattr(impl, decode.replace("decode_", "encode_"))
    assert encoder(seq, *fields) == message


def test_certificate_messages(impl: ModuleType) -> None:
    chain = impl.decode_certificate(body("OPENSSL_SERVER_CERTIFICATE"))
    assert len(chain) == 2 and all(der.startswith(b"\x30\x82") for der in chain)
    assert impl.encode_certificate(2, chain) == VECTORS["OPENSSL_SERVER_CERTIFICATE"]
    public = impl.decode_client_key_exchange_ecdhe(body("OPENSSL_CLIENT_KEY_EXCHANGE_ECDHE"))
    assert len(public) == 32
    assert (
        impl.encode_client_key_exchange_ecdhe(3, public)
        == VECTORS["OPENSSL_CLIENT_KEY_EXCHANGE_ECDHE"]
    )
    rpk = impl.encode_raw_public_key_certificate(2, b"spki")
    assert impl.decode_raw_public_key_certificate(rpk[12:]) == b"spki"
    assert impl.decode_server_hello_done(body("OPENSSL_SERVER_HELLO_DONE")) is None
    assert impl.encode_server_hello_done(3) == VECTORS["OPENSSL_SERVER_HELLO_DONE"]


def test_fragments_of_the_openssl_certificate(impl: ModuleType) -> None:
    pieces = [
        piece
        for i in range(5)
        for piece in impl.parse_handshake_fragments(
            VECTORS[f"OPENSSL_SERVER_CERTIFICATE_FRAGMENT_{i}"]
        )
    ]
    whole = VECTORS["OPENSSL_SERVER_CERTIFICATE"]
    assert [p[3] for p in pieces] == [0, 117, 320, 523, 726]
    assert b"".join(p[5][12:] for p in pieces) == whole[12:]
    assert all(p[:3] == (11, len(whole) - 12, 2) for p in pieces)
    # Several messages in one record (RFC 6347 §4.2.3).
    flight = (
        VECTORS["OPENSSL_SERVER_HELLO_PSK"]
        + VECTORS["OPENSSL_SERVER_KEY_EXCHANGE_PSK"]
        + VECTORS["OPENSSL_SERVER_HELLO_DONE"]
    )
    assert [p[5] for p in impl.parse_handshake_fragments(flight)] == [
        VECTORS["OPENSSL_SERVER_HELLO_PSK"],
        VECTORS["OPENSSL_SERVER_KEY_EXCHANGE_PSK"],
        VECTORS["OPENSSL_SERVER_HELLO_DONE"],
    ]


@pytest.mark.parametrize(
    "extensions",
    [
        # RFC 5246 §7.4.1.4: no extension type twice.
        [(ExtensionType.EXTENDED_MASTER_SECRET, b""), (ExtensionType.EXTENDED_MASTER_SECRET, b"")],
        [(0x7777, b""), (0x7777, b"x")],
        # RFC 8449 §4: a record_size_limit below 64.
        [(ExtensionType.RECORD_SIZE_LIMIT, (63).to_bytes(2, "big"))],
        # The structure is judged before the content: the duplicate wins.
        [(ExtensionType.RECORD_SIZE_LIMIT, b"\x00"), (9, b""), (9, b"")],
    ],
)
def test_illegal_parameter(impl: ModuleType, extensions: list[tuple[int, bytes]]) -> None:
    data = hello_body(impl, extensions)
    with pytest.raises(IllegalParameterError) as info:
        impl.decode_client_hello(data)
    assert info.value.alert == AlertDescription.ILLEGAL_PARAMETER
    with pytest.raises(IllegalParameterError):
        impl.client_hello_cookie(data)


def test_not_named_curve_is_illegal_parameter(impl: ModuleType) -> None:
    # RFC 8422 §5.4: explicit_prime (1) is not accepted.
    with pytest.raises(IllegalParameterError):
        impl.decode_server_key_exchange_ecdhe_psk(bytes.fromhex("000001001d0101"))
    # With fewer than the four fixed bytes it is merely truncated.
    with pytest.raises(DecodeError) as info:
        impl.decode_server_key_exchange_ecdhe(bytes.fromhex("01001d"))
    assert type(info.value) is DecodeError
    assert info.value.alert == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize(
    "extensions",
    [
        [(ExtensionType.EXTENDED_MASTER_SECRET, b"\x00")],
        [(ExtensionType.SUPPORTED_GROUPS, b"\x00\x03\x00\x17\x00")],
        [(ExtensionType.RECORD_SIZE_LIMIT, b"\x40")],
        [(ExtensionType.CLIENT_CERTIFICATE_TYPE, b"\x00")],
        [
            (ExtensionType.EXTENDED_MASTER_SECRET, b"x"),
            (ExtensionType.RECORD_SIZE_LIMIT, b"\x00\x01"),
        ],
    ],
)
def test_malformed_extension_is_decode_error(
    impl: ModuleType, extensions: list[tuple[int, bytes]]
) -> None:
    with pytest.raises(DecodeError) as info:
        impl.decode_client_hello(hello_body(impl, extensions))
    assert type(info.value) is DecodeError


def test_truncated_hellos_are_decode_errors(impl: ModuleType) -> None:
    data = body("MBEDTLS_CLIENT_HELLO")
    for cut in range(0, len(data), 7):
        with pytest.raises(DecodeError):
            impl.decode_client_hello(data[:cut])


def test_encoding_errors_are_local(impl: ModuleType) -> None:
    with pytest.raises(LocalProtocolError):
        impl.encode_hello_verify_request(0, 0xFEFF, bytes(256))
    with pytest.raises(LocalProtocolError):
        impl.encode_server_hello(0, 0xFEFD, bytes(32), b"", 0xC0A8, record_size_limit=63)
    with pytest.raises(LocalProtocolError):
        impl.encode_handshake(256, 0, b"")
    with pytest.raises(LocalProtocolError):
        impl.encode_server_hello_done(True)
    with pytest.raises(LocalProtocolError):
        impl.encode_client_key_exchange_ecdhe_psk(0, b"CoAP", b"")
    with pytest.raises(TypeError):
        impl.encode_server_hello_done(1.0)


def test_the_twins_have_one_api() -> None:
    """Same names, same parameters (names, kinds, defaults), same attributes."""
    for name in pure.hs_codec.__all__:
        rust, python = getattr(_core, name), getattr(pure, name)
        if isinstance(python, type):
            fields = [f for f in python.__dataclass_fields__]
            assert [f for f in fields if hasattr(rust, f)] == fields, name
            continue
        ours = inspect.signature(rust).parameters
        theirs = inspect.signature(python).parameters
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ], name
