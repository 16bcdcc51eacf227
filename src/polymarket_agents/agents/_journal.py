"""``TradeJournal``: the paper broker's own path to the database, never behind market data.

A trade is recorded the way a real broker's would be: the decision before the order is
executed (write-ahead) and its result right after, each committed durably through
:meth:`~polymarket_agents.storage.Store.write_trades` before the broker goes on. Market
data waits in the ingestion queue; trades do not: a write of the journal waits at most for
the one market-data transaction in progress.

* :meth:`TradeJournal.intend` makes one attempt: if the decision cannot be recorded, the
  order is not executed (the caller drops the signal and may see it again later).
* :meth:`TradeJournal.record` retries until the result is stored, for as long as it takes:
  an executed trade is never forgotten while the process lives. Cancelled meanwhile (a
  shutdown), it goes on for ``stop_timeout`` seconds more; what it still could not store
  then is counted in :attr:`TradeJournal.lost_rows` and logged at ERROR.

Every result row handed to the journal ends up, once, in exactly one of ``written``,
``duplicates``, ``invalid``, ``lost_rows`` or ``pending_rows``. Write-ahead records are
counted apart (``intents``): each is the first state of an order row that its result
then updates, so counting both would count one stored row twice. Until that result is
stored the order is in the store in its write-ahead state alone
(:attr:`TradeJournal.awaiting_results`), also after its result was given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from polymarket_agents.core.async_utils import (
    ErrorClass,
    RestartPolicy,
    shielded,
)
from polymarket_agents.storage import PaperOrderRow, Store, StoreClosedError, WriteResult

from ._handoff import DEFAULT_HANDOFF_TIMEOUT
from ._ingestion import describe_error as _describe

__all__ = ["DEFAULT_JOURNAL_POLICY", "TradeJournal"]

_logger = logging.getLogger("polymarket_agents.agents")

DEFAULT_JOURNAL_POLICY = RestartPolicy(backoff_seconds=0.1, max_backoff=5.0)
"""Retry delays for a trade's result that could not be stored: 0.1, 0.2 ... 5 s."""

_MAX_DOUBLINGS = 64


class TradeJournal:
    """Records paper-trading rows in a store, durably and ahead of market data.

    Args:
        store: Where the rows go (opened and closed by its owner); None: nothing is
            recorded and every call returns at once.
        policy: Backoff between attempts to store a result.
        stop_timeout: Seconds a cancelled :meth:`record` goes on trying.
        logger: Where failures are logged.
    """

    __slots__ = (
        "_awaiting",
        "_logger",
        "_policy",
        "_stop_timeout",
        "_store",
        "_wake",
        "duplicates",
        "intents",
        "invalid",
        "last_error",
        "lost_rows",
        "pending_rows",
        "retries",
        "rows",
        "unrecorded",
        "written",
        "written_by_table",
    )

    def __init__(
        self,
        store: Store | None,
        *,
        policy: RestartPolicy | None = None,
        stop_timeout: float = DEFAULT_HANDOFF_TIMEOUT,
        logger: logging.Logger | None = None,
    ) -> None:
        self._store = store
        self._policy = policy or DEFAULT_JOURNAL_POLICY
        self._stop_timeout = stop_timeout
        self._logger = logger or _logger
        # Set when a caller is cancelled: retries waiting out a delay try again at once.
        self._wake = asyncio.Event()
        self.rows = 0
        """Result rows handed to :meth:`record`."""
        self.intents = 0
        """Write-ahead records stored by :meth:`intend` (new ones; not in ``rows``)."""
        # Orders whose write-ahead record this journal stored and whose result it has not.
        self._awaiting: set[str] = set()
        self.written = 0
        """Rows inserted or updated."""
        self.written_by_table: Counter[str] = Counter()
        """``written`` per table name."""
        self.duplicates = 0
        """Rows the store already had."""
        self.invalid = 0
        """Rows the store refused as invalid."""
        self.lost_rows = 0
        """Results given up at a stop because the store would not take them."""
        self.pending_rows = 0
        """Results being stored now."""
        self.retries = 0
        """Failed attempts to store a result, each retried."""
        self.unrecorded = 0
        """Decisions that could not be recorded (their orders were not executed)."""
        self.last_error: str | None = None
        """The last failure, as ``"Type: message"``."""

    def __repr__(self) -> str:
        return (
            f"<TradeJournal rows={self.rows} written={self.written} "
            f"pending={self.pending_rows} lost={self.lost_rows}>"
        )

    @property
    def awaiting_results(self) -> int:
        """Orders in the store in their write-ahead state only: their result is being
        stored, or was given up (then counted in :attr:`lost_rows`), so the store holds the
        order as ``pending`` (a later start marks it interrupted)."""
        return len(self._awaiting)

    @property
    def store(self) -> Store | None:
        """The store the rows go to, or None."""
        return self._store

    def _stored(self, rows: Sequence[object], result: WriteResult) -> None:
        """Count the result rows the store took."""
        self._awaiting.difference_update(_order_ids(rows))
        self._count(result)

    def _count(self, result: WriteResult) -> None:
        self.written += result.total_written
        for table, count in result.written.items():
            self.written_by_table[str(table)] += count
        self.duplicates += result.total_duplicates
        self.invalid += len(result.rejected)
        if result.rejected:
            first = result.rejected[0]
            self._logger.error(
                "the store refused %d trade rows; the first: %s",
                len(result.rejected),
                first.reason,
            )

    async def intend(self, rows: Sequence[object]) -> WriteResult | None:
        """Record a decision before it is carried out: one durable attempt.

        Args:
            rows: The orders about to be executed, in their first state.

        Returns:
            What was written (duplicates mean the decision was recorded before, by this or
            an earlier process); None without a store.

        Raises:
            Exception: Whatever the store raised (``StoreUnavailableError`` ...): nothing
                was recorded and the order must not be executed. Counted in
                :attr:`unrecorded`.
        """
        if self._store is None:
            return None
        try:
            result = await self._store.write_trades(rows)
        except Exception as exc:
            self.unrecorded += 1
            self.last_error = _describe(exc)
            raise
        self.intents += result.total_written
        if result.total_written and not result.total_duplicates:
            self._awaiting.update(_order_ids(rows))
        if result.rejected:
            self._logger.error(
                "the store refused a write-ahead record: %s", result.rejected[0].reason
            )
        return result

    async def record(self, rows: Sequence[object]) -> None:
        """Store the result of a trade, retrying until it is stored.

        Raises:
            asyncio.CancelledError: If cancelled, after the result was stored or, failing
                that for ``stop_timeout`` seconds, given up (:attr:`lost_rows`).
        """
        if self._store is None or not rows:
            return
        self.rows += len(rows)
        self.pending_rows += len(rows)
        attempt = asyncio.ensure_future(self._until_stored(self._store, rows))
        try:
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            if not attempt.done():
                self._wake.set()  # a long retry delay is no use now
                try:
                    await shielded(attempt, timeout=self._stop_timeout)
                except (TimeoutError, StoreClosedError):
                    pass
            raise
        except StoreClosedError:
            pass  # closed under us: counted as lost below
        finally:
            if not attempt.done() or attempt.cancelled() or attempt.exception() is not None:
                self._abandon(len(rows))

    def _abandon(self, rows: int) -> None:
        self.pending_rows -= rows
        self.lost_rows += rows
        self._logger.error(
            "%d paper-trading rows could not be stored (%s); the trade is not on record",
            rows,
            self.last_error or "stopped",
        )

    async def _until_stored(self, store: Store, rows: Sequence[object]) -> None:
        failures = 0
        while True:
            try:
                result = await store.write_trades(rows)
                break
            except StoreClosedError:
                raise  # nothing will ever take it now
            except Exception as exc:
                failures += 1
                self.retries += 1
                self.last_error = _describe(exc)
                error_class = self._policy.classify_error(exc)
                if error_class is not ErrorClass.RECOVERABLE:
                    error_class = ErrorClass.UNEXPECTED
                delay = self._policy.delay(min(failures, _MAX_DOUBLINGS), error_class)
                self._logger.warning(
                    "storing %d paper-trading rows failed (%s); retry %d in %.2f s",
                    len(rows),
                    self.last_error,
                    failures,
                    delay,
                    exc_info=exc if error_class is ErrorClass.UNEXPECTED else None,
                )
            await self._pause(delay)
        self.pending_rows -= len(rows)
        self._stored(rows, result)

    async def _pause(self, delay: float) -> None:
        if self._wake.is_set():
            # Stopping: try again soon, but do not spin on a store that fails at once.
            await asyncio.sleep(min(delay, 0.05))
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass


def _order_ids(rows: Sequence[object]) -> list[str]:
    return [row.order_id for row in rows if isinstance(row, PaperOrderRow)]
