"""The ingestion worker: nothing lost on failure or shutdown, nothing written twice."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from polymarket_agents.agents import (
    DEFAULT_INGESTION_POLICY,
    IngestionWorker,
    data_ingestion_worker,
    ingestion_queue,
)
from polymarket_agents.core.async_utils import (
    ConfigurationError,
    RestartPolicy,
    instant_policy,
    robust_task,
)
from polymarket_agents.storage import (
    BookSnapshotRow,
    FillRow,
    LevelChange,
    MarketRow,
    PaperOrderRow,
    PriceChangeRow,
    SQLiteStore,
    StoreUnavailableError,
    Table,
    TradeRow,
    WriteResult,
)

from ._fixtures import StoreWrapper

if TYPE_CHECKING:
    from tests.agents.conftest import (
        LogWatch,  # the fixture's type; conftest is not importable at run time
    )

D = Decimal
Start = Callable[[IngestionWorker], Awaitable[asyncio.Task[None]]]


def trade(i: int) -> TradeRow:
    return TradeRow(
        asset_id="yes", market="0xm", timestamp_ms=i, side="BUY", price=D("0.45"), size=D(i + 1)
    )


def price_changes(i: int) -> tuple[PriceChangeRow, PriceChangeRow]:
    """Two rows in one item: price changes of two markets, a YES bid and a NO ask."""
    return (
        PriceChangeRow(
            market="0xm", timestamp_ms=i, changes=(LevelChange("yes", D("0.4"), D(i), "BUY"),)
        ),
        PriceChangeRow(
            market="0xn", timestamp_ms=i, changes=(LevelChange("no", D("0.6"), D(i), "SELL"),)
        ),
    )


def worker_on(
    queue: asyncio.Queue[object], store: SQLiteStore, **options: object
) -> IngestionWorker:
    options.setdefault("flush_interval", 0)
    options.setdefault("policy", instant_policy())
    return IngestionWorker(queue, store, **options)  # type: ignore[arg-type]


async def cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and check that it ends by re-raising the cancellation."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_items_are_done_only_once_stored(store: SQLiteStore, start: Start) -> None:
    """queue.join() returns once every item, single row or multi-row event, is stored."""
    queue = ingestion_queue(64)
    task = await start(worker_on(queue, store))
    for i in range(200):
        await queue.put(trade(i))
        await queue.put(price_changes(i))
    await queue.join()
    assert await store.count(Table.TRADES) == 200
    assert await store.count(Table.PRICE_CHANGES) == 400
    await cancelled(task)


async def test_a_locked_database_is_retried_until_released(
    store: SQLiteStore, blocker: sqlite3.Connection, start: Start, watch: LogWatch
) -> None:
    """While another connection holds the write lock, the worker retries, items stay not
    done (join waits), and once the lock is released every row is stored once."""
    queue = ingestion_queue(100)
    worker = worker_on(queue, store)
    task = await start(worker)
    blocker.execute("BEGIN IMMEDIATE")
    retried = watch.on("storing 50 rows failed")
    for i in range(50):
        queue.put_nowait(trade(i))
    joined = asyncio.ensure_future(queue.join())
    await retried.wait()
    assert not joined.done()
    assert worker.stats.pending_items == 50
    assert worker.stats.last_error is not None
    assert "locked" in worker.stats.last_error
    blocker.execute("ROLLBACK")
    await joined
    stats = worker.stats
    assert (stats.items, stats.written, stats.duplicates, stats.pending_items) == (50, 50, 0, 0)
    assert stats.retries >= 1
    assert await store.count(Table.TRADES) == 50
    await cancelled(task)


@pytest.mark.parametrize("how", ["close", "stop"])
async def test_killing_the_connection_mid_batch_loses_nothing(
    store: SQLiteStore, start: Start, how: str
) -> None:
    """The connection is closed while a batch's INSERTs run: that transaction is lost with
    it, the worker retries on a new connection, and every row is stored exactly once."""
    conn = store.connection
    assert conn is not None
    loop = asyncio.get_running_loop()
    in_batch = asyncio.Event()
    release = threading.Event()
    calls = 0

    def progress() -> int:
        # Runs in the connection's thread while a statement executes: hold it there
        # until the test has queued the close behind it.
        nonlocal calls
        calls += 1
        if calls == 1:
            loop.call_soon_threadsafe(in_batch.set)
            release.wait(10)
        return 0

    await conn.set_progress_handler(progress, 50)
    queue = ingestion_queue(500)
    worker = worker_on(queue, store, batch_size=1000)
    task = await start(worker)
    try:
        for i in range(300):
            queue.put_nowait(trade(i))
        await in_batch.wait()
        if how == "close":
            closing = asyncio.ensure_future(conn.close())
            await asyncio.sleep(0)  # one step: close() queues its call behind the INSERTs
        else:
            closing = conn.stop()  # type: ignore[assignment]  # queues close-and-stop now
    finally:
        release.set()
    await closing
    await queue.join()
    stats = worker.stats
    assert (stats.items, stats.written, stats.duplicates) == (300, 300, 0)
    assert stats.retries >= 1
    assert store.reconnects == 1
    assert await store.count(Table.TRADES) == 300
    await cancelled(task)


async def test_cancellation_drains_the_queue_and_closes_its_store(
    db_path: Path, start: Start
) -> None:
    """On cancellation a worker stores everything still queued, closes the store it
    opened, and re-raises."""
    queue = ingestion_queue(500)
    worker = IngestionWorker(queue, path=db_path, flush_interval=0, batch_size=100)
    task = await start(worker)
    for i in range(450):
        queue.put_nowait(trade(i))
    await cancelled(task)
    assert queue.empty()
    stats = worker.stats
    assert (stats.items, stats.written, stats.batches) == (450, 450, 5)
    async with SQLiteStore(db_path) as reopened:
        assert await reopened.count(Table.TRADES) == 450
    # The worker's own connection is closed: the WAL was checkpointed into the file.
    assert not db_path.with_name(db_path.name + "-wal").exists()


async def test_a_second_cancellation_does_not_lose_the_batch_in_flight(
    store: SQLiteStore, blocker: sqlite3.Connection, start: Start, watch: LogWatch
) -> None:
    """Cancelled twice while a batch is stuck on a lock, the worker keeps draining and
    stores the batch and the queue once the lock goes."""
    queue = ingestion_queue(100)
    worker = worker_on(queue, store, batch_size=10)
    task = await start(worker)
    blocker.execute("BEGIN IMMEDIATE")
    retried = watch.on("storing 10 rows failed")
    for i in range(60):
        queue.put_nowait(trade(i))
    await retried.wait()
    stopping = watch.on("ingestion worker stopping")
    task.cancel()
    await stopping.wait()
    task.cancel()  # the second cancellation, while the drain retries
    still_draining = watch.on("storing 10 rows failed")
    await still_draining.wait()
    blocker.execute("ROLLBACK")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (worker.stats.items, worker.stats.written) == (60, 60)
    assert await store.count(Table.TRADES) == 60
    assert any("cancelled again" in message for message in watch.messages())


async def test_shutdown_cuts_a_pending_retry_delay_short(
    store: SQLiteStore, blocker: sqlite3.Connection, start: Start, watch: LogWatch
) -> None:
    """A batch waiting out a long backoff is retried at once when the worker is cancelled,
    so the drain does not spend its time asleep."""
    queue = ingestion_queue(10)
    policy = RestartPolicy(backoff_seconds=30.0, jitter=0.0)
    worker = worker_on(queue, store, policy=policy, drain_timeout=None)
    task = await start(worker)
    blocker.execute("BEGIN IMMEDIATE")
    waiting = watch.on("retry 1 in 30.00 s")
    queue.put_nowait(trade(1))
    await waiting.wait()
    blocker.execute("ROLLBACK")
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (worker.stats.written, worker.stats.retries) == (1, 1)


async def test_a_timed_out_drain_puts_the_rows_back_for_the_next_worker(
    store: SQLiteStore, blocker: sqlite3.Connection, start: Start, watch: LogWatch
) -> None:
    """If the database stays locked past the drain timeout, the rows in hand go back on the
    queue (logged at ERROR) and a later worker stores everything."""
    queue = ingestion_queue(100)
    first = worker_on(queue, store, batch_size=10, drain_timeout=0.05)
    task = await start(first)
    blocker.execute("BEGIN IMMEDIATE")
    retried = watch.on("storing 10 rows failed")
    for i in range(30):
        queue.put_nowait(trade(i))
    await retried.wait()
    await cancelled(task)
    assert (first.stats.items, first.stats.requeued_items, first.stats.pending_items) == (0, 10, 0)
    assert queue.qsize() == 21  # 20 never taken + the 10 rows put back as one item
    assert any("put back on the queue" in m for m in watch.messages(logging.ERROR))
    blocker.execute("ROLLBACK")
    second = worker_on(queue, store)
    task = await start(second)
    await queue.join()
    assert await store.count(Table.TRADES) == 30
    assert second.stats.written == 30
    await cancelled(task)


async def test_producers_wait_while_the_database_is_slow(
    store: SQLiteStore, blocker: sqlite3.Connection, start: Start, watch: LogWatch
) -> None:
    """Backpressure: with the database locked the bounded queue fills and the producer
    waits on put(); once released, everything it produced is stored."""
    queue = ingestion_queue(4)
    task = await start(worker_on(queue, store, batch_size=2))
    blocker.execute("BEGIN IMMEDIATE")
    retried = watch.on("rows failed")
    full = asyncio.Event()
    produced = 0

    async def produce() -> None:
        nonlocal produced
        for i in range(40):
            if queue.full():
                full.set()
            await queue.put(trade(i))
            produced += 1

    producer = asyncio.create_task(produce())
    await retried.wait()
    await full.wait()
    assert not producer.done()
    assert produced < 40
    blocker.execute("ROLLBACK")
    await producer
    await queue.join()
    assert await store.count(Table.TRADES) == 40
    await cancelled(task)


async def test_invalid_items_are_counted_skipped_and_done(
    store: SQLiteStore, start: Start, watch: LogWatch
) -> None:
    """Wrong types and rows that fail validation are counted and logged; the valid rows
    around them, even in the same event, are stored; every item is marked done."""
    queue = ingestion_queue(100)
    worker = worker_on(queue, store)
    task = await start(worker)
    bad_side = TradeRow(
        asset_id="yes", market="m", timestamp_ms=1, side="HOLD", price=D(1), size=D(1)
    )
    for item in [trade(1), "junk", {"event_type": "book"}, (trade(2), bad_side), None, trade(3)]:
        queue.put_nowait(item)
    await queue.join()
    stats = worker.stats
    assert (stats.items, stats.written, stats.invalid) == (6, 3, 4)
    assert await store.count(Table.TRADES) == 3
    assert any("invalid rows" in m for m in watch.messages(logging.WARNING))
    await cancelled(task)


async def test_a_producer_restarted_mid_stream_stores_nothing_twice(
    store: SQLiteStore, start: Start
) -> None:
    """A monitor that fails mid-stream and replays from its last checkpoint after the
    restart (as a reconnected feed resends) leaves each event stored once."""
    queue = ingestion_queue(50)
    worker = worker_on(queue, store)
    task = await start(worker)
    attempts = 0

    async def monitor() -> None:
        nonlocal attempts
        attempts += 1
        first = 0 if attempts == 1 else 80  # the checkpoint before the failure at 100
        for i in range(first, 200):
            await queue.put(price_changes(i))
            if attempts == 1 and i == 100:
                raise ConnectionError("feed dropped")

    await robust_task("monitor", monitor, policy=instant_policy())
    await queue.join()
    assert attempts == 2
    assert await store.count(Table.PRICE_CHANGES) == 400
    assert (worker.stats.written, worker.stats.duplicates) == (400, 42)
    await cancelled(task)


async def test_the_counts_add_up(store: SQLiteStore, start: Start) -> None:
    """Over a mixed stream with replays and bad items, every row is written, a duplicate
    or invalid exactly once, and the tables hold exactly the distinct valid rows."""
    rng = random.Random(4)
    events: list[object] = []
    distinct: dict[Table, set[object]] = {table: set() for table in Table}
    for i in range(300):
        kind = rng.choice(["trade", "change", "book", "market", "order", "bad"])
        if kind == "trade":
            events.append(trade(i))
            distinct[Table.TRADES].add(i)
        elif kind == "change":
            events.append(price_changes(i))
            distinct[Table.PRICE_CHANGES].update({(i, "yes"), (i, "no")})
        elif kind == "book":
            events.append(
                BookSnapshotRow(
                    asset_id="yes", market="0xm", timestamp_ms=i, bids=((D("0.4"), D(i)),)
                )
            )
            distinct[Table.BOOK_SNAPSHOTS].add(i)
        elif kind == "market":
            events.append(MarketRow(condition_id=f"0x{i % 7}", yes_token="y", no_token="n"))
            distinct[Table.MARKETS].add(i % 7)
        elif kind == "order":
            events.append(
                (
                    PaperOrderRow(
                        order_id=f"o{i}",
                        signal_id=f"s{i}",
                        market="0xm",
                        token_id="yes",
                        side="BUY",
                        price=D("0.4"),
                        size=D(5),
                        order_type="FOK",
                        status="matched",
                        created_at_ms=i,
                    ),
                    FillRow(
                        order_id=f"o{i}",
                        seq=0,
                        token_id="yes",
                        side="BUY",
                        price=D("0.4"),
                        size=D(5),
                        timestamp_ms=i,
                    ),
                )
            )
            distinct[Table.PAPER_ORDERS].add(i)
            distinct[Table.FILLS].add(i)
        else:
            events.append(rng.choice([b"junk", 3.5, trade(-1)]))  # trade(-1): bad timestamp
    replayed = events + rng.sample(events, 100)  # a reconnect resends some events
    rows = sum(len(e) if isinstance(e, tuple) else 1 for e in replayed)
    queue = ingestion_queue(32)
    worker = worker_on(queue, store, batch_size=25)
    task = await start(worker)
    for event in replayed:
        await queue.put(event)
    await queue.join()
    stats = worker.stats
    assert stats.items == len(replayed)
    assert stats.written + stats.duplicates + stats.invalid == rows
    assert await store.counts() == {table: len(keys) for table, keys in distinct.items()}
    assert stats.written == sum(len(keys) for keys in distinct.values())
    await cancelled(task)


async def test_batches_take_what_is_queued_up_to_the_batch_size(
    store: SQLiteStore, start: Start
) -> None:
    """35 queued rows with batch_size 10 are written as 10, 10, 10 and 5."""
    queue = ingestion_queue(100)
    worker = worker_on(queue, store, batch_size=10)
    for i in range(35):
        queue.put_nowait(trade(i))
    task = await start(worker)
    await queue.join()
    assert (worker.stats.batches, worker.stats.last_batch_rows) == (4, 5)
    await cancelled(task)


async def test_a_partial_batch_waits_for_more_rows_but_not_once_full(
    store: SQLiteStore, start: Start
) -> None:
    """Within the flush interval, rows that arrive join the batch; a full batch is written
    at once without waiting out the interval."""
    queue = ingestion_queue(100)
    worker = worker_on(queue, store, batch_size=3, flush_interval=30.0)
    task = await start(worker)
    for i in range(3):
        await queue.put(trade(i))
        await asyncio.sleep(0)  # let the worker take each row as it comes
    await queue.join()
    assert (worker.stats.batches, worker.stats.last_batch_rows) == (1, 3)
    await cancelled(task)


class FlakyStore(StoreWrapper):
    """A real store whose first writes raise a given error, as a buggy backend might."""

    def __init__(self, inner: SQLiteStore, error: Exception, failures: int) -> None:
        super().__init__(inner)
        self.error = error
        self.failures = failures

    async def write_batch(self, rows: Sequence[object]) -> WriteResult:
        if self.failures:
            self.failures -= 1
            raise self.error
        return await self.inner.write_batch(rows)


async def test_even_a_fatal_error_does_not_drop_the_batch(
    store: SQLiteStore, start: Start, watch: LogWatch
) -> None:
    """An error that would stop a task (KeyError) is logged with its traceback and the
    batch retried: data is never dropped for it."""
    queue = ingestion_queue(10)
    flaky = FlakyStore(store, KeyError("bug"), failures=2)
    worker = IngestionWorker(queue, flaky, flush_interval=0, policy=instant_policy())
    task = await start(worker)
    queue.put_nowait(trade(1))
    await queue.join()
    assert (worker.stats.retries, worker.stats.written) == (2, 1)
    errors = [r for r in watch.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].exc_info is not None
    await cancelled(task)


async def test_a_given_store_is_left_open(store: SQLiteStore, start: Start) -> None:
    """The worker closes only a store it opened; the caller's store stays usable."""
    queue = ingestion_queue(10)
    task = await start(worker_on(queue, store))
    queue.put_nowait(trade(1))
    await cancelled(task)
    assert await store.count(Table.TRADES) == 1


async def test_the_seed_style_function_stores_and_drains(db_path: Path, watch: LogWatch) -> None:
    """data_ingestion_worker(queue, path=...) runs until cancelled, then drains."""
    queue = ingestion_queue()
    started = watch.on("ingestion worker started")
    task = asyncio.create_task(data_ingestion_worker(queue, path=db_path))
    await started.wait()
    for i in range(10):
        await queue.put(trade(i))
    await cancelled(task)
    async with SQLiteStore(db_path) as reopened:
        assert await reopened.count(Table.TRADES) == 10


async def test_an_unopenable_store_fails_the_start_and_takes_nothing(tmp_path: Path) -> None:
    """If the database cannot be opened, run() raises a recoverable error before taking any
    item, so a supervisor can restart it with nothing lost."""
    queue = ingestion_queue(10)
    queue.put_nowait(trade(1))
    with pytest.raises(StoreUnavailableError, match="unable to open"):
        await IngestionWorker(queue, path=tmp_path).run()  # a directory, not a file
    assert queue.qsize() == 1


async def test_a_worker_runs_once_at_a_time(store: SQLiteStore, start: Start) -> None:
    """Running the same worker twice concurrently is refused."""
    worker = worker_on(ingestion_queue(), store)
    task = await start(worker)
    with pytest.raises(RuntimeError, match="already running"):
        await worker.run()
    await cancelled(task)


async def test_an_unbounded_queue_is_warned_about(
    store: SQLiteStore, start: Start, watch: LogWatch
) -> None:
    """A queue without maxsize cannot push back on producers: the worker says so."""
    task = await start(worker_on(asyncio.Queue(), store))
    assert any("unbounded" in m for m in watch.messages(logging.WARNING))
    await cancelled(task)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "x.sqlite"}, "a store or a path, not both"),
        ({"batch_size": 0}, "batch_size"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"drain_timeout": -1}, "drain_timeout"),
    ],
)
def test_invalid_settings_are_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    """Bad worker settings raise ConfigurationError at construction."""
    store = SQLiteStore(tmp_path / "x.sqlite")
    with pytest.raises(ConfigurationError, match=message):
        IngestionWorker(ingestion_queue(), store, **options)  # type: ignore[arg-type]


def test_the_queue_must_be_bounded() -> None:
    """ingestion_queue refuses a size that would make it unbounded."""
    with pytest.raises(ConfigurationError, match="maxsize"):
        ingestion_queue(0)
    assert ingestion_queue().maxsize == 5_000


def test_the_default_policy_backs_off_from_a_tenth_of_a_second_to_five() -> None:
    """Write retries start fast and cap low: a local database is usually back quickly."""
    assert (DEFAULT_INGESTION_POLICY.backoff_seconds, DEFAULT_INGESTION_POLICY.max_backoff) == (
        0.1,
        5.0,
    )


async def test_a_stop_lets_every_producer_hand_over_the_item_in_its_hands() -> None:
    """Many producers blocked on a full queue, all cancelled at once by a stop: once the
    queue is unbound, each hands its item over at once; none is lost to the hand-off
    timeout, and the queue holds at most one extra item per producer."""
    from polymarket_agents.agents._handoff import handoff
    from polymarket_agents.agents._ingestion import IngestionQueue

    queue = ingestion_queue(10)
    assert isinstance(queue, IngestionQueue)
    for n in range(10):
        queue.put_nowait(n)
    lost: list[object] = []
    logger = logging.getLogger("test")
    producers = [
        asyncio.create_task(
            handoff(queue, f"item {n}", timeout=0.05, logger=logger, on_lost=lost.append)
        )
        for n in range(200)
    ]
    await asyncio.sleep(0)
    queue.unbound()
    for producer in producers:
        producer.cancel()
    results = await asyncio.gather(*producers, return_exceptions=True)
    assert not lost
    assert all(r is True or isinstance(r, asyncio.CancelledError) for r in results)
    assert queue.qsize() == 210
