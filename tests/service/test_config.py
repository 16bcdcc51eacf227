"""ServiceConfig: defaults, environment, flags over environment, and clear refusals."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed.simulator import FaultPlan
from polymarket_agents.service import (
    DEFAULT_HEALTH_URL,
    DEFAULT_HTTP_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_LOOP_HOLD_THRESHOLD,
    OPTIONS,
    ServiceConfig,
    load_config,
    parse_faults,
)


def test_defaults_are_the_embedded_service() -> None:
    """With nothing set: the embedded simulator, SQLite under data/, HTTP on 127.0.0.1:8080."""
    config = load_config({}, {})
    assert config == ServiceConfig()
    assert config.embedded_simulator
    assert config.db_path == Path("data/agents.sqlite")
    assert (config.http_host, config.http_port) == ("127.0.0.1", 8080)
    assert config.edge_threshold == Decimal("0.05")
    assert config.grace_period == 10.0
    assert config.duration is None
    assert config.universe_size == 5
    assert not config.sim_faults.active
    assert config.loop_hold_threshold == DEFAULT_LOOP_HOLD_THRESHOLD == 0.1


def test_the_loop_watchdog_threshold_is_seconds_or_off() -> None:
    """--loop-hold-threshold takes seconds, or off for no watchdog."""
    assert load_config({"loop_hold_threshold": "0.25"}, {}).loop_hold_threshold == 0.25
    environ = {"POLYMARKET_AGENTS_LOOP_HOLD_THRESHOLD": "off"}
    assert load_config({}, environ).loop_hold_threshold is None


def test_default_http_address_matches_check_agents() -> None:
    """check_agents() asks the address the service listens on by default."""
    assert f"http://{DEFAULT_HTTP_HOST}:{DEFAULT_HTTP_PORT}/healthz" == DEFAULT_HEALTH_URL


def test_environment_sets_every_kind_of_value() -> None:
    """Each setting reads its environment variable, converted to the field's type."""
    environ = {
        "LOG_LEVEL": "debug",
        "POLYMARKET_AGENTS_FEED_URL": "wss://example.com/ws/market",
        "POLYMARKET_AGENTS_GAMMA_URL": "https://example.com",
        "POLYMARKET_AGENTS_MARKETS": "a-slug, 0xabc ,",
        "POLYMARKET_AGENTS_DB": "/tmp/x.sqlite",
        "POLYMARKET_AGENTS_HTTP": "off",
        "POLYMARKET_AGENTS_HTTP_HOST": "0.0.0.0",
        "POLYMARKET_AGENTS_HTTP_PORT": "9100",
        "POLYMARKET_AGENTS_EDGE_THRESHOLD": "0.02",
        "POLYMARKET_AGENTS_GRACE_PERIOD": "3.5",
        "POLYMARKET_AGENTS_DURATION": "12",
        "POLYMARKET_AGENTS_LOG_FORMAT": "JSON",
        "POLYMARKET_AGENTS_SIM_FAULTS": "drop-every=2,legacy-price-change",
    }
    config = ServiceConfig.from_env(environ)
    assert config.log_level == "DEBUG"
    assert config.feed_url == "wss://example.com/ws/market"
    assert not config.embedded_simulator
    assert config.markets == ("a-slug", "0xabc")
    assert config.db_path == Path("/tmp/x.sqlite")
    assert not config.http_enabled
    assert (config.http_host, config.http_port) == ("0.0.0.0", 9100)
    assert config.edge_threshold == Decimal("0.02")
    assert (config.grace_period, config.duration) == (3.5, 12.0)
    assert config.log_format == "json"
    assert config.sim_faults == FaultPlan(drop_every=2.0, legacy_price_change=True)


def test_flags_win_over_environment() -> None:
    """A command-line value replaces the environment's; an absent flag leaves it."""
    config = load_config(
        {"http_port": "9200", "log_level": None},
        {"POLYMARKET_AGENTS_HTTP_PORT": "9100", "LOG_LEVEL": "WARNING"},
    )
    assert config.http_port == 9200
    assert config.log_level == "WARNING"


@pytest.mark.parametrize(
    ("flags", "environ", "fragment"),
    [
        ({"http_port": "abc"}, {}, "--http-port: must be an integer, not 'abc'"),
        ({"http_port": "70000"}, {}, "--http-port: must be a port number in 0..65535"),
        ({}, {"POLYMARKET_AGENTS_HTTP_PORT": "-1"}, "POLYMARKET_AGENTS_HTTP_PORT: must be a port"),
        ({}, {"LOG_LEVEL": "LOUD"}, "LOG_LEVEL: must be one of DEBUG, INFO"),
        ({"edge_threshold": "five"}, {}, "--edge-threshold: must be a decimal number"),
        ({"edge_threshold": "1.5"}, {}, "--edge-threshold: must be a fraction between 0 and 1"),
        ({"grace_period": "0"}, {}, "--grace-period: must be a number of seconds > 0"),
        ({"grace_period": "nan"}, {}, "--grace-period: must be a number of seconds > 0"),
        ({"duration": "-3"}, {}, "--duration: must be a number of seconds > 0"),
        ({"feed_url": "http://x/ws"}, {}, "--feed-url: must be a ws:///wss:// URL"),
        ({"gamma_url": "ftp://x"}, {}, "--gamma-url: must be a http:///https:// URL"),
        ({"market_count": "0"}, {}, "--market-count: must be an integer in 1..10000"),
        ({"log_format": "xml"}, {}, "--log-format: must be text or json"),
        ({"live_view": "maybe"}, {}, "--live-view: must be auto, on or off"),
        ({}, {"POLYMARKET_AGENTS_HTTP": "perhaps"}, "POLYMARKET_AGENTS_HTTP: must be on or off"),
        ({"sim_faults": "explode=1"}, {}, "--sim-faults: unknown fault 'explode'"),
        ({"sim_faults": "malformed-rate=2"}, {}, "--sim-faults: malformed_rate must be in [0, 1]"),
        ({"sim_rate": "-1"}, {}, "--sim-rate: must be a number of ticks per second >= 0"),
        ({"loop_hold_threshold": "0"}, {}, "--loop-hold-threshold: must be a number of seconds"),
    ],
)
def test_bad_values_are_refused_with_their_source(
    flags: dict[str, str], environ: dict[str, str], fragment: str
) -> None:
    """An invalid value raises ConfigurationError naming the flag or variable and the rule."""
    with pytest.raises(ConfigurationError) as info:
        load_config(flags, environ)
    assert fragment in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    """Several bad values give one error that lists them all."""
    with pytest.raises(ConfigurationError) as info:
        load_config({"http_port": "x", "grace_period": "-1"}, {"LOG_LEVEL": "nope"})
    message = str(info.value)
    assert "--http-port" in message
    assert "--grace-period" in message
    assert "LOG_LEVEL" in message


def test_direct_construction_is_validated() -> None:
    """Building ServiceConfig in code checks the same rules, naming the field."""
    with pytest.raises(ConfigurationError, match="http_port: must be a port number"):
        ServiceConfig(http_port=123456)
    with pytest.raises(ConfigurationError, match="edge_threshold"):
        ServiceConfig(edge_threshold=Decimal(0))
    config = ServiceConfig(market_count=100)
    assert config.universe_size == 100
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.http_port = 1  # type: ignore[misc]


def test_fault_plans_parse_from_text() -> None:
    """parse_faults reads name=value pairs, accepts - or _, and rejects missing values."""
    assert parse_faults("") == FaultPlan()
    assert parse_faults("drop_every=1.5, malformed-rate=0.1, oversized-bytes=128") == FaultPlan(
        drop_every=1.5, malformed_rate=0.1, oversized_bytes=128
    )
    with pytest.raises(ValueError, match="needs a value"):
        parse_faults("drop-every")
    with pytest.raises(ValueError, match="must be a number"):
        parse_faults("send-delay=soon")


def test_every_option_has_a_flag_and_a_variable() -> None:
    """Each option maps a ServiceConfig field to a distinct flag and environment variable."""
    fields = {f.name for f in dataclasses.fields(ServiceConfig)}
    assert {option.name for option in OPTIONS} == fields
    assert len({option.flag for option in OPTIONS}) == len(OPTIONS)
    assert len({option.env for option in OPTIONS}) == len(OPTIONS)
    assert all(option.flag.startswith("--") and option.help for option in OPTIONS)
