"""From stored rows back to market-channel events: the inverse of ``_convert``.

A backtest reads the market-data tables as plain rows
(:meth:`~polymarket_agents.storage.Ledger.event_windows`, one row per event, in replay
order) and makes each event with the feed's own event types from the values stored,
exactly as the decoder made it live: a price is the same ``Decimal`` (same digits, same
exponent) whether parsed from the wire text or from the stored text, which is the text of
the validated event's value. A price change's entries are stored as one compact JSON
array, parsed in one call.

The event constructors still run their checks (cheap: numbers come through the feed's
caches of validated values), so a row that was changed in the database into something no
feed could have sent is counted and skipped, never replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import starmap
from typing import Any, NamedTuple

import msgspec

from polymarket_agents.feed import (
    Book,
    LastTradePrice,
    MarketEvent,
    MarketResolved,
    OrderLevel,
    PriceChange,
    PriceLevelChange,
    Side,
    TickSizeChange,
)
from polymarket_agents.storage import EventKind, EventWindow

__all__ = ["Recorded", "window_events"]

_logger = logging.getLogger("polymarket_agents.agents")


class Recorded(NamedTuple):
    """One stored event, made again, with what the replay needs to know about it.

    Attributes:
        seq: Its place in the order the service took events (None: stored before that
            was recorded).
        ahead: Later events of its market already in the books when the strategy saw it.
        market: The condition id.
        received_ms: When it was received.
        event: The event.
    """

    seq: int | None
    ahead: int
    market: str
    received_ms: int
    event: MarketEvent


# What a stored row can be that no validated event would have become.
_BROKEN = (ValueError, TypeError, ArithmeticError, IndexError, msgspec.DecodeError)

# A price change's stored entries: [asset_id, price, size, side, hash, best_bid, best_ask]
# each, the fields of PriceLevelChange in its order. The side is checked here, as the
# live decoder checks it: nothing in the event's constructor does. (A trade's side is
# checked by the table itself.)
_CHANGES = msgspec.json.Decoder(tuple[tuple[str, str, str, Side, str, str | None, str | None], ...])
_LEVELS = msgspec.json.Decoder(tuple[tuple[str, str], ...])

_new = tuple.__new__

_PRICE_CHANGE = int(EventKind.PRICE_CHANGE)
_BOOK = int(EventKind.BOOK)
_TRADE = int(EventKind.TRADE)
_TICK_SIZE_CHANGE = int(EventKind.TICK_SIZE_CHANGE)
_RESOLUTION = int(EventKind.RESOLUTION)


def _levels(text: str) -> tuple[OrderLevel, ...]:
    return tuple(starmap(OrderLevel, _LEVELS.decode(text)))


def _event(row: Sequence[Any]) -> MarketEvent:
    """The event of one :attr:`EventWindow.rows` row other than a price change's."""
    kind, market, timestamp = row[5], row[2], str(row[4])
    if kind == _TRADE:
        return LastTradePrice(row[6], market, row[7], row[8], row[9], timestamp, row[10], row[11])
    if kind == _BOOK:
        return Book(
            row[6],
            market,
            timestamp,
            _levels(row[7]),
            _levels(row[8]),
            row[9],
            row[10],
            row[11] or "",
        )
    if kind == _TICK_SIZE_CHANGE:
        return TickSizeChange(row[6], market, row[7], row[8], timestamp)
    if kind == _RESOLUTION:
        return MarketResolved(market, timestamp, row[6], "")
    raise ValueError(f"unknown kind of stored event {kind!r}")


def window_events(window: EventWindow) -> tuple[list[Recorded], int]:
    """The events of one window of stored rows, in replay order.

    Args:
        window: Rows as :meth:`~polymarket_agents.storage.Ledger.event_windows` yields them.

    Returns:
        The events, and how many stored events could not be made (each logged, skipped).
    """
    events: list[Recorded] = []
    append = events.append
    invalid = 0
    decode, change, price_change, make = _CHANGES.decode, PriceLevelChange, PriceChange, _event
    event: MarketEvent
    for row in window.rows:
        try:
            if type(row[1]) is not int or type(row[3]) is not int:
                raise TypeError(f"not integers: books_ahead {row[1]!r}, received {row[3]!r}")
            # Most events are price changes: made here, without a call per event.
            # PriceLevelChange checks nothing: its PriceChange converts and validates it.
            if row[5] == _PRICE_CHANGE:
                event = price_change(row[2], str(row[4]), tuple(starmap(change, decode(row[6]))))
            else:
                event = make(row)
        except _BROKEN as exc:
            invalid += 1
            _logger.warning("backtest: skipping stored event %s: %s", row[0], exc)
            continue
        # tuple.__new__ directly: a NamedTuple's own __new__ is a Python function.
        append(_new(Recorded, (row[0], row[1], row[2], row[3], event)))
    return events, invalid
