"""Benchmark of core.async_utils against bare asyncio and its peers.

Run ``make bench`` (or ``python bench/core.py``). Every configuration runs in a fresh
subprocess, several times; the table shows medians and, for each figure, the ratio to its
baseline measured in the same run. Times are CPU time of the process (``process_time``): on a
shared machine, wall time mostly measures the neighbours.

* start / memory / stop of N long-lived tasks, each given as a coroutine object as the seed
  passes them (``start_task(name, worker(probe))``), vs ``asyncio.create_task`` with a
  strong-reference set (stopped with cancel + ``asyncio.wait``); beside them
  ``asyncio.TaskGroup``, aiotools' ``Supervisor``, aiojobs' ``Scheduler``, mode's
  ``Service.add_future``, ``TaskSupervisor`` and a supervision tree (``Supervisor``);
* a one_for_all restart of a 10,000-child ``Supervisor`` vs the cost of starting them;
* ``get_metrics()`` on 100,000 tasks;
* restarts per second of work that fails at once with zero backoff vs a hand-written
  ``while True: try/except`` loop with one ``await asyncio.sleep(0)`` per restart (the floor),
  tenacity's ``AsyncRetrying`` and stamina, each interleaved with the floor in one process;
* the cost robust_task adds to work that succeeds at once.

Peers come from the ``bench`` dependency group; a missing one is reported and skipped.
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
    LoopWatchdog,
    Strategy,
    Supervisor,
    TaskSupervisor,
    beat,
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
    t0, m0 = time.process_time(), measure()
    for _ in range(probe.n):
        task = asyncio.create_task(probe.work())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await probe.all_started.wait()
    t1, m1 = time.process_time(), measure()
    for task in tasks:
        task.cancel()
    await asyncio.wait(list(tasks))
    t2 = time.process_time()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


async def _tasks_taskgroup(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    tasks = []
    async with asyncio.TaskGroup() as group:
        t0, m0 = time.process_time(), measure()
        for _ in range(probe.n):
            tasks.append(group.create_task(probe.work()))
        await probe.all_started.wait()
        t1, m1 = time.process_time(), measure()
        for task in tasks:
            task.cancel()
    t2 = time.process_time()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0 - 8 * probe.n) / probe.n}


async def _tasks_supervisor(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    supervisor = TaskSupervisor()
    names = [f"task-{i}" for i in range(probe.n)]  # the caller's names exist either way
    t0, m0 = time.process_time(), measure()
    for name in names:
        await supervisor.start_task(name, probe.work())
    await probe.all_started.wait()
    t1, m1 = time.process_time(), measure()
    stuck = await supervisor.stop_all()
    t2 = time.process_time()
    assert not stuck
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


async def _tasks_tree(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    tree = Supervisor("bench", max_restarts=None)
    names = [f"task-{i}" for i in range(probe.n)]
    t0, m0 = time.process_time(), measure()
    for name in names:
        tree.add(name, probe.work())
    await tree.start()
    await probe.all_started.wait()
    t1, m1 = time.process_time(), measure()
    stuck = await tree.stop()
    t2 = time.process_time()
    assert not stuck
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


async def _tasks_aiotools(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    import aiotools

    tasks = []
    async with aiotools.Supervisor() as supervisor:
        t0, m0 = time.process_time(), measure()
        for _ in range(probe.n):
            tasks.append(supervisor.create_task(probe.work()))
        await probe.all_started.wait()
        t1, m1 = time.process_time(), measure()
        for task in tasks:
            task.cancel()
    t2 = time.process_time()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0 - 8 * probe.n) / probe.n}


async def _tasks_aiojobs(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    import aiojobs

    scheduler = aiojobs.Scheduler(limit=None, pending_limit=0, close_timeout=60)
    t0, m0 = time.process_time(), measure()
    for _ in range(probe.n):
        await scheduler.spawn(probe.work())
    await probe.all_started.wait()
    t1, m1 = time.process_time(), measure()
    await scheduler.close()
    t2 = time.process_time()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


async def _tasks_mode(probe: Probe, measure: Callable[[], Any]) -> dict[str, float]:
    import mode

    service = mode.Service()
    await service.start()
    t0, m0 = time.process_time(), measure()
    for _ in range(probe.n):
        service.add_future(probe.work())
    await probe.all_started.wait()
    t1, m1 = time.process_time(), measure()
    await service.stop()
    t2 = time.process_time()
    assert probe.cleaned == probe.n
    return {"start": t1 - t0, "stop": t2 - t1, "mem": (m1 - m0) / probe.n}


TASK_KINDS = {
    "bare": _tasks_bare,
    "taskgroup": _tasks_taskgroup,
    "aiotools": _tasks_aiotools,
    "aiojobs": _tasks_aiojobs,
    "mode": _tasks_mode,
    "supervisor": _tasks_supervisor,
    "tree": _tasks_tree,
}
PEER_MODULES = {"aiotools": "aiotools", "aiojobs": "aiojobs", "mode": "mode"}


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


# --------------------------------------------------------------------------- group restart


def run_group_restart(n: int) -> dict[str, float]:
    """CPU seconds to start ``n`` children of a one_for_all Supervisor (each until its first
    await), and to restart all of them after one sibling fails (every one stopped in
    reverse order, re-created from its coroutine object, started in order)."""
    logging.getLogger(LOGGER_NAME).setLevel(logging.CRITICAL)

    async def main() -> dict[str, float]:
        probe = Probe(n)
        trigger = asyncio.Event()

        async def fail_once() -> None:
            await trigger.wait()
            trigger.clear()
            raise ConnectionError("one child fails")

        tree = Supervisor(
            "bench", strategy=Strategy.ONE_FOR_ALL, policy=instant_policy(), max_restarts=None
        )
        gc.collect()
        t0 = time.process_time()
        for i in range(n):
            tree.add(f"child-{i}", probe.work())
        tree.add("trigger", fail_once)
        await tree.start()
        await probe.all_started.wait()
        start = time.process_time() - t0
        probe.started = 0
        probe.all_started.clear()
        t1 = time.process_time()
        trigger.set()
        await probe.all_started.wait()
        restart = time.process_time() - t1
        assert probe.cleaned == n
        await tree.stop()
        return {"start": start, "restart": restart, "ratio": restart / start}

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
            t0 = time.process_time()
            metrics = supervisor.get_metrics()
            timings.append(time.process_time() - t0)
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


def run_restarts(kind: str, n: int, rounds: int = 9) -> dict[str, float]:
    """Restarts per second of ``kind`` and of the floor, interleaved in rounds so that both
    share the machine's noise; the ratio is the median of the per-round ratios."""
    logging.getLogger(LOGGER_NAME).setLevel(logging.CRITICAL)  # count restarts, not log I/O

    async def once(which: str) -> float:
        work = Failing(n)
        t0 = time.process_time()
        await RESTART_KINDS[which](work)
        elapsed = time.process_time() - t0
        assert work.calls == n + 1
        return n / elapsed

    async def main() -> dict[str, float]:
        rates, floors, ratios = [], [], []
        for _ in range(rounds):
            floor = await once("floor")
            rate = await once(kind)
            floors.append(floor)
            rates.append(rate)
            ratios.append(rate / floor)
        return {
            "restarts_per_s": statistics.median(rates),
            "floor_per_s": statistics.median(floors),
            "ratio": statistics.median(ratios),
        }

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
            t0 = time.process_time()
            for _ in range(n):
                await create(_succeed())
            t1 = time.process_time()
            for _ in range(n):
                await create(robust_task("s", _succeed()))
            t2 = time.process_time()
            for _ in range(n):
                await create(robust_task("s", _succeed))
            t3 = time.process_time()
            timings["bare"].append((t1 - t0) / n * 1e6)
            timings["coroutine"].append((t2 - t1) / n * 1e6)
            timings["factory"].append((t3 - t2) / n * 1e6)
        return {kind: statistics.median(values) for kind, values in timings.items()}

    return asyncio.run(main())


# --------------------------------------------------------------------------- detection costs


def run_detection(seconds: float = 3.0) -> dict[str, float]:
    """What stall and loop-blocking detection cost on their own: a LoopWatchdog's CPU per
    second of an idle loop (idle and watched windows interleaved), and ``beat()`` per call
    inside a task with a heartbeat (against an empty loop of the same length)."""

    async def main() -> dict[str, float]:
        extra = []
        for _ in range(3):
            c0 = time.process_time()
            await asyncio.sleep(seconds)
            idle = time.process_time() - c0
            async with LoopWatchdog(threshold=0.1):
                c1 = time.process_time()
                await asyncio.sleep(seconds)
                watched = time.process_time() - c1
            extra.append((watched - idle) / seconds)
        n = 1_000_000
        timings: list[float] = []

        async def beating() -> None:
            t0 = time.process_time()
            for _ in range(n):
                beat()
            t1 = time.process_time()
            for _ in range(n):
                pass
            timings.append((t1 - t0) - (time.process_time() - t1))

        supervisor = TaskSupervisor()
        await supervisor.start_task("beating", beating, heartbeat=60.0)
        await supervisor.join("beating")
        return {
            "watchdog_cpu_per_s": statistics.median(extra),
            "beat_ns": timings[0] / n * 1e9,
            "watchdog_busy_ratio": await busy_loop_with_and_without_a_watchdog(seconds),
        }

    return asyncio.run(main())


async def busy_loop_with_and_without_a_watchdog(seconds: float) -> float:
    """A loop kept busy (pure-Python steps of about a millisecond, as a flat-out pipeline
    keeps it): process CPU per step with a LoopWatchdog(0.1), which then samples a running
    loop thread and takes the GIL from it 20 times a second, over the same without; the
    median of 8 pairs of windows, off and on in turn (off-on-on-off)."""
    data = list(range(20_000))

    async def steps(until: float) -> int:
        done = 0
        while time.perf_counter() < until:
            sum(x * x for x in data)  # about a millisecond of pure Python
            done += 1
            await asyncio.sleep(0)
        return done

    window = seconds / 4
    per_step: dict[bool, list[float]] = {False: [], True: []}
    for on in (False, True, True, False) * 4:
        watchdog = LoopWatchdog(threshold=0.1) if on else None
        if watchdog is not None:
            watchdog.start()
        c0 = time.process_time()
        done = await steps(time.perf_counter() + window)
        per_step[on].append((time.process_time() - c0) / done)
        if watchdog is not None:
            watchdog.stop()
    return statistics.median(
        on / off for on, off in zip(per_step[True], per_step[False], strict=True)
    )


# --------------------------------------------------------------------------- orchestration


def child(argv: list[str]) -> None:
    what, *args = argv
    if what == "tasks":
        result = run_tasks(args[0], int(args[1]), args[2] == "mem")
    elif what == "metrics":
        result = run_metrics(int(args[0]))
    elif what == "group":
        result = run_group_restart(int(args[0]))
    elif what == "detection":
        result = run_detection()
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
            if kind in PEER_MODULES and not have(PEER_MODULES[kind]):
                print(f"{n:>8} {kind:<11} not installed (the bench dependency group)")
                continue
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
    group = measure(["group", "10000"], runs)
    print(
        f"one_for_all restart of 10,000 children: {group['restart'] * 1e3:.1f} ms, "
        f"{group['ratio']:.2f}x starting them ({group['start'] * 1e3:.1f} ms; goal <= 2x)"
    )
    print()
    detection = measure(["detection"], runs)
    print(
        f"Stall detection: beat() {detection['beat_ns']:.0f} ns per call. Loop-blocking "
        f"detection: LoopWatchdog(0.1) {detection['watchdog_cpu_per_s'] * 1e3:.2f} ms of CPU "
        f"per second ({detection['watchdog_cpu_per_s'] * 100:.2f} % of a core) on an idle "
        f"loop; on a busy loop {detection['watchdog_busy_ratio']:.4f}x the CPU per step "
        f"without; bench/agents.py measures both on the pipeline"
    )
    print()
    metrics = measure(["metrics", "100000"], runs)
    print(f"get_metrics() on 100,000 tasks: {metrics['get_metrics'] * 1e3:.1f} ms (goal < 100 ms)")
    print()
    print(
        "Restarts per second, work failing at once, zero backoff (each interleaved with the floor)"
    )
    n_restarts = 20_000
    for kind in RESTART_KINDS:
        if kind == "floor":
            continue
        if kind in ("tenacity", "stamina") and not have(kind):
            print(f"  {kind:<12} not installed (the bench dependency group)")
            continue
        result = measure(["restarts", kind, str(n_restarts)], runs)
        print(
            f"  {kind:<12} {result['restarts_per_s']:>10,.0f}/s  {result['ratio']:>5.2f}x floor "
            f"({result['floor_per_s']:,.0f}/s)"
        )
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
