"""The public surface of core.async_utils, and the layering rule that core stands alone."""

from __future__ import annotations

import subprocess
import sys

import polymarket_agents.core.async_utils as async_utils


def test_all_is_exactly_the_documented_surface() -> None:
    """__all__ pins the public names; each exists and has a docstring."""
    assert sorted(async_utils.__all__) == sorted(
        [
            "DEFAULT_FATAL",
            "DEFAULT_HEALTH_URL",
            "DEFAULT_RECOVERABLE",
            "HEALTH_URL_ENV",
            "LOGGER_NAME",
            "AgentError",
            "ConfigurationError",
            "ErrorClass",
            "NotRestartableError",
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
        ]
    )
    for name in async_utils.__all__:
        obj = getattr(async_utils, name)
        if callable(obj) and not name.isupper() and name != "Work":
            assert obj.__doc__, f"{name} has no docstring"


def test_core_imports_only_the_standard_library() -> None:
    """Importing core pulls in no third-party module and no higher layer."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import polymarket_agents.core.async_utils\n"
        "new = set(sys.modules) - before\n"
        "bad = sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names\n"
        "             and not m.startswith('polymarket_agents.core')\n"
        "             and m not in ('polymarket_agents',))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
