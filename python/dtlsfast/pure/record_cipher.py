"""AEAD record protection for one epoch and direction: the pure-Python twin
of the Rust ``RecordCipher``, on ``cryptography``'s AEAD classes.

RFC 6347 §4.1.2.1 with RFC 5246 §6.2.3.3: additional data is epoch,
sequence number, type, version and plaintext length. AES-GCM (RFC 5288) and
AES-CCM (RFC 6655) send an 8-byte explicit nonce (epoch and sequence number)
after a 4-byte implicit salt; ChaCha20-Poly1305 (RFC 7905) XORs the 12-byte IV
with the padded epoch and sequence number and sends no nonce. One AEAD object
is built per cipher, never per record.

With a connection ID (RFC 9146 §5) the record type is tls12_cid, the content
travels in a DTLSInnerPlaintext (content || real type || zero padding) and the
additional data is 8 bytes of 0xff || 25 || cid_length || 25 || version ||
epoch || sequence_number || cid || length of the DTLSInnerPlaintext.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import record_fields, uint
from dtlsfast.pure.records import (
    CID_CONTENT_TYPE,
    MAX_CID_LENGTH,
    MAX_FRAGMENT_LENGTH,
    RECORD_HEADER_LENGTH,
    cid_header_bytes,
    header_bytes,
    parse_records,
)

AeadObject = AESCCM | AESGCM | ChaCha20Poly1305

#: name -> (key length, iv length, tag length, explicit nonce length, factory)
_AEADS: dict[str, tuple[int, int, int, int, Callable[[bytes], AeadObject]]] = {
    "AES_128_CCM_8": (16, 4, 8, 8, lambda key: AESCCM(key, tag_length=8)),
    "AES_128_CCM": (16, 4, 16, 8, lambda key: AESCCM(key, tag_length=16)),
    "AES_128_GCM": (16, 4, 16, 8, AESGCM),
    "AES_256_GCM": (32, 4, 16, 8, AESGCM),
    "CHACHA20_POLY1305": (32, 12, 16, 0, ChaCha20Poly1305),
}
AEAD_NAMES: tuple[str, ...] = tuple(_AEADS)


def key_and_iv_lengths(aead: str) -> tuple[int, int]:
    """Bytes of the key and of the fixed IV that ``aead`` takes."""
    key_length, iv_length, *_ = _AEADS[aead]
    return key_length, iv_length


_EPOCH_SEQ = struct.Struct(">HHI")  # epoch(2) || sequence_number(6)
_TAIL = struct.Struct(">BHH")  # type(1) || version(2) || length(2)
#: RFC 9146 §5: seq_num_placeholder(8) || tls12_cid || cid_length || tls12_cid || version
_CID_AAD_HEAD = struct.Struct(">8sBBBH")
_SEQ_NUM_PLACEHOLDER = b"\xff" * 8


def cid_additional_data(version: int, epoch_seq: bytes, cid: bytes, inner_length: int) -> bytes:
    """The additional data of a tls12_cid record (RFC 9146 §5)."""
    return (
        _CID_AAD_HEAD.pack(
            _SEQ_NUM_PLACEHOLDER, CID_CONTENT_TYPE, len(cid), CID_CONTENT_TYPE, version
        )
        + epoch_seq
        + cid
        + inner_length.to_bytes(2, "big")
    )


class RecordCipher:
    """Seals and opens whole DTLS records for one epoch and direction."""

    __slots__ = ("_aead", "_cipher", "_explicit", "_iv", "_iv_int", "_key", "_name", "_tag")

    def __init__(self, aead: str, key: bytes, iv: bytes) -> None:
        spec = _AEADS.get(aead)
        if spec is None:
            raise ConfigurationError(f"unknown AEAD {aead!r}; expected one of {', '.join(_AEADS)}")
        key_length, iv_length, tag, explicit, factory = spec
        if len(key) != key_length:
            raise ConfigurationError(f"{aead} needs a {key_length}-byte key, got {len(key)} bytes")
        if len(iv) != iv_length:
            what = (
                "the fixed IV of RFC 7905"
                if explicit == 0
                else "the implicit salt of RFC 5288 / RFC 6655"
            )
            raise ConfigurationError(
                f"{aead} needs a {iv_length}-byte iv ({what}), got {len(iv)} bytes"
            )
        self._name = aead
        self._key = bytes(key)  # for key_material(): persisting a session
        self._cipher = factory(self._key)
        self._iv = bytes(iv)
        self._iv_int = int.from_bytes(self._iv, "big")
        self._tag = tag
        self._explicit = explicit
        self._aead = aead

    @property
    def aead(self) -> str:
        return self._name

    @property
    def overhead(self) -> int:
        return self._explicit + self._tag

    def key_material(self) -> tuple[bytes, bytes]:
        """``(key, iv)`` as the constructor took them; never log them."""
        return self._key, self._iv

    def __repr__(self) -> str:
        return f"<RecordCipher {self._name}>"

    def _nonce(self, epoch_seq: bytes) -> bytes:
        if self._explicit:
            return self._iv + epoch_seq
        # RFC 7905 §2: the padded epoch || sequence_number XOR the IV.
        return (self._iv_int ^ int.from_bytes(epoch_seq, "big")).to_bytes(12, "big")

    def seal(
        self,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        plaintext: bytes,
    ) -> bytes:
        ctype, ver, ep, seq = record_fields(content_type, version, epoch, sequence_number)
        length = len(plaintext) + self._explicit + self._tag
        if length > MAX_FRAGMENT_LENGTH:
            raise ConfigurationError(
                f"plaintext of {len(plaintext)} bytes does not fit one record: {self._name} "
                f"with {self.overhead} bytes of AEAD overhead is at most "
                f"{MAX_FRAGMENT_LENGTH - self.overhead} bytes"
            )
        epoch_seq = _EPOCH_SEQ.pack(ep, seq >> 32, seq & 0xFFFFFFFF)
        aad = epoch_seq + _TAIL.pack(ctype, ver, len(plaintext))
        header = header_bytes(ctype, ver, ep, seq, length)
        return self._protected(header, epoch_seq, plaintext, aad)

    def open(self, record: bytes) -> bytes | None:
        records = parse_records(record)
        if len(records) != 1 or RECORD_HEADER_LENGTH + len(records[0][4]) != len(record):
            return None
        return self._open(*records[0])

    def open_parts(
        self,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        fragment: bytes,
    ) -> bytes | None:
        fields = record_fields(content_type, version, epoch, sequence_number)
        return self._open(*fields, fragment)

    def _received_nonce(self, epoch_seq: bytes, fragment: bytes) -> tuple[bytes, memoryview]:
        """The nonce of a received fragment and the ciphertext after it. The
        explicit nonce (GCM, CCM) is taken from the wire, as other stacks do."""
        view = memoryview(fragment)
        if self._explicit:
            return self._iv + bytes(view[: self._explicit]), view[self._explicit :]
        return self._nonce(epoch_seq), view

    def _protected(self, header: bytes, epoch_seq: bytes, inner: bytes, aad: bytes) -> bytes:
        """The whole record: header, explicit nonce (GCM, CCM) and ciphertext."""
        sealed = self._cipher.encrypt(self._nonce(epoch_seq), inner, aad)
        if self._explicit:
            return header + epoch_seq + sealed
        return header + sealed

    def _open(
        self, ctype: int, version: int, epoch: int, seq: int, fragment: bytes
    ) -> bytes | None:
        plaintext_length = len(fragment) - self._explicit - self._tag
        if plaintext_length < 0:
            return None
        epoch_seq = _EPOCH_SEQ.pack(epoch, seq >> 32, seq & 0xFFFFFFFF)
        nonce, view = self._received_nonce(epoch_seq, fragment)
        aad = epoch_seq + _TAIL.pack(ctype, version, plaintext_length)
        try:
            return self._cipher.decrypt(nonce, view, aad)
        except InvalidTag:
            return None

    def seal_cid(
        self,
        content_type: int,
        version: int,
        epoch: int,
        sequence_number: int,
        cid: bytes,
        plaintext: bytes,
        padding: int = 0,
    ) -> bytes:
        """A whole tls12_cid record (RFC 9146 §4, §5) carrying ``cid``."""
        padding = uint(padding, "padding", 0xFFFF)
        ctype, ver, ep, seq = record_fields(content_type, version, epoch, sequence_number)
        if len(cid) > MAX_CID_LENGTH:
            raise ConfigurationError(
                f"a connection ID is at most {MAX_CID_LENGTH} bytes (RFC 9146 §3), got {len(cid)}"
            )
        inner = bytes(plaintext) + bytes([ctype]) + bytes(padding)
        length = len(inner) + self._explicit + self._tag
        if length > MAX_FRAGMENT_LENGTH:
            raise ConfigurationError(
                f"plaintext of {len(plaintext)} bytes with {padding} bytes of padding does not "
                f"fit one record: the DTLSInnerPlaintext adds 1 byte and {self._name} "
                f"{self.overhead} bytes of AEAD overhead, at most {MAX_FRAGMENT_LENGTH} in all"
            )
        epoch_seq = _EPOCH_SEQ.pack(ep, seq >> 32, seq & 0xFFFFFFFF)
        aad = cid_additional_data(ver, epoch_seq, bytes(cid), len(inner))
        header = cid_header_bytes(ver, ep, seq, bytes(cid), length)
        return self._protected(header, epoch_seq, inner, aad)

    def open_cid(
        self,
        version: int,
        epoch: int,
        sequence_number: int,
        cid: bytes,
        fragment: bytes,
    ) -> tuple[int, bytes] | None:
        """``(real_type, content)`` of a tls12_cid record's fragment, or None."""
        _, ver, ep, seq = record_fields(CID_CONTENT_TYPE, version, epoch, sequence_number)
        inner_length = len(fragment) - self._explicit - self._tag
        if inner_length < 0 or inner_length > MAX_FRAGMENT_LENGTH or len(cid) > MAX_CID_LENGTH:
            return None
        epoch_seq = _EPOCH_SEQ.pack(ep, seq >> 32, seq & 0xFFFFFFFF)
        nonce, view = self._received_nonce(epoch_seq, fragment)
        aad = cid_additional_data(ver, epoch_seq, bytes(cid), inner_length)
        try:
            inner = self._cipher.decrypt(nonce, view, aad)
        except InvalidTag:
            return None
        stripped = inner.rstrip(b"\x00")
        if not stripped:
            return None
        return stripped[-1], stripped[:-1]
