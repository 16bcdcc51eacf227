"""The rows the store keeps: one immutable value type per table.

The agents layer turns feed events and paper-trading records into these rows and puts them
on the ingestion queue. Prices, sizes and fee rates are :class:`~decimal.Decimal` and are
stored as their exact decimal text, never as binary floats. Timestamps are integer epoch
milliseconds, as the Polymarket market channel sends them.

The rows are ``msgspec`` Structs rather than dataclasses because the feed creates one per
event: a frozen Struct is built about five times faster than a frozen slotted dataclass.
They are not validated on construction (that would cost as much again on the hot path); the
store checks each row when it writes it and reports the ones it refuses.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import TypeAlias

import msgspec

__all__ = [
    "FILL_KINDS",
    "OPEN_STATUSES",
    "ORDER_TYPES",
    "SIDES",
    "BookLevel",
    "BookSnapshotRow",
    "FillRow",
    "LevelChange",
    "MarketResolutionRow",
    "MarketRow",
    "PaperOrderRow",
    "Position",
    "PriceChangeRow",
    "Row",
    "Table",
    "TickSizeChangeRow",
    "TradeRow",
]

SIDES = frozenset({"BUY", "SELL"})
"""The sides a price change, trade, order or fill may have."""

ORDER_TYPES = frozenset({"GTC", "GTD", "FOK", "FAK"})
"""The order types of py-clob-client's ``OrderType``."""

OPEN_STATUSES = ("live", "pending")
"""Order statuses that are not final: ``live`` (resting in the book) and ``pending``
(recorded before execution, its result not yet stored)."""

_ZERO = Decimal(0)

BookLevel: TypeAlias = tuple[Decimal, Decimal]
"""One price level of a book: ``(price, size)``."""


class Table(enum.StrEnum):
    """The tables of the store, by name."""

    MARKETS = "markets"
    BOOK_SNAPSHOTS = "book_snapshots"
    PRICE_CHANGES = "price_changes"
    TRADES = "trades"
    TICK_SIZE_CHANGES = "tick_size_changes"
    PAPER_ORDERS = "paper_orders"
    FILLS = "fills"
    MARKET_RESOLUTIONS = "market_resolutions"


class MarketRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A binary market: its condition id and its YES/NO token pair.

    Unique by ``condition_id``. Writing the same market again is a duplicate; writing it with
    changed metadata updates the stored row (counted as written).

    Attributes:
        condition_id: The market's condition id (``0x`` + 64 hex).
        yes_token: Token id of the YES outcome.
        no_token: Token id of the NO outcome.
        question: The market's question.
        slug: The market's URL slug.
        tick_size: Minimum price increment.
        min_size: Minimum order size in shares.
        neg_risk: Whether the market is part of a negative-risk group.
        active: Whether the market accepts orders.
        updated_at_ms: When this metadata was read; not part of the comparison.
    """

    condition_id: str
    yes_token: str
    no_token: str
    question: str = ""
    slug: str = ""
    tick_size: Decimal = Decimal("0.01")
    min_size: Decimal = Decimal(5)
    neg_risk: bool = False
    active: bool = True
    updated_at_ms: int = 0


class BookSnapshotRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A full L2 snapshot of one token's book (a ``book`` event).

    Unique by ``(asset_id, timestamp_ms, hash)``: the book the feed resends after a reconnect
    is stored once.

    Attributes:
        asset_id: The token id.
        market: The market's condition id.
        timestamp_ms: The event's timestamp.
        hash: The feed's (opaque) book hash; empty if the feed sent none.
        bids: Bid levels, in the order received.
        asks: Ask levels, in the order received.
        received_at_ms: When the client received the event.
        event_seq: The event's place in the order the service took events from its feeds
            (rows of one event share it); None in rows written
            before it was recorded.
        books_ahead: Later events of the same market already applied to the books when
            the strategy saw this one (0 unless the consumer fell behind the feed).
        tick_size: The book's tick size, when the feed sent it.
        last_trade_price: The last trade price the snapshot carried, if any.
    """

    asset_id: str
    market: str
    timestamp_ms: int
    hash: str = ""
    bids: tuple[BookLevel, ...] = ()
    asks: tuple[BookLevel, ...] = ()
    received_at_ms: int = 0
    event_seq: int | None = None
    books_ahead: int = 0
    tick_size: Decimal | None = None
    last_trade_price: Decimal | None = None


class LevelChange(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One entry of a ``price_change`` event: the new size of one level of one token's book.

    Stored inside its event's row, as a JSON array of these fields in this order (numbers
    as their exact decimal text, a missing best bid or ask as ``null``).

    Attributes:
        asset_id: The token id.
        price: The level's price.
        size: The level's new aggregate size; zero removes the level.
        side: ``"BUY"`` (a bid level) or ``"SELL"`` (an ask level).
        hash: The feed's (opaque) hash; empty if the feed sent none.
        best_bid: Best bid after the change, if the feed sent it.
        best_ask: Best ask after the change, if the feed sent it.
    """

    asset_id: str
    price: Decimal
    size: Decimal
    side: str
    hash: str = ""
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None


class PriceChangeRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A ``price_change`` event: its level changes, in their order, stored as one row.

    Unique by ``(timestamp_ms, market, changes)``: the event the feed sends again is a
    duplicate.

    Attributes:
        market: The market's condition id.
        timestamp_ms: The event's timestamp.
        changes: Its entries, in the order they apply (both tokens of the market).
        received_at_ms: When the client received the event.
        event_seq: The event's place in the order the service took events from its feeds;
            None in rows written before it was recorded.
        books_ahead: Later events of the same market already applied to the books when
            the strategy saw this one (0 unless the consumer fell behind the feed).
    """

    market: str
    timestamp_ms: int
    changes: tuple[LevelChange, ...]
    received_at_ms: int = 0
    event_seq: int | None = None
    books_ahead: int = 0


class TradeRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A trade print (a ``last_trade_price`` event).

    Unique by ``(asset_id, timestamp_ms, transaction_hash, side, price, size)``: with a
    transaction hash that identifies the print; without one, price, size and side do.

    Attributes:
        asset_id: The token id.
        market: The market's condition id.
        timestamp_ms: The event's timestamp.
        side: The taker's side, ``"BUY"`` or ``"SELL"``.
        price: The trade price.
        size: The traded size in shares.
        fee_rate_bps: The fee rate in basis points.
        transaction_hash: The settlement transaction, if the feed sent it.
        received_at_ms: When the client received the event.
        event_seq: The event's place in the order the service took events from its feeds
            (rows of one event share it); None in rows written
            before it was recorded.
        books_ahead: Later events of the same market already applied to the books when
            the strategy saw this one (0 unless the consumer fell behind the feed).
    """

    asset_id: str
    market: str
    timestamp_ms: int
    side: str
    price: Decimal
    size: Decimal
    fee_rate_bps: Decimal = _ZERO
    transaction_hash: str = ""
    received_at_ms: int = 0
    event_seq: int | None = None
    books_ahead: int = 0


class TickSizeChangeRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A change of a token's tick size (a ``tick_size_change`` event).

    Unique by ``(asset_id, timestamp_ms, new_tick_size)``.

    Attributes:
        asset_id: The token id.
        market: The market's condition id.
        timestamp_ms: The event's timestamp.
        old_tick_size: The tick size before.
        new_tick_size: The tick size after.
        received_at_ms: When the client received the event.
        event_seq: The event's place in the order the service took events from its feeds
            (rows of one event share it); None in rows written
            before it was recorded.
        books_ahead: Later events of the same market already applied to the books when
            the strategy saw this one (0 unless the consumer fell behind the feed).
    """

    asset_id: str
    market: str
    timestamp_ms: int
    old_tick_size: Decimal
    new_tick_size: Decimal
    received_at_ms: int = 0
    event_seq: int | None = None
    books_ahead: int = 0


class MarketResolutionRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A market's resolution (a ``market_resolved`` event, or Gamma's final prices).

    Unique by ``market``: a market resolves once.

    Attributes:
        market: The market's condition id.
        winning_asset_id: The token that pays 1; the other pays 0.
        timestamp_ms: When it resolved, by the feed's (or Gamma's) clock.
        received_at_ms: When the client learnt of it.
        event_seq: As for the other market-data rows.
    """

    market: str
    winning_asset_id: str
    timestamp_ms: int
    received_at_ms: int = 0
    event_seq: int | None = None


class PaperOrderRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A paper order and its latest known state.

    Unique by ``order_id`` and, when set, by ``signal_id``: one signal produces at most one
    stored order. Writing an order again with a higher ``revision`` updates its state
    (status, filled size, update time, error); the same or a lower revision is a duplicate.
    An order with another ``order_id`` but a stored ``signal_id`` is a duplicate too.

    Attributes:
        order_id: The broker's order id.
        signal_id: The analysis signal that produced the order; None for manual orders.
        market: The market's condition id.
        token_id: The token traded.
        side: ``"BUY"`` or ``"SELL"``.
        price: The limit price.
        size: The size in shares.
        order_type: One of :data:`ORDER_TYPES`.
        status: The broker's status text (``"live"``, ``"matched"``, ...).
        created_at_ms: When the order was created.
        filled_size: Shares filled so far.
        updated_at_ms: When the state was last changed.
        revision: Grows by at least one with each state change.
        error: The broker's error message, empty if none.
        account_id: The paper account it belongs to (1: the account of every order stored
            before accounts had names).
    """

    order_id: str
    signal_id: str | None
    market: str
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    order_type: str
    status: str
    created_at_ms: int
    filled_size: Decimal = _ZERO
    updated_at_ms: int = 0
    revision: int = 0
    error: str = ""
    account_id: int = 1


class FillRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One fill of a paper order.

    Unique by ``(order_id, seq)``.

    Attributes:
        order_id: The order filled.
        seq: The fill's number within its order, from 0.
        token_id: The token traded.
        side: ``"BUY"`` or ``"SELL"``.
        price: The fill price.
        size: The filled size in shares.
        timestamp_ms: When the fill happened.
        market: The market's condition id, if known.
        fee: The fee paid, in USDC.
        account_id: The paper account it belongs to.
        kind: ``"trade"`` for a fill of an order; ``"settlement"`` for shares paid out
            (at 1 or 0) when their market resolved.
    """

    order_id: str
    seq: int
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    timestamp_ms: int
    market: str = ""
    fee: Decimal = _ZERO
    account_id: int = 1
    kind: str = "trade"


FILL_KINDS = frozenset({"trade", "settlement"})
"""What a fill may be: an order's fill, or a position paid out at resolution."""


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """The net paper position in one token, summed over its fills.

    Attributes:
        token_id: The token.
        size: Shares bought minus shares sold.
        cost: USDC paid for buys minus USDC received for sells, fees included.
        fills: How many fills make up the position.
    """

    token_id: str
    size: Decimal
    cost: Decimal
    fills: int

    @property
    def average_price(self) -> Decimal | None:
        """``cost / size`` for a non-zero position, else None."""
        return self.cost / self.size if self.size else None


Row: TypeAlias = (
    MarketRow
    | BookSnapshotRow
    | PriceChangeRow
    | TradeRow
    | TickSizeChangeRow
    | PaperOrderRow
    | FillRow
    | MarketResolutionRow
)
"""Any row a store can write."""
