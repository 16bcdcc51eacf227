"""Agents: the long-running tasks of the service.

* :func:`data_ingestion_worker` / :class:`IngestionWorker` move rows from a bounded queue
  (:func:`ingestion_queue`) into a :class:`~polymarket_agents.storage.Store` in batched,
  idempotent transactions: an item is marked done only once stored, a failed batch is
  retried rather than dropped, and cancellation drains the queue before the worker stops.
"""

from ._ingestion import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_INGESTION_POLICY,
    DEFAULT_QUEUE_SIZE,
    IngestionStats,
    IngestionWorker,
    data_ingestion_worker,
    ingestion_queue,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_INGESTION_POLICY",
    "DEFAULT_QUEUE_SIZE",
    "IngestionStats",
    "IngestionWorker",
    "data_ingestion_worker",
    "ingestion_queue",
]
