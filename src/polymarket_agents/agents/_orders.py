"""Order values shaped like py-clob-client's: ``OrderArgs``, ``MarketOrderArgs``, ``OrderType``.

The names, fields and defaults follow ``py_clob_client.clob_types`` so that code written for
the real client reads the same against the paper broker. Two differences, both on purpose:
prices and sizes are exact :class:`~decimal.Decimal` values (floats, ints and decimal strings
are accepted and converted through their shortest text, so ``0.52`` becomes ``Decimal("0.52")``),
and the values are frozen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Literal, TypeAlias, TypedDict

from polymarket_agents.core.async_utils import AgentError

__all__ = [
    "BUY",
    "SELL",
    "ZERO_ADDRESS",
    "InvalidOrder",
    "MarketOrderArgs",
    "OrderArgs",
    "OrderResponse",
    "OrderSide",
    "OrderType",
    "taker_fee",
    "to_decimal",
]

OrderSide: TypeAlias = Literal["BUY", "SELL"]
"""An order's side, as py-clob-client spells it."""

BUY: OrderSide = "BUY"
"""py-clob-client's ``order_builder.constants.BUY``."""
SELL: OrderSide = "SELL"
"""py-clob-client's ``order_builder.constants.SELL``."""

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
"""The default ``taker``: anyone may take the order."""


class OrderType(enum.StrEnum):
    """How long an order lives (py-clob-client's ``OrderType``).

    * ``GTC``: good till cancelled; what does not fill at once rests on the book as ``live``.
    * ``GTD``: good till date (``expiration``, epoch seconds); rests like GTC until then.
    * ``FOK``: fill or kill: fills completely at once, or not at all.
    * ``FAK``: fill and kill: fills what it can at once; the rest is cancelled.
    """

    GTC = "GTC"
    FOK = "FOK"
    GTD = "GTD"
    FAK = "FAK"


class InvalidOrder(AgentError, ValueError):
    """An order that fails validation: price outside the tick range, off the tick, too small.

    Raised by ``create_order`` with py-clob-client's wording where it has one
    (``"price (0.995), min: 0.01 - max: 0.99"``). A :class:`ValueError`.
    """


FEE_QUANTUM = Decimal("0.00001")
"""Fees are floored to five decimals of USDC, as the venue charges them."""


def taker_fee(shares: Decimal, price: Decimal, rate: Decimal, exponent: int = 1) -> Decimal:
    """Polymarket's taker fee for a fill: ``shares * rate * (price * (1 - price)) ** exponent``.

    Fees peak at a price of 0.50 and fall to nothing towards 0 and 1; only the taker pays
    them (a resting order that is filled pays none). ``rate`` is the market's fee rate
    (Gamma's ``feeSchedule.rate``: 0.02 is 2 %; 0 for the many markets without fees) and
    ``exponent`` its ``feeSchedule.exponent`` (1 today; fee-enabled crypto markets once
    used 2). The result is floored to 0.00001 USDC.

    Args:
        shares: Shares filled.
        price: The fill price.
        rate: The fee rate, as a fraction.
        exponent: The fee curve's exponent.

    Returns:
        The fee in USDC (the paper account pays it in USDC; the venue takes a BUY's fee in
        shares of the same value at the fill price).
    """
    if not rate or not shares:
        return Decimal(0)
    fee = shares * rate * (price * (1 - price)) ** exponent
    return fee.quantize(FEE_QUANTUM, rounding=ROUND_DOWN)


def to_decimal(value: Decimal | float | int | str, name: str) -> Decimal:
    """``value`` as an exact, finite Decimal (a float through its shortest text).

    Raises:
        InvalidOrder: If it is not a finite number.
    """
    if type(value) is Decimal:
        result = value
    else:
        try:
            result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            raise InvalidOrder(f"{name} must be a number, not {value!r}") from None
    if not result.is_finite():
        raise InvalidOrder(f"{name} must be finite, not {value!r}")
    return result


def _side(value: str) -> OrderSide:
    if value == "BUY":
        return "BUY"
    if value == "SELL":
        return "SELL"
    raise InvalidOrder(f"invalid side {value!r}: must be BUY or SELL")


@dataclass(frozen=True, slots=True)
class OrderArgs:
    """A limit order: buy or sell ``size`` shares of ``token_id`` at ``price`` or better.

    Attributes:
        token_id: The token to trade.
        price: The limit price, a multiple of the market's tick.
        size: Shares.
        side: ``BUY`` or ``SELL``.
        fee_rate_bps: Fee rate in basis points the order accepts.
        nonce: Kept for py-clob-client compatibility; unused by the paper broker.
        expiration: For GTD orders: epoch seconds after which the order expires; 0: never.
        taker: Kept for py-clob-client compatibility.

    Raises:
        InvalidOrder: If price or size is not a finite number, or the side is neither BUY
            nor SELL. Range, tick and minimum size are checked by ``create_order``.
    """

    token_id: str
    price: Decimal
    size: Decimal
    side: OrderSide
    fee_rate_bps: int = 0
    nonce: int = 0
    expiration: int = 0
    taker: str = ZERO_ADDRESS

    def __post_init__(self) -> None:
        object.__setattr__(self, "price", to_decimal(self.price, "price"))
        object.__setattr__(self, "size", to_decimal(self.size, "size"))
        object.__setattr__(self, "side", _side(self.side))


@dataclass(frozen=True, slots=True)
class MarketOrderArgs:
    """A market order: spend ``amount`` (BUY, in USDC) or sell ``amount`` shares (SELL).

    Attributes:
        token_id: The token to trade.
        amount: USDC to spend for a BUY; shares to sell for a SELL.
        side: ``BUY`` or ``SELL``.
        price: The worst price accepted; 0 lets the broker compute it from the book.
        fee_rate_bps: Fee rate in basis points the order accepts.
        nonce: Kept for py-clob-client compatibility.
        taker: Kept for py-clob-client compatibility.
        order_type: ``FOK`` (the default) or ``FAK``.

    Raises:
        InvalidOrder: If amount or price is not a finite number, or the side is invalid.
    """

    token_id: str
    amount: Decimal
    side: OrderSide
    price: Decimal = Decimal(0)
    fee_rate_bps: int = 0
    nonce: int = 0
    taker: str = ZERO_ADDRESS
    order_type: OrderType = OrderType.FOK

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount, "amount"))
        object.__setattr__(self, "price", to_decimal(self.price, "price"))
        object.__setattr__(self, "side", _side(self.side))
        object.__setattr__(self, "order_type", OrderType(self.order_type))


class OrderResponse(TypedDict):
    """What ``post_order`` returns: the fields of the CLOB's ``POST /order`` response.

    Amounts are decimal strings, as the CLOB sends them.
    """

    success: bool
    """False when the order was refused or killed."""
    errorMsg: str
    """Why, when it was; empty otherwise."""
    orderID: str
    """``0x`` + 64 hex."""
    status: str
    """``"matched"`` (filled at once), ``"live"`` (resting) or ``"unmatched"`` (killed)."""
    makingAmount: str
    """What the order gave: USDC for a BUY, shares for a SELL."""
    takingAmount: str
    """What it received: shares for a BUY, USDC for a SELL."""
    tradeIDs: list[str]
    """One id per fill."""
    transactionsHashes: list[str]
    """Settlement transactions; always empty on paper."""
