"""Benchmark of the whole universe in one process: 5,000 markets (10,000 assets), pooled.

Run ``python bench/universe.py``. Every figure comes from a fresh subprocess (medians over
``--runs``), and every ratio is taken against a baseline measured in the same run:

* **start-up** against the simulator (another process, 5,000 markets): from nothing to every
  book synced, through the paged Gamma listing, the pool (⌈10,000 / 200⌉ = 50 connections)
  and the agents runtime (a monitor per market, SQLite); the connections counted, the peak
  RSS of the process (goal: < 30 s, 50 connections, < 250 MB);
* **decode + book**: the feed's hot path (``FrameDecoder.decode`` then ``BookSet.apply``) over
  frames recorded from those 50 connections, against ``json.loads`` alone on the same frames
  (goal: >= 50,000 events/s on one core);
* **feed** and **pipeline**: a pooled ``MarketFeed`` alone, and the full agents runtime
  (books + strategy + storage), taking the recorded streams from a replay server in another
  process, for a fixed time after a warm-up; events/s, client CPU and events per
  CPU-second (the writer thread included), then a clean stop that must lose nothing (goal:
  >= 20,000 events/s, nothing lost);
* **baseline**: today's one-socket-per-market pipeline (``shared_feed=False``) at 100
  markets on the same replay, its events per client CPU-second against the pooled pipeline's
  (goal: pooled >= 2x).

The simulator spends much more CPU making an event than a client spends taking it, so the
streams are recorded from it once and replayed (``bench/_replay.py``): each connection gets
its recorded dump and changes again and again, timestamps moved on at each pass so that
every stored row is new.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from _harness import median_of_runs, run_child
from _replay import record
from polymarket_agents.agents import AgentsConfig, AgentsRuntime
from polymarket_agents.core.async_utils import instant_policy
from polymarket_agents.feed import (
    DEFAULT_ASSETS_PER_CONNECTION,
    BookSet,
    FrameDecoder,
    MarketFeed,
    list_universe,
)

MARKETS = 5_000
BASELINE_MARKETS = 100
SEED = 1
HERE = Path(__file__).parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def _process(args: list[str]) -> Iterator[tuple[str, str]]:
    """A simulator or replay server in another process: its (ws URL, http URL)."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ws_url = process.stdout.readline().split()[-1]
        http_url = process.stdout.readline().split()[-1].removesuffix("/markets")
        yield ws_url, http_url
    finally:
        process.terminate()
        process.wait()


def _simulator(markets: int, rate: float = 0.0) -> list[str]:
    return [
        sys.executable,
        "-m",
        "polymarket_agents.feed.simulator",
        "--port",
        "0",
        "--rate",
        str(rate),
        "--markets",
        str(markets),
        "--seed",
        str(SEED),
        "--dislocation-rate",
        "0",
    ]


def _replay(path: Path, rate: float = 0.0) -> list[str]:
    return [sys.executable, str(HERE / "_replay.py"), str(path), str(rate)]


def _config(**changes: Any) -> AgentsConfig:
    # Default settings, as users run them, but no backoff: a benchmark never waits in one.
    return AgentsConfig(feed_policy=instant_policy(), task_policy=instant_policy(), **changes)


# --------------------------------------------------------------------------- recording


async def _rows(http_url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"limit": "500", "offset": str(len(rows))}
            async with session.get(f"{http_url}/markets", params=params) as response:
                page = await response.json()
            rows.extend(page)
            if len(page) < 500:
                return rows


def run_record(directory: Path, seconds: float) -> dict[str, float]:
    """Record the pool's 50 streams and 100 single-market streams from the simulator."""

    async def main() -> dict[str, float]:
        with _process(_simulator(MARKETS)) as (ws_url, http_url):
            rows = await _rows(http_url)
            markets = await list_universe(http_url)
            per = DEFAULT_ASSETS_PER_CONNECTION // 2
            pool = [
                [a for m in markets[i : i + per] for a in m.token_ids]
                for i in range(0, len(markets), per)
            ]
            recorded = await record(ws_url, pool, seconds, directory / "pool.rec", rows)
            singles = [list(m.token_ids) for m in markets[:BASELINE_MARKETS]]
            first = [
                r
                for r in rows
                if r["conditionId"] in {m.condition_id for m in markets[:BASELINE_MARKETS]}
            ]
            single = await record(ws_url, singles, seconds, directory / "single.rec", first)
        return {
            "pool_frames": recorded["frames"],
            "pool_events": recorded["events"],
            "single_events": single["events"],
        }

    return asyncio.run(main())


# --------------------------------------------------------------------------- start-up


def run_startup() -> dict[str, float]:
    """From nothing to every book synced: listing, pool, runtime, snapshots."""

    async def main() -> dict[str, float]:
        # A live pace (200 ticks/s over the universe), not flat out: start-up is the subject.
        with (
            _process(_simulator(MARKETS, rate=200.0)) as (ws_url, http_url),
            tempfile.TemporaryDirectory() as tmp,
        ):
            started = time.perf_counter()
            markets = await list_universe(http_url)
            listed = time.perf_counter()
            runtime = AgentsRuntime(
                feed_url=ws_url,
                markets=markets,
                store_path=Path(tmp) / "start.sqlite",
                config=_config(),
            )
            await runtime.start()
            feed = runtime.feed
            assert feed is not None
            await feed.wait_ready()
            synced = time.perf_counter()
            ready = float("nan")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    while not runtime.readiness()[0]:
                        await asyncio.sleep(0.05)
                    ready = time.perf_counter()
            result = {
                "list_s": listed - started,
                "synced_s": synced - started,
                "ready_s": ready - started,
                "connections": float(feed.stats.pool),
                "assets": float(len(feed.asset_ids)),
                "rss_mb": _rss_mb(),
            }
            await runtime.stop()
        return result

    return asyncio.run(main())


# --------------------------------------------------------------------------- decode


def run_decode(path: Path, rounds: int = 5) -> dict[str, float]:
    """decode + book update over every recorded frame, against json.loads alone."""
    recording, _ = pickle.loads(path.read_bytes())
    frames = [frame for _, stream in recording for frame in stream]
    assets = [a for assets, _ in recording for a in assets]
    decoder = FrameDecoder()
    events = 0
    for frame in frames:
        result = decoder.decode(frame)
        events += len(result) if isinstance(result, list) else 0

    def floor() -> None:
        loads = json.loads
        for frame in frames:
            loads(frame)

    def full() -> None:
        books = BookSet()
        for asset_id in assets:
            books.add(asset_id)
        decode, apply = decoder.decode, books.apply
        for frame in frames:
            apply(decode(frame))  # type: ignore[arg-type]
        assert not books.stale_events, "the recorded streams must replay cleanly"

    best = {"json": float("inf"), "full": float("inf")}
    floor()
    full()
    for _ in range(rounds):
        for kind, work in (("json", floor), ("full", full)):
            gc.collect()
            begun = time.process_time()
            work()
            best[kind] = min(best[kind], time.process_time() - begun)
    return {
        "events": float(events),
        "json_events_per_s": events / best["json"],
        "full_events_per_s": events / best["full"],
        "ratio": best["json"] / best["full"],
    }


# --------------------------------------------------------------------------- live


async def _measure(count: Any, seconds: float, warm: float = 3.0) -> dict[str, float]:
    await asyncio.sleep(warm)
    events, cpu, wall = count(), time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    events = count() - events
    return {"events_per_s": events / wall, "cpu": cpu / wall, "events_per_cpu_s": events / cpu}


def run_feed(path: Path, seconds: float) -> dict[str, float]:
    """A pooled MarketFeed alone on the replayed universe."""

    async def main() -> dict[str, float]:
        with _process(_replay(path)) as (ws_url, http_url):
            markets = await list_universe(http_url)
            feed = MarketFeed(
                ws_url, markets=markets, deliver_events=False, policy=instant_policy()
            )
            async with feed:
                await feed.wait_ready()
                result = await _measure(lambda: feed.stats.events, seconds)
                result["connections"] = float(feed.stats.pool)
                result["stale"] = float(feed.books.stale_events)
        return result

    return asyncio.run(main())


def run_pipeline(path: Path, seconds: float, shared: bool, rate: float) -> dict[str, float]:
    """The agents runtime (books, strategy, SQLite) on the replayed streams, sent at
    ``rate`` events per second (0: as fast as it reads)."""

    async def main() -> dict[str, float]:
        replay = _replay(path, rate)
        with _process(replay) as (ws_url, http_url), tempfile.TemporaryDirectory() as tmp:
            markets = await list_universe(http_url)
            runtime = AgentsRuntime(
                feed_url=ws_url,
                markets=markets,
                store_path=Path(tmp) / "pipeline.sqlite",
                config=_config(shared_feed=shared),
            )
            await runtime.start()
            async with asyncio.timeout(120):
                # Every book synced (the runtime's readiness also asks for a short queue,
                # which a flat-out source never leaves).
                while not all(m.stats.synced for m in runtime.monitors.values()):
                    await asyncio.sleep(0.05)
            result = await _measure(lambda: runtime.stats().events, seconds)
            result["rss_mb"] = _rss_mb()
            result["reconnects"] = float(runtime.stats().reconnects)
            await runtime.stop(timeout=60.0)
            stats = runtime.stats()
            result.update(
                markets=float(len(markets)),
                rows_queued=float(stats.rows_queued),
                stored_rows=float(stats.stored_rows),
                lost_rows=float(stats.lost_rows + stats.pending_rows),
            )
        return result

    return asyncio.run(main())


# --------------------------------------------------------------------------- driver


def child(argv: list[str]) -> None:
    what, *args = argv
    if what == "record":
        result = run_record(Path(args[0]), float(args[1]))
    elif what == "startup":
        result = run_startup()
    elif what == "decode":
        result = run_decode(Path(args[0]))
    elif what == "feed":
        result = run_feed(Path(args[0]), float(args[1]))
    else:
        result = run_pipeline(Path(args[0]), float(args[1]), args[2] == "shared", float(args[3]))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per figure")
    parser.add_argument("--record", type=float, default=30.0, help="seconds of recording")
    parser.add_argument("--seconds", type=float, default=10.0, help="live measuring time")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return
    runs = options.runs
    script = __file__
    print(
        f"universe benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{MARKETS:,} markets ({2 * MARKETS:,} assets), {runs} runs each, medians"
    )
    start = median_of_runs(script, ["startup"], runs)
    print(
        f"\nStart-up to every book synced: {start['synced_s']:.1f} s (listing "
        f"{start['list_s']:.1f} s; ready {start['ready_s']:.1f} s), goal < 30 s -> "
        f"{start['synced_s'] / 30:.2f}x the limit\n"
        f"  connections: {start['connections']:.0f} for {start['assets']:,.0f} assets "
        f"(goal ⌈{2 * MARKETS:,} / 200⌉ = {-(-2 * MARKETS // 200)})\n"
        f"  peak RSS: {start['rss_mb']:.0f} MB, goal < 250 MB -> {start['rss_mb'] / 250:.2f}x "
        f"the limit"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        recorded = run_child(script, ["record", tmp, str(options.record)])
        assert recorded is not None, "recording timed out"
        print(
            f"\nRecorded {options.record:.0f} s: {recorded['pool_events']:,.0f} events on the "
            f"pool's streams, {recorded['single_events']:,.0f} on {BASELINE_MARKETS} "
            f"single-market streams"
        )
        pool, single = str(directory / "pool.rec"), str(directory / "single.rec")
        decode = median_of_runs(script, ["decode", pool], runs)
        print(
            f"\nDecode + book update, one core: {decode['full_events_per_s']:,.0f} events/s "
            f"({decode['ratio']:.2f}x json.loads alone: {decode['json_events_per_s']:,.0f}); "
            f"goal >= 50,000 -> {decode['full_events_per_s'] / 50_000:.2f}x the goal"
        )
        seconds = str(options.seconds)
        feed = median_of_runs(script, ["feed", pool, seconds], runs)
        print(
            f"\nPooled feed alone ({feed['connections']:.0f} connections, replayed): "
            f"{feed['events_per_s']:,.0f} events/s, client CPU {feed['cpu'] * 100:.0f}% -> "
            f"{feed['events_per_cpu_s']:,.0f} events per CPU-second; "
            f"{feed['events_per_cpu_s'] / 50_000:.2f}x the 50,000 goal"
        )
        # Both flat out (rate 0): as fast as each pipeline takes its events.
        pipeline = median_of_runs(script, ["pipeline", pool, seconds, "shared", "0"], runs)
        baseline = median_of_runs(script, ["pipeline", single, seconds, "own", "0"], runs)
        print("\nFull pipeline (books + strategy + SQLite), replayed:")
        for label, row in (
            (f"pooled, {MARKETS:,} markets", pipeline),
            (f"socket per market, {BASELINE_MARKETS} markets (baseline)", baseline),
        ):
            print(
                f"  {label:<42} {row['events_per_s']:>8,.0f} events/s, CPU "
                f"{row['cpu'] * 100:>3.0f}% -> {row['events_per_cpu_s']:>8,.0f} events/CPU-s; "
                f"rows {row['rows_queued']:,.0f} queued, {row['stored_rows']:,.0f} stored, "
                f"{row['lost_rows']:,.0f} lost or pending; RSS {row['rss_mb']:.0f} MB"
            )
        gain = pipeline["events_per_cpu_s"] / baseline["events_per_cpu_s"]
        print(
            f"  pooled events/s: {pipeline['events_per_s'] / 20_000:.2f}x the 20,000 goal; "
            f"events per CPU-second: {gain:.2f}x the baseline (goal >= 2x)"
        )


if __name__ == "__main__":
    main()
