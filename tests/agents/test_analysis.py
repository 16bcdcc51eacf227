"""Complement arbitrage: the edge is arithmetic on the asks, sized by depth, one id per episode."""

from __future__ import annotations

from decimal import Decimal

import pytest

from polymarket_agents.agents import BUY, Analysis, ComplementArbitrage, OrderType, taker_fee
from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import (
    Book,
    LastTradePrice,
    MarketBooks,
    OrderBook,
    OrderLevel,
    PriceChange,
    PriceLevelChange,
)

D = Decimal
MARKET = "0x" + "ab" * 32


def levels(*pairs: tuple[str, str]) -> tuple[OrderLevel, ...]:
    return tuple(OrderLevel(D(p), D(s)) for p, s in pairs)


def book(asset_id: str, bids: tuple[OrderLevel, ...], asks: tuple[OrderLevel, ...]) -> Book:
    return Book(asset_id=asset_id, market=MARKET, timestamp="1", bids=bids, asks=asks)


def pair(
    yes_asks: tuple[OrderLevel, ...],
    no_asks: tuple[OrderLevel, ...],
) -> tuple[MarketBooks, Book]:
    """A market whose YES and NO books have these asks (and a bid a cent below the best)."""
    yes, no = OrderBook("yes", MARKET), OrderBook("no", MARKET)
    yes_book = book("yes", levels((str(yes_asks[0].price - D("0.01")), "100")), yes_asks)
    no_book = book("no", levels((str(no_asks[0].price - D("0.01")), "100")), no_asks)
    yes.apply_book(yes_book)
    no.apply_book(no_book)
    return MarketBooks(MARKET, yes, no), no_book


def test_a_sound_market_has_no_edge() -> None:
    """Asks that sum to 1 or more give no analysis."""
    books, event = pair(levels(("0.52", "100")), levels(("0.49", "100")))
    assert ComplementArbitrage().analyze(books, event) is None


def test_asks_below_one_give_the_edge_and_both_legs() -> None:
    """YES 0.45 + NO 0.47 = 0.92: an 8 % edge, two FOK BUYs for the common depth."""
    books, event = pair(levels(("0.45", "30")), levels(("0.47", "50")))
    analysis = ComplementArbitrage().analyze(books, event)
    assert analysis is not None
    assert analysis.edge == D("0.08")
    assert analysis.order_type is OrderType.FOK
    assert analysis.market == MARKET
    yes, no = analysis.orders
    assert (yes.token_id, yes.price, yes.size, yes.side) == ("yes", D("0.45"), D(30), BUY)
    assert (no.token_id, no.price, no.size, no.side) == ("no", D("0.47"), D(30), BUY)
    assert analysis.signal_id == f"arb:{MARKET}:0:0.45:0.47"


def test_fees_come_off_the_edge() -> None:
    """At a 1 % fee rate, Polymarket's fee per share is 0.01 x p x (1 - p): 0.002475 on the
    YES ask of 0.45, 0.002491 on the NO ask of 0.47; the edge is 0.08 less both."""
    books, event = pair(levels(("0.45", "30")), levels(("0.47", "50")))
    analysis = ComplementArbitrage(fee_rate_bps=D(100)).analyze(books, event)
    assert analysis is not None
    assert analysis.edge == D("0.075034")
    assert analysis.orders[0].fee_rate_bps == 100


def test_an_edge_eaten_by_fees_is_no_edge() -> None:
    """A 6 % gap less the fees at a 3 % rate (0.0074 + 0.0075) is below the 5 % minimum."""
    books, event = pair(levels(("0.45", "30")), levels(("0.49", "50")))
    assert ComplementArbitrage(fee_rate_bps=D(300)).analyze(books, event) is None


def test_the_size_walks_both_ladders_while_each_pair_earns_enough() -> None:
    """Levels are taken together, best first, while a pair earns more than min_edge; the
    limit of each leg is the worst price reached and the edge is the average."""
    books, event = pair(
        levels(("0.45", "10"), ("0.46", "20"), ("0.50", "100")),
        levels(("0.47", "25"), ("0.48", "100")),
    )
    analysis = ComplementArbitrage(max_notional=None).analyze(books, event)
    assert analysis is not None
    yes, no = analysis.orders
    # 10 @ .45+.47, 15 @ .46+.47, 5 @ .46+.48 (edge .06); .50+.48 earns only .02: stop.
    assert yes.size == no.size == D(30)
    assert (yes.price, no.price) == (D("0.46"), D("0.48"))
    cost = 10 * D("0.92") + 15 * D("0.93") + 5 * D("0.94")
    assert analysis.edge == 1 - cost / 30


def test_the_size_is_capped_by_the_notional_and_floored_to_cents() -> None:
    """Pairs at 0.92 with 10 USDC to spend: 10.869... floored to 10.86 pairs."""
    books, event = pair(levels(("0.45", "500")), levels(("0.47", "500")))
    analysis = ComplementArbitrage(max_notional=D(10), min_size=D(1)).analyze(books, event)
    assert analysis is not None
    assert [order.size for order in analysis.orders] == [D("10.86"), D("10.86")]


def test_depth_below_the_minimum_size_is_an_edge_without_orders() -> None:
    """Three shares available against a minimum of five: the edge is reported, no orders."""
    books, event = pair(levels(("0.45", "3")), levels(("0.47", "50")))
    analysis = ComplementArbitrage().analyze(books, event)
    assert analysis is not None
    assert analysis.edge == D("0.08")
    assert analysis.orders == ()


def test_the_same_dislocation_keeps_its_id_until_it_is_gone() -> None:
    """Seen again (a replayed book), the dislocation has the same id; once synced books
    show it gone, the next one is a new episode even at the same prices."""
    strategy = ComplementArbitrage()
    books, event = pair(levels(("0.45", "30")), levels(("0.47", "50")))
    first = strategy.analyze(books, event)
    again = strategy.analyze(books, event)
    assert first is not None
    assert again is not None
    assert first.signal_id == again.signal_id
    # The NO ask moves back up: gone.
    books.no.set_level("SELL", D("0.47"), D(0))
    books.no.set_level("SELL", D("0.56"), D(50))
    change = PriceChange(
        market=MARKET,
        timestamp="2",
        price_changes=(PriceLevelChange("no", D("0.56"), D(50), "SELL"),),
    )
    assert strategy.analyze(books, change) is None
    books.no.set_level("SELL", D("0.47"), D(50))
    back = strategy.analyze(books, change)
    assert back is not None
    assert back.signal_id == f"arb:{MARKET}:1:0.45:0.47"


def test_unsynced_books_neither_trade_nor_end_an_episode() -> None:
    """While a book waits for its snapshot (a reconnect), nothing is concluded: the same
    dislocation seen after the resync keeps its id."""
    strategy = ComplementArbitrage()
    books, event = pair(levels(("0.45", "30")), levels(("0.47", "50")))
    first = strategy.analyze(books, event)
    books.no.invalidate()
    assert strategy.analyze(books, event) is None
    books.no.apply_book(event)
    after = strategy.analyze(books, event)
    assert first is not None
    assert after is not None
    assert after.signal_id == first.signal_id


def test_trades_do_not_move_the_asks_and_are_skipped() -> None:
    """A trade print is no reason to analyse: the books it concerns change by price_change."""
    books, _ = pair(levels(("0.45", "30")), levels(("0.47", "50")))
    trade = LastTradePrice(
        asset_id="yes", market=MARKET, price=D("0.45"), size=D(5), side="BUY", timestamp="3"
    )
    assert ComplementArbitrage().analyze(books, trade) is None


def test_resume_continues_from_the_used_ids() -> None:
    """After a process restart the episode counter continues from the highest id used,
    taken as still dislocated: the same dislocation keeps its id, the next is new."""
    strategy = ComplementArbitrage()
    used = [f"arb:{MARKET}:3:0.45:0.47#0", f"arb:{MARKET}:2:0.40:0.47#1", "manual", "arb:x"]
    assert strategy.resume(used) == 1
    books, event = pair(levels(("0.45", "30")), levels(("0.47", "50")))
    analysis = strategy.analyze(books, event)
    assert analysis is not None
    assert analysis.signal_id == f"arb:{MARKET}:3:0.45:0.47"


def test_analysis_is_a_frozen_value() -> None:
    """Analyses are immutable values."""
    analysis = Analysis(edge=D("0.1"))
    with pytest.raises(AttributeError):
        analysis.edge = D(0)  # type: ignore[misc]


@pytest.mark.parametrize(
    "options",
    [{"min_edge": D(-1)}, {"fee_rate_bps": D(-1)}, {"max_notional": D(0)}, {"size_decimals": 9}],
)
def test_invalid_settings_are_refused(options: dict[str, object]) -> None:
    """Negative edges, fees or sizes and a zero cap are configuration errors."""
    with pytest.raises(ConfigurationError):
        ComplementArbitrage(**options)  # type: ignore[arg-type]


def test_polymarkets_fee_formula() -> None:
    """shares x rate x p x (1 - p), floored to 0.00001 USDC; nothing at a zero rate; the
    exponent of older crypto schedules squares p x (1 - p)."""
    assert taker_fee(D(100), D("0.5"), D("0.02")) == D("0.5")
    assert taker_fee(D(100), D("0.1"), D("0.02")) == D("0.18")
    assert taker_fee(D(100), D("0.54"), D("0.25"), 2) == D("1.54256")  # 100 x .25 x .2484^2
    assert taker_fee(D(3), D("0.333"), D("0.0001")) == D("0.00006")  # 0.0000666... floored
    assert taker_fee(D(100), D("0.5"), D(0)) == 0
