"""The simulated exchange: a seeded universe of binary markets and the events they emit.

Pure state and a random process, no I/O: :meth:`Universe.step` advances one tick and returns
the market-channel events it produced, built from the same message types the client decodes.

Each market's YES price follows a random walk in logit space; its YES book is a ladder of
levels around the mid; its NO book mirrors it (a NO bid at ``1 - p`` for each YES ask at
``p``), except while a deliberate *dislocation* makes the two asks sum below 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from .._book import OrderBook
from .._gamma import MarketInfo
from .._messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    MarketResolved,
    NewMarket,
    OrderLevel,
    PriceChange,
    PriceLevelChange,
    Side,
    TickSizeChange,
)

__all__ = ["SimMarket", "Universe"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_FIRST_END = date(2027, 1, 1)
# Gamma tags, one per market in turn: (id, slug).
_TAGS = (("2", "politics"), ("21", "crypto"), ("100639", "sports"), ("107", "economy"))
_COARSE_TICK = Decimal("0.01")
_FINE_TICK = Decimal("0.001")
# Polymarket moves to the fine tick when the price leaves [0.04, 0.96].
_FINE_BELOW = 0.04
_FINE_ABOVE = 0.96
_MIN_SIZE = Decimal(5)
_LOGIT_LIMIT = 6.9  # p in about [0.001, 0.999]
_REVERSION = 0.01

_SUBJECTS = (
    "Bitcoin",
    "Ethereum",
    "Solana",
    "NVIDIA",
    "Apple",
    "the S&P 500",
    "Gold",
    "Crude oil",
    "the Lakers",
    "the Fed funds rate",
)
_VERBS = ("close above", "trade above", "finish the month above", "hit")


@dataclass(slots=True, eq=False)
class SimMarket:
    """One simulated binary market: identity, price process state and its two books.

    The books are live: the simulator mutates them as it emits events. Read them, never
    write them.

    Attributes:
        index: Position in the universe.
        condition_id: ``0x`` + 64 hex.
        yes_token: Token id of YES.
        no_token: Token id of NO.
        question: The question.
        slug: URL slug.
        tick: Current tick size.
        min_size: Minimum order size.
        sigma: Volatility of the logit random walk per mid move.
        logit: Current logit of the YES mid.
        anchor: The logit the walk reverts to, slowly.
        yes: The YES book.
        no: The NO book.
        last_trade: Last YES-equivalent trade price.
        volume: Shares traded.
        closed: Whether the market was resolved.
        dislocated_until: Loop time at which a running dislocation ends, or None.
        winner: ``"Yes"`` or ``"No"`` once resolved.
    """

    index: int
    condition_id: str
    yes_token: str
    no_token: str
    question: str
    slug: str
    tick: Decimal
    min_size: Decimal
    sigma: float
    logit: float
    yes: OrderBook
    no: OrderBook
    last_trade: Decimal | None = None
    volume: Decimal = _ZERO
    closed: bool = False
    dislocated_until: float | None = None
    winner: str | None = None
    anchor: float = 0.0

    @property
    def mid(self) -> float:
        """The YES mid implied by the random walk."""
        return 1.0 / (1.0 + math.exp(-self.logit))

    @property
    def token_ids(self) -> tuple[str, str]:
        """``(yes_token, no_token)``."""
        return (self.yes_token, self.no_token)

    def info(self) -> MarketInfo:
        """The market as :func:`~polymarket_agents.feed.parse_markets` would return it."""
        return MarketInfo(
            condition_id=self.condition_id,
            question=self.question,
            slug=self.slug,
            yes_token=self.yes_token,
            no_token=self.no_token,
            tick_size=self.tick,
            min_size=self.min_size,
            id=str(500_000 + self.index),
            outcome_prices=self._outcome_prices(),
            active=True,
            closed=self.closed,
            accepting_orders=not self.closed,
            end_date=self.end_date,
            question_id="0x" + hashlib.sha256(self.condition_id.encode()).hexdigest(),
            liquidity=Decimal(f"{float(self.liquidity()):.2f}"),
            volume=Decimal(f"{float(self.volume):.2f}"),
            tags=self.tag,
        )

    @property
    def end_date(self) -> str:
        """When the market ends: a week apart from one market to the next, from 2027."""
        return f"{(_FIRST_END + timedelta(days=7 * self.index)).isoformat()}T12:00:00Z"

    @property
    def tag(self) -> tuple[str, str]:
        """The market's one Gamma tag: its id and slug."""
        return _TAGS[self.index % len(_TAGS)]

    def liquidity(self) -> Decimal:
        """USDC resting on the YES book."""
        return sum(
            (price * size for price, size in (*self.yes.bids.items(), *self.yes.asks.items())),
            start=_ZERO,
        )

    def _outcome_prices(self) -> tuple[Decimal, Decimal]:
        if self.winner is not None:
            return (_ONE, _ZERO) if self.winner == "Yes" else (_ZERO, _ONE)
        mid = self.yes.mid
        price = mid if mid is not None else Decimal(f"{self.mid:.3f}")
        return (price, _ONE - price)

    def gamma(self) -> dict[str, Any]:
        """The market as a Gamma ``/markets`` row (JSON-string fields included)."""
        yes_price, no_price = self._outcome_prices()
        bid, ask = self.yes.best_bid, self.yes.best_ask
        volume = f"{self.volume:f}"
        liquidity = self.liquidity()
        tag_id, tag_slug = self.tag
        return {
            "id": str(500_000 + self.index),
            "question": self.question,
            "conditionId": self.condition_id,
            "slug": self.slug,
            "resolutionSource": "",
            "endDate": self.end_date,
            "startDate": "2025-01-01T00:00:00Z",
            "tags": [{"id": tag_id, "label": tag_slug.title(), "slug": tag_slug}],
            "description": f'This market will resolve to "Yes" if {self.question[5:-1]}.',
            "outcomes": json.dumps(["Yes", "No"]),
            "outcomePrices": json.dumps([str(yes_price), str(no_price)]),
            "clobTokenIds": json.dumps([self.yes_token, self.no_token]),
            "volume": volume,
            "volumeNum": float(self.volume),
            "liquidity": f"{liquidity:f}",
            "liquidityNum": float(liquidity),
            "volume24hr": float(self.volume),
            "active": True,
            "closed": self.closed,
            "archived": False,
            "acceptingOrders": not self.closed,
            "enableOrderBook": True,
            "orderPriceMinTickSize": float(self.tick),
            "orderMinSize": int(self.min_size)
            if self.min_size == int(self.min_size)
            else float(self.min_size),
            "negRisk": False,
            "spread": float(ask - bid) if bid is not None and ask is not None else 1.0,
            "bestBid": float(bid) if bid is not None else 0.0,
            "bestAsk": float(ask) if ask is not None else 1.0,
            "lastTradePrice": float(self.last_trade) if self.last_trade is not None else 0.0,
            "questionID": "0x" + hashlib.sha256(self.condition_id.encode()).hexdigest(),
        }


class Universe:
    """A seeded set of binary markets and the random process that moves them.

    Args:
        seed: Seeds every random choice: the same seed gives the same markets and, for the
            same sequence of calls, the same events.
        markets: How many markets to create.
        levels: Book levels per side.
        book_after_trade: After a trade, send fresh ``book`` snapshots of both tokens (as
            the live feed does) instead of the equivalent ``price_change``.
        dislocation_rate: Probability per tick of starting a dislocation: a market's YES
            best ask plus NO best ask briefly sums below 1, then is corrected.
        dislocation_edge: ``1 - (yes_ask + no_ask)`` during a dislocation, or a range to
            draw it from.
        dislocation_seconds: How long a dislocation lasts.
        clock: Wall clock for message timestamps (seconds since the epoch).

    Raises:
        ValueError: On a non-positive market or level count, a rate outside [0, 1] or an
            edge outside (0, 0.5).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        markets: int = 5,
        levels: int = 10,
        book_after_trade: bool = False,
        dislocation_rate: float = 0.0,
        dislocation_edge: float | tuple[float, float] = (0.06, 0.10),
        dislocation_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if markets < 1 or levels < 1:
            raise ValueError(f"need markets >= 1 and levels >= 1, not {markets}, {levels}")
        if not 0.0 <= dislocation_rate <= 1.0:
            raise ValueError(f"dislocation_rate must be in [0, 1], not {dislocation_rate!r}")
        edges = (
            dislocation_edge
            if isinstance(dislocation_edge, tuple)
            else (dislocation_edge, dislocation_edge)
        )
        if not 0.0 < edges[0] <= edges[1] < 0.5:
            raise ValueError(f"dislocation_edge must be within (0, 0.5), not {dislocation_edge}")
        self.rng = random.Random(seed)
        self.levels = levels
        self.book_after_trade = book_after_trade
        self.dislocation_rate = dislocation_rate
        self.dislocation_edge = edges
        self.dislocation_seconds = dislocation_seconds
        self._clock = clock
        self.best_bid_ask = True
        """Whether to emit ``best_bid_ask`` events (only custom-feature subscribers get them)."""
        self.markets: list[SimMarket] = []
        self.books: dict[str, OrderBook] = {}
        """Every token's live book, by token id."""
        self._by_token: dict[str, SimMarket] = {}
        self._by_condition: dict[str, SimMarket] = {}
        self._live: list[SimMarket] = []
        self._dislocated: list[SimMarket] = []
        for _ in range(markets):
            self._create_market()

    # -- identity ----------------------------------------------------------------------

    def _create_market(self) -> SimMarket:
        rng = self.rng
        index = len(self.markets)
        condition_id = f"0x{rng.getrandbits(256):064x}"
        yes_token = str(rng.randrange(10**75, 10**77))
        no_token = str(rng.randrange(10**75, 10**77))
        subject = _SUBJECTS[index % len(_SUBJECTS)]
        threshold = rng.choice((50, 100, 150, 200, 250, 1000, 5000, 100_000))
        question = f"Will {subject} {rng.choice(_VERBS)} {threshold} by December 31?"
        slug = "-".join(question.lower().rstrip("?").replace("&", "").split())
        slug = f"{slug}-{index}"
        logit = rng.uniform(-2.0, 2.0)  # p in about (0.12, 0.88)
        market = SimMarket(
            index=index,
            condition_id=condition_id,
            yes_token=yes_token,
            no_token=no_token,
            question=question,
            slug=slug,
            tick=_COARSE_TICK,
            min_size=_MIN_SIZE,
            sigma=rng.uniform(0.03, 0.15),
            logit=logit,
            anchor=logit,
            yes=OrderBook(yes_token, condition_id),
            no=OrderBook(no_token, condition_id),
        )
        market.tick = self._tick_for(market.mid)
        self._rebuild(market)
        self.markets.append(market)
        self._live.append(market)
        self.books[yes_token] = market.yes
        self.books[no_token] = market.no
        self._by_token[yes_token] = market
        self._by_token[no_token] = market
        self._by_condition[condition_id] = market
        return market

    def market(self, key: str) -> SimMarket:
        """The market of a token id or a condition id.

        Raises:
            KeyError: If neither matches.
        """
        market = self._by_token.get(key) or self._by_condition.get(key)
        if market is None:
            raise KeyError(key)
        return market

    def infos(self) -> list[MarketInfo]:
        """Every market as :class:`~polymarket_agents.feed.MarketInfo`."""
        return [market.info() for market in self.markets]

    def gamma(self) -> list[dict[str, Any]]:
        """Every market as a Gamma ``/markets`` row."""
        return [market.gamma() for market in self.markets]

    # -- helpers -----------------------------------------------------------------------

    def _timestamp(self) -> str:
        return str(int(self._clock() * 1000))

    def _hash(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def _size(self) -> Decimal:
        size = min(max(self.rng.lognormvariate(5.3, 1.2), 5.0), 5000.0)
        return Decimal(f"{size:.2f}")

    @staticmethod
    def _tick_for(mid: float) -> Decimal:
        return _FINE_TICK if mid < _FINE_BELOW or mid > _FINE_ABOVE else _COARSE_TICK

    def snapshot(self, asset_id: str) -> Book:
        """The current ``book`` snapshot of a token, serialised as the live feed does.

        Bids ascending and asks descending (best last); the hash is SHA-1 over compact JSON
        in py-clob-client's key order.

        Raises:
            KeyError: For an unknown token.
        """
        market = self._by_token[asset_id]
        book = self.books[asset_id]
        bids = [[str(p), str(s)] for p, s in sorted(book.bids.items())]
        asks = [[str(p), str(s)] for p, s in sorted(book.asks.items(), reverse=True)]
        timestamp = self._timestamp()
        last = "" if market.last_trade is None else str(self._trade_price(market, asset_id))
        summary = {
            "market": market.condition_id,
            "asset_id": asset_id,
            "timestamp": timestamp,
            "hash": "",
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            "min_order_size": str(market.min_size),
            "tick_size": str(market.tick),
            "neg_risk": False,
            "last_trade_price": last,
        }
        digest = hashlib.sha1(
            json.dumps(summary, separators=(",", ":")).encode(), usedforsecurity=False
        ).hexdigest()
        return Book(
            asset_id=asset_id,
            market=market.condition_id,
            timestamp=timestamp,
            bids=tuple(OrderLevel(p, s) for p, s in sorted(book.bids.items())),
            asks=tuple(OrderLevel(p, s) for p, s in sorted(book.asks.items(), reverse=True)),
            hash=digest,
            tick_size=market.tick,
            last_trade_price=last,
        )

    def _trade_price(self, market: SimMarket, asset_id: str) -> Decimal:
        last = market.last_trade or _ZERO
        return last if asset_id == market.yes_token else _ONE - last

    def _ladder(self, market: SimMarket) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """A fresh YES ladder around the mid, reusing the sizes of levels that stay."""
        tick = market.tick
        top = int(_ONE / tick) - 1  # the highest price, in ticks
        mid_ticks = market.mid / float(tick)
        spread = self.rng.randint(1, 3)
        bid_n = math.floor(mid_ticks - spread / 2)
        bid_n = min(max(bid_n, 1), top - 1)
        ask_n = min(bid_n + spread, top)
        old_bids, old_asks = market.yes.bids, market.yes.asks
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for i in range(self.levels):
            if bid_n - i >= 1:
                price = (bid_n - i) * tick
                bids[price] = old_bids.get(price) or self._size()
            if ask_n + i <= top:
                price = (ask_n + i) * tick
                asks[price] = old_asks.get(price) or self._size()
        return bids, asks

    def _rebuild(self, market: SimMarket) -> None:
        """Replace both books with a fresh ladder (the NO book mirrored)."""
        bids, asks = self._ladder(market)
        market.yes.apply_book(_book_of(market.yes_token, market.condition_id, bids, asks))
        self._mirror(market)

    def _mirror(self, market: SimMarket) -> None:
        yes = market.yes
        no_bids = {_ONE - p: s for p, s in yes.asks.items()}
        no_asks = {_ONE - p: s for p, s in yes.bids.items()}
        market.no.apply_book(_book_of(market.no_token, market.condition_id, no_bids, no_asks))
        market.yes.tick_size = market.no.tick_size = market.tick

    def _change(
        self, market: SimMarket, side: Side, price: Decimal, size: Decimal
    ) -> tuple[PriceLevelChange, PriceLevelChange]:
        """Set a YES level and its NO mirror; the entries carry each top after the change."""
        yes, no = market.yes, market.no
        yes.set_level(side, price, size)
        no_side: Side = "SELL" if side == "BUY" else "BUY"
        no_price = _ONE - price
        no.set_level(no_side, no_price, size)
        return (
            PriceLevelChange(
                market.yes_token, price, size, side, self._hash(), *_advertised_top(yes)
            ),
            PriceLevelChange(
                market.no_token, no_price, size, no_side, self._hash(), *_advertised_top(no)
            ),
        )

    def _price_change(
        self,
        market: SimMarket,
        entries: Iterable[PriceLevelChange],
        tops: dict[str, tuple[Decimal, Decimal]],
    ) -> list[MarketEvent]:
        """The ``price_change`` of some entries, then a ``best_bid_ask`` per moved top.

        Args:
            market: The market the entries belong to.
            entries: The changes, in order.
            tops: Each token's advertised top from before the changes.
        """
        timestamp = self._timestamp()
        events: list[MarketEvent] = [
            PriceChange(
                market=market.condition_id, timestamp=timestamp, price_changes=tuple(entries)
            )
        ]
        if not self.best_bid_ask:
            return events
        for asset_id, before in tops.items():
            after = _advertised_top(self.books[asset_id])
            if after != before:
                events.append(
                    BestBidAsk(
                        asset_id=asset_id,
                        market=market.condition_id,
                        best_bid=after[0],
                        best_ask=after[1],
                        spread=after[1] - after[0],
                        timestamp=timestamp,
                    )
                )
        return events

    def _tops(self, market: SimMarket) -> dict[str, tuple[Decimal, Decimal]]:
        if not self.best_bid_ask:
            return {}
        return {
            market.yes_token: _advertised_top(market.yes),
            market.no_token: _advertised_top(market.no),
        }

    # -- the process -------------------------------------------------------------------

    def step(self, now: float = 0.0) -> list[MarketEvent]:
        """Advance one tick: one order change, trade or mid move in one random market.

        Args:
            now: Loop time, for dislocations' durations.

        Returns:
            The events of the tick, in order (none if every market is resolved).
        """
        events: list[MarketEvent] = []
        if self._dislocated:
            for market in [m for m in self._dislocated if now >= (m.dislocated_until or 0.0)]:
                self._dislocated.remove(market)
                market.dislocated_until = None
                if not market.closed:
                    self._mirror(market)
                    events.append(self.snapshot(market.no_token))
        live = self._live
        if not live:
            return events
        rng = self.rng
        if self.dislocation_rate and rng.random() < self.dislocation_rate:
            events.extend(self._dislocate(rng.choice(live), now))
            return events
        market = rng.choice(live)
        if market.dislocated_until is not None:
            return events  # a quiet tick: the dislocated market waits for its correction
        roll = rng.random()
        if roll < 0.7:
            events.extend(self._order(market))
        elif roll < 0.9:
            events.extend(self._trade(market))
        else:
            events.extend(self._move(market))
        return events

    def _order(self, market: SimMarket) -> list[MarketEvent]:
        """A limit order placed or cancelled: one level of YES (and NO) changes."""
        rng = self.rng
        yes = market.yes
        side: Side = rng.choice(("BUY", "SELL"))
        levels = yes.bids if side == "BUY" else yes.asks
        roll = rng.random()
        if roll < 0.4 and levels:
            price = rng.choice(list(levels))
            size = self._size()
        elif roll < 0.65 and len(levels) > 1:
            price = rng.choice(list(levels))
            size = _ZERO
        else:
            tick = market.tick
            top = int(_ONE / tick) - 1
            if side == "BUY":
                ask = yes.best_ask
                high = int(ask / tick) - 1 if ask is not None else top - 1
                low = max(1, high - self.levels)
            else:
                bid = yes.best_bid
                low = int(bid / tick) + 1 if bid is not None else 2
                high = min(top, low + self.levels)
            if low > high:
                return []
            price = rng.randint(low, high) * tick
            size = self._size()
        tops = self._tops(market)
        return self._price_change(market, self._change(market, side, price, size), tops)

    def _trade(self, market: SimMarket) -> list[MarketEvent]:
        """A taker trade on YES or NO: a print, then the level it took from changes."""
        rng = self.rng
        yes = market.yes
        asset_id = rng.choice(market.token_ids)
        taker: Side = rng.choice(("BUY", "SELL"))
        # A NO buy takes NO asks, which mirror YES bids; and so on.
        takes_yes_asks = (taker == "BUY") == (asset_id == market.yes_token)
        yes_side: Side = "SELL" if takes_yes_asks else "BUY"
        yes_price = yes.best_ask if takes_yes_asks else yes.best_bid
        if yes_price is None:
            return self._move(market)
        resting = (yes.asks if takes_yes_asks else yes.bids)[yes_price]
        size = min(resting, max(_MIN_SIZE, self._size() / 4).quantize(Decimal("0.01")))
        market.last_trade = yes_price
        market.volume += size
        price = yes_price if asset_id == market.yes_token else _ONE - yes_price
        events: list[MarketEvent] = [
            LastTradePrice(
                asset_id=asset_id,
                market=market.condition_id,
                price=price,
                size=size,
                side=taker,
                timestamp=self._timestamp(),
                fee_rate_bps=_ZERO,
                transaction_hash=f"0x{rng.getrandbits(256):064x}",
            )
        ]
        tops = self._tops(market)
        entries = self._change(market, yes_side, yes_price, resting - size)
        if self.book_after_trade:
            events.append(self.snapshot(market.yes_token))
            events.append(self.snapshot(market.no_token))
        else:
            events.extend(self._price_change(market, entries, tops))
        return events

    def _move(self, market: SimMarket) -> list[MarketEvent]:
        """The mid moves: the ladder follows, or is rebuilt if the tick size changes."""
        rng = self.rng
        step = rng.gauss(0.0, market.sigma)
        if rng.random() < 0.02:
            step += rng.gauss(0.0, 5 * market.sigma)  # a jump: news
        # A gentle pull back to where the market started keeps a long run interesting.
        step -= _REVERSION * (market.logit - market.anchor)
        market.logit = min(max(market.logit + step, -_LOGIT_LIMIT), _LOGIT_LIMIT)
        tick = self._tick_for(market.mid)
        if tick != market.tick:
            old = market.tick
            market.tick = tick
            self._rebuild(market)
            timestamp = self._timestamp()
            return [
                *(
                    TickSizeChange(
                        asset_id=asset_id,
                        market=market.condition_id,
                        old_tick_size=old,
                        new_tick_size=tick,
                        timestamp=timestamp,
                    )
                    for asset_id in market.token_ids
                ),
                self.snapshot(market.yes_token),
                self.snapshot(market.no_token),
            ]
        bids, asks = self._ladder(market)
        yes = market.yes
        removals: list[tuple[Side, Decimal]] = [
            *(("BUY", p) for p in yes.bids if p not in bids),
            *(("SELL", p) for p in yes.asks if p not in asks),
        ]
        additions: list[tuple[Side, Decimal, Decimal]] = [
            *(("BUY", p, s) for p, s in bids.items() if yes.bids.get(p) != s),
            *(("SELL", p, s) for p, s in asks.items() if yes.asks.get(p) != s),
        ]
        tops = self._tops(market)
        entries: list[PriceLevelChange] = []
        # Removals first, so that no intermediate state is crossed.
        for side, price in removals:
            entries.extend(self._change(market, side, price, _ZERO))
        for side, price, size in additions:
            entries.extend(self._change(market, side, price, size))
        if not entries:
            return []
        return self._price_change(market, entries, tops)

    def _dislocate(self, market: SimMarket, now: float) -> list[MarketEvent]:
        """Shift the NO book down so that YES ask + NO ask = 1 - edge, for a while."""
        if market.dislocated_until is not None:
            return []
        yes, no = market.yes, market.no
        yes_ask, no_ask = yes.best_ask, no.best_ask
        if yes_ask is None or no_ask is None:
            return []
        tick = market.tick
        edge = Decimal(str(self.rng.uniform(*self.dislocation_edge)))
        target = ((_ONE - yes_ask - edge) / tick).to_integral_value(ROUND_FLOOR) * tick
        shift = target - no_ask
        if target < tick or shift >= 0:
            return []
        bids = {p + shift: s for p, s in no.bids.items() if p + shift >= tick}
        asks = {p + shift: s for p, s in no.asks.items()}
        no.apply_book(_book_of(market.no_token, market.condition_id, bids, asks))
        no.tick_size = tick
        market.dislocated_until = now + self.dislocation_seconds
        self._dislocated.append(market)
        return [self.snapshot(market.no_token)]

    # -- lifecycle ---------------------------------------------------------------------

    def add_market(self) -> tuple[SimMarket, NewMarket]:
        """Create a market; the returned ``new_market`` event announces it."""
        market = self._create_market()
        event = NewMarket(
            market=market.condition_id,
            timestamp=self._timestamp(),
            id=str(500_000 + market.index),
            question=market.question,
            slug=market.slug,
            assets_ids=market.token_ids,
            outcomes=("Yes", "No"),
        )
        return market, event

    def close(self, key: str) -> None:
        """Close a market (by token or condition id) before it resolves: Gamma lists it
        ``closed`` at its last prices and it emits nothing more; :meth:`resolve` gives
        it its final prices later.

        Raises:
            KeyError: For an unknown market.
        """
        market = self.market(key)
        market.closed = True
        if market in self._live:
            self._live.remove(market)

    def resolve(self, key: str, winner: str | None = None) -> MarketResolved:
        """Resolve a market (by token or condition id); it emits nothing afterwards.

        Args:
            key: A token id or the condition id.
            winner: ``"Yes"`` or ``"No"``; the side whose mid is above 0.5 if None.

        Returns:
            The ``market_resolved`` event.

        Raises:
            KeyError: For an unknown market.
            ValueError: For a winner other than Yes or No.
        """
        market = self.market(key)
        if winner is None:
            winner = "Yes" if market.mid > 0.5 else "No"
        if winner not in ("Yes", "No"):
            raise ValueError(f"winner must be 'Yes' or 'No', not {winner!r}")
        self.close(key)
        market.winner = winner
        return MarketResolved(
            market=market.condition_id,
            timestamp=self._timestamp(),
            winning_asset_id=market.yes_token if winner == "Yes" else market.no_token,
            winning_outcome=winner,
            id=str(500_000 + market.index),
            question=market.question,
            slug=market.slug,
            assets_ids=market.token_ids,
            outcomes=("Yes", "No"),
        )


def _advertised_top(book: OrderBook) -> tuple[Decimal, Decimal]:
    """Best bid and ask as the feed advertises them: ``0``/``1`` for an empty side."""
    bid, ask = book.best_bid, book.best_ask
    return (_ZERO if bid is None else bid, _ONE if ask is None else ask)


def _book_of(
    asset_id: str, market: str, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
) -> Book:
    return Book(
        asset_id=asset_id,
        market=market,
        timestamp="0",
        bids=tuple(OrderLevel(p, s) for p, s in bids.items()),
        asks=tuple(OrderLevel(p, s) for p, s in asks.items()),
    )


def legacy_price_changes(event: PriceChange) -> list[dict[str, Any]]:
    """The same changes in the legacy schema: one message per asset, with ``changes``."""
    by_asset: dict[str, list[PriceLevelChange]] = {}
    for change in event.price_changes:
        by_asset.setdefault(change.asset_id, []).append(change)
    return [
        {
            "asset_id": asset_id,
            "changes": [
                {"price": str(c.price), "side": c.side, "size": str(c.size)} for c in changes
            ],
            "event_type": "price_change",
            "market": event.market,
            "timestamp": event.timestamp,
            "hash": changes[-1].hash,
        }
        for asset_id, changes in by_asset.items()
    ]
