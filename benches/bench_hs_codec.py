"""Handshake message codecs: the Rust ``_core`` calls, their pure-Python twin,
and the calls ``connection.py`` and ``cookie_gate.py`` made before they used
the codecs (``dtlsfast.handshake`` codecs, ``find_extension`` and the extension
decoders), side by side on messages captured from real peers.

``impl`` is ``rust`` (new API on ``_core``), ``python`` (the same API on
``dtlsfast.pure``) or ``before`` (that earlier code path). Groups:

- ``parse-client-hello-<peer>``: a record's fragments and the ClientHello
  with the extensions the server reads (the connection's step);
- ``gate-client-hello``: the cookie gate's step, fragments and cookie input;
- ``parse-client-flight``: the client's second flight as the server parses
  it (ClientKeyExchange record, then the Finished record once opened, its
  body then checked by the transcript: ``bench_handshake_engine.py``);
- ``encode-server-flight``: HelloVerifyRequest, ServerHello with its
  extensions, ServerKeyExchange and ServerHelloDone (the server's Finished
  is made by the transcript: ``bench_handshake_engine.py``);
- ``handshake-psk-codecs``: all of the above that one full PSK handshake
  costs the server (two hellos at the gate, one in the connection, the
  client's flight, the server's messages). ``extra_info["us_per_handshake"]``
  is the figure; ``python benches/report.py`` prints the ratios.

Run: ``python -m pytest benches/bench_hs_codec.py --benchmark-only``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "core"))

from hs_vectors import VECTORS

from dtlsfast import _core, pure
from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.cert_types import decode_certificate_types
from dtlsfast.handshake.constants import DTLS_1_0, DTLS_1_2, ExtensionType, HandshakeType
from dtlsfast.handshake.messages import (
    ClientHello,
    ClientKeyExchangePsk,
    Finished,
    HelloVerifyRequest,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangePsk,
    encode_handshake,
    find_extension,
    parse_handshake_header,
    split_handshake_fragments,
)

IMPLS = ["rust", "python", "before"]
PEERS = {
    "openssl": "OPENSSL_CLIENT_HELLO_COOKIE",
    "libcoap-openssl": "COAP_CLIENT_OPENSSL_CLIENT_HELLO",
    "gnutls": "GNUTLS_CLIENT_HELLO",
    "mbedtls": "MBEDTLS_CLIENT_HELLO",
}
MODULES: dict[str, ModuleType] = {"rust": _core, "python": pure}

FIRST_HELLO = VECTORS["OPENSSL_CLIENT_HELLO"]
SECOND_HELLO = VECTORS["OPENSSL_CLIENT_HELLO_COOKIE"]
KEY_EXCHANGE = VECTORS["OPENSSL_CLIENT_KEY_EXCHANGE_PSK"]
FINISHED = encode_handshake(HandshakeType.FINISHED, 3, bytes(range(12)))
COOKIE = bytes(32)
SERVER_RANDOM = bytes(range(32))


# ------------------------------------------------------ the calls before the codecs


def before_gate(payload: bytes) -> tuple[bytes, bytes]:
    """cookie_gate.CookieGate.check and _check_fragment."""
    (piece,) = split_handshake_fragments(payload)
    parse_handshake_header(piece)
    hello = ClientHello.decode(piece[12:])
    return hello.cookie, hello.cookie_input()


def before_client_hello(payload: bytes) -> Any:
    """DtlsConnection._handle_handshake_record and _server_on_client_hello
    (the reading half)."""
    (piece,) = split_handshake_fragments(payload)
    parse_handshake_header(piece)
    message = piece
    hello = ClientHello.decode(message[12:])
    parse_handshake_header(message)
    find = find_extension
    x = hello.extensions
    groups = find(x, ExtensionType.SUPPORTED_GROUPS)
    _ = None if groups is None else ext.decode_supported_groups(groups)
    schemes = find(x, ExtensionType.SIGNATURE_ALGORITHMS)
    _ = None if schemes is None else ext.decode_signature_algorithms(schemes)
    for kind in (ExtensionType.SERVER_CERTIFICATE_TYPE, ExtensionType.CLIENT_CERTIFICATE_TYPE):
        types = find(x, kind)
        _ = None if types is None else decode_certificate_types(types)
    reneg = find(x, ExtensionType.RENEGOTIATION_INFO)
    _ = reneg is not None and ext.decode_renegotiation_info(reneg)
    _ = find(x, ExtensionType.EXTENDED_MASTER_SECRET) is not None
    limit = find(x, ExtensionType.RECORD_SIZE_LIMIT)
    _ = limit is not None and ext.decode_record_size_limit(limit)
    _ = find(x, ExtensionType.EC_POINT_FORMATS) is not None
    cid = find(x, ExtensionType.CONNECTION_ID)
    _ = cid is not None and ext.decode_connection_id(cid)
    return hello


def before_client_flight(key_exchange: bytes, finished: bytes) -> tuple[bytes, bytes]:
    (piece,) = split_handshake_fragments(key_exchange)
    parse_handshake_header(piece)
    identity = ClientKeyExchangePsk.decode(piece[12:]).identity
    (piece,) = split_handshake_fragments(finished)
    parse_handshake_header(piece)
    verify_data = Finished.decode(piece[12:]).verify_data
    parse_handshake_header(piece)
    return identity, verify_data


def before_server_flight() -> list[bytes]:
    hvr = HelloVerifyRequest(server_version=DTLS_1_0, cookie=COOKIE).encode()
    out = [encode_handshake(HandshakeType.HELLO_VERIFY_REQUEST, 0, hvr)]
    extensions = [
        (ExtensionType.RENEGOTIATION_INFO, ext.encode_renegotiation_info()),
        (ExtensionType.EXTENDED_MASTER_SECRET, b""),
        (ExtensionType.RECORD_SIZE_LIMIT, ext.encode_record_size_limit(16384)),
    ]
    hello = ServerHello(DTLS_1_2, SERVER_RANDOM, b"", 0xC0A8, 0, extensions).encode()
    out.append(encode_handshake(HandshakeType.SERVER_HELLO, 1, hello))
    hint = ServerKeyExchangePsk(b"CoAP").encode()
    out.append(encode_handshake(HandshakeType.SERVER_KEY_EXCHANGE, 2, hint))
    out.append(encode_handshake(HandshakeType.SERVER_HELLO_DONE, 3, ServerHelloDone().encode()))
    return out


# ------------------------------------------------------- the new API


def new_gate(m: ModuleType, payload: bytes) -> tuple[bytes, bytes]:
    ((*_, piece),) = m.parse_handshake_fragments(payload)
    cookie, cookie_input = m.client_hello_cookie(piece[12:])
    return cookie, cookie_input


def new_client_hello(m: ModuleType, payload: bytes) -> Any:
    ((*_, piece),) = m.parse_handshake_fragments(payload)
    hello = m.decode_client_hello(piece[12:])
    # What the server reads: every attribute once.
    _ = (hello.supported_groups, hello.signature_algorithms, hello.server_certificate_types)
    _ = (hello.client_certificate_types, hello.renegotiation_info, hello.extended_master_secret)
    _ = (hello.record_size_limit, hello.ec_point_formats, hello.connection_id)
    return hello


def new_client_flight(m: ModuleType, key_exchange: bytes, finished: bytes) -> tuple[bytes, bytes]:
    ((*_, piece),) = m.parse_handshake_fragments(key_exchange)
    identity = m.decode_client_key_exchange_psk(piece[12:])
    ((*_, piece),) = m.parse_handshake_fragments(finished)
    return identity, piece[12:]  # what HandshakeTranscript.check_finished compares


def new_server_flight(m: ModuleType) -> list[bytes]:
    return [
        m.encode_hello_verify_request(0, DTLS_1_0, COOKIE),
        m.encode_server_hello(
            1,
            DTLS_1_2,
            SERVER_RANDOM,
            b"",
            0xC0A8,
            renegotiation_info=b"",
            extended_master_secret=True,
            record_size_limit=16384,
        ),
        m.encode_server_key_exchange_psk(2, b"CoAP"),
        m.encode_server_hello_done(3),
    ]


def step(impl: str, before: Callable[..., Any], new: Callable[..., Any]) -> Callable[..., Any]:
    if impl == "before":
        return before
    module = MODULES[impl]
    return lambda *args: new(module, *args)


# ----------------------------------------------------------- benches


@pytest.mark.parametrize("peer", list(PEERS))
@pytest.mark.parametrize("impl", IMPLS)
def test_parse_client_hello(benchmark: Any, impl: str, peer: str) -> None:
    payload = VECTORS[PEERS[peer]]
    benchmark.group = f"parse-client-hello-{peer}"
    hello = benchmark(step(impl, before_client_hello, new_client_hello), payload)
    reference = ClientHello.decode(payload[12:])
    benchmark.extra_info["correct"] = tuple(hello.cipher_suites) == tuple(reference.cipher_suites)


@pytest.mark.parametrize("impl", IMPLS)
def test_gate_client_hello(benchmark: Any, impl: str) -> None:
    benchmark.group = "gate-client-hello"
    cookie, cookie_input = benchmark(step(impl, before_gate, new_gate), SECOND_HELLO)
    reference = ClientHello.decode(SECOND_HELLO[12:])
    benchmark.extra_info["correct"] = (cookie, cookie_input) == (
        reference.cookie,
        reference.cookie_input(),
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_parse_client_flight(benchmark: Any, impl: str) -> None:
    benchmark.group = "parse-client-flight"
    parsed = benchmark(step(impl, before_client_flight, new_client_flight), KEY_EXCHANGE, FINISHED)
    benchmark.extra_info["correct"] = parsed == (b"CoAP", bytes(range(12)))


@pytest.mark.parametrize("impl", IMPLS)
def test_encode_server_flight(benchmark: Any, impl: str) -> None:
    benchmark.group = "encode-server-flight"
    flight = benchmark(step(impl, before_server_flight, new_server_flight))
    benchmark.extra_info["correct"] = flight == before_server_flight()


@pytest.mark.parametrize("impl", IMPLS)
def test_handshake_psk_codecs(benchmark: Any, impl: str) -> None:
    """The codec work of one full PSK handshake, server side."""
    gate = step(impl, before_gate, new_gate)
    client_hello = step(impl, before_client_hello, new_client_hello)
    client_flight = step(impl, before_client_flight, new_client_flight)
    server_flight = step(impl, before_server_flight, new_server_flight)

    def handshake() -> list[bytes]:
        gate(FIRST_HELLO)
        gate(SECOND_HELLO)
        client_hello(SECOND_HELLO)
        client_flight(KEY_EXCHANGE, FINISHED)
        return server_flight()  # type: ignore[no-any-return]

    benchmark.group = "handshake-psk-codecs"
    flight = benchmark(handshake)
    benchmark.extra_info["correct"] = flight == before_server_flight()
    benchmark.extra_info["us_per_handshake"] = round(benchmark.stats.stats.mean * 1e6, 2)
