"""Credentials in the feed and listing URLs never show; neither does the database's
absolute path in /status; the database file is its owner's alone."""

from __future__ import annotations

import json
import signal
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from polymarket_agents.service import Redactor, ServiceConfig

from .conftest import START_TIMEOUT, ServiceProcess, SimulatorProcess, wait_for

SECRET = "s3cret-pw"
TOKEN = "tok-98765"


def _with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://bot:{SECRET}@{rest}?api_key={TOKEN}&depth=5"


def _assert_hidden(text: str) -> None:
    assert SECRET not in text
    assert TOKEN not in text


@pytest.mark.slow
def test_credentials_never_show_in_status_logs_or_summary(
    start_simulator: Callable[..., SimulatorProcess],
    start_service: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    """With user info and an api_key in --feed-url and --gamma-url, /status, every log line
    and the summary show them masked; /status names the database file, not its absolute
    path; the database file is created 0600."""
    sim = start_simulator("--rate", "50")
    db = tmp_path / "private" / "agents.sqlite"
    service = start_service(
        "run", "--http-port", "0", "--log-format", "json", "--live-view", "off",
        "--market-count", "2", "--db", str(db),
        "--feed-url", _with_credentials(sim.ws_url),
        "--gamma-url", _with_credentials(sim.http_url),
    )  # fmt: skip
    service.wait_ready()
    _, status = service.get_json("/status")
    text = json.dumps(status)
    _assert_hidden(text)
    assert str(tmp_path) not in text
    assert status["service"]["db_path"] == "agents.sqlite"
    assert status["service"]["feed_url"].startswith("ws://***@127.0.0.1:")
    assert status["service"]["feed_url"].endswith("/ws/market?api_key=***&depth=5")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    service.terminate(signal.SIGTERM)
    assert service.wait(10) == 0
    connected = [e for e in service.log_entries() if "connected to" in e["message"]]
    assert len(connected) == 1  # the pooled feed carries both markets on one connection
    assert "ws://***@127.0.0.1:" in connected[0]["message"]
    _assert_hidden(service.stderr)
    _assert_hidden(service.stdout)
    assert '"summary"' in service.stdout


@pytest.mark.slow
def test_a_start_up_error_masks_the_credentials(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """An unreachable listing with credentials fails start-up naming the URL, masked."""
    listing = f"http://bot:{SECRET}@127.0.0.1:9/?token={TOKEN}"
    service = start_service(
        "run", "--http-port", "0", "--live-view", "off",
        "--feed-url", f"ws://bot:{SECRET}@127.0.0.1:9/ws/market", "--gamma-url", listing,
    )  # fmt: skip
    assert service.wait(START_TIMEOUT) == 1
    assert "cannot list markets at http://***@127.0.0.1:9/?token=***/markets" in service.stderr
    assert "failure: cannot list markets at http://***@127.0.0.1:9" in service.stdout
    _assert_hidden(service.stderr)
    _assert_hidden(service.stdout)


def test_a_bad_url_setting_is_reported_masked() -> None:
    """A URL refused by the settings check is quoted with its credentials masked."""
    with pytest.raises(Exception, match=r"not 'http://\*\*\*@host/ws'") as raised:
        ServiceConfig(feed_url=f"http://bot:{SECRET}@host/ws")
    _assert_hidden(str(raised.value))


def test_the_redactor_hides_credentials_and_the_absolute_database_path(tmp_path: Path) -> None:
    """Text quoting a configured URL, its password alone, or the absolute database path is
    shown masked; text with nothing to hide is left alone."""
    feed = f"wss://bot:{SECRET}@feed.example/ws/market"
    redact = Redactor.for_config(ServiceConfig(feed_url=feed, db_path=tmp_path / "a.sqlite"))
    assert redact(f"InvalidURI: {feed} isn't valid") == (
        "InvalidURI: wss://***@feed.example/ws/market isn't valid"
    )
    assert redact(f"auth failed for password {SECRET}") == "auth failed for password ***"
    assert (
        redact(f"database '{tmp_path / 'a.sqlite'}' is locked") == "database 'a.sqlite' is locked"
    )
    assert redact.deep({"a": [f"x {SECRET}", 1]}) == {"a": ["x ***", 1]}
    relative = Redactor.for_config(ServiceConfig(db_path=Path("data/b.sqlite")))
    assert relative(f"no such file {Path('data/b.sqlite').absolute()}") == (
        "no such file data/b.sqlite"
    )
    nothing = Redactor()
    assert not nothing
    assert nothing("anything at all") == "anything at all"


def test_the_simulator_helper_reports_its_urls(
    start_simulator: Callable[..., SimulatorProcess],
) -> None:
    """The simulator subprocess announces a ws:// feed and an http:// listing."""
    sim = start_simulator()
    assert sim.ws_url.startswith("ws://127.0.0.1:")
    assert sim.http_url.startswith("http://127.0.0.1:")
    wait_for(lambda: sim.process.poll() is None, 1, "the simulator to keep running")
