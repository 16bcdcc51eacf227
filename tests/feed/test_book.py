"""Local order books: snapshots, absolute updates, fail-closed sync, depth walks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polymarket_agents.feed import (
    BestBidAsk,
    Book,
    BookSet,
    DepthFill,
    LastTradePrice,
    OrderBook,
    OrderLevel,
    PriceChange,
    PriceLevelChange,
    Side,
    SyncState,
    TickSizeChange,
)

YES = "1111"
NO = "2222"
MARKET = "0xabc"
D = Decimal


def book(asset_id: str, bids: dict[str, str], asks: dict[str, str]) -> Book:
    """A snapshot with levels given as {price: size}."""
    return Book(
        asset_id=asset_id,
        market=MARKET,
        timestamp="1",
        bids=tuple(OrderLevel(D(p), D(s)) for p, s in bids.items()),
        asks=tuple(OrderLevel(D(p), D(s)) for p, s in asks.items()),
    )


def change(
    asset_id: str,
    side: Side,
    price: str,
    size: str,
    best: tuple[str, str] | None = None,
) -> PriceLevelChange:
    """One price_change entry, with an advertised top if given."""
    bid, ask = (None, None) if best is None else (D(best[0]), D(best[1]))
    return PriceLevelChange(asset_id, D(price), D(size), side, "h", bid, ask)


def message(*entries: PriceLevelChange) -> PriceChange:
    """A price_change message of some entries."""
    return PriceChange(market=MARKET, timestamp="2", price_changes=entries)


@pytest.fixture
def books() -> BookSet:
    """A BookSet tracking one market, both books synced from snapshots."""
    books = BookSet()
    books.add_market(MARKET, YES, NO)
    books.apply(
        [
            book(YES, {"0.48": "30", "0.50": "15", "0.49": "20"}, {"0.54": "10", "0.52": "25"}),
            book(NO, {"0.48": "25", "0.46": "10"}, {"0.50": "15", "0.51": "20"}),
        ]
    )
    return books


def test_snapshot_gives_top_of_book(books: BookSet) -> None:
    """A snapshot sets best bid/ask, mid and spread, whatever the level order."""
    yes = books[YES]
    assert yes.synced
    assert (yes.best_bid, yes.best_ask) == (D("0.50"), D("0.52"))
    assert yes.mid == D("0.51")
    assert yes.spread == D("0.02")
    assert yes.levels("BUY") == [(D("0.50"), D(15)), (D("0.49"), D(20)), (D("0.48"), D(30))]
    assert yes.levels("SELL", depth=1) == [(D("0.52"), D(25))]
    assert books.pair(MARKET).synced


def test_updates_are_absolute_and_zero_removes(books: BookSet) -> None:
    """price_change sets absolute sizes; '0' removes the level and moves the top."""
    stale = books.apply(
        [
            message(
                change(YES, "BUY", "0.50", "0", ("0.49", "0.52")),
                change(YES, "SELL", "0.52", "7", ("0.49", "0.52")),
            )
        ]
    )
    assert stale == []
    yes = books[YES]
    assert D("0.50") not in yes.bids
    assert yes.asks[D("0.52")] == D(7)
    assert (yes.best_bid, yes.best_ask) == (D("0.49"), D("0.52"))


def test_equal_prices_in_other_spellings_are_one_level(books: BookSet) -> None:
    """'0.5' and '0.50' are the same level: exact decimals, no float drift."""
    books.apply([message(change(YES, "BUY", "0.5", "99", ("0.5", "0.52")))])
    assert books[YES].bids[D("0.50")] == D(99)
    assert len(books[YES].bids) == 3


def test_unsynced_books_drop_updates() -> None:
    """Updates to a book without a snapshot are dropped and counted, never applied."""
    books = BookSet()
    books.add(YES)
    assert books.apply([message(change(YES, "BUY", "0.4", "10"))]) == []
    assert books[YES].state is SyncState.UNSYNCED
    assert books[YES].bids == {}
    assert books.dropped_updates == 1


def test_mismatch_with_advertised_top_marks_stale(books: BookSet) -> None:
    """A local top that disagrees with the advertised one empties the book, marked stale."""
    stale = books.apply([message(change(YES, "BUY", "0.47", "5", ("0.51", "0.52")))])
    assert stale == [YES]
    assert books[YES].state is SyncState.STALE
    assert books[YES].bids == {}
    assert books.stale_events == 1
    assert not books.all_synced
    assert books.unsynced() == [YES]
    # Updates wait for the next snapshot, which restores it.
    books.apply([message(change(YES, "BUY", "0.47", "5"))])
    assert books.dropped_updates == 1
    books.apply([book(YES, {"0.40": "1"}, {"0.60": "1"})])
    assert books[YES].synced


def _top(asset_id: str, bid: str, ask: str) -> BestBidAsk:
    return BestBidAsk(asset_id, MARKET, D(bid), D(ask), D(ask) - D(bid), "3")


def test_best_bid_ask_is_checked_against_the_book(books: BookSet) -> None:
    """best_bid_ask agreeing with the synced book changes nothing; one that disagrees makes
    the book stale; unsynced books and other assets are not checked."""
    assert books.apply([_top(YES, "0.50", "0.52"), _top(NO, "0.48", "0.50")]) == []
    assert books.top_checks == 2
    assert books.apply([_top("9999", "0.1", "0.2")]) == []
    assert books.apply([_top(YES, "0.49", "0.52")]) == [YES]
    assert books[YES].state is SyncState.STALE
    assert books.stale_events == 1
    assert books.apply([_top(YES, "0.49", "0.52")]) == []  # stale: nothing to check
    assert books.top_checks == 3


def test_crossed_book_marks_stale(books: BookSet) -> None:
    """A bid at or above the best ask is a crossed book, hence stale, advertised or not."""
    assert books.apply([message(change(YES, "BUY", "0.53", "5"))]) == [YES]


def test_only_the_last_entry_per_asset_is_checked(books: BookSet) -> None:
    """The advertised top is checked after the whole message, per asset."""
    stale = books.apply(
        [
            message(
                change(YES, "BUY", "0.51", "5", ("0.51", "0.52")),  # intermediate top
                change(NO, "SELL", "0.49", "5", ("0.48", "0.49")),
                change(YES, "BUY", "0.51", "0", ("0.50", "0.52")),  # final top
            )
        ]
    )
    assert stale == []


def test_advertised_zero_and_one_mean_empty_sides(books: BookSet) -> None:
    """best_bid '0' matches no bids and best_ask '1' matches no asks."""
    stale = books.apply(
        [
            message(
                change(NO, "BUY", "0.48", "0"),
                change(NO, "BUY", "0.46", "0", ("0", "0.50")),
                change(NO, "SELL", "0.50", "0"),
                change(NO, "SELL", "0.51", "0", ("0", "1")),
            )
        ]
    )
    assert stale == []
    assert books[NO].best_bid is None
    assert books[NO].mid is None
    assert books[NO].spread is None


def test_trades_and_tick_sizes_are_recorded(books: BookSet) -> None:
    """last_trade_price and tick_size_change update the book's fields."""
    books.apply(
        [
            LastTradePrice(
                asset_id=YES, market=MARKET, price=D("0.52"), size=D(3), side="BUY", timestamp="3"
            ),
            TickSizeChange(
                asset_id=YES,
                market=MARKET,
                old_tick_size=D("0.01"),
                new_tick_size=D("0.001"),
                timestamp="3",
            ),
        ]
    )
    assert books[YES].last_trade_price == D("0.52")
    assert books[YES].tick_size == D("0.001")


def test_events_for_untracked_assets_are_ignored(books: BookSet) -> None:
    """Events for assets the set does not track change nothing."""
    assert (
        books.apply([book("9999", {"0.1": "1"}, {}), message(change("9999", "BUY", "0.1", "1"))])
        == []
    )
    assert "9999" not in books


def test_walk_answers_how_much_can_i_buy(books: BookSet) -> None:
    """walk() sums what a taker gets up to a price or a size, best levels first."""
    yes = books[YES]
    assert yes.walk("BUY", limit=D("0.53")) == DepthFill(D(25), D("13.00"), D("0.52"))
    assert yes.walk("BUY") == DepthFill(D(35), D("13.00") + D("5.40"), D("0.54"))
    fill = yes.walk("BUY", size=D(30))
    assert (fill.size, fill.worst_price) == (D(30), D("0.54"))
    assert fill.average_price == (D("13.00") + D("2.70")) / D(30)
    assert yes.walk("SELL", limit=D("0.495")) == DepthFill(D(15), D("7.50"), D("0.50"))
    assert yes.walk("BUY", limit=D("0.1")) == DepthFill(D(0), D(0), None)
    assert DepthFill(D(0), D(0), None).average_price is None


def test_invalidate_and_remove(books: BookSet) -> None:
    """invalidate_all() unsyncs every book; remove() drops a book and its pair."""
    books.invalidate_all()
    assert books.unsynced() == [YES, NO]
    assert books[YES].best_bid is None
    books.remove(NO)
    assert NO not in books
    with pytest.raises(KeyError):
        books.pair(MARKET)
    assert len(books) == 1
    assert "assets=1" in repr(books)
    assert YES[:4] in repr(books[YES])


# -- properties -----------------------------------------------------------------------------

TICKS = [D(n) / 100 for n in range(1, 100)]
operations = st.lists(
    st.tuples(
        st.sampled_from(["BUY", "SELL"]),
        st.sampled_from(TICKS),
        st.sampled_from([D(0), D(0), D(1), D("2.5"), D("100"), D("0.01")]),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_random_updates_keep_the_book_equal_to_a_model(
    ops: list[tuple[Side, Decimal, Decimal]],
) -> None:
    """Any sequence of level updates leaves the book equal to a plain dict model, with the
    cached best bid/ask equal to max/min of the model."""
    local = OrderBook(YES)
    local.apply_book(book(YES, {}, {}))
    model: dict[str, dict[Decimal, Decimal]] = {"BUY": {}, "SELL": {}}
    for side, price, size in ops:
        local.set_level(side, price, size)
        if size:
            model[side][price] = size
        else:
            model[side].pop(price, None)
        assert local.best_bid == max(model["BUY"], default=None)
        assert local.best_ask == min(model["SELL"], default=None)
    assert local.bids == model["BUY"]
    assert local.asks == model["SELL"]


@settings(max_examples=150, deadline=None)
@given(operations, st.booleans())
def test_random_delta_streams_stay_consistent(
    ops: list[tuple[Side, Decimal, Decimal]], lie: bool
) -> None:
    """Streaming random deltas with truthful advertised tops never goes stale while the book
    is uncrossed; a lie about the top always does."""
    truth = OrderBook(YES)
    truth.apply_book(book(YES, {}, {}))
    books = BookSet()
    books.add(YES)
    books.apply([book(YES, {}, {})])
    for side, price, size in ops:
        truth.set_level(side, price, size)
        if truth.crossed:
            truth.set_level(side, price, D(0))  # the exchange never shows a crossed book
            continue
        bid = truth.best_bid if truth.best_bid is not None else D(0)
        ask = truth.best_ask if truth.best_ask is not None else D(1)
        advertised = (bid + D("0.001"), ask) if lie else (bid, ask)
        entry = PriceLevelChange(YES, price, size, side, "h", *advertised)
        stale = books.apply([message(entry)])
        if lie:
            assert stale == [YES]
            return
        assert stale == []
        assert books[YES].bids == truth.bids
        assert books[YES].asks == truth.asks
