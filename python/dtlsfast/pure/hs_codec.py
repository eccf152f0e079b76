"""The pure-Python twin of the Rust handshake codecs (``rust/hs_codec``):
one call per message, the same names, values and errors as ``_core``.

It runs the codecs of :mod:`dtlsfast.handshake` underneath, so there is one
Python definition of each message: RFC 6347 §4.2.2-§4.2.3 (handshake header
and fragments), §4.2.1 (ClientHello cookie, HelloVerifyRequest), RFC 5246
§7.4 (hellos, extensions, Certificate, CertificateRequest,
CertificateVerify, ServerHelloDone, Finished), RFC 4279 §2, RFC 5489 §2 and
RFC 8422 §5.4, §5.7 (key exchanges). Decoders raise DecodeError, or its
subclass IllegalParameterError where the alert is illegal_parameter; both
carry the alert as ``alert``. Encoders raise LocalProtocolError for a value
the wire cannot carry, and return the whole message, header included.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dtlsfast.exceptions import LocalProtocolError
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.cert_types import (
    decode_certificate_type,
    decode_certificate_types,
    encode_certificate_type,
)
from dtlsfast.handshake.certificates import (
    CertificateMessage,
    CertificateRequest,
    CertificateVerify,
    ServerKeyExchangeEcdhe,
    decode_raw_public_key_certificate,
)
from dtlsfast.handshake.certificates import (
    encode_raw_public_key_certificate as _raw_public_key_body,
)
from dtlsfast.handshake.constants import ExtensionType, HandshakeType
from dtlsfast.handshake.ecdhe import (
    ClientKeyExchangeEcdhe,
    ClientKeyExchangeEcdhePsk,
    ServerKeyExchangeEcdhePsk,
)
from dtlsfast.handshake.messages import (
    ClientHello,
    ClientKeyExchangePsk,
    Extension,
    HelloVerifyRequest,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangePsk,
    split_handshake_fragments,
)
from dtlsfast.handshake.messages import encode_handshake as _message
from dtlsfast.handshake.messages import parse_handshake_header as _header


def _field(value: object, name: str, maximum: int) -> int:
    """An integer field to encode, checked as the Rust bindings check it."""
    if isinstance(value, bool):
        raise LocalProtocolError(f"{name} {value!r} does not fit (0..={maximum})")
    number = operator.index(value)  # type: ignore[arg-type]
    if not 0 <= number <= maximum:
        raise LocalProtocolError(f"{name} {number!r} does not fit (0..={maximum})")
    return int(number)


def _u16(value: object, name: str) -> int:
    return _field(value, name, 0xFFFF)


def _raw(extensions: Iterable[tuple[object, bytes]]) -> list[Extension]:
    return [(_u16(t, "extension type"), data) for t, data in extensions]


# ------------------------------------------------------------ header


def parse_handshake_header(data: bytes) -> tuple[int, int, int, int, int]:
    """``(msg_type, length, message_seq, fragment_offset, fragment_length)``
    of the 12-byte header at the start of ``data`` (RFC 6347 §4.2.2)."""
    return tuple(_header(data))  # type: ignore[return-value]


def parse_handshake_fragments(payload: bytes) -> list[tuple[int, int, int, int, int, bytes]]:
    """The handshake fragments of a record's payload (RFC 6347 §4.2.3):
    the five header fields and the fragment's bytes (header and body)."""
    return [(*_header(piece), piece) for piece in split_handshake_fragments(payload)]


def encode_handshake(msg_type: int, message_seq: int, body: bytes) -> bytes:
    """A whole, unfragmented handshake message: header then ``body``."""
    return _message(_field(msg_type, "msg_type", 0xFF), _u16(message_seq, "message_seq"), body)


# ------------------------------------------------------------ hellos


@dataclass(frozen=True, slots=True)
class ParsedClientHello:
    """A decoded ClientHello: its fields, and the extensions a server reads
    (None when absent). Other extensions are in ``other_extensions``."""

    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    supported_groups: tuple[int, ...] | None
    ec_point_formats: bytes | None
    signature_algorithms: tuple[int, ...] | None
    renegotiation_info: bytes | None
    extended_master_secret: bool
    record_size_limit: int | None
    connection_id: bytes | None
    client_certificate_types: bytes | None
    server_certificate_types: bytes | None
    session_ticket: bytes | None
    server_name: bool
    other_extensions: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class ParsedServerHello:
    """A decoded ServerHello and the extensions a client reads. Extensions
    a server must not send land in ``other_extensions``, for the caller to
    refuse."""

    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    renegotiation_info: bytes | None
    extended_master_secret: bool
    record_size_limit: int | None
    connection_id: bytes | None
    ec_point_formats: bytes | None
    server_certificate_type: int | None
    client_certificate_type: int | None
    session_ticket: bytes | None
    server_name: bool
    other_extensions: tuple[tuple[int, bytes], ...]


def _empty_extension(data: bytes) -> bool:
    """extended_master_secret is present, and empty (RFC 7627 §5.1)."""
    ext.decode_extended_master_secret(data)
    return True


_COMMON = {
    ExtensionType.EC_POINT_FORMATS: (
        "ec_point_formats",
        lambda d: bytes(ext.decode_ec_point_formats(d)),
    ),
    ExtensionType.RENEGOTIATION_INFO: ("renegotiation_info", ext.decode_renegotiation_info),
    ExtensionType.EXTENDED_MASTER_SECRET: ("extended_master_secret", _empty_extension),
    ExtensionType.RECORD_SIZE_LIMIT: ("record_size_limit", ext.decode_record_size_limit),
    ExtensionType.CONNECTION_ID: ("connection_id", ext.decode_connection_id),
    ExtensionType.SESSION_TICKET: ("session_ticket", bytes),
    ExtensionType.SERVER_NAME: ("server_name", lambda d: True),
}
_CLIENT_HELLO = {
    **_COMMON,
    ExtensionType.SUPPORTED_GROUPS: (
        "supported_groups",
        lambda d: tuple(ext.decode_supported_groups(d)),
    ),
    ExtensionType.SIGNATURE_ALGORITHMS: (
        "signature_algorithms",
        lambda d: tuple(ext.decode_signature_algorithms(d)),
    ),
    ExtensionType.CLIENT_CERTIFICATE_TYPE: (
        "client_certificate_types",
        lambda d: bytes(decode_certificate_types(d)),
    ),
    ExtensionType.SERVER_CERTIFICATE_TYPE: (
        "server_certificate_types",
        lambda d: bytes(decode_certificate_types(d)),
    ),
}
_SERVER_HELLO = {
    **_COMMON,
    ExtensionType.CLIENT_CERTIFICATE_TYPE: ("client_certificate_type", decode_certificate_type),
    ExtensionType.SERVER_CERTIFICATE_TYPE: ("server_certificate_type", decode_certificate_type),
}
_ABSENT = {"extended_master_secret": False, "server_name": False}


def _decode_extensions(
    extensions: list[Extension], table: dict[ExtensionType, tuple[str, Any]]
) -> dict[str, Any]:
    """The known extensions decoded, in wire order (the first malformed one
    raises), the rest in ``other_extensions``; the block's structure and its
    duplicates were checked when the hello was decoded."""
    fields: dict[str, Any] = {name: _ABSENT.get(name) for name, _ in table.values()}
    others: list[Extension] = []
    for ext_type, data in extensions:
        known = table.get(ext_type)  # type: ignore[call-overload]
        if known is None:
            others.append((ext_type, data))
        else:
            fields[known[0]] = known[1](data)
    fields["other_extensions"] = tuple(others)
    return fields


def decode_client_hello(body: bytes) -> ParsedClientHello:
    """Decode a ClientHello body (RFC 5246 §7.4.1.2, RFC 6347 §4.2.1)."""
    hello = ClientHello.decode(body)
    return ParsedClientHello(
        hello.client_version,
        hello.random,
        hello.session_id,
        hello.cookie,
        tuple(hello.cipher_suites),
        hello.compression_methods,
        **_decode_extensions(hello.extensions, _CLIENT_HELLO),
    )


def client_hello_cookie(body: bytes) -> tuple[bytes, bytes]:
    """``(cookie, cookie_input)`` of a ClientHello body, checked exactly as
    :func:`decode_client_hello` checks it: what the cookie gate needs."""
    hello = ClientHello.decode(body)
    _decode_extensions(hello.extensions, _CLIENT_HELLO)
    return hello.cookie, hello.cookie_input()


def decode_server_hello(body: bytes) -> ParsedServerHello:
    """Decode a ServerHello body (RFC 5246 §7.4.1.3)."""
    hello = ServerHello.decode(body)
    return ParsedServerHello(
        hello.server_version,
        hello.random,
        hello.session_id,
        hello.cipher_suite,
        hello.compression_method,
        **_decode_extensions(hello.extensions, _SERVER_HELLO),
    )


def decode_hello_verify_request(body: bytes) -> tuple[int, bytes]:
    """``(server_version, cookie)`` of a HelloVerifyRequest body (RFC 6347 §4.2.1)."""
    hvr = HelloVerifyRequest.decode(body)
    return hvr.server_version, hvr.cookie


def encode_client_hello(
    message_seq: int,
    client_version: int,
    random: bytes,
    session_id: bytes,
    cookie: bytes,
    cipher_suites: Iterable[int],
    compression_methods: bytes,
    extensions: Iterable[tuple[int, bytes]],
) -> bytes:
    """A whole ClientHello; ``extensions`` are ``(type, data)`` pairs sent as given."""
    hello = ClientHello(
        client_version=_u16(client_version, "client_version"),
        random=random,
        session_id=session_id,
        cookie=cookie,
        cipher_suites=[_u16(code, "cipher suite") for code in cipher_suites],
        compression_methods=compression_methods,
        extensions=_raw(extensions),
    )
    return _message(HandshakeType.CLIENT_HELLO, _u16(message_seq, "message_seq"), hello.encode())


def encode_server_hello(
    message_seq: int,
    server_version: int,
    random: bytes,
    session_id: bytes,
    cipher_suite: int,
    *,
    renegotiation_info: bytes | None = None,
    extended_master_secret: bool = False,
    record_size_limit: int | None = None,
    ec_point_formats: bytes | None = None,
    server_certificate_type: int | None = None,
    client_certificate_type: int | None = None,
    connection_id: bytes | None = None,
    session_ticket: bool = False,
    extensions: Iterable[tuple[int, bytes]] | None = None,
) -> bytes:
    """A whole ServerHello with its extensions, in one call: the typed ones
    in this order, each when given, then ``extensions`` as given."""
    seq = _u16(message_seq, "message_seq")
    t = ExtensionType
    out: list[Extension] = []
    if renegotiation_info is not None:
        out.append((t.RENEGOTIATION_INFO, ext.encode_renegotiation_info(renegotiation_info)))
    if extended_master_secret:
        out.append((t.EXTENDED_MASTER_SECRET, ext.encode_extended_master_secret()))
    if record_size_limit is not None:
        out.append((t.RECORD_SIZE_LIMIT, ext.encode_record_size_limit(record_size_limit)))
    if ec_point_formats is not None:
        out.append((t.EC_POINT_FORMATS, ext.encode_ec_point_formats(list(ec_point_formats))))
    if server_certificate_type is not None:
        out.append((t.SERVER_CERTIFICATE_TYPE, encode_certificate_type(server_certificate_type)))
    if client_certificate_type is not None:
        out.append((t.CLIENT_CERTIFICATE_TYPE, encode_certificate_type(client_certificate_type)))
    if connection_id is not None:
        out.append((t.CONNECTION_ID, ext.encode_connection_id(connection_id)))
    if session_ticket:
        out.append((t.SESSION_TICKET, b""))
    out += _raw(extensions or ())
    hello = ServerHello(
        server_version=_u16(server_version, "server_version"),
        random=random,
        session_id=session_id,
        cipher_suite=_u16(cipher_suite, "cipher_suite"),
        compression_method=0,
        extensions=out,
    )
    return _message(HandshakeType.SERVER_HELLO, seq, hello.encode())


def encode_hello_verify_request(message_seq: int, server_version: int, cookie: bytes) -> bytes:
    """A whole HelloVerifyRequest (RFC 6347 §4.2.1)."""
    body = HelloVerifyRequest(_u16(server_version, "server_version"), cookie).encode()
    return _message(HandshakeType.HELLO_VERIFY_REQUEST, _u16(message_seq, "message_seq"), body)


# ------------------------------------------------------ key exchange


def decode_server_key_exchange_psk(body: bytes) -> bytes:
    """The psk_identity_hint of a PSK ServerKeyExchange body (RFC 4279 §2)."""
    return ServerKeyExchangePsk.decode(body).identity_hint


def decode_server_key_exchange_ecdhe_psk(body: bytes) -> tuple[bytes, int, bytes]:
    """``(identity_hint, group, public)`` of an ECDHE_PSK ServerKeyExchange (RFC 5489 §2)."""
    m = ServerKeyExchangeEcdhePsk.decode(body)
    return m.identity_hint, m.group, m.public


def decode_server_key_exchange_ecdhe(body: bytes) -> tuple[int, bytes, int, bytes]:
    """``(group, public, scheme, signature)`` of an ECDHE_ECDSA ServerKeyExchange
    (RFC 8422 §5.4)."""
    m = ServerKeyExchangeEcdhe.decode(body)
    return m.group, m.public, m.scheme, m.signature


def decode_client_key_exchange_psk(body: bytes) -> bytes:
    """The psk_identity of a PSK ClientKeyExchange body (RFC 4279 §2)."""
    return ClientKeyExchangePsk.decode(body).identity


def decode_client_key_exchange_ecdhe_psk(body: bytes) -> tuple[bytes, bytes]:
    """``(identity, public)`` of an ECDHE_PSK ClientKeyExchange (RFC 5489 §2)."""
    m = ClientKeyExchangeEcdhePsk.decode(body)
    return m.identity, m.public


def decode_client_key_exchange_ecdhe(body: bytes) -> bytes:
    """The client's ECPoint of an ECDHE_ECDSA ClientKeyExchange (RFC 8422 §5.7)."""
    return ClientKeyExchangeEcdhe.decode(body).public


def _key_exchange(msg_type: int, message_seq: int, body: Any) -> bytes:
    seq = _u16(message_seq, "message_seq")
    return _message(msg_type, seq, body.encode())


def encode_server_key_exchange_psk(message_seq: int, identity_hint: bytes) -> bytes:
    return _key_exchange(
        HandshakeType.SERVER_KEY_EXCHANGE, message_seq, ServerKeyExchangePsk(identity_hint)
    )


def encode_server_key_exchange_ecdhe_psk(
    message_seq: int, identity_hint: bytes, group: int, public: bytes
) -> bytes:
    body = ServerKeyExchangeEcdhePsk(identity_hint, _u16(group, "group"), public)
    return _key_exchange(HandshakeType.SERVER_KEY_EXCHANGE, message_seq, body)


def encode_server_key_exchange_ecdhe(
    message_seq: int, group: int, public: bytes, scheme: int, signature: bytes
) -> bytes:
    body = ServerKeyExchangeEcdhe(
        _u16(group, "group"), public, _u16(scheme, "signature algorithm"), signature
    )
    return _key_exchange(HandshakeType.SERVER_KEY_EXCHANGE, message_seq, body)


def ecdhe_signed_params(
    client_random: bytes, server_random: bytes, group: int, public: bytes
) -> bytes:
    """client_random + server_random + ServerECDHParams: what an ECDHE_ECDSA
    ServerKeyExchange signs (RFC 8422 §5.4)."""
    unsigned = ServerKeyExchangeEcdhe(_u16(group, "group"), public, 0, b"")
    return unsigned.signed_data(client_random, server_random)


def encode_client_key_exchange_psk(message_seq: int, identity: bytes) -> bytes:
    return _key_exchange(
        HandshakeType.CLIENT_KEY_EXCHANGE, message_seq, ClientKeyExchangePsk(identity)
    )


def encode_client_key_exchange_ecdhe_psk(message_seq: int, identity: bytes, public: bytes) -> bytes:
    body = ClientKeyExchangeEcdhePsk(identity, public)
    return _key_exchange(HandshakeType.CLIENT_KEY_EXCHANGE, message_seq, body)


def encode_client_key_exchange_ecdhe(message_seq: int, public: bytes) -> bytes:
    return _key_exchange(
        HandshakeType.CLIENT_KEY_EXCHANGE, message_seq, ClientKeyExchangeEcdhe(public)
    )


# ------------------------------------------------------ certificates


def decode_certificate(body: bytes) -> tuple[bytes, ...]:
    """The DER certificates of a Certificate body, leaf first (RFC 5246 §7.4.2)."""
    return tuple(CertificateMessage.decode(body).chain)


def decode_certificate_request(body: bytes) -> tuple[bytes, tuple[int, ...], tuple[bytes, ...]]:
    """``(certificate_types, signature_algorithms, authorities)`` of a
    CertificateRequest body (RFC 5246 §7.4.4)."""
    m = CertificateRequest.decode(body)
    return m.certificate_types, tuple(m.signature_algorithms), tuple(m.authorities)


def decode_certificate_verify(body: bytes) -> tuple[int, bytes]:
    """``(scheme, signature)`` of a CertificateVerify body (RFC 5246 §7.4.8)."""
    m = CertificateVerify.decode(body)
    return m.scheme, m.signature


def decode_server_hello_done(body: bytes) -> None:
    """Check a ServerHelloDone body is empty (RFC 5246 §7.4.5)."""
    ServerHelloDone.decode(body)


def encode_certificate(message_seq: int, chain: Sequence[bytes]) -> bytes:
    return _key_exchange(HandshakeType.CERTIFICATE, message_seq, CertificateMessage(list(chain)))


def encode_raw_public_key_certificate(message_seq: int, spki: bytes) -> bytes:
    seq = _u16(message_seq, "message_seq")
    return _message(HandshakeType.CERTIFICATE, seq, _raw_public_key_body(bytes(spki)))


def encode_certificate_request(
    message_seq: int,
    certificate_types: bytes,
    signature_algorithms: Iterable[int],
    authorities: Sequence[bytes],
) -> bytes:
    body = CertificateRequest(
        bytes(certificate_types),
        [_u16(s, "signature algorithm") for s in signature_algorithms],
        list(authorities),
    )
    return _key_exchange(HandshakeType.CERTIFICATE_REQUEST, message_seq, body)


def encode_certificate_verify(message_seq: int, scheme: int, signature: bytes) -> bytes:
    body = CertificateVerify(_u16(scheme, "signature algorithm"), signature)
    return _key_exchange(HandshakeType.CERTIFICATE_VERIFY, message_seq, body)


def encode_server_hello_done(message_seq: int) -> bytes:
    return _key_exchange(HandshakeType.SERVER_HELLO_DONE, message_seq, ServerHelloDone())


__all__ = [
    "ParsedClientHello",
    "ParsedServerHello",
    "client_hello_cookie",
    "decode_certificate",
    "decode_certificate_request",
    "decode_certificate_verify",
    "decode_client_hello",
    "decode_client_key_exchange_ecdhe",
    "decode_client_key_exchange_ecdhe_psk",
    "decode_client_key_exchange_psk",
    "decode_hello_verify_request",
    "decode_raw_public_key_certificate",
    "decode_server_hello",
    "decode_server_hello_done",
    "decode_server_key_exchange_ecdhe",
    "decode_server_key_exchange_ecdhe_psk",
    "decode_server_key_exchange_psk",
    "ecdhe_signed_params",
    "encode_certificate",
    "encode_certificate_request",
    "encode_certificate_verify",
    "encode_client_hello",
    "encode_client_key_exchange_ecdhe",
    "encode_client_key_exchange_ecdhe_psk",
    "encode_client_key_exchange_psk",
    "encode_handshake",
    "encode_hello_verify_request",
    "encode_raw_public_key_certificate",
    "encode_server_hello",
    "encode_server_hello_done",
    "encode_server_key_exchange_ecdhe",
    "encode_server_key_exchange_ecdhe_psk",
    "encode_server_key_exchange_psk",
    "parse_handshake_fragments",
    "parse_handshake_header",
]
