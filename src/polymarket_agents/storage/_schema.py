"""The SQLite schema as data: ordered migrations, and the statements that write each table.

The schema version lives in ``PRAGMA user_version``. Migration *n* takes a database from
version *n - 1* to *n*; each runs in its own transaction together with the version bump, so
a migration is applied completely or not at all, and reopening a current database changes
nothing. Prices and sizes are ``TEXT`` holding exact decimal text; the natural unique keys
make every insert idempotent (``ON CONFLICT ... DO NOTHING``).

The market-data keys start with ``timestamp_ms`` on purpose. Column order does not change
what is unique, but it decides where each insert lands in the key's index: feed timestamps
grow, so new keys append at the right edge of the B-tree instead of landing at one point
per token all over it. Measured on 200,000 price changes over 200 tokens, that made
inserts five times faster (5 instead of 26 microseconds a row). The two high-volume tables,
price changes and trades, are ``WITHOUT ROWID`` tables keyed by that natural key: one
B-tree per insert instead of a table plus an index, another third off the insert time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiosqlite

from polymarket_agents.core.async_utils import ConfigurationError

from ._codec import price_change_key
from ._errors import SchemaVersionError
from ._rows import Table

__all__ = ["INSERT_SQL", "MIGRATIONS", "Migration", "check_migrations", "migrate"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema's history.

    Attributes:
        version: The ``user_version`` the database has after this step.
        description: What the step does, for the log.
        statements: The DDL statements, run in order in one transaction.
    """

    version: int
    description: str
    statements: tuple[str, ...]


_SIDE = "CHECK (side IN ('BUY', 'SELL'))"

KEY_FUNCTION = "price_change_key"
"""The SQL name under which :func:`migrate` gives migrations the codec's
``price_change_key(market, changes)``."""
_ORDER_FIELDS = (
    "order_id, signal_id, market, token_id, side, price, size, order_type, status, "
    "created_at_ms, filled_size, updated_at_ms, revision, error"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "market data and paper trading tables",
        (
            """CREATE TABLE markets (
                id INTEGER PRIMARY KEY,
                condition_id TEXT NOT NULL UNIQUE CHECK (condition_id <> ''),
                yes_token TEXT NOT NULL CHECK (yes_token <> ''),
                no_token TEXT NOT NULL CHECK (no_token <> ''),
                question TEXT NOT NULL,
                slug TEXT NOT NULL,
                tick_size TEXT NOT NULL,
                min_size TEXT NOT NULL,
                neg_risk INTEGER NOT NULL,
                active INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL
            )""",
            """CREATE TABLE book_snapshots (
                id INTEGER PRIMARY KEY,
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                market TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                hash TEXT NOT NULL,
                bids TEXT NOT NULL,
                asks TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                UNIQUE (timestamp_ms, asset_id, hash)
            )""",
            f"""CREATE TABLE price_changes (
                market TEXT NOT NULL,
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                timestamp_ms INTEGER NOT NULL,
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                hash TEXT NOT NULL,
                best_bid TEXT,
                best_ask TEXT,
                received_at_ms INTEGER NOT NULL,
                PRIMARY KEY (timestamp_ms, asset_id, hash, side, price, size)
            ) WITHOUT ROWID""",
            f"""CREATE TABLE trades (
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                market TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                fee_rate_bps TEXT NOT NULL,
                transaction_hash TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                PRIMARY KEY (timestamp_ms, asset_id, transaction_hash, side, price, size)
            ) WITHOUT ROWID""",
            """CREATE TABLE tick_size_changes (
                id INTEGER PRIMARY KEY,
                asset_id TEXT NOT NULL CHECK (asset_id <> ''),
                market TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                old_tick_size TEXT NOT NULL,
                new_tick_size TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                UNIQUE (timestamp_ms, asset_id, new_tick_size)
            )""",
            f"""CREATE TABLE paper_orders (
                id INTEGER PRIMARY KEY,
                order_id TEXT NOT NULL UNIQUE CHECK (order_id <> ''),
                signal_id TEXT UNIQUE,
                market TEXT NOT NULL,
                token_id TEXT NOT NULL CHECK (token_id <> ''),
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                order_type TEXT NOT NULL CHECK (order_type IN ('GTC', 'GTD', 'FOK', 'FAK')),
                status TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                filled_size TEXT NOT NULL,
                updated_at_ms INTEGER NOT NULL,
                revision INTEGER NOT NULL,
                error TEXT NOT NULL
            )""",
            f"""CREATE TABLE fills (
                id INTEGER PRIMARY KEY,
                order_id TEXT NOT NULL CHECK (order_id <> ''),
                seq INTEGER NOT NULL CHECK (seq >= 0),
                token_id TEXT NOT NULL CHECK (token_id <> ''),
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
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
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL CHECK (name <> ''),
                opened_at_ms INTEGER NOT NULL,
                closed_at_ms INTEGER,
                starting_cash TEXT NOT NULL,
                settings TEXT NOT NULL
            )""",
            # One open account per name; a reset closes it and opens the next.
            "CREATE UNIQUE INDEX accounts_open_name ON accounts (name) WHERE closed_at_ms IS NULL",
            # Orders and fills stored before accounts had names belong to this one.
            "INSERT INTO accounts (id, name, opened_at_ms, closed_at_ms, starting_cash, settings) "
            "VALUES (1, 'default', 0, NULL, '1000', '{}')",
            """CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                account_id INTEGER NOT NULL,
                started_at_ms INTEGER NOT NULL,
                ended_at_ms INTEGER,
                strategy TEXT NOT NULL,
                settings TEXT NOT NULL,
                counters TEXT NOT NULL
            )""",
            *(
                statement
                for table in ("book_snapshots", "price_changes", "trades", "tick_size_changes")
                for statement in (
                    f"ALTER TABLE {table} ADD COLUMN event_seq INTEGER",
                    f"ALTER TABLE {table} ADD COLUMN books_ahead INTEGER NOT NULL DEFAULT 0",
                )
            ),
            # A price change's entries in the order the event held them.
            "ALTER TABLE price_changes ADD COLUMN entry INTEGER NOT NULL DEFAULT 0",
            """CREATE TABLE market_resolutions (
                market TEXT PRIMARY KEY CHECK (market <> ''),
                winning_asset_id TEXT NOT NULL CHECK (winning_asset_id <> ''),
                timestamp_ms INTEGER NOT NULL,
                received_at_ms INTEGER NOT NULL,
                event_seq INTEGER
            )""",
            # A signal is unique per account now: SQLite changes a constraint by rebuilding
            # the table.
            f"""CREATE TABLE paper_orders_v2 (
                id INTEGER PRIMARY KEY,
                order_id TEXT NOT NULL UNIQUE CHECK (order_id <> ''),
                signal_id TEXT,
                market TEXT NOT NULL,
                token_id TEXT NOT NULL CHECK (token_id <> ''),
                side TEXT NOT NULL {_SIDE},
                price TEXT NOT NULL,
                size TEXT NOT NULL,
                order_type TEXT NOT NULL CHECK (order_type IN ('GTC', 'GTD', 'FOK', 'FAK')),
                status TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                filled_size TEXT NOT NULL,
                updated_at_ms INTEGER NOT NULL,
                revision INTEGER NOT NULL,
                error TEXT NOT NULL,
                account_id INTEGER NOT NULL DEFAULT 1,
                UNIQUE (account_id, signal_id)
            )""",
            f"INSERT INTO paper_orders_v2 (id, {_ORDER_FIELDS}, account_id) "
            f"SELECT id, {_ORDER_FIELDS}, 1 FROM paper_orders",
            "DROP TABLE paper_orders",
            "ALTER TABLE paper_orders_v2 RENAME TO paper_orders",
            "ALTER TABLE fills ADD COLUMN account_id INTEGER NOT NULL DEFAULT 1",
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
            # The event is its own key: the same event sent again is a duplicate.
            """CREATE TABLE price_change_events (
                market TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                changes TEXT NOT NULL CHECK (changes <> '[]'),
                received_at_ms INTEGER NOT NULL,
                event_seq INTEGER,
                books_ahead INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (timestamp_ms, market, changes)
            ) WITHOUT ROWID""",
            # The entries of one event (one event_seq; before that was recorded, one
            # receive time, timestamp and market) in their order, as the codec writes them.
            """INSERT OR IGNORE INTO price_change_events
                (market, timestamp_ms, changes, received_at_ms, event_seq, books_ahead)
            SELECT market, timestamp_ms, changes, received_at_ms, event_seq, books_ahead
            FROM (
                SELECT market, timestamp_ms, received_at_ms, event_seq, books_ahead,
                    '[' || group_concat(
                        json_array(asset_id, price, size, side, hash, best_bid, best_ask), ','
                    ) OVER (
                        PARTITION BY event_seq, received_at_ms, timestamp_ms, market
                        ORDER BY entry, asset_id, hash, side, price, size
                        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
                    ) || ']' AS changes,
                    row_number() OVER (
                        PARTITION BY event_seq, received_at_ms, timestamp_ms, market
                        ORDER BY entry, asset_id, hash, side, price, size
                    ) AS place
                FROM price_changes
            )
            WHERE place = 1""",
            "DROP TABLE price_changes",
            "ALTER TABLE price_change_events RENAME TO price_changes",
        ),
    ),
    Migration(
        5,
        "price changes are kept in arrival order, unique by timestamp and a digest",
        (
            # A rowid table: rows go where they arrive. The whole entries text as the key
            # (version 4) scattered every insert of a busy feed over the table.
            """CREATE TABLE price_change_rows (
                market TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                changes TEXT NOT NULL CHECK (changes <> '[]'),
                received_at_ms INTEGER NOT NULL,
                event_seq INTEGER,
                books_ahead INTEGER NOT NULL DEFAULT 0,
                event_key BLOB NOT NULL CHECK (length(event_key) = 16)
            )""",
            f"""INSERT INTO price_change_rows
                (market, timestamp_ms, changes, received_at_ms, event_seq, books_ahead,
                event_key)
            SELECT market, timestamp_ms, changes, received_at_ms, event_seq, books_ahead,
                {KEY_FUNCTION}(market, changes)
            FROM price_changes ORDER BY received_at_ms""",
            "DROP TABLE price_changes",
            "ALTER TABLE price_change_rows RENAME TO price_changes",
            "CREATE UNIQUE INDEX price_changes_key ON price_changes (timestamp_ms, event_key)",
        ),
    ),
)
"""Every migration, in order; the last one's version is the current schema version."""

_MARKET_FIELDS = "yes_token, no_token, question, slug, tick_size, min_size, neg_risk, active"

INSERT_SQL: Mapping[Table, str] = {
    # A market's metadata may change (a tick size, a closed market): update it then, but
    # count a replay of the same metadata as a duplicate by changing nothing.
    Table.MARKETS: (
        f"INSERT INTO markets (condition_id, {_MARKET_FIELDS}, updated_at_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (condition_id) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in _MARKET_FIELDS.split(", "))
        + ", updated_at_ms = excluded.updated_at_ms "
        f"WHERE ({', '.join(f'markets.{n}' for n in _MARKET_FIELDS.split(', '))}) IS NOT "
        f"({', '.join(f'excluded.{n}' for n in _MARKET_FIELDS.split(', '))})"
    ),
    Table.BOOK_SNAPSHOTS: (
        "INSERT INTO book_snapshots "
        "(asset_id, market, timestamp_ms, hash, bids, asks, received_at_ms, event_seq, "
        "books_ahead, tick_size, last_trade_price) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    Table.PRICE_CHANGES: (
        "INSERT INTO price_changes (market, timestamp_ms, changes, received_at_ms, event_seq, "
        "books_ahead, event_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    Table.TRADES: (
        "INSERT INTO trades (asset_id, market, timestamp_ms, side, price, size, fee_rate_bps, "
        "transaction_hash, received_at_ms, event_seq, books_ahead) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    Table.TICK_SIZE_CHANGES: (
        "INSERT INTO tick_size_changes "
        "(asset_id, market, timestamp_ms, old_tick_size, new_tick_size, received_at_ms, "
        "event_seq, books_ahead) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    # An order's state moves forward by revision; a conflict on signal_id (another order
    # for a signal that already has one) falls through to the final DO NOTHING.
    Table.PAPER_ORDERS: (
        f"INSERT INTO paper_orders ({_ORDER_FIELDS}, account_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, "
        "filled_size = excluded.filled_size, updated_at_ms = excluded.updated_at_ms, "
        "revision = excluded.revision, error = excluded.error "
        "WHERE excluded.revision > paper_orders.revision "
        "ON CONFLICT DO NOTHING"
    ),
    Table.FILLS: (
        "INSERT INTO fills "
        "(order_id, seq, token_id, side, price, size, timestamp_ms, market, fee, account_id, "
        "kind) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    Table.MARKET_RESOLUTIONS: (
        "INSERT INTO market_resolutions "
        "(market, winning_asset_id, timestamp_ms, received_at_ms, event_seq) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
}
"""The idempotent ``INSERT`` for each table, taking the parameters the codec makes."""


def check_migrations(migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    """Validate a migration list: versions must run 1, 2, 3 ... without gaps.

    Args:
        migrations: The list to check.

    Returns:
        The migrations as a tuple.

    Raises:
        ConfigurationError: If the versions are not consecutive from 1, or a migration
            has no statements.
    """
    result = tuple(migrations)
    for expected, migration in enumerate(result, start=1):
        if migration.version != expected:
            raise ConfigurationError(
                f"migration versions must run 1, 2, 3 ... without gaps; "
                f"found {migration.version!r} where {expected} was expected"
            )
        if not migration.statements:
            raise ConfigurationError(f"migration {migration.version} has no statements")
    return result


async def _user_version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0]) if rows else 0


async def migrate(
    conn: aiosqlite.Connection, migrations: Sequence[Migration], path: str
) -> tuple[int, list[Migration]]:
    """Bring the database behind ``conn`` up to the last of ``migrations``.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each pending migration
    runs in a ``BEGIN IMMEDIATE`` transaction that re-reads the version first, so two
    processes opening the same new file at once apply each step once.

    Args:
        conn: An open connection.
        migrations: Checked migrations (see :func:`check_migrations`).
        path: The database path, for error messages.

    Returns:
        The schema version now, and the migrations applied by this call.

    Raises:
        SchemaVersionError: If the database is newer than the last migration.
        sqlite3.Error: If a statement fails; that migration is rolled back.
    """
    latest = migrations[-1].version if migrations else 0
    version = await _user_version(conn)
    if version > latest:
        raise SchemaVersionError(path, version, latest)
    applied: list[Migration] = []
    if version < latest:
        # SQLite has no digest function of its own; the codec's runs in Python.
        await conn.create_function(KEY_FUNCTION, 2, price_change_key, deterministic=True)
    for migration in migrations:
        if migration.version <= version:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            version = await _user_version(conn)
            if migration.version > version:
                for statement in migration.statements:
                    await conn.execute(statement)
                # PRAGMA takes no parameters; the version is an int from our own list.
                await conn.execute(f"PRAGMA user_version = {int(migration.version)}")
                version = migration.version
                applied.append(migration)
            await conn.execute("COMMIT")
        except BaseException:
            await conn.rollback()
            raise
    return version, applied
