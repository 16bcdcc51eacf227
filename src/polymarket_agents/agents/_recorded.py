"""From stored rows back to market-channel events: the inverse of ``_convert``.

A backtest reads the market-data tables as plain rows
(:meth:`~polymarket_agents.storage.Ledger.event_windows`) and makes each event with the
feed's own event types, from the values stored, exactly as the decoder made it live: a
price is the same ``Decimal`` (same digits, same exponent) whether parsed from the wire
text or from the stored text, which is the text of the validated event's value. Nothing
is encoded as JSON to be decoded again.

The event constructors still run their checks (cheap: numbers come through the feed's
caches of validated values), so a row that was changed in the database into something no
feed could have sent is counted and skipped, never replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import starmap
from operator import itemgetter
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


# What a stored row or event can be that no validated event would have become.
_BROKEN = (ValueError, TypeError, ArithmeticError, IndexError, msgspec.DecodeError)

_ENTRY = itemgetter(5, 6, 7, 8, 9, 10, 11)  # the PriceLevelChange fields of a changes row
_SEQ = itemgetter(0)
_LEVELS = msgspec.json.Decoder(tuple[tuple[str, str], ...])


def _levels(text: str) -> tuple[OrderLevel, ...]:
    return tuple(starmap(OrderLevel, _LEVELS.decode(text)))


def _other(row: Sequence[Any]) -> MarketEvent:
    """The event of one :attr:`EventWindow.others` row."""
    kind, market, timestamp = row[5], row[2], str(row[4])
    if kind == EventKind.TRADE:
        return LastTradePrice(row[6], market, row[7], row[8], row[9], timestamp, row[10], row[11])
    if kind == EventKind.BOOK:
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
    if kind == EventKind.TICK_SIZE_CHANGE:
        return TickSizeChange(row[6], market, row[7], row[8], timestamp)
    if kind == EventKind.RESOLUTION:
        return MarketResolved(market, timestamp, row[6], "")
    raise ValueError(f"unknown kind of stored event {kind!r}")


def _change_groups(seqs: list[int | None], changes: list[Sequence[Any]]) -> list[tuple[int, int]]:
    """``(start, end)`` of each event's entries among ``changes``."""
    groups: list[tuple[int, int]] = []
    start = 0
    # Entries stored before event order was recorded (first) make one event per receive
    # time, timestamp and market.
    legacy = seqs.count(None)
    previous: object = None
    for index in range(legacy):
        row = changes[index]
        key = (row[3], row[4], row[2])
        if index and key != previous:
            groups.append((start, index))
            start = index
        previous = key
    if legacy:
        groups.append((start, legacy))
    start = legacy
    previous = None
    for index in range(legacy, len(seqs)):
        seq = seqs[index]
        if seq != previous:
            if index > start:
                groups.append((start, index))
                start = index
            previous = seq
    if len(seqs) > start:
        groups.append((start, len(seqs)))
    return groups


def _broken(row: Sequence[Any], exc: Exception) -> MarketEvent | None:
    """None for a stored event that cannot be made again, logged."""
    _logger.warning("backtest: skipping stored event %s: %s", row[0], exc)
    return None


def window_events(window: EventWindow) -> tuple[list[Recorded], int]:
    """The events of one window of stored rows, in replay order.

    Args:
        window: Rows as :meth:`~polymarket_agents.storage.Ledger.event_windows` yields them.

    Returns:
        The events, and how many stored events could not be made (each logged, skipped).
    """
    changes = window.changes
    made: list[tuple[Sequence[Any], MarketEvent | None]] = []
    event: MarketEvent | None
    if changes:
        seqs: list[int | None] = list(map(_SEQ, changes))
        # The entries' own fields, straight from the rows (PriceLevelChange checks
        # nothing: its PriceChange converts and validates them).
        entries = list(starmap(PriceLevelChange, map(_ENTRY, changes)))
        for start, end in _change_groups(seqs, changes):
            head = changes[start]
            try:
                event = PriceChange(head[2], str(head[4]), tuple(entries[start:end]))
            except _BROKEN as exc:
                event = _broken(head, exc)
            made.append((head, event))
    first_other = len(made)
    for row in window.others:
        try:
            event = _other(row)
        except _BROKEN as exc:
            event = _broken(row, exc)
        made.append((row, event))
    events: list[Recorded] = []
    legacy: list[tuple[int, int, bool, Recorded]] = []
    for index, (head, event) in enumerate(made):
        if event is None:
            continue
        item = Recorded(head[0], head[1], head[2], head[3], event)
        if head[0] is None:
            # By receive time, then timestamp, changes first, as the service took them.
            legacy.append((head[3], head[4], index >= first_other, item))
        else:
            events.append(item)
    events.sort(key=_SEQ)  # at most two sorted runs (changes, others): one merge
    if legacy:
        legacy.sort(key=itemgetter(0, 1, 2))
        events[:0] = [item for *_, item in legacy]
    return events, sum(1 for _, event in made if event is None)
