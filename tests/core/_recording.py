"""An observer for tests: keeps every event it is told of."""

from __future__ import annotations

from polymarket_agents.core.async_utils import Observer, TaskFailure, TaskRestart


class Recorder(Observer):
    """Keeps every event it is told of."""

    def __init__(self) -> None:
        self.failures: list[TaskFailure] = []
        self.restarts: list[TaskRestart] = []

    def on_failure(self, event: TaskFailure) -> None:
        self.failures.append(event)

    def on_restart(self, event: TaskRestart) -> None:
        self.restarts.append(event)
