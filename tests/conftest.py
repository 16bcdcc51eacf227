"""Fixtures shared by every test directory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest


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
