"""The simulator speaks the market-channel protocol as the live service does."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from polymarket_agents.feed import Book, FrameDecoder, encode_operation, encode_subscribe
from polymarket_agents.feed.simulator import (
    FaultPlan,
    MarketSimulator,
    Universe,
    run_simulator,
    running_simulator,
)

from .conftest import MakeSimulator, eventually

ONE = Decimal(1)


async def recv_json(ws: ClientConnection) -> Any:
    """The next frame, decoded as JSON."""
    async with asyncio.timeout(5):
        frame = await ws.recv()
    return json.loads(frame)


async def test_initial_dump_is_one_array_of_books_best_last(make_simulator: MakeSimulator) -> None:
    """Subscribing gets one array of book snapshots: bids ascending, asks descending,
    with a 40-hex hash, the tick size and millisecond timestamps; unknown ids are ignored."""
    sim = await make_simulator(markets=2, event_rate=None)
    await sim.pause()
    market = sim.markets()[0]
    async with connect(sim.ws_url) as ws:
        await ws.send(encode_subscribe([*market.token_ids, "424242"]))
        dump = await recv_json(ws)
    assert isinstance(dump, list)
    assert [book["asset_id"] for book in dump] == list(market.token_ids)
    for raw in dump:
        assert raw["event_type"] == "book"
        assert re.fullmatch(r"[0-9a-f]{40}", raw["hash"])
        assert raw["tick_size"] == "0.01"
        assert raw["timestamp"].isdigit()
        assert len(raw["timestamp"]) == 13
        bids = [Decimal(level["price"]) for level in raw["bids"]]
        asks = [Decimal(level["price"]) for level in raw["asks"]]
        assert bids == sorted(bids)
        assert asks == sorted(asks, reverse=True)
        assert bids[-1] < asks[-1]
    [yes] = FrameDecoder().decode(json.dumps(dump[:1]))
    assert isinstance(yes, Book)
    assert {level.price: level.size for level in yes.bids} == sim.books[market.yes_token].bids


async def test_text_protocol_replies(make_simulator: MakeSimulator) -> None:
    """PING gets PONG; a second initial frame and stray text get INVALID OPERATION."""
    sim = await make_simulator(markets=1)
    await sim.pause()
    token = sim.markets()[0].yes_token
    async with connect(sim.ws_url) as ws:
        await ws.send("PING")
        assert await ws.recv() == "PONG"
        await ws.send(encode_subscribe([token]))
        assert (await recv_json(ws))[0]["asset_id"] == token
        await ws.send(encode_subscribe([token]))
        assert await ws.recv() == "INVALID OPERATION"
        await ws.send("HELLO")
        assert await ws.recv() == "INVALID OPERATION"
        await ws.send('{"operation": "jump"}')
        assert await ws.recv() == "INVALID OPERATION"
    [stats] = sim.connections()
    assert (stats.pings, stats.pongs, stats.invalid_operations) == (1, 1, 3)
    assert stats.client_frames == 5


async def test_operations_change_the_subscription(make_simulator: MakeSimulator) -> None:
    """An operation subscribe sends the new assets' books; unsubscribe stops their data."""
    sim = await make_simulator(markets=2)
    await sim.pause()
    first, second = sim.markets()
    async with connect(sim.ws_url) as ws:
        await ws.send(encode_subscribe([first.yes_token]))
        await recv_json(ws)
        await ws.send(encode_operation("subscribe", [second.no_token, first.yes_token]))
        added = await recv_json(ws)
        assert [book["asset_id"] for book in added] == [second.no_token]
        await ws.send(encode_operation("unsubscribe", [first.yes_token]))
        await eventually(lambda: sim.connections()[0].subscribed == 1)
        sim.tick(300)
        await sim.pause()
        [stats] = sim.connections()
        received = [await recv_json(ws) for _ in range(stats.frames - 2)]
    for frame in received:
        for event in frame if isinstance(frame, list) else [frame]:
            ids = {event.get("asset_id")} | {c["asset_id"] for c in event.get("price_changes", [])}
            assert ids - {None} == {second.no_token}


async def test_each_frame_goes_to_the_subscribers_of_its_assets_only(
    make_simulator: MakeSimulator,
) -> None:
    """Many connections, each on its own markets: every data frame the engine makes reaches
    exactly the connections subscribed to its assets, before and after subscriptions change
    and connections close."""
    sim = await make_simulator(markets=40, batch_probability=0.0)
    await sim.pause()
    markets = sim.markets()
    # Closing sockets with frames left unread: no need to wait for the closing handshake.
    sockets = [await connect(sim.ws_url, close_timeout=0.1) for _ in range(8)]
    try:
        for n, ws in enumerate(sockets):
            mine = [a for m in markets[5 * n : 5 * n + 5] for a in m.token_ids]
            await ws.send(encode_subscribe(mine))
            await recv_json(ws)
        await sockets[0].send(encode_operation("unsubscribe", list(markets[0].token_ids)))
        await sockets[1].send(encode_operation("subscribe", list(markets[0].token_ids)))
        await eventually(lambda: sorted(c.subscribed for c in sim.connections())[-1] == 12)
        await sockets[7].close()
        await eventually(lambda: len([c for c in sim.connections() if c.open]) == 7)
        before = {c.id: c.data_frames for c in sim.connections()}
        sim.tick(400)
        await sim.pause()
        stats = {c.id: c for c in sim.connections()}
        frames = {i: stats[i].data_frames - before[i] for i in before}
        # A tick's events concern one market, whose tokens one open connection carries
        # unless it was the closed connection's: frames add up to the ticks that made some.
        assert frames[8] == 0
        assert all(frames[i] > 0 for i in range(1, 8))
        owners = {a: c.id for c in stats.values() if c.open for a in c.asset_ids}
        assert len(owners) == 70  # 35 markets still carried, none twice
    finally:
        for ws in sockets:
            await ws.close()


async def test_other_paths_are_not_found(make_simulator: MakeSimulator) -> None:
    """Only /ws/market accepts websockets; '/ws/' alone is a 404, as live."""
    sim = await make_simulator(markets=1)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(sim.ws_url.replace("/ws/market", "/ws/")):
            pass
    assert caught.value.response.status_code == 404


async def test_idle_connections_are_closed(make_simulator: MakeSimulator) -> None:
    """A client that sends nothing for idle_timeout is closed by the server."""
    sim = await make_simulator(markets=1, idle_timeout=0.1)
    async with connect(sim.ws_url) as ws:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                await ws.recv()
    assert sim.connections()[0].close_reason == "idle"


async def test_slow_connections_are_shed(make_simulator: MakeSimulator) -> None:
    """A connection whose outbox overflows is closed with 1013 rather than growing forever."""
    sim = await make_simulator(
        markets=2, event_rate=2000.0, send_queue=5, faults=FaultPlan(send_delay=0.05)
    )
    async with connect(sim.ws_url) as ws:
        await ws.send(encode_subscribe([a for m in sim.markets() for a in m.token_ids]))
        await eventually(lambda: not sim.connections()[0].open)
    assert "1013" in sim.connections()[0].close_reason


def test_same_seed_same_universe_and_events() -> None:
    """A seed fixes the markets and, tick by tick, the events."""
    clock = lambda: 1_700_000_000.0  # noqa: E731
    first, second = Universe(seed=7, clock=clock), Universe(seed=7, clock=clock)
    assert first.infos() == second.infos()
    assert [first.step() for _ in range(300)] == [second.step() for _ in range(300)]
    assert Universe(seed=8).infos() != first.infos()


def test_books_stay_sound_and_mirrored() -> None:
    """Over many ticks no book crosses and every NO book mirrors its YES book."""
    universe = Universe(seed=3, markets=6)
    for _ in range(5000):
        universe.step()
    for market in universe.markets:
        assert not market.yes.crossed
        assert not market.no.crossed
        assert market.no.bids == {ONE - p: s for p, s in market.yes.asks.items()}
        assert market.no.asks == {ONE - p: s for p, s in market.yes.bids.items()}
        assert market.tick in (Decimal("0.01"), Decimal("0.001"))
        for price in (*market.yes.bids, *market.yes.asks):
            assert price % market.tick == 0
            assert market.tick <= price <= ONE - market.tick


def test_dislocations_open_and_close_a_complement_edge() -> None:
    """A dislocation makes YES ask + NO ask sum below 1 by the edge, then restores it."""
    universe = Universe(
        seed=1, markets=1, dislocation_rate=1.0, dislocation_edge=0.08, dislocation_seconds=1.0
    )
    [market] = universe.markets
    [snapshot] = universe.step(now=0.0)
    assert isinstance(snapshot, Book)
    assert snapshot.asset_id == market.no_token
    yes_ask, no_ask = market.yes.best_ask, market.no.best_ask
    assert yes_ask is not None
    assert no_ask is not None
    assert ONE - Decimal("0.09") <= yes_ask + no_ask <= ONE - Decimal("0.08")
    assert not market.no.crossed
    assert universe.step(now=0.5) == []  # the only market waits for its correction
    universe.dislocation_rate = 0.0
    events = universe.step(now=1.0)
    assert isinstance(events[0], Book)
    assert events[0].asset_id == market.no_token
    assert market.no.bids == {ONE - p: s for p, s in market.yes.asks.items()}


def test_invalid_settings_are_rejected() -> None:
    """Bad universe, simulator and fault settings raise ValueError."""
    with pytest.raises(ValueError, match="markets"):
        Universe(markets=0)
    with pytest.raises(ValueError, match="dislocation_edge"):
        Universe(dislocation_edge=0.7)
    with pytest.raises(ValueError, match="event_rate"):
        MarketSimulator(event_rate=0)
    with pytest.raises(ValueError, match="malformed_rate"):
        FaultPlan(malformed_rate=2.0)
    with pytest.raises(ValueError, match="drop_every"):
        FaultPlan(drop_every=-1.0)
    assert not FaultPlan().active
    assert FaultPlan(legacy_price_change=True).active


async def test_helpers_start_and_stop_the_server() -> None:
    """running_simulator binds a free loopback port; run_simulator serves until cancelled."""
    async with running_simulator(markets=1) as sim:
        assert sim.ws_url.startswith("ws://127.0.0.1:")
        assert sim.http_url == f"http://127.0.0.1:{sim.port}"
        assert "markets=1" in repr(sim)
    started: asyncio.Future[MarketSimulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_simulator("127.0.0.1", 0, ready=started.set_result, markets=1))
    sim = await started
    async with connect(sim.ws_url) as ws:
        await ws.send("PING")
        assert await ws.recv() == "PONG"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ConnectionRefusedError):
        async with connect(sim.ws_url, open_timeout=2):
            pass


@pytest.mark.slow
def test_command_line_help() -> None:
    """python -m polymarket_agents.feed.simulator documents its flags."""
    result = subprocess.run(
        [sys.executable, "-m", "polymarket_agents.feed.simulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert "--drop-every" in result.stdout
    assert "/ws/market" in result.stdout


async def test_a_rate_faster_than_the_simulator_still_yields_to_its_clients(
    make_simulator: MakeSimulator,
) -> None:
    """A paced simulator that cannot keep up with its rate keeps serving frames instead of
    generating ticks forever without letting its connections write."""
    sim = await make_simulator(markets=5, event_rate=1e6)
    market = sim.markets()[0]
    received = 0
    # A short close timeout: the server's outbox is deep, its close reply comes late.
    async with connect(sim.ws_url, close_timeout=0.1) as ws:
        await ws.send(encode_subscribe(list(market.token_ids)))
        async with asyncio.timeout(10):
            while received < 200:
                await ws.recv()
                received += 1
    assert received == 200


@pytest.mark.parametrize("rate", [None, 200.0])
async def test_the_engine_sleeps_while_nobody_subscribes(
    make_simulator: MakeSimulator, rate: float | None
) -> None:
    """No subscriber, no ticks: flat out, generating for nobody would spin a core. A
    subscription wakes the engine; when its connection closes the engine sleeps again."""
    sim = await make_simulator(markets=2, event_rate=rate)
    started = asyncio.get_running_loop().time()
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert sim.ticks == 0
    # It stops reading before closing: a short close_timeout ends the handshake it cannot see.
    async with connect(sim.ws_url, close_timeout=0.2) as ws:
        await ws.send(encode_operation("subscribe", []))  # connected, but subscribed to nothing
        await asyncio.sleep(0.1)
        assert sim.ticks == 0
        # Idle means asleep: a fraction of the CPU the wall time would allow a spinning loop.
        assert time.process_time() - cpu < 0.5 * (asyncio.get_running_loop().time() - started)
        await ws.send(encode_operation("subscribe", sim.markets()[0].token_ids))
        await eventually(lambda: sim.ticks > 10)
    await eventually(lambda: not sim.connections()[0].open)
    await asyncio.sleep(0.05)  # the engine notices at its next iteration
    ticks = sim.ticks
    await asyncio.sleep(0.2)
    assert sim.ticks == ticks
