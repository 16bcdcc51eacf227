"""What the HTTP server, the metrics collector and the live view read: one service's state.

The service owns a :class:`ServiceState` and updates a handful of fields at its transitions;
readers take snapshots (:meth:`ServiceState.runtime_counters`, the supervisor's
``get_metrics()``) when asked, so nothing is recomputed per market event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from polymarket_agents.agents import RuntimeStats
from polymarket_agents.core.async_utils import (
    LoopWatchdog,
    Observer,
    Readiness,
    StalledError,
    TaskFailure,
    TaskMetrics,
    TaskRestart,
    TaskSupervisor,
)
from polymarket_agents.feed import OrderBook, redact_url

from ._config import ServiceConfig
from ._redact import Redactor, shown_db_path

__all__ = [
    "HEARTBEAT_INTERVAL",
    "LOGGER_NAME",
    "STALL_SECONDS",
    "AgentsRuntimeLike",
    "FailureCounts",
    "Phase",
    "ServiceState",
    "plain",
]

LOGGER_NAME = "polymarket_agents.service"
"""The logger of the service layer."""
_logger = logging.getLogger(LOGGER_NAME)

STALL_SECONDS = 5.0
"""A heartbeat older than this means the event loop is stuck: the service is not live."""

HEARTBEAT_INTERVAL = 0.25
"""Seconds between the heartbeat task's wake-ups."""


class Phase(enum.StrEnum):
    """Where the service is in its life::

    STARTING ──► RUNNING ──signal / duration──► STOPPING ──► STOPPED
        │                                          │
        └──────────── start-up fails ──────────────┴──► FAILED
    """

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class AgentsRuntimeLike(Protocol):
    """What the service needs of the agents runtime."""

    @property
    def supervisor(self) -> TaskSupervisor:
        """The supervisor every agent task runs under."""

    async def start(self) -> None:
        """Open the store, start the ingestion worker, the monitors and the health loop."""

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the monitors, drain the ingestion queue into the database, close it."""

    def stats(self) -> RuntimeStats:
        """A frozen snapshot of the runtime's counters."""

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether feeds are connected, books synced and the database writable; else why."""

    def books(self) -> Sequence[OrderBook]:
        """Every monitored asset's local order book."""


def plain(value: Any) -> Any:
    """A JSON-friendly copy of ``value``: structs and dataclasses become dicts, Decimals
    strings, datetimes ISO 8601 text, enums their values."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, msgspec.Struct):
        return {k: plain(v) for k, v in msgspec.structs.asdict(value).items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [plain(item) for item in value]
    return str(value)


class FailureCounts(Observer):
    """Counts the supervised tasks' failures as the core reports them (an :class:`Observer`
    on the service's supervisor), for ``/metrics``: by error class, final ones, stalls."""

    def __init__(self) -> None:
        self.by_class: dict[str, int] = {}
        """Failures by the policy's class: recoverable, unexpected, fatal."""
        self.final = 0
        """Failures after which the task was not restarted."""
        self.stalls = 0
        """Tasks restarted because they stopped calling ``beat()``."""
        self.restarts = 0
        """Restarts, by the supervisor or by name."""

    def on_failure(self, event: TaskFailure) -> None:
        """Count one failure."""
        key = event.error_class.value
        self.by_class[key] = self.by_class.get(key, 0) + 1
        if event.final:
            self.final += 1
        if isinstance(event.error, StalledError):
            self.stalls += 1

    def on_restart(self, event: TaskRestart) -> None:
        """Count one restart."""
        self.restarts += 1


class ServiceState:
    """The service's phase, start time, counters and references to what it runs.

    Args:
        config: The settings of this run.
        supervisor: The supervisor every task runs under.
    """

    def __init__(
        self,
        config: ServiceConfig,
        supervisor: TaskSupervisor,
        failures: FailureCounts | None = None,
    ) -> None:
        self.config = config
        self.supervisor = supervisor
        self.failures = failures or FailureCounts()
        """What the supervisor's observer counted (its ``observer=``, if it was given)."""
        self.phase = Phase.STARTING
        self.runtime: AgentsRuntimeLike | None = None
        self.failure: str | None = None
        """Why start-up or shutdown failed, in words."""
        self.started_at = datetime.now().astimezone()
        self.started = time.monotonic()
        self.ready_after: float | None = None
        """Seconds from start to the first ready answer."""
        self.feed_url: str | None = None
        self.gamma_url: str | None = None
        self.http_url: str | None = None
        self.markets: list[str] = []
        """Slugs of the monitored markets."""
        self.shard: str | None = None
        """The shard served (``K/N``), when the markets are sharded among replicas."""
        self.shard_role: str | None = None
        """``"holder"`` of the shard's lock, or ``"standby"`` waiting for it."""
        self.repeated_signals = 0
        """SIGINT/SIGTERM received after shutdown had begun."""
        self.http_requests = 0
        self.scrapes = 0
        self.view_refreshes = 0
        self.loop_lag = 0.0
        self.asyncio_tasks = 0
        """Tasks alive on the agents' event loop, counted by the heartbeat (leak watch)."""
        """How late the last heartbeat woke, in seconds."""
        self.last_beat = time.monotonic()
        self.watchdog: LoopWatchdog | None = None
        """Counts the event loop's holds (``config.loop_hold_threshold``), while it runs."""
        self.redact = Redactor.for_config(config)
        """Hides credentials and the database's absolute path in what the service shows."""
        self.readiness_checks = Readiness()
        """What :meth:`readiness` asks once the service runs: the agents runtime's readiness,
        and the checks or held reasons of any other part."""
        self.readiness_checks.add_check("agents", self._runtime_not_ready)

    def __repr__(self) -> str:
        return f"<ServiceState {self.phase} markets={len(self.markets)}>"

    @property
    def uptime(self) -> float:
        """Seconds since the service started."""
        return time.monotonic() - self.started

    def liveness(self) -> tuple[bool, list[str]]:
        """Whether the service is alive: its loop turns and it has not failed.

        Returns:
            ``(True, [])``, or False and the reasons.
        """
        reasons: list[str] = []
        if self.phase is Phase.FAILED:
            reasons.append(f"service failed: {self.failure}")
        stalled = time.monotonic() - self.last_beat
        if stalled > STALL_SECONDS:
            reasons.append(f"event loop heartbeat {stalled:.1f} s old")
        return not reasons, reasons

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether the service is ready: running, and nothing in :attr:`readiness_checks`
        (the agents runtime's readiness first) objecting.

        Returns:
            ``(True, [])``, or False and the reasons.
        """
        if self.shard_role == "standby" and self.phase is Phase.STARTING:
            # Standing by is a standby's job: not ready, it would stall rolling updates
            # and block every voluntary eviction (PodDisruptionBudget) for good.
            return True, []
        if self.phase is not Phase.RUNNING or self.runtime is None:
            return False, [f"service is {self.phase}"]
        reasons = self.readiness_checks.reasons()
        if not reasons and self.ready_after is None:
            self.ready_after = self.uptime
        return not reasons, [self.redact(reason) for reason in reasons]

    def _runtime_not_ready(self) -> list[str]:
        if self.runtime is None:
            return []
        return list(self.runtime.readiness()[1])

    def runtime_counters(self) -> dict[str, Any]:
        """The runtime's latest stats as a plain dict; empty before it starts."""
        if self.runtime is None:
            return {}
        try:
            counters = plain(self.runtime.stats())
        except Exception as exc:  # keep /status and /metrics answering
            _logger.warning("runtime stats failed: %s", exc, exc_info=exc)
            return {"stats_error": f"{type(exc).__name__}: {exc}"}
        return counters if isinstance(counters, dict) else {"stats": counters}

    def service_counters(self) -> dict[str, Any]:
        """The service's own counters, as plain values."""
        return {
            "phase": str(self.phase),
            "started_at": self.started_at.isoformat(),
            "uptime": round(self.uptime, 3),
            "ready_after": None if self.ready_after is None else round(self.ready_after, 3),
            "failure": self.failure,
            "feed_url": None if self.feed_url is None else redact_url(self.feed_url),
            "gamma_url": None if self.gamma_url is None else redact_url(self.gamma_url),
            "http_url": self.http_url,
            "db_path": shown_db_path(self.config.db_path),
            "markets": list(self.markets),
            "shard": self.shard,
            "shard_role": self.shard_role,
            "repeated_signals": self.repeated_signals,
            "http_requests": self.http_requests,
            "scrapes": self.scrapes,
            "view_refreshes": self.view_refreshes,
            "loop_lag": round(self.loop_lag, 6),
            "asyncio_tasks": self.asyncio_tasks,
            **self.loop_holds(),
        }

    def loop_holds(self) -> dict[str, Any]:
        """What the loop watchdog counted: holds of the event loop longer than its threshold
        (``loop_hold_threshold`` None when it is off)."""
        watchdog = self.watchdog
        if watchdog is None:
            return {"loop_hold_threshold": None}
        return {
            "loop_hold_threshold": watchdog.threshold,
            "loop_holds": watchdog.blocks,
            "loop_held_seconds": round(watchdog.blocked, 6),
            "loop_hold_longest_seconds": round(watchdog.worst, 6),
            # The innermost frame only; the WARNING logged for it has the whole stack.
            "loop_hold_longest_at": watchdog.worst_at or None,
        }

    def task_paths(self) -> dict[str, str]:
        """Every supervised task's path in the service's tree, by its name.

        A task is named by the last part of its path (``monitor_0x...`` for
        ``agents/monitors/monitor_0x...``): names are unique in the service's tree, and they
        are what the ``task`` label of ``/metrics``, ``/status``, the live view and the
        dashboard show. Should two tasks share a name, the second keeps its whole path.
        """
        return {name: path for name, path, _ in self._named()}

    def task_metrics(self) -> dict[str, TaskMetrics]:
        """Every supervised task's metrics, by name (see :meth:`task_paths`), in start order."""
        return {name: metrics for name, _, metrics in self._named()}

    def _named(self) -> list[tuple[str, str, TaskMetrics]]:
        named: list[tuple[str, str, TaskMetrics]] = []
        seen: set[str] = set()
        for path, metrics in self.supervisor.get_metrics().items():
            name = path.rsplit("/", 1)[-1]
            name = path if name in seen else name
            seen.add(name)
            named.append((name, path, metrics))
        return named

    def task_labels(self) -> dict[str, str]:
        """What people read for a task: ``monitor <slug>`` for a market's monitor (its task
        is named by condition id, unique but unreadable); other tasks by their names."""
        monitors = getattr(self.runtime, "monitors", None)
        if not isinstance(monitors, Mapping):
            return {}
        labels: dict[str, str] = {}
        for name, monitor in monitors.items():
            slug = getattr(getattr(monitor, "market", None), "slug", "")
            if slug:
                labels[name] = f"monitor {slug}"
        return labels

    def status(self) -> dict[str, Any]:
        """Everything ``GET /status`` answers: service counters, runtime stats, task metrics
        (by name, each with its ``path`` in the tree), the supervision tree drawn as lines,
        with credentials and the database's absolute path hidden."""
        ready, reasons = self.readiness()
        status: dict[str, Any] = self.redact.deep(
            {
                "service": self.service_counters(),
                "ready": ready,
                "reasons": reasons,
                "runtime": self.runtime_counters(),
                "tasks": self._tasks(),
                # The supervision tree as text lines (the core's Supervisor.render), long
                # lists of children summed up.
                "tree": self.supervisor.render(max_children=50),
            }
        )
        return status

    def _tasks(self) -> dict[str, Any]:
        tasks: dict[str, Any] = {}
        for name, path, metrics in self._named():
            tasks[name] = entry = plain(metrics)
            entry["path"] = path
        for name, label in self.task_labels().items():
            if name in tasks:
                tasks[name]["label"] = label
        return tasks

    async def heartbeat(self) -> None:
        """Wake every :data:`HEARTBEAT_INTERVAL` seconds, recording how late each wake-up is
        and how many tasks the loop has."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            self.loop_lag = max(0.0, loop.time() - before - HEARTBEAT_INTERVAL)
            self.last_beat = time.monotonic()
            self.asyncio_tasks = len(asyncio.all_tasks(loop))
