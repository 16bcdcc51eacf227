"""The schema: created on first open, versioned, migrated in order, never re-applied."""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.core.async_utils import ConfigurationError, ErrorClass, classify_error
from polymarket_agents.storage import (
    LOGGER_NAME,
    MIGRATIONS,
    LevelChange,
    Migration,
    PriceChangeRow,
    SchemaVersionError,
    SQLiteStore,
    Table,
    TradeRow,
)
from polymarket_agents.storage._codec import price_change_key

D = Decimal

TRADE = TradeRow(
    asset_id="a", market="m", timestamp_ms=1, side="BUY", price=Decimal("0.5"), size=Decimal(1)
)

LATEST = MIGRATIONS[-1].version
NEXT = LATEST + 1

ADD_INDEX = Migration(
    NEXT, "index trades by market", ("CREATE INDEX trades_market ON trades(market)",)
)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def applied(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "applied migration" in r.getMessage()]


async def test_first_open_creates_every_table_at_the_latest_version(db_path: Path) -> None:
    """A new file gets all tables and user_version = the last migration's version."""
    async with SQLiteStore(db_path) as store:
        assert store.schema_version == MIGRATIONS[-1].version
        assert await store.counts() == dict.fromkeys(Table, 0)
    assert user_version(db_path) == MIGRATIONS[-1].version


async def test_reopening_applies_nothing_and_keeps_the_data(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Migrations run once: a second open finds the schema current and the rows intact."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    async with SQLiteStore(db_path) as store:
        await store.write_batch([TRADE])
    assert len(applied(caplog)) == len(MIGRATIONS)
    caplog.clear()
    async with SQLiteStore(db_path) as store:
        assert await store.count(Table.TRADES) == 1
        assert store.schema_version == MIGRATIONS[-1].version
    assert applied(caplog) == []


async def test_a_new_migration_upgrades_an_existing_file(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening with a longer history applies only the new steps, in order."""
    async with SQLiteStore(db_path) as store:
        await store.write_batch([TRADE])
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    async with SQLiteStore(db_path, migrations=(*MIGRATIONS, ADD_INDEX)) as store:
        assert store.schema_version == NEXT
        assert await store.count(Table.TRADES) == 1
    assert applied(caplog) == [f"{db_path}: applied migration {NEXT} (index trades by market)"]
    conn = sqlite3.connect(db_path)
    try:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    finally:
        conn.close()
    assert ("trades_market",) in names


async def test_a_failing_migration_is_rolled_back_whole(db_path: Path) -> None:
    """A migration that fails halfway leaves neither its first statements nor its version."""
    async with SQLiteStore(db_path):
        pass
    broken = Migration(NEXT, "half done", ("CREATE TABLE extra (x)", "CREATE TABLE trades (x)"))
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        async with SQLiteStore(db_path, migrations=(*MIGRATIONS, broken)):
            pass
    assert user_version(db_path) == LATEST
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []
    finally:
        conn.close()


async def test_a_file_from_a_newer_version_is_refused(db_path: Path) -> None:
    """A schema newer than the code is a fatal configuration error, and the file is untouched."""
    async with SQLiteStore(db_path, migrations=(*MIGRATIONS, ADD_INDEX)):
        pass
    with pytest.raises(SchemaVersionError, match=f"schema version {NEXT}") as caught:
        async with SQLiteStore(db_path):
            pass
    assert (caught.value.found, caught.value.supported) == (NEXT, LATEST)
    assert classify_error(caught.value) is ErrorClass.FATAL
    assert user_version(db_path) == NEXT


@pytest.mark.parametrize(
    ("migrations", "message"),
    [
        ((ADD_INDEX,), f"found {NEXT} where 1 was expected"),
        (
            (*MIGRATIONS, Migration(NEXT + 1, "gap", ("SELECT 1",))),
            f"found {NEXT + 1} where {NEXT} was expected",
        ),
        ((*MIGRATIONS, Migration(NEXT, "empty", ())), f"migration {NEXT} has no statements"),
    ],
)
def test_migration_lists_must_be_consecutive(
    tmp_path: Path, migrations: tuple[Migration, ...], message: str
) -> None:
    """Versions run 1, 2, 3 ... and every step has statements."""
    with pytest.raises(ConfigurationError, match=message):
        SQLiteStore(tmp_path / "x.sqlite", migrations=migrations)


async def test_version_1_files_keep_their_orders_in_the_default_account(db_path: Path) -> None:
    """Migration 2 on a file written by version 1: its orders and fills belong to account 1
    ('default', 1000 USDC); a signal id is then unique per account, not overall."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        for statement in MIGRATIONS[0].statements:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO paper_orders (order_id, signal_id, market, token_id, side, price, size, "
            "order_type, status, created_at_ms, filled_size, updated_at_ms, revision, error) "
            "VALUES ('o1', 's1', 'm', 't', 'BUY', '0.4', '10', 'FOK', 'matched', 1, '10', 1, 1, '')"
        )
        conn.execute(
            "INSERT INTO fills (order_id, seq, token_id, side, price, size, timestamp_ms, "
            "market, fee) VALUES ('o1', 0, 't', 'BUY', '0.4', '10', 1, 'm', '0')"
        )
    finally:
        conn.close()
    async with SQLiteStore(db_path) as store:
        assert store.schema_version == LATEST
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        assert conn.execute("SELECT account_id, signal_id FROM paper_orders").fetchall() == [
            (1, "s1")
        ]
        assert conn.execute("SELECT account_id, kind FROM fills").fetchall() == [(1, "trade")]
        assert conn.execute(
            "SELECT id, name, starting_cash, closed_at_ms FROM accounts"
        ).fetchall() == [(1, "default", "1000", None)]
        conn.execute(
            "INSERT INTO paper_orders (order_id, signal_id, market, token_id, side, price, size, "
            "order_type, status, created_at_ms, filled_size, updated_at_ms, revision, error, "
            "account_id) VALUES ('o2', 's1', 'm', 't', 'BUY', '0.4', '10', 'FOK', 'matched', "
            "1, '10', 1, 1, '', 2)"
        )
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute(
                "INSERT INTO paper_orders (order_id, signal_id, market, token_id, side, price, "
                "size, order_type, status, created_at_ms, filled_size, updated_at_ms, revision, "
                "error, account_id) VALUES ('o3', 's1', 'm', 't', 'BUY', '0.4', '10', 'FOK', "
                "'matched', 1, '10', 1, 1, '', 2)"
            )
    finally:
        conn.close()


# Per-entry price_changes rows as version 3 stored them: (market, asset_id, timestamp_ms,
# side, price, size, hash, best_bid, best_ask, received_at_ms, event_seq, books_ahead,
# entry). Event 7's entries were written out of order; two entries from before event
# order was recorded share a receive time (their order unknown: by token, as version 3
# read them back); a third is alone.
VERSION_3_CHANGES = [
    ("0xm", "n", 5, "SELL", "0.60", "3", "h1", "0.3", "0.6", 50, 7, 2, 1),
    ("0xm", "y", 5, "BUY", "0.40", "3", "h0", "0.4", None, 50, 7, 2, 0),
    ("0xm", "y", 4, "BUY", "0.39", "1", "a", None, None, 40, None, 0, 0),
    ("0xm", "n", 4, "SELL", "0.61", "1", "b", None, None, 40, None, 0, 0),
    ("0xm", "y", 4, "BUY", "0.38", "2", "c", None, None, 41, None, 0, 0),
]

VERSION_3_INSERT = (
    "INSERT INTO price_changes (market, asset_id, timestamp_ms, side, price, size, hash, "
    "best_bid, best_ask, received_at_ms, event_seq, books_ahead, entry) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

MIGRATED_CHANGES = [
    ('[["n","0.61","1","SELL","b",null,null],["y","0.39","1","BUY","a",null,null]]', 40, None, 0),
    ('[["y","0.38","2","BUY","c",null,null]]', 41, None, 0),
    ('[["y","0.40","3","BUY","h0","0.4",null],["n","0.60","3","SELL","h1","0.3","0.6"]]', 50, 7, 2),
]
"""(changes, received_at_ms, event_seq, books_ahead) of the rows migration 4 makes."""


def migrated_event() -> PriceChangeRow:
    """Event 7 as the codec writes it today: the row migration 4 made of its entries."""
    return PriceChangeRow(
        market="0xm",
        timestamp_ms=5,
        received_at_ms=50,
        event_seq=7,
        books_ahead=2,
        changes=(
            LevelChange("y", Decimal("0.40"), Decimal(3), "BUY", "h0", Decimal("0.4")),
            LevelChange(
                "n", Decimal("0.60"), Decimal(3), "SELL", "h1", Decimal("0.3"), Decimal("0.6")
            ),
        ),
    )


async def test_version_3_price_changes_become_one_row_per_event(db_path: Path) -> None:
    """Migration 4: a price change's entries, stored one per row before, become one row
    holding them in their order (one event per event_seq; before it was recorded, per
    receive time, timestamp and market), written exactly as the codec writes them; and
    migration 5 keys each by the codec's digest, so the same event written again is a
    duplicate."""
    async with SQLiteStore(db_path, migrations=MIGRATIONS[:3]):
        pass
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.executemany(VERSION_3_INSERT, VERSION_3_CHANGES)
    finally:
        conn.close()
    async with SQLiteStore(db_path) as store:
        assert store.schema_version == LATEST
        connection = store.connection
        assert connection is not None
        rows = await connection.execute_fetchall(
            "SELECT changes, received_at_ms, event_seq, books_ahead FROM price_changes "
            "ORDER BY received_at_ms"
        )
        assert [tuple(row) for row in rows] == MIGRATED_CHANGES
        keys = await connection.execute_fetchall(
            "SELECT market, changes, event_key FROM price_changes"
        )
        assert [bytes(k) for _, _, k in keys] == [price_change_key(m, c) for m, c, _ in keys]
        again = await store.write_batch([migrated_event()])
        assert dict(again.duplicates) == {Table.PRICE_CHANGES: 1}
