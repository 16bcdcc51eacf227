"""Prometheus metrics, produced at scrape time from the supervisor's and the runtime's snapshots.

Nothing is updated per market event: :class:`ServiceCollector` reads
``supervisor.get_metrics()`` and ``runtime.stats()`` when ``/metrics`` is scraped, so an
unscraped service pays nothing for its metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ._state import Phase, ServiceState

__all__ = ["NAMESPACE", "ServiceCollector", "service_registry"]

NAMESPACE = "polymarket_agents"
"""Prefix of every metric name."""

_TASK_STATUSES = ("running", "restarting", "stopped")

# Runtime counters with a known meaning: (kind, help, label of a breakdown). Other numeric
# fields are exported as gauges named after the field, so a counter added to the runtime
# shows up without a change here.
_KNOWN: dict[str, tuple[str, str, str]] = {
    "markets": ("gauge", "Markets monitored.", ""),
    "markets_added": ("counter", "Markets added while running (new in the universe).", ""),
    "markets_retired": ("counter", "Markets retired while running (resolved or delisted).", ""),
    "retired_task_restarts": (
        "counter",
        "Restarts of retired markets' monitor tasks (no longer listed per task).",
        "",
    ),
    "retired_task_errors": (
        "counter",
        "Errors of retired markets' monitor tasks (no longer listed per task).",
        "",
    ),
    "monitors_running": ("gauge", "Monitors whose task is running.", ""),
    "monitors_ready": ("gauge", "Monitors connected with both books synced.", ""),
    "events": ("counter", "Market events the monitors took from their feeds.", ""),
    # Exported once, as the labelled breakdown below; the total is the sum over its labels.
    "invalid_frames": ("skip", "", ""),
    "invalid_frames_by_reason": (
        "counter",
        "Feed frames that failed validation and were skipped, by reason.",
        "reason",
    ),
    "reconnects": ("counter", "Feed reconnection attempts.", ""),
    "resyncs": ("counter", "Order book snapshots requested again for stale books.", ""),
    "monitor_restarts": ("counter", "Restarts of monitor tasks.", ""),
    "signals": ("counter", "Analyses with an edge above the threshold.", ""),
    # The orders' total is the sum of the labelled breakdown (result), exported instead.
    "orders": ("skip", "", ""),
    "orders_by_result": (
        "counter",
        "Paper orders posted by this process, by result: filled, posted (resting), killed, "
        "refused_<reason>.",
        "result",
    ),
    "trades": ("counter", "Paper fills of the account (every run; loaded ones included).", ""),
    "run_trades": ("counter", "Paper fills of this run.", ""),
    "duplicate_signals": ("counter", "Signals refused as already handled.", ""),
    "cash": ("gauge", "Paper cash, USDC.", ""),
    "pnl": ("gauge", "Paper profit and loss of the account over every run, USDC.", ""),
    "run_pnl": ("gauge", "Paper profit and loss of this run, USDC.", ""),
    "realized_pnl": ("gauge", "Paper profit taken, USDC.", ""),
    "unrealized_pnl": ("gauge", "Mark-to-market paper profit of open positions, USDC.", ""),
    "queue_depth": ("gauge", "Items waiting in the ingestion queue.", ""),
    "queue_size": ("gauge", "Capacity of the ingestion queue.", ""),
    "rows_queued": ("counter", "Rows taken on to be stored: market data and trade results.", ""),
    "stored_rows": ("counter", "Rows written to the database.", ""),
    "duplicate_rows": ("counter", "Rows the database already had.", ""),
    "invalid_rows": ("counter", "Rows the database refused as invalid.", ""),
    "pending_rows": ("gauge", "Rows queued or in hand, not stored yet.", ""),
    "lost_rows": ("counter", "Rows that will not be stored (given up, or in a vanished file).", ""),
    "ingest_latency": ("gauge", "Seconds the last ingestion batch took to write.", ""),
    "ingestion_retries": ("counter", "Failed database writes, each retried.", ""),
    "stored_by_table": ("counter", "Rows written to the database, per table.", "table"),
    "write_ahead_rows": (
        "gauge",
        "Paper orders in the database in their write-ahead (pending) state alone: their "
        "result is being stored or was given up.",
        "",
    ),
}

# Fields exported under another metric name: units in the name (seconds, USDC), paper fills
# named as fills (the database's ``trades`` table holds the market's trades).
_RENAMED = {
    "invalid_frames_by_reason": "invalid_frames",
    "orders_by_result": "paper_orders",
    "trades": "paper_fills",
    "run_trades": "paper_fills_this_run",
    "cash": "paper_cash_usdc",
    "pnl": "paper_pnl_usdc",
    "run_pnl": "paper_pnl_this_run_usdc",
    "realized_pnl": "paper_realized_pnl_usdc",
    "unrealized_pnl": "paper_unrealized_pnl_usdc",
    "ingest_latency": "ingest_latency_seconds",
}

_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _number(value: Any) -> float | None:
    """The value as a float if it is a number (Decimal text included), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class ServiceCollector(Collector):
    """Yields the service's metrics from fresh snapshots on every scrape.

    * per task: ``..._task_restarts_total``, ``..._task_errors_total``,
      ``..._task_status`` (1 for the current one of running/restarting/stopped),
      ``..._task_uptime_seconds``;
    * the runtime's counters: ``..._events_total``, ``..._invalid_frames_total{reason}``,
      ``..._reconnects_total``, ``..._queue_depth``, ``..._ingest_latency_seconds``,
      ``..._paper_fills_total``, ``..._paper_orders_total{result}``, ``..._paper_cash_usdc``,
      ``..._paper_pnl_usdc`` ... (one family per numeric field of its stats);
    * ``..._market_info{task, market, slug}`` 1 per monitored market: the names people read
      for the ``task`` label of the per-task families, joined in a query rather than put
      on every series;
    * the service: ``..._up``, ``..._ready``, ``..._uptime_seconds``, ``..._loop_lag_seconds``;
    * the loop watchdog: ``..._loop_holds_total``, ``..._loop_held_seconds_total``,
      ``..._loop_hold_longest_seconds``, ``..._loop_hold_threshold_seconds``.

    Args:
        state: The service to report on.
    """

    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def collect(self) -> Iterator[Any]:
        """Build every metric family from the current snapshots."""
        state = self._state
        state.scrapes += 1
        yield from self._tasks()
        yield from self._markets()
        yield from self._runtime(state.runtime_counters())
        alive, _ = state.liveness()
        ready, _ = state.readiness()
        for name, value, doc in (
            ("up", alive, "1 while the service is alive."),
            ("ready", ready, "1 while feeds are synced and the database is writable."),
            ("uptime_seconds", state.uptime, "Seconds since the service started."),
            ("loop_lag_seconds", state.loop_lag, "How late the event loop's last heartbeat was."),
        ):
            yield GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, value=float(value))
        yield from self._loop_holds()
        if state.shard is not None:
            holder = GaugeMetricFamily(
                f"{NAMESPACE}_shard_holder",
                "1 while this replica holds its shard's lock, 0 while it stands by.",
                labels=["shard"],
            )
            holder.add_metric([state.shard], float(state.shard_role == "holder"))
            yield holder
        phase = GaugeMetricFamily(
            f"{NAMESPACE}_phase", "1 for the service's current phase.", labels=["phase"]
        )
        for member in Phase:
            phase.add_metric([member.value], float(state.phase is member))
        yield phase

    def _loop_holds(self) -> Iterator[Any]:
        """What the loop watchdog counted; nothing when it is off."""
        watchdog = self._state.watchdog
        if watchdog is None:
            return
        yield CounterMetricFamily(
            f"{NAMESPACE}_loop_holds",
            "Steps of the event loop that held it longer than the hold threshold.",
            value=watchdog.blocks,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_loop_held_seconds",
            "Seconds the event loop spent in those holds.",
            value=watchdog.blocked,
        )
        for name, value, doc in (
            ("loop_hold_longest_seconds", watchdog.worst, "The longest hold of the event loop."),
            (
                "loop_hold_threshold_seconds",
                watchdog.threshold,
                "How long a step of the event loop may take before it counts as a hold.",
            ),
        ):
            yield GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, value=value)

    def _markets(self) -> Iterator[Any]:
        """One series per monitored market: its task, condition id and slug. Bounded by the
        markets the service monitors (``--market-count``, or a shard's share of them)."""
        runtime = self._state.runtime
        monitors = getattr(runtime, "monitors", None)
        if not isinstance(monitors, Mapping):
            return
        info = GaugeMetricFamily(
            f"{NAMESPACE}_market_info",
            "1 per monitored market: its monitor's task, condition id and slug.",
            labels=["task", "market", "slug"],
        )
        for task, monitor in monitors.items():
            market = getattr(monitor, "market", None)
            if market is not None:
                info.add_metric([task, market.condition_id, market.slug], 1.0)
        yield info

    def _tasks(self) -> Iterator[Any]:
        metrics = self._state.task_metrics()
        restarts = CounterMetricFamily(
            f"{NAMESPACE}_task_restarts",
            "Times a supervised task was started again.",
            labels=["task"],
        )
        errors = CounterMetricFamily(
            f"{NAMESPACE}_task_errors", "Exceptions a supervised task raised.", labels=["task"]
        )
        status = GaugeMetricFamily(
            f"{NAMESPACE}_task_status",
            "1 for a supervised task's current status.",
            labels=["task", "status"],
        )
        uptime = GaugeMetricFamily(
            f"{NAMESPACE}_task_uptime_seconds",
            "Seconds a supervised task's current attempt has run.",
            labels=["task"],
        )
        for name, entry in metrics.items():
            restarts.add_metric([name], entry["restarts"])
            errors.add_metric([name], entry["errors"])
            uptime.add_metric([name], entry["uptime"])
            for value in _TASK_STATUSES:
                status.add_metric([name, value], float(entry["status"] == value))
        yield from (restarts, errors, status, uptime)
        # As the core reported them (the supervisor's observer), not re-derived here.
        counted = self._state.failures
        failures = CounterMetricFamily(
            f"{NAMESPACE}_task_failures",
            "Failures of supervised tasks, by the restart policy's error class.",
            labels=["class"],
        )
        for error_class in ("recoverable", "unexpected", "fatal"):
            failures.add_metric([error_class], counted.by_class.get(error_class, 0))
        yield failures
        for family, count, doc in (
            ("task_final_failures", counted.final, "Failures after which a task stayed down."),
            ("task_stalls", counted.stalls, "Tasks restarted for not calling beat()."),
            ("task_restarts_observed", counted.restarts, "Restarts of supervised tasks."),
        ):
            yield CounterMetricFamily(f"{NAMESPACE}_{family}", doc, value=count)

    def _runtime(self, counters: Mapping[str, Any]) -> Iterator[Any]:
        for field, value in counters.items():
            kind, doc, label = _KNOWN.get(field, ("gauge", f"The agents runtime's {field}.", ""))
            if kind == "skip":
                continue
            name = f"{NAMESPACE}_{_NAME.sub('_', _RENAMED.get(field, field))}"
            if isinstance(value, Mapping):
                # A breakdown such as rows per table: one labelled family.
                samples = [(str(k), _number(v)) for k, v in value.items()]
                labels = [label or "key"]
                family: Any = (
                    CounterMetricFamily(name, doc, labels=labels)
                    if kind == "counter"
                    else GaugeMetricFamily(name, doc, labels=labels)
                )
                for key, number in samples:
                    if number is not None:
                        family.add_metric([key], number)
                yield family
                continue
            number = _number(value)
            if number is None:
                continue
            if kind == "counter":
                yield CounterMetricFamily(name, doc, value=number)
            else:
                yield GaugeMetricFamily(name, doc, value=number)


def service_registry(state: ServiceState) -> CollectorRegistry:
    """A registry holding the service's collector and the process, platform and GC ones.

    A registry of its own rather than the global one, so two services in one process (tests,
    benchmarks) do not collide.

    Args:
        state: The service to report on.

    Returns:
        The registry to expose on ``/metrics``.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(state))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
