"""Benchmark of the feed: decoding, book keeping, end-to-end rate and memory.

Run ``python bench/feed.py``. It first records a stream of frames from a local simulator over
a real loopback websocket, then measures, each configuration in a fresh subprocess, several
times (the table shows medians):

* decode + book update (``FrameDecoder.decode`` then ``BookSet.apply``) on the recorded
  frames, against the floor of ``json.loads`` alone on the same frames, and decode alone,
  interleaved in one process so that the ratios share the machine's noise;
* the end-to-end rate ``MarketFeed`` sustains from a simulator in another process that sends
  as fast as the client reads (``--rate 0``), with the client's CPU use, so that events per
  CPU-second give its capacity on one core; and the same with the simulator in the client's
  own process and event loop (one core for both);
* memory (tracemalloc) of a ``MarketFeed`` subscribed to 1,000 assets with 10-level books.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import struct
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from _harness import decode_times, median_of_runs, serving, simulator_command
from polymarket_agents.core.async_utils import instant_policy
from polymarket_agents.feed import (
    Book,
    FrameDecoder,
    MarketFeed,
    encode_subscribe,
    fetch_markets,
)
from polymarket_agents.feed.simulator import running_simulator

RECORD_MARKETS = 50
E2E_MARKETS = 20

# --------------------------------------------------------------------------- recording


async def _record(path: Path, frames: int) -> dict[str, float]:
    """Record ``frames`` frames a simulator sends to one subscriber over loopback."""
    async with running_simulator(markets=RECORD_MARKETS, event_rate=None, seed=1) as sim:
        assets = [a for m in sim.markets() for a in m.token_ids]
        recorded: list[bytes] = []
        async with connect(sim.ws_url, max_size=None, compression=None) as ws:
            await ws.send(encode_subscribe(assets))
            while len(recorded) < frames:
                recorded.append(await ws.recv(decode=False))
    with path.open("wb") as out:
        for frame in recorded:
            out.write(struct.pack("<I", len(frame)))
            out.write(frame)
    return {"frames": len(recorded), "bytes": sum(map(len, recorded))}


def _load(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames = []
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        frames.append(data[offset : offset + size])
        offset += size
    return frames


# --------------------------------------------------------------------------- decode


def run_decode(path: Path, rounds: int = 5) -> dict[str, float]:
    """The three ways through the frames, interleaved so that they share machine noise.

    The best time of each over ``rounds`` rounds gives its rate; the ratios to the floor
    are taken within this one process.
    """
    frames = _load(path)
    decoder = FrameDecoder()
    first = decoder.decode(frames[0])
    assert isinstance(first, list)
    assets = [event.asset_id for event in first if isinstance(event, Book)]
    events = sum(len(decoder.decode(frame)) for frame in frames)

    best = decode_times(frames, assets, rounds=rounds)
    result = {}
    for kind, seconds in best.items():
        result[f"{kind}_frames_per_s"] = len(frames) / seconds
        result[f"{kind}_events_per_s"] = events / seconds
        result[f"{kind}_ratio"] = best["json"] / seconds
    return result


# --------------------------------------------------------------------------- end to end


async def _consume(feed: MarketFeed, seconds: float) -> dict[str, float]:
    events = 0
    started_wall = started_cpu = 0.0
    warm = False
    async for _ in feed:
        events += 1
        if not warm and events == 20_000:  # warm up first
            warm = True
            events = 0
            started_wall, started_cpu = time.perf_counter(), time.process_time()
        elif warm and events % 1000 == 0 and time.perf_counter() - started_wall >= seconds:
            break
    wall = time.perf_counter() - started_wall
    cpu = time.process_time() - started_cpu
    return {"events_per_s": events / wall, "cpu": cpu / wall, "events_per_cpu_s": events / cpu}


def _feed(url: str, markets: Any) -> MarketFeed:
    return MarketFeed(url, markets=markets, policy=instant_policy(), silence_timeout=None)


def run_e2e(seconds: float) -> dict[str, float]:
    with serving(simulator_command(E2E_MARKETS)) as (url, http):

        async def main() -> dict[str, float]:
            markets = await fetch_markets(http)
            async with _feed(url, markets) as feed:
                return await _consume(feed, seconds)

        return asyncio.run(main())


def run_e2e_shared(seconds: float) -> dict[str, float]:
    async def main() -> dict[str, float]:
        async with (
            running_simulator(markets=E2E_MARKETS, event_rate=None) as sim,
            _feed(sim.ws_url, sim.markets()) as feed,
        ):
            return await _consume(feed, seconds)

    return asyncio.run(main())


# --------------------------------------------------------------------------- memory


def run_memory(assets: int) -> dict[str, float]:
    with serving(simulator_command(assets // 2, 1.0)) as (url, http):

        async def main() -> dict[str, float]:
            infos = await fetch_markets(http, page_size=500)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            feed = MarketFeed(url, markets=infos, deliver_events=False, policy=instant_policy())
            async with feed:
                await feed.wait_ready()
                gc.collect()
                feed_bytes = tracemalloc.get_traced_memory()[0] - before
                levels = sum(len(b.bids) + len(b.asks) for b in feed.books.values())
                tracemalloc.stop()
            return {
                "feed_mb": feed_bytes / 2**20,
                "assets": float(len(feed.books)),
                "levels_per_book": levels / len(feed.books),
            }

        return asyncio.run(main())


# --------------------------------------------------------------------------- driver


def child(argv: list[str]) -> None:
    what, *args = argv
    if what == "record":
        result = asyncio.run(_record(Path(args[0]), int(args[1])))
    elif what == "decode":
        result = run_decode(Path(args[0]))
    elif what == "e2e":
        result = run_e2e(float(args[0]))
    elif what == "e2e_shared":
        result = run_e2e_shared(float(args[0]))
    else:
        result = run_memory(int(args[0]))
    print(json.dumps(result))


def measure(args: list[str], runs: int) -> dict[str, float]:
    """Median of each figure over ``runs`` fresh subprocesses."""
    return median_of_runs(__file__, args, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="subprocesses per figure")
    parser.add_argument("--frames", type=int, default=50_000, help="frames to record")
    parser.add_argument("--seconds", type=float, default=3.0, help="end-to-end measuring time")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return
    runs = options.runs
    print(
        f"feed benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{runs} runs each, medians"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.bin"
        recorded = measure(["record", str(path), str(options.frames)], 1)
        print(
            f"\nRecorded {recorded['frames']:,.0f} frames ({recorded['bytes'] / 2**20:.1f} MiB) "
            f"from a {RECORD_MARKETS}-market simulator over loopback"
        )
        decoding = measure(["decode", str(path)], runs)
    print(f"{'':<32} {'frames/s':>10} {'events/s':>11} {'x json.loads':>13}")
    for label, kind in (
        ("json.loads only (floor)", "json"),
        ("decode (msgspec, validated)", "decode"),
        ("decode + book update", "full"),
    ):
        print(
            f"{label:<32} {decoding[kind + '_frames_per_s']:>10,.0f} "
            f"{decoding[kind + '_events_per_s']:>11,.0f} {decoding[kind + '_ratio']:>12.2f}x"
        )
    print("  goal: decode + book update >= 1.30x the json.loads floor")

    print(f"\nEnd to end: MarketFeed consuming a {E2E_MARKETS}-market simulator sending flat out")
    for label, args in (
        ("simulator in another process", ["e2e", str(options.seconds)]),
        ("simulator in the same loop", ["e2e_shared", str(options.seconds)]),
    ):
        row = measure(args, runs)
        print(
            f"  {label:<30} {row['events_per_s']:>9,.0f} events/s, client CPU "
            f"{row['cpu'] * 100:>3.0f}% of a core -> {row['events_per_cpu_s']:>9,.0f} "
            f"events per CPU-second"
        )
    print("  goal: >= 20,000 events/s on one core")

    memory = measure(["memory", "1000"], runs)
    print(
        f"\nMemory: MarketFeed with {memory['assets']:,.0f} subscribed assets, "
        f"{memory['levels_per_book']:.1f} levels per book: {memory['feed_mb']:.1f} MB "
        f"(tracemalloc; goal < 50 MB)"
    )


if __name__ == "__main__":
    main()
