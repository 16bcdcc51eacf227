"""Soak: the service for N minutes at 100 markets with faults on; does anything grow?

Run ``python bench/soak.py`` (10 minutes; ``--minutes 2`` for a quick look). It starts
``python -m polymarket_agents run`` as a user does, on the embedded simulator with 100
markets, tradable dislocations and faults: the simulator drops every connection every 30 s
and sends a malformed frame now and then, and the disk fills (every file write of the
service fails, ``RLIMIT_FSIZE`` of 0 set with ``prlimit``) for 3 s every minute, so
market-data batches and paper trades fail and are retried. Once the paper account's cash is
tied up, most signals are refused for want of balance, dozens a second: each is still an
order on record.

Every 10 s it samples the process: resident memory (``VmRSS``), open descriptors, threads,
and the tasks on the service's event loop (from ``/status``). It prints the samples, then
the slope of each (least squares) over the samples after the warm-up (the first 20 % of the
run, at least one minute), against its start value. Goal: RSS flat, < 1 MB/min after
warm-up over 10 minutes; descriptors, threads and tasks not growing. At the end, SIGTERM:
the summary must show every row stored (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

SAMPLE_EVERY = 10.0
GOAL_MB_PER_MIN = 1.0


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5.0) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _proc(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


@contextlib.contextmanager
def _disk_full(pid: int) -> Iterator[None]:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


def _pump(pipe: IO[bytes], sink: list[bytes]) -> None:
    # Keeps the pipe drained (a full pipe would block the service's logging) and the lines
    # the summary needs.
    for line in iter(pipe.readline, b""):
        if line.startswith(b'{"summary"') or b'"serving health' in line:
            sink.append(line)


def soak(minutes: float, markets: int, disk_fault_every: float) -> int:
    """Run the soak; return the exit code to use (0 if every goal was met)."""
    duration = minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.sqlite"
        args = [
            sys.executable, "-m", "polymarket_agents", "run",
            "--http-port", "0", "--log-format", "json", "--live-view", "off",
            "--market-count", str(markets), "--sim-rate", "50",
            "--sim-dislocation-rate", "0.1",
            "--sim-faults", "drop-every=30,malformed-rate=0.01",
            "--grace-period", "20", "--db", str(db),
        ]  # fmt: skip
        service = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp)
        assert service.stdout is not None
        assert service.stderr is not None
        kept: list[bytes] = []
        pumps = [
            threading.Thread(target=_pump, args=(pipe, kept), daemon=True)
            for pipe in (service.stdout, service.stderr)
        ]
        for pump in pumps:
            pump.start()
        try:
            url = _url(service, kept)
            print(
                f"soak: {markets} markets for {minutes:g} min; connections dropped every 30 s, "
                f"malformed frames, disk full 3 s every {disk_fault_every:g} s; pid "
                f"{service.pid}",
                flush=True,
            )
            print(f"{'t s':>6} {'RSS MB':>8} {'fds':>5} {'threads':>7} {'tasks':>6} {'stored':>9}")
            samples = _sample(service, url, duration, disk_fault_every)
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                code = service.wait(60)
            except subprocess.TimeoutExpired:
                service.kill()
                code = service.wait()
            for pump in pumps:
                pump.join(10)
    return _report(samples, duration, code, kept)


def _url(service: subprocess.Popen[bytes], kept: list[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in list(kept):
            entry = json.loads(line)
            if "url" in entry and "summary" not in entry:
                return str(entry["url"])
        if service.poll() is not None:
            raise SystemExit(f"the service exited with {service.returncode} at start")
        time.sleep(0.1)
    raise SystemExit("the service did not start its HTTP server within 60 s")


def _sample(
    service: subprocess.Popen[bytes], url: str, duration: float, disk_fault_every: float
) -> list[dict[str, float]]:
    samples: list[dict[str, float]] = []
    start = time.monotonic()
    next_fault = start + disk_fault_every
    next_sample = start
    while (now := time.monotonic()) - start <= duration:
        if service.poll() is not None:
            raise SystemExit(f"the service died with {service.returncode} during the soak")
        if disk_fault_every and now >= next_fault:
            with _disk_full(service.pid):
                time.sleep(3.0)
            next_fault += disk_fault_every
            continue
        if now >= next_sample:
            status = _get_json(f"{url}/status") or {}
            sample = {"t": now - start, **_proc(service.pid)}
            sample["tasks"] = float((status.get("service") or {}).get("asyncio_tasks", -1))
            sample["stored"] = float((status.get("runtime") or {}).get("stored_rows", -1))
            samples.append(sample)
            print(
                f"{sample['t']:6.0f} {sample['rss_mb']:8.1f} {sample['fds']:5.0f} "
                f"{sample['threads']:7.0f} {sample['tasks']:6.0f} {sample['stored']:9.0f}",
                flush=True,
            )
            next_sample += SAMPLE_EVERY
        time.sleep(min(0.5, max(0.0, min(next_sample, next_fault) - time.monotonic())))
    return samples


def _report(samples: list[dict[str, float]], duration: float, code: int, kept: list[bytes]) -> int:
    warm_up = max(60.0, 0.2 * duration)
    steady = [s for s in samples if s["t"] >= warm_up]
    print(f"\nafter the warm-up ({warm_up:.0f} s), {len(steady)} samples:")
    ok = True
    for key, unit in (("rss_mb", "MB"), ("fds", "fds"), ("threads", "threads"), ("tasks", "tasks")):
        per_min = slope([(s["t"] / 60, s[key]) for s in steady])
        first = steady[0][key] if steady else float("nan")
        last = steady[-1][key] if steady else float("nan")
        line = f"  {key:8} {first:8.1f} -> {last:8.1f}  slope {per_min:+.3f} {unit}/min"
        if key == "rss_mb":
            line += f"  ({per_min / GOAL_MB_PER_MIN:.2f}x the goal of {GOAL_MB_PER_MIN:g} MB/min)"
            ok = ok and per_min < GOAL_MB_PER_MIN
        print(line)
    summary = next((json.loads(line)["summary"] for line in kept if b'"summary"' in line), None)
    if summary is not None:
        print(
            f"  exit code {code}; rows queued {summary['rows_queued']}, stored "
            f"{summary['stored_rows']}, duplicates {summary['duplicate_rows']}, lost "
            f"{summary['lost_rows']}; trades {summary['trades']}"
        )
    else:
        print(f"  exit code {code}; no summary")
    ok = ok and code == 0
    print("goal met" if ok else "goal NOT met")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (10)")
    parser.add_argument("--markets", type=int, default=100, help="markets monitored (100)")
    parser.add_argument(
        "--disk-fault-every",
        type=float,
        default=60.0,
        help="seconds between 3 s full-disk faults; 0: none (60)",
    )
    options = parser.parse_args()
    if not hasattr(resource, "prlimit") and options.disk_fault_every:
        raise SystemExit("the full-disk fault needs resource.prlimit (Linux)")
    sys.exit(soak(options.minutes, options.markets, options.disk_fault_every))


if __name__ == "__main__":
    main()
