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
* **overhead**: events per second of the service with the HTTP server, ``/metrics``,
  ``/status``, ``/healthz`` and ``/readyz`` scraped once a second from another process (15
  times Prometheus's default rate) and the live view redrawing into a terminal
  (``/dev/null``), against the same service with both off. The service runs on one CPU with
  its embedded simulator at full speed (``--sim-rate 0``), so it is CPU-bound and the
  throughput ratio is one minus the share of the CPU that HTTP and the view take. (With the
  simulator in another process, on two CPUs, the pacing between the two processes makes
  throughput vary by a factor of two from run to run.) Goal: cost < 5 % (ratio on/off >
  0.95). Trials alternate off and on; medians.
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


async def _child(options: dict[str, Any]) -> dict[str, Any]:
    """One trial in a fresh interpreter: the service in process, measured over a window."""
    from rich.console import Console

    from polymarket_agents.service import Service, ServiceConfig

    _pin(1)
    on = options["mode"] == "on"
    config = ServiceConfig(
        market_count=options["markets"],
        sim_rate=0,  # the embedded simulator as fast as the agents read: CPU-bound
        db_path=Path(options["db"]),
        http_enabled=on,
        http_port=0,
        live_view="off",
    )
    # A terminal that discards what it is sent: every redraw is rendered and written.
    console = Console(file=options["sink"], force_terminal=True, width=160) if on else None
    service = Service(config, console=console, install_signal_handlers=False)
    task = asyncio.create_task(service.run())
    state = service.state
    while not state.readiness()[0]:
        if task.done():
            raise SystemExit(f"service ended: {task.result()}")
        await asyncio.sleep(0.02)
    print(json.dumps({"url": state.http_url}), flush=True)
    await asyncio.sleep(options["warmup"])
    assert state.runtime is not None
    e0, c0, t0 = state.runtime.stats().events, time.process_time(), time.perf_counter()
    await asyncio.sleep(options["seconds"])
    e1, c1, t1 = state.runtime.stats().events, time.process_time(), time.perf_counter()
    result = {
        "events_per_s": (e1 - e0) / (t1 - t0),
        "cpu_share": (c1 - c0) / (t1 - t0),
        "http_requests": state.http_requests,
        "view_refreshes": state.view_refreshes,
    }
    service.supervisor.signal_shutdown()
    summary = await task
    result["lost_rows"] = summary.lost_rows
    return result


def _scrape(url: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for path in ("/metrics", "/status", "/healthz", "/readyz"):
            _get(url + path)


def _run_child(options: dict[str, Any]) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    stop = threading.Event()
    scraper: threading.Thread | None = None
    result: dict[str, Any] | None = None
    for line in child.stdout:
        data = json.loads(line)
        if "url" not in data:
            result = data
        elif data["url"]:
            scraper = threading.Thread(target=_scrape, args=(data["url"], stop), daemon=True)
            scraper.start()
    stop.set()
    if scraper is not None:
        scraper.join()
    if child.wait() != 0 or result is None or result["lost_rows"]:
        raise SystemExit(f"a benchmark child failed: {result}")
    return result


def overhead(trials: int, markets: int, seconds: float) -> dict[str, list[dict[str, Any]]]:
    """Alternate trials with HTTP (scraped at 1 Hz) + live view on, and both off."""
    _pin(0)  # the scraper here, the service on the other CPU
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(trials):
            for mode in ("off", "on") if trial % 2 == 0 else ("on", "off"):
                options = {
                    "markets": markets,
                    "db": str(Path(tmp) / f"{mode}{trial}.sqlite"),
                    "mode": mode,
                    "warmup": 1.0,
                    "seconds": seconds,
                }
                results[mode].append(_run_child(options))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of start-up and shutdown")
    parser.add_argument("--trials", type=int, default=5, help="overhead trials per mode")
    parser.add_argument("--seconds", type=float, default=5.0, help="overhead window")
    parser.add_argument("--markets", type=int, default=20, help="markets in the overhead runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child_options = json.loads(options.child)
        with open(os.devnull, "w") as sink:
            child_options["sink"] = sink
            print(json.dumps(asyncio.run(_child(child_options))), flush=True)
        return
    print(f"service benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians")
    print()
    up = startup(options.runs)
    print(
        f"start-up to ready (5 markets):   {up['to_ready']:.2f} s from Popen "
        f"(service's own share {up['own']:.2f} s)   goal < 2 s: "
        f"{'met' if up['to_ready'] < 2 else 'MISSED'}"
    )
    print(f"idle shutdown (5 markets):        {up['idle_stop'] * 1e3:.0f} ms to process exit")
    down = shutdown(options.runs, 100, 3.0)
    print(
        f"shutdown under load (100 markets, ~{down['events_per_s']:.0f} events/s): "
        f"{down['exit'] * 1e3:.0f} ms to process exit (service's own "
        f"{down['internal'] * 1e3:.0f} ms, {down['rows']:.0f} rows stored, none lost)   "
        f"goal < 1 s: {'met' if down['exit'] < 1 else 'MISSED'}"
    )
    print()
    cost = overhead(options.trials, options.markets, options.seconds)
    median = {
        mode: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for mode, runs in cost.items()
    }
    off, on = median["off"], median["on"]
    ratio = on["events_per_s"] / off["events_per_s"]
    print(
        f"HTTP + metrics + live view, {options.markets} markets, embedded simulator at full "
        f"speed, one CPU, {options.trials} alternating trials of {options.seconds:.0f} s"
    )
    print(f"  {'':<34}{'events/s':>10}{'range':>18}{'CPU':>7}")
    for label, mode in (("off", "off"), ("on (scraped 4 paths at 1 Hz)", "on")):
        rates = [r["events_per_s"] for r in cost[mode]]
        print(
            f"  {label:<34}{median[mode]['events_per_s']:>10,.0f}"
            f"{f'{min(rates):,.0f}-{max(rates):,.0f}':>18}{median[mode]['cpu_share']:>7.0%}"
        )
    print(
        f"  throughput ratio on/off: {ratio:.3f}   goal cost < 5 %: "
        f"{'met' if ratio > 0.95 else 'MISSED'}   (per trial: {on['view_refreshes']:.0f} "
        f"redraws, {on['http_requests']:.0f} HTTP requests)"
    )


if __name__ == "__main__":
    main()
