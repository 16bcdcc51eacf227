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
    """Holds of 0.8, 0.3 and 1.5 s: each counted; the 0.3 s one, shorter than the longest
    so far, is not logged at WARNING (only at DEBUG); the 1.5 s one is, being longer.

    A loaded machine may deschedule the loop thread and add holds of its own (anywhere but
    in ``hold_the_loop``), or delay the watchdog's thread and so misjudge a hold by a tenth
    of a second or two: the test looks at its own holds, recognised by where they held the
    loop, and spaces their lengths far wider apart than such errors.
    """
    made = (0.8, 0.3, 1.5)
    with caplog.at_level(logging.DEBUG, LOGGER_NAME):
        async with LoopWatchdog(threshold=0.1) as watchdog:
            for seconds in made:
                await asyncio.sleep(0.3)
                hold_the_loop(seconds)
            await asyncio.sleep(0.3)
    ours = [r for r in caplog.records if "hold_the_loop" in r.getMessage()]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.DEBUG, logging.WARNING]
    measured = [float(r.getMessage().split()[4]) for r in ours]
    for seconds, length in zip(measured, made, strict=True):
        assert length - 0.25 < seconds < length + 0.5
    assert watchdog.blocks >= 3
    assert watchdog.blocked >= sum(measured) - 0.002  # logged to the millisecond
    assert watchdog.worst >= measured[2] - 0.001


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
