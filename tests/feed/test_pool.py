"""The pooled feed: connections of at most assets_per_connection assets, market streams,
runtime subscriptions and rebalancing without reconnects, and per-connection recovery."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import (
    Book,
    MarketEvent,
    MarketFeed,
    MarketInfo,
    MarketStream,
    PongTimeout,
)

from .conftest import MakeSimulator, assert_books_match, eventually, fast_options, settle


def test_assets_per_connection_is_bounded_by_the_protocol() -> None:
    """At most 500 assets per connection (Polymarket's limit), at least a market's two."""
    for bad in (1, 501):
        with pytest.raises(ConfigurationError, match="assets_per_connection"):
            MarketFeed("ws://127.0.0.1:1/ws/market", assets_per_connection=bad)


async def test_the_pool_has_ceil_assets_over_the_limit_connections(
    make_simulator: MakeSimulator,
) -> None:
    """20 assets at 6 per connection: 4 connections (a market's tokens share one), each
    subscribed to exactly its assets, and every book exact."""
    sim = await make_simulator(markets=10, event_rate=500.0)
    options = fast_options(assets_per_connection=6)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        await feed.wait_ready()
        connections = feed.connections()
        assert [c.assets for c in connections] == [6, 6, 6, 2]
        assert all(c.connected and c.synced == c.assets for c in connections)
        served = sim.connections()
        assert sorted(c.subscribed for c in served) == [2, 6, 6, 6]
        for market in sim.markets():  # both tokens of a market on one connection
            [holder] = [c for c in served if market.yes_token in c.asset_ids]
            assert market.no_token in holder.asset_ids
        await settle(sim, feed)
        assert_books_match(sim, feed)
        assert feed.stats.reconnects == 0


async def _collect(stream: MarketStream, seen: list[MarketEvent]) -> None:
    async for event in stream:
        seen.append(event)


async def collect_all(
    feed: MarketFeed, markets: list[MarketInfo]
) -> tuple[list[MarketStream], list[list[MarketEvent]], list[asyncio.Task[None]]]:
    """Attach a stream per market and collect each one's events in a task."""
    streams = [await feed.attach(market) for market in markets]
    seen: list[list[MarketEvent]] = [[] for _ in markets]
    tasks = [
        asyncio.create_task(_collect(stream, got))
        for stream, got in zip(streams, seen, strict=True)
    ]
    return streams, seen, tasks


async def test_streams_get_their_market_only(make_simulator: MakeSimulator) -> None:
    """Each attached stream receives exactly its market's events, after the books."""
    sim = await make_simulator(markets=4, event_rate=1000.0, batch_probability=0.5)
    markets = sim.markets()
    options = fast_options(assets_per_connection=4, deliver_events=False)
    async with MarketFeed(sim.ws_url, markets=markets, **options) as feed:
        streams, seen, tasks = await collect_all(feed, markets)
        await eventually(lambda: all(len(got) >= 50 for got in seen))
        for market, got in zip(markets, seen, strict=True):
            assert {event.market for event in got} == {market.condition_id}
        with pytest.raises(RuntimeError, match="already has an open stream"):
            await feed.attach(markets[0])
        for stream in streams:
            stream.close()
        await asyncio.gather(*tasks)


async def test_markets_come_and_go_without_reconnects(make_simulator: MakeSimulator) -> None:
    """Markets added at runtime fill the connections with room, then new ones; removing
    most of them empties connections, which close, and rebalancing moves the rest onto
    fewer connections; no socket is ever reopened and the books stay exact."""
    sim = await make_simulator(markets=12, event_rate=500.0)
    markets = sim.markets()
    options = fast_options(assets_per_connection=6)
    async with MarketFeed(sim.ws_url, markets=markets[:2], **options) as feed:
        await feed.wait_ready()
        assert [c.assets for c in feed.connections()] == [4]
        await feed.subscribe(markets=markets[2:9])
        await feed.wait_ready()
        assert [c.assets for c in feed.connections()] == [6, 6, 6]
        # Remove every market but one per connection: three connections of 2, one needed.
        keep = {markets[0].condition_id, markets[4].condition_id, markets[8].condition_id}
        gone = [m for m in markets[:9] if m.condition_id not in keep]
        await feed.unsubscribe(markets=gone)
        await feed.wait_ready()
        stats = feed.stats
        assert [c.assets for c in feed.connections()] == [6]
        assert stats.moves == 2
        assert stats.reconnects == 0
        assert len(feed.supervisor) == 1  # the closed connections left its supervisor
        assert stats.connections == 3  # sockets ever opened: one per connection
        await settle(sim, feed)
        assert_books_match(sim, feed)
        served = [c for c in sim.connections() if c.open]
        assert [c.subscribed for c in served] == [6]
        assert all(c.invalid_operations == 0 for c in sim.connections())


async def test_a_reconnect_resyncs_only_its_own_markets(make_simulator: MakeSimulator) -> None:
    """One dropped connection resubscribes exactly its assets; its markets' streams see
    fresh snapshots, the other connection's markets see nothing but their usual events."""
    sim = await make_simulator(markets=4, event_rate=800.0)
    markets = sim.markets()
    options = fast_options(assets_per_connection=4, deliver_events=False)
    async with MarketFeed(sim.ws_url, markets=markets, **options) as feed:
        streams, seen, tasks = await collect_all(feed, markets)
        await feed.wait_ready()
        await eventually(lambda: all(len(got) >= 20 for got in seen))
        first, _ = sim.connections()
        dropped_assets = first.asset_ids
        before = [len(got) for got in seen]
        sim.drop_connections(ids=[first.id])
        await eventually(lambda: len(sim.connections()) == 3)
        await feed.wait_ready()
        await eventually(
            lambda: all(len(got) >= n + 20 for got, n in zip(seen, before, strict=True))
        )
        stats = feed.connections()
        assert [c.connections for c in stats] == [2, 1]
        assert sim.connections()[2].asset_ids == dropped_assets
        for market, got, start in zip(markets, seen, before, strict=True):
            snapshots = Counter(type(e) is Book for e in got[start:])[True]
            if market.yes_token in dropped_assets:
                assert snapshots >= 2, market.condition_id  # both books again
            else:
                assert snapshots == 0, market.condition_id
        await settle(sim, feed)
        assert_books_match(sim, feed)
        for stream in streams:
            stream.close()
        await asyncio.gather(*tasks)


async def test_each_connection_has_its_own_pong_watchdog() -> None:
    """A server that stops answering PING on one connection: that connection alone
    reconnects; the other's socket stays up."""
    opened: Counter[str] = Counter()

    async def handler(ws: ServerConnection) -> None:
        initial = str(await ws.recv())
        deaf = '"a"' in initial and opened["a"] == 0
        key = "a" if '"a"' in initial else "b"
        opened[key] += 1
        for asset in ("a", "b", "c", "d"):
            if f'"{asset}"' in initial:
                await ws.send(
                    f'[{{"event_type":"book","asset_id":"{asset}","market":"0x{asset}",'
                    '"timestamp":"1","bids":[],"asks":[]}]'
                )
        async for message in ws:
            if message == "PING" and not deaf:
                await ws.send("PONG")

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        options = fast_options(pong_timeout=0.3, silence_timeout=None, assets_per_connection=2)
        feed = MarketFeed(f"ws://127.0.0.1:{port}/ws/market", ["a", "b", "c", "d"], **options)
        async with feed:
            await eventually(lambda: opened["a"] >= 2)
            await feed.wait_ready()
            first, second = feed.connections()
            assert first.last_error is not None
            assert PongTimeout.__name__ in first.last_error
            assert (first.connections, second.connections) == (2, 1)
            assert second.last_error is None
            assert opened["b"] == 1


async def test_a_failed_connection_stops_its_streams_and_they_can_attach_again(
    make_simulator: MakeSimulator,
) -> None:
    """When a connection gives up, its markets' streams end with FeedStopped; attaching
    again subscribes the market on a live connection."""
    from polymarket_agents.core.async_utils import instant_policy
    from polymarket_agents.feed import FeedStopped

    sim = await make_simulator(markets=2, event_rate=300.0)
    markets = sim.markets()
    options = fast_options(
        assets_per_connection=2,
        deliver_events=False,
        policy=instant_policy(max_restarts=0),
    )
    async with MarketFeed(sim.ws_url, markets=markets, **options) as feed:
        await feed.wait_ready()
        streams = [await feed.attach(market) for market in markets]
        first = sim.connections()[0]
        sim.drop_connections(ids=[first.id])
        with pytest.raises(FeedStopped):
            async for _ in streams[0]:
                pass
        with pytest.raises(FeedStopped):
            await feed.wait_ready()
        await eventually(lambda: "market-feed-1" not in feed.supervisor)  # given up: gone
        again = await feed.attach(markets[0])
        await feed.wait_ready()
        assert again.connected
        assert list(feed.supervisor) == ["market-feed-2", "market-feed-3"]
        assert {feed.supervisor.status(name) for name in feed.supervisor} == {"running"}
        events = aiter(again)
        assert isinstance(await anext(events), Book)
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
        streams[1].close()
        again.close()


async def test_a_served_stream_calls_its_handler_in_order_with_backpressure(
    make_simulator: MakeSimulator,
) -> None:
    """serve() hands each batch to the handler right after the books took it, in the
    caller's context; batches queued before it are handled first; an awaitable the handler
    returns holds the connection; an error the handler raises ends serve() with it."""
    import contextvars

    sim = await make_simulator(markets=2, event_rate=800.0)
    market = sim.markets()[0]
    owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner", default="nobody")
    options = fast_options(deliver_events=False)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        stream = await feed.attach(market)
        await feed.wait_ready()
        await asyncio.sleep(0.05)  # some batches queue before serve()
        queued = stream.backlog
        seen: list[MarketEvent] = []
        owners: set[str] = set()
        held = asyncio.Event()
        released = asyncio.Event()

        async def hold() -> None:
            held.set()
            await released.wait()

        def handler(batch: list[MarketEvent]) -> Any:
            owners.add(owner.get())
            for event in batch:
                assert event.market == market.condition_id
            seen.extend(batch)
            if len(seen) >= 60 and not held.is_set():
                return hold()
            if len(seen) >= 120:
                raise LookupError("enough")
            return None

        owner.set("the monitor")
        serving = asyncio.create_task(stream.serve(handler))
        await held.wait()
        count = len(seen)
        await asyncio.sleep(0.1)
        assert len(seen) == count  # the connection waits for the handler's awaitable
        released.set()
        with pytest.raises(LookupError, match="enough"):
            await serving
        assert queued > 0
        assert owners == {"the monitor"}
        assert stream.received >= len(seen)
        assert market.condition_id not in feed._streams  # ended: no more calls
