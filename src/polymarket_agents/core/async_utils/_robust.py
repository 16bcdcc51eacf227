"""``robust_task``: run work, restart it after failures with backoff, never swallow cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from ._policy import ErrorClass, RestartPolicy
from ._work import Work, WorkSource

__all__ = ["LOGGER_NAME", "robust_task"]

T = TypeVar("T")

LOGGER_NAME = "polymarket_agents.supervisor"
_logger = logging.getLogger(LOGGER_NAME)
_DEFAULT_POLICY = RestartPolicy()


def resolve_policy(policy: RestartPolicy | None, backoff_seconds: float | None) -> RestartPolicy:
    """The policy to use: ``policy`` (or the default) with ``backoff_seconds`` applied."""
    policy = policy or _DEFAULT_POLICY
    if backoff_seconds is not None and backoff_seconds != policy.backoff_seconds:
        policy = replace(policy, backoff_seconds=backoff_seconds)
    return policy


def describe(exc: BaseException) -> str:
    """``"ConnectionError: Network timeout"``: the form ``last_error`` takes in metrics."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Attempts(WorkSource):
    """The work of one named task, its failures, and what each failure means.

    Shared by ``robust_task`` (which loops in the caller's task) and ``TaskSupervisor``
    (which restarts from done-callbacks), so both classify, count, log and back off alike.
    It extends :class:`WorkSource` rather than holding one: a supervised task is then a
    single small object, which matters at 100,000 tasks.
    """

    __slots__ = (
        "errors",
        "failures",
        "last_error",
        "last_error_time",
        "logger",
        "name",
        "now",
        "policy",
        "restart_on_failure",
        "restart_times",
        "restarts",
    )

    def __init__(
        self,
        name: str,
        work: Work[Any],
        policy: RestartPolicy,
        restart_on_failure: bool,
        logger: logging.Logger,
        now: Callable[[], datetime],
        *,
        restartable: bool = True,
    ) -> None:
        # Not super().__init__(): one call less per supervised task start.
        self.set_work(work, restartable)
        self.configure(name, policy, restart_on_failure, logger, now)

    def configure(
        self,
        name: str,
        policy: RestartPolicy,
        restart_on_failure: bool,
        logger: logging.Logger,
        now: Callable[[], datetime],
    ) -> None:
        """Set everything but the work; ``robust_task`` defers this to the first failure."""
        self.name = name
        self.policy = policy
        self.restart_on_failure = restart_on_failure
        self.logger = logger
        self.now = now
        self.restarts = 0
        self.errors = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_time: datetime | None = None
        self.restart_times: deque[float] | None = None

    def on_failure(self, exc: Exception, ran_for: float, clock: float) -> float | None:
        """Record a failure; return the delay before the restart, or None if it is final.

        Args:
            exc: What the attempt raised.
            ran_for: Seconds (loop time) the attempt ran before failing.
            clock: The loop time now, for the restart-intensity window.
        """
        self.errors += 1
        self.last_error = describe(exc)
        self.last_error_time = self.now()
        policy = self.policy
        error_class = policy.classify_error(exc)
        if ran_for >= policy.reset_after:
            self.failures = 0
        self.failures += 1
        log = self.logger
        if error_class is ErrorClass.FATAL:
            return self._give_up(exc, "fatal error, not restarting")
        if not self.restart_on_failure:
            return self._give_up(exc, "restarts disabled")
        if not self.restartable():
            return self._give_up(
                exc,
                f"cannot restart: {self.reason}; pass a zero-argument factory "
                f"(for example `lambda: work(arg)`) instead of a coroutine object",
            )
        if policy.max_restarts is not None:
            times = self.restart_times
            if times is None:
                times = self.restart_times = deque()
            window_start = clock - policy.restart_window
            while times and times[0] <= window_start:
                times.popleft()
            if len(times) >= policy.max_restarts:
                return self._give_up(
                    exc,
                    f"restart intensity exceeded ({policy.max_restarts} restarts "
                    f"in {policy.restart_window:g} s)",
                )
            times.append(clock)
        delay = policy.delay(self.failures, error_class)
        if log.isEnabledFor(logging.WARNING):
            unexpected = error_class is ErrorClass.UNEXPECTED
            log.log(
                logging.ERROR if unexpected else logging.WARNING,
                "task %r failed (%s error, failure %d): %s; restarting in %.2f s",
                self.name,
                error_class.value,
                self.failures,
                self.last_error,
                delay,
                exc_info=exc if unexpected else None,
                extra={
                    "task": self.name,
                    "error_class": error_class.value,
                    "attempt": self.failures,
                    "delay": delay,
                },
            )
        return delay

    def _give_up(self, exc: Exception, why: str) -> float | None:
        self.logger.error(
            "task %r failed for good (%s): %s",
            self.name,
            why,
            self.last_error,
            exc_info=exc,
            extra={"task": self.name, "reason": why},
        )
        return None


async def robust_task(
    name: str,
    work: Work[T],
    *,
    restart_on_failure: bool = True,
    backoff_seconds: float | None = None,
    policy: RestartPolicy | None = None,
    logger: logging.Logger | None = None,
    now: Callable[[], datetime] = datetime.now,
) -> T | None:
    """Run ``work`` until it succeeds, restarting it after failures with exponential backoff.

    ``work`` is a zero-argument factory returning an awaitable (the way to get restarts for
    anything) or a coroutine object such as ``monitor_market("btc")``; a coroutine object is
    re-created for each restart by calling its function again with the same arguments.

    What happens to an exception from the work (see :class:`RestartPolicy` and
    :func:`classify_error`):

    * recoverable (``ConnectionError``, ``TimeoutError``, transport errors): restart after
      ``backoff_seconds``, doubling per consecutive failure, capped at 300 s;
    * unexpected (any other ``Exception``): logged with traceback, restart after a longer
      backoff (from 12 x ``backoff_seconds``);
    * fatal (``ValueError``, ``KeyError``, :class:`ConfigurationError`), restarts disabled,
      or the restart-intensity limit reached: logged at ERROR with traceback, and
      ``robust_task`` returns None: a failed task does not crash its caller;
    * ``asyncio.CancelledError``: the work's own ``finally`` runs and the cancellation is
      re-raised, also while waiting in backoff, so ``asyncio.timeout()`` and ``TaskGroup``
      around ``robust_task`` work as usual;
    * ``KeyboardInterrupt``, ``SystemExit``: propagate at once, never counted.

    Args:
        name: Names the work in logs.
        work: A factory or a coroutine object.
        restart_on_failure: False makes the first failure final.
        backoff_seconds: First delay after a recoverable error; the policy's (5.0) if None.
        policy: The restart policy; ``RestartPolicy()`` if None.
        logger: Where to log; ``logging.getLogger("polymarket_agents.supervisor")`` if None.
        now: Wall clock for reported error times.

    Returns:
        The work's result, or None after a final failure.

    Raises:
        asyncio.CancelledError: When the calling task is cancelled.
        TypeError: If ``work`` is neither a coroutine object nor callable.
        ConfigurationError: If ``backoff_seconds`` is negative.
    """
    # Work that succeeds at once needs no bookkeeping: only what re-creating it would need is
    # taken now (WorkSource.set_work); counters, policy and logger wait for a first failure.
    attempts = Attempts.__new__(Attempts)
    attempts.set_work(work, restart_on_failure)
    configured = False
    policy = resolve_policy(policy, backoff_seconds)  # raises on a bad backoff_seconds now
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    # Cancellation requests already pending when we start belong to our caller's past.
    base_cancelling = task.cancelling() if task is not None else 0
    try:
        while True:
            started = loop.time()
            try:
                awaitable = attempts.first
                if awaitable is not None:
                    attempts.first = None
                else:
                    awaitable = attempts.next()
                return await awaitable  # type: ignore[no-any-return]
            except Exception as exc:
                if task is not None and task.cancelling() > base_cancelling:
                    # The work turned our cancellation into another error while cleaning
                    # up; the cancellation still wins, or asyncio.timeout() would hang.
                    raise asyncio.CancelledError() from exc
                if not configured:
                    attempts.configure(
                        name,
                        policy,
                        restart_on_failure,
                        logger or _logger,
                        now,
                    )
                    configured = True
                clock = loop.time()
                delay = attempts.on_failure(exc, clock - started, clock)
                if delay is None:
                    return None
            # Outside the except block, so the failed attempt's traceback is already freed.
            await asyncio.sleep(delay)
            attempts.restarts += 1
    finally:
        if attempts.first is not None:
            attempts.close()
