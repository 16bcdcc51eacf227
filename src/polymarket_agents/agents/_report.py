"""What a paper account did: trades, positions, profit per market and per run, signals.

:func:`build_report` is pure: it takes what the store holds (orders, fills, markets, runs,
resolutions) and computes the report with the same :class:`Account` arithmetic the broker
uses, so the report's cash and profit equal the broker's. :func:`load_report` reads a store
and builds it. The command line's ``polymarket-agents report`` renders it; a backtest builds
one from what it traded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from polymarket_agents.storage import (
    AccountRecord,
    FillRow,
    Ledger,
    MarketResolutionRow,
    MarketRow,
    PaperOrderRow,
    RunRecord,
)

from ._account import Account, PositionState

__all__ = [
    "MarketPnl",
    "PositionLine",
    "Report",
    "RunLine",
    "SignalSummary",
    "TradeLine",
    "build_report",
    "load_report",
]

_ZERO = Decimal(0)
_MICRO = Decimal("0.000001")  # USDC has six decimals: computed amounts are shown to them
_REFUSED = frozenset({"unmatched", "rejected", "refused"})
# "risk: exposure of 239.16 USDC above 150": one reason, whatever the amount it reached.
_AMOUNT = re.compile(r" of [0-9.]+ USDC")


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeLine:
    """One fill (or settlement) with the names people read.

    Attributes:
        timestamp_ms: When it happened.
        market: The condition id.
        slug: The market's slug ("" if unknown).
        question: The market's question.
        outcome: ``"YES"`` or ``"NO"`` (or the token id when the market is unknown).
        side: ``"BUY"`` or ``"SELL"``.
        price: The price per share.
        size: Shares.
        fee: Fee paid, USDC.
        kind: ``"trade"`` or ``"settlement"``.
        signal_id: The signal leg it served, if any.
        order_id: The order filled.
    """

    timestamp_ms: int
    market: str
    slug: str
    question: str
    outcome: str
    side: str
    price: Decimal
    size: Decimal
    fee: Decimal
    kind: str
    signal_id: str | None
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionLine:
    """One token's position: open, closed or settled.

    Attributes:
        market: The condition id.
        slug: The market's slug.
        outcome: ``"YES"`` or ``"NO"``.
        status: ``"open"``, ``"closed"`` (sold back to zero) or ``"settled won"`` /
            ``"settled lost"``.
        size: Shares held now.
        average_cost: Cost per share held (fees included), or None when none is held.
        mark: The price the shares are valued at (the last market trade, else cost).
        value: ``size * mark``.
        unrealized_pnl: ``value`` minus what the shares cost.
        realized_pnl: Profit taken by selling or settlement.
    """

    market: str
    slug: str
    outcome: str
    status: str
    size: Decimal
    average_cost: Decimal | None
    mark: Decimal | None
    value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketPnl:
    """Profit of one market.

    Attributes:
        market: The condition id.
        slug: Its slug.
        question: Its question.
        fills: Fills in it (settlements included).
        fees: Fees paid in it.
        realized_pnl: Profit taken.
        unrealized_pnl: Profit of what is still held, at the marks.
        total_pnl: Both.
        resolved: The winning outcome once resolved, else "".
    """

    market: str
    slug: str
    question: str
    fills: int
    fees: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    total_pnl: Decimal
    resolved: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLine:
    """What one run did.

    Attributes:
        run_id: The run.
        started_at_ms: When it started.
        ended_at_ms: When it ended (None: running, or killed).
        strategy: The strategy it ran.
        events: Market events it took.
        signals_seen: Signals above the threshold.
        signals_traded: Signals with at least one fill.
        signals_refused: Signals whose orders were refused or killed.
        fills: Fills (and settlements) during it.
        fees: Fees paid during it.
        realized_pnl: Profit realized during it.
    """

    run_id: int
    started_at_ms: int
    ended_at_ms: int | None
    strategy: str
    events: int
    signals_seen: int
    signals_traded: int
    signals_refused: int
    fills: int
    fees: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSummary:
    """Signals seen, traded and refused, with the reasons.

    Attributes:
        seen: Signals above the threshold the monitors counted (over the runs recorded).
        submitted: Signals handed to the broker with orders.
        traded: Signals with at least one fill.
        refused: Signals refused or killed, by reason (the broker's message).
    """

    seen: int
    submitted: int
    traded: int
    refused: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A paper account's report; see the module.

    Attributes:
        account: The account's name.
        account_id: Its id.
        starting_cash: USDC it started with.
        cash: USDC now.
        positions_value: Open positions at their marks (complete YES+NO pairs at 1).
        equity: ``cash + positions_value``.
        realized_pnl: Profit taken (selling and settlement).
        unrealized_pnl: Profit of open positions at their marks.
        total_pnl: ``equity - starting_cash``.
        fees: Fees paid.
        trades: Every fill and settlement, oldest first.
        positions: Every position, open and closed.
        markets: Profit per market.
        runs: What each run did, oldest first.
        signals: Signals seen, traded and refused.
    """

    account: str
    account_id: int
    starting_cash: Decimal
    cash: Decimal
    positions_value: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    total_pnl: Decimal
    fees: Decimal
    trades: tuple[TradeLine, ...] = ()
    positions: tuple[PositionLine, ...] = ()
    markets: tuple[MarketPnl, ...] = ()
    runs: tuple[RunLine, ...] = ()
    signals: SignalSummary = field(
        default_factory=lambda: SignalSummary(seen=0, submitted=0, traded=0, refused={})
    )


def _base(signal_id: str | None) -> str | None:
    """A signal's id without its ``#<leg>``."""
    return None if signal_id is None else signal_id.rsplit("#", 1)[0]


def _signals(orders: Iterable[PaperOrderRow], filled: set[str]) -> tuple[set[str], Counter[str]]:
    """Signals traded (a filled leg) and refused (by reason) among ``orders``."""
    traded: set[str] = set()
    refused: dict[str, str] = {}
    for order in orders:
        base = _base(order.signal_id)
        if base is None:
            continue
        if order.order_id in filled or order.filled_size > 0:
            traded.add(base)
        elif order.status in _REFUSED:
            refused.setdefault(base, order.error or order.status)
    reasons = Counter(
        _AMOUNT.sub("", reason) for base, reason in refused.items() if base not in traded
    )
    return traded, reasons


def build_report(
    *,
    account: AccountRecord,
    orders: Sequence[PaperOrderRow],
    fills: Sequence[FillRow],
    markets: Sequence[MarketRow] = (),
    runs: Sequence[RunRecord] = (),
    resolutions: Sequence[MarketResolutionRow] = (),
    marks: Mapping[str, Decimal] | None = None,
) -> Report:
    """The report of ``account`` from what the store holds.

    Args:
        account: The account.
        orders: Its orders.
        fills: Its fills and settlements, in time order.
        markets: Markets, for slugs, questions and which token is YES.
        runs: Runs of this account.
        resolutions: Market resolutions, for the settled outcome.
        marks: Prices to value open positions at, by token (the last market trades);
            positions without one are valued at cost.

    Returns:
        The report.
    """
    by_condition = {m.condition_id: m for m in markets}
    outcome: dict[str, tuple[MarketRow, str]] = {}
    for listed in markets:
        outcome[listed.yes_token] = (listed, "YES")
        outcome[listed.no_token] = (listed, "NO")
    signal_of = {o.order_id: o.signal_id for o in orders}
    won = {r.market: r.winning_asset_id for r in resolutions}
    marks = dict(marks or {})

    ledger = Account(account.starting_cash)
    per_market: dict[str, dict[str, Any]] = {}
    trades: list[TradeLine] = []
    run_windows = [(r, r.started_at_ms, r.ended_at_ms) for r in runs]
    run_fills: dict[int, list[Decimal]] = {r.id: [_ZERO, _ZERO, _ZERO] for r in runs}
    for fill in fills:
        realized_before = _realized(ledger, fill.token_id)
        ledger.apply(fill)
        realized = _realized(ledger, fill.token_id) - realized_before
        known = outcome.get(fill.token_id)
        market: MarketRow | None = known[0] if known is not None else by_condition.get(fill.market)
        entry = per_market.setdefault(fill.market, {"fills": 0, "fees": _ZERO})
        entry["fills"] += 1
        entry["fees"] += fill.fee
        trades.append(
            TradeLine(
                timestamp_ms=fill.timestamp_ms,
                market=fill.market,
                slug=market.slug if market is not None else "",
                question=market.question if market is not None else "",
                outcome=known[1] if known is not None else fill.token_id,
                side=fill.side,
                price=fill.price,
                size=fill.size,
                fee=fill.fee,
                kind=fill.kind,
                signal_id=signal_of.get(fill.order_id),
                order_id=fill.order_id,
            )
        )
        for run, start, end in run_windows:
            if start <= fill.timestamp_ms and (end is None or fill.timestamp_ms <= end):
                totals = run_fills[run.id]
                totals[0] += 1
                totals[1] += fill.fee
                totals[2] += realized
                break

    def mark(token_id: str) -> Decimal | None:
        return marks.get(token_id)

    reserved = sum(
        (
            (o.size - o.filled_size) * o.price
            for o in orders
            if o.status == "live" and o.side == "BUY"
        ),
        _ZERO,
    )
    portfolio = ledger.portfolio(mark, reserved)
    positions: list[PositionLine] = []
    unrealized_by_market: dict[str, Decimal] = {}
    realized_by_market: dict[str, Decimal] = {}
    states = ledger.positions(mark)
    for state in states:
        known = outcome.get(state.token_id)
        winner = won.get(state.market)
        if state.size:
            status = "open"
        elif winner is not None:
            status = "settled won" if winner == state.token_id else "settled lost"
        else:
            status = "closed"
        positions.append(
            PositionLine(
                market=state.market,
                slug=known[0].slug if known is not None else "",
                outcome=known[1] if known is not None else state.token_id,
                status=status,
                size=state.size,
                average_cost=_q(state.cost / state.size) if state.size else None,
                mark=None if state.mark is None else _q(state.mark),
                value=_q(state.value),
                unrealized_pnl=_q(state.unrealized_pnl),
                realized_pnl=_q(state.realized_pnl),
            )
        )
        unrealized_by_market[state.market] = (
            unrealized_by_market.get(state.market, _ZERO) + state.unrealized_pnl
        )
        realized_by_market[state.market] = (
            realized_by_market.get(state.market, _ZERO) + state.realized_pnl
        )
    # Complete pairs are worth 1 whatever their marks: put the difference on their market.
    for market_id in _paired_markets(states):
        unrealized_by_market[market_id] = unrealized_by_market.get(
            market_id, _ZERO
        ) + _pair_adjustment(states, market_id)

    market_lines = []
    for market_id, entry in per_market.items():
        found = by_condition.get(market_id)
        realized = realized_by_market.get(market_id, _ZERO)
        unrealized = unrealized_by_market.get(market_id, _ZERO)
        winner = won.get(market_id)
        market_lines.append(
            MarketPnl(
                market=market_id,
                slug=found.slug if found is not None else "",
                question=found.question if found is not None else "",
                fills=entry["fills"],
                fees=entry["fees"],
                realized_pnl=_q(realized),
                unrealized_pnl=_q(unrealized),
                total_pnl=_q(realized + unrealized),
                resolved=(outcome[winner][1] if winner in outcome else winner or ""),
            )
        )
    market_lines.sort(key=lambda m: m.slug or m.market)

    filled_orders = {fill.order_id for fill in fills if fill.kind == "trade"}
    traded, refused = _signals(orders, filled_orders)
    run_lines = []
    for run, start, end in run_windows:
        in_run = [
            o
            for o in orders
            if start <= o.created_at_ms and (end is None or o.created_at_ms <= end)
        ]
        run_traded, run_refused = _signals(in_run, filled_orders)
        count, fees, realized = run_fills[run.id]
        run_lines.append(
            RunLine(
                run_id=run.id,
                started_at_ms=run.started_at_ms,
                ended_at_ms=run.ended_at_ms,
                strategy=run.strategy,
                events=int(run.counters.get("events", 0)),
                signals_seen=int(run.counters.get("signals", 0)),
                signals_traded=len(run_traded),
                signals_refused=sum(run_refused.values()),
                fills=int(count),
                fees=fees,
                realized_pnl=_q(realized),
            )
        )
    signals = SignalSummary(
        seen=sum(int(r.counters.get("signals", 0)) for r in runs),
        submitted=sum(int(r.counters.get("submitted", 0)) for r in runs),
        traded=len(traded),
        refused=dict(refused.most_common()),
    )
    return Report(
        account=account.name,
        account_id=account.id,
        starting_cash=portfolio.starting_cash,
        cash=_q(portfolio.cash),
        positions_value=_q(portfolio.positions_value),
        equity=_q(portfolio.equity),
        realized_pnl=_q(portfolio.realized_pnl),
        unrealized_pnl=_q(portfolio.unrealized_pnl),
        total_pnl=_q(portfolio.total_pnl),
        fees=_q(portfolio.fees),
        trades=tuple(trades),
        positions=tuple(positions),
        markets=tuple(market_lines),
        runs=tuple(run_lines),
        signals=signals,
    )


def _q(value: Decimal) -> Decimal:
    """An amount to the micro-USDC, without trailing zeros."""
    return value.quantize(_MICRO).normalize() + 0


def _realized(ledger: Account, token_id: str) -> Decimal:
    for state in ledger.positions(lambda _: None):
        if state.token_id == token_id:
            return state.realized_pnl
    return _ZERO


def _paired_markets(positions: Sequence[PositionState]) -> list[str]:
    held = Counter(p.market for p in positions if p.size > 0)
    return [market for market, count in held.items() if count == 2 and market]


def _pair_adjustment(positions: Sequence[PositionState], market: str) -> Decimal:
    """How much more complete pairs are worth at 1 than at their marks."""
    held = [p for p in positions if p.market == market and p.size > 0]
    pairs = min(p.size for p in held)
    return sum((pairs * (1 - (p.mark or _ZERO)) for p in held), _ZERO) - pairs


async def load_report(store: Ledger, account: str = "default") -> Report:
    """The report of the account called ``account``, read from ``store``.

    The open account of that name, or the most recently closed one if none is open.

    Raises:
        LookupError: If the store has no account of that name.
        StoreUnavailableError: If the store cannot be read now.
    """
    accounts = [a for a in await store.accounts() if a.name == account]
    if not accounts:
        raise LookupError(f"no account named {account!r}")
    record = next((a for a in accounts if a.closed_at_ms is None), None) or max(
        accounts, key=lambda a: a.closed_at_ms or 0
    )
    orders = await store.orders(record.id)
    fills = await store.fills(record.id)
    held = {f.token_id for f in fills}
    return build_report(
        account=record,
        orders=orders,
        fills=fills,
        markets=await store.markets(),
        runs=[r for r in await store.runs() if r.account_id == record.id],
        resolutions=await store.resolutions(),
        marks=await store.last_prices(sorted(held)),
    )
