"""``AdvisoryLock``: a PostgreSQL session-level advisory lock, held on a connection of its own.

A replica holds its shard through such a lock. The server releases a session's advisory
locks when the session ends, whatever ends it (the process killed, its machine gone, an
administrator), so a standby blocked in ``pg_advisory_lock`` gets the lock the moment the
holder's session is gone: no lease to expire, no clock to trust. The holder, for its part,
must stop as soon as its own session is gone, since a standby may then hold the lock: the
lock's connection is watched by a keepalive query and asyncpg's termination callback.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

import asyncpg

from polymarket_agents.core.async_utils import ConfigurationError

from ._errors import StoreError, StoreUnavailableError
from ._pgschema import ADVISORY_NAMESPACE
from ._postgres import PostgresStore
from ._sqlite import LOGGER_NAME

__all__ = ["AdvisoryLock"]

_logger = logging.getLogger(LOGGER_NAME)

# Per-session TCP keepalives: the server notices a holder whose machine vanished without
# closing its socket within idle + interval * count = 8 seconds, and frees the lock.
_KEEPALIVE_SETTINGS = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3"
)


class AdvisoryLock:
    """A session-level advisory lock ``(namespace, key)`` on its own connection.

    ::

        lock = AdvisoryLock(store, shard.lock_key, name=f"shard {shard}")
        await lock.acquire()          # waits while another session holds it
        reason = await lock.wait_lost()   # returns when the lock's session is gone
        await lock.release()

    Args:
        store: The PostgreSQL store whose database and credentials to use; the lock
            opens connections of its own through :meth:`PostgresStore.connect`.
        key: The lock's key within the package's namespace (see
            :attr:`~polymarket_agents.agents.Shard.lock_key`).
        name: What the lock guards, for the log.
        wait_slice: Seconds one ``pg_advisory_lock`` call waits (``lock_timeout``) before
            it is repeated; only bounds how often "still waiting" is logged.
        keepalive: Seconds between the holder's liveness queries.
        retry: Seconds between attempts to reach the server while it is unavailable.
        logger: Where the lock logs.

    Raises:
        ConfigurationError: If a period is not positive.
    """

    __slots__ = (
        "_conn",
        "_keepalive",
        "_key",
        "_logger",
        "_lost",
        "_lost_event",
        "_name",
        "_retry",
        "_store",
        "_wait_slice",
    )

    def __init__(
        self,
        store: PostgresStore,
        key: int,
        *,
        name: str,
        wait_slice: float = 30.0,
        keepalive: float = 1.0,
        retry: float = 1.0,
        logger: logging.Logger | None = None,
    ) -> None:
        for what, value in (("wait_slice", wait_slice), ("keepalive", keepalive), ("retry", retry)):
            if not value > 0:
                raise ConfigurationError(f"{what} must be > 0, not {value!r}")
        self._store = store
        self._key = key
        self._name = name
        self._wait_slice = wait_slice
        self._keepalive = keepalive
        self._retry = retry
        self._logger = logger or _logger
        self._conn: asyncpg.Connection | None = None
        self._lost: str | None = None
        self._lost_event = asyncio.Event()

    def __repr__(self) -> str:
        state = "held" if self.held else "lost" if self._lost else "not held"
        return f"<AdvisoryLock {self._name!r} key={self._key} {state}>"

    @property
    def held(self) -> bool:
        """Whether this lock is held now (acquired, its session not known to be gone)."""
        return self._conn is not None and self._lost is None

    @property
    def lost(self) -> str | None:
        """Why a held lock was lost; None while held or never acquired."""
        return self._lost

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    async def try_acquire(self) -> bool:
        """Take the lock if it is free now; False if another session holds it.

        Raises:
            StoreUnavailableError: If the server cannot be reached.
            StoreDefinitionError: If the credentials or the database are refused.
            RuntimeError: If this lock is already held.
        """
        conn = await self._open()
        try:
            got = bool(
                await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", ADVISORY_NAMESPACE, self._key
                )
            )
        except BaseException:
            conn.terminate()
            raise
        if not got:
            await conn.close()
            return False
        self._held_on(conn)
        return True

    async def acquire(self) -> None:
        """Wait until the lock is ours; through outages of the server, for as long as it takes.

        Raises:
            StoreDefinitionError: If the credentials or the database are refused.
            RuntimeError: If this lock is already held.
        """
        announced = False
        while True:
            try:
                conn = await self._open()
            except StoreUnavailableError as exc:
                self._logger.warning(
                    "%s: database unavailable (%s); trying again in %.1f s",
                    self._name,
                    exc,
                    self._retry,
                )
                await asyncio.sleep(self._retry)
                continue
            try:
                await conn.execute(f"SET lock_timeout = {int(self._wait_slice * 1000)}")
                while True:
                    try:
                        await conn.execute(
                            "SELECT pg_advisory_lock($1, $2)",
                            ADVISORY_NAMESPACE,
                            self._key,
                            timeout=self._wait_slice + 30,
                        )
                        break
                    except asyncpg.LockNotAvailableError:
                        if not announced:
                            self._logger.info(
                                "%s is held by another replica; standing by", self._name
                            )
                            announced = True
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                conn.terminate()
                self._logger.warning(
                    "%s: lost the connection while waiting (%s: %s); reconnecting",
                    self._name,
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(self._retry)
                continue
            except BaseException:
                conn.terminate()  # a cancelled wait must not take the lock a moment later
                raise
            self._held_on(conn)
            return

    async def _open(self) -> asyncpg.Connection:
        if self._conn is not None:
            raise RuntimeError(f"{self._name} is already held by this process")
        conn = await self._store.connect()
        try:
            await conn.execute(_KEEPALIVE_SETTINGS)
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _held_on(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._lost = None
        self._lost_event.clear()
        conn.add_termination_listener(self._terminated)
        self._logger.info("%s taken", self._name)

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._mark_lost("its database session ended")

    def _mark_lost(self, reason: str) -> None:
        if self._lost is None and self._conn is not None:
            self._lost = reason
            self._lost_event.set()
            self._logger.error("%s lost: %s", self._name, reason)

    async def wait_lost(self) -> str:
        """Watch the held lock's session; return why it is gone once it is.

        A keepalive query every ``keepalive`` seconds (answered within three periods)
        proves the session alive; a failed or late answer, or the connection's end, means
        the server has released (or soon releases) the lock.

        Returns:
            Why the lock is lost.

        Raises:
            StoreError: If the lock is not held.
        """
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self._name} is not held")
        while self._lost is None:
            try:
                await conn.fetchval("SELECT 1", timeout=self._keepalive * 3)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                self._mark_lost(f"keepalive failed ({type(exc).__name__}: {exc})")
                break
            try:
                async with asyncio.timeout(self._keepalive):
                    await self._lost_event.wait()
            except TimeoutError:
                continue
        assert self._lost is not None
        return self._lost

    async def release(self) -> None:
        """Give the lock up (closing its session); idempotent."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.remove_termination_listener(self._terminated)
        try:
            async with asyncio.timeout(5):
                await conn.close()
        except asyncio.CancelledError:
            conn.terminate()
            raise
        except Exception as exc:
            # Ending the session, which closing does anyway, is what releases the lock.
            conn.terminate()
            self._logger.debug("%s: closing its connection raised %r", self._name, exc)
        self._logger.info("%s released", self._name)
