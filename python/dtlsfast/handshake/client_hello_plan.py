"""What a client's ClientHello carries that depends only on its configuration,
worked out once per :class:`~dtlsfast.config.DtlsConfiguration` rather than
per handshake.

RFC 5246 §7.4.1.2 (the hello), RFC 7627 (extended_master_secret), RFC 5746
(renegotiation_info), RFC 8422 §5.1 (supported_groups, ec_point_formats),
RFC 5246 §7.4.1.4.1 (signature_algorithms), RFC 7250 §4.1 (certificate
types), RFC 6066 §3 (server_name); RFC 5246 §7.4.1.4: every extension of a
ServerHello must answer one the client offered, which :meth:`ClientHelloPlan.unoffered`
checks. Only the connection ID (RFC 9146) and the session ticket or
session ID (RFC 5077, RFC 5246 §7.3) change from one connection to the next.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from dtlsfast.handshake import extensions as ext
from dtlsfast.handshake.cert_types import CertificateType, encode_certificate_types
from dtlsfast.handshake.constants import ExtensionType
from dtlsfast.handshake.signatures import OFFERED_SCHEMES

if TYPE_CHECKING:
    from dtlsfast.config import DtlsConfiguration

#: The extensions a ServerHello can carry that the client may not have
#: offered, each with the ParsedServerHello attribute that is not None when
#: it is present, in the order the check reports them (RFC 5246 §7.4.1.4).
#: renegotiation_info and extended_master_secret are always offered.
_OPTIONAL_ANSWERS: tuple[tuple[int, str], ...] = (
    (ExtensionType.EC_POINT_FORMATS, "ec_point_formats"),
    (ExtensionType.RECORD_SIZE_LIMIT, "record_size_limit"),
    (ExtensionType.CONNECTION_ID, "connection_id"),
    (ExtensionType.SESSION_TICKET, "session_ticket"),
    (ExtensionType.SERVER_CERTIFICATE_TYPE, "server_certificate_type"),
    (ExtensionType.CLIENT_CERTIFICATE_TYPE, "client_certificate_type"),
)


class _Unoffered:
    """The check of a ServerHello against one set of offered extensions:
    the type of the first extension present that was not offered, or None."""

    __slots__ = ("_get", "_offered", "_server_name", "_single", "_types")

    def __init__(self, offered: frozenset[int]) -> None:
        pairs = [(t, name) for t, name in _OPTIONAL_ANSWERS if t not in offered]
        self._offered = offered
        self._types = tuple(t for t, _ in pairs)
        # One C call reads them all (a single name gives the value, not a tuple).
        self._get = attrgetter(*(name for _, name in pairs)) if pairs else None
        self._single = len(pairs) == 1
        self._server_name = ExtensionType.SERVER_NAME not in offered

    def __call__(self, hello: Any) -> int | None:
        """Same answer as walking every extension in order: the unknown ones
        (``other_extensions``) first, then the known ones."""
        offered = self._offered
        for ext_type, _ in hello.other_extensions:
            if ext_type not in offered:
                return int(ext_type)
        if self._get is not None:
            values = self._get(hello)
            if self._single:
                values = (values,)
            if values.count(None) != len(values):
                for ext_type, value in zip(self._types, values, strict=True):
                    if value is not None:
                        return ext_type
        if self._server_name and hello.server_name:
            return int(ExtensionType.SERVER_NAME)
        return None


class ClientHelloPlan:
    """The parts of a client's hello fixed by its configuration (immutable:
    built by :func:`client_hello_plan`, never changed)."""

    __slots__ = ("_checks", "extensions", "offered_client_types", "suite_codes")

    def __init__(
        self,
        suite_codes: tuple[int, ...],
        extensions: tuple[tuple[int, bytes], ...],
        offered_client_types: tuple[int, ...] | None,
    ) -> None:
        self.suite_codes = suite_codes
        #: The extensions, in the order sent, up to (not including) the
        #: connection_id and session_ticket ones.
        self.extensions = extensions
        #: Our certificate types when we offer raw public keys (RFC 7250 §4.1).
        self.offered_client_types = offered_client_types
        self._checks: dict[Hashable, tuple[frozenset[int], _Unoffered]] = {}

    def offered(
        self, extensions: Sequence[tuple[int, bytes]], key: Hashable
    ) -> tuple[frozenset[int], _Unoffered]:
        """The types of a hello's ``extensions`` (these ones, then the
        per-connection ones that ``key`` tells apart) and the ServerHello
        check for them: a handful of combinations per configuration, each
        worked out once."""
        found = self._checks.get(key)
        if found is None:
            offered = frozenset(t for t, _ in extensions)
            found = (offered, _Unoffered(offered))
            if len(self._checks) < 16:  # bounded (there are at most four)
                self._checks[key] = found
        return found


def client_hello_plan(config: DtlsConfiguration) -> ClientHelloPlan:
    """Work out ``config``'s :class:`ClientHelloPlan` (see
    :attr:`DtlsConfiguration.client_hello_plan`, which caches it)."""
    suites = config.cipher_suites
    extensions: list[tuple[int, bytes]] = [
        (ExtensionType.EXTENDED_MASTER_SECRET, b""),
        (ExtensionType.RENEGOTIATION_INFO, ext.encode_renegotiation_info()),
    ]
    if any(suite.uses_ecdhe for suite in suites):
        extensions += [
            (ExtensionType.SUPPORTED_GROUPS, ext.encode_supported_groups(config.groups)),
            (ExtensionType.EC_POINT_FORMATS, ext.encode_ec_point_formats()),
        ]
    offered_client_types: tuple[int, ...] | None = None
    if any(suite.key_exchange == "ECDHE_ECDSA" for suite in suites):
        extensions.append(
            (ExtensionType.SIGNATURE_ALGORITHMS, ext.encode_signature_algorithms(OFFERED_SCHEMES))
        )
        # RFC 7250 §4.1: offer other types than X.509 only when we have them.
        peer_types = config.peer_certificate_types
        if peer_types != (CertificateType.X509,):
            extensions.append(
                (ExtensionType.SERVER_CERTIFICATE_TYPE, encode_certificate_types(peer_types))
            )
        own_types = config.own_certificate_types
        if CertificateType.RAW_PUBLIC_KEY in own_types:
            offered_client_types = own_types
            extensions.append(
                (ExtensionType.CLIENT_CERTIFICATE_TYPE, encode_certificate_types(own_types))
            )
    name = config.server_name
    if name and not ext.is_ip_literal(name):
        extensions.insert(0, (ExtensionType.SERVER_NAME, ext.encode_server_name(name)))
    return ClientHelloPlan(tuple(s.code for s in suites), tuple(extensions), offered_client_types)
