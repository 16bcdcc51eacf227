"""polymarket_agents.testing: the aids a user needs to test agents without real backoff."""

from __future__ import annotations

import asyncio

import polymarket_agents.testing as testing
from polymarket_agents.core.async_utils import robust_task
from polymarket_agents.feed import MarketFeed
from polymarket_agents.testing import FaultPlan, instant_backoff, instant_policy, running_simulator


def test_all_names_the_aids() -> None:
    """The module exports exactly its documented aids."""
    assert testing.__all__ == [
        "FaultPlan",
        "MarketSimulator",
        "instant_backoff",
        "instant_policy",
        "running_simulator",
    ]


async def test_a_feed_survives_dropped_connections_without_real_backoff() -> None:
    """With instant backoff and a simulator that drops connections, a feed keeps receiving
    events across reconnects in well under a second of backoff."""
    async with running_simulator(faults=FaultPlan(drop_every=0.2)) as sim:
        market = sim.markets()[0]
        async with MarketFeed(sim.ws_url, markets=[market], policy=instant_policy()) as feed:
            events = 0
            async with asyncio.timeout(20):
                async for _ in feed:
                    events += 1
                    if feed.stats.reconnects >= 2 and events > 10:
                        break
        assert feed.stats.reconnects >= 2


async def test_instant_backoff_reaches_robust_task() -> None:
    """robust_task under instant_backoff() retries a failing connection at once."""
    attempts = 0

    async def connect() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 5:
            raise ConnectionRefusedError
        return "connected"

    loop = asyncio.get_running_loop()
    start = loop.time()
    with instant_backoff():
        assert await robust_task("connect", connect) == "connected"
    assert loop.time() - start < 1.0  # the default schedule would take 5+10+20+40 s
