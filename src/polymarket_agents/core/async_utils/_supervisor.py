"""``TaskSupervisor``: many named tasks, restarts, metrics, and a shutdown that cannot hang.

A flat supervision tree (one_for_one, transient children, no restart-intensity limit) with
the seed's interface: tasks started by name at any time, a shutdown event, and a
``stop_all`` that cancels every task at once — a pool of independent tasks, stopped as
Erlang/OTP stops a ``simple_one_for_one`` supervisor's children: together, in no order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import types
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ._child import (
    NEW,
    PUBLIC_STATUS,
    RESTARTING,
    RUNNING,
    STOPPED,
    UNRESPONSIVE,
    Latch,
    Restart,
    TaskChild,
    TaskMetrics,
    TaskOutcome,
    TaskStatus,
)
from ._errors import NotRestartableError, TaskAlreadyRunningError, UnknownTaskError
from ._observe import Observer
from ._policy import RestartPolicy
from ._robust import Attempts, resolve_policy
from ._tree import UNSET, Strategy, Supervisor
from ._work import Work

__all__ = ["TaskMetrics", "TaskOutcome", "TaskStatus", "TaskSupervisor"]


class TaskSupervisor(Supervisor):
    """Runs many named tasks, restarts them on failure, reports metrics, stops them all.

    Each task runs its work with the same classification and backoff as :func:`robust_task`,
    restarting from a done-callback rather than a wrapper coroutine, so a supervised task
    costs little more than a bare ``asyncio.Task`` (see ``bench/``).

    Use it directly (``await supervisor.stop_all()`` at the end) or as ``async with
    TaskSupervisor() as supervisor:``, which stops every task on the way out. It is also a
    :class:`Supervisor` (one_for_one), so it can be a child of a supervision tree.

    Args:
        policy: Default restart policy of every task; ``RestartPolicy()`` if None.
        stop_timeout: Default seconds ``stop_all``/``stop_task`` wait for tasks to finish.
        logger: Where to log; ``logging.getLogger("polymarket_agents.supervisor")`` if None.
        now: Wall clock for ``last_error_time``.
        observer: Told of every failure and restart (see :class:`Observer`).
        name: Names it in logs, and in a supervision tree.
    """

    def __init__(
        self,
        *,
        policy: RestartPolicy | None = None,
        stop_timeout: float = 10.0,
        logger: logging.Logger | None = None,
        now: Callable[[], datetime] = datetime.now,
        observer: Observer | None = None,
        name: str = "tasks",
    ) -> None:
        super().__init__(
            name,
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=None,
            policy=policy,
            restart=Restart.TRANSIENT,
            shutdown=stop_timeout,
            observer=observer,
            logger=logger,
            now=now,
        )
        self._stop_timeout = stop_timeout
        # Kept under the seed's name: code written against the seed reads it directly.
        self._shutdown_event = asyncio.Event()
        self._loop_thread: int | None = None
        self._signals: list[int] = []
        self._signal_count = 0
        self.state = RUNNING  # takes tasks at any time, started or not
        self._default_specs()

    def _default_specs(self) -> None:
        self._transient = self._spec(None, Restart.TRANSIENT, UNSET, None)
        self._temporary = self._spec(None, Restart.TEMPORARY, UNSET, None)

    def _inherit(self, observer: Observer | None) -> None:
        super()._inherit(observer)
        self._default_specs()

    def __repr__(self) -> str:
        running = sum(1 for rec in self._children.values() if rec.state is not STOPPED)
        return f"<TaskSupervisor tasks={len(self._children)} active={running}>"

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = super()._bind()
        self._loop_thread = threading.get_ident()
        return loop

    def _task_spec(
        self,
        restart_on_failure: bool,
        policy: RestartPolicy | None,
        backoff_seconds: float | None,
        heartbeat: float | None,
    ) -> Any:
        restart = Restart.TRANSIENT if restart_on_failure else Restart.TEMPORARY
        if policy is None and backoff_seconds is None:
            return self._spec(None, restart, UNSET, heartbeat)
        return self._spec(
            resolve_policy(policy or self._policy, backoff_seconds), restart, UNSET, heartbeat
        )

    # -- starting ---------------------------------------------------------------------------

    async def start_task(
        self,
        name: str,
        work: Work[Any],
        *,
        restart_on_failure: bool = True,
        backoff_seconds: float | None = None,
        policy: RestartPolicy | None = None,
        heartbeat: float | None = None,
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
            heartbeat: Seconds the task may go without calling :func:`beat` before it is
                restarted as stalled; None for no such check.

        Raises:
            TaskAlreadyRunningError: If a task of that name is running or restarting.
            TypeError: If ``work`` is neither a coroutine object nor callable.
        """
        if asyncio.get_running_loop() is not self.loop:
            self._bind()
        records = self._children
        if policy is None and backoff_seconds is None and heartbeat is None and name not in records:
            # The common case, kept short: it runs once per task started.
            rec = TaskChild(
                name, work, self._transient if restart_on_failure else self._temporary, self
            )
            records[name] = rec
            rec.launch()
            return
        old = records.get(name)
        spec = self._task_spec(restart_on_failure, policy, backoff_seconds, heartbeat)
        if old is None:
            rec = TaskChild(name, work, spec, self)
            records[name] = rec
            rec.launch()
            return
        rec, origin = self._replace(name, old, work, spec)
        records[name] = rec
        rec.launch()
        if origin is not None:
            rec.origin = origin  # recognised if the seed passes it yet again

    def _replace(self, name: str, old: Any, work: Work[Any], spec: Any) -> tuple[TaskChild, object]:
        if isinstance(old, Supervisor) or (old.state is not STOPPED and old.state is not NEW):
            if isinstance(work, types.CoroutineType) and work is not getattr(old, "origin", None):
                work.close()  # we will never run it; closing avoids a "never awaited" warning
            raise TaskAlreadyRunningError(name)
        origin = None
        if old.origin is not None and work is old.origin:
            # The seed's auto-restart passes the original, exhausted coroutine object again.
            if not old.restartable():
                raise NotRestartableError(f"task {name!r}: {old.reason}; pass a factory")
            origin, work = old.origin, old.source
        rec = TaskChild(name, work, spec, self)
        previous: Attempts | None = old.extra
        if previous is not None:
            extra = rec.attempts()
            extra.errors = previous.errors
            extra.stalls = previous.stalls
            extra.last_error = previous.last_error
            extra.last_error_at = previous.last_error_at
        rec.restarts = old.restarts
        rec.count_restart()
        return rec, origin

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
        rec = self._task_record(name)
        if await self._stop_together([rec], timeout, cycle=True):
            raise TaskAlreadyRunningError(name)
        if not rec.restartable():
            if rec.state is RESTARTING:
                rec.state = STOPPED
            raise NotRestartableError(f"task {name!r}: {rec.reason}; pass a factory")
        rec.state = RESTARTING
        rec.relaunch()

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
        rec = self._task_record(name)
        task = rec.running_task()
        stopped = not await self._stop_together([rec], timeout)
        if stopped and task is not None:
            rec.learn_from(task)  # so that restart_task can re-create a coroutine object
        return stopped

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
        return await self._stop_together(list(self._children.values()), timeout)

    async def _halt(self, timeout: float | None = None, *, cycle: bool = False) -> list[str]:
        # Stopped by a parent tree: together, like stop_all.
        return await self._stop_together(list(self._children.values()), timeout, cycle=cycle)

    async def _stop_together(
        self, records: list[Any], timeout: float | None, *, cycle: bool = False
    ) -> list[str]:
        loop = self._bind()
        timeout = self._stop_timeout if timeout is None else timeout
        latch = Latch(loop)
        nested = []
        for rec in records:
            if isinstance(rec, Supervisor):
                nested.append(loop.create_task(rec._stop_as_child(cycle, timeout)))
            elif rec.request_stop(cycle) is not None:
                rec.add_waiter(latch)
        if latch.count > 0:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(latch.future)
            except TimeoutError:
                pass
        names: list[str] = []
        for stopping in nested:
            names.extend(await stopping)
        stuck = [
            rec
            for rec in records
            if isinstance(rec, TaskChild)
            and rec.running_task() is not None
            and not rec.running_task().done()  # type: ignore[union-attr]
        ]
        if not stuck:
            return names
        for rec in stuck:
            rec.outcome = UNRESPONSIVE
            task = rec.running_task()
            assert task is not None
            self._unresponsive.add(task)
            task.add_done_callback(self._unresponsive.discard)
        stuck_names = [rec.path for rec in stuck]
        self._logger.warning(
            "%d task(s) did not stop within %.1f s of cancellation (they swallow "
            "CancelledError, or still finish work shielded from it): %s",
            len(stuck_names),
            timeout,
            ", ".join(map(repr, stuck_names)),
            extra={"tasks": stuck_names},
        )
        return names + stuck_names

    async def join(self, name: str | None = None) -> None:
        """Wait until the task ``name`` (or every task, if None) has stopped.

        Raises:
            UnknownTaskError: If no task of that name was ever started.
        """
        records = (
            [self._task_record(name)]
            if name is not None
            else [rec for rec in self._children.values() if isinstance(rec, TaskChild)]
        )
        latch = Latch(self._bind())
        for rec in records:
            if rec.state is not STOPPED and rec.state is not NEW:
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
        loop = self.loop
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
        loop = self.loop
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
            "outcome", "uptime", "stalls"}}`` (see :class:`TaskMetrics`); stopped tasks stay
            listed. Tasks of a nested supervisor are listed by path (``"pool/t1"``).
        """
        clock = self.loop.time() if self._bound else 0.0
        running = RUNNING
        public = PUBLIC_STATUS
        metrics: dict[str, TaskMetrics] = {}
        # Inlined rather than a method per record: this runs over every task.
        for name, rec in self._children.items():
            if type(rec) is not TaskChild:
                rec._collect(metrics, clock, f"{name}/")  # type: ignore[union-attr]
                continue
            status = public[rec.state]
            extra = rec.extra
            if extra is None:
                metrics[name] = {
                    "restarts": rec.restarts,
                    "errors": 0,
                    "last_error": None,
                    "last_error_time": None,
                    "status": status,
                    "outcome": rec.outcome,
                    "uptime": clock - rec.attempt_start if status is running else 0.0,
                    "stalls": 0,
                }
            else:
                metrics[name] = {
                    "restarts": rec.restarts,
                    "errors": extra.errors,
                    "last_error": extra.last_error,
                    "last_error_time": extra.last_error_time,
                    "status": status,
                    "outcome": rec.outcome,
                    "uptime": clock - rec.attempt_start if status is running else 0.0,
                    "stalls": extra.stalls,
                }
        return metrics

    def _task_record(self, name: str) -> TaskChild:
        rec = self._children.get(name)
        if rec is None:
            raise UnknownTaskError(name)
        if not isinstance(rec, TaskChild):
            raise UnknownTaskError(name)
        return rec

    # -- async with -----------------------------------------------------------------------

    async def __aenter__(self) -> TaskSupervisor:
        self._bind()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.remove_signal_handlers()
        await self.stop_all()


def _nothing() -> None:
    """Scheduled only to wake the loop."""
