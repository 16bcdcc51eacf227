"""Following the universe: Gamma listing with filters, new markets picked up, resolved and
delisted ones retired, settled when Gamma reports them resolved, against the simulator's
market channel and Gamma listing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.agents import (
    BUY,
    UNIVERSE_TASK,
    AgentsRuntime,
    OrderArgs,
    OrderType,
    PaperBroker,
    UniverseConfig,
    monitor_task_name,
)
from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import MarketFilter, list_universe
from polymarket_agents.storage import SQLiteStore

from ._fixtures import (
    MakeRuntime,
    MakeSimulator,
    eventually,
    make_runtime,
    make_simulator,
    wait_ready,
)

__all__ = ["make_runtime", "make_simulator"]  # fixtures, used by name

D = Decimal


async def test_the_listing_pages_through_gamma_and_applies_every_filter(
    make_simulator: MakeSimulator,
) -> None:
    """Every tradable market, in order, in pages; each filter narrows it the same way
    whether Gamma applies it or only the client does."""
    sim = await make_simulator(markets=23, event_rate=None)
    everything = await list_universe(sim.http_url, page_size=5)
    assert [m.condition_id for m in everything] == [m.condition_id for m in sim.markets()]
    crypto = await list_universe(sim.http_url, MarketFilter(tag="crypto"), page_size=5)
    assert crypto
    assert all("crypto" in m.tags for m in crypto)
    assert len(crypto) == len([m for m in everything if "21" in m.tags])
    by_id = await list_universe(sim.http_url, MarketFilter(tag="21"))
    assert [m.condition_id for m in by_id] == [m.condition_id for m in crypto]
    early = MarketFilter(end_before=datetime(2027, 2, 1, tzinfo=UTC))
    assert [m.end_date[:10] for m in await list_universe(sim.http_url, early)] == [
        "2027-01-01",
        "2027-01-08",
        "2027-01-15",
        "2027-01-22",
        "2027-01-29",
    ]
    liquid = sorted(m.liquidity for m in everything)[len(everything) // 2]
    rich = await list_universe(sim.http_url, MarketFilter(min_liquidity=liquid))
    assert rich
    assert all(m.liquidity >= liquid for m in rich)
    assert len(rich) < len(everything)
    assert await list_universe(sim.http_url, MarketFilter(min_volume=Decimal(10**12))) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"min_liquidity": Decimal(-1)},
        {"tag": " "},
        {"end_after": datetime(2027, 1, 1)},
        {
            "end_after": datetime(2028, 1, 1, tzinfo=UTC),
            "end_before": datetime(2027, 1, 1, tzinfo=UTC),
        },
    ],
)
def test_bad_filters_are_configuration_errors(bad: dict[str, object]) -> None:
    """A filter that cannot mean anything is refused when it is made."""
    with pytest.raises(ConfigurationError):
        MarketFilter(**bad)  # type: ignore[arg-type]


async def _inactive(path: Path, condition_id: str) -> bool:
    async with SQLiteStore(path) as store:
        connection = store.connection
        assert connection is not None
        async with connection.execute(
            "SELECT active FROM markets WHERE condition_id = ?", (condition_id,)
        ) as cursor:
            row = await cursor.fetchone()
    return row is not None and not row[0]


async def test_new_markets_are_picked_up_and_resolved_ones_retired(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """new_market adds a monitor for a market Gamma lists and the filter accepts;
    market_resolved retires its market (monitor stopped, assets unsubscribed, inactive row
    stored), without a reconnect."""
    sim = await make_simulator(markets=4, event_rate=200.0)
    universe = UniverseConfig(gamma_url=sim.http_url, refresh_interval=3600.0)
    markets = await list_universe(sim.http_url)
    runtime = await make_runtime(sim, markets=markets, universe=universe)
    await wait_ready(runtime)
    assert UNIVERSE_TASK in runtime.tree
    feed = runtime.feed
    assert feed is not None

    new = sim.add_market()
    await eventually(lambda: new.condition_id in runtime.monitored)
    await wait_ready(runtime)
    monitor = runtime.monitors[monitor_task_name(new.condition_id)]
    await eventually(lambda: monitor.stats.events >= 3)

    gone = markets[1]
    sim.resolve_market(gone.condition_id)
    await eventually(lambda: gone.condition_id not in runtime.monitored)
    assert gone.yes_token not in feed.asset_ids
    assert monitor_task_name(gone.condition_id) not in runtime.monitor_tasks  # forgotten
    await wait_ready(runtime)
    stats = runtime.stats()
    assert (stats.markets, stats.markets_added, stats.markets_retired) == (4, 1, 1)
    assert feed.stats.reconnects == 0
    await runtime.stop()
    assert await _inactive(tmp_path / "agents.sqlite", gone.condition_id)
    assert runtime.stats().lost_rows == 0


async def test_a_retired_market_is_forgotten_and_its_counts_stay_in_the_totals(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """A retired market's monitor task is deleted from the supervisor once stopped (a
    universe churning for days does not grow /status), and its monitor dropped; what it
    counted stays in the totals: events, rows (every row queued is stored), restarts.
    The market can come back under the same task name, counted afresh."""
    sim = await make_simulator(markets=3, event_rate=300.0)
    runtime = await make_runtime(sim)
    await wait_ready(runtime)
    gone = sim.markets()[0]
    name = monitor_task_name(gone.condition_id)
    await runtime.monitor_tasks.restart_task(name)
    monitor = runtime.monitors[name]
    await eventually(lambda: monitor.stats.events >= 5)

    assert await runtime.retire_market(gone.condition_id)
    assert name not in runtime.monitor_tasks
    assert all(not path.endswith(name) for path in runtime.task_names)
    assert name not in runtime.monitors
    stats = runtime.stats()
    live = [m.stats for m in runtime.monitors.values()]
    assert stats.events == monitor.stats.events + sum(s.events for s in live)
    assert (stats.markets, stats.markets_retired) == (2, 1)
    assert (stats.monitor_restarts, stats.retired_task_restarts) == (1, 1)

    assert await runtime.add_markets([gone]) == [gone]
    back = runtime.monitors[name]
    assert back is not monitor
    await eventually(lambda: back.stats.events >= 3)
    assert runtime.monitor_tasks.status(name) == "running"
    assert runtime.stats().monitor_restarts == 1  # the retired task's; the new one has none
    await runtime.stop()
    stats = runtime.stats()
    assert stats.events == monitor.stats.events + sum(
        m.stats.events for m in runtime.monitors.values()
    )
    assert stats.rows_queued == stats.stored_rows + stats.duplicate_rows
    assert (stats.pending_rows, stats.lost_rows) == (0, 0)


async def test_a_refresh_adds_what_gamma_lists_and_retires_what_it_no_longer_does(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """Without any announcement, a refresh adds new listed markets that pass the filter
    and retires monitored markets no longer listed; a market outside the filter is never
    added."""
    sim = await make_simulator(markets=8, event_rate=200.0)
    politics = MarketFilter(tag="politics")
    universe = UniverseConfig(
        gamma_url=sim.http_url, market_filter=politics, refresh_interval=3600.0
    )
    markets = await list_universe(sim.http_url, politics)
    assert len(markets) == 2
    runtime = await make_runtime(sim, markets=markets, universe=universe)
    await wait_ready(runtime)
    follower = runtime.universe
    assert follower is not None
    # Quietly (no event on the channel): four new markets, one of them in politics.
    added = [sim.universe.add_market()[0] for _ in range(4)]
    closed = markets[0]
    sim.universe.resolve(closed.condition_id)
    await follower.refresh()
    wanted = [m.condition_id for m in added if m.tag[1] == "politics"]
    assert len(wanted) == 1
    assert set(runtime.monitored) == {markets[1].condition_id, *wanted}
    assert follower.stats.refreshes == 1
    await wait_ready(runtime)


async def test_gamma_failures_are_counted_and_retried_later(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime
) -> None:
    """An unreachable Gamma fails a refresh, which is counted and logged; the markets
    monitored stay."""
    sim = await make_simulator(markets=2, event_rate=200.0)
    markets = sim.markets()
    universe = UniverseConfig(gamma_url="http://127.0.0.1:9", refresh_interval=3600.0, timeout=1.0)
    runtime = await make_runtime(sim, markets=markets, universe=universe)
    await wait_ready(runtime)
    assert runtime.universe is not None
    await runtime.universe.refresh()
    assert runtime.universe.stats.gamma_errors == 1
    assert len(runtime.monitored) == 2


async def _buy(runtime: AgentsRuntime, token: str) -> Decimal:
    """Buy 5 shares of ``token`` at its best ask (the simulator paused); their cost."""
    book = runtime.broker.get_order_book(token)
    assert book is not None
    await eventually(lambda: book.synced)
    ask = book.best_ask
    assert ask is not None
    response = await runtime.broker.create_and_post_order(
        OrderArgs(token_id=token, price=ask, size=D(5), side=BUY), OrderType.FOK
    )
    assert response["status"] == "matched", response
    return D(response["makingAmount"])


async def test_a_market_gamma_reports_resolved_settles_the_account(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """Gamma alone tells (no market_resolved on the channel): a refresh pays the shares
    held out at the final prices, cash back and profit realised, stored as settlement
    fills with the resolution; a market closed but not resolved yet waits; nothing
    settles twice, whether Gamma tells again or the feed told first."""
    sim = await make_simulator(markets=3, event_rate=200.0)
    universe = UniverseConfig(gamma_url=sim.http_url, refresh_interval=3600.0)
    first, second, third = markets = await list_universe(sim.http_url)
    runtime = await make_runtime(sim, markets=markets, universe=universe)
    follower = runtime.universe
    assert follower is not None
    broker = runtime.broker
    await wait_ready(runtime)
    await sim.pause()
    cost_yes = await _buy(runtime, first.yes_token)
    cost_no = await _buy(runtime, second.no_token)
    await _buy(runtime, third.yes_token)
    sim.resume()
    cash = broker.cash

    sim.close_market(second.condition_id)  # closed, resolution pending
    await follower.refresh()
    assert second.condition_id not in runtime.monitored
    assert follower.stats.settled == 0
    assert broker.markets_held() == {m.condition_id for m in markets}

    sim.resolve_market(first.condition_id, "Yes", announce=False)
    await follower.refresh()
    assert follower.stats.settled == 1
    assert first.condition_id not in runtime.monitored
    assert broker.cash == cash + 5
    realized = {p.token_id: p.realized_pnl for p in broker.positions()}
    assert realized[first.yes_token] == 5 - cost_yes

    sim.resolve_market(second.condition_id, "Yes", announce=False)  # NO held: pays 0
    await follower.refresh()
    await follower.refresh()  # tells again: nothing more
    assert follower.stats.settled == 2
    assert broker.cash == cash + 5
    realized = {p.token_id: p.realized_pnl for p in broker.positions()}
    assert realized[second.no_token] == -cost_no

    sim.resolve_market(third.condition_id, "No")  # the feed tells first
    await eventually(lambda: broker.settled(third.condition_id))
    await follower.refresh()
    assert follower.stats.settled == 2
    assert broker.markets_held() == set()
    await runtime.stop()

    async with SQLiteStore(tmp_path / "agents.sqlite") as store:
        fills = [f for f in await store.fills(1) if f.kind == "settlement"]
        resolutions = {r.market: r.winning_asset_id for r in await store.resolutions()}
        reloaded = PaperBroker(store=store)
        await reloaded.load()
    assert sorted((f.token_id, f.price, f.size) for f in fills) == sorted(
        [
            (first.yes_token, D(1), D(5)),
            (second.no_token, D(0), D(5)),
            (third.yes_token, D(0), D(5)),
        ]
    )
    assert resolutions == {
        first.condition_id: first.yes_token,
        second.condition_id: second.yes_token,
        third.condition_id: third.no_token,
    }
    assert reloaded.cash == broker.cash
    assert runtime.stats().lost_rows == 0
