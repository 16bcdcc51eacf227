"""Exceptions raised by :mod:`polymarket_agents.core.async_utils`.

The tree::

    AgentError                     base of every error the package raises on purpose
    ├── ConfigurationError         a setting is invalid (also a ValueError); never retried
    ├── TaskAlreadyRunningError    start_task() with the name of a task that is still running
    ├── UnknownTaskError           a task name never started (also a KeyError)
    ├── NotRestartableError        work that cannot be started again (a used coroutine object)
    ├── StalledError               a task stopped calling beat() (also a TimeoutError)
    └── RestartIntensityError      a supervisor restarted too often and gave up
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConfigurationError",
    "NotRestartableError",
    "RestartIntensityError",
    "StalledError",
    "TaskAlreadyRunningError",
    "UnknownTaskError",
]


class AgentError(Exception):
    """Base class of every exception this package raises on purpose."""


class ConfigurationError(AgentError, ValueError):
    """A setting or argument is invalid.

    A subclass of :class:`ValueError`, so it is *fatal* under the default error classes:
    restarting cannot fix configuration.
    """


class TaskAlreadyRunningError(AgentError, RuntimeError):
    """``start_task()`` was given the name of a task that is still running."""

    def __init__(self, name: str) -> None:
        super().__init__(f"task {name!r} is already running; stop it first or pick another name")
        self.name = name


class UnknownTaskError(AgentError, KeyError):
    """A task name that the supervisor has never started."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no task named {self.name!r} was ever started by this supervisor"


class NotRestartableError(AgentError, TypeError):
    """The work cannot be started again.

    Raised when restarting work given as a coroutine object whose function and arguments
    cannot be recovered (for example, a coroutine that had already started). Pass a
    zero-argument factory (``lambda: work(arg)``) instead.
    """


class StalledError(AgentError, TimeoutError):
    """A supervised task declared a heartbeat and stopped beating: it was cancelled and is
    restarted like a task that failed (a ``TimeoutError``, so recoverable by default)."""


class RestartIntensityError(AgentError):
    """A supervisor restarted its children more often than its restart intensity allows.

    It stops its children and fails; its parent in the tree handles that like the failure of
    any other child, and the root raises it from :meth:`Supervisor.wait`.
    """
