"""An example strategy: buy a token whose ask falls well below its recent average price.

Run it on paper against the embedded simulator, then backtest it on what was recorded::

    polymarket-agents run --strategy examples.mean_reversion:MeanReversion \\
        --strategy-option threshold=0.03 --duration 60
    polymarket-agents backtest --strategy examples.mean_reversion:MeanReversion \\
        --strategy-option threshold=0.03

The idea: a binary market's YES mid wanders around a fair value. Keep an exponential moving
average of the mid as that fair value; when the YES ask drops ``threshold`` or more below it,
buy YES, and when the NO ask drops that far below ``1 - average``, buy NO. The edge reported
is the distance below fair value, so the service's ``--edge-threshold`` filters on it too.
Positions are held until the market resolves: this is an example, not advice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from polymarket_agents.agents import BUY, Analysis, OrderArgs, OrderType
from polymarket_agents.feed import Book, MarketBooks, MarketEvent, OrderBook, PriceChange

__all__ = ["MeanReversion"]

_ONE = Decimal(1)


@dataclass(slots=True)
class _Market:
    """What the strategy remembers of one market."""

    average: Decimal | None = None
    seen: int = 0
    episode: int = 0
    dislocated: bool = False


@dataclass(slots=True)
class MeanReversion:
    """Buy YES or NO when its ask is ``threshold`` or more below the average mid.

    Every constructor argument is a ``--strategy-option``; the command line converts the
    text to the annotated type.

    Args:
        window: Span, in events, of the moving average (``alpha = 2 / (window + 1)``);
            the strategy stays quiet until it has seen this many priced events.
        threshold: How far below fair value an ask must be to buy, in price units.
        size: Shares per order.

    Raises:
        ValueError: On a window below 1, or a threshold or size that is not positive.
    """

    window: int = 50
    threshold: Decimal = Decimal("0.03")
    size: Decimal = Decimal(10)
    _markets: dict[str, _Market] = field(default_factory=dict, init=False, repr=False)
    _alpha: Decimal = field(default=_ONE, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, not {self.window}")
        if not self.threshold > 0 or not self.size > 0:
            raise ValueError("threshold and size must be > 0")
        self._alpha = Decimal(2) / (self.window + 1)

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        """Update the average with the YES mid; buy the side whose ask is far below it."""
        if type(event) is not PriceChange and type(event) is not Book:
            return None  # trades and tick changes do not move the books' mids
        if not books.synced:
            return None  # no snapshot yet, or stale: no evidence either way
        mid = books.yes.mid
        if mid is None:
            return None
        market = self._markets.get(books.condition_id)
        if market is None:
            market = self._markets[books.condition_id] = _Market()
        fair = market.average if market.average is not None else mid
        market.average = fair + self._alpha * (mid - fair)
        market.seen += 1
        if market.seen < self.window:
            return None
        # Compare with the average before this event moved it: the ask must be cheap
        # relative to where the price has been, not where it is now.
        choice = self._cheap(books.yes, fair) or self._cheap(books.no, _ONE - fair)
        if choice is None:
            if market.dislocated:
                market.dislocated = False
                market.episode += 1
            return None
        book, ask, edge = choice
        market.dislocated = True
        return Analysis(
            edge=edge,
            orders=(OrderArgs(book.asset_id, ask, self.size, BUY),),
            order_type=OrderType.FOK,
            # One id per episode (a stretch of cheap asks) and price: the same cheap ask
            # seen again after a reconnect is traded once.
            signal_id=f"mr:{books.condition_id}:{market.episode}:{book.asset_id[-8:]}:{ask}",
            market=books.condition_id,
            reason=f"ask {ask} is {edge:.4f} below the average {fair:.4f}",
        )

    def _cheap(self, book: OrderBook, fair: Decimal) -> tuple[OrderBook, Decimal, Decimal] | None:
        ask = book.best_ask
        if ask is None:
            return None
        edge = fair - ask
        return (book, ask, edge) if edge >= self.threshold else None

    def resume(self, signal_ids: Iterable[str]) -> int:
        """Continue each market's episode count after the highest one used.

        Returns:
            How many markets were restored.
        """
        restored = 0
        for signal_id in signal_ids:
            parts = signal_id.split(":")
            if len(parts) < 3 or parts[0] != "mr" or not parts[2].isdigit():
                continue
            market = self._markets.get(parts[1])
            if market is None:
                market = self._markets[parts[1]] = _Market()
                restored += 1
            # The last episode may still be on: the next one gets a new number once the
            # asks are seen back at fair value.
            market.episode = max(market.episode, int(parts[2]))
            market.dislocated = True
        return restored
