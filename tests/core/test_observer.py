"""Observer hooks, Retry-After hints, heartbeats and re-created coroutines under supervisors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from polymarket_agents.core.async_utils import (
    LOGGER_NAME,
    ErrorClass,
    NotRestartableError,
    Observer,
    RestartPolicy,
    TaskFailure,
    TaskSupervisor,
    beat,
    instant_policy,
    robust_task,
)

from ._recording import Recorder

pytestmark = pytest.mark.looptime


class RetryLater(ConnectionError):
    """A transport error carrying a server's Retry-After, as a layer above would raise."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"429, retry after {seconds} s")
        self.retry_after = seconds


async def test_robust_task_tells_the_observer_of_failures_and_restarts() -> None:
    """Each failure is an event with its class and delay; the final one has no delay."""
    recorder = Recorder()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        raise KeyError("bug")

    result = await robust_task("w", work, policy=instant_policy(), observer=recorder)
    assert result is None
    assert [(e.task, e.error_class, e.delay, e.final) for e in recorder.failures] == [
        ("w", ErrorClass.RECOVERABLE, 0.0, False),
        ("w", ErrorClass.RECOVERABLE, 0.0, False),
        ("w", ErrorClass.FATAL, None, True),
    ]
    assert recorder.failures[-1].reason == "fatal error, not restarting"
    assert [(e.task, e.restarts) for e in recorder.restarts] == [("w", 1), ("w", 2)]


async def test_task_supervisor_tells_the_observer() -> None:
    """A supervised task's failures and restarts reach the supervisor's observer."""
    recorder = Recorder()
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError("slow")
        await asyncio.sleep(3600)

    async with TaskSupervisor(observer=recorder, policy=instant_policy()) as supervisor:
        await supervisor.start_task("t", work)
        while not recorder.restarts:
            await asyncio.sleep(0)
    assert [(e.task, type(e.error)) for e in recorder.failures] == [("t", TimeoutError)]
    assert [(e.task, e.restarts) for e in recorder.restarts] == [("t", 1)]


async def test_an_observer_that_raises_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken hook never breaks supervision."""

    class Broken(Observer):
        def on_failure(self, event: TaskFailure) -> None:
            raise RuntimeError("hook bug")

    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return calls

    with caplog.at_level(logging.ERROR, LOGGER_NAME):
        assert await robust_task("w", work, policy=instant_policy(), observer=Broken()) == 2
    assert "failed in on_failure" in caplog.text


async def test_retry_after_on_the_error_sets_the_least_delay(looptime: float) -> None:
    """An error asking to retry after 30 s waits 30 s although the backoff says 5."""
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryLater(30.0)
        return "ok"

    assert await robust_task("w", work, policy=RestartPolicy(jitter=0)) == "ok"
    assert looptime == 30


async def test_a_shorter_retry_after_than_the_backoff_keeps_the_backoff(looptime: float) -> None:
    """Retry-After is a floor, never a shortcut."""
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryLater(1.0)
        return "ok"

    assert await robust_task("w", work, policy=RestartPolicy(jitter=0)) == "ok"
    assert looptime == 5


async def test_restart_task_re_creates_a_running_coroutine_object() -> None:
    """The arguments of a coroutine object are learnt from its cancellation."""
    seen: list[str] = []

    async def monitor(market: str) -> None:
        seen.append(market)
        await asyncio.sleep(3600)

    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("m", monitor("btc"))
        await asyncio.sleep(0)
        await supervisor.restart_task("m")
        await asyncio.sleep(0)
        await supervisor.stop_task("m")
        await supervisor.restart_task("m")  # stopped by name, restarted by name
        await asyncio.sleep(0)
    assert seen == ["btc", "btc", "btc"]


async def test_restart_task_after_a_coroutine_returned_says_pass_a_factory() -> None:
    """A return leaves nothing to learn a coroutine's arguments from."""

    async def once(value: int) -> int:
        return value

    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", once(1))
        await supervisor.join("t")
        with pytest.raises(NotRestartableError, match="pass a factory"):
            await supervisor.restart_task("t")
        assert supervisor.status("t") == "stopped"


async def test_start_task_heartbeat_restarts_a_stalled_task() -> None:
    """A task that stops beating is restarted and counted as a stall."""
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        beat()
        if runs == 1:
            await asyncio.Event().wait()  # stuck for ever
        while True:
            beat()
            await asyncio.sleep(1)

    async with TaskSupervisor(policy=instant_policy()) as supervisor:
        await supervisor.start_task("t", work, heartbeat=5.0)
        await asyncio.sleep(30)
        metrics = supervisor.get_metrics()["t"]
    assert runs == 2
    assert (metrics["stalls"], metrics["restarts"], metrics["errors"]) == (1, 1, 1)
    assert metrics["last_error"] == "StalledError: stalled: no beat() for 5 s"


def test_beat_outside_a_supervised_task_does_nothing() -> None:
    """beat() is safe to call anywhere."""
    beat()
