"""The store interface: what the ingestion worker and the status endpoint need from a database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._rows import FillRow, PaperOrderRow, Position, Table

__all__ = ["RejectedRow", "Store", "WriteResult"]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row a store refused to write, and why.

    Attributes:
        index: The row's position in the batch given to :meth:`Store.write_batch`.
        row: The row itself (any object: a wrong type is one reason to refuse it).
        reason: Why it was refused, for the log.
    """

    index: int
    row: object
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """What one :meth:`Store.write_batch` call did.

    Attributes:
        written: Rows inserted or updated, per table.
        duplicates: Rows that were already stored (or repeated in the batch), per table.
        rejected: Rows refused as invalid; everything else in the batch was committed.
    """

    written: Mapping[Table, int] = field(default_factory=dict)
    duplicates: Mapping[Table, int] = field(default_factory=dict)
    rejected: tuple[RejectedRow, ...] = ()

    @property
    def total_written(self) -> int:
        """Rows inserted or updated, over all tables."""
        return sum(self.written.values())

    @property
    def total_duplicates(self) -> int:
        """Rows ignored as already stored, over all tables."""
        return sum(self.duplicates.values())


class Store(Protocol):
    """A database for market data and paper trades, written in idempotent batches.

    Every table has a natural unique key, so writing a row that is already stored changes
    nothing and counts as a duplicate: replaying a batch after a failure, a reconnect or a
    restart is always safe. Implementations must honour this contract:

    * :meth:`write_batch` is all or nothing for the rows it accepts: it either commits them
      in one transaction and returns, or raises and has committed none of them.
    * Problems with single rows (wrong type, a value that fails validation or a constraint)
      are reported in :attr:`WriteResult.rejected` and never raised, so that one bad row
      cannot block a batch forever.
    * Transient failures raise
      :class:`~polymarket_agents.storage.StoreUnavailableError` (a ``ConnectionError``):
      the same call may succeed later, and a broken connection is reopened by the next call.
    * Paper-trading rows (orders, fills) go through :meth:`write_trades`, which must be
      durable when it returns (synced, or committed on a server that syncs) and must not
      wait behind market-data batches queued for the same connection: at most behind the
      one transaction in progress (a priority lock, or a connection of its own).
    * If the database the store opened disappears (an embedded file removed or replaced,
      a server database dropped), :meth:`verify` and every later call raise
      :class:`~polymarket_agents.storage.StoreLostError`, and :attr:`lost` says why.
      Implementations check on their own from time to time and after every failed write,
      and never silently create a new, empty database in its place.
    """

    @property
    def lost(self) -> str | None:
        """Why the database is gone, once a check found it gone; None while it is there."""
        ...

    async def open(self) -> None:
        """Connect and create or migrate the schema; a no-op if already open.

        Raises:
            StoreUnavailableError: If the database cannot be reached now.
            StoreClosedError: If the store was closed.
            SchemaVersionError: If the database was written by a newer version.
        """
        ...

    async def close(self) -> None:
        """Wait for a write in progress, then close; idempotent."""
        ...

    async def write_batch(self, rows: Sequence[object]) -> WriteResult:
        """Write ``rows`` in one transaction, ignoring rows already stored.

        Args:
            rows: Row objects (:data:`~polymarket_agents.storage.Row`); anything else is
                rejected.

        Returns:
            Counts of written and duplicate rows per table, and the rejected rows.

        Raises:
            StoreUnavailableError: On a transient failure; nothing was committed.
            StoreClosedError: If the store was closed.
        """
        ...

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        """Write paper-trading rows as :meth:`write_batch` does, durably and urgently.

        The commit is durable when the call returns (it survives a crash of the process
        and of the machine), and the call goes before :meth:`write_batch` calls waiting
        for the database. The paper broker records each order before it is executed and
        its result right after through this method.

        Returns:
            Counts of written and duplicate rows per table, and the rejected rows.

        Raises:
            StoreUnavailableError: On a transient failure; nothing was committed.
            StoreClosedError: If the store was closed.
        """
        ...

    async def verify(self) -> None:
        """Check that the database the store opened is still there.

        Raises:
            StoreLostError: If it is gone (removed, replaced, dropped).
        """
        ...

    async def count(self, table: Table | str) -> int:
        """The number of rows in ``table``.

        Raises:
            ValueError: If ``table`` is not a :class:`Table` name.
            StoreUnavailableError: On a transient failure.
        """
        ...

    async def counts(self) -> dict[Table, int]:
        """The number of rows in every table.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        ...

    async def recent_orders(self, limit: int = 20) -> list[PaperOrderRow]:
        """The latest ``limit`` paper orders, newest first.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        ...

    async def open_orders(self) -> list[PaperOrderRow]:
        """The paper orders not in a final state (:data:`OPEN_STATUSES`), oldest first.

        The paper broker reads them at start: ``live`` orders rest again, ``pending`` ones
        (recorded before execution by a process that died before their result was
        stored) are resolved.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        ...

    async def latest_orders(self) -> list[PaperOrderRow]:
        """The latest paper order that has a signal id, one per market.

        Strategies resume their signal numbering from these after a restart.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        ...

    async def recent_fills(self, limit: int = 20) -> list[FillRow]:
        """The latest ``limit`` fills, newest first.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        ...

    async def positions(self) -> list[Position]:
        """The net position per token over all stored fills, by token id.

        Raises:
            StoreUnavailableError: On a transient failure.
        """
        ...
