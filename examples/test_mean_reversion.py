"""The example strategy: quiet while it learns, buys the cheap side once per episode, resumes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from examples.mean_reversion import MeanReversion
from polymarket_agents.agents import BUY, OrderType, load_strategy
from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import Book, MarketBooks, OrderBook, OrderLevel

D = Decimal
MARKET = "0x" + "cd" * 32
YES, NO = "1" * 70 + "11111111", "2" * 70 + "22222222"


def quote(books: MarketBooks, yes_bid: str, yes_ask: str) -> Book:
    """Set both books from the YES quote (NO mirrors it) and return the YES snapshot."""
    bid, ask = D(yes_bid), D(yes_ask)
    yes = Book(
        asset_id=YES,
        market=MARKET,
        timestamp="1",
        bids=(OrderLevel(bid, D(100)),),
        asks=(OrderLevel(ask, D(100)),),
    )
    no = Book(
        asset_id=NO,
        market=MARKET,
        timestamp="1",
        bids=(OrderLevel(1 - ask, D(100)),),
        asks=(OrderLevel(1 - bid, D(100)),),
    )
    books.yes.apply_book(yes)
    books.no.apply_book(no)
    return yes


def new_books() -> MarketBooks:
    return MarketBooks(MARKET, OrderBook(YES, MARKET), OrderBook(NO, MARKET))


def test_quiet_while_learning_then_buys_the_cheap_yes() -> None:
    """No signal during the window; then a YES ask 4 cents under the average is bought."""
    strategy = MeanReversion(window=5, threshold=D("0.03"), size=D(7))
    books = new_books()
    for _ in range(5):
        assert strategy.analyze(books, quote(books, "0.49", "0.51")) is None
    analysis = strategy.analyze(books, quote(books, "0.45", "0.46"))
    assert analysis is not None
    assert analysis.edge == D("0.04")  # average 0.50, ask 0.46
    (order,) = analysis.orders
    assert (order.token_id, order.price, order.size, order.side) == (YES, D("0.46"), D(7), BUY)
    assert analysis.order_type is OrderType.FOK
    assert analysis.market == MARKET


def test_buys_the_cheap_no_side_too() -> None:
    """When YES runs up, NO's ask falls below 1 - average: NO is bought."""
    strategy = MeanReversion(window=3, threshold=D("0.03"))
    books = new_books()
    for _ in range(3):
        strategy.analyze(books, quote(books, "0.49", "0.51"))
    analysis = strategy.analyze(books, quote(books, "0.55", "0.56"))
    assert analysis is not None
    assert analysis.orders[0].token_id == NO
    assert analysis.orders[0].price == D("0.45")


def test_one_signal_id_per_episode() -> None:
    """The same cheap ask seen twice has the same id (traded once); after the price is back
    at fair value, the next dislocation gets a new episode."""
    strategy = MeanReversion(window=20, threshold=D("0.03"))
    books = new_books()
    for _ in range(20):
        strategy.analyze(books, quote(books, "0.49", "0.51"))
    first = strategy.analyze(books, quote(books, "0.45", "0.46"))
    again = strategy.analyze(books, quote(books, "0.45", "0.46"))
    assert first is not None
    assert again is not None
    assert first.signal_id == again.signal_id
    for _ in range(10):
        strategy.analyze(books, quote(books, "0.49", "0.51"))
    later = strategy.analyze(books, quote(books, "0.45", "0.46"))
    assert later is not None
    assert later.signal_id != first.signal_id
    assert later.signal_id is not None
    assert later.signal_id.startswith(f"mr:{MARKET}:1:")


def test_an_unsynced_book_is_no_evidence() -> None:
    """Before the first snapshot (or after a book went stale) nothing is learnt or traded."""
    strategy = MeanReversion(window=1)
    books = new_books()
    event = quote(books, "0.49", "0.51")
    books.no.invalidate()
    assert strategy.analyze(books, event) is None
    assert strategy._markets == {}


def test_resume_continues_after_the_last_episode() -> None:
    """After a restart the episode count continues from the ids already used."""
    strategy = MeanReversion(window=2, threshold=D("0.03"))
    assert strategy.resume([f"mr:{MARKET}:4:22222222:0.45#0", "arb:0xother:1:0.4:0.5#0"]) == 1
    books = new_books()
    for _ in range(2):
        strategy.analyze(books, quote(books, "0.49", "0.51"))
    analysis = strategy.analyze(books, quote(books, "0.45", "0.46"))
    assert analysis is not None
    assert analysis.signal_id is not None
    assert analysis.signal_id.startswith(f"mr:{MARKET}:5:")


@pytest.mark.parametrize(
    "spec",
    [
        "examples.mean_reversion:MeanReversion",
        str(Path(__file__).with_name("mean_reversion.py")) + ":MeanReversion",
    ],
)
def test_loaded_by_name_with_options_as_text(spec: str) -> None:
    """What --strategy and --strategy-option do: the options are converted to the
    annotated types."""
    strategy = load_strategy(spec, ["window=20", "threshold=0.05", "size=12.5"])
    assert type(strategy).__name__ == "MeanReversion"
    assert (strategy.window, strategy.threshold, strategy.size) == (  # type: ignore[attr-defined]
        20,
        D("0.05"),
        D("12.5"),
    )


def test_a_bad_option_is_a_configuration_error() -> None:
    """An unknown option names the known ones; a value the class refuses says why."""
    with pytest.raises(ConfigurationError, match="its options: size, threshold, window"):
        load_strategy("examples.mean_reversion:MeanReversion", ["windw=3"])
    with pytest.raises(ConfigurationError, match="window must be >= 1"):
        load_strategy("examples.mean_reversion:MeanReversion", ["window=0"])
