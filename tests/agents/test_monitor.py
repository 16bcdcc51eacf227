"""monitor_market: feed to rows, analysis and trades; socket closed and cancellation
re-raised on the way out; bad frames and network errors survived."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from decimal import Decimal
from typing import Any

import pytest

from polymarket_agents.agents import (
    BUY,
    Analysis,
    MarketMonitor,
    OrderArgs,
    PaperBroker,
    ingestion_queue,
    monitor_market,
)
from polymarket_agents.core.async_utils import TaskSupervisor, instant_policy
from polymarket_agents.feed import FeedStopped, MarketBooks, MarketEvent
from polymarket_agents.feed.simulator import FaultPlan, MarketSimulator
from polymarket_agents.storage import BookSnapshotRow, MarketRow, PriceChangeRow, TradeRow

from ._fixtures import (
    MakeSimulator,
    Tally,
    eventually,
    fast_feed_options,
    make_simulator,
    settle_monitor,
)

__all__ = ["make_simulator"]  # a fixture, used by name

D = Decimal
Run = Callable[[MarketMonitor], asyncio.Task[None]]


@pytest.fixture
async def run() -> AsyncIterator[Run]:
    """Run monitors in tasks; any still running at the end is cancelled and awaited."""
    tasks: list[asyncio.Task[None]] = []

    def start(monitor: MarketMonitor) -> asyncio.Task[None]:
        task = asyncio.create_task(monitor.run())
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, FeedStopped):
            await task


def rows_of(queue: asyncio.Queue[Any]) -> list[object]:
    rows: list[object] = []
    while not queue.empty():
        item = queue.get_nowait()
        rows.extend(item if isinstance(item, tuple) else [item])
    return rows


async def test_every_event_taken_becomes_its_rows(make_simulator: MakeSimulator, run: Run) -> None:
    """Each book, price change and trade the monitor takes is one row on the queue (a
    price change's row holds all its entries), after the market's own row; the counts
    match the events one for one."""
    sim = await make_simulator(markets=1, event_rate=400.0, seed=3)
    queue = ingestion_queue(100_000)
    tally = Tally()
    monitor = MarketMonitor(
        sim.markets()[0],
        feed_url=sim.ws_url,
        queue=queue,
        strategy=tally,
        feed_options=fast_feed_options(),
    )
    run(monitor)
    await eventually(lambda: monitor.stats.events >= 150)
    await sim.pause()
    await settle_monitor(sim, monitor)
    rows = rows_of(queue)
    assert isinstance(rows[0], MarketRow)
    assert rows[0].condition_id == sim.markets()[0].condition_id
    stats = monitor.stats
    books = [r for r in rows if isinstance(r, BookSnapshotRow)]
    changes = [r for r in rows if isinstance(r, PriceChangeRow)]
    trades = [r for r in rows if isinstance(r, TradeRow)]
    assert len(books) == stats.events_by_type["book"] == tally.events["Book"]
    assert len(changes) == tally.events["PriceChange"] == stats.rows_by_table["price_changes"]
    assert sum(len(r.changes) for r in changes) == tally.price_change_entries
    assert len(trades) == stats.events_by_type.get("last_trade_price", 0)
    assert stats.rows == len(rows)
    sent = sim.connections()[0].events_by_type
    assert stats.events_by_type == dict(sent)
    assert all(r.received_at_ms > 0 for r in changes)


async def test_cancellation_closes_the_socket_and_is_reraised(
    make_simulator: MakeSimulator, run: Run
) -> None:
    """Cancelling a monitor closes its websocket before the CancelledError comes out, and
    its books are marked unsynced (nobody keeps them any more)."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    monitor = MarketMonitor(sim.markets()[0], feed_url=sim.ws_url, feed_options=fast_feed_options())
    task = run(monitor)
    await eventually(lambda: monitor.stats.synced)
    books = monitor.books
    assert books is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert monitor.feed is None
    assert not monitor.stats.running
    assert not books.yes.synced
    assert not books.no.synced
    await eventually(lambda: not sim.connections()[0].open)


async def test_invalid_frames_are_counted_and_skipped(
    make_simulator: MakeSimulator, run: Run
) -> None:
    """Malformed frames do not stop the monitor; the feed's count of them is exposed."""
    sim = await make_simulator(markets=1, event_rate=300.0, faults=FaultPlan(malformed_rate=0.3))
    monitor = MarketMonitor(sim.markets()[0], feed_url=sim.ws_url, feed_options=fast_feed_options())
    run(monitor)
    await eventually(lambda: monitor.stats.invalid_frames >= 5 and monitor.stats.events >= 50)
    stats = monitor.stats
    assert stats.running
    assert stats.starts == 1
    assert stats.invalid_frames <= sim.connections()[0].malformed


async def test_network_errors_are_recovered_without_leaving_the_monitor(
    make_simulator: MakeSimulator, run: Run
) -> None:
    """An aborted connection is reopened by the feed's backoff; the monitor run goes on."""
    sim = await make_simulator(markets=1, event_rate=200.0)
    monitor = MarketMonitor(sim.markets()[0], feed_url=sim.ws_url, feed_options=fast_feed_options())
    run(monitor)
    await eventually(lambda: monitor.stats.synced)
    sim.drop_connections(abort=True)
    await eventually(lambda: monitor.stats.connections == 2 and monitor.stats.synced)
    stats = monitor.stats
    assert stats.starts == 1
    assert stats.reconnects >= 1
    assert stats.last_error is not None


async def test_a_feed_that_fails_for_good_ends_the_monitor(
    make_simulator: MakeSimulator, run: Run
) -> None:
    """When the feed gives up (its policy's budget spent), the monitor raises FeedStopped
    for its supervisor to handle."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    options = fast_feed_options(policy=instant_policy(max_restarts=0))
    monitor = MarketMonitor(sim.markets()[0], feed_url=sim.ws_url, feed_options=options)
    task = run(monitor)
    await eventually(lambda: monitor.stats.synced)
    sim.drop_connections()
    with pytest.raises(FeedStopped):
        await task
    assert monitor.stats.last_error is not None


class Once:
    """A user's strategy: one fixed signal, reported after every price change."""

    def __init__(self, edge: str) -> None:
        self.edge = D(edge)
        self.calls = 0

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        self.calls += 1
        ask = books.yes.best_ask
        if ask is None or not books.synced:
            return None
        return Analysis(
            edge=self.edge,
            orders=(OrderArgs(books.yes.asset_id, ask, D(5), BUY),),
            signal_id="user-signal",
        )

    def resume(self, signal_ids: Iterable[str]) -> int:
        return 0


@pytest.mark.parametrize(("edge", "orders"), [("0.10", 1), ("0.05", 0)])
async def test_a_users_strategy_trades_above_the_threshold_once(
    make_simulator: MakeSimulator, run: Run, edge: str, orders: int
) -> None:
    """A strategy of the user's own runs on every event; its orders go to the broker when
    the edge is strictly above the threshold, and its signal is placed once."""
    sim = await make_simulator(markets=1, event_rate=300.0)
    broker = PaperBroker()
    strategy = Once(edge)
    monitor = MarketMonitor(
        sim.markets()[0],
        feed_url=sim.ws_url,
        broker=broker,
        strategy=strategy,
        feed_options=fast_feed_options(),
    )
    run(monitor)
    await eventually(lambda: monitor.stats.events >= 50)
    assert strategy.calls == monitor.stats.events
    assert broker.orders == orders
    assert monitor.stats.submitted == (monitor.stats.signals if orders else 0)
    if orders:
        assert broker.duplicate_signals == monitor.stats.submitted - 1


class Raises:
    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        raise ZeroDivisionError("a bug in the user's strategy")

    def resume(self, signal_ids: Iterable[str]) -> int:
        return 0


async def test_a_strategy_that_raises_is_counted_and_skipped(
    make_simulator: MakeSimulator, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """A strategy's exception skips that event's analysis; the monitor goes on and logs the
    first one with its traceback."""
    sim = await make_simulator(markets=1, event_rate=300.0)
    queue = ingestion_queue(100_000)
    monitor = MarketMonitor(
        sim.markets()[0],
        feed_url=sim.ws_url,
        queue=queue,
        strategy=Raises(),
        feed_options=fast_feed_options(),
    )
    with caplog.at_level(logging.WARNING, "polymarket_agents.agents"):
        run(monitor)
        await eventually(lambda: monitor.stats.analysis_errors >= 20)
    assert monitor.stats.rows > 20
    warnings = [r for r in caplog.records if "strategy raised" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].exc_info is not None


async def test_a_full_queue_holds_the_monitor_back(make_simulator: MakeSimulator, run: Run) -> None:
    """With the queue full the monitor waits (and so the feed, and TCP): nothing is
    dropped; once room appears it goes on."""
    sim = await make_simulator(markets=1, event_rate=300.0)
    queue = ingestion_queue(3)
    monitor = MarketMonitor(
        sim.markets()[0],
        feed_url=sim.ws_url,
        queue=queue,
        feed_options=fast_feed_options(),
        handoff_timeout=0.05,
    )
    run(monitor)
    await eventually(queue.full)
    await asyncio.sleep(0.05)
    taken = monitor.stats.events
    assert taken <= 4  # three queued, at most one in hand
    for _ in range(3):
        queue.get_nowait()
    await eventually(lambda: monitor.stats.events > taken)
    assert monitor.stats.lost_rows == 0


async def test_a_stopping_monitor_still_hands_over_the_rows_in_hand(
    make_simulator: MakeSimulator, run: Run
) -> None:
    """Cancelled while waiting for room, the monitor keeps its rows for the hand-off
    timeout: room made meanwhile takes them; then the cancellation comes out."""
    sim = await make_simulator(markets=1, event_rate=300.0)
    queue = ingestion_queue(2)
    monitor = MarketMonitor(
        sim.markets()[0],
        feed_url=sim.ws_url,
        queue=queue,
        feed_options=fast_feed_options(),
        handoff_timeout=5.0,
    )
    task = run(monitor)
    await eventually(queue.full)
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.sleep(0.02)
    assert not task.done()
    rows_of(queue)
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = monitor.stats
    assert stats.lost_rows == 0
    assert stats.rows == queue.qsize() + 2


async def test_rows_abandoned_at_a_stop_are_counted_and_logged(
    make_simulator: MakeSimulator, run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """If no room appears within the hand-off timeout, the rows in hand are abandoned,
    counted as lost and logged at ERROR: never silently."""
    sim = await make_simulator(markets=1, event_rate=300.0)
    queue = ingestion_queue(2)
    monitor = MarketMonitor(
        sim.markets()[0],
        feed_url=sim.ws_url,
        queue=queue,
        feed_options=fast_feed_options(),
        handoff_timeout=0.05,
    )
    task = run(monitor)
    await eventually(queue.full)
    await asyncio.sleep(0.02)
    with caplog.at_level(logging.ERROR, "polymarket_agents.agents"):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stats = monitor.stats
    assert stats.lost_rows >= 1
    assert stats.rows + stats.lost_rows == 2 + stats.lost_rows == queue.qsize() + stats.lost_rows
    assert any("was not stored" in r.getMessage() for r in caplog.records)


async def test_monitor_market_under_a_supervisor_restarts_without_trading_twice(
    make_simulator: MakeSimulator,
) -> None:
    """The seed's call, monitor_market(market, ...), restarted by name under a supervisor:
    the re-created default strategy resumes from the broker's signal ids, so a
    dislocation still on is not traded again."""
    sim = await make_simulator(markets=1, event_rate=100.0, dislocation_seconds=30.0)
    market = sim.markets()[0]
    broker = PaperBroker()
    async with TaskSupervisor(policy=instant_policy()) as supervisor:
        await supervisor.start_task(
            "monitor",
            monitor_market(
                market, feed_url=sim.ws_url, broker=broker, feed_options=fast_feed_options()
            ),
        )
        await sim.pause()
        dislocate(sim)
        sim.resume()
        await eventually(lambda: broker.orders == 2)
        await supervisor.restart_task("monitor")
        await eventually(lambda: len(broker.signal_ids) == 2 and broker.duplicate_signals >= 1)
        assert broker.orders == 2


def dislocate(sim: MarketSimulator) -> None:
    """Make the simulator dislocate a market now: one tick at a dislocation rate of 1."""
    universe = sim.universe
    rate, universe.dislocation_rate = universe.dislocation_rate, 1.0
    try:
        sim.tick()
    finally:
        universe.dislocation_rate = rate
    assert any(m.dislocated_until is not None for m in universe.markets)


async def test_the_markets_row_follows_the_tick_size(run: Run) -> None:
    """A tick_size_change of the monitored market queues its markets row again with the
    new tick, once per change (not once per token)."""
    from websockets.asyncio.server import ServerConnection, serve

    from polymarket_agents.feed import MarketInfo

    market = MarketInfo(
        condition_id="0x" + "ab" * 32,
        question="q?",
        slug="q",
        yes_token="11",
        no_token="22",
        tick_size=D("0.01"),
        min_size=D(5),
    )
    change = (
        '[{{"event_type":"tick_size_change","asset_id":"{asset}","market":"{market}",'
        '"old_tick_size":"0.01","new_tick_size":"0.001","timestamp":"2"}}]'
    )

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        for asset in ("11", "22"):
            await ws.send(
                f'[{{"event_type":"book","asset_id":"{asset}","market":"{market.condition_id}",'
                '"timestamp":"1","bids":[{"price":"0.03","size":"5"}],'
                '"asks":[{"price":"0.04","size":"5"}],"tick_size":"0.01"}]'
            )
        for asset in ("11", "22"):
            await ws.send(change.format(asset=asset, market=market.condition_id))
        async for message in ws:
            if message == "PING":
                await ws.send("PONG")

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        queue = ingestion_queue(100)
        monitor = MarketMonitor(
            market,
            feed_url=f"ws://127.0.0.1:{port}/ws/market",
            queue=queue,
            feed_options=fast_feed_options(silence_timeout=None),
        )
        run(monitor)
        await eventually(lambda: monitor.stats.events >= 4)
        rows: list[Any] = []
        while not queue.empty():
            rows.append(queue.get_nowait())
        ticks = [row.tick_size for row in rows if isinstance(row, MarketRow)]
        assert ticks == [D("0.01"), D("0.001")]
        assert monitor.market.tick_size == D("0.001")
