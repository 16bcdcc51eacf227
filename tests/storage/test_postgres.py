"""PostgresStore against a real PostgreSQL server: the Store contract, schema, faults, secrets.

The backend-neutral tests of ``test_store.py`` are imported and run here again with the
``store`` fixture overridden by a PostgreSQL store, so both databases keep one contract.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import pytest

from polymarket_agents.core.async_utils import (
    ConfigurationError,
    ErrorClass,
    classify_error,
)
from polymarket_agents.storage import (
    MIGRATIONS,
    PG_MIGRATIONS,
    AccountOverdrawnError,
    FillRow,
    LevelChange,
    MarketRow,
    Migration,
    PaperOrderRow,
    PostgresStore,
    PriceChangeRow,
    SchemaVersionError,
    SQLiteStore,
    Store,
    StoreClosedError,
    StoreDefinitionError,
    StoreLostError,
    StoreUnavailableError,
    Table,
    TradeRow,
    WriteResult,
    create_store,
    is_postgres_url,
    redact_url,
)
from polymarket_agents.storage._codec import price_change_key
from polymarket_agents.storage._ledger import numbered

from .._postgres import PostgresServer
from .test_schema import MIGRATED_CHANGES, VERSION_3_CHANGES, VERSION_3_INSERT, migrated_event
from .test_store import (
    one_of_each,
    order,
    test_a_batch_writes_every_table_once,
    test_accounts_open_once_per_name_and_reset_keeps_history,
    test_count_refuses_unknown_tables,
    test_duplicates_inside_one_batch_are_written_once,
    test_event_windows_are_plain_rows_in_the_order_events_were_taken,
    test_events_stored_before_their_order_was_recorded,
    test_events_stream_in_the_order_they_were_taken,
    test_history_is_read_per_account,
    test_invalid_rows_are_reported_and_the_rest_committed,
    test_open_and_latest_orders_for_a_restart,
    test_orders_move_forward_by_revision_and_one_per_signal,
    test_prices_read_back_exactly,
    test_reads_for_status,
    test_replaying_a_batch_adds_no_rows,
    test_runs_are_numbered_and_keep_their_counters,
)

__all__ = [  # run here again, on PostgreSQL
    "test_a_batch_writes_every_table_once",
    "test_accounts_open_once_per_name_and_reset_keeps_history",
    "test_count_refuses_unknown_tables",
    "test_duplicates_inside_one_batch_are_written_once",
    "test_event_windows_are_plain_rows_in_the_order_events_were_taken",
    "test_events_stored_before_their_order_was_recorded",
    "test_events_stream_in_the_order_they_were_taken",
    "test_history_is_read_per_account",
    "test_invalid_rows_are_reported_and_the_rest_committed",
    "test_open_and_latest_orders_for_a_restart",
    "test_orders_move_forward_by_revision_and_one_per_signal",
    "test_prices_read_back_exactly",
    "test_reads_for_status",
    "test_replaying_a_batch_adds_no_rows",
    "test_runs_are_numbered_and_keep_their_counters",
]

D = Decimal


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    """An open PostgreSQL store on a new database, closed after the test."""
    async with PostgresStore(pg_url, command_timeout=10) as opened:
        yield opened


async def sql(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """Run ``query`` on a connection of its own: another client of the same database."""
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def trades(count: int, start: int = 0) -> list[TradeRow]:
    return [
        TradeRow(asset_id="a", market="m", timestamp_ms=i, side="BUY", price=D("0.5"), size=D(i))
        for i in range(start, start + count)
    ]


async def test_the_tables_and_columns_are_sqlites(pg_url: str, tmp_path: Path) -> None:
    """Both databases hold the same tables with the same columns, in the same order."""
    async with PostgresStore(pg_url):
        pass
    records = await sql(
        pg_url,
        "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name <> 'schema_migrations' GROUP BY table_name",
    )
    postgres = {name: list(columns) for name, columns in records}
    async with SQLiteStore(tmp_path / "a.sqlite") as sqlite_store:
        conn = sqlite_store.connection
        assert conn is not None
        names = [
            row[0]
            for row in await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        sqlite = {
            name: [row[1] for row in await conn.execute_fetchall(f"PRAGMA table_info({name})")]
            for name in names
        }
    assert postgres == sqlite
    assert [m.version for m in PG_MIGRATIONS] == [m.version for m in MIGRATIONS]


async def test_migrations_are_versioned_and_applied_once_by_concurrent_replicas(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Four stores opening a new database at once apply each migration exactly once."""
    caplog.set_level(logging.INFO, "polymarket_agents.storage")
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert {s.schema_version for s in stores} == {PG_MIGRATIONS[-1].version}
        applied = [r.getMessage() for r in caplog.records if "applied migration" in r.message]
        assert len(applied) == len(PG_MIGRATIONS)
        versions = await sql(pg_url, "SELECT version, description FROM schema_migrations")
        assert [tuple(r) for r in versions] == [(m.version, m.description) for m in PG_MIGRATIONS]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_database_from_a_newer_version_is_refused(pg_url: str) -> None:
    """A schema version above the newest known one stops the store from opening."""
    async with PostgresStore(pg_url):
        pass
    await sql(pg_url, "INSERT INTO schema_migrations (version, description) VALUES (99, 'x')")
    store = PostgresStore(pg_url)
    with pytest.raises(SchemaVersionError, match="99") as caught:
        await store.open()
    assert classify_error(caught.value) is ErrorClass.FATAL
    await store.close()


async def test_a_new_migration_upgrades_an_existing_database(pg_url: str) -> None:
    """A database at the latest version is taken one further by a store that knows the next
    step, keeping its data."""
    async with PostgresStore(pg_url) as store:
        await store.write_batch(trades(3))
    following = PG_MIGRATIONS[-1].version + 1
    extra = Migration(following, "an index", ("CREATE INDEX trades_by_market ON trades (market)",))
    async with PostgresStore(pg_url, migrations=(*PG_MIGRATIONS, extra)) as store:
        assert store.schema_version == following
        assert await store.count(Table.TRADES) == 3


async def test_version_3_price_changes_become_one_row_per_event(pg_url: str) -> None:
    """Migration 4 on PostgreSQL: the same rows, in the same order, as on SQLite, written
    exactly as the codec writes them; migration 5 fills the digest column with the very
    bytes the codec computes."""
    async with PostgresStore(pg_url, migrations=PG_MIGRATIONS[:3]):
        pass
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.executemany(numbered(VERSION_3_INSERT), VERSION_3_CHANGES)
    finally:
        await conn.close()
    async with PostgresStore(pg_url) as store:
        assert store.schema_version == PG_MIGRATIONS[-1].version
        rows = await sql(
            pg_url,
            "SELECT changes, received_at_ms, event_seq, books_ahead FROM price_changes "
            "ORDER BY received_at_ms",
        )
        assert [tuple(row) for row in rows] == MIGRATED_CHANGES
        keys = await sql(pg_url, "SELECT market, changes, event_key FROM price_changes")
        assert [bytes(k) for _, _, k in keys] == [price_change_key(m, c) for m, c, _ in keys]
        again = await store.write_batch([migrated_event()])
        assert dict(again.duplicates) == {Table.PRICE_CHANGES: 1}


async def test_a_batch_of_new_rows_is_copied_and_a_replay_sorted_out_by_staging(
    store: PostgresStore,
) -> None:
    """New rows go in by COPY; a batch mixing stored and new rows stores only the new ones
    and counts the rest as duplicates."""
    first = await store.write_batch(trades(100))
    mixed = await store.write_batch([*trades(50, start=75), *trades(100)])
    assert (first.total_written, first.total_duplicates) == (100, 0)
    assert dict(mixed.written) == {Table.TRADES: 25}
    assert dict(mixed.duplicates) == {Table.TRADES: 125}
    assert await store.count(Table.TRADES) == 125
    # Later batches of new rows are counted the same whichever path they take.
    for n in range(40):
        result = await store.write_batch(trades(10, start=1_000 + 10 * n))
        assert (result.total_written, result.total_duplicates) == (10, 0)
    assert await store.count(Table.TRADES) == 525


async def test_a_market_with_changed_metadata_is_updated(store: PostgresStore, pg_url: str) -> None:
    """Same metadata is a duplicate; a change updates the stored market in place."""
    market = MarketRow(condition_id="0xc", yes_token="y", no_token="n", tick_size=D("0.01"))
    await store.write_batch([market])
    same = await store.write_batch([msgspec.structs.replace(market, updated_at_ms=9)])
    changed = await store.write_batch([msgspec.structs.replace(market, tick_size=D("0.001"))])
    assert (same.total_written, same.total_duplicates) == (0, 1)
    assert (changed.total_written, changed.total_duplicates) == (1, 0)
    assert [tuple(r) for r in await sql(pg_url, "SELECT tick_size FROM markets")] == [("0.001",)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("nul\x00byte", "0x00"), ("lone \ud800 surrogate", "surrogate")],
)
async def test_text_postgresql_cannot_hold_is_refused_row_by_row(
    store: PostgresStore, text: str, reason: str
) -> None:
    """Text SQLite takes but PostgreSQL refuses is reported as a rejected row; the rest of
    the batch is committed."""
    bad = PriceChangeRow(
        market=text, timestamp_ms=5, changes=(LevelChange("a", D(1), D(1), "BUY"),)
    )
    rows = [*trades(2), bad, order("o1")]
    result = await store.write_batch(rows)
    assert [(r.index, reason in r.reason) for r in result.rejected] == [(2, True)]
    assert dict(result.written) == {Table.TRADES: 2, Table.PAPER_ORDERS: 1}
    assert await store.count(Table.PRICE_CHANGES) == 0


async def test_a_terminated_connection_is_recoverable_and_replaced(
    store: PostgresStore, pg_url: str
) -> None:
    """A server-side kill (an administrator, a failover) costs at most one call, failed
    with a recoverable error and nothing of it committed; the store reconnects."""
    await store.write_batch(trades(1))
    await sql(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'polymarket-agents'",
    )
    # The kill reaches the client either before the next write (noticed as a closed
    # connection, replaced at once) or during it (a recoverable error, then replaced).
    try:
        result = await store.write_batch(trades(5, start=1))
    except StoreUnavailableError as exc:
        assert classify_error(exc) is ErrorClass.RECOVERABLE
        assert store.connection is None
        result = await store.write_batch(trades(5, start=1))
    assert result.total_written == 5
    assert store.reconnects == 1
    assert await store.count(Table.TRADES) == 6


async def test_a_lock_timeout_is_transient_and_keeps_the_connection(pg_url: str) -> None:
    """A write that cannot get its lock in time (lock_timeout, 55P03) is retried later on
    the same connection."""
    holder = await asyncpg.connect(pg_url)
    # Server settings ride in the URL's query, as users configure them.
    async with PostgresStore(f"{pg_url}&lock_timeout=100") as store:
        await store.write_batch(trades(1))
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(StoreUnavailableError, match="lock timeout"):
                    await store.write_batch(trades(2, start=1))
                assert store.connection is not None
        finally:
            await holder.close()
        assert (await store.write_batch(trades(2, start=1))).total_written == 2
        assert store.reconnects == 0


async def test_dropped_tables_make_the_store_lost_never_recreated(
    store: PostgresStore, pg_url: str
) -> None:
    """Tables dropped under the store: the write fails with StoreLostError, every later
    call too, and the store does not quietly create fresh tables."""
    await store.write_batch(trades(1))
    await sql(pg_url, "DROP TABLE trades")
    with pytest.raises(StoreLostError, match="lost its tables") as caught:
        await store.write_batch(trades(1, start=1))
    assert classify_error(caught.value) is ErrorClass.RECOVERABLE
    assert store.lost == "lost its tables"
    with pytest.raises(StoreLostError):
        await store.write_trades([order("o1")])
    with pytest.raises(StoreLostError):
        await store.verify()


async def test_a_database_dropped_and_created_again_is_lost(
    postgres_server: PostgresServer,
) -> None:
    """A dropped database is reported lost on reconnect, and so is a new one by its name."""
    name = postgres_server.create_database()
    async with PostgresStore(postgres_server.url(name)) as store:
        await store.write_batch(trades(1))
        await store.verify()
        postgres_server.psql(f'DROP DATABASE "{name}" WITH (FORCE)')
        with pytest.raises(StoreUnavailableError):
            await store.write_batch(trades(1, start=1))
        with pytest.raises(StoreLostError, match="was dropped"):
            await store.write_batch(trades(1, start=1))
    postgres_server.psql(f'CREATE DATABASE "{name}"')
    async with PostgresStore(postgres_server.url(name)) as first:
        await first.write_batch(trades(1))
        postgres_server.psql(f'DROP DATABASE "{name}" WITH (FORCE)')
        postgres_server.psql(f'CREATE DATABASE "{name}"')
        with pytest.raises(StoreUnavailableError):
            await first.verify()
        with pytest.raises(StoreLostError, match="dropped and created again"):
            await first.verify()


async def test_trades_are_written_while_market_data_waits(
    store: PostgresStore, pg_url: str
) -> None:
    """A market-data batch stuck on a lock does not hold up paper trades: they have a
    connection of their own."""
    await store.write_batch(one_of_each())
    holder = await asyncpg.connect(pg_url)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
            stuck = asyncio.ensure_future(store.write_batch(trades(3, start=100)))
            await asyncio.sleep(0.2)
            assert not stuck.done()
            async with asyncio.timeout(5):
                result = await store.write_trades([order("o9")])
            assert dict(result.written) == {Table.PAPER_ORDERS: 1}
            assert not stuck.done()
        async with asyncio.timeout(5):
            assert (await stuck).total_written == 3
    finally:
        await holder.close()
    setting = await sql(
        pg_url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'polymarket-agents'",
    )
    assert setting[0][0] == 2  # market data and trades


async def test_an_unreachable_server_is_recoverable(unused_port: int) -> None:
    """Nothing listening: the open fails with a recoverable error naming the server."""
    store = PostgresStore(f"postgresql://u:pw@127.0.0.1:{unused_port}/db", connect_timeout=5)
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{unused_port}") as caught:
        await store.open()
    assert "pw" not in str(caught.value)
    await store.close()


@pytest.fixture
def unused_port() -> int:
    from .._postgres import free_port

    return free_port()


async def test_a_wrong_password_is_fatal_and_never_shown(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused credentials stop the store for good, and the password appears nowhere."""
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://{postgres_server.user}:wrong-Secret@127.0.0.1:{postgres_server.port}/x"
    store = PostgresStore(url)
    assert "wrong-Secret" not in repr(store)
    with pytest.raises(StoreDefinitionError, match="password authentication failed") as caught:
        await store.open()
    assert classify_error(caught.value) is ErrorClass.FATAL
    assert "wrong-Secret" not in str(caught.value)
    assert "wrong-Secret" not in caplog.text
    await store.close()


async def test_a_missing_database_is_fatal(postgres_server: PostgresServer) -> None:
    """A database that does not exist is a configuration error, not an outage."""
    store = PostgresStore(postgres_server.url("no_such_db"))
    with pytest.raises(StoreDefinitionError, match="no_such_db"):
        await store.open()
    await store.close()


async def test_the_password_comes_from_a_file_or_pgpassword(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a password in the URL, a password file (as a secret is mounted) or
    PGPASSWORD supplies it; the file wins over PGPASSWORD."""
    database = postgres_server.create_database()
    url = postgres_server.url(database, password=False)
    secret = tmp_path / "password"
    secret.write_text(postgres_server.password + "\n")
    monkeypatch.setenv("PGPASSWORD", "not-it")
    async with PostgresStore(url, password_file=secret) as store:
        assert (await store.write_batch(trades(1))).total_written == 1
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    async with PostgresStore(url) as store:
        assert await store.count(Table.TRADES) == 1
    missing = PostgresStore(url, password_file=tmp_path / "absent")
    with pytest.raises(ConfigurationError, match="password file"):
        await missing.open()
    await missing.close()


def test_urls_are_shown_without_passwords() -> None:
    """The password is masked wherever a URL is shown, in the user part or the query."""
    assert (
        redact_url("postgresql://agents:s3cret@db:5432/agents?sslmode=require")
        == "postgresql://agents:***@db:5432/agents?sslmode=require"
    )
    assert redact_url("postgres://db/agents?user=a&password=s3cret") == (
        "postgres://db/agents?user=a&password=***"
    )
    assert redact_url("postgresql://agents@db/agents") == "postgresql://agents@db/agents"
    store = PostgresStore("postgresql://agents:s3cret@db/agents")
    assert "s3cret" not in repr(store)
    assert store.location == "postgresql://agents:***@db/agents"


def test_a_url_or_a_path_selects_the_store(tmp_path: Path) -> None:
    """``postgresql://`` and ``postgres://`` select PostgreSQL; anything else is a file."""
    assert is_postgres_url("postgresql://h/db")
    assert is_postgres_url("POSTGRES://h/db")
    assert not is_postgres_url(str(tmp_path / "postgresql.sqlite"))
    assert isinstance(create_store("postgresql://h/db"), PostgresStore)
    assert isinstance(create_store(tmp_path / "a.sqlite"), SQLiteStore)
    with pytest.raises(ConfigurationError, match="password file"):
        create_store(tmp_path / "a.sqlite", password_file=tmp_path / "pw")
    with pytest.raises(ConfigurationError, match="not a PostgreSQL URL"):
        PostgresStore("mysql://u:s3cret@h/db")
    with pytest.raises(ConfigurationError, match="command_timeout"):
        PostgresStore("postgresql://h/db", command_timeout=0)


async def test_a_store_cannot_be_used_after_close(pg_url: str) -> None:
    """Writes and reads after close raise StoreClosedError; closing twice is fine."""
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.write_batch(one_of_each())
    with pytest.raises(StoreClosedError):
        await store.counts()


async def test_a_cancelled_write_commits_nothing_and_the_store_recovers(
    store: PostgresStore,
) -> None:
    """Cancelling a write mid-flight leaves no partial batch; the next write works."""
    task = asyncio.ensure_future(store.write_batch(trades(5_000)))
    await asyncio.sleep(0.01)
    task.cancel()
    try:
        await task
        committed = 5_000
    except asyncio.CancelledError:
        committed = 0
    assert await store.count(Table.TRADES) == committed
    assert (await store.write_batch(trades(5, start=10_000))).total_written == 5


def test_the_redacted_form_hides_nothing_else() -> None:
    """Redaction changes only the password: host, port, database and options stay."""
    url = "postgresql://u:p@h:1/d?application_name=x"
    assert re.fullmatch(r"postgresql://u:\*\*\*@h:1/d\?application_name=x", redact_url(url))


def test_it_is_a_store() -> None:
    """PostgresStore implements the Store protocol (checked by mypy on this assignment)."""
    store: Store = PostgresStore("postgresql://h/db")
    assert store.lost is None


def intent(order_id: str, notional: str) -> PaperOrderRow:
    """A write-ahead purchase of ``notional`` USDC (price 0.5)."""
    return order(order_id, status="pending", side="BUY", price=D("0.5"), size=D(notional) * 2)


async def test_replicas_share_one_paper_account(pg_url: str) -> None:
    """Two stores (two replicas) on one database spend one account (its row locked FOR
    UPDATE while a trade is recorded): a purchase the account's cash left cannot pay for
    is refused, whichever replica decided the others."""
    one = PostgresStore(pg_url)
    two = PostgresStore(pg_url)
    async with one, two:
        await sql(pg_url, "UPDATE accounts SET starting_cash = '100' WHERE id = 1")
        await one.write_trades([intent("a", "60")])
        with pytest.raises(AccountOverdrawnError, match=r"40\.00 USDC left.*need 60\.00"):
            await two.write_trades([intent("b", "60")])
        # The first purchase fills for 60: the reservation becomes a fill.
        filled = order("a", status="matched", revision=1, price=D("0.5"), size=D(120))
        fill = FillRow(
            order_id="a",
            seq=0,
            token_id="yes",
            side="BUY",
            price=D("0.5"),
            size=D(120),
            timestamp_ms=5,
        )
        await one.write_trades([filled, fill])
        await two.write_trades([intent("b", "40")])  # exactly what is left
        with pytest.raises(AccountOverdrawnError):
            await one.write_trades([intent("c", "0.01")])
        # A replayed record is not charged twice.
        assert (await two.write_trades([intent("b", "40")])).total_duplicates == 1
        assert sorted(o.order_id for o in await one.recent_orders()) == ["a", "b"]


async def test_concurrent_replicas_never_spend_the_same_cash(pg_url: str) -> None:
    """Twenty purchases of 10 decided at once by two replicas with 100 shared: exactly ten
    are recorded."""
    stores = [PostgresStore(pg_url) for _ in range(2)]
    for store in stores:
        await store.open()
    await sql(pg_url, "UPDATE accounts SET starting_cash = '100' WHERE id = 1")
    try:
        results = await asyncio.gather(
            *(stores[n % 2].write_trades([intent(f"o{n}", "10")]) for n in range(20)),
            return_exceptions=True,
        )
    finally:
        for store in stores:
            await store.close()
    refused = [r for r in results if isinstance(r, AccountOverdrawnError)]
    assert len(refused) == 10
    assert all(isinstance(r, AccountOverdrawnError | WriteResult) for r in results)
    pending = await sql(pg_url, "SELECT count(*) FROM paper_orders WHERE status = 'pending'")
    assert pending[0][0] == 10
