"""Replicas on one PostgreSQL: three shard holders and a hot standby, one holder killed.

Real processes throughout: a PostgreSQL server, the simulator (in a thread of this process,
so that its per-connection counts of what it sent can be read), and four services started
from the command line. ``kill -9`` of a holder must cost nothing but the rows it had in
flight: its standby takes the shard over within seconds and every other event the
simulator sent is stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from polymarket_agents.agents import Shard
from polymarket_agents.feed.simulator import MarketSimulator

from .._postgres import PostgresServer
from .conftest import START_TIMEOUT, ServiceProcess, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SHARDS = 3
MARKETS = 200
TRADE = "last_trade_price"
T = TypeVar("T")


class SimulatorThread:
    """A :class:`MarketSimulator` on an event loop of its own, in a daemon thread."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.sim = MarketSimulator(**options)
        self.call(self.sim.start)

    def call(self, work: Callable[[], Any]) -> Any:
        """Run ``work()`` (awaited if it returns an awaitable) on the simulator's loop."""

        async def run() -> Any:
            result = work()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        future: Future[Any] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(30)

    def close(self) -> None:
        self.call(self.sim.aclose)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    """200 markets at 200 ticks a second, with tradable dislocations."""
    sim = SimulatorThread(
        markets=MARKETS, event_rate=200.0, seed=11, dislocation_rate=0.05, idle_timeout=None
    )
    try:
        yield sim
    finally:
        sim.close()


def status(service: ServiceProcess) -> dict[str, Any]:
    code, body = service.get_json("/status")
    assert code in (200, 503)
    return dict(body)


def summary(service: ServiceProcess) -> dict[str, Any]:
    lines = [line for line in service.stdout.splitlines() if line.startswith('{"summary"')]
    assert len(lines) == 1, service.stdout
    found: dict[str, Any] = json.loads(lines[0])["summary"]
    return found


def rows(server: PostgresServer, database: str, sql: str) -> list[list[str]]:
    out = server.psql(sql, database)
    return [line.split("|") for line in out.splitlines() if line]


def test_a_killed_holder_is_replaced_by_its_standby_and_nothing_else_is_lost(
    postgres_server: PostgresServer, simulator: SimulatorThread, tmp_path: Path
) -> None:
    """Three shards and a standby; kill -9 the holder of shard 0 mid-run. The standby
    takes over within seconds; every trade event the simulator sent is stored exactly
    once, except those the killed holder had in flight (counted, and at most what it had
    received and not yet stored); no signal is recorded twice."""
    database = postgres_server.create_database("replicas")
    url = postgres_server.url(database)
    sim = simulator.sim

    def start(name: str, shard: str) -> ServiceProcess:
        directory = tmp_path / name
        directory.mkdir()
        args = ["run", "--feed-url", sim.ws_url, "--gamma-url", sim.http_url]
        args += ["--market-count", str(MARKETS), "--db", url, "--shard", shard]
        args += ["--http-port", "0", "--log-format", "json", "--grace-period", "15"]
        service = ServiceProcess(args, directory, env={"LOG_LEVEL": "INFO"})
        service.wait_url()
        return service

    holders = [start(f"holder-{k}", f"{k}/{SHARDS}") for k in range(SHARDS)]
    everyone = list(holders)
    try:
        for holder in holders:
            holder.wait_ready()
        standby = start("standby-0", f"0/{SHARDS}")
        everyone.append(standby)
        wait_for(lambda: status(standby)["service"]["shard_role"] == "standby", 10, "standby")
        assert standby.get_json("/readyz")[0] == 200  # standing by is its job

        # Let the holders trade and store for a while.
        def stored_trades(service: ServiceProcess) -> int:
            return int(status(service)["runtime"].get("stored_by_table", {}).get("trades", 0))

        wait_for(lambda: all(stored_trades(h) > 20 for h in holders), START_TIMEOUT, "trades")
        victim = holders[0]
        stored_before_kill = stored_trades(victim)
        before = {c.id: c for c in simulator.call(sim.connections)}
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        wait_for(lambda: status(standby)["service"]["shard_role"] == "holder", 30, "the takeover")
        takeover = time.monotonic() - killed_at
        standby.wait_ready()
        ready_after_kill = time.monotonic() - killed_at
        print(
            f"\nstandby took shard 0/3 over {takeover:.2f} s after kill -9 of its holder; "
            f"ready {ready_after_kill:.2f} s after"
        )
        assert takeover < 10.0
        killed_ids = {
            c.id for c in simulator.call(sim.connections) if c.id in before and not c.open
        }
        assert killed_ids, "the killed holder's connections should have closed"

        wait_for(lambda: stored_trades(standby) > 5, START_TIMEOUT, "the standby to store trades")
        # Quiesce: nothing more is sent, what was sent is taken in; then stop everyone.
        simulator.call(sim.pause)
        time.sleep(1.0)
        survivors = [*holders[1:], standby]
        for service in survivors:
            service.terminate()
        codes = [service.wait(30) for service in survivors]
        assert codes == [0, 0, 0], [s.stderr[-3000:] for s in survivors]
        summaries = [summary(service) for service in survivors]
        for found in summaries:
            assert found["lost_rows"] == 0
            assert found["rows_queued"] == found["stored_rows"] + found["duplicate_rows"]
        assert victim.process.poll() == -signal.SIGKILL
    finally:
        for service in everyone:
            service.kill()

    # What the simulator sent: trade events per connection, split by who received them.
    connections = simulator.call(sim.connections)
    newest_before = max(before)
    sent: Counter[str] = Counter()
    for connection in connections:
        group = (
            "killed"
            if connection.id in killed_ids
            else "standby"
            if connection.id > newest_before
            else "others"
        )
        sent[group] += connection.events_by_type.get(TRADE, 0)
    # What the database holds, per shard of the trade's market.
    shard0 = Shard(0, SHARDS)
    stored: Counter[str] = Counter()
    for market, count in rows(
        postgres_server, database, "SELECT market, count(*) FROM trades GROUP BY 1"
    ):
        stored["shard 0" if shard0.owns(market) else "others"] += int(count)
    # Shards 1 and 2 lost nothing and stored nothing twice.
    assert stored["others"] == sent["others"] > 0
    # Shard 0: all the standby received, all the killed holder stored; the difference is
    # what was in flight at the kill.
    in_flight = sent["killed"] + sent["standby"] - stored["shard 0"]
    print(
        f"trade events sent: {sent['killed']} to the killed holder, {sent['standby']} to its "
        f"standby, {sent['others']} to shards 1-2; stored for shard 0: {stored['shard 0']}; "
        f"in flight at the kill: {in_flight}"
    )
    assert 0 <= in_flight <= sent["killed"] - stored_before_kill

    # No signal was recorded twice, and every fill belongs to a recorded order.
    assert (
        rows(
            postgres_server,
            database,
            "SELECT signal_id FROM paper_orders WHERE signal_id IS NOT NULL "
            "GROUP BY 1 HAVING count(*) > 1",
        )
        == []
    )
    assert (
        rows(
            postgres_server,
            database,
            "SELECT f.order_id FROM fills f LEFT JOIN paper_orders o USING (order_id) "
            "WHERE o.order_id IS NULL",
        )
        == []
    )
    orders = rows(postgres_server, database, "SELECT count(*) FROM paper_orders")
    assert int(orders[0][0]) > 0

    # One account for all replicas: the fills never spent more than the starting cash, and
    # cash plus the cost of the positions held is the starting cash plus realized P&L.
    starting = Decimal(1000)
    cash = starting
    held: dict[str, tuple[Decimal, Decimal]] = {}  # token: (size, cost)
    realized = Decimal(0)
    fills = rows(
        postgres_server,
        database,
        "SELECT token_id, side, price, size, fee FROM fills ORDER BY timestamp_ms, id",
    )
    for token, side, price_text, size_text, fee_text in fills:
        price, size, fee = Decimal(price_text), Decimal(size_text), Decimal(fee_text)
        quantity, cost = held.get(token, (Decimal(0), Decimal(0)))
        if side == "BUY":
            cash -= price * size + fee
            held[token] = (quantity + size, cost + price * size + fee)
        else:
            basis = cost * size / quantity
            cash += price * size - fee
            realized += price * size - fee - basis
            held[token] = (quantity - size, cost - basis)
        assert cash >= 0, "two replicas spent the same cash"
    invested = sum((cost for _, cost in held.values()), Decimal(0))
    assert cash + invested == starting + realized
    print(
        f"shared account: {len(fills)} fills, cash {cash:.2f} + positions at cost "
        f"{invested:.2f} = {starting} + realized {realized:.2f}"
    )
