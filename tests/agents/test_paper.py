"""The paper broker: py-clob-client's validation and responses, fills against the local
book, positions and P&L, every order and fill stored, one order per signal."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polymarket_agents.agents import (
    BUY,
    INTERRUPTED,
    NOT_RECORDED,
    RECENT_ORDERS,
    SELL,
    Analysis,
    InvalidOrder,
    MarketOrderArgs,
    OrderArgs,
    OrderType,
    PaperBroker,
)
from polymarket_agents.feed import Book, MarketBooks, MarketInfo, OrderBook, OrderLevel
from polymarket_agents.storage import (
    FillRow,
    PaperOrderRow,
    SQLiteStore,
    StoreUnavailableError,
    Table,
    WriteResult,
)
from polymarket_agents.testing import instant_backoff

from ._fixtures import StoreWrapper

D = Decimal
MARKET = "0x" + "cd" * 32


def info(tick: str = "0.01") -> MarketInfo:
    return MarketInfo(
        condition_id=MARKET,
        question="Will it?",
        slug="will-it",
        yes_token="yes",
        no_token="no",
        tick_size=D(tick),
        min_size=D(5),
    )


def market_books(
    yes_bids: list[tuple[str, str]] | None = None,
    yes_asks: list[tuple[str, str]] | None = None,
    no_bids: list[tuple[str, str]] | None = None,
    no_asks: list[tuple[str, str]] | None = None,
) -> MarketBooks:
    """YES 0.44/0.45 (40 and 30 deep) with its NO mirror 0.55/0.56, unless told otherwise."""
    yes, no = OrderBook("yes", MARKET), OrderBook("no", MARKET)

    def snapshot(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
        return Book(
            asset_id=asset,
            market=MARKET,
            timestamp="1",
            bids=tuple(OrderLevel(D(p), D(s)) for p, s in bids),
            asks=tuple(OrderLevel(D(p), D(s)) for p, s in asks),
        )

    yes.apply_book(
        snapshot(
            "yes",
            yes_bids if yes_bids is not None else [("0.44", "40"), ("0.43", "100")],
            yes_asks if yes_asks is not None else [("0.45", "30"), ("0.46", "100")],
        )
    )
    no.apply_book(
        snapshot(
            "no",
            no_bids if no_bids is not None else [("0.55", "30"), ("0.54", "100")],
            no_asks if no_asks is not None else [("0.56", "40"), ("0.57", "100")],
        )
    )
    return MarketBooks(MARKET, yes, no)


def broker_on(
    books: MarketBooks, store: RecordingStore | SQLiteStore | None = None, **options: Any
) -> PaperBroker:
    broker = PaperBroker(store=store, **options)
    broker.track(books, info())
    return broker


class RecordingStore(StoreWrapper):
    """A real SQLite store that also keeps every row written through ``write_trades``, in
    order: the history of each order, which the table keeps only the last state of."""

    def __init__(self, inner: SQLiteStore) -> None:
        super().__init__(inner)
        self.calls: list[list[object]] = []

    def results(self) -> list[object]:
        """Every row written, but the write-ahead records (``pending`` orders)."""
        return [
            row
            for call in self.calls
            for row in call
            if not (isinstance(row, PaperOrderRow) and row.status == "pending")
        ]

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        result = await self.inner.write_trades(rows)
        self.calls.append(list(rows))
        return result


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[RecordingStore]:
    """A :class:`RecordingStore` on a fresh file, closed after the test."""
    async with SQLiteStore(tmp_path / "paper.sqlite") as store:
        yield RecordingStore(store)


# -- create_order: validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "size", "message"),
    [
        ("0.995", "10", "price (0.995), min: 0.01 - max: 0.99"),
        ("0", "10", "price (0), min: 0.01 - max: 0.99"),
        ("0.455", "10", "price (0.455) breaks the minimum tick size rule: 0.01"),
        ("0.45", "4.99", "size (4.99) lower than the minimum: 5"),
        ("0.45", "5.001", "size (5.001) has more than 2 decimals"),
    ],
)
def test_create_order_validates_like_the_clob(price: str, size: str, message: str) -> None:
    """Tick range, tick multiple, minimum size and size precision raise InvalidOrder with
    py-clob-client's wording."""
    broker = broker_on(market_books())
    with pytest.raises(InvalidOrder) as raised:
        broker.create_order(OrderArgs("yes", D(price), D(size), BUY))
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


def test_floats_are_taken_as_their_shortest_text() -> None:
    """OrderArgs(price=0.45, size=10.0) is exactly 0.45 x 10, as py-clob-client users write it."""
    args = OrderArgs(token_id="yes", price=0.45, size=10.0, side="BUY")  # type: ignore[arg-type]
    assert (args.price, args.size) == (D("0.45"), D("10.0"))
    with pytest.raises(InvalidOrder):
        OrderArgs("yes", D("0.45"), D(10), "HOLD")  # type: ignore[arg-type]


def test_the_fine_tick_follows_the_book() -> None:
    """A book at tick 0.001 accepts 0.455; the range shrinks to [0.001, 0.999]."""
    books = market_books()
    books.yes.tick_size = D("0.001")
    broker = broker_on(books)
    assert broker.create_order(OrderArgs("yes", D("0.455"), D(10), BUY)).price == D("0.455")
    assert broker.get_tick_size("yes") == D("0.001")
    assert broker.get_tick_size("unknown") == D("0.01")


# -- post_order: order types -----------------------------------------------------------


async def test_fok_fills_completely_across_levels(recorder: RecordingStore) -> None:
    """A FOK BUY of 50 up to 0.46 takes 30 at 0.45 and 20 at 0.46, and reports the
    CLOB's response fields."""
    broker = broker_on(market_books(), recorder)
    order = broker.create_order(OrderArgs("yes", D("0.46"), D(50), BUY))
    response = await broker.post_order(order, OrderType.FOK)
    assert response["success"] is True
    assert response["errorMsg"] == ""
    assert response["status"] == "matched"
    assert response["orderID"] == order.order_id
    assert len(order.order_id) == 66
    assert response["makingAmount"] == str(30 * D("0.45") + 20 * D("0.46"))
    assert response["takingAmount"] == "50"
    assert len(response["tradeIDs"]) == 2
    assert response["transactionsHashes"] == []
    rows = recorder.results()
    order_row, *fills = rows
    assert isinstance(order_row, PaperOrderRow)
    assert (order_row.status, order_row.filled_size, order_row.order_type) == (
        "matched",
        D(50),
        "FOK",
    )
    assert [(f.seq, f.price, f.size) for f in fills if isinstance(f, FillRow)] == [
        (0, D("0.45"), D(30)),
        (1, D("0.46"), D(20)),
    ]


async def test_fok_that_cannot_fill_is_killed_and_recorded(recorder: RecordingStore) -> None:
    """A FOK for more than the book holds within its limit fills nothing, and its
    refusal is stored as an unmatched order."""
    broker = broker_on(market_books(), recorder)
    response = await broker.create_and_post_order(
        OrderArgs("yes", D("0.45"), D(31), BUY), OrderType.FOK
    )
    assert response["success"] is False
    assert response["status"] == "unmatched"
    assert response["errorMsg"] == (
        "order couldn't be fully filled. FOK orders are fully filled or killed."
    )
    (row,) = recorder.results()
    assert isinstance(row, PaperOrderRow)
    assert (row.status, row.filled_size) == ("unmatched", D(0))
    assert broker.cash == D(1000)


async def test_fak_fills_what_it_can() -> None:
    """A FAK SELL of 60 down to 0.44 sells the 40 bid there; the rest is cancelled."""
    books = market_books()
    broker = broker_on(books)
    await broker.create_and_post_order(OrderArgs("yes", D("0.46"), D(100), BUY), OrderType.FOK)
    response = await broker.create_and_post_order(
        OrderArgs("yes", D("0.44"), D(60), SELL), OrderType.FAK
    )
    assert (response["success"], response["status"]) == (True, "matched")
    assert response["makingAmount"] == "40"
    assert response["takingAmount"] == str(40 * D("0.44"))
    nothing = await broker.create_and_post_order(
        OrderArgs("yes", D("0.50"), D(10), SELL), OrderType.FAK
    )
    assert nothing["success"] is False
    assert nothing["errorMsg"].startswith("no orders found to match with FAK order.")


async def test_gtc_rests_and_fills_when_the_book_crosses_it(recorder: RecordingStore) -> None:
    """A GTC BUY at 0.40 rests as live; when asks come down to it, it fills at its own
    price as a maker, and its states and fill are stored."""
    books = market_books()
    broker = broker_on(books, recorder, fee_rate_bps=D(100))
    response = await broker.create_and_post_order(OrderArgs("yes", D("0.40"), D(20), BUY))
    assert (response["success"], response["status"]) == (True, "live")
    assert broker.resting(MARKET)
    assert [o["status"] for o in broker.get_orders(market=MARKET)] == ["LIVE"]
    # The most it can cost: 20 at 0.40 and the taker fee of that (20 x 0.01 x 0.40 x 0.60).
    assert broker.portfolio().reserved_cash == D("8.048")
    books.yes.set_level("SELL", D("0.39"), D(12))
    await broker.on_book_update(books)
    assert broker.resting(MARKET)
    books.yes.set_level("SELL", D("0.40"), D(50))
    await broker.on_book_update(books)
    assert not broker.resting(MARKET)
    rows = recorder.results()
    fills = [row for row in rows if isinstance(row, FillRow)]
    assert [(f.price, f.size, f.fee) for f in fills] == [
        (D("0.40"), D(12), D(0)),
        (D("0.40"), D(8), D(0)),
    ]
    states = [(r.status, r.revision, r.filled_size) for r in rows if isinstance(r, PaperOrderRow)]
    assert states == [("live", 1, D(0)), ("live", 2, D(12)), ("matched", 3, D(20))]
    assert broker.cash == D(1000) - D(8)


async def test_a_crossing_gtc_takes_what_crosses_and_rests_the_rest() -> None:
    """A GTC BUY of 50 at 0.45 takes the 30 offered there and rests 20."""
    broker = broker_on(market_books())
    response = await broker.create_and_post_order(OrderArgs("yes", D("0.45"), D(50), BUY))
    assert (response["status"], response["takingAmount"]) == ("live", "30")
    (open_order,) = broker.get_orders()
    assert (open_order["original_size"], open_order["size_matched"]) == ("50", "30")


async def test_cancel_and_cancel_all(recorder: RecordingStore) -> None:
    """Cancelling a live order frees its reservation; unknown or finished orders are
    reported under not_canceled."""
    broker = broker_on(market_books(), recorder)
    first = await broker.create_and_post_order(OrderArgs("yes", D("0.40"), D(10), BUY))
    second = await broker.create_and_post_order(OrderArgs("no", D("0.50"), D(10), BUY))
    assert await broker.cancel(first["orderID"]) == {
        "canceled": [first["orderID"]],
        "not_canceled": {},
    }
    again = await broker.cancel(first["orderID"])
    assert again["not_canceled"] == {first["orderID"]: "order is canceled, not live"}
    assert (await broker.cancel("0xnope"))["not_canceled"] == {"0xnope": "order not found"}
    assert (await broker.cancel_all())["canceled"] == [second["orderID"]]
    assert broker.get_orders() == []
    assert broker.portfolio().reserved_cash == 0
    statuses = [r.status for r in recorder.results() if isinstance(r, PaperOrderRow)]
    assert statuses == ["live", "live", "canceled", "canceled"]


async def test_gtd_needs_a_future_expiration_and_expires() -> None:
    """A GTD order without expiration is refused; one that expires stops resting."""
    now = [1_000.0]
    books = market_books()
    broker = broker_on(books, now=lambda: now[0])
    refused = await broker.create_and_post_order(
        OrderArgs("yes", D("0.40"), D(10), BUY), OrderType.GTD
    )
    assert refused["errorMsg"] == "invalid expiration: GTD orders need an expiration"
    placed = await broker.create_and_post_order(
        OrderArgs("yes", D("0.40"), D(10), BUY, expiration=1_010), OrderType.GTD
    )
    assert placed["status"] == "live"
    now[0] = 1_011.0
    await broker.on_book_update(books)
    order = broker.get_order(placed["orderID"])
    assert order is not None
    assert order["status"] == "EXPIRED"


async def test_post_only_and_duplicates_are_refused() -> None:
    """A post-only order that would cross, a post-only FOK and a re-posted order are refused."""
    broker = broker_on(market_books())
    crossing = broker.create_order(OrderArgs("yes", D("0.45"), D(10), BUY))
    response = await broker.post_order(crossing, OrderType.GTC, post_only=True)
    assert response["errorMsg"] == "invalid post-only order: order crosses book"
    fok = broker.create_order(OrderArgs("yes", D("0.40"), D(10), BUY))
    response = await broker.post_order(fok, OrderType.FOK, post_only=True)
    assert response["errorMsg"].startswith("invalid post-only order")
    again = await broker.post_order(fok, OrderType.GTC)
    assert again["errorMsg"] == f"order {fok.order_id} is invalid. Duplicated."


async def test_balance_and_shares_are_checked() -> None:
    """A BUY beyond the cash and a SELL of shares not held are refused."""
    broker = broker_on(market_books(yes_asks=[("0.45", "100000")]), starting_cash=D(10))
    buy = await broker.create_and_post_order(OrderArgs("yes", D("0.45"), D(30), BUY), OrderType.FOK)
    assert buy["errorMsg"] == "not enough balance / allowance"
    sell = await broker.create_and_post_order(OrderArgs("no", D("0.55"), D(5), SELL), OrderType.FOK)
    assert sell["errorMsg"] == "not enough balance / allowance"


async def test_market_orders_take_their_price_from_the_book() -> None:
    """A market BUY of 20 USDC at FOK walks past the 13.50 USDC offered at 0.45 to 0.46;
    its size is what 20 USDC buys at that limit."""
    broker = broker_on(market_books())
    order = broker.create_market_order(MarketOrderArgs("yes", D(20), BUY))
    assert (order.price, order.size) == (D("0.46"), D("43.47"))
    response = await broker.post_order(order, OrderType.FOK)
    assert response["takingAmount"] == "43.47"
    with pytest.raises(InvalidOrder, match="no match"):
        broker.create_market_order(MarketOrderArgs("yes", D(100_000), BUY))
    assert broker.get_midpoint("yes") == {"mid": "0.445"}


# -- positions and P&L -------------------------------------------------------------------


async def test_positions_cash_and_realised_pnl() -> None:
    """Buy 30 at 0.45 and sell 20 at 0.44 at a 1 % fee rate (Polymarket's formula,
    shares x rate x p x (1 - p)): cash, average cost, realised and unrealised profit follow
    exactly."""
    broker = broker_on(market_books(), fee_rate_bps=D(100))
    await broker.create_and_post_order(OrderArgs("yes", D("0.45"), D(30), BUY), OrderType.FOK)
    await broker.create_and_post_order(OrderArgs("yes", D("0.44"), D(20), SELL), OrderType.FOK)
    buy_fee, sell_fee = D("0.07425"), D("0.04928")  # 30 x .01 x .45 x .55; 20 x .01 x .44 x .56
    buy_cost = 30 * D("0.45") + buy_fee
    proceeds = 20 * D("0.44") - sell_fee
    assert broker.cash == D(1000) - buy_cost + proceeds
    (position,) = broker.positions()
    assert position.size == 10
    assert position.cost == buy_cost / 3
    assert position.realized_pnl == proceeds - buy_cost * 2 / 3
    assert position.mark == D("0.445")
    portfolio = broker.portfolio()
    assert portfolio.fees == buy_fee + sell_fee
    assert portfolio.total_pnl == portfolio.equity - 1000
    assert portfolio.realized_pnl + portfolio.unrealized_pnl == portfolio.total_pnl


async def test_a_complete_pair_is_worth_one() -> None:
    """YES and NO bought for 0.92 a pair are valued at 1 a pair, whatever the mids."""
    books = market_books(no_asks=[("0.47", "100")], no_bids=[("0.46", "100")])
    broker = broker_on(books)
    analysis = Analysis(
        edge=D("0.08"),
        orders=(OrderArgs("yes", D("0.45"), D(20), BUY), OrderArgs("no", D("0.47"), D(20), BUY)),
        signal_id="sig",
    )
    await broker.submit_trade(analysis)
    portfolio = broker.portfolio()
    assert portfolio.positions_value == 20
    assert portfolio.total_pnl == 20 * D("0.08")


# -- submit_trade: idempotency -------------------------------------------------------------


def arbitrage(signal_id: str | None = "arb:1", size: str = "20") -> Analysis:
    return Analysis(
        edge=D("0.08"),
        orders=(
            OrderArgs("yes", D("0.45"), D(size), BUY),
            OrderArgs("no", D("0.47"), D(size), BUY),
        ),
        signal_id=signal_id,
        market=MARKET,
    )


async def test_a_signal_is_placed_once_leg_by_leg(recorder: RecordingStore) -> None:
    """The same signal submitted twice places its two legs once; the legs carry
    deterministic ids derived from the signal."""
    broker = broker_on(market_books(no_asks=[("0.47", "100")]), recorder)
    first = await broker.submit_trade(arbitrage())
    assert [r["status"] for r in first] == ["matched", "matched"]
    assert await broker.submit_trade(arbitrage()) == []
    assert broker.duplicate_signals == 1
    assert set(broker.signal_ids) == {"arb:1#0", "arb:1#1"}
    rows = recorder.results()
    orders = [r for r in rows if isinstance(r, PaperOrderRow)]
    assert [o.signal_id for o in orders] == ["arb:1#0", "arb:1#1"]
    fresh = PaperBroker()
    fresh.track(market_books(), info())
    assert fresh.create_order(arbitrage().orders[0], signal_id="arb:1#0").order_id == (
        orders[0].order_id
    )


async def test_legs_are_all_or_none(recorder: RecordingStore) -> None:
    """When one FOK leg cannot fill, neither is placed; both are recorded as killed and
    the signal is spent."""
    broker = broker_on(market_books(no_asks=[("0.47", "5")]), recorder)
    responses = await broker.submit_trade(arbitrage())
    assert [r["status"] for r in responses] == ["unmatched", "unmatched"]
    assert all(r["errorMsg"].startswith("order couldn't be fully filled") for r in responses)
    assert broker.cash == D(1000)
    assert broker.positions() == []
    assert [r.status for r in recorder.results() if isinstance(r, PaperOrderRow)] == [
        "unmatched",
        "unmatched",
    ]
    assert await broker.submit_trade(arbitrage()) == []


async def test_an_invalid_leg_rejects_the_signal() -> None:
    """A leg off the tick is recorded as rejected with the validation message."""
    broker = broker_on(market_books(no_asks=[("0.47", "100")]))
    analysis = Analysis(
        edge=D("0.08"),
        orders=(OrderArgs("yes", D("0.455"), D(20), BUY), OrderArgs("no", D("0.47"), D(20), BUY)),
        signal_id="bad",
    )
    responses = await broker.submit_trade(analysis)
    assert [r["status"] for r in responses] == ["rejected", "rejected"]
    assert responses[0]["errorMsg"] == "price (0.455) breaks the minimum tick size rule: 0.01"


async def test_a_restarted_broker_loads_signals_fills_and_resting_orders(tmp_path: Path) -> None:
    """What one broker stored, the next reads back: its signals are not placed again, its
    cash and positions are rebuilt from the fills, its resting orders rest again."""
    path = tmp_path / "paper.sqlite"
    async with SQLiteStore(path) as store:
        broker = broker_on(market_books(no_asks=[("0.47", "100")]), store)
        await broker.submit_trade(arbitrage())
        resting = await broker.create_and_post_order(OrderArgs("yes", D("0.40"), D(10), BUY))
        assert await store.count(Table.PAPER_ORDERS) == 3
        assert await store.count(Table.FILLS) == 2

        again = broker_on(market_books(no_asks=[("0.47", "100")]), store)
        assert await again.load() == 3
        assert again.orders == 3
        assert again.cash == broker.cash
        assert [(p.token_id, p.size, p.cost) for p in again.positions()] == [
            (p.token_id, p.size, p.cost) for p in broker.positions()
        ]
        assert await again.submit_trade(arbitrage()) == []
        assert [o["id"] for o in again.get_orders()] == [resting["orderID"]]
        assert again.portfolio().reserved_cash == broker.portfolio().reserved_cash
        assert set(again.signal_ids) == {"arb:1#1"}  # each market's latest


# -- durability: write-ahead, results, restarts, memory ------------------------------------


class FlakyRecorder(RecordingStore):
    """A recording store whose ``write_trades`` fails for calls ``fail_from`` to
    ``fail_from + failures - 1`` (counting from 0), as a database that is briefly full."""

    def __init__(self, inner: SQLiteStore, fail_from: int, failures: int) -> None:
        super().__init__(inner)
        self.attempts = 0
        self.fail_from = fail_from
        self.failures = failures
        self.cash_seen: list[Decimal] = []
        self.broker: PaperBroker | None = None

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        attempt, self.attempts = self.attempts, self.attempts + 1
        if self.broker is not None:
            self.cash_seen.append(self.broker.cash)
        if self.fail_from <= attempt < self.fail_from + self.failures:
            raise StoreUnavailableError("database 'x' is unavailable: disk full")
        return await super().write_trades(rows)


async def test_an_order_is_recorded_before_it_is_executed_and_its_result_after(
    tmp_path: Path,
) -> None:
    """The legs are committed as pending before the account moves, the result (matched
    orders and their fills) right after; the response comes once both are stored."""
    async with SQLiteStore(tmp_path / "paper.sqlite") as store:
        recorder = FlakyRecorder(store, fail_from=0, failures=0)
        broker = broker_on(market_books(no_asks=[("0.47", "100")]), recorder)
        recorder.broker = broker
        responses = await broker.submit_trade(arbitrage())
        assert [r["status"] for r in responses] == ["matched", "matched"]
        intent, result = recorder.calls
        assert [(r.status, r.revision) for r in intent if isinstance(r, PaperOrderRow)] == [
            ("pending", 0),
            ("pending", 0),
        ]
        assert [type(r).__name__ for r in result] == [
            "PaperOrderRow",
            "FillRow",
            "PaperOrderRow",
            "FillRow",
        ]
        # The cash was untouched when the decision was recorded, spent when the result was.
        assert recorder.cash_seen == [D(1000), D(1000) - 20 * D("0.92")]
        assert [o.status for o in await store.recent_orders()] == ["matched", "matched"]
        assert await store.count(Table.FILLS) == 2
        assert (broker.journal.intents, broker.journal.rows, broker.journal.written) == (2, 4, 4)
        assert broker.journal.awaiting_results == 0


async def test_a_signal_the_database_cannot_record_is_not_placed(tmp_path: Path) -> None:
    """While the database refuses the write-ahead record, the signal is not executed (no
    fill, no cash spent, counted); once it can be recorded, the same signal is placed."""
    path = tmp_path / "paper.sqlite"
    async with SQLiteStore(path, busy_timeout=0.01, exclusive=False) as store:
        broker = broker_on(market_books(no_asks=[("0.47", "100")]), store)
        blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            assert await broker.submit_trade(arbitrage()) == []
            assert (broker.unrecorded_signals, broker.journal.unrecorded) == (1, 1)
            assert broker.cash == D(1000)
            assert broker.positions() == []
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        placed = await broker.submit_trade(arbitrage())
        assert [r["status"] for r in placed] == ["matched", "matched"]
        assert await store.count(Table.FILLS) == 2
        order = broker.create_order(OrderArgs("yes", D("0.40"), D(10), BUY))
        blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            refused = await broker.post_order(order)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert (refused["success"], refused["errorMsg"]) == (False, NOT_RECORDED)
        assert broker.get_orders() == []


async def test_a_result_the_database_refuses_for_a_while_is_stored_once_it_can(
    tmp_path: Path,
) -> None:
    """A result that cannot be stored at first is retried until it is: the trade is on
    record before the response comes back."""
    async with SQLiteStore(tmp_path / "paper.sqlite") as store:
        recorder = FlakyRecorder(store, fail_from=1, failures=3)
        broker = broker_on(market_books(no_asks=[("0.47", "100")]), recorder)
        with instant_backoff():
            responses = await broker.submit_trade(arbitrage())
        assert [r["status"] for r in responses] == ["matched", "matched"]
        assert broker.journal.retries == 3
        assert "disk full" in (broker.journal.last_error or "")
        assert [o.status for o in await store.recent_orders()] == ["matched", "matched"]
        assert await store.count(Table.FILLS) == 2
        assert (broker.journal.lost_rows, broker.journal.pending_rows) == (0, 0)


async def test_a_result_lost_at_a_stop_is_resolved_at_the_next_start(tmp_path: Path) -> None:
    """Stopped while the result cannot be stored, the broker gives up after stop_timeout
    and counts the rows lost; the next start finds the legs still pending, records them as
    unmatched, and never places the signal again."""
    async with SQLiteStore(tmp_path / "paper.sqlite") as store:
        recorder = FlakyRecorder(store, fail_from=1, failures=10**9)
        broker = broker_on(market_books(no_asks=[("0.47", "100")]), recorder, stop_timeout=0.1)
        submit = asyncio.create_task(broker.submit_trade(arbitrage()))
        while broker.journal.retries < 2:
            await asyncio.sleep(0.01)
        submit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submit
        assert (broker.journal.lost_rows, broker.journal.pending_rows) == (4, 0)
        assert [o.status for o in await store.open_orders()] == ["pending", "pending"]
        # Both orders are in the store in their write-ahead state alone.
        assert broker.journal.awaiting_results == 2

        again = broker_on(market_books(no_asks=[("0.47", "100")]), store)
        assert await again.load() == 2
        assert await store.open_orders() == []
        orders = await store.recent_orders()
        assert {(o.status, o.error) for o in orders} == {("unmatched", INTERRUPTED)}
        assert again.cash == D(1000)
        assert await again.submit_trade(arbitrage()) == []
        assert await store.count(Table.FILLS) == 0


async def test_a_signal_recorded_by_an_earlier_run_is_refused_by_the_store(
    recorder: RecordingStore,
) -> None:
    """A broker that never heard of a signal (not loaded, or long forgotten) still does not
    place it twice: the store already has its orders."""
    first = broker_on(market_books(no_asks=[("0.47", "100")]), recorder)
    await first.submit_trade(arbitrage())
    fresh = broker_on(market_books(no_asks=[("0.47", "100")]), recorder)
    assert await fresh.submit_trade(arbitrage()) == []
    assert fresh.duplicate_signals == 1
    assert fresh.cash == D(1000)
    assert await recorder.count(Table.FILLS) == 2


async def test_memory_holds_open_orders_and_the_recent_finished_ones() -> None:
    """Finished orders are forgotten past RECENT_ORDERS (the store keeps them); open ones
    stay however many orders come after them."""
    broker = broker_on(market_books(), starting_cash=D(10**9))
    resting = await broker.create_and_post_order(OrderArgs("yes", D("0.40"), D(10), BUY))
    killed = [
        await broker.create_and_post_order(OrderArgs("yes", D("0.45"), D(31), BUY), OrderType.FOK)
        for _ in range(RECENT_ORDERS + 5)
    ]
    assert broker.get_order(killed[0]["orderID"]) is None
    assert broker.get_order(killed[-1]["orderID"]) is not None
    assert [o["id"] for o in broker.get_orders()] == [resting["orderID"]]
    assert broker.orders == RECENT_ORDERS + 6
