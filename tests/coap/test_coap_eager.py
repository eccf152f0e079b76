"""start_eagerly/finish (dtlsfast.coap.eager) against what a task would do."""

from __future__ import annotations

import asyncio

import pytest

from dtlsfast.coap.eager import finish, is_pending, start_eagerly


async def _immediate() -> int:
    return 7


async def test_a_coroutine_that_does_not_wait_finishes_in_the_first_step() -> None:
    value, waiting = start_eagerly(_immediate())
    assert value == 7 and waiting is None and not is_pending(value)


async def test_a_waiting_coroutine_resumes_where_it_stopped() -> None:
    steps: list[str] = []
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waits() -> int:
        steps.append("first")
        await asyncio.sleep(0)  # a bare yield
        steps.append("second")
        got = await fut
        steps.append("third")
        return got * 2

    coro = waits()
    value, waiting = start_eagerly(coro)
    assert is_pending(value) and steps == ["first"]
    task = asyncio.ensure_future(finish(coro, waiting))
    await asyncio.sleep(0.01)
    assert steps == ["first", "second"] and not task.done()
    fut.set_result(21)
    assert await task == 42
    assert steps == ["first", "second", "third"]


async def test_an_exception_of_the_awaited_future_reaches_the_coroutine() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def catches() -> str:
        try:
            await fut
        except KeyError as exc:
            return f"caught {exc}"
        return "not raised"

    coro = catches()
    _, waiting = start_eagerly(coro)
    task = asyncio.ensure_future(finish(coro, waiting))
    fut.set_exception(KeyError("k"))
    assert await task == "caught 'k'"


async def test_cancelling_the_driver_cancels_the_awaited_future() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    cleaned: list[bool] = []

    async def holds() -> int:
        try:
            return await fut
        finally:
            cleaned.append(True)

    coro = holds()
    _, waiting = start_eagerly(coro)
    task = asyncio.ensure_future(finish(coro, waiting))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fut.cancelled() and cleaned == [True]
