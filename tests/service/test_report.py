"""polymarket-agents report and account show, on the database of a real run."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.cli import main
from polymarket_agents.service import Service, ServiceConfig


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Decimal, int]:
    """A database a two-second run traded in: its path, the broker's cash at the end and
    the run's fills."""
    import asyncio

    db = tmp_path_factory.mktemp("report") / "agents.sqlite"
    config = ServiceConfig(
        duration=2.0,
        http_enabled=False,
        sim_rate=60,
        sim_dislocation_rate=0.2,
        db_path=db,
        market_count=3,
    )
    service = Service(config, install_signal_handlers=False)
    summary = asyncio.run(service.run())
    assert summary.exit_code == 0, summary.failure
    runtime = service.state.runtime
    assert runtime is not None
    broker = runtime.broker  # type: ignore[attr-defined]
    return db, broker.cash, summary.trades


def test_json_agrees_with_the_broker_and_the_database(
    recorded: tuple[Path, Decimal, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Cash equals the broker's at the end; every fill is a trade line with its slug."""
    db, cash, fills = recorded
    assert main(["report", "--db", str(db), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Decimal(report["cash"]) == cash
    assert len(report["trades"]) == fills > 0
    conn = sqlite3.connect(db)
    try:
        slugs = {row[0] for row in conn.execute("SELECT slug FROM markets")}
        assert conn.execute("SELECT count(*) FROM fills").fetchone()[0] == fills
    finally:
        conn.close()
    assert {t["slug"] for t in report["trades"]} <= slugs
    assert [r["run_id"] for r in report["runs"]] == [1]
    run = report["runs"][0]
    assert run["events"] > 0
    assert run["ended_at_ms"] is not None
    assert run["fills"] == fills
    assert report["signals"]["seen"] >= report["signals"]["traded"] > 0
    # Each amount is rounded to the micro-USDC: the sum may differ by that, per market.
    total = sum(Decimal(m["total_pnl"]) for m in report["markets"])
    assert abs(total - Decimal(report["total_pnl"])) <= Decimal("0.000001") * len(report["markets"])


def test_csv_is_one_table(
    recorded: tuple[Path, Decimal, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """--format csv --table X: a header and one row per line of that table."""
    db, _, fills = recorded
    assert main(["report", "--db", str(db), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["time", "market", "outcome", "kind", "side", "price", "size", "fee",
                       "signal"]  # fmt: skip
    assert len(rows) == fills + 1
    assert main(["report", "--db", str(db), "--format", "csv", "--table", "runs"]) == 0
    runs = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert runs[0][:3] == ["run", "started", "ended"]
    assert len(runs) == 2


def test_tables_and_account_show(
    recorded: tuple[Path, Decimal, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """The table view names the account and its markets by slug; account show is its
    summary, labelled as the total over every run."""
    db, _, _ = recorded
    assert main(["report", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    for title in ("total over every run", "Trades", "Positions", "P&L per market", "Runs",
                  "Signals"):  # fmt: skip
        assert title in " ".join(out.split())
    assert main(["account", "show", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "Paper account 'default': total over every run" in " ".join(out.split())
    assert "equity" in out


def test_no_database_or_no_account_is_an_error(
    tmp_path: Path, recorded: tuple[Path, Decimal, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file is not created; an unknown account is named."""
    missing = tmp_path / "nope.sqlite"
    assert main(["report", "--db", str(missing)]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not missing.exists()
    assert main(["report", "--db", str(recorded[0]), "--account", "bob"]) == 1
    assert "no account named 'bob'" in capsys.readouterr().err


def test_backtest_of_the_run_gives_its_cash(
    recorded: tuple[Path, Decimal, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """polymarket-agents backtest with run's default strategy and settings ends with the
    cash the live broker ended with, and as many fills."""
    db, cash, fills = recorded
    assert main(["backtest", "--db", str(db), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backtest"]["events"] > 0
    assert out["backtest"]["invalid_events"] == 0
    assert Decimal(out["report"]["cash"]) == cash
    assert len(out["report"]["trades"]) == fills


def test_backtest_of_another_strategy_and_a_window(
    recorded: tuple[Path, Decimal, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """--strategy and --strategy-option as for run; --since narrows the events; the text
    output starts with what was replayed."""
    db, _, _ = recorded
    args = ["backtest", "--db", str(db), "--strategy", "examples.mean_reversion:MeanReversion",
            "--strategy-option", "window=5", "--since", "2000-01-01T00:00"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("backtest of examples.mean_reversion:MeanReversion over 3 market(s)")
    assert "events replayed:" in out
    assert main([*args[:-1], "2999-01-01"]) == 0
    assert "events replayed: 0 " in capsys.readouterr().out


def test_backtest_refuses_bad_input(
    recorded: tuple[Path, Decimal, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad time or strategy option is a usage error (2); a missing database or market
    is an error (1), and nothing is created."""
    db, _, _ = recorded
    assert main(["backtest", "--db", str(db), "--since", "yesterday"]) == 2
    assert "a time must be ISO 8601" in capsys.readouterr().err
    assert main(["backtest", "--db", str(db), "--strategy-option", "nope=1"]) == 2
    assert "has no option 'nope'" in capsys.readouterr().err
    assert main(["backtest", "--db", str(db), "--markets", "no-such-market"]) == 1
    assert "not recorded: no-such-market" in capsys.readouterr().err
    missing = tmp_path / "none.sqlite"
    assert main(["backtest", "--db", str(missing)]) == 1
    assert not missing.exists()


def test_account_reset_opens_the_account_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """account reset closes the account (its history stays) and opens it again from
    --starting-cash; report then shows the new account; a bad amount is a usage error."""
    import asyncio

    from polymarket_agents.storage import FillRow, SQLiteStore

    db = tmp_path / "reset.sqlite"

    async def trade() -> None:
        async with SQLiteStore(db) as store:
            await store.write_batch(
                [FillRow(order_id="o", seq=0, token_id="t", side="BUY", price=Decimal("0.5"),
                         size=Decimal(10), timestamp_ms=1, market="m")]
            )  # fmt: skip

    asyncio.run(trade())
    assert main(["account", "reset", "--db", str(db), "--starting-cash", "x"]) == 2
    assert "--starting-cash must be an amount" in capsys.readouterr().err
    assert main(["account", "reset", "--db", str(db), "--starting-cash", "250"]) == 0
    out = capsys.readouterr().out
    assert "closed account 'default' (id 1); opened account 'default' (id 2) with 250" in out
    assert main(["report", "--db", str(db), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["account_id"], report["cash"], report["trades"]) == (2, "250", [])
