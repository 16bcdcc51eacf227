"""Accounts, runs and the history a report or a backtest reads: records and their SQL.

One SQL text per query serves SQLite and PostgreSQL: it is written with ``?`` placeholders
and :func:`numbered` turns them into ``$1, $2 ...`` for PostgreSQL. Every statement here is
small and rare (once per run, once per report), so none of it is on a hot path except
:data:`EVENTS_SQL`, which a backtest streams.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ._codec import fill_from_record, order_from_record
from ._rows import FillRow, MarketResolutionRow, MarketRow, PaperOrderRow

__all__ = [
    "ACCOUNTS_SQL",
    "BEGIN_RUN_SQL",
    "END_RUN_SQL",
    "EVENTS_SQL",
    "FILLS_SQL",
    "MARKETS_SQL",
    "OPEN_ACCOUNT_SQL",
    "ORDERS_SQL",
    "RESOLUTIONS_SQL",
    "RUNS_SQL",
    "AccountRecord",
    "EventRecord",
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
    """One stored market-data row in a uniform shape, as a backtest streams them.

    Attributes:
        kind: The table: ``book_snapshots``, ``price_changes``, ``trades``,
            ``tick_size_changes`` or ``market_resolutions``.
        event_seq: The event's order (None for rows from before it was recorded).
        books_ahead: Later events already in the books when the strategy saw this one.
        entry: The row's place within its event (price changes; 0 otherwise).
        market: The condition id.
        asset_id: The token id (the winner, for a resolution).
        timestamp_ms: The event's timestamp.
        received_at_ms: When it was received.
        fields: The kind's other columns, in table order, as stored (decimal text).
    """

    kind: str
    event_seq: int | None
    books_ahead: int
    entry: int
    market: str
    asset_id: str
    timestamp_ms: int
    received_at_ms: int
    fields: tuple[Any, ...]


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

# The market-data tables as one stream of uniform records (see EventRecord); a backtest
# sorts them by event_seq. Each part filters on time and, optionally, markets.
_PARTS = {
    "book_snapshots": (
        "SELECT 'book_snapshots' AS kind, event_seq AS event_seq, books_ahead AS books_ahead, "
        "0 AS entry, market AS market, asset_id AS asset_id, timestamp_ms AS timestamp_ms, "
        "received_at_ms AS received_at_ms, hash AS a, bids AS b, asks AS c, NULL AS d "
        "FROM book_snapshots"
    ),
    "price_changes": (
        "SELECT 'price_changes', event_seq, books_ahead, entry, market, asset_id, "
        "timestamp_ms, received_at_ms, side, price, size, hash || '|' || "
        "coalesce(best_bid, '') || '|' || coalesce(best_ask, '') FROM price_changes"
    ),
    "trades": (
        "SELECT 'trades', event_seq, books_ahead, 0, market, asset_id, timestamp_ms, "
        "received_at_ms, side, price, size, fee_rate_bps || '|' || transaction_hash "
        "FROM trades"
    ),
    "tick_size_changes": (
        "SELECT 'tick_size_changes', event_seq, books_ahead, 0, market, asset_id, "
        "timestamp_ms, received_at_ms, old_tick_size, new_tick_size, NULL, NULL "
        "FROM tick_size_changes"
    ),
    "market_resolutions": (
        "SELECT 'market_resolutions', event_seq, 0, 0, market, winning_asset_id, "
        "timestamp_ms, received_at_ms, NULL, NULL, NULL, NULL FROM market_resolutions"
    ),
}

EVENTS_SQL = _PARTS
"""The SELECT of each market-data table in the uniform shape of :class:`EventRecord`."""


def event_query(markets: Sequence[str]) -> str:
    """The UNION of every market-data table between two receive times (two ``?``, from
    and to, inclusive), for ``markets`` (one ``?`` each) or all when empty; ordered by
    event order, then receive time, then entry."""
    where = " WHERE received_at_ms >= ? AND received_at_ms <= ?"
    if markets:
        where += f" AND market IN ({', '.join('?' for _ in markets)})"
    union = " UNION ALL ".join(part + where for part in _PARTS.values())
    # Rows stored before event order was recorded (NULL) come first, by receive time.
    return (
        f"SELECT * FROM ({union}) AS e "
        "ORDER BY coalesce(event_seq, -1), received_at_ms, timestamp_ms, entry"
    )


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


class Ledger:
    """Accounts, runs and history on top of three primitives each store provides.

    :class:`~polymarket_agents.storage.SQLiteStore` and
    :class:`~polymarket_agents.storage.PostgresStore` inherit it; each implements
    :meth:`_query`, :meth:`_transaction` and :meth:`_stream` on its own connection, and
    :meth:`_sql` to adapt placeholders.
    """

    __slots__ = ()

    # -- what each store provides ---------------------------------------------------------

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

    async def events(
        self,
        *,
        since_ms: int = 0,
        until_ms: int = 2**62,
        markets: Sequence[str] = (),
        chunk: int = 10_000,
    ) -> AsyncIterator[list[EventRecord]]:
        """Stored market data received between two times, in the order the service took it.

        Args:
            since_ms: Received at or after this (epoch milliseconds).
            until_ms: Received at or before this.
            markets: Condition ids to keep; every market when empty.
            chunk: Records per list yielded.

        Yields:
            Lists of :class:`EventRecord`, ordered by ``event_seq`` (then receive time and
            entry; rows from before event order was recorded first).

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        params: list[object] = []
        for _ in EVENTS_SQL:
            params.extend((since_ms, until_ms, *markets))
        async for records in self._stream(self._sql(event_query(markets)), params, chunk):
            yield [
                EventRecord(
                    record[0],
                    record[1],
                    record[2],
                    record[3],
                    record[4],
                    record[5],
                    record[6],
                    record[7],
                    tuple(record[8:]),
                )
                for record in records
            ]
