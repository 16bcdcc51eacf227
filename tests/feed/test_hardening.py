"""Hostile servers: no frame costs a connection or an ERROR; the watchdogs and the backoff
keep their promises. Real loopback websocket servers throughout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
from websockets.asyncio.server import ServerConnection, serve

from polymarket_agents.core.async_utils import RestartPolicy
from polymarket_agents.feed import InvalidKind, MarketFeed
from polymarket_agents.feed.simulator import FaultPlan, MalformedKind

from .conftest import MakeSimulator, assert_books_match, eventually, fast_options, settle

BOOK = (
    '[{"event_type":"book","asset_id":"1","market":"0xm","timestamp":"1",'
    '"bids":[{"price":"0.4","size":"1"}],"asks":[{"price":"0.6","size":"1"}]}]'
)
DEEP = 100_000

Handler = Callable[[ServerConnection], Awaitable[None]]


async def serve_on_loopback(handler: Handler) -> tuple[str, asyncio.AbstractServer]:
    server = await serve(handler, "127.0.0.1", 0, ping_interval=None)
    port = server.sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws/market", server  # type: ignore[return-value]


async def test_every_malformed_kind_is_counted_by_kind_and_costs_nothing(
    make_simulator: MakeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad JSON, deep nesting, empty arrays, binary frames and invalid UTF-8 from the
    simulator are each counted under their kind; one connection, no ERROR, exact books."""
    sim = await make_simulator(markets=2, event_rate=1000.0, faults=FaultPlan(malformed_rate=0.5))
    with caplog.at_level(logging.WARNING, logger="polymarket_agents.feed"):
        async with MarketFeed(sim.ws_url, markets=sim.markets(), **fast_options()) as feed:
            async for _ in feed:
                if feed.stats.invalid_frames >= 2 * len(MalformedKind):
                    break
            await settle(sim, feed)
            [sent] = sim.connections()
            stats = feed.stats
            assert stats.invalid_frames == sent.malformed
            assert stats.connections == 1
            assert stats.reconnects == 0
            assert sum(stats.invalid_by_kind.values()) == stats.invalid_frames
            for kind in (
                InvalidKind.NOT_JSON,
                InvalidKind.TOO_DEEP,
                InvalidKind.EMPTY,
                InvalidKind.BINARY,
                InvalidKind.INVALID_EVENT,
            ):
                assert stats.invalid_by_kind.get(kind, 0) >= 1, kind
            assert_books_match(sim, feed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if "skipping a frame" in r.getMessage()]
    assert len(warnings) == 1  # one per connection, the rest at DEBUG


async def test_a_binary_frame_is_never_applied() -> None:
    """A well-formed event in a binary frame is refused; the same bytes as text are used."""
    update = (
        b'{"event_type":"price_change","market":"0xm","timestamp":"2","price_changes":'
        b'[{"asset_id":"1","price":"0.45","size":"7","side":"BUY","best_bid":"0.45",'
        b'"best_ask":"0.6"}]}'
    )
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(BOOK)
        await ws.send(update, text=False)  # binary: must be refused
        await ws.send(update, text=True)
        await done.wait()

    url, server = await serve_on_loopback(handler)
    async with server, MarketFeed(url, ["1"], **fast_options()) as feed:
        await eventually(lambda: feed.stats.frames >= 3)
        assert feed.stats.invalid_by_kind == {"binary": 1}
        assert feed.stats.events == 2
        assert feed.books["1"].bids == {Decimal("0.4"): 1, Decimal("0.45"): 7}
        done.set()


async def test_a_deeply_nested_frame_on_every_connection_costs_none_of_them() -> None:
    """The frame that took every market offline (100,000 levels) now costs nothing: three
    feeds meet it, each counts it as too deep and keeps its connection."""
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(BOOK)
        await ws.send("[" * DEEP + "]" * DEEP)
        await ws.send('{"event_type":"x","data":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}")
        await done.wait()

    url, server = await serve_on_loopback(handler)
    async with server:
        feeds = [MarketFeed(url, ["1"], **fast_options(), name=f"feed-{i}") for i in range(3)]
        for feed in feeds:
            await feed.start()
        try:
            for feed in feeds:
                await eventually(lambda feed=feed: feed.stats.invalid_frames >= 2)  # type: ignore[misc]
                assert feed.stats.invalid_by_kind == {"too_deep": 2}
                assert feed.stats.connections == 1
                assert feed.stats.ready
        finally:
            for feed in feeds:
                await feed.aclose()
            done.set()


@pytest.mark.looptime
async def test_the_pong_timer_starts_at_the_first_unanswered_ping() -> None:
    """With PING every 10 s and a 30 s PONG timeout, a server that never answers loses
    the connection 30 s after the first PING (40 s after connecting), not 30 s after
    connecting."""
    loop = asyncio.get_running_loop()
    closed_at: list[float] = []
    opened_at: list[float] = []
    first_ping: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        opened_at.append(loop.time())
        await ws.recv()
        await ws.send(BOOK)
        try:
            async for message in ws:
                if message == "PING" and not first_ping:
                    first_ping.append(loop.time())
                await ws.send('[{"event_type":"x"}]')  # data keeps coming; PONG never
        finally:
            closed_at.append(loop.time())

    url, server = await serve_on_loopback(handler)
    options = fast_options(ping_interval=10.0, pong_timeout=30.0, silence_timeout=None)
    async with server, MarketFeed(url, ["1"], **options) as feed:
        await eventually(lambda: len(closed_at) >= 1, timeout=120)
        assert feed.stats.last_error is not None
        assert "PongTimeout" in feed.stats.last_error
    lived = closed_at[0] - opened_at[0]
    assert first_ping[0] - opened_at[0] == pytest.approx(10.0, abs=1.0)
    assert lived == pytest.approx(40.0, abs=4.0)


def _delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        record.delay  # type: ignore[attr-defined]
        for record in caplog.records
        if "restarting in" in record.getMessage() and record.name == "polymarket_agents.feed"
    ]


@pytest.mark.parametrize("sync", [True, False], ids=["synced", "never-synced"])
@pytest.mark.looptime
async def test_backoff_resets_once_a_connection_synced(
    caplog: pytest.LogCaptureFixture, sync: bool
) -> None:
    """A server that drops every connection right after the snapshot costs one first
    delay per reconnect; one that drops before any snapshot gets the doubling backoff."""
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()
        if sync:
            await ws.send(BOOK)
            await asyncio.sleep(0.5)  # let the client apply it
        await ws.close(1011)

    policy = RestartPolicy(backoff_seconds=1.0, max_backoff=60.0, jitter=0.0)
    url, server = await serve_on_loopback(handler)
    with caplog.at_level(logging.WARNING, logger="polymarket_agents.feed"):
        async with server, MarketFeed(url, ["1"], **fast_options(policy=policy)):
            await eventually(lambda: connections >= 6, timeout=300)
    delays = _delays(caplog)[:5]
    if sync:
        assert delays == [1.0] * 5
    else:
        assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
