"""``RiskLimits``: what the paper account refuses to do, checked before every signal trades.

As Hummingbot's and NautilusTrader's risk engines do, a signal whose orders would break a
limit is refused as a whole (every leg, so a complement trade is never left with one side);
the broker records the legs as ``rejected`` with the limit as the reason and counts the
refusal by reason (:attr:`~polymarket_agents.agents.PaperBroker.refused`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from polymarket_agents.core.async_utils import ConfigurationError

__all__ = ["RiskLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """Limits of a paper account, in USDC; None: no limit.

    Attributes:
        order_size: The most one order may cost (price x size, fee included).
        max_position: The most the account may have paid for what it holds in one market
            (both tokens), counting the orders of the signal.
        max_exposure: The same over every market.
        daily_loss: Once the account's equity has fallen this much since midnight (UTC),
            no more buying that day.

    Raises:
        ConfigurationError: On a limit that is not positive.
    """

    order_size: Decimal | None = None
    max_position: Decimal | None = None
    max_exposure: Decimal | None = None
    daily_loss: Decimal | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{field.name} must be > 0 or None, not {value!r}")

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        # Asked before every signal: four plain reads, not dataclasses.fields().
        return not (
            self.order_size is None
            and self.max_position is None
            and self.max_exposure is None
            and self.daily_loss is None
        )

    def settings(self) -> dict[str, str | None]:
        """The limits as text, by name (what an account stores)."""
        return {
            field.name: None if (v := getattr(self, field.name)) is None else str(v)
            for field in fields(self)
        }

    def refusal(
        self,
        *,
        orders: list[tuple[str, Decimal]],
        held_by_market: dict[str, Decimal],
        loss_today: Decimal,
    ) -> str:
        """Why a signal's purchases break a limit, or ``""``.

        Args:
            orders: Each BUY order's market and most it can cost.
            held_by_market: What the account has paid for what it holds, per market.
            loss_today: How much the equity fell since midnight (negative: it rose).
        """
        if not orders:
            return ""
        if self.daily_loss is not None and loss_today >= self.daily_loss:
            return f"risk: daily loss limit of {self.daily_loss} USDC reached"
        for _, cost in orders:
            if self.order_size is not None and cost > self.order_size:
                return f"risk: order of {cost:.2f} USDC above the order size of {self.order_size}"
        added: dict[str, Decimal] = {}
        for market, cost in orders:
            added[market] = added.get(market, Decimal(0)) + cost
        if self.max_position is not None:
            for market, cost in added.items():
                if held_by_market.get(market, Decimal(0)) + cost > self.max_position:
                    return f"risk: position in {market[:12]}... above {self.max_position} USDC"
        if self.max_exposure is not None:
            total = sum(held_by_market.values(), Decimal(0)) + sum(added.values(), Decimal(0))
            if total > self.max_exposure:
                return f"risk: exposure of {total:.2f} USDC above {self.max_exposure}"
        return ""
