"""backtest: recorded events replayed through decoder, books, strategy and broker give the
live run's trades, deterministically; time windows, markets, and broken rows."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.agents import (
    Analysis,
    ComplementArbitrage,
    EventSequence,
    backtest,
    event_rows,
    market_row,
)
from polymarket_agents.agents._backtest import _GC_THRESHOLD
from polymarket_agents.feed import (
    MarketBooks,
    MarketEvent,
    MarketResolved,
    PriceChange,
    TickSizeChange,
)
from polymarket_agents.feed.simulator import Universe
from polymarket_agents.storage import (
    BookSnapshotRow,
    FillRow,
    LevelChange,
    MarketRow,
    PaperOrderRow,
    PriceChangeRow,
    SQLiteStore,
    TradeRow,
)

from ._fixtures import (
    MakeRuntime,
    MakeSimulator,
    eventually,
    fast_config,
    make_runtime,
    make_simulator,
    settle,
)

__all__ = ["make_runtime", "make_simulator"]  # fixtures, used by name

D = Decimal


def order_key(order: PaperOrderRow) -> tuple[object, ...]:
    return (
        order.order_id,
        order.signal_id,
        order.token_id,
        order.side,
        order.price,
        order.size,
        order.order_type,
        order.status,
        order.filled_size,
        order.error,
    )


def fill_key(fill: FillRow) -> tuple[object, ...]:
    return (fill.order_id, fill.seq, fill.token_id, fill.side, fill.price, fill.size, fill.fee)


@pytest.fixture
async def recorded(
    make_simulator: MakeSimulator, make_runtime: MakeRuntime, tmp_path: Path
) -> Path:
    """A database a live run traded in: three markets, dislocations, until 12 fills."""
    sim = await make_simulator(markets=3, seed=11, event_rate=400.0, dislocation_rate=0.08)
    db = tmp_path / "live.sqlite"
    runtime = await make_runtime(sim, store_path=db, config=fast_config(starting_cash=D(600)))
    await eventually(lambda: runtime.broker.fills >= 12, timeout=20)
    await settle(sim, runtime)
    await runtime.stop()
    return db


def strategy() -> ComplementArbitrage:
    config = fast_config()
    return ComplementArbitrage(
        min_edge=config.edge_threshold,
        fee_rate_bps=config.fee_rate_bps,
        max_notional=config.max_notional,
    )


async def test_a_backtest_trades_exactly_what_the_live_run_traded(recorded: Path) -> None:
    """Same events, strategy and settings: the same orders (ids, prices, sizes, outcomes,
    refusals) and the same fills as the run that recorded them; twice the same."""
    async with SQLiteStore(recorded) as store:
        live_orders = await store.orders(1)
        live_fills = await store.fills(1)
        first = await backtest(store, strategy(), starting_cash=D(600))
        second = await backtest(store, strategy(), starting_cash=D(600))
    assert len(live_fills) >= 12
    assert sorted(map(order_key, first.orders)) == sorted(map(order_key, live_orders))
    assert sorted(map(fill_key, first.fills)) == sorted(map(fill_key, live_fills))
    assert sorted(map(order_key, second.orders)) == sorted(map(order_key, first.orders))
    assert first.report.cash == second.report.cash
    assert first.invalid_events == 0
    assert first.markets == 3
    conn = sqlite3.connect(recorded)
    try:
        stored_events = conn.execute(
            "SELECT (SELECT count(*) FROM book_snapshots) + (SELECT count(*) FROM trades) "
            "+ (SELECT count(*) FROM price_changes) "
            "+ (SELECT count(*) FROM tick_size_changes)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert first.events == stored_events
    assert first.signals >= first.submitted > 0


async def test_a_window_and_a_market(recorded: Path) -> None:
    """--since/--until and --markets narrow the replay; an unknown market is named."""
    async with SQLiteStore(recorded) as store:
        markets = await store.markets()
        everything = await backtest(store, strategy())
        one = await backtest(store, strategy(), markets=[markets[0].slug])
        middle = (everything.first_ms + everything.last_ms) // 2
        late = await backtest(store, strategy(), since_ms=middle)
        with pytest.raises(LookupError, match="not recorded: no-such"):
            await backtest(store, strategy(), markets=["no-such"])
    assert one.markets == 1
    assert 0 < one.events < everything.events
    assert {f.market for f in one.fills} <= {markets[0].condition_id}
    assert 0 < late.events < everything.events
    assert late.first_ms >= middle


def edit(path: Path, *statements: str) -> None:
    """Change a recording behind the service's back."""
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


_FIRST_CHANGE = "WHERE rowid = (SELECT min(rowid) FROM price_changes)"


@pytest.mark.parametrize(
    "statements",
    [
        pytest.param(
            [
                'UPDATE book_snapshots SET bids = \'[["lots","1"]]\' '
                "WHERE id = (SELECT max(id) FROM book_snapshots)"
            ],
            id="a book's price is not a number",
        ),
        pytest.param(
            [
                f"UPDATE price_changes SET received_at_ms = 'late' {_FIRST_CHANGE}",
                "UPDATE price_changes SET books_ahead = 'x' "
                "WHERE rowid = (SELECT max(rowid) FROM price_changes)",
            ],
            id="text for a receive time, text for a count of events ahead",
        ),
        pytest.param(
            [
                "UPDATE price_changes SET changes = replace(replace(changes, "
                f"'\"BUY\"', '\"XYZ\"'), '\"SELL\"', '\"XYZ\"') {_FIRST_CHANGE}"
            ],
            id="a price change's side is neither BUY nor SELL (books take it for a SELL)",
        ),
    ],
)
async def test_a_broken_stored_event_is_counted_and_skipped(
    recorded: Path, statements: list[str]
) -> None:
    """Each stored event changed into something no feed sends is counted and skipped; the
    replay goes on with the rest."""
    edit(recorded, *statements)
    async with SQLiteStore(recorded) as store:
        result = await backtest(store, strategy())
    assert result.invalid_events == len(statements)
    assert result.events > 0


async def test_the_collector_runs_less_while_replays_run(recorded: Path) -> None:
    """While replays run (two at once here) the collector's first threshold is raised;
    once the last one ends, every threshold is what it was before the first."""
    before = gc.get_threshold()
    seen: list[int] = []

    class Watching(ComplementArbitrage):
        def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
            seen.append(gc.get_threshold()[0])
            return super().analyze(books, event)

    async with SQLiteStore(recorded) as store:
        one, two = await asyncio.gather(
            backtest(store, Watching()), backtest(store, Watching(), markets=[])
        )
    assert one.events == two.events > 0
    assert len(seen) == 2 * one.events
    assert min(seen) == max(before[0], _GC_THRESHOLD)
    assert gc.get_threshold() == before


class Seen:
    """Records the YES best bid each event is analysed against."""

    def __init__(self) -> None:
        self.bids: list[Decimal | None] = []

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        self.bids.append(books.yes.best_bid)
        return None

    def resume(self, signal_ids: Iterable[str]) -> int:
        return 0


async def test_books_ahead_replays_the_books_the_strategy_saw(tmp_path: Path) -> None:
    """An event taken while the live books already held the next one (books_ahead 1) is
    analysed against those books in the replay too, and the next one is not applied twice."""
    market = MarketRow(condition_id="0xm", yes_token="y", no_token="n", slug="m")
    book = {"market": "0xm", "timestamp_ms": 1, "hash": "h", "received_at_ms": 10}

    def bid(price: str, seq: int, ahead: int) -> PriceChangeRow:
        return PriceChangeRow(
            market="0xm", timestamp_ms=seq, received_at_ms=10 + seq, event_seq=seq,
            books_ahead=ahead, changes=(LevelChange("y", D(price), D(5), "BUY", f"h{seq}"),),
        )  # fmt: skip

    async with SQLiteStore(tmp_path / "ahead.sqlite") as store:
        await store.write_batch(
            [
                market,
                BookSnapshotRow(asset_id="y", bids=((D("0.40"), D(5)),), asks=((D("0.60"), D(5)),),
                                event_seq=1, **book),  # type: ignore[arg-type]
                BookSnapshotRow(asset_id="n", bids=((D("0.40"), D(5)),), asks=((D("0.60"), D(5)),),
                                event_seq=2, **book),  # type: ignore[arg-type]
                bid("0.41", 3, 1),
                bid("0.42", 4, 0),
                bid("0.43", 5, 0),
            ]
        )  # fmt: skip
        seen = Seen()
        result = await backtest(store, seen)
    assert result.events == 5
    assert seen.bids == [D("0.40"), D("0.40"), D("0.42"), D("0.42"), D("0.43")]


class Kept:
    """Keeps every event it is given, in order."""

    def __init__(self) -> None:
        self.events: list[MarketEvent] = []

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        self.events.append(event)
        return None

    def resume(self, signal_ids: Iterable[str]) -> int:
        return 0


async def test_the_replayed_events_equal_the_events_recorded(tmp_path: Path) -> None:
    """Every event made again from its stored rows equals the event the monitor stored,
    field for field (the same Decimal digits), in the order it was taken."""
    clock = [1_790_000_000.0]
    universe = Universe(seed=3, markets=4, dislocation_rate=0.05, clock=lambda: clock[0])
    universe.best_bid_ask = False
    sequence = EventSequence(1)
    recorded: list[MarketEvent] = []
    rows: list[object] = [market_row(info, 0) for info in universe.infos()]

    def store_event(event: MarketEvent) -> None:
        stored = event_rows(event, int(clock[0] * 1000), event_seq=sequence())
        if stored is not None:
            rows.extend(stored if isinstance(stored, tuple) else (stored,))
            recorded.append(event)

    for info in universe.infos():
        for token in info.token_ids:
            store_event(universe.snapshot(token))
    while len(recorded) < 3_000:
        clock[0] += 0.001
        for event in universe.step(clock[0]):
            store_event(event)
    info = universe.infos()[0]
    now = str(int(clock[0] * 1000))
    tick = TickSizeChange(info.yes_token, info.condition_id, D("0.01"), D("0.001"), now)
    resolved = MarketResolved(info.condition_id, now, info.yes_token, "")
    store_event(tick)
    store_event(resolved)
    kept = Kept()
    async with SQLiteStore(tmp_path / "recorded.sqlite") as store:
        await store.write_batch(rows)
        result = await backtest(store, kept)
    assert result.invalid_events == 0
    assert {type(e) for e in recorded} >= {PriceChange, TickSizeChange, MarketResolved}
    # A resolution is stored without its outcome name.
    assert kept.events[-1] == MarketResolved(
        info.condition_id, resolved.timestamp, info.yes_token, ""
    )
    assert kept.events == recorded


async def test_events_stored_before_their_order_are_replayed_by_receive_time(
    tmp_path: Path,
) -> None:
    """Rows without event_seq (files older than it) replay first, by receive time."""
    market = MarketRow(condition_id="0xm", yes_token="y", no_token="n", slug="m")

    def change(received: int, *prices: tuple[str, str]) -> PriceChangeRow:
        return PriceChangeRow(
            market="0xm", timestamp_ms=received - 1, received_at_ms=received,
            changes=tuple(LevelChange(a, D(p), D(5), "BUY", f"{a}{p}") for a, p in prices),
        )  # fmt: skip

    async with SQLiteStore(tmp_path / "old.sqlite") as store:
        await store.write_batch(
            [
                market,
                change(20, ("y", "0.41"), ("n", "0.58")),
                TradeRow(asset_id="y", market="0xm", timestamp_ms=14, side="BUY",
                         price=D("0.4"), size=D(1), received_at_ms=15),
                change(30, ("y", "0.42")),
                TradeRow(asset_id="y", market="0xm", timestamp_ms=40, side="BUY",
                         price=D("0.4"), size=D(1), received_at_ms=41, event_seq=1),
            ]
        )  # fmt: skip
        kept = Kept()
        result = await backtest(store, kept)
    assert result.events == 4
    shapes = [
        (type(e).__name__, len(e.price_changes) if isinstance(e, PriceChange) else 1)
        for e in kept.events
    ]
    assert shapes == [
        ("LastTradePrice", 1),
        ("PriceChange", 2),
        ("PriceChange", 1),
        ("LastTradePrice", 1),
    ]


async def test_every_market_is_read_unfiltered_and_others_skipped(tmp_path: Path) -> None:
    """A replay of every market reads without a market filter; an event of a market the
    store has no row for is skipped, neither replayed nor counted invalid."""
    market = MarketRow(condition_id="0xm", yes_token="y", no_token="n", slug="m")

    def trade(market: str, seq: int) -> TradeRow:
        return TradeRow(asset_id="y", market=market, timestamp_ms=seq, side="BUY",
                        price=D("0.4"), size=D(1), received_at_ms=seq, event_seq=seq)  # fmt: skip

    async with SQLiteStore(tmp_path / "other.sqlite") as store:
        await store.write_batch([market, trade("0xm", 1), trade("0xother", 2), trade("0xm", 3)])
        everything = await backtest(store, strategy())
        chosen = await backtest(store, strategy(), markets=["m"])
    assert (everything.events, everything.invalid_events) == (2, 0)
    assert (chosen.events, chosen.invalid_events) == (2, 0)
