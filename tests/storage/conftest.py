"""Fixtures for the storage tests: a real SQLite file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from polymarket_agents.storage import SQLiteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database path in a directory that does not exist yet."""
    return tmp_path / "data" / "agents.sqlite"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open store on a fresh file, closed after the test."""
    async with SQLiteStore(db_path, busy_timeout=0.01) as opened:
        yield opened


@pytest.fixture
async def shared_store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open store that does not own its file (``exclusive=False``): other connections
    may lock it, as the tests of lock contention need."""
    async with SQLiteStore(db_path, busy_timeout=0.01, exclusive=False) as opened:
        yield opened
