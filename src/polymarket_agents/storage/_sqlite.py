"""``SQLiteStore``: the embedded default store, through aiosqlite, in WAL mode.

One process owns the file: the connection runs in SQLite's exclusive locking mode (no
other connection can read or write the file while it is open, and the WAL index lives in
the process's heap instead of a memory-mapped ``-shm`` file, whose faults would kill the
process with SIGBUS), and a lock file names the owner so that a second process refuses to
start with a clear message.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import aiosqlite
import msgspec

from polymarket_agents.core.async_utils import ConfigurationError, shielded

from ._codec import (
    InvalidRow,
    Params,
    encode_row,
    order_from_record,
    prepare,
)
from ._errors import StoreBusyError, StoreClosedError, StoreLostError, StoreUnavailableError
from ._ledger import Ledger
from ._lock import OwnerLock, PriorityLock, lock_holder
from ._rows import PaperOrderRow, Table
from ._schema import INSERT_SQL, MIGRATIONS, Migration, check_migrations, migrate
from ._store import RejectedRow, WriteResult

__all__ = ["DEFAULT_CHECK_INTERVAL", "DEFAULT_PATH", "LOGGER_NAME", "SQLiteStore", "open_store"]

LOGGER_NAME = "polymarket_agents.storage"
DEFAULT_PATH = Path("data/agents.sqlite")
"""Where the store lives unless told otherwise: relative to the working directory."""
DEFAULT_CHECK_INTERVAL = 1.0
"""Seconds between checks that the database file is still the one the store opened."""

_logger = logging.getLogger(LOGGER_NAME)


class _Failure(enum.Enum):
    """What a failed database call means for the connection it used."""

    BUSY = enum.auto()  # another writer holds the lock: retry on the same connection
    BROKEN = enum.auto()  # the connection is failing: close it, retry on a new one
    CLOSED = enum.auto()  # someone closed it under us: forget it, retry on a new one
    OTHER = enum.auto()  # anything else: raised as it is


WAL_CHECKPOINT_PAGES = 10_000
"""Pages the write-ahead log grows to before a commit copies them into the database
(about 40 MB at SQLite's 4 KiB pages; SQLite's default is 1,000). Each such checkpoint
syncs the files to disk, and at the default one came every few batches of a busy feed:
the writer spent more time in those syncs than in inserting rows."""

# Primary result codes (the low byte of extended codes) that retrying can fix.
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# SQLITE_READONLY among them: SQLite opens a file it may not write read-only without a
# word (after an I/O error on the WAL, say), and only a new connection can write again
# once the cause is fixed.
_BROKEN_CODES = frozenset(
    {
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_READONLY,
    }
)


def _failure(exc: BaseException) -> _Failure:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in _BUSY_CODES:
            return _Failure.BUSY
        if primary in _BROKEN_CODES:
            return _Failure.BROKEN
        # Raised by the sqlite3 module itself, without a result code.
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return _Failure.CLOSED
        return _Failure.OTHER
    # aiosqlite says "Connection closed" / "no active connection" with a plain ValueError.
    if isinstance(exc, ValueError) and (
        "closed" in str(exc).lower() or "no active connection" in str(exc)
    ):
        return _Failure.CLOSED
    return _Failure.OTHER


def _translate(exc: BaseException, failure: _Failure, path: Path) -> BaseException:
    if failure is _Failure.BUSY:
        return StoreBusyError(f"database {str(path)!r} is locked by another writer: {exc}")
    if failure is _Failure.BROKEN or failure is _Failure.CLOSED:
        return StoreUnavailableError(f"database {str(path)!r} is unavailable: {exc}")
    return exc


# A window of events read as one value: SQLite's JSON array of event_query's twelve
# columns. Read row by row, the sqlite3 module gives up the interpreter lock around each
# row's step and must wait out the switch interval to take it back while the event loop's
# thread computes, so the window read ahead barely moves until the loop waits for it; the
# aggregate is made by SQLite in one step, without the lock, and decoded in one call.
_EVENT_COLUMNS = ", ".join(f"c{i}" for i in range(12))
_Text = str | None
_EVENT_ROWS = msgspec.json.Decoder(
    list[tuple[int | None, int, str, int, int, int, _Text, _Text, _Text, _Text, _Text, _Text]]
)


def _packed_events(sql: str) -> str:
    """``sql`` (an :func:`~polymarket_agents.storage._ledger.event_query`) as one JSON
    array of its records, in its order (SQLite aggregates a CTE's rows as it yields them)."""
    return (
        f"WITH w({_EVENT_COLUMNS}) AS ({sql}) "
        f"SELECT CAST(json_group_array(json_array({_EVENT_COLUMNS})) AS BLOB) FROM w"
    )


class SQLiteStore(Ledger):
    """A :class:`~polymarket_agents.storage.Store` in one SQLite file, through aiosqlite.

    ::

        async with SQLiteStore("data/agents.sqlite") as store:
            result = await store.write_batch(rows)

    * The connection uses WAL mode, ``synchronous=NORMAL`` (a commit survives a crash of
      the process; a power cut may lose the last transactions, never corrupt the file) and
      a busy timeout. :meth:`write_trades` commits with ``synchronous=FULL``: a paper trade
      survives a power cut too.
    * With ``exclusive`` (the default) the store owns the file: SQLite's exclusive locking
      mode keeps every other connection out and the WAL index in heap memory (no ``-shm``
      file to fault on), and ``<path>.lock`` names the owning process; a second store
      refuses to open with :class:`~polymarket_agents.storage.StoreInUseError`.
    * The file is checked every ``check_interval`` seconds of writing, and after every
      failed write: if it was removed or replaced, every call from then on raises
      :class:`~polymarket_agents.storage.StoreLostError` and :attr:`lost` says why. A
      reconnect never creates a new file in place of the one that vanished.
    * A connection that SQLite opened read-only is refused (reconnecting later), and
      "attempt to write a readonly database" counts as a broken connection.
    * The schema is created on first open and migrated on later opens (see
      :data:`~polymarket_agents.storage.MIGRATIONS`).
    * :meth:`write_batch` writes each batch in one ``BEGIN IMMEDIATE`` transaction with one
      ``executemany`` per table, and rolls back on any error. If a constraint refuses a row,
      the batch is written again row by row in one transaction and the refused rows are
      reported, so a bad row never blocks the others.
    * A closed or broken connection (closed under the store, a disk I/O error) is reported
      as :class:`~polymarket_agents.storage.StoreUnavailableError` and replaced by a new
      connection on the next call.
    * Calls are serialised by a lock: one transaction at a time on the connection; calls
      of :meth:`write_trades` go before calls of :meth:`write_batch` waiting for it.

    Args:
        path: The database file; parent directories are created on open. ``":memory:"``
            is refused, since a reconnect would lose it.
        busy_timeout: Seconds a write waits for another writer's lock before it fails with
            :class:`~polymarket_agents.storage.StoreBusyError`.
        exclusive: Own the file (see above); False lets other connections read and write
            it meanwhile, through a memory-mapped ``-shm`` file.
        check_interval: Seconds between checks that the file is still there.
        migrations: The schema's history; the default is the package's schema.
        logger: Where connection events are logged.

    Raises:
        ConfigurationError: On ``":memory:"``, a negative busy timeout or check interval,
            or a bad migration list.
    """

    __slots__ = (
        "_busy_timeout",
        "_check_interval",
        "_checked_at",
        "_closed",
        "_conn",
        "_exclusive",
        "_full_sync",
        "_identity",
        "_lock",
        "_logger",
        "_lost",
        "_migrations",
        "_opened",
        "_owner",
        "_path",
        "_reconnects",
        "_schema_version",
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        busy_timeout: float = 5.0,
        exclusive: bool = True,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        migrations: Sequence[Migration] = MIGRATIONS,
        logger: logging.Logger | None = None,
    ) -> None:
        if os.fspath(path) in ("", ":memory:"):
            raise ConfigurationError(
                f"SQLiteStore needs a file path, not {os.fspath(path)!r}: an in-memory "
                "database would be lost on reconnect"
            )
        if not busy_timeout >= 0:
            raise ConfigurationError(f"busy_timeout must be >= 0, not {busy_timeout!r}")
        if not check_interval >= 0:
            raise ConfigurationError(f"check_interval must be >= 0, not {check_interval!r}")
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._exclusive = exclusive
        self._owner = OwnerLock(self._path) if exclusive else None
        self._check_interval = check_interval
        self._checked_at = float("-inf")
        self._identity: tuple[int, int] | None = None
        self._lost: str | None = None
        self._full_sync = False  # synchronous=FULL on the connection now
        self._migrations = check_migrations(migrations)
        self._logger = logger or _logger
        self._conn: aiosqlite.Connection | None = None
        self._lock = PriorityLock()
        self._closed = False
        self._opened = False
        self._reconnects = 0
        self._schema_version = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._conn is not None else "idle"
        return f"<SQLiteStore {str(self._path)!r} {state} schema={self._schema_version}>"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The schema version found or created by the last (re)connect; 0 before."""
        return self._schema_version

    @property
    def reconnects(self) -> int:
        """How many times a broken connection was replaced."""
        return self._reconnects

    @property
    def exclusive(self) -> bool:
        """Whether the store owns its file (exclusive locking mode and a lock file)."""
        return self._exclusive

    @property
    def lost(self) -> str | None:
        """Why the database is gone (removed or replaced), once a check found so; else None."""
        return self._lost

    @property
    def connection(self) -> aiosqlite.Connection | None:
        """The live aiosqlite connection, or None while disconnected: for diagnostics.

        Writing through it bypasses the store's lock and transactions.
        """
        return self._conn

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, set the pragmas and create or migrate the schema; a no-op if open.

        Raises:
            StoreClosedError: If the store was closed.
            StoreInUseError: If another process owns the file.
            StoreUnavailableError: If the file cannot be opened, is locked or can only be
                read now.
            StoreLostError: If the file opened before was removed or replaced.
            SchemaVersionError: If the file was written by a newer schema.
            sqlite3.Error: If a migration fails for another reason (it is rolled back).
        """
        async with self._lock.hold():
            await self._live()

    async def close(self) -> None:
        """Wait for a call in progress, then close the connection; idempotent.

        The close is shielded: cancelling the caller does not leave the connection open.
        An error while closing is logged at WARNING, not raised.
        """
        if self._closed:
            return
        self._closed = True
        await shielded(self._close_under_lock())

    async def _close_under_lock(self) -> None:
        async with self._lock.hold():
            conn, self._conn = self._conn, None
            try:
                if conn is not None:
                    await conn.close()
            except Exception as exc:
                # Closing is the last thing the owner does; a connection that failed
                # underneath must not turn its shutdown into an error.
                self._logger.warning("closing %s raised %r", self._path, exc)
            else:
                if conn is not None:
                    self._logger.debug("closed %s", self._path)
            finally:
                if self._owner is not None:
                    self._owner.release()

    async def _live(self) -> aiosqlite.Connection:
        """The open connection, connecting (again) if there is none. Call under the lock."""
        if self._closed:
            raise StoreClosedError(f"store {str(self._path)!r} is closed")
        if self._lost is not None:
            raise StoreLostError(str(self._path), self._lost)
        if self._conn is None:
            try:
                self._conn = await self._connect()
            except BaseException:
                if not self._opened and self._owner is not None:
                    self._owner.release()  # a failed first open owns nothing
                raise
            self._full_sync = False
            if self._opened:
                self._reconnects += 1
                self._logger.info("reconnected to %s", self._path)
            self._opened = True
        return self._conn

    async def _connect(self) -> aiosqlite.Connection:
        if self._identity is None:
            # Only the first open may create the file (and its directory): a reconnect
            # that created a fresh file would forget everything stored before.
            await asyncio.to_thread(_create_private, self._path)
        elif not await self._same_file():
            raise StoreLostError(str(self._path), self._lost or "vanished")
        if self._owner is not None and not self._owner.held:
            await asyncio.to_thread(self._owner.acquire)
        try:
            conn = await aiosqlite.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(exc, _failure(exc), self._path) from exc
        try:
            if self._exclusive:
                # Before anything reads the file: only then does SQLite keep the WAL
                # index in heap memory instead of mapping the -shm file.
                await conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            if not mode or str(mode[0][0]).lower() != "wal":
                self._logger.warning(
                    "%s: WAL mode unavailable, journal mode is %r", self._path, mode
                )
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            version, applied = await migrate(conn, self._migrations, str(self._path))
            # A write, so that a connection SQLite opened read-only fails now rather
            # than at every batch; in exclusive mode it also takes the lock for good.
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute(f"PRAGMA user_version = {int(version)}")
            await conn.execute("COMMIT")
            identity = await asyncio.to_thread(_identity, self._path)
        except BaseException as exc:
            await shielded(conn.close())
            if isinstance(exc, sqlite3.Error):
                failure = _failure(exc)
                if failure is _Failure.BUSY:
                    holder = await asyncio.to_thread(lock_holder, self._path)
                    if holder is not None:
                        raise StoreBusyError(
                            f"database {str(self._path)!r} is locked by process {holder}: {exc}"
                        ) from exc
                elif failure is _Failure.BROKEN and not await asyncio.to_thread(
                    _writable, self._path
                ):
                    # SQLite opens such a file read-only without a word, and the first
                    # write (or, in exclusive mode, the lock) fails with a vaguer error.
                    raise StoreUnavailableError(
                        f"database {str(self._path)!r} cannot be written (the file or its "
                        f"directory is read-only to this process): {exc}"
                    ) from exc
                raise _translate(exc, failure, self._path) from exc
            raise
        if identity is None:
            raise StoreLostError(str(self._path), "vanished while it was being opened")
        if self._identity is None:
            self._identity = identity
        for migration in applied:
            self._logger.info(
                "%s: applied migration %d (%s)",
                self._path,
                migration.version,
                migration.description,
            )
        self._schema_version = version
        return conn

    async def _recover(self, conn: aiosqlite.Connection, exc: BaseException) -> None:
        """Roll back or forget the connection after ``exc``, then raise what callers see.

        Raises the translated error (chained to ``exc``) for busy and broken connections;
        returns for anything else, which the caller re-raises unchanged.
        """
        failure = _failure(exc)
        if failure is _Failure.CLOSED:
            # Whoever closed it owns its thread: closing it again from here could race
            # with that close, so only forget it.
            self._forget(conn, exc)
        elif failure is _Failure.BROKEN:
            self._forget(conn, exc)
            await self._close_quietly(conn)
        else:
            try:
                await shielded(conn.rollback())
            except Exception as rollback_error:
                # A connection that cannot even roll back is not to be trusted again.
                self._logger.debug("rollback failed: %r", rollback_error)
                self._forget(conn, exc)
                if _failure(rollback_error) is not _Failure.CLOSED:
                    await self._close_quietly(conn)
        if failure is not _Failure.OTHER:
            # Raised, not returned: a local holding the new error would make a reference
            # cycle through this frame, keeping everything in it alive until a GC pass.
            raise _translate(exc, failure, self._path) from exc

    def _forget(self, conn: aiosqlite.Connection, exc: BaseException) -> None:
        if self._conn is conn:
            self._conn = None
            self._logger.warning(
                "connection to %s failed (%s: %s); reconnecting on next use",
                self._path,
                type(exc).__name__,
                exc,
            )

    async def _close_quietly(self, conn: aiosqlite.Connection) -> None:
        try:
            await shielded(conn.close())
        except Exception as close_error:
            self._logger.debug("closing the failed connection raised %r", close_error)

    async def write_batch(self, rows: Sequence[object]) -> WriteResult:
        """Write ``rows`` in one transaction, ignoring rows already stored.

        Args:
            rows: Row objects (:data:`~polymarket_agents.storage.Row`); anything else, and
                rows with invalid fields, are rejected and reported.

        Returns:
            Counts of written and duplicate rows per table, and the rejected rows.

        Raises:
            StoreUnavailableError: On a transient failure (``StoreBusyError`` if another
                writer held the lock, ``StoreLostError`` if the file is gone); nothing was
                committed.
            StoreClosedError: If the store was closed.
            sqlite3.Error: On an unexpected database error; nothing was committed.
        """
        return await self._write(rows, urgent=False)

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        """Write paper-trading rows durably, ahead of the market data waiting to be written.

        As :meth:`write_batch`, but the call goes before every :meth:`write_batch` call
        waiting for the connection (market data delays it by one transaction at most),
        and the commit is synced to disk (``synchronous=FULL``) before it returns.

        Raises:
            StoreUnavailableError: On a transient failure; nothing was committed.
            StoreClosedError: If the store was closed.
            sqlite3.Error: On an unexpected database error; nothing was committed.
        """
        return await self._write(rows, urgent=True)

    async def _write(self, rows: Sequence[object], *, urgent: bool) -> WriteResult:
        if self._closed:
            raise StoreClosedError(f"store {str(self._path)!r} is closed")
        groups, rejected = prepare(rows)
        if not groups:
            return WriteResult(rejected=tuple(rejected))
        if asyncio.get_running_loop().time() - self._checked_at >= self._check_interval:
            await self.verify()
        try:
            async with self._lock.hold(urgent=urgent):
                conn = await self._live()
                try:
                    if urgent is not self._full_sync:
                        # Trades are rare: switching for them costs less than a second
                        # connection, which exclusive mode would not allow anyway.
                        await conn.execute(f"PRAGMA synchronous = {'FULL' if urgent else 'NORMAL'}")
                        self._full_sync = urgent
                    try:
                        written, duplicates = await self._write_groups(conn, groups)
                    except sqlite3.IntegrityError as exc:
                        # A CHECK or NOT NULL constraint refused a row that passed
                        # encoding: find which, writing the batch row by row in one new
                        # transaction.
                        self._logger.debug("constraint failed (%s); writing row by row", exc)
                        await conn.rollback()
                        written, duplicates, refused = await self._write_rows(conn, rows)
                        rejected.extend(refused)
                except BaseException as exc:
                    await self._recover(conn, exc)
                    raise
        except (sqlite3.Error, StoreUnavailableError):
            # A failing write is the moment a vanished file shows: say so, not "I/O".
            await self.verify()
            raise
        return WriteResult(written=written, duplicates=duplicates, rejected=tuple(rejected))

    async def verify(self) -> None:
        """Check that the file at the store's path is still the one it opened.

        A store that has not connected yet has nothing to check. A file that cannot be
        examined (a directory without permission) is not taken to be gone.

        Raises:
            StoreLostError: If the file was removed or replaced (from now on, every call
                raises it).
        """
        if self._lost is None and self._identity is not None:
            self._checked_at = asyncio.get_running_loop().time()
            if await self._same_file():
                return
        if self._lost is not None:
            raise StoreLostError(str(self._path), self._lost)

    async def _same_file(self) -> bool:
        """False (with :attr:`lost` set and logged) if the file is not the one opened."""
        try:
            identity = await asyncio.to_thread(_identity, self._path)
        except OSError:
            return True
        if identity == self._identity:
            return True
        if self._lost is None:
            assert self._identity is not None
            device, inode = self._identity
            now = "is missing" if identity is None else f"is now inode {identity[1]}"
            self._lost = (
                f"vanished: the file opened (device {device}, inode {inode}) was removed or "
                f"replaced and the path {now}; what was written to it since it was opened "
                "is gone with it"
            )
            self._logger.error("database %s %s", self._path, self._lost)
        return False

    async def _write_groups(
        self, conn: aiosqlite.Connection, groups: dict[Table, list[Params]]
    ) -> tuple[dict[Table, int], dict[Table, int]]:
        written: dict[Table, int] = {}
        duplicates: dict[Table, int] = {}
        await conn.execute("BEGIN IMMEDIATE")
        for table, params in groups.items():
            # For executemany, rowcount sums the rows each execution changed; rows
            # skipped by ON CONFLICT DO NOTHING change nothing. The cursor is dropped at
            # once: a live cursor keeps a closed connection's transaction, and so the
            # database's write lock, alive until it is collected.
            changed = max((await conn.executemany(INSERT_SQL[table], params)).rowcount, 0)
            written[table] = changed
            duplicates[table] = len(params) - changed
        await conn.execute("COMMIT")
        return written, duplicates

    async def _write_rows(
        self, conn: aiosqlite.Connection, rows: Sequence[object]
    ) -> tuple[dict[Table, int], dict[Table, int], list[RejectedRow]]:
        written: dict[Table, int] = {}
        duplicates: dict[Table, int] = {}
        refused: list[RejectedRow] = []
        await conn.execute("BEGIN IMMEDIATE")
        for index, row in enumerate(rows):
            try:
                table, params = encode_row(row)
            except InvalidRow:
                continue  # already reported by prepare()
            try:
                changed = max((await conn.execute(INSERT_SQL[table], params)).rowcount, 0)
            except sqlite3.IntegrityError as exc:
                # Only this statement is undone; the transaction goes on.
                refused.append(RejectedRow(index, row, f"refused by the database: {exc}"))
                continue
            written[table] = written.get(table, 0) + changed
            duplicates[table] = duplicates.get(table, 0) + 1 - changed
        await conn.execute("COMMIT")
        return written, duplicates, refused

    async def _fetchall(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        async with self._lock.hold():
            conn = await self._live()
            try:
                return list(await conn.execute_fetchall(sql, params))
            except BaseException as exc:
                await self._recover(conn, exc)
                raise

    async def latest_orders(self) -> list[PaperOrderRow]:
        """The latest order with a signal id of each market, by market.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        records = await self._fetchall(
            f"SELECT {_ORDER_COLUMNS} FROM paper_orders WHERE id IN "
            "(SELECT max(id) FROM paper_orders WHERE signal_id IS NOT NULL GROUP BY market) "
            "ORDER BY market"
        )
        return [order_from_record(record) for record in records]

    # -- the ledger's primitives (see Ledger) ----------------------------------------------

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[Sequence[Any]]:
        return list(await self._fetchall(sql, params))

    async def _event_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        try:
            records = await self._fetchall(_packed_events(sql), params)
            return cast(list[Sequence[Any]], _EVENT_ROWS.decode(records[0][0]))
        except (sqlite3.Error, msgspec.DecodeError) as exc:  # ValidationError is one
            # A value no event could have been stored as (a BLOB, text in a number's
            # column, text that is not UTF-8) fails the aggregate or its decoding: read
            # the window row by row, as the reader would have, to get what it would get.
            _logger.debug("reading a window of events row by row: %r", exc)
            return await self._query(sql, params)

    async def _transaction(
        self, steps: Sequence[tuple[str, Sequence[object]]]
    ) -> list[list[Sequence[Any]]]:
        async with self._lock.hold():
            conn = await self._live()
            try:
                await conn.execute("BEGIN IMMEDIATE")
                results: list[list[Sequence[Any]]] = [
                    list(await conn.execute_fetchall(sql, p)) for sql, p in steps
                ]
                await conn.execute("COMMIT")
            except BaseException as exc:
                await self._recover(conn, exc)
                raise
            return results

    async def _stream(
        self, sql: str, params: Sequence[object], chunk: int
    ) -> AsyncIterator[list[Sequence[Any]]]:
        async with self._lock.hold():
            conn = await self._live()
            try:
                cursor = await conn.execute(sql, params)
            except BaseException as exc:
                await self._recover(conn, exc)
                raise
            try:
                while records := list(await cursor.fetchmany(chunk)):
                    yield list[Sequence[Any]](records)
            finally:
                await shielded(cursor.close())


_ORDER_COLUMNS = (
    "order_id, signal_id, market, token_id, side, price, size, order_type, status, "
    "created_at_ms, filled_size, updated_at_ms, revision, error, account_id"
)


def _writable(path: Path) -> bool:
    """Whether this process may write the file and create files beside it (the WAL)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of the file at ``path``; None if there is none.

    Raises:
        OSError: If it cannot be examined for another reason.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _create_private(path: Path) -> None:
    """Create the parent directories, and the database file readable by its owner only
    (SQLite would create it with the umask's 0644, and its -wal and -shm files take the
    database's mode); an existing file keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


async def open_store(
    path: str | os.PathLike[str] = DEFAULT_PATH,
    *,
    busy_timeout: float = 5.0,
    exclusive: bool = True,
) -> SQLiteStore:
    """Open (creating if needed) the SQLite store at ``path``.

    Parent directories are created, the schema is created or migrated. Close the store
    with :meth:`SQLiteStore.close` (or use ``async with SQLiteStore(path)`` instead).

    Args:
        path: The database file.
        busy_timeout: Seconds a write waits for another writer's lock.
        exclusive: Own the file (see :class:`SQLiteStore`).

    Returns:
        The open store.

    Raises:
        ConfigurationError: On an invalid path or timeout.
        StoreInUseError: If another process owns the file.
        StoreUnavailableError: If the file cannot be opened now.
        SchemaVersionError: If the file was written by a newer schema.
    """
    store = SQLiteStore(path, busy_timeout=busy_timeout, exclusive=exclusive)
    await store.open()
    return store
