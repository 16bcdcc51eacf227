"""Local L2 order books, kept from ``book`` snapshots and ``price_change`` updates.

The books fail closed. A book is :attr:`SyncState.UNSYNCED` (and empty) until a ``book``
snapshot arrives; updates to an unsynced book are dropped, because applying them to depth
from before a reconnect would silently corrupt it. After each ``price_change`` the local top
of book is compared with the ``best_bid``/``best_ask`` the message advertises; a mismatch or
a crossed book makes the asset :attr:`SyncState.STALE` (emptied, waiting for a fresh
snapshot) and the caller asks the server for one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    PriceChange,
    PriceLevelChange,
    Side,
    TickSizeChange,
)

__all__ = ["BookSet", "DepthFill", "MarketBooks", "OrderBook", "SyncState", "canonical"]

_logger = logging.getLogger("polymarket_agents.feed")

_ZERO = Decimal(0)
_ONE = Decimal(1)
_TWO = Decimal(2)


class SyncState(enum.StrEnum):
    """Whether a local book can be trusted.

    ::

        UNSYNCED ──book──► SYNCED ──mismatch or crossed──► STALE ──book──► SYNCED
           ▲                  │
           └──(re)connect─────┘   (also from STALE)
    """

    UNSYNCED = "unsynced"
    """No snapshot since the connection opened; the book is empty."""
    SYNCED = "synced"
    """Built from a snapshot and every update since."""
    STALE = "stale"
    """An update left it inconsistent; emptied and waiting for a fresh snapshot."""


_SYNCED = SyncState.SYNCED  # a module global is read faster than an enum member


def canonical(number: Decimal) -> str:
    """A price or size as canonical decimal text: no exponent, no trailing zeros
    (``Decimal("0.500")`` -> ``"0.5"``, ``Decimal("1E+2")`` -> ``"100"``)."""
    text = f"{number.normalize():f}"
    return "0" if text == "-0" else text


@dataclass(frozen=True, slots=True)
class DepthFill:
    """What walking one side of a book yields.

    Attributes:
        size: Shares available within the limits.
        notional: Their total price (``sum(price * size)``).
        worst_price: The last level touched, or None if none was.
    """

    size: Decimal
    notional: Decimal
    worst_price: Decimal | None

    @property
    def average_price(self) -> Decimal | None:
        """``notional / size``, or None when nothing is available."""
        return self.notional / self.size if self.size else None


class OrderBook:
    """The local L2 book of one asset: price -> size on each side, exactly.

    Args:
        asset_id: The token id.
        market: The condition id, if known; snapshots fill it in.
    """

    __slots__ = (
        "_ask_dirty",
        "_best_ask",
        "_best_bid",
        "_bid_dirty",
        "asks",
        "asset_id",
        "bids",
        "hash",
        "last_trade_price",
        "market",
        "state",
        "tick_size",
        "timestamp",
    )

    def __init__(self, asset_id: str, market: str = "") -> None:
        self.asset_id = asset_id
        self.market = market
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.state = SyncState.UNSYNCED
        self.tick_size: Decimal | None = None
        self.timestamp = ""
        self.hash = ""
        self.last_trade_price: Decimal | None = None
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None
        self._bid_dirty = False
        self._ask_dirty = False

    def __repr__(self) -> str:
        return (
            f"<OrderBook {self.asset_id[:12]}... {self.state} "
            f"bid={self.best_bid} ask={self.best_ask} levels={len(self.bids)}/{len(self.asks)}>"
        )

    @property
    def synced(self) -> bool:
        """Whether the book is :attr:`SyncState.SYNCED`."""
        return self.state is SyncState.SYNCED

    def apply_book(self, book: Book) -> None:
        """Replace the whole book with a snapshot; the book is synced afterwards.

        Args:
            book: The snapshot (its ``asset_id`` is not checked against this book's).
        """
        self.bids = {level.price: level.size for level in book.bids if level.size}
        self.asks = {level.price: level.size for level in book.asks if level.size}
        self._bid_dirty = self._ask_dirty = True
        self.market = book.market
        self.timestamp = book.timestamp
        self.hash = book.hash
        if book.tick_size is not None:
            self.tick_size = book.tick_size
        if book.last_trade_price:
            try:
                price = Decimal(book.last_trade_price)
            except ArithmeticError:  # decimal.InvalidOperation: an informational field only
                price = _ZERO.__class__("NaN")
            if price.is_finite():
                self.last_trade_price = price
        self.state = SyncState.SYNCED

    def set_level(self, side: Side, price: Decimal, size: Decimal) -> None:
        """Set the absolute size of one level; a zero size removes it.

        Args:
            side: ``BUY`` for bids, ``SELL`` for asks.
            price: The level's price.
            size: Its new aggregate size.
        """
        if side == "BUY":
            if size:
                self.bids[price] = size
                if not self._bid_dirty and (self._best_bid is None or price > self._best_bid):
                    self._best_bid = price
            elif self.bids.pop(price, None) is not None and price == self._best_bid:
                self._bid_dirty = True
        elif size:
            self.asks[price] = size
            if not self._ask_dirty and (self._best_ask is None or price < self._best_ask):
                self._best_ask = price
        elif self.asks.pop(price, None) is not None and price == self._best_ask:
            self._ask_dirty = True

    def invalidate(self, state: SyncState = SyncState.UNSYNCED) -> None:
        """Forget every level and wait for a snapshot.

        Args:
            state: ``UNSYNCED`` (a new connection) or ``STALE`` (an inconsistency).
        """
        self.bids = {}
        self.asks = {}
        self._best_bid = self._best_ask = None
        self._bid_dirty = self._ask_dirty = False
        self.state = state

    @property
    def best_bid(self) -> Decimal | None:
        """The highest bid price, or None without bids."""
        if self._bid_dirty:
            self._best_bid = max(self.bids) if self.bids else None
            self._bid_dirty = False
        return self._best_bid

    @property
    def best_ask(self) -> Decimal | None:
        """The lowest ask price, or None without asks."""
        if self._ask_dirty:
            self._best_ask = min(self.asks) if self.asks else None
            self._ask_dirty = False
        return self._best_ask

    @property
    def mid(self) -> Decimal | None:
        """The midpoint of best bid and best ask, or None unless both exist."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return (bid + ask) / _TWO

    @property
    def spread(self) -> Decimal | None:
        """``best_ask - best_bid``, or None unless both exist."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return ask - bid

    @property
    def crossed(self) -> bool:
        """Whether the best bid is at or above the best ask (never true of a sound book)."""
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid >= ask

    def to_json(self) -> dict[str, Any]:
        """The book as the service's ``GET /books`` shows it.

        Returns:
            ``asset_id``, ``market``, ``bids`` and ``asks`` (``[price, size]`` pairs, best
            first), ``tick_size``, ``last_trade_price`` (None when unknown),
            ``timestamp`` (of the last snapshot or change applied) and ``synced``; numbers
            as canonical decimal text (:func:`canonical`).
        """
        tick, last = self.tick_size, self.last_trade_price
        return {
            "asset_id": self.asset_id,
            "market": self.market,
            "bids": [[canonical(p), canonical(s)] for p, s in self.levels("BUY")],
            "asks": [[canonical(p), canonical(s)] for p, s in self.levels("SELL")],
            "tick_size": None if tick is None else canonical(tick),
            "last_trade_price": None if last is None else canonical(last),
            "timestamp": self.timestamp,
            "synced": self.state is SyncState.SYNCED,
        }

    def levels(self, side: Side, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """One side's levels, best first.

        Args:
            side: ``BUY`` for bids (highest first), ``SELL`` for asks (lowest first).
            depth: At most this many levels; all if None.

        Returns:
            ``(price, size)`` pairs.
        """
        if side == "BUY":
            levels = sorted(self.bids.items(), reverse=True)
        else:
            levels = sorted(self.asks.items())
        return levels if depth is None else levels[:depth]

    def walk(
        self, side: Side, *, limit: Decimal | None = None, size: Decimal | None = None
    ) -> DepthFill:
        """What a taker could fill against the book: "how much can I buy up to price p".

        ``BUY`` walks the asks upwards, ``SELL`` walks the bids downwards, stopping at the
        price ``limit`` (inclusive) or once ``size`` shares are reached.

        Args:
            side: The taker's side.
            limit: The worst price the taker accepts; no limit if None.
            size: The most shares wanted; no limit if None.

        Returns:
            The fillable size, its notional and the worst price touched.
        """
        taken = _ZERO
        notional = _ZERO
        worst: Decimal | None = None
        book_side: Side = "SELL" if side == "BUY" else "BUY"
        for price, available in self.levels(book_side):
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            take = available if size is None else min(available, size - taken)
            if take <= 0:
                break
            taken += take
            notional += take * price
            worst = price
        return DepthFill(taken, notional, worst)

    def consistent_with(self, best_bid: Decimal | None, best_ask: Decimal | None) -> bool:
        """Whether the book is uncrossed and its top agrees with an advertised one.

        The feed advertises ``0`` for "no bids" and ``1`` for "no asks"; None means "not
        advertised" and matches anything.

        Args:
            best_bid: The advertised best bid.
            best_ask: The advertised best ask.

        Returns:
            True if the book is sound and both agree.
        """
        bid = self._best_bid if not self._bid_dirty else self.best_bid
        ask = self._best_ask if not self._ask_dirty else self.best_ask
        if bid is not None and ask is not None and bid >= ask:
            return False
        if best_bid is not None and bid != best_bid and not (bid is None and best_bid == _ZERO):
            return False
        return best_ask is None or ask == best_ask or (ask is None and best_ask == _ONE)


@dataclass(frozen=True, slots=True)
class MarketBooks:
    """The two books of a binary market.

    Attributes:
        condition_id: The market.
        yes: The book of the YES token.
        no: The book of the NO token.
    """

    condition_id: str
    yes: OrderBook
    no: OrderBook

    @property
    def synced(self) -> bool:
        """Whether both books are synced."""
        return self.yes.synced and self.no.synced


class BookSet(Mapping[str, OrderBook]):
    """Every tracked asset's book, keyed by asset id, and the YES/NO pairs of markets.

    It applies decoded events (:meth:`apply`) and reports which assets went stale. Events
    for assets it does not track are ignored.
    """

    __slots__ = ("_books", "_pairs", "dropped_updates", "snapshots", "stale_events", "top_checks")

    def __init__(self) -> None:
        self._books: dict[str, OrderBook] = {}
        self._pairs: dict[str, MarketBooks] = {}
        self.dropped_updates = 0
        """``price_change`` entries dropped because their book was not synced."""
        self.stale_events = 0
        """Times a book went stale (a mismatch with the advertised top, or crossed)."""
        self.snapshots = 0
        """``book`` snapshots applied."""
        self.top_checks = 0
        """``best_bid_ask`` events checked against a synced book."""

    def __getitem__(self, asset_id: str) -> OrderBook:
        return self._books[asset_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._books)

    def __len__(self) -> int:
        return len(self._books)

    def __repr__(self) -> str:
        synced = sum(book.synced for book in self._books.values())
        return f"<BookSet assets={len(self._books)} synced={synced} markets={len(self._pairs)}>"

    def add(self, asset_id: str, market: str = "") -> OrderBook:
        """Track ``asset_id`` (a no-op if tracked already).

        Args:
            asset_id: The token id.
            market: Its condition id, if known.

        Returns:
            Its book.
        """
        book = self._books.get(asset_id)
        if book is None:
            book = self._books[asset_id] = OrderBook(asset_id, market)
        return book

    def add_market(self, condition_id: str, yes_token: str, no_token: str) -> MarketBooks:
        """Track both tokens of a binary market and remember which is YES.

        Args:
            condition_id: The market.
            yes_token: The YES token id.
            no_token: The NO token id.

        Returns:
            The pair.
        """
        pair = MarketBooks(
            condition_id, self.add(yes_token, condition_id), self.add(no_token, condition_id)
        )
        self._pairs[condition_id] = pair
        return pair

    def remove(self, asset_id: str) -> None:
        """Stop tracking ``asset_id`` and any market pair it belongs to."""
        book = self._books.pop(asset_id, None)
        if book is not None:
            pair = self._pairs.get(book.market)
            if pair is not None and asset_id in (pair.yes.asset_id, pair.no.asset_id):
                del self._pairs[book.market]

    def pair(self, condition_id: str) -> MarketBooks:
        """The YES/NO books of a market added with :meth:`add_market`.

        Raises:
            KeyError: If the market was never added.
        """
        return self._pairs[condition_id]

    @property
    def markets(self) -> Mapping[str, MarketBooks]:
        """Every market pair, keyed by condition id."""
        return self._pairs

    @property
    def all_synced(self) -> bool:
        """Whether every tracked book is synced (vacuously true with none)."""
        return all(book.state is SyncState.SYNCED for book in self._books.values())

    def unsynced(self) -> list[str]:
        """The asset ids whose books are not synced."""
        return [a for a, book in self._books.items() if book.state is not SyncState.SYNCED]

    def invalidate_all(self) -> None:
        """Mark every book unsynced: what a (re)connect does."""
        for book in self._books.values():
            book.invalidate()

    def apply(self, events: Iterable[MarketEvent]) -> list[str]:
        """Apply decoded events to the books, in order.

        Args:
            events: The events of one frame.

        Returns:
            The assets that went stale and need a fresh snapshot.
        """
        stale: list[str] = []
        books = self._books
        for event in events:
            kind = type(event)
            if kind is PriceChange:
                self._apply_price_change(event, books, stale)  # type: ignore[arg-type]
            elif kind is Book:
                book = books.get(event.asset_id)  # type: ignore[union-attr]
                if book is not None:
                    book.apply_book(event)  # type: ignore[arg-type]
                    self.snapshots += 1
            elif kind is LastTradePrice:
                book = books.get(event.asset_id)  # type: ignore[union-attr]
                if book is not None:
                    book.last_trade_price = event.price  # type: ignore[union-attr]
            elif kind is TickSizeChange:
                book = books.get(event.asset_id)  # type: ignore[union-attr]
                if book is not None:
                    book.tick_size = event.new_tick_size  # type: ignore[union-attr]
            elif kind is BestBidAsk:
                self._check_top(event, books, stale)  # type: ignore[arg-type]
        return stale

    def _check_top(self, event: BestBidAsk, books: dict[str, OrderBook], stale: list[str]) -> None:
        """``best_bid_ask`` follows the change of top it announces: the synced book must
        show the same top already, or it has drifted and needs a fresh snapshot."""
        book = books.get(event.asset_id)
        if book is None or book.state is not _SYNCED:
            return
        self.top_checks += 1
        if book.consistent_with(event.best_bid, event.best_ask):
            return
        self._went_stale(book, event.best_bid, event.best_ask, stale)

    def _went_stale(
        self,
        book: OrderBook,
        advertised_bid: Decimal | None,
        advertised_ask: Decimal | None,
        stale: list[str],
    ) -> None:
        _logger.warning(
            "book of %s went stale: local top %s/%s, advertised %s/%s",
            book.asset_id,
            book.best_bid,
            book.best_ask,
            advertised_bid,
            advertised_ask,
        )
        book.invalidate(SyncState.STALE)
        self.stale_events += 1
        stale.append(book.asset_id)

    def _apply_price_change(
        self, event: PriceChange, books: dict[str, OrderBook], stale: list[str]
    ) -> None:
        # The feed's hot path: OrderBook.set_level and consistent_with, inlined.
        last: dict[OrderBook, PriceLevelChange] = {}
        synced = _SYNCED
        timestamp = event.timestamp
        for change in event.price_changes:
            book = books.get(change.asset_id)
            if book is None:
                continue
            if book.state is not synced:
                self.dropped_updates += 1
                continue
            book.timestamp = timestamp
            price = change.price
            size = change.size
            if change.side == "BUY":
                if size:
                    book.bids[price] = size
                    if not book._bid_dirty:
                        best = book._best_bid
                        if best is None or price > best:
                            book._best_bid = price
                elif book.bids.pop(price, None) is not None and price == book._best_bid:
                    book._bid_dirty = True
            elif size:
                book.asks[price] = size
                if not book._ask_dirty:
                    best = book._best_ask
                    if best is None or price < best:
                        book._best_ask = price
            elif book.asks.pop(price, None) is not None and price == book._best_ask:
                book._ask_dirty = True
            # The last entry of each asset carries its top after the whole message.
            last[book] = change
        for book, change in last.items():
            # consistent_with(), inlined; the advertised and local tops are usually the
            # very same cached Decimal objects, so identity settles most comparisons.
            bid = book.best_bid if book._bid_dirty else book._best_bid
            ask = book.best_ask if book._ask_dirty else book._best_ask
            advertised_bid, advertised_ask = change.best_bid, change.best_ask
            if (
                (advertised_bid is bid or advertised_bid is None or advertised_bid == bid)
                and (advertised_ask is ask or advertised_ask is None or advertised_ask == ask)
                and (bid is None or ask is None or bid < ask)
            ):
                continue
            if book.consistent_with(advertised_bid, advertised_ask):
                continue  # an empty side, advertised as 0 or 1
            self._went_stale(book, advertised_bid, advertised_ask, stale)
