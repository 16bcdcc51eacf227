"""Benchmark of the agents: simulator -> monitors -> analysis -> SQLite, against a plain loop.

Run ``python bench/agents.py``. Each configuration runs in a fresh subprocess, several
times (the table shows medians), with 100 markets and one websocket per market:

* **agents**: an :class:`~polymarket_agents.agents.AgentsRuntime`: one monitor (one
  ``MarketFeed``) per market, the default complement-arbitrage analysis after every event,
  the paper broker, and the ingestion worker writing batched, idempotent rows to SQLite;
* **floor**: the plain loop on the same connections: ``websockets`` ``recv`` +
  ``json.loads`` + rows of the same tables (same schema and unique keys), written by
  ``executemany`` in one transaction per batch through aiosqlite; no validation, no books,
  no analysis, no supervision. Beside it, the same loop writing with the blocking
  ``sqlite3`` module on the event loop's thread.

The source is the simulator in another process (seed 1), at a fixed high rate (the same
stream for every client) and flat out (``--rate 0``: as fast as its slowest subscriber
reads). With one connection per market its broadcast loop is per connection, so on a small
machine the simulator, not the client, limits the rate: both clients keep up, and the
figure that compares them is events per CPU-second of the client process (its capacity on
one core; the aiosqlite writer thread is included).

Each run measures for a fixed time after a warm-up: events per second taken from the
sockets, the client process's CPU (its writer thread included) and events per CPU-second.
Memory per monitored market is measured with tracemalloc as the slope between a runtime
of 1 market and one of 101, after their books filled.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiosqlite
from websockets.asyncio.client import connect

from _harness import median_of_runs, run_child, simulator_command
from polymarket_agents.agents import AgentsConfig, AgentsRuntime
from polymarket_agents.core.async_utils import LoopWatchdog, instant_policy
from polymarket_agents.feed import MarketInfo, encode_subscribe, fetch_markets
from polymarket_agents.service import DEFAULT_LOOP_HOLD_THRESHOLD
from polymarket_agents.storage import SQLiteStore

MARKETS = 100
SEED = 1
BATCH = 500
RATE = 500.0  # ticks per second: the paced simulator falls behind (and stalls) near 1,500

# --------------------------------------------------------------------------- the simulator


class Simulator:
    """``python -m polymarket_agents.feed.simulator`` in a subprocess."""

    def __init__(self, markets: int, rate: float) -> None:
        self.process = subprocess.Popen(
            simulator_command(markets, rate, "--seed", str(SEED)),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.ws_url = self.process.stdout.readline().split()[-1]
        self.http_url = self.process.stdout.readline().split()[-1].removesuffix("/markets")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


async def _markets(sim: Simulator, n: int) -> list[MarketInfo]:
    return (await fetch_markets(sim.http_url, page_size=500))[:n]


async def _open(source: str) -> tuple[str, list[MarketInfo], Any]:
    """The feed URL and markets of a simulator at ``source`` ticks per second (0: flat
    out), and its closer."""
    sim = Simulator(MARKETS, float(source))
    return sim.ws_url, await _markets(sim, MARKETS), sim.close


async def _window(
    count: Any, warmup: float, seconds: float, watchdog: LoopWatchdog | None = None
) -> dict[str, float]:
    """Events per second and per CPU-second over ``seconds`` after ``warmup``; with a
    watchdog, also the share of the process's CPU its own thread used."""
    await asyncio.sleep(warmup)
    events0, wall0, cpu0 = count(), time.perf_counter(), time.process_time()
    thread0 = _thread_cpu(watchdog)
    await asyncio.sleep(seconds)
    events1, wall1, cpu1 = count(), time.perf_counter(), time.process_time()
    events, wall, cpu = events1 - events0, wall1 - wall0, cpu1 - cpu0
    return {
        "events_per_s": events / wall,
        "cpu": cpu / wall,
        "events_per_cpu_s": events / cpu if cpu else 0.0,
        "watchdog_thread_share": (_thread_cpu(watchdog) - thread0) / cpu if cpu else 0.0,
    }


# --------------------------------------------------------------------------- agents


async def _agents(
    source: str, path: Path, warmup: float, seconds: float, mode: str = "agents"
) -> dict[str, float]:
    """The runtime. ``agents-watched`` adds stall detection (a heartbeat per monitor, beaten
    per event) and loop-blocking detection (a LoopWatchdog at 0.1 s); ``agents-watchdog``
    the LoopWatchdog alone, as the service runs it (its default threshold); both to measure
    what they cost. ``agents-toggle`` measures the watchdog within one run (see
    :func:`_toggled`)."""
    url, markets, close = await _open(source)
    watched = mode == "agents-watched"
    watchdog = LoopWatchdog(threshold=0.1) if watched else None
    if mode == "agents-watchdog":
        watchdog = LoopWatchdog(threshold=DEFAULT_LOOP_HOLD_THRESHOLD)
    try:
        config = AgentsConfig(
            feed_policy=instant_policy(),
            silence_timeout=None,
            monitor_heartbeat=30.0 if watched else None,
        )
        runtime = AgentsRuntime(feed_url=url, markets=markets, store_path=path, config=config)
        if watchdog is not None:
            watchdog.start()
        await runtime.start()
        monitors = list(runtime.monitors.values())

        def count() -> int:
            return sum(sum(m._counts.values()) for m in monitors)  # cheaper than .stats

        if mode == "agents-toggle":
            result = await _toggled(count, warmup, seconds)
        else:
            result = await _window(count, warmup, seconds, watchdog)
        await runtime.stop(timeout=30.0)
        stats = runtime.stats()
        result["stored_rows"] = float(stats.stored_rows)
        result["lost_rows"] = float(stats.lost_rows)
        result["orders"] = float(stats.orders)
        return result
    finally:
        if watchdog is not None:
            watchdog.stop()
        close()


def _thread_cpu(watchdog: LoopWatchdog | None) -> float:
    """CPU seconds the watchdog's own thread has used (0 without one)."""
    thread = watchdog._thread if watchdog is not None else None
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


async def _toggled(count: Any, warmup: float, seconds: float) -> dict[str, float]:
    """The watchdog's cost within one run: slices of ``seconds / 8`` with the watchdog on
    and off, in the order off-on-on-off repeated (a drift in the simulator's pace or the
    machine's load over the run cancels out), each pair of neighbouring slices compared as
    events per process CPU-second (the watchdog's thread included). The service's
    threshold; a new watchdog for every slice it is on (its thread starts and stops)."""
    await asyncio.sleep(warmup)
    slice_seconds = seconds / 8
    figures: dict[bool, list[float]] = {False: [], True: []}
    thread_cpu = cpu_on = 0.0
    for on in (False, True, True, False) * 2:
        watchdog = LoopWatchdog(threshold=DEFAULT_LOOP_HOLD_THRESHOLD) if on else None
        if watchdog is not None:
            watchdog.start()
        events0, cpu0 = count(), time.process_time()
        await asyncio.sleep(slice_seconds)
        events, cpu = count() - events0, time.process_time() - cpu0
        if watchdog is not None:
            thread_cpu += _thread_cpu(watchdog)
            cpu_on += cpu
            watchdog.stop()
        figures[on].append(events / cpu if cpu else 0.0)
    ratios = [on / off for on, off in zip(figures[True], figures[False], strict=True) if off]
    return {
        "toggle_ratio": statistics.median(ratios) if ratios else math.nan,
        "events_per_cpu_s": statistics.mean(figures[False]),
        "watchdog_thread_share": thread_cpu / cpu_on if cpu_on else 0.0,
    }


# --------------------------------------------------------------------------- the floor

_INSERTS = {
    "price_change": (
        "INSERT INTO price_changes (market, timestamp_ms, changes, received_at_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    "book": (
        "INSERT INTO book_snapshots (asset_id, market, timestamp_ms, hash, bids, asks, "
        "received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    "last_trade_price": (
        "INSERT INTO trades (asset_id, market, timestamp_ms, side, price, size, fee_rate_bps, "
        "transaction_hash, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING"
    ),
    "tick_size_change": (
        "INSERT INTO tick_size_changes (asset_id, market, timestamp_ms, old_tick_size, "
        "new_tick_size, received_at_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
}


def _rows(event: dict[str, Any], now: int, out: dict[str, list[tuple[Any, ...]]]) -> int:
    kind = event.get("event_type")
    if kind == "price_change":
        changes = [
            [
                c["asset_id"],
                c["price"],
                c["size"],
                c["side"],
                c.get("hash", ""),
                c.get("best_bid"),
                c.get("best_ask"),
            ]
            for c in event["price_changes"]
        ]
        out["price_change"].append(
            (
                event["market"],
                int(event["timestamp"]),
                json.dumps(changes, separators=(",", ":")),
                now,
            )
        )
        return 1
    if kind == "book":
        out["book"].append(
            (
                event["asset_id"],
                event["market"],
                int(event["timestamp"]),
                event.get("hash", ""),
                json.dumps([[lv["price"], lv["size"]] for lv in event.get("bids", [])]),
                json.dumps([[lv["price"], lv["size"]] for lv in event.get("asks", [])]),
                now,
            )
        )
        return 1
    if kind == "last_trade_price":
        out["last_trade_price"].append(
            (
                event["asset_id"],
                event["market"],
                int(event["timestamp"]),
                event["side"],
                event["price"],
                event["size"],
                event.get("fee_rate_bps", "0"),
                event.get("transaction_hash", ""),
                now,
            )
        )
        return 1
    if kind == "tick_size_change":
        out["tick_size_change"].append(
            (
                event["asset_id"],
                event["market"],
                int(event["timestamp"]),
                event["old_tick_size"],
                event["new_tick_size"],
                now,
            )
        )
        return 1
    return 0


async def _floor(
    source: str, path: Path, warmup: float, seconds: float, driver: str
) -> dict[str, float]:
    async with SQLiteStore(path):  # the same schema, unique keys and indexes
        pass
    url, markets, close = await _open(source)
    events = 0
    pending: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in _INSERTS}
    pending_rows = 0
    have_rows = asyncio.Event()
    stored = 0

    async def reader(assets: list[str]) -> None:
        nonlocal events, pending_rows
        loads = json.loads
        async with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
            await ws.send(encode_subscribe(assets))
            while True:
                frame = await ws.recv(decode=False)
                try:
                    data = loads(frame)
                except ValueError:
                    continue
                now = int(time.time() * 1000)
                for event in data if isinstance(data, list) else (data,):
                    events += 1
                    pending_rows += _rows(event, now, pending)
                if pending_rows >= BATCH:
                    have_rows.set()
                    await asyncio.sleep(0)  # let the writer run, as a bounded queue would

    def take() -> list[tuple[str, list[tuple[Any, ...]]]]:
        nonlocal pending_rows
        batch = [(kind, rows) for kind, rows in pending.items() if rows]
        for kind in pending:
            pending[kind] = []
        pending_rows = 0
        return batch

    async def writer_async() -> None:
        nonlocal stored
        async with aiosqlite.connect(path, isolation_level=None) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            while True:
                try:
                    async with asyncio.timeout(0.05):
                        await have_rows.wait()
                except TimeoutError:
                    pass
                have_rows.clear()
                batch = take()
                if not batch:
                    continue
                await db.execute("BEGIN IMMEDIATE")
                for kind, rows in batch:
                    await db.executemany(_INSERTS[kind], rows)
                    stored += len(rows)
                await db.execute("COMMIT")

    async def writer_blocking() -> None:
        nonlocal stored
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                try:
                    async with asyncio.timeout(0.05):
                        await have_rows.wait()
                except TimeoutError:
                    pass
                have_rows.clear()
                batch = take()
                if not batch:
                    continue
                db.execute("BEGIN IMMEDIATE")
                for kind, rows in batch:
                    db.executemany(_INSERTS[kind], rows)
                    stored += len(rows)
                db.execute("COMMIT")
        finally:
            db.close()

    try:
        writer = asyncio.create_task(writer_async() if driver == "aiosqlite" else writer_blocking())
        readers = [asyncio.create_task(reader(list(m.token_ids))) for m in markets]
        result = await _window(lambda: events, warmup, seconds)
        for task in [*readers, writer]:
            task.cancel()
        await asyncio.gather(*readers, writer, return_exceptions=True)
        result["stored_rows"] = float(stored)
        return result
    finally:
        close()


# --------------------------------------------------------------------------- memory


async def _memory(markets: int) -> dict[str, float]:
    sim = Simulator(markets, 20)
    try:
        infos = await _markets(sim, markets)
        with tempfile.TemporaryDirectory() as tmp:
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            runtime = AgentsRuntime(
                feed_url=sim.ws_url,
                markets=infos,
                store_path=Path(tmp) / "memory.sqlite",
                config=AgentsConfig(feed_policy=instant_policy()),
            )
            await runtime.start()
            async with asyncio.timeout(30):
                while not runtime.readiness()[0]:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # books filled, some events stored
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            levels = sum(
                len(b.bids) + len(b.asks)
                for m in runtime.monitors.values()
                if m.books is not None
                for b in (m.books.yes, m.books.no)
            )
            await runtime.stop()
        return {"bytes": float(used), "levels_per_book": levels / (2 * markets)}
    finally:
        sim.close()


# --------------------------------------------------------------------------- driver


def child(argv: list[str]) -> None:
    what, *args = argv
    if what == "memory":
        result = asyncio.run(_memory(int(args[0])))
    else:
        source, warmup, seconds = args[0], float(args[1]), float(args[2])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.sqlite"
            if what.startswith("agents"):
                result = asyncio.run(_agents(source, path, warmup, seconds, what))
            else:
                driver = what.split("-")[1]
                result = asyncio.run(_floor(source, path, warmup, seconds, driver))
    print(json.dumps(result))


def measure(args: list[str], runs: int) -> dict[str, float]:
    """Median of each figure over ``runs`` fresh subprocesses."""
    return median_of_runs(__file__, args, runs)


_CONFIGS = (
    ("floor: recv+json.loads+executemany", "floor-aiosqlite"),
    ("floor, blocking sqlite3 on the loop", "floor-sqlite3"),
    ("agents: monitors+analysis+broker+ingest", "agents"),
    ("agents + stall and loop-blocking detection", "agents-watched"),
    ("agents + the service's loop watchdog", "agents-watchdog"),
)


def _table(title: str, rows: dict[str, dict[str, float]]) -> None:
    floor = rows["floor-aiosqlite"]
    print(f"\n{title}")
    print(
        f"{'':<42} {'events/s':>9} {'x floor':>8} {'client CPU':>11} "
        f"{'events/CPU-s':>13} {'x floor':>8}"
    )
    for label, key in _CONFIGS:
        row = rows[key]
        print(
            f"{label:<42} {row['events_per_s']:>9,.0f} "
            f"{row['events_per_s'] / floor['events_per_s']:>7.2f}x "
            f"{row['cpu'] * 100:>10.0f}% {row['events_per_cpu_s']:>13,.0f} "
            f"{row['events_per_cpu_s'] / floor['events_per_cpu_s']:>7.2f}x"
        )
    agents, watched = rows["agents"], rows["agents-watched"]
    print(
        f"  stall detection (beat() per event) and loop-blocking detection (LoopWatchdog): "
        f"{watched['events_per_cpu_s'] / agents['events_per_cpu_s']:.3f}x the events per "
        f"CPU-second of the agents alone (goal: overhead < 2 %)"
    )
    alone = rows["agents-watchdog"]
    ratio = alone["events_per_cpu_s"] / agents["events_per_cpu_s"]
    print(
        f"  the service's loop watchdog alone: {ratio:.3f}x "
        f"(its thread: {alone['watchdog_thread_share'] * 100:.2f} % of the client's CPU); "
        f"--watchdog resolves it better"
    )
    print(
        f"  agents: {agents['stored_rows']:,.0f} rows stored per run, {agents['lost_rows']:.0f} "
        f"lost, {agents['orders']:.0f} paper orders (medians)"
    )


def _median_interval(values: list[float]) -> tuple[float, float, float]:
    """The median and a distribution-free interval of at least 90 % confidence around it
    (order statistics of the binomial; the whole range below 6 values)."""
    ordered = sorted(values)
    n = len(ordered)
    # The largest k such that P(k <= Binomial(n, 1/2) <= n - k) >= 0.9, k counted from 0.
    k = 0
    while k + 1 < n - k - 1:
        below = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        if 1 - 2 * below < 0.9:
            break
        k += 1
    return statistics.median(ordered), ordered[k], ordered[n - 1 - k]


def watchdog_overhead(pairs: int, toggles: int, warmup: float, seconds: float) -> None:
    """What the service's LoopWatchdog costs the pipeline, measured three ways."""
    print(
        f"\nThe service's loop watchdog (threshold {DEFAULT_LOOP_HOLD_THRESHOLD:g} s) on the "
        f"pipeline, simulator flat out (goal: < 2 % fewer events per CPU-second)"
    )
    window = [str(warmup), str(seconds)]
    ratios: list[float] = []
    shares: list[float] = []
    for _ in range(pairs):
        order = ["agents", "agents-watchdog"]
        random.shuffle(order)  # neither always runs first on a machine whose load drifts
        got = {what: run_child(__file__, [what, "0", *window]) for what in order}
        plain, watched = got["agents"], got["agents-watchdog"]
        if plain is None or watched is None:
            continue
        ratios.append(watched["events_per_cpu_s"] / plain["events_per_cpu_s"])
        shares.append(watched["watchdog_thread_share"])
    if ratios:
        median, low, high = _median_interval(ratios)
        print(
            f"  {len(ratios)} interleaved pairs of fresh runs: median {median:.3f}x "
            f"(>= 90 % interval {low:.3f}-{high:.3f}; pairs {min(ratios):.3f}-{max(ratios):.3f})"
        )
        print(
            f"  the watchdog's own thread: median {statistics.median(shares) * 100:.3f} % "
            f"of the client's CPU"
        )
    toggled = [
        r
        for r in (
            run_child(__file__, ["agents-toggle", "0", str(warmup), str(seconds * 4)])
            for _ in range(toggles)
        )
        if r is not None
    ]
    if toggled:
        within = [r["toggle_ratio"] for r in toggled]
        median, low, high = _median_interval(within)
        thread = statistics.median(r["watchdog_thread_share"] for r in toggled)
        print(
            f"  on and off within {len(within)} runs (off-on-on-off slices of "
            f"{seconds / 2:g} s): median {median:.3f}x (>= 90 % interval {low:.3f}-{high:.3f}); "
            f"its thread {thread * 100:.3f} % of the CPU"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per figure")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds measured")
    parser.add_argument(
        "--watchdog",
        type=int,
        metavar="PAIRS",
        help="only the loop watchdog's cost: PAIRS interleaved pairs of runs, then as many "
        "runs turning it on and off",
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return
    if options.watchdog:
        watchdog_overhead(options.watchdog, options.watchdog, options.warmup, options.seconds)
        return
    runs, window = options.runs, [str(options.warmup), str(options.seconds)]
    print(
        f"agents benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{MARKETS} markets (one websocket each), simulator (seed {SEED}) in another "
        f"process, {runs} runs each, medians"
    )
    paced = {key: measure([key, str(RATE), *window], runs) for _, key in _CONFIGS}
    _table(f"Simulator at {RATE:,.0f} ticks/s (the same stream for every client):", paced)
    flat = {key: measure([key, "0", *window], runs) for _, key in _CONFIGS}
    _table("Simulator flat out (as fast as its slowest subscriber reads):", flat)
    print(
        "  The simulator, not the client, limits the rate (its broadcast is per connection);"
        "\n  events per client CPU-second is the client's capacity on one core."
        "\n  goal: agents >= 0.50x the floor"
    )

    small = measure(["memory", "1"], runs)
    large = measure(["memory", "101"], runs)
    per_market = (large["bytes"] - small["bytes"]) / 100
    print(
        f"\nMemory (tracemalloc): runtime with 1 market {small['bytes'] / 2**20:.2f} MB, with "
        f"101 markets {large['bytes'] / 2**20:.2f} MB ({large['levels_per_book']:.1f} levels "
        f"per book) -> {per_market / 1024:,.0f} KB per monitored market (goal < 200 KB)"
    )


if __name__ == "__main__":
    main()
