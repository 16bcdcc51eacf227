"""Exceptions raised by :mod:`polymarket_agents.storage`.

The tree::

    AgentError (core)
    └── StoreError                  base of every error the storage layer raises on purpose
        ├── StoreUnavailableError   transient: retry later (also a ConnectionError)
        │   ├── StoreBusyError      another writer holds the database lock
        │   └── StoreLostError      the database was removed or replaced under the store
        ├── StoreInUseError         another process owns the database
        ├── StoreClosedError        the store was closed by its owner (also a RuntimeError)
        ├── AccountOverdrawnError   the shared paper account cannot pay for a decided order
        ├── SchemaVersionError      the file's schema is newer than this code (a ConfigurationError)
        └── StoreDefinitionError    the database refuses the statements or the credentials
                                    (a ConfigurationError)

``StoreUnavailableError`` subclasses ``ConnectionError`` on purpose: the core's
:func:`~polymarket_agents.core.async_utils.classify_error` then calls it recoverable, so
``robust_task`` and the ingestion worker retry it with the normal backoff without knowing
anything about SQLite or PostgreSQL. ``SchemaVersionError`` and ``StoreDefinitionError``
are configuration errors, hence fatal.
``StoreLostError`` is a ``StoreUnavailableError`` too, so that whatever holds rows keeps
them and retries (they are counted as not stored in the end) rather than drops them.
"""

from __future__ import annotations

from decimal import Decimal

from polymarket_agents.core.async_utils import AgentError, ConfigurationError

__all__ = [
    "AccountOverdrawnError",
    "SchemaVersionError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreDefinitionError",
    "StoreError",
    "StoreInUseError",
    "StoreLostError",
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


class StoreLostError(StoreUnavailableError):
    """The database the store opened is gone: its file was removed or replaced.

    Whatever was committed to it since it was opened is no longer at its path. The store
    does not create a new file in its place (a fresh database would forget the paper
    account's signals); every later call raises this error until the store is closed.

    Attributes:
        path: The database path.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"database {path!r} {reason}")
        self.path = path


class StoreInUseError(StoreError):
    """Another process (or another store in this one) owns the database file.

    Attributes:
        path: The database path.
        pid: The owner's process id, when known.
        lock_path: The lock file that names the owner, if the owner was found through it.
    """

    def __init__(self, path: str, pid: int | None, lock_path: str | None = None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        where = f" (see {lock_path!r})" if lock_path else ""
        super().__init__(
            f"database {path!r} is in use by {holder}{where}: one process writes a database "
            "file at a time; stop that process or choose another database path"
        )
        self.path = path
        self.pid = pid
        self.lock_path = lock_path


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


class AccountOverdrawnError(StoreError):
    """The paper account replicas share cannot pay for the orders about to be recorded.

    Raised by :meth:`PostgresStore.write_trades` for a write-ahead record of purchases
    whose notional is more than the shared cash left (fills of every replica and the
    purchases other replicas have decided but not yet carried out are counted); nothing was
    recorded, so the orders must not be executed.

    Attributes:
        available: The cash left, USDC.
        needed: What the orders need, USDC.
    """

    def __init__(self, available: Decimal, needed: Decimal) -> None:
        super().__init__(
            f"the shared paper account has {available:.2f} USDC left; the orders need {needed:.2f}"
        )
        self.available = available
        self.needed = needed
