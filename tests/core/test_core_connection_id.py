"""tls12_cid records (RFC 9146 §4, §5) in both record cores: a known-answer
test built by hand from the RFC layout with ``cryptography``'s AEADs, record
parsing with the receiver's CID length, and the Rust core and its pure twin
agreeing byte for byte on generated inputs."""

from __future__ import annotations

from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core_differential import AEADS, same

from dtlsfast import _core, pure
from dtlsfast.exceptions import ConfigurationError

SETTINGS = settings(max_examples=250, deadline=None)


def rfc9146_aad(version: int, epoch: int, seq: int, cid: bytes, inner_length: int) -> bytes:
    """RFC 9146 §5, field by field."""
    return (
        b"\xff" * 8  # seq_num_placeholder
        + bytes([25])  # tls12_cid
        + bytes([len(cid)])  # cid_length
        + bytes([25])  # tls12_cid
        + version.to_bytes(2, "big")  # DTLSCiphertext.version
        + epoch.to_bytes(2, "big")
        + seq.to_bytes(6, "big")
        + cid
        + inner_length.to_bytes(2, "big")  # length_of_DTLSInnerPlaintext
    )


def test_known_answer_ccm8(impl: ModuleType) -> None:
    key, salt, cid = bytes(range(16)), b"\xa0\xa1\xa2\xa3", bytes.fromhex("0102030405060708")
    record = impl.RecordCipher("AES_128_CCM_8", key, salt).seal_cid(
        23, 0xFEFD, 1, 0x0A0B, cid, b"ping", 3
    )
    inner = b"ping" + b"\x17" + b"\x00" * 3
    explicit = (1).to_bytes(2, "big") + (0x0A0B).to_bytes(6, "big")
    sealed = AESCCM(key, tag_length=8).encrypt(
        salt + explicit, inner, rfc9146_aad(0xFEFD, 1, 0x0A0B, cid, len(inner))
    )
    length = len(explicit) + len(sealed)
    header = bytes.fromhex("19 fefd 0001 000000000a0b") + cid + length.to_bytes(2, "big")
    assert record == header + explicit + sealed


def test_known_answer_chacha20(impl: ModuleType) -> None:
    key, iv, cid = b"\x42" * 32, bytes(range(12)), b"\xee"
    record = impl.RecordCipher("CHACHA20_POLY1305", key, iv).seal_cid(22, 0xFEFD, 2, 5, cid, b"")
    nonce = bytes(
        a ^ b for a, b in zip(iv, bytes(4) + bytes.fromhex("0002000000000005"), strict=True)
    )
    sealed = ChaCha20Poly1305(key).encrypt(nonce, b"\x16", rfc9146_aad(0xFEFD, 2, 5, cid, 1))
    assert record == bytes.fromhex("19 fefd 0002 000000000005 ee 0011") + sealed
    parsed = impl.parse_records_cid(record, 1)
    assert parsed == [(25, 0xFEFD, 2, 5, cid, sealed)]
    cipher = impl.RecordCipher("CHACHA20_POLY1305", key, iv)
    assert cipher.open_cid(0xFEFD, 2, 5, cid, sealed) == (22, b"")
    assert cipher.open_cid(0xFEFD, 2, 5, b"\xef", sealed) is None
    # Without the CID header, as a plain record, it does not open.
    assert cipher.open_parts(25, 0xFEFD, 2, 5, sealed) is None


def test_parse_uses_the_receivers_cid_length(impl: ModuleType) -> None:
    plain = impl.encode_record(23, 0xFEFD, 1, 9, b"abc")
    cid_record = bytes.fromhex("19 fefd 0001 000000000007 c1c2 0002") + b"xy"
    records = impl.parse_records_cid(cid_record + plain, 2)
    assert records == [
        (25, 0xFEFD, 1, 7, b"\xc1\xc2", b"xy"),
        (23, 0xFEFD, 1, 9, b"", b"abc"),
    ]
    # With the wrong CID length the length field is read elsewhere.
    assert impl.parse_records_cid(cid_record + plain, 3) != records
    with pytest.raises(ConfigurationError):
        impl.parse_records_cid(cid_record, 256)
    with pytest.raises(ConfigurationError):
        impl.parse_records_cid(cid_record, -1)


def test_inner_plaintext_of_zeros_is_dropped(impl: ModuleType) -> None:
    cipher = impl.RecordCipher("AES_128_GCM", b"k" * 16, b"salt")
    record = cipher.seal_cid(0, 0xFEFD, 1, 1, b"c", b"", 5)
    assert cipher.open_cid(0xFEFD, 1, 1, b"c", record[14:]) is None


def test_length_and_range_errors(impl: ModuleType) -> None:
    cipher = impl.RecordCipher("AES_128_CCM_8", b"k" * 16, b"salt")
    with pytest.raises(ConfigurationError):
        cipher.seal_cid(23, 0xFEFD, 1, 1, b"x" * 256, b"")
    with pytest.raises(ConfigurationError):
        cipher.seal_cid(23, 0xFEFD, 1, 1, b"x", b"\x00" * (0xFFFF - 16))
    with pytest.raises(ConfigurationError):
        cipher.seal_cid(23, 0xFEFD, 1, 1, b"x", b"", -1)
    assert cipher.open_cid(0xFEFD, 1, 1, b"x" * 256, b"\x00" * 40) is None
    assert cipher.open_cid(0xFEFD, 1, 1, b"x", b"\x00" * 10) is None


@st.composite
def cid_records(draw: st.DrawFn) -> tuple[str, bytes, bytes, bytes, int, bytes]:
    aead = draw(st.sampled_from(list(AEADS)))
    key_len, iv_len = AEADS[aead]
    key = draw(st.binary(min_size=key_len, max_size=key_len))
    iv = draw(st.binary(min_size=iv_len, max_size=iv_len))
    cid = draw(st.binary(max_size=20))
    args = (
        draw(st.integers(0, 255)),
        draw(st.sampled_from([0xFEFD, 0xFEFF])),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 2**48 - 1)),
        cid,
        draw(st.binary(max_size=200)),
        draw(st.integers(0, 20)),
    )
    record = same(lambda m: m.RecordCipher(aead, key, iv).seal_cid(*args))
    return aead, key, iv, cid, len(cid), record


@SETTINGS
@given(cid_records(), st.data())
def test_seal_cid_and_open_cid_agree(
    case: tuple[str, bytes, bytes, bytes, int, bytes], data: st.DataObject
) -> None:
    aead, key, iv, cid, cid_length, record = case
    parsed = same(lambda m: m.parse_records_cid(record, cid_length))
    assert len(parsed) == 1
    _, version, epoch, seq, got_cid, fragment = parsed[0]
    assert got_cid == cid
    same(lambda m: m.RecordCipher(aead, key, iv).open_cid(version, epoch, seq, cid, fragment))
    bit = data.draw(st.integers(0, len(fragment) * 8 - 1))
    flipped = bytearray(fragment)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert (
        same(
            lambda m: m.RecordCipher(aead, key, iv).open_cid(
                version, epoch, seq, cid, bytes(flipped)
            )
        )
        is None
    )
    other_cid = data.draw(st.binary(max_size=20).filter(lambda c: c != cid))
    assert (
        same(
            lambda m: m.RecordCipher(aead, key, iv).open_cid(
                version, epoch, seq, other_cid, fragment
            )
        )
        is None
    )
    cut = data.draw(st.integers(0, len(record)))
    same(lambda m: m.parse_records_cid(record[:cut], cid_length))
    other_length = data.draw(st.integers(0, 40))
    same(lambda m: m.parse_records_cid(record, other_length))


@SETTINGS
@given(st.binary(max_size=300), st.integers(-1, 260))
def test_parse_records_cid_garbage(data: bytes, cid_length: int) -> None:
    same(lambda m: m.parse_records_cid(data, cid_length))


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([22, 23, 25]), st.binary(max_size=30)), max_size=5))
def test_cid_length_zero_parses_like_rfc_6347(records: list[tuple[int, bytes]]) -> None:
    # With a zero-length CID every record, type 25 included, has the plain
    # 13-byte header: parse_records_cid(d, 0) is parse_records(d) plus b"".
    datagram = b"".join(_core.encode_record(t, 0xFEFD, 1, i, f) for i, (t, f) in enumerate(records))
    for m in (_core, pure):
        with_cid = m.parse_records_cid(datagram, 0)
        assert [(*r[:4], r[5]) for r in with_cid] == m.parse_records(datagram)
        assert all(r[4] == b"" for r in with_cid)


@SETTINGS
@given(
    st.sampled_from(list(AEADS)),
    st.integers(-2, 260),
    st.integers(-1, 0x10001),
    st.integers(-1, 2**48 + 1),
    st.binary(max_size=300),
    st.integers(-1, 70000),
    st.integers(0, 70000),
)
def test_seal_cid_errors_agree(
    aead: str, ctype: int, epoch: int, seq: int, cid: bytes, padding: int, size: int
) -> None:
    key_len, iv_len = AEADS[aead]
    plaintext = bytes(size)
    same(
        lambda m: m.RecordCipher(aead, b"k" * key_len, b"i" * iv_len).seal_cid(
            ctype, 0xFEFD, epoch, seq, cid, plaintext, padding
        )
    )
    same(
        lambda m: m.RecordCipher(aead, b"k" * key_len, b"i" * iv_len).open_cid(
            0xFEFD, epoch, seq, cid, plaintext[:400]
        )
    )
