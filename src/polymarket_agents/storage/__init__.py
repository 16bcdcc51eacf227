"""Storage for market data and paper trades: an idempotent, batched store on SQLite or PostgreSQL.

::

    from polymarket_agents.storage import PriceChangeRow, SQLiteStore

    async with SQLiteStore("data/agents.sqlite") as store:
        result = await store.write_batch([PriceChangeRow(...), ...])
        result.written, result.duplicates, result.rejected

* :class:`Store` is the interface; :class:`SQLiteStore` the embedded default (aiosqlite,
  WAL mode, one owning process per file); :func:`open_store` opens one.
  :class:`PostgresStore` (asyncpg) keeps the same tables in a PostgreSQL database that
  several replicas share; :func:`create_store` picks one for a path or a
  ``postgresql://`` URL; :class:`AdvisoryLock` is how a replica holds its shard there.
* One value type per table (:class:`MarketRow`, :class:`BookSnapshotRow`,
  :class:`PriceChangeRow` (a price change and its :class:`LevelChange` entries),
  :class:`TradeRow`, :class:`TickSizeChangeRow`,
  :class:`PaperOrderRow`, :class:`FillRow`); prices and sizes are exact ``Decimal`` text.
* Every table has a natural unique key: writing a row again changes nothing and counts as
  a duplicate, so batches can be replayed after any failure.
* Transient failures raise :class:`StoreUnavailableError`, a ``ConnectionError`` that the
  core's error classification retries; a database file removed under the store raises
  :class:`StoreLostError` from then on.
* Paper trades go through :meth:`Store.write_trades`: durable, and ahead of market data.

This layer depends on :mod:`polymarket_agents.core.async_utils`, aiosqlite, asyncpg and msgspec
only.
"""

from ._advisory import AdvisoryLock
from ._errors import (
    AccountOverdrawnError,
    SchemaVersionError,
    StoreBusyError,
    StoreClosedError,
    StoreDefinitionError,
    StoreError,
    StoreInUseError,
    StoreLostError,
    StoreUnavailableError,
)
from ._ledger import AccountRecord, EventKind, EventRecord, EventWindow, Ledger, RunRecord
from ._open import create_store
from ._pgschema import PG_MIGRATIONS
from ._postgres import PostgresStore, is_postgres_url, redact_url
from ._rows import (
    FILL_KINDS,
    OPEN_STATUSES,
    ORDER_TYPES,
    SIDES,
    BookLevel,
    BookSnapshotRow,
    FillRow,
    LevelChange,
    MarketResolutionRow,
    MarketRow,
    PaperOrderRow,
    Position,
    PriceChangeRow,
    Row,
    Table,
    TickSizeChangeRow,
    TradeRow,
)
from ._schema import MIGRATIONS, Migration
from ._sqlite import DEFAULT_PATH, LOGGER_NAME, SQLiteStore, open_store
from ._store import RejectedRow, Store, WriteResult

__all__ = [
    "DEFAULT_PATH",
    "FILL_KINDS",
    "LOGGER_NAME",
    "MIGRATIONS",
    "OPEN_STATUSES",
    "ORDER_TYPES",
    "PG_MIGRATIONS",
    "SIDES",
    "AccountOverdrawnError",
    "AccountRecord",
    "AdvisoryLock",
    "BookLevel",
    "BookSnapshotRow",
    "EventKind",
    "EventRecord",
    "EventWindow",
    "FillRow",
    "Ledger",
    "LevelChange",
    "MarketResolutionRow",
    "MarketRow",
    "Migration",
    "PaperOrderRow",
    "Position",
    "PostgresStore",
    "PriceChangeRow",
    "RejectedRow",
    "Row",
    "RunRecord",
    "SQLiteStore",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreDefinitionError",
    "StoreError",
    "StoreInUseError",
    "StoreLostError",
    "StoreUnavailableError",
    "Table",
    "TickSizeChangeRow",
    "TradeRow",
    "WriteResult",
    "create_store",
    "is_postgres_url",
    "open_store",
    "redact_url",
]
