"""Benchmark of the backtest: recorded events replayed per second.

Run ``python bench/backtest.py``. It first records a market-data history the way the service
does (the simulator's own event generator, every event numbered and converted to storage
rows by the same code as a live monitor, written by ``SQLiteStore`` in batches), then, each in
a fresh subprocess several times (medians):

* ``backtest``: the whole replay as ``polymarket-agents backtest`` runs it: the stored
  rows read a window at a time (``Ledger.event_windows``), each event made again from
  them with the feed's event types, applied by ``BookSet``, analysed by complement
  arbitrage and traded by the paper broker; events per second;
* the floor: the same stored events read back in order as wire JSON (``Ledger.events``:
  the database rebuilds each event's JSON) and ``json.loads``-ed, with nothing else done;
* decode + books: the floor plus ``FrameDecoder`` and ``BookSet.apply``, no strategy (what
  the backtest did before it read plain rows).

Goal: >= 100,000 recorded events/s for the whole backtest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _harness import median_of_runs
from polymarket_agents.agents import ComplementArbitrage, EventSequence, backtest, event_rows
from polymarket_agents.agents import market_row as make_market_row
from polymarket_agents.feed import BookSet, FrameDecoder
from polymarket_agents.feed.simulator import Universe
from polymarket_agents.storage import SQLiteStore

MARKETS = 50


async def _record(path: Path, events: int) -> dict[str, float]:
    """``events`` simulator events of ``MARKETS`` markets, stored as a monitor stores them."""
    clock = [1_790_000_000.0]
    universe = Universe(seed=7, markets=MARKETS, dislocation_rate=0.02, clock=lambda: clock[0])
    universe.best_bid_ask = False  # the service does not subscribe to custom features
    sequence = EventSequence(1)
    rows: list[object] = [make_market_row(info, 0) for info in universe.infos()]
    for info in universe.infos():
        for token in info.token_ids:
            rows.append(event_rows(universe.snapshot(token), 0, event_seq=sequence()))
    count = 0
    async with SQLiteStore(path) as store:
        while count < events:
            clock[0] += 0.001
            for event in universe.step(clock[0]):
                stored = event_rows(event, int(clock[0] * 1000), event_seq=sequence())
                if stored is None:
                    continue
                rows.extend(stored if isinstance(stored, tuple) else (stored,))
                count += 1
            if len(rows) >= 5_000:
                await store.write_batch(rows)
                rows = []
        await store.write_batch(rows)
        stored_rows = sum((await store.counts()).values())
    size = await asyncio.to_thread(lambda: path.stat().st_size)
    return {"events": count, "rows": stored_rows, "bytes": size}


async def _replay(path: Path) -> dict[str, float]:
    async with SQLiteStore(path) as store:
        result = await backtest(store, ComplementArbitrage())
    return {
        "events": result.events,
        "seconds": result.seconds,
        "events_per_s": result.events_per_second,
        "fills": len(result.fills),
    }


async def _floor(path: Path, books: bool) -> dict[str, float]:
    """The same rows read (and decoded and applied, with ``books``), nothing else."""
    async with SQLiteStore(path) as store:
        markets = await store.markets()
        book_set = BookSet()
        for market in markets:
            book_set.add_market(market.condition_id, market.yes_token, market.no_token)
        decoder = FrameDecoder(max_frame_bytes=2**31 - 1)
        started = time.perf_counter()
        events = 0
        async for chunk in store.events():
            if books:
                decoded = decoder.decode("[" + ",".join(r.wire for r in chunk) + "]")
                assert isinstance(decoded, list)
                for event in decoded:
                    book_set.apply((event,))
            else:
                for record in chunk:
                    json.loads(record.wire)
            events += len(chunk)
        seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


def child(args: list[str]) -> None:
    what, path = args[0], Path(args[1])
    if what == "record":
        result = asyncio.run(_record(path, int(args[2])))
    elif what == "replay":
        result = asyncio.run(_replay(path))
    else:
        result = asyncio.run(_floor(path, books=what == "books"))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per figure")
    parser.add_argument("--events", type=int, default=200_000, help="events to record")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return
    print(
        f"backtest benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{options.runs} runs each, medians"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recorded.sqlite"
        recorded = median_of_runs(__file__, ["record", str(path), str(options.events)], 1)
        print(
            f"\nRecorded {recorded['events']:,.0f} events ({recorded['rows']:,.0f} rows, "
            f"{recorded['bytes'] / 2**20:.1f} MiB) of {MARKETS} simulated markets"
        )
        rows = {
            name: median_of_runs(__file__, [name, str(path)], options.runs)
            for name in ("floor", "books", "replay")
        }
    floor = rows["floor"]["events_per_s"]
    print(f"\n{'':<44} {'events/s':>10} {'x floor':>8}")
    for name, label in (
        ("floor", "floor: query + json.loads"),
        ("books", "query + decode + books"),
        ("replay", "backtest (decode, books, strategy, broker)"),
    ):
        rate = rows[name]["events_per_s"]
        print(f"{label:<44} {rate:>10,.0f} {rate / floor:>7.2f}x")
    print(f"  fills in the backtest: {rows['replay']['fills']:,.0f}")
    print("  goal: backtest >= 100,000 recorded events/s")


if __name__ == "__main__":
    main()
