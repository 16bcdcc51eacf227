"""Supervision trees: supervisors of tasks and of supervisors, with Erlang/OTP's strategies.

A :class:`Supervisor` starts its children in order and stops them in reverse order. When a
child fails, its restart type (:class:`Restart`) and policy say whether and when it is
started again, and the supervisor's :class:`Strategy` says which of its siblings go with it.
More restarts than ``max_restarts`` within ``restart_window`` seconds make the supervisor
give up: it stops its children and fails, and its parent handles that like the failure of any
other child — up to the root, whose :meth:`Supervisor.wait` raises.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeAlias, TypedDict

from ._child import (
    CANCELLED,
    CYCLING,
    FAILED,
    NEW,
    PUBLIC_STATUS,
    RESTARTING,
    RUNNING,
    STILL_RUNNING,
    STOPPED,
    STOPPING,
    UNRESPONSIVE,
    OutcomeName,
    Restart,
    Spec,
    StatusName,
    TaskChild,
    TaskMetrics,
)
from ._errors import ConfigurationError, RestartIntensityError, UnknownTaskError
from ._observe import Observer, chain
from ._policy import RestartPolicy
from ._robust import LOGGER_NAME, Attempts, Settings, over_intensity
from ._work import Work

__all__ = ["NodeSnapshot", "Restart", "Strategy", "Supervisor"]

_logger = logging.getLogger(LOGGER_NAME)

Child: TypeAlias = "TaskChild | Supervisor"


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""Marks a setting that was not given, where None is a meaningful value."""


class Strategy(enum.StrEnum):
    """Which children restart when one fails (Erlang/OTP's restart strategies)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the failed child: the children are independent."""
    ONE_FOR_ALL = "one_for_all"
    """All children: each depends on every other (stopped in reverse order, restarted in order)."""
    REST_FOR_ONE = "rest_for_one"
    """The failed child and those started after it, which depend on it."""


# A supervisor that failed is started again at once, as in OTP: its parent's restart
# intensity is what bounds a crash loop.
_ESCALATION_POLICY = RestartPolicy(
    backoff_seconds=0.0, jitter=0.0, recoverable=(RestartIntensityError,)
)


class NodeSnapshot(TypedDict, total=False):
    """One node of :meth:`Supervisor.snapshot`: a supervisor (with ``children``) or a task."""

    name: str
    kind: str
    """``"supervisor"`` or ``"task"``."""
    strategy: str
    restart: str
    status: str
    outcome: str
    restarts: int
    errors: int
    stalls: int
    last_error: str | None
    children: list[NodeSnapshot]


class Supervisor:
    """Supervises tasks and other supervisors: a node of a supervision tree.

    ::

        tree = Supervisor("service", strategy=Strategy.ONE_FOR_ONE)
        connection = Supervisor(strategy=Strategy.REST_FOR_ONE)
        connection.add("socket", read_socket)                 # monitors depend on it ...
        connection.add("monitors", monitors)                  # ... so they restart with it
        tree.add("feed", connection)
        tree.add("http", serve_http, shutdown=2.0)
        async with tree:
            await tree.wait()

    Children start in the order they were added and stop in reverse order, each given its
    ``shutdown`` seconds after its cancellation before it is reported as unresponsive (as
    :meth:`TaskSupervisor.stop_all` does). What happens when one ends is said by its
    restart type and policy (:class:`Restart`, :class:`RestartPolicy`: error classes,
    backoff, jitter) and this supervisor's :class:`Strategy`.

    Args:
        name: Names the supervisor in logs and paths (its parent's :meth:`add` may rename it).
        strategy: Which children restart when one fails.
        max_restarts: At most this many restarts in ``restart_window`` seconds, or the
            supervisor gives up; None for no limit. Elixir's defaults: 3 in 5 s.
        restart_window: The window of ``max_restarts``, in seconds.
        policy: Default policy of the children (``RestartPolicy()`` if None).
        restart: Default restart type of the children.
        shutdown: Default seconds a stop waits for a task child; None waits for ever.
        heartbeat: Default heartbeat of task children (see :func:`beat`); None for none.
        observer: Told of every failure and restart below this supervisor (a child
            supervisor's own observer first, then those of the supervisors above it).
        logger: Where to log; ``logging.getLogger("polymarket_agents.supervisor")`` if None.
        now: Wall clock for ``last_error_time``.

    Raises:
        ConfigurationError: On a negative ``max_restarts`` or a non-positive window.
    """

    def __init__(
        self,
        name: str = "supervisor",
        *,
        strategy: Strategy | str = Strategy.ONE_FOR_ONE,
        max_restarts: int | None = 3,
        restart_window: float = 5.0,
        policy: RestartPolicy | None = None,
        restart: Restart | str = Restart.PERMANENT,
        shutdown: float | None = 5.0,
        heartbeat: float | None = None,
        observer: Observer | None = None,
        logger: logging.Logger | None = None,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        if max_restarts is not None and max_restarts < 0:
            raise ConfigurationError(f"max_restarts must be >= 0 or None, not {max_restarts!r}")
        if not restart_window > 0:
            raise ConfigurationError(f"restart_window must be > 0, not {restart_window!r}")
        _check_seconds("shutdown", shutdown)
        _check_seconds("heartbeat", heartbeat)
        self.name = name
        self.strategy = Strategy(strategy)
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self._policy = policy or RestartPolicy()
        self._restart = Restart(restart)
        self._shutdown = shutdown
        self._heartbeat = heartbeat
        self._own_observer = observer
        self._observer = observer  # its own, then those above it (_inherit)
        self._logger = logger or _logger
        self._now = now
        self._children: dict[str, Child] = {}
        self._specs: dict[tuple[Any, ...], Spec] = {}
        # Set when the supervisor first runs; read on hot paths, hence not Optional.
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._bound = False
        # As a child of another supervisor:
        self.parent: Supervisor | None = None
        self.spec: Spec | None = None
        self.prefix = ""
        self.state: str = NEW
        self.outcome: OutcomeName = STILL_RUNNING
        self.extra: Attempts | None = None
        self.attempt_start = 0.0
        self.handle: asyncio.Handle | None = None  # the timer of a pending restart
        self._restart_times: deque[float] | None = None
        self._operation: asyncio.Task[None] | None = None
        self._cycling: set[Child] = set()
        self._queued: list[tuple[Child, float]] = []
        self._done: asyncio.Future[None] | None = None
        self._unresponsive: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.strategy.value} "
            f"children={len(self._children)} {PUBLIC_STATUS[self.state]}>"
        )

    # -- time and loop ------------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self._bound = True
            for child in self._children.values():
                if isinstance(child, Supervisor):
                    child._bind()
        return loop

    # -- building the tree --------------------------------------------------------------

    def _spec(
        self,
        policy: RestartPolicy | None,
        restart: Restart | str | None,
        shutdown: float | _Unset | None,
        heartbeat: float | _Unset | None,
    ) -> Spec:
        """The shared settings of task children added with these options."""
        key = (policy, restart, shutdown, heartbeat)
        spec = self._specs.get(key)
        if spec is None:
            settings = Settings(
                policy or self._policy, True, self._logger, self._now, self._observer
            )
            spec = self._specs[key] = Spec(
                settings,
                self._restart if restart is None else Restart(restart),
                self._shutdown if shutdown is UNSET else shutdown,
                self._heartbeat if heartbeat is UNSET else heartbeat,
            )
        return spec

    def add(
        self,
        name: str,
        child: Work[Any] | Supervisor,
        *,
        restart: Restart | str | None = None,
        shutdown: float | _Unset | None = UNSET,
        policy: RestartPolicy | None = None,
        heartbeat: float | _Unset | None = UNSET,
    ) -> Supervisor:
        """Add a child after the existing ones; start it at once if this supervisor runs.

        Args:
            name: Unique among this supervisor's children.
            child: Work (a factory or a coroutine object) or a :class:`Supervisor`.
            restart: Its restart type; this supervisor's default if None.
            shutdown: Seconds a stop waits for it after cancelling it, None for ever; the
                default for a task is this supervisor's, for a supervisor None (it bounds
                itself by its own children's timeouts).
            policy: Its restart policy; for a task, this supervisor's default if None; a
                supervisor is restarted at once by default.
            heartbeat: Seconds a task may go without calling :func:`beat` before it is
                restarted as stalled; this supervisor's default when not given.

        Returns:
            This supervisor, so that calls chain.

        Raises:
            ConfigurationError: If the name is taken, or a supervisor is added twice.
            TypeError: If ``child`` is neither work nor a supervisor.
        """
        if name in self._children:
            if isinstance(child, types.CoroutineType):
                child.close()  # never to run: closing it avoids a "never awaited" warning
            raise ConfigurationError(f"{self.name!r} already has a child named {name!r}")
        if shutdown is not UNSET:
            _check_seconds("shutdown", shutdown)
        if heartbeat is not UNSET:
            _check_seconds("heartbeat", heartbeat)
        if isinstance(child, Supervisor):
            if child.parent is not None or child is self:
                raise ConfigurationError(f"supervisor {child.name!r} already has a parent")
            settings = Settings(policy or _ESCALATION_POLICY, True, child._logger, child._now, None)
            child.spec = Spec(
                settings,
                Restart.PERMANENT if restart is None else Restart(restart),
                None if shutdown is UNSET else shutdown,
                None,
            )
            child.name = name
            child.parent = self
            child._inherit(self._observer)
            child._set_prefix(f"{self.prefix}{name}/" if self.parent is not None else f"{name}/")
            self._children[name] = child
        else:
            spec = self._spec(policy, restart, shutdown, heartbeat)
            self._children[name] = TaskChild(name, child, spec, self)
        if self.state is RUNNING:
            added = self._children[name]
            added.launch()
        return self

    def _inherit(self, above: Observer | None) -> None:
        """Take the observers above this supervisor (its parent's, chained) after its own."""
        own = self._own_observer
        observer = own if above is None else above if own is None else chain(own, above)
        self._observer = observer
        self._specs.clear()
        if self.spec is not None:
            # Its own failure, as a child, is its parent's to report.
            self.spec.observer = above
        for child in self._children.values():
            if isinstance(child, Supervisor):
                child._inherit(observer)
            else:
                child.spec.observer = observer

    def _set_prefix(self, prefix: str) -> None:
        self.prefix = prefix
        for name, child in self._children.items():
            if isinstance(child, Supervisor):
                child._set_prefix(f"{prefix}{name}/")

    @property
    def path(self) -> str:
        """This supervisor's path from the root ("" for the root)."""
        return self.prefix[:-1] if self.parent is not None else ""

    def status(self, name: str) -> StatusName:
        """The status of the child ``name``, a task or a supervisor: ``"running"``,
        ``"restarting"`` or ``"stopped"``.

        Raises:
            UnknownTaskError: If there is no such child.
        """
        return PUBLIC_STATUS[self[name].state]

    def children(self) -> dict[str, Child]:
        """The children by name, in start order (a copy)."""
        return dict(self._children)

    def __getitem__(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise UnknownTaskError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._children

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._children))

    def __len__(self) -> int:
        return len(self._children)

    def __bool__(self) -> bool:
        # With __len__ alone an empty supervisor would be falsy, and `given or
        # Supervisor()` would quietly build a second one.
        return True

    # -- starting -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every child in order (children added later start as they are added).

        Raises:
            RuntimeError: If this supervisor is a child of another (its parent starts it),
                or already runs.
        """
        if self.parent is not None:
            raise RuntimeError(f"{self.name!r} is started by its parent")
        if self.state is RUNNING:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        self._bind()
        self._done = self.loop.create_future()
        self._rearm()  # a second start() starts again what the first one ran
        self.launch()

    def _rearm(self) -> None:
        """Make the stopped children (at every depth) start again when this one next does."""
        for child in self._children.values():
            if child.state is STOPPED:
                child.state = RESTARTING
            if isinstance(child, Supervisor):
                child._rearm()

    def launch(self) -> None:
        """Start the children in order: those never started, and those stopped to be
        started again (as a child: its parent starting or restarting it)."""
        if not self._bound:
            self._bind()
        self.state = RUNNING
        self.outcome = STILL_RUNNING
        self.attempt_start = self.loop.time()
        self._restart_times = None  # a restarted supervisor starts with a clean history
        for child in list(self._children.values()):
            if child.state is NEW:
                child.launch()
            elif child.state is RESTARTING:
                child.relaunch()

    def restartable(self) -> bool:
        """A supervisor can always be started again."""
        return True

    reason = ""

    def learn(self, exc: BaseException) -> None:
        """Nothing to learn: a supervisor re-creates its children itself."""

    def attempts(self) -> Attempts:
        """The failure record of this supervisor as a child, made on first use."""
        extra = self.extra
        if extra is None:
            extra = self.extra = Attempts()
        return extra

    # -- failures -----------------------------------------------------------------------

    def child_exited(
        self, child: Child, exc: Exception | None, ran_for: float, outcome: OutcomeName
    ) -> None:
        """A child ended on its own: restart it (and its group) or let it rest.

        Args:
            child: The child.
            exc: What it raised, or None if it returned or was cancelled by someone else.
            ran_for: Seconds its attempt ran.
            outcome: How it ended.
        """
        spec: Spec = child.spec  # type: ignore[assignment]
        if self.state is not RUNNING:
            # This supervisor is stopping or failing: nothing is restarted any more.
            if exc is not None:
                child.attempts().count_error(exc, spec)
            child.finish(outcome)
            return
        if child in self._cycling:
            # Its group is being restarted already: it goes along with it.
            if exc is not None:
                child.attempts().count_error(exc, spec)
                child.learn(exc)
            child.state = RESTARTING
            return
        if exc is None:
            if spec.restart_type is not Restart.PERMANENT:
                child.finish(outcome)
                return
            if not child.restartable():
                spec.logger.error(
                    "permanent task %r ended and cannot be restarted: %s; pass a factory",
                    child.path,
                    child.reason,
                    extra={"task": child.path},
                )
                child.finish(outcome)
                return
            delay = 0.0
            spec.logger.info(
                "permanent task %r %s; restarting it",
                child.path,
                "returned" if outcome != CANCELLED else "was cancelled",
                extra={"task": child.path},
            )
        else:
            child.learn(exc)  # a restart by name may need it, even if the policy does not
            clock = self.loop.time()
            failed_delay = child.attempts().on_failure(
                child.path,
                child,
                spec,
                exc,
                ran_for,
                clock,
            )
            if failed_delay is None:
                child.finish(FAILED)
                return
            delay = failed_delay
        if self.max_restarts is not None and self._intensity_exceeded():
            child.state = RESTARTING  # with this supervisor, if its parent restarts it
            self._give_up(child, exc)
            return
        if self.strategy is Strategy.ONE_FOR_ONE:
            child.schedule(delay)
        else:
            self._restart_group(child, delay)

    def _intensity_exceeded(self) -> bool:
        times = self._restart_times
        if times is None:
            times = self._restart_times = deque()
        limit: int = self.max_restarts  # type: ignore[assignment]
        return over_intensity(times, limit, self.restart_window, self.loop.time())

    def schedule(self, delay: float) -> None:
        """As a child: start again after ``delay`` seconds."""
        self.state = RESTARTING
        if delay > 0:
            self.handle = self.loop.call_later(delay, self.relaunch)
        else:
            self.handle = self.loop.call_soon(self.relaunch)

    def relaunch(self) -> None:
        """As a child: count a restart and start the children again."""
        self.handle = None
        if self.state is not RESTARTING:
            return  # stopped meanwhile
        self.attempts().restarted(self.path, self.spec)  # type: ignore[arg-type]
        self.launch()

    # -- group restarts -----------------------------------------------------------------

    def _restart_group(self, failed: Child, delay: float) -> None:
        children = list(self._children.values())
        start = 0 if self.strategy is Strategy.ONE_FOR_ALL else children.index(failed)
        if self._operation is not None:
            # A group restart runs; one that began later in the order already covers the
            # failed child, an earlier one runs after it.
            failed.state = RESTARTING
            self._queued.append((failed, delay))
            return
        group = [
            child
            for child in children[start:]
            if child is failed or child.state in (RUNNING, RESTARTING, STOPPING, CYCLING)
        ]
        failed.state = RESTARTING
        self._cycling.update(group)
        self._operation = self.loop.create_task(
            self._cycle(group, delay), name=f"{self.name}-restart"
        )
        self._operation.add_done_callback(self._operation_done)

    async def _cycle(self, group: list[Child], delay: float) -> None:
        """Stop ``group`` in reverse order, wait ``delay``, start it again in order."""
        await self._stop_in_order(reversed(group), cycle=True)
        if delay > 0:
            await asyncio.sleep(delay)
        for child in group:
            if child.state is RESTARTING:
                if child.spec.restart_type is Restart.TEMPORARY:  # type: ignore[union-attr]
                    child.finish(CANCELLED)
                    continue
                self._cycling.discard(child)
                child.relaunch()
        self._cycling.clear()

    def _operation_done(self, task: asyncio.Task[None]) -> None:
        if task is not self._operation:
            return
        self._operation = None
        self._cycling.clear()
        if not task.cancelled() and task.exception() is not None:
            self._logger.error(
                "restarting the children of %r failed", self.name, exc_info=task.exception()
            )
        queued, self._queued = self._queued, []
        if self.state is not RUNNING:
            for child, _ in queued:
                if child.state is RESTARTING:
                    child.finish(CANCELLED)
            return
        for child, delay in queued:
            if child.state is RESTARTING and self._operation is None:
                self._restart_group(child, delay)
            elif child.state is RESTARTING:
                self._queued.append((child, delay))

    # -- giving up ----------------------------------------------------------------------

    def _give_up(self, child: Child, exc: Exception | None) -> None:
        error = RestartIntensityError(
            f"supervisor {self.name!r} gave up: more than {self.max_restarts} restarts "
            f"in {self.restart_window:g} s (last: {child.path!r})"
        )
        if exc is not None:
            error.__cause__ = exc
        self._logger.error("%s", error, extra={"task": self.path or self.name})
        self.state = STOPPING
        task = self.loop.create_task(self._fail(error), name=f"{self.name}-give-up")
        self._operation_cancel()
        self._unresponsive.add(task)
        task.add_done_callback(self._unresponsive.discard)

    def _operation_cancel(self) -> None:
        operation = self._operation
        if operation is not None:
            operation.cancel()

    async def _fail(self, error: RestartIntensityError) -> None:
        # The children stop as for a restart: they start again if the parent restarts this
        # supervisor, and are marked stopped otherwise (finish()).
        await self._halt(cycle=True)
        ran_for = self.loop.time() - self.attempt_start
        parent = self.parent
        if parent is not None:
            self.state = RUNNING  # the parent sees a running child fail
            parent.child_exited(self, error, ran_for, FAILED)
            return
        self.finish(FAILED)
        done = self._done
        if done is not None and not done.done():
            done.set_exception(error)
            done.exception()  # logged above already; wait() raises it

    # -- stopping -----------------------------------------------------------------------

    async def stop(self, timeout: float | None = None) -> list[str]:
        """Stop every child in reverse order; each gets its own ``shutdown`` seconds.

        Returns even when a child swallows its cancellation: such children are named in a
        WARNING, get the outcome ``"unresponsive"``, and are kept referenced until they end.

        Args:
            timeout: Replaces every task child's ``shutdown`` for this stop, if given.

        Returns:
            The paths of the children that had not stopped within their time.
        """
        if not self._bound:
            return []
        stuck = await self._halt(timeout)
        if self.state is not STOPPED:
            self.finish(CANCELLED)
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)
        return stuck

    async def _halt(self, timeout: float | None = None, *, cycle: bool = False) -> list[str]:
        """Stop the children in reverse order (the supervisor itself stays as it is)."""
        if self.state is RUNNING:
            self.state = STOPPING
        self._operation_cancel()
        operation = self._operation
        if operation is not None:
            await asyncio.wait((operation,))
        stuck = await self._stop_in_order(
            reversed(list(self._children.values())), cycle=cycle, timeout=timeout
        )
        self._cycling.clear()
        return stuck

    async def _stop_in_order(
        self, children: Iterable[Child], *, cycle: bool, timeout: float | None = None
    ) -> list[str]:
        """Stop ``children`` one after the other, each within its shutdown time."""
        sequence = _StopSequence(self, iter(children), cycle, timeout)
        sequence.next()
        stuck = await sequence.future
        if stuck:
            self._logger.warning(
                "%d task(s) did not stop within their shutdown time after cancellation "
                "(they swallow CancelledError, or still finish work shielded from it): %s",
                len(stuck),
                ", ".join(map(repr, stuck)),
                extra={"tasks": stuck},
            )
        return stuck

    def request_stop(self, cycle: bool = False) -> None:
        """As a child that is not running: cancel a pending restart; stay stopped unless
        ``cycle`` (it is then started again with its group)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if not cycle and self.state is not STOPPED:
            self.finish(CANCELLED)

    async def _stop_as_child(self, cycle: bool, timeout: float | None) -> list[str]:
        if self.state is not RUNNING and self.state is not STOPPING:
            self.request_stop(cycle)
            return []
        limit = self.spec.shutdown if self.spec is not None else None
        halt = self.loop.create_task(self._halt(timeout, cycle=cycle))
        done, _ = await asyncio.wait((halt,), timeout=limit)
        if not done:
            self._unresponsive.add(halt)
            halt.add_done_callback(self._unresponsive.discard)
            self.outcome = UNRESPONSIVE
            return [self.path]
        stuck = halt.result()
        if cycle:
            self.state = RESTARTING
        else:
            self.finish(CANCELLED)
        return stuck

    def finish(self, outcome: OutcomeName) -> None:
        """Mark this supervisor stopped with ``outcome``, and children left waiting to
        restart with it stopped too."""
        self.state = STOPPED
        if self.outcome != UNRESPONSIVE:
            self.outcome = outcome
        for child in self._children.values():
            if child.state is RESTARTING:
                child.request_stop()

    async def wait(self) -> None:
        """Wait until this (root) supervisor stops.

        Raises:
            RestartIntensityError: If it gave up: its children restarted too often.
            RuntimeError: If it was never started.
        """
        if self._done is None:
            raise RuntimeError(f"supervisor {self.name!r} was never started")
        await asyncio.shield(self._done)

    async def terminate_child(self, name: str, *, timeout: float | None = None) -> bool:
        """Stop the child ``name`` for good (until :meth:`restart_child`).

        Returns:
            True if it stopped within its shutdown time.

        Raises:
            UnknownTaskError: If there is no such child.
        """
        return not await self._stop_in_order([self[name]], cycle=False, timeout=timeout)

    def delete_child(self, name: str) -> None:
        """Forget the stopped child ``name``, its metrics with it (Erlang/OTP's
        ``delete_child``): for children that come and go, such as connections of a pool.

        Raises:
            UnknownTaskError: If there is no such child.
            RuntimeError: If it runs, or waits to restart: stop it first
                (:meth:`terminate_child`).
        """
        child = self[name]
        if child.state is not STOPPED and child.state is not NEW:
            raise RuntimeError(
                f"child {name!r} of {self.name!r} is {PUBLIC_STATUS[child.state]}; "
                "stop it before deleting it"
            )
        if child.state is NEW:
            child.finish(CANCELLED)  # closes a coroutine object that never ran
        del self._children[name]
        self._cycling.discard(child)
        if isinstance(child, Supervisor):
            child.parent = None
            child.spec = None
            child._set_prefix("")
            child._inherit(None)
            if child.state is STOPPED:
                # Ready to be started afresh, as a root or under another parent.
                child.state, child.outcome = NEW, STILL_RUNNING
                child._rearm()

    def reset_backoff(self, name: str) -> None:
        """Let the next failure of the child ``name`` be restarted after the policy's first
        delay, as if it had run for ``reset_after`` seconds.

        For work that knows better than a clock when it is healthy: a connection whose
        subscriptions are all answered, say, which may then drop after a second and should
        not be made to wait the doubled delays of the failures before.

        Raises:
            UnknownTaskError: If there is no such child.
        """
        extra = self[name].extra
        if extra is not None:
            extra.failures = 0

    async def restart_child(self, name: str, *, timeout: float | None = None) -> None:
        """Stop the child ``name`` if it runs, then start it again (its group stays).

        Raises:
            UnknownTaskError: If there is no such child.
            NotRestartableError: If its work cannot be re-created (pass a factory).
            TaskAlreadyRunningError: If it did not stop within its shutdown time.
        """
        from ._errors import NotRestartableError, TaskAlreadyRunningError

        child = self[name]
        if await self._stop_in_order([child], cycle=True, timeout=timeout):
            raise TaskAlreadyRunningError(name)
        if not child.restartable():
            raise NotRestartableError(f"task {name!r}: {child.reason}; pass a factory")
        if child.state is NEW:
            child.launch()
            return
        child.state = RESTARTING
        child.relaunch()

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- reporting ----------------------------------------------------------------------

    def get_metrics(self) -> dict[str, TaskMetrics]:
        """Every task's :class:`TaskMetrics` in this subtree, keyed by path.

        Returns:
            ``{"feed/socket": {...}, "http": {...}}``, tasks in start order.
        """
        clock = self.loop.time() if self._bound else 0.0
        metrics: dict[str, TaskMetrics] = {}
        self._collect(metrics, clock, "")
        return metrics

    def child_metrics(self, name: str) -> dict[str, TaskMetrics]:
        """The :class:`TaskMetrics` of the child ``name`` alone, as :meth:`get_metrics`
        would list them: a task's under its name, a supervisor's tasks by path. Cheap
        whatever the number of children (for a child about to be deleted, say).

        Raises:
            UnknownTaskError: If there is no such child.
        """
        child = self[name]
        clock = self.loop.time() if self._bound else 0.0
        if isinstance(child, Supervisor):
            metrics: dict[str, TaskMetrics] = {}
            child._collect(metrics, clock, f"{name}/")
            return metrics
        return {name: child.metrics(clock)}

    def _collect(self, metrics: dict[str, TaskMetrics], clock: float, prefix: str) -> None:
        for name, child in self._children.items():
            if isinstance(child, Supervisor):
                child._collect(metrics, clock, f"{prefix}{name}/")
            else:
                metrics[prefix + name] = child.metrics(clock)

    def snapshot(self) -> NodeSnapshot:
        """The tree below and including this supervisor, as plain data (for ``/status``)."""
        clock = self.loop.time() if self._bound else 0.0
        extra = self.extra
        node: NodeSnapshot = {
            "name": self.name,
            "kind": "supervisor",
            "strategy": self.strategy.value,
            "restart": self.spec.restart_type.value if self.spec is not None else "",
            "status": PUBLIC_STATUS[self.state],
            "outcome": self.outcome,
            "restarts": extra.restarts if extra is not None else 0,
            "children": [],
        }
        children = node["children"]
        for name, child in self._children.items():
            if isinstance(child, Supervisor):
                children.append(child.snapshot())
                continue
            metrics = child.metrics(clock)
            children.append(
                {
                    "name": name,
                    "kind": "task",
                    "restart": child.spec.restart_type.value,
                    "status": metrics["status"],
                    "outcome": metrics["outcome"],
                    "restarts": metrics["restarts"],
                    "errors": metrics["errors"],
                    "stalls": metrics["stalls"],
                    "last_error": metrics["last_error"],
                }
            )
        return node

    def summary(self) -> str:
        """This supervisor in one line, its children counted by status (cheap: no metrics).

        ``"service  one_for_one  running  restarts 1  (103 children: 102 running, 1
        restarting)"``.
        """
        extra = self.extra
        counts: dict[str, int] = {}
        for child in self._children.values():
            status = PUBLIC_STATUS[child.state]
            counts[status] = counts.get(status, 0) + 1
        line = _describe(
            {
                "name": self.name,
                "kind": "supervisor",
                "strategy": self.strategy.value,
                "status": PUBLIC_STATUS[self.state],
                "outcome": self.outcome,
                "restarts": extra.restarts if extra is not None else 0,
            }
        )
        spread = ", ".join(f"{count:,} {status}" for status, count in counts.items())
        return f"{line}  ({len(self._children):,} children{': ' if spread else ''}{spread})"

    def render(self, *, max_children: int | None = 20) -> list[str]:
        """The tree drawn as text lines, for logs, ``/status`` and the live view.

        ::

            service  one_for_one  running
            ├── feed  rest_for_one  running  restarts 1
            │   ├── socket  running  restarts 1  errors 1  ConnectionError: reset
            │   └── monitors  one_for_one  running
            │       ├── m1  running
            │       └── … 998 more: 998 running
            └── http  running

        Args:
            max_children: Children drawn per supervisor before the rest are summed up in one
                line; None draws every one.
        """
        return render_node(self.snapshot(), max_children)


class _StopSequence:
    """Stops children one after the other, driven by callbacks rather than a coroutine.

    Each child is cancelled, and looked at again once the loop has run its cancellation,
    which most children finish in that one step; only a slower one is waited for, up to its
    shutdown time, before the next is cancelled. Being callbacks, the steps cost no
    coroutine resumption each: stopping 10,000 children is about as costly as starting them.
    """

    __slots__ = ("children", "cycle", "future", "owner", "pending", "stuck", "timeout", "timer")

    def __init__(
        self, owner: Supervisor, children: Iterator[Child], cycle: bool, timeout: float | None
    ) -> None:
        self.owner = owner
        self.children = children
        self.cycle = cycle
        self.timeout = timeout
        self.future: asyncio.Future[list[str]] = owner.loop.create_future()
        self.stuck: list[str] = []
        self.pending: tuple[TaskChild, asyncio.Future[Any]] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def next(self) -> None:
        """Stop children until one needs time; finish when there are none left."""
        future = self.future
        loop = self.owner.loop
        for child in self.children:
            if future.done():
                return  # the stop was cancelled
            if isinstance(child, Supervisor):
                nested = loop.create_task(child._stop_as_child(self.cycle, self.timeout))
                nested.add_done_callback(self._nested_stopped)
                return
            # A stop that follows a cancelled group restart must not cancel a child's
            # cleanup a second time.
            task = child.request_stop(self.cycle, again=False)
            if task is None:
                continue
            if task.done():
                child(task)  # take its end now rather than a loop iteration later
                continue
            self.pending = (child, task)
            loop.call_soon(self._look_again)
            return
        if not future.done():
            future.set_result(self.stuck)

    def _nested_stopped(self, nested: asyncio.Task[list[str]]) -> None:
        if not nested.cancelled() and nested.exception() is None:
            self.stuck.extend(nested.result())
        self.next()

    def _look_again(self) -> None:
        child, task = self.pending  # type: ignore[misc]
        if self.future.done():
            return
        if task.done():
            self.pending = None
            child(task)
            self.next()
            return
        limit = child.spec.shutdown if self.timeout is None else self.timeout
        if limit is not None:
            self.timer = self.owner.loop.call_later(limit, self._expired)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Future[Any]) -> None:
        if self.pending is None or self.pending[1] is not task:
            return
        child = self.pending[0]
        self.pending = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        child(task)
        self.next()

    def _expired(self) -> None:
        self.timer = None
        if self.pending is None:
            return
        child, task = self.pending
        self.pending = None
        task.remove_done_callback(self._ended)
        child.outcome = UNRESPONSIVE
        if self.cycle:
            child.state = STOPPING  # still running: it cannot restart
        owner = self.owner
        owner._unresponsive.add(task)
        task.add_done_callback(owner._unresponsive.discard)
        self.stuck.append(child.path)
        self.next()


def _check_seconds(what: str, value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ConfigurationError(f"{what} must be >= 0 or None, not {value!r}")


def render_node(node: NodeSnapshot, max_children: int | None = 20) -> list[str]:
    """Draw a :meth:`Supervisor.snapshot` as text lines (see :meth:`Supervisor.render`)."""
    lines = [_describe(node)]
    _render_children(node, "", max_children, lines)
    return lines


def _describe(node: NodeSnapshot) -> str:
    parts = [node.get("name", "")]
    if node.get("kind") == "supervisor":
        parts.append(node.get("strategy", ""))
    parts.append(node.get("status", ""))
    if node.get("outcome") not in (None, "running"):
        parts.append(f"({node.get('outcome')})")
    for key in ("restarts", "errors", "stalls"):
        if node.get(key):
            parts.append(f"{key} {node.get(key)}")
    if node.get("last_error") and node.get("errors"):
        parts.append(str(node.get("last_error")))
    return "  ".join(parts)


def _render_children(
    node: NodeSnapshot, indent: str, max_children: int | None, lines: list[str]
) -> None:
    children = node.get("children", [])
    shown = children if max_children is None else children[:max_children]
    rest = children[len(shown) :]
    for index, child in enumerate(shown):
        last = index == len(shown) - 1 and not rest
        lines.append(f"{indent}{'└── ' if last else '├── '}{_describe(child)}")
        if child.get("kind") == "supervisor":
            _render_children(child, indent + ("    " if last else "│   "), max_children, lines)
    if rest:
        counts: dict[str, int] = {}
        for child in rest:
            status = str(child.get("status", ""))
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{count:,} {status}" for status, count in counts.items())
        lines.append(f"{indent}└── … {len(rest):,} more: {summary}")
