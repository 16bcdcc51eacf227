"""Observable books: GET /books and /books/{asset_id} show the service's own books, and the
database holds what rebuilds them exactly."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from polymarket_agents.feed import canonical
from polymarket_agents.feed.simulator import running_simulator
from polymarket_agents.service import Service, ServiceConfig


def _rebuild(path: Path) -> dict[str, dict[str, Any]]:
    """Every asset's book from the database alone: its latest snapshot, the level changes
    taken after it (in the order the service took them), and the latest tick size and
    trade price of snapshots, tick size changes and trades."""
    db = sqlite3.connect(path)
    try:
        books: dict[str, dict[str, Any]] = {}
        snapshots = db.execute(
            "SELECT asset_id, market, timestamp_ms, bids, asks, event_seq FROM book_snapshots "
            "WHERE (asset_id, event_seq) IN "
            "(SELECT asset_id, MAX(event_seq) FROM book_snapshots GROUP BY asset_id)"
        ).fetchall()
        for asset_id, market, timestamp, bids, asks, seq in snapshots:
            sides = {
                side: {Decimal(p): Decimal(s) for p, s in json.loads(levels) if Decimal(s)}
                for side, levels in (("BUY", bids), ("SELL", asks))
            }
            for side, price, size, at in db.execute(
                "SELECT value->>3, value->>1, value->>2, timestamp_ms "
                "FROM price_changes, json_each(price_changes.changes) "
                "WHERE value->>0 = ? AND event_seq > ? ORDER BY event_seq, json_each.key",
                (asset_id, seq),
            ):
                if Decimal(size):
                    sides[side][Decimal(price)] = Decimal(size)
                else:
                    sides[side].pop(Decimal(price), None)
                timestamp = at
            books[asset_id] = {
                "asset_id": asset_id,
                "market": market,
                "bids": [[canonical(p), canonical(s)] for p, s in sorted(sides["BUY"].items())][
                    ::-1
                ],
                "asks": [[canonical(p), canonical(s)] for p, s in sorted(sides["SELL"].items())],
                "tick_size": _latest(
                    db,
                    asset_id,
                    "SELECT event_seq, tick_size FROM book_snapshots WHERE asset_id = ? "
                    "UNION ALL SELECT event_seq, new_tick_size FROM tick_size_changes "
                    "WHERE asset_id = ?",
                ),
                "last_trade_price": _latest(
                    db,
                    asset_id,
                    "SELECT event_seq, last_trade_price FROM book_snapshots WHERE asset_id = ? "
                    "UNION ALL SELECT event_seq, price FROM trades WHERE asset_id = ?",
                ),
                "timestamp": str(timestamp),
                "synced": True,
            }
        return books
    finally:
        db.close()


def _latest(db: sqlite3.Connection, asset_id: str, sql: str) -> str | None:
    """The value of the latest row (by event number) that has one, canonical."""
    values = [
        value
        for _, value in sorted(
            db.execute(sql, (asset_id, asset_id)).fetchall(), key=lambda row: row[0]
        )
        if value is not None
    ]
    return canonical(Decimal(values[-1])) if values else None


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_books_endpoint_equals_the_books_rebuilt_from_the_database(tmp_path: Path) -> None:
    """After a busy run, /books (every asset, best first, canonical decimals) equals the
    books rebuilt from the database alone; /books/{id} is one of them, an unknown id 404."""
    path = tmp_path / "books.sqlite"
    async with running_simulator(markets=4, event_rate=400.0, seed=3) as sim:
        config = ServiceConfig(
            feed_url=sim.ws_url,
            gamma_url=sim.http_url,
            market_count=4,
            http_port=0,
            db_path=path,
            live_view="off",
        )
        service = Service(config, install_signal_handlers=False)
        run = asyncio.create_task(service.run())
        state = service.state
        async with asyncio.timeout(20):
            while not state.readiness()[0]:
                assert not run.done()
                await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # a busy second: changes, trades, resubscriptions
        await sim.pause()
        runtime = state.runtime
        assert runtime is not None
        async with asyncio.timeout(10):
            # Everything sent is received, taken and stored: the feed decoded every event
            # the simulator wrote, no monitor has a backlog, the queue is empty.
            feed = runtime.feed  # type: ignore[attr-defined]
            sent = sum(c.events for c in sim.connections())
            while feed.stats.events < sent:
                await asyncio.sleep(0.01)
            while any(m.stats.backlog for m in runtime.monitors.values()):  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
            await runtime.queue.join()  # type: ignore[attr-defined]
        assert state.http_url is not None
        status, shown = await _get(f"{state.http_url}/books")
        assert status == 200
        assert len(shown) == 8
        assert all(book["synced"] for book in shown)
        assert all(book["bids"] and book["asks"] for book in shown)
        assert any(book["last_trade_price"] for book in shown)
        assert all(book["tick_size"] for book in shown)
        first = shown[0]
        assert Decimal(first["bids"][0][0]) > Decimal(first["bids"][-1][0])  # best first
        assert Decimal(first["asks"][0][0]) < Decimal(first["asks"][-1][0])
        status, one = await _get(f"{state.http_url}/books/{first['asset_id']}")
        assert (status, one) == (200, first)
        status, _ = await _get(f"{state.http_url}/books/123")
        assert status == 404
        service.supervisor.signal_shutdown()
        summary = await run
        assert summary.exit_code == 0, summary.failure
    # The service owns its database while it runs: read it once it has stopped.
    rebuilt = await asyncio.to_thread(_rebuild, path)
    assert {book["asset_id"]: book for book in shown} == rebuilt
