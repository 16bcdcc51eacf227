"""Fixtures shared by every test directory."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator

import pytest

from ._postgres import INSTALL_HINT, PostgresServer, find_bindir


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _no_asyncio_errors() -> Iterator[None]:
    """Fail a test whose event loop logged an ERROR ("Task exception was never retrieved",
    "Task was destroyed but it is pending!"): asyncio logs these instead of warning, so
    ``filterwarnings = error`` would miss them."""
    handler = _Collect()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in handler.records]
    assert not messages, f"asyncio logged errors: {messages}"


@pytest.fixture(scope="session", autouse=True)
def _no_implicit_event_loop() -> None:
    """Stop ``get_event_loop()`` from creating loops nobody closes.

    looptime asks the policy for the current loop around every test, sync ones included; on
    3.11 that call creates a loop in the main thread unless ``set_event_loop`` was called, and
    the loop is later reported as unclosed. Setting None once makes the call raise instead.
    """
    asyncio.get_event_loop_policy().set_event_loop(None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session, in a temporary directory.

    Skips (with the command that installs one) where no server is installed, except in CI,
    which must have one: there a missing server fails the tests that need it.
    """
    if find_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests. {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL (with password) of a new, empty schema on the session's server.

    The schema is selected by ``?search_path=`` in the URL, as a user would configure it.
    """
    return f"{postgres_server.url()}?search_path={postgres_server.create_schema()}"
