"""Coroutine objects are re-created for restarts: closures, bound methods, defaults, varargs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from polymarket_agents.core.async_utils import LOGGER_NAME, instant_backoff, robust_task


@pytest.fixture(autouse=True)
def _instant() -> Any:
    with instant_backoff():
        yield


async def test_module_function_with_defaults_varargs_and_kwargs_is_recreated() -> None:
    """Every restart calls the function again with the same positional, default, *args,
    keyword-only and **kwargs values."""
    seen: list[tuple[Any, ...]] = []

    async def work(a: int, b: int = 2, *rest: int, c: int, d: int = 4, **extra: int) -> str:
        seen.append((a, b, rest, c, d, extra))
        if len(seen) < 3:
            raise ConnectionError("down")
        return "ok"

    assert await robust_task("w", work(1, 5, 6, 7, c=3, e=9)) == "ok"
    assert seen == [(1, 5, (6, 7), 3, 4, {"e": 9})] * 3


async def test_closure_is_recreated_with_its_own_cells() -> None:
    """Two closures of one function each restart with their own captured values."""

    def make(prefix: str, log: list[str]) -> Any:
        async def work(n: int) -> str:
            log.append(f"{prefix}{n}")
            if len(log) < 2:
                raise ConnectionError("down")
            return prefix

        return work

    log_a: list[str] = []
    log_b: list[str] = []
    make("b", log_b)  # a sibling closure sharing the code object must not be picked
    assert await robust_task("a", make("a", log_a)(1)) == "a"
    assert log_a == ["a1", "a1"]
    assert log_b == []


async def test_bound_method_is_recreated_on_the_same_instance() -> None:
    """A method coroutine restarts on the same object with the same arguments."""

    class Monitor:
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def run(self, market: str) -> int:
            self.calls.append(market)
            if len(self.calls) < 3:
                raise TimeoutError
            return len(self.calls)

    monitor = Monitor()
    assert await robust_task("m", monitor.run("btc")) == 3
    assert monitor.calls == ["btc", "btc", "btc"]


async def test_parameters_rebound_in_the_body_restart_with_the_original_values() -> None:
    """A function that reassigns a parameter still restarts with what it was first given."""
    seen: list[str] = []

    async def work(url: str) -> str:
        seen.append(url)
        url = url.upper()
        if len(seen) < 2:
            raise ConnectionError(url)
        return url

    assert await robust_task("w", work("ws://x")) == "WS://X"
    assert seen == ["ws://x", "ws://x"]


async def test_parameter_rebound_through_nonlocal_restarts_with_the_original_value() -> None:
    """A parameter rebound by an inner function via nonlocal is also captured up front."""
    seen: list[int] = []

    async def work(n: int) -> int:
        def bump() -> None:
            nonlocal n
            n += 100

        seen.append(n)
        bump()
        if len(seen) < 2:
            raise ConnectionError
        return n

    assert await robust_task("w", work(1)) == 101
    assert seen == [1, 1]


async def test_started_coroutine_cannot_restart_and_log_says_pass_a_factory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A coroutine that had already started is run once; its failure is final and the log
    tells the user to pass a factory."""
    gate = asyncio.Event()

    async def work() -> None:
        await gate.wait()
        raise ConnectionError("down")

    coro = work()
    # Start it by hand, so robust_task receives a suspended coroutine.
    coro.send(None)
    gate.set()
    with caplog.at_level(logging.ERROR, LOGGER_NAME):
        await robust_task("w", coro)  # returns, and does not restart
    message = caplog.records[-1].getMessage()
    assert "had already started" in message
    assert "pass a zero-argument factory" in message


async def test_factory_is_called_for_every_attempt() -> None:
    """A factory gives a fresh awaitable per attempt."""
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConnectionError
        return calls

    assert await robust_task("w", lambda: work()) == 4


async def test_unawaited_coroutine_is_closed_on_cancellation_before_start() -> None:
    """A coroutine handed to robust_task that never ran is closed, not leaked with a warning."""

    async def work() -> None:
        await asyncio.sleep(1)

    task = asyncio.create_task(robust_task("w", work()))
    await asyncio.sleep(0)  # robust_task started and awaits the work
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
