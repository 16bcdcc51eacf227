"""Helpers for the agents tests: fast settings, simulators, settling and accounting."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polymarket_agents.agents import (
    AgentsConfig,
    AgentsRuntime,
    Analysis,
    ComplementArbitrage,
    MarketMonitor,
)
from polymarket_agents.core.async_utils import instant_policy
from polymarket_agents.feed import MarketBooks, MarketEvent, MarketInfo, PriceChange
from polymarket_agents.feed.simulator import MarketSimulator
from polymarket_agents.storage import (
    FillRow,
    PaperOrderRow,
    Position,
    SQLiteStore,
    Table,
    WriteResult,
)

MakeSimulator = Callable[..., Awaitable[MarketSimulator]]
MakeRuntime = Callable[..., Awaitable[AgentsRuntime]]

DATA_TABLES = (Table.BOOK_SNAPSHOTS, Table.PRICE_CHANGES, Table.TRADES, Table.TICK_SIZE_CHANGES)


def fast_feed_options(**changes: Any) -> dict[str, Any]:
    """MarketFeed settings for tests: no backoff, sub-second heartbeats and watchdogs."""
    options: dict[str, Any] = {
        "policy": instant_policy(),
        "ping_interval": 0.05,
        "pong_timeout": 1.0,
        "silence_timeout": 2.0,
        "resync_timeout": 2.0,
        "open_timeout": 2.0,
        "close_timeout": 0.5,
    }
    options.update(changes)
    return options


def fast_config(**changes: Any) -> AgentsConfig:
    """AgentsConfig for tests: instant restarts, fast watchdogs, a quiet health loop."""
    options: dict[str, Any] = {
        "task_policy": instant_policy(),
        "feed_policy": instant_policy(),
        "write_policy": instant_policy(),
        "ping_interval": 0.05,
        "pong_timeout": 1.0,
        "silence_timeout": 2.0,
        "resync_timeout": 2.0,
        "open_timeout": 2.0,
        "close_timeout": 0.5,
        "flush_interval": 0.005,
        "health_interval": 3600.0,
        "handoff_timeout": 1.0,
    }
    options.update(changes)
    return AgentsConfig(**options)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, checking every few milliseconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def make_simulator() -> AsyncIterator[MakeSimulator]:
    """Start simulators on 127.0.0.1, port 0; every one is closed at teardown."""
    simulators: list[MarketSimulator] = []

    async def make(**options: Any) -> MarketSimulator:
        options.setdefault("idle_timeout", None)
        simulator = MarketSimulator(host="127.0.0.1", port=0, **options)
        await simulator.start()
        simulators.append(simulator)
        return simulator

    yield make
    for simulator in simulators:
        await simulator.aclose()


@pytest.fixture
async def make_runtime(tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    """Start runtimes on a simulator (a SQLite file in tmp_path by default); every one is
    stopped at teardown."""
    runtimes: list[AgentsRuntime] = []

    async def make(
        sim: MarketSimulator,
        *,
        markets: list[MarketInfo] | None = None,
        store_path: Path | None = None,
        start: bool = True,
        **options: Any,
    ) -> AgentsRuntime:
        options.setdefault("config", fast_config())
        if "store" not in options:
            options["store_path"] = store_path or tmp_path / "agents.sqlite"
        runtime = AgentsRuntime(
            feed_url=sim.ws_url,
            markets=markets if markets is not None else sim.markets(),
            **options,
        )
        runtimes.append(runtime)
        if start:
            await runtime.start()
        return runtime

    yield make
    for runtime in runtimes:
        await runtime.stop()


async def wait_ready(runtime: AgentsRuntime, timeout: float = 5.0) -> None:
    """Wait until every monitor is connected with synced books."""
    await eventually(lambda: runtime.readiness()[0], timeout)


async def settle_monitor(sim: MarketSimulator, monitor: MarketMonitor) -> None:
    """Wait until the monitor has taken every event its feed received so far.

    Call with the simulator paused: its outboxes are then empty, and the feed's next two
    PONGs were sent after every data frame, so once they are in, so is everything else.
    """
    feed = monitor.feed
    if feed is None or not feed.connected:
        return
    target = feed.stats.pongs + 2
    await eventually(lambda: feed.stats.pongs >= target or not feed.connected)
    await eventually(lambda: monitor.stats.backlog == 0)


async def settle(sim: MarketSimulator, runtime: AgentsRuntime) -> None:
    """Pause the simulator; wait until every event sent was taken and stored."""
    await sim.pause()
    for monitor in runtime.monitors.values():
        await settle_monitor(sim, monitor)
    async with asyncio.timeout(5.0):
        await runtime.queue.join()


class Tally:
    """A strategy wrapper that counts the rows each event should become.

    The monitor calls the strategy once per event it takes, so this counts, independently
    of the monitor's own counters, the events of every kind (one row each) and the
    entries of the price changes.
    """

    def __init__(self, inner: ComplementArbitrage | None = None) -> None:
        self.inner = inner or ComplementArbitrage()
        self.events: Counter[str] = Counter()
        self.price_change_entries = 0

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        """Count the event, then delegate."""
        self.events[type(event).__name__] += 1
        if type(event) is PriceChange:
            self.price_change_entries += len(event.price_changes)
        return self.inner.analyze(books, event)

    def resume(self, signal_ids: Any) -> int:
        """Delegate."""
        return self.inner.resume(signal_ids)


async def stored(path: Path) -> dict[Table, int]:
    """The row count of every table of the database at ``path``."""
    async with SQLiteStore(path) as store:
        return await store.counts()


def sim_events(sim: MarketSimulator) -> Counter[str]:
    """Events the simulator wrote to every connection, by event type."""
    total: Counter[str] = Counter()
    for connection in sim.connections():
        total.update(connection.events_by_type)
    return total


D = Decimal


class StoreWrapper:
    """A :class:`~polymarket_agents.storage.Store` that passes every call to a real
    SQLite store: subclass it to fail or record some calls, as a faulty backend would."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    @property
    def lost(self) -> str | None:
        return self.inner.lost

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def verify(self) -> None:
        await self.inner.verify()

    async def write_batch(self, rows: Sequence[object]) -> WriteResult:
        return await self.inner.write_batch(rows)

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        return await self.inner.write_trades(rows)

    async def count(self, table: Table | str) -> int:
        return await self.inner.count(table)

    async def counts(self) -> dict[Table, int]:
        return await self.inner.counts()

    async def recent_orders(self, limit: int = 20) -> list[PaperOrderRow]:
        return await self.inner.recent_orders(limit)

    async def open_orders(self) -> list[PaperOrderRow]:
        return await self.inner.open_orders()

    async def latest_orders(self) -> list[PaperOrderRow]:
        return await self.inner.latest_orders()

    async def recent_fills(self, limit: int = 20) -> list[FillRow]:
        return await self.inner.recent_fills(limit)

    async def positions(self) -> list[Position]:
        return await self.inner.positions()
