"""AdvisoryLock on a real PostgreSQL server: one holder, standbys that take over at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from polymarket_agents.storage import AdvisoryLock, PostgresStore, StoreError


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A PostgreSQL store whose database the locks use (never opened itself)."""
    store = PostgresStore(pg_url)
    yield store
    await store.close()


async def test_one_holder_at_a_time(store: PostgresStore) -> None:
    """A second lock on the same key cannot be taken while the first is held; another key
    can."""
    first = AdvisoryLock(store, 7, name="shard 7")
    second = AdvisoryLock(store, 7, name="shard 7 again")
    other = AdvisoryLock(store, 8, name="shard 8")
    async with first:
        assert first.held
        assert not await second.try_acquire()
        assert await other.try_acquire()
        await other.release()
    assert [first.held] == [False]  # a list: mypy keeps the narrowing from inside the block
    assert await second.try_acquire()
    await second.release()


async def test_a_standby_takes_over_as_soon_as_the_holder_lets_go(store: PostgresStore) -> None:
    """A waiting acquire() returns within a fraction of a second of the release."""
    holder = AdvisoryLock(store, 1, name="holder")
    standby = AdvisoryLock(store, 1, name="standby")
    await holder.acquire()
    waiting = asyncio.ensure_future(standby.acquire())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    released = time.monotonic()
    await holder.release()
    async with asyncio.timeout(5):
        await waiting
    assert time.monotonic() - released < 2.0
    assert standby.held
    await standby.release()


async def test_a_holder_whose_session_is_killed_knows_it_and_the_standby_takes_over(
    store: PostgresStore, pg_url: str
) -> None:
    """An administrator (or a failover) ending the holder's session: the holder sees the
    loss within seconds and the standby holds the lock."""
    holder = AdvisoryLock(store, 2, name="holder", keepalive=0.2)
    standby = AdvisoryLock(store, 2, name="standby")
    await holder.acquire()
    waiting = asyncio.ensure_future(standby.acquire())
    watch = asyncio.ensure_future(holder.wait_lost())
    conn = await asyncpg.connect(pg_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = 2 AND granted"
        )
    finally:
        await conn.close()
    assert killed == 1
    async with asyncio.timeout(5):
        reason = await watch
    assert not holder.held
    assert holder.lost == reason
    async with asyncio.timeout(5):
        await waiting
    assert standby.held
    await holder.release()
    await standby.release()


async def test_waiting_survives_a_lost_connection(store: PostgresStore, pg_url: str) -> None:
    """A standby whose own session is killed while it waits reconnects and keeps waiting."""
    holder = AdvisoryLock(store, 3, name="holder")
    standby = AdvisoryLock(store, 3, name="standby", retry=0.05)
    await holder.acquire()
    waiting = asyncio.ensure_future(standby.acquire())
    await asyncio.sleep(0.3)
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = 3 AND NOT granted"
        )
    finally:
        await conn.close()
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await holder.release()
    async with asyncio.timeout(5):
        await waiting
    await standby.release()


async def test_a_cancelled_wait_takes_nothing(store: PostgresStore) -> None:
    """Cancelling acquire() leaves the lock free for the next one."""
    holder = AdvisoryLock(store, 4, name="holder")
    standby = AdvisoryLock(store, 4, name="standby")
    await holder.acquire()
    waiting = asyncio.ensure_future(standby.acquire())
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await holder.release()
    assert not standby.held
    third = AdvisoryLock(store, 4, name="third")
    assert await third.try_acquire()
    await third.release()


async def test_watching_a_lock_not_held_is_an_error(store: PostgresStore) -> None:
    """wait_lost() needs a held lock."""
    with pytest.raises(StoreError, match="not held"):
        await AdvisoryLock(store, 5, name="x").wait_lost()
