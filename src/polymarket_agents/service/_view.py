"""The live view: the supervision tree, a table of its tasks, the feed and trading counters.

Shown when stdout is a terminal. The table is built on the loop from snapshots, as styled
text in fixed-width columns: about a millisecond a frame, where rich's ``Table`` layout
takes over ten, which a service redrawing twice a second would pay out of its throughput.
The terminal is written from a worker thread, so a slow terminal never stalls the agents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from polymarket_agents.core.async_utils import Supervisor

from ._state import ServiceState

__all__ = ["LiveView"]

# The counters shown, in this order, when the runtime has them (/status has them all).
_COUNTERS = (
    ("markets", "markets"),
    ("monitors_ready", "monitors ready"),
    ("events", "events"),
    ("invalid_frames", "invalid frames"),
    ("reconnects", "reconnects"),
    ("resyncs", "resyncs"),
    ("signals", "signals"),
    ("orders", "orders"),
    ("trades", "trades"),
    ("pnl", "P&L"),
    ("cash", "cash"),
    ("queue_depth", "queue depth"),
    ("rows_queued", "rows queued"),
    ("stored_rows", "stored rows"),
    ("duplicate_rows", "duplicate rows"),
    ("lost_rows", "lost rows"),
    ("ingest_latency", "ingest latency"),
)

_STATUS_STYLE = {"running": "green", "restarting": "yellow", "stopped": "red"}

# Column widths of the task table; the last error takes what is left of the line.
_TASK, _STATUS, _RESTARTS, _ERRORS, _UPTIME = 30, 10, 8, 6, 8
_CELL = 28  # one counter: label and value


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, an ellipsis marking a cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _value(key: str, value: Any) -> str:
    if key == "ingest_latency" and isinstance(value, float):
        return f"{value * 1e3:.1f} ms"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _supervisors(root: Supervisor, depth: int = 0) -> Iterator[tuple[int, Supervisor]]:
    """The supervisors of a tree, depth first, each with its depth."""
    yield depth, root
    for child in root.children().values():
        if isinstance(child, Supervisor):
            yield from _supervisors(child, depth + 1)


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

    def render(self) -> Text:
        """The current view, built from fresh snapshots."""
        state = self._state
        width = max(self._console.width, 60)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        ready, reasons = state.readiness()
        text.append("polymarket-agents", "bold")
        text.append(f"  {state.phase}  ")
        if ready:
            text.append("ready", "green")
        else:
            text.append(_cut("not ready: " + "; ".join(reasons), width // 2), "yellow")
        text.append(f"  up {_duration(state.uptime)}")
        if state.http_url:
            text.append(f"  {state.http_url}")
        watchdog = state.watchdog
        if watchdog is not None and watchdog.blocks:
            text.append(f"  loop held {watchdog.blocks}x, longest {watchdog.worst:.2f} s", "yellow")
        text.append("\n")
        # The supervision tree: each supervisor in a line (strategy, state, restarts,
        # children by status), indented under its parent; the tasks are in the table below.
        for depth, supervisor in _supervisors(state.supervisor):
            prefix = "supervision: " if depth == 0 else "  " * depth + "└ "
            text.append(_cut(prefix + supervisor.summary(), width) + "\n")
        text.append("\n", "dim")
        self._tasks(text, width)
        text.append("\n")
        self._counters(text, width)
        return text

    def _tasks(self, text: Text, width: int) -> None:
        error_width = max(width - (_TASK + _STATUS + _RESTARTS + _ERRORS + _UPTIME + 6), 10)
        text.append(
            f"{'task':<{_TASK}} {'status':<{_STATUS}} {'restarts':>{_RESTARTS}} "
            f"{'errors':>{_ERRORS}} {'uptime':>{_UPTIME}}  last error\n",
            "bold",
        )
        # Troubled tasks first: not running, then most errors, then by name.
        rows = sorted(
            self._state.task_metrics().items(),
            key=lambda item: (item[1]["status"] == "running", -item[1]["errors"], item[0]),
        )
        labels = self._state.task_labels()
        for name, m in rows[: self._max_tasks]:
            status = m["status"]
            uptime = _duration(m["uptime"]) if status == "running" else ""
            text.append(f"{_cut(labels.get(name, name), _TASK):<{_TASK}} ")
            text.append(f"{status:<{_STATUS}}", _STATUS_STYLE.get(status, ""))
            text.append(f" {m['restarts']:>{_RESTARTS}} ")
            text.append(f"{m['errors']:>{_ERRORS}}", "red" if m["errors"] else "")
            text.append(f" {uptime:>{_UPTIME}}  ")
            text.append(_cut(m["last_error"] or "", error_width) + "\n", "red")
        hidden = rows[self._max_tasks :]
        if hidden:
            running = sum(1 for _, m in hidden if m["status"] == "running")
            text.append(f"… {len(hidden)} more, {running} running\n", "dim")

    def _counters(self, text: Text, width: int) -> None:
        counters = self._state.runtime_counters()
        cells = [
            f"{label} {_value(key, counters[key]):>{_CELL - len(label) - 1}}"
            for key, label in _COUNTERS
            if counters.get(key) is not None
        ]
        text.append("feed and trading\n", "bold")
        per_line = max(width // (_CELL + 3), 1)
        for start in range(0, len(cells), per_line):
            text.append("   ".join(cells[start : start + per_line]) + "\n")

    def _draw(self, renderable: Text) -> None:
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
