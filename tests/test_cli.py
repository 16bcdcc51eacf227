"""The command line, in process: help, bad settings, health and status against nothing."""

from __future__ import annotations

import re
import socket

import pytest

from polymarket_agents.cli import main


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """--help exits 0 and names run, simulate, health and status."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "simulate", "health", "status"):
        assert command in out


def test_run_help_names_each_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    """run --help shows every option with its environment variable."""
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for fragment in ("--http-port", "[POLYMARKET_AGENTS_HTTP_PORT]", "--log-level", "[LOG_LEVEL]"):
        assert fragment in out


def test_bad_settings_exit_2_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid values exit 2 before anything starts, each named with what it must be."""
    assert main(["run", "--http-port", "eighty", "--edge-threshold", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polymarket-agents: error: invalid configuration:")
    assert "--http-port: must be an integer, not 'eighty'" in err
    assert "--edge-threshold: must be a fraction between 0 and 1" in err


def test_bad_environment_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad environment variable is reported by name; options go to run by default."""
    monkeypatch.setenv("LOG_LEVEL", "CHATTY")
    assert main(["--duration", "1"]) == 2
    assert (
        "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in capsys.readouterr().err
    )


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An option no command knows exits 2 with argparse's usage message."""
    assert main(["run", "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_health_is_1_when_nothing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """health exits 1 (and says unhealthy) when no service answers."""
    url = f"http://127.0.0.1:{_closed_port()}/healthz"
    assert main(["health", "--url", url, "--timeout", "2"]) == 1
    assert capsys.readouterr().out.strip() == f"unhealthy: {url}"


def test_health_follows_the_port_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --url, health asks the port the service would use from the same environment."""
    port = _closed_port()
    monkeypatch.delenv("POLYMARKET_AGENTS_HEALTH_URL", raising=False)
    monkeypatch.setenv("POLYMARKET_AGENTS_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("POLYMARKET_AGENTS_HTTP_PORT", str(port))
    assert main(["health"]) == 1
    assert capsys.readouterr().out.strip() == f"unhealthy: http://127.0.0.1:{port}/healthz"


def test_health_refuses_a_non_http_url(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL check_agents cannot ask is a usage error (2), not 'unhealthy'."""
    assert main(["health", "--url", "ftp://127.0.0.1/healthz"]) == 2
    assert "health URL must be http://" in capsys.readouterr().err


def test_status_is_1_when_nothing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """status exits 1 and says which URL did not answer."""
    base = f"http://127.0.0.1:{_closed_port()}"
    assert main(["status", "--url", base, "--timeout", "2"]) == 1
    assert f"{base}/status did not answer" in capsys.readouterr().err


def test_simulate_refuses_bad_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """simulate checks its fault options before binding anything."""
    assert main(["simulate", "--malformed-rate", "3"]) == 2
    assert "malformed_rate must be in [0, 1]" in capsys.readouterr().err


def test_simulate_takes_the_simulator_launchers_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`simulate` offers every option of python -m polymarket_agents.feed.simulator."""
    from polymarket_agents.feed.simulator.__main__ import main as launcher

    with pytest.raises(SystemExit):
        launcher(["--help"])
    theirs = set(re.findall(r"--[a-z-]+", capsys.readouterr().out))
    assert main(["simulate", "--help"]) == 0
    ours = set(re.findall(r"--[a-z-]+", capsys.readouterr().out))
    assert theirs
    assert theirs <= ours


def test_strategy_options_repeat_and_join(monkeypatch: pytest.MonkeyPatch) -> None:
    """--strategy-option may repeat; its variable holds the same options comma-separated."""
    from polymarket_agents.cli import _flag
    from polymarket_agents.service import load_config

    flags = {"strategy": "pkg.mod:Cls", "strategy_options": _flag(["a=1", "b-c=x,y"])}
    config = load_config(flags, {})
    assert config.strategy == "pkg.mod:Cls"
    assert config.strategy_options == ("a=1", "b_c=x,y")
    env = {"POLYMARKET_AGENTS_STRATEGY_OPTIONS": "window=3, threshold=0.1"}
    assert load_config({}, env).strategy_options == ("window=3", "threshold=0.1")


def test_a_malformed_strategy_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An option without '=' is refused before anything starts."""
    assert main(["run", "--strategy-option", "window"]) == 2
    assert "a strategy option must be key=value, not 'window'" in capsys.readouterr().err
