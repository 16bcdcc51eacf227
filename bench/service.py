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
* **HTTP load**: the service as a user starts it (``python -m polymarket_agents run``, 20
  markets, the embedded simulator at a fixed 1,000 ticks/s), and 200 keep-alive clients in
  another process hammering ``/metrics`` and ``/status`` back to back, in windows that
  alternate with quiet ones in one run. Stored rows/s (from ``/status``: rows stored over
  the service's own uptime, so a slow answer does not blur the window) with the load vs
  without; goal >= 0.9x. ``/healthz`` latency on a fresh connection every 20 ms during the
  load; goal p99 < 50 ms. Then SIGTERM while the load goes on: seconds to exit, rows lost.
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


# ----------------------------------------------------------------------------- HTTP load


async def _hammer_async(url: str, clients: int, stop: threading.Event, counts: list[int]) -> None:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(n: int) -> None:
            paths = ("/metrics", "/status") if n % 2 else ("/status", "/metrics")
            i = 0
            while not stop.is_set():
                try:
                    async with session.get(url + paths[i % 2]) as response:
                        await response.read()
                        counts[0 if response.status == 200 else 1] += 1
                except (aiohttp.ClientError, TimeoutError, OSError):
                    counts[1] += 1
                    await asyncio.sleep(0.05)
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))


class Hammer:
    """``clients`` keep-alive clients GETting ``/metrics`` and ``/status`` back to back, in a
    process of their own (so that they do not take the GIL from the prober), until
    :meth:`stop`."""

    def __init__(self, url: str, clients: int) -> None:
        self.counts = [0, 0]  # answered 200, failed or refused
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--hammer", url, "--clients", str(clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> None:
        out, _ = self._process.communicate("stop\n", timeout=60)
        self.counts = json.loads(out.strip().splitlines()[-1])


def _hammer_main(url: str, clients: int) -> None:
    """The hammer process: hammer until a line arrives on stdin, then print the counts."""
    stop = threading.Event()
    counts = [0, 0]
    thread = threading.Thread(target=lambda: asyncio.run(_hammer_async(url, clients, stop, counts)))
    thread.start()
    sys.stdin.readline()
    stop.set()
    thread.join()
    print(json.dumps(counts), flush=True)


class Prober:
    """GET ``/healthz`` on a fresh connection every ``interval`` s, recording latencies."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, interval))
        self._thread.start()

    def _run(self, url: str, interval: float) -> None:
        while not self._stop.wait(interval):
            sent = time.perf_counter()
            status, _ = _get(url + "/healthz", timeout=10)
            if status == 200:
                self.latencies.append(time.perf_counter() - sent)
            else:
                self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(url: str) -> tuple[float, int]:
    """(the service's uptime, rows stored) from one /status answer."""
    status, body = _get(url + "/status", timeout=60)
    if status != 200:
        raise SystemExit(f"/status answered {status}")
    data = json.loads(body)
    return data["service"]["uptime"], data["runtime"]["stored_rows"]


def http_load(
    pairs: int, markets: int, rate: float, seconds: float, clients: int
) -> dict[str, Any]:
    """Rows/s with and without ``clients`` hammering, /healthz latency under the load,
    then SIGTERM under the load."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [*_RUN, "--market-count", str(markets), "--sim-rate", str(rate)]
        proc = Proc(args, Path(tmp))
        url = proc.url()
        _wait(lambda: _get(f"{url}/readyz")[0] == 200, 60, "ready")
        time.sleep(2.0)  # warm-up
        rates: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        quiet_latencies: list[float] = []
        prober_latencies: list[float] = []
        probe_failures = 0
        requests = [0, 0]
        for pair in range(pairs):
            for on in (False, True) if pair % 2 == 0 else (True, False):
                hammer = Hammer(url, clients) if on else None
                prober = Prober(url)
                time.sleep(0.5)  # let the load (or the quiet) settle
                t0, r0 = _stored(url)
                c0 = _cpu_seconds(proc.process.pid)
                time.sleep(seconds)
                c1 = _cpu_seconds(proc.process.pid)
                t1, r1 = _stored(url)
                rates[on].append((r1 - r0) / (t1 - t0))
                cpu[on].append((c1 - c0) / seconds)
                prober.stop()
                if on:
                    prober_latencies += prober.latencies
                    probe_failures += prober.failures
                else:
                    quiet_latencies += prober.latencies
                if hammer is not None:
                    hammer.stop()
                    requests[0] += hammer.counts[0]
                    requests[1] += hammer.counts[1]
                proc.alive()
        # SIGTERM while the load goes on.
        hammer = Hammer(url, clients)
        time.sleep(1.0)
        sent = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        code = proc.process.wait(60)
        exit_seconds = time.monotonic() - sent
        hammer.stop()
        summary = proc.summary()
    latencies = sorted(prober_latencies) or [float("nan")]
    quiet = sorted(quiet_latencies) or [float("nan")]
    return {
        "cpu_off": statistics.median(cpu[False]),
        "cpu_on": statistics.median(cpu[True]),
        "quiet_p99": quiet[min(len(quiet) - 1, int(len(quiet) * 0.99))],
        "off": statistics.median(rates[False]),
        "on": statistics.median(rates[True]),
        "ratios": [on / off for on, off in zip(rates[True], rates[False], strict=True)],
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "probes": len(prober_latencies),
        "probe_failures": probe_failures,
        "requests_per_s": requests[0] / (pairs * seconds),
        "refused": requests[1],
        "exit_code": code,
        "exit_seconds": exit_seconds,
        "lost_rows": summary["lost_rows"],
        "grace": 10.0,
    }


def report_http_load(pairs: int, markets: int, rate: float, seconds: float, clients: int) -> None:
    """Measure and print stored rows/s under HTTP load, /healthz latency and SIGTERM."""
    r = http_load(pairs, markets, rate, seconds, clients)
    ratio = statistics.median(r["ratios"])
    print(
        f"HTTP load: {clients} keep-alive clients hammering /metrics and /status, {markets} "
        f"markets, simulator at {rate:.0f} ticks/s; {pairs} pairs of {seconds:.0f} s windows"
    )
    print(
        f"  stored rows/s: {r['off']:,.0f} quiet, {r['on']:,.0f} under load   ratio "
        f"{ratio:.2f}x (per pair {', '.join(f'{x:.2f}' for x in r['ratios'])})   "
        f"goal >= 0.9x: {'met' if ratio >= 0.9 else 'MISSED'}"
    )
    print(
        f"  service CPU: {r['cpu_off']:.0%} of a core quiet, {r['cpu_on']:.0%} under load; "
        f"requests answered: {r['requests_per_s']:,.0f}/s; refused or failed: {r['refused']}"
    )
    print(
        f"  /healthz under load ({r['probes']} probes, {r['probe_failures']} failed): "
        f"p50 {r['p50'] * 1e3:.1f} ms, p99 {r['p99'] * 1e3:.1f} ms (quiet: p99 "
        f"{r['quiet_p99'] * 1e3:.1f} ms)   goal p99 < 50 ms: "
        f"{'met' if r['p99'] < 0.05 and not r['probe_failures'] else 'MISSED'}"
    )
    print(
        f"  SIGTERM under load: exit {r['exit_code']} after {r['exit_seconds']:.2f} s "
        f"(grace {r['grace']:.0f} s), {r['lost_rows']} rows lost"
    )


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
        "--parts", default="startup,shutdown,overhead,http", help="which figures to measure"
    )
    parser.add_argument("--clients", type=int, default=200, help="HTTP load: clients")
    parser.add_argument("--load-pairs", type=int, default=4, help="HTTP load: window pairs")
    parser.add_argument(
        "--load-rate", type=float, default=1000.0, help="HTTP load: simulator ticks per second"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hammer", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.hammer:
        _hammer_main(options.hammer, options.clients)
        return
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
    if "http" in parts:
        print()
        report_http_load(
            options.load_pairs, options.markets, options.load_rate, 5.0, options.clients
        )


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
