"""The public surface of core.async_utils."""

from __future__ import annotations

import polymarket_agents.core.async_utils as async_utils


def test_all_is_exactly_the_documented_surface() -> None:
    """__all__ pins the public names; each exists and has a docstring."""
    assert sorted(async_utils.__all__) == sorted(
        [
            "DEFAULT_FATAL",
            "DEFAULT_RECOVERABLE",
            "HEALTH_URL_ENV",
            "LOGGER_NAME",
            "AgentError",
            "LoopWatchdog",
            "retry_after",
            "render_node",
            "beat",
            "TaskRestart",
            "TaskFailure",
            "Supervisor",
            "Strategy",
            "StalledError",
            "RestartIntensityError",
            "Restart",
            "Observer",
            "NodeSnapshot",
            "ConfigurationError",
            "ErrorClass",
            "NotRestartableError",
            "Readiness",
            "ReadinessCheck",
            "RestartPolicy",
            "TaskAlreadyRunningError",
            "TaskMetrics",
            "TaskOutcome",
            "TaskStatus",
            "TaskSupervisor",
            "UnknownTaskError",
            "Work",
            "backoff_delays",
            "check_agents",
            "classify_error",
            "instant_backoff",
            "instant_policy",
            "managed_resource",
            "robust_task",
            "shielded",
        ]
    )
    for name in async_utils.__all__:
        obj = getattr(async_utils, name)
        if (
            callable(obj)
            and not name.isupper()
            and name not in ("Work", "ReadinessCheck", "NodeSnapshot")
        ):
            assert obj.__doc__, f"{name} has no docstring"
