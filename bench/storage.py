"""Benchmark of storage: rows/s into SQLite and PostgreSQL beside a hand-written COPY loop,
and events/s of 1 vs 2 replicas of the service on one PostgreSQL.

Run ``python bench/storage.py`` (needs PostgreSQL's server programs: ``apt-get install -y
postgresql``). A PostgreSQL cluster is started in a temporary directory with the server's
default durability (``fsync`` on); each configuration runs in a fresh subprocess, several
times (the table shows medians), on a database of its own.

Rows per second, writing 100,000 price-change rows (the busiest table; one entry each) in
batches of 500,
the ingestion worker's default, one transaction per batch:

* **floor**: a hand-written asyncpg loop: each batch's rows turned into tuples by attribute
  access and sent with ``copy_records_to_table`` into the table in one transaction; no
  validation, no idempotency, no accounting;
* **PostgresStore**: :meth:`PostgresStore.write_batch`, the path the service takes: rows
  validated and encoded, ``COPY`` straight into the table while batches hold only new rows;
* **PostgresStore, replays**: every batch half rows already stored (as after a failed
  commit), which go through the staging table and ``INSERT ... ON CONFLICT DO NOTHING``;
* **SQLiteStore**: :meth:`SQLiteStore.write_batch` into a file (WAL, ``synchronous=NORMAL``).

Replicas: the simulator (200 markets, flat out) feeds one service (``--shard 0/1``) or two
(``--shard 0/2`` and ``1/2``) writing to one PostgreSQL; events/s and stored rows/s are
summed over the replicas from ``/status`` across a measured window after a warm-up, and the
CPU each process used in it shows where the ceiling is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from _harness import median_of_runs
from polymarket_agents.storage import LevelChange, PostgresStore, PriceChangeRow, SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests._postgres import PostgresServer, find_bindir, free_port

ROWS = 100_000
BATCH = 500
MARKETS = 200
COLUMNS = ("market", "timestamp_ms", "changes", "received_at_ms")


def make_rows(count: int, start: int = 0) -> list[PriceChangeRow]:
    """Price changes of one entry over 200 tokens with growing timestamps."""
    return [
        PriceChangeRow(
            market=f"0x{i % 100:064x}",
            timestamp_ms=1_700_000_000_000 + i,
            changes=(
                LevelChange(
                    f"{1_000_000 + i % 200}",
                    Decimal(f"0.{10 + i % 89}"),
                    Decimal(f"{i % 997}.5"),
                    "BUY" if i % 2 else "SELL",
                    f"h{i}",
                    Decimal("0.49"),
                    Decimal("0.51"),
                ),
            ),
            received_at_ms=1_700_000_000_000 + i,
        )
        for i in range(start, start + count)
    ]


def batches(rows: list[PriceChangeRow]) -> list[list[PriceChangeRow]]:
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


async def write_floor(url: str) -> float:
    async with PostgresStore(url):  # creates the schema, as the store's runs have it
        pass
    conn = await asyncpg.connect(url)
    try:
        work = batches(make_rows(ROWS))
        began = time.perf_counter()
        for batch in work:
            records = [
                (
                    r.market,
                    r.timestamp_ms,
                    msgspec.json.encode(
                        [
                            (
                                c.asset_id,
                                str(c.price),
                                str(c.size),
                                c.side,
                                c.hash,
                                None if c.best_bid is None else str(c.best_bid),
                                None if c.best_ask is None else str(c.best_ask),
                            )
                            for c in r.changes
                        ]
                    ).decode(),
                    r.received_at_ms,
                )
                for r in batch
            ]
            async with conn.transaction():
                await conn.copy_records_to_table("price_changes", records=records, columns=COLUMNS)
        return ROWS / (time.perf_counter() - began)
    finally:
        await conn.close()


async def write_store(url: str, replays: bool) -> float:
    async with PostgresStore(url) as store:
        work = batches(make_rows(ROWS))
        if replays:
            # Each batch: half its rows were stored before (by the previous batch).
            half = BATCH // 2
            fresh = make_rows(ROWS)
            await store.write_batch(fresh[:half])
            work = [fresh[i - half : i + half] for i in range(half, ROWS, BATCH)]
        began = time.perf_counter()
        written = 0
        for batch in work:
            written += (await store.write_batch(batch)).total_written
        seconds = time.perf_counter() - began
        return sum(len(b) for b in work) / seconds


async def write_sqlite() -> float:
    with tempfile.TemporaryDirectory() as directory:
        async with SQLiteStore(Path(directory) / "bench.sqlite") as store:
            work = batches(make_rows(ROWS))
            began = time.perf_counter()
            for batch in work:
                await store.write_batch(batch)
            return ROWS / (time.perf_counter() - began)


async def fresh_schema(url: str) -> str:
    """A URL of ``url``'s database with a new, empty schema of this process's own."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA bench_{os.getpid()}")
    finally:
        await conn.close()
    return f"{url}?search_path=bench_{os.getpid()}"


def child(kind: str, url: str) -> None:
    url = asyncio.run(fresh_schema(url))
    if kind == "floor":
        rate = asyncio.run(write_floor(url))
    elif kind == "store":
        rate = asyncio.run(write_store(url, replays=False))
    elif kind == "replays":
        rate = asyncio.run(write_store(url, replays=True))
    else:
        rate = asyncio.run(write_sqlite())
    print(json.dumps({"rows_per_second": rate}))


# ------------------------------------------------------------------------------- replicas


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that have exited, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(server: PostgresServer) -> float:
    """CPU of the cluster's postmaster and of every process it started (its backends)."""
    postmaster = int((server.directory / "data" / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as response:
        found: dict[str, Any] = json.loads(response.read())
        return found


def replicas_run(
    server: PostgresServer, count: int, warmup: float, window: float
) -> dict[str, float]:
    database = server.create_database("replicas")
    url = server.url(database)
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "polymarket_agents", "simulate", "--port", "0"),
            *("--rate", "0", "--markets", str(MARKETS), "--seed", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert sim.stdout is not None
    ws = gamma = ""
    while not (ws and gamma):
        line = sim.stdout.readline()
        if line.startswith("market channel"):
            ws = line.split(": ", 1)[1].strip()
        elif line.startswith("gamma"):
            gamma = line.split(":", 1)[1].strip().removesuffix("/markets")
    ports = [free_port() for _ in range(count)]
    services = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "polymarket_agents", "run", "--feed-url", ws),
                *("--gamma-url", gamma, "--market-count", str(MARKETS), "--db", url),
                *("--shard", f"{k}/{count}", "--http-port", str(port), "--live-view", "off"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for k, port in enumerate(ports)
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if all(status(p)["ready"] for p in ports):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the replicas did not get ready")
            time.sleep(0.2)
        time.sleep(warmup)

        def sample() -> tuple[float, int, int, list[float], float, float]:
            counters = [status(p)["runtime"] for p in ports]
            return (
                time.monotonic(),
                sum(int(c["events"]) for c in counters),
                sum(int(c["stored_rows"]) for c in counters),
                [cpu_seconds(s.pid) for s in services],
                cpu_seconds(sim.pid),
                postgres_cpu(server),
            )

        t0, e0, r0, c0, s0, p0 = sample()
        time.sleep(window)
        t1, e1, r1, c1, s1, p1 = sample()
        seconds = t1 - t0
        return {
            "events_per_second": (e1 - e0) / seconds,
            "rows_per_second": (r1 - r0) / seconds,
            "replica_cpu": sum(b - a for a, b in zip(c0, c1, strict=True)) / seconds,
            "simulator_cpu": (s1 - s0) / seconds,
            "postgres_cpu": (p1 - p0) / seconds,
        }
    finally:
        for service in services:
            service.terminate()
        for service in services:
            service.wait(30)
        sim.terminate()
        sim.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="replica window, seconds")
    parser.add_argument("--replica-runs", type=int, default=3)
    parser.add_argument("kind", nargs="?")
    parser.add_argument("url", nargs="?")
    args = parser.parse_args()
    if args.child:
        child(args.kind, args.url)
        return 0
    if find_bindir() is None:
        print("PostgreSQL server not installed: run `apt-get install -y postgresql`")
        return 1
    server = PostgresServer.start(durable=True)
    try:
        print(
            f"rows/s writing {ROWS:,} price changes in batches of {BATCH} (median of {args.runs})"
        )
        kinds = {
            "floor": "hand-written COPY loop (floor)",
            "store": "PostgresStore",
            "replays": "PostgresStore, half replays",
            "sqlite": "SQLiteStore",
        }
        # Interleaved rounds, each run a fresh process: a load that comes and goes on the
        # machine touches every configuration alike.
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.runs):
            for kind in kinds:
                result = median_of_runs(__file__, [kind, server.url()], 1)
                samples[kind].append(result["rows_per_second"])
        figures = {kind: statistics.median(values) for kind, values in samples.items()}
        for kind, label in kinds.items():
            print(
                f"  {label:34} {figures[kind]:>10,.0f} rows/s  "
                f"{figures[kind] / figures['floor']:5.2f}x floor",
                flush=True,
            )
        print(f"\nreplicas on one PostgreSQL ({MARKETS} markets, simulator flat out)")
        rounds: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for _ in range(args.replica_runs):
            for count in rounds:
                rounds[count].append(replicas_run(server, count, warmup=5.0, window=args.window))
        medians = {
            count: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            for count, runs in rounds.items()
        }
        for count, found in medians.items():
            print(
                f"  {count} replica{'s' if count > 1 else ' '} "
                f"{found['events_per_second']:>8,.0f} events/s "
                f"{found['rows_per_second']:>8,.0f} rows/s "
                f"{found['events_per_second'] / max(found['replica_cpu'], 1e-9):>8,.0f} "
                f"events per replica CPU-second; CPU (cores): replicas "
                f"{found['replica_cpu']:.2f}, simulator {found['simulator_cpu']:.2f}, "
                f"PostgreSQL {found['postgres_cpu']:.2f}",
                flush=True,
            )
        print(
            f"  2 replicas / 1 replica: "
            f"{medians[2]['events_per_second'] / medians[1]['events_per_second']:.2f}x events/s"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
