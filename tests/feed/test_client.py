"""MarketFeed against the simulator over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from polymarket_agents.core.async_utils import ConfigurationError, instant_policy
from polymarket_agents.feed import (
    BestBidAsk,
    Book,
    FeedStopped,
    MarketFeed,
    MarketResolved,
    NewMarket,
    PriceChange,
)

from .conftest import MakeSimulator, assert_books_match, eventually, fast_options, settle

EVENT_TYPE = {
    "Book": "book",
    "PriceChange": "price_change",
    "LastTradePrice": "last_trade_price",
    "TickSizeChange": "tick_size_change",
    "BestBidAsk": "best_bid_ask",
}


@pytest.mark.parametrize("book_after_trade", [False, True], ids=["deltas", "books"])
async def test_snapshot_and_deltas_reproduce_the_simulator_books(
    make_simulator: MakeSimulator, book_after_trade: bool
) -> None:
    """After a busy stream the local books equal the simulator's, and every frame and event
    the simulator sent is accounted for."""
    sim = await make_simulator(
        markets=4, event_rate=2000.0, batch_probability=0.4, book_after_trade=book_after_trade
    )
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        seen: Counter[str] = Counter()
        async for event in feed:
            seen[EVENT_TYPE[type(event).__name__]] += 1
            if sum(seen.values()) >= 1500:
                break
        await settle(sim, feed)
        assert_books_match(sim, feed)
        [sent] = sim.connections()
        stats = feed.stats
        assert stats.frames == sent.frames
        assert stats.events == sent.events
        assert stats.pongs == sent.pongs
        assert (stats.invalid_frames, stats.resyncs, stats.reconnects) == (0, 0, 0)
        assert sent.invalid_operations == 0  # one initial frame per connection
        assert seen["book"] >= 8
        assert seen["price_change"] > 500
        assert stats.ready


async def test_events_are_yielded_after_they_are_applied(make_simulator: MakeSimulator) -> None:
    """When an event is yielded, the books already reflect it."""
    sim = await make_simulator(markets=2, event_rate=1000.0)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        events = aiter(feed)
        first = await anext(events)
        assert isinstance(first, Book)
        assert feed.books[first.asset_id].synced
        await sim.pause()
        received = 1
        checked = 0
        while checked < 50:
            sim.tick()  # one tick at a time: nothing newer can reach the books meanwhile
            await sim.pause()
            sent = sim.connections()[0].events
            while received < sent:
                event = await anext(events)
                received += 1
            if received == sent and isinstance(event, PriceChange):
                last = {change.asset_id: change for change in event.price_changes}
                for asset_id, change in last.items():
                    assert feed.books[asset_id].consistent_with(change.best_bid, change.best_ask)
                checked += 1


async def test_subscribe_and_unsubscribe_without_reconnecting(
    make_simulator: MakeSimulator,
) -> None:
    """Assets are added and removed with operation frames on the same connection."""
    sim = await make_simulator(markets=3, event_rate=500.0)
    first, second, third = sim.markets()
    async with MarketFeed(
        sim.ws_url, markets=[first], deliver_events=False, **fast_options()
    ) as feed:
        await feed.wait_ready()
        await feed.subscribe(markets=[second], asset_ids=[third.yes_token])
        assert set(feed.asset_ids) == {*first.token_ids, *second.token_ids, third.yes_token}
        await feed.wait_ready()
        await feed.unsubscribe([*first.token_ids, "unknown"])
        await eventually(lambda: sim.connections()[0].subscribed == 3)
        assert first.yes_token not in feed.books
        await settle(sim, feed)
        assert_books_match(sim, feed)
        assert feed.stats.connections == 1
        assert feed.books.pair(second.condition_id).synced
        assert sim.connections()[0].invalid_operations == 0


async def test_ready_means_connected_and_synced(make_simulator: MakeSimulator) -> None:
    """wait_ready() returns once every book is synced; stats say so."""
    sim = await make_simulator(markets=2)
    feed = MarketFeed(sim.ws_url, markets=sim.markets(), deliver_events=False, **fast_options())
    assert not feed.stats.ready
    async with feed:
        await feed.wait_ready()
        stats = feed.stats
        assert stats.ready
        assert stats.connected
        assert all(stats.synced.values())
        assert len(stats.synced) == 4
        assert "connected" in repr(feed)


async def test_consumer_cancellation_closes_the_socket(make_simulator: MakeSimulator) -> None:
    """Cancelling the task that consumes the feed closes its websocket on both ends."""
    sim = await make_simulator(markets=1, event_rate=200.0)
    started = asyncio.Event()
    holder: list[MarketFeed] = []

    async def consume() -> None:
        async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
            holder.append(feed)
            async for _ in feed:
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    feed = holder[0]
    assert not feed.connected
    await eventually(lambda: not sim.connections()[0].open)
    assert sim.connections()[0].close_reason == "closed"


async def test_close_ends_iteration_and_is_idempotent(make_simulator: MakeSimulator) -> None:
    """aclose() ends the event iteration cleanly; closing twice is harmless."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    feed = MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options())
    await feed.start()
    await feed.wait_ready()
    closer = asyncio.get_running_loop().call_later(
        0.05, lambda: asyncio.ensure_future(feed.aclose())
    )
    events = [event async for event in feed]
    closer.cancel()
    assert events
    await feed.aclose()
    with pytest.raises(FeedStopped):
        await feed.wait_ready()
    with pytest.raises(RuntimeError, match="only once"):
        await feed.start()


async def test_a_final_failure_stops_the_iteration(make_simulator: MakeSimulator) -> None:
    """When the restart budget is spent, iteration raises FeedStopped with the cause."""
    sim = await make_simulator(markets=1)
    url = sim.ws_url
    await sim.aclose()  # nothing listens there any more
    options = fast_options(policy=instant_policy(max_restarts=2, restart_window=60.0))
    async with MarketFeed(url, ["1"], **options) as feed:
        with pytest.raises(FeedStopped, match="failed for good") as caught:
            async for _ in feed:
                pass
        assert isinstance(caught.value.__cause__, OSError)
        assert feed.stats.reconnects == 2
        assert feed.stats.connections == 0
        assert feed.stats.last_error is not None


async def test_the_consumer_applies_backpressure_without_losing_events(
    make_simulator: MakeSimulator,
) -> None:
    """A consumer that stops reading pauses the reader (not the watchdogs' victim), and
    every event still arrives, in order."""
    sim = await make_simulator(markets=2, event_rate=3000.0)
    options = fast_options(pong_timeout=0.3, silence_timeout=0.3, queue_size=4)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        iterator = aiter(feed)
        await anext(iterator)
        await asyncio.sleep(0.8)  # consume nothing, for longer than both watchdogs allow
        assert feed.stats.connections == 1
        assert feed.stats.frames < 10  # the reader stopped reading once the queue was full
        await sim.pause()
        received = 1
        target = sim.connections()[0].events
        async for _ in iterator:
            received += 1
            if received == target:
                break
        assert feed.stats.reconnects == 0
        assert feed.stats.events == target


async def test_custom_features_deliver_market_lifecycle(make_simulator: MakeSimulator) -> None:
    """With custom features on, best_bid_ask, new_market and market_resolved arrive."""
    sim = await make_simulator(markets=2, event_rate=500.0)
    markets = sim.markets()
    options = fast_options(custom_feature_enabled=True)
    async with MarketFeed(sim.ws_url, markets=markets, **options) as feed:
        await feed.wait_ready()
        created = sim.add_market()
        resolved = sim.resolve_market(markets[0].condition_id, "No")
        kinds: set[type] = set()
        async for event in feed:
            kinds.add(type(event))
            if isinstance(event, NewMarket):
                assert event.assets_ids == created.token_ids
            if isinstance(event, MarketResolved):
                assert event == resolved
                assert event.winning_asset_id == markets[0].no_token
            if {BestBidAsk, NewMarket, MarketResolved} <= kinds:
                break
        # Every best_bid_ask agreed with the books it was checked against.
        assert feed.books.top_checks > 0
        assert feed.books.stale_events == 0
        assert feed.stats.resyncs == 0
    assert sim.market(markets[0].yes_token).closed


async def test_without_custom_features_none_arrive(make_simulator: MakeSimulator) -> None:
    """Without custom features the simulator sends no best_bid_ask or lifecycle events."""
    sim = await make_simulator(markets=2, event_rate=1000.0)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        await feed.wait_ready()
        sim.add_market()
        count = 0
        async for event in feed:
            assert not isinstance(event, BestBidAsk | NewMarket | MarketResolved)
            count += 1
            if count == 300:
                break


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("http://example.com/ws/market", {}),
        ("not a url", {}),
        ("ws://127.0.0.1:1/ws/market", {"ping_interval": 0}),
        ("ws://127.0.0.1:1/ws/market", {"queue_size": 0}),
        ("ws://127.0.0.1:1/ws/market", {"silence_timeout": -1.0}),
    ],
)
def test_invalid_settings_are_configuration_errors(url: str, options: dict[str, Any]) -> None:
    """A bad URL or a non-positive interval is a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        MarketFeed(url, **options)


async def test_iterating_an_unstarted_feed_is_an_error() -> None:
    """events() and wait_ready() need a started feed; a books-only feed has no events."""
    feed = MarketFeed("ws://127.0.0.1:1/ws/market")
    with pytest.raises(RuntimeError, match="start"):
        await anext(aiter(feed))
    with pytest.raises(RuntimeError, match="start"):
        await feed.wait_ready()
    quiet = MarketFeed("ws://127.0.0.1:1/ws/market", deliver_events=False)
    quiet_events = quiet.events()
    await quiet.start()
    with pytest.raises(RuntimeError, match="deliver_events"):
        await anext(quiet_events)
    await quiet.aclose()
    await feed.aclose()


async def test_a_feed_without_assets_is_not_silent(make_simulator: MakeSimulator) -> None:
    """With nothing subscribed, no data is expected: the silence watchdog stays quiet, and
    subscribing later works on the same connection."""
    sim = await make_simulator(markets=1, event_rate=200.0)
    options = fast_options(silence_timeout=0.2)
    async with MarketFeed(sim.ws_url, deliver_events=False, **options) as feed:
        await feed.wait_ready()
        pongs = feed.stats.pongs
        await eventually(lambda: feed.stats.pongs >= pongs + 10)  # well past 0.2 s
        assert feed.stats.connections == 1
        await feed.subscribe(markets=sim.markets())
        await feed.wait_ready()
        assert feed.stats.connections == 1
