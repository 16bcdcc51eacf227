"""The service: market agents under one supervisor, with health, metrics, a live view and a
graceful shutdown.

::

    from polymarket_agents.service import ServiceConfig, run_service

    summary = await run_service(ServiceConfig(duration=60))   # embedded simulator, ./data/
    summary.exit_code, summary.events, summary.trades

* :class:`ServiceConfig` holds every setting, validated; :func:`load_config` reads it from
  command-line values and environment variables (:data:`OPTIONS` names them);
* :class:`Service` / :func:`run_service` start the embedded simulator (or use a real feed),
  pick markets from a Gamma-style listing, run the agents, serve ``/healthz``, ``/readyz``,
  ``/metrics`` and ``/status`` (:func:`create_app`, :class:`HttpServer`), draw a
  :class:`LiveView`, and shut down within the grace period on SIGINT/SIGTERM, returning a
  :class:`ServiceSummary`;
* :class:`ServiceCollector` turns snapshots into Prometheus metrics at scrape time;
* :class:`TextFormatter` and :class:`JsonFormatter` are the log formats of the command line;
  :class:`Redactor` (and :class:`RedactingFormatter` for logs) hides credentials in URLs and
  the database's absolute path in whatever the service shows.
"""

from ._app import (
    RuntimeFactory,
    Service,
    ServiceSummary,
    default_runtime,
    exit_now,
    flush_and_exit,
    run_service,
    select_markets,
    strategy_of,
)
from ._backtest import BACKTEST_OPTIONS, parse_time, run_backtest, summary_lines
from ._config import (
    DEFAULT_DB_PATH,
    DEFAULT_HTTP_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_LOOP_HOLD_THRESHOLD,
    OPTIONS,
    ConfigOption,
    LiveViewMode,
    LogFormat,
    ServiceConfig,
    load_config,
    parse_faults,
)
from ._http import PROBE_PATHS, HttpLimits, HttpServer, Snapshots, create_app, snapshot
from ._logging import JsonFormatter, TextFormatter
from ._metrics import NAMESPACE, ServiceCollector, service_registry
from ._probe import DEFAULT_HEALTH_URL, check_agents, health_url
from ._redact import RedactingFormatter, Redactor, shown_db_path
from ._report import (
    REPORT_TABLES,
    ReportTable,
    print_report,
    read_report,
    report_csv,
    report_json,
    report_renderable,
    reset_account,
)
from ._state import LOGGER_NAME, AgentsRuntimeLike, FailureCounts, Phase, ServiceState, plain
from ._view import LiveView

__all__ = [
    "BACKTEST_OPTIONS",
    "DEFAULT_DB_PATH",
    "DEFAULT_HEALTH_URL",
    "DEFAULT_HTTP_HOST",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_LOOP_HOLD_THRESHOLD",
    "LOGGER_NAME",
    "NAMESPACE",
    "OPTIONS",
    "PROBE_PATHS",
    "REPORT_TABLES",
    "AgentsRuntimeLike",
    "ConfigOption",
    "FailureCounts",
    "HttpLimits",
    "HttpServer",
    "JsonFormatter",
    "LiveView",
    "LiveViewMode",
    "LogFormat",
    "Phase",
    "RedactingFormatter",
    "Redactor",
    "ReportTable",
    "RuntimeFactory",
    "Service",
    "ServiceCollector",
    "ServiceConfig",
    "ServiceState",
    "ServiceSummary",
    "Snapshots",
    "TextFormatter",
    "check_agents",
    "create_app",
    "default_runtime",
    "exit_now",
    "flush_and_exit",
    "health_url",
    "load_config",
    "parse_faults",
    "parse_time",
    "plain",
    "print_report",
    "read_report",
    "report_csv",
    "report_json",
    "report_renderable",
    "reset_account",
    "run_backtest",
    "run_service",
    "select_markets",
    "service_registry",
    "shown_db_path",
    "snapshot",
    "strategy_of",
    "summary_lines",
]
