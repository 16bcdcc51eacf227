"""SQLiteStore on real files: batches, idempotency, reads, locks and broken connections."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from polymarket_agents.core.async_utils import ConfigurationError, ErrorClass, classify_error
from polymarket_agents.storage import (
    MIGRATIONS,
    BookSnapshotRow,
    EventKind,
    FillRow,
    LevelChange,
    MarketResolutionRow,
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
from polymarket_agents.storage._ledger import _BOUNDS
from polymarket_agents.storage._sqlite import WAL_CHECKPOINT_PAGES

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
            timestamp_ms=1_001 + n,
            changes=(LevelChange(f"y{n}", D("0.52"), D("0"), "SELL", "h2"),),
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
        MarketResolutionRow(market=f"0xc{n}", winning_asset_id=f"y{n}", timestamp_ms=1_005 + n),
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
    good = one_of_each()
    rows = [*good, "junk", order("bad", side="HOLD")]
    result = await store.write_batch(rows)
    junk = len(good)
    assert [(r.index, r.row) for r in result.rejected] == [(junk, "junk"), (junk + 1, rows[-1])]
    assert result.total_written == len(Table)


async def test_rows_the_database_refuses_are_found_row_by_row(db_path: Path) -> None:
    """When a constraint refuses a row mid-batch, the batch is written again row by row
    in one transaction: the good rows are stored, the refused one reported."""
    unlucky = Migration(
        MIGRATIONS[-1].version + 1,
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
    """open_store creates missing parents and uses WAL with synchronous=NORMAL, the log
    checkpointed every WAL_CHECKPOINT_PAGES pages rather than SQLite's 1,000."""
    store = await open_store(db_path)
    assert db_path.parent.is_dir()
    try:
        conn = store.connection
        assert conn is not None
        assert list(await conn.execute_fetchall("PRAGMA journal_mode")) == [("wal",)]
        assert list(await conn.execute_fetchall("PRAGMA synchronous")) == [(1,)]  # NORMAL
        pages = list(await conn.execute_fetchall("PRAGMA wal_autocheckpoint"))
        assert pages == [(WAL_CHECKPOINT_PAGES,)]
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


# -- the ledger: accounts, runs and history (run on PostgreSQL too) ---------------------------


async def test_accounts_open_once_per_name_and_reset_keeps_history(store: SQLiteStore) -> None:
    """'default' is the account of older files; a name opens once; a reset closes it and
    opens a new one with its own id, the closed one still listed."""
    default = await store.open_account("default", starting_cash=D(5), settings={}, now_ms=10)
    assert (default.id, default.starting_cash, default.closed_at_ms) == (1, D(1000), None)
    alice = await store.open_account(
        "alice", starting_cash=D(500), settings={"order_size": "5"}, now_ms=20
    )
    again = await store.open_account(
        "alice", starting_cash=D(900), settings={"order_size": "7"}, now_ms=30
    )
    assert again.id == alice.id
    assert again.starting_cash == D(500)
    assert again.settings == {"order_size": "7"}
    closed, opened = await store.reset_account(
        "alice", starting_cash=D(250), settings={}, now_ms=40
    )
    assert closed is not None
    assert (closed.id, closed.closed_at_ms) == (alice.id, 40)
    assert opened.id not in (alice.id, default.id)
    assert (opened.name, opened.starting_cash, opened.opened_at_ms) == ("alice", D(250), 40)
    listed = [(a.name, a.id, a.closed_at_ms) for a in await store.accounts()]
    assert listed == [("alice", alice.id, 40), ("alice", opened.id, None), ("default", 1, None)]
    none, bob = await store.reset_account("bob", starting_cash=D(1), settings={}, now_ms=50)
    assert none is None
    assert bob.name == "bob"


async def test_runs_are_numbered_and_keep_their_counters(store: SQLiteStore) -> None:
    """begin_run numbers runs in order; record_run stores counters, then the end."""
    first = await store.begin_run(
        account_id=1, strategy="a.b:C", settings={"x": 1}, started_at_ms=100
    )
    second = await store.begin_run(account_id=1, strategy="a.b:C", settings={}, started_at_ms=200)
    assert second > first
    await store.record_run(first, counters={"events": 5})
    await store.record_run(first, counters={"events": 9}, ended_at_ms=150)
    runs = await store.runs()
    assert [(r.id, r.started_at_ms, r.ended_at_ms) for r in runs] == [
        (first, 100, 150),
        (second, 200, None),
    ]
    assert (runs[0].strategy, runs[0].settings, runs[0].counters) == (
        "a.b:C",
        {"x": 1},
        {"events": 9},
    )


async def test_history_is_read_per_account(store: SQLiteStore) -> None:
    """Orders and fills of one account only; markets and resolutions as stored."""
    await store.write_batch(
        [
            MarketRow(condition_id="0xm", yes_token="y", no_token="n", slug="will-it"),
            order("o1"),
            order("o2", account_id=2),
            FillRow(order_id="o1", seq=0, token_id="y", side="BUY", price=D("0.4"), size=D(5),
                    timestamp_ms=2, market="0xm", fee=D("0.01")),
            FillRow(order_id="o2", seq=0, token_id="y", side="BUY", price=D("0.4"), size=D(5),
                    timestamp_ms=1, market="0xm", account_id=2),
            FillRow(order_id="settle:0xm", seq=0, token_id="y", side="SELL", price=D(1),
                    size=D(5), timestamp_ms=3, market="0xm", kind="settlement"),
            MarketResolutionRow(market="0xm", winning_asset_id="y", timestamp_ms=3),
        ]
    )  # fmt: skip
    assert [o.order_id for o in await store.orders(1)] == ["o1"]
    assert [o.account_id for o in await store.orders(2)] == [2]
    fills = await store.fills(1)
    assert [(f.order_id, f.kind, f.fee) for f in fills] == [
        ("o1", "trade", D("0.01")),
        ("settle:0xm", "settlement", D(0)),
    ]
    assert [m.slug for m in await store.markets()] == ["will-it"]
    assert [(r.market, r.winning_asset_id) for r in await store.resolutions()] == [("0xm", "y")]


def stored_events() -> list[object]:
    """One event of every kind, numbered in an order that differs from their timestamps';
    a price change of two entries."""
    return [
        PriceChangeRow(market="0xa", timestamp_ms=5, received_at_ms=50, event_seq=3,
                       changes=(LevelChange("n", D("0.7"), D(1), "BUY", "h0"),
                                LevelChange("y", D("0.3"), D(1), "BUY", "h1"))),
        BookSnapshotRow(asset_id="y", market="0xa", timestamp_ms=4, hash="b",
                        bids=((D("0.2"), D(3)),), received_at_ms=40, event_seq=1),
        TradeRow(asset_id="y", market="0xa", timestamp_ms=6, side="SELL", price=D("0.3"),
                 size=D(2), transaction_hash="0xt", received_at_ms=60, event_seq=4,
                 books_ahead=2),
        TickSizeChangeRow(asset_id="y", market="0xb", timestamp_ms=3, old_tick_size=D("0.01"),
                          new_tick_size=D("0.001"), received_at_ms=30, event_seq=2),
        MarketResolutionRow(market="0xa", winning_asset_id="y", timestamp_ms=7,
                            received_at_ms=70, event_seq=5),
    ]  # fmt: skip


async def test_events_stream_in_the_order_they_were_taken(store: SQLiteStore) -> None:
    """Every market-data table as one stream of wire events: by event order, a price
    change's entries joined in their order; filtered by time and market; in windows."""
    await store.write_batch(stored_events())
    chunks = [chunk async for chunk in store.events(window_ms=2)]
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    records = [record for chunk in chunks for record in chunk]
    assert [(r.event_seq, r.market, r.received_at_ms, r.books_ahead) for r in records] == [
        (1, "0xa", 40, 0),
        (2, "0xb", 30, 0),
        (3, "0xa", 50, 0),
        (4, "0xa", 60, 2),
        (5, "0xa", 70, 0),
    ]
    wires = [json.loads(r.wire) for r in records]
    assert wires[0] == {
        "event_type": "book", "asset_id": "y", "market": "0xa", "timestamp": "4", "hash": "b",
        "bids": [{"price": "0.2", "size": "3"}], "asks": [], "tick_size": None,
        "last_trade_price": "",
    }  # fmt: skip
    assert wires[1]["event_type"] == "tick_size_change"
    assert wires[1]["new_tick_size"] == "0.001"
    change = wires[2]
    assert (change["event_type"], change["timestamp"]) == ("price_change", "5")
    assert [(c["asset_id"], c["price"], c["hash"]) for c in change["price_changes"]] == [
        ("n", "0.7", "h0"),
        ("y", "0.3", "h1"),
    ]
    fields = ("event_type", "side", "price", "size", "transaction_hash")
    assert {k: wires[3][k] for k in fields} == {
        "event_type": "last_trade_price", "side": "SELL", "price": "0.3", "size": "2",
        "transaction_hash": "0xt",
    }  # fmt: skip
    assert (wires[4]["event_type"], wires[4]["winning_asset_id"]) == ("market_resolved", "y")
    only_a = [r async for chunk in store.events(markets=["0xa"], since_ms=5) for r in chunk]
    assert [r.event_seq for r in only_a] == [3, 4, 5]


async def test_event_windows_are_plain_rows_in_the_order_events_were_taken(
    store: SQLiteStore,
) -> None:
    """The same events as plain rows, one per event with its kind, in event order (rows
    from before it was recorded first); a price change's entries as compact JSON, the
    numbers' exact text kept; filtered by time and market; in windows."""
    entry = LevelChange("y", D("0.20"), D(2), "SELL", "old", D("0.1"))
    old = PriceChangeRow(market="0xa", timestamp_ms=4, received_at_ms=45, changes=(entry,))
    await store.write_batch([*stored_events(), old])
    windows = [window async for window in store.event_windows(window_ms=2)]
    assert [len(w.rows) for w in windows] == [3, 2, 1]
    changes = '[["n","0.7","1","BUY","h0",null,null],["y","0.3","1","BUY","h1",null,null]]'
    rows = [tuple(row) for w in windows for row in w.rows]
    assert rows == [
        (None, 0, "0xa", 45, 4, EventKind.PRICE_CHANGE,
         '[["y","0.20","2","SELL","old","0.1",null]]', None, None, None, None, None),
        (1, 0, "0xa", 40, 4, EventKind.BOOK, "y", '[["0.2","3"]]', "[]", "b", None, None),
        (2, 0, "0xb", 30, 3, EventKind.TICK_SIZE_CHANGE, "y", "0.01", "0.001", None, None, None),
        (3, 0, "0xa", 50, 5, EventKind.PRICE_CHANGE, changes, None, None, None, None, None),
        (4, 2, "0xa", 60, 6, EventKind.TRADE, "y", "0.3", "2", "SELL", "0", "0xt"),
        (5, 0, "0xa", 70, 7, EventKind.RESOLUTION, "y", None, None, None, None, None),
    ]  # fmt: skip
    only_a = [w async for w in store.event_windows(markets=["0xa"], since_ms=5)]
    assert [row[0] for w in only_a for row in w.rows] == [3, 4, 5]


async def test_a_window_holding_a_value_no_event_has_is_read_row_by_row(db_path: Path) -> None:
    """Values the service never stores (a BLOB for a price change's entries, text for a
    receive time) fail SQLite's one-value read of their window: that window is read row
    by row instead, with the values as stored, and every window comes back in order."""
    async with SQLiteStore(db_path) as store:
        await store.write_batch(stored_events())
        before = [tuple(r) for w in [w async for w in store.event_windows()] for r in w.rows]
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE price_changes SET changes = x'ff00' WHERE event_seq = 3")
        conn.execute("UPDATE trades SET received_at_ms = 'late' WHERE event_seq = 4")
    conn.close()
    async with SQLiteStore(db_path) as store:
        after = [tuple(r) for w in [w async for w in store.event_windows()] for r in w.rows]
    assert [row[0] for row in after] == [1, 2, 3, 4, 5]
    assert after[2] == (*before[2][:6], b"\xff\x00", *before[2][7:])
    assert after[3] == (*before[3][:3], "late", *before[3][4:])
    assert after[:2] + after[4:] == before[:2] + before[4:]


async def test_the_next_window_is_being_read_while_the_caller_works(db_path: Path) -> None:
    """When a window is handed over, the next one's read has been handed to the database
    already: it goes on while the caller works, even a caller that never suspends."""
    started: list[int] = []

    class Watched(SQLiteStore):
        async def _event_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
            started.append(int(str(params[0])))
            return await super()._event_rows(sql, params)

    async with Watched(db_path) as store:
        await store.write_batch(stored_events())
        windows = store.event_windows(window_ms=2)
        await anext(windows)
        assert started == [3, 5]
        await anext(windows)
        assert started == [3, 5, 7]
        assert len([w async for w in windows]) == 1
    assert started == [3, 5, 7]


async def test_the_bounds_of_a_recording_are_read_off_the_indexes(db_path: Path) -> None:
    """Where the recorded events start and end (the first step of every replay) is looked
    up at the ends of each table's index, not found by scanning it."""
    async with SQLiteStore(db_path) as store:
        await store.write_batch(stored_events())
    conn = sqlite3.connect(db_path)
    try:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {_BOUNDS}")]
    finally:
        conn.close()
    searches = [step for step in plan if step.startswith("SEARCH")]
    assert len(searches) == 2 * 5, plan
    assert [step for step in plan if step.startswith("SCAN")] == ["SCAN CONSTANT ROW"] * 5


async def test_a_reader_that_stops_early_leaves_no_failed_read_behind(db_path: Path) -> None:
    """Leaving ``event_windows`` after one window, then closing the store: the window read
    ahead fails (the store is closed) with nobody to take it, and that is not reported
    as an exception never retrieved."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        store = SQLiteStore(db_path)
        await store.open()
        await store.write_batch(stored_events())
        async for _window in store.event_windows(window_ms=1):
            break
        await store.close()
        for _ in range(5):  # the abandoned generator is closed by the loop, soon
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_events_stored_before_their_order_was_recorded(store: SQLiteStore) -> None:
    """Rows without event_seq come first, by receive time."""

    def change(timestamp: int, received: int, *entries: LevelChange) -> PriceChangeRow:
        return PriceChangeRow(
            market="0xa", timestamp_ms=timestamp, received_at_ms=received, changes=entries
        )

    await store.write_batch(
        [
            change(5, 50, LevelChange("y", D("0.3"), D(1), "BUY", "a"),
                   LevelChange("n", D("0.7"), D(1), "BUY", "b")),
            change(6, 60, LevelChange("y", D("0.4"), D(1), "BUY", "c")),
            TradeRow(asset_id="y", market="0xa", timestamp_ms=5, side="SELL", price=D("0.3"),
                     size=D(2), received_at_ms=55),
            TradeRow(asset_id="y", market="0xa", timestamp_ms=9, side="SELL", price=D("0.3"),
                     size=D(2), received_at_ms=90, event_seq=1),
        ]
    )  # fmt: skip
    records = [r async for chunk in store.events() for r in chunk]
    assert [(r.event_seq, r.received_at_ms) for r in records] == [
        (None, 50),
        (None, 55),
        (None, 60),
        (1, 90),
    ]
    assert len(json.loads(records[0].wire)["price_changes"]) == 2
