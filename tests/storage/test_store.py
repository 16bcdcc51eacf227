"""SQLiteStore on real files: batches, idempotency, reads, locks and broken connections."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from polymarket_agents.core.async_utils import ConfigurationError, ErrorClass, classify_error
from polymarket_agents.storage import (
    MIGRATIONS,
    BookSnapshotRow,
    FillRow,
    MarketRow,
    Migration,
    PaperOrderRow,
    PriceChangeRow,
    SQLiteStore,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
    Table,
    TickSizeChangeRow,
    TradeRow,
    open_store,
)

D = Decimal


def order(order_id: str = "o1", **changes: object) -> PaperOrderRow:
    fields: dict[str, object] = {
        "order_id": order_id,
        "signal_id": f"sig-{order_id}",
        "market": "0xm",
        "token_id": "yes",
        "side": "BUY",
        "price": D("0.40"),
        "size": D("10"),
        "order_type": "GTC",
        "status": "live",
        "created_at_ms": 1_000,
    }
    fields.update(changes)
    return PaperOrderRow(**fields)  # type: ignore[arg-type]


def one_of_each(n: int = 0) -> list[object]:
    """One row for every table; ``n`` makes the keys distinct."""
    return [
        MarketRow(condition_id=f"0xc{n}", yes_token=f"y{n}", no_token=f"n{n}", question="Q?"),
        BookSnapshotRow(
            asset_id=f"y{n}",
            market=f"0xc{n}",
            timestamp_ms=1_000 + n,
            hash="h",
            bids=((D("0.48"), D("30")),),
            asks=((D("0.52"), D("25")),),
        ),
        PriceChangeRow(
            market=f"0xc{n}",
            asset_id=f"y{n}",
            timestamp_ms=1_001 + n,
            side="SELL",
            price=D("0.52"),
            size=D("0"),
            hash="h2",
        ),
        TradeRow(
            asset_id=f"y{n}",
            market=f"0xc{n}",
            timestamp_ms=1_002 + n,
            side="BUY",
            price=D("0.456"),
            size=D("219.217767"),
        ),
        TickSizeChangeRow(
            asset_id=f"y{n}",
            market=f"0xc{n}",
            timestamp_ms=1_003 + n,
            old_tick_size=D("0.01"),
            new_tick_size=D("0.001"),
        ),
        order(f"o{n}"),
        FillRow(
            order_id=f"o{n}",
            seq=0,
            token_id=f"y{n}",
            side="BUY",
            price=D("0.40"),
            size=D("10"),
            timestamp_ms=1_004 + n,
        ),
    ]


@pytest.fixture
def blocker(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second, plain sqlite3 connection to the same file, closed after the test."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


async def test_a_batch_writes_every_table_once(store: SQLiteStore) -> None:
    """One batch of every row type commits one row per table and counts them."""
    result = await store.write_batch(one_of_each())
    assert dict(result.written) == dict.fromkeys(Table, 1)
    assert result.total_duplicates == 0
    assert result.rejected == ()
    assert await store.counts() == dict.fromkeys(Table, 1)


async def test_replaying_a_batch_adds_no_rows(store: SQLiteStore) -> None:
    """Writing the same batch again writes nothing and counts every row as a duplicate."""
    rows = one_of_each(1) + one_of_each(2)
    await store.write_batch(rows)
    replay = await store.write_batch(rows)
    assert replay.total_written == 0
    assert dict(replay.duplicates) == dict.fromkeys(Table, 2)
    assert await store.counts() == dict.fromkeys(Table, 2)


async def test_duplicates_inside_one_batch_are_written_once(store: SQLiteStore) -> None:
    """A row repeated within a batch (an event received twice) is stored once."""
    trade = one_of_each()[3]
    result = await store.write_batch([trade, trade, trade])
    assert dict(result.written) == {Table.TRADES: 1}
    assert dict(result.duplicates) == {Table.TRADES: 2}


async def test_prices_read_back_exactly(store: SQLiteStore) -> None:
    """Decimal text survives the round trip digit for digit."""
    await store.write_batch([order(price=D("0.4100"), size=D("12.345678"))])
    (stored,) = await store.recent_orders()
    assert (str(stored.price), str(stored.size)) == ("0.4100", "12.345678")


async def test_a_market_with_changed_metadata_is_updated(store: SQLiteStore) -> None:
    """Same metadata is a duplicate; a change updates the stored market in place."""
    market = MarketRow(condition_id="0xc", yes_token="y", no_token="n", tick_size=D("0.01"))
    await store.write_batch([market])
    same = await store.write_batch([msgspec.structs.replace(market, updated_at_ms=9)])
    changed = await store.write_batch([msgspec.structs.replace(market, tick_size=D("0.001"))])
    assert (same.total_written, same.total_duplicates) == (0, 1)
    assert (changed.total_written, changed.total_duplicates) == (1, 0)
    assert await store.count(Table.MARKETS) == 1
    conn = store.connection
    assert conn is not None
    rows = await conn.execute_fetchall("SELECT tick_size FROM markets")
    assert list(rows) == [("0.001",)]


async def test_orders_move_forward_by_revision_and_one_per_signal(store: SQLiteStore) -> None:
    """A higher revision updates an order; a stale one, or another order for a stored
    signal, changes nothing."""
    await store.write_batch([order("o1", status="live", revision=0)])
    filled = await store.write_batch(
        [order("o1", status="matched", filled_size=D("10"), revision=2)]
    )
    stale = await store.write_batch([order("o1", status="live", revision=1)])
    same_signal = await store.write_batch([order("o2", signal_id="sig-o1")])
    manual = await store.write_batch([order("o3", signal_id=None), order("o4", signal_id=None)])
    assert [r.total_written for r in (filled, stale, same_signal, manual)] == [1, 0, 0, 2]
    orders = {o.order_id: o for o in await store.recent_orders()}
    assert sorted(orders) == ["o1", "o3", "o4"]
    assert (orders["o1"].status, orders["o1"].filled_size, orders["o1"].revision) == (
        "matched",
        D("10"),
        2,
    )


async def test_invalid_rows_are_reported_and_the_rest_committed(store: SQLiteStore) -> None:
    """A refused row does not block its batch: the others are committed."""
    rows = [*one_of_each(), "junk", order("bad", side="HOLD")]
    result = await store.write_batch(rows)
    assert [(r.index, r.row) for r in result.rejected] == [(7, "junk"), (8, rows[8])]
    assert result.total_written == len(Table)


async def test_rows_the_database_refuses_are_found_row_by_row(db_path: Path) -> None:
    """When a constraint refuses a row mid-batch, the batch is written again row by row
    in one transaction: the good rows are stored, the refused one reported."""
    unlucky = Migration(
        2,
        "refuse one price",
        (
            "CREATE TRIGGER no_13 BEFORE INSERT ON trades WHEN NEW.price = '0.13' "
            "BEGIN SELECT RAISE(ABORT, 'unlucky price'); END",
        ),
    )
    async with SQLiteStore(db_path, migrations=(*MIGRATIONS, unlucky)) as store:
        trades = [
            TradeRow(asset_id="a", market="m", timestamp_ms=i, side="BUY", price=D(p), size=D(1))
            for i, p in enumerate(["0.12", "0.13", "0.14"])
        ]
        result = await store.write_batch([*trades, order("o1")])
        assert [(r.index, "unlucky price" in r.reason) for r in result.rejected] == [(1, True)]
        assert dict(result.written) == {Table.TRADES: 2, Table.PAPER_ORDERS: 1}
        assert await store.count("trades") == 2


async def test_reads_for_status(store: SQLiteStore) -> None:
    """Recent orders and fills come newest first; positions net the fills per token."""
    fills = [
        FillRow(
            order_id="o1",
            seq=seq,
            token_id="yes",
            side=side,
            price=D(price),
            size=D(size),
            timestamp_ms=10 + seq,
        )
        for seq, (side, price, size) in enumerate(
            [("BUY", "0.40", "10"), ("BUY", "0.42", "5"), ("SELL", "0.50", "3")]
        )
    ]
    await store.write_batch([order("o1", created_at_ms=1), order("o2", created_at_ms=2), *fills])
    assert [o.order_id for o in await store.recent_orders(limit=1)] == ["o2"]
    assert [f.seq for f in await store.recent_fills()] == [2, 1, 0]
    (position,) = await store.positions()
    assert (position.token_id, position.size, position.cost) == ("yes", D("12"), D("4.60"))


async def test_open_and_latest_orders_for_a_restart(store: SQLiteStore) -> None:
    """open_orders: live and pending orders, oldest first; latest_orders: the newest order
    with a signal of each market, by market."""
    await store.write_batch(
        [
            order("o1", market="0xa", status="live"),
            order("o2", market="0xa", status="pending"),
            order("o3", market="0xb", status="matched"),
            order("o4", market="0xb", status="unmatched"),
            order("o5", market="0xb", status="live", signal_id=None),
        ]
    )
    assert [o.order_id for o in await store.open_orders()] == ["o1", "o2", "o5"]
    assert [(o.market, o.signal_id) for o in await store.latest_orders()] == [
        ("0xa", "sig-o2"),
        ("0xb", "sig-o4"),
    ]


async def test_count_refuses_unknown_tables(store: SQLiteStore) -> None:
    """Only table names of the store are accepted; the name never reaches SQL otherwise."""
    with pytest.raises(ValueError, match="sqlite_master"):
        await store.count("sqlite_master")


async def test_open_creates_directories_and_sets_wal_mode(db_path: Path) -> None:
    """open_store creates missing parents and uses WAL with synchronous=NORMAL."""
    store = await open_store(db_path)
    assert db_path.parent.is_dir()
    try:
        conn = store.connection
        assert conn is not None
        assert list(await conn.execute_fetchall("PRAGMA journal_mode")) == [("wal",)]
        assert list(await conn.execute_fetchall("PRAGMA synchronous")) == [(1,)]  # NORMAL
    finally:
        await store.close()


async def test_a_locked_database_is_a_recoverable_busy_error(
    shared_store: SQLiteStore, blocker: sqlite3.Connection
) -> None:
    """While another connection holds the write lock, a write fails as StoreBusyError
    (recoverable for the core), commits nothing, and succeeds once the lock is gone."""
    store = shared_store
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusyError) as caught:
        await store.write_batch(one_of_each())
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert classify_error(caught.value) is ErrorClass.RECOVERABLE
    blocker.execute("ROLLBACK")
    assert (await store.write_batch(one_of_each())).total_written == len(Table)
    assert store.reconnects == 0


@pytest.mark.parametrize("how", ["close", "stop"])
async def test_a_connection_closed_underneath_is_replaced(store: SQLiteStore, how: str) -> None:
    """If the aiosqlite connection is closed under the store, the next write fails as
    unavailable and the one after reconnects and writes."""
    conn = store.connection
    assert conn is not None
    if how == "close":
        await conn.close()
    else:
        await conn.stop()  # type: ignore[misc]  # the thread's own close-and-stop
    with pytest.raises(StoreUnavailableError):
        await store.write_batch(one_of_each())
    assert (await store.write_batch(one_of_each())).total_written == len(Table)
    assert store.reconnects == 1
    assert store.connection is not conn


async def test_a_store_cannot_be_used_after_close(db_path: Path) -> None:
    """close() is idempotent; afterwards reads and writes raise StoreClosedError."""
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.write_batch(one_of_each())
    with pytest.raises(StoreClosedError):
        await store.counts()
    assert "closed" in repr(store)


async def test_close_finishes_even_if_cancelled(db_path: Path) -> None:
    """Cancelling the caller of close() does not leave the connection open."""
    store = await open_store(db_path)
    conn = store.connection
    assert conn is not None
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)  # let close() start and take the lock
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert store.connection is None
    with pytest.raises(ValueError, match=r"closed|no active connection"):
        await conn.execute("SELECT 1")


@pytest.mark.parametrize("path", [":memory:", ""])
def test_in_memory_databases_are_refused(path: str) -> None:
    """A store must be a file: an in-memory database would vanish on reconnect."""
    with pytest.raises(ConfigurationError, match="file path"):
        SQLiteStore(path)


def test_negative_busy_timeout_is_refused(tmp_path: Path) -> None:
    """The busy timeout cannot be negative."""
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SQLiteStore(tmp_path / "x.sqlite", busy_timeout=-1)


async def test_the_database_file_is_its_owners_alone(tmp_path: Path) -> None:
    """A new database file, and its -wal and -shm files, are created 0600 whatever the
    umask; an existing file keeps its mode."""
    path = tmp_path / "new" / "private.sqlite"
    old = os.umask(0o022)
    try:
        async with SQLiteStore(path) as store:
            await store.write_batch([])
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        assert modes == dict.fromkeys(modes, 0o600)
        assert {"private.sqlite", "private.sqlite-wal"} <= set(modes)
        shared = tmp_path / "shared.sqlite"
        shared.touch(0o640)
        async with SQLiteStore(shared):
            pass
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(old)
