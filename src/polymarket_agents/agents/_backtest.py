"""``backtest``: a strategy over recorded market events, exactly as a live run would see them.

The events come back from the store in the order the live monitors took them
(``event_seq``), as plain rows read a window at a time, and are made again with the
feed's own event types from the stored values (the same values the decoder made live,
checked by the same constructors, with no JSON in between), applied to a
:class:`~polymarket_agents.feed.BookSet` by the same code, analysed by the strategy and
traded by a :class:`PaperBroker`, with nothing between the steps but a loop. So the same
events, strategy and settings give the same trades as the live run that recorded them:

* events are replayed in ``event_seq`` order, the order the monitors took them, across
  every market (the broker's cash is shared, so the order between markets matters);
* when the live strategy's books already held later events of the market (the monitor had
  fallen behind its feed: ``books_ahead``), those events are applied early here too;
* the broker's clock is each event's receive time, so order times and GTD expiries repeat.

Nothing is written to the database: the trades are kept in memory and reported.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from polymarket_agents.feed import BookSet, MarketBooks, MarketInfo, MarketResolved
from polymarket_agents.storage import (
    AccountRecord,
    EventWindow,
    FillRow,
    Ledger,
    MarketRow,
    PaperOrderRow,
    Store,
    Table,
    WriteResult,
)

from ._analysis import DEFAULT_EDGE_THRESHOLD, Strategy
from ._journal import TradeJournal
from ._paper import PaperBroker
from ._recorded import Recorded, window_events
from ._report import Report, build_report
from ._risk import RiskLimits

__all__ = ["BacktestResult", "backtest", "replay"]

_logger = logging.getLogger("polymarket_agents.agents")


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """What a backtest did.

    Attributes:
        events: Events replayed (analysed by the strategy).
        invalid_events: Stored events that did not decode, counted and skipped.
        markets: Markets replayed.
        signals: Analyses with an edge above the threshold.
        submitted: Signals with orders handed to the broker.
        seconds: Wall-clock seconds the replay took.
        first_ms: Receive time of the first event replayed (0 without events).
        last_ms: Receive time of the last one.
        orders: Every order the broker placed or refused, in their final state.
        fills: Every fill, in time order.
        report: The account's report, as ``polymarket-agents report`` shows it.
    """

    events: int
    invalid_events: int
    markets: int
    signals: int
    submitted: int
    seconds: float
    first_ms: int
    last_ms: int
    orders: tuple[PaperOrderRow, ...]
    fills: tuple[FillRow, ...]
    report: Report

    @property
    def events_per_second(self) -> float:
        """Events replayed per wall-clock second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _Recorder:
    """Keeps the broker's order and fill rows in memory, as a store would keep them.

    The broker's journal calls :meth:`write_trades` (write-ahead records) and :meth:`put`
    (results); like the database, a second order for a signal already recorded, or an
    older revision of an order, is a duplicate.
    """

    __slots__ = ("fills", "orders", "signals")

    def __init__(self) -> None:
        self.orders: dict[str, PaperOrderRow] = {}
        self.fills: dict[tuple[str, int], FillRow] = {}
        self.signals: dict[tuple[int, str], str] = {}

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
        return self.put(rows)

    def put(self, rows: Sequence[object]) -> WriteResult:
        """Keep ``rows``; what a store's ``write_trades`` would have written."""
        written: dict[Table, int] = {}
        duplicates: dict[Table, int] = {}
        for row in rows:
            table, new = self._put(row)
            target = written if new else duplicates
            target[table] = target.get(table, 0) + 1
        return WriteResult(written=written, duplicates=duplicates)

    def _put(self, row: object) -> tuple[Table, bool]:
        if isinstance(row, FillRow):
            key = (row.order_id, row.seq)
            if key in self.fills:
                return Table.FILLS, False
            self.fills[key] = row
            return Table.FILLS, True
        assert isinstance(row, PaperOrderRow), row
        known = self.orders.get(row.order_id)
        if known is not None:
            if row.revision <= known.revision:
                return Table.PAPER_ORDERS, False
            self.orders[row.order_id] = row
            return Table.PAPER_ORDERS, True
        if row.signal_id is not None:
            owner = self.signals.setdefault((row.account_id, row.signal_id), row.order_id)
            if owner != row.order_id:
                return Table.PAPER_ORDERS, False
        self.orders[row.order_id] = row
        return Table.PAPER_ORDERS, True


class _Journal(TradeJournal):
    """The broker's journal in a backtest: each result goes straight into the recorder.

    A live journal stores a result in a task of its own, shielded, so that a cancelled
    caller cannot cut the write short; in memory there is nothing to cut short or retry,
    and a task per result (two per refused signal) cost a fifth of a replay's time in
    the broker."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(cast(Store, recorder))
        self._recorder = recorder

    async def record(self, rows: Sequence[object]) -> None:
        if rows:
            self.rows += len(rows)
            self._stored(rows, self._recorder.put(rows))


def _market_info(row: MarketRow) -> MarketInfo:
    return MarketInfo(
        condition_id=row.condition_id,
        question=row.question,
        slug=row.slug,
        yes_token=row.yes_token,
        no_token=row.no_token,
        tick_size=row.tick_size,
        min_size=row.min_size,
        neg_risk=row.neg_risk,
        active=row.active,
    )


_GC_THRESHOLD = 100_000
"""The garbage collector's first threshold while a replay runs (Python's is 700).

A replay makes and drops millions of objects that form no cycles, while keeping a window
or two of events alive: at the default threshold the collector went through those
windows' objects again and again, 12 % of the replay's time; at this one it seldom runs."""


class _Collections:
    """Raises the collector's first threshold while any replay runs, and puts back the
    thresholds found when the first one started once the last one ends."""

    __slots__ = ("_replays", "_saved")

    def __init__(self) -> None:
        self._replays = 0
        self._saved = gc.get_threshold()

    @contextlib.contextmanager
    def fewer(self) -> Iterator[None]:
        if not self._replays:
            self._saved = gc.get_threshold()
            first, *rest = self._saved
            gc.set_threshold(max(first, _GC_THRESHOLD), *rest)
        self._replays += 1
        try:
            yield
        finally:
            self._replays -= 1
            if not self._replays:
                gc.set_threshold(*self._saved)


_COLLECTIONS = _Collections()


class _Source:
    """Stored events in replay order, a window at a time, with lookahead for
    ``books_ahead``.

    :attr:`items` holds the events read and not yet replayed, the replay's own window
    first; :meth:`ahead` may append the next windows to it, and the replay, iterating
    over the same list, goes on into them.
    """

    __slots__ = ("_windows", "done", "invalid", "items", "offset")

    def __init__(self, windows: AsyncIterator[EventWindow]) -> None:
        self._windows = windows
        self.items: list[Recorded] = []
        self.offset = 0
        """The position of ``items[0]`` among every event read."""
        self.invalid = 0
        self.done = False

    async def _read(self) -> list[Recorded] | None:
        if self.done:
            return None
        try:
            window = await anext(self._windows)
        except StopAsyncIteration:
            self.done = True
            return None
        events, invalid = window_events(window)
        self.invalid += invalid
        return events

    async def next(self) -> list[Recorded]:
        """The events of the next window (after every event in :attr:`items`); empty at
        the end."""
        self.offset += len(self.items)
        self.items = []
        while (events := await self._read()) is not None:
            if events:
                self.items = events
                break
        return self.items

    async def ahead(self, position: int, market: str, count: int) -> list[int]:
        """The positions of the next ``count`` events of ``market`` after ``position``
        (fewer if the recording ends first), reading further windows if need be."""
        found: list[int] = []
        index = position - self.offset + 1
        items = self.items
        while len(found) < count:
            if index >= len(items):
                events = await self._read()
                if events is None:
                    break
                items.extend(events)
                continue
            if items[index].market == market:
                found.append(index + self.offset)
            index += 1
        return found

    def at(self, position: int) -> Recorded:
        """The event at ``position`` (read already)."""
        return self.items[position - self.offset]


async def replay(
    store: Ledger,
    *,
    strategy: Strategy,
    broker: PaperBroker,
    edge_threshold: Decimal = DEFAULT_EDGE_THRESHOLD,
    markets: Sequence[MarketRow],
    since_ms: int = 0,
    until_ms: int = 2**62,
    clock: list[float] | None = None,
    every_market: bool = False,
) -> tuple[int, int, int, int, int, int]:
    """Replay stored events through books, ``strategy`` and ``broker``; see the module.

    The broker must have been made with ``now=lambda: clock[0]`` for its times to follow
    the events. With ``every_market`` (``markets`` are every market the store holds) the
    events are read without a filter by market, the database's cheapest scan; the events
    of any other market are skipped all the same.

    Returns:
        ``(events, invalid events, signals, submitted, first receive ms, last receive ms)``.
    """
    books = BookSet()
    pairs: dict[str, MarketBooks] = {}
    for row in markets:
        pair = books.add_market(row.condition_id, row.yes_token, row.no_token)
        pairs[row.condition_id] = pair
        broker.track(pair, _market_info(row))
    clock = clock if clock is not None else [0.0]
    source = _Source(
        store.event_windows(
            since_ms=since_ms,
            until_ms=until_ms,
            markets=() if every_market else [m.condition_id for m in markets],
        )
    )
    early: set[int] = set()  # positions of events applied ahead of their turn
    apply = books.apply
    analyze = strategy.analyze
    resting = broker.resting
    resolved = MarketResolved
    events = signals = submitted = 0
    first_ms = last_ms = 0
    # Fewer collections while the loop makes and drops its objects (see the threshold).
    with _COLLECTIONS.fewer():
        while items := await source.next():
            position = source.offset - 1
            # ``items`` may grow while this runs (lookahead): the loop goes on into the growth.
            for seq, ahead, market, received_ms, event in items:
                position += 1
                found = pairs.get(market)
                if found is None:
                    continue
                pair = found
                # Apply this event, and the later ones the live books already held.
                if early and position in early:
                    early.discard(position)
                else:
                    apply((event,))
                if ahead:
                    for later in await source.ahead(position, market, ahead):
                        if later not in early:
                            early.add(later)
                            apply((source.at(later).event,))
                last_ms = received_ms
                clock[0] = last_ms / 1000
                events += 1
                try:
                    analysis = analyze(pair, event)
                except Exception as exc:
                    _logger.debug("backtest: the strategy raised on event %s: %r", seq, exc)
                    analysis = None
                if analysis is not None and analysis.edge > edge_threshold:
                    signals += 1
                    if analysis.orders:
                        submitted += 1
                        await broker.submit_trade(analysis)
                if resting(market):
                    await broker.on_book_update(pair)
                if type(event) is resolved:
                    await broker.settle(market, event.winning_asset_id)
                if events == 1:
                    first_ms = last_ms
    return events, source.invalid, signals, submitted, first_ms, last_ms


async def backtest(
    store: Ledger,
    strategy: Strategy,
    *,
    edge_threshold: Decimal = DEFAULT_EDGE_THRESHOLD,
    starting_cash: Decimal = Decimal(1000),
    fee_rate_bps: Decimal = Decimal(0),
    limits: RiskLimits | None = None,
    markets: Iterable[str] = (),
    since_ms: int = 0,
    until_ms: int = 2**62,
    account: str = "backtest",
) -> BacktestResult:
    """Run ``strategy`` over the market events ``store`` recorded; trade on paper in memory.

    Args:
        store: An open store (SQLite or PostgreSQL).
        strategy: The strategy, fresh (its ``resume`` is called with no signal ids).
        edge_threshold: Trade only edges above this, as ``run`` does.
        starting_cash: USDC the paper account starts with.
        fee_rate_bps: As for ``run``.
        limits: The account's risk limits, as for ``run``.
        markets: Condition ids or slugs to replay; every recorded market when empty.
        since_ms: Replay events timestamped (by the feed) at or after this time (epoch ms).
        until_ms: ... and at or before this one.
        account: The name the report gives the account.

    Returns:
        What was replayed and traded, with the report.

    Raises:
        LookupError: If a market asked for is not in the database.
        StoreUnavailableError: If the store cannot be read.
    """
    known = await store.markets()
    wanted = list(markets)
    if wanted:
        index = {key: m for m in known for key in (m.condition_id, m.slug) if key}
        missing = [name for name in wanted if name not in index]
        if missing:
            raise LookupError(f"market(s) not recorded: {', '.join(missing)}")
        chosen = list({index[name].condition_id: index[name] for name in wanted}.values())
    else:
        chosen = known
    clock = [0.0]
    recorder = _Recorder()
    broker = PaperBroker(
        starting_cash=starting_cash,
        fee_rate_bps=fee_rate_bps,
        now=lambda: clock[0],
        limits=limits,
    )
    broker.journal = _Journal(recorder)  # the broker's rows kept in memory, not stored
    strategy.resume(())
    started = time.perf_counter()
    events, invalid, signals, submitted, first_ms, last_ms = await replay(
        store,
        strategy=strategy,
        broker=broker,
        edge_threshold=edge_threshold,
        markets=chosen,
        since_ms=since_ms,
        until_ms=until_ms,
        clock=clock,
        every_market=not wanted,
    )
    seconds = time.perf_counter() - started
    orders = tuple(recorder.orders.values())
    fills = tuple(
        sorted(recorder.fills.values(), key=lambda f: (f.timestamp_ms, f.order_id, f.seq))
    )
    report = build_report(
        account=AccountRecord(
            id=1,
            name=account,
            opened_at_ms=first_ms,
            closed_at_ms=None,
            starting_cash=starting_cash,
        ),
        orders=orders,
        fills=fills,
        markets=chosen,
        marks={},
    )
    return BacktestResult(
        events=events,
        invalid_events=invalid,
        markets=len(chosen),
        signals=signals,
        submitted=submitted,
        seconds=seconds,
        first_ms=first_ms,
        last_ms=last_ms,
        orders=orders,
        fills=fills,
        report=report,
    )
