"""``cancel_and_wait`` ends a background task even when a cancellation is lost inside a library call."""

from __future__ import annotations

import asyncio

from service.background import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def loses_the_first_cancellation() -> None:
        nonlocal swallowed
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed += 1  # as a library that catches the cancellation and carries on
        await asyncio.Event().wait()

    task = asyncio.create_task(loses_the_first_cancellation())
    await asyncio.sleep(0)

    assert await cancel_and_wait(task, timeout=5)
    assert swallowed == 1
    assert task.cancelled()


async def test_a_task_that_will_not_end_is_given_up_after_the_timeout() -> None:
    refusing = True

    async def refuses() -> None:
        while refusing:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(refuses())
    await asyncio.sleep(0)

    assert not await cancel_and_wait(task, timeout=0.3)
    assert not task.done()
    refusing = False
    assert await cancel_and_wait(task, timeout=5)


async def test_an_error_the_task_ended_with_is_retrieved() -> None:
    async def fails() -> None:
        raise RuntimeError("counted by its loop")

    task = asyncio.create_task(fails())
    await asyncio.wait({task})

    assert await cancel_and_wait(task, timeout=1)
