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
* **baseline**: the pipeline as it was before the pooled feed (commit ``75e8073``, one socket
  per market), at 100 markets on the same replay: its source is taken from git
  (``git archive``) and run by ``bench/_pipeline.py`` with that source on ``PYTHONPATH``;
  its events per client CPU-second against the pooled pipeline's (goal: pooled >= 2x).
  Today's code with a socket per market (``shared_feed=False``) is measured beside them.
  The three take turns within each round, so that they share the machine's load.

The simulator spends much more CPU making an event than a client spends taking it, so the
streams are recorded from it once and replayed (``bench/_replay.py``): each connection gets
its recorded dump and changes again and again, timestamps moved on at each pass so that
every stored row is new.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from _harness import (
    Skipped,
    decode_times,
    median_of_runs,
    run_child,
    serving,
    simulator_command,
)
from _pipeline import measure, replay, rss_mb, run
from _replay import record
from polymarket_agents.agents import AgentsConfig, AgentsRuntime
from polymarket_agents.core.async_utils import instant_policy
from polymarket_agents.feed import (
    DEFAULT_ASSETS_PER_CONNECTION,
    FrameDecoder,
    MarketFeed,
    list_universe,
)

MARKETS = 5_000
BASELINE_MARKETS = 100
BASELINE_COMMIT = "75e80730b47a467316e666505317d0f8c808535f"
"""The last commit before the pooled feed: one socket per monitored market."""
SEED = 1
HERE = Path(__file__).parent


def _simulator(markets: int, rate: float = 0.0) -> list[str]:
    return simulator_command(markets, rate, "--seed", str(SEED), "--dislocation-rate", "0")


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
        with serving(_simulator(MARKETS)) as (ws_url, http_url):
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
            serving(_simulator(MARKETS, rate=200.0)) as (ws_url, http_url),
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
                "rss_mb": rss_mb(),
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

    best = decode_times(
        frames, assets, kinds=("json", "full"), rounds=rounds, clock=time.process_time
    )
    return {
        "events": float(events),
        "json_events_per_s": events / best["json"],
        "full_events_per_s": events / best["full"],
        "ratio": best["json"] / best["full"],
    }


# --------------------------------------------------------------------------- live


def run_feed(path: Path, seconds: float) -> dict[str, float]:
    """A pooled MarketFeed alone on the replayed universe."""

    async def main() -> dict[str, float]:
        with serving(replay(path)) as (ws_url, http_url):
            markets = await list_universe(http_url)
            feed = MarketFeed(
                ws_url, markets=markets, deliver_events=False, policy=instant_policy()
            )
            async with feed:
                await feed.wait_ready()
                result = await measure(lambda: feed.stats.events, seconds)
                result["connections"] = float(feed.stats.pool)
                result["stale"] = float(feed.books.stale_events)
        return result

    return asyncio.run(main())


def extract_baseline(directory: Path) -> Path | None:
    """The package's source as :data:`BASELINE_COMMIT` had it, extracted under
    ``directory``; None if this is not a git checkout holding that commit."""
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", BASELINE_COMMIT, "src"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory / "src"


def run_baseline(path: Path, seconds: float, source: str) -> dict[str, float]:
    """The pipeline of the commit whose source is at ``source``: ``_pipeline.py`` run in a
    child whose ``polymarket_agents`` is that source."""
    env = {**os.environ, "PYTHONPATH": source}
    command = [sys.executable, str(HERE / "_pipeline.py"), str(path), str(seconds), "0"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


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
    elif what == "pipeline":
        result = run(Path(args[0]), float(args[1]), 0.0, shared_feed=args[2] == "shared")
    else:
        result = run_baseline(Path(args[0]), float(args[1]), args[2])
    print(json.dumps(result))


def interleaved(
    script: str, configs: dict[str, list[str]], runs: int
) -> dict[str, dict[str, float]]:
    """The median of every figure of each configuration over ``runs`` rounds, the
    configurations taking turns within a round so that they share the machine's load."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(runs):
        for name, args in configs.items():
            result = run_child(script, args)
            if result is not None:
                results[name].append(result)
    return {
        name: (
            {key: statistics.median(r[key] for r in rows) for key in rows[0]} if rows else Skipped()
        )
        for name, rows in results.items()
    }


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
        # All flat out (rate 0): as fast as each pipeline takes its events.
        source = extract_baseline(directory)
        configs = {"pooled": ["pipeline", pool, seconds, "shared"]}
        if source is not None:
            configs["baseline"] = ["baseline", single, seconds, str(source)]
        configs["own"] = ["pipeline", single, seconds, "own"]
        rows = interleaved(script, configs, runs)
        print("\nFull pipeline (books + strategy + SQLite), replayed:")
        labels = {
            "pooled": f"pooled, {MARKETS:,} markets",
            "baseline": f"{BASELINE_COMMIT[:7]} (before pooling), {BASELINE_MARKETS} markets",
            "own": f"today, socket per market, {BASELINE_MARKETS} markets",
        }
        for name, row in rows.items():
            print(
                f"  {labels[name]:<42} {row['events_per_s']:>8,.0f} events/s, CPU "
                f"{row['cpu'] * 100:>3.0f}% -> {row['events_per_cpu_s']:>8,.0f} events/CPU-s; "
                f"rows {row['rows_queued']:,.0f} queued, {row['stored_rows']:,.0f} stored, "
                f"{row['lost_rows']:,.0f} lost or pending; RSS {row['rss_mb']:.0f} MB"
            )
        pooled = rows["pooled"]
        own = rows["own"]["events_per_cpu_s"]
        if source is not None:
            baseline, named = rows["baseline"], f"the pipeline of {BASELINE_COMMIT[:7]}"
        else:
            # Not a git checkout with the history: the nearest honest stand-in, named.
            baseline, named = rows["own"], "today's socket-per-market pipeline (no git history)"
        print(
            f"  pooled events/s: {pooled['events_per_s'] / 20_000:.2f}x the 20,000 goal; "
            f"events per CPU-second: "
            f"{pooled['events_per_cpu_s'] / baseline['events_per_cpu_s']:.2f}x {named} "
            f"(goal >= 2x); {pooled['events_per_cpu_s'] / own:.2f}x today's socket per market"
        )


if __name__ == "__main__":
    main()
