"""The live dashboard at ``/``: static pages, and one snapshot a second over server-sent events.

============================  ==============================================================
``GET /``                     the page (``Accept: application/json`` gets the endpoint list)
``GET /dashboard/{file}``     its script, style sheet and the vendored uPlot (MIT)
``GET /dashboard/events``     ``text/event-stream``: a ``snapshot`` event each second, and
                              the cash and P&L history first
============================  ==============================================================

One :class:`Dashboard` per service samples the account every second on the service's loop
(so that a page opened late still draws the history). The pages are served by the HTTP
server, on its own thread; their snapshots are built on the service's loop through the
server's snapshot cache, at most once a second however many pages watch, and every page
gets the same encoded bytes. A page that cannot keep up is dropped rather than buffered,
and at most :data:`MAX_WATCHERS` pages watch at once. Nothing is computed per
market event, and the page needs nothing from outside the service (no build step, no
network): it works offline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from importlib.resources import files
from typing import Any

from aiohttp import web

from polymarket_agents.agents import AgentsRuntime
from polymarket_agents.feed import MarketInfo, OrderBook

from ._state import LOGGER_NAME, ServiceState, plain

__all__ = [
    "BOOK_LEVELS",
    "HISTORY_POINTS",
    "MAX_MARKETS_SHOWN",
    "MAX_WATCHERS",
    "Dashboard",
    "add_dashboard",
]

_logger = logging.getLogger(LOGGER_NAME)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Snapshot = Callable[[web.Request, Hashable, Callable[[], bytes]], Awaitable[Any]]

HISTORY_POINTS = 3_600
"""Seconds of cash and P&L history kept (one point a second)."""

MAX_WATCHERS = 16
"""Pages that may watch at once; more get 503."""

MAX_MARKETS_SHOWN = 12
"""Markets whose books a snapshot carries (the first monitored ones)."""

BOOK_LEVELS = 15
"""Levels per side of each book a snapshot carries."""

_FEED_COUNTERS = (
    "markets",
    "monitors_ready",
    "events",
    "invalid_frames",
    "reconnects",
    "resyncs",
    "signals",
)
_WRITE_TIMEOUT = 5.0  # seconds a page may take to take one snapshot before it is dropped
_STATIC = files("polymarket_agents.service") / "dashboard"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
_FILES = ("index.html", "app.js", "style.css", "uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE.txt")


def _book(book: OrderBook) -> dict[str, Any]:
    data = book.to_json()
    data["bids"] = data["bids"][:BOOK_LEVELS]
    data["asks"] = data["asks"][:BOOK_LEVELS]
    return data


class Dashboard:
    """Builds the dashboard's snapshots of one service and hands them to its pages.

    Args:
        state: The service to show.
        interval: Seconds between snapshots (and history points).
    """

    def __init__(self, state: ServiceState, *, interval: float = 1.0) -> None:
        self._state = state
        self._interval = interval
        self.history: deque[tuple[int, str, str]] = deque(maxlen=HISTORY_POINTS)
        """``(epoch ms, cash, P&L)`` a second, oldest first."""
        self._closed = False
        self.watchers = 0
        """Pages connected now."""
        self.dropped = 0
        """Pages dropped because they did not keep up."""

    def __repr__(self) -> str:
        return f"<Dashboard watchers={self.watchers} history={len(self.history)}>"

    # -- the snapshot ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, as plain JSON values."""
        state = self._state
        ready, reasons = state.readiness()
        runtime = state.runtime
        counters = state.runtime_counters()
        snapshot: dict[str, Any] = {
            "time_ms": int(time.time() * 1000),
            "service": {
                "phase": str(state.phase),
                "ready": ready,
                "reasons": reasons,
                "uptime": round(state.uptime, 1),
                "failure": state.failure,
            },
            "tasks": [
                {
                    "name": name,
                    "status": m["status"],
                    "restarts": m["restarts"],
                    "errors": m["errors"],
                    "last_error": m["last_error"],
                    "uptime": round(m["uptime"], 1),
                }
                for name, m in sorted(state.task_metrics().items())
            ],
            "account": {
                key: counters.get(key)
                for key in ("cash", "pnl", "realized_pnl", "unrealized_pnl", "trades", "orders")
            },
            "feed": {key: counters.get(key) for key in _FEED_COUNTERS},
            "books": [],
            "fills": [],
            "signals": [],
            "connections": [],
            "markets_shown": 0,
            "markets_total": 0,
        }
        render = getattr(state.supervisor, "render", None)
        if callable(render):
            # The supervision tree as the core draws it (long lists of children summed up).
            snapshot["tree_lines"] = render(max_children=50)
        if isinstance(runtime, AgentsRuntime):
            self._agents(runtime, snapshot)
        return snapshot

    def _agents(self, runtime: AgentsRuntime, snapshot: dict[str, Any]) -> None:
        markets = runtime.markets
        names = {m.condition_id: m for m in markets}
        tokens: dict[str, tuple[MarketInfo, str]] = {}
        for market in markets:
            tokens[market.yes_token] = (market, "YES")
            tokens[market.no_token] = (market, "NO")
        by_asset = {book.asset_id: book for book in runtime.books()}
        shown = markets[:MAX_MARKETS_SHOWN]
        snapshot["markets_shown"], snapshot["markets_total"] = len(shown), len(markets)
        books = []
        for market in shown:
            yes, no = by_asset.get(market.yes_token), by_asset.get(market.no_token)
            books.append(
                {
                    "market": market.condition_id,
                    "slug": market.slug,
                    "question": market.question,
                    "yes": None if yes is None else _book(yes),
                    "no": None if no is None else _book(no),
                }
            )
        snapshot["books"] = books
        # Monitors are named by condition id; people read slugs.
        labels = self._state.task_labels()
        for task in snapshot["tasks"]:
            label = labels.get(task["name"])
            if label:
                task["label"] = label
        fills = []
        for fill in list(runtime.broker.recent_fills)[-20:]:
            known = tokens.get(fill.token_id)
            found = known[0] if known is not None else names.get(fill.market)
            outcome = known[1] if known is not None else fill.token_id
            fills.append(
                {
                    "time_ms": fill.timestamp_ms,
                    "slug": found.slug if found is not None else fill.market,
                    "outcome": outcome,
                    "side": fill.side,
                    "price": str(fill.price),
                    "size": str(fill.size),
                    "fee": str(fill.fee),
                }
            )
        snapshot["fills"] = fills[::-1]
        signals = sorted(
            (s for monitor in runtime.monitors.values() for s in monitor.recent_signals),
            key=lambda s: s["time_ms"],
            reverse=True,
        )
        snapshot["signals"] = signals[:20]
        if runtime.feed is not None:
            snapshot["connections"] = plain(runtime.feed.connections())

    def sample(self) -> None:
        """Append the account's cash and P&L now to the history."""
        counters = self._state.runtime_counters()
        cash, pnl = counters.get("cash"), counters.get("pnl")
        if cash is not None and pnl is not None:
            self.history.append((int(time.time() * 1000), str(cash), str(pnl)))

    async def run(self) -> None:
        """Sample the account every ``interval`` seconds, until cancelled (which ends the
        pages' streams)."""
        try:
            while True:
                try:
                    self.sample()
                except Exception:
                    # The dashboard must never take the service down with it.
                    _logger.exception("the dashboard could not sample the account")
                await asyncio.sleep(self._interval)
        finally:
            self.close()

    def close(self) -> None:
        """End every page's stream (the service is stopping); idempotent."""
        self._closed = True

    # -- what the pages get (built on the service's loop, by the HTTP server's snapshots) ---

    def encoded_snapshot(self) -> bytes:
        """The snapshot as a ``snapshot`` server-sent event."""
        body = json.dumps(self.snapshot(), default=str)
        return f"event: snapshot\ndata: {body}\n\n".encode()

    def encoded_history(self) -> bytes:
        """The cash and P&L history as a ``history`` server-sent event."""
        body = json.dumps([list(point) for point in self.history])
        return f"event: history\ndata: {body}\n\n".encode()

    async def stream(self, request: web.Request, snapshot: Snapshot) -> web.StreamResponse:
        """``GET /dashboard/events``: the history, then the latest snapshot each second.

        Runs where the HTTP server handles requests; the snapshots are built on the
        service's loop through ``snapshot`` (the HTTP server's cache, so every page shares
        one build a second).
        """
        if self.watchers >= MAX_WATCHERS:
            return web.Response(status=503, text=f"at most {MAX_WATCHERS} dashboards at once\n")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        self.watchers += 1
        try:
            sent: bytes | None = None
            async with asyncio.timeout(_WRITE_TIMEOUT):
                await response.write(
                    await snapshot(request, "dashboard history", self.encoded_history)
                )
            while not self._closed:
                body = await snapshot(request, "dashboard", self.encoded_snapshot)
                if body is not sent:
                    async with asyncio.timeout(_WRITE_TIMEOUT):
                        await response.write(body)
                    sent = body
                await asyncio.sleep(self._interval / 4)
        except TimeoutError:
            # A page that does not take its snapshots (or a service that does not answer)
            # is dropped, not buffered for.
            self.dropped += 1
            _logger.info("dropped a dashboard page that did not keep up")
        except ConnectionError:
            pass  # the page went away
        finally:
            self.watchers -= 1
        return response


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name", "index.html")
    if name not in _FILES:
        raise web.HTTPNotFound(text=f"no dashboard file {name!r}\n")
    resource = _STATIC / name
    suffix = name[name.rfind(".") :]
    body = await asyncio.to_thread(resource.read_bytes)
    return web.Response(body=body, content_type=_TYPES.get(suffix, "application/octet-stream"))


def add_dashboard(
    app: web.Application, dashboard: Dashboard, *, index: Handler, snapshot: Snapshot
) -> None:
    """Serve ``dashboard`` on ``app``: ``/``, ``/dashboard/{file}``, ``/dashboard/events``.

    Args:
        app: The service's application.
        dashboard: What the page shows.
        index: What ``/`` answers a client that asks for JSON (the endpoint list).
        snapshot: The HTTP server's cached, loop-safe way to build the snapshots.
    """

    async def root(request: web.Request) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return await index(request)
        return await _static(request)

    async def events(request: web.Request) -> web.StreamResponse:
        return await dashboard.stream(request, snapshot)

    app.router.add_get("/", root)
    app.router.add_get("/dashboard/events", events)
    app.router.add_get("/dashboard/{name}", _static)
