"""Run a coroutine's first step at once, and only make a task if it waits.

Most CoAP resource handlers (RFC 7252 §5.2.1, piggybacked responses) never
wait for anything: their coroutine finishes on its first step. Starting each
one as an asyncio task costs a task, a trip through the event loop and, for a
confirmable request, a separate-response timer. :func:`start_eagerly` runs
the first step in the caller's frame (what ``asyncio.eager_task_factory``
does from Python 3.12 on); a coroutine that suspends is finished by
:func:`finish`, a task that resumes it exactly where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_PENDING: Any = object()


def start_eagerly(coro: Coroutine[Any, Any, T]) -> tuple[T, None] | tuple[Any, Any]:
    """Run ``coro`` up to its first suspension.

    Returns ``(result, None)`` when it finished, else ``(PENDING, yielded)``
    where ``yielded`` is what it waits on: pass both to :func:`finish`.
    Exceptions the first step raises propagate.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as done:
        return done.value, None
    return _PENDING, yielded


def is_pending(value: object) -> bool:
    """Whether :func:`start_eagerly` left the coroutine suspended."""
    return value is _PENDING


async def finish(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    """Drive a coroutine that :func:`start_eagerly` left suspended on ``yielded``.

    Follows asyncio's protocol for what a coroutine yields: a future (wait
    for it, then resume; the coroutine reads its result itself) or ``None``
    (a bare yield: give the loop one turn). Cancelling this task cancels
    the future waited on and throws CancelledError into the coroutine.
    """
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                yielded._asyncio_future_blocking = False
                await asyncio.wait((yielded,))
        except asyncio.CancelledError as cancel:
            if yielded is not None:
                yielded.cancel()
            try:
                yielded = coro.throw(cancel)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


__all__ = ["finish", "is_pending", "start_eagerly"]
