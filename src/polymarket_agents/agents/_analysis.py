"""Analysis: the strategy interface, and the model-free default, complement arbitrage.

A strategy looks at a market's two books after each event and may return an
:class:`Analysis`: the edge it sees and the orders that would capture it. The monitor
submits those orders when the edge is above its threshold (the seed's 0.05)::

    class MyStrategy:
        def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
            ...

        def resume(self, signal_ids: Iterable[str]) -> int:
            return 0

    await monitor_market(market, feed_url=url, queue=queue, broker=broker,
                         strategy=MyStrategy())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import (
    Book,
    MarketBooks,
    MarketEvent,
    OrderBook,
    PriceChange,
    SyncState,
)

from ._orders import BUY, OrderArgs, OrderType

__all__ = ["DEFAULT_EDGE_THRESHOLD", "Analysis", "ComplementArbitrage", "Strategy"]

DEFAULT_EDGE_THRESHOLD = Decimal("0.05")
"""The seed's threshold: trade when the edge is above 5 %."""

_ZERO = Decimal(0)
_ONE = Decimal(1)
_SYNCED = SyncState.SYNCED
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis:
    """What a strategy concluded from the books: an edge, and the orders that capture it.

    Attributes:
        edge: Expected profit per unit, as a fraction (0.06 is 6 cents per dollar of
            payout); the monitor trades only when it is above its threshold.
        orders: The orders to place, all of type ``order_type``; empty when the edge is
            real but cannot be traded (not enough depth, below the minimum size).
        order_type: How the orders are posted; FOK by default, so each leg fills
            completely or not at all.
        signal_id: A deterministic id of the opportunity: the same opportunity seen again
            (after a reconnect, a replayed book, a restart) must give the same id, so that
            the broker places its orders once. None: the broker does not deduplicate.
        market: The condition id of the market.
        reason: A few words for the log.
    """

    edge: Decimal
    orders: tuple[OrderArgs, ...] = ()
    order_type: OrderType = OrderType.FOK
    signal_id: str | None = None
    market: str = ""
    reason: str = ""


class Strategy(Protocol):
    """What a monitor runs after every market event: ``analyze`` and ``resume``.

    A strategy is any object with these two methods; it need not inherit from anything.
    The service builds one instance per run (``--strategy package.module:Class``, each
    ``--strategy-option key=value`` a keyword argument of the class, see
    :func:`load_strategy`) and gives it to every monitor, so one object sees the events of
    all markets, in the order they are taken from the feeds. A backtest calls it in the
    same order with the same books, so a strategy that depends only on what it is given
    makes the same decisions on recorded data as it did live.

    The life of a strategy in a run::

        strategy = MyStrategy(**options)            # once per run
        strategy.resume(broker.signal_ids)          # once, before the first event
        for each event, in arrival order:
            analysis = strategy.analyze(books, event)
            if analysis is not None and analysis.edge > threshold and analysis.orders:
                broker.submit_trade(analysis)       # each signal id traded once

    Rules a strategy must keep:

    * ``analyze`` runs on the event loop after every event, so it must be quick and must
      not block (no I/O, no sleeping); it may keep state between calls.
    * ``books`` are the market's YES and NO books *after* the event was applied. A book
      that is not synced (before its first snapshot, after a reconnect, or stale) is no
      evidence of anything: check ``books.synced`` first.
    * Orders of an :class:`Analysis` are traded only when ``edge`` is strictly above the
      service's threshold (``--edge-threshold``), all legs or none.
    * ``signal_id`` must be deterministic: the same opportunity seen again (a replayed
      book, a reconnect, a restart) must give the same id, so that the broker trades it
      once. Build it from what identifies the opportunity (market, prices, an episode
      counter), never from a clock or a random number. None opts out of deduplication.
    * An exception from ``analyze`` is counted (``analysis_errors``), the first one logged
      with its traceback, and the event skipped; the monitor goes on.

    ``resume`` is how a strategy's memory survives a process restart: it receives every
    signal id the account has used (the paper broker reads them back from the database)
    and restores whatever counters its ids are built from, so that it does not hand out an
    id that was used before for a different opportunity. A stateless strategy returns 0.
    """

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        """Analyse the market's books after ``event`` was applied to them.

        Args:
            books: The YES and NO books of the event's market (``books.condition_id``);
                check ``books.synced``.
            event: The event just applied: a :class:`~polymarket_agents.feed.Book`,
                :class:`~polymarket_agents.feed.PriceChange`,
                :class:`~polymarket_agents.feed.LastTradePrice`,
                :class:`~polymarket_agents.feed.TickSizeChange` or another market-channel
                event of the market.

        Returns:
            An :class:`Analysis` (the edge seen and the orders to capture it), or None
            when there is nothing to say.
        """
        ...

    def resume(self, signal_ids: Iterable[str]) -> int:
        """Restore the strategy's memory from the signal ids used before a restart.

        Called once per run before the first event (and again when a monitor with a
        strategy of its own restarts). Ids of other strategies may be among them: ignore
        what you do not recognise.

        Args:
            signal_ids: Every signal id the account has used; each order's id is
                ``<signal id>#<leg>``, as the broker stores it.

        Returns:
            How many markets (or other units of memory) were restored; 0 when none.
        """
        ...


@dataclass(slots=True)
class _Episode:
    """Per market: which dislocation this is, and whether one is on now."""

    number: int = 0
    dislocated: bool = False


@dataclass(slots=True)
class ComplementArbitrage:
    """Buy YES and NO together when their asks sum to less than the 1.00 one of them pays.

    In a binary market exactly one of YES and NO pays 1 at resolution, so a pair bought at
    ``ask_yes + ask_no < 1`` earns the difference whatever happens. The edge, per pair::

        edge = 1 - cost(ask_yes) - cost(ask_no)
        cost(p) = p + rate * p * (1 - p)        (Polymarket's taker fee per share,
                                                  rate = fee_rate_bps / 10_000)

    The order size walks both ask ladders together, best prices first, taking depth as long
    as each extra pair still earns more than ``min_edge``; it is floored to the size
    precision, capped so that the pairs cost at most ``max_notional``, and dropped when
    below ``min_size``. The result is two FOK BUY orders (YES and NO) for the same size,
    limited at the worst price each walk reached, and ``edge`` is the average edge of that
    size.

    Signal ids are ``arb:<condition id>:<episode>:<ask yes>:<ask no>``. The episode
    counter of a market advances only when synced books show the dislocation gone, so the
    same dislocation seen again after a reconnect, a monitor restart or a replayed book has
    the same id and is traded once. While a book is not synced nothing changes.

    One instance serves any number of markets; give it to every monitor and keep it for
    the life of the process (its episode counters are its memory). After a process
    restart, :meth:`resume` restores the counters from the signal ids already used.

    Args:
        min_edge: The smallest edge per pair worth taking when walking the depth; the
            monitor's threshold is applied to the result on top of it.
        fee_rate_bps: The markets' fee rate in basis points (Polymarket's formula, see
            :func:`~polymarket_agents.agents.taker_fee`).
        max_notional: Most USDC one signal may spend (both legs); None: no cap.
        min_size: The market's minimum order size, in shares.
        size_decimals: Decimals of an order size (py-clob-client rounds sizes to 2).

    Raises:
        ConfigurationError: On a negative edge, fee, cap or size.
    """

    min_edge: Decimal = DEFAULT_EDGE_THRESHOLD
    fee_rate_bps: Decimal = _ZERO
    max_notional: Decimal | None = Decimal(100)
    min_size: Decimal = Decimal(5)
    size_decimals: int = 2
    _episodes: dict[str, _Episode] = field(default_factory=dict, init=False, repr=False)
    _rate: Decimal = field(default=_ZERO, init=False, repr=False)
    _quantum: Decimal = field(default=_ONE, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("min_edge", "fee_rate_bps", "min_size"):
            if not getattr(self, name) >= 0:
                raise ConfigurationError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        if self.max_notional is not None and not self.max_notional > 0:
            raise ConfigurationError(f"max_notional must be > 0, not {self.max_notional!r}")
        if not 0 <= self.size_decimals <= 8:
            raise ConfigurationError(f"size_decimals must be in [0, 8], not {self.size_decimals}")
        self._rate = Decimal(self.fee_rate_bps) / _BPS
        self._quantum = Decimal(1).scaleb(-self.size_decimals)

    def analyze(self, books: MarketBooks, event: MarketEvent) -> Analysis | None:
        """The complement edge of the market, with the orders to capture it, if any.

        Returns:
            None unless both books are synced and ``1 - (ask_yes + ask_no)`` net of fees
            is above ``min_edge``; otherwise an :class:`Analysis` whose orders may be empty
            when the depth is too thin.
        """
        kind = type(event)
        if kind is not PriceChange and kind is not Book:
            return None  # trades and tick changes do not move the asks
        yes, no = books.yes, books.no
        if yes.state is not _SYNCED or no.state is not _SYNCED:
            return None  # a reconnect or a resync is no evidence either way
        ask_yes, ask_no = yes.best_ask, no.best_ask
        episode = self._episodes.get(books.condition_id)
        # Every event of every market comes here: the fee-free sum without two calls.
        if (
            ask_yes is None
            or ask_no is None
            or (
                _ONE - self._unit(ask_yes) - self._unit(ask_no)
                if self._rate
                else _ONE - ask_yes - ask_no
            )
            <= self.min_edge
        ):
            if episode is not None and episode.dislocated:
                episode.dislocated = False
                episode.number += 1
            return None
        if episode is None:
            episode = self._episodes[books.condition_id] = _Episode()
        episode.dislocated = True
        signal_id = f"arb:{books.condition_id}:{episode.number}:{ask_yes}:{ask_no}"
        return self._size(books, yes, no, signal_id)

    def _unit(self, price: Decimal) -> Decimal:
        """What one share at ``price`` costs, Polymarket's taker fee included."""
        return price + self._rate * price * (_ONE - price) if self._rate else price

    def _size(self, books: MarketBooks, yes: OrderBook, no: OrderBook, signal_id: str) -> Analysis:
        """Walk both ask ladders together and build the two legs."""
        unit_cost, min_edge = self._unit, self.min_edge
        yes_asks, no_asks = yes.levels("SELL"), no.levels("SELL")
        budget = self.max_notional
        # (yes price, no price, size) segments, best first.
        segments: list[tuple[Decimal, Decimal, Decimal]] = []
        i = j = 0
        yes_left, no_left = yes_asks[0][1], no_asks[0][1]
        spent = _ZERO
        while i < len(yes_asks) and j < len(no_asks):
            yes_price, no_price = yes_asks[i][0], no_asks[j][0]
            unit = unit_cost(yes_price) + unit_cost(no_price)
            if _ONE - unit <= min_edge:
                break
            take = min(yes_left, no_left)
            if budget is not None:
                take = min(take, (budget - spent) / unit)
            if take <= 0:
                break
            segments.append((yes_price, no_price, take))
            spent += take * unit
            yes_left -= take
            no_left -= take
            if yes_left <= 0:
                i += 1
                yes_left = yes_asks[i][1] if i < len(yes_asks) else _ZERO
            if no_left <= 0:
                j += 1
                no_left = no_asks[j][1] if j < len(no_asks) else _ZERO
        total = sum((s[2] for s in segments), _ZERO).quantize(self._quantum, ROUND_DOWN)
        top_edge = _ONE - unit_cost(yes_asks[0][0]) - unit_cost(no_asks[0][0])
        if not segments or total < self.min_size or total <= 0:
            return Analysis(
                edge=top_edge,
                signal_id=signal_id,
                market=books.condition_id,
                reason=f"edge {top_edge} but only {total} shares within reach",
            )
        # The cost of exactly `total` pairs, and the worst price each leg must accept.
        left, cost = total, _ZERO
        worst_yes, worst_no = segments[0][0], segments[0][1]
        for yes_price, no_price, take in segments:
            part = min(take, left)
            if part <= 0:
                break
            cost += part * (unit_cost(yes_price) + unit_cost(no_price))
            worst_yes, worst_no = yes_price, no_price
            left -= part
        edge = _ONE - cost / total
        fee = int(self.fee_rate_bps)
        orders = (
            OrderArgs(yes.asset_id, worst_yes, total, BUY, fee_rate_bps=fee),
            OrderArgs(no.asset_id, worst_no, total, BUY, fee_rate_bps=fee),
        )
        return Analysis(
            edge=edge,
            orders=orders,
            order_type=OrderType.FOK,
            signal_id=signal_id,
            market=books.condition_id,
            reason=f"YES ask {yes_asks[0][0]} + NO ask {no_asks[0][0]} < 1: {total} pairs",
        )

    def resume(self, signal_ids: Iterable[str]) -> int:
        """Restore the episode counters from signal ids used before a process restart.

        Each market continues from the highest episode found, taken as still dislocated:
        if that dislocation is still on at the same prices its id is the same (and the
        broker knows it was used); once it is seen gone, the next one gets a new number.

        Args:
            signal_ids: An iterable of signal ids; ids of other strategies are ignored.

        Returns:
            How many markets were restored.
        """
        restored = 0
        for signal_id in signal_ids:
            parts = signal_id.split(":")
            if len(parts) < 3 or parts[0] != "arb" or not parts[2].isdigit():
                continue
            number = int(parts[2])
            episode = self._episodes.get(parts[1])
            if episode is None:
                episode = self._episodes[parts[1]] = _Episode()
                restored += 1
            if number >= episode.number:
                episode.number = number
                episode.dislocated = True
        return restored
