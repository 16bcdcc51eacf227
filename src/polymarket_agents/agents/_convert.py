"""From market-channel events to storage rows: what each kind of event becomes.

======================  ==========================================================
event                   rows (one queue item per event)
======================  ==========================================================
``book``                one :class:`~polymarket_agents.storage.BookSnapshotRow`
``price_change``        one :class:`~polymarket_agents.storage.PriceChangeRow`
                        holding every entry of ``price_changes`` (both tokens of the
                        market), in their order
``last_trade_price``    one :class:`~polymarket_agents.storage.TradeRow`
``tick_size_change``    one :class:`~polymarket_agents.storage.TickSizeChangeRow`
``best_bid_ask``        none: it repeats the ``best_bid``/``best_ask`` that every
                        stored price change already carries
``new_market``          none: a monitor watches its own market only
``market_resolved``     one :class:`~polymarket_agents.storage.MarketResolutionRow`;
                        the monitor also stores its market again as inactive
                        (:class:`~polymarket_agents.storage.MarketRow`)
======================  ==========================================================

Every row carries the event's own identity (timestamp, asset, the feed's hash or
transaction hash; a price change's entries), which the store's unique keys are built on:
an event stored twice (replayed, or re-sent after a restart) is a duplicate, never a
second row. Every row also carries the event's ``event_seq`` (its place in the order the
service took events) and ``books_ahead``, so that a backtest can replay the events in
exactly that order against books in exactly the state the strategy saw.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from polymarket_agents.feed import (
    Book,
    LastTradePrice,
    MarketEvent,
    MarketInfo,
    MarketResolved,
    PriceChange,
    TickSizeChange,
)
from polymarket_agents.storage import (
    BookSnapshotRow,
    LevelChange,
    MarketResolutionRow,
    MarketRow,
    PriceChangeRow,
    Table,
    TickSizeChangeRow,
    TradeRow,
)

__all__ = ["CONVERTERS", "EventRows", "event_rows", "market_row"]

EventRows = BookSnapshotRow | PriceChangeRow | TradeRow | TickSizeChangeRow | MarketResolutionRow
"""What one event becomes: one row."""


def _book(event: Book, received_ms: int, seq: int | None, ahead: int) -> BookSnapshotRow:
    return BookSnapshotRow(
        asset_id=event.asset_id,
        market=event.market,
        timestamp_ms=int(event.timestamp),
        hash=event.hash,
        bids=tuple([(level.price, level.size) for level in event.bids]),
        asks=tuple([(level.price, level.size) for level in event.asks]),
        received_at_ms=received_ms,
        event_seq=seq,
        books_ahead=ahead,
        tick_size=event.tick_size,
        last_trade_price=_last_trade(event.last_trade_price),
    )


def _last_trade(text: str) -> Decimal | None:
    """A book's ``last_trade_price`` text as the book keeps it: None if empty or not a number."""
    if not text:
        return None
    try:
        price = Decimal(text)
    except ArithmeticError:
        return None
    return price if price.is_finite() else None


def _price_change(
    event: PriceChange, received_ms: int, seq: int | None, ahead: int
) -> PriceChangeRow:
    return PriceChangeRow(
        market=event.market,
        timestamp_ms=int(event.timestamp),
        changes=tuple(
            [
                LevelChange(c.asset_id, c.price, c.size, c.side, c.hash, c.best_bid, c.best_ask)
                for c in event.price_changes
            ]
        ),
        received_at_ms=received_ms,
        event_seq=seq,
        books_ahead=ahead,
    )


def _trade(event: LastTradePrice, received_ms: int, seq: int | None, ahead: int) -> TradeRow:
    return TradeRow(
        asset_id=event.asset_id,
        market=event.market,
        timestamp_ms=int(event.timestamp),
        side=event.side,
        price=event.price,
        size=event.size,
        fee_rate_bps=event.fee_rate_bps,
        transaction_hash=event.transaction_hash,
        received_at_ms=received_ms,
        event_seq=seq,
        books_ahead=ahead,
    )


def _tick_size_change(
    event: TickSizeChange, received_ms: int, seq: int | None, ahead: int
) -> TickSizeChangeRow:
    return TickSizeChangeRow(
        asset_id=event.asset_id,
        market=event.market,
        timestamp_ms=int(event.timestamp),
        old_tick_size=event.old_tick_size,
        new_tick_size=event.new_tick_size,
        received_at_ms=received_ms,
        event_seq=seq,
        books_ahead=ahead,
    )


def _resolution(
    event: MarketResolved, received_ms: int, seq: int | None, ahead: int
) -> MarketResolutionRow:
    return MarketResolutionRow(
        market=event.market,
        winning_asset_id=event.winning_asset_id,
        timestamp_ms=int(event.timestamp),
        received_at_ms=received_ms,
        event_seq=seq,
    )


CONVERTERS: dict[type, tuple[Table, Callable[[Any, int, int | None, int], Any]]] = {
    PriceChange: (Table.PRICE_CHANGES, _price_change),
    Book: (Table.BOOK_SNAPSHOTS, _book),
    LastTradePrice: (Table.TRADES, _trade),
    TickSizeChange: (Table.TICK_SIZE_CHANGES, _tick_size_change),
    MarketResolved: (Table.MARKET_RESOLUTIONS, _resolution),
}
"""Event type -> (the table its rows go to, the converter
``(event, received_ms, event_seq, books_ahead)``)."""


def event_rows(
    event: MarketEvent, received_ms: int, *, event_seq: int | None = None, books_ahead: int = 0
) -> EventRows | None:
    """The rows an event is stored as (see the module's table), or None.

    Args:
        event: A decoded market-channel event.
        received_ms: When the client received it, epoch milliseconds.
        event_seq: Its place in the order events were taken, if known.
        books_ahead: Later events of its market already applied to the books.

    Returns:
        The row, or None for kinds not stored.
    """
    entry = CONVERTERS.get(type(event))
    if entry is None:
        return None
    result: EventRows = entry[1](event, received_ms, event_seq, books_ahead)
    return result


def market_row(market: MarketInfo, updated_at_ms: int, *, active: bool | None = None) -> MarketRow:
    """The :class:`~polymarket_agents.storage.MarketRow` of a market.

    Args:
        market: The market.
        updated_at_ms: When its metadata was read.
        active: Overrides ``market.tradable`` (False once it is resolved).
    """
    return MarketRow(
        condition_id=market.condition_id,
        yes_token=market.yes_token,
        no_token=market.no_token,
        question=market.question,
        slug=market.slug,
        tick_size=market.tick_size,
        min_size=market.min_size,
        neg_risk=market.neg_risk,
        active=market.tradable if active is None else active,
        updated_at_ms=updated_at_ms,
    )
