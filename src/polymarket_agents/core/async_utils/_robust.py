"""``robust_task``: run work, restart it after failures with backoff, never swallow cancellation."""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ._observe import Observer, TaskFailure, TaskRestart, notify_failure, notify_restart
from ._policy import ErrorClass, RestartPolicy, retry_after
from ._work import Work, WorkSource, rebinds_cache

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


_RECOVERABLE = ErrorClass.RECOVERABLE


def is_plainly_recoverable(exc: Exception, policy: RestartPolicy) -> bool:
    """Whether ``exc`` is one of the policy's recoverable classes, not a group, and asks
    for no particular delay (``retry_after``)."""
    return (
        isinstance(exc, policy.recoverable)
        and not isinstance(exc, BaseExceptionGroup)
        and getattr(exc, "retry_after", None) is None
    )


def over_intensity(times: deque[float], limit: int, window: float, clock: float) -> bool:
    """Erlang/OTP's restart intensity: whether a restart at ``clock`` would be more than
    ``limit`` within ``window`` seconds; if not, it is recorded in ``times``."""
    window_start = clock - window
    while times and times[0] <= window_start:
        times.popleft()
    if len(times) >= limit:
        return True
    times.append(clock)
    return False


class Restartable(Protocol):
    """What can be asked whether it can start again: work, or a supervisor."""

    def restartable(self) -> bool:
        """Whether another attempt can be made."""

    @property
    def reason(self) -> str:
        """Why not, in words."""


class Settings:
    """How the failures of a task are judged and reported; shared by tasks started alike.

    Attributes:
        policy: Classification, backoff and the per-task restart budget.
        restart: Whether a failure may be restarted at all.
        logger: Where failures are logged.
        now: Wall clock for ``last_error_time``; None for the system's (read cheaply as
            ``time.time()`` and turned into a ``datetime`` only when asked).
        observer: Told of failures and restarts, or None.
        reported: Whether the last error and its time are kept for metrics; without them
            (``robust_task``) they are worked out only for a log line.
    """

    __slots__ = (
        "logger",
        "no_backoff",
        "now",
        "observer",
        "policy",
        "quick",
        "reported",
        "restart",
    )

    def __init__(
        self,
        policy: RestartPolicy,
        restart: bool,
        logger: logging.Logger,
        now: Callable[[], datetime] | None,
        observer: Observer | None,
        *,
        reported: bool = True,
    ) -> None:
        self.policy = policy
        self.restart = restart
        self.logger = logger
        self.now = None if now is datetime.now else now
        self.observer = observer
        self.reported = reported
        # Nothing but the error classes and the backoff to consult: the quick path applies.
        self.quick = restart and policy.classify is None and policy.max_restarts is None
        # Every delay is 0 with a zero backoff (unless a failure asks for more, which the
        # quick path leaves to on_failure).
        self.no_backoff = policy.backoff_seconds <= 0


class Attempts:
    """The failure record of one task: counts, the last error, the restart-intensity window.

    Created at a task's first failure (work that never fails needs none), and shared by
    ``robust_task`` (which loops in the caller's task) and the supervisors (which restart
    from done-callbacks), so all of them classify, count, log and back off alike.
    """

    __slots__ = (
        "errors",
        "failures",
        "heartbeat",
        "last_error",
        "last_error_at",
        "restart_times",
        "restarts",
        "stalled",
        "stalls",
    )

    def __init__(self) -> None:
        self.restarts = 0
        self.errors = 0
        self.failures = 0
        self.stalls = 0
        self.stalled = False
        self.last_error: str | None = None
        self.last_error_at: datetime | float | None = None
        self.restart_times: deque[float] | None = None
        self.heartbeat: Any = None

    @property
    def last_error_time(self) -> datetime | None:
        """When the last error happened, comparable with ``datetime.now()``."""
        at = self.last_error_at
        if isinstance(at, float):
            return datetime.fromtimestamp(at)
        return at

    def count_error(self, exc: BaseException, settings: Settings) -> None:
        """Count ``exc`` as an error and remember it as the last one."""
        self.errors += 1
        self.last_error = describe(exc)
        now = settings.now
        self.last_error_at = time.time() if now is None else now()

    def on_failure(
        self,
        name: str,
        work: Restartable,
        settings: Settings,
        exc: Exception,
        ran_for: float,
        clock: float,
    ) -> float | None:
        """Record a failure; return the delay before the restart, or None if it is final.

        Args:
            name: Names the task in logs and events.
            work: The task's work, asked whether it can be re-created.
            settings: The policy and where to report.
            exc: What the attempt raised.
            ran_for: Seconds (loop time) the attempt ran before failing.
            clock: The loop time now, for the restart-intensity window.
        """
        policy = settings.policy
        if settings.quick and is_plainly_recoverable(exc, policy) and work.restartable():
            return self.restart_quickly(name, settings, exc, ran_for)
        self.errors += 1
        if settings.reported:
            self.last_error = describe(exc)
            now = settings.now
            self.last_error_at = time.time() if now is None else now()
        if ran_for >= policy.reset_after:
            self.failures = 0
        self.failures += 1
        error_class = policy.classify_error(exc)
        if error_class is ErrorClass.FATAL:
            why = "fatal error, not restarting"
        elif not settings.restart:
            why = "restarts disabled"
        elif not work.restartable():
            why = (
                f"cannot restart: {work.reason}; pass a zero-argument factory "
                f"(for example `lambda: work(arg)`) instead of a coroutine object"
            )
        elif policy.max_restarts is not None and self._over_budget(policy, clock):
            why = (
                f"restart intensity exceeded ({policy.max_restarts} restarts "
                f"in {policy.restart_window:g} s)"
            )
        else:
            hint = retry_after(exc)
            if hint:
                delay = policy.delay(self.failures, error_class, at_least=hint)
            else:
                delay = policy.delay(self.failures, error_class)
            log = settings.logger
            if log.isEnabledFor(logging.WARNING):
                self._log_restart(name, settings, exc, error_class, delay)
            if settings.observer is not None:
                self._notify(name, settings, exc, error_class, delay, "")
            return delay
        settings.logger.error(
            "task %r failed for good (%s): %s",
            name,
            why,
            self.last_error if settings.reported else describe(exc),
            exc_info=exc,
            extra={"task": name, "reason": why},
        )
        if settings.observer is not None:
            self._notify(name, settings, exc, error_class, None, why)
        return None

    def restart_quickly(
        self, name: str, settings: Settings, exc: Exception, ran_for: float
    ) -> float:
        """Record the common failure; return the delay before the restart.

        The common failure is a recoverable error of restartable work, when the policy has
        nothing else to consult (``settings.quick`` and :func:`is_plainly_recoverable`): what
        :meth:`on_failure` would decide, in fewer steps. It can run a hundred thousand times
        a second.
        """
        self.errors += 1
        if settings.reported:
            self.last_error = describe(exc)
            now = settings.now
            self.last_error_at = time.time() if now is None else now()
        policy = settings.policy
        if ran_for >= policy.reset_after:
            self.failures = 0
        self.failures += 1
        delay = 0.0 if settings.no_backoff else policy.delay(self.failures, _RECOVERABLE)
        if settings.logger.isEnabledFor(logging.WARNING):
            self._log_restart(name, settings, exc, _RECOVERABLE, delay)
        if settings.observer is not None:
            self._notify(name, settings, exc, _RECOVERABLE, delay, "")
        return delay

    def _log_restart(
        self,
        name: str,
        settings: Settings,
        exc: Exception,
        error_class: ErrorClass,
        delay: float,
    ) -> None:
        unexpected = error_class is ErrorClass.UNEXPECTED
        settings.logger.log(
            logging.ERROR if unexpected else logging.WARNING,
            "task %r failed (%s error, failure %d): %s; restarting in %.2f s",
            name,
            error_class.value,
            self.failures,
            self.last_error if settings.reported else describe(exc),
            delay,
            exc_info=exc if unexpected else None,
            extra={
                "task": name,
                "error_class": error_class.value,
                "attempt": self.failures,
                "delay": delay,
            },
        )

    def _over_budget(self, policy: RestartPolicy, clock: float) -> bool:
        times = self.restart_times
        if times is None:
            times = self.restart_times = deque()
        return over_intensity(times, policy.max_restarts, policy.restart_window, clock)  # type: ignore[arg-type]

    def _notify(
        self,
        name: str,
        settings: Settings,
        exc: Exception,
        error_class: ErrorClass,
        delay: float | None,
        why: str,
    ) -> None:
        event = TaskFailure(
            task=name,
            error=exc,
            error_class=error_class,
            failures=self.failures,
            delay=delay,
            reason=why,
        )
        notify_failure(settings.observer, event, settings.logger)  # type: ignore[arg-type]

    def restarted(self, name: str, settings: Settings) -> None:
        """Count a restart and tell the observer."""
        self.restarts += 1
        if settings.observer is not None:
            notify_restart(
                settings.observer, TaskRestart(task=name, restarts=self.restarts), settings.logger
            )


async def robust_task(
    name: str,
    work: Work[T],
    *,
    restart_on_failure: bool = True,
    backoff_seconds: float | None = None,
    policy: RestartPolicy | None = None,
    logger: logging.Logger | None = None,
    now: Callable[[], datetime] = datetime.now,
    observer: Observer | None = None,
) -> T | None:
    """Run ``work`` until it succeeds, restarting it after failures with exponential backoff.

    ``work`` is a zero-argument factory returning an awaitable (the way to get restarts for
    anything) or a coroutine object such as ``monitor_market("btc")``; a coroutine object is
    re-created for each restart by calling its function again with the same arguments.

    What happens to an exception from the work (see :class:`RestartPolicy` and
    :func:`classify_error`):

    * recoverable (``ConnectionError``, ``TimeoutError``): restart after ``backoff_seconds``,
      doubling per consecutive failure, capped at 300 s; an error with a ``retry_after``
      attribute (a server's ``Retry-After``) waits at least that long;
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
        observer: Told of every failure and restart (see :class:`Observer`).

    Returns:
        The work's result, or None after a final failure.

    Raises:
        asyncio.CancelledError: When the calling task is cancelled.
        TypeError: If ``work`` is neither a coroutine object nor callable.
        ConfigurationError: If ``backoff_seconds`` is negative.
    """
    # Work that succeeds at once needs no bookkeeping: the record of failures and the
    # settings that judge them are made at the first failure; so is the source of later
    # attempts for a coroutine object whose arguments can be read from that failure.
    awaitable: Awaitable[Any] | None = None
    source: WorkSource | None = None
    if (
        type(work) is types.CoroutineType
        and not work.cr_suspended
        and rebinds_cache.get(work.cr_code) is False
    ):
        awaitable = work
    else:
        source = WorkSource(work)
    attempts: Attempts | None = None
    settings: Settings | None = None
    factory: Callable[[], Awaitable[Any]] | None = None
    clock_of: Callable[[], float] = time.monotonic
    quick = False
    first = True
    try:
        if policy is None and backoff_seconds is None:
            policy = _DEFAULT_POLICY
        else:
            policy = resolve_policy(policy, backoff_seconds)  # raises on a bad backoff now
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        # Cancellation requests already pending when we start belong to our caller's past.
        base_cancelling = task.cancelling() if task is not None else 0
        started = loop.time()
        while True:
            try:
                if first:
                    first = False
                    if awaitable is None:
                        awaitable = source.first()  # type: ignore[union-attr]
                elif factory is not None:
                    awaitable = factory()
                else:
                    awaitable = source.next()  # type: ignore[union-attr]
                return await awaitable  # type: ignore[no-any-return]
            except Exception as exc:
                if task is not None and task.cancelling() > base_cancelling:
                    # The work turned our cancellation into another error while cleaning
                    # up; the cancellation still wins, or asyncio.timeout() would hang.
                    raise asyncio.CancelledError() from exc
                if attempts is None:
                    attempts = Attempts()
                    settings = Settings(
                        policy,
                        restart_on_failure,
                        logger or _logger,
                        now,
                        observer,
                        reported=False,
                    )
                    if source is None:
                        source = WorkSource.__new__(WorkSource)
                        source.origin = work
                        source.source = None
                    if restart_on_failure:
                        source.learn(exc)
                        factory = source.factory
                    quick = settings.quick and factory is not None
                    # The loop's clock; the stock one is time.monotonic, called directly
                    # (the restart loop reads it per attempt). A loop that keeps its own
                    # time (uvloop, looptime) is asked.
                    if getattr(loop.time, "__func__", None) is not asyncio.BaseEventLoop.time:
                        clock_of = loop.time
                clock = clock_of()
                if (
                    quick  # and is_plainly_recoverable(exc, policy), inlined: per restart
                    and isinstance(exc, policy.recoverable)
                    and not isinstance(exc, BaseExceptionGroup)
                    and getattr(exc, "retry_after", None) is None
                ):
                    delay = attempts.restart_quickly(
                        name,
                        settings,  # type: ignore[arg-type]
                        exc,
                        clock - started,
                    )
                else:
                    failed = attempts.on_failure(
                        name,
                        source,  # type: ignore[arg-type]
                        settings,  # type: ignore[arg-type]
                        exc,
                        clock - started,
                        clock,
                    )
                    if failed is None:
                        return None
                    delay = failed
            # Outside the except block, so the failed attempt's traceback is already freed.
            if delay > 0:
                await asyncio.sleep(delay)
                started = clock_of()
            else:
                await asyncio.sleep(0)
                started = clock
            attempts.restarts += 1
            if observer is not None:
                notify_restart(
                    observer,
                    TaskRestart(task=name, restarts=attempts.restarts),
                    settings.logger,  # type: ignore[union-attr]
                )
    finally:
        if first:  # never awaited: closing it avoids a "never awaited" warning
            if source is not None:
                source.close()
            elif isinstance(work, types.CoroutineType):
                work.close()
