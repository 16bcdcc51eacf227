"""A :class:`~polymarket_agents.agents.Report` as rich tables, CSV or JSON.

``polymarket-agents report`` draws the tables on a terminal; ``--format csv`` writes one
table (``--table``) for a spreadsheet, ``--format json`` everything for a program.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from polymarket_agents.agents import Report, load_report
from polymarket_agents.storage import create_store, is_postgres_url

from ._state import plain

__all__ = [
    "REPORT_TABLES",
    "ReportTable",
    "print_report",
    "read_report",
    "report_csv",
    "report_json",
    "report_renderable",
    "reset_account",
]

ReportTable = Literal["summary", "trades", "positions", "markets", "runs", "signals"]

REPORT_TABLES: tuple[ReportTable, ...] = (
    "summary",
    "trades",
    "positions",
    "markets",
    "runs",
    "signals",
)
"""The tables of a report, in the order they are drawn."""

_CENT = Decimal("0.01")


def _time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _usd(value: Decimal) -> str:
    return f"{value.quantize(_CENT):,}"


def _num(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def _signed(value: Decimal) -> Text:
    text = _usd(value)
    return Text(text, style="green" if value > 0 else "red" if value < 0 else "")


def _rows(report: Report, table: ReportTable) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of one table, as plain values (Decimals, ints, text)."""
    if table == "summary":
        return ["item", "value"], [
            ["account", f"{report.account} (id {report.account_id})"],
            ["starting cash", report.starting_cash],
            ["cash", report.cash],
            ["positions value", report.positions_value],
            ["equity", report.equity],
            ["realized P&L", report.realized_pnl],
            ["unrealized P&L", report.unrealized_pnl],
            ["total P&L", report.total_pnl],
            ["fees", report.fees],
        ]
    if table == "trades":
        return (
            ["time", "market", "outcome", "kind", "side", "price", "size", "fee", "signal"],
            [
                [
                    _time(t.timestamp_ms),
                    t.slug or t.market,
                    t.outcome,
                    t.kind,
                    t.side,
                    t.price,
                    t.size,
                    t.fee,
                    t.signal_id or "",
                ]
                for t in report.trades
            ],
        )
    if table == "positions":
        return (
            ["market", "outcome", "status", "size", "avg cost", "mark", "value", "unrealized",
             "realized"],
            [
                [p.slug or p.market, p.outcome, p.status, p.size, p.average_cost, p.mark,
                 p.value, p.unrealized_pnl, p.realized_pnl]
                for p in report.positions
            ],
        )  # fmt: skip
    if table == "markets":
        return (
            ["market", "question", "fills", "fees", "realized", "unrealized", "total", "resolved"],
            [
                [m.slug or m.market, m.question, m.fills, m.fees, m.realized_pnl,
                 m.unrealized_pnl, m.total_pnl, m.resolved]
                for m in report.markets
            ],
        )  # fmt: skip
    if table == "runs":
        return (
            ["run", "started", "ended", "strategy", "events", "signals seen", "traded", "refused",
             "fills", "fees", "realized"],
            [
                [r.run_id, _time(r.started_at_ms), _time(r.ended_at_ms),
                 r.strategy.rpartition(":")[2], r.events,
                 r.signals_seen, r.signals_traded, r.signals_refused, r.fills, r.fees,
                 r.realized_pnl]
                for r in report.runs
            ],
        )  # fmt: skip
    signals = report.signals
    rows: list[list[Any]] = [
        ["seen (edge above the threshold)", signals.seen],
        ["submitted with orders", signals.submitted],
        ["traded", signals.traded],
    ]
    rows.extend([f"refused: {reason}", count] for reason, count in signals.refused.items())
    return ["signals", "count"], rows


def report_csv(report: Report, table: ReportTable = "trades") -> str:
    """One table of the report as CSV text (a header row, then one row per line).

    Decimals are written exactly, times as UTC ``YYYY-MM-DD HH:MM:SS``.
    """
    header, rows = _rows(report, table)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else str(v) for v in row])
    return out.getvalue()


def report_json(report: Report) -> str:
    """The whole report as JSON: Decimals as exact strings, times as epoch ms."""
    return json.dumps(plain(dataclasses.asdict(report)), indent=2) + "\n"


_MONEY_COLUMNS = {"fee", "fees", "value", "unrealized", "realized", "total"}
# Long ids are cut on a terminal (CSV and JSON have them whole).
_MAX_WIDTH = {"signal": 18, "market": 40, "question": 40, "strategy": 30}


def report_renderable(report: Report, tables: Sequence[ReportTable] = REPORT_TABLES) -> Group:
    """The report as rich tables, for a terminal."""
    parts: list[Any] = []
    for name in tables:
        header, rows = _rows(report, name)
        title = {
            "summary": f"Paper account {report.account!r}: total over every run",
            "trades": f"Trades ({len(rows)})",
            "positions": "Positions",
            "markets": "P&L per market",
            "runs": "Runs (this account)",
            "signals": "Signals",
        }[name]
        table = Table(title=title, title_justify="left", header_style="bold")
        for column in header:
            numeric = column not in ("market", "question", "outcome", "kind", "side", "signal",
                                     "status", "strategy", "started", "ended", "time", "item",
                                     "signals", "resolved")  # fmt: skip
            table.add_column(
                column,
                justify="right" if numeric else "left",
                no_wrap=column not in ("question", "strategy"),
                overflow="ellipsis",
                max_width=_MAX_WIDTH.get(column),
            )
        for row in rows:
            table.add_row(
                *(_cell(column, value) for column, value in zip(header, row, strict=True))
            )
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(header) - 1)))
        parts.append(table)
    return Group(*parts)


def _cell(column: str, value: Any) -> Text | str:
    if isinstance(value, Decimal):
        if column in _MONEY_COLUMNS or column == "value" or "P&L" in column:
            return _signed(value) if column != "fee" and column != "fees" else _usd(value)
        return _num(value)
    if value is None:
        return ""
    return str(value)


def print_report(
    report: Report,
    *,
    fmt: Literal["table", "csv", "json"] = "table",
    table: ReportTable | None = None,
    write: Callable[[str], object] | None = None,
    console: Console | None = None,
) -> None:
    """Write the report in ``fmt``: tables to ``console``, CSV or JSON through ``write``."""
    if fmt == "json":
        (write or print)(report_json(report).rstrip("\n"))
    elif fmt == "csv":
        (write or print)(report_csv(report, table or "trades").rstrip("\n"))
    else:
        (console or Console()).print(
            report_renderable(report, (table,) if table else REPORT_TABLES)
        )


async def read_report(database: str, account: str = "default") -> Report:
    """Open the database, build the report of ``account``, close it.

    Raises:
        LookupError: If the database has no such account, or does not exist.
        StoreUnavailableError: If it cannot be opened or read now (in use by a running
            service, for one).
    """
    await _exists(database)
    async with create_store(database) as store:
        return await load_report(store, account)


async def _exists(database: str) -> None:
    """Refuse a SQLite path with no file: opening it would create an empty database."""
    if not is_postgres_url(database) and not await asyncio.to_thread(Path(database).exists):
        raise LookupError(f"no database at {database} (run the service first, or give --db)")


async def reset_account(database: str, account: str, starting_cash: Decimal | None) -> str:
    """Close the open account called ``account`` and open a new one; what was done, in words.

    Its orders, fills and runs stay in the database for reports; the next run trades the new
    account from ``starting_cash`` (the closed one's if None; 1000 for a new name).

    Raises:
        LookupError: If there is no database at ``database``.
        StoreUnavailableError: If the database cannot be opened or written now (a
            running service holds it, for one).
    """
    await _exists(database)
    now_ms = int(time.time() * 1000)
    async with create_store(database) as store:
        current = [
            a for a in await store.accounts() if a.name == account and a.closed_at_ms is None
        ]
        cash = starting_cash
        if cash is None:
            cash = current[0].starting_cash if current else Decimal(1000)
        settings = current[0].settings if current else {}
        closed, opened = await store.reset_account(
            account, starting_cash=cash, settings=settings, now_ms=now_ms
        )
    before = f"closed account {account!r} (id {closed.id}); " if closed else ""
    return f"{before}opened account {account!r} (id {opened.id}) with {_usd(cash)} USDC"
