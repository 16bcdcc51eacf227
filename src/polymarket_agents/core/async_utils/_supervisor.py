"""``TaskSupervisor``: many named tasks, restarts, metrics, and a shutdown that cannot hang."""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Literal, TypedDict

from ._errors import NotRestartableError, TaskAlreadyRunningError, UnknownTaskError
from ._policy import RestartPolicy
from ._robust import LOGGER_NAME, Attempts, resolve_policy
from ._work import Work

__all__ = ["TaskMetrics", "TaskOutcome", "TaskStatus", "TaskSupervisor"]

_logger = logging.getLogger(LOGGER_NAME)


class TaskStatus(enum.StrEnum):
    """Where a supervised task is in its life; members compare equal to their strings.

    ::

        start_task ──► RUNNING ──fails, will restart──► RESTARTING ──backoff over──► RUNNING
                          │                                  │
                          └──returns / fails for good / ─────┴──stopped──► STOPPED
                             is cancelled

    ``start_task`` or ``restart_task`` on a STOPPED name starts it again.
    """

    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


class TaskOutcome(enum.StrEnum):
    """How a task ended (``"running"`` while it has not)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNRESPONSIVE = "unresponsive"
    """It was cancelled but did not finish within the stop timeout: it swallows cancellation."""


StatusName = Literal["running", "restarting", "stopped"]
OutcomeName = Literal["running", "succeeded", "failed", "cancelled", "unresponsive"]

# Records hold these plain strings rather than the enum members: a metrics dict whose values
# are all atomic (str, int, float, None, datetime) is not tracked by the garbage collector, so
# the collections that 100,000 new dicts trigger in get_metrics() have less to traverse.
_RUNNING: StatusName = "running"
_STILL_RUNNING: OutcomeName = "running"
_RESTARTING: StatusName = "restarting"
_STOPPED: StatusName = "stopped"
_SUCCEEDED: OutcomeName = "succeeded"
_FAILED: OutcomeName = "failed"
_CANCELLED: OutcomeName = "cancelled"
_UNRESPONSIVE: OutcomeName = "unresponsive"


class TaskMetrics(TypedDict):
    """One task's entry in :meth:`TaskSupervisor.get_metrics`."""

    restarts: int
    """Times the work was started again (after a failure, or by name)."""
    errors: int
    """Exceptions the work raised."""
    last_error: str | None
    """The last one, as ``"ConnectionError: Network timeout"``."""
    last_error_time: datetime | None
    """When it happened, comparable with ``datetime.now()``."""
    status: StatusName
    """A :class:`TaskStatus` value: ``"running"``, ``"restarting"`` or ``"stopped"``."""
    outcome: OutcomeName
    """A :class:`TaskOutcome` value."""
    uptime: float
    """Seconds the current attempt has been running; 0 unless RUNNING."""


class _Latch:
    """Resolves its future once ``count`` tasks have finished.

    One latch per ``stop_all()``/``join()`` call, notified from the tasks' own done-callbacks:
    cheaper than ``asyncio.wait``, which adds and later removes a callback on every task.
    """

    __slots__ = ("count", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        self.future: asyncio.Future[None] = loop.create_future()

    def notify(self) -> None:
        self.count -= 1
        if self.count <= 0 and not self.future.done():
            self.future.set_result(None)


class _Supervised(Attempts):
    """One named task: its attempts, its current asyncio task or backoff timer, its metrics.

    The object is its tasks' done-callback (``__call__``), which saves a bound-method
    object per task.
    """

    __slots__ = (
        "attempt_start",
        "loop",
        "outcome",
        "status",
        "stopping",
        "task",
        "timer",
        "waiters",
    )

    def __init__(
        self,
        name: str,
        work: Work[Any],
        policy: RestartPolicy,
        restart_on_failure: bool,
        logger: logging.Logger,
        now: Callable[[], datetime],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        Attempts.__init__(self, name, work, policy, restart_on_failure, logger, now)
        self.loop = loop
        self.task: asyncio.Future[Any] | None = None
        self.timer: asyncio.Handle | None = None
        # None, one _Latch, or a list of them: most tasks never have more than one.
        self.waiters: _Latch | list[_Latch] | None = None
        self.stopping = False
        self.status: StatusName = _RUNNING
        self.outcome: OutcomeName = _STILL_RUNNING
        self.attempt_start = 0.0

    def launch(self) -> None:
        """Start the next attempt in a new asyncio task."""
        loop = self.loop
        awaitable = self.first
        if awaitable is not None:
            self.first = None
        else:
            try:
                awaitable = self.next()
            except Exception as exc:  # the factory failed: that is this attempt's failure
                self._failed(exc, 0.0)
                return
        self.status = _RUNNING
        self.attempt_start = loop.time()
        if isinstance(awaitable, types.CoroutineType):
            task: asyncio.Future[Any] = loop.create_task(awaitable, name=self.name)
        else:
            task = asyncio.ensure_future(awaitable, loop=loop)
        self.task = task
        task.add_done_callback(self)

    def __call__(self, task: asyncio.Future[Any]) -> None:
        """Done-callback of each attempt: record the outcome, restart if the policy says so."""
        if task is not self.task:
            return
        self.task = None
        if task.cancelled():
            self.finish(_CANCELLED)
            return
        exc = task.exception()
        if exc is None:
            self.finish(_CANCELLED if self.stopping else _SUCCEEDED)
        elif not isinstance(exc, Exception):
            # KeyboardInterrupt / SystemExit: the loop re-raised it already; never retried.
            self.finish(_FAILED)
        elif self.stopping:
            # Asked to stop, it raised something else while cleaning up: count it, but
            # never restart a task that is being stopped.
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_error_time = self.now()
            self.logger.warning(
                "task %r raised while stopping: %s",
                self.name,
                self.last_error,
                exc_info=exc,
                extra={"task": self.name},
            )
            self.finish(_CANCELLED)
        else:
            self._failed(exc, self.loop.time() - self.attempt_start)

    def _failed(self, exc: Exception, ran_for: float) -> None:
        loop = self.loop
        delay = self.on_failure(exc, ran_for, loop.time())
        if delay is None:
            self.finish(_FAILED)
            return
        self.status = _RESTARTING
        if delay > 0:
            self.timer = loop.call_later(delay, self._relaunch)
        else:
            self.timer = loop.call_soon(self._relaunch)

    def _relaunch(self) -> None:
        self.timer = None
        self.restarts += 1
        self.launch()

    def finish(self, outcome: OutcomeName) -> None:
        """Mark the task stopped with ``outcome`` and wake whoever joined it."""
        self.status = _STOPPED
        self.outcome = outcome
        self.close()
        waiters = self.waiters
        if waiters is not None:
            self.waiters = None
            if type(waiters) is list:
                for latch in waiters:
                    latch.notify()
            else:
                waiters.notify()  # type: ignore[union-attr]

    def add_waiter(self, latch: _Latch) -> None:
        """Notify ``latch`` when this task stops."""
        latch.count += 1
        waiters = self.waiters
        if waiters is None:
            self.waiters = latch
        elif type(waiters) is list:
            waiters.append(latch)
        else:
            self.waiters = [waiters, latch]  # type: ignore[list-item]

    def request_stop(self) -> asyncio.Future[Any] | None:
        """Cancel the attempt or the pending restart; return the task to wait for, if any."""
        self.stopping = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.finish(_CANCELLED)
            return None
        task = self.task
        if task is not None:
            task.cancel()
        elif self.status is not _STOPPED:  # cancelled before its first launch
            self.finish(_CANCELLED)
        return task


class TaskSupervisor:
    """Runs many named tasks, restarts them on failure, reports metrics, stops them all.

    Each task runs its work with the same classification and backoff as :func:`robust_task`,
    restarting from a done-callback rather than a wrapper coroutine, so a supervised task
    costs little more than a bare ``asyncio.Task`` (see ``bench/``).

    Use it directly (``await supervisor.stop_all()`` at the end) or as ``async with
    TaskSupervisor() as supervisor:``, which stops every task on the way out.

    Args:
        policy: Default restart policy of every task; ``RestartPolicy()`` if None.
        stop_timeout: Default seconds ``stop_all``/``stop_task`` wait for tasks to finish.
        logger: Where to log; ``logging.getLogger("polymarket_agents.supervisor")`` if None.
        now: Wall clock for ``last_error_time``.
    """

    def __init__(
        self,
        *,
        policy: RestartPolicy | None = None,
        stop_timeout: float = 10.0,
        logger: logging.Logger | None = None,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self._policy = policy or RestartPolicy()
        self._stop_timeout = stop_timeout
        self._logger = logger or _logger
        self._now = now
        self._records: dict[str, _Supervised] = {}
        # Kept under the seed's name: code written against the seed reads it directly.
        self._shutdown_event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._signals: list[int] = []
        self._signal_count = 0
        self._unresponsive: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        running = sum(1 for rec in self._records.values() if rec.status is not _STOPPED)
        return f"<TaskSupervisor tasks={len(self._records)} active={running}>"

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._loop_thread = threading.get_ident()
        return loop

    # -- starting ---------------------------------------------------------------------------

    async def start_task(
        self,
        name: str,
        work: Work[Any],
        *,
        restart_on_failure: bool = True,
        backoff_seconds: float | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        """Start ``work`` as the task ``name``, supervised like :func:`robust_task`.

        The task is scheduled (status ``"running"``) when this returns. Starting a name that
        has stopped starts it again, keeping its counts (its ``restarts`` grows by one); an
        exhausted coroutine object that this supervisor ran under that name is re-created.

        Args:
            name: Unique among running tasks; names the task in metrics and logs.
            work: A zero-argument factory returning an awaitable, or a coroutine object.
            restart_on_failure: False makes the first failure final.
            backoff_seconds: First delay after a recoverable error; the policy's if None.
            policy: This task's policy; the supervisor's if None.

        Raises:
            TaskAlreadyRunningError: If a task of that name is running or restarting.
            TypeError: If ``work`` is neither a coroutine object nor callable.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind()
        old = self._records.get(name)
        if old is not None and old.status is not _STOPPED:
            if isinstance(work, types.CoroutineType) and work is not old.origin:
                work.close()  # we will never run it; closing avoids a "never awaited" warning
            raise TaskAlreadyRunningError(name)
        origin = None
        if old is not None and old.origin is not None and work is old.origin:
            # The seed's auto-restart passes the original, exhausted coroutine object again.
            if not old.restartable():
                raise NotRestartableError(f"task {name!r}: {old.reason}; pass a factory")
            origin, work = old.origin, old.factory  # type: ignore[assignment]
        rec = _Supervised(
            name,
            work,
            self._policy
            if policy is None and backoff_seconds is None
            else resolve_policy(policy or self._policy, backoff_seconds),
            restart_on_failure,
            self._logger,
            self._now,
            loop,
        )
        if origin is not None:
            rec.origin = origin
        if old is not None:
            rec.restarts = old.restarts + 1
            rec.errors = old.errors
            rec.last_error = old.last_error
            rec.last_error_time = old.last_error_time
        self._records[name] = rec
        rec.launch()

    async def restart_task(self, name: str, *, timeout: float | None = None) -> None:
        """Stop the task ``name`` if it runs, then start its work again.

        Args:
            name: A task this supervisor started before.
            timeout: Seconds to wait for it to stop; the supervisor's ``stop_timeout`` if None.

        Raises:
            UnknownTaskError: If no task of that name was ever started.
            NotRestartableError: If its work cannot be re-created (pass a factory).
            TaskAlreadyRunningError: If it did not stop within the timeout.
        """
        rec = self._record(name)
        await self.stop_task(name, timeout=timeout)
        if not rec.restartable():
            raise NotRestartableError(f"task {name!r}: {rec.reason}; pass a factory")
        await self.start_task(
            name,
            rec.factory,  # type: ignore[arg-type]
            restart_on_failure=rec.restart_on_failure,
            policy=rec.policy,
        )

    # -- stopping ---------------------------------------------------------------------------

    async def stop_task(self, name: str, *, timeout: float | None = None) -> bool:
        """Cancel the task ``name`` (or its pending restart) and wait for it to finish.

        Args:
            name: A task this supervisor started.
            timeout: Seconds to wait; the supervisor's ``stop_timeout`` if None.

        Returns:
            True if it stopped; False if it is still running after the timeout (it swallows
            cancellation: its outcome is then ``"unresponsive"`` and a WARNING names it).

        Raises:
            UnknownTaskError: If no task of that name was ever started.
        """
        return not await self._stop([self._record(name)], timeout)

    async def stop_all(self, timeout: float | None = None) -> list[str]:
        """Cancel every task and pending restart, and wait up to ``timeout`` for them.

        Returns even when a task swallows its cancellation: such tasks are named in a
        WARNING, get the outcome ``"unresponsive"``, and are kept referenced until they end.
        Also sets the shutdown event.

        Args:
            timeout: Seconds to wait; the supervisor's ``stop_timeout`` (10 s) if None.

        Returns:
            The names of the tasks that had not stopped when the timeout expired.
        """
        self._shutdown_event.set()
        return await self._stop(list(self._records.values()), timeout)

    async def _stop(self, records: list[_Supervised], timeout: float | None) -> list[str]:
        latch = _Latch(self._bind())
        for rec in records:
            if rec.request_stop() is not None:
                rec.add_waiter(latch)
        if latch.count <= 0:
            return []
        timeout = self._stop_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(latch.future)
        except TimeoutError:
            pass
        stuck = [rec for rec in records if rec.task is not None and not rec.task.done()]
        if not stuck:
            return []
        for rec in stuck:
            rec.outcome = _UNRESPONSIVE
            assert rec.task is not None
            self._unresponsive.add(rec.task)
            rec.task.add_done_callback(self._unresponsive.discard)
        names = [rec.name for rec in stuck]
        self._logger.warning(
            "%d task(s) did not stop within %.1f s of cancellation (they swallow "
            "CancelledError): %s",
            len(names),
            timeout,
            ", ".join(map(repr, names)),
            extra={"tasks": names},
        )
        return names

    async def join(self, name: str | None = None) -> None:
        """Wait until the task ``name`` (or every task, if None) has stopped.

        Raises:
            UnknownTaskError: If no task of that name was ever started.
        """
        records = [self._record(name)] if name is not None else list(self._records.values())
        latch = _Latch(self._bind())
        for rec in records:
            if rec.status is not _STOPPED:
                rec.add_waiter(latch)
        if latch.count > 0:
            await latch.future

    # -- shutdown signalling ------------------------------------------------------------------

    def signal_shutdown(self) -> None:
        """Ask for shutdown: sets the shutdown event and wakes the loop at once.

        Safe from the loop, from another thread, and from a plain ``signal.signal``
        handler. (Setting an ``asyncio.Event`` from a signal handler or another thread is
        not enough: the loop would sleep on until its next timer.) Does not stop tasks:
        whoever waits for shutdown calls :meth:`stop_all`.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            self._shutdown_event.set()
            return
        if threading.get_ident() == self._loop_thread:
            self._shutdown_event.set()
            wake: Callable[[], None] = _nothing
        else:
            wake = self._shutdown_event.set
        try:
            # Writes to the loop's self-pipe, which is what wakes a sleeping selector.
            loop.call_soon_threadsafe(wake)
        except RuntimeError:  # the loop closed meanwhile
            self._shutdown_event.set()

    @property
    def shutdown_requested(self) -> bool:
        """Whether :meth:`signal_shutdown` (or :meth:`stop_all`) was called."""
        return self._shutdown_event.is_set()

    async def wait_for_shutdown(self) -> None:
        """Wait until :meth:`signal_shutdown` is called (or :meth:`stop_all` begins)."""
        self._bind()
        await self._shutdown_event.wait()

    def add_signal_handlers(
        self,
        signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM),
        *,
        on_repeat: Callable[[int], None] | None = None,
    ) -> None:
        """Call :meth:`signal_shutdown` on SIGINT and SIGTERM, through the running loop.

        Args:
            signals: The signals to handle.
            on_repeat: Called with the signal number when a signal arrives after shutdown
                was already requested (a second Ctrl-C); by default it is only logged.

        Raises:
            RuntimeError: If no loop is running.
            NotImplementedError: On platforms without loop signal handlers (Windows).
        """
        loop = self._bind()
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal, signum, on_repeat)
            self._signals.append(signum)

    def remove_signal_handlers(self) -> None:
        """Undo :meth:`add_signal_handlers`."""
        loop = self._loop
        for signum in self._signals:
            if loop is not None and not loop.is_closed():
                loop.remove_signal_handler(signum)
        self._signals.clear()

    def _on_signal(self, signum: int, on_repeat: Callable[[int], None] | None) -> None:
        self._signal_count += 1
        name = signal.Signals(signum).name
        if self._signal_count > 1:
            self._logger.warning("received %s again while shutting down", name)
            if on_repeat is not None:
                on_repeat(signum)
            return
        self._logger.info("received %s, shutting down", name)
        self.signal_shutdown()

    # -- metrics --------------------------------------------------------------------------

    def get_metrics(self) -> dict[str, TaskMetrics]:
        """A snapshot of every task's metrics, keyed by name; a plain copy, cheap to call.

        Returns:
            ``{name: {"restarts", "errors", "last_error", "last_error_time", "status",
            "outcome", "uptime"}}`` (see :class:`TaskMetrics`); stopped tasks stay listed.
        """
        loop = self._loop
        clock = loop.time() if loop is not None else 0.0
        running = _RUNNING
        # Inlined rather than a method per record: this runs over every task.
        return {
            name: {
                "restarts": rec.restarts,
                "errors": rec.errors,
                "last_error": rec.last_error,
                "last_error_time": rec.last_error_time,
                "status": rec.status,
                "outcome": rec.outcome,
                "uptime": clock - rec.attempt_start if rec.status is running else 0.0,
            }
            for name, rec in self._records.items()
        }

    def status(self, name: str) -> StatusName:
        """The status of the task ``name``.

        Raises:
            UnknownTaskError: If no task of that name was ever started.
        """
        return self._record(name).status

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def __bool__(self) -> bool:
        # With __len__ alone an empty supervisor would be falsy, and `given or
        # TaskSupervisor()` would quietly build a second one.
        return True

    def _record(self, name: str) -> _Supervised:
        try:
            return self._records[name]
        except KeyError:
            raise UnknownTaskError(name) from None

    # -- async with -----------------------------------------------------------------------

    async def __aenter__(self) -> TaskSupervisor:
        self._bind()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.remove_signal_handlers()
        await self.stop_all()


def _nothing() -> None:
    """Scheduled only to wake the loop."""
