"""Exceptions raised by :mod:`polymarket_agents.storage`.

The tree::

    AgentError (core)
    └── StoreError                  base of every error the storage layer raises on purpose
        ├── StoreUnavailableError   transient: retry later (also a ConnectionError)
        │   └── StoreBusyError      another writer holds the database lock
        ├── StoreClosedError        the store was closed by its owner (also a RuntimeError)
        ├── SchemaVersionError      the file's schema is newer than this code (a ConfigurationError)
        └── StoreDefinitionError    the database refuses the statements or the credentials
                                    (a ConfigurationError)

``StoreUnavailableError`` subclasses ``ConnectionError`` on purpose: the core's
:func:`~polymarket_agents.core.async_utils.classify_error` then calls it recoverable, so
``robust_task`` and the ingestion worker retry it with the normal backoff without knowing
anything about SQLite or PostgreSQL. ``SchemaVersionError`` and ``StoreDefinitionError``
are configuration errors, hence fatal.
"""

from __future__ import annotations

from polymarket_agents.core.async_utils import AgentError, ConfigurationError

__all__ = [
    "SchemaVersionError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreDefinitionError",
    "StoreError",
    "StoreUnavailableError",
]


class StoreError(AgentError):
    """Base class of every exception the storage layer raises on purpose."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The database cannot take the write now; the same call may succeed later.

    Raised for a closed or broken connection (the store reconnects on its next call), a disk
    I/O error, a full disk or a file that cannot be opened. Nothing of the failed call was
    committed. The original exception is chained as ``__cause__``.
    """


class StoreBusyError(StoreUnavailableError):
    """Another connection held the database lock for longer than the busy timeout."""


class StoreClosedError(StoreError, RuntimeError):
    """The store was used after :meth:`close` was called on it."""


class SchemaVersionError(StoreError, ConfigurationError):
    """The database file's schema version is newer than any migration this code knows.

    Attributes:
        found: The ``user_version`` read from the file.
        supported: The newest version this code can write.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"database {path!r} has schema version {found}, newer than the {supported} this "
            "version of polymarket_agents supports; upgrade the package or use another file"
        )
        self.found = found
        self.supported = supported


class StoreDefinitionError(StoreError, ConfigurationError):
    """The database refuses the statements themselves or the credentials: retrying is futile.

    Raised for an unknown table or column, a missing privilege, a refused password or a
    database that does not exist; a person has to fix the database or the configuration.
    The original exception is chained as ``__cause__``.
    """
