"""The full agents pipeline (books + strategy + SQLite) on a replayed recording, timed.

``python bench/_pipeline.py RECORDING SECONDS RATE [name=value ...]`` starts a replay server
(``bench/_replay.py``) in another process, an ``AgentsRuntime`` on every market it lists, and
prints one JSON object: events/s, the client's CPU share and events per CPU-second over
``SECONDS`` after the books synced and a warm-up, then the rows queued, stored and lost after
a clean stop. ``name=value`` pairs are ``AgentsConfig`` settings (``shared_feed=False``).

It uses only what every version of the package since the first pooled-feed-free release has
(``AgentsRuntime``, ``AgentsConfig``, ``fetch_markets``, ``instant_policy``), so that the
same script measures today's pipeline and, run with ``PYTHONPATH`` pointing at the source
of an older commit, the pipeline as that commit built it: the baseline of
``bench/universe.py``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import serving
from polymarket_agents.agents import AgentsConfig, AgentsRuntime
from polymarket_agents.core.async_utils import instant_policy
from polymarket_agents.feed import fetch_markets

HERE = Path(__file__).parent


def rss_mb() -> float:
    """Peak resident memory of this process, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay(path: Path, rate: float = 0.0) -> list[str]:
    """The command of a replay server for ``path``, sending ``rate`` events/s (0: flat out)."""
    return [sys.executable, str(HERE / "_replay.py"), str(path), str(rate)]


async def measure(count: Callable[[], int], seconds: float, warm: float = 3.0) -> dict[str, float]:
    """Events/s, CPU share and events per CPU-second of this process over ``seconds``,
    after ``warm`` seconds; ``count()`` says how many events were taken so far."""
    await asyncio.sleep(warm)
    events, cpu, wall = count(), time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    events = count() - events
    return {"events_per_s": events / wall, "cpu": cpu / wall, "events_per_cpu_s": events / cpu}


def _events(runtime: Any) -> Callable[[], int]:
    # A counter read in O(1) where the runtime has one: summing 5,000 monitors' stats twice
    # a measurement would be CPU charged to the pipeline.
    sequence = getattr(runtime, "sequence", None)
    if sequence is not None and hasattr(sequence, "taken"):
        return lambda: int(sequence.taken)
    return lambda: int(runtime.stats().events)


def run(path: Path, seconds: float, rate: float, **settings: Any) -> dict[str, float]:
    """The pipeline on the recording at ``path``; see the module docstring."""

    async def main() -> dict[str, float]:
        with (
            serving(replay(path, rate)) as (ws_url, http_url),
            tempfile.TemporaryDirectory() as tmp,
        ):
            markets = await fetch_markets(http_url, page_size=500)
            # Default settings, as users run them, but no backoff: a benchmark never waits
            # in one.
            config = AgentsConfig(
                feed_policy=instant_policy(), task_policy=instant_policy(), **settings
            )
            runtime = AgentsRuntime(
                feed_url=ws_url,
                markets=markets,
                store_path=Path(tmp) / "pipeline.sqlite",
                config=config,
            )
            await runtime.start()
            async with asyncio.timeout(120):
                # Every book synced (the runtime's readiness also asks for a short queue,
                # which a flat-out source never leaves).
                while not all(m.stats.synced for m in runtime.monitors.values()):
                    await asyncio.sleep(0.05)
            result = await measure(_events(runtime), seconds)
            result["rss_mb"] = rss_mb()
            await runtime.stop(timeout=60.0)
            stats = runtime.stats()
            result.update(
                markets=float(len(markets)),
                rows_queued=float(stats.rows_queued),
                stored_rows=float(stats.stored_rows),
                lost_rows=float(stats.lost_rows + getattr(stats, "pending_rows", 0)),
            )
        return result

    return asyncio.run(main())


def main() -> None:
    path, seconds, rate, *pairs = sys.argv[1:]
    settings = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        settings[name] = json.loads(value.lower() if value in ("True", "False") else value)
    print(json.dumps(run(Path(path), float(seconds), float(rate), **settings)))


if __name__ == "__main__":
    main()
