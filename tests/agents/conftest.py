"""Fixtures for the agents tests: real SQLite stores, log handshakes, a lock holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from polymarket_agents.agents import IngestionWorker
from polymarket_agents.storage import LOGGER_NAME as STORAGE_LOGGER
from polymarket_agents.storage import SQLiteStore

AGENTS_LOGGER = "polymarket_agents.agents"


class LogWatch(logging.Handler):
    """Collects records and sets an event when a message containing a fragment is logged.

    The worker logs from the event loop's thread, so setting an ``asyncio.Event`` here is a
    handshake: a test waits for "the worker retried" instead of sleeping.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waiting: list[tuple[str, asyncio.Event]] = []

    def on(self, fragment: str) -> asyncio.Event:
        """An event set by the next record whose message contains ``fragment``."""
        event = asyncio.Event()
        self._waiting.append((fragment, event))
        return event

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        """The messages logged at ``level`` or above."""
        return [r.getMessage() for r in self.records if r.levelno >= level]

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        message = record.getMessage()
        for fragment, event in self._waiting:
            if fragment in message:
                event.set()


@pytest.fixture
def watch() -> Iterator[LogWatch]:
    """A LogWatch on the agents and storage loggers, at DEBUG for the test's duration."""
    handler = LogWatch()
    loggers = [logging.getLogger(AGENTS_LOGGER), logging.getLogger(STORAGE_LOGGER)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database path in a directory that does not exist yet."""
    return tmp_path / "data" / "agents.sqlite"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open store with a 10 ms busy timeout, closed after the test; it does not own
    its file (``exclusive=False``), so that a second connection can lock it."""
    async with SQLiteStore(db_path, busy_timeout=0.01, exclusive=False) as opened:
        yield opened


@pytest.fixture
def blocker(store: SQLiteStore) -> Iterator[sqlite3.Connection]:
    """A second, plain sqlite3 connection to the store's file: ``BEGIN IMMEDIATE`` on it
    holds the write lock as another process would."""
    conn = sqlite3.connect(store.path, isolation_level=None, timeout=5)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
async def start(
    watch: LogWatch,
) -> AsyncIterator[Callable[[IngestionWorker], Awaitable[asyncio.Task[None]]]]:
    """Start a worker's run() in a task and return once it is waiting for items; any task
    still running at the end of the test is cancelled and awaited."""
    tasks: list[asyncio.Task[None]] = []

    async def _start(worker: IngestionWorker) -> asyncio.Task[None]:
        started = watch.on("ingestion worker started")
        task: asyncio.Task[None] = asyncio.create_task(worker.run())
        tasks.append(task)
        await started.wait()
        return task

    yield _start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
