"""shielded(): finish despite cancellation, bounded by a deadline, cancellation re-raised after."""

from __future__ import annotations

import asyncio

import pytest

from polymarket_agents.core.async_utils import shielded


class Cleanup:
    """Work that takes ``seconds`` of loop time and records how it ended."""

    def __init__(self, seconds: float = 1.0, *, error: Exception | None = None) -> None:
        self.seconds = seconds
        self.error = error
        self.started = asyncio.Event()
        self.finished = False
        self.cancelled = False

    async def run(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.finished = True
        if self.error is not None:
            raise self.error
        return "done"


async def test_returns_the_result_and_raises_the_error() -> None:
    """Without cancellation it is a plain await: result returned, error raised."""
    assert await shielded(Cleanup(0).run()) == "done"
    with pytest.raises(OSError, match="disk"):
        await shielded(Cleanup(0, error=OSError("disk")).run())


async def test_a_done_future_is_answered_at_once() -> None:
    """An awaitable that is already done is not waited for."""
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    future.set_result(7)
    assert await shielded(future) == 7


@pytest.mark.looptime
async def test_cancellations_of_the_caller_wait_for_the_end_then_propagate() -> None:
    """Two cancellations while the work runs: it finishes, then CancelledError is raised."""
    work = Cleanup(10.0)
    caller = asyncio.create_task(shielded(work.run()))
    await work.started.wait()
    caller.cancel()
    await asyncio.sleep(1)
    caller.cancel()
    await asyncio.sleep(1)
    assert not caller.done()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.finished
    assert not work.cancelled


@pytest.mark.looptime
async def test_the_works_error_is_the_cause_of_the_re_raised_cancellation() -> None:
    """Cancellation wins over the work's error, which is kept as its cause."""
    work = Cleanup(1.0, error=OSError("rollback failed"))
    caller = asyncio.create_task(shielded(work.run()))
    await work.started.wait()
    caller.cancel()
    await asyncio.wait((caller,))
    with pytest.raises(asyncio.CancelledError) as raised:
        caller.result()
    assert isinstance(raised.value.__cause__, OSError)


@pytest.mark.looptime
async def test_timeout_cancels_and_awaits_the_work_then_raises_timeout_error(
    looptime: float,
) -> None:
    """Past the deadline the work is cancelled, its cleanup awaited, TimeoutError raised."""
    work = Cleanup(60.0)
    with pytest.raises(TimeoutError):
        await shielded(work.run(), timeout=5.0)
    assert work.cancelled
    assert looptime == 5


@pytest.mark.looptime
async def test_timeout_still_applies_after_the_caller_is_cancelled(looptime: float) -> None:
    """A cancelled caller waits at most until the deadline, then gets CancelledError."""
    work = Cleanup(60.0)
    caller = asyncio.create_task(shielded(work.run(), timeout=5.0))
    await work.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.cancelled
    assert looptime == 5


@pytest.mark.looptime
async def test_asyncio_timeout_around_the_caller_still_turns_into_timeout_error(
    looptime: float,
) -> None:
    """The re-raised cancellation is the one asyncio.timeout() asked for."""
    work = Cleanup(3.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await shielded(work.run())
    assert work.finished
    assert looptime == 3


async def test_work_cancelled_by_someone_else_raises_cancelled_error() -> None:
    """A task given to shielded and cancelled elsewhere ends the wait as its await would."""
    work = Cleanup(60.0)
    task = asyncio.create_task(work.run())
    await work.started.wait()
    waiter = asyncio.create_task(shielded(task))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
