"""``backtest``: a strategy over recorded market events, exactly as a live run would see them.

The events come back from the store in the order the live monitors took them
(``event_seq``), in the market channel's wire format (the database rebuilds it from the
stored rows), and are decoded by the same :class:`~polymarket_agents.feed.FrameDecoder` as
live frames, applied to a
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

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from polymarket_agents.feed import (
    BookSet,
    FrameDecoder,
    InvalidMessage,
    MarketBooks,
    MarketEvent,
    MarketInfo,
    MarketResolved,
)
from polymarket_agents.storage import (
    AccountRecord,
    EventRecord,
    FillRow,
    Ledger,
    MarketRow,
    PaperOrderRow,
    Store,
    Table,
    WriteResult,
)

from ._analysis import DEFAULT_EDGE_THRESHOLD, Strategy
from ._paper import PaperBroker
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

    The broker's journal calls only :meth:`write_trades`; like the database, a second order
    for a signal already recorded, or an older revision of an order, is a duplicate.
    """

    __slots__ = ("fills", "orders", "signals")

    def __init__(self) -> None:
        self.orders: dict[str, PaperOrderRow] = {}
        self.fills: dict[tuple[str, int], FillRow] = {}
        self.signals: dict[tuple[int, str], str] = {}

    async def write_trades(self, rows: Sequence[object]) -> WriteResult:
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


@dataclass(slots=True)
class _Replayed:
    """One event ready to replay."""

    seq: int
    ahead: int
    market: str
    received_ms: int
    event: MarketEvent
    index: int  # its place among its market's events


class _Source:
    """Decoded events in replay order, with lookahead per market for ``books_ahead``.

    Each chunk of stored events is one JSON array frame (the database rebuilt each event's
    wire text) decoded by one :class:`~polymarket_agents.feed.FrameDecoder` call.
    """

    def __init__(self, chunks: AsyncIterator[list[EventRecord]], markets: set[str]) -> None:
        self._chunks = chunks
        self._decoder = FrameDecoder(max_frame_bytes=2**31 - 1)
        self.buffer: deque[_Replayed] = deque()
        """Events read and decoded, not yet replayed, in order."""
        self.by_market: dict[str, deque[_Replayed]] = {m: deque() for m in markets}
        """The same events, per market (for lookahead)."""
        self._counts: dict[str, int] = dict.fromkeys(markets, 0)
        self.invalid = 0
        self.done = False

    async def fill(self) -> bool:
        """Read the next chunk into the buffer; False at the end."""
        if self.done:
            return False
        try:
            records = await anext(self._chunks)
        except StopAsyncIteration:
            self.done = True
            return False
        events = self._decode(records)
        counts, by_market, buffer = self._counts, self.by_market, self.buffer
        for record, event in zip(records, events, strict=True):
            market = record.market
            if event is None or market not in counts:
                continue
            index = counts[market]
            counts[market] = index + 1
            item = _Replayed(
                record.event_seq or 0,
                record.books_ahead,
                market,
                record.received_at_ms,
                event,
                index,
            )
            buffer.append(item)
            by_market[market].append(item)
        return True

    def _decode(self, records: list[EventRecord]) -> list[MarketEvent | None]:
        """Every record's event; None for one that does not decode (counted, logged)."""
        try:
            return self._one_frame([record.wire for record in records])
        except InvalidMessage:
            pass
        # A stored event that does not decode: find it, count it, skip it.
        events: list[MarketEvent | None] = []
        for record in records:
            try:
                events.extend(self._one_frame([record.wire]))
            except InvalidMessage as exc:
                self.invalid += 1
                _logger.warning("backtest: skipping stored event %s: %s", record.event_seq, exc)
                events.append(None)
        return events

    def _one_frame(self, wires: list[str]) -> list[MarketEvent | None]:
        result = self._decoder.decode("[" + ",".join(wires) + "]")
        if not isinstance(result, list) or len(result) != len(wires):
            raise InvalidMessage("", "a stored event did not decode to one event")
        return list(result)

    async def ahead(self, market: str, index: int) -> MarketEvent | None:
        """The event of ``market`` numbered ``index``, read ahead if need be; None if the
        recording ends before it."""
        queued = self.by_market[market]
        while True:
            if queued:
                offset = index - queued[0].index
                if offset < len(queued):
                    return queued[offset].event
            if not await self.fill():
                return None


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
) -> tuple[int, int, int, int, int, int]:
    """Replay stored events through books, ``strategy`` and ``broker``; see the module.

    The broker must have been made with ``now=lambda: clock[0]`` for its times to follow
    the events.

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
    chunks = store.events(
        since_ms=since_ms, until_ms=until_ms, markets=[m.condition_id for m in markets]
    )
    source = _Source(chunks, set(pairs))
    applied: dict[str, int] = dict.fromkeys(pairs, 0)
    apply = books.apply
    analyze = strategy.analyze
    resting = broker.resting
    buffer, by_market = source.buffer, source.by_market
    events = signals = submitted = 0
    first_ms = last_ms = 0
    while buffer or await source.fill():
        if not buffer:
            continue
        item = buffer.popleft()
        market, index = item.market, item.index
        by_market[market].popleft()
        # Apply this event, and the later ones the live books already held.
        if applied[market] == index:
            apply((item.event,))
            applied[market] = index + 1
        if item.ahead:
            for later in range(applied[market], index + 1 + item.ahead):
                found = await source.ahead(market, later)
                if found is None:
                    break
                apply((found,))
                applied[market] = later + 1
        last_ms = item.received_ms
        clock[0] = last_ms / 1000
        events += 1
        pair = pairs[market]
        try:
            analysis = analyze(pair, item.event)
        except Exception as exc:
            _logger.debug("backtest: the strategy raised on event %d: %r", item.seq, exc)
            analysis = None
        if analysis is not None and analysis.edge > edge_threshold:
            signals += 1
            if analysis.orders:
                submitted += 1
                await broker.submit_trade(analysis)
        if resting(market):
            await broker.on_book_update(pair)
        if type(item.event) is MarketResolved:
            await broker.settle(market, item.event.winning_asset_id)
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
        # The journal only calls write_trades, which the recorder implements as a store does.
        store=cast(Store, recorder),
        starting_cash=starting_cash,
        fee_rate_bps=fee_rate_bps,
        now=lambda: clock[0],
        limits=limits,
    )
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
