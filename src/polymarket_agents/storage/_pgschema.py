"""The PostgreSQL schema as data: the same tables and natural keys as SQLite's, versioned.

The tables, columns and unique keys are those of :data:`~polymarket_agents.storage.MIGRATIONS`
with PostgreSQL's types: ``BIGINT`` for integers (epoch milliseconds overflow ``INTEGER``),
``BOOLEAN`` for flags, identity columns for surrogate ids. Prices and sizes stay ``TEXT``
holding exact decimal text, so one codec serves both databases and a value reads back as
it was written (``NUMERIC`` would too, but at the cost of a text-to-number conversion per
value on the write path, and nothing here computes with them in SQL).

The applied versions live in the ``schema_migrations`` table. Each migration runs in one
transaction that first takes a transaction-level advisory lock, so replicas starting
together against a new database apply every step exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._rows import Table
from ._schema import INSERT_SQL, Migration

__all__ = [
    "ACCOUNT_CASH_SQL",
    "ADVISORY_NAMESPACE",
    "COLUMNS",
    "COPY_TABLES",
    "INSERT_ONE_SQL",
    "MIGRATE_LOCK",
    "PG_MIGRATIONS",
    "UPDATE_ORDER_SQL",
]

ADVISORY_NAMESPACE = 0x504D4147  # "PMAG": the first key of every advisory lock we take
"""The first of the two keys of every advisory lock the package takes, so that its locks
cannot collide with another application's on a shared server."""

MIGRATE_LOCK = -1
"""The second advisory key held while migrating (shard locks use 0 and up)."""

ACCOUNT_CASH_SQL = (
    "SELECT "
    "(SELECT coalesce(sum(CASE WHEN side = 'SELL' THEN 1 ELSE -1 END "
    "* price::numeric * size::numeric - fee::numeric), 0) FROM fills WHERE account_id = $1), "
    "(SELECT coalesce(sum(price::numeric * size::numeric), 0) FROM paper_orders "
    "WHERE status = 'pending' AND side = 'BUY' AND account_id = $1)"
)
"""For account ``$1``: the cash its fills moved (sales less purchases and fees), and the
notional of its purchases decided but not yet carried out (write-ahead ``pending`` orders)."""

_SIDE = "CHECK (side IN ('BUY', 'SELL'))"
# One stored entry as compact JSON (no spaces, as the codec writes it).
_ENTRY_JSON = " || ',' || ".join(
    [
        "'[' || to_json(asset_id)::text",
        "to_json(price)::text",
        "to_json(size)::text",
        "to_json(side)::text",
        "to_json(hash)::text",
        "coalesce(to_json(best_bid)::text, 'null')",
        "coalesce(to_json(best_ask)::text, 'null') || ']'",
    ]
)
_ID = "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

PG_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "market data and paper trading tables",
        (
            f"""CREATE TABLE markets (
                {_ID},
                condition_id TEXT NOT NULL UNIQUE CHECK (condition_id <> ''),
                yes_token TEXT NOT NULL CHECK (yes_token <> ''),
                no_token TEXT NOT NULL CHECK (no_token <> ''),
                question TEXT NOT NULL,
                slug TEXT NOT NULL,
                tick_size TEXT NOT NULL,
                min_size TEXT NOT NULL,
                neg_risk BOOLEAN NOT NULL,
                active BOOLEAN NOT NULL,
                updated_at_ms BIGINT NOT NULL
            )""",
            f"""CREATE TABLE book_snapshots (
                {_ID},
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                market TEXT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                hash TEXT NOT NULL,
                bids TEXT NOT NULL,
                asks TEXT NOT NULL,
                received_at_ms BIGINT NOT NULL,
                UNIQUE (timestamp_ms, asset_id, hash)
            )""",
            f"""CREATE TABLE price_changes (
                market TEXT NOT NULL,
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                timestamp_ms BIGINT NOT NULL,
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                hash TEXT NOT NULL,
                best_bid TEXT,
                best_ask TEXT,
                received_at_ms BIGINT NOT NULL,
                PRIMARY KEY (timestamp_ms, asset_id, hash, side, price, size)
            )""",
            f"""CREATE TABLE trades (
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                market TEXT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                fee_rate_bps TEXT NOT NULL,
                transaction_hash TEXT NOT NULL,
                received_at_ms BIGINT NOT NULL,
                PRIMARY KEY (timestamp_ms, asset_id, transaction_hash, side, price, size)
            )""",
            f"""CREATE TABLE tick_size_changes (
                {_ID},
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                market TEXT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                old_tick_size TEXT NOT NULL,
                new_tick_size TEXT NOT NULL,
                received_at_ms BIGINT NOT NULL,
                UNIQUE (timestamp_ms, asset_id, new_tick_size)
            )""",
            f"""CREATE TABLE paper_orders (
                {_ID},
                order_id TEXT NOT NULL UNIQUE CHECK (order_id <> ''),
                signal_id TEXT UNIQUE,
                market TEXT NOT NULL,
                token_id TEXT NOT NULL CHECK (token_id <> ''),
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                order_type TEXT NOT NULL CHECK (order_type IN ('GTC', 'GTD', 'FOK', 'FAK')),
                status TEXT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                filled_size TEXT NOT NULL,
                updated_at_ms BIGINT NOT NULL,
                revision BIGINT NOT NULL,
                error TEXT NOT NULL
            )""",
            f"""CREATE TABLE fills (
                {_ID},
                order_id TEXT NOT NULL CHECK (order_id <> ''),
                seq BIGINT NOT NULL CHECK (seq >= 0),
                token_id TEXT NOT NULL CHECK (token_id <> ''),
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                market TEXT NOT NULL,
                fee TEXT NOT NULL,
                UNIQUE (order_id, seq)
            )""",
        ),
    ),
    Migration(
        2,
        "named paper accounts, runs, event order, market resolutions",
        (
            """CREATE TABLE accounts (
                id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                name TEXT NOT NULL CHECK (name <> ''),
                opened_at_ms BIGINT NOT NULL,
                closed_at_ms BIGINT,
                starting_cash TEXT NOT NULL,
                settings TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX accounts_open_name ON accounts (name) WHERE closed_at_ms IS NULL",
            "INSERT INTO accounts (id, name, opened_at_ms, closed_at_ms, starting_cash, settings) "
            "VALUES (1, 'default', 0, NULL, '1000', '{}')",
            # The row above took id 1 by hand: the identity continues after it.
            "ALTER TABLE accounts ALTER COLUMN id RESTART WITH 2",
            f"""CREATE TABLE runs (
                {_ID},
                account_id BIGINT NOT NULL,
                started_at_ms BIGINT NOT NULL,
                ended_at_ms BIGINT,
                strategy TEXT NOT NULL,
                settings TEXT NOT NULL,
                counters TEXT NOT NULL
            )""",
            *(
                statement
                for table in ("book_snapshots", "price_changes", "trades", "tick_size_changes")
                for statement in (
                    f"ALTER TABLE {table} ADD COLUMN event_seq BIGINT",
                    f"ALTER TABLE {table} ADD COLUMN books_ahead BIGINT NOT NULL DEFAULT 0",
                )
            ),
            # A price change's entries in the order the event held them.
            "ALTER TABLE price_changes ADD COLUMN entry BIGINT NOT NULL DEFAULT 0",
            """CREATE TABLE market_resolutions (
                market TEXT PRIMARY KEY CHECK (market <> ''),
                winning_asset_id TEXT NOT NULL CHECK (winning_asset_id <> ''),
                timestamp_ms BIGINT NOT NULL,
                received_at_ms BIGINT NOT NULL,
                event_seq BIGINT
            )""",
            "ALTER TABLE paper_orders ADD COLUMN account_id BIGINT NOT NULL DEFAULT 1",
            "ALTER TABLE paper_orders DROP CONSTRAINT paper_orders_signal_id_key",
            "ALTER TABLE paper_orders ADD CONSTRAINT paper_orders_account_signal_key "
            "UNIQUE (account_id, signal_id)",
            "ALTER TABLE fills ADD COLUMN account_id BIGINT NOT NULL DEFAULT 1",
            "ALTER TABLE fills ADD COLUMN kind TEXT NOT NULL DEFAULT 'trade' "
            "CHECK (kind IN ('trade', 'settlement'))",
            "CREATE INDEX fills_account ON fills (account_id, timestamp_ms)",
        ),
    ),
    Migration(
        3,
        "book snapshots keep the tick size and last trade price a book is rebuilt with",
        (
            "ALTER TABLE book_snapshots ADD COLUMN tick_size TEXT",
            "ALTER TABLE book_snapshots ADD COLUMN last_trade_price TEXT",
        ),
    ),
    Migration(
        4,
        "a price change is one row holding its entries",
        (
            """CREATE TABLE price_change_events (
                market TEXT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                changes TEXT NOT NULL CHECK (changes <> '[]'),
                received_at_ms BIGINT NOT NULL,
                event_seq BIGINT,
                books_ahead BIGINT NOT NULL DEFAULT 0
            )""",
            # The event is its own key; a B-tree entry holds at most about 2.7 kB, so the
            # entries are in it by their digest.
            "CREATE UNIQUE INDEX price_change_events_key "
            "ON price_change_events (timestamp_ms, market, md5(changes))",
            # The entries of one event in their order, written as the codec writes them.
            f"""INSERT INTO price_change_events
                (market, timestamp_ms, changes, received_at_ms, event_seq, books_ahead)
            SELECT market, timestamp_ms,
                '[' || string_agg({_ENTRY_JSON}, ','
                    ORDER BY entry, asset_id, hash, side, price, size) || ']',
                received_at_ms, event_seq, min(books_ahead)
            FROM price_changes
            GROUP BY event_seq, received_at_ms, timestamp_ms, market
            ON CONFLICT DO NOTHING""",
            "DROP TABLE price_changes",
            "ALTER TABLE price_change_events RENAME TO price_changes",
            "ALTER INDEX price_change_events_key RENAME TO price_changes_key",
        ),
    ),
    Migration(
        5,
        "price changes are kept in arrival order, unique by timestamp and a digest",
        (
            # PostgreSQL's table is already a heap with its key in an index (on md5 of the
            # entries); it gains SQLite's digest column, the same bytes, so the two
            # databases hold the same rows.
            "ALTER TABLE price_changes ADD COLUMN event_key BYTEA",
            "UPDATE price_changes SET event_key = substring(sha256(convert_to("
            "length(market)::text || ':' || market || changes, 'UTF8')) FROM 1 FOR 16)",
            "ALTER TABLE price_changes ALTER COLUMN event_key SET NOT NULL",
            "ALTER TABLE price_changes ADD CONSTRAINT price_changes_event_key_length "
            "CHECK (length(event_key) = 16)",
        ),
    ),
)
"""Every PostgreSQL migration, in order; versions match SQLite's schema history."""


def _columns(sql: str) -> tuple[str, ...]:
    # The column list of "INSERT INTO table (a, b, c) VALUES ...": the codec's parameter
    # order is defined there once, for both databases.
    match = re.match(r"INSERT INTO \w+ \(([^)]*)\)", sql)
    if match is None:  # pragma: no cover - the statements are ours
        raise AssertionError(f"no column list in {sql!r}")
    return tuple(name.strip() for name in match.group(1).split(","))


COLUMNS: Mapping[Table, tuple[str, ...]] = {table: _columns(INSERT_SQL[table]) for table in Table}
"""The columns each row type's parameters fill, in the codec's order."""

COPY_TABLES = frozenset(
    {
        Table.BOOK_SNAPSHOTS,
        Table.PRICE_CHANGES,
        Table.TRADES,
        Table.TICK_SIZE_CHANGES,
        Table.FILLS,
        Table.MARKET_RESOLUTIONS,
    }
)
"""Tables whose rows are only ever inserted (never updated): these go through ``COPY``."""


def _placeholders(count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1))


_MARKET_UPDATE = [c for c in COLUMNS[Table.MARKETS] if c not in ("condition_id", "updated_at_ms")]

INSERT_ONE_SQL: Mapping[Table, str] = {
    table: (
        f"INSERT INTO {table} ({', '.join(COLUMNS[table])}) "
        f"VALUES ({_placeholders(len(COLUMNS[table]))}) "
        + (
            # As in SQLite: changed metadata updates the row, a replay changes nothing.
            "ON CONFLICT (condition_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in [*_MARKET_UPDATE, "updated_at_ms"])
            + f" WHERE ({', '.join(f'markets.{c}' for c in _MARKET_UPDATE)}) IS DISTINCT FROM "
            f"({', '.join(f'excluded.{c}' for c in _MARKET_UPDATE)})"
            if table is Table.MARKETS
            else "ON CONFLICT DO NOTHING"
        )
    )
    for table in Table
}
"""One row's idempotent ``INSERT`` per table, in ``$n`` parameters of the codec's order."""

UPDATE_ORDER_SQL = (
    "UPDATE paper_orders SET status = $2, filled_size = $3, updated_at_ms = $4, "
    "revision = $5, error = $6 WHERE order_id = $1 AND revision < $5"
)
"""Moves a stored order forward to a later revision: order id, status, filled size,
update time, revision and error.

PostgreSQL allows one conflict target per ``INSERT``; an order row may conflict on its
``order_id`` (a newer revision: update) or on its ``signal_id`` (another order for a
handled signal: ignore), so the insert ignores every conflict and this statement follows
when it inserted nothing."""
