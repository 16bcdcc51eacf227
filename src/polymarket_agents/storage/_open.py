"""``create_store``: a store for a file path or a database URL."""

from __future__ import annotations

import os

from polymarket_agents.core.async_utils import ConfigurationError

from ._postgres import PostgresStore, is_postgres_url
from ._sqlite import DEFAULT_PATH, SQLiteStore

__all__ = ["create_store"]


def create_store(
    database: str | os.PathLike[str] = DEFAULT_PATH,
    *,
    busy_timeout: float = 5.0,
    password_file: str | os.PathLike[str] | None = None,
) -> SQLiteStore | PostgresStore:
    """A store, not yet open, for ``database``: a PostgreSQL URL or a SQLite file path.

    Args:
        database: ``postgresql://...`` (or ``postgres://...``) selects
            :class:`PostgresStore`; anything else is the path of a :class:`SQLiteStore`.
        busy_timeout: Seconds a SQLite write waits for another writer's lock.
        password_file: A file holding the PostgreSQL password; refused for SQLite.

    Returns:
        The store; open it with ``await store.open()`` or ``async with``.

    Raises:
        ConfigurationError: On an invalid path, URL or timeout, or a password file given
            for a SQLite file.
    """
    if is_postgres_url(database):
        return PostgresStore(str(database), password_file=password_file)
    if password_file is not None:
        raise ConfigurationError(
            "a database password file only applies to a postgresql:// database, "
            f"not to the SQLite file {os.fspath(database)!r}"
        )
    return SQLiteStore(database, busy_timeout=busy_timeout)
