"""SQLiteStore owning its file: one owner, the WAL index in memory, a vanished file seen,
a read-only connection replaced, trades ahead of market data."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.core.async_utils import ErrorClass, classify_error
from polymarket_agents.storage import (
    FillRow,
    LevelChange,
    PriceChangeRow,
    SQLiteStore,
    StoreInUseError,
    StoreLostError,
    StoreUnavailableError,
    Table,
)

D = Decimal


def changes(n: int, start: int = 0) -> list[object]:
    """``n`` distinct price-change rows."""
    return [
        PriceChangeRow(
            market="0xm",
            timestamp_ms=start + i,
            changes=(LevelChange("yes", D("0.5"), D(i + 1), "BUY", "h"),),
        )
        for i in range(n)
    ]


def fill(seq: int) -> FillRow:
    return FillRow(
        order_id="o1",
        seq=seq,
        token_id="yes",
        side="BUY",
        price=D("0.40"),
        size=D("10"),
        timestamp_ms=1_000 + seq,
    )


async def test_a_second_store_on_the_same_file_is_refused_naming_the_owner(
    store: SQLiteStore,
) -> None:
    """While one store owns a file, another cannot open it: the error names the file and
    the owner's pid; once the owner closes, the file can be opened again."""
    other = SQLiteStore(store.path)
    with pytest.raises(StoreInUseError) as caught:
        await other.open()
    assert caught.value.pid == os.getpid()
    assert str(store.path) in str(caught.value)
    assert f"process {os.getpid()}" in str(caught.value)
    lock_file = store.path.with_name(store.path.name + ".lock")
    assert lock_file.read_text().strip() == str(os.getpid())
    assert lock_file.stat().st_mode & 0o777 == 0o600
    await store.close()
    async with SQLiteStore(store.path) as reopened:
        assert await reopened.count(Table.PRICE_CHANGES) == 0


async def test_no_other_connection_can_read_or_write_an_owned_file(store: SQLiteStore) -> None:
    """In exclusive locking mode a plain sqlite3 connection (another program) is kept out."""
    await store.write_batch(changes(3))
    other = sqlite3.connect(store.path, timeout=0.05)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT count(*) FROM price_changes").fetchall()
    finally:
        other.close()


async def test_the_wal_index_lives_in_memory_so_a_broken_shm_file_is_harmless(
    db_path: Path,
) -> None:
    """No -shm file is mapped: one left behind, unreadable and full of garbage, changes
    nothing, and none is created."""
    db_path.parent.mkdir(parents=True)
    shm = db_path.with_name(db_path.name + "-shm")
    shm.write_bytes(b"\xff" * 100)
    shm.chmod(0)
    async with SQLiteStore(db_path) as store:
        assert (await store.write_batch(changes(50))).total_written == 50
        assert await store.count(Table.PRICE_CHANGES) == 50
    assert shm.read_bytes() == b"\xff" * 100
    async with SQLiteStore(db_path) as store:
        assert await store.count(Table.PRICE_CHANGES) == 50


async def test_a_shared_store_lets_other_connections_in(shared_store: SQLiteStore) -> None:
    """exclusive=False: another connection reads the file while the store has it open."""
    await shared_store.write_batch(changes(3))
    other = sqlite3.connect(shared_store.path, timeout=1)
    try:
        assert other.execute("SELECT count(*) FROM price_changes").fetchone() == (3,)
    finally:
        other.close()


def remove(db_path: Path) -> None:
    """rm -rf of the database's directory."""
    shutil.rmtree(db_path.parent)


def replace(db_path: Path) -> None:
    """Another (empty) file where the database was."""
    db_path.unlink()
    db_path.write_bytes(b"")


@pytest.mark.parametrize("how", ["directory removed", "file replaced"])
async def test_a_vanished_database_is_reported_and_never_recreated(db_path: Path, how: str) -> None:
    """Once the file is removed (rm -rf of its directory) or replaced, the next write
    raises StoreLostError naming the path, `lost` says why, and no new file is created
    in its place, however often the store is asked."""
    async with SQLiteStore(db_path, check_interval=0) as store:
        await store.write_batch(changes(5))
        await asyncio.to_thread(replace if how == "file replaced" else remove, db_path)
        with pytest.raises(StoreLostError, match="vanished") as caught:
            await store.write_batch(changes(5, start=100))
        assert str(db_path) in str(caught.value)
        assert classify_error(caught.value) is ErrorClass.RECOVERABLE
        assert store.lost is not None
        assert "removed or replaced" in store.lost
        for call in (store.write_batch(changes(1)), store.write_trades([fill(0)]), store.verify()):
            with pytest.raises(StoreLostError):
                await call
        if how == "directory removed":
            assert not await asyncio.to_thread(db_path.parent.exists)
        else:
            assert (await asyncio.to_thread(db_path.stat)).st_size == 0


async def test_a_failed_write_checks_for_a_vanished_file_at_once(db_path: Path) -> None:
    """With periodic checks far apart, a write that fails still finds the file gone."""
    async with SQLiteStore(db_path, check_interval=3600) as store:
        await store.write_batch(changes(1))  # the first check, at the first write
        shutil.rmtree(db_path.parent)
        assert store.connection is not None
        await store.connection.execute("PRAGMA query_only = ON")  # the next write fails
        with pytest.raises(StoreLostError):
            await store.write_batch(changes(1, start=10))
        assert store.lost is not None


async def test_a_read_only_connection_is_replaced(store: SQLiteStore) -> None:
    """'attempt to write a readonly database' is a broken connection: the write fails as
    unavailable (recoverable) and the next one writes on a new connection."""
    conn = store.connection
    assert conn is not None
    await conn.execute("PRAGMA query_only = ON")  # as a file SQLite opened read-only
    with pytest.raises(StoreUnavailableError, match="readonly") as caught:
        await store.write_batch(changes(2))
    assert classify_error(caught.value) is ErrorClass.RECOVERABLE
    assert (await store.write_batch(changes(2))).total_written == 2
    assert store.reconnects == 1


async def test_trades_go_before_market_data_waiting_for_the_connection(db_path: Path) -> None:
    """A write_trades call waits for the transaction in progress only, not for the
    market-data batches queued before it."""
    async with SQLiteStore(db_path, busy_timeout=10, exclusive=False) as store:
        blocker = sqlite3.connect(db_path, isolation_level=None, timeout=5)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            order: list[str] = []

            async def write(name: str, rows: list[object], trades: bool = False) -> None:
                await (store.write_trades(rows) if trades else store.write_batch(rows))
                order.append(name)

            first = asyncio.create_task(write("in progress", changes(1)))
            await asyncio.sleep(0.05)  # it holds the connection, waiting on the lock
            tasks = [
                asyncio.create_task(write(f"batch {i}", changes(1, start=10 * (i + 1))))
                for i in range(3)
            ]
            await asyncio.sleep(0)
            tasks.append(asyncio.create_task(write("trade", [fill(0)], trades=True)))
            await asyncio.sleep(0.05)
            blocker.execute("ROLLBACK")
            await asyncio.gather(first, *tasks)
        finally:
            blocker.close()
    assert order == ["in progress", "trade", "batch 0", "batch 1", "batch 2"]


async def test_write_trades_commits_like_write_batch(store: SQLiteStore) -> None:
    """write_trades counts written and duplicate rows as write_batch does."""
    result = await store.write_trades([fill(0), fill(1)])
    assert result.written == {Table.FILLS: 2}
    again = await store.write_trades([fill(1), fill(2)])
    assert (again.total_written, again.total_duplicates) == (1, 1)
    assert await store.count(Table.FILLS) == 3
