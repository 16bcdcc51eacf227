"""Observer hooks: what ``robust_task`` and the supervisors tell whoever keeps metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ._policy import ErrorClass

__all__ = ["Observer", "TaskFailure", "TaskRestart"]

_logger = logging.getLogger("polymarket_agents.supervisor")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailure:
    """A task (or a supervisor of a tree) failed.

    Attributes:
        task: Its name; in a supervision tree, its path from the root (``"feeds/conn-1"``).
        error: What it raised (:class:`StalledError` for a stall, :class:`RestartIntensityError`
            for a supervisor that gave up).
        error_class: How the policy classified ``error``.
        failures: Consecutive failures, this one included.
        delay: Seconds until it is restarted, or None if the failure is final.
        reason: Why the failure is final (``"fatal error"``, ``"restart intensity
            exceeded"`` …), or "" when it will be restarted.
    """

    task: str
    error: BaseException
    error_class: ErrorClass
    failures: int
    delay: float | None
    reason: str = ""

    @property
    def final(self) -> bool:
        """Whether the task will not be restarted."""
        return self.delay is None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRestart:
    """A task (or a supervisor of a tree) was started again.

    Attributes:
        task: Its name or path, as in :class:`TaskFailure`.
        restarts: Times it was started again so far, this time included.
    """

    task: str
    restarts: int


class Observer:
    """Receives failures and restarts as they happen; subclass it and override what you need.

    One observer can be given to :func:`robust_task`, :class:`TaskSupervisor` and
    :class:`Supervisor`; the observers of the supervisors above a task are all told, the
    nearest first. The hooks run synchronously on
    the event loop, so keep them quick; an exception from a hook is logged and ignored, never
    allowed to break supervision.
    """

    __slots__ = ()

    def on_failure(self, event: TaskFailure) -> None:
        """Called when work raised (or stalled), after the failure was counted and logged."""

    def on_restart(self, event: TaskRestart) -> None:
        """Called when work is started again, just before its new attempt begins."""


class _Chain(Observer):
    """Tells one observer, then another (a subtree's own, then those above it)."""

    __slots__ = ("first", "then")

    def __init__(self, first: Observer, then: Observer) -> None:
        self.first = first
        self.then = then

    def __repr__(self) -> str:
        return f"{self.first!r} then {self.then!r}"

    def on_failure(self, event: TaskFailure) -> None:
        """Tell both; one that raises is logged and does not keep the other from hearing."""
        notify_failure(self.first, event, _logger)
        notify_failure(self.then, event, _logger)

    def on_restart(self, event: TaskRestart) -> None:
        """Tell both, as :meth:`on_failure`."""
        notify_restart(self.first, event, _logger)
        notify_restart(self.then, event, _logger)


def chain(first: Observer, then: Observer) -> Observer:
    """An observer that tells ``first``, then ``then``."""
    return _Chain(first, then)


def notify_failure(observer: Observer, event: TaskFailure, logger: logging.Logger) -> None:
    """Call ``observer.on_failure``; an exception from it is logged, not raised."""
    try:
        observer.on_failure(event)
    except Exception:
        logger.exception("observer %r failed in on_failure", observer)


def notify_restart(observer: Observer, event: TaskRestart, logger: logging.Logger) -> None:
    """Call ``observer.on_restart``; an exception from it is logged, not raised."""
    try:
        observer.on_restart(event)
    except Exception:
        logger.exception("observer %r failed in on_restart", observer)
