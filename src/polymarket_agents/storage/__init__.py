"""Storage for market data and paper trades: an idempotent, batched store on SQLite.

::

    from polymarket_agents.storage import PriceChangeRow, SQLiteStore

    async with SQLiteStore("data/agents.sqlite") as store:
        result = await store.write_batch([PriceChangeRow(...), ...])
        result.written, result.duplicates, result.rejected

* :class:`Store` is the interface; :class:`SQLiteStore` the embedded default (aiosqlite,
  WAL mode); :func:`open_store` opens one.
* One value type per table (:class:`MarketRow`, :class:`BookSnapshotRow`,
  :class:`PriceChangeRow`, :class:`TradeRow`, :class:`TickSizeChangeRow`,
  :class:`PaperOrderRow`, :class:`FillRow`); prices and sizes are exact ``Decimal`` text.
* Every table has a natural unique key: writing a row again changes nothing and counts as
  a duplicate, so batches can be replayed after any failure.
* Transient failures raise :class:`StoreUnavailableError`, a ``ConnectionError`` that the
  core's error classification retries.

This layer depends on :mod:`polymarket_agents.core.async_utils`, aiosqlite and msgspec only.
"""

from ._errors import (
    SchemaVersionError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreUnavailableError,
)
from ._rows import (
    ORDER_TYPES,
    SIDES,
    BookLevel,
    BookSnapshotRow,
    FillRow,
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
    "LOGGER_NAME",
    "MIGRATIONS",
    "ORDER_TYPES",
    "SIDES",
    "BookLevel",
    "BookSnapshotRow",
    "FillRow",
    "MarketRow",
    "Migration",
    "PaperOrderRow",
    "Position",
    "PriceChangeRow",
    "RejectedRow",
    "Row",
    "SQLiteStore",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreError",
    "StoreUnavailableError",
    "Table",
    "TickSizeChangeRow",
    "TradeRow",
    "WriteResult",
    "open_store",
]
