"""Protocol numbers of DTLS 1.2: content types, handshake types, alerts,
extensions, versions, named groups and signature schemes.

References: RFC 5246 §6.2.1 (content types), §7.2 (alerts), §7.4 (handshake
types); RFC 6347 §4.1 and §4.3.2 (DTLS versions, HelloVerifyRequest);
RFC 4279 §6 (unknown_psk_identity); RFC 6066 §3, §4 (server_name, extra
alerts); RFC 9146 (tls12_cid, connection_id); RFC 8422 §5.1 (groups);
RFC 8446 §4.2.3 (signature scheme code points); RFC 8449 (record_size_limit).

Names follow the Python convention (upper case). The enums whose members the
RFCs spell in lower case also accept the RFC spelling as an alias, so
``AlertDescription.decode_error is AlertDescription.DECODE_ERROR``.
"""

from __future__ import annotations

from enum import IntEnum

#: DTLS 1.0 on the wire (RFC 4347); also the record version of a first
#: ClientHello that wants to stay compatible (RFC 6347 §4.1).
DTLS_1_0 = 0xFEFF
#: DTLS 1.2 on the wire (RFC 6347 §4.1).
DTLS_1_2 = 0xFEFD

#: The body of a ChangeCipherSpec record (RFC 5246 §7.1).
CHANGE_CIPHER_SPEC_PAYLOAD = b"\x01"


class ContentType(IntEnum):
    """Record content types (RFC 5246 §6.2.1, RFC 9146 §3)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    TLS12_CID = 25


class HandshakeType(IntEnum):
    """Handshake message types (RFC 5246 §7.4, RFC 6347 §4.3.2, RFC 5077)."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20


class AlertLevel(IntEnum):
    """Alert levels (RFC 5246 §7.2)."""

    WARNING = 1
    FATAL = 2


class AlertDescription(IntEnum):
    """Alert descriptions: RFC 5246 §7.2 plus RFC 6066 §9, RFC 4279 §6,
    RFC 7507 §2 and RFC 7301 §3.2. Lower-case RFC spellings are aliases."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    DECRYPTION_FAILED_RESERVED = 21
    RECORD_OVERFLOW = 22
    DECOMPRESSION_FAILURE = 30
    HANDSHAKE_FAILURE = 40
    NO_CERTIFICATE_RESERVED = 41
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    EXPORT_RESTRICTION_RESERVED = 60
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    NO_RENEGOTIATION = 100
    UNSUPPORTED_EXTENSION = 110
    CERTIFICATE_UNOBTAINABLE = 111
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    BAD_CERTIFICATE_HASH_VALUE = 114
    UNKNOWN_PSK_IDENTITY = 115
    NO_APPLICATION_PROTOCOL = 120

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed_RESERVED = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate_RESERVED = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    export_restriction_RESERVED = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    no_application_protocol = 120


def alert_name(description: int) -> str:
    """The RFC spelling of an alert description (its number if unknown)."""
    try:
        return AlertDescription(description).name.lower()
    except ValueError:
        return str(description)


class ExtensionType(IntEnum):
    """Hello extension types (IANA "TLS ExtensionType Values"). Lower-case
    RFC spellings are aliases."""

    SERVER_NAME = 0
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    CLIENT_CERTIFICATE_TYPE = 19
    SERVER_CERTIFICATE_TYPE = 20
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    RECORD_SIZE_LIMIT = 28
    SESSION_TICKET = 35
    CONNECTION_ID = 54
    RENEGOTIATION_INFO = 0xFF01

    server_name = 0
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    client_certificate_type = 19
    server_certificate_type = 20
    encrypt_then_mac = 22
    extended_master_secret = 23
    record_size_limit = 28
    session_ticket = 35
    connection_id = 54
    renegotiation_info = 0xFF01


class NamedGroup(IntEnum):
    """Named groups for ECDHE (RFC 8422 §5.1.1). Upper-case aliases exist."""

    secp256r1 = 23
    secp384r1 = 24
    x25519 = 29

    SECP256R1 = 23
    SECP384R1 = 24
    X25519 = 29


class SignatureScheme(IntEnum):
    """Signature scheme code points, usable as TLS 1.2 SignatureAndHashAlgorithm
    pairs (RFC 8446 §4.2.3, RFC 8422 §5.1.3). Upper-case aliases exist."""

    rsa_pkcs1_sha256 = 0x0401
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    rsa_pss_rsae_sha256 = 0x0804
    ed25519 = 0x0807

    RSA_PKCS1_SHA256 = 0x0401
    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    RSA_PSS_RSAE_SHA256 = 0x0804
    ED25519 = 0x0807


#: ECPointFormat "uncompressed" (RFC 8422 §5.1.2).
EC_POINT_FORMAT_UNCOMPRESSED = 0

__all__ = [
    "CHANGE_CIPHER_SPEC_PAYLOAD",
    "DTLS_1_0",
    "DTLS_1_2",
    "EC_POINT_FORMAT_UNCOMPRESSED",
    "AlertDescription",
    "AlertLevel",
    "ContentType",
    "ExtensionType",
    "HandshakeType",
    "NamedGroup",
    "SignatureScheme",
    "alert_name",
]
