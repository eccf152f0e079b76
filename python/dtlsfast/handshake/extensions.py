"""Encoders and decoders of the extension_data of the hello extensions
dtlsfast sends or reads. Decoders raise
:class:`~dtlsfast.exceptions.DecodeError` on anything malformed and nothing
else; encoders raise :class:`~dtlsfast.exceptions.LocalProtocolError` for
values that cannot be sent.

References: RFC 5746 §3.2 (renegotiation_info), RFC 7627 §5.1
(extended_master_secret, empty), RFC 8422 §5.1.1 and §5.1.2
(supported_groups, ec_point_formats), RFC 5246 §7.4.1.4.1
(signature_algorithms), RFC 8449 §4 (record_size_limit), RFC 6066 §3
(server_name), RFC 9146 §3 (connection_id).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from dtlsfast.exceptions import DecodeError, IllegalParameterError, LocalProtocolError

#: Smallest record_size_limit an endpoint may send (RFC 8449 §4).
MIN_RECORD_SIZE_LIMIT = 64
#: Largest record_size_limit a TLS 1.2 / DTLS 1.2 endpoint sends: RFC 8449 §4
#: sets 2^14 for TLS 1.2 and 2^14+1 for TLS 1.3; 2^14+1 is accepted here too.
MAX_RECORD_SIZE_LIMIT = 2**14 + 1

#: NameType host_name (RFC 6066 §3).
HOST_NAME = 0


def _vec(data: bytes, length_size: int, name: str, minimum: int = 0) -> bytes:
    maximum = (1 << (8 * length_size)) - 1
    if not minimum <= len(data) <= maximum:
        raise LocalProtocolError(f"{name} is {len(data)} bytes; it must be {minimum}..{maximum}")
    return len(data).to_bytes(length_size, "big") + data


def _read_vec(data: bytes, length_size: int, name: str, minimum: int = 0) -> bytes:
    """The whole of ``data`` must be one vector with a ``length_size`` prefix."""
    if len(data) < length_size:
        raise DecodeError(f"{name}: truncated length")
    n = int.from_bytes(data[:length_size], "big")
    if n != len(data) - length_size:
        raise DecodeError(f"{name}: length {n} but {len(data) - length_size} bytes follow")
    if n < minimum:
        raise DecodeError(f"{name}: length {n} is below the minimum {minimum}")
    return bytes(data[length_size:])


def _u16_list(values: Sequence[int], name: str) -> bytes:
    out = bytearray()
    for value in values:
        if isinstance(value, bool) or not 0 <= value <= 0xFFFF:
            raise LocalProtocolError(f"{name}: {value!r} is not a 16-bit value")
        out += value.to_bytes(2, "big")
    return bytes(out)


def _read_u16_list(data: bytes, name: str) -> list[int]:
    body = _read_vec(data, 2, name, minimum=2)
    if len(body) % 2:
        raise DecodeError(f"{name}: odd list length {len(body)}")
    return [int.from_bytes(body[i : i + 2], "big") for i in range(0, len(body), 2)]


# ------------------------------------------------------- renegotiation_info


def encode_renegotiation_info(verified: bytes = b"") -> bytes:
    """renegotiated_connection<0..255> (RFC 5746 §3.2); empty on an initial
    handshake, which is the only kind dtlsfast does."""
    return _vec(verified, 1, "renegotiated_connection")


def decode_renegotiation_info(data: bytes) -> bytes:
    """The renegotiated_connection bytes (empty on an initial handshake)."""
    return _read_vec(data, 1, "renegotiation_info")


# --------------------------------------------------- extended_master_secret


def encode_extended_master_secret() -> bytes:
    """extended_master_secret carries no data (RFC 7627 §5.1)."""
    return b""


def decode_extended_master_secret(data: bytes) -> None:
    """Check the extension is empty (RFC 7627 §5.1)."""
    if data:
        raise DecodeError(f"extended_master_secret must be empty, not {len(data)} bytes")


# ----------------------------------------------------------- supported_groups


def encode_supported_groups(groups: Sequence[int]) -> bytes:
    """named_group_list<2..2^16-1> (RFC 8422 §5.1.1)."""
    if not groups:
        raise LocalProtocolError("supported_groups needs at least one group")
    return _vec(_u16_list(groups, "supported_groups"), 2, "named_group_list")


def decode_supported_groups(data: bytes) -> list[int]:
    """The offered named groups, in the peer's order; unknown ones included."""
    return _read_u16_list(data, "supported_groups")


# ----------------------------------------------------------- ec_point_formats


def encode_ec_point_formats(formats: Sequence[int] | None = None) -> bytes:
    """ec_point_format_list<1..2^8-1> (RFC 8422 §5.1.2); default uncompressed."""
    if formats is None:
        formats = [0]
    if not formats or any(isinstance(f, bool) or not 0 <= f <= 0xFF for f in formats):
        raise LocalProtocolError(f"ec_point_formats must be 1..255 byte values, not {formats!r}")
    return _vec(bytes(formats), 1, "ec_point_format_list", minimum=1)


def decode_ec_point_formats(data: bytes) -> list[int]:
    """The offered point formats."""
    return list(_read_vec(data, 1, "ec_point_formats", minimum=1))


# ------------------------------------------------------- signature_algorithms


def encode_signature_algorithms(schemes: Sequence[int]) -> bytes:
    """supported_signature_algorithms<2..2^16-2> (RFC 5246 §7.4.1.4.1), as
    two-byte code points (hash, signature) = SignatureScheme values."""
    if not schemes:
        raise LocalProtocolError("signature_algorithms needs at least one scheme")
    return _vec(_u16_list(schemes, "signature_algorithms"), 2, "signature_algorithms")


def decode_signature_algorithms(data: bytes) -> list[int]:
    """The offered signature schemes, in the peer's order."""
    return _read_u16_list(data, "signature_algorithms")


# --------------------------------------------------------- record_size_limit


def encode_record_size_limit(limit: int) -> bytes:
    """RecordSizeLimit, a uint16 (RFC 8449 §4), checked to be 64..2^14+1."""
    if isinstance(limit, bool) or not MIN_RECORD_SIZE_LIMIT <= limit <= MAX_RECORD_SIZE_LIMIT:
        raise LocalProtocolError(
            f"record_size_limit {limit!r} is outside "
            f"{MIN_RECORD_SIZE_LIMIT}..{MAX_RECORD_SIZE_LIMIT}"
        )
    return limit.to_bytes(2, "big")


def decode_record_size_limit(data: bytes, *, strict_max: bool = False) -> int:
    """The peer's record size limit (RFC 8449 §4).

    A value below 64 is an IllegalParameterError (RFC 8449 §4 names
    illegal_parameter). A value above 2^14+1 is accepted unless
    ``strict_max``: RFC 8449 §4 says a server MUST NOT reject it (the client
    may know a larger-record extension), while a client MAY. Callers clamp the
    value to the protocol's maximum before using it.
    """
    if len(data) != 2:
        raise DecodeError(f"record_size_limit must be 2 bytes, not {len(data)}")
    limit = int.from_bytes(data, "big")
    if limit < MIN_RECORD_SIZE_LIMIT:
        raise IllegalParameterError(f"record_size_limit {limit} is below {MIN_RECORD_SIZE_LIMIT}")
    if strict_max and limit > MAX_RECORD_SIZE_LIMIT:
        raise DecodeError(f"record_size_limit {limit} is above {MAX_RECORD_SIZE_LIMIT}")
    return limit


# --------------------------------------------------------------- server_name


def encode_server_name(host: str) -> bytes:
    """A ServerNameList with one host_name (RFC 6066 §3).

    The name is sent in ASCII (IDNA A-labels for international names), without
    a trailing dot. RFC 6066 says IP literals are not sent here; that is the
    caller's choice (:func:`is_ip_literal` helps), not enforced.
    """
    name = host.rstrip(".")
    if not name:
        raise LocalProtocolError(f"server name {host!r} is empty")
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        try:
            raw = name.encode("idna")
        except UnicodeError as exc:
            raise LocalProtocolError(f"server name {host!r} is not a valid host name") from exc
    entry = bytes([HOST_NAME]) + _vec(raw, 2, "host_name", minimum=1)
    return _vec(entry, 2, "server_name_list")


def decode_server_name(data: bytes) -> str | None:
    """The host_name of a ServerNameList (RFC 6066 §3), or None if the list has
    none, or if ``data`` is empty (the form a server uses to acknowledge).

    Entries of unknown name types are skipped; two host_name entries are an
    error. IP literals are accepted (libcoap sends them). A non-ASCII name is
    an error.
    """
    if not data:
        return None
    body = _read_vec(data, 2, "server_name_list", minimum=1)
    host: str | None = None
    pos = 0
    while pos < len(body):
        if len(body) - pos < 3:
            raise DecodeError("server_name: truncated entry")
        name_type = body[pos]
        n = int.from_bytes(body[pos + 1 : pos + 3], "big")
        name = body[pos + 3 : pos + 3 + n]
        if len(name) != n:
            raise DecodeError("server_name: truncated name")
        pos += 3 + n
        if name_type != HOST_NAME:
            continue
        if host is not None:
            raise DecodeError("server_name: more than one host_name")
        if not name:
            raise DecodeError("server_name: empty host_name")
        try:
            host = name.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("server_name: host_name is not ASCII") from None
    return host


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address literal (RFC 6066 §3 says
    not to send those as server_name)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


# ------------------------------------------------------------- connection_id

#: ``opaque cid<0..2^8-1>`` (RFC 9146 §3).
MAX_CONNECTION_ID_LENGTH = 255


def encode_connection_id(cid: bytes) -> bytes:
    """ConnectionId cid<0..2^8-1> (RFC 9146 §3)."""
    return _vec(cid, 1, "connection_id")


def decode_connection_id(data: bytes) -> bytes:
    """The peer's connection ID (empty: it wants to send one but not receive)."""
    return _read_vec(data, 1, "connection_id")


__all__ = [
    "MAX_CONNECTION_ID_LENGTH",
    "MAX_RECORD_SIZE_LIMIT",
    "MIN_RECORD_SIZE_LIMIT",
    "decode_connection_id",
    "decode_ec_point_formats",
    "decode_extended_master_secret",
    "decode_record_size_limit",
    "decode_renegotiation_info",
    "decode_server_name",
    "decode_signature_algorithms",
    "decode_supported_groups",
    "encode_connection_id",
    "encode_ec_point_formats",
    "encode_extended_master_secret",
    "encode_record_size_limit",
    "encode_renegotiation_info",
    "encode_server_name",
    "encode_signature_algorithms",
    "encode_supported_groups",
    "is_ip_literal",
]
