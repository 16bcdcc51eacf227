"""``ServiceConfig``: every setting of the service, typed and validated, from flags and environment.

Pure: nothing here reads the process environment, opens a file or a socket. The command line
passes its flags and ``os.environ`` to :func:`load_config`; tests and benchmarks build a
:class:`ServiceConfig` directly.

Precedence, highest first: a command-line flag, its environment variable, the default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from polymarket_agents.agents import (
    DEFAULT_STRATEGY,
    MAX_SHARDS,
    Shard,
    convert_option,
    parse_strategy_options,
)
from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import (
    DEFAULT_ASSETS_PER_CONNECTION,
    MAX_ASSETS_PER_CONNECTION,
    MarketFilter,
    parse_end_date,
    redact_url,
)
from polymarket_agents.feed.simulator import FaultPlan
from polymarket_agents.storage import is_postgres_url

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_HTTP_HOST",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_LOOP_HOLD_THRESHOLD",
    "OPTIONS",
    "ConfigOption",
    "LiveViewMode",
    "LogFormat",
    "ServiceConfig",
    "load_config",
    "parse_faults",
]

DEFAULT_HTTP_HOST = "127.0.0.1"
"""Health and metrics listen on loopback unless told otherwise."""

DEFAULT_HTTP_PORT = 8080
"""The port the service listens on, and :func:`~polymarket_agents.service.check_agents` asks."""

DEFAULT_DB_PATH = Path("data/agents.sqlite")
"""The SQLite file, relative to the working directory."""

DEFAULT_LOOP_HOLD_THRESHOLD = 0.1
"""Seconds a step of the event loop may take before it counts as a hold: a tenth of a second
is long for an event loop (every other market waits) and far above what its steps take."""

LogFormat = Literal["text", "json"]
LiveViewMode = Literal["auto", "on", "off"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """Settings of one run of the service; invalid values are refused at construction.

    Attributes:
        feed_url: The market channel (``ws://`` or ``wss://``); None starts the embedded
            simulator on a free loopback port and uses it.
        gamma_url: Where markets are listed (Gamma-style ``GET /markets``); None means the
            embedded simulator's listing, or Polymarket's Gamma API with ``feed_url``.
        markets: Markets to monitor, each a slug, condition id, Gamma id or token id; empty
            takes the first ``market_count`` listed; ``("all",)`` monitors every listed
            market that passes the filters and follows the universe while running (new
            markets added, resolved and delisted ones retired).
        market_count: How many listed markets to monitor when ``markets`` is empty.
        db_path: The SQLite database file (its directory is created at start), or a
            ``postgresql://`` URL (a ``str``) of a database several replicas can share.
        db_password_file: A file holding the PostgreSQL password (a mounted secret).
        shard: The shard of the listed markets this replica serves (``K/N``); None serves
            them all, unless ``shard_count`` is given.
        shard_count: Split the markets into this many shards and take the one of this
            StatefulSet pod's ordinal (``POD_NAME``, else ``HOSTNAME``) modulo the count.
        http_enabled: Serve ``/healthz``, ``/readyz``, ``/metrics`` and ``/status``.
        http_host: Address of that server.
        http_port: Its port; 0 picks a free one (logged at start).
        edge_threshold: Minimum edge, as a fraction of price, before the agents paper-trade.
        strategy: The strategy every monitor runs: ``package.module:Class`` (the working
            directory is importable) or ``path/to/file.py:Class``.
        strategy_options: ``key=value`` keyword arguments of the strategy, as text.
        account: The paper account traded, by name; opened with ``starting_cash`` the first
            time (``polymarket-agents account reset`` opens it afresh).
        starting_cash: USDC a new paper account starts with.
        fee_rate_bps: The markets' fee rate in basis points, for paper fills and the
            default strategy's edge (Polymarket's formula: shares x rate x p x (1 - p)).
        order_size: Risk limit: the most one order may cost, USDC; None: no limit.
        max_position: Risk limit: the most paid for what is held in one market, USDC.
        max_exposure: Risk limit: the most paid for what is held overall, USDC.
        daily_loss_limit: Risk limit: no buying once the equity fell this much since
            midnight UTC, USDC.
        grace_period: Seconds a graceful shutdown may take before the process gives up.
        health_interval: Seconds between the agents' health checks.
        ready_silence: Seconds without market data on every feed connection (PONGs do not
            count) before ``/readyz`` answers 503; None: never.
        loop_hold_threshold: Seconds one step of the event loop may take before it counts as
            a hold (a :class:`~polymarket_agents.core.async_utils.LoopWatchdog`: counted on
            ``/metrics`` and ``/status``, the longest logged with where it held the loop);
            None: not watched.
        min_liquidity: List only markets with at least this ``liquidityNum`` (USDC).
        min_volume: List only markets with at least this ``volumeNum`` (USDC).
        tag: List only markets with this Gamma tag (an id or a slug).
        end_after: List only markets ending at or after this time.
        end_before: List only markets ending at or before this time.
        universe_refresh: Seconds between Gamma refreshes with ``markets=("all",)``.
        assets_per_connection: Assets per pooled feed connection (at most 500).
        duration: Stop by itself after this many seconds; None runs until a signal.
        log_level: A :mod:`logging` level name.
        log_format: ``"text"`` (plain, one record a line) or ``"json"`` (one object a line).
        live_view: ``"on"``, ``"off"``, or ``"auto"``: a live table when stdout is a terminal
            and ``log_format`` is text. While it is drawn, log records go through its
            console (above the table), whatever ``log_format`` says.
        sim_port: Port of the embedded simulator; 0 picks a free one.
        sim_markets: Markets in the simulator's universe; None means
            ``max(5, market_count)``.
        sim_rate: Simulator ticks per second; 0 as fast as the agents read.
        sim_seed: Seed of the simulator's universe and price walk.
        sim_dislocation_rate: Probability per simulator tick that a market's YES and NO asks
            briefly sum below 1 (an edge for the default strategy to trade); 0 turns it off.
        sim_faults: Faults the embedded simulator injects (none by default).

    Raises:
        ConfigurationError: Listing every invalid setting.
    """

    feed_url: str | None = None
    gamma_url: str | None = None
    markets: tuple[str, ...] = ()
    market_count: int = 5
    db_path: Path | str = DEFAULT_DB_PATH
    db_password_file: Path | None = None
    shard: Shard | None = None
    shard_count: int | None = None
    http_enabled: bool = True
    http_host: str = DEFAULT_HTTP_HOST
    http_port: int = DEFAULT_HTTP_PORT
    edge_threshold: Decimal = Decimal("0.05")
    strategy: str = DEFAULT_STRATEGY
    strategy_options: tuple[str, ...] = ()
    account: str = "default"
    starting_cash: Decimal = Decimal(1000)
    fee_rate_bps: Decimal = Decimal(0)
    order_size: Decimal | None = None
    max_position: Decimal | None = None
    max_exposure: Decimal | None = None
    daily_loss_limit: Decimal | None = None
    grace_period: float = 10.0
    health_interval: float = 60.0
    ready_silence: float | None = 30.0
    loop_hold_threshold: float | None = DEFAULT_LOOP_HOLD_THRESHOLD
    min_liquidity: Decimal | None = None
    min_volume: Decimal | None = None
    tag: str | None = None
    end_after: datetime | None = None
    end_before: datetime | None = None
    universe_refresh: float = 300.0
    assets_per_connection: int = DEFAULT_ASSETS_PER_CONNECTION
    duration: float | None = None
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    live_view: LiveViewMode = "auto"
    sim_port: int = 0
    sim_markets: int | None = None
    sim_rate: float = 5.0
    sim_seed: int = 0
    sim_dislocation_rate: float = 0.02
    sim_faults: FaultPlan = field(default_factory=FaultPlan)

    def __post_init__(self) -> None:
        problems = [
            f"{name}: {problem}"
            for name, problem in (
                (f.name, _check(f.name, getattr(self, f.name))) for f in dataclasses.fields(self)
            )
            if problem is not None
        ]
        postgres = is_postgres_url(self.db_path)
        for name in ("db_password_file", "shard", "shard_count"):
            if getattr(self, name) is not None and not postgres:
                problems.append(
                    f"{name}: needs a PostgreSQL database (--db postgresql://user@host/db)"
                )
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))

    @property
    def embedded_simulator(self) -> bool:
        """Whether the service starts its own simulator (no ``feed_url`` given)."""
        return self.feed_url is None

    @property
    def follow_universe(self) -> bool:
        """Whether every listed market is monitored and the universe followed."""
        return self.markets == ("all",)

    def market_filter(self) -> MarketFilter:
        """The listing filters as a :class:`~polymarket_agents.feed.MarketFilter`."""
        return MarketFilter(
            min_liquidity=self.min_liquidity,
            min_volume=self.min_volume,
            tag=self.tag,
            end_after=self.end_after,
            end_before=self.end_before,
        )

    @property
    def universe_size(self) -> int:
        """Markets the embedded simulator generates."""
        return self.sim_markets if self.sim_markets is not None else max(5, self.market_count)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceConfig:
        """Settings from environment variables alone (see :data:`OPTIONS` for their names).

        Args:
            environ: Usually ``os.environ``.

        Returns:
            The settings.

        Raises:
            ConfigurationError: Listing every invalid variable.
        """
        return load_config({}, environ)


# -- validation: one check per field, on the typed value ---------------------------------------


def _port(value: object) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        return f"must be a port number in 0..65535, not {value!r}"
    return None


def _positive(value: object) -> str | None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not value > 0:
        return f"must be a number of seconds > 0, not {value!r}"
    return None


def _url(schemes: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if value is None:
            return None
        parts = urlsplit(str(value))
        if parts.scheme not in schemes or not parts.hostname:
            shown = redact_url(str(value))
            return f"must be a {'/'.join(s + '://' for s in schemes)} URL, not {shown!r}"
        return None

    return check


def _amount(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        return f"must be an amount of USDC >= 0, not {value!r}"
    return None


def _moment(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return f"must be a date or time with a time zone, not {value!r}"
    return None


def _edge(value: object) -> str | None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 < value < 1:
        return f"must be a fraction between 0 and 1 (0.05 is 5 %), not {value!r}"
    return None


def _strategy(value: object) -> str | None:
    target, sep, attribute = str(value).rpartition(":")
    if not isinstance(value, str) or not sep or not target or not attribute:
        return f"must be package.module:Class or path/to/file.py:Class, not {value!r}"
    return None


def _strategy_options(value: object) -> str | None:
    if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
        return f"must be key=value texts, not {value!r}"
    try:
        parse_strategy_options(value)
    except ConfigurationError as exc:
        return str(exc)
    return None


def _usdc(optional: bool) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            return f"must be an amount of USDC >= 0, not {value!r}"
        if optional and not value > 0:
            return f"must be > 0 (or none), not {value!r}"
        return None

    return check


_CHECKS: dict[str, Callable[[object], str | None]] = {
    "feed_url": _url(("ws", "wss")),
    "gamma_url": _url(("http", "https")),
    "markets": lambda v: (
        None
        if isinstance(v, tuple) and all(isinstance(m, str) and m for m in v)
        else f"must be non-empty names, not {v!r}"
    ),
    "market_count": lambda v: (
        None
        if isinstance(v, int) and 1 <= v <= 10_000
        else f"must be an integer in 1..10000, not {v!r}"
    ),
    "db_path": lambda v: (
        None
        if (isinstance(v, Path) and str(v) not in ("", ".")) or is_postgres_url(v)
        else "must name a file or be a postgresql:// URL"
    ),
    "shard": lambda v: None if v is None or isinstance(v, Shard) else f"must be K/N, not {v!r}",
    "shard_count": lambda v: (
        None
        if v is None or (isinstance(v, int) and 1 <= v <= MAX_SHARDS)
        else f"must be an integer in 1..{MAX_SHARDS}, not {v!r}"
    ),
    "http_host": lambda v: None if v else "must not be empty",
    "http_port": _port,
    "edge_threshold": _edge,
    "strategy": _strategy,
    "strategy_options": _strategy_options,
    "account": lambda v: (
        None
        if isinstance(v, str) and v.strip() and len(v) <= 64
        else f"must be a name of 1 to 64 characters, not {v!r}"
    ),
    "starting_cash": _usdc(False),
    "fee_rate_bps": lambda v: (
        None
        if isinstance(v, Decimal) and v.is_finite() and 0 <= v <= 10_000
        else f"must be basis points in [0, 10000], not {v!r}"
    ),
    "order_size": _usdc(True),
    "max_position": _usdc(True),
    "max_exposure": _usdc(True),
    "daily_loss_limit": _usdc(True),
    "grace_period": _positive,
    "health_interval": _positive,
    "ready_silence": lambda v: None if v is None else _positive(v),
    "loop_hold_threshold": lambda v: None if v is None else _positive(v),
    "min_liquidity": lambda v: _amount(v),
    "min_volume": lambda v: _amount(v),
    "tag": lambda v: (
        None if v is None or (isinstance(v, str) and v.strip()) else "must not be empty"
    ),
    "end_after": lambda v: _moment(v),
    "end_before": lambda v: _moment(v),
    "universe_refresh": _positive,
    "assets_per_connection": lambda v: (
        None
        if isinstance(v, int) and 2 <= v <= MAX_ASSETS_PER_CONNECTION
        else f"must be an integer in 2..{MAX_ASSETS_PER_CONNECTION}, not {v!r}"
    ),
    "duration": lambda v: None if v is None else _positive(v),
    "log_level": lambda v: (
        None if v in _LEVELS else f"must be one of {', '.join(_LEVELS)}, not {v!r}"
    ),
    "log_format": lambda v: None if v in ("text", "json") else f"must be text or json, not {v!r}",
    "live_view": lambda v: (
        None if v in ("auto", "on", "off") else f"must be auto, on or off, not {v!r}"
    ),
    "sim_port": _port,
    "sim_markets": lambda v: (
        None
        if v is None or (isinstance(v, int) and 1 <= v <= 10_000)
        else f"must be an integer in 1..10000, not {v!r}"
    ),
    "sim_rate": lambda v: (
        None
        if isinstance(v, int | float) and math.isfinite(v) and v >= 0
        else f"must be a number of ticks per second >= 0, not {v!r}"
    ),
    "sim_seed": lambda v: None if isinstance(v, int) else f"must be an integer, not {v!r}",
    "sim_dislocation_rate": lambda v: (
        None
        if isinstance(v, int | float) and 0 <= v <= 1
        else f"must be a probability in [0, 1], not {v!r}"
    ),
    "sim_faults": lambda v: None if isinstance(v, FaultPlan) else f"must be a FaultPlan: {v!r}",
}


def _check(name: str, value: object) -> str | None:
    check = _CHECKS.get(name)
    return None if check is None else check(value)


# -- conversion: text (a flag or an environment variable) to the field's type ------------------


def _to_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"must be an integer, not {text!r}") from None


def _to_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"must be a number, not {text!r}") from None


def _to_optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("", "none", "off") else _to_float(text)


def _to_decimal(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"must be a decimal number such as 0.05, not {text!r}") from None


def _to_optional_decimal(text: str) -> Decimal | None:
    return None if text.strip().lower() in ("", "none", "off") else _to_decimal(text)


def _to_bool(text: str) -> bool:
    return bool(convert_option(text, bool))


def _to_database(text: str) -> Path | str:
    text = text.strip()
    return text if is_postgres_url(text) else Path(text)


def _to_shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


def _to_optional_text(text: str) -> str | None:
    return text.strip() or None


def _to_moment(text: str) -> datetime | None:
    if text.strip().lower() in ("", "none", "off"):
        return None
    moment = parse_end_date(text.strip())
    if moment is None:
        raise ValueError(
            f"must be an ISO date such as 2027-01-31 or 2027-01-31T12:00Z, not {text!r}"
        )
    return moment


def _to_markets(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _to_level(text: str) -> str:
    level = text.strip().upper()
    if level == "WARN":  # accepted by logging itself; spelled out for the check
        level = "WARNING"
    return level


def parse_faults(text: str) -> FaultPlan:
    """Read a fault plan written as ``name=value`` pairs separated by commas.

    The names are :class:`~polymarket_agents.feed.simulator.FaultPlan`'s fields, with ``-``
    or ``_``: ``"drop-every=2,malformed-rate=0.05"``. An empty text is no faults.

    Args:
        text: The plan.

    Returns:
        The fault plan.

    Raises:
        ValueError: On an unknown name, a value of the wrong type, or one the plan refuses.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(FaultPlan)}
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, raw = item.partition("=")
        key = name.strip().replace("-", "_")
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ValueError(f"unknown fault {name.strip()!r} (known: {known})")
        default = defaults[key]
        if isinstance(default, bool):
            values[key] = True if not sep else _to_bool(raw)
        elif not sep:
            raise ValueError(f"fault {key!r} needs a value ({key}=...)")
        elif isinstance(default, int):
            values[key] = _to_int(raw)
        else:
            values[key] = _to_float(raw)
    return FaultPlan(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigOption:
    """How one :class:`ServiceConfig` field is set from the command line and the environment.

    Attributes:
        name: The field.
        flag: The command-line flag.
        env: The environment variable.
        help: One line for ``--help``.
        metavar: Placeholder shown in ``--help``.
        convert: Text to the field's type; raises ValueError with the reason.
        const: For a flag that takes no value: the text it stands for.
        repeat: The flag may be given more than once; the command line joins the values
            with commas (as the environment variable holds them).
    """

    name: str
    flag: str
    env: str
    help: str
    convert: Callable[[str], object]
    metavar: str | None = None
    const: str | None = None
    repeat: bool = False


def _opt(
    name: str, flag: str, env: str, convert: Callable[[str], object], help: str, **kw: Any
) -> ConfigOption:
    return ConfigOption(name=name, flag=flag, env=env, convert=convert, help=help, **kw)


_P = "POLYMARKET_AGENTS_"

OPTIONS: tuple[ConfigOption, ...] = (
    _opt(
        "feed_url",
        "--feed-url",
        _P + "FEED_URL",
        str,
        "market channel ws(s):// URL (default: start the embedded simulator)",
        metavar="URL",
    ),
    _opt(
        "gamma_url",
        "--gamma-url",
        _P + "GAMMA_URL",
        str,
        "Gamma-style market listing (default: the simulator's, or Polymarket's with --feed-url)",
        metavar="URL",
    ),
    _opt(
        "markets",
        "--markets",
        _P + "MARKETS",
        _to_markets,
        "comma-separated slugs, condition ids or token ids, or all: every listed market, "
        "followed as markets open and resolve (default: the first listed)",
        metavar="IDS",
    ),
    _opt(
        "market_count",
        "--market-count",
        _P + "MARKET_COUNT",
        _to_int,
        "markets to monitor when --markets is not given (5)",
        metavar="N",
    ),
    _opt(
        "db_path",
        "--db",
        _P + "DB",
        _to_database,
        f"SQLite database file ({DEFAULT_DB_PATH}) or postgresql://user@host:port/db URL",
        metavar="PATH|URL",
    ),
    _opt(
        "db_password_file",
        "--db-password-file",
        _P + "DB_PASSWORD_FILE",
        Path,
        "file holding the PostgreSQL password (else the URL's, PGPASSWORD or ~/.pgpass)",
        metavar="PATH",
    ),
    _opt(
        "shard",
        "--shard",
        _P + "SHARD",
        _to_shard,
        "serve shard K of N of the listed markets (e.g. 0/3); replicas share one PostgreSQL",
        metavar="K/N",
    ),
    _opt(
        "shard_count",
        "--shard-count",
        _P + "SHARD_COUNT",
        _to_int,
        "N shards; this replica's is its StatefulSet ordinal (POD_NAME) modulo N",
        metavar="N",
    ),
    _opt(
        "http_enabled",
        "--no-http",
        _P + "HTTP",
        _to_bool,
        "do not serve health and metrics over HTTP",
        const="off",
    ),
    _opt(
        "http_host",
        "--http-host",
        _P + "HTTP_HOST",
        str,
        f"address of the health and metrics server ({DEFAULT_HTTP_HOST})",
        metavar="HOST",
    ),
    _opt(
        "http_port",
        "--http-port",
        _P + "HTTP_PORT",
        _to_int,
        f"port of the health and metrics server; 0: any free port ({DEFAULT_HTTP_PORT})",
        metavar="PORT",
    ),
    _opt(
        "edge_threshold",
        "--edge-threshold",
        _P + "EDGE_THRESHOLD",
        _to_decimal,
        "minimum edge before paper-trading, as a fraction (0.05)",
        metavar="FRACTION",
    ),
    _opt(
        "strategy",
        "--strategy",
        _P + "STRATEGY",
        str.strip,
        "the strategy: package.module:Class or path/to/file.py:Class (complement arbitrage)",
        metavar="SPEC",
    ),
    _opt(
        "strategy_options",
        "--strategy-option",
        _P + "STRATEGY_OPTIONS",
        lambda text: tuple(f"{k}={v}" for k, v in parse_strategy_options(text).items()),
        "a keyword argument of the strategy, key=value; repeat for more "
        "(the variable: comma-separated)",
        metavar="KEY=VALUE",
        repeat=True,
    ),
    _opt(
        "account",
        "--account",
        _P + "ACCOUNT",
        str.strip,
        "the paper account traded, by name (default)",
        metavar="NAME",
    ),
    _opt(
        "starting_cash",
        "--starting-cash",
        _P + "STARTING_CASH",
        _to_decimal,
        "USDC a new paper account starts with (1000)",
        metavar="USDC",
    ),
    _opt(
        "fee_rate_bps",
        "--fee-rate-bps",
        _P + "FEE_RATE_BPS",
        _to_decimal,
        "the markets' fee rate, basis points: fee = shares x rate x p x (1 - p) (0)",
        metavar="BPS",
    ),
    _opt(
        "order_size",
        "--order-size",
        _P + "ORDER_SIZE",
        _to_optional_decimal,
        "risk limit: the most one order may cost, USDC (none)",
        metavar="USDC",
    ),
    _opt(
        "max_position",
        "--max-position",
        _P + "MAX_POSITION",
        _to_optional_decimal,
        "risk limit: the most paid for what is held in one market, USDC (none)",
        metavar="USDC",
    ),
    _opt(
        "max_exposure",
        "--max-exposure",
        _P + "MAX_EXPOSURE",
        _to_optional_decimal,
        "risk limit: the most paid for what is held in all markets, USDC (none)",
        metavar="USDC",
    ),
    _opt(
        "daily_loss_limit",
        "--daily-loss-limit",
        _P + "DAILY_LOSS_LIMIT",
        _to_optional_decimal,
        "risk limit: no buying once the equity fell this much since midnight UTC (none)",
        metavar="USDC",
    ),
    _opt(
        "grace_period",
        "--grace-period",
        _P + "GRACE_PERIOD",
        _to_float,
        "seconds a graceful shutdown may take (10)",
        metavar="S",
    ),
    _opt(
        "health_interval",
        "--health-interval",
        _P + "HEALTH_INTERVAL",
        _to_float,
        "seconds between the agents' health checks (60)",
        metavar="S",
    ),
    _opt(
        "ready_silence",
        "--ready-silence",
        _P + "READY_SILENCE",
        _to_optional_float,
        "seconds without market data (PONGs do not count) before /readyz says 503; off: never (30)",
        metavar="S",
    ),
    _opt(
        "loop_hold_threshold",
        "--loop-hold-threshold",
        _P + "LOOP_HOLD_THRESHOLD",
        _to_optional_float,
        "seconds one step of the event loop may take before it counts as a hold, logged "
        f"with where it held the loop; off: not watched ({DEFAULT_LOOP_HOLD_THRESHOLD:g})",
        metavar="S",
    ),
    _opt(
        "min_liquidity",
        "--min-liquidity",
        _P + "MIN_LIQUIDITY",
        _to_optional_decimal,
        "list only markets with at least this much liquidity, USDC",
        metavar="USDC",
    ),
    _opt(
        "min_volume",
        "--min-volume",
        _P + "MIN_VOLUME",
        _to_optional_decimal,
        "list only markets with at least this much volume traded, USDC",
        metavar="USDC",
    ),
    _opt(
        "tag",
        "--tag",
        _P + "TAG",
        _to_optional_text,
        "list only markets with this Gamma tag (an id or a slug)",
        metavar="TAG",
    ),
    _opt(
        "end_after",
        "--end-after",
        _P + "END_AFTER",
        _to_moment,
        "list only markets ending at or after this date (ISO, UTC unless given)",
        metavar="DATE",
    ),
    _opt(
        "end_before",
        "--end-before",
        _P + "END_BEFORE",
        _to_moment,
        "list only markets ending at or before this date (ISO, UTC unless given)",
        metavar="DATE",
    ),
    _opt(
        "universe_refresh",
        "--universe-refresh",
        _P + "UNIVERSE_REFRESH",
        _to_float,
        "with --markets all: seconds between Gamma refreshes of the universe (300)",
        metavar="S",
    ),
    _opt(
        "assets_per_connection",
        "--assets-per-connection",
        _P + "ASSETS_PER_CONNECTION",
        _to_int,
        f"assets per pooled feed connection, at most {MAX_ASSETS_PER_CONNECTION} "
        f"({DEFAULT_ASSETS_PER_CONNECTION})",
        metavar="N",
    ),
    _opt(
        "duration",
        "--duration",
        _P + "DURATION",
        _to_optional_float,
        "stop by itself after S seconds (default: run until SIGINT/SIGTERM)",
        metavar="S",
    ),
    _opt(
        "log_level",
        "--log-level",
        "LOG_LEVEL",
        _to_level,
        "DEBUG, INFO, WARNING, ERROR or CRITICAL (INFO)",
        metavar="LEVEL",
    ),
    _opt(
        "log_format",
        "--log-format",
        _P + "LOG_FORMAT",
        lambda t: t.strip().lower(),
        "text or json: one JSON object per line, for containers (text)",
        metavar="FORMAT",
    ),
    _opt(
        "live_view",
        "--live-view",
        _P + "LIVE_VIEW",
        lambda t: t.strip().lower(),
        "live table of tasks and counters: auto (when stdout is a terminal), on or off",
        metavar="MODE",
    ),
    _opt(
        "sim_port",
        "--sim-port",
        _P + "SIM_PORT",
        _to_int,
        "port of the embedded simulator; 0: any free port (0)",
        metavar="PORT",
    ),
    _opt(
        "sim_markets",
        "--sim-markets",
        _P + "SIM_MARKETS",
        _to_int,
        "markets in the embedded simulator (max(5, --market-count))",
        metavar="N",
    ),
    _opt(
        "sim_rate",
        "--sim-rate",
        _P + "SIM_RATE",
        _to_float,
        "embedded simulator ticks per second; 0: as fast as the agents read (5)",
        metavar="RATE",
    ),
    _opt(
        "sim_seed",
        "--sim-seed",
        _P + "SIM_SEED",
        _to_int,
        "embedded simulator random seed (0)",
        metavar="SEED",
    ),
    _opt(
        "sim_dislocation_rate",
        "--sim-dislocation-rate",
        _P + "SIM_DISLOCATION_RATE",
        _to_float,
        "probability per embedded simulator tick of a tradable YES/NO dislocation (0.02)",
        metavar="P",
    ),
    _opt(
        "sim_faults",
        "--sim-faults",
        _P + "SIM_FAULTS",
        parse_faults,
        "embedded simulator faults, e.g. drop-every=2,malformed-rate=0.05 (none)",
        metavar="SPEC",
    ),
)
"""Every setting's flag and environment variable, in ``--help`` order."""


def load_config(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> ServiceConfig:
    """Build the settings from command-line values over environment variables over defaults.

    Args:
        flags: Text given on the command line, by field name (None or absent: not given).
        environ: Environment variables, usually ``os.environ``.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: Naming every invalid flag or variable, its value and what it
            must be.
    """
    values: dict[str, object] = {}
    problems: list[str] = []
    for option in OPTIONS:
        raw = flags.get(option.name)
        source = option.flag
        if raw is None:
            raw = environ.get(option.env)
            source = option.env
        if raw is None:
            continue
        try:
            value = option.convert(raw)
        except ValueError as exc:
            problems.append(f"{source}: {exc}")
            continue
        problem = _check(option.name, value)
        if problem is not None:
            problems.append(f"{source}: {problem}")
            continue
        values[option.name] = value
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    return ServiceConfig(**values)  # type: ignore[arg-type]
