"""Every simulator fault switch, survived by MarketFeed over real loopback sockets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from polymarket_agents.feed import DataSilence, MarketFeed, PongTimeout, PriceChange
from polymarket_agents.feed.simulator import FaultPlan, MalformedKind, MarketSimulator

from .conftest import MakeSimulator, assert_books_match, eventually, fast_options, settle


async def run_until(feed: MarketFeed, predicate: Any, limit: int = 100_000) -> int:
    """Consume events until ``predicate()`` holds; return how many were consumed."""
    count = 0
    async for _ in feed:
        count += 1
        if predicate() or count >= limit:
            break
    return count


async def recover_and_compare(sim: MarketSimulator, feed: MarketFeed) -> None:
    """Once faults are over: wait for a synced feed, settle, and compare every book."""
    await feed.wait_ready()
    await settle(sim, feed)
    assert_books_match(sim, feed)


@pytest.mark.parametrize("abort", [False, True], ids=["close-frame", "abort"])
async def test_dropped_connections_reconnect_and_resync(
    make_simulator: MakeSimulator, abort: bool
) -> None:
    """Connections dropped every 0.15 s (with or without a close frame) reconnect, resubscribe
    and end with exact books."""
    plan = FaultPlan(abort_every=0.15) if abort else FaultPlan(drop_every=0.15)
    sim = await make_simulator(markets=3, event_rate=1000.0, faults=plan)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        await run_until(feed, lambda: feed.stats.connections >= 3)
        stats = feed.stats
        assert stats.reconnects >= 2
        assert stats.last_error is not None
        assert "ConnectionClosed" in stats.last_error
        closed = [c for c in sim.connections() if not c.open]
        assert {c.close_reason for c in closed} == {"aborted" if abort else "dropped (1011)"}
        # Every connection subscribed once, with one initial frame.
        assert all(c.invalid_operations == 0 for c in sim.connections())
        sim.faults = FaultPlan()  # the outage is over
        sim.drop_connections()
        await recover_and_compare(sim, feed)


async def test_silent_freeze_is_detected_and_survived(make_simulator: MakeSimulator) -> None:
    """PONGs keep coming but data stops: the silence watchdog reconnects."""
    sim = await make_simulator(markets=2, event_rate=1000.0, faults=FaultPlan(freeze_after=0.1))
    options = fast_options(silence_timeout=0.3)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        await run_until(feed, lambda: feed.stats.connections >= 2)
        first = sim.connections()[0]
        assert first.suppressed > 0
        assert first.pongs > 0
        assert feed.stats.last_error is not None
        assert DataSilence.__name__ in feed.stats.last_error
        sim.faults = FaultPlan()
        await recover_and_compare(sim, feed)


async def test_unanswered_pings_are_detected_and_survived(make_simulator: MakeSimulator) -> None:
    """The server stops answering PING: the PONG watchdog reconnects."""
    sim = await make_simulator(markets=2, event_rate=1000.0, faults=FaultPlan(stop_pong_after=0.05))
    options = fast_options(pong_timeout=0.3)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        await run_until(feed, lambda: feed.stats.connections >= 2)
        assert sim.connections()[0].pings_ignored > 0
        assert feed.stats.last_error is not None
        assert PongTimeout.__name__ in feed.stats.last_error
        sim.faults = FaultPlan()
        await recover_and_compare(sim, feed)


async def test_malformed_frames_are_counted_and_skipped(make_simulator: MakeSimulator) -> None:
    """Every malformed frame of every kind is counted as invalid; the books stay exact."""
    sim = await make_simulator(markets=2, event_rate=1000.0, faults=FaultPlan(malformed_rate=0.3))
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        await run_until(feed, lambda: feed.stats.invalid_frames >= 2 * len(MalformedKind))
        await settle(sim, feed)
        [sent] = sim.connections()
        assert feed.stats.invalid_frames == sent.malformed
        assert feed.stats.frames == sent.frames
        assert feed.stats.connections == 1
        assert_books_match(sim, feed)


async def test_oversized_frames_are_refused_unread_counted_and_reconnected(
    make_simulator: MakeSimulator,
) -> None:
    """A frame over the client's limit is refused from its header before any of it is
    buffered (close code 1009): it is counted as too_large, and the feed reconnects and
    resyncs its books."""
    plan = FaultPlan(oversized_rate=0.05, oversized_bytes=6000)
    sim = await make_simulator(markets=2, event_rate=1000.0, faults=plan)
    options = fast_options(max_frame_bytes=5000)
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        await run_until(feed, lambda: feed.stats.connections >= 2)
        assert feed.stats.last_error is not None
        assert "1009" in feed.stats.last_error
        assert feed.stats.invalid_frames >= 1
        assert feed.stats.invalid_by_kind.get("too_large", 0) == feed.stats.invalid_frames
        sim.faults = FaultPlan()
        sim.drop_connections()
        await recover_and_compare(sim, feed)


async def test_legacy_price_change_schema(make_simulator: MakeSimulator) -> None:
    """The legacy 'changes' schema keeps the books exact (without advertised tops)."""
    sim = await make_simulator(
        markets=2, event_rate=1000.0, faults=FaultPlan(legacy_price_change=True)
    )
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        legacy = 0
        async for event in feed:
            if isinstance(event, PriceChange):
                assert event.legacy
                legacy += 1
                if legacy == 300:
                    break
        await settle(sim, feed)
        assert_books_match(sim, feed)


async def test_slow_sends(make_simulator: MakeSimulator) -> None:
    """A server that writes slowly delays the feed but never corrupts it."""
    sim = await make_simulator(markets=2, event_rate=400.0, faults=FaultPlan(send_delay=0.002))
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
        await run_until(feed, lambda: feed.stats.events >= 200)
        await settle(sim, feed)
        assert_books_match(sim, feed)
        assert feed.stats.reconnects == 0


async def test_a_corrupted_book_is_resynced_on_the_same_connection(
    make_simulator: MakeSimulator,
) -> None:
    """A local book that disagrees with the advertised top goes stale and gets a fresh
    snapshot by unsubscribing and subscribing again, without reconnecting."""
    sim = await make_simulator(markets=1, event_rate=1000.0)
    market = sim.markets()[0]
    async with MarketFeed(sim.ws_url, markets=[market], **fast_options()) as feed:
        await feed.wait_ready()
        book = feed.books[market.yes_token]
        bid = book.best_bid
        assert bid is not None
        book.set_level("BUY", bid, Decimal(0))  # corrupt the local top behind the feed's back
        await run_until(feed, lambda: feed.stats.resyncs >= 1 and feed.stats.ready)
        await settle(sim, feed)
        assert_books_match(sim, feed)
        assert feed.stats.connections == 1
        assert feed.stats.dropped_updates >= 0


async def test_a_server_that_ignores_resync_requests_gets_a_new_connection() -> None:
    """If a stale book gets no snapshot within resync_timeout, the feed reconnects."""
    opened = 0
    book = (
        '[{"event_type":"book","asset_id":"1","market":"0xm","timestamp":"1",'
        '"bids":[{"price":"0.4","size":"1"}],"asks":[{"price":"0.6","size":"1"}]}]'
    )
    lie = (
        '{"event_type":"price_change","market":"0xm","timestamp":"2","price_changes":'
        '[{"asset_id":"1","price":"0.3","size":"1","side":"BUY","best_bid":"0.5",'
        '"best_ask":"0.6"}]}'
    )

    async def handler(ws: ServerConnection) -> None:
        nonlocal opened
        opened += 1
        await ws.recv()  # the initial frame
        await ws.send(book)
        await ws.send(lie)  # wrong advertised top: the book goes stale
        async for message in ws:  # ignore operations; answer PINGs
            if message == "PING":
                await ws.send("PONG")
                await ws.send('[{"event_type":"x"}]')  # keep the silence watchdog quiet

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        options = fast_options(resync_timeout=0.2)
        async with MarketFeed(f"ws://127.0.0.1:{port}/ws/market", ["1"], **options) as feed:
            await run_until(feed, lambda: feed.stats.connections >= 2)
            assert feed.stats.resyncs >= 1
            assert feed.stats.last_error is not None
            assert "ResyncTimeout" in feed.stats.last_error
            await eventually(lambda: opened >= 2)


async def test_invalid_operation_replies_are_counted() -> None:
    """INVALID OPERATION text from the server is counted, not decoded."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("INVALID OPERATION")
        await ws.send('[{"event_type":"unknown"}]')
        async for _ in ws:  # until the client leaves
            pass

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        feed = MarketFeed(f"ws://127.0.0.1:{port}/ws/market", ["1"], **fast_options())
        async with feed:
            await eventually(lambda: feed.stats.frames >= 2)
            assert feed.stats.invalid_operations == 1
            assert feed.stats.invalid_frames == 0
            assert feed.stats.events == 0
