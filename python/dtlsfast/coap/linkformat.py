"""CoRE Link Format for ``/.well-known/core`` (RFC 6690 §2, §4.1, §5).

Each resource is one link ``</path>`` with attributes ``rt``, ``if``, ``ct``
(RFC 7252 §7.2.1: several formats as a quoted, space-separated list), ``obs``
(RFC 7641 §6) and ``title``. A request may filter with one query parameter
``name=value`` where a trailing ``*`` makes it a prefix match (§4.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from dtlsfast.coap.resource import Resource


def _attrs(resource: Resource) -> dict[str, list[str]]:
    attrs: dict[str, list[str]] = {}
    if resource.rt:
        attrs["rt"] = resource.rt.split()
    if resource.if_:
        attrs["if"] = resource.if_.split()
    if resource.ct:
        attrs["ct"] = [str(c) for c in resource.ct]
    if resource.observable:
        attrs["obs"] = []
    if resource.title:
        attrs["title"] = [resource.title]
    return attrs


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "").replace('"', "") + '"'


def link(path: str, resource: Resource) -> str:
    """One link-value for a resource at ``path`` (no leading slash)."""
    parts = ["</" + quote(path, safe="/!$&'()*+,;=:@-._~") + ">"]
    for name, values in _attrs(resource).items():
        if name == "obs":
            parts.append("obs")
        elif name == "ct" and len(values) == 1:
            parts.append(f"ct={values[0]}")
        else:
            parts.append(f"{name}={_quoted(' '.join(values))}")
    return ";".join(parts)


def _matches(path: str, resource: Resource, query: list[str]) -> bool:
    for item in query:
        name, _, wanted = item.partition("=")
        prefix = wanted.endswith("*")
        if prefix:
            wanted = wanted[:-1]

        def hit(value: str, wanted: str = wanted, prefix: bool = prefix) -> bool:
            return value.startswith(wanted) if prefix else value == wanted

        if name == "href":
            if not hit("/" + path):
                return False
            continue
        attrs = _attrs(resource)
        if name not in attrs:
            return False
        values = attrs[name]
        if name == "obs":
            continue
        if name == "title":
            values = [" ".join(values)]
        if not any(hit(v) for v in values):
            return False
    return True


def well_known_core(resources: Iterable[tuple[str, Resource]], query: list[str]) -> bytes:
    """The /.well-known/core document for ``resources``, filtered by ``query``."""
    links = [
        link(path, res) for path, res in resources if res.visible and _matches(path, res, query)
    ]
    return ",".join(links).encode("utf-8")


__all__ = ["link", "well_known_core"]
