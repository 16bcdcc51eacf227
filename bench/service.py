"""Benchmark of the service: start-up, shutdown under load, and what HTTP + live view cost.

Run ``make bench`` (or ``python bench/service.py``). Three figures, each with its goal:

* **start-up**: ``python -m polymarket_agents run`` as a user starts it (embedded simulator,
  5 markets, SQLite, HTTP) from ``Popen`` to the first ``/readyz`` 200; goal < 2 s. The
  service's own share (from its start to ready, without interpreter start-up and imports)
  is beside it.
* **shutdown under load**: 100 markets on the embedded simulator ticking fast, SIGTERM
  after a few seconds of load, time until the process has exited (monitors stopped, queue
  drained into SQLite, sockets and database closed, summary printed); goal < 1 s, with
  nothing lost.
* **overhead**: what the HTTP server's ``/metrics``, ``/status``, ``/healthz`` and
  ``/readyz``, scraped once a second from another process (15 times Prometheus's default
  rate), and the live view, redrawing twice a second into a terminal (``/dev/null``), cost
  the agents. The service runs on one CPU with its embedded simulator at a fixed rate;
  windows with scraping and view on and off alternate in pairs within one process, and the
  figure is the extra CPU time per second with them on. Both cost a fixed amount per second
  (they read snapshots, never per event), so when the service is CPU-bound its throughput
  shrinks by that share of the CPU: the throughput ratio on/off is one minus it. (Measuring
  saturated throughput directly was tried: with the simulator pacing itself to the agents,
  throughput varies by over 30 % from window to window, far more than the 5 % measured.)
  Goal: cost < 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

POLL = 0.01


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL)


class Proc:
    """The command line in a subprocess, stdout and stderr in files."""

    def __init__(self, args: list[str], directory: Path) -> None:
        self.out = directory / "stdout.txt"
        self.err = directory / "stderr.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYMARKET_AGENTS_")}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "polymarket_agents", *args],
                stdout=out,
                stderr=err,
                cwd=directory,
                env=env,
            )

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"exited {self.process.returncode}:\n{self.err.read_text()[-3000:]}")

    def url(self) -> str:
        def announced() -> str | None:
            self.alive()
            for line in self.err.read_text().splitlines():
                if line.startswith("{") and '"url"' in line:
                    entry = json.loads(line)
                    if entry["message"].startswith("serving health"):
                        return str(entry["url"])
            return None

        return str(_wait(announced, 30, "the HTTP server"))

    def summary(self) -> dict[str, Any]:
        for line in self.out.read_text().splitlines():
            if line.startswith('{"summary"'):
                summary: dict[str, Any] = json.loads(line)["summary"]
                return summary
        raise SystemExit(f"no summary:\n{self.out.read_text()}")

    def stop(self) -> float:
        """SIGTERM; seconds until the process has exited."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        took = time.monotonic() - sent
        if code != 0:
            raise SystemExit(f"exit code {code}:\n{self.err.read_text()[-3000:]}")
        return took


_RUN = ["run", "--http-port", "0", "--log-format", "json", "--live-view", "off"]


def startup(runs: int) -> dict[str, float]:
    """Popen -> /readyz 200, and the service's own start -> ready, medians."""
    to_ready, own, idle_stop = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            proc = Proc(_RUN, Path(tmp))
            url = proc.url()
            _wait(lambda url=url: _get(f"{url}/readyz")[0] == 200, 30, "ready")
            to_ready.append(time.monotonic() - proc.started)
            status = json.loads(_get(f"{url}/status")[1])
            own.append(status["service"]["ready_after"])
            idle_stop.append(proc.stop())
    return {
        "to_ready": statistics.median(to_ready),
        "own": statistics.median(own),
        "idle_stop": statistics.median(idle_stop),
    }


def shutdown(runs: int, markets: int, load_seconds: float) -> dict[str, float]:
    """SIGTERM under load with ``markets`` markets: seconds to exit, and rows at stake."""
    took, internal, rows, events = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            args = [*_RUN, "--market-count", str(markets), "--sim-rate", "1000"]
            proc = Proc(args, Path(tmp))
            url = proc.url()
            _wait(lambda url=url: _get(f"{url}/readyz")[0] == 200, 60, "ready")
            time.sleep(load_seconds)
            took.append(proc.stop())
            summary = proc.summary()
            if summary["lost_rows"] or summary["exit_code"]:
                raise SystemExit(f"rows lost or unclean exit: {summary}")
            internal.append(summary["shutdown_seconds"])
            rows.append(summary["stored_rows"])
            events.append(summary["events"] / (summary["uptime"] or 1))
    return {
        "exit": statistics.median(took),
        "internal": statistics.median(internal),
        "rows": statistics.median(rows),
        "events_per_s": statistics.median(events),
    }


# ----------------------------------------------------------------------------- overhead


def _pin(cpu: int) -> None:
    """Run on one CPU, where the OS allows it (Linux): fewer scheduling surprises."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


async def _child(options: dict[str, Any]) -> None:
    """The overhead run, in a fresh interpreter on one CPU: windows with HTTP scraping and
    the live view on, and off, alternating in pairs, each printed as a JSON line."""
    from rich.console import Console

    from polymarket_agents.service import Service, ServiceConfig

    _pin(1)
    config = ServiceConfig(
        market_count=options["markets"],
        sim_rate=options["rate"],
        db_path=Path(options["db"]),
        http_port=0,
        live_view="off",
    )
    # A terminal that discards what it is sent: every redraw is rendered and written.
    console = Console(file=options["sink"], force_terminal=True, width=160)
    service = Service(config, console=console, install_signal_handlers=False)
    task = asyncio.create_task(service.run())
    state, supervisor = service.state, service.supervisor
    while not state.readiness()[0]:
        if task.done():
            raise SystemExit(f"service ended: {task.result()}")
        await asyncio.sleep(0.02)
    runtime = state.runtime
    assert runtime is not None

    async def switch(on: bool) -> None:
        # The view is the task the service started; the scraper is the parent's, told here.
        if on:
            await supervisor.restart_task(_VIEW_TASK)
        else:
            await supervisor.stop_task(_VIEW_TASK)
        print(json.dumps({"scrape": state.http_url if on else None}), flush=True)
        await asyncio.sleep(options["settle"])

    await switch(False)
    await asyncio.sleep(options["warmup"])
    for pair in range(options["pairs"]):
        for on in (False, True) if pair % 2 == 0 else (True, False):
            await switch(on)
            e0, c0, t0 = runtime.stats().events, time.process_time(), time.perf_counter()
            r0, h0 = state.view_refreshes, state.http_requests
            await asyncio.sleep(options["seconds"])
            e1, c1, t1 = runtime.stats().events, time.process_time(), time.perf_counter()
            window = {
                "pair": pair,
                "on": on,
                "events_per_s": (e1 - e0) / (t1 - t0),
                "cpu_share": (c1 - c0) / (t1 - t0),
                "redraws": state.view_refreshes - r0,
                "requests": state.http_requests - h0,
            }
            print(json.dumps(window), flush=True)
    await switch(False)
    supervisor.signal_shutdown()
    summary = await task
    print(json.dumps({"lost_rows": summary.lost_rows, "exit_code": summary.exit_code}))


_VIEW_TASK = "service.view"


def _scrape(url: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for path in ("/metrics", "/status", "/healthz", "/readyz"):
            _get(url + path)


def overhead(pairs: int, markets: int, seconds: float, rate: float) -> list[dict[str, Any]]:
    """Paired windows in one service process: on/off ratios free of between-run variance."""
    _pin(0)  # the scraper here, the service on the other CPU
    with tempfile.TemporaryDirectory() as tmp:
        options = {
            "markets": markets,
            "rate": rate,
            "db": str(Path(tmp) / "overhead.sqlite"),
            "pairs": pairs,
            "seconds": seconds,
            "settle": 0.3,
            "warmup": 2.0,
        }
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(options)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        windows: list[dict[str, Any]] = []
        end: dict[str, Any] = {}
        stop = threading.Event()
        scraper: threading.Thread | None = None
        for line in child.stdout:
            data = json.loads(line)
            if "scrape" in data:
                if scraper is not None:
                    stop.set()
                    scraper.join()
                    stop.clear()
                    scraper = None
                if data["scrape"]:
                    scraper = threading.Thread(target=_scrape, args=(data["scrape"], stop))
                    scraper.start()
            elif "pair" in data:
                windows.append(data)
            else:
                end = data
        if child.wait() != 0 or end.get("lost_rows") or end.get("exit_code"):
            raise SystemExit(f"the overhead run failed: {end}")
    return windows


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of start-up and shutdown")
    parser.add_argument("--pairs", type=int, default=10, help="overhead window pairs")
    parser.add_argument("--seconds", type=float, default=3.0, help="overhead window")
    parser.add_argument("--markets", type=int, default=20, help="markets in the overhead runs")
    parser.add_argument(
        "--rate", type=float, default=1500.0, help="simulator ticks per second, overhead runs"
    )
    parser.add_argument(
        "--parts", default="startup,shutdown,overhead", help="which figures to measure"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child_options = json.loads(options.child)
        with open(os.devnull, "w") as sink:
            child_options["sink"] = sink
            asyncio.run(_child(child_options))
        return
    print(f"service benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians")
    print()
    parts = set(options.parts.split(","))
    if "startup" in parts:
        up = startup(options.runs)
        print(
            f"start-up to ready (5 markets):   {up['to_ready']:.2f} s from Popen "
            f"(service's own share {up['own']:.2f} s)   goal < 2 s: "
            f"{'met' if up['to_ready'] < 2 else 'MISSED'}"
        )
        print(f"idle shutdown (5 markets):        {up['idle_stop'] * 1e3:.0f} ms to process exit")
    if "shutdown" in parts:
        down = shutdown(options.runs, 100, 3.0)
        print(
            f"shutdown under load (100 markets, ~{down['events_per_s']:.0f} events/s): "
            f"{down['exit'] * 1e3:.0f} ms to process exit (service's own "
            f"{down['internal'] * 1e3:.0f} ms, {down['rows']:.0f} rows stored, none lost)   "
            f"goal < 1 s: {'met' if down['exit'] < 1 else 'MISSED'}"
        )
    if "overhead" in parts:
        print()
        report_overhead(options.pairs, options.markets, options.seconds, options.rate)


def report_overhead(pairs: int, markets: int, seconds: float, rate: float) -> None:
    """Measure and print the cost of HTTP scraping and the live view."""
    windows = overhead(pairs, markets, seconds, rate)
    by_pair: dict[int, dict[bool, dict[str, Any]]] = {}
    for window in windows:
        by_pair.setdefault(window["pair"], {})[window["on"]] = window
    pairs_done = list(by_pair.values())
    extra = [p[True]["cpu_share"] - p[False]["cpu_share"] for p in pairs_done]
    per_event = [
        (p[True]["cpu_share"] / p[True]["events_per_s"])
        / (p[False]["cpu_share"] / p[False]["events_per_s"])
        for p in pairs_done
    ]
    q1, cost, q3 = _quartiles(extra)
    print(
        f"HTTP + metrics + live view: {markets} markets, embedded simulator at {rate:.0f} "
        f"ticks/s, one CPU; {pairs} pairs of {seconds:.0f} s windows, on and off in turn, "
        "in one process"
    )
    print(f"  {'':<40}{'events/s':>10}{'CPU':>8}{'µs/event':>10}{'redraws/s':>11}{'req/s':>7}")
    for label, on in (("off", False), ("on (4 paths scraped at 1 Hz, view)", True)):
        rows = [p[on] for p in pairs_done]
        events = statistics.median(r["events_per_s"] for r in rows)
        cpu = statistics.median(r["cpu_share"] for r in rows)
        print(
            f"  {label:<40}{events:>10,.0f}{cpu:>8.1%}{cpu / events * 1e6:>10.1f}"
            f"{statistics.median(r['redraws'] for r in rows) / seconds:>11.1f}"
            f"{statistics.median(r['requests'] for r in rows) / seconds:>7.1f}"
        )
    print(
        f"  extra CPU with both on: {cost:.2%} of one core (quartiles {q1:.2%} to {q3:.2%}); "
        f"CPU per event on/off {statistics.median(per_event):.3f}"
    )
    print(
        f"  throughput ratio on/off when CPU-bound: {1 - cost:.3f}   goal cost < 5 %: "
        f"{'met' if cost < 0.05 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
