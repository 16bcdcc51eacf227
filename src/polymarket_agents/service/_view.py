"""The live view: a table of the supervised tasks and the feed and trading counters.

Shown when stdout is a terminal. The table is built on the loop from snapshots (cheap); the
terminal is written from a worker thread, so a slow terminal never stalls the agents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ._state import ServiceState

__all__ = ["LiveView"]

# The counters shown, in this order, when the runtime has them (/status has them all).
_COUNTER_ORDER = (
    "markets",
    "monitors_ready",
    "events",
    "invalid_frames",
    "reconnects",
    "resyncs",
    "signals",
    "orders",
    "trades",
    "pnl",
    "cash",
    "queue_depth",
    "rows_queued",
    "stored_rows",
    "duplicate_rows",
    "lost_rows",
    "ingest_latency",
)

_STATUS_STYLE = {"running": "green", "restarting": "yellow", "stopped": "red"}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return f"{sum(v for v in value.values() if isinstance(v, int | float)):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class LiveView:
    """Redraws a table of tasks and counters a few times a second.

    Args:
        state: The service to show.
        console: Where to draw; the same console the log handler writes to, so log lines
            scroll above the table instead of through it.
        interval: Seconds between redraws (at least 0.1).
        max_tasks: Task rows shown at most; troubled tasks first, the rest summarised.
    """

    def __init__(
        self,
        state: ServiceState,
        console: Console,
        *,
        interval: float = 0.5,
        max_tasks: int = 20,
    ) -> None:
        self._state = state
        self._console = console
        self._interval = max(interval, 0.1)
        self._max_tasks = max_tasks
        self._live: Live | None = None

    def __repr__(self) -> str:
        return f"<LiveView every {self._interval:.2f}s>"

    def render(self) -> RenderableType:
        """The current view, built from fresh snapshots."""
        state = self._state
        ready, reasons = state.readiness()
        title = Text.assemble(
            ("polymarket-agents", "bold"),
            f"  {state.phase}  ",
            (
                "ready" if ready else "not ready: " + "; ".join(reasons),
                "green" if ready else "yellow",
            ),
            f"  up {_duration(state.uptime)}",
            f"  {state.http_url}" if state.http_url else "",
        )
        return Group(title, self._tasks_table(), self._counters_table())

    def _tasks_table(self) -> Table:
        metrics = self._state.supervisor.get_metrics()
        table = Table(expand=True, title="tasks", title_justify="left")
        # Monitor names carry a 66-character condition id: cut them, and the last error,
        # rather than squeeze the counts out of a narrow terminal.
        table.add_column("task", no_wrap=True, max_width=28, overflow="ellipsis")
        table.add_column("status", no_wrap=True, min_width=10)
        table.add_column("restarts", justify="right", no_wrap=True)
        table.add_column("errors", justify="right", no_wrap=True)
        table.add_column("last error", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("uptime", justify="right", no_wrap=True, min_width=7)
        # Troubled tasks first: not running, then most errors, then by name.
        rows = sorted(
            metrics.items(),
            key=lambda item: (item[1]["status"] == "running", -item[1]["errors"], item[0]),
        )
        for name, m in rows[: self._max_tasks]:
            table.add_row(
                name,
                Text(m["status"], style=_STATUS_STYLE.get(m["status"], "")),
                str(m["restarts"]),
                str(m["errors"]),
                m["last_error"] or "",
                _duration(m["uptime"]) if m["status"] == "running" else "",
            )
        hidden = len(rows) - self._max_tasks
        if hidden > 0:
            running = sum(1 for _, m in rows[self._max_tasks :] if m["status"] == "running")
            table.add_row(f"… {hidden} more", f"{running} running", "", "", "", "")
        return table

    def _counters_table(self) -> Table:
        counters = self._state.runtime_counters()
        keys = [k for k in _COUNTER_ORDER if k in counters]
        table = Table(title="feed and trading", title_justify="left", show_header=False)
        table.add_column("counter")
        table.add_column("value", justify="right")
        for key in keys:
            value = counters[key]
            if value is None or isinstance(value, list | tuple):
                continue
            text = (
                f"{value * 1e3:.1f} ms"
                if key == "ingest_latency" and isinstance(value, float)
                else _value(value)
            )
            table.add_row(key.replace("_", " "), text)
        return table

    def _draw(self, renderable: RenderableType) -> None:
        live = self._live
        if live is not None:
            live.update(renderable, refresh=True)

    async def run(self) -> None:
        """Draw until cancelled, then leave the last frame on the screen."""
        live = Live(
            console=self._console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        await asyncio.to_thread(live.start)
        self._live = live
        try:
            while True:
                renderable = self.render()
                self._state.view_refreshes += 1
                await asyncio.to_thread(self._draw, renderable)
                await asyncio.sleep(self._interval)
        finally:
            self._live = None
            # A last, final frame: stop() is quick and must happen even when cancelled.
            live.update(self.render(), refresh=False)
            live.stop()
            if not self._console.is_terminal:
                # Not a terminal: the frame was printed once, without a final newline.
                self._console.line()
