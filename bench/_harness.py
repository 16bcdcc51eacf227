"""What every benchmark script shares: medians over fresh subprocesses of itself, each under a
timeout, so that a hung measurement is named and skipped instead of stalling ``make bench``."""

from __future__ import annotations

import atexit
import gc
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: Seconds one child may run before it is killed (with everything it started) and skipped.
CHILD_TIMEOUT = float(os.environ.get("BENCH_CHILD_TIMEOUT", "300"))

#: The children that timed out in this process, by name; summarised at exit.
TIMED_OUT: list[str] = []


def simulator_command(markets: int, rate: float = 0.0, *options: str) -> list[str]:
    """The command of a simulator of ``markets`` markets on a free port, making ``rate``
    ticks per second (0: as fast as its clients read), with more command-line ``options``."""
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
        *options,
    ]


@contextmanager
def serving(args: list[str]) -> Iterator[tuple[str, str]]:
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


def decode_times(
    frames: Sequence[bytes],
    assets: Sequence[str],
    *,
    kinds: Sequence[str] = ("json", "decode", "full"),
    rounds: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """The best of ``rounds`` times (by ``clock``) to go through ``frames`` each way in
    ``kinds``, taking turns so that they share the machine's noise: ``json`` (``json.loads``
    alone, the floor), ``decode`` (``FrameDecoder.decode``), ``full`` (decode, then
    ``BookSet.apply`` on books of ``assets``; the stream must replay without a stale book).
    """
    # Imported here: _pipeline.py imports this module under an old commit's source too.
    from polymarket_agents.feed import BookSet, FrameDecoder

    decoder = FrameDecoder()

    def floor() -> None:
        loads = json.loads
        for frame in frames:
            loads(frame)

    def decode() -> None:
        decode = decoder.decode
        for frame in frames:
            decode(frame)

    def full() -> None:
        books = BookSet()
        for asset_id in assets:
            books.add(asset_id)
        decode, apply = decoder.decode, books.apply
        for frame in frames:
            apply(decode(frame))  # type: ignore[arg-type]
        assert not books.stale_events, "the recorded frames must replay cleanly"

    ways = {"json": floor, "decode": decode, "full": full}
    chosen = {kind: ways[kind] for kind in kinds}
    best = dict.fromkeys(chosen, float("inf"))
    for work in chosen.values():
        work()  # warm up, and fill the number caches as a long-running feed has them
    for _ in range(rounds):
        for kind, work in chosen.items():
            gc.collect()
            started = clock()
            work()
            best[kind] = min(best[kind], clock() - started)
    return best


class Skipped(dict[str, float]):
    """The figures of a measurement whose every run timed out: each reads as NaN, so tables
    still print (``nan``) and ratios stay NaN instead of raising."""

    def __missing__(self, key: str) -> float:
        return math.nan


def _kill_group(process: subprocess.Popen[str]) -> None:
    # The child leads its own process group: this also ends a simulator or service it started.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def run_child(
    script: str, args: list[str], timeout: float | None = None
) -> dict[str, float] | None:
    """Run ``script --child *args`` once in a fresh interpreter and return the JSON object it
    printed on its last line, or ``None`` if it ran past ``timeout`` seconds (default
    :data:`CHILD_TIMEOUT`): then it and every process it started are killed and its name is
    printed.

    Raises:
        subprocess.CalledProcessError: If the child exits non-zero (its stderr is printed).
    """
    limit = CHILD_TIMEOUT if timeout is None else timeout
    name = " ".join([Path(script).name, "--child", *args])
    process = subprocess.Popen(
        [sys.executable, script, "--child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        TIMED_OUT.append(name)
        print(f"  TIMED OUT after {limit:.0f} s, skipped: {name}", file=sys.stderr, flush=True)
        return None
    if process.returncode != 0:
        sys.stderr.write(err)
        raise subprocess.CalledProcessError(process.returncode, process.args, out, err)
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def median_of_runs(
    script: str, args: list[str], runs: int, timeout: float | None = None
) -> dict[str, float]:
    """Run ``script --child *args`` ``runs`` times, each in a fresh interpreter under
    ``timeout``, and return the median of every figure over the runs that finished; a
    :class:`Skipped` (every figure NaN) when none did."""
    results = [r for r in (run_child(script, args, timeout) for _ in range(runs)) if r is not None]
    if not results:
        return Skipped()
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


@atexit.register
def _summary() -> None:
    if TIMED_OUT:
        print(f"\n{len(TIMED_OUT)} benchmark run(s) timed out and were skipped:", file=sys.stderr)
        for name in TIMED_OUT:
            print(f"  {name}", file=sys.stderr)
