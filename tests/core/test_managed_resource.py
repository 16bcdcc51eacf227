"""managed_resource: release exactly once on every path, never hiding the body's error."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from polymarket_agents.core.async_utils import LOGGER_NAME, managed_resource


class Resource:
    """A resource whose release is counted and can fail or take time."""

    def __init__(self, *, release_error: Exception | None = None, release_delay: float = 0):
        self.releases = 0
        self.release_done = 0
        self.release_error = release_error
        self.release_delay = release_delay
        self.release_started = asyncio.Event()

    async def acquire(self) -> Resource:
        return self

    async def release(self, resource: Resource) -> None:
        assert resource is self
        self.releases += 1
        self.release_started.set()
        if self.release_delay:
            await asyncio.sleep(self.release_delay)
        self.release_done += 1
        if self.release_error is not None:
            raise self.release_error


async def test_release_runs_once_on_normal_exit() -> None:
    """The body gets the acquired resource; release runs once afterwards."""
    res = Resource()
    async with managed_resource(res.acquire, res.release) as got:
        assert got is res
        assert res.releases == 0
    assert res.releases == 1


async def test_release_runs_once_when_the_body_raises_and_the_error_propagates() -> None:
    """A body error propagates unchanged after release ran once."""
    res = Resource()
    with pytest.raises(KeyError, match="body"):
        async with managed_resource(res.acquire, res.release):
            raise KeyError("body")
    assert res.releases == 1


async def test_release_is_not_called_when_acquire_fails() -> None:
    """If acquire raises, there is nothing to release."""
    res = Resource()

    async def acquire() -> Resource:
        raise ConnectionError("no route")

    with pytest.raises(ConnectionError):
        async with managed_resource(acquire, res.release):
            pytest.fail("body must not run")
    assert res.releases == 0


async def test_release_runs_once_on_cancellation_and_cancellation_propagates() -> None:
    """Cancelling the body releases once and re-raises CancelledError."""
    res = Resource()
    entered = asyncio.Event()

    async def user() -> None:
        async with managed_resource(res.acquire, res.release):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(user())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert res.releases == 1


async def test_second_cancellation_during_release_does_not_interrupt_it() -> None:
    """A cancellation that arrives while release runs waits for release to finish."""
    res = Resource(release_delay=0.05)
    entered = asyncio.Event()

    async def user() -> None:
        async with managed_resource(res.acquire, res.release):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(user())
    await entered.wait()
    task.cancel()
    await res.release_started.wait()
    task.cancel()  # the second cancellation, during release
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (res.releases, res.release_done) == (1, 1)


async def test_cancellation_during_release_after_normal_exit_is_re_raised() -> None:
    """A cancellation that arrives during release after a normal body is not lost."""
    res = Resource(release_delay=0.05)

    async def user() -> None:
        async with managed_resource(res.acquire, res.release):
            pass

    task = asyncio.create_task(user())
    await res.release_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert res.release_done == 1


async def test_timeout_around_the_block_still_raises_timeout_error() -> None:
    """asyncio.timeout() around a managed_resource block converts as usual."""
    res = Resource()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01), managed_resource(res.acquire, res.release):
            await asyncio.sleep(3600)
    assert res.releases == 1


async def test_release_error_never_hides_the_body_error(caplog: pytest.LogCaptureFixture) -> None:
    """With both failing, the body's error propagates as it was and the release error is
    logged, not wrapped into a group."""
    res = Resource(release_error=OSError("close failed"))
    with caplog.at_level(logging.ERROR, LOGGER_NAME), pytest.raises(ValueError, match="body"):
        async with managed_resource(res.acquire, res.release):
            raise ValueError("body")
    assert res.releases == 1
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], OSError)


async def test_release_error_propagates_when_the_body_succeeded() -> None:
    """With no body error, a release error propagates."""
    res = Resource(release_error=OSError("close failed"))
    with pytest.raises(OSError, match="close failed"):
        async with managed_resource(res.acquire, res.release):
            pass
    assert res.releases == 1


async def test_release_error_during_cancellation_keeps_the_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelled body + failing release: CancelledError propagates, release error logged."""
    res = Resource(release_error=OSError("close failed"))
    entered = asyncio.Event()

    async def user() -> None:
        async with managed_resource(res.acquire, res.release):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(user())
    await entered.wait()
    with caplog.at_level(logging.ERROR, LOGGER_NAME):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert res.releases == 1
    assert "close failed" in str(caplog.records[0].exc_info)


async def test_sync_release_is_accepted() -> None:
    """release may be a plain function (e.g. a socket's close)."""
    closed: list[Any] = []

    async def acquire() -> str:
        return "conn"

    async with managed_resource(acquire, closed.append) as conn:
        assert conn == "conn"
    assert closed == ["conn"]


async def test_seed_example_shape_with_a_lambda_acquire() -> None:
    """The seed's `managed_resource(lambda: init_websocket(url), close_websocket)` works."""
    events: list[str] = []

    async def init_websocket(url: str) -> str:
        events.append(f"open {url}")
        return url

    async def close_websocket(ws: str) -> None:
        events.append(f"close {ws}")

    async with managed_resource(lambda: init_websocket("ws://market.feed"), close_websocket) as ws:
        events.append(f"use {ws}")
    assert events == ["open ws://market.feed", "use ws://market.feed", "close ws://market.feed"]
