"""Storage faults made to a real service process: kill -9 mid-trade, a vanished database,
a read-only reopen, a hostile -shm file, a full disk at SIGTERM, two processes on one file.

Every fault is made by the test to the running process from outside, as an operator or a
failing machine would: ``RLIMIT_FSIZE`` of the process set to 0 with ``prlimit`` (every
file write fails, as on a full disk), ``chmod`` of the database, ``rm -rf`` of its
directory, SIGKILL. Run as root, the service is started without the capabilities that let
root ignore file permissions, so that a ``chmod`` means to it what it means to anyone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..service.conftest import START_TIMEOUT, ServiceProcess, disk_full, http_get, wait_for

pytestmark = pytest.mark.slow

# Sub-second health checks, a lively simulator with frequent dislocations to trade, JSON
# logs the helpers read, no live view, a short grace period.
FAST = (
    "--http-port", "0",
    "--health-interval", "0.2",
    "--sim-rate", "20",
    "--sim-dislocation-rate", "0.3",
    "--grace-period", "2",
    "--log-format", "json",
    "--live-view", "off",
)  # fmt: skip

# Run as the service's launcher when the tests run as root: drops the capabilities that
# let root read and write files whatever their mode (DAC_OVERRIDE, DAC_READ_SEARCH,
# FOWNER) from the bounding set, then execs the service in the same process.
_WITHOUT_ROOT_FILE_POWERS = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2, 3):
    if libc.prctl(24, cap, 0, 0, 0):  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.executable, [sys.executable, "-m", "polymarket_agents", *sys.argv[1:]])
"""

_EXECUTED = re.compile(r"^signal (\S+) \(edge [-0-9.]+\): (.*)$")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start service subprocesses; any still running at teardown is killed."""
    started: list[ServiceProcess] = []

    def run(*args: str, plain_root: bool = False) -> ServiceProcess:
        directory = tmp_path / f"run{len(started)}"
        directory.mkdir()
        launcher: tuple[str, ...] = (sys.executable, "-m", "polymarket_agents")
        if os.geteuid() == 0 and not plain_root:
            launcher = (sys.executable, "-c", _WITHOUT_ROOT_FILE_POWERS)
        process = ServiceProcess([*FAST, *args], directory, launcher=launcher)
        started.append(process)
        return process

    yield run
    for process in started:
        process.kill()


def summary_of(service: ServiceProcess) -> dict[str, Any]:
    """The JSON summary the service printed on stdout as it exited."""
    lines = [line for line in service.stdout.splitlines() if line.startswith('{"summary"')]
    assert len(lines) == 1, service.stdout[-3000:]
    summary: dict[str, Any] = json.loads(lines[0])["summary"]
    return summary


def runtime_of(service: ServiceProcess) -> dict[str, Any]:
    """The runtime counters of /status ({} before the agents start)."""
    status, data = service.get_json("/status")
    assert status == 200
    runtime: dict[str, Any] = data.get("runtime") or {}
    return runtime


def readiness(service: ServiceProcess) -> tuple[int, str]:
    """/readyz: its status and body."""
    assert service.url is not None
    return http_get(f"{service.url}/readyz")


def messages(service: ServiceProcess) -> list[str]:
    return [str(entry.get("message", "")) for entry in service.log_entries()]


def executed(service: ServiceProcess) -> set[str]:
    """Signals the service logged as executed (at least one leg matched)."""
    found = set()
    for message in messages(service):
        match = _EXECUTED.match(message)
        if match and "matched" in match.group(2):
            found.add(match.group(1))
    return found


def table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return list(conn.execute(sql))


def assert_rows_add_up(summary: dict[str, Any], db: Path) -> None:
    """queued = stored + duplicates + invalid + not stored, and the file holds exactly the
    rows the summary says were stored (every table, on a file this run created), and the
    paper orders it holds in their write-ahead state alone, their result not stored."""
    assert summary["rows_queued"] == (
        summary["stored_rows"]
        + summary["duplicate_rows"]
        + summary["invalid_rows"]
        + summary["lost_rows"]
    ), summary
    stored_by_table = summary["runtime"]["stored_by_table"]
    write_ahead = summary["runtime"]["write_ahead_rows"]
    assert table(db, "SELECT count(*) FROM paper_orders WHERE status = 'pending'") == [
        (write_ahead,)
    ], summary
    for name, count in stored_by_table.items():
        held = write_ahead if name == "paper_orders" else 0
        assert table(db, f'SELECT count(*) FROM "{name}"') == [(count + held,)], (name, summary)
    assert sum(stored_by_table.values()) == summary["stored_rows"]


def test_kill_9_while_the_disk_is_full_loses_no_executed_trade_and_repeats_none(
    start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """Trades executed, then the disk fills (every write fails) and the process is killed
    -9 while signals keep coming: every signal the log called executed has its matched
    orders and fills in the file after a restart on the same file, none was executed by
    both runs, and no order is left pending."""
    db = tmp_path / "trades.sqlite"
    first = start("--db", str(db))
    first.wait_ready()
    wait_for(lambda: len(executed(first)) >= 2, START_TIMEOUT, "two executed signals")
    with disk_full(first.pid):
        # The trade path met the fault: a signal was refused because it could not be
        # recorded before execution (market data is failing meanwhile too).
        wait_for(
            lambda: any("could not be recorded before execution" in m for m in messages(first)),
            START_TIMEOUT,
            "a signal refused for want of a record",
        )
        first.process.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    before = executed(first)

    second = start("--db", str(db))
    second.wait_ready()
    time.sleep(1.0)  # the same simulator seed replays the same dislocations
    second.terminate(signal.SIGTERM)
    assert second.wait(10) == 0, second.stderr[-3000:]
    after = executed(second)
    assert not before & after, "a signal was executed twice"

    orders = {
        signal_id: (order_id, status, size)
        for order_id, signal_id, status, size in table(
            db, "SELECT order_id, signal_id, status, size FROM paper_orders"
        )
    }
    filled: dict[str, float] = {}
    for order_id, size in table(db, "SELECT order_id, size FROM fills"):
        filled[order_id] = filled.get(order_id, 0.0) + float(size)
    assert before | after
    for signal_id in before | after:
        for leg in (0, 1):
            order_id, status, size = orders[f"{signal_id}#{leg}"]
            assert status == "matched", (signal_id, status)
            assert filled[order_id] == pytest.approx(float(size))
    assert not [row for row in orders.values() if row[1] == "pending"]
    assert summary_of(second)["exit_code"] == 0


def test_a_removed_database_directory_is_reported_and_its_rows_count_as_lost(
    start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """rm -rf of the database's directory while rows are stored: /readyz goes 503 within
    a few seconds naming the path; at SIGTERM the exit code is 1, nothing counts as stored,
    every row counts as lost, and no new file was created in its place."""
    directory = tmp_path / "volume"
    db = directory / "agents.sqlite"
    service = start("--db", str(db))
    service.wait_ready()
    wait_for(lambda: runtime_of(service).get("stored_rows", 0) > 0, START_TIMEOUT, "rows")
    assert not db.with_name(db.name + "-shm").exists()  # the WAL index is in memory
    shutil.rmtree(directory)
    removed = time.monotonic()
    _, body = wait_for(
        lambda: (r := readiness(service))[0] == 503 and "vanished" in r[1] and r,
        START_TIMEOUT,
        "/readyz to report the vanished file",
    )
    assert time.monotonic() - removed < 5.0
    assert f"database {db.name} vanished" in body  # /readyz names files, not directories
    assert any(f"database {db} vanished" in m for m in messages(service))  # the log, in full
    service.terminate(signal.SIGTERM)
    assert service.wait(10) == 1
    summary = summary_of(service)
    assert (summary["stored_rows"], summary["duplicate_rows"]) == (0, 0)
    assert summary["lost_rows"] == summary["rows_queued"] - summary["invalid_rows"] > 0
    assert "vanished" in summary["failure"]
    assert not directory.exists()


def test_a_read_only_reopen_recovers_once_the_file_is_writable_again(
    start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """A write fault (full disk) makes the store reconnect while the file cannot be
    written (chmod 444): the new connection is read-only, and refused. Within 30 s of the
    file being writable again, rows are stored and the service is ready; nothing is lost.
    A hostile -shm file (garbage, mode 000) lies beside the database all along: the WAL
    index is in memory, so it changes nothing."""
    db = tmp_path / "ro.sqlite"
    shm = db.with_name(db.name + "-shm")
    shm.write_bytes(b"\xff" * 32768)
    shm.chmod(0)
    # A grace period above the feed's close timeout (2 s): a socket that stopped reading
    # while a trade waited for the disk may take all of it to close, the server's sends
    # being queued ahead of its answer to the close.
    service = start("--db", str(db), "--grace-period", "5")
    service.wait_ready()
    wait_for(lambda: runtime_of(service).get("stored_rows", 0) > 0, START_TIMEOUT, "rows")
    db.chmod(0o444)
    with disk_full(service.pid):
        wait_for(
            lambda: any("reconnecting on next use" in m for m in messages(service)),
            START_TIMEOUT,
            "a write to fail and the connection to be dropped",
        )
    # The disk has room again, but the file may not be written: each new connection is
    # read-only (in exclusive mode, it cannot even take its lock), and refused.
    wait_for(
        lambda: "cannot be written" in readiness(service)[1], START_TIMEOUT, "a read-only reopen"
    )
    time.sleep(1.0)
    still = readiness(service)
    assert still[0] == 503
    assert "cannot be written" in still[1]
    stored = runtime_of(service)["stored_rows"]
    db.chmod(0o644)
    fixed = time.monotonic()
    wait_for(
        lambda: readiness(service)[0] == 200 and runtime_of(service)["stored_rows"] > stored,
        35.0,
        "rows stored again",
    )
    assert time.monotonic() - fixed < 30.0
    service.terminate(signal.SIGTERM)
    assert service.wait(10) == 0, service.stderr[-3000:]
    # Untouched by the service (before this test's own reader, which maps it, opens it).
    assert stat.S_IMODE(shm.stat().st_mode) == 0
    assert shm.read_bytes() == b"\xff" * 32768
    summary = summary_of(service)
    assert summary["lost_rows"] == 0
    assert_rows_add_up(summary, db)


def test_a_fatal_signal_leaves_a_line_and_the_stacks(
    start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """Should a fatal signal ever hit the process (SIGBUS is what a faulting mapped file
    sends), it does not die silently: stderr says which and where every thread was."""
    service = start("--db", str(tmp_path / "bus.sqlite"))
    service.wait_ready()
    service.process.send_signal(signal.SIGBUS)
    assert service.wait(10) == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in service.stderr
    assert "Current thread" in service.stderr or "Thread 0x" in service.stderr


@pytest.mark.parametrize("fault", ["full disk", "read-only reopen"])
def test_rows_add_up_when_stopped_under_a_fault(
    start: Callable[..., ServiceProcess], tmp_path: Path, fault: str
) -> None:
    """SIGTERM while every write fails: exit 1, the summary counts rows (not queue
    items) and queued = stored + duplicates + invalid + lost exactly, with `stored` what
    the file holds."""
    db = tmp_path / "fault.sqlite"
    service = start("--db", str(db))
    service.wait_ready()
    wait_for(lambda: runtime_of(service).get("stored_rows", 0) > 0, START_TIMEOUT, "rows")
    with contextlib.ExitStack() as faults:
        if fault == "read-only reopen":
            db.chmod(0o444)
        faults.enter_context(disk_full(service.pid))
        # Rows wait from the first failed write on. How many depends on the moment: a
        # trade whose result waits for the disk holds its connection's markets (the
        # connection awaits the monitor's hand-off: backpressure, not loss).
        wait_for(lambda: runtime_of(service)["pending_rows"] > 0, START_TIMEOUT, "rows waiting")
        service.terminate(signal.SIGTERM)
        assert service.wait(10) == 1
    db.chmod(0o644)
    summary = summary_of(service)
    assert summary["lost_rows"] > 0
    assert "still queued or in hand" in summary["failure"]
    assert_rows_add_up(summary, db)


def test_a_second_process_on_the_same_database_refuses_to_start(
    start: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """The second service on a database file exits 1 at start, naming the file and the
    first one's pid; the first goes on, and stops cleanly."""
    db = tmp_path / "shared.sqlite"
    first = start("--db", str(db))
    first.wait_ready()
    second = start("--db", str(db), plain_root=True)
    assert second.wait(START_TIMEOUT) == 1
    # The service shows file names without their directories.
    message = f"database {db.name!r} is in use by process {first.pid}"
    assert message in second.stderr
    assert message in summary_of(second)["failure"]
    assert readiness(first)[0] == 200
    first.terminate(signal.SIGTERM)
    assert first.wait(10) == 0
