"""An account that behaves like one: fills take the liquidity they use, markets settle,
risk limits refuse and count, and named accounts keep their own orders and fills."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.agents import (
    BUY,
    SELL,
    Analysis,
    OrderArgs,
    OrderType,
    PaperBroker,
    RiskLimits,
)
from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.storage import FillRow, SQLiteStore

from .test_paper import MARKET, broker_on, info, market_books

D = Decimal


def pair(signal: str, yes: str = "0.45", no: str = "0.56", size: int = 10) -> Analysis:
    """A signal buying ``size`` YES and NO (FOK)."""
    return Analysis(
        edge=D("0.1"),
        orders=(OrderArgs("yes", D(yes), D(size), BUY), OrderArgs("no", D(no), D(size), BUY)),
        signal_id=signal,
        market=MARKET,
    )


async def test_a_fill_takes_the_liquidity_until_the_book_shows_it_again() -> None:
    """30 offered at 0.45: the first FOK of 30 takes it all, a second finds nothing there
    (killed), until the feed shows the level again with a new size."""
    books = market_books()
    broker = broker_on(books)
    order = OrderArgs("yes", D("0.45"), D(30), BUY)
    first = await broker.create_and_post_order(order, OrderType.FOK)
    second = await broker.create_and_post_order(order, OrderType.FOK)
    assert (first["status"], first["takingAmount"]) == ("matched", "30")
    assert second["status"] == "unmatched"
    partial = await broker.create_and_post_order(
        OrderArgs("yes", D("0.46"), D(10), BUY), OrderType.FAK
    )
    assert partial["takingAmount"] != "0"  # the next level is untouched
    books.yes.set_level("SELL", D("0.45"), D(25))
    third = await broker.create_and_post_order(
        OrderArgs("yes", D("0.45"), D(25), BUY), OrderType.FOK
    )
    assert (third["status"], third["takingAmount"]) == ("matched", "25")


async def test_a_resolved_market_settles_its_positions() -> None:
    """YES and NO bought as a pair: YES wins, its shares pay 1, NO's 0; the cash comes back
    and the profit is realised; resting orders are cancelled; settling again does nothing."""
    books = market_books(no_asks=[("0.47", "100")], no_bids=[("0.46", "100")])
    broker = broker_on(books)
    await broker.submit_trade(pair("s1", "0.45", "0.47"))
    await broker.create_and_post_order(OrderArgs("yes", D("0.30"), D(10), BUY))  # rests
    assert broker.resting(MARKET)
    fills = await broker.settle(MARKET, "yes")
    assert [(f.token_id, f.price, f.size, f.kind) for f in fills] == [
        ("no", D(0), D(10), "settlement"),
        ("yes", D(1), D(10), "settlement"),
    ]
    assert not broker.resting(MARKET)
    assert broker.cash == D(1000) - D("9.2") + D(10)
    portfolio = broker.portfolio()
    assert portfolio.realized_pnl == D("0.8")
    assert portfolio.positions == ()
    assert await broker.settle(MARKET, "yes") == []


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (RiskLimits(order_size=D(4)), "risk: order of 4.50 USDC above the order size of 4"),
        (RiskLimits(max_position=D(15)), f"risk: position in {MARKET[:12]}... above 15 USDC"),
        (RiskLimits(max_exposure=D(15)), "risk: exposure of 15.15 USDC above 15"),
    ],
)
async def test_limits_refuse_the_whole_signal_and_count_it(limits: RiskLimits, reason: str) -> None:
    """A first signal within the limits trades; one that would break a limit is refused
    whole (its legs rejected with the limit as the reason) and counted by reason."""
    broker = broker_on(market_books(), limits=limits)
    small = await broker.submit_trade(pair("small", size=5))
    assert [r["status"] for r in small] == ["matched", "matched"]
    refused = await broker.submit_trade(pair("big", size=10))
    assert [r["status"] for r in refused] == ["rejected", "rejected"]
    assert {r["errorMsg"] for r in refused} == {reason}
    assert broker.refused[reason] >= 1


async def test_limits_refuse_a_manual_order_too(tmp_path: Path) -> None:
    """post_order under the account's limits: a purchase within them fills; one above the
    order size is rejected with the limit as the reason, counted, stored as rejected and
    never executed (no fill, the cash untouched); a sale is not a purchase and passes."""
    async with SQLiteStore(tmp_path / "manual.sqlite") as store:
        broker = broker_on(market_books(), store, limits=RiskLimits(order_size=D(5)))
        small = await broker.create_and_post_order(OrderArgs("yes", D("0.45"), D(10), BUY))
        assert small["status"] == "matched"
        cash = broker.cash
        big = await broker.create_and_post_order(OrderArgs("yes", D("0.45"), D(20), BUY))
        reason = "risk: order of 9.00 USDC above the order size of 5"
        assert (big["success"], big["status"], big["errorMsg"]) == (False, "rejected", reason)
        assert broker.cash == cash
        assert broker.order_results["refused_risk_order_size"] == 1
        sale = await broker.create_and_post_order(OrderArgs("yes", D("0.44"), D(10), SELL))
        assert sale["status"] == "matched"
        orders = {o.order_id: o for o in await store.orders(broker.account_id)}
        refused = orders[big["orderID"]]
        assert (refused.status, refused.error) == ("rejected", reason)
        fills = await store.fills(broker.account_id)
        assert {f.order_id for f in fills} == {small["orderID"], sale["orderID"]}


async def test_a_daily_loss_stops_buying_for_the_day() -> None:
    """Once the equity has fallen the limit since midnight, buying is refused."""
    clock = [86_400.0 * 20_000 + 3_600]
    books = market_books()
    broker = broker_on(books, limits=RiskLimits(daily_loss=D(2)), now=lambda: clock[0])
    await broker.submit_trade(_single("a", size=30))  # 13.50 of YES
    books.yes.set_level("BUY", D("0.20"), D(40))
    books.yes.set_level("BUY", D("0.44"), D(0))
    books.yes.set_level("SELL", D("0.21"), D(40))
    books.yes.set_level("SELL", D("0.45"), D(0))
    # Marked at the new mid, 0.205: the equity fell 7.35 since the day began.
    refused = await broker.submit_trade(pair("b", yes="0.21", size=5))
    assert {r["errorMsg"] for r in refused} == {"risk: daily loss limit of 2 USDC reached"}
    clock[0] += 86_400  # the next day starts from the equity it has
    allowed = await broker.submit_trade(pair("c", yes="0.21", size=5))
    assert [r["status"] for r in allowed] == ["matched", "matched"]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="order_size must be > 0"):
        RiskLimits(order_size=D(0))


def test_limits_are_active_when_any_one_is_set() -> None:
    assert not RiskLimits().active
    for field in dataclasses.fields(RiskLimits):
        assert RiskLimits(**{field.name: D(1)}).active, field.name


async def test_named_accounts_keep_their_own_orders_and_fills(tmp_path: Path) -> None:
    """Two accounts trade the same signal: two orders with different ids, each stored with
    its account; each broker loads its own account's cash back."""
    async with SQLiteStore(tmp_path / "two.sqlite") as store:
        default = await store.open_account("default", starting_cash=D(1000), settings={}, now_ms=1)
        alice = await store.open_account("alice", starting_cash=D(300), settings={}, now_ms=1)
        first = broker_on(market_books(), store)
        first.use_account(default.id, default.starting_cash)
        second = broker_on(market_books(), store)
        second.use_account(alice.id, alice.starting_cash)
        (one,) = await first.submit_trade(_single("same"))
        (other,) = await second.submit_trade(_single("same"))
        assert one["orderID"] != other["orderID"]
        assert one["status"] == other["status"] == "matched"
        assert [o.account_id for o in await store.orders(alice.id)] == [alice.id]
        fills = await store.fills(alice.id)
        assert {f.account_id for f in fills} == {alice.id}
        reloaded = PaperBroker(store=store)
        reloaded.track(market_books(), info())
        reloaded.use_account(alice.id, alice.starting_cash)
        await reloaded.load()
        assert reloaded.cash == second.cash == D(300) - D("4.5")
        assert "same#0" in reloaded.signal_ids


def _single(signal: str, size: int = 10) -> Analysis:
    return Analysis(
        edge=D("0.1"),
        orders=(OrderArgs("yes", D("0.45"), D(size), BUY),),
        signal_id=signal,
        market=MARKET,
    )


async def test_a_backtest_settles_a_recorded_resolution(tmp_path: Path) -> None:
    """A stored market_resolved event is replayed: the backtest's positions settle."""
    from polymarket_agents.agents import backtest
    from polymarket_agents.storage import BookSnapshotRow, MarketResolutionRow, MarketRow

    book = {"market": MARKET, "hash": "h", "received_at_ms": 10}
    async with SQLiteStore(tmp_path / "resolved.sqlite") as store:
        await store.write_batch(
            [
                MarketRow(condition_id=MARKET, yes_token="yes", no_token="no", slug="will-it"),
                BookSnapshotRow(asset_id="yes", bids=((D("0.40"), D(50)),),
                                asks=((D("0.45"), D(50)),), timestamp_ms=1, event_seq=1,
                                **book),  # type: ignore[arg-type]
                BookSnapshotRow(asset_id="no", bids=((D("0.46"), D(50)),),
                                asks=((D("0.47"), D(50)),), timestamp_ms=1, event_seq=2,
                                **book),  # type: ignore[arg-type]
                MarketResolutionRow(market=MARKET, winning_asset_id="no", timestamp_ms=5,
                                    received_at_ms=50, event_seq=3),
            ]
        )  # fmt: skip
        from polymarket_agents.agents import ComplementArbitrage

        result = await backtest(store, ComplementArbitrage(max_notional=D(46)))
    kinds = [(f.token_id, f.kind, f.price) for f in result.fills]
    assert ("no", "settlement", D(1)) in kinds
    assert ("yes", "settlement", D(0)) in kinds
    assert result.report.realized_pnl > 0
    assert result.report.positions_value == 0
    assert all(isinstance(f, FillRow) for f in result.fills)
