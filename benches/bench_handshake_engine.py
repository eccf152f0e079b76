"""Micro-benchmarks of the handshake's crypto work, per full PSK handshake
(TLS_PSK_WITH_AES_128_CCM_8 with extended master secret, as the server does
it): Rust ``_core`` against its pure-Python twin, and as ``before`` the
Python code of the handshake modules that the server ran before it used the
engines (for the gate, ``server``: the server's CookieGate around the Rust
HelloGate, its counters and throttle included).

- ``keys``: premaster secret, master secret + key block, and the server's
  two record ciphers built from it;
- ``gate``: the first ClientHello (answered with a HelloVerifyRequest) and
  the second one with its cookie (accepted);
- ``transcript``: the server's messages, the session hash, the client's
  Finished checked and the server's made (``before``: digests, verify_data,
  the Finished codec and a compare, as the connection did it);
- ``flight``: flight 4 (ServerHello, ServerKeyExchange, ServerHelloDone) and
  flight 6 (ChangeCipherSpec, Finished) fragmented and sealed.

The µs per handshake saved is ``before`` (or ``python``) minus ``rust`` in
each group; ``extra_info["us_per_handshake"]`` holds each mean.
"""

from __future__ import annotations

import hmac
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "connection"))

from dtls_pair import client_config, server_config

from dtlsfast import _core, pure
from dtlsfast.connection import DtlsConnection
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.flight import FlightItem, pack_flight
from dtlsfast.handshake import prf
from dtlsfast.handshake.constants import ContentType, HandshakeType
from dtlsfast.handshake.cookies import CookieJar
from dtlsfast.handshake.messages import Finished, encode_handshake
from dtlsfast.handshake.suites import TLS_PSK_WITH_AES_128_CCM_8 as SUITE
from dtlsfast.record_layer import RecordLayer

IMPLS: dict[str, ModuleType] = {"rust": _core, "python": pure}
PEER = ("192.0.2.7", 40000)
SUITE_NAME = SUITE.name


def _handshake_material() -> dict[str, Any]:
    """A real handshake's ClientHellos and the server's transcript."""
    client = DtlsConnection(client_config(ciphers=[SUITE_NAME]), peer="server")
    client.connect(0.0)
    [first] = client.datagrams_to_send(0.0)
    jar = CookieJar(secret_lifetime=1e9, now=0.0)
    verdict, reply = _core.HelloGate(*jar.secrets).check(first, PEER)
    assert verdict == "hello_verify_sent" and reply is not None
    client.receive_datagram(reply, 0.0)
    [second] = client.datagrams_to_send(0.0)
    server = DtlsConnection(server_config(ciphers=[SUITE_NAME]), peer=PEER)
    server.receive_datagram(second, 0.0)
    to_client = server.datagrams_to_send(0.0)
    while to_client:
        for d in to_client:
            client.receive_datagram(d, 0.0)
        to_server = client.datagrams_to_send(0.0)
        for d in to_server:
            server.receive_datagram(d, 0.0)
        to_client = server.datagrams_to_send(0.0)
    assert server.established and server.extended_master_secret
    return {
        "jar": jar,
        "hellos": (first, second),
        "messages": server._transcript.messages,
        "master": server._master,
    }


MATERIAL = _handshake_material()


def _record(benchmark: Any, group: str) -> None:
    benchmark.group = group


def _finish(benchmark: Any, correct: bool) -> None:
    benchmark.extra_info["correct"] = correct
    benchmark.extra_info["us_per_handshake"] = benchmark.stats.stats.mean * 1e6


# ------------------------------------------------------------------ keys

PSK = b"esp32c3_key"
CLIENT_RANDOM, SERVER_RANDOM = bytes(range(32)), bytes(range(32, 64))
SESSION_HASH = bytes([1]) * 32


def keys_before() -> tuple[bytes, tuple[bytes, bytes], tuple[bytes, bytes]]:
    """What connection.py did before derive_keys: prf.py's functions, then
    two Rust RecordCiphers (the server's: it reads with the client's key)."""
    premaster = prf.psk_premaster_secret(PSK)
    master = prf.extended_master_secret(SUITE.prf_hash, premaster, SESSION_HASH)
    keys = prf.key_block(SUITE, master, CLIENT_RANDOM, SERVER_RANDOM)
    read = _core.RecordCipher(SUITE.aead, keys.client_write_key, keys.client_write_iv)
    write = _core.RecordCipher(SUITE.aead, keys.server_write_key, keys.server_write_iv)
    return master, read.key_material(), write.key_material()


def keys_one_call(m: ModuleType) -> tuple[bytes, tuple[bytes, bytes], tuple[bytes, bytes]]:
    master, read, write = m.derive_keys(
        SUITE.prf_hash, SUITE.aead, PSK, None, CLIENT_RANDOM, SERVER_RANDOM, SESSION_HASH, False
    )
    return master, read.key_material(), write.key_material()


@pytest.mark.parametrize("impl", ["rust", "python", "before"])
def test_keys(benchmark: Any, impl: str) -> None:
    _record(benchmark, "keys-per-handshake")
    run = keys_before if impl == "before" else (lambda: keys_one_call(IMPLS[impl]))
    out = benchmark(run)
    _finish(benchmark, out == keys_before())


# ------------------------------------------------------------------ gate


@pytest.mark.parametrize("impl", ["rust", "python", "server"])
def test_gate(benchmark: Any, impl: str) -> None:
    """Both ClientHellos of a new peer through the gate."""
    _record(benchmark, "gate-per-handshake")
    jar: CookieJar = MATERIAL["jar"]
    first, second = MATERIAL["hellos"]
    if impl == "server":
        gate = CookieGate(_core, jar)

        def run() -> tuple[bool, bool]:
            return gate.check(first, PEER, 0.0)[1] is not None, gate.check(second, PEER, 0.0)[
                0
            ] == "accepted"
    else:
        hello_gate = IMPLS[impl].HelloGate(*jar.secrets)

        def run() -> tuple[bool, bool]:
            return hello_gate.check(first, PEER)[1] is not None, hello_gate.check(second, PEER)[
                0
            ] == "accepted"

    _finish(benchmark, benchmark(run) == (True, True))


# ------------------------------------------------------------ transcript


def transcript_work(transcript: Any) -> tuple[bool, bytes]:
    """The server's transcript: adds, the EMS session hash after
    ClientKeyExchange, the client's Finished checked and added, the
    server's Finished made and added."""
    messages, master = MATERIAL["messages"], MATERIAL["master"]
    for m in messages[:-2]:
        transcript.add(m)
    transcript.digest("sha256")
    ok = transcript.check_finished("sha256", master, b"client finished", messages[-2])
    seq = int.from_bytes(messages[-1][4:6], "big")
    return ok, bytes(transcript.add_finished("sha256", master, b"server finished", seq))


def transcript_before(transcript: Any) -> tuple[bool, bytes]:
    """The same as the connection did it before: digests, verify_data,
    the Finished codec and hmac.compare_digest, on the Rust transcript."""
    messages, master = MATERIAL["messages"], MATERIAL["master"]
    for m in messages[:-2]:
        transcript.add(m)
    transcript.digest("sha256")
    expected = prf.verify_data("sha256", master, b"client finished", transcript.digest("sha256"))
    ok = hmac.compare_digest(expected, Finished.decode(messages[-2][12:]).verify_data)
    transcript.add(messages[-2])
    verify_data = prf.verify_data("sha256", master, b"server finished", transcript.digest("sha256"))
    seq = int.from_bytes(messages[-1][4:6], "big")
    ours = encode_handshake(HandshakeType.FINISHED, seq, Finished(verify_data).encode())
    transcript.add(ours)
    return ok, ours


@pytest.mark.parametrize("impl", ["rust", "python", "before"])
def test_transcript(benchmark: Any, impl: str) -> None:
    _record(benchmark, "transcript-per-handshake")
    if impl == "before":
        out = benchmark(lambda: transcript_before(_core.HandshakeTranscript()))
    else:
        cls = IMPLS[impl].HandshakeTranscript
        out = benchmark(lambda: transcript_work(cls()))
    _finish(benchmark, out == (True, MATERIAL["messages"][-1]))


# ---------------------------------------------------------------- flight


def server_flights() -> tuple[list[FlightItem], list[FlightItem]]:
    messages = MATERIAL["messages"]
    hs = ContentType.HANDSHAKE
    first = [FlightItem(0, hs, m) for m in messages if m[0] in (2, 12, 14)]
    ccs = FlightItem(0, ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    second = [ccs, FlightItem(1, hs, messages[-1])]
    return first, second


def record_layer(backend: ModuleType) -> RecordLayer:
    layer = RecordLayer(backend)
    cipher = backend.RecordCipher
    layer.install_pending(
        cipher(SUITE.aead, bytes(16), bytes(4)), cipher(SUITE.aead, bytes(range(16)), bytes(4))
    )
    return layer


@pytest.mark.parametrize("impl", ["rust", "python", "before"])
def test_flight(benchmark: Any, impl: str) -> None:
    """``before`` is flight.pack_flight over RecordLayer.seal, Rust ciphers.
    Epoch 1 is installed but not yet active, as when flight 6 is built."""
    _record(benchmark, "flight-per-handshake")
    first, second = server_flights()
    layer = record_layer(_core if impl == "before" else IMPLS[impl])
    reference = record_layer(_core)

    def before(layer: RecordLayer) -> list[bytes]:
        return pack_flight(first, 1400, layer.overhead_for, layer.seal) + pack_flight(
            second, 1400, layer.overhead_for, layer.seal
        )

    def one_call(layer: RecordLayer) -> list[bytes]:
        return layer.pack_flight(first, 1400) + layer.pack_flight(second, 1400)

    run = before if impl == "before" else one_call
    expected = before(reference)
    correct = run(layer) == expected
    benchmark(run, layer)
    _finish(benchmark, correct)
    benchmark.extra_info["datagrams"] = len(expected)
