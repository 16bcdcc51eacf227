"""``PostgresStore``: the shared store, through asyncpg.

asyncpg rather than psycopg 3: it speaks PostgreSQL's protocol natively on the event loop
(no libpq, no thread per call), its binary ``COPY`` from Python tuples is implemented in
Cython (the batch path that dominates ingestion), and its exceptions carry the server's
SQLSTATE as classes, which the fault classification below keys on. It reads
credentials the way libpq does: from the URL, ``PGPASSWORD`` or a ``.pgpass`` file
(``PGPASSFILE``); a plain password file, as Kubernetes and Docker mount secrets, is read by
the store itself.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from polymarket_agents.core.async_utils import ConfigurationError, shielded

from ._codec import (
    InvalidRow,
    Params,
    encode_row,
    order_from_record,
    prepare,
)
from ._errors import (
    AccountOverdrawnError,
    SchemaVersionError,
    StoreClosedError,
    StoreDefinitionError,
    StoreError,
    StoreLostError,
    StoreUnavailableError,
)
from ._ledger import Ledger, numbered
from ._pgschema import (
    ACCOUNT_CASH_SQL,
    ADVISORY_NAMESPACE,
    COLUMNS,
    COPY_TABLES,
    INSERT_ONE_SQL,
    MIGRATE_LOCK,
    PG_MIGRATIONS,
    UPDATE_ORDER_SQL,
)
from ._rows import PaperOrderRow, Table
from ._schema import Migration, check_migrations
from ._sqlite import LOGGER_NAME
from ._store import RejectedRow, WriteResult

__all__ = ["PostgresStore", "is_postgres_url", "redact_url"]

_logger = logging.getLogger(LOGGER_NAME)

_SCHEMES = ("postgresql", "postgres")

# After a batch found rows already stored, this many batches go through the staging
# table (which sorts duplicates out) before plain COPY is tried again.
_CAREFUL_BATCHES = 32


def is_postgres_url(database: object) -> bool:
    """Whether ``database`` is a ``postgresql://`` (or ``postgres://``) URL, not a file path."""
    return isinstance(database, str) and database.split("://", 1)[0].lower() in _SCHEMES


def redact_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password`` parameter).

    ``postgresql://agents:secret@db:5432/agents?sslmode=require`` becomes
    ``postgresql://agents:***@db:5432/agents?sslmode=require``; shown in logs, reprs and
    errors instead of the URL itself.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() in ("password", "sslpassword") else v) for k, v in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class _Failure(enum.Enum):
    """What a failed database call means, for the caller and for the connection."""

    BROKEN = enum.auto()  # the connection is gone or unusable: drop it, retry on a new one
    TRANSIENT = enum.auto()  # the server refused for now; the connection is fine: retry
    DEFINITION = enum.auto()  # the statements or credentials are wrong: a person must act
    OTHER = enum.auto()  # anything else: raised as it is


# SQLSTATE classes and codes that retrying can fix; see PostgreSQL's "Error Codes" appendix.
_BROKEN_STATES = ("08", "57P01", "57P02", "57P03", "25006")  # connection, shutdown, read-only
_TRANSIENT_STATES = ("40", "53", "55P03", "57014", "58")  # rollback, resources, lock, I/O
_DEFINITION_STATES = ("42", "28", "3D", "3F")  # definitions, authorisation, catalog, schema


def _failure(exc: BaseException) -> _Failure:
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state.startswith(_BROKEN_STATES):
            return _Failure.BROKEN
        if state.startswith(_TRANSIENT_STATES):
            return _Failure.TRANSIENT
        if state.startswith(_DEFINITION_STATES):
            return _Failure.DEFINITION
        return _Failure.OTHER
    if isinstance(
        exc, asyncpg.InterfaceError | asyncpg.InternalClientError | OSError | TimeoutError
    ):
        # asyncpg reports a closed connection, and an operation left half done by a
        # cancellation, as InterfaceError; a session the server ended while it was idle
        # (an administrator's kill) confuses its state machine (InternalClientError);
        # sockets fail with OSError.
        return _Failure.BROKEN
    return _Failure.OTHER


def _rowcount(status: str) -> int:
    # "INSERT 0 12", "UPDATE 3", "COPY 500": the count is the last word.
    return int(status.rsplit(" ", 1)[-1])


_Check: TypeAlias = Callable[[asyncpg.Connection, dict[Table, list[Params]]], Awaitable[None]]

_ROW_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,  # CHECK, NOT NULL
    asyncpg.DataError,  # a NUL character in text, a value out of range
    UnicodeEncodeError,  # a lone surrogate in a str
)


class PostgresStore(Ledger):
    """A :class:`~polymarket_agents.storage.Store` in a PostgreSQL database, through asyncpg.

    ::

        async with PostgresStore("postgresql://agents@db/agents") as store:
            result = await store.write_batch(rows)

    * The schema (the same tables and natural keys as :class:`SQLiteStore`'s) is created
      on first open and migrated on later opens; replicas opening together apply each
      migration once.
    * :meth:`write_batch` writes each batch in one transaction. Insert-only tables go
      through binary ``COPY``: straight into the table while batches hold only new rows;
      if one holds a row already stored (a replay after a failure), the transaction is
      rolled back and the batch goes through ``COPY`` into a temporary staging table and
      ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` instead, as do the next batches for
      a while. Markets and orders, which a newer version updates, are written row by row.
    * A row the database refuses (a ``CHECK`` constraint, a NUL character in text) is
      found by writing the batch again row by row, each under a savepoint, and reported
      in :attr:`WriteResult.rejected`; the others are committed.
    * Faults are classified by SQLSTATE: a lost connection, an administrator's shutdown,
      a server in recovery or read-only (a failover) drop the connection; serialization
      failures, deadlocks, lock and statement timeouts, full disks and exhausted
      connection slots keep it. Both raise
      :class:`~polymarket_agents.storage.StoreUnavailableError`, retried by the caller.
      Unknown tables or columns, missing privileges and refused credentials raise
      :class:`~polymarket_agents.storage.StoreDefinitionError`, a ``ConfigurationError``.
    * Paper trades (:meth:`write_trades`) have a connection of their own, committing
      synchronously, so market data never delays them; each connection takes one call at
      a time.
    * The database's identity (its oid and that of its ``schema_migrations`` table) is
      noted at first open: a database dropped and created again, or whose tables were
      dropped, is reported as lost (:class:`~polymarket_agents.storage.StoreLostError`)
      rather than silently migrated afresh, which would forget the paper account.

    Args:
        url: A ``postgresql://user[:password]@host[:port]/database[?options]`` URL.
            Without a password in it, the password comes from ``password_file``, else
            from ``PGPASSWORD`` or a ``.pgpass`` file, as libpq would find them.
        password_file: A file whose content (trailing newline removed) is the password,
            read at every connect so that a rotated secret is picked up.
        connect_timeout: Seconds a connection attempt may take.
        command_timeout: Seconds one statement may take before the connection is taken
            to be dead.
        migrations: The schema's history; the default is the package's schema.
        logger: Where connection events are logged (never with the password).

    Raises:
        ConfigurationError: If ``url`` is not a PostgreSQL URL, a timeout is not positive,
            or the migration list is bad.
    """

    __slots__ = (
        "_careful",
        "_closed",
        "_command_timeout",
        "_connect_timeout",
        "_data",
        "_identity",
        "_logger",
        "_lost",
        "_migrations",
        "_opened",
        "_password_file",
        "_reconnects",
        "_schema_version",
        "_trades",
        "_url",
        "_where",
    )

    def __init__(
        self,
        url: str,
        *,
        password_file: str | os.PathLike[str] | None = None,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
        migrations: Sequence[Migration] = PG_MIGRATIONS,
        logger: logging.Logger | None = None,
    ) -> None:
        if not is_postgres_url(url):
            raise ConfigurationError(
                f"not a PostgreSQL URL: {redact_url(str(url))!r}; "
                "write postgresql://user@host:port/database"
            )
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("command_timeout", command_timeout),
        ):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0, not {value!r}")
        self._url = url
        self._where = redact_url(url)
        self._password_file = None if password_file is None else Path(password_file)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._migrations = check_migrations(migrations)
        self._logger = logger or _logger
        # Market data and paper trades on connections of their own: a trade never waits
        # behind a market-data batch, and commits synchronously whatever the server's
        # default.
        self._data = _Session("market data")
        self._trades = _Session("trades")
        self._identity: tuple[int, int] | None = None
        self._lost: str | None = None
        self._closed = False
        self._opened = False
        self._reconnects = 0
        self._schema_version = 0
        self._careful = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._data.conn is not None else "idle"
        return f"<PostgresStore {self._where!r} {state} schema={self._schema_version}>"

    @property
    def location(self) -> str:
        """The database's URL without its password: what logs and status pages show."""
        return self._where

    @property
    def schema_version(self) -> int:
        """The schema version found or created by the last (re)connect; 0 before."""
        return self._schema_version

    @property
    def reconnects(self) -> int:
        """How many times a broken connection was replaced."""
        return self._reconnects

    @property
    def lost(self) -> str | None:
        """Why the database is gone (dropped, or its tables), once a check found so; else None."""
        return self._lost

    @property
    def connection(self) -> asyncpg.Connection | None:
        """The live market-data connection, or None while disconnected: for diagnostics.

        Writing through it bypasses the store's lock and transactions.
        """
        return self._data.conn

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

    async def connect(self) -> asyncpg.Connection:
        """A new connection to the database with the store's credentials and timeouts.

        For callers that need a session of their own (an advisory lock); the store does
        not track it: close it when done.

        Raises:
            StoreUnavailableError: If the server cannot be reached now.
            StoreDefinitionError: If the credentials or the database name are refused.
            ConfigurationError: If the password file cannot be read.
        """
        password = None
        if self._password_file is not None:
            try:
                text = await asyncio.to_thread(self._password_file.read_text)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the database password file {str(self._password_file)!r}: "
                    f"{exc.strerror or exc}"
                ) from None
            password = text.rstrip("\r\n")
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                self._url,
                password=password,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings={"application_name": "polymarket-agents"},
            )
        except Exception as exc:
            raise self._translate(exc, _failure(exc)) from exc
        return conn

    async def open(self) -> None:
        """Connect and create or migrate the schema; a no-op if open.

        Raises:
            StoreClosedError: If the store was closed.
            StoreUnavailableError: If the server cannot be reached now.
            StoreDefinitionError: If the credentials, database or privileges are wrong.
            SchemaVersionError: If the database was written by a newer schema.
        """
        async with self._data.lock:
            await self._live(self._data)
        async with self._trades.lock:
            await self._live(self._trades)

    async def close(self) -> None:
        """Wait for calls in progress, then close the connections; idempotent.

        The close is shielded: cancelling the caller does not leave a connection open.
        An error while closing is logged at WARNING, not raised.
        """
        if self._closed:
            return
        self._closed = True
        await shielded(self._close_session(self._trades))
        await shielded(self._close_session(self._data))

    async def _close_session(self, session: _Session) -> None:
        async with session.lock:
            conn, session.conn = session.conn, None
            if conn is None:
                return
            try:
                await conn.close(timeout=5)
            except Exception as exc:
                self._logger.warning("closing %s raised %r", self._where, exc)
                conn.terminate()
            else:
                self._logger.debug("closed the %s connection to %s", session.name, self._where)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self._where!r} is closed")
        if self._lost is not None:
            raise StoreLostError(self._where, self._lost)

    async def _live(self, session: _Session) -> asyncpg.Connection:
        """The session's connection, connecting (again) if there is none. Call under its lock."""
        self._check_open()
        if session.conn is not None and session.conn.is_closed():
            session.conn = None  # closed underneath us, noticed while idle
        if session.conn is None:
            try:
                session.conn = await self._connect(session)
            except StoreDefinitionError as exc:
                if self._identity is not None and isinstance(
                    exc.__cause__, asyncpg.InvalidCatalogNameError
                ):
                    self._mark_lost("was dropped")
                    raise StoreLostError(self._where, "was dropped") from exc
                raise
            if session.opened:
                self._reconnects += 1
                self._logger.info("reconnected the %s connection to %s", session.name, self._where)
            session.opened = True
        return session.conn

    async def _connect(self, session: _Session) -> asyncpg.Connection:
        conn = await self.connect()
        try:
            if self._identity is not None:
                # Never migrate a database that replaced the one opened: a fresh one
                # would forget every signal the paper account has handled.
                identity = await _identity(conn)
                if identity != self._identity:
                    self._mark_lost(self._change(identity))
                    raise StoreLostError(self._where, self._lost or "")
            applied: list[Migration] = []
            version = self._schema_version
            if session is self._data or not version:
                version, applied = await _migrate(conn, self._migrations, self._where)
            self._identity = self._identity or await _identity(conn)
            if session is self._trades:
                # Durable before the call returns, whatever the server's default says.
                await conn.execute("SET synchronous_commit = on")
            session.staged.clear()
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, Exception) and not isinstance(exc, SchemaVersionError | StoreError):
                raise self._translate(exc, _failure(exc)) from exc
            raise
        for migration in applied:
            self._logger.info(
                "%s: applied migration %d (%s)",
                self._where,
                migration.version,
                migration.description,
            )
        self._schema_version = version
        return conn

    def _change(self, identity: tuple[int, int]) -> str:
        assert self._identity is not None
        if identity[0] != self._identity[0]:
            return "was dropped and created again"
        return "lost its tables" if not identity[1] else "had its tables replaced"

    def _mark_lost(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
            self._logger.error("database %s %s; nothing more is written to it", self._where, reason)

    async def verify(self) -> None:
        """Check that the database the store opened is still there, with its tables.

        A store that has not connected yet has nothing to check; a server that cannot be
        reached is not taken to be gone (that is an outage, retried).

        Raises:
            StoreLostError: If the database was dropped or replaced, or its tables were
                dropped (from now on, every call raises it).
            StoreUnavailableError: If the server cannot be reached now.
        """
        if self._lost is None and self._identity is not None:
            async with self._data.lock:
                conn = await self._live(self._data)
                try:
                    identity = await _identity(conn)
                except BaseException as exc:
                    self._recover(self._data, conn, exc)
                    raise
                if identity != self._identity:
                    self._mark_lost(self._change(identity))
        if self._lost is not None:
            raise StoreLostError(self._where, self._lost)

    def _translate(self, exc: Exception, failure: _Failure) -> Exception:
        if failure is _Failure.BROKEN or failure is _Failure.TRANSIENT:
            return StoreUnavailableError(f"database {self._where!r} is unavailable: {exc}")
        if failure is _Failure.DEFINITION:
            return StoreDefinitionError(f"database {self._where!r} refused: {exc}")
        return exc

    def _recover(self, session: _Session, conn: asyncpg.Connection, exc: BaseException) -> None:
        """Drop the connection if ``exc`` broke it; raise what callers see for known faults.

        Returns for anything else, which the caller re-raises unchanged.
        """
        failure = _failure(exc)
        if failure is _Failure.BROKEN or isinstance(exc, asyncio.CancelledError):
            # A statement cut short by a cancellation leaves the session in an unknown
            # state (a transaction open, a COPY half sent): start afresh.
            if session.conn is conn:
                session.conn = None
                self._logger.warning(
                    "%s connection to %s failed (%s: %s); reconnecting on next use",
                    session.name,
                    self._where,
                    type(exc).__name__,
                    exc,
                )
            conn.terminate()
        if isinstance(exc, asyncpg.UndefinedTableError) and self._identity is not None:
            # The tables the store created are gone: a database to trust no more.
            self._mark_lost("lost its tables")
            raise StoreLostError(self._where, self._lost or "") from exc
        if isinstance(exc, Exception) and failure is not _Failure.OTHER:
            # Raised, not returned: a local holding the new error would make a reference
            # cycle through this frame.
            raise self._translate(exc, failure) from exc

    async def write_batch(self, rows: Sequence[object]) -> WriteResult:
        """Write ``rows`` in one transaction, ignoring rows already stored.

        Args:
            rows: Row objects (:data:`~polymarket_agents.storage.Row`); anything else, and
                rows with invalid fields, are rejected and reported.

        Returns:
            Counts of written and duplicate rows per table, and the rejected rows.

        Raises:
            StoreUnavailableError: On a transient failure; nothing was committed.
            StoreLostError: If the database was dropped or replaced.
            StoreDefinitionError: If the database refuses the statements themselves.
            StoreClosedError: If the store was closed.
            asyncpg.PostgresError: On an unexpected database error; nothing was committed.
        """
        return await self._write(self._data, rows)

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        """Write paper-trading rows durably, never behind market data.

        As :meth:`write_batch`, on a connection of their own (so a market-data batch in
        progress does not delay them) with ``synchronous_commit = on``: the commit is on
        the server's disk before the call returns.

        A paper account is shared by every store (every replica) on the database: each
        call's transaction first locks the rows of the accounts it records trades for
        (``SELECT ... FOR UPDATE``, held to its commit), then refuses write-ahead purchases
        (``pending`` BUY orders not stored yet) whose notional is more than the account's
        cash left: its starting cash plus what its stored fills moved, less the purchases
        other calls decided and have not carried out. Two replicas can never spend the
        same cash.

        Raises:
            AccountOverdrawnError: If the shared account cannot pay for the purchases;
                nothing was recorded.
            StoreUnavailableError: On a transient failure; nothing was committed.
            StoreLostError: If the database was dropped or replaced.
            StoreClosedError: If the store was closed.
            asyncpg.PostgresError: On an unexpected database error; nothing was committed.
        """
        return await self._write(self._trades, rows)

    async def _check_account(
        self, conn: asyncpg.Connection, groups: dict[Table, list[Params]]
    ) -> None:
        """Take the rows of the accounts traded (``FOR UPDATE``, in id order, so that two
        transactions never wait on each other crosswise); refuse purchases they cannot pay."""
        # Codec order: order_id, signal_id, market, token_id, side, price, size, type,
        # status, ..., account_id (last); fills carry account_id too.
        orders = groups.get(Table.PAPER_ORDERS, [])
        fills = groups.get(Table.FILLS, [])
        accounts = {int(str(p[-1])) for p in orders} | {int(str(p[9])) for p in fills}
        if not accounts:
            return
        rows = await conn.fetch(
            "SELECT id, starting_cash FROM accounts WHERE id = ANY($1::bigint[]) "
            "ORDER BY id FOR UPDATE",
            sorted(accounts),
        )
        starting = {int(r[0]): Decimal(r[1]) for r in rows}
        intents = {
            p[0]: (int(str(p[-1])), Decimal(str(p[5])) * Decimal(str(p[6])))
            for p in orders
            if p[8] == "pending" and p[4] == "BUY" and int(str(p[-1])) in starting
        }
        if not intents:
            return
        stored = await conn.fetch(
            "SELECT order_id FROM paper_orders WHERE order_id = ANY($1::text[])", list(intents)
        )
        for found in stored:  # a replayed record reserves nothing more
            intents.pop(found[0], None)
        needed: dict[int, Decimal] = {}
        for account, notional in intents.values():
            needed[account] = needed.get(account, Decimal(0)) + notional
        for account, amount in sorted(needed.items()):
            cash = await conn.fetchrow(ACCOUNT_CASH_SQL, account)
            assert cash is not None
            available = starting[account] + Decimal(cash[0]) - Decimal(cash[1])
            if amount > available:
                raise AccountOverdrawnError(available, amount)

    async def _write(self, session: _Session, rows: Sequence[object]) -> WriteResult:
        self._check_open()
        groups, rejected = prepare(rows)
        if not groups:
            return WriteResult(rejected=tuple(rejected))
        async with session.lock:
            conn = await self._live(session)
            try:
                try:
                    written, duplicates = await self._write_groups(
                        session,
                        conn,
                        groups,
                        self._check_account if session is self._trades else None,
                    )
                except _ROW_ERRORS as exc:
                    # A constraint refused a row that passed encoding: find which,
                    # writing the batch row by row in one new transaction.
                    self._logger.debug("a row was refused (%s); writing row by row", exc)
                    written, duplicates, refused = await self._write_rows(conn, rows)
                    rejected.extend(refused)
            except BaseException as exc:
                self._recover(session, conn, exc)
                raise
        return WriteResult(written=written, duplicates=duplicates, rejected=tuple(rejected))

    async def _write_groups(
        self,
        session: _Session,
        conn: asyncpg.Connection,
        groups: dict[Table, list[Params]],
        check: _Check | None = None,
    ) -> tuple[dict[Table, int], dict[Table, int]]:
        copied = COPY_TABLES.intersection(groups)
        if not self._careful and copied:
            try:
                return await self._write_once(conn, groups, staged=False, check=check)
            except asyncpg.UniqueViolationError:
                # Rolled back; the staging path sorts the duplicates out.
                self._careful = _CAREFUL_BATCHES
        for table in copied - session.staged:
            # Made on first use, outside the batch's transaction (a rollback would take
            # it away); emptied at every commit, so a batch's rows never outlive it.
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} ON COMMIT DELETE ROWS AS "
                f"SELECT {', '.join(COLUMNS[table])} FROM {table} WITH NO DATA"
            )
            session.staged.add(table)
        written, duplicates = await self._write_once(conn, groups, staged=True, check=check)
        if self._careful and not sum(duplicates.values()):
            self._careful -= 1
        return written, duplicates

    async def _write_once(
        self,
        conn: asyncpg.Connection,
        groups: dict[Table, list[Params]],
        *,
        staged: bool,
        check: _Check | None = None,
    ) -> tuple[dict[Table, int], dict[Table, int]]:
        written: dict[Table, int] = {}
        duplicates: dict[Table, int] = {}
        async with conn.transaction():
            if check is not None:
                await check(conn, groups)
            for table, params in groups.items():
                if table not in COPY_TABLES:
                    changed = 0
                    for one in params:
                        changed += await _insert_one(conn, table, one)
                elif staged:
                    columns = COLUMNS[table]
                    await conn.copy_records_to_table(
                        f"stage_{table}", records=params, columns=columns
                    )
                    names = ", ".join(columns)
                    changed = _rowcount(
                        await conn.execute(
                            f"INSERT INTO {table} ({names}) SELECT {names} "
                            f"FROM stage_{table} ON CONFLICT DO NOTHING"
                        )
                    )
                else:
                    await conn.copy_records_to_table(table, records=params, columns=COLUMNS[table])
                    changed = len(params)
                written[table] = changed
                duplicates[table] = len(params) - changed
        return written, duplicates

    async def _write_rows(
        self, conn: asyncpg.Connection, rows: Sequence[object]
    ) -> tuple[dict[Table, int], dict[Table, int], list[RejectedRow]]:
        written: dict[Table, int] = {}
        duplicates: dict[Table, int] = {}
        refused: list[RejectedRow] = []
        async with conn.transaction():
            for index, row in enumerate(rows):
                try:
                    table, params = encode_row(row)
                except InvalidRow:
                    continue  # already reported by prepare()
                try:
                    # A savepoint: only this row is undone when it is refused.
                    async with conn.transaction():
                        changed = await _insert_one(conn, table, params)
                except _ROW_ERRORS as exc:
                    refused.append(RejectedRow(index, row, f"refused by the database: {exc}"))
                    continue
                written[table] = written.get(table, 0) + changed
                duplicates[table] = duplicates.get(table, 0) + 1 - changed
        return written, duplicates, refused

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        self._check_open()
        async with self._data.lock:
            conn = await self._live(self._data)
            try:
                return list(await conn.fetch(sql, *args))
            except BaseException as exc:
                self._recover(self._data, conn, exc)
                raise

    async def latest_orders(self) -> list[PaperOrderRow]:
        """The latest order with a signal id of each market, by market.

        Raises:
            StoreUnavailableError: On a transient failure.
            StoreClosedError: If the store was closed.
        """
        records = await self._fetch(
            f"SELECT DISTINCT ON (market) {', '.join(COLUMNS[Table.PAPER_ORDERS])} "
            "FROM paper_orders WHERE signal_id IS NOT NULL ORDER BY market, id DESC"
        )
        return [order_from_record(tuple(record)) for record in records]

    # -- the ledger's primitives (see Ledger) ----------------------------------------------

    _postgres = True

    def _sql(self, sql: str) -> str:
        return numbered(sql)

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[Sequence[Any]]:
        return [tuple(record) for record in await self._fetch(sql, *params)]

    async def _transaction(
        self, steps: Sequence[tuple[str, Sequence[object]]]
    ) -> list[list[Sequence[Any]]]:
        self._check_open()
        async with self._data.lock:
            conn = await self._live(self._data)
            try:
                async with conn.transaction():
                    return [
                        [tuple(record) for record in await conn.fetch(sql, *p)] for sql, p in steps
                    ]
            except BaseException as exc:
                self._recover(self._data, conn, exc)
                raise

    async def _stream(
        self, sql: str, params: Sequence[object], chunk: int
    ) -> AsyncIterator[list[Sequence[Any]]]:
        self._check_open()
        async with self._data.lock:
            conn = await self._live(self._data)
            try:
                async with conn.transaction():
                    cursor = await conn.cursor(sql, *params)
                    while records := await cursor.fetch(chunk):
                        yield [tuple(record) for record in records]
            except BaseException as exc:
                self._recover(self._data, conn, exc)
                raise


class _Session:
    """One of the store's connections, and the lock that gives one call at a time to it."""

    __slots__ = ("conn", "lock", "name", "opened", "staged")

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn: asyncpg.Connection | None = None
        self.lock = asyncio.Lock()
        self.opened = False
        self.staged: set[Table] = set()  # staging tables made on this connection


async def _identity(conn: asyncpg.Connection) -> tuple[int, int]:
    """The database's oid and its ``schema_migrations`` table's (0 if there is none)."""
    record = await conn.fetchrow(
        "SELECT d.oid::bigint, coalesce(to_regclass('schema_migrations')::oid::bigint, 0) "
        "FROM pg_database d WHERE d.datname = current_database()"
    )
    assert record is not None
    return int(record[0]), int(record[1])


async def _insert_one(conn: asyncpg.Connection, table: Table, params: Params) -> int:
    """Insert one row idempotently; 1 if it changed the database, 0 for a duplicate."""
    changed = _rowcount(await conn.execute(INSERT_ONE_SQL[table], *params))
    if not changed and table is Table.PAPER_ORDERS:
        order_id, status, filled, updated, revision, error = (
            params[0],
            params[8],
            params[10],
            params[11],
            params[12],
            params[13],
        )
        changed = _rowcount(
            await conn.execute(UPDATE_ORDER_SQL, order_id, status, filled, updated, revision, error)
        )
    return changed


async def _migrate(
    conn: asyncpg.Connection, migrations: Sequence[Migration], where: str
) -> tuple[int, list[Migration]]:
    """Bring the database up to the last of ``migrations``, one transaction per step.

    Returns:
        The schema version now, and the migrations applied by this call.

    Raises:
        SchemaVersionError: If the database is newer than the last migration.
    """
    latest = migrations[-1].version if migrations else 0
    applied: list[Migration] = []
    version = 0
    for migration in (None, *migrations):
        async with conn.transaction():
            # Held to the end of the transaction: a replica opening the same database
            # meanwhile waits here and then finds the step done.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", ADVISORY_NAMESPACE, MIGRATE_LOCK
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
            )
            if version > latest:
                raise SchemaVersionError(where, version, latest)
            if migration is None or migration.version <= version:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                migration.version,
                migration.description,
            )
            version = migration.version
            applied.append(migration)
    return version, applied
