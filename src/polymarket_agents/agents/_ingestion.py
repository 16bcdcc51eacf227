"""The ingestion worker: rows from a bounded queue into the store, in batches, losing nothing.

The seed's ``data_ingestion_worker`` marks an item done *before* processing it, so an item
whose write fails is lost, and it exits when the queue has been idle for 30 s. This one:

* marks each item done only after it is stored (or refused as invalid);
* runs until cancelled: an idle queue is no reason to stop;
* retries a failed batch, with the backoff of a
  :class:`~polymarket_agents.core.async_utils.RestartPolicy`, for as long as it takes:
  a batch is never dropped, so a slow or unavailable database makes producers wait on the
  bounded queue (backpressure) instead of losing data;
* on cancellation stores the batch in flight and everything still queued, closes the store
  it opened, then re-raises the cancellation.

Duplicates are the store's concern: every table has a natural unique key, so an event
replayed after a reconnect or a monitor restart is counted as a duplicate, not stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from polymarket_agents.core.async_utils import (
    ConfigurationError,
    ErrorClass,
    RestartPolicy,
    shielded,
)
from polymarket_agents.storage import DEFAULT_PATH, SQLiteStore, Store, WriteResult

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_INGESTION_POLICY",
    "DEFAULT_QUEUE_SIZE",
    "LOGGER_NAME",
    "IngestionStats",
    "IngestionWorker",
    "data_ingestion_worker",
    "ingestion_queue",
]

LOGGER_NAME = "polymarket_agents.agents"
_logger = logging.getLogger(LOGGER_NAME)

DEFAULT_QUEUE_SIZE = 5_000
"""Items the ingestion queue holds before producers wait: ten batches of the default size."""

DEFAULT_BATCH_SIZE = 500
"""Rows written per transaction at most (an item of several rows is never split)."""

DEFAULT_FLUSH_INTERVAL = 0.05
"""Seconds a partial batch waits for more rows before it is written."""

DEFAULT_DRAIN_TIMEOUT = 10.0
"""Seconds the shutdown drain may take before it gives up on an unavailable database."""

DEFAULT_INGESTION_POLICY = RestartPolicy(backoff_seconds=0.1, max_backoff=5.0)
"""Retry delays for failed writes: 0.1, 0.2, 0.4 ... 5 s (unexpected errors: 1.2 ... 5 s).

Shorter than the core's task default (5 ... 300 s): a local database that was locked or
briefly unavailable is usually back within moments, and the queue fills while we wait.
"""


def ingestion_queue(maxsize: int = DEFAULT_QUEUE_SIZE) -> asyncio.Queue[Any]:
    """A bounded queue for the ingestion worker.

    Producers ``await queue.put(row)`` (or a tuple of rows that belong to one event); when
    the database falls behind, the queue fills and ``put`` waits: backpressure, not loss.

    Args:
        maxsize: Items the queue holds before ``put`` waits.

    Returns:
        The queue.

    Raises:
        ConfigurationError: If ``maxsize`` is not positive (an unbounded queue would never
            push back).
    """
    if not maxsize >= 1:
        raise ConfigurationError(f"maxsize must be >= 1, not {maxsize!r}")
    return IngestionQueue(maxsize)


class IngestionQueue(asyncio.Queue[Any]):
    """The ingestion queue: bounded while running, unbounded once stopping.

    At a stop every producer is cancelled with at most one item in hand, which it still
    hands over (see ``handoff``). Thousands of monitors stopping at once would otherwise
    wait on each other for room one item at a time, and some would give up before the
    worker drained enough; :meth:`unbound` lets every such item in at once (at most one per
    producer, since none takes a new event), and the drain stores them all.
    """

    def unbound(self) -> None:
        """Accept every item from now on, and wake every producer waiting for room."""
        # asyncio.Queue keeps its bound and its waiting producers in these two attributes
        # (the same in 3.11 to 3.13); full() is False once the bound is 0.
        self._maxsize = 0
        putters = self._putters  # type: ignore[attr-defined]
        while putters:
            putter = putters.popleft()
            if not putter.done():
                putter.set_result(None)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestionStats:
    """A snapshot of an :class:`IngestionWorker`'s counters, for logs and metrics.

    Every item taken from the queue ends up, once, in exactly one of: stored (its rows are in
    ``written``, ``duplicates`` or ``invalid``), in hand (``pending_items``), or put back on
    the queue at a shutdown that could not store it (``requeued_items``).

    Attributes:
        items: Queue items completed (marked done after their rows were stored or refused).
        written: Rows inserted or updated.
        duplicates: Rows ignored because they were already stored.
        invalid: Rows refused as invalid (wrong type or failed validation).
        batches: Batches committed.
        retries: Failed write attempts, each retried.
        requeued_items: Items put back on the queue by a shutdown that timed out.
        lost_rows: Rows that could neither be stored nor put back (a full queue at a
            shutdown that timed out); logged at ERROR.
        pending_items: Items taken from the queue and not yet stored.
        queue_depth: Items waiting in the queue.
        last_batch_rows: Rows in the last committed batch.
        last_batch_seconds: Seconds from the first attempt to the commit of the last batch.
        last_error: The last write error, as ``"Type: message"``, or None.
        written_by_table: ``written`` per table name.
        duplicates_by_table: ``duplicates`` per table name.
    """

    items: int
    written: int
    duplicates: int
    invalid: int
    batches: int
    retries: int
    requeued_items: int
    lost_rows: int
    pending_items: int
    queue_depth: int
    last_batch_rows: int
    last_batch_seconds: float
    last_error: str | None
    written_by_table: Mapping[str, int] = field(default_factory=dict)
    duplicates_by_table: Mapping[str, int] = field(default_factory=dict)


_MAX_DOUBLINGS = 64


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` (or ``"Type"``), as logs and stats show an error."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class IngestionWorker:
    """Moves rows from a queue into a :class:`~polymarket_agents.storage.Store` in batches.

    ::

        queue = ingestion_queue()
        worker = IngestionWorker(queue, path="data/agents.sqlite")
        await supervisor.start_task("ingestion", worker.run)
        ...
        await queue.put(PriceChangeRow(...))
        worker.stats.written

    Each batch starts with the first item to arrive, takes whatever else is already queued
    and, if that is not a full batch, waits up to ``flush_interval`` for more; then the whole
    batch is written in one transaction. Items are rows of
    :mod:`polymarket_agents.storage` or tuples (or lists) of rows from one event; an item is
    marked done (``queue.task_done()``) only when all its rows are stored or refused.

    Write errors never drop the batch: it is retried with ``policy``'s backoff (recoverable
    errors at the normal schedule, all others at the longer one and logged with traceback)
    until it is stored. Rows the store refuses as invalid are counted, logged and skipped.

    :meth:`run` runs until cancelled. On cancellation it lets the batch in flight finish,
    stores everything still queued, closes the store if it opened it, and re-raises. Further
    cancellations during that drain are absorbed; ``drain_timeout`` bounds it. If the
    drain times out (the database stayed unavailable), the rows in hand are put back on the
    queue, which a later worker can store, and the shortfall is logged at ERROR.

    Args:
        queue: The queue producers put rows on; give it a ``maxsize`` (see
            :func:`ingestion_queue`) so that producers wait when the database falls behind.
        store: The store to write to; the caller opens (or lets :meth:`run` open) and closes
            it. Give either ``store`` or ``path``.
        path: The SQLite file of a store the worker opens and closes itself; the default
            is :data:`~polymarket_agents.storage.DEFAULT_PATH` when neither is given.
        batch_size: Rows per transaction at most; an item's rows are never split.
        flush_interval: Seconds a partial batch waits for more rows; 0 writes at once.
        policy: Backoff for failed writes (see :data:`DEFAULT_INGESTION_POLICY`).
        drain_timeout: Seconds the drain at cancellation may take; None for no limit.
        logger: Where the worker logs.

    Raises:
        ConfigurationError: If both ``store`` and ``path`` are given, or a number is out of
            range.
    """

    __slots__ = (
        "_batch_size",
        "_batches",
        "_drain_timeout",
        "_duplicates",
        "_duplicates_by_table",
        "_flush_interval",
        "_flush_task",
        "_invalid",
        "_items",
        "_last_batch_rows",
        "_last_batch_seconds",
        "_last_error",
        "_logger",
        "_lost_rows",
        "_path",
        "_pending_items",
        "_policy",
        "_queue",
        "_requeued_items",
        "_retries",
        "_rows",
        "_running",
        "_store",
        "_wake",
        "_writing_error",
        "_writing_since",
        "_written",
        "_written_by_table",
    )

    def __init__(
        self,
        queue: asyncio.Queue[Any],
        store: Store | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        policy: RestartPolicy | None = None,
        drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
        logger: logging.Logger | None = None,
    ) -> None:
        if store is not None and path is not None:
            raise ConfigurationError("give the worker a store or a path, not both")
        if not batch_size >= 1:
            raise ConfigurationError(f"batch_size must be >= 1, not {batch_size!r}")
        if not flush_interval >= 0:
            raise ConfigurationError(f"flush_interval must be >= 0, not {flush_interval!r}")
        if drain_timeout is not None and not drain_timeout >= 0:
            raise ConfigurationError(f"drain_timeout must be >= 0 or None, not {drain_timeout!r}")
        self._queue = queue
        self._store = store
        self._path = DEFAULT_PATH if path is None else path
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._policy = policy or DEFAULT_INGESTION_POLICY
        self._drain_timeout = drain_timeout
        self._logger = logger or _logger
        self._running = False
        self._flush_task: asyncio.Future[None] | None = None
        # Set at shutdown to cut a pending retry delay short: the drain has little time.
        self._wake = asyncio.Event()
        # The batch in hand: its rows, and how many queue items they came in.
        self._rows: list[object] = []
        self._pending_items = 0
        self._items = 0
        self._written = 0
        self._duplicates = 0
        self._invalid = 0
        self._batches = 0
        self._retries = 0
        self._requeued_items = 0
        self._lost_rows = 0
        self._last_batch_rows = 0
        self._last_batch_seconds = 0.0
        self._last_error: str | None = None
        self._written_by_table: Counter[str] = Counter()
        self._duplicates_by_table: Counter[str] = Counter()
        self._writing_since: float | None = None
        self._writing_error: str | None = None

    def __repr__(self) -> str:
        state = "running" if self._running else "idle"
        return (
            f"<IngestionWorker {state} items={self._items} written={self._written} "
            f"pending={self._pending_items} queued={self._queue.qsize()}>"
        )

    @property
    def stats(self) -> IngestionStats:
        """A snapshot of the counters."""
        return IngestionStats(
            items=self._items,
            written=self._written,
            duplicates=self._duplicates,
            invalid=self._invalid,
            batches=self._batches,
            retries=self._retries,
            requeued_items=self._requeued_items,
            lost_rows=self._lost_rows,
            pending_items=self._pending_items,
            queue_depth=self._queue.qsize(),
            last_batch_rows=self._last_batch_rows,
            last_batch_seconds=self._last_batch_seconds,
            last_error=self._last_error,
            written_by_table=dict(self._written_by_table),
            duplicates_by_table=dict(self._duplicates_by_table),
        )

    @property
    def writing_since(self) -> float | None:
        """Loop time of the first attempt to write the batch in hand, while it is not stored
        yet (attempts failing, or one waiting on a lock); None between batches."""
        return self._writing_since

    @property
    def writing_error(self) -> str | None:
        """The last error writing the batch in hand, as ``"Type: message"``; None if its
        attempts have not failed (or between batches)."""
        return self._writing_error

    async def run(self) -> NoReturn:
        """Store what arrives on the queue until cancelled; then drain, close and re-raise.

        Raises:
            asyncio.CancelledError: Always, in the end: the worker stops only when cancelled.
            StoreUnavailableError: If the store cannot be opened at the start (nothing has
                been taken from the queue then); run it under ``robust_task`` or a
                ``TaskSupervisor`` to retry.
            SchemaVersionError: If the database was written by a newer schema.
            RuntimeError: If this worker is already running.
        """
        if self._running:
            raise RuntimeError("this IngestionWorker is already running; create another")
        self._running = True
        owned = self._store is None
        store: Store = self._store if self._store is not None else SQLiteStore(self._path)
        try:
            await store.open()
            if self._queue.maxsize <= 0:
                self._logger.warning(
                    "the ingestion queue is unbounded: producers will never wait for the "
                    "database; give it a maxsize"
                )
            self._logger.info("ingestion worker started on %r", store)
            try:
                while True:
                    await self._collect()
                    self._flush_task = asyncio.ensure_future(self._flush(store))
                    # Shielded: a cancellation must not cut a transaction short; the
                    # drain below waits for this batch to finish instead.
                    await asyncio.shield(self._flush_task)
                    self._flush_task = None
            except asyncio.CancelledError:
                await self._shutdown(store)
                raise
        finally:
            self._running = False
            if owned:
                await store.close()

    def _take(self, item: object) -> None:
        # Rows that belong together (a producer's tuple or list) come as one item, so
        # that they are stored, and marked done, as a whole.
        if type(item) is tuple or type(item) is list:
            self._rows.extend(item)
        else:
            self._rows.append(item)
        self._pending_items += 1

    async def _collect(self) -> None:
        """Fill the batch in hand: wait for a first item, then take what comes quickly."""
        queue = self._queue
        if not self._pending_items:
            self._take(await queue.get())
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while len(self._rows) < self._batch_size:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                if self._flush_interval <= 0:
                    return
                if deadline is None:
                    deadline = loop.time() + self._flush_interval
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    async with asyncio.timeout(remaining):
                        item = await queue.get()
                except TimeoutError:
                    return
            self._take(item)

    async def _flush(self, store: Store) -> None:
        """Write the batch in hand, retrying until it is stored; then mark its items done."""
        rows = self._rows
        loop = asyncio.get_running_loop()
        started = self._writing_since = loop.time()
        failures = 0
        while True:
            try:
                result = await store.write_batch(rows)
                break
            except Exception as exc:
                failures += 1
                self._retries += 1
                self._last_error = self._writing_error = describe_error(exc)
                delay = self._retry_delay(exc, failures, len(rows))
            # Waiting outside the except block lets the error and its traceback go now.
            await self._pause(delay)
        self._writing_since = self._writing_error = None
        self._account(result, len(rows), loop.time() - started)
        items, self._pending_items, self._rows = self._pending_items, 0, []
        self._items += items
        for _ in range(items):
            self._queue.task_done()

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the worker starts shutting down meanwhile."""
        if delay <= 0 or self._wake.is_set():
            self._wake.clear()
            await asyncio.sleep(0)
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            return
        self._wake.clear()

    def _retry_delay(self, exc: Exception, failures: int, rows: int) -> float:
        """Log the failure and say how long to wait before the next attempt."""
        error_class = self._policy.classify_error(exc)
        # Past a few dozen doublings every delay is at its cap; the bound also keeps the
        # policy's arithmetic away from float overflow in a long outage.
        attempt = min(failures, _MAX_DOUBLINGS)
        if error_class is ErrorClass.RECOVERABLE:
            delay = self._policy.delay(attempt, error_class)
            self._logger.warning(
                "storing %d rows failed (%s); retry %d in %.2f s",
                rows,
                describe_error(exc),
                failures,
                delay,
                extra={"attempt": failures, "delay": delay},
            )
        else:
            # Even an error that would stop a task does not drop the batch: it is logged
            # with its traceback and retried at the longer backoff, and producers wait.
            delay = self._policy.delay(attempt, ErrorClass.UNEXPECTED)
            self._logger.error(
                "storing %d rows failed with an unexpected error; retry %d in %.2f s",
                rows,
                failures,
                delay,
                exc_info=exc,
                extra={"attempt": failures, "delay": delay},
            )
        return delay

    def _account(self, result: WriteResult, rows: int, seconds: float) -> None:
        for table, count in result.written.items():
            self._written_by_table[str(table)] += count
        for table, count in result.duplicates.items():
            self._duplicates_by_table[str(table)] += count
        self._written += result.total_written
        self._duplicates += result.total_duplicates
        self._invalid += len(result.rejected)
        self._batches += 1
        self._last_batch_rows = rows
        self._last_batch_seconds = seconds
        if result.rejected:
            first = result.rejected[0]
            self._logger.warning(
                "skipped %d invalid rows; the first, at %d: %s",
                len(result.rejected),
                first.index,
                first.reason,
            )

    async def _drain(self, store: Store) -> None:
        """Finish the batch in flight, then store everything still queued."""
        if self._flush_task is not None:
            await self._flush_task
            self._flush_task = None
        queue = self._queue
        while True:
            while len(self._rows) < self._batch_size:
                try:
                    self._take(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            if not self._pending_items:
                return
            await self._flush(store)

    async def _shutdown(self, store: Store) -> None:
        """Run the drain to its end or its timeout, absorbing further cancellations."""
        self._logger.info(
            "ingestion worker stopping: storing %d items in hand and %d queued",
            self._pending_items,
            self._queue.qsize(),
        )
        self._wake.set()  # a batch waiting out a retry delay tries again now
        error: BaseException | None = None
        try:
            await shielded(self._drain(store), timeout=self._drain_timeout)
        except asyncio.CancelledError as again:
            # Cancelled again: the drain still ran to its end (or deadline); the first
            # cancellation is re-raised by run().
            self._logger.info("ingestion worker cancelled again while draining")
            error = again.__cause__
        except TimeoutError:
            pass  # cut at the deadline: what is left in hand goes back on the queue
        except Exception as exc:
            error = exc
        if isinstance(error, Exception):
            self._logger.error("ingestion drain failed", exc_info=error)
        if self._pending_items:
            self._requeue()
        self._logger.info(
            "ingestion worker stopped: %d items, %d rows written, %d duplicates, %d invalid",
            self._items,
            self._written,
            self._duplicates,
            self._invalid,
        )

    def _requeue(self) -> None:
        """Put the unstored batch back on the queue as one item, for a later worker."""
        rows, items = tuple(self._rows), self._pending_items
        self._rows, self._pending_items = [], 0
        try:
            self._queue.put_nowait(rows)
        except asyncio.QueueFull:
            self._lost_rows += len(rows)
            self._logger.error(
                "ingestion drain timed out and the queue is full: %d rows were not stored",
                len(rows),
            )
        else:
            self._requeued_items += items
            self._logger.error(
                "ingestion drain timed out: %d rows put back on the queue (%d items queued)",
                len(rows),
                self._queue.qsize(),
            )
        for _ in range(items):
            self._queue.task_done()


async def data_ingestion_worker(
    queue: asyncio.Queue[Any],
    *,
    store: Store | None = None,
    path: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    policy: RestartPolicy | None = None,
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
    logger: logging.Logger | None = None,
) -> NoReturn:
    """Store the rows put on ``queue`` until cancelled: the seed's worker, made lossless.

    ``await data_ingestion_worker(queue)`` is ``await IngestionWorker(queue, ...).run()``;
    see :class:`IngestionWorker` for the behaviour. Use the class to read its
    :attr:`~IngestionWorker.stats`.

    Args:
        queue: The bounded queue producers put rows (or tuples of rows) on.
        store: A store to write to, opened if needed and left open; or give ``path``.
        path: The SQLite file of a store the worker opens and closes itself
            (default :data:`~polymarket_agents.storage.DEFAULT_PATH`).
        batch_size: Rows per transaction at most.
        flush_interval: Seconds a partial batch waits for more rows.
        policy: Backoff for failed writes.
        drain_timeout: Seconds the drain at cancellation may take; None for no limit.
        logger: Where the worker logs.

    Raises:
        asyncio.CancelledError: In the end, after the drain: it stops only when cancelled.
        StoreUnavailableError: If the store cannot be opened at the start.
        ConfigurationError: On invalid arguments.
    """
    worker = IngestionWorker(
        queue,
        store,
        path=path,
        batch_size=batch_size,
        flush_interval=flush_interval,
        policy=policy,
        drain_timeout=drain_timeout,
        logger=logger,
    )
    await worker.run()
