"""Benchmark of core.async_utils against bare asyncio and peer retry libraries.

Run ``make bench`` (or ``python bench/core.py``). Every configuration runs in a fresh
subprocess, several times; the table shows medians and, for each figure, the ratio to its
baseline measured in the same run:

* start / memory / stop of N long-lived supervised tasks vs ``asyncio.create_task`` with a
  strong-reference set (stopped with cancel + ``asyncio.wait``), with ``asyncio.TaskGroup``
  beside it;
* ``get_metrics()`` on 100,000 tasks;
* restarts per second of work that fails at once with zero backoff vs a hand-written
  ``while True: try/except`` loop with one ``await asyncio.sleep(0)`` per restart (the floor),
  tenacity's ``AsyncRetrying`` and stamina (when the ``bench`` extra is installed);
* the cost robust_task adds to work that succeeds at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

from _harness import median_of_runs
from polymarket_agents.core.async_utils import (
    LOGGER_NAME,
    TaskSupervisor,
    instant_policy,
    robust_task,
)

# --------------------------------------------------------------------------- long-lived tasks


class Probe:
    """Counts tasks that reached their first await and tasks whose finally ran."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.started = 0
        self.cleaned = 0
        self.all_started = asyncio.Event()

    async def work(self) -> None:
        self.started += 1
        if self.started == self.n:
            self.all_started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            self.cleaned += 1


async def _tasks_bare(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    tasks: set[asyncio.Task[None]] = set()
    t0, m0 = time.perf_counter(), measure()
    for _ in range(probe.n):
        task = asyncio.create_task(probe.work())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await probe.all_started.wait()
    t1, m1 = time.perf_counter(), measure()
    for task in tasks:
        task.cancel()
    await asyncio.wait(list(tasks))
    t2 = time.perf_counter()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


async def _tasks_taskgroup(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    tasks = []
    async with asyncio.TaskGroup() as group:
        t0, m0 = time.perf_counter(), measure()
        for _ in range(probe.n):
            tasks.append(group.create_task(probe.work()))
        await probe.all_started.wait()
        t1, m1 = time.perf_counter(), measure()
        for task in tasks:
            task.cancel()
    t2 = time.perf_counter()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0 - 8 * probe.n) / probe.n}


async def _tasks_supervisor(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    supervisor = TaskSupervisor()
    names = [f"task-{i}" for i in range(probe.n)]  # the caller's names exist either way
    work = probe.work
    t0, m0 = time.perf_counter(), measure()
    for name in names:
        await supervisor.start_task(name, work)
    await probe.all_started.wait()
    t1, m1 = time.perf_counter(), measure()
    stuck = await supervisor.stop_all()
    t2 = time.perf_counter()
    assert not stuck
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


TASK_KINDS = {"bare": _tasks_bare, "taskgroup": _tasks_taskgroup, "supervisor": _tasks_supervisor}


def run_tasks(kind: str, n: int, memory: bool) -> dict[str, float]:
    """One run of ``kind`` with ``n`` tasks; memory runs are separate (tracemalloc is slow)."""

    async def main() -> dict[str, float]:
        probe = Probe(n)
        if memory:
            tracemalloc.start()

            def measure() -> int:
                return tracemalloc.get_traced_memory()[0]

        else:

            def measure() -> int:
                return 0

        gc.collect()
        return await TASK_KINDS[kind](probe, measure)

    return asyncio.run(main())


# --------------------------------------------------------------------------- get_metrics


def run_metrics(n: int) -> dict[str, float]:
    async def main() -> dict[str, float]:
        supervisor = TaskSupervisor()
        for i in range(n):
            await supervisor.start_task(f"task-{i}", lambda: asyncio.sleep(3600))
        await asyncio.sleep(0)
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            metrics = supervisor.get_metrics()
            timings.append(time.perf_counter() - t0)
            assert len(metrics) == n
        await supervisor.stop_all()
        return {"get_metrics": statistics.median(timings)}

    return asyncio.run(main())


# --------------------------------------------------------------------------- restarts


class Failing:
    """Work that fails at once ``n`` times, then succeeds."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.n:
            raise ConnectionError("down")


async def _restarts_floor(work: Failing) -> None:
    while True:
        try:
            await work()
        except Exception:
            await asyncio.sleep(0)
            continue
        return


async def _restarts_robust(work: Failing) -> None:
    await robust_task("bench", work, policy=instant_policy())


async def _restarts_tenacity(work: Failing) -> None:
    import tenacity

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(ConnectionError),
        wait=tenacity.wait_none(),
        stop=tenacity.stop_never,
    )
    async for attempt in retrying:
        with attempt:
            await work()


async def _restarts_stamina(work: Failing) -> None:
    import stamina
    import stamina.instrumentation

    stamina.instrumentation.set_on_retry_hooks([])
    async for attempt in stamina.retry_context(
        on=ConnectionError,
        attempts=None,
        timeout=None,
        wait_initial=0,
        wait_max=0,
        wait_jitter=0,
    ):
        with attempt:
            await work()


RESTART_KINDS: dict[str, Callable[[Failing], Coroutine[Any, Any, None]]] = {
    "floor": _restarts_floor,
    "robust_task": _restarts_robust,
    "tenacity": _restarts_tenacity,
    "stamina": _restarts_stamina,
}


def run_restarts(kind: str, n: int) -> dict[str, float]:
    logging.getLogger(LOGGER_NAME).setLevel(logging.CRITICAL)  # count restarts, not log I/O

    async def main() -> dict[str, float]:
        work = Failing(n)
        t0 = time.perf_counter()
        await RESTART_KINDS[kind](work)
        elapsed = time.perf_counter() - t0
        assert work.calls == n + 1
        return {"restarts_per_s": n / elapsed}

    return asyncio.run(main())


# --------------------------------------------------------------------------- success path


async def _succeed() -> int:
    return 1


def run_success(n: int, rounds: int = 15) -> dict[str, float]:
    """Per-call µs of each kind, interleaved in rounds so that they share the machine's noise."""

    async def main() -> dict[str, float]:
        create = asyncio.create_task
        timings: dict[str, list[float]] = {"bare": [], "coroutine": [], "factory": []}
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                await create(_succeed())
            t1 = time.perf_counter()
            for _ in range(n):
                await create(robust_task("s", _succeed()))
            t2 = time.perf_counter()
            for _ in range(n):
                await create(robust_task("s", _succeed))
            t3 = time.perf_counter()
            timings["bare"].append((t1 - t0) / n * 1e6)
            timings["coroutine"].append((t2 - t1) / n * 1e6)
            timings["factory"].append((t3 - t2) / n * 1e6)
        return {kind: statistics.median(values) for kind, values in timings.items()}

    return asyncio.run(main())


# --------------------------------------------------------------------------- orchestration


def child(argv: list[str]) -> None:
    what, *args = argv
    if what == "tasks":
        result = run_tasks(args[0], int(args[1]), args[2] == "mem")
    elif what == "metrics":
        result = run_metrics(int(args[0]))
    elif what == "restarts":
        result = run_restarts(args[0], int(args[1]))
    else:
        result = run_success(int(args[0]))
    print(json.dumps(result))


def measure(args: list[str], runs: int) -> dict[str, float]:
    """Median of each figure over ``runs`` fresh subprocesses."""
    return median_of_runs(__file__, args, runs)


def have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="subprocesses per figure")
    parser.add_argument("--sizes", default="10000,100000", help="task counts")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return
    runs = options.runs
    print(
        f"core.async_utils benchmark — Python {sys.version.split()[0]}, {runs} runs each, medians"
    )
    print()
    print("Long-lived tasks: start (until each reached its first await), memory, stop")
    print(
        f"{'N':>8} {'kind':<11} {'start ms':>9} {'x bare':>7} {'B/task':>7} {'+B':>6} "
        f"{'stop ms':>8} {'x bare':>7}"
    )
    for n in map(int, options.sizes.split(",")):
        rows = {}
        for kind in TASK_KINDS:
            timing = measure(["tasks", kind, str(n), "time"], runs)
            memory = measure(["tasks", kind, str(n), "mem"], runs)
            rows[kind] = {**timing, "mem": memory["mem"]}
        bare = rows["bare"]
        for kind, row in rows.items():
            print(
                f"{n:>8} {kind:<11} {row['start'] * 1e3:>9.1f} "
                f"{row['start'] / bare['start']:>7.2f} {row['mem']:>7.0f} "
                f"{row['mem'] - bare['mem']:>+6.0f} {row['stop'] * 1e3:>8.1f} "
                f"{row['stop'] / bare['stop']:>7.2f}"
            )
    print()
    metrics = measure(["metrics", "100000"], runs)
    print(f"get_metrics() on 100,000 tasks: {metrics['get_metrics'] * 1e3:.1f} ms (goal < 100 ms)")
    print()
    print("Restarts per second, work failing at once, zero backoff")
    n_restarts = 50_000
    floor = measure(["restarts", "floor", str(n_restarts)], runs)["restarts_per_s"]
    for kind in RESTART_KINDS:
        if kind in ("tenacity", "stamina") and not have(kind):
            print(f"  {kind:<12} not installed (pip install -e '.[bench]')")
            continue
        rate = (
            floor
            if kind == "floor"
            else measure(["restarts", kind, str(n_restarts)], runs)["restarts_per_s"]
        )
        print(f"  {kind:<12} {rate:>10,.0f}/s  {rate / floor:>5.2f}x floor")
    print()
    print("Success path: await create_task(robust_task(...)) vs await create_task(work())")
    success = measure(["success", "10000"], runs)
    bare_us = success["bare"]
    print(f"  {'bare':<28} {bare_us:>6.2f} µs")
    for kind, label in (
        ("coroutine", "robust_task(coroutine)"),
        ("factory", "robust_task(factory)"),
    ):
        us = success[kind]
        print(f"  {label:<28} {us:>6.2f} µs  {us - bare_us:>+5.2f} µs  {us / bare_us:.2f}x")


if __name__ == "__main__":
    main()
