"""``polymarket-agents backtest``: the run's strategy and settings over recorded events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from polymarket_agents.agents import AgentsConfig, BacktestResult, backtest
from polymarket_agents.storage import create_store, is_postgres_url

from ._app import risk_limits, strategy_of
from ._config import ServiceConfig

__all__ = ["BACKTEST_OPTIONS", "parse_time", "run_backtest", "summary_lines"]

BACKTEST_OPTIONS = (
    "db_path",
    "db_password_file",
    "strategy",
    "strategy_options",
    "edge_threshold",
    "starting_cash",
    "fee_rate_bps",
    "order_size",
    "max_position",
    "max_exposure",
    "daily_loss_limit",
)
"""The ``run`` settings a backtest takes, with the same flags and environment variables."""


def parse_time(text: str) -> int:
    """Epoch milliseconds from ``2026-11-30T12:00``-style ISO 8601 (UTC unless it says
    otherwise) or from a number of epoch milliseconds.

    Raises:
        ValueError: If it is neither.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"a time must be ISO 8601 (2026-11-30T12:00) or epoch milliseconds, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def run_backtest(
    config: ServiceConfig,
    *,
    markets: Sequence[str] = (),
    since_ms: int = 0,
    until_ms: int = 2**62,
) -> BacktestResult:
    """Replay the events recorded in ``config.db_path`` through ``config``'s strategy.

    Raises:
        ConfigurationError: If the strategy cannot be loaded with its options.
        LookupError: If the database or a market asked for does not exist.
        StoreUnavailableError: If the database cannot be read now (a running service
            holds it, for one).
    """
    database = config.db_path
    if not is_postgres_url(database) and not await asyncio.to_thread(Path(database).exists):
        raise LookupError(f"no database at {database} (run the service first, or give --db)")
    agents_config = AgentsConfig(
        edge_threshold=config.edge_threshold,
        starting_cash=config.starting_cash,
        fee_rate_bps=config.fee_rate_bps,
        limits=risk_limits(config),
    )
    strategy = strategy_of(config, agents_config)
    async with create_store(database, password_file=config.db_password_file) as store:
        return await backtest(
            store,
            strategy,
            edge_threshold=agents_config.edge_threshold,
            starting_cash=agents_config.starting_cash,
            fee_rate_bps=agents_config.fee_rate_bps,
            limits=agents_config.limits,
            markets=markets,
            since_ms=since_ms,
            until_ms=until_ms,
        )


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_lines(result: BacktestResult, strategy: str) -> list[str]:
    """What the replay did, in a few lines (the report follows them)."""
    report = result.report
    window = (
        f"{_time(result.first_ms)} to {_time(result.last_ms)}" if result.events else "no events"
    )
    return [
        f"backtest of {strategy} over {result.markets} market(s), {window}",
        f"events replayed: {result.events:,} in {result.seconds:.2f} s "
        f"({result.events_per_second:,.0f} events/s); skipped as invalid: "
        f"{result.invalid_events}",
        f"signals: {result.signals}  submitted: {result.submitted}  orders: "
        f"{len(result.orders)}  fills: {len(result.fills)}",
        f"P&L: {report.total_pnl:.2f} (realized {report.realized_pnl:.2f}, unrealized "
        f"{report.unrealized_pnl:.2f}, fees {report.fees:.2f}); equity {report.equity:.2f} "
        f"from {report.starting_cash:.2f}",
    ]
