"""The service in process, as a library user runs it: run_service, start-up, market choice."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import MarketInfo
from polymarket_agents.service import Phase, Service, ServiceConfig, run_service, select_markets


def _market(n: int) -> MarketInfo:
    return MarketInfo(
        condition_id=f"0x{n:064x}",
        question=f"question {n}?",
        slug=f"market-{n}",
        yes_token=f"{n}1",
        no_token=f"{n}2",
        tick_size=Decimal("0.01"),
        min_size=Decimal(5),
        id=str(n),
    )


LISTED = [_market(n) for n in range(1, 8)]


def test_select_takes_the_first_listed_by_default() -> None:
    """Without names, the first `count` listed markets are monitored."""
    assert select_markets(LISTED, (), 3) == LISTED[:3]


def test_select_finds_markets_by_any_id_once() -> None:
    """A slug, condition id, Gamma id or token id picks a market; repeats collapse."""
    wanted = ("market-5", f"0x{2:064x}", "7", "52", "51")
    assert select_markets(LISTED, wanted, 1) == [LISTED[4], LISTED[1], LISTED[6]]


def test_select_names_what_is_missing() -> None:
    """Unknown names, or an empty listing, are configuration errors that say which."""
    with pytest.raises(ConfigurationError, match="not listed: nope, 0xdead"):
        select_markets(LISTED, ("market-1", "nope", "0xdead"), 5)
    with pytest.raises(ConfigurationError, match="listing is empty"):
        select_markets([], (), 5)


@pytest.mark.slow
async def test_run_service_for_a_duration(tmp_path: Path) -> None:
    """run_service() on the embedded defaults stops itself after `duration` and stores rows."""
    config = ServiceConfig(
        duration=1.0, http_port=0, sim_rate=50, db_path=tmp_path / "lib.sqlite", market_count=2
    )
    summary = await run_service(config, install_signal_handlers=False)
    assert summary.exit_code == 0, summary.failure
    assert summary.reason == "duration"
    assert summary.markets == 2
    assert summary.events > 0
    assert summary.stored_rows > 0
    assert summary.lost_rows == 0
    assert (tmp_path / "lib.sqlite").exists()
    assert "exit code: 0" in summary.lines()
    assert summary.as_dict()["runtime"]["markets"] == 2


async def test_a_signal_during_start_up_stops_cleanly(tmp_path: Path) -> None:
    """Shutdown asked before start-up finishes cancels it and closes what had started."""
    service = Service(
        ServiceConfig(http_port=0, db_path=tmp_path / "early.sqlite"),
        install_signal_handlers=False,
    )
    service.supervisor.signal_shutdown()
    summary = await service.run()
    assert summary.exit_code == 0
    assert summary.reason == "signal during start-up"
    assert service.state.phase is Phase.STOPPED
    assert all(m["status"] == "stopped" for m in service.supervisor.get_metrics().values())


async def test_a_busy_http_port_fails_start_up_with_a_hint(tmp_path: Path) -> None:
    """A port in use ends start-up with exit 1 and a message naming the port and the fix."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = ServiceConfig(http_port=port, db_path=tmp_path / "busy.sqlite")
        summary = await run_service(config, install_signal_handlers=False)
    assert summary.exit_code == 1
    assert summary.reason == "start-up failed"
    assert summary.failure is not None
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in summary.failure
    assert "--http-port" in summary.failure


async def test_an_unreachable_listing_fails_start_up_with_a_hint(tmp_path: Path) -> None:
    """A market listing that does not answer ends start-up with exit 1, naming the URL."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = ServiceConfig(
        feed_url=f"ws://127.0.0.1:{port}/ws/market",
        gamma_url=f"http://127.0.0.1:{port}",
        http_enabled=False,
        db_path=tmp_path / "none.sqlite",
    )
    summary = await run_service(config, install_signal_handlers=False)
    assert summary.exit_code == 1
    assert summary.failure is not None
    assert summary.failure.startswith(f"cannot list markets at http://127.0.0.1:{port}/markets")
    assert not (tmp_path / "none.sqlite").exists()


async def test_readyz_and_status_carry_a_reason_any_part_holds(tmp_path: Path) -> None:
    """A reason held in the service's readiness checks makes /readyz 503 and /status say
    why, next to the agents' own; clearing it makes the service ready again."""
    config = ServiceConfig(http_port=0, db_path=tmp_path / "ready.sqlite", market_count=2)
    service = Service(config, install_signal_handlers=False)
    task = asyncio.create_task(service.run())
    state = service.state
    try:
        async with asyncio.timeout(20):
            while not state.readiness()[0]:
                assert not task.done()
                await asyncio.sleep(0.02)
        assert state.http_url is not None
        state.readiness_checks.set_reason("backup", "a backup holds the database")
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, Any]:
                async with session.get(f"{state.http_url}{path}") as response:
                    return response.status, await response.json()

            async def answered(path: str, status: int) -> Any:
                # Readiness is served from an answer at most a quarter of a second old.
                async with asyncio.timeout(5):
                    while (got := await get(path))[0] != status:
                        await asyncio.sleep(0.05)
                return got[1]

            body = await answered("/readyz", 503)
            assert body == {"ready": False, "reasons": ["a backup holds the database"]}
            status = (await get("/status"))[1]
            assert (status["ready"], status["reasons"]) == (False, ["a backup holds the database"])
            state.readiness_checks.clear_reason("backup")
            await answered("/readyz", 200)
    finally:
        service.supervisor.signal_shutdown()
        summary = await task
    assert summary.exit_code == 0, summary.failure


async def test_runs_a_users_strategy_with_options(tmp_path: Path) -> None:
    """--strategy and --strategy-option: the example strategy runs with its options."""
    config = ServiceConfig(
        duration=1.0,
        http_enabled=False,
        sim_rate=50,
        db_path=tmp_path / "mine.sqlite",
        market_count=2,
        strategy="examples.mean_reversion:MeanReversion",
        strategy_options=("window=5", "threshold=0.02"),
    )
    service = Service(config, install_signal_handlers=False)
    summary = await service.run()
    assert summary.exit_code == 0, summary.failure
    assert summary.events > 0
    lines = summary.lines()
    assert any(line.startswith("this run: fills ") for line in lines)
    assert any(line.startswith("account 'default', every run: fills ") for line in lines)
    runtime = service.state.runtime
    assert runtime is not None
    strategy = runtime.strategy  # type: ignore[attr-defined]
    assert (type(strategy).__name__, strategy.window, strategy.threshold) == (
        "MeanReversion",
        5,
        Decimal("0.02"),
    )


async def test_a_strategy_that_cannot_load_fails_start_up_with_exit_2(tmp_path: Path) -> None:
    """An unknown option is a configuration problem: exit 2, the known options named."""
    config = ServiceConfig(
        http_enabled=False,
        db_path=tmp_path / "bad.sqlite",
        strategy="examples.mean_reversion:MeanReversion",
        strategy_options=("windw=5",),
    )
    summary = await run_service(config, install_signal_handlers=False)
    assert summary.exit_code == 2
    assert summary.failure is not None
    assert "has no option 'windw' (its options: size, threshold, window)" in summary.failure


async def test_markets_all_follows_the_filtered_universe(tmp_path: Path) -> None:
    """--markets all monitors every listed market passing the filters, on pooled
    connections, and follows the universe (the universe task runs)."""
    config = ServiceConfig(
        duration=1.5,
        http_enabled=False,
        sim_rate=50,
        sim_markets=12,
        markets=("all",),
        tag="politics",
        assets_per_connection=4,
        db_path=tmp_path / "all.sqlite",
    )
    service = Service(config, install_signal_handlers=False)
    summary = await service.run()
    assert summary.exit_code == 0, summary.failure
    assert summary.markets == 3  # one market in four carries the politics tag
    assert "universe" in service.state.task_metrics()
    assert summary.runtime is not None
    assert summary.runtime["markets_retired"] == 0
    assert summary.lost_rows == 0


async def test_a_named_account_with_its_own_cash(tmp_path: Path) -> None:
    """--account and --starting-cash: the run trades the named account from its cash; the
    summary says which account its totals are of."""
    db = tmp_path / "named.sqlite"
    config = ServiceConfig(
        duration=1.0,
        http_enabled=False,
        sim_rate=50,
        sim_dislocation_rate=0.2,
        db_path=db,
        market_count=2,
        account="alice",
        starting_cash=Decimal(300),
        max_exposure=Decimal(200),
    )
    summary = await run_service(config, install_signal_handlers=False)
    assert summary.exit_code == 0, summary.failure
    assert summary.account == "alice"
    assert summary.cash is not None
    assert summary.cash <= 300
    assert "account 'alice', every run:" in "\n".join(summary.lines())
    from polymarket_agents.storage import SQLiteStore

    async with SQLiteStore(db) as store:
        names = {a.name: a for a in await store.accounts()}
        assert names["alice"].starting_cash == 300
        assert names["alice"].settings["max_exposure"] == "200"
        assert {f.account_id for f in await store.fills(names["alice"].id)} <= {names["alice"].id}
        assert await store.fills(1) == []


async def _running(config: ServiceConfig) -> tuple[Service, asyncio.Task[Any]]:
    """A service started in the background, once it runs; the task returns its summary."""
    service = Service(config, install_signal_handlers=False)
    task = asyncio.create_task(service.run())
    async with asyncio.timeout(20):
        while service.state.phase is not Phase.RUNNING:
            assert not task.done()
            await asyncio.sleep(0.02)
    return service, task


def hold_the_loop() -> None:
    """A blocking call on the service's loop, as a mistake in a strategy would make."""
    time.sleep(0.8)


@pytest.mark.slow
async def test_a_hold_of_the_loop_is_counted_on_metrics_and_status(tmp_path: Path) -> None:
    """The loop watchdog runs with the service (0.1 s by default): a 0.8 s blocking call is
    counted on /metrics (holds, seconds held, the longest, the threshold) and /status, which
    names where the loop was held."""
    config = ServiceConfig(http_port=0, db_path=tmp_path / "held.sqlite", market_count=2)
    assert config.loop_hold_threshold == 0.1
    service, task = await _running(config)
    state = service.state
    try:
        hold_the_loop()
        await asyncio.sleep(1.1)  # past the age of the snapshots /metrics and /status serve
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{state.http_url}/metrics") as response:
                text = await response.text()
            async with session.get(f"{state.http_url}/status") as response:
                status = (await response.json())["service"]
    finally:
        service.supervisor.signal_shutdown()
        summary = await task
    assert summary.exit_code == 0, summary.failure

    def sample(name: str) -> float:
        found = re.search(rf"^polymarket_agents_{name} (\S+)$", text, re.M)
        assert found is not None, name
        return float(found.group(1))

    # Other holds may add to the counts on a loaded machine: at least ours is there.
    assert sample("loop_holds_total") >= 1
    assert sample("loop_held_seconds_total") >= 0.6
    assert sample("loop_hold_longest_seconds") >= 0.6
    assert sample("loop_hold_threshold_seconds") == 0.1
    assert status["loop_holds"] >= 1
    assert status["loop_hold_longest_seconds"] >= 0.6
    assert status["loop_hold_threshold"] == 0.1
    assert status["loop_hold_longest_at"].endswith("in hold_the_loop")


async def test_the_loop_watchdog_can_be_turned_off(tmp_path: Path) -> None:
    """loop_hold_threshold=None: no watchdog, and /status says so."""
    config = ServiceConfig(
        duration=0.5,
        http_enabled=False,
        loop_hold_threshold=None,
        db_path=tmp_path / "unwatched.sqlite",
        market_count=1,
    )
    service = Service(config, install_signal_handlers=False)
    summary = await service.run()
    assert summary.exit_code == 0, summary.failure
    assert service.state.watchdog is None
    assert service.state.service_counters()["loop_hold_threshold"] is None


async def test_a_retired_markets_counts_stay_in_status_metrics_and_summary(
    tmp_path: Path,
) -> None:
    """A market retired while running leaves the task list of /status and /metrics (its
    task is forgotten), while the totals people read keep what it counted: restarts in
    /metrics and the summary, events and rows (every row queued is stored, or was there
    already)."""
    from polymarket_agents.agents import AgentsRuntime, monitor_task_name
    from polymarket_agents.service._metrics import service_registry

    config = ServiceConfig(http_enabled=False, sim_rate=50, db_path=tmp_path / "r.sqlite")
    service, task = await _running(config)
    state = service.state
    try:
        runtime = state.runtime
        assert isinstance(runtime, AgentsRuntime)
        gone = next(iter(runtime.monitored))
        name = monitor_task_name(gone)
        await runtime.monitor_tasks.restart_task(name)
        monitor = runtime.monitors[name]
        async with asyncio.timeout(10):
            while monitor.stats.events < 3:
                await asyncio.sleep(0.02)
        assert await runtime.retire_market(gone)
        assert name not in state.status()["tasks"]
        samples = [s for f in service_registry(state).collect() for s in f.samples]
        assert not [s for s in samples if s.labels.get("task") == name]
        value = {s.name: s.value for s in samples if not s.labels}
        assert value["polymarket_agents_retired_task_restarts_total"] == 1
        assert value["polymarket_agents_monitor_restarts_total"] >= 1
        assert value["polymarket_agents_events_total"] >= monitor.stats.events
    finally:
        service.supervisor.signal_shutdown()
        summary = await task
    assert summary.exit_code == 0, summary.failure
    forgotten = service.supervisor.get_metrics()
    assert summary.restarts == sum(m["restarts"] for m in forgotten.values()) + 1
    assert summary.runtime is not None
    assert summary.runtime["markets_retired"] == 1
    assert summary.events == monitor.stats.events + sum(
        m.stats.events for m in runtime.monitors.values()
    )
    # A restarted monitor may take an event again (a duplicate, not a loss).
    assert summary.lost_rows == summary.invalid_rows == 0
    assert summary.rows_queued == summary.stored_rows + summary.duplicate_rows
