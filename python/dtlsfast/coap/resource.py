"""Resources served by :class:`~dtlsfast.coap.server.CoapServer` (RFC 7252 §5.8).

Subclass :class:`Resource` and override the ``render_<method>`` coroutines it
supports; a method left alone is answered with 4.05 Method Not Allowed
(§5.8). :class:`FunctionResource` holds plain coroutine functions per method,
as registered with ``@server.resource(path)`` on a function. Class attributes
``rt``, ``if_``, ``ct``, ``title`` and ``observable`` become the resource's
link attributes in ``/.well-known/core`` (RFC 6690 §3, RFC 7641 §6).
:meth:`Resource.notify` tells every server the resource is registered with to
send notifications to its observers (RFC 7641 §4.2).

A resource whose state must be one across sibling servers (the processes of
``dtlsfast serve --workers N``) opts in with ``shared = True``: it gives its
state as bytes (:meth:`Resource.export_state`), takes a sibling's
(:meth:`Resource.import_state`), and reports a change a request made with
:meth:`Resource.changed` rather than :meth:`Resource.notify`. The server
hands every such change to its replicators
(:meth:`~dtlsfast.coap.server.CoapServer.add_replicator`).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar

from dtlsfast.coap.exchange import ErrorResponse, Request, Response
from dtlsfast.coap.message import Code

Handler = Callable[[Request], Awaitable[Response]]

METHOD_NAMES: Mapping[int, str] = {
    Code.GET: "get",
    Code.POST: "post",
    Code.PUT: "put",
    Code.DELETE: "delete",
    Code.FETCH: "fetch",
    Code.PATCH: "patch",
    Code.IPATCH: "ipatch",
}
METHOD_CODES: Mapping[str, int] = {name: code for code, name in METHOD_NAMES.items()}


#: methods() per resource class: what a class overrides does not change.
_METHODS_BY_CLASS: weakref.WeakKeyDictionary[type, frozenset[int]] = weakref.WeakKeyDictionary()


class Resource:
    """One resource. Override ``render_get`` and friends."""

    #: Answer GET with Observe=0 by registering the client (RFC 7641).
    observable: bool = False
    #: Resource type and interface description (RFC 6690 §3.1, §3.2).
    rt: str | None = None
    if_: str | None = None
    #: Content-Formats the resource produces, listed as ``ct`` (RFC 7252 §7.2.1).
    ct: tuple[int, ...] | None = None
    title: str | None = None
    #: Listed in /.well-known/core.
    visible: bool = True
    #: Content-Formats accepted in request bodies; None accepts any. A body in
    #: another format is answered with 4.15 before the handler runs.
    accepted_formats: frozenset[int] | None = None
    #: Opt in to one state across sibling servers (see the module docstring):
    #: implement :meth:`export_state` and :meth:`import_state`, call :meth:`changed`.
    shared: bool = False

    _RENDERERS: ClassVar[Mapping[int, str]] = {c: f"render_{n}" for c, n in METHOD_NAMES.items()}

    def methods(self) -> frozenset[int]:
        """Method codes this resource answers (the overridden ``render_*``)."""
        cls = type(self)
        known = _METHODS_BY_CLASS.get(cls)
        if known is None:
            known = _METHODS_BY_CLASS[cls] = frozenset(
                code
                for code, attr in self._RENDERERS.items()
                if getattr(cls, attr) is not getattr(Resource, attr)
            )
        return known

    async def render(self, request: Request) -> Response:
        """Dispatch to ``render_<method>``."""
        attr = self._RENDERERS.get(request.method)
        if attr is None:
            raise ErrorResponse(Code.METHOD_NOT_ALLOWED)
        handler: Handler = getattr(self, attr)
        return await handler(request)

    async def render_get(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    async def render_post(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    async def render_put(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    async def render_delete(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    async def render_fetch(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    async def render_patch(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    async def render_ipatch(self, request: Request) -> Response:
        raise ErrorResponse(Code.METHOD_NOT_ALLOWED)

    def published_representation(self) -> Response | None:
        """What a plain GET (no Accept, no query, no Observe, no payload)
        answers, when that does not depend on the request; None (the default)
        always runs :meth:`render_get`. A server may answer such GETs without
        calling the handler (a DTLS endpoint does so in its Rust core), so a
        resource that returns one must call :meth:`notify` whenever it
        changes."""
        return None

    # -- observe ---------------------------------------------------------

    def bind_notifier(self, hook: Callable[[], None]) -> None:
        """Called by a server when the resource is registered with it."""
        hooks: list[Callable[[], None]] = self.__dict__.setdefault("_coap_notify_hooks", [])
        hooks.append(hook)

    def unbind_notifier(self, hook: Callable[[], None]) -> None:
        hooks: list[Callable[[], None]] = self.__dict__.get("_coap_notify_hooks", [])
        if hook in hooks:
            hooks.remove(hook)

    def notify(self) -> None:
        """The state changed: notify the observers on every server (RFC 7641 §4.2)."""
        for hook in list(self.__dict__.get("_coap_notify_hooks", ())):
            hook()

    # -- shared state (``shared = True``) ---------------------------------

    def export_state(self) -> bytes:
        """The state a sibling server needs to be this resource: short bytes."""
        raise NotImplementedError(f"{type(self).__name__} is shared but has no export_state")

    def import_state(self, data: bytes) -> None:
        """Become the state a sibling exported; raise ValueError on bytes
        that are no state of this resource (nothing changes then). The
        server notifies the observers afterwards; do not call :meth:`changed`."""
        raise NotImplementedError(f"{type(self).__name__} is shared but has no import_state")

    def bind_changed(self, hook: Callable[[], None]) -> None:
        """Called by a server when a shared resource is registered with it."""
        hooks: list[Callable[[], None]] = self.__dict__.setdefault("_coap_changed_hooks", [])
        hooks.append(hook)

    def unbind_changed(self, hook: Callable[[], None]) -> None:
        hooks: list[Callable[[], None]] = self.__dict__.get("_coap_changed_hooks", [])
        if hook in hooks:
            hooks.remove(hook)

    def changed(self) -> None:
        """A request changed the state: hand it to the servers' replicators
        (a shared resource), then notify the observers as :meth:`notify`."""
        for hook in list(self.__dict__.get("_coap_changed_hooks", ())):
            hook()
        self.notify()


class FunctionResource(Resource):
    """A resource made of one coroutine function per method."""

    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}

    def methods(self) -> frozenset[int]:
        return frozenset(self.handlers)

    async def render(self, request: Request) -> Response:
        handler = self.handlers.get(request.method)
        if handler is None:
            raise ErrorResponse(Code.METHOD_NOT_ALLOWED)
        return await handler(request)


__all__ = ["METHOD_CODES", "METHOD_NAMES", "FunctionResource", "Handler", "Resource"]
