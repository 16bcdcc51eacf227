"""AgentsRuntime and run_market_agents: the health loop, readiness, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.agents import (
    AGENTS_SUPERVISOR,
    FEED_SUPERVISOR,
    HEALTH_TASK,
    INGESTION_TASK,
    MONITOR_SUPERVISOR,
    AgentsConfig,
    AgentsRuntime,
    monitor_task_name,
    resolve_markets,
    run_market_agents,
)
from polymarket_agents.core.async_utils import (
    ConfigurationError,
    Observer,
    TaskAlreadyRunningError,
    TaskFailure,
    TaskSupervisor,
    instant_policy,
)
from polymarket_agents.feed import MarketInfo
from polymarket_agents.storage import SQLiteStore, Table

from ._fixtures import (
    MakeRuntime,
    MakeSimulator,
    eventually,
    fast_config,
    make_runtime,
    make_simulator,
    stored,
    wait_ready,
)

__all__ = ["make_runtime", "make_simulator"]  # fixtures, used by name


async def test_the_health_loop_alerts_once_and_restarts_a_failed_monitor(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """A monitor whose feed fails for good stops with an error: the health loop logs its
    error and restart counts past the thresholds, calls the alert hook once, and restarts
    it from its factory after auto_restart_after."""
    sim = await make_simulator(markets=2, event_rate=100.0)
    alerts: list[str] = []
    config = fast_config(
        health_interval=0.02,
        error_threshold=0,
        restart_threshold=0,
        auto_restart_after=0.2,
        feed_policy=instant_policy(max_restarts=0),
        task_policy=instant_policy(max_restarts=0),
    )
    runtime = await make_runtime(sim, config=config, alert=alerts.append)
    await wait_ready(runtime)
    name = monitor_task_name(sim.markets()[0].condition_id)
    with caplog.at_level(logging.WARNING, "polymarket_agents.agents"):
        sim.drop_connections()
        await eventually(lambda: len(alerts) == 2)
        assert runtime.monitor_tasks.status(name) == "stopped"
        assert not runtime.readiness()[0]
        await eventually(lambda: runtime.auto_restarts == 2)
        await wait_ready(runtime)
        checks = runtime.health_checks
        await eventually(lambda: runtime.health_checks >= checks + 2)
    assert len(alerts) == 2
    assert alerts[0].startswith("task monitor_")
    assert "stopped with an error: FeedStopped" in alerts[0]
    messages = [record.getMessage() for record in caplog.records]
    assert f"task {name} has 1 errors" in messages
    assert f"task {name} restarted 1 times" in messages
    assert f"restarting task {name}, stopped with an error" in messages
    metrics = runtime.monitor_tasks.get_metrics()[name]
    assert (metrics["status"], metrics["restarts"]) == ("running", 1)


async def test_a_failing_alert_hook_is_logged_and_the_check_goes_on(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """The alert hook's own error is logged; the check still restarts the task."""
    sim = await make_simulator(markets=1, event_rate=100.0)

    def alert(message: str) -> None:
        raise RuntimeError("pager down")

    config = fast_config(
        auto_restart_after=0.0,
        feed_policy=instant_policy(max_restarts=0),
        task_policy=instant_policy(max_restarts=0),
    )
    runtime = await make_runtime(sim, config=config, alert=alert)
    await wait_ready(runtime)
    name = monitor_task_name(sim.markets()[0].condition_id)
    sim.drop_connections()
    await eventually(lambda: runtime.monitor_tasks.status(name) == "stopped")
    with caplog.at_level(logging.ERROR, "polymarket_agents.agents"):
        problems = await runtime.check_health()
    assert len(problems) == 1
    assert problems[0].startswith(f"task {name} stopped with an error: FeedStopped")
    assert any(r.getMessage() == "the alert hook raised" for r in caplog.records)
    assert runtime.auto_restarts == 1
    await wait_ready(runtime)


async def test_a_healthy_runtime_reports_no_problems(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """With every task running, a health check finds nothing and is ready, until another
    part holds a reason in readiness_checks (and again once it clears it)."""
    sim = await make_simulator(markets=2, event_rate=100.0)
    runtime = await make_runtime(sim)
    await wait_ready(runtime)
    assert await runtime.check_health() == []
    assert runtime.readiness() == (True, [])
    assert list(runtime.supervisor) == [AGENTS_SUPERVISOR]
    assert list(runtime.tree) == [INGESTION_TASK, FEED_SUPERVISOR, MONITOR_SUPERVISOR, HEALTH_TASK]
    assert set(runtime.monitor_tasks) == set(runtime.monitors)
    runtime.readiness_checks.set_reason("database", "database file x.sqlite vanished")
    assert runtime.readiness() == (False, ["database file x.sqlite vanished"])
    runtime.readiness_checks.clear_reason("database")
    assert runtime.readiness() == (True, [])


async def test_readiness_says_why_not(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """Not started, a feed reconnecting, stopped: each is reported in words."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    config = fast_config(feed_policy=instant_policy(backoff_seconds=0.3))
    runtime = await make_runtime(sim, config=config, start=False)
    assert runtime.readiness() == (False, ["the agents are not running"])
    await runtime.start()
    await wait_ready(runtime)
    sim.drop_connections(abort=True)
    name = next(iter(runtime.monitors))
    await eventually(lambda: f"{name}: feed not connected" in runtime.readiness()[1])
    await wait_ready(runtime)
    await runtime.stop()
    assert runtime.readiness() == (False, ["the agents are not running"])


async def test_a_silent_feed_is_not_ready_though_pongs_arrive(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """Past ready_silence without market data on any connection, readiness says the feed is
    silent while the connections stay open and PONGs keep coming; data brings it back."""
    sim = await make_simulator(markets=2, event_rate=200.0)
    # A connection per market: the silence must be that of every connection.
    config = fast_config(ready_silence=0.3, silence_timeout=30.0, assets_per_connection=2)
    runtime = await make_runtime(sim, config=config)
    await wait_ready(runtime)
    await sim.pause()
    assert runtime.feed is not None
    feeds = [runtime.feed]
    assert runtime.feed.stats.pool == 2
    pongs = sum(feed.stats.pongs for feed in feeds)
    await eventually(lambda: any(r.startswith("feed silent") for r in runtime.readiness()[1]))
    ready, reasons = runtime.readiness()
    assert not ready
    assert len(reasons) == 1
    assert reasons[0].startswith("feed silent: no market data for 0.")
    assert reasons[0].endswith("on any of 2 open connection(s) (limit 0.3 s)")
    assert all(feed.connected for feed in feeds)
    await eventually(lambda: sum(feed.stats.pongs for feed in feeds) > pongs)
    sim.resume()
    await wait_ready(runtime)


async def test_failing_writes_are_not_ready_within_the_stall_limit(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """A batch that cannot be stored (another connection holds the write lock) makes the
    runtime not ready once it has waited ready_write_stall, naming the error, well before
    the queue fills; ready again once the lock goes and the batch is stored."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    path = tmp_path / "locked.sqlite"
    config = fast_config(ready_write_stall=0.3)
    # A store that shares its file, so that another connection can lock it.
    store = SQLiteStore(path, busy_timeout=0.02, exclusive=False)
    runtime = await make_runtime(sim, config=config, store=store)
    await wait_ready(runtime)
    blocker = sqlite3.connect(path, timeout=5)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        locked = asyncio.get_running_loop().time()
        await eventually(lambda: not runtime.readiness()[0])
        assert asyncio.get_running_loop().time() - locked < 2.0
        (reason,) = runtime.readiness()[1]
        assert reason.startswith("ingestion: a batch has waited 0.")
        assert "s to be stored (writes failing: " in reason
        assert "locked" in reason
        assert runtime.stats().queue_depth < 0.9 * runtime.queue.maxsize
    finally:
        blocker.rollback()
        blocker.close()
    await wait_ready(runtime)
    assert runtime.worker.writing_error is None


async def test_a_vanished_database_is_not_ready_and_its_rows_count_as_lost(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """rm -rf of the database directory: readiness names the path within seconds, and
    from then on nothing counts as stored; every row taken on is lost or pending, and the
    rows still add up."""
    sim = await make_simulator(markets=2, event_rate=200.0)
    path = tmp_path / "data" / "agents.sqlite"
    runtime = await make_runtime(sim, store_path=path)
    await wait_ready(runtime)
    await eventually(lambda: runtime.stats().stored_rows > 0)
    await asyncio.to_thread(shutil.rmtree, path.parent)
    await eventually(lambda: not runtime.readiness()[0], timeout=5.0)
    assert any(f"database {path} vanished" in r for r in runtime.readiness()[1])
    await runtime.stop(timeout=2.0)
    stats = runtime.stats()
    assert stats.database_lost is not None
    assert (stats.stored_rows, stats.duplicate_rows) == (0, 0)
    assert stats.rows_queued > 0
    assert stats.rows_queued == stats.invalid_rows + stats.pending_rows + stats.lost_rows
    assert not await asyncio.to_thread(path.parent.exists)


async def test_stop_closes_sockets_drains_the_queue_and_is_idempotent(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """stop() stops the monitors (their sockets close), drains the queue into the
    database and closes it; a second stop does nothing."""
    sim = await make_simulator(markets=3, event_rate=500.0)
    runtime = await make_runtime(sim)
    await wait_ready(runtime)
    await eventually(lambda: runtime.stats().rows_queued >= 300)
    await runtime.stop(timeout=5.0)
    await runtime.stop()
    assert all(m["status"] == "stopped" for m in runtime.tree.get_metrics().values())
    assert {runtime.tree.status(name) for name in runtime.tree} == {"stopped"}
    await eventually(lambda: not any(c.open for c in sim.connections()))
    stats = runtime.stats()
    assert stats.queue_depth == 0
    assert runtime.store.connection is None
    counts = await stored(tmp_path / "agents.sqlite")
    assert counts[Table.PRICE_CHANGES] == stats.stored_by_table[Table.PRICE_CHANGES]
    assert stats.rows_queued == stats.stored_rows
    with pytest.raises(RuntimeError):
        await runtime.start()


async def test_a_shared_supervisor_keeps_its_other_tasks(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """Under a supervisor the caller owns, stop() stops this runtime's tasks only, and a
    name clash is refused."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    async with TaskSupervisor(policy=instant_policy()) as supervisor:
        await supervisor.start_task("other", lambda: asyncio.sleep(3600))
        runtime = await make_runtime(sim, supervisor=supervisor)
        await wait_ready(runtime)
        clash = await make_runtime(
            sim, supervisor=supervisor, store_path=tmp_path / "other.sqlite", start=False
        )
        with pytest.raises(TaskAlreadyRunningError):
            await clash.start()
        await runtime.stop()
        assert supervisor.status("other") == "running"


async def test_run_market_agents_runs_until_shutdown_is_signalled(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """The seed's entry point: markets given by condition id and slug are looked up at
    the simulator's Gamma listing; a shutdown signalled from another thread stops
    everything gracefully and the data is in the database."""
    sim = await make_simulator(markets=3, event_rate=300.0)
    first, second, _ = sim.markets()
    path = tmp_path / "seed.sqlite"
    supervisor = TaskSupervisor()
    task = asyncio.create_task(
        run_market_agents(
            [first.condition_id, second.slug],
            feed_url=sim.ws_url,
            gamma_url=sim.http_url,
            store_path=path,
            config=fast_config(),
            supervisor=supervisor,
        )
    )
    # The runtime's tree is a child of the caller's supervisor: its tasks by path.
    paths = [
        f"{AGENTS_SUPERVISOR}/{MONITOR_SUPERVISOR}/{monitor_task_name(m.condition_id)}"
        for m in (first, second)
    ]

    def statuses() -> set[str]:
        metrics = supervisor.get_metrics()
        return {metrics[p]["status"] if p in metrics else "absent" for p in paths}

    await eventually(lambda: statuses() == {"running"})
    await eventually(lambda: len(sim.connections()) == 1)  # both markets on one connection
    await asyncio.sleep(0.2)
    threading.Thread(target=supervisor.signal_shutdown).start()
    async with asyncio.timeout(5.0):
        await task
    assert statuses() == {"stopped"}
    counts = await stored(path)
    assert counts[Table.MARKETS] == 2
    assert counts[Table.PRICE_CHANGES] > 0


async def test_cancelling_run_market_agents_stops_gracefully(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """Cancelling the seed's entry point stops the agents and still drains into SQLite."""
    sim = await make_simulator(markets=1, event_rate=300.0)
    path = tmp_path / "cancel.sqlite"
    task = asyncio.create_task(
        run_market_agents(sim.markets(), feed_url=sim.ws_url, store_path=path, config=fast_config())
    )
    await eventually(lambda: bool(sim.connections()) and sim.connections()[0].events > 50)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not sim.connections()[0].open)
    assert (await stored(path))[Table.PRICE_CHANGES] > 0


async def test_unknown_market_ids_are_refused(make_simulator: MakeSimulator) -> None:
    """An id matching no binary market is a configuration error, in words."""
    sim = await make_simulator(markets=1, event_rate=None)
    market = sim.markets()[0]
    found = await resolve_markets([market.yes_token, market], gamma_url=sim.http_url)
    assert [m.condition_id for m in found] == [market.condition_id] * 2
    with pytest.raises(ConfigurationError, match="no binary market '0xdead'"):
        await resolve_markets(["0xdead"], gamma_url=sim.http_url)


@pytest.mark.parametrize(
    "changes",
    [
        {"health_interval": 0},
        {"queue_size": 0},
        {"edge_threshold": Decimal(-1)},
        {"silence_timeout": 0},
        {"max_notional": Decimal(0)},
        {"ready_silence": 0},
        {"ready_write_stall": 0},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object]) -> None:
    """Zero intervals and sizes, negative thresholds are configuration errors."""
    with pytest.raises(ConfigurationError):
        AgentsConfig(**changes)  # type: ignore[arg-type]


def test_a_runtime_needs_distinct_markets(tmp_path: Path) -> None:
    """No markets, or one listed twice, is refused before anything starts."""
    market = MarketInfo(
        condition_id="0x01",
        question="?",
        slug="s",
        yes_token="1",
        no_token="2",
        tick_size=Decimal("0.01"),
        min_size=Decimal(5),
    )
    url = "ws://127.0.0.1:1/ws/market"
    for markets in ([], [market, market]):
        with pytest.raises(ConfigurationError):
            AgentsRuntime(feed_url=url, markets=markets, store_path=tmp_path / "x.sqlite")


def test_agents_import_no_higher_layer() -> None:
    """Importing the agents pulls in no service or CLI module."""
    code = (
        "import sys, polymarket_agents.agents\n"
        "print(sorted(m for m in sys.modules if m.startswith(('polymarket_agents.service', "
        "'polymarket_agents.cli'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("shared", [True, False], ids=["pooled", "socket-per-market"])
async def test_monitors_share_one_pooled_feed(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, shared: bool
) -> None:
    """Six markets at four assets per connection take three sockets, the monitors attach
    per market and each sees its own events; without the shared feed each monitor opens a
    socket of its own, as the seed sketches it."""
    sim = await make_simulator(markets=6, event_rate=300.0)
    config = fast_config(assets_per_connection=4, shared_feed=shared)
    runtime = await make_runtime(sim, config=config)
    await wait_ready(runtime)
    sockets = [c for c in sim.connections() if c.open]
    assert len(sockets) == (3 if shared else 6)
    assert (runtime.feed is not None) is shared
    if runtime.feed is not None:
        assert runtime.feed.stats.pool == 3
    await eventually(lambda: all(m.stats.events >= 5 for m in runtime.monitors.values()))
    assert runtime.readiness() == (True, [])
    assert runtime.stats().monitors_ready == 6
    await runtime.stop()


async def test_a_monitor_without_market_events_for_its_heartbeat_is_restarted_as_stalled(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """With monitor_heartbeat, a monitor beats per market event; when the market goes quiet
    for longer, its supervisor restarts it and counts a stall."""
    sim = await make_simulator(markets=1, event_rate=100.0)
    runtime = await make_runtime(sim, config=fast_config(monitor_heartbeat=0.3))
    await wait_ready(runtime)
    name = monitor_task_name(sim.markets()[0].condition_id)
    await sim.pause()
    # The stall is counted as the task is cancelled, the restart once it is running again.
    await eventually(
        lambda: (
            runtime.monitor_tasks.get_metrics()[name]["stalls"] >= 1
            and runtime.monitor_tasks.get_metrics()[name]["restarts"] >= 1
        )
    )
    sim.resume()
    metrics = runtime.monitor_tasks.get_metrics()[name]
    assert (metrics["last_error"] or "").startswith("StalledError")


def test_the_monitor_heartbeat_must_be_positive() -> None:
    """A zero heartbeat would restart every monitor at once."""
    with pytest.raises(ConfigurationError, match="monitor_heartbeat"):
        AgentsConfig(monitor_heartbeat=0)


async def test_the_tree_stops_in_reverse_order_monitors_and_sockets_before_the_drain(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """When the writer begins its drain, the health loop and every monitor have stopped and
    the feed's sockets are closed: the tree stops in reverse order of dependence."""
    sim = await make_simulator(markets=3, event_rate=300.0)
    runtime = await make_runtime(sim)
    await wait_ready(runtime)
    await eventually(lambda: runtime.stats().rows_queued >= 100)
    seen: list[tuple[set[str], str, bool, int]] = []

    class AtTheDrain(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("ingestion worker stopping"):
                monitors: set[str] = {runtime.monitor_tasks.status(n) for n in runtime.monitors}
                feed = runtime.feed
                assert feed is not None
                seen.append(
                    (
                        monitors,
                        runtime.tree.status(HEALTH_TASK),
                        feed.connected,
                        len(feed.supervisor),
                    )
                )

    handler = AtTheDrain()
    logger = logging.getLogger("polymarket_agents.agents")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        await runtime.stop(timeout=5.0)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == [({"stopped"}, "stopped", False, 0)]
    stats = runtime.stats()
    assert stats.rows_queued == stats.stored_rows + stats.duplicate_rows


async def test_failures_anywhere_in_the_tree_reach_the_observer_of_the_supervisor_above(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """The feed's supervisor has an observer of its own (it learns of connections given
    up); the failures of its connections still reach the observer of the supervisor the
    runtime runs under, by path, as do the monitors'."""
    sim = await make_simulator(markets=2, event_rate=100.0)
    failures: list[TaskFailure] = []

    class Recorder(Observer):
        def on_failure(self, event: TaskFailure) -> None:
            failures.append(event)

    async with TaskSupervisor(observer=Recorder()) as supervisor:
        runtime = await make_runtime(sim, supervisor=supervisor)
        await wait_ready(runtime)
        sim.drop_connections()
        await eventually(
            lambda: any(e.task.startswith("agents/feed/market-feed-") for e in failures)
        )
        await wait_ready(runtime)
        metrics = supervisor.get_metrics()
        connection = next(p for p in metrics if p.startswith("agents/feed/"))
        assert metrics[connection]["restarts"] >= 1
        assert metrics[connection]["status"] == "running"
        await runtime.stop()
