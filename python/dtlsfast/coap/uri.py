"""coap:// and coaps:// URIs to request options (RFC 7252 §6.4, §6.5).

Path segments and query items are percent-decoded into Uri-Path and Uri-Query
options. Uri-Host is sent only for a registered name, not for an IP literal,
and Uri-Port never, because the request goes to the URI's port (§6.4 step 6-7).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from dtlsfast.coap.errors import CoapRequestError
from dtlsfast.coap.message import OptionNumber

DEFAULT_PORTS = {"coap": 5683, "coaps": 5684}


@dataclass(frozen=True, slots=True)
class CoapUri:
    scheme: str
    host: str
    port: int
    path: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    options: list[tuple[int, bytes]] = field(default_factory=list, compare=False)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def parse_uri(uri: str) -> CoapUri:
    """Split a coap/coaps URI into origin and request options."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise CoapRequestError(f"unsupported URI scheme {parts.scheme!r} in {uri!r}")
    if parts.fragment:
        raise CoapRequestError(f"a CoAP URI has no fragment: {uri!r}")
    host = parts.hostname
    if not host:
        raise CoapRequestError(f"no host in {uri!r}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise CoapRequestError(f"bad port in {uri!r}: {exc}") from None
    options: list[tuple[int, bytes]] = []
    if not _is_ip(host):
        options.append((OptionNumber.URI_HOST, host.lower().encode()))
    path: list[str] = []
    raw_path = parts.path
    if raw_path not in ("", "/"):
        for segment in raw_path.lstrip("/").split("/"):
            path.append(unquote(segment))
            options.append((OptionNumber.URI_PATH, unquote(segment).encode()))
    query: list[str] = []
    if parts.query:
        for item in parts.query.split("&"):
            query.append(unquote(item))
            options.append((OptionNumber.URI_QUERY, unquote(item).encode()))
    return CoapUri(scheme, host, port, tuple(path), tuple(query), options)


__all__ = ["DEFAULT_PORTS", "CoapUri", "parse_uri"]
