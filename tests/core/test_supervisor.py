"""TaskSupervisor: named tasks, restarts, metrics, stop/restart by name, shutdown signalling."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import threading
import time
from datetime import datetime
from typing import Any

import pytest

from polymarket_agents.core.async_utils import (
    LOGGER_NAME,
    NotRestartableError,
    RestartPolicy,
    TaskAlreadyRunningError,
    TaskOutcome,
    TaskStatus,
    TaskSupervisor,
    UnknownTaskError,
    instant_policy,
)

EXACT = RestartPolicy(jitter=0)


async def wait_until(predicate: Any, limit: int = 10_000) -> None:
    """Let the loop run until ``predicate()`` holds (no sleeping on the clock)."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


class Stubborn:
    """Work that swallows cancellation ``swallow`` times before it gives in."""

    def __init__(self, swallow: int) -> None:
        self.swallow = swallow
        self.started = asyncio.Event()

    async def __call__(self) -> None:
        self.started.set()
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.swallow <= 0:
                    raise
                self.swallow -= 1


@pytest.mark.looptime
async def test_failing_task_restarts_with_backoff_and_counts() -> None:
    """A task failing twice with ConnectionError restarts after 5 and 10 s and succeeds."""
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def work() -> None:
        attempts.append(loop.time())
        if len(attempts) < 3:
            raise ConnectionError("Network timeout")

    start = loop.time()
    async with TaskSupervisor(policy=EXACT) as supervisor:
        await supervisor.start_task("monitor_btc", work)
        await supervisor.join("monitor_btc")
        metrics = supervisor.get_metrics()["monitor_btc"]
    assert [t - start for t in attempts] == pytest.approx([0, 5, 15])
    assert metrics["restarts"] == 2
    assert metrics["errors"] == 2
    assert metrics["last_error"] == "ConnectionError: Network timeout"
    assert isinstance(metrics["last_error_time"], datetime)
    assert metrics["status"] == "stopped"
    assert metrics["outcome"] == "succeeded"


@pytest.mark.looptime
async def test_status_is_restarting_during_backoff() -> None:
    """Between a failure and its restart the task reports "restarting"."""
    async with TaskSupervisor(policy=EXACT) as supervisor:
        await supervisor.start_task("t", lambda: _raise(ConnectionError("x")))
        await asyncio.sleep(1)
        assert TaskStatus(supervisor.get_metrics()["t"]["status"]) is TaskStatus.RESTARTING
        assert supervisor.get_metrics()["t"]["status"] == "restarting"


async def _raise(exc: Exception) -> None:
    raise exc


async def test_fatal_error_stops_the_task_with_outcome_failed() -> None:
    """A ValueError stops the task for good: status stopped, outcome failed, one error."""
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", lambda: _raise(ValueError("bad")))
        await supervisor.join("t")
        metrics = supervisor.get_metrics()["t"]
    assert (metrics["status"], metrics["outcome"], metrics["errors"]) == ("stopped", "failed", 1)


async def test_starting_a_running_name_is_a_clear_error() -> None:
    """A second start_task with a running name raises TaskAlreadyRunningError."""
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", lambda: asyncio.sleep(3600))
        coro = asyncio.sleep(1)
        with pytest.raises(TaskAlreadyRunningError, match="task 't' is already running"):
            await supervisor.start_task("t", coro)
        # Closed, so it does not warn about never being awaited.
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_unknown_names_raise_unknown_task_error() -> None:
    """stop_task/restart_task/status of a name never started raise UnknownTaskError."""
    supervisor = TaskSupervisor()
    with pytest.raises(UnknownTaskError, match="no task named 'nope'"):
        await supervisor.stop_task("nope")
    with pytest.raises(KeyError):
        supervisor.status("nope")


async def test_metrics_are_a_snapshot() -> None:
    """Changing the returned dict changes nothing inside the supervisor."""
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", lambda: asyncio.sleep(3600))
        snapshot = supervisor.get_metrics()
        snapshot["t"]["errors"] = 99
        del snapshot["t"]
        assert supervisor.get_metrics()["t"]["errors"] == 0


async def test_stop_task_and_restart_task_by_name() -> None:
    """stop_task cancels one task (its finally runs); restart_task runs its work again."""
    runs = 0
    cleanups = 0

    async def work() -> None:
        nonlocal runs, cleanups
        runs += 1
        try:
            await asyncio.sleep(3600)
        finally:
            cleanups += 1

    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("a", work)
        await supervisor.start_task("b", lambda: asyncio.sleep(3600))
        await wait_until(lambda: runs == 1)
        assert await supervisor.stop_task("a") is True
        assert cleanups == 1
        assert supervisor.status("a") == "stopped"
        assert supervisor.status("b") == "running"
        await supervisor.restart_task("a")
        await wait_until(lambda: runs == 2)
        assert supervisor.get_metrics()["a"]["restarts"] == 1
        await supervisor.restart_task("a")  # restarting a running task stops it first
        await wait_until(lambda: runs == 3)
        assert cleanups == 2
    assert cleanups == 3


async def test_seed_auto_restart_passes_the_original_coroutine_again() -> None:
    """The seed's health check restarts a stopped task with its original coroutine object;
    the supervisor re-creates it."""
    calls: list[str] = []

    async def monitor_market(market_id: str) -> None:
        calls.append(market_id)
        raise ValueError("fatal")

    original = monitor_market("btc")
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("monitor_btc", original)
        await supervisor.join("monitor_btc")
        await supervisor.start_task("monitor_btc", original)
        await supervisor.join("monitor_btc")
        metrics = supervisor.get_metrics()["monitor_btc"]
    assert calls == ["btc", "btc"]
    assert (metrics["restarts"], metrics["errors"]) == (1, 2)


async def test_restart_task_of_an_unrestartable_coroutine_says_pass_a_factory() -> None:
    """A coroutine that had already started cannot be restarted by name."""

    async def work() -> None:
        await asyncio.sleep(0)

    coro = work()
    coro.send(None)
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", coro)
        await supervisor.join("t")
        with pytest.raises(NotRestartableError, match="pass a factory"):
            await supervisor.restart_task("t")


@pytest.mark.looptime
async def test_stop_all_returns_when_a_task_swallows_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """stop_all(timeout=2) returns after 2 s although a task swallows its cancellation; the
    task is named in a WARNING and marked unresponsive in metrics."""
    loop = asyncio.get_running_loop()
    stubborn = Stubborn(swallow=1)
    supervisor = TaskSupervisor()
    await supervisor.start_task("stubborn", stubborn)
    await supervisor.start_task("polite", lambda: asyncio.sleep(3600))
    await stubborn.started.wait()
    start = loop.time()
    with caplog.at_level(logging.WARNING, LOGGER_NAME):
        stuck = await supervisor.stop_all(timeout=2)
    assert loop.time() - start == pytest.approx(2)
    assert stuck == ["stubborn"]
    assert "'stubborn'" in caplog.records[-1].getMessage()
    metrics = supervisor.get_metrics()
    assert TaskOutcome(metrics["stubborn"]["outcome"]) is TaskOutcome.UNRESPONSIVE
    assert TaskOutcome(metrics["polite"]["outcome"]) is TaskOutcome.CANCELLED
    # A second stop_all cancels it again; this time it gives in.
    assert await supervisor.stop_all(timeout=2) == []
    assert supervisor.get_metrics()["stubborn"]["status"] == "stopped"


@pytest.mark.looptime
async def test_stop_all_cancels_pending_restarts() -> None:
    """A task waiting in backoff is stopped at once and never restarts."""
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("down")

    supervisor = TaskSupervisor(policy=EXACT)
    await supervisor.start_task("t", work)
    await asyncio.sleep(1)
    assert await supervisor.stop_all() == []
    await asyncio.sleep(600)
    assert attempts == 1
    assert supervisor.get_metrics()["t"]["outcome"] == "cancelled"


async def test_task_raising_while_being_stopped_is_not_restarted() -> None:
    """A task that turns its cancellation into an error is counted but never restarted."""
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionError("closed") from None

    supervisor = TaskSupervisor(policy=instant_policy())
    await supervisor.start_task("t", work)
    await wait_until(lambda: runs == 1)
    await supervisor.stop_all()
    for _ in range(10):
        await asyncio.sleep(0)
    metrics = supervisor.get_metrics()["t"]
    assert runs == 1
    assert (metrics["status"], metrics["errors"]) == ("stopped", 1)


async def test_a_thousand_tasks_start_and_stop_with_every_cleanup_run() -> None:
    """1,500 tasks start, reach their first await, and all finally blocks run at stop_all."""
    started = 0
    cleaned = 0

    async def work() -> None:
        nonlocal started, cleaned
        started += 1
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned += 1

    supervisor = TaskSupervisor()
    for i in range(1500):
        await supervisor.start_task(f"t{i}", work())
    await wait_until(lambda: started == 1500)
    assert await supervisor.stop_all() == []
    assert cleaned == 1500
    assert {m["status"] for m in supervisor.get_metrics().values()} == {"stopped"}


async def test_tasks_stopped_before_they_ever_ran_do_not_leak_coroutines() -> None:
    """Stopping tasks right after start_task closes their never-started coroutines quietly."""
    supervisor = TaskSupervisor()
    for i in range(50):
        await supervisor.start_task(f"t{i}", asyncio.sleep(3600))
    assert await supervisor.stop_all() == []
    assert all(m["outcome"] == "cancelled" for m in supervisor.get_metrics().values())


async def test_async_with_stops_tasks_even_when_the_body_raises() -> None:
    """Leaving `async with` by an exception still stops every task."""
    cleaned = asyncio.Event()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    with pytest.raises(RuntimeError, match="boom"):
        async with TaskSupervisor() as supervisor:
            await supervisor.start_task("t", work)
            await started.wait()
            raise RuntimeError("boom")
    assert cleaned.is_set()


async def test_join_all_waits_for_every_task() -> None:
    """join() with no name returns once every task has stopped."""
    async with TaskSupervisor() as supervisor:
        for i in range(5):
            await supervisor.start_task(f"t{i}", asyncio.sleep(0))
        await supervisor.join()
        assert all(m["outcome"] == "succeeded" for m in supervisor.get_metrics().values())


async def test_signal_shutdown_from_another_thread_wakes_an_idle_loop() -> None:
    """signal_shutdown() from another thread wakes a loop that has nothing to do for an hour."""
    supervisor = TaskSupervisor()
    await supervisor.start_task("idle", lambda: asyncio.sleep(3600))
    woke_at: list[float] = []

    def other_thread() -> None:
        time.sleep(0.05)
        woke_at.append(time.monotonic())
        supervisor.signal_shutdown()

    thread = threading.Thread(target=other_thread)
    thread.start()
    await supervisor.wait_for_shutdown()
    latency = time.monotonic() - woke_at[0]
    thread.join()
    await supervisor.stop_all()
    assert latency < 0.5  # generous: without the wake-up it would be an hour


async def test_signal_shutdown_from_a_plain_signal_handler_wakes_the_loop() -> None:
    """A plain signal.signal handler calling signal_shutdown() wakes the idle loop at once."""
    supervisor = TaskSupervisor()
    await supervisor.start_task("idle", lambda: asyncio.sleep(3600))

    def handler(signum: int, frame: object) -> None:
        supervisor.signal_shutdown()

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        sent = time.monotonic()
        async with asyncio.timeout(5):
            await supervisor.wait_for_shutdown()
        assert time.monotonic() - sent < 1.0
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        await supervisor.stop_all()
    assert supervisor.shutdown_requested
    assert supervisor._shutdown_event.is_set()  # the seed reads the event directly


async def test_signal_shutdown_in_the_loop_sets_the_event_immediately() -> None:
    """Called from the loop, signal_shutdown() is visible at once (the seed polls the event)."""
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", lambda: asyncio.sleep(3600))
        supervisor.signal_shutdown()
        assert supervisor._shutdown_event.is_set()


async def test_loop_signal_handlers_turn_sigterm_into_shutdown() -> None:
    """add_signal_handlers(): a real SIGTERM requests shutdown; a second one calls on_repeat."""
    repeats: list[int] = []
    async with TaskSupervisor() as supervisor:
        supervisor.add_signal_handlers(on_repeat=repeats.append)
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(5):
            await supervisor.wait_for_shutdown()
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_until(lambda: repeats)
    assert repeats == [signal.SIGTERM]
    # Leaving the block removed the handlers: the default disposition is back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_factory_returning_a_future_is_supervised() -> None:
    """Work may return any awaitable, not only coroutines."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("f", lambda: future)
        future.set_result(1)
        await supervisor.join("f")
        assert supervisor.get_metrics()["f"]["outcome"] == "succeeded"


async def test_uptime_grows_while_running() -> None:
    """uptime counts seconds since the current attempt started, and is 0 once stopped."""
    async with TaskSupervisor() as supervisor:
        await supervisor.start_task("t", lambda: asyncio.sleep(3600))
        await asyncio.sleep(0.02)
        assert supervisor.get_metrics()["t"]["uptime"] >= 0.01
        await supervisor.stop_task("t")
        assert supervisor.get_metrics()["t"]["uptime"] == 0.0


def test_keyboard_interrupt_in_a_supervised_task_propagates_and_is_not_retried() -> None:
    """KeyboardInterrupt raised by supervised work stops the loop at once; no restart, no
    error counted."""
    attempts = 0
    supervisor = TaskSupervisor(policy=instant_policy())

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        raise KeyboardInterrupt

    async def main() -> None:
        await supervisor.start_task("t", work)
        await asyncio.sleep(3600)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert attempts == 1
    assert supervisor.get_metrics()["t"]["errors"] == 0


def test_an_empty_supervisor_is_truthy() -> None:
    """`supervisor or TaskSupervisor()` keeps the given supervisor even when it has no tasks."""
    supervisor = TaskSupervisor()
    assert len(supervisor) == 0
    assert (supervisor or TaskSupervisor()) is supervisor
