"""Application factories for :func:`dtlsfast.workers.serve_workers`.

``"dtlsfast.workers.apps:light"`` is the seed system's CoAP server: the
observable ``light`` resource of the ESP-IDF example (RFC 7252, RFC 7641).
"""

from __future__ import annotations

from dtlsfast.coap import CoapServer, LightResource


def light() -> CoapServer:
    coap = CoapServer()
    coap.add_resource("light", LightResource())
    return coap


__all__ = ["light"]
