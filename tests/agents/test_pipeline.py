"""End to end: simulator -> monitors -> analysis -> paper broker -> ingestion -> SQLite.

The accounting every test here checks (see :mod:`polymarket_agents.agents`): each event a
monitor takes from its feed is stored exactly once, as

* ``book`` -> one ``book_snapshots`` row,
* ``price_change`` -> one ``price_changes`` row holding its entries,
* ``last_trade_price`` -> one ``trades`` row, ``tick_size_change`` -> one ``tick_size_changes`` row,

plus one ``markets`` row per market (written again, as a duplicate, by every monitor
restart) and one ``paper_orders`` row per order and ``fills`` row per fill. Nothing is
lost (no lost rows anywhere) and no market-data row is a duplicate. The events a monitor
takes are counted independently by a strategy wrapper (:class:`Tally`), which sees each one.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.agents import AgentsRuntime, monitor_task_name
from polymarket_agents.feed.simulator import FaultPlan
from polymarket_agents.storage import SQLiteStore, Table

from ._fixtures import (
    DATA_TABLES,
    MakeRuntime,
    MakeSimulator,
    Tally,
    eventually,
    fast_config,
    make_runtime,
    make_simulator,
    settle,
    sim_events,
    stored,
    wait_ready,
)
from .test_monitor import dislocate

__all__ = ["make_runtime", "make_simulator"]  # fixtures, used by name

D = Decimal


def taken(runtime: AgentsRuntime) -> Counter[str]:
    """Events the runtime's monitors took, by event type."""
    total: Counter[str] = Counter()
    for monitor in runtime.monitors.values():
        total.update(monitor.stats.events_by_type)
    return total


async def assert_stored_exactly_once(runtime: AgentsRuntime, tally: Tally, path: Path) -> None:
    """After runtime.stop(): every event taken is in the database once, nothing was lost."""
    events = taken(runtime)
    assert sum(events.values()) == sum(tally.events.values())
    counts = await stored(path)
    assert counts[Table.BOOK_SNAPSHOTS] == events["book"]
    assert counts[Table.PRICE_CHANGES] == events["price_change"]
    assert counts[Table.TRADES] == events["last_trade_price"]
    assert counts[Table.TICK_SIZE_CHANGES] == events["tick_size_change"]
    assert counts[Table.MARKETS] == len(runtime.markets)
    assert counts[Table.PAPER_ORDERS] == runtime.broker.orders
    assert counts[Table.FILLS] == runtime.broker.fills
    worker = runtime.worker.stats
    for table in DATA_TABLES:
        assert worker.duplicates_by_table.get(table, 0) == 0, table
    stats = runtime.stats()
    assert stats.lost_rows == 0
    assert worker.requeued_items == 0
    assert runtime.queue.qsize() == 0
    queued = Counter[str]()
    for monitor in runtime.monitors.values():
        queued.update(monitor.stats.rows_by_table)
    for table in DATA_TABLES:
        assert queued[table] == counts[table], table


async def test_the_pipeline_stores_every_event_sent_exactly_once(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """With no faults, every event the simulator sent is taken by a monitor, stored once,
    and the dislocations it produces are traded: orders and fills are stored too."""
    sim = await make_simulator(
        markets=4, event_rate=500.0, seed=11, dislocation_rate=0.02, dislocation_seconds=0.2
    )
    tally = Tally()
    runtime = await make_runtime(sim, strategy=tally)
    await wait_ready(runtime)
    await eventually(lambda: runtime.stats().events >= 600 and runtime.broker.orders >= 2)
    await settle(sim, runtime)
    assert taken(runtime) == sim_events(sim)
    await runtime.stop()
    await assert_stored_exactly_once(runtime, tally, tmp_path / "agents.sqlite")
    stats = runtime.stats()
    assert stats.signals >= 1
    assert stats.trades >= 2
    assert stats.pnl > 0  # complement pairs bought below 1 are worth 1


async def test_an_injected_dislocation_is_traded_exactly_once(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """One dislocation is traded once (two legs), although its book is seen again after a
    reconnect, after a monitor restart and after a process restart; once it is gone, the
    next one at the market is a new signal and is traded too."""
    sim = await make_simulator(markets=1, event_rate=200.0, seed=5, dislocation_seconds=2.0)
    path = tmp_path / "agents.sqlite"
    # While dislocated a single market is silent: keep the silence watchdog out of it.
    config = fast_config(silence_timeout=None)
    runtime = await make_runtime(sim, config=config)
    await wait_ready(runtime)
    market = sim.universe.markets[0]
    name = monitor_task_name(market.condition_id)
    monitor = runtime.monitors[name]
    await sim.pause()
    dislocate(sim)
    sim.resume()
    await eventually(lambda: runtime.broker.orders == 2)
    assert runtime.broker.fills >= 2

    sim.drop_connections()  # the resubscription replays the dislocated book
    await eventually(lambda: runtime.stats().reconnects >= 1 and monitor.stats.synced)
    await eventually(lambda: runtime.broker.duplicate_signals >= 1)
    await runtime.monitor_tasks.restart_task(name)  # attaches to the shared feed again
    await eventually(lambda: monitor.stats.starts == 2 and monitor.stats.synced)
    await runtime.stop()

    second = await make_runtime(sim, store_path=path, config=config)  # a process restart
    await wait_ready(second)
    await eventually(lambda: second.broker.duplicate_signals >= 1)
    assert market.dislocated_until is not None, "the test must replay a live dislocation"
    assert second.broker.orders == 2

    await eventually(lambda: market.dislocated_until is None, timeout=5.0)
    books = next(iter(second.monitors.values())).books
    assert books is not None
    await eventually(
        lambda: (
            books.synced
            and books.no.best_ask is not None
            and books.yes.best_ask is not None
            and books.yes.best_ask + books.no.best_ask >= 1
        )
    )
    await sim.pause()
    dislocate(sim)
    sim.resume()
    await eventually(lambda: second.broker.orders == 4)
    await second.stop()
    async with SQLiteStore(path) as store:
        orders = await store.recent_orders(10)
    signals = sorted(order.signal_id or "" for order in orders)
    assert len(signals) == 4
    assert [s.split(":")[2] for s in signals] == ["0", "0", "1", "1"]
    assert {s.split("#")[1] for s in signals} == {"0", "1"}


async def test_restarting_monitors_mid_stream_stores_nothing_twice(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """Monitors restarted by name while events flow: each run stores what it took, once;
    only the market row is written again (a duplicate, by design)."""
    sim = await make_simulator(markets=3, event_rate=600.0, seed=7)
    tally = Tally()
    runtime = await make_runtime(sim, strategy=tally)
    await wait_ready(runtime)
    restarts = 0
    for name, monitor in runtime.monitors.items():
        # Each wait ends within its iteration, so the lambdas see this iteration's values.
        events = runtime.stats().events
        await eventually(lambda: runtime.stats().events >= events + 100)  # noqa: B023
        await runtime.monitor_tasks.restart_task(name)
        restarts += 1
        await eventually(lambda: monitor.stats.synced)  # noqa: B023
    await eventually(lambda: runtime.stats().events >= 800)
    await runtime.stop()
    await assert_stored_exactly_once(runtime, tally, tmp_path / "agents.sqlite")
    assert runtime.worker.stats.duplicates_by_table.get("markets", 0) == restarts
    assert sum(m.stats.starts for m in runtime.monitors.values()) == 3 + restarts


async def test_killing_the_database_connection_mid_batch_loses_nothing(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """The store's connection is closed while a batch's INSERTs run: that transaction is
    lost with it, the worker retries on a new connection (the monitors wait meanwhile),
    and every event is still stored exactly once."""
    sim = await make_simulator(markets=3, event_rate=600.0, seed=13)
    tally = Tally()
    runtime = await make_runtime(sim, strategy=tally)
    await wait_ready(runtime)
    assert isinstance(runtime.store, SQLiteStore)
    conn = runtime.store.connection
    assert conn is not None
    loop = asyncio.get_running_loop()
    in_batch = asyncio.Event()
    release = threading.Event()
    calls = 0

    def progress() -> int:
        # Runs in the connection's thread while a statement executes: hold it there until
        # the close is queued behind it.
        nonlocal calls
        calls += 1
        if calls == 1:
            loop.call_soon_threadsafe(in_batch.set)
            release.wait(10)
        return 0

    await conn.set_progress_handler(progress, 20)
    try:
        async with asyncio.timeout(5.0):
            await in_batch.wait()
        closing = asyncio.ensure_future(conn.close())
        await asyncio.sleep(0)  # one step: close() queues its call behind the INSERTs
    finally:
        release.set()
    await closing
    await eventually(lambda: runtime.store.reconnects == 1 and runtime.worker.stats.batches > 3)
    await eventually(lambda: runtime.stats().stored_rows >= 1000)
    await runtime.stop()
    assert runtime.worker.stats.retries >= 1
    await assert_stored_exactly_once(runtime, tally, tmp_path / "agents.sqlite")


@pytest.mark.parametrize(
    ("faults", "config"),
    [
        pytest.param(FaultPlan(drop_every=0.3, malformed_rate=0.05), {}, id="drops+malformed"),
        pytest.param(FaultPlan(abort_every=0.3, legacy_price_change=True), {}, id="aborts+legacy"),
        pytest.param(FaultPlan(freeze_after=0.3), {"silence_timeout": 0.2}, id="silent-freeze"),
        pytest.param(FaultPlan(stop_pong_after=0.3), {"pong_timeout": 0.2}, id="no-pong"),
    ],
)
async def test_the_pipeline_keeps_going_through_faults_and_the_counts_add_up(
    make_simulator: MakeSimulator,
    make_runtime: MakeRuntime,
    tmp_path: Path,
    faults: FaultPlan,
    config: dict[str, float],
) -> None:
    """With a fault switched on, connections die and come back (and bad frames are
    skipped), the monitors keep running, and every event they took is stored once."""
    sim = await make_simulator(markets=3, event_rate=500.0, seed=17, faults=faults)
    tally = Tally()
    runtime = await make_runtime(sim, strategy=tally, config=fast_config(**config))
    feed = runtime.feed
    assert feed is not None
    await eventually(lambda: feed.stats.connections >= 3, timeout=10.0)
    await eventually(lambda: runtime.stats().events >= 300)
    stats = runtime.stats()
    assert stats.reconnects >= 2
    assert stats.monitor_restarts == 0  # the feeds recovered by themselves
    if faults.malformed_rate:
        assert stats.invalid_frames > 0
    await runtime.stop()
    await assert_stored_exactly_once(runtime, tally, tmp_path / "agents.sqlite")
