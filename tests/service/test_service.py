"""The service end to end, as a user runs it: a real process, real HTTP, a real SIGTERM."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import START_TIMEOUT, ServiceProcess, disk_full, http_get, wait_for

pytestmark = pytest.mark.slow

GRACE = 5.0
# Sub-second health checks, a lively simulator, JSON logs the helpers read, no live view.
FAST = (
    "--http-port", "0",
    "--health-interval", "0.2",
    "--sim-rate", "40",
    "--grace-period", str(GRACE),
    "--log-format", "json",
    "--live-view", "off",
)  # fmt: skip


def _summary(service: ServiceProcess) -> dict[str, Any]:
    """The JSON summary the service prints on stdout as it exits."""
    lines = [line for line in service.stdout.splitlines() if line.startswith('{"summary"')]
    assert len(lines) == 1, service.stdout
    summary: dict[str, Any] = json.loads(lines[0])["summary"]
    return summary


def _db_rows(path: Path) -> dict[str, int]:
    """Rows per table of the market-data database, read with the standard library."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def _stopped_within_grace(service: ServiceProcess) -> tuple[int, float]:
    service.terminate(signal.SIGTERM)
    sent = time.monotonic()
    code = service.wait(GRACE + 1.0)
    return code, time.monotonic() - sent


def _assert_rows_add_up(summary: dict[str, Any], db: Path) -> None:
    """Rows queued = stored + duplicates + invalid + not stored, and the file holds exactly
    the rows the summary says were stored."""
    assert summary["rows_queued"] == (
        summary["stored_rows"]
        + summary["duplicate_rows"]
        + summary["invalid_rows"]
        + summary["lost_rows"]
    )
    rows = _db_rows(db)
    stored_by_table = summary["runtime"]["stored_by_table"]
    for table, count in stored_by_table.items():
        assert rows[table] == count, (table, rows, stored_by_table)
    assert sum(stored_by_table.values()) == summary["stored_rows"]


def _assert_nothing_lost(summary: dict[str, Any], db: Path) -> None:
    """Every row the monitors queued was stored (or was already there), and the file has them."""
    assert summary["lost_rows"] == 0
    assert summary["rows_queued"] > 0
    assert summary["rows_queued"] == summary["stored_rows"] + summary["duplicate_rows"]
    runtime = summary["runtime"]
    assert runtime["queue_depth"] == 0
    rows = _db_rows(db)
    stored_by_table = runtime["stored_by_table"]
    for table, count in stored_by_table.items():
        assert rows[table] == count, (table, rows, stored_by_table)
    assert sum(stored_by_table.values()) == summary["stored_rows"]


def test_runs_serves_fills_the_database_and_stops_cleanly_on_sigterm(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """Ready, metrics, status, rows in ./data/agents.sqlite; SIGTERM: exit 0, nothing lost."""
    service = start_service("run", *FAST)
    url = service.wait_url()
    assert url.startswith("http://127.0.0.1:")
    service.wait_ready()
    assert http_get(f"{url}/healthz")[0] == 200

    db = service.directory / "data" / "agents.sqlite"

    def stored() -> dict[str, Any] | None:
        status, data = service.get_json("/status")
        assert status == 200
        runtime = data["runtime"]
        return data if runtime["stored_rows"] > 0 and runtime["events"] > 0 else None

    data = wait_for(stored, START_TIMEOUT, "rows in the database")
    assert {"ingestion", "health", "service.heartbeat"} <= set(data["tasks"])
    assert sum(name.startswith("monitor_") for name in data["tasks"]) == 5
    # Tasks by name, each with its path in the supervision tree that /status draws.
    assert data["tasks"]["ingestion"]["path"] == "agents/ingestion"
    assert data["tasks"]["market-feed-1"]["path"] == "agents/feed/market-feed-1"
    supervisors = [
        found.groups()
        for line in data["tree"]
        if (found := re.search(r"(?:^|── )(\S+)  (one_for_one|one_for_all|rest_for_one)  ", line))
    ]
    assert supervisors == [
        ("service", "one_for_one"),
        ("agents", "one_for_one"),
        ("feed", "one_for_one"),
        ("monitors", "one_for_one"),
    ]
    assert data["service"]["phase"] == "running"
    assert data["ready"] is True

    status, metrics = http_get(f"{url}/metrics")
    assert status == 200
    for family in (
        "polymarket_agents_events_total",
        "polymarket_agents_invalid_frames_total",
        "polymarket_agents_queue_depth",
        "polymarket_agents_ingest_latency_seconds",
        "polymarket_agents_paper_fills_total",
        'polymarket_agents_task_restarts_total{task="ingestion"}',
        'polymarket_agents_task_status{status="running",task="health"} 1.0',
        "polymarket_agents_ready 1.0",
    ):
        assert family in metrics, family

    code, took = _stopped_within_grace(service)
    assert code == 0, service.stderr[-3000:]
    assert took < GRACE
    summary = _summary(service)
    assert summary["exit_code"] == 0
    assert summary["reason"] == "signal"
    assert summary["events"] > 0
    _assert_nothing_lost(summary, db)


def test_survives_simulator_faults_and_still_loses_nothing(
    start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """Dropped connections and malformed frames are counted; SIGTERM still stores everything."""
    db = tmp_path / "faults.sqlite"
    service = start_service(
        "run", *FAST, "--db", str(db), "--sim-faults", "drop-every=1.5,malformed-rate=0.2"
    )
    service.wait_url()

    def recovered() -> bool:
        runtime = service.get_json("/status")[1]["runtime"]
        return bool(runtime) and runtime["reconnects"] >= 1 and runtime["invalid_frames"] >= 1

    wait_for(recovered, START_TIMEOUT, "reconnects and invalid frames")
    metrics = http_get(f"{service.wait_url()}/metrics")[1]
    by_reason = {
        line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("polymarket_agents_invalid_frames_total{")
    }
    assert {"not_json", "too_deep", "binary", "empty", "invalid_event"} <= set(by_reason)
    assert sum(by_reason.values()) >= 1
    code, took = _stopped_within_grace(service)
    assert code == 0, service.stderr[-3000:]
    assert took < GRACE
    summary = _summary(service)
    assert summary["reconnects"] >= 1
    assert summary["invalid_frames"] >= 1
    _assert_nothing_lost(summary, db)


def test_duration_exits_0_with_a_summary_from_the_seed_command(tmp_path: Path) -> None:
    """python -m polymarket_agents.core.async_utils runs the service; --duration ends it;
    with stdout not a terminal, logs are plain text lines and no live table is drawn."""
    result = subprocess.run(
        [sys.executable, "-m", "polymarket_agents.core.async_utils", "--duration", "1.5",
         "--http-port", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stopped (duration)" in result.stdout
    assert "exit code: 0" in result.stdout
    assert "invalid frames skipped: 0" in result.stdout
    assert "feed and trading" not in result.stdout
    assert re.search(
        r"^\S+ \S+ INFO +polymarket_agents\.service: running: 5 market", result.stderr, re.M
    )
    assert (tmp_path / "data" / "agents.sqlite").exists()


def test_sigint_stops_as_gracefully_as_sigterm(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """Ctrl-C (SIGINT) once: the same graceful shutdown, exit 0, nothing lost."""
    service = start_service("run", *FAST)
    service.wait_ready()
    service.terminate(signal.SIGINT)
    assert service.wait(GRACE + 1.0) == 0
    summary = _summary(service)
    assert summary["reason"] == "signal"
    _assert_nothing_lost(summary, service.directory / "data" / "agents.sqlite")


def test_health_and_status_commands_against_a_running_service(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """health exits 0 and status prints the JSON while the service runs; 1 once it is gone."""
    service = start_service("run", *FAST)
    url = service.wait_url()
    script = Path(sys.executable).with_name("polymarket-agents")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "polymarket_agents"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=30, check=False
        )

    health = run("health", "--url", f"{url}/healthz")
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.startswith("healthy")
    status = run("status", "--url", url)
    assert status.returncode == 0
    assert json.loads(status.stdout)["service"]["http_url"] == url

    code, _ = _stopped_within_grace(service)
    assert code == 0
    assert run("health", "--url", f"{url}/healthz", "--timeout", "2").returncode == 1
    assert run("status", "--url", url, "--timeout", "2").returncode == 1


def test_bad_configuration_is_a_clear_error_and_exit_2(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """Bad flags and variables stop the process at once: exit 2, a one-line reason."""
    service = start_service("run", "--grace-period", "soon", env={"LOG_LEVEL": "LOUD"})
    assert service.wait(START_TIMEOUT) == 2
    err = service.stderr.strip()
    assert err.startswith("polymarket-agents: error: invalid configuration:")
    assert "--grace-period: must be a number, not 'soon'" in err
    assert "LOG_LEVEL: must be one of" in err
    assert "Traceback" not in err


def test_an_unknown_market_fails_start_up_with_exit_2(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """A market the listing does not have is named, and the service exits 2 cleanly."""
    service = start_service("run", *FAST, "--markets", "no-such-market")
    assert service.wait(START_TIMEOUT) == 2
    assert "market(s) not listed: no-such-market" in service.stderr
    assert _summary(service)["reason"] == "start-up failed"


def test_a_second_signal_exits_at_once(
    start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """While a shutdown waits on a database it cannot write, a second SIGTERM exits 143 at
    once."""
    db = tmp_path / "full.sqlite"
    service = start_service("run", *FAST, "--db", str(db), "--grace-period", "30")
    service.wait_ready()
    with disk_full(service.pid):  # every write of the service now fails and is retried

        def queued() -> bool:
            return bool(service.get_json("/status")[1]["runtime"]["queue_depth"] > 0)

        wait_for(queued, START_TIMEOUT, "rows waiting for the disk")
        service.terminate(signal.SIGTERM)

        def shutting_down() -> bool:
            return any("received SIGTERM" in e["message"] for e in service.log_entries())

        wait_for(shutting_down, START_TIMEOUT, "the first SIGTERM to be handled")
        service.terminate(signal.SIGTERM)
        sent = time.monotonic()
        assert service.wait(5.0) == 128 + signal.SIGTERM
        assert time.monotonic() - sent < 2.0
    assert any("second SIGTERM" in e["message"] for e in service.log_entries())


def test_a_shutdown_stuck_on_the_database_still_ends_within_the_grace_period(
    start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """If the drain cannot finish (the disk is full), exit 1 at the grace period, saying
    why."""
    db = tmp_path / "stuck.sqlite"
    service = start_service("run", *FAST, "--db", str(db), "--grace-period", "1.5")
    service.wait_ready()
    with disk_full(service.pid):

        def queued() -> bool:
            return bool(service.get_json("/status")[1]["runtime"]["queue_depth"] > 0)

        wait_for(queued, START_TIMEOUT, "rows waiting for the disk")
        service.terminate(signal.SIGTERM)
        sent = time.monotonic()
        assert service.wait(6.0) == 1
        assert time.monotonic() - sent < 1.5 + 1.0
    summary = _summary(service)
    assert summary["exit_code"] == 1
    assert "still queued or in hand when the grace period ended" in summary["failure"]
    _assert_rows_add_up(summary, db)
    assert summary["lost_rows"] > 0


def test_live_view_draws_the_tasks_and_counters(tmp_path: Path) -> None:
    """--live-view on draws the task table and counters, logs above it, and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "polymarket_agents", "--duration", "1", "--http-port", "0",
         "--live-view", "on", "--db", str(tmp_path / "view.sqlite")],
        cwd=tmp_path, capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.index("serving health and") < out.index("feed and trading")
    for fragment in ("ingestion", "service.heartbeat", "restarts", "stored rows", "exit code: 0"):
        assert fragment in out, fragment
