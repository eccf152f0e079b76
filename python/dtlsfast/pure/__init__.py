"""The pure-Python twin of ``dtlsfast._core``: same names, signatures and
behaviour, on ``cryptography``'s AEAD classes.

The handshake's pieces (message codecs, key schedule, cookie gate,
transcript, flight packing) are thin layers over the handshake modules'
own Python code.

It is the executable specification of the Rust record core: the differential
tests hold the two to identical bytes and decisions, and the benchmarks
measure one against the other. ``backend="pure"`` runs a whole endpoint on it.
"""

from __future__ import annotations

from dtlsfast.handshake.cookies import peer_bytes
from dtlsfast.pure import hs_codec
from dtlsfast.pure._args import MAX_SEQUENCE_NUMBER
from dtlsfast.pure.client_table import ClientTable
from dtlsfast.pure.flight import pack_flight
from dtlsfast.pure.hello_gate import HelloGate
from dtlsfast.pure.hs_codec import *  # noqa: F403  (its __all__, joined below)
from dtlsfast.pure.key_schedule import derive_keys, key_block
from dtlsfast.pure.reassembly import HANDSHAKE_HEADER_LENGTH, HandshakeReassembler
from dtlsfast.pure.reassembly_budget import ReassemblyBudget
from dtlsfast.pure.record_cipher import AEAD_NAMES, RecordCipher
from dtlsfast.pure.records import (
    CID_CONTENT_TYPE,
    MAX_CID_LENGTH,
    RECORD_HEADER_LENGTH,
    encode_record,
    parse_records,
    parse_records_cid,
    split_records,
)
from dtlsfast.pure.replay_window import ReplayWindow
from dtlsfast.pure.session_table import SessionTable
from dtlsfast.pure.transcript import HandshakeTranscript

__all__ = [
    "AEAD_NAMES",
    "CID_CONTENT_TYPE",
    "HANDSHAKE_HEADER_LENGTH",
    "MAX_CID_LENGTH",
    "MAX_SEQUENCE_NUMBER",
    "RECORD_HEADER_LENGTH",
    "ClientTable",
    "HandshakeReassembler",
    "HandshakeTranscript",
    "HelloGate",
    "ReassemblyBudget",
    "RecordCipher",
    "ReplayWindow",
    "SessionTable",
    "derive_keys",
    "encode_record",
    "key_block",
    "pack_flight",
    "parse_records",
    "parse_records_cid",
    "peer_bytes",
    "split_records",
]
__all__ += hs_codec.__all__
