"""Full handshakes per second in memory, cookie exchange included: PSK,
ECDHE-PSK and ECDHE-ECDSA (certificate chain verified on every handshake).

Beside each handshake benchmark, the record-layer work that one handshake
does (cipher construction, sealing and opening its protected records) is
timed alone, so the share of record protection in a handshake is visible:
``extra_info["record_share"]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "connection"))

from dtls_pair import client_config, server_config
from pki import Pki

from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.handshake.cookies import CookieJar

IMPLS = {"rust": "rust", "python": "pure"}
SUITES = [
    "TLS_PSK_WITH_AES_128_CCM_8",
    "TLS_PSK_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
]


def run_handshake(client_cfg: Any, server_cfg: Any, gate: CookieGate) -> DtlsConnection:
    """One lossless handshake, datagrams passed straight across."""
    client = DtlsConnection(client_cfg, peer="server")
    client.connect(0.0)
    server: DtlsConnection | None = None
    peer = ("127.0.0.1", 40000)
    to_server = client.datagrams_to_send(0.0)
    while to_server:
        to_client: list[bytes] = []
        for datagram in to_server:
            if server is None:
                verdict, answer = gate.check(datagram, peer, 0.0)
                if answer is None:
                    continue
                if verdict != "accepted":
                    to_client.append(answer)
                    continue
                server = DtlsConnection(server_cfg, peer=peer)
                datagram = answer
            server.receive_datagram(datagram, 0.0)
        if server is not None:
            to_client.extend(server.datagrams_to_send(0.0))
        for datagram in to_client:
            client.receive_datagram(datagram, 0.0)
        to_server = client.datagrams_to_send(0.0)
    assert client.established and server is not None and server.established
    return client


def record_work(backend: Any, aead: str, key_len: int, iv_len: int) -> None:
    """What one handshake asks of the record core: four ciphers, and the two
    Finished records sealed and opened."""
    ciphers = [backend.RecordCipher(aead, bytes(key_len), bytes(iv_len)) for _ in range(4)]
    finished = bytes(24)
    for seal_with, open_with in ((ciphers[0], ciphers[1]), (ciphers[2], ciphers[3])):
        record = seal_with.seal(22, 0xFEFD, 1, 0, finished)
        opened = open_with.open(record)
        assert opened is None or opened == finished


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_full_handshake(benchmark: Any, impl: str, suite: str, tmp_path: Path) -> None:
    backend_name = IMPLS[impl]
    if "ECDSA" in suite:
        pki = Pki(tmp_path)
        creds = pki.issue("server.example", dns=("server.example",))
        client_cfg = DtlsConfiguration.client(
            cafile=pki.cafile, ciphers=[suite], server_name="server.example", backend=backend_name
        )
        server_cfg = DtlsConfiguration.server(
            certfile=creds.certfile, keyfile=creds.keyfile, ciphers=[suite], backend=backend_name
        )
    else:
        client_cfg = client_config(ciphers=[suite], backend=backend_name)
        server_cfg = server_config(ciphers=[suite], backend=backend_name)
    gate = CookieGate(load_backend(backend_name), CookieJar(now=0.0))
    benchmark.group = f"handshake-{suite}"
    client = benchmark(run_handshake, client_cfg, server_cfg, gate)
    assert client.cipher_suite is not None
    benchmark.extra_info["correct"] = client.established

    aead = client.cipher_suite.aead
    backend = load_backend(backend_name)
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        record_work(
            backend, aead, client.cipher_suite.key_length, client.cipher_suite.fixed_iv_length
        )
    per_handshake = (time.perf_counter() - start) / rounds
    benchmark.extra_info["record_seconds_per_handshake"] = per_handshake
    benchmark.extra_info["record_share"] = per_handshake / benchmark.stats.stats.mean
