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
    Migration,
    SchemaVersionError,
    SQLiteStore,
    Table,
    TradeRow,
)

TRADE = TradeRow(
    asset_id="a", market="m", timestamp_ms=1, side="BUY", price=Decimal("0.5"), size=Decimal(1)
)

ADD_INDEX = Migration(
    2, "index trades by market", ("CREATE INDEX trades_market ON trades(market)",)
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
        assert store.schema_version == 2
        assert await store.count(Table.TRADES) == 1
    assert applied(caplog) == [f"{db_path}: applied migration 2 (index trades by market)"]
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
    broken = Migration(2, "half done", ("CREATE TABLE extra (x)", "CREATE TABLE trades (x)"))
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        async with SQLiteStore(db_path, migrations=(*MIGRATIONS, broken)):
            pass
    assert user_version(db_path) == 1
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []
    finally:
        conn.close()


async def test_a_file_from_a_newer_version_is_refused(db_path: Path) -> None:
    """A schema newer than the code is a fatal configuration error, and the file is untouched."""
    async with SQLiteStore(db_path, migrations=(*MIGRATIONS, ADD_INDEX)):
        pass
    with pytest.raises(SchemaVersionError, match="schema version 2") as caught:
        async with SQLiteStore(db_path):
            pass
    assert (caught.value.found, caught.value.supported) == (2, 1)
    assert classify_error(caught.value) is ErrorClass.FATAL
    assert user_version(db_path) == 2


@pytest.mark.parametrize(
    ("migrations", "message"),
    [
        ((ADD_INDEX,), "found 2 where 1 was expected"),
        ((*MIGRATIONS, Migration(3, "gap", ("SELECT 1",))), "found 3 where 2 was expected"),
        ((*MIGRATIONS, Migration(2, "empty", ())), "migration 2 has no statements"),
    ],
)
def test_migration_lists_must_be_consecutive(
    tmp_path: Path, migrations: tuple[Migration, ...], message: str
) -> None:
    """Versions run 1, 2, 3 ... and every step has statements."""
    with pytest.raises(ConfigurationError, match=message):
        SQLiteStore(tmp_path / "x.sqlite", migrations=migrations)
