"""``monitor_market``: one market's feed, stored, analysed and traded, until cancelled.

The seed's monitor on real pieces: its own :class:`~polymarket_agents.feed.MarketFeed`
(one websocket, closed on every way out, cancellation included, and re-raised, never
swallowed), each event turned into storage rows and handed to the bounded ingestion queue
(waiting when it is full: backpressure, never loss), the strategy run on the updated books
after each event, and the orders of an edge above the threshold submitted to the broker.

Invalid frames are counted and skipped by the feed; network errors are recovered by the
feed's reconnect (the core's ``robust_task`` backoff) without leaving the monitor; anything
else ends the monitor with an error, for its supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, cast

import msgspec

from polymarket_agents.core.async_utils import ConfigurationError, beat
from polymarket_agents.feed import (
    BestBidAsk,
    Book,
    FeedStats,
    FeedStopped,
    LastTradePrice,
    MarketBooks,
    MarketEvent,
    MarketFeed,
    MarketInfo,
    MarketResolved,
    MarketStream,
    NewMarket,
    PriceChange,
    TickSizeChange,
    redact_text,
    redact_url,
)
from polymarket_agents.storage import Table

from ._analysis import DEFAULT_EDGE_THRESHOLD, Analysis, ComplementArbitrage, Strategy
from ._broker import Broker
from ._convert import CONVERTERS, market_row
from ._handoff import DEFAULT_HANDOFF_TIMEOUT, handoff
from ._orders import OrderResponse
from ._sequence import EventSequence

__all__ = ["RECENT_SIGNALS", "MarketMonitor", "MonitorStats", "monitor_market"]

RECENT_SIGNALS = 20
"""Signals a monitor keeps in :attr:`MarketMonitor.recent_signals`."""

_EDGE_DIGITS = Decimal("0.0001")

_logger = logging.getLogger("polymarket_agents.agents")

_EVENT_NAMES: dict[type, str] = {
    Book: "book",
    PriceChange: "price_change",
    LastTradePrice: "last_trade_price",
    TickSizeChange: "tick_size_change",
    BestBidAsk: "best_bid_ask",
    NewMarket: "new_market",
    MarketResolved: "market_resolved",
}

# Feed counters that add up over the feeds of successive runs.
_FEED_TOTALS = (
    "frames",
    "events",
    "invalid_frames",
    "invalid_operations",
    "connections",
    "reconnects",
    "resyncs",
    "dropped_updates",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorStats:
    """A snapshot of a monitor's counters, summed over all its runs (restarts).

    Accounting: every event the monitor takes from its feed is counted in ``events`` (by
    type in ``events_by_type``); the rows it makes of them (see
    :mod:`polymarket_agents.agents` for which kinds become which rows) are counted in
    ``rows`` (by table in ``rows_by_table``) once handed to the queue, or in
    ``lost_rows`` if a stop had to abandon them. Frames the feed had decoded but the
    monitor had not taken when it stopped are counted by the feed (``feed_events``), never
    by the monitor.

    Attributes:
        market: The condition id.
        running: Whether a run is in progress.
        connected: Whether its feed is connected now.
        synced: Whether both books are synced now.
        starts: Runs started (1 + restarts).
        events: Events taken from the feed.
        events_by_type: ``events`` per ``event_type``.
        rows: Rows handed to the ingestion queue (market rows included).
        rows_by_table: ``rows`` per table name.
        lost_rows: Rows abandoned at a stop because the queue stayed full.
        signals: Analyses with an edge above the threshold.
        submitted: Signals with orders handed to the broker.
        orders: Orders the broker placed for them.
        analysis_errors: Exceptions raised by the strategy, counted and skipped.
        frames: Frames received by the feeds.
        feed_events: Events decoded by the feeds.
        backlog: Events the current feed decoded that the monitor has not taken yet.
        invalid_frames: Frames that failed to decode, counted and skipped by the feeds.
        invalid_by_kind: ``invalid_frames`` per kind of problem
            (:class:`~polymarket_agents.feed.InvalidKind` values).
        invalid_operations: ``INVALID OPERATION`` replies.
        connections: Connections opened.
        reconnects: Connection attempts after each feed's first.
        resyncs: Snapshots requested again for stale books.
        dropped_updates: Price changes dropped while a book was unsynced.
        last_error: The error that ended the last run or connection, if any.
    """

    market: str
    running: bool
    connected: bool
    synced: bool
    starts: int
    events: int
    events_by_type: Mapping[str, int]
    rows: int
    rows_by_table: Mapping[str, int]
    lost_rows: int
    signals: int
    submitted: int
    orders: int
    analysis_errors: int
    frames: int
    feed_events: int
    backlog: int
    invalid_frames: int
    invalid_by_kind: Mapping[str, int]
    invalid_operations: int
    connections: int
    reconnects: int
    resyncs: int
    dropped_updates: int
    last_error: str | None


class MarketMonitor:
    """Watches one binary market: feed -> rows on the queue -> strategy -> broker.

    ::

        monitor = MarketMonitor(market, feed_url=sim.ws_url, queue=queue, broker=broker)
        await supervisor.start_task(f"monitor_{market.condition_id}", monitor.run)
        monitor.stats.events

    One monitor object can be run again after a run ends (that is how a supervisor
    restarts it, from the factory ``monitor.run``); its counters, its strategy's memory
    and its broker carry over, and each run opens a new feed.

    With ``feed``, a shared :class:`~polymarket_agents.feed.MarketFeed` (the pooled
    connections of a whole process), each run attaches to it for this market's events
    instead of opening a socket of its own, and the feed's counters are the feed's, not
    the monitor's (``frames``, ``invalid_frames``, ``reconnects`` ... stay 0 here).

    Args:
        market: The market (both tokens are subscribed).
        feed_url: The market channel URL (the simulator's ``ws_url``, or Polymarket's),
            for a feed of the monitor's own.
        feed: A started shared feed to attach to, instead of ``feed_url``.
        queue: The bounded ingestion queue rows are put on; None: nothing is stored.
        broker: Where orders go; None: signals are counted, not traded.
        strategy: The analysis; :class:`ComplementArbitrage` with ``min_edge`` equal to
            the threshold if None.
        edge_threshold: Orders are submitted only for an edge above this (the seed's 0.05).
        feed_options: Keyword arguments for :class:`~polymarket_agents.feed.MarketFeed`
            (``policy``, ``ping_interval``, ``silence_timeout`` ...).
        handoff_timeout: Seconds a cancelled monitor still waits to queue the rows in
            hand before it abandons them.
        clock: Wall clock (seconds since the epoch) for the rows' ``received_at_ms``.
        sequence: Numbers the events taken (share one among the monitors of a process);
            a sequence of its own, run 0, if None.
        logger: Where to log.

    Raises:
        ConfigurationError: On a negative threshold, invalid feed options, or not exactly
            one of ``feed_url`` and ``feed``.
    """

    def __init__(
        self,
        market: MarketInfo,
        *,
        feed_url: str | None = None,
        feed: MarketFeed | None = None,
        queue: asyncio.Queue[Any] | None = None,
        broker: Broker | None = None,
        strategy: Strategy | None = None,
        edge_threshold: Decimal = DEFAULT_EDGE_THRESHOLD,
        feed_options: Mapping[str, Any] | None = None,
        handoff_timeout: float = DEFAULT_HANDOFF_TIMEOUT,
        clock: Callable[[], float] = time.time,
        sequence: EventSequence | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not edge_threshold >= 0:
            raise ConfigurationError(f"edge_threshold must be >= 0, not {edge_threshold!r}")
        if (feed_url is None) == (feed is None):
            raise ConfigurationError("give the monitor a feed_url or a shared feed, not both")
        self.market = market
        self.feed_url = feed.url if feed is not None else feed_url
        self._shared = feed
        self.queue = queue
        self.broker = broker
        self._own_strategy = strategy is None
        self.strategy: Strategy = (
            strategy if strategy is not None else ComplementArbitrage(min_edge=edge_threshold)
        )
        self.edge_threshold = edge_threshold
        self._feed_options = dict(feed_options or {})
        self._feed_options.setdefault("name", f"feed-{market.condition_id[:10]}")
        if feed_url is not None:
            # Check the options now rather than at the first run.
            MarketFeed(feed_url, markets=(), **self._feed_options)
        self._handoff_timeout = handoff_timeout
        self._clock = clock
        self.sequence = sequence if sequence is not None else EventSequence()
        self.recent_signals: deque[dict[str, Any]] = deque(maxlen=RECENT_SIGNALS)
        """The last signals above the threshold and what became of them, oldest first."""
        self._logger = logger or _logger
        self._feed: MarketFeed | None = None
        self._stream: MarketStream | None = None
        self._taken = 0
        self._books: MarketBooks | None = None
        self._running = False
        self._starts = 0
        self._counts: dict[type, int] = {}
        self._events_at_start = 0
        self._table_rows: dict[str, int] = {}
        self._lost_rows = 0
        self._signals = 0
        self._submitted = 0
        self._orders = 0
        self._analysis_errors = 0
        self._past = dict.fromkeys(_FEED_TOTALS, 0)
        self._past_invalid: dict[str, int] = {}
        self._last_error: str | None = None

    def __repr__(self) -> str:
        state = "running" if self._running else "idle"
        return f"<MarketMonitor {self.market.condition_id[:10]}... {state} starts={self._starts}>"

    @property
    def feed(self) -> MarketFeed | None:
        """The feed of the run in progress (the shared one, if any), or None."""
        return self._feed

    @property
    def connected(self) -> bool:
        """Whether a run is in progress and the connection carrying the market is open."""
        stream = self._stream
        if stream is not None:
            return stream.connected
        feed = self._feed
        return feed is not None and feed.connected

    @property
    def silent_for(self) -> float | None:
        """Seconds since the market's connection last brought data; None if there is no
        open connection."""
        stream = self._stream
        if stream is not None:
            return stream.silent_for
        feed = self._feed
        return None if feed is None else feed.silent_for

    @property
    def books(self) -> MarketBooks | None:
        """The market's books in the run in progress, or None."""
        return self._books if self._running else None

    @property
    def stats(self) -> MonitorStats:
        """A snapshot of the counters (see :class:`MonitorStats`)."""
        feed = self._feed
        stream = self._stream
        live: FeedStats | None = feed.stats if feed is not None and stream is None else None
        totals = dict(self._past)
        invalid_by_kind = dict(self._past_invalid)
        if live is not None:
            for name in _FEED_TOTALS:
                totals[name] += getattr(live, name)
            for kind, count in live.invalid_by_kind.items():
                invalid_by_kind[kind] = invalid_by_kind.get(kind, 0) + count
        books = self._books
        events = sum(self._counts.values())
        events_by_type = {_EVENT_NAMES.get(k, k.__name__): n for k, n in self._counts.items()}
        return MonitorStats(
            market=self.market.condition_id,
            running=self._running,
            connected=self.connected,
            synced=self._running and books is not None and books.synced,
            starts=self._starts,
            events=events,
            events_by_type=events_by_type,
            rows=sum(self._table_rows.values()),
            rows_by_table=dict(self._table_rows),
            lost_rows=self._lost_rows,
            signals=self._signals,
            submitted=self._submitted,
            orders=self._orders,
            analysis_errors=self._analysis_errors,
            frames=totals["frames"],
            feed_events=totals["events"],
            backlog=(
                stream.backlog
                if stream is not None
                else live.events - (events - self._events_at_start)
                if live is not None
                else 0
            ),
            invalid_frames=totals["invalid_frames"],
            invalid_by_kind=invalid_by_kind,
            invalid_operations=totals["invalid_operations"],
            connections=totals["connections"],
            reconnects=totals["reconnects"],
            resyncs=totals["resyncs"],
            dropped_updates=totals["dropped_updates"],
            last_error=(live.last_error if live is not None else None) or self._last_error,
        )

    async def run(self) -> NoReturn:
        """Monitor the market until cancelled.

        Raises:
            asyncio.CancelledError: When cancelled, after the feed's socket was closed.
            FeedStopped: If the feed's connection failed for good (a fatal error such as a
                refused subscription URL); a supervisor restarts the monitor.
            RuntimeError: If this monitor is already running.
        """
        if self._running:
            raise RuntimeError("this MarketMonitor is already running; create another")
        if self._shared is not None:
            await self._run_shared(self._shared)
        self._running = True
        self._starts += 1
        self._events_at_start = sum(self._counts.values())
        market = self.market
        assert self.feed_url is not None
        feed = MarketFeed(self.feed_url, markets=(market,), **self._feed_options)
        self._feed = feed
        books = feed.books.pair(market.condition_id)
        self._books = books
        try:
            async with feed:
                if self.broker is not None:
                    self.broker.track(books, market)
                    if self._own_strategy:
                        self.strategy.resume(self.broker.signal_ids)
                if self.queue is not None:
                    await self._put(market_row(market, self._now_ms()), Table.MARKETS, 1)
                self._logger.info(
                    "monitoring %s (%s) on %s",
                    market.condition_id,
                    market.slug,
                    redact_url(self.feed_url),
                )
                await self._consume(feed.events(), books, lambda: feed.events_received)
            raise FeedStopped(f"{feed.name}: the feed ended")
        except Exception as exc:
            self._last_error = redact_text(f"{type(exc).__name__}: {exc}", (self.feed_url,))
            raise
        finally:
            self._running = False
            self._retire(feed, books)

    async def _run_shared(self, feed: MarketFeed) -> NoReturn:
        """A run on a shared feed: attach, consume this market's stream, detach."""
        self._running = True
        self._starts += 1
        self._events_at_start = sum(self._counts.values())
        market = self.market
        self._feed = feed
        try:
            stream = await feed.attach(market)
        except BaseException:
            self._running = False
            self._feed = None
            raise
        self._stream = stream
        self._books = stream.books
        try:
            if self.broker is not None:
                self.broker.track(stream.books, market)
                if self._own_strategy:
                    self.strategy.resume(self.broker.signal_ids)
            if self.queue is not None:
                await self._put(market_row(market, self._now_ms()), Table.MARKETS, 1)
            self._logger.debug(
                "monitoring %s (%s) on %s (%s)",
                market.condition_id,
                market.slug,
                redact_url(feed.url),
                stream.connection,
            )
            self._taken = 0  # of stream.received: the stream is new
            # The stream's connection calls the monitor for each batch: no task switch
            # per event.
            await stream.serve(self._on_batch)
            raise FeedStopped(f"{feed.name}: the stream of {market.condition_id} ended")
        except Exception as exc:
            self._last_error = redact_text(f"{type(exc).__name__}: {exc}", (feed.url,))
            raise
        finally:
            # The books stay the feed's, kept up to date for the next run.
            stream.close()
            self._running = False
            self._feed = None
            self._stream = None

    def _retire(self, feed: MarketFeed, books: MarketBooks) -> None:
        """Fold a finished feed's counters into the totals; its books are no longer kept."""
        stats = feed.stats
        for name in _FEED_TOTALS:
            self._past[name] += getattr(stats, name)
        for kind, count in stats.invalid_by_kind.items():
            self._past_invalid[kind] = self._past_invalid.get(kind, 0) + count
        if stats.last_error is not None:
            self._last_error = stats.last_error
        self._feed = None
        # Nobody updates these books any more: make sure nobody trades on them.
        books.yes.invalidate()
        books.no.invalidate()

    async def store_inactive(self) -> None:
        """Queue the market's ``markets`` row, inactive: what retiring the market leaves."""
        if self.queue is not None:
            row = market_row(self.market, self._now_ms(), active=False)
            await self._put(row, Table.MARKETS, 1)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _put(self, item: object, table: str, count: int) -> None:
        """Hand ``item`` (``count`` rows of ``table``) to the queue, waiting for room."""
        rows = self._table_rows
        rows[table] = rows.get(table, 0) + count

        def lost(_: object) -> None:
            rows[table] -= count
            self._lost_rows += count

        assert self.queue is not None
        await handoff(
            self.queue, item, timeout=self._handoff_timeout, logger=self._logger, on_lost=lost
        )

    async def _consume(
        self,
        events: AsyncIterator[MarketEvent],
        books: MarketBooks,
        received: Callable[[], int],
    ) -> None:
        """Take every event of an iterator (a feed of the monitor's own): see :meth:`_take`.

        Args:
            events: The market's events, each applied to ``books`` before it comes.
            books: The market's books.
            received: How many events the source has applied and handed over so far; minus
                the events taken, how far ``books`` are ahead of the event in hand.
        """
        take = self._take
        taken = 0
        generator = cast(AsyncGenerator[MarketEvent, None], events)
        async with contextlib.aclosing(generator):
            async for event in generator:
                taken += 1
                pending = take(event, books, received() - taken)
                if pending is not None:
                    await pending

    def _on_batch(self, batch: list[MarketEvent]) -> Awaitable[None] | None:
        """Take a batch of a shared stream's events, in the stream's connection: nothing to
        await for most batches, or what is left to do once one event needs to wait."""
        stream = self._stream
        assert stream is not None
        books = stream.books
        take = self._take
        for index, event in enumerate(batch):
            self._taken += 1
            pending = take(event, books, stream.received - self._taken)
            if pending is not None:
                rest = batch[index + 1 :]
                return self._take_later(pending, rest, stream) if rest else pending
        return None

    async def _take_later(
        self, pending: Awaitable[None], rest: list[MarketEvent], stream: MarketStream
    ) -> None:
        await pending
        for event in rest:
            self._taken += 1
            pending_now = self._take(event, stream.books, stream.received - self._taken)
            if pending_now is not None:
                await pending_now

    def _take(
        self, event: MarketEvent, books: MarketBooks, ahead: int
    ) -> Coroutine[Any, Any, None] | None:
        """The hot path: an event to rows, analysis and, if need be, trades.

        Everything that need not wait happens here, synchronously: the event is numbered,
        its rows go on the queue (when it has room), the strategy runs. What must wait (a
        trade, resting orders to check, rows waiting for room, a resolved market) is
        returned as a coroutine to await before the next event. Nothing awaits between
        numbering an event and the broker's decision on it, so the numbers order the
        trades.

        Args:
            event: The event, already applied to ``books``.
            books: The market's books.
            ahead: Later events of the market the books already hold (``books_ahead``).
        """
        beat()  # alive: for a supervisor's heartbeat check, if it has one
        kind = type(event)
        counts = self._counts
        counts[kind] = counts.get(kind, 0) + 1
        seq = self.sequence()
        queue = self.queue
        waiting: tuple[object, str, int] | None = None
        if queue is not None:
            entry = CONVERTERS.get(kind)
            if entry is not None:
                table, convert = entry
                rows = convert(event, int(self._clock() * 1000), seq, ahead)
                count = len(rows) if type(rows) is tuple else 1
                try:
                    queue.put_nowait(rows)
                except asyncio.QueueFull:
                    waiting = (rows, table, count)
                else:
                    table_rows = self._table_rows
                    table_rows[table] = table_rows.get(table, 0) + count
        try:
            analysis = self.strategy.analyze(books, event)
        except Exception as exc:
            self._analysis_failed(exc)
            analysis = None
        broker = self.broker
        trade: Analysis | None = None
        if analysis is not None and analysis.edge > self.edge_threshold:
            self._signals += 1
            if analysis.orders and broker is not None:
                trade = analysis
            else:
                self._signal_seen(analysis, [])
        condition_id = books.condition_id
        if (
            trade is None
            and waiting is None
            and (broker is None or not broker.resting(condition_id))
            and kind is not MarketResolved
            and kind is not TickSizeChange
        ):
            return None
        return self._then(event, books, trade, waiting)

    async def _then(
        self,
        event: MarketEvent,
        books: MarketBooks,
        trade: Analysis | None,
        waiting: tuple[object, str, int] | None,
    ) -> None:
        """What an event left to do that waits: in the order the hot loop always had."""
        broker = self.broker
        condition_id = books.condition_id
        if trade is not None and broker is not None:
            self._submitted += 1
            responses = await broker.submit_trade(trade)
            self._orders += len(responses)
            self._signal_seen(trade, responses)
        if broker is not None and broker.resting(condition_id):
            await broker.on_book_update(books)
        if waiting is not None:
            await self._put(*waiting)
        if isinstance(event, MarketResolved) and event.market == condition_id:
            if broker is not None:
                await broker.settle(condition_id, event.winning_asset_id)
            if self.queue is not None:
                row = market_row(self.market, self._now_ms(), active=False)
                await self._put(row, Table.MARKETS, 1)
        elif isinstance(event, TickSizeChange) and event.market == condition_id:
            await self._tick_size_changed(event)

    async def _tick_size_changed(self, event: TickSizeChange) -> None:
        """``markets.tick_size`` follows the market's tick (one row per change, not per
        token)."""
        if event.new_tick_size == self.market.tick_size:
            return
        self.market = msgspec.structs.replace(self.market, tick_size=event.new_tick_size)
        if self.queue is not None:
            await self._put(market_row(self.market, self._now_ms()), Table.MARKETS, 1)

    def _signal_seen(self, analysis: Analysis, responses: list[OrderResponse]) -> None:
        """Keep a signal among the recent ones (for a dashboard): what was decided of it."""
        if not analysis.orders:
            outcome = "no orders"
        elif not responses:
            outcome = "handled before"
        else:
            outcome = ", ".join(
                r["status"] + (f" ({r['errorMsg']})" if r["errorMsg"] else "") for r in responses
            )
        self.recent_signals.append(
            {
                "time_ms": self._now_ms(),
                "market": self.market.condition_id,
                "slug": self.market.slug,
                "signal_id": analysis.signal_id,
                "edge": str(analysis.edge.quantize(_EDGE_DIGITS)),
                "reason": analysis.reason,
                "outcome": outcome,
            }
        )

    def _analysis_failed(self, exc: Exception) -> None:
        self._analysis_errors += 1
        # The first failure with its traceback; a strategy failing on every event must not
        # flood the log.
        level = logging.WARNING if self._analysis_errors == 1 else logging.DEBUG
        self._logger.log(
            level,
            "%s: the strategy raised; event skipped (%d so far)",
            self.market.condition_id,
            self._analysis_errors,
            exc_info=exc,
        )


async def monitor_market(
    market: MarketInfo,
    *,
    feed_url: str | None = None,
    feed: MarketFeed | None = None,
    queue: asyncio.Queue[Any] | None = None,
    broker: Broker | None = None,
    strategy: Strategy | None = None,
    edge_threshold: Decimal = DEFAULT_EDGE_THRESHOLD,
    feed_options: Mapping[str, Any] | None = None,
    handoff_timeout: float = DEFAULT_HANDOFF_TIMEOUT,
    logger: logging.Logger | None = None,
) -> NoReturn:
    """Monitor one market until cancelled: the seed's ``monitor_market``, on real pieces.

    ``await monitor_market(market, ...)`` is ``await MarketMonitor(market, ...).run()``;
    see :class:`MarketMonitor`. Give a supervisor a factory so that restarts keep state::

        await supervisor.start_task(
            "monitor_btc",
            lambda: monitor_market(market, feed_url=url, queue=queue, broker=broker),
        )

    Many monitors share one pooled feed with ``feed=``: ``monitor_market(market,
    feed=shared_feed)`` attaches to it instead of opening a socket per market.

    (A restart of this function builds a new default strategy; it then restores its
    episode counters from the broker's signal ids, so a signal is still traded once.)

    Args:
        market: The market.
        feed_url: The market channel URL, for a socket of the monitor's own.
        feed: A started shared feed to attach to, instead of ``feed_url``.
        queue: The bounded ingestion queue; None: nothing is stored.
        broker: Where orders go; None: nothing is traded.
        strategy: The analysis; :class:`ComplementArbitrage` if None.
        edge_threshold: Submit orders only for an edge above this.
        feed_options: Keyword arguments for :class:`~polymarket_agents.feed.MarketFeed`.
        handoff_timeout: Seconds a cancelled monitor still waits to queue rows in hand.
        logger: Where to log.

    Raises:
        asyncio.CancelledError: When cancelled, after the socket was closed.
        FeedStopped: If the feed failed for good.
        ConfigurationError: On invalid arguments.
    """
    monitor = MarketMonitor(
        market,
        feed_url=feed_url,
        feed=feed,
        queue=queue,
        broker=broker,
        strategy=strategy,
        edge_threshold=edge_threshold,
        feed_options=feed_options,
        handoff_timeout=handoff_timeout,
        logger=logger,
    )
    await monitor.run()
