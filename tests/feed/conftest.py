"""Fixtures for the feed tests: simulators on loopback, fast feeds, and settling helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from polymarket_agents.core.async_utils import instant_policy
from polymarket_agents.feed import MarketFeed
from polymarket_agents.feed.simulator import MarketSimulator

MakeSimulator = Callable[..., Awaitable[MarketSimulator]]


def fast_options(**changes: Any) -> dict[str, Any]:
    """MarketFeed settings for tests: no backoff, sub-second heartbeats and watchdogs."""
    options: dict[str, Any] = {
        "policy": instant_policy(),
        "ping_interval": 0.05,
        "pong_timeout": 5.0,
        "silence_timeout": 5.0,
        "resync_timeout": 2.0,
        "open_timeout": 2.0,
        "close_timeout": 0.5,
    }
    options.update(changes)
    return options


@pytest.fixture
async def make_simulator() -> AsyncIterator[MakeSimulator]:
    """Start simulators on 127.0.0.1, port 0; every one is closed at teardown."""
    simulators: list[MarketSimulator] = []

    async def make(**options: Any) -> MarketSimulator:
        options.setdefault("idle_timeout", None)
        simulator = MarketSimulator(host="127.0.0.1", port=0, **options)
        await simulator.start()
        simulators.append(simulator)
        return simulator

    yield make
    for simulator in simulators:
        await simulator.aclose()


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, checking every few milliseconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def settle(simulator: MarketSimulator, feed: MarketFeed) -> None:
    """Pause the simulator and wait until the feed has processed every frame sent.

    Once paused, the simulator's outboxes are empty; the feed's next PONG was queued after
    every data frame, and the reader applies frames in order, so two more PONGs mean the
    feed has seen everything.
    """
    await simulator.pause()
    target = feed.stats.pongs + 2
    await eventually(lambda: feed.stats.pongs >= target)


def assert_books_match(simulator: MarketSimulator, feed: MarketFeed) -> None:
    """Every subscribed book equals the simulator's, level for level, and is synced."""
    for asset_id in feed.asset_ids:
        local, truth = feed.books[asset_id], simulator.books[asset_id]
        assert local.synced, asset_id
        assert local.bids == truth.bids, asset_id
        assert local.asks == truth.asks, asset_id
        assert local.best_bid == truth.best_bid
        assert local.best_ask == truth.best_ask
