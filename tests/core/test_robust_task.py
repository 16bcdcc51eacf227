"""robust_task: restarts with backoff, error classes, cancellation, re-created coroutines.

Time is the subject here, so the whole module runs on looptime's fast-forwarded loop clock:
a 5 s backoff takes no real time and loop time can be asserted exactly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from polymarket_agents.core.async_utils import (
    LOGGER_NAME,
    RestartPolicy,
    instant_backoff,
    instant_policy,
    robust_task,
)

pytestmark = pytest.mark.looptime

EXACT = RestartPolicy(jitter=0)  # the default schedule without jitter: exact loop times


class failing:
    """A factory whose work fails ``times`` times, then returns the attempt number."""

    def __init__(
        self, times: int, exc: Callable[[], Exception] = lambda: ConnectionError("down")
    ) -> None:
        self.times = times
        self.exc = exc
        self.attempts = 0

    async def __call__(self) -> int:
        self.attempts += 1
        if self.attempts <= self.times:
            raise self.exc()
        return self.attempts


async def test_returns_the_result_of_work_that_succeeds() -> None:
    """Work that returns is run once and its result returned."""
    assert await robust_task("ok", failing(0)) == 1


async def test_recoverable_errors_back_off_five_then_ten_seconds() -> None:
    """Two ConnectionErrors cost exactly 5 + 10 s of loop time before success."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await robust_task("net", failing(2), policy=EXACT) == 3
    assert loop.time() - start == pytest.approx(15)


async def test_backoff_seconds_argument_sets_the_first_delay() -> None:
    """backoff_seconds=10 gives 10 + 20 s for two failures."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await robust_task("net", failing(2), backoff_seconds=10, policy=EXACT)
    assert loop.time() - start == pytest.approx(30)


async def test_unexpected_errors_back_off_longer_and_log_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected error waits 60 s (12 x 5 s) and is logged at ERROR with its traceback."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        assert await robust_task("bug", failing(1, lambda: RuntimeError("bug")), policy=EXACT) == 2
    assert loop.time() - start == pytest.approx(60)
    [record] = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "RuntimeError: bug" in record.getMessage()
    assert record.delay == 60  # type: ignore[attr-defined]


async def test_fatal_error_is_final_returns_none_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A ValueError is not retried: logged at ERROR with traceback, robust_task returns None."""
    work = failing(5, lambda: ValueError("bad config"))
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        assert await robust_task("fatal", work) is None
    assert work.attempts == 1
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "failed for good (fatal error, not restarting)" in record.getMessage()


async def test_restart_disabled_makes_the_first_failure_final() -> None:
    """restart_on_failure=False gives up after one recoverable failure."""
    work = failing(5)
    assert await robust_task("once", work, restart_on_failure=False) is None
    assert work.attempts == 1


async def test_recoverable_failure_logs_warning_with_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each recoverable failure logs one WARNING naming the task, the error and the backoff."""
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        await robust_task("feed", failing(2), policy=EXACT)
    assert [(r.levelno, r.task, r.delay) for r in caplog.records] == [  # type: ignore[attr-defined]
        (logging.WARNING, "feed", 5.0),
        (logging.WARNING, "feed", 10.0),
    ]
    assert caplog.records[0].getMessage() == (
        "task 'feed' failed (recoverable error, failure 1): ConnectionError: down; "
        "restarting in 5.00 s"
    )


async def test_backoff_resets_after_the_work_ran_stably() -> None:
    """A failure after reset_after seconds of running starts the schedule again at 5 s."""
    loop = asyncio.get_running_loop()
    runs: list[float] = []

    async def work() -> None:
        runs.append(loop.time())
        if len(runs) == 3:
            await asyncio.sleep(100)  # a long, healthy run
        if len(runs) < 5:
            raise ConnectionError("drop")

    start = loop.time()
    await robust_task("net", work, policy=RestartPolicy(jitter=0, reset_after=60))
    gaps = [b - a for a, b in zip([start, *runs], runs, strict=False)][1:]
    # 5, 10 (second failure), then 100 s of running, then 5 again (reset), then 10.
    assert gaps == pytest.approx([5, 10, 105, 10])


async def test_restart_intensity_limit_turns_a_crash_loop_into_a_final_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With max_restarts=3 in 60 s, the fourth quick failure is final."""
    work = failing(100)
    policy = instant_policy(max_restarts=3, restart_window=60)
    with caplog.at_level(logging.ERROR, LOGGER_NAME):
        assert await robust_task("loop", work, policy=policy) is None
    assert work.attempts == 4  # the first and 3 restarts
    assert "restart intensity exceeded (3 restarts in 60 s)" in caplog.records[-1].getMessage()


async def test_restart_intensity_allows_restarts_spread_out_in_time() -> None:
    """Restarts farther apart than the window never reach the limit."""
    policy = RestartPolicy(backoff_seconds=70, multiplier=1, jitter=0, max_restarts=1)
    assert await robust_task("slow", failing(5), policy=policy) == 6


async def test_cancel_during_work_runs_finally_and_propagates() -> None:
    """Cancelling the caller runs the work's finally and raises CancelledError."""
    started, cleaned = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    task = asyncio.create_task(robust_task("w", work))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()


async def test_cancel_during_backoff_propagates_and_stops_restarting() -> None:
    """A cancellation while waiting in backoff ends robust_task; no further attempt runs."""
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("down")

    task = asyncio.create_task(robust_task("w", work, policy=EXACT))
    await asyncio.sleep(7)  # first failure at 0, now inside the 10 s backoff after the second
    assert attempts == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(100)
    assert attempts == 2


async def test_timeout_around_robust_task_raises_timeout_error() -> None:
    """asyncio.timeout() around robust_task fires on time and the work's finally runs."""
    loop = asyncio.get_running_loop()
    cleaned = False

    async def work() -> None:
        nonlocal cleaned
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned = True

    start = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2):
            await robust_task("w", work)
    assert loop.time() - start == pytest.approx(2)
    assert cleaned


async def test_timeout_during_backoff_raises_timeout_error() -> None:
    """A timeout that expires while robust_task waits in backoff still raises TimeoutError."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(3):
            await robust_task("w", failing(100), policy=EXACT)


async def test_work_turning_cancellation_into_an_error_is_still_cancelled() -> None:
    """Work that raises ConnectionError while being cancelled does not swallow the cancel."""
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionError("closed while cancelling") from None

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await robust_task("w", work)
    assert attempts == 1


async def test_work_timeout_inside_is_recoverable_not_cancellation() -> None:
    """A timeout the work imposes on itself is a TimeoutError to retry, not a cancellation."""
    attempts = 0

    async def work() -> str:
        nonlocal attempts
        attempts += 1
        async with asyncio.timeout(1 if attempts < 3 else 10):
            await asyncio.sleep(2)
        return "done"

    assert await robust_task("w", work, policy=EXACT) == "done"
    assert attempts == 3


async def test_sibling_failure_in_task_group_cancels_robust_task() -> None:
    """In a TaskGroup, a sibling's failure cancels robust_task; the group raises the sibling's
    error alone and robust_task's work cleaned up."""
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    async def sibling() -> None:
        await asyncio.sleep(1)
        raise RuntimeError("sibling broke")

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as group:
            group.create_task(robust_task("w", work))
            group.create_task(sibling())
    assert [type(e) for e in info.value.exceptions] == [RuntimeError]
    assert cleaned.is_set()


async def test_sibling_failure_during_backoff_in_task_group() -> None:
    """A TaskGroup also cancels a robust_task that sits in backoff."""

    async def sibling() -> None:
        await asyncio.sleep(3)
        raise RuntimeError("sibling broke")

    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as group:
            group.create_task(robust_task("w", failing(100), policy=EXACT))
            group.create_task(sibling())


async def test_keyboard_interrupt_propagates_at_once_without_retry() -> None:
    """KeyboardInterrupt is never counted or retried: it propagates from the first attempt."""
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        raise KeyboardInterrupt

    with instant_backoff():
        try:
            await robust_task("w", work)
        except KeyboardInterrupt:
            pass
        else:
            pytest.fail("KeyboardInterrupt was swallowed")
    assert attempts == 1


async def test_system_exit_propagates_at_once() -> None:
    """SystemExit propagates from the first attempt."""

    async def work() -> None:
        raise SystemExit(3)

    try:
        await robust_task("w", work)
    except SystemExit as exc:
        assert exc.code == 3
    else:
        pytest.fail("SystemExit was swallowed")


async def test_cancelled_error_raised_by_work_itself_propagates() -> None:
    """A CancelledError the work raises on its own is re-raised, never retried."""
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        raise asyncio.CancelledError

    task = asyncio.create_task(robust_task("w", work))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == 1


async def test_factory_errors_count_as_failed_attempts() -> None:
    """A factory that raises is a failed attempt like any other."""
    calls = 0

    def factory() -> Any:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("cannot build")
        return asyncio.sleep(0, "built")

    with instant_backoff():
        assert await robust_task("f", factory) == "built"
    assert calls == 3


def test_work_of_the_wrong_type_is_a_type_error() -> None:
    """Work that is neither a coroutine nor callable is rejected with TypeError."""

    async def main() -> None:
        await robust_task("w", 42)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="work must be a coroutine object"):
        asyncio.run(main())


async def test_negative_backoff_is_rejected_before_the_work_runs() -> None:
    """A bad backoff_seconds raises ConfigurationError at once, not at the first failure."""
    from polymarket_agents.core.async_utils import ConfigurationError

    work = failing(0)
    with pytest.raises(ConfigurationError, match="backoff_seconds must be >= 0"):
        await robust_task("w", work, backoff_seconds=-1)
