"""Asyncio supervision that survives the real world: the public API.

::

    from polymarket_agents.core.async_utils import robust_task, TaskSupervisor, managed_resource

* :func:`robust_task` runs work, restarting it with exponential backoff after recoverable
  and unexpected errors, never swallowing cancellation;
* :class:`TaskSupervisor` runs many named tasks that way, with metrics, stop and restart by
  name, signal handling and a shutdown that cannot hang;
* :func:`managed_resource` releases what it acquired exactly once, whatever happens;
* :func:`shielded` finishes cleanup despite cancellation, then lets the cancellation through;
* :class:`RestartPolicy` and :func:`classify_error` say how errors are treated;
  :func:`instant_backoff` turns backoff off in tests;
* :func:`check_agents` asks a running service whether it is alive; :class:`Readiness`
  gathers why a service is not ready from every part that has a say.

This package uses the standard library only.
"""

from ._child import Restart, TaskMetrics, TaskOutcome, TaskStatus, beat
from ._errors import (
    AgentError,
    ConfigurationError,
    NotRestartableError,
    RestartIntensityError,
    StalledError,
    TaskAlreadyRunningError,
    UnknownTaskError,
)
from ._health import (
    HEALTH_URL_ENV,
    Readiness,
    ReadinessCheck,
    check_agents,
)
from ._observe import Observer, TaskFailure, TaskRestart
from ._policy import (
    DEFAULT_FATAL,
    DEFAULT_RECOVERABLE,
    ErrorClass,
    RestartPolicy,
    backoff_delays,
    classify_error,
    instant_backoff,
    instant_policy,
    retry_after,
)
from ._resource import managed_resource
from ._robust import LOGGER_NAME, robust_task
from ._shield import shielded
from ._supervisor import TaskSupervisor
from ._tree import NodeSnapshot, Strategy, Supervisor, render_node
from ._watchdog import LoopWatchdog
from ._work import Work

__all__ = [
    "DEFAULT_FATAL",
    "DEFAULT_RECOVERABLE",
    "HEALTH_URL_ENV",
    "LOGGER_NAME",
    "AgentError",
    "ConfigurationError",
    "ErrorClass",
    "LoopWatchdog",
    "NodeSnapshot",
    "NotRestartableError",
    "Observer",
    "Readiness",
    "ReadinessCheck",
    "Restart",
    "RestartIntensityError",
    "RestartPolicy",
    "StalledError",
    "Strategy",
    "Supervisor",
    "TaskAlreadyRunningError",
    "TaskFailure",
    "TaskMetrics",
    "TaskOutcome",
    "TaskRestart",
    "TaskStatus",
    "TaskSupervisor",
    "UnknownTaskError",
    "Work",
    "backoff_delays",
    "beat",
    "check_agents",
    "classify_error",
    "instant_backoff",
    "instant_policy",
    "managed_resource",
    "render_node",
    "retry_after",
    "robust_task",
    "shielded",
]
