"""The broker interface the monitors trade through: paper today, a real CLOB client later."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from polymarket_agents.feed import MarketBooks, MarketInfo
from polymarket_agents.storage import FillRow

from ._analysis import Analysis
from ._orders import OrderResponse

__all__ = ["Broker"]


class Broker(Protocol):
    """Where a monitor sends the orders of a signal.

    :class:`~polymarket_agents.agents.PaperBroker` fills them against the local books; a
    live implementation would sign and post them with py-clob-client. Whatever the
    implementation, :meth:`submit_trade` must be idempotent per signal: orders of a signal
    id it has seen before are never placed again, whether the signal comes back after a
    reconnect, a monitor restart or a process restart. It must also be durable: the
    decision to trade is recorded before the order is sent and its result right after, so
    that a crash neither repeats nor forgets a trade (the paper broker does it through its
    :class:`~polymarket_agents.agents.TradeJournal`).
    """

    def track(self, books: MarketBooks, market: MarketInfo) -> None:
        """Use ``books`` as the current books of ``market`` (a monitor's feed, replaced
        when the monitor restarts)."""
        ...

    async def submit_trade(self, analysis: Analysis) -> list[OrderResponse]:
        """Place the orders of ``analysis``, unless its signal was placed before.

        Returns:
            One response per order placed now; empty for a signal already handled.
        """
        ...

    def resting(self, condition_id: str) -> bool:
        """Whether orders rest on the market, so that book updates may fill them."""
        ...

    async def on_book_update(self, books: MarketBooks) -> None:
        """The books of a market changed: fill or expire resting orders accordingly."""
        ...

    async def settle(self, market: str, winning_asset_id: str) -> list[FillRow]:
        """The market resolved: pay its positions out (the winner at 1, the rest at 0)."""
        ...

    @property
    def signal_ids(self) -> Collection[str]:
        """Signal ids handled (orders placed or refused): enough for a strategy to resume
        its numbering, i.e. at least the latest of every market, loaded from the store at
        start included. The store, not this collection, is what refuses older repeats."""
        ...
