"""LoopWatchdog: holds of the event loop are counted and the worst is logged with its stack.

The watchdog measures real time (a blocked loop is a real-time matter), so these tests block
for real, briefly; thresholds are wide enough that a loaded machine's scheduling delays do
not count as holds.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from polymarket_agents.core.async_utils import LOGGER_NAME, ConfigurationError, LoopWatchdog

pytestmark = pytest.mark.slow


def hold_the_loop(seconds: float) -> None:
    """A blocking call made on the loop, as a mistake would be."""
    time.sleep(seconds)


async def test_a_blocking_call_is_counted_and_logged_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 0.8 s hold over a 0.2 s threshold is counted and logged with the blocking frame."""
    with caplog.at_level(logging.WARNING, LOGGER_NAME):
        async with LoopWatchdog(threshold=0.2) as watchdog:
            await asyncio.sleep(0.25)
            hold_the_loop(0.8)
            await asyncio.sleep(0.25)
    assert watchdog.blocks >= 1
    assert 0.6 < watchdog.worst < 2.0
    assert "hold_the_loop" in watchdog.worst_stack
    last = caplog.records[-1].getMessage()
    assert "event loop held for" in last
    assert "hold_the_loop" in last


async def test_an_idle_or_busy_but_yielding_loop_is_not_a_block() -> None:
    """Sleeping and short steps never count."""
    async with LoopWatchdog(threshold=0.2) as watchdog:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)
    assert (watchdog.blocks, watchdog.worst) == (0, 0.0)


async def test_every_hold_is_counted_and_only_a_longer_one_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Holds of 0.6, 0.4 and 0.9 s: three counted, the 0.4 s one not logged."""
    with caplog.at_level(logging.WARNING, LOGGER_NAME):
        async with LoopWatchdog(threshold=0.2) as watchdog:
            for seconds in (0.6, 0.4, 0.9):
                await asyncio.sleep(0.25)
                hold_the_loop(seconds)
            await asyncio.sleep(0.25)
    assert watchdog.blocks >= 3
    assert watchdog.blocked > 1.5
    logged = [float(r.getMessage().split()[4]) for r in caplog.records]
    assert logged == sorted(logged)  # each logged hold is longer than the one before
    assert not any(0.3 < seconds < 0.55 for seconds in logged)


def test_threshold_must_be_positive() -> None:
    """A zero threshold would count every callback."""
    with pytest.raises(ConfigurationError):
        LoopWatchdog(threshold=0)


async def test_on_loops_without_asyncio_internals_a_late_timer_is_measured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the loop's iterations cannot be seen (uvloop is C), a loop timer's lateness
    counts the hold instead, with the stack caught by the thread."""
    from polymarket_agents.core.async_utils import _watchdog

    monkeypatch.setattr(_watchdog, "_code_of", lambda cls, name: None)
    with caplog.at_level(logging.WARNING, LOGGER_NAME):
        async with LoopWatchdog(threshold=0.2) as watchdog:
            await asyncio.sleep(0.25)
            hold_the_loop(0.8)
            await asyncio.sleep(0.25)
    assert watchdog.blocks >= 1
    assert "hold_the_loop" in watchdog.worst_stack
