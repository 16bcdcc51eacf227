"""The paper account: cash, positions on an average-cost basis, and profit marked to market."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from polymarket_agents.storage import FillRow

__all__ = ["Account", "Portfolio", "PositionState"]

_ZERO = Decimal(0)
_BUY = "BUY"


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionState:
    """One token's paper position, marked to the market.

    Attributes:
        token_id: The token.
        market: Its condition id.
        size: Shares held.
        cost: What the shares held cost, fees included (average-cost basis).
        mark: The price they are valued at: the book's mid, else the last known mark, else
            their average cost.
        value: ``size * mark``.
        unrealized_pnl: ``value - cost``.
        realized_pnl: Profit taken by selling, fees deducted.
    """

    token_id: str
    market: str
    size: Decimal
    cost: Decimal
    mark: Decimal | None
    value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Portfolio:
    """Cash, positions and profit of a paper account.

    Complete YES+NO pairs of a market are valued at exactly 1 each, whatever the books
    say: one of the two pays 1 at resolution, and a pair can be merged back into 1 USDC at
    any time. Unpaired shares are valued at their marks.

    Attributes:
        starting_cash: USDC the account started with.
        cash: USDC now.
        reserved_cash: USDC set aside for resting BUY orders.
        positions_value: The positions' value (pairs at 1, the rest at their marks).
        equity: ``cash + positions_value``.
        realized_pnl: Profit taken by selling.
        unrealized_pnl: ``positions_value`` minus what the positions cost.
        total_pnl: ``equity - starting_cash``.
        fees: Fees paid.
        positions: Every non-empty position.
    """

    starting_cash: Decimal
    cash: Decimal
    reserved_cash: Decimal
    positions_value: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    total_pnl: Decimal
    fees: Decimal
    positions: tuple[PositionState, ...]


@dataclass(slots=True)
class _Holding:
    market: str
    size: Decimal = _ZERO
    cost: Decimal = _ZERO
    realized: Decimal = _ZERO
    mark: Decimal | None = None


class Account:
    """Cash and holdings, changed by fills only.

    Args:
        starting_cash: USDC at the start.
    """

    __slots__ = ("_holdings", "cash", "fees", "fills", "starting_cash")

    def __init__(self, starting_cash: Decimal) -> None:
        self.starting_cash = starting_cash
        self.cash = starting_cash
        self.fees = _ZERO
        self.fills = 0
        self._holdings: dict[str, _Holding] = {}

    def held(self, token_id: str) -> Decimal:
        """Shares of ``token_id`` held."""
        holding = self._holdings.get(token_id)
        return holding.size if holding is not None else _ZERO

    def held_in(self, market: str) -> list[str]:
        """The tokens of ``market`` with shares held, by token id."""
        return sorted(t for t, h in self._holdings.items() if h.market == market and h.size)

    def markets_held(self) -> set[str]:
        """The markets in which shares are held."""
        return {h.market for h in self._holdings.values() if h.size}

    def apply(self, fill: FillRow) -> None:
        """Book a fill: a BUY pays price x size + fee; a SELL takes its profit against the
        average cost of the shares it sells."""
        holding = self._holdings.get(fill.token_id)
        if holding is None:
            holding = self._holdings[fill.token_id] = _Holding(fill.market)
        notional = fill.price * fill.size
        self.fees += fill.fee
        self.fills += 1
        if fill.side == _BUY:
            self.cash -= notional + fill.fee
            holding.size += fill.size
            holding.cost += notional + fill.fee
        else:
            basis = holding.cost / holding.size * fill.size if holding.size else _ZERO
            self.cash += notional - fill.fee
            holding.realized += notional - fill.fee - basis
            holding.cost -= basis
            holding.size -= fill.size
            if not holding.size:
                holding.cost = _ZERO

    def positions(self, mid: Callable[[str], Decimal | None]) -> list[PositionState]:
        """Every position with shares or realised profit, by token id.

        Args:
            mid: The current mid of a token, or None if unknown (the last mark is kept).
        """
        states: list[PositionState] = []
        for token_id in sorted(self._holdings):
            holding = self._holdings[token_id]
            if not holding.size and not holding.realized:
                continue
            current = mid(token_id)
            if current is not None:
                holding.mark = current
            mark = holding.mark
            if mark is None and holding.size:
                mark = holding.cost / holding.size
            value = holding.size * mark if mark is not None else _ZERO
            states.append(
                PositionState(
                    token_id=token_id,
                    market=holding.market,
                    size=holding.size,
                    cost=holding.cost,
                    mark=mark,
                    value=value,
                    unrealized_pnl=value - holding.cost,
                    realized_pnl=holding.realized,
                )
            )
        return states

    def portfolio(self, mid: Callable[[str], Decimal | None], reserved_cash: Decimal) -> Portfolio:
        """The account valued now (see :class:`Portfolio` for how pairs count)."""
        positions = self.positions(mid)
        by_market: dict[str, list[PositionState]] = {}
        for position in positions:
            if position.size > 0:
                by_market.setdefault(position.market, []).append(position)
        value = _ZERO
        for market, held in by_market.items():
            pairs = min(p.size for p in held) if market and len(held) == 2 else _ZERO
            value += pairs
            for position in held:
                if position.mark is not None:
                    value += (position.size - pairs) * position.mark
        cost = sum((p.cost for p in positions), _ZERO)
        equity = self.cash + value
        return Portfolio(
            starting_cash=self.starting_cash,
            cash=self.cash,
            reserved_cash=reserved_cash,
            positions_value=value,
            equity=equity,
            realized_pnl=sum((p.realized_pnl for p in positions), _ZERO),
            unrealized_pnl=value - cost,
            total_pnl=equity - self.starting_cash,
            fees=self.fees,
            positions=tuple(p for p in positions if p.size),
        )
