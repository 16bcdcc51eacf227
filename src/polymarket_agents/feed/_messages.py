"""Typed, validated models of every market-channel event.

Each event is a frozen :class:`msgspec.Struct` tagged by its ``event_type``, so one compiled
decoder turns a frame into these objects, and the simulator encodes the very same types.
Prices and sizes are :class:`~decimal.Decimal`, parsed exactly from their decimal strings.

Validation happens while decoding (``__post_init__``): a price outside [0, 1], a negative or
non-finite size, a number sent as anything but a string, a non-numeric timestamp or an empty
id makes the whole frame invalid. Unknown fields are ignored, so the live feed may add fields
without breaking the client.

Speed: building a ``Decimal`` for every number, and range-checking it, was most of the cost
of decoding. Numbers are therefore decoded as text and turned into ``Decimal`` by the owning
event's ``__post_init__``. Prices go through a bounded cache of already validated values:
they live on a tick grid, so nearly every lookup hits and neither parses nor checks anything.
Sizes are parsed each time (straight from the text, checked with two comparisons): across a
universe of markets they seldom repeat, and a cache of them missed about one lookup in three
on recorded traffic, a miss costing about three plain parses. The fields are ``Decimal`` to
type checkers and to every reader; only the decoder sees them as text.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import force_setattr

__all__ = [
    "BestBidAsk",
    "Book",
    "EventMessage",
    "LastTradePrice",
    "LegacyChange",
    "MarketEvent",
    "MarketResolved",
    "NewMarket",
    "OrderLevel",
    "PriceChange",
    "PriceLevelChange",
    "Side",
    "TickSizeChange",
]

Side: TypeAlias = Literal["BUY", "SELL"]
"""``BUY`` changes or takes bids, ``SELL`` asks (for trades: the taker's side)."""

if TYPE_CHECKING:
    _Number: TypeAlias = Decimal
else:
    # What msgspec decodes: the text, replaced by an exact Decimal in __post_init__.
    _Number = str

_ZERO = Decimal(0)
_ONE = Decimal(1)
# Sizes are share counts; anything near this is garbage, and the bound also rejects Infinity.
_MAX_SIZE = Decimal("1e15")
_CACHE_LIMIT = 1 << 15  # about 6 MB per cache when full
_NO_FEE = Decimal(0)  # the default fee rate, valid as it is


def _exact(value: object, name: str) -> Decimal:
    """``value`` (text, or a Decimal built in Python) as a finite Decimal."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except decimal.InvalidOperation:
            raise ValueError(f"{name} {value!r} is not a decimal number") from None
    else:
        raise ValueError(f"{name} must be a decimal string, not {type(value).__name__}")
    if not number.is_finite():
        raise ValueError(f"{name} {value!r} is not finite")
    return number


class _Numbers(dict[object, Decimal]):
    """Text -> validated Decimal: ``numbers[text]`` parses and checks only on a miss.

    A dict subclass with ``__missing__``, so a hit is one C-level subscript and no Python
    call. Cleared when full, so memory stays bounded whatever arrives.

    Args:
        kind: ``"price"`` or ``"size"``, for error messages.
        low: Smallest valid value.
        high: Largest valid value.
    """

    __slots__ = ("high", "kind", "low")

    def __init__(self, kind: str, low: Decimal, high: Decimal) -> None:
        super().__init__()
        self.kind, self.low, self.high = kind, low, high

    def __missing__(self, value: object) -> Decimal:
        if type(value) is str:
            try:
                number = Decimal(value)
            except decimal.InvalidOperation:
                raise ValueError(f"{self.kind} {value!r} is not a decimal number") from None
        elif isinstance(value, Decimal):
            number = value
        else:
            raise ValueError(f"{self.kind} must be a decimal string, not {type(value).__name__}")
        # Infinity fails the range; a NaN makes the comparison raise InvalidOperation (an
        # ArithmeticError), which the decoder reports as an invalid frame too.
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.kind} {value!r} is out of range")
        if number is value:
            # Never cache a Decimal key: Decimal("0.45") == Decimal("0.4500"), so a later
            # lookup would get the other one's exponent back ("22.7000" for "22.70").
            return number
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[value] = number
        return number


_PRICES = _Numbers("price", _ZERO, _ONE)
"""Prices, best bids and asks, spreads: in [0, 1]."""


def _size(value: object, name: str = "size") -> Decimal:
    """``value`` (text, or a Decimal built in Python) as a size or fee rate: in [0, 1e15].

    Sizes are not cached as prices are: they seldom repeat across a universe of markets
    (a cache of them missed about one lookup in three on recorded traffic, and a miss
    costs three times a plain parse). The hot loops inline the parse of text.
    """
    # Text straight to Decimal: a malformed one raises decimal.InvalidOperation, a NaN
    # makes the comparison raise it; the decoder reports either as an invalid event.
    number = Decimal(value) if type(value) is str else _exact(value, name)
    if not _ZERO <= number <= _MAX_SIZE:
        raise ValueError(f"{name} {value!r} is out of range")
    return number


def _tick(value: object, name: str) -> Decimal:
    number = _exact(value, name)
    if not _ZERO < number < _ONE:
        raise ValueError(f"{name} {value!r} is outside (0, 1)")
    return number


def _check_timestamp(value: str) -> None:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"timestamp {value!r} is not epoch milliseconds")


def _check_id(value: str, name: str) -> None:
    if not value:
        raise ValueError(f"{name} is empty")


def _convert_levels(levels: tuple[OrderLevel, ...]) -> None:
    prices, assign = _PRICES, force_setattr
    for level in levels:
        assign(level, "price", prices[level.price])
        assign(level, "size", _size(level.size))


class OrderLevel(msgspec.Struct, frozen=True, gc=False):
    """One price level of a book snapshot: the aggregate size resting at ``price``.

    Converted and validated by its :class:`Book` (one loop per book is cheaper than a hook
    per level).
    """

    price: _Number
    size: _Number


class Book(msgspec.Struct, frozen=True, gc=False, tag_field="event_type", tag="book"):
    """``book``: a full L2 snapshot of one asset; it replaces the whole local book.

    The live feed sends bids ascending and asks descending (best last); nothing here relies
    on that order. The legacy field names ``buys``/``sells`` are accepted and moved to
    ``bids``/``asks``; an absent side is an empty side.

    Attributes:
        asset_id: The token id (a decimal string).
        market: The condition id (``0x`` + 64 hex) of the market the token belongs to.
        timestamp: Epoch milliseconds, as the string the feed sends.
        bids: Buy levels.
        asks: Sell levels.
        hash: Opaque hash of the book, as sent.
        tick_size: The market's tick, when the feed includes it.
        last_trade_price: As sent; ``""`` on an empty book.
    """

    asset_id: str
    market: str
    timestamp: str
    bids: tuple[OrderLevel, ...] = ()
    asks: tuple[OrderLevel, ...] = ()
    hash: str = ""
    tick_size: _Number | None = None
    last_trade_price: str = ""
    # UNSET fields are never encoded, so a re-encoded book carries bids/asks only.
    buys: tuple[OrderLevel, ...] | UnsetType = UNSET
    sells: tuple[OrderLevel, ...] | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_id(self.asset_id, "asset_id")
        _check_timestamp(self.timestamp)
        if self.tick_size is not None:
            force_setattr(self, "tick_size", _tick(self.tick_size, "tick_size"))
        for levels in (self.bids, self.asks, self.buys, self.sells):
            if levels is not UNSET:
                _convert_levels(levels)
        # Older documentation named the sides buys/sells; keep one spelling downstream.
        if self.buys is not UNSET:
            if not self.bids:
                force_setattr(self, "bids", self.buys)
            force_setattr(self, "buys", UNSET)
        if self.sells is not UNSET:
            if not self.asks:
                force_setattr(self, "asks", self.sells)
            force_setattr(self, "sells", UNSET)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, asset, timestamp, hash."""
        return ("book", self.asset_id, self.timestamp, self.hash)


class PriceLevelChange(msgspec.Struct, frozen=True, gc=False):
    """One entry of a ``price_change``: the new aggregate size of one level of one asset.

    Converted and validated by its :class:`PriceChange`.

    Attributes:
        asset_id: The token whose book changed.
        price: The level's price.
        size: The new absolute size at that price; ``0`` removes the level.
        side: ``BUY`` for the bid side, ``SELL`` for the ask side.
        hash: Opaque hash of the order that caused the change.
        best_bid: The asset's best bid after the change (``0`` when there are no bids).
        best_ask: The asset's best ask after the change (``1`` when there are no asks).
    """

    asset_id: str
    price: _Number
    size: _Number
    side: Side
    hash: str = ""
    best_bid: _Number | None = None
    best_ask: _Number | None = None


class LegacyChange(msgspec.Struct, frozen=True, gc=False):
    """One entry of the legacy (before 2025-09-15) ``price_change`` ``changes`` array.

    Decoded only to be converted into :class:`PriceLevelChange` entries.
    """

    price: _Number
    side: Side
    size: _Number


class PriceChange(
    msgspec.Struct,
    frozen=True,
    gc=False,
    tag_field="event_type",
    tag="price_change",
    omit_defaults=True,
):
    """``price_change``: new absolute sizes for some levels, possibly of both tokens.

    Both schemas decode to this type. The current one carries ``price_changes``, each entry
    naming its asset and the top of book after the change. The legacy one carries one
    ``asset_id``, a ``changes`` array and one ``hash``; its entries are converted into
    ``price_changes`` (without best bid/ask) so that consumers see a single shape, and
    ``legacy`` tells them apart.

    Attributes:
        market: The condition id.
        timestamp: Epoch milliseconds, as sent.
        price_changes: The changes, in the order they apply.
        asset_id: Legacy schema only: the asset of every change.
        hash: Legacy schema only: the message's hash.
        changes: Legacy schema only, as received; None after decoding.
    """

    market: str
    timestamp: str
    price_changes: tuple[PriceLevelChange, ...] = ()
    asset_id: str = ""
    hash: str = ""
    changes: tuple[LegacyChange, ...] | None = None

    def __post_init__(self) -> None:
        timestamp = self.timestamp
        if not (timestamp.isascii() and timestamp.isdigit()):
            _check_timestamp(timestamp)
        changes = self.changes
        if changes is not None:
            _check_id(self.asset_id, "asset_id")
            asset_id, hash_ = self.asset_id, self.hash
            converted = tuple(
                PriceLevelChange(asset_id, _PRICES[c.price], _size(c.size), c.side, hash_)
                for c in changes
            )
            force_setattr(self, "price_changes", converted)
            force_setattr(self, "changes", None)
            return
        if not self.price_changes:
            raise ValueError("price_change carries neither price_changes nor changes")
        # The hot loop of the whole feed: local names; a price is a plain subscript (a
        # cache hit), a size's text parsed here rather than in a call (see _size).
        prices, assign = _PRICES, force_setattr
        # A YES change and its NO mirror carry the same size: the last one parsed is kept.
        last_text: object = None
        size = _ZERO
        for change in self.price_changes:
            if not change.asset_id:
                raise ValueError("asset_id is empty")
            assign(change, "price", prices[change.price])
            text: object = change.size  # text while decoding (see _Number)
            if text != last_text or type(text) is not str:
                if type(text) is str:  # _size, inlined
                    size = Decimal(text)
                    if not _ZERO <= size <= _MAX_SIZE:
                        raise ValueError(f"size {text!r} is out of range")
                else:
                    size = _size(text)
                last_text = text
            assign(change, "size", size)
            if change.best_bid is not None:
                assign(change, "best_bid", prices[change.best_bid])
            if change.best_ask is not None:
                assign(change, "best_ask", prices[change.best_ask])

    @property
    def legacy(self) -> bool:
        """Whether the message used the legacy ``changes`` schema."""
        return bool(self.asset_id)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, market, timestamp, hashes."""
        hashes = self.hash or ",".join(change.hash for change in self.price_changes)
        return ("price_change", self.market, self.timestamp, hashes)


class LastTradePrice(
    msgspec.Struct, frozen=True, gc=False, tag_field="event_type", tag="last_trade_price"
):
    """``last_trade_price``: a trade print.

    Attributes:
        asset_id: The traded token.
        market: The condition id.
        price: Trade price.
        size: Trade size, in shares.
        side: The taker's side.
        timestamp: Epoch milliseconds, as sent.
        fee_rate_bps: Fee rate in basis points.
        transaction_hash: On-chain transaction hash, when the feed includes it.
    """

    asset_id: str
    market: str
    price: _Number
    size: _Number
    side: Side
    timestamp: str
    fee_rate_bps: _Number = _NO_FEE
    transaction_hash: str = ""

    def __post_init__(self) -> None:
        _check_id(self.asset_id, "asset_id")
        force_setattr(self, "price", _PRICES[self.price])
        force_setattr(self, "size", _size(self.size))
        if self.fee_rate_bps is not _NO_FEE:
            force_setattr(self, "fee_rate_bps", _size(self.fee_rate_bps, "fee_rate_bps"))
        timestamp = self.timestamp
        if not (timestamp.isascii() and timestamp.isdigit()):
            _check_timestamp(timestamp)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, asset, timestamp, hash."""
        return ("last_trade_price", self.asset_id, self.timestamp, self.transaction_hash)


class TickSizeChange(
    msgspec.Struct, frozen=True, gc=False, tag_field="event_type", tag="tick_size_change"
):
    """``tick_size_change``: the price increment of an asset changed (near 0 or 1).

    Attributes:
        asset_id: The token.
        market: The condition id.
        old_tick_size: The tick before.
        new_tick_size: The tick from now on.
        timestamp: Epoch milliseconds, as sent.
    """

    asset_id: str
    market: str
    old_tick_size: _Number
    new_tick_size: _Number
    timestamp: str

    def __post_init__(self) -> None:
        _check_id(self.asset_id, "asset_id")
        force_setattr(self, "old_tick_size", _tick(self.old_tick_size, "old_tick_size"))
        force_setattr(self, "new_tick_size", _tick(self.new_tick_size, "new_tick_size"))
        _check_timestamp(self.timestamp)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, asset, timestamp, new tick."""
        return ("tick_size_change", self.asset_id, self.timestamp, str(self.new_tick_size))


class BestBidAsk(msgspec.Struct, frozen=True, gc=False, tag_field="event_type", tag="best_bid_ask"):
    """``best_bid_ask``: the top of an asset's book changed (custom features only).

    Attributes:
        asset_id: The token.
        market: The condition id.
        best_bid: Best bid.
        best_ask: Best ask.
        spread: ``best_ask - best_bid`` as sent.
        timestamp: Epoch milliseconds, as sent.
    """

    asset_id: str
    market: str
    best_bid: _Number
    best_ask: _Number
    spread: _Number
    timestamp: str

    def __post_init__(self) -> None:
        _check_id(self.asset_id, "asset_id")
        force_setattr(self, "best_bid", _PRICES[self.best_bid])
        force_setattr(self, "best_ask", _PRICES[self.best_ask])
        force_setattr(self, "spread", _PRICES[self.spread])
        _check_timestamp(self.timestamp)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, asset, timestamp, top."""
        return ("best_bid_ask", self.asset_id, self.timestamp, f"{self.best_bid}/{self.best_ask}")


class EventMessage(msgspec.Struct, frozen=True, gc=False):
    """The Gamma event a new or resolved market belongs to."""

    id: str = ""
    ticker: str = ""
    slug: str = ""
    title: str = ""
    description: str = ""


class NewMarket(
    msgspec.Struct,
    frozen=True,
    gc=False,
    tag_field="event_type",
    tag="new_market",
    omit_defaults=True,
):
    """``new_market``: a market was created (custom features only).

    Attributes:
        market: The condition id.
        timestamp: Epoch milliseconds, as sent.
        id: Gamma market id.
        question: The market's question.
        slug: URL slug.
        description: Resolution rules.
        assets_ids: The token ids, in the order of ``outcomes``.
        outcomes: Outcome names, usually ``("Yes", "No")``.
        event_message: The Gamma event, when sent.
    """

    market: str
    timestamp: str
    id: str = ""
    question: str = ""
    slug: str = ""
    description: str = ""
    assets_ids: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    event_message: EventMessage | None = None

    def __post_init__(self) -> None:
        _check_id(self.market, "market")
        _check_timestamp(self.timestamp)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, market, timestamp, id."""
        return ("new_market", self.market, self.timestamp, self.id)


class MarketResolved(
    msgspec.Struct,
    frozen=True,
    gc=False,
    tag_field="event_type",
    tag="market_resolved",
    omit_defaults=True,
):
    """``market_resolved``: a market was resolved (custom features only).

    Polymarket has been reported not to deliver it reliably, so treat it as a hint and
    take Gamma's ``closed`` / ``outcomePrices`` as the authority.

    Attributes:
        market: The condition id.
        timestamp: Epoch milliseconds, as sent.
        winning_asset_id: The token that won.
        winning_outcome: Its outcome name.
        id: Gamma market id.
        question: The market's question.
        slug: URL slug.
        description: Resolution rules.
        assets_ids: The token ids, in the order of ``outcomes``.
        outcomes: Outcome names.
        event_message: The Gamma event, when sent.
    """

    market: str
    timestamp: str
    winning_asset_id: str
    winning_outcome: str
    id: str = ""
    question: str = ""
    slug: str = ""
    description: str = ""
    assets_ids: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    event_message: EventMessage | None = None

    def __post_init__(self) -> None:
        _check_id(self.market, "market")
        _check_timestamp(self.timestamp)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity for downstream deduplication: event type, market, timestamp, winner."""
        return ("market_resolved", self.market, self.timestamp, self.winning_asset_id)


MarketEvent: TypeAlias = (
    Book | PriceChange | LastTradePrice | TickSizeChange | BestBidAsk | NewMarket | MarketResolved
)
"""Any market-channel event; match on the type (``case Book(): ...``)."""
