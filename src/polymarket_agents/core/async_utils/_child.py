"""One supervised task: its attempts, its asyncio task or restart timer, heartbeat, metrics.

A :class:`TaskChild` belongs to a supervisor (``owner``), which decides what a failure
means for the other children (its strategy). The child itself runs attempts, is its tasks'
done-callback (``__call__``, which saves a bound-method object per task), and keeps nothing
about failures until the first one (``extra``), so that a supervised task costs little more
than a bare ``asyncio.Task``.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import types
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ._errors import StalledError
from ._observe import TaskRestart, notify_restart
from ._robust import Attempts, Settings
from ._work import Work, WorkSource, rebinds_cache

if TYPE_CHECKING:
    from datetime import datetime

    from ._tree import Supervisor

__all__ = ["Restart", "TaskMetrics", "TaskOutcome", "TaskStatus", "beat"]


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


class Restart(enum.StrEnum):
    """When a child of a supervisor is started again (Erlang/OTP's restart types)."""

    PERMANENT = "permanent"
    """Always: after a failure, and after it returned or was cancelled by someone else."""
    TRANSIENT = "transient"
    """Only after a failure (an exception); a return ends it for good."""
    TEMPORARY = "temporary"
    """Never; a failure is final, and a restart of its group leaves it stopped."""


StatusName = Literal["running", "restarting", "stopped"]
OutcomeName = Literal["running", "succeeded", "failed", "cancelled", "unresponsive"]


class TaskMetrics(TypedDict):
    """One task's entry in :meth:`TaskSupervisor.get_metrics`."""

    restarts: int
    """Times the work was started again (after a failure, with its group, or by name)."""
    errors: int
    """Exceptions the work raised (stalls included)."""
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
    stalls: int
    """Times it was restarted because it stopped calling :func:`beat`."""


# Internal states. Records hold plain strings rather than enum members: a metrics dict whose
# values are all atomic (str, int, float, None, datetime) is not tracked by the garbage
# collector, so the collections that 100,000 new dicts trigger have less to traverse.
NEW = "new"  # added to a supervisor that has not started yet
RUNNING: StatusName = "running"
RESTARTING: StatusName = "restarting"  # in backoff, or waiting for its group to restart
STOPPING = "stopping"  # cancelled, to stay stopped
CYCLING = "cycling"  # cancelled, to be started again with its group or by name
STOPPED: StatusName = "stopped"

PUBLIC_STATUS: dict[str, StatusName] = {
    NEW: STOPPED,
    RUNNING: RUNNING,
    RESTARTING: RESTARTING,
    STOPPING: RUNNING,
    CYCLING: RESTARTING,
    STOPPED: STOPPED,
}

STILL_RUNNING: OutcomeName = "running"
SUCCEEDED: OutcomeName = "succeeded"
FAILED: OutcomeName = "failed"
CANCELLED: OutcomeName = "cancelled"
UNRESPONSIVE: OutcomeName = "unresponsive"


class Spec(Settings):
    """The settings of children added alike: shared, so that a child holds one reference.

    Attributes:
        restart_type: When the child is started again.
        shutdown: Seconds a stop waits for the child after cancelling it; None for ever.
        heartbeat: Seconds the child may go without calling :func:`beat`; None for no check.
    """

    __slots__ = ("heartbeat", "keep_frame", "restart_type", "shutdown")

    def __init__(
        self,
        settings: Settings,
        restart_type: Restart,
        shutdown: float | None,
        heartbeat: float | None,
    ) -> None:
        Settings.__init__(
            self,
            settings.policy,
            restart_type is not Restart.TEMPORARY,
            settings.logger,
            settings.now,
            settings.observer,
        )
        self.restart_type = restart_type
        self.shutdown = shutdown
        self.heartbeat = heartbeat
        # A permanent child restarts after a return too, which leaves no traceback to learn
        # a coroutine's arguments from: its frame is kept from the start.
        self.keep_frame = restart_type is Restart.PERMANENT


class Heartbeat:
    """Beats of one running child, counted by :func:`beat` and checked by a timer."""

    __slots__ = ("beats", "seen", "timer")

    def __init__(self) -> None:
        self.beats = 0
        self.seen = 0
        self.timer: asyncio.TimerHandle | None = None


_current_heartbeat: contextvars.ContextVar[Heartbeat | None] = contextvars.ContextVar(
    "polymarket_agents_heartbeat", default=None
)


def beat() -> None:
    """Tell the supervisor that the current task is alive and making progress.

    A child added with ``heartbeat=seconds`` must call it at least that often, or it is
    cancelled and restarted as ``"stalled"``, as if it had failed with :class:`StalledError`
    (a blocked await, a lost wake-up). Tasks the child creates inherit its context, so their
    beats count for it. Elsewhere it does nothing. It costs a context-variable lookup and an
    increment, cheap enough to call per message.
    """
    heartbeat = _current_heartbeat.get()
    if heartbeat is not None:
        heartbeat.beats += 1


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Latch:
    """Resolves its future once ``count`` children have stopped.

    One latch per ``stop_all()``/``join()`` call, notified from the children themselves:
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


class TaskChild(WorkSource):
    """A supervised task.

    ``handle`` is the running attempt's asyncio task, or the timer of a pending restart.
    """

    __slots__ = (
        "attempt_start",
        "extra",
        "handle",
        "name",
        "outcome",
        "owner",
        "restarts",
        "spec",
        "state",
        "waiters",
    )

    def __init__(self, name: str, work: Work[Any], spec: Spec, owner: Supervisor) -> None:
        # WorkSource.set_work, inlined for the common case: this runs per task started.
        if (
            type(work) is types.CoroutineType
            and not spec.keep_frame
            and not work.cr_suspended
            and rebinds_cache.get(work.cr_code) is False
        ):
            self.origin: object = work
            self.source = None
        else:
            self.set_work(work, spec.keep_frame)
        self.name = name
        self.owner = owner
        self.spec = spec
        self.handle: asyncio.Future[Any] | asyncio.Handle | None = None
        self.state: str = NEW
        self.outcome: OutcomeName = STILL_RUNNING
        self.restarts = 0
        self.attempt_start: float  # set by launch(); read only while the child runs
        # None, one Latch, or a list of them: most children never have more than one.
        self.waiters: Latch | list[Latch] | None = None
        self.extra: Attempts | None = None

    def __repr__(self) -> str:
        return f"<TaskChild {self.path!r} {PUBLIC_STATUS[self.state]}>"

    @property
    def path(self) -> str:
        """The child's name prefixed by its supervisors' (not the root's): ``"feeds/conn-1"``."""
        prefix = self.owner.prefix
        return prefix + self.name if prefix else self.name

    def attempts(self) -> Attempts:
        """The failure record, made on first use."""
        extra = self.extra
        if extra is None:
            extra = self.extra = Attempts()
        return extra

    # -- running ------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the next attempt in a new asyncio task (the first one if never started)."""
        awaitable: Any = self.origin
        if self.state is not NEW or type(awaitable) is not types.CoroutineType:
            try:
                awaitable = self.first() if self.state is NEW else self.next()
            except Exception as exc:  # the factory failed: that is this attempt's failure
                self.state = RUNNING
                self.attempt_start = self.owner.loop.time()
                self.owner.child_exited(self, exc, 0.0, FAILED)
                return
        loop = self.owner.loop
        self.state = RUNNING
        self.attempt_start = loop.time()
        if self.spec.heartbeat is not None:
            task: asyncio.Future[Any] = self._launch_with_heartbeat(awaitable, loop)
        elif type(awaitable) is types.CoroutineType:
            task = loop.create_task(awaitable, name=self.name)
        else:
            task = asyncio.ensure_future(awaitable, loop=loop)
        self.handle = task
        task.add_done_callback(self)

    def _launch_with_heartbeat(
        self, awaitable: Awaitable[Any], loop: asyncio.AbstractEventLoop
    ) -> asyncio.Task[Any]:
        extra = self.attempts()
        heartbeat = extra.heartbeat
        if heartbeat is None:
            heartbeat = extra.heartbeat = Heartbeat()
        heartbeat.beats = heartbeat.seen = 0
        context = contextvars.copy_context()
        context.run(_current_heartbeat.set, heartbeat)
        coro = awaitable if type(awaitable) is types.CoroutineType else _awaited(awaitable)
        task = loop.create_task(coro, name=self.name, context=context)
        heartbeat.timer = loop.call_later(self.spec.heartbeat, self._check_heartbeat)  # type: ignore[arg-type]
        return task

    def _check_heartbeat(self) -> None:
        extra = self.extra
        assert extra is not None
        heartbeat: Heartbeat = extra.heartbeat
        heartbeat.timer = None
        task = self.handle
        if self.state is not RUNNING or not isinstance(task, asyncio.Future) or task.done():
            return
        interval: float = self.spec.heartbeat  # type: ignore[assignment]
        if heartbeat.beats != heartbeat.seen:
            heartbeat.seen = heartbeat.beats
            heartbeat.timer = self.owner.loop.call_later(interval, self._check_heartbeat)
            return
        extra.stalled = True
        extra.stalls += 1
        self.spec.logger.warning(
            "task %r stalled: no beat() for %.1f s; cancelling it to restart it",
            self.path,
            interval,
            extra={"task": self.path, "reason": "stalled"},
        )
        task.cancel()

    def __call__(self, task: asyncio.Future[Any]) -> None:
        """Done-callback of each attempt: record how it ended and tell the supervisor."""
        if task is not self.handle:
            return
        self.handle = None
        extra = self.extra
        if extra is not None and extra.heartbeat is not None and extra.heartbeat.timer is not None:
            extra.heartbeat.timer.cancel()
            extra.heartbeat.timer = None
        status = self.state
        if status is RUNNING:
            ran_for = self.owner.loop.time() - self.attempt_start
            if task.cancelled():
                if extra is not None and extra.stalled:
                    extra.stalled = False
                    self.learn_from(task)
                    interval = self.spec.heartbeat or 0.0
                    error = StalledError(f"stalled: no beat() for {interval:g} s")
                    self.owner.child_exited(self, error, ran_for, FAILED)
                else:
                    self.owner.child_exited(self, None, ran_for, CANCELLED)
                return
            exc = task.exception()
            if exc is None:
                self.owner.child_exited(self, None, ran_for, SUCCEEDED)
            elif not isinstance(exc, Exception):
                # KeyboardInterrupt / SystemExit: the loop re-raised it already; never retried.
                self.finish(FAILED)
            else:
                self.owner.child_exited(self, exc, ran_for, FAILED)
            return
        # Stopped by its supervisor (STOPPING) or for a restart (CYCLING).
        if not task.cancelled():
            exc = task.exception()
            if isinstance(exc, Exception):
                # Asked to stop, it raised something else while cleaning up: count it, but
                # never restart a task for it.
                self.attempts().count_error(exc, self.spec)
                self.spec.logger.warning(
                    "task %r raised while stopping: %s",
                    self.path,
                    self.extra.last_error,  # type: ignore[union-attr]
                    exc_info=exc,
                    extra={"task": self.path},
                )
                if status is CYCLING:
                    self.learn(exc)
        elif status is CYCLING:
            self.learn_from(task)
        if status is CYCLING:
            self.state = RESTARTING
            self.notify_waiters()
        else:
            self.finish(CANCELLED)

    def learn_from(self, task: asyncio.Future[Any]) -> None:
        """Learn the work's arguments from a cancelled attempt, if a restart needs them."""
        if self.source is None:
            try:
                task.result()
            except asyncio.CancelledError as cancelled:
                self.learn(cancelled)

    def schedule(self, delay: float) -> None:
        """Start the next attempt after ``delay`` seconds (status RESTARTING until then)."""
        self.state = RESTARTING
        loop = self.owner.loop
        if delay > 0:
            self.handle = loop.call_later(delay, self.relaunch)
        else:
            self.handle = loop.call_soon(self.relaunch)

    def relaunch(self) -> None:
        """Count a restart and start the next attempt now."""
        self.handle = None
        self.outcome = STILL_RUNNING
        self.count_restart()
        self.launch()

    def count_restart(self) -> None:
        """Count a restart and tell the observer."""
        self.restarts += 1
        spec = self.spec
        if spec.observer is not None:
            notify_restart(
                spec.observer, TaskRestart(task=self.path, restarts=self.restarts), spec.logger
            )

    # -- stopping -----------------------------------------------------------------------

    def request_stop(
        self, cycle: bool = False, *, again: bool = True
    ) -> asyncio.Future[Any] | None:
        """Cancel the attempt or the pending restart; return the task to wait for, if any.

        Args:
            cycle: Stop it to start it again (its group restarts, or a restart by name).
            again: Cancel an attempt that was cancelled before and still runs once more.
        """
        status = self.state
        handle = self.handle
        if status is STOPPING or status is CYCLING:
            if not cycle:
                self.state = STOPPING
            if again:
                handle.cancel()  # type: ignore[union-attr]
            return handle  # type: ignore[return-value]
        if status is RUNNING:
            self.state = CYCLING if cycle else STOPPING
            handle.cancel()  # type: ignore[union-attr]
            return handle  # type: ignore[return-value]
        if handle is not None:  # a pending restart
            handle.cancel()
            self.handle = None
        # Cycling, a child waiting for its restart keeps waiting (for its group); one that
        # had stopped stays stopped.
        if not cycle and status is not STOPPED:
            self.finish(CANCELLED)
        return None

    def finish(self, outcome: OutcomeName) -> None:
        """Mark the child stopped with ``outcome`` and wake whoever waits for it."""
        if self.state is NEW and type(self.origin) is types.CoroutineType:
            self.close()  # never run: closing it avoids a "never awaited" warning
        self.state = STOPPED
        self.outcome = outcome
        self.notify_waiters()

    def notify_waiters(self) -> None:
        """Wake the latches waiting for this child to stop."""
        waiters = self.waiters
        if waiters is not None:
            self.waiters = None
            if type(waiters) is list:
                for latch in waiters:
                    latch.notify()
            else:
                waiters.notify()  # type: ignore[union-attr]

    def add_waiter(self, latch: Latch) -> None:
        """Notify ``latch`` when this child stops."""
        latch.count += 1
        waiters = self.waiters
        if waiters is None:
            self.waiters = latch
        elif type(waiters) is list:
            waiters.append(latch)
        else:
            self.waiters = [waiters, latch]  # type: ignore[list-item]

    def running_task(self) -> asyncio.Future[Any] | None:
        """The asyncio task of the current attempt, if one runs."""
        handle = self.handle
        return handle if isinstance(handle, asyncio.Future) else None

    # -- reporting ----------------------------------------------------------------------

    def metrics(self, clock: float) -> TaskMetrics:
        """This child's :class:`TaskMetrics`."""
        status = PUBLIC_STATUS[self.state]
        extra = self.extra
        uptime = clock - self.attempt_start if status is RUNNING else 0.0
        if extra is None:
            return {
                "restarts": self.restarts,
                "errors": 0,
                "last_error": None,
                "last_error_time": None,
                "status": status,
                "outcome": self.outcome,
                "uptime": uptime,
                "stalls": 0,
            }
        return {
            "restarts": self.restarts,
            "errors": extra.errors,
            "last_error": extra.last_error,
            "last_error_time": extra.last_error_time,
            "status": status,
            "outcome": self.outcome,
            "uptime": uptime,
            "stalls": extra.stalls,
        }
