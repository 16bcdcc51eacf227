"""``PaperBroker``: py-clob-client's order API, filled against the locally held books.

The method names, arguments, validation messages and response fields follow py-clob-client
(``create_order``, ``post_order``, ``create_and_post_order``, ``create_market_order``,
``cancel``, ``cancel_all``, ``get_orders`` ...), so code written for the real client runs
against it. Nothing is signed and nothing leaves the process: orders fill against the books
the monitors keep, and every order state and fill is stored as a
:class:`~polymarket_agents.storage.PaperOrderRow` / :class:`~polymarket_agents.storage.FillRow`
through the broker's own :class:`TradeJournal`, not the market-data queue.

A paper trade is as durable as a real one. An order is recorded (``pending``) before it is
executed, and its result (fills, final state) right after, each committed to disk before
the broker goes on: if the decision cannot be recorded the order is not executed, and a
response is returned only once the result is stored. After a crash, :meth:`PaperBroker.load`
finds any order still ``pending`` (executed in memory, result never stored) and records it
as unmatched: a recorded signal is never executed again, and an executed one is never
forgotten.

The broker keeps only open orders in memory (and the last :data:`RECENT_ORDERS` finished
ones, for :meth:`PaperBroker.get_order`); the store remembers the rest, and refuses an
order id or signal it has seen before.

Differences from the real client, on purpose: methods that post or cancel are coroutines
(they wait for the database); prices and sizes are exact Decimals; paper fills do not take
liquidity out of the books (the same depth can be filled by two orders), and resting
orders fill at their own price once the book crosses them, as a maker, without fee.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import MarketBooks, MarketInfo, OrderBook
from polymarket_agents.storage import FillRow, PaperOrderRow, Store, Table

from ._account import Account, Portfolio, PositionState
from ._analysis import Analysis
from ._handoff import DEFAULT_HANDOFF_TIMEOUT
from ._journal import TradeJournal
from ._orders import (
    BUY,
    InvalidOrder,
    MarketOrderArgs,
    OrderArgs,
    OrderResponse,
    OrderSide,
    OrderType,
    taker_fee,
    to_decimal,
)
from ._risk import RiskLimits

__all__ = [
    "FAK_KILLED",
    "FOK_KILLED",
    "INTERRUPTED",
    "NOT_ENOUGH_BALANCE",
    "NOT_RECORDED",
    "RECENT_FILLS",
    "RECENT_ORDERS",
    "RECENT_SIGNALS",
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
NOT_RECORDED = "order could not be recorded before execution; it was not placed"
"""The error of an order whose write-ahead record the database did not take."""
INTERRUPTED = "the process stopped before the result of this order was recorded; not placed"
"""The error a restart records for an order it finds still ``pending``."""
RECENT_ORDERS = 1_000
"""Finished orders kept in memory for :meth:`PaperBroker.get_order`."""
RECENT_FILLS = 50
"""Fills kept in memory for a dashboard (:attr:`PaperBroker.recent_fills`)."""
RECENT_SIGNALS = 10_000
"""Signal ids kept in memory to refuse repeats without asking the database."""
_POST_ONLY_CROSSES = "invalid post-only order: order crosses book"
_POST_ONLY_TYPE = "invalid post-only order: only GTC and GTD orders can be post-only"
_NO_BOOK = "no orderbook exists for the requested token id"

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_TRADE_IDS = uuid.UUID("5b6a3c1e-8f0d-4c55-9a57-2f4d0c6e7a11")

# Order statuses, as the CLOB reports them in responses and order listings; PENDING is
# the write-ahead state, recorded before execution.
PENDING = "pending"
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
        account_id: The paper account it belongs to.
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
    account_id: int = 1


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
            account_id=order.account_id,
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

        broker = PaperBroker(store=store, starting_cash=Decimal(1000))
        await broker.load()  # what an earlier run recorded
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
    Polymarket's fee (:func:`taker_fee`: ``shares * rate * price * (1 - price)``, with the
    rate ``fee_rate_bps / 10_000``); makers pay nothing. BUY orders need the cash at their
    limit price (resting ones keep it reserved); SELL orders need the shares (no shorting).

    Idempotency: :meth:`submit_trade` places each leg of a signal at most once. The
    broker, which outlives monitor restarts, remembers the last :data:`RECENT_SIGNALS`
    signal ids; the store remembers every one (its ``signal_id`` and ``order_id`` are
    unique, and an order is recorded before it is executed), so a signal seen again after
    any restart is refused by the write-ahead record itself. :meth:`load` reads the open
    orders, the fills (cash and positions are rebuilt from them) and each market's latest
    signal back after a process restart.

    Args:
        store: Where orders and fills are recorded, durably, through the broker's
            :class:`TradeJournal` (the store is opened and closed by its owner). None:
            nothing is recorded, and only the last :data:`RECENT_SIGNALS` signals are
            remembered.
        starting_cash: USDC the account starts with.
        fee_rate_bps: The markets' fee rate (``feeSchedule.rate``) in basis points: 200
            is a rate of 0.02 in Polymarket's fee formula (see :func:`taker_fee`).
        default_tick: Tick of tokens whose market the broker does not know.
        default_min_size: Minimum order size of tokens whose market it does not know.
        now: Wall clock, in seconds since the epoch.
        stop_timeout: Seconds a cancelled call still tries to store the result in hand.
        logger: Where to log.

    Raises:
        ConfigurationError: On negative cash or fees, or a tick outside (0, 1).
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        starting_cash: Decimal = Decimal(1000),
        fee_rate_bps: Decimal = _ZERO,
        default_tick: Decimal = _CENT,
        default_min_size: Decimal = Decimal(5),
        now: Callable[[], float] = time.time,
        stop_timeout: float = DEFAULT_HANDOFF_TIMEOUT,
        account_id: int = 1,
        limits: RiskLimits | None = None,
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
        self.starting_cash = starting_cash
        self.fee_rate_bps = fee_rate_bps
        self._fee = fee_rate_bps / _BPS
        self._default_tick = default_tick
        self._default_min_size = default_min_size
        self._now = now
        self._logger = logger or _logger
        self.journal = TradeJournal(store, stop_timeout=stop_timeout, logger=self._logger)
        """Where the broker's rows go: its counters say what was stored."""
        self._account = Account(starting_cash)
        self._books: dict[str, OrderBook] = {}
        self._markets: dict[str, MarketInfo] = {}  # by token id
        # Memory holds what is open; finished orders and old signals live in the store.
        self._open: dict[str, _State] = {}  # order id -> live (resting) order
        # First in, first out: an OrderedDict drops its oldest in constant time, where a
        # dict's first key is found past every slot its deleted keys left (4.7 us at
        # 10,000 entries).
        self._recent: OrderedDict[str, _State] = OrderedDict()  # the last RECENT_ORDERS
        self._signals: OrderedDict[str, None] = OrderedDict()  # the last RECENT_SIGNALS
        self._latest: dict[str, str] = {}  # condition id -> its latest signal id
        self._order_count = 0
        self._resting: dict[str, dict[str, _State]] = {}  # token id -> order id -> state
        self._resting_markets: dict[str, int] = {}  # condition id -> resting orders
        # While a signal's legs execute: the book levels as they were when the strategy
        # decided, by (token id, side), so that the write-ahead record's wait cannot move
        # the book under the legs (and a backtest, which does not wait, fills the same).
        self._frozen: dict[tuple[str, str], list[tuple[Decimal, Decimal]]] | None = None
        # What paper fills took from the books, by (token id, side) and price: (the book's
        # size at that level when taken, the size taken). Until the feed shows the level
        # again (its size changes), the next order sees only what is left.
        self._taken: dict[tuple[str, str], dict[Decimal, tuple[Decimal, Decimal]]] = {}
        self.account_id = account_id
        """The paper account the broker trades (its orders and fills carry it)."""
        self.limits = limits or RiskLimits()
        """What the account refuses to do (:class:`RiskLimits`)."""
        self.refused: Counter[str] = Counter()
        """Signals refused, by reason (the limit, the balance, the book)."""
        self.order_results: Counter[str] = Counter()
        """Orders by what became of them when posted: ``filled``, ``posted`` (resting),
        ``killed``, or ``refused_<reason>`` (:func:`order_result`): a bounded set of keys."""
        self._day: tuple[int, Decimal] | None = None  # (UTC day, equity when it began)
        self._settled: set[str] = set()
        self.recent_fills: deque[FillRow] = deque(maxlen=RECENT_FILLS)
        """The last :data:`RECENT_FILLS` fills, oldest first, for a dashboard."""
        self.duplicate_signals = 0
        """Signals (or legs) refused because they were handled before."""
        self.unrecorded_signals = 0
        """Signals not placed because their orders could not be recorded first."""

    def __repr__(self) -> str:
        return (
            f"<PaperBroker cash={self._account.cash} orders={self._order_count} "
            f"open={len(self._open)} fills={self._account.fills}>"
        )

    @property
    def rows_queued(self) -> int:
        """Order and fill rows handed to the journal to be stored."""
        return self.journal.rows

    @property
    def lost_rows(self) -> int:
        """Rows the journal gave up on at a stop because the store would not take them."""
        return self.journal.lost_rows

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
            order_id=_order_id(signal_id, self.account_id),
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
            account_id=self.account_id,
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
        post-only order that crosses, a GTD order without expiration, a duplicate, an
        order the database could not record before execution: :data:`NOT_RECORDED`, a
        purchase the account's :class:`RiskLimits` refuse: status ``rejected``, the limit
        as the reason), as for a strategy's signals.

        The order is recorded as ``pending`` before it is executed, and its result once
        it is; the response comes after both are stored.

        Args:
            order: From :meth:`create_order`.
            orderType: GTC (default, as py-clob-client), GTD, FOK or FAK.
            post_only: Refuse the order if it would take liquidity (GTC/GTD only).

        Returns:
            The CLOB's response fields (:class:`OrderResponse`).
        """
        order_type = OrderType(orderType)
        if self._known(order.order_id):
            return _duplicate(order.order_id)
        risk = self._risk([order])
        if risk:
            # Refused before any write-ahead record: nothing is executed, one row says why.
            self._logger.warning("order %s not placed: %s", order.order_id, risk)
            response, row = self._reject(order, order_type, risk, rejected=True)
            await self.journal.record([row])
            return response
        try:
            result = await self.journal.intend([_intent(order, order_type, _ms(self._now))])
        except Exception as exc:
            self._logger.warning("order %s not placed: %s (%s)", order.order_id, NOT_RECORDED, exc)
            return _response(None, order_id=order.order_id, error=NOT_RECORDED)
        if result is not None and result.total_duplicates:
            return _duplicate(order.order_id)
        response, rows = self._post(order, order_type, post_only)
        await self.journal.record(rows)
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
        if self._known(order.order_id):  # posted twice meanwhile, without a store
            return _duplicate(order.order_id), []
        now_ms = _ms(self._now)
        state = _State(order, order_type, UNMATCHED, now_ms, revision=1)
        self._order_count += 1
        error = self._refusal(order, order_type, post_only)
        if not error:
            takes = self._takes(order, order.size)
            taken = sum((size for _, size in takes), _ZERO)
            if order_type is OrderType.FOK and taken < order.size:
                error = FOK_KILLED if order.token_id in self._books else _NO_BOOK
            elif order_type is OrderType.FAK and not taken:
                error = FAK_KILLED if order.token_id in self._books else _NO_BOOK
        if error:
            state.error = error
            self._keep(state)
            self.order_results[order_result(error)] += 1
            return _response(state, error=error), [state.row()]
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
            self._keep(state)
            self.order_results["filled" if state.filled else "killed"] += 1
        else:
            state.status = LIVE
            self._rest(state)
            self.order_results["posted"] += 1
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
            if self._cost(order.price, order.size) > self._available_cash():
                return NOT_ENOUGH_BALANCE
        elif order.size > self._available_shares(order.token_id):
            return NOT_ENOUGH_BALANCE
        return ""

    def _available_cash(self) -> Decimal:
        return self._account.cash - self._reserved_cash()

    def _cost(self, price: Decimal, size: Decimal) -> Decimal:
        """The most a BUY of ``size`` at up to ``price`` can cost, fee included (price plus
        fee per share grows with the price, so the limit price is the worst case)."""
        return price * size + taker_fee(size, price, self._fee)

    def _reserved_cash(self) -> Decimal:
        return sum(
            (
                self._cost(state.order.price, state.remaining)
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

    def _levels(self, token_id: str, side: OrderSide) -> list[tuple[Decimal, Decimal]]:
        """One side of a token's book, best first: frozen while a signal executes, else
        the book's now (none when it is not synced)."""
        frozen = self._frozen
        if frozen is not None:
            levels = frozen.get((token_id, side))
            if levels is not None:
                return levels
        book = self._books.get(token_id)
        if book is None or not book.synced:
            return []
        levels = book.levels(side)
        taken = self._taken.get((token_id, side))
        if not taken:
            return levels
        left: list[tuple[Decimal, Decimal]] = []
        for price, size in levels:
            entry = taken.get(price)
            if entry is not None:
                if entry[0] == size:  # the feed has not shown this level again
                    size -= entry[1]
                    if size <= 0:
                        continue
                else:
                    del taken[price]
            left.append((price, size))
        if len(taken) > len(left):  # levels the feed removed are shown again, as gone
            shown = {price for price, _ in levels}
            for price in [p for p in taken if p not in shown]:
                del taken[price]
        return left

    def _take(self, order: PaperOrder, price: Decimal, size: Decimal) -> None:
        """Remember that a taker fill took ``size`` at ``price`` from the book."""
        side: OrderSide = "SELL" if order.side == BUY else "BUY"
        book = self._books.get(order.token_id)
        if book is None:
            return
        level = (book.asks if side == "SELL" else book.bids).get(price)
        if level is None:
            return  # the book moved on already: what it shows now is the truth
        taken = self._taken.setdefault((order.token_id, side), {})
        entry = taken.get(price)
        before = entry[1] if entry is not None and entry[0] == level else _ZERO
        taken[price] = (level, before + size)

    def _freeze(self, orders: Iterable[PaperOrder]) -> dict[tuple[str, str], list[Any]]:
        """The levels each order would take from, as they are now."""
        frozen: dict[tuple[str, str], list[Any]] = {}
        for order in orders:
            side: OrderSide = "SELL" if order.side == BUY else "BUY"
            frozen[(order.token_id, side)] = self._levels(order.token_id, side)
        return frozen

    def _takes(self, order: PaperOrder, size: Decimal) -> list[tuple[Decimal, Decimal]]:
        """The ``(price, size)`` the order would take from the book now, best first."""
        if size <= 0:
            return []
        buy = order.side == BUY
        takes: list[tuple[Decimal, Decimal]] = []
        left = size
        for price, available in self._levels(order.token_id, "SELL" if buy else "BUY"):
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
        fee = _ZERO if maker else taker_fee(size, price, self._fee)
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
            account_id=order.account_id,
        )
        self._account.apply(fill)
        if not maker:
            self._take(order, price, size)
        self.recent_fills.append(fill)
        state.filled += size
        state.fills = seq + 1
        state.updated_at_ms = now_ms
        state.trade_ids.append(str(uuid.uuid5(_TRADE_IDS, f"{order.order_id}/{seq}")))
        return fill

    def _known(self, order_id: str) -> bool:
        return order_id in self._open or order_id in self._recent

    def _keep(self, state: _State) -> None:
        """Remember a finished order among the recent ones, forgetting the oldest."""
        recent = self._recent
        recent[state.order.order_id] = state
        if len(recent) > RECENT_ORDERS:
            recent.popitem(last=False)

    def _rest(self, state: _State) -> None:
        order = state.order
        self._open[order.order_id] = state
        self._resting.setdefault(order.token_id, {})[order.order_id] = state
        self._resting_markets[order.market] = self._resting_markets.get(order.market, 0) + 1

    def _unrest(self, state: _State) -> None:
        order = state.order
        if self._open.pop(order.order_id, None) is not None:
            self._keep(state)
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
        await self.journal.record(rows)

    # -- cancelling and listing --------------------------------------------------------------

    async def cancel(self, order_id: str) -> dict[str, Any]:
        """Cancel a resting order.

        Returns:
            ``{"canceled": [order_id], "not_canceled": {}}``, or the id under
            ``not_canceled`` with the reason.
        """
        state = self._open.get(order_id) or self._recent.get(order_id)
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
        await self.journal.record(rows)
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
        """An open order, or one of the last :data:`RECENT_ORDERS` finished ones (the store
        has the others: :meth:`~polymarket_agents.storage.Store.recent_orders`); None if
        neither."""
        state = self._open.get(order_id) or self._recent.get(order_id)
        return None if state is None else _order_dict(state)

    # -- the Broker role -------------------------------------------------------------------

    @property
    def signal_ids(self) -> Collection[str]:
        """The signal legs (``<signal id>#<leg>``) handled recently (the last
        :data:`RECENT_SIGNALS`), and the latest of every market, loaded ones included:
        enough for a strategy to resume its numbering. The store holds all of them."""
        return self._signals.keys() | self._latest.values()

    def _claim(self, leg_ids: list[str], market: str) -> None:
        signals = self._signals
        for leg_id in leg_ids:
            signals[leg_id] = None
        while len(signals) > RECENT_SIGNALS:
            signals.popitem(last=False)
        if market:
            self._latest[market] = leg_ids[-1]

    async def submit_trade(self, analysis: Analysis) -> list[OrderResponse]:
        """Place the orders of a signal, each leg at most once, all legs or none.

        Each order gets the signal id ``<analysis.signal_id>#<leg>``; a signal any of whose
        legs was handled before is skipped (``duplicate_signals`` counts it). Invalid legs
        (bad tick, size) are recorded as ``rejected``; when FOK legs cannot all fill, or
        the account cannot pay for all of them, every leg is killed, so a complement
        trade is never left with one side.

        Write-ahead: the legs are recorded as ``pending`` before they are executed; if the
        database does not take that record, nothing is placed (``unrecorded_signals``
        counts it, and the signal may be traded when it is seen again); if the database
        already has the legs, the signal was handled before, by this or an earlier run.
        The result is stored before the responses are returned.

        Returns:
            The responses of the orders placed (or refused) now; empty for a signal handled
            before or one that could not be recorded.
        """
        legs = analysis.orders
        if not legs:
            return []
        base = analysis.signal_id
        leg_ids: list[str | None] = [None] * len(legs)
        if base is not None:
            named = [f"{base}#{leg}" for leg in range(len(legs))]
            if any(leg_id in self._signals for leg_id in named):
                self.duplicate_signals += 1
                return []
            self._claim(named, analysis.market)
            leg_ids = list(named)
        orders, invalid = self._legs(analysis, leg_ids)
        order_type = analysis.order_type
        risk = "" if invalid else self._risk(orders)
        # Checked before the write-ahead record too: a signal refused now (the usual case
        # once the cash is tied up) costs one write, not two.
        error = invalid or risk or self._all_or_none(orders, order_type)
        if not error:
            frozen = self._freeze(orders)
            intents = [_intent(order, order_type, _ms(self._now)) for order in orders]
            try:
                result = await self.journal.intend(intents)
            except Exception as exc:
                self._forget_signal(leg_ids)
                self.unrecorded_signals += 1
                self._logger.warning(
                    "signal %s not placed: %s (%s)", analysis.signal_id, NOT_RECORDED, exc
                )
                return []
            if result is not None and result.total_duplicates:
                self.duplicate_signals += 1
                return []
            # From here to the result, no await; and the legs see the books as the strategy
            # did, whatever the feed applied while the record was written.
            self._frozen = frozen
            try:
                error = self._all_or_none(orders, order_type)
                if not error:
                    responses, rows = self._execute(analysis, orders, order_type)
            finally:
                self._frozen = None
        if error:
            self.refused[error] += 1
            responses, rows = self._refuse(analysis, orders, error, rejected=bool(invalid or risk))
        await self.journal.record(rows)
        return responses

    def _forget_signal(self, leg_ids: list[str | None]) -> None:
        for leg_id in leg_ids:
            if leg_id is not None:
                self._signals.pop(leg_id, None)

    def _legs(self, analysis: Analysis, leg_ids: list[str | None]) -> tuple[list[PaperOrder], str]:
        """The orders of the legs, and why the first invalid one is invalid (or ``""``)."""
        orders: list[PaperOrder] = []
        invalid = ""
        for args, leg_id in zip(analysis.orders, leg_ids, strict=True):
            try:
                orders.append(self.create_order(args, signal_id=leg_id))
            except InvalidOrder as exc:
                invalid = invalid or str(exc)
                orders.append(self._unchecked(args, leg_id))
        return orders, invalid

    def _refuse(
        self, analysis: Analysis, orders: list[PaperOrder], error: str, *, rejected: bool
    ) -> tuple[list[OrderResponse], list[object]]:
        # An invalid order is a strategy bug; a book or a balance that cannot fill it is
        # business as usual, and frequent once the cash is tied up in positions.
        self._logger.log(
            logging.WARNING if rejected else logging.INFO,
            "signal %s not placed: %s",
            analysis.signal_id,
            error,
        )
        responses: list[OrderResponse] = []
        rows: list[object] = []
        for order in orders:
            response, row = self._reject(order, analysis.order_type, error, rejected=rejected)
            responses.append(response)
            rows.append(row)
        return responses, rows

    def _reject(
        self, order: PaperOrder, order_type: OrderType, error: str, *, rejected: bool
    ) -> tuple[OrderResponse, object]:
        """Keep ``order`` as refused for ``error``: its response and its row."""
        state = _State(
            order,
            order_type,
            REJECTED if rejected else UNMATCHED,
            _ms(self._now),
            revision=1,
            error=error,
        )
        self._order_count += 1
        self._keep(state)
        self.order_results[order_result(error)] += 1
        return _response(state, error=error), state.row()

    def _execute(
        self, analysis: Analysis, orders: list[PaperOrder], order_type: OrderType
    ) -> tuple[list[OrderResponse], list[object]]:
        responses: list[OrderResponse] = []
        rows: list[object] = []
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

    def _risk(self, orders: list[PaperOrder]) -> str:
        """Why the account's limits refuse the purchases of a signal, or ``""``."""
        limits = self.limits
        if not limits.active:
            return ""
        buys = [(o.market, self._cost(o.price, o.size)) for o in orders if o.side == BUY]
        if not buys:
            return ""
        held: dict[str, Decimal] = {}
        for position in self._account.positions(lambda _: None):
            held[position.market] = held.get(position.market, _ZERO) + position.cost
        loss = _ZERO
        if limits.daily_loss is not None:
            day = int(self._now() // 86_400)
            equity = self.portfolio().equity
            if self._day is None or self._day[0] != day:
                self._day = (day, equity)
            loss = self._day[1] - equity
        return limits.refusal(orders=buys, held_by_market=held, loss_today=loss)

    def _all_or_none(self, orders: list[PaperOrder], order_type: OrderType) -> str:
        """Why the legs of a signal cannot all be placed together now, or ``""``."""
        if len(orders) < 2:
            return ""
        cost = sum((self._cost(o.price, o.size) for o in orders if o.side == BUY), _ZERO)
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
            order_id=_order_id(signal_id, self.account_id),
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
            account_id=self.account_id,
        )

    # -- settlement ------------------------------------------------------------------------

    async def settle(self, market: str, winning_asset_id: str) -> list[FillRow]:
        """Pay out the market's positions now that it has resolved; cancel its open orders.

        The winning token's shares are sold at 1 and the other's at 0, without fee, as
        ``settlement`` fills: the cash comes back and the profit is realised. Idempotent:
        a market settles once (after a restart, its positions are already gone).

        Args:
            market: The condition id.
            winning_asset_id: The token that pays 1.

        Returns:
            The settlement fills (none when nothing was held).
        """
        if market in self._settled:
            return []
        self._settled.add(market)
        now_ms = _ms(self._now)
        rows: list[object] = []
        for state in [s for r in self._resting.values() for s in r.values()]:
            if state.order.market == market:
                state.status = CANCELED
                state.error = "market resolved"
                state.updated_at_ms = now_ms
                state.revision += 1
                self._unrest(state)
                self._keep(state)
                rows.append(state.row())
        fills: list[FillRow] = []
        # The market's tokens as tracked, and any held from an earlier run's fills.
        tokens = {t for t, info in self._markets.items() if info.condition_id == market}
        tokens.update(self._account.held_in(market))
        for token_id in sorted(tokens):
            held = self._account.held(token_id)
            if held <= 0:
                continue
            fill = FillRow(
                order_id=f"settlement:{self.account_id}:{market}:{token_id}",
                seq=0,
                token_id=token_id,
                side="SELL",
                price=_ONE if token_id == winning_asset_id else _ZERO,
                size=held,
                timestamp_ms=now_ms,
                market=market,
                account_id=self.account_id,
                kind="settlement",
            )
            self._account.apply(fill)
            self.recent_fills.append(fill)
            fills.append(fill)
        rows.extend(fills)
        if fills:
            self._logger.info(
                "market %s resolved: %s settled, cash %s",
                market,
                ", ".join(f"{f.size} at {f.price}" for f in fills),
                self._account.cash,
            )
        await self.journal.record(rows)
        return fills

    def settled(self, market: str) -> bool:
        """Whether :meth:`settle` paid the market out in this process."""
        return market in self._settled

    def markets_held(self) -> set[str]:
        """The markets in which the account holds shares (condition ids)."""
        return self._account.markets_held()

    def use_account(self, account_id: int, starting_cash: Decimal) -> None:
        """Trade the paper account ``account_id``, which started with ``starting_cash``.

        Call before :meth:`load` and before trading (the runtime does, with the account it
        opened by name).

        Raises:
            RuntimeError: If the broker has traded or loaded already.
        """
        if self._order_count or self._account.fills:
            raise RuntimeError("choose the account before the broker trades or loads")
        self.account_id = account_id
        self.starting_cash = starting_cash
        self._account = Account(starting_cash)

    # -- account ---------------------------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        """USDC held now (resting BUY orders' reservations included)."""
        return self._account.cash

    @property
    def orders(self) -> int:
        """Orders posted (or refused) so far, those on record at :meth:`load` included."""
        return self._order_count

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

    async def load(self, store: Store | None = None) -> int:
        """Read back what earlier runs recorded: open orders, fills, latest signals.

        Call it before trading (the runtime does, at start). Cash and positions are
        rebuilt by replaying the stored fills from ``starting_cash``; resting (``live``)
        GTC/GTD orders rest again; an order still ``pending`` (its process died between
        the write-ahead record and the result) was never completed and is recorded as
        unmatched (:data:`INTERRUPTED`). Each market's latest signal is remembered, for
        strategies to resume from; older ones stay in the store, which refuses them.

        Args:
            store: The open store to read; the broker's own if None.

        Returns:
            How many orders the store holds.

        Raises:
            StoreUnavailableError: If the store cannot be read now.
        """
        store = store if store is not None else self.journal.store
        if store is None:
            return 0
        account = self.account_id
        open_rows = [r for r in await store.open_orders() if r.account_id == account]
        latest = [r for r in await store.latest_orders() if r.account_id == account]
        stored_fills = [f for f in await store.recent_fills(sys.maxsize) if f.account_id == account]
        self._order_count = await store.count(Table.PAPER_ORDERS)
        now_ms = _ms(self._now)
        resting: dict[str, _State] = {}
        resolved: list[object] = []
        for row in open_rows:
            state = _loaded(row, self.get_tick_size(row.token_id))
            if row.status == LIVE and state.order_type in (OrderType.GTC, OrderType.GTD):
                resting[row.order_id] = state
            else:
                state.status = UNMATCHED
                state.error = INTERRUPTED
                state.revision += 1
                state.updated_at_ms = now_ms
                self._keep(state)
                resolved.append(state.row())
        for row in latest:
            if row.signal_id is not None:
                self._claim([row.signal_id], row.market)
        for fill in reversed(stored_fills):
            self._account.apply(fill)
            filled = resting.get(fill.order_id)
            if filled is not None:
                filled.fills = max(filled.fills, fill.seq + 1)
                filled.trade_ids.append(str(uuid.uuid5(_TRADE_IDS, f"{fill.order_id}/{fill.seq}")))
        for state in resting.values():
            self._rest(state)
        if resolved:
            self._logger.warning(
                "%d orders were recorded but their process stopped before their result "
                "was: recorded as unmatched",
                len(resolved),
            )
            await self.journal.record(resolved)
        if self._order_count:
            self._logger.info(
                "paper broker loaded %d open orders (of %d) and %d fills: cash %s",
                len(resting),
                self._order_count,
                len(stored_fills),
                self._account.cash,
            )
        return self._order_count


def _loaded(row: PaperOrderRow, tick_size: Decimal) -> _State:
    order = PaperOrder(
        order_id=row.order_id,
        token_id=row.token_id,
        market=row.market,
        side=BUY if row.side == BUY else "SELL",
        price=row.price,
        size=row.size,
        tick_size=tick_size,
        signal_id=row.signal_id,
        created_at_ms=row.created_at_ms,
        account_id=row.account_id,
    )
    return _State(
        order,
        OrderType(row.order_type),
        row.status,
        row.updated_at_ms,
        filled=row.filled_size,
        revision=row.revision,
        error=row.error,
    )


def _intent(order: PaperOrder, order_type: OrderType, now_ms: int) -> PaperOrderRow:
    """The write-ahead record of an order about to be executed: ``pending``, revision 0."""
    return _State(order, order_type, PENDING, now_ms).row()


def _duplicate(order_id: str) -> OrderResponse:
    return _response(None, order_id=order_id, error=f"order {order_id} is invalid. Duplicated.")


_RESULTS = (
    (NOT_ENOUGH_BALANCE, "refused_balance"),
    ("order couldn't be fully filled", "refused_fok_unfilled"),
    ("no orders found to match with FAK", "refused_fak_unmatched"),
    ("risk: order", "refused_risk_order_size"),
    ("risk: position", "refused_risk_position"),
    ("risk: exposure", "refused_risk_exposure"),
    ("risk: daily loss", "refused_risk_daily_loss"),
    ("invalid post-only", "refused_post_only"),
    ("invalid expiration", "refused_expiration"),
    (_NO_BOOK, "refused_no_book"),
)


def order_result(error: str) -> str:
    """The kind of a refusal, for a metric label: one of a fixed set of names, whatever the
    amounts in the message."""
    for prefix, result in _RESULTS:
        if error.startswith(prefix):
            return result
    return "refused_invalid"


def _order_id(signal_id: str | None, account_id: int = 1) -> str:
    if signal_id is None:
        return "0x" + secrets.token_hex(32)
    # Account 1's ids are those of the files older than accounts; another account's
    # orders for the same signal are other orders.
    key = signal_id if account_id == 1 else f"{account_id}/{signal_id}"
    return "0x" + hashlib.sha256(key.encode()).hexdigest()


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
