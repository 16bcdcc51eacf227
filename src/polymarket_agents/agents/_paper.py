"""``PaperBroker``: py-clob-client's order API, filled against the locally held books.

The method names, arguments, validation messages and response fields follow py-clob-client
(``create_order``, ``post_order``, ``create_and_post_order``, ``create_market_order``,
``cancel``, ``cancel_all``, ``get_orders`` ...), so code written for the real client runs
against it. Nothing is signed and nothing leaves the process: orders fill against the books
the monitors keep, and every order state and fill is put on the ingestion queue as a
:class:`~polymarket_agents.storage.PaperOrderRow` / :class:`~polymarket_agents.storage.FillRow`.

Differences from the real client, on purpose: methods that post or cancel are coroutines
(they wait for room on the ingestion queue rather than drop a row); prices and sizes are
exact Decimals; paper fills do not take liquidity out of the books (the same depth can be
filled by two orders), and resting orders fill at their own price once the book crosses
them, as a maker, without fee.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import MarketBooks, MarketInfo, OrderBook
from polymarket_agents.storage import FillRow, PaperOrderRow, Store

from ._account import Account, Portfolio, PositionState
from ._analysis import Analysis
from ._handoff import DEFAULT_HANDOFF_TIMEOUT, handoff
from ._orders import (
    BUY,
    InvalidOrder,
    MarketOrderArgs,
    OrderArgs,
    OrderResponse,
    OrderSide,
    OrderType,
    to_decimal,
)

__all__ = [
    "FAK_KILLED",
    "FOK_KILLED",
    "NOT_ENOUGH_BALANCE",
    "PaperBroker",
    "PaperOrder",
]

_logger = logging.getLogger("polymarket_agents.agents")

FOK_KILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."
"""The CLOB's error for a FOK order the book cannot fill completely."""
FAK_KILLED = (
    "no orders found to match with FAK order. FAK orders are partially filled or killed if "
    "no match is found."
)
"""The CLOB's error for a FAK order nothing in the book matches."""
NOT_ENOUGH_BALANCE = "not enough balance / allowance"
"""The CLOB's error for an order the account cannot pay for (or has not the shares to sell)."""
_POST_ONLY_CROSSES = "invalid post-only order: order crosses book"
_POST_ONLY_TYPE = "invalid post-only order: only GTC and GTD orders can be post-only"
_NO_BOOK = "no orderbook exists for the requested token id"

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_TRADE_IDS = uuid.UUID("5b6a3c1e-8f0d-4c55-9a57-2f4d0c6e7a11")

# Order statuses, as the CLOB reports them in responses and order listings.
LIVE = "live"
MATCHED = "matched"
UNMATCHED = "unmatched"
CANCELED = "canceled"
EXPIRED = "expired"
REJECTED = "rejected"


def _ms(now: Callable[[], float]) -> int:
    return int(now() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperOrder:
    """A validated order, ready to post: what ``create_order`` returns.

    It plays the part of py-clob-client's signed order; there is no signature.

    Attributes:
        order_id: ``0x`` + 64 hex; derived from ``signal_id`` when there is one, so the
            same signal always names the same order.
        token_id: The token.
        market: Its condition id, when the broker knows it.
        side: ``BUY`` or ``SELL``.
        price: The limit price.
        size: Shares.
        tick_size: The tick it was validated against.
        fee_rate_bps: As given in the order args.
        expiration: Epoch seconds (GTD orders); 0: none.
        signal_id: The signal (and leg) it serves, or None for a manual order.
        created_at_ms: When it was created.
    """

    order_id: str
    token_id: str
    market: str
    side: OrderSide
    price: Decimal
    size: Decimal
    tick_size: Decimal
    fee_rate_bps: int = 0
    expiration: int = 0
    signal_id: str | None = None
    created_at_ms: int = 0


@dataclass(slots=True)
class _State:
    """The broker's record of one posted order."""

    order: PaperOrder
    order_type: OrderType
    status: str
    updated_at_ms: int
    filled: Decimal = _ZERO
    fills: int = 0
    revision: int = 0
    error: str = ""
    trade_ids: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.order.size - self.filled

    def row(self) -> PaperOrderRow:
        order = self.order
        return PaperOrderRow(
            order_id=order.order_id,
            signal_id=order.signal_id,
            market=order.market,
            token_id=order.token_id,
            side=order.side,
            price=order.price,
            size=order.size,
            order_type=self.order_type.value,
            status=self.status,
            created_at_ms=order.created_at_ms,
            filled_size=self.filled,
            updated_at_ms=self.updated_at_ms,
            revision=self.revision,
            error=self.error,
        )


def _response(
    state: _State | None,
    *,
    order_id: str = "",
    error: str = "",
    making: Decimal = _ZERO,
    taking: Decimal = _ZERO,
    trade_ids: Iterable[str] = (),
) -> OrderResponse:
    return {
        "success": not error,
        "errorMsg": error,
        "orderID": state.order.order_id if state is not None else order_id,
        "status": state.status if state is not None else UNMATCHED,
        "makingAmount": str(making),
        "takingAmount": str(taking),
        "tradeIDs": list(trade_ids),
        "transactionsHashes": [],
    }


class PaperBroker:
    """A paper trading account with py-clob-client's order API and the :class:`Broker` role.

    ::

        broker = PaperBroker(queue=queue, starting_cash=Decimal(1000))
        broker.track(feed.books.pair(market.condition_id), market)
        response = await broker.create_and_post_order(
            OrderArgs(token_id=market.yes_token, price=0.45, size=10, side=BUY),
            order_type=OrderType.FOK,
        )
        response["success"], response["status"], broker.portfolio().total_pnl

    Order types: FOK fills completely against the book at once or is killed; FAK fills what
    the book has up to its limit and cancels the rest; GTC and GTD fill what crosses at once
    and rest as ``live`` for the rest, filling later when the book crosses them (monitors
    call :meth:`on_book_update`), until cancelled or, for GTD, expired. Takers pay
    ``fee_rate_bps`` of the notional; makers pay nothing. BUY orders need the cash at their
    limit price (resting ones keep it reserved); SELL orders need the shares (no shorting).

    Idempotency: :meth:`submit_trade` places each leg of a signal at most once. The ids it
    has seen live in the broker, which outlives monitor restarts, and :meth:`load` reads
    them (with fills, positions and resting orders) back from the store after a process
    restart; the store's unique ``signal_id`` is the last line of defence.

    Args:
        queue: The ingestion queue; every order state and fill is put on it. None: nothing
            is stored.
        starting_cash: USDC the account starts with.
        fee_rate_bps: Taker fee, in basis points of the notional.
        default_tick: Tick of tokens whose market the broker does not know.
        default_min_size: Minimum order size of tokens whose market it does not know.
        now: Wall clock, in seconds since the epoch.
        handoff_timeout: Seconds a cancelled call still waits to queue its rows.
        logger: Where to log.

    Raises:
        ConfigurationError: On negative cash or fees, or a tick outside (0, 1).
    """

    def __init__(
        self,
        *,
        queue: asyncio.Queue[Any] | None = None,
        starting_cash: Decimal = Decimal(1000),
        fee_rate_bps: Decimal = _ZERO,
        default_tick: Decimal = _CENT,
        default_min_size: Decimal = Decimal(5),
        now: Callable[[], float] = time.time,
        handoff_timeout: float = DEFAULT_HANDOFF_TIMEOUT,
        logger: logging.Logger | None = None,
    ) -> None:
        starting_cash = to_decimal(starting_cash, "starting_cash")
        fee_rate_bps = to_decimal(fee_rate_bps, "fee_rate_bps")
        if not starting_cash >= 0:
            raise ConfigurationError(f"starting_cash must be >= 0, not {starting_cash!r}")
        if not fee_rate_bps >= 0:
            raise ConfigurationError(f"fee_rate_bps must be >= 0, not {fee_rate_bps!r}")
        if not _ZERO < default_tick < _ONE:
            raise ConfigurationError(f"default_tick must be in (0, 1), not {default_tick!r}")
        self._queue = queue
        self.starting_cash = starting_cash
        self.fee_rate_bps = fee_rate_bps
        self._fee = fee_rate_bps / _BPS
        self._default_tick = default_tick
        self._default_min_size = default_min_size
        self._now = now
        self._handoff_timeout = handoff_timeout
        self._logger = logger or _logger
        self._account = Account(starting_cash)
        self._books: dict[str, OrderBook] = {}
        self._markets: dict[str, MarketInfo] = {}  # by token id
        self._orders: dict[str, _State] = {}
        self._resting: dict[str, dict[str, _State]] = {}  # token id -> order id -> state
        self._resting_markets: dict[str, int] = {}  # condition id -> resting orders
        self._signals: set[str] = set()
        self.duplicate_signals = 0
        """Signals (or legs) refused because they were handled before."""
        self.lost_rows = 0
        """Rows a stop made the broker abandon because the queue stayed full."""
        self.rows_queued = 0
        """Order and fill rows handed to the ingestion queue."""

    def __repr__(self) -> str:
        return (
            f"<PaperBroker cash={self._account.cash} orders={len(self._orders)} "
            f"fills={self._account.fills}>"
        )

    # -- books and markets ---------------------------------------------------------------

    def track(self, books: MarketBooks, market: MarketInfo) -> None:
        """Fill orders for ``market``'s tokens against ``books`` from now on.

        Args:
            books: The market's YES/NO books (a monitor's feed; replaced on restart).
            market: The market, for its tick and minimum size.
        """
        for book in (books.yes, books.no):
            self._books[book.asset_id] = book
            self._markets[book.asset_id] = market

    def get_order_book(self, token_id: str) -> OrderBook | None:
        """The tracked book of ``token_id``, or None."""
        return self._books.get(token_id)

    def get_tick_size(self, token_id: str) -> Decimal:
        """The token's tick: its book's, else its market's, else ``default_tick``."""
        book = self._books.get(token_id)
        if book is not None and book.tick_size is not None:
            return book.tick_size
        market = self._markets.get(token_id)
        return market.tick_size if market is not None else self._default_tick

    def get_midpoint(self, token_id: str) -> dict[str, str]:
        """``{"mid": "0.455"}`` from the tracked book (``""`` when there is none)."""
        book = self._books.get(token_id)
        mid = book.mid if book is not None and book.synced else None
        return {"mid": "" if mid is None else str(mid)}

    def _min_size(self, token_id: str) -> Decimal:
        market = self._markets.get(token_id)
        return market.min_size if market is not None else self._default_min_size

    # -- creating orders -------------------------------------------------------------------

    def create_order(
        self,
        order_args: OrderArgs,
        *,
        signal_id: str | None = None,
        tick_size: Decimal | None = None,
    ) -> PaperOrder:
        """Validate ``order_args`` as py-clob-client and the CLOB do, and build the order.

        Args:
            order_args: The order.
            signal_id: The signal (leg) it serves; also makes its order id deterministic.
            tick_size: The tick to validate against; the token's if None.

        Returns:
            The order, ready for :meth:`post_order`.

        Raises:
            InvalidOrder: If the price is outside ``[tick, 1 - tick]``
                (``"price (0.995), min: 0.01 - max: 0.99"``), not a multiple of the tick,
                or the size is below the market's minimum or finer than 0.01.
        """
        token_id = order_args.token_id
        if not token_id:
            raise InvalidOrder("invalid token id")
        tick = tick_size if tick_size is not None else self.get_tick_size(token_id)
        price, size = order_args.price, order_args.size
        if not tick <= price <= _ONE - tick:
            raise InvalidOrder(f"price ({price}), min: {tick} - max: {_ONE - tick}")
        if price % tick:
            raise InvalidOrder(f"price ({price}) breaks the minimum tick size rule: {tick}")
        minimum = self._min_size(token_id)
        if not size >= minimum or size <= 0:
            raise InvalidOrder(f"size ({size}) lower than the minimum: {minimum}")
        if size != size.quantize(_CENT, ROUND_DOWN):
            raise InvalidOrder(f"size ({size}) has more than 2 decimals")
        market = self._markets.get(token_id)
        return PaperOrder(
            order_id=_order_id(signal_id),
            token_id=token_id,
            market=market.condition_id if market is not None else "",
            side=order_args.side,
            price=price,
            size=size,
            tick_size=tick,
            fee_rate_bps=order_args.fee_rate_bps,
            expiration=order_args.expiration,
            signal_id=signal_id,
            created_at_ms=_ms(self._now),
        )

    def calculate_market_price(
        self, token_id: str, side: OrderSide, amount: Decimal, order_type: OrderType
    ) -> Decimal:
        """The worst price a market order of ``amount`` reaches in the book.

        ``amount`` is USDC for a BUY (walking the asks) and shares for a SELL (walking the
        bids). A FAK order that the book cannot fully serve gets the book's last level.

        Raises:
            InvalidOrder: ``"no match"`` if the book is empty or, for FOK, too thin.
        """
        book = self._books.get(token_id)
        if book is None or not book.synced:
            raise InvalidOrder("no match")
        levels = book.levels("SELL") if side == BUY else book.levels("BUY")
        if not levels:
            raise InvalidOrder("no match")
        total = _ZERO
        for price, size in levels:
            total += price * size if side == BUY else size
            if total >= amount:
                return price
        if order_type is OrderType.FOK:
            raise InvalidOrder("no match")
        return levels[-1][0]

    def create_market_order(
        self, order_args: MarketOrderArgs, *, signal_id: str | None = None
    ) -> PaperOrder:
        """Build a market order: a limit order at the worst price ``amount`` reaches.

        Post it with its ``order_type`` (FOK or FAK): ``post_order(order, args.order_type)``.

        Raises:
            InvalidOrder: As :meth:`create_order`, or ``"no match"`` from the book.
        """
        if not order_args.amount > 0:
            raise InvalidOrder(f"amount ({order_args.amount}) must be > 0")
        price = order_args.price
        if price <= 0:
            price = self.calculate_market_price(
                order_args.token_id, order_args.side, order_args.amount, order_args.order_type
            )
        if order_args.side == BUY:
            size = (order_args.amount / price).quantize(_CENT, ROUND_DOWN)
        else:
            size = order_args.amount
        return self.create_order(
            OrderArgs(
                order_args.token_id,
                price,
                size,
                order_args.side,
                fee_rate_bps=order_args.fee_rate_bps,
            ),
            signal_id=signal_id,
        )

    # -- posting ---------------------------------------------------------------------------

    async def post_order(
        self, order: PaperOrder, orderType: OrderType = OrderType.GTC, post_only: bool = False
    ) -> OrderResponse:
        """Post a created order; it fills against the tracked book per its type.

        Refusals are returned, not raised, as the CLOB returns them: ``success`` False and
        ``errorMsg`` (FOK not fully fillable, nothing for a FAK, not enough balance, a
        post-only order that crosses, a GTD order without expiration, a duplicate).

        Args:
            order: From :meth:`create_order`.
            orderType: GTC (default, as py-clob-client), GTD, FOK or FAK.
            post_only: Refuse the order if it would take liquidity (GTC/GTD only).

        Returns:
            The CLOB's response fields (:class:`OrderResponse`).
        """
        response, rows = self._post(order, OrderType(orderType), post_only)
        await self._emit(rows)
        return response

    async def create_and_post_order(
        self, order_args: OrderArgs, order_type: OrderType = OrderType.GTC
    ) -> OrderResponse:
        """:meth:`create_order` then :meth:`post_order`.

        Raises:
            InvalidOrder: As :meth:`create_order`.
        """
        return await self.post_order(self.create_order(order_args), order_type)

    def _post(
        self, order: PaperOrder, order_type: OrderType, post_only: bool
    ) -> tuple[OrderResponse, list[object]]:
        if order.order_id in self._orders:
            error = f"order {order.order_id} is invalid. Duplicated."
            return _response(None, order_id=order.order_id, error=error), []
        now_ms = _ms(self._now)
        state = _State(order, order_type, UNMATCHED, now_ms)
        self._orders[order.order_id] = state
        error = self._refusal(order, order_type, post_only)
        if error:
            state.error = error
            return _response(state, error=error), [state.row()]
        takes = self._takes(order, order.size)
        taken = sum((size for _, size in takes), _ZERO)
        if order_type is OrderType.FOK and taken < order.size:
            state.error = FOK_KILLED if order.token_id in self._books else _NO_BOOK
            return _response(state, error=state.error), [state.row()]
        if order_type is OrderType.FAK and not taken:
            state.error = FAK_KILLED if order.token_id in self._books else _NO_BOOK
            return _response(state, error=state.error), [state.row()]
        rows: list[object] = []
        making = taking = _ZERO
        for price, size in takes:
            fill = self._fill(state, price, size, maker=False, now_ms=now_ms)
            rows.append(fill)
            notional = price * size
            if order.side == BUY:
                making, taking = making + notional + fill.fee, taking + size
            else:
                making, taking = making + size, taking + notional - fill.fee
        if state.filled >= order.size or order_type in (OrderType.FOK, OrderType.FAK):
            state.status = MATCHED
        else:
            state.status = LIVE
            self._rest(state)
        rows.insert(0, state.row())
        return _response(state, making=making, taking=taking, trade_ids=state.trade_ids), rows

    def _refusal(self, order: PaperOrder, order_type: OrderType, post_only: bool) -> str:
        """Why the CLOB would refuse the order now, or ``""``."""
        if post_only:
            if order_type not in (OrderType.GTC, OrderType.GTD):
                return _POST_ONLY_TYPE
            if self._takes(order, order.size):
                return _POST_ONLY_CROSSES
        if order_type is OrderType.GTD:
            if order.expiration <= 0:
                return "invalid expiration: GTD orders need an expiration"
            if order.expiration <= self._now():
                return "invalid expiration: the expiration is in the past"
        if order.side == BUY:
            if order.price * order.size * (_ONE + self._fee) > self._available_cash():
                return NOT_ENOUGH_BALANCE
        elif order.size > self._available_shares(order.token_id):
            return NOT_ENOUGH_BALANCE
        return ""

    def _available_cash(self) -> Decimal:
        return self._account.cash - self._reserved_cash()

    def _reserved_cash(self) -> Decimal:
        factor = _ONE + self._fee
        return sum(
            (
                state.order.price * state.remaining * factor
                for orders in self._resting.values()
                for state in orders.values()
                if state.order.side == BUY
            ),
            _ZERO,
        )

    def _available_shares(self, token_id: str) -> Decimal:
        held = self._account.held(token_id)
        resting = self._resting.get(token_id, {})
        return held - sum((s.remaining for s in resting.values() if s.order.side != BUY), _ZERO)

    def _takes(self, order: PaperOrder, size: Decimal) -> list[tuple[Decimal, Decimal]]:
        """The ``(price, size)`` the order would take from the book now, best first."""
        book = self._books.get(order.token_id)
        if book is None or not book.synced or size <= 0:
            return []
        buy = order.side == BUY
        takes: list[tuple[Decimal, Decimal]] = []
        left = size
        for price, available in book.levels("SELL" if buy else "BUY"):
            if (price > order.price) if buy else (price < order.price):
                break
            take = min(available, left)
            takes.append((price, take))
            left -= take
            if left <= 0:
                break
        return takes

    def _fill(
        self, state: _State, price: Decimal, size: Decimal, *, maker: bool, now_ms: int
    ) -> FillRow:
        """Book one fill: cash, position, the order's state; return its row."""
        order = state.order
        notional = price * size
        fee = _ZERO if maker else notional * self._fee
        seq = state.fills
        fill = FillRow(
            order_id=order.order_id,
            seq=seq,
            token_id=order.token_id,
            side=order.side,
            price=price,
            size=size,
            timestamp_ms=now_ms,
            market=order.market,
            fee=fee,
        )
        self._account.apply(fill)
        state.filled += size
        state.fills = seq + 1
        state.updated_at_ms = now_ms
        state.trade_ids.append(str(uuid.uuid5(_TRADE_IDS, f"{order.order_id}/{seq}")))
        return fill

    def _rest(self, state: _State) -> None:
        order = state.order
        self._resting.setdefault(order.token_id, {})[order.order_id] = state
        self._resting_markets[order.market] = self._resting_markets.get(order.market, 0) + 1

    def _unrest(self, state: _State) -> None:
        order = state.order
        resting = self._resting.get(order.token_id)
        if resting is None or resting.pop(order.order_id, None) is None:
            return
        if not resting:
            del self._resting[order.token_id]
        count = self._resting_markets.get(order.market, 0) - 1
        if count > 0:
            self._resting_markets[order.market] = count
        else:
            self._resting_markets.pop(order.market, None)

    async def _emit(self, rows: list[object]) -> None:
        if self._queue is not None and rows:
            # Counted before the hand-off, taken back if it is abandoned: a cancellation
            # during the hand-off would otherwise skip the count of rows that did go in.
            self.rows_queued += len(rows)
            await handoff(
                self._queue,
                tuple(rows),
                timeout=self._handoff_timeout,
                logger=self._logger,
                on_lost=self._lost,
            )

    def _lost(self, item: object) -> None:
        self.lost_rows += len(item)  # type: ignore[arg-type]
        self.rows_queued -= len(item)  # type: ignore[arg-type]

    # -- resting orders --------------------------------------------------------------------

    def resting(self, condition_id: str) -> bool:
        """Whether orders rest on the market (so that book updates may fill them)."""
        return condition_id in self._resting_markets

    async def on_book_update(self, books: MarketBooks) -> None:
        """Fill resting orders the books now cross (at their own price) and expire GTDs."""
        rows: list[object] = []
        now = self._now()
        now_ms = int(now * 1000)
        for book in (books.yes, books.no):
            resting = self._resting.get(book.asset_id)
            if not resting or not book.synced:
                continue
            for state in list(resting.values()):
                order = state.order
                if state.order_type is OrderType.GTD and order.expiration <= now:
                    state.status = EXPIRED
                else:
                    crossing = book.walk(order.side, limit=order.price, size=state.remaining).size
                    if not crossing:
                        continue
                    rows.append(self._fill(state, order.price, crossing, maker=True, now_ms=now_ms))
                    if state.remaining > 0:
                        state.revision += 1
                        rows.append(state.row())
                        continue
                    state.status = MATCHED
                state.updated_at_ms = now_ms
                state.revision += 1
                self._unrest(state)
                rows.append(state.row())
        await self._emit(rows)

    # -- cancelling and listing --------------------------------------------------------------

    async def cancel(self, order_id: str) -> dict[str, Any]:
        """Cancel a resting order.

        Returns:
            ``{"canceled": [order_id], "not_canceled": {}}``, or the id under
            ``not_canceled`` with the reason.
        """
        state = self._orders.get(order_id)
        if state is None:
            return await self._cancel([], missing=[order_id])
        return await self._cancel([state])

    async def cancel_all(self) -> dict[str, Any]:
        """Cancel every resting order (see :meth:`cancel`)."""
        return await self._cancel([s for r in self._resting.values() for s in r.values()])

    async def cancel_market_orders(self, market: str = "", asset_id: str = "") -> dict[str, Any]:
        """Cancel the resting orders of a market (condition id) and/or a token."""
        return await self._cancel(
            [
                s
                for r in self._resting.values()
                for s in r.values()
                if (not market or s.order.market == market)
                and (not asset_id or s.order.token_id == asset_id)
            ]
        )

    async def _cancel(self, states: list[_State], missing: Iterable[str] = ()) -> dict[str, Any]:
        canceled: list[str] = []
        not_canceled: dict[str, str] = dict.fromkeys(missing, "order not found")
        rows: list[object] = []
        now_ms = _ms(self._now)
        for state in states:
            order_id = state.order.order_id
            if state.status != LIVE:
                not_canceled[order_id] = f"order is {state.status}, not live"
                continue
            state.status = CANCELED
            state.updated_at_ms = now_ms
            state.revision += 1
            self._unrest(state)
            canceled.append(order_id)
            rows.append(state.row())
        await self._emit(rows)
        return {"canceled": canceled, "not_canceled": not_canceled}

    def get_orders(
        self, *, id: str | None = None, market: str | None = None, asset_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The open (live) orders, optionally of one id, market or token, oldest first."""
        return [
            _order_dict(state)
            for resting in self._resting.values()
            for state in resting.values()
            if (id is None or state.order.order_id == id)
            and (market is None or state.order.market == market)
            and (asset_id is None or state.order.token_id == asset_id)
        ]

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """Any order this broker posted (or loaded), open or not; None if unknown."""
        state = self._orders.get(order_id)
        return None if state is None else _order_dict(state)

    # -- the Broker role -------------------------------------------------------------------

    @property
    def signal_ids(self) -> Collection[str]:
        """Every signal leg handled so far (``<signal id>#<leg>``), loaded ones included."""
        return self._signals

    async def submit_trade(self, analysis: Analysis) -> list[OrderResponse]:
        """Place the orders of a signal, each leg at most once, all legs or none.

        Each order gets the signal id ``<analysis.signal_id>#<leg>``; a signal any of whose
        legs was handled before is skipped (``duplicate_signals`` counts it). Invalid legs
        (bad tick, size) are recorded as ``rejected``; when FOK legs cannot all fill, or
        the account cannot pay for all of them, every leg is killed, so a complement
        trade is never left with one side.

        Returns:
            The responses of the orders placed now; empty for a signal handled before.
        """
        legs = analysis.orders
        if not legs:
            return []
        base = analysis.signal_id
        leg_ids: list[str | None] = [None] * len(legs)
        if base is not None:
            leg_ids = [f"{base}#{leg}" for leg in range(len(legs))]
            if any(leg_id in self._signals for leg_id in leg_ids):
                self.duplicate_signals += 1
                return []
            self._signals.update(leg_ids)  # type: ignore[arg-type]
        responses, rows = self._submit(analysis, leg_ids)
        await self._emit(rows)
        return responses

    def _submit(
        self, analysis: Analysis, leg_ids: list[str | None]
    ) -> tuple[list[OrderResponse], list[object]]:
        """Everything of :meth:`submit_trade` but the hand-off, with no await in between:
        the books cannot change from one leg to the next."""
        orders: list[PaperOrder] = []
        invalid = ""
        for args, leg_id in zip(analysis.orders, leg_ids, strict=True):
            try:
                orders.append(self.create_order(args, signal_id=leg_id))
            except InvalidOrder as exc:
                invalid = invalid or str(exc)
                orders.append(self._unchecked(args, leg_id))
        order_type = analysis.order_type
        error = invalid
        if not error and len(orders) > 1:
            error = self._all_or_none(orders, order_type)
        if error:
            status = REJECTED if invalid else UNMATCHED
            # An invalid order is a strategy bug; a book or a balance that cannot fill it
            # is business as usual, and frequent once the cash is tied up in positions.
            self._logger.log(
                logging.WARNING if invalid else logging.INFO,
                "signal %s not placed: %s",
                analysis.signal_id,
                error,
            )
            now_ms = _ms(self._now)
            responses: list[OrderResponse] = []
            rows: list[object] = []
            for order in orders:
                state = _State(order, order_type, status, now_ms, error=error)
                self._orders.setdefault(order.order_id, state)
                responses.append(_response(state, error=error))
                rows.append(state.row())
            return responses, rows
        responses, rows = [], []
        for order in orders:
            response, order_rows = self._post(order, order_type, False)
            responses.append(response)
            rows.extend(order_rows)
        self._logger.info(
            "signal %s (edge %.4f): %s",
            analysis.signal_id,
            analysis.edge,
            ", ".join(f"{r['status']} {r['takingAmount']}" for r in responses),
        )
        return responses, rows

    def _all_or_none(self, orders: list[PaperOrder], order_type: OrderType) -> str:
        """Why the legs cannot all be placed together now, or ``""``."""
        cost = sum((o.price * o.size * (_ONE + self._fee) for o in orders if o.side == BUY), _ZERO)
        if cost > self._available_cash():
            return NOT_ENOUGH_BALANCE
        if order_type is OrderType.FOK:
            for order in orders:
                taken = sum((size for _, size in self._takes(order, order.size)), _ZERO)
                if taken < order.size:
                    return FOK_KILLED
        return ""

    def _unchecked(self, args: OrderArgs, signal_id: str | None) -> PaperOrder:
        market = self._markets.get(args.token_id)
        return PaperOrder(
            order_id=_order_id(signal_id),
            token_id=args.token_id or "?",
            market=market.condition_id if market is not None else "",
            side=args.side,
            price=args.price,
            size=args.size,
            tick_size=self.get_tick_size(args.token_id),
            fee_rate_bps=args.fee_rate_bps,
            expiration=args.expiration,
            signal_id=signal_id,
            created_at_ms=_ms(self._now),
        )

    # -- account ---------------------------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        """USDC held now (resting BUY orders' reservations included)."""
        return self._account.cash

    @property
    def orders(self) -> int:
        """Orders posted (or refused) so far, loaded ones included."""
        return len(self._orders)

    @property
    def fills(self) -> int:
        """Fills so far, loaded ones included."""
        return self._account.fills

    def _mid(self, token_id: str) -> Decimal | None:
        book = self._books.get(token_id)
        return book.mid if book is not None and book.synced else None

    def positions(self) -> list[PositionState]:
        """Every position with shares or realised profit, marked to the books, by token."""
        return self._account.positions(self._mid)

    def portfolio(self) -> Portfolio:
        """Cash, positions valued at the books (complete YES+NO pairs at 1), and profit."""
        return self._account.portfolio(self._mid, self._reserved_cash())

    # -- restart ---------------------------------------------------------------------------

    async def load(self, store: Store) -> int:
        """Read back what a previous run stored: signal ids, orders, fills, resting orders.

        Call it before trading (the runtime does, at start). Cash and positions are
        rebuilt by replaying the stored fills from ``starting_cash``; resting (``live``)
        GTC/GTD orders rest again.

        Args:
            store: The open store the previous run wrote to.

        Returns:
            How many orders were loaded.

        Raises:
            StoreUnavailableError: If the store cannot be read now.
        """
        stored_orders = await store.recent_orders(sys.maxsize)
        stored_fills = await store.recent_fills(sys.maxsize)
        loaded = 0
        for row in reversed(stored_orders):
            if row.order_id in self._orders:
                continue
            loaded += 1
            if row.signal_id is not None:
                self._signals.add(row.signal_id)
            order = PaperOrder(
                order_id=row.order_id,
                token_id=row.token_id,
                market=row.market,
                side=BUY if row.side == BUY else "SELL",
                price=row.price,
                size=row.size,
                tick_size=self.get_tick_size(row.token_id),
                signal_id=row.signal_id,
                created_at_ms=row.created_at_ms,
            )
            state = _State(
                order,
                OrderType(row.order_type),
                row.status,
                row.updated_at_ms,
                filled=row.filled_size,
                revision=row.revision,
                error=row.error,
            )
            self._orders[row.order_id] = state
            if row.status == LIVE and state.order_type in (OrderType.GTC, OrderType.GTD):
                self._rest(state)
        for fill in reversed(stored_fills):
            self._account.apply(fill)
            filled = self._orders.get(fill.order_id)
            if filled is not None:
                filled.fills = max(filled.fills, fill.seq + 1)
                filled.trade_ids.append(str(uuid.uuid5(_TRADE_IDS, f"{fill.order_id}/{fill.seq}")))
        if loaded:
            self._logger.info(
                "paper broker loaded %d orders and %d fills: cash %s",
                loaded,
                len(stored_fills),
                self._account.cash,
            )
        return loaded


def _order_id(signal_id: str | None) -> str:
    if signal_id is None:
        return "0x" + secrets.token_hex(32)
    return "0x" + hashlib.sha256(signal_id.encode()).hexdigest()


def _order_dict(state: _State) -> dict[str, Any]:
    order = state.order
    return {
        "id": order.order_id,
        "status": state.status.upper(),
        "market": order.market,
        "asset_id": order.token_id,
        "side": order.side,
        "original_size": str(order.size),
        "size_matched": str(state.filled),
        "price": str(order.price),
        "order_type": state.order_type.value,
        "expiration": str(order.expiration),
        "created_at": order.created_at_ms // 1000,
        "associate_trades": list(state.trade_ids),
    }
