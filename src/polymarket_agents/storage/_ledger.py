"""Accounts, runs and the history a report or a backtest reads: records and their SQL.

One SQL text per query serves SQLite and PostgreSQL: it is written with ``?`` placeholders
and :func:`numbered` turns them into ``$1, $2 ...`` for PostgreSQL. Every statement here is
small and rare (once per run, once per report), so none of it is on a hot path except
:data:`EVENTS_SQL`, which a backtest streams.
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from ._codec import fill_from_record, order_from_record, positions_from_fills
from ._pgschema import COLUMNS
from ._rows import (
    OPEN_STATUSES,
    FillRow,
    MarketResolutionRow,
    MarketRow,
    PaperOrderRow,
    Position,
    Table,
)

__all__ = [
    "ACCOUNTS_SQL",
    "BEGIN_RUN_SQL",
    "END_RUN_SQL",
    "FILLS_SQL",
    "MARKETS_SQL",
    "OPEN_ACCOUNT_SQL",
    "ORDERS_SQL",
    "RESOLUTIONS_SQL",
    "RUNS_SQL",
    "AccountRecord",
    "EventKind",
    "EventRecord",
    "EventWindow",
    "Ledger",
    "RunRecord",
    "account_from_record",
    "event_query",
    "market_from_record",
    "numbered",
    "resolution_from_record",
    "run_from_record",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRecord:
    """A paper account as stored.

    Attributes:
        id: Its number; orders and fills carry it.
        name: Its name (``--account``); one open account per name.
        opened_at_ms: When it was opened (0 for the account of files older than names).
        closed_at_ms: When a reset closed it, or None while it is the open one.
        starting_cash: USDC it started with.
        settings: Its risk settings as stored (order size, limits ...), by name.
    """

    id: int
    name: str
    opened_at_ms: int
    closed_at_ms: int | None
    starting_cash: Decimal
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run of the service (or nothing yet, while it runs).

    Attributes:
        id: Its number; the high bits of its events' ``event_seq``.
        account_id: The account it traded.
        started_at_ms: When it started.
        ended_at_ms: When it ended, or None (running, or it did not stop cleanly).
        strategy: The strategy it ran (``package.module:Class``).
        settings: The settings it ran with, by name.
        counters: What it counted by the end: events, signals seen, traded, refused by
            reason ...
    """

    id: int
    account_id: int
    started_at_ms: int
    ended_at_ms: int | None
    strategy: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    counters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored market event, as a backtest streams them.

    Attributes:
        event_seq: The event's order (None for rows from before it was recorded).
        books_ahead: Later events of its market already in the books when the strategy saw
            this one.
        market: The condition id.
        received_at_ms: When it was received.
        wire: The event as the market channel sent it: one JSON object, rebuilt by the
            database from the stored row.
    """

    event_seq: int | None
    books_ahead: int
    market: str
    received_at_ms: int
    wire: str


_W = TypeVar("_W")

_PLACEHOLDER = re.compile(r"\?")


def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders as PostgreSQL's ``$1, $2 ...``."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def dumps(value: Mapping[str, Any]) -> str:
    """Settings or counters as the compact JSON text stored."""
    return _json(dict(value))


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_ACCOUNT_COLUMNS = "id, name, opened_at_ms, closed_at_ms, starting_cash, settings"

ACCOUNTS_SQL = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY name, id"
"""Every account, open and closed, by name and age."""

OPEN_ACCOUNT_SQL = (
    "INSERT INTO accounts (name, opened_at_ms, closed_at_ms, starting_cash, settings) "
    f"VALUES (?, ?, NULL, ?, ?) RETURNING {_ACCOUNT_COLUMNS}"
)
"""Open a new account: name, opened at, starting cash, settings (JSON)."""

_RUN_COLUMNS = "id, account_id, started_at_ms, ended_at_ms, strategy, settings, counters"

BEGIN_RUN_SQL = (
    "INSERT INTO runs (account_id, started_at_ms, ended_at_ms, strategy, settings, counters) "
    "VALUES (?, ?, NULL, ?, ?, '{}') RETURNING id"
)
"""Record a run's start: account id, started at, strategy, settings (JSON)."""

END_RUN_SQL = "UPDATE runs SET ended_at_ms = ?, counters = ? WHERE id = ?"
"""Record a run's counters (and its end, or None while it runs): ended at, counters, id."""

RUNS_SQL = f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id"
"""Every run, oldest first."""

_ORDER_COLUMNS = (
    "order_id, signal_id, market, token_id, side, price, size, order_type, status, "
    "created_at_ms, filled_size, updated_at_ms, revision, error, account_id"
)

ORDERS_SQL = f"SELECT {_ORDER_COLUMNS} FROM paper_orders WHERE account_id = ? ORDER BY id"
"""Every order of an account (account id), oldest first."""

FILLS_SQL = (
    "SELECT order_id, seq, token_id, side, price, size, timestamp_ms, market, fee, "
    "account_id, kind FROM fills WHERE account_id = ? ORDER BY timestamp_ms, id"
)
"""Every fill of an account (account id), in time order."""

MARKETS_SQL = (
    "SELECT condition_id, yes_token, no_token, question, slug, tick_size, min_size, "
    "neg_risk, active, updated_at_ms FROM markets ORDER BY id"
)
"""Every market stored."""

RESOLUTIONS_SQL = (
    "SELECT market, winning_asset_id, timestamp_ms, received_at_ms, event_seq "
    "FROM market_resolutions ORDER BY timestamp_ms"
)
"""Every market resolution stored."""


class EventKind(enum.IntEnum):
    """Which table a stored event comes from: the ``kind`` of an :class:`EventWindow` row
    (and, among events received and timestamped alike before event order was recorded,
    the order they replay in)."""

    PRICE_CHANGE = 0
    """``price_changes``."""
    BOOK = 1
    """``book_snapshots``."""
    TRADE = 2
    """``trades``."""
    TICK_SIZE_CHANGE = 3
    """``tick_size_changes``."""
    RESOLUTION = 4
    """``market_resolutions``."""


# The market-data tables read back one window of event timestamps at a time: each table
# is range-scanned on its key (which starts with timestamp_ms), and the database sorts the
# window in event order (in its own thread). Rows from before event order was recorded (a
# NULL event_seq) come first, by receive time. Each part yields (event_seq, books_ahead,
# market, received_at_ms, timestamp_ms, kind, ...) for timestamp_ms in [?, ?) and,
# optionally, some markets ({markets}).
_ORDER = "ORDER BY 1 NULLS FIRST, 4, 5, 6"
_WINDOW = "WHERE timestamp_ms >= ? AND timestamp_ms < ?{markets}"
_HEAD = "event_seq, books_ahead, market, received_at_ms, timestamp_ms"

# As plain columns, for a reader that makes the events itself (a backtest): what
# EventWindow describes.
_ROW_PARTS = (
    f"SELECT {_HEAD}, {EventKind.PRICE_CHANGE:d} AS kind, changes, NULL, NULL, NULL, NULL, "
    f"NULL FROM price_changes {_WINDOW}",
    f"SELECT {_HEAD}, {EventKind.BOOK:d}, asset_id, bids, asks, hash, tick_size, "
    f"last_trade_price FROM book_snapshots {_WINDOW}",
    f"SELECT {_HEAD}, {EventKind.TRADE:d}, asset_id, price, size, side, fee_rate_bps, "
    f"transaction_hash FROM trades {_WINDOW}",
    f"SELECT {_HEAD}, {EventKind.TICK_SIZE_CHANGE:d}, asset_id, old_tick_size, "
    f"new_tick_size, NULL, NULL, NULL FROM tick_size_changes {_WINDOW}",
    "SELECT event_seq, 0, market, received_at_ms, timestamp_ms, "
    f"{EventKind.RESOLUTION:d}, winning_asset_id, NULL, NULL, NULL, NULL, NULL "
    f"FROM market_resolutions {_WINDOW}",
)

# As the market channel's JSON, built by the database. SQLite's JSON functions and
# PostgreSQL's differ in name, so each database has its text.
_SQLITE_WIRE = (
    f"""SELECT {_HEAD}, {EventKind.PRICE_CHANGE:d} AS kind,
        json_object('event_type', 'price_change', 'market', market,
            'timestamp', CAST(timestamp_ms AS TEXT),
            'price_changes', (SELECT json_group_array(json_object('asset_id', value->>0,
                'price', value->>1, 'size', value->>2, 'side', value->>3, 'hash', value->>4,
                'best_bid', value->>5, 'best_ask', value->>6)) FROM json_each(changes)))
        FROM price_changes {_WINDOW}""",
    f"""SELECT {_HEAD}, {EventKind.BOOK:d},
        json_object('event_type', 'book', 'asset_id', asset_id, 'market', market,
            'timestamp', CAST(timestamp_ms AS TEXT), 'hash', hash,
            'bids', (SELECT json_group_array(json_object('price', value->>0, 'size', value->>1))
                     FROM json_each(bids)),
            'asks', (SELECT json_group_array(json_object('price', value->>0, 'size', value->>1))
                     FROM json_each(asks)),
            'tick_size', tick_size, 'last_trade_price', coalesce(last_trade_price, ''))
        FROM book_snapshots {_WINDOW}""",
    f"""SELECT {_HEAD}, {EventKind.TRADE:d},
        json_object('event_type', 'last_trade_price', 'asset_id', asset_id, 'market', market,
            'timestamp', CAST(timestamp_ms AS TEXT), 'side', side, 'price', price,
            'size', size, 'fee_rate_bps', fee_rate_bps, 'transaction_hash', transaction_hash)
        FROM trades {_WINDOW}""",
    f"""SELECT {_HEAD}, {EventKind.TICK_SIZE_CHANGE:d},
        json_object('event_type', 'tick_size_change', 'asset_id', asset_id,
            'market', market, 'timestamp', CAST(timestamp_ms AS TEXT),
            'old_tick_size', old_tick_size, 'new_tick_size', new_tick_size)
        FROM tick_size_changes {_WINDOW}""",
    f"""SELECT event_seq, 0, market, received_at_ms, timestamp_ms, {EventKind.RESOLUTION:d},
        json_object('event_type', 'market_resolved', 'market', market,
            'timestamp', CAST(timestamp_ms AS TEXT), 'winning_asset_id', winning_asset_id,
            'winning_outcome', '')
        FROM market_resolutions {_WINDOW}""",
)

_LEVELS_PG = (
    "coalesce((SELECT json_agg(json_build_object('price', l->>0, 'size', l->>1)) "
    "FROM json_array_elements({0}::json) AS l), '[]'::json)"
)

_POSTGRES_WIRE = (
    f"""SELECT {_HEAD}, {EventKind.PRICE_CHANGE:d} AS kind,
        json_build_object('event_type', 'price_change', 'market', market,
            'timestamp', CAST(timestamp_ms AS TEXT),
            'price_changes', (SELECT json_agg(json_build_object('asset_id', e->>0,
                'price', e->>1, 'size', e->>2, 'side', e->>3, 'hash', e->>4,
                'best_bid', e->>5, 'best_ask', e->>6) ORDER BY n)
                FROM json_array_elements(changes::json) WITH ORDINALITY AS c(e, n)))::text
        FROM price_changes {_WINDOW}""",
    f"""SELECT {_HEAD}, {EventKind.BOOK:d},
        json_build_object('event_type', 'book', 'asset_id', asset_id,
            'market', market, 'timestamp', CAST(timestamp_ms AS TEXT), 'hash', hash,
            'bids', {_LEVELS_PG.format("bids")}, 'asks', {_LEVELS_PG.format("asks")},
            'tick_size', tick_size, 'last_trade_price', coalesce(last_trade_price, ''))::text
        FROM book_snapshots {_WINDOW}""",
    f"""SELECT {_HEAD}, {EventKind.TRADE:d},
        json_build_object('event_type', 'last_trade_price', 'asset_id', asset_id,
            'market', market, 'timestamp', CAST(timestamp_ms AS TEXT), 'side', side,
            'price', price, 'size', size, 'fee_rate_bps', fee_rate_bps,
            'transaction_hash', transaction_hash)::text
        FROM trades {_WINDOW}""",
    f"""SELECT {_HEAD}, {EventKind.TICK_SIZE_CHANGE:d},
        json_build_object('event_type', 'tick_size_change', 'asset_id', asset_id,
            'market', market, 'timestamp', CAST(timestamp_ms AS TEXT),
            'old_tick_size', old_tick_size, 'new_tick_size', new_tick_size)::text
        FROM tick_size_changes {_WINDOW}""",
    f"""SELECT event_seq, 0, market, received_at_ms, timestamp_ms, {EventKind.RESOLUTION:d},
        json_build_object('event_type', 'market_resolved', 'market', market,
            'timestamp', CAST(timestamp_ms AS TEXT), 'winning_asset_id', winning_asset_id,
            'winning_outcome', '')::text
        FROM market_resolutions {_WINDOW}""",
)

_TABLES = ("price_changes", "book_snapshots", "trades", "tick_size_changes", "market_resolutions")

# One aggregate per SELECT: SQLite reads a min() or max() alone off the index's end, but
# both in one SELECT scan the whole index (50 ms for 160,000 price changes).
_BOUNDS = " UNION ALL ".join(
    f"SELECT (SELECT min(timestamp_ms) FROM {table}), (SELECT max(timestamp_ms) FROM {table})"
    for table in _TABLES
)


def event_query(markets: Sequence[str], *, wire: bool, postgres: bool = False) -> str:
    """The query of one window of stored events, in replay order: each table's part takes
    two ``?`` (from, inclusive, and to, exclusive) and one ``?`` per market of ``markets``
    (every market when empty); ``wire`` makes the last column each event's JSON.

    Returns:
        The SQL, with ``?`` placeholders.
    """
    clause = f" AND market IN ({', '.join('?' for _ in markets)})" if markets else ""
    parts = (_POSTGRES_WIRE if postgres else _SQLITE_WIRE) if wire else _ROW_PARTS
    return " UNION ALL ".join(part.format(markets=clause) for part in parts) + f" {_ORDER}"


@dataclass(frozen=True, slots=True)
class EventWindow:
    """One window of stored market events as plain rows, in the order the service took
    them: what a backtest turns back into events.

    Attributes:
        rows: One row per event, in replay order (by ``event_seq``; rows from before it
            was recorded first, by receive time): ``(event_seq, books_ahead, market,
            received_at_ms, timestamp_ms, kind, a, b, c, d, e, f)``, numbers as the exact
            decimal text stored, the rest by :class:`EventKind`: a price change
            ``changes`` (JSON ``[[asset_id, price, size, side, hash, best_bid, best_ask],
            ...]``) and NULLs; a book ``asset_id, bids, asks, hash, tick_size,
            last_trade_price`` (``bids``/``asks`` JSON ``[[price, size], ...]``); a trade
            ``asset_id, price, size, side, fee_rate_bps, transaction_hash``; a tick size
            change ``asset_id, old_tick_size, new_tick_size`` and NULLs; a resolution
            ``winning_asset_id`` and NULLs.
    """

    rows: list[Sequence[Any]]


def account_from_record(record: Sequence[Any]) -> AccountRecord:
    """An :class:`AccountRecord` from an ``accounts`` record."""
    return AccountRecord(
        id=int(record[0]),
        name=record[1],
        opened_at_ms=int(record[2]),
        closed_at_ms=None if record[3] is None else int(record[3]),
        starting_cash=Decimal(record[4]),
        settings=_loads(record[5]),
    )


def run_from_record(record: Sequence[Any]) -> RunRecord:
    """A :class:`RunRecord` from a ``runs`` record."""
    return RunRecord(
        id=int(record[0]),
        account_id=int(record[1]),
        started_at_ms=int(record[2]),
        ended_at_ms=None if record[3] is None else int(record[3]),
        strategy=record[4],
        settings=_loads(record[5]),
        counters=_loads(record[6]),
    )


def market_from_record(record: Sequence[Any]) -> MarketRow:
    """A :class:`MarketRow` from a ``markets`` record."""
    return MarketRow(
        condition_id=record[0],
        yes_token=record[1],
        no_token=record[2],
        question=record[3],
        slug=record[4],
        tick_size=Decimal(record[5]),
        min_size=Decimal(record[6]),
        neg_risk=bool(record[7]),
        active=bool(record[8]),
        updated_at_ms=int(record[9]),
    )


def resolution_from_record(record: Sequence[Any]) -> MarketResolutionRow:
    """A :class:`MarketResolutionRow` from a ``market_resolutions`` record."""
    return MarketResolutionRow(
        market=record[0],
        winning_asset_id=record[1],
        timestamp_ms=int(record[2]),
        received_at_ms=int(record[3]),
        event_seq=None if record[4] is None else int(record[4]),
    )


def orders_from_records(records: Sequence[Sequence[Any]]) -> list[PaperOrderRow]:
    """Orders from ``paper_orders`` records."""
    return [order_from_record(tuple(record)) for record in records]


def fills_from_records(records: Sequence[Sequence[Any]]) -> list[FillRow]:
    """Fills from ``fills`` records."""
    return [fill_from_record(tuple(record)) for record in records]


# The codec's column order, which the record readers expect.
_ORDER_COLUMNS = ", ".join(COLUMNS[Table.PAPER_ORDERS])
_FILL_COLUMNS = ", ".join(COLUMNS[Table.FILLS])


class Ledger:
    """Accounts, runs and history on top of three primitives each store provides.

    :class:`~polymarket_agents.storage.SQLiteStore` and
    :class:`~polymarket_agents.storage.PostgresStore` inherit it; each implements
    :meth:`_query`, :meth:`_transaction` and :meth:`_stream` on its own connection, and
    :meth:`_sql` to adapt placeholders.
    """

    __slots__ = ()

    # -- what each store provides ---------------------------------------------------------

    _postgres = False
    """Whether the store's SQL is PostgreSQL's (for the few statements that differ)."""

    def _sql(self, sql: str) -> str:
        """``sql`` in the database's placeholder style."""
        return sql

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[Sequence[Any]]:
        """Run one statement (committed at once) and return its records."""
        raise NotImplementedError

    async def _transaction(
        self, steps: Sequence[tuple[str, Sequence[object]]]
    ) -> list[list[Sequence[Any]]]:
        """Run statements in one transaction; the records of each."""
        raise NotImplementedError

    def _stream(
        self, sql: str, params: Sequence[object], chunk: int
    ) -> AsyncIterator[list[Sequence[Any]]]:
        """The records of a query, ``chunk`` at a time."""
        raise NotImplementedError

    async def _event_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        """The records of one window of :func:`event_query` (``wire=False``); a store may
        read them in a cheaper way than :meth:`_query`, with the same values."""
        return await self._query(sql, params)

    # -- the reads of the Store interface, the same on every database ---------------------

    async def count(self, table: Table | str) -> int:
        """The number of rows in ``table``.

        Args:
            table: A :class:`~polymarket_agents.storage.Table` or its name.

        Returns:
            The row count.

        Raises:
            ValueError: If ``table`` is not a table of the store.
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        name = Table(table)  # the ValueError for an unknown name also guards the SQL text
        records = await self._query(f"SELECT count(*) FROM {name}")
        return int(records[0][0])

    async def counts(self) -> dict[Table, int]:
        """The number of rows in every table, in :class:`Table` order.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in Table)
        return {Table(str(name)): int(n) for name, n in await self._query(sql)}

    async def recent_orders(self, limit: int = 20) -> list[PaperOrderRow]:
        """The latest ``limit`` paper orders by creation time, newest first.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        records = await self._query(
            self._sql(
                f"SELECT {_ORDER_COLUMNS} FROM paper_orders "
                "ORDER BY created_at_ms DESC, id DESC LIMIT ?"
            ),
            (limit,),
        )
        return [order_from_record(record) for record in records]

    async def open_orders(self) -> list[PaperOrderRow]:
        """The orders not in a final state (``live``, ``pending``), oldest first.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        statuses = sorted(OPEN_STATUSES)
        records = await self._query(
            self._sql(
                f"SELECT {_ORDER_COLUMNS} FROM paper_orders "
                f"WHERE status IN ({', '.join('?' for _ in statuses)}) ORDER BY id"
            ),
            statuses,
        )
        return [order_from_record(record) for record in records]

    async def recent_fills(self, limit: int = 20) -> list[FillRow]:
        """The latest ``limit`` fills by fill time, newest first.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        records = await self._query(
            self._sql(
                f"SELECT {_FILL_COLUMNS} FROM fills ORDER BY timestamp_ms DESC, id DESC LIMIT ?"
            ),
            (limit,),
        )
        return [fill_from_record(record) for record in records]

    async def positions(self) -> list[Position]:
        """The net position per token over all stored fills, sorted by token id.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        records = await self._query(f"SELECT {_FILL_COLUMNS} FROM fills")
        return positions_from_fills([fill_from_record(record) for record in records])

    # -- accounts -------------------------------------------------------------------------

    async def accounts(self) -> list[AccountRecord]:
        """Every paper account, open and closed, by name and age.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        return [account_from_record(r) for r in await self._query(self._sql(ACCOUNTS_SQL))]

    async def open_account(
        self,
        name: str,
        *,
        starting_cash: Decimal,
        settings: Mapping[str, Any],
        now_ms: int,
    ) -> AccountRecord:
        """The open account called ``name``, opened now with ``starting_cash`` if none is.

        An account that exists keeps its starting cash; ``settings`` replace its stored
        settings (they are the run's).

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        text = dumps(settings)
        insert = (
            "INSERT INTO accounts (name, opened_at_ms, closed_at_ms, starting_cash, settings) "
            "VALUES (?, ?, NULL, ?, ?) ON CONFLICT (name) WHERE closed_at_ms IS NULL DO NOTHING"
        )
        select = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = ? AND closed_at_ms IS NULL"
        results = await self._transaction(
            [
                (self._sql(insert), (name, now_ms, str(starting_cash), text)),
                (
                    self._sql(
                        "UPDATE accounts SET settings = ? WHERE name = ? AND closed_at_ms IS NULL"
                    ),
                    (text, name),
                ),
                (self._sql(select), (name,)),
            ]
        )
        return account_from_record(results[-1][0])

    async def reset_account(
        self,
        name: str,
        *,
        starting_cash: Decimal,
        settings: Mapping[str, Any],
        now_ms: int,
    ) -> tuple[AccountRecord | None, AccountRecord]:
        """Close the open account called ``name`` (its history stays) and open a new one.

        Returns:
            The account closed (None if there was none) and the one opened.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        select = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = ? AND closed_at_ms IS NULL"
        results = await self._transaction(
            [
                (self._sql(select), (name,)),
                (
                    self._sql(
                        "UPDATE accounts SET closed_at_ms = ? "
                        "WHERE name = ? AND closed_at_ms IS NULL"
                    ),
                    (now_ms, name),
                ),
                (self._sql(OPEN_ACCOUNT_SQL), (name, now_ms, str(starting_cash), dumps(settings))),
            ]
        )
        closed = account_from_record(results[0][0]) if results[0] else None
        if closed is not None:
            closed = AccountRecord(
                id=closed.id,
                name=closed.name,
                opened_at_ms=closed.opened_at_ms,
                closed_at_ms=now_ms,
                starting_cash=closed.starting_cash,
                settings=closed.settings,
            )
        return closed, account_from_record(results[-1][0])

    # -- runs -----------------------------------------------------------------------------

    async def begin_run(
        self, *, account_id: int, strategy: str, settings: Mapping[str, Any], started_at_ms: int
    ) -> int:
        """Record that a run starts; its id numbers its events.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        records = await self._query(
            self._sql(BEGIN_RUN_SQL), (account_id, started_at_ms, strategy, dumps(settings))
        )
        return int(records[0][0])

    async def record_run(
        self, run_id: int, *, counters: Mapping[str, Any], ended_at_ms: int | None = None
    ) -> None:
        """Store a run's counters so far, and its end once it has ended.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        await self._query(self._sql(END_RUN_SQL), (ended_at_ms, dumps(counters), run_id))

    async def runs(self) -> list[RunRecord]:
        """Every run, oldest first.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        return [run_from_record(r) for r in await self._query(self._sql(RUNS_SQL))]

    # -- history --------------------------------------------------------------------------

    async def orders(self, account_id: int) -> list[PaperOrderRow]:
        """Every order of an account, oldest first.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        return orders_from_records(await self._query(self._sql(ORDERS_SQL), (account_id,)))

    async def fills(self, account_id: int) -> list[FillRow]:
        """Every fill (and settlement) of an account, in time order.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        return fills_from_records(await self._query(self._sql(FILLS_SQL), (account_id,)))

    async def markets(self) -> list[MarketRow]:
        """Every market stored, with its slug and question.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        return [market_from_record(r) for r in await self._query(self._sql(MARKETS_SQL))]

    async def resolutions(self) -> list[MarketResolutionRow]:
        """Every market resolution stored.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        return [resolution_from_record(r) for r in await self._query(self._sql(RESOLUTIONS_SQL))]

    async def last_prices(self, asset_ids: Sequence[str]) -> dict[str, Decimal]:
        """The price of the latest stored market trade of each token that has one.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        sql = self._sql(
            "SELECT price FROM trades WHERE asset_id = ? ORDER BY timestamp_ms DESC LIMIT 1"
        )
        prices: dict[str, Decimal] = {}
        for asset_id in dict.fromkeys(asset_ids):
            records = await self._query(sql, (asset_id,))
            if records:
                prices[asset_id] = Decimal(records[0][0])
        return prices

    async def event_windows(
        self,
        *,
        since_ms: int = 0,
        until_ms: int = 2**62,
        markets: Sequence[str] = (),
        window_ms: int = 10_000,
    ) -> AsyncIterator[EventWindow]:
        """Stored market events between two times as plain rows, in the order the service
        took them, one window of event timestamps at a time (see :class:`EventWindow`).

        The same events as :meth:`events`, without building their wire JSON: for a reader
        that makes events from the stored values itself. Windows are read as
        :meth:`events` reads them (the next while the caller works on this one), with the
        same caveat about events taken far out of timestamp order.

        Args:
            since_ms: Events timestamped at or after this (epoch milliseconds, the feed's).
            until_ms: Events timestamped at or before this.
            markets: Condition ids to keep; every market when empty.
            window_ms: Width of a window of timestamps read at once.

        Yields:
            One :class:`EventWindow` per window that holds events.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        sql = self._sql(event_query(markets, wire=False))

        async def read(start: int, end: int) -> EventWindow | None:
            rows = await self._event_rows(sql, (start, end, *markets) * len(_TABLES))
            return EventWindow(rows) if rows else None

        async for window in self._windows(read, since_ms, until_ms, window_ms):
            yield window

    async def _windows(
        self,
        read: Callable[[int, int], Awaitable[_W | None]],
        since_ms: int,
        until_ms: int,
        window_ms: int,
    ) -> AsyncIterator[_W]:
        """``read(start, end)`` of each window of event timestamps between two times that
        holds something; the next window is read while the caller works on this one (the
        database works in its own thread, so reading and the caller's work overlap)."""
        bounds = [(lo, hi) for lo, hi in await self._query(self._sql(_BOUNDS)) if lo is not None]
        if not bounds:
            return
        first = max(since_ms, min(int(lo) for lo, _ in bounds))
        last = min(until_ms, max(int(hi) for _, hi in bounds))
        start = first
        reading: asyncio.Future[_W | None] | None = asyncio.ensure_future(
            read(start, min(start + window_ms, last + 1))
        )
        try:
            while reading is not None:
                found = await reading
                start = min(start + window_ms, last + 1)
                reading = (
                    asyncio.ensure_future(read(start, min(start + window_ms, last + 1)))
                    if start <= last
                    else None
                )
                if reading is not None:
                    # Let the read start (hand its query to the database) before the
                    # caller works: a caller that never suspends would otherwise leave it
                    # unstarted until it asks for the next window.
                    await asyncio.sleep(0)
                if found is not None:
                    yield found
        finally:
            if reading is not None:
                # The window read ahead is nobody's now: stop it, and take its outcome
                # (a reader that left early and closed the store makes it fail) so that
                # it is not reported as an exception never retrieved.
                reading.cancel()
                await asyncio.wait([reading])
                if not reading.cancelled():
                    reading.exception()

    async def events(
        self,
        *,
        since_ms: int = 0,
        until_ms: int = 2**62,
        markets: Sequence[str] = (),
        window_ms: int = 10_000,
    ) -> AsyncIterator[list[EventRecord]]:
        """Stored market events between two times, in the order the service took them.

        The tables are read a window of event timestamps at a time (their keys start with
        the timestamp, so each window is a range scan), so memory stays bounded by a
        window's events, and each window is put in event order; the next window is read
        while the caller works on the current one. Events the service took
        in an order that differs from their timestamps' by more than a window (a feed
        whose clock jumps back by that much) would come out of order across windows.

        Args:
            since_ms: Events timestamped at or after this (epoch milliseconds, the feed's).
            until_ms: Events timestamped at or before this.
            markets: Condition ids to keep; every market when empty.
            window_ms: Width of a window of timestamps read at once.

        Yields:
            One list of :class:`EventRecord` per window, in event order (rows from before
            event order was recorded first in their window, by receive time).

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        sql = self._sql(event_query(markets, wire=True, postgres=self._postgres))

        async def read(start: int, end: int) -> list[EventRecord] | None:
            rows = await self._query(sql, (start, end, *markets) * len(_TABLES))
            return [EventRecord(r[0], r[1], r[2], r[3], r[6]) for r in rows] if rows else None

        async for window in self._windows(read, since_ms, until_ms, window_ms):
            yield window
