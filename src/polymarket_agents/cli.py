"""The command line: ``polymarket-agents`` and ``python -m polymarket_agents``.

::

    polymarket-agents [run] [options]   run the agents (the default; embedded simulator)
    polymarket-agents simulate          serve the market simulator alone
    polymarket-agents health            exit 0 if the running service is alive, else 1
    polymarket-agents status            print the running service's /status
    polymarket-agents report            trades, positions and P&L of a paper account
    polymarket-agents account show|reset  a paper account's balance; start it afresh
    polymarket-agents backtest          a strategy over the recorded market events

Every ``run`` option also reads an environment variable (``polymarket-agents run --help``
lists them); flags win. This is the only module that configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

# Only the core at the top: `health` runs as a container's health check and must start
# quickly, without the service stack (tests/service/test_public_api.py).
from polymarket_agents.core.async_utils import HEALTH_URL_ENV, ConfigurationError, check_agents

__all__ = ["main"]

_PROG = "polymarket-agents"
_COMMANDS = ("run", "simulate", "health", "status", "report", "account", "backtest")
_logger = logging.getLogger("polymarket_agents.service")


# -- parsers -------------------------------------------------------------------------------------


def _parser(command: str) -> argparse.ArgumentParser:
    """The parser; the ``run`` and ``simulate`` options are only built for their command
    (``health`` and ``status`` stay quick to start, as a container health check wants)."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Market agents on a Polymarket-format feed, with health, metrics and a "
        "graceful shutdown. Without a command: run.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the agents (default)",
        description="Run the agents. With no options: the embedded simulator on a free "
        "loopback port, a handful of its markets, SQLite under ./data/, health and metrics "
        "on http://127.0.0.1:8080. Each option's environment variable is in brackets.",
    )
    if command == "run":
        _run_options(run)

    sim = commands.add_parser(
        "simulate",
        help="serve the market simulator alone",
        description="A local Polymarket market channel (ws://HOST:PORT/ws/market) and Gamma "
        "listing (http://HOST:PORT/markets), as python -m polymarket_agents.feed.simulator.",
    )
    if command == "simulate":
        _simulator_options(sim)

    health = commands.add_parser(
        "health",
        help="exit 0 if the running service is alive, 1 otherwise",
        description="Ask the running service's /healthz. The URL is --url, else "
        f"${HEALTH_URL_ENV}, else built from $POLYMARKET_AGENTS_HTTP_HOST/PORT, else "
        f"{_base_url(None, {})}/healthz.",
    )
    health.add_argument("--url", help="liveness URL")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds (5)")
    health.add_argument("-q", "--quiet", action="store_true", help="print nothing")

    status = commands.add_parser(
        "status",
        help="print the running service's /status; exit 1 if it does not answer",
        description="Print the running service's GET /status as indented JSON.",
    )
    status.add_argument("--url", help="base URL of the service (as for health, without /healthz)")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds (5)")

    report = commands.add_parser(
        "report",
        help="trades, positions, P&L per market and per run, signals, of a paper account",
        description="Read a paper account's history from the database: a table per "
        "section on a terminal, or one table as CSV, or everything as JSON. The database "
        "must not be in use by a running service.",
    )
    _database_options(report)
    report.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output (table)"
    )
    report.add_argument(
        "--table",
        choices=("summary", "trades", "positions", "markets", "runs", "signals"),
        help="only this table (CSV: which one; trades by default)",
    )

    account = commands.add_parser(
        "account",
        help="show a paper account, or reset it (its history stays for reports)",
        description="show: the account's cash, equity and P&L over every run. reset: close "
        "the account and open a new one under the same name, from --starting-cash. The "
        "database must not be in use by a running service.",
    )
    account.add_argument("action", choices=("show", "reset"))
    _database_options(account)
    account.add_argument(
        "--starting-cash",
        metavar="USDC",
        help="cash of the account a reset opens (the old one's by default)",
    )

    backtest = commands.add_parser(
        "backtest",
        help="run a strategy over the market events a run recorded; print its report",
        description="Replay recorded market events, in the order the service took them, "
        "through the same decoder, books, strategy and paper broker as a live run: the same "
        "events, strategy and settings give the same trades. Nothing is written to the "
        "database. The strategy options and settings are run's.",
    )
    if command == "backtest":
        from polymarket_agents.service import BACKTEST_OPTIONS

        _run_options(backtest, BACKTEST_OPTIONS)
        backtest.add_argument(
            "--markets", metavar="SLUGS", help="comma-separated slugs or condition ids (all)"
        )
        backtest.add_argument(
            "--since", metavar="TIME", help="ISO 8601 (UTC) or epoch ms (the first event)"
        )
        backtest.add_argument(
            "--until", metavar="TIME", help="ISO 8601 (UTC) or epoch ms (the last event)"
        )
        backtest.add_argument(
            "--format", choices=("table", "csv", "json"), default="table", help="output (table)"
        )
        backtest.add_argument(
            "--table",
            choices=("summary", "trades", "positions", "markets", "runs", "signals"),
            help="only this table of the report (CSV: which one; trades by default)",
        )
    return parser


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("POLYMARKET_AGENTS_DB", "data/agents.sqlite"),
        help="SQLite file or postgresql:// URL [POLYMARKET_AGENTS_DB] (data/agents.sqlite)",
    )
    parser.add_argument(
        "--account",
        default=os.environ.get("POLYMARKET_AGENTS_ACCOUNT", "default"),
        help="the paper account's name [POLYMARKET_AGENTS_ACCOUNT] (default)",
    )


def _run_options(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """One option per setting (or per setting named), each naming its environment variable."""
    from polymarket_agents.service import OPTIONS

    for option in OPTIONS:
        if names is not None and option.name not in names:
            continue
        help_text = f"{option.help} [{option.env}]"
        if option.repeat:
            parser.add_argument(
                option.flag,
                dest=option.name,
                metavar=option.metavar,
                action="append",
                help=help_text,
            )
        elif option.const is not None:
            parser.add_argument(
                option.flag,
                dest=option.name,
                action="store_const",
                const=option.const,
                help=help_text,
            )
        else:
            parser.add_argument(
                option.flag, dest=option.name, metavar=option.metavar, help=help_text
            )


def _simulator_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m polymarket_agents.feed.simulator``, and a log level."""
    from polymarket_agents.feed.simulator import add_simulator_arguments

    add_simulator_arguments(parser)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))


# -- logging -------------------------------------------------------------------------------------


def _configure_logging(
    level: str,
    fmt: str,
    console: Any = None,
    *,
    quiet_simulator: bool = False,
    redact: Any = None,
) -> None:
    """Send every record to stderr (or through the live view's console) in ``fmt``; with
    ``redact``, every formatted record goes through it (credentials hidden)."""
    from polymarket_agents.service import JsonFormatter, RedactingFormatter, TextFormatter

    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler

        # Through the live view's console, so log lines scroll above the table.
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if redact:
        assert handler.formatter is not None
        handler.setFormatter(RedactingFormatter(handler.formatter, redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if quiet_simulator and logging.getLevelName(level) != logging.DEBUG:
        # The embedded simulator is a stand-in for the exchange: its per-connection INFO
        # lines would drown the agents' own.
        logging.getLogger("polymarket_agents.feed.simulator").setLevel(logging.WARNING)
    logging.captureWarnings(True)


# -- commands ------------------------------------------------------------------------------------


def _flag(value: str | list[str] | None) -> str | None:
    """A flag's text; a repeated flag's values joined with commas, as its variable has them."""
    return ",".join(value) if isinstance(value, list) else value


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from polymarket_agents.service import (
        OPTIONS,
        Redactor,
        exit_now,
        flush_and_exit,
        load_config,
        run_service,
    )

    flags = {option.name: _flag(getattr(args, option.name, None)) for option in OPTIONS}
    try:
        config = load_config(flags, environ)
    except ConfigurationError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    live = config.live_view == "on" or (
        config.live_view == "auto" and config.log_format == "text" and sys.stdout.isatty()
    )
    console = None
    if live:
        from rich.console import Console

        console = Console()
    _configure_logging(
        config.log_level,
        config.log_format,
        console,
        quiet_simulator=config.embedded_simulator,
        # Logs are the operator's: the database path may show there, credentials may not.
        redact=Redactor.for_config(config, paths=False),
    )
    # A fatal signal (SIGBUS from a mapped file, SIGSEGV in an extension) still leaves a
    # line and the Python stacks on stderr, not a silent death.
    faulthandler.enable()
    runner = asyncio.Runner()
    try:
        summary = runner.run(run_service(config, console=console, on_repeat=exit_now))
    except BaseException:
        runner.close()
        raise
    if config.log_format == "json":
        print(json.dumps({"summary": summary.as_dict()}, default=str), flush=True)
    else:
        for line in summary.lines():
            print(line, flush=True)
    if summary.exit_code != 0:
        # Something did not stop (a write stuck on a database lock, say): closing the loop
        # would wait for its task, and the interpreter for its thread, past the grace period.
        flush_and_exit(summary.exit_code)
    runner.close()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from polymarket_agents.feed.simulator import announce, run_simulator, simulator_options

    try:
        options = simulator_options(args)
        _configure_logging(args.log_level.upper(), "text")
    except ValueError as exc:
        print(f"{_PROG} simulate: error: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await run_simulator(ready=announce, **options)
        except asyncio.CancelledError:
            _logger.info("simulator stopped")

    try:
        asyncio.run(serve())
    except (ValueError, OSError) as exc:
        print(f"{_PROG} simulate: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0


def _base_url(url: str | None, environ: Mapping[str, str]) -> str:
    """The service's base URL: ``--url``, the health URL's origin, or host and port settings."""
    if url:
        return url.rstrip("/")
    health = environ.get(HEALTH_URL_ENV)
    if health:
        return health.rsplit("/healthz", 1)[0].rstrip("/")
    host = environ.get("POLYMARKET_AGENTS_HTTP_HOST", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: ask over loopback
        host = "127.0.0.1"
    port = environ.get("POLYMARKET_AGENTS_HTTP_PORT", "8080")
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _health(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    url = args.url or environ.get(HEALTH_URL_ENV) or f"{_base_url(None, environ)}/healthz"
    try:
        alive = asyncio.run(check_agents(url, timeout=args.timeout))
    except ValueError as exc:
        print(f"{_PROG} health: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{'healthy' if alive else 'unhealthy'}: {url}")
    return 0 if alive else 1


async def _fetch_status(url: str, timeout: float) -> tuple[int, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.json(content_type=None)


def _status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import aiohttp

    url = f"{_base_url(args.url, environ)}/status"
    try:
        code, body = asyncio.run(_fetch_status(url, args.timeout))
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        print(f"{_PROG} status: {url} did not answer: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    text = json.dumps(body, indent=2, sort_keys=False)
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print_json(text)
    else:
        print(text)
    return 0 if code == 200 else 1


def _report(args: argparse.Namespace) -> int:
    """``report``, and ``account show`` (the report's summary) and ``account reset``."""
    from decimal import Decimal, InvalidOperation

    from polymarket_agents.service import print_report, read_report, reset_account

    if args.command == "account" and args.action == "reset":
        cash = None
        if args.starting_cash is not None:
            try:
                cash = Decimal(args.starting_cash)
            except InvalidOperation:
                cash = Decimal("NaN")
            if not cash.is_finite() or cash < 0:
                print(
                    f"{_PROG} account: error: --starting-cash must be an amount >= 0, "
                    f"not {args.starting_cash!r}",
                    file=sys.stderr,
                )
                return 2
        try:
            print(asyncio.run(reset_account(args.db, args.account, cash)))
        except (LookupError, OSError, ConnectionError, ValueError) as exc:
            print(f"{_PROG} account: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        report = asyncio.run(read_report(args.db, args.account))
    except (LookupError, OSError, ConnectionError, ValueError) as exc:
        print(f"{_PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.command == "account":
        print_report(report, table="summary")
    else:
        print_report(report, fmt=args.format, table=args.table)
    return 0


def _backtest(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import json as json_module

    from polymarket_agents.service import (
        BACKTEST_OPTIONS,
        OPTIONS,
        load_config,
        parse_time,
        plain,
        print_report,
        run_backtest,
        summary_lines,
    )

    flags = {
        o.name: _flag(getattr(args, o.name, None)) for o in OPTIONS if o.name in BACKTEST_OPTIONS
    }
    try:
        config = load_config(flags, environ)
        since = parse_time(args.since) if args.since else 0
        until = parse_time(args.until) if args.until else 2**62
    except ValueError as exc:
        print(f"{_PROG} backtest: error: {exc}", file=sys.stderr)
        return 2
    markets = [m.strip() for m in (args.markets or "").split(",") if m.strip()]
    try:
        result = asyncio.run(run_backtest(config, markets=markets, since_ms=since, until_ms=until))
    except ConfigurationError as exc:
        print(f"{_PROG} backtest: error: {exc}", file=sys.stderr)
        return 2
    except (LookupError, OSError, ConnectionError, ValueError) as exc:
        print(f"{_PROG} backtest: {exc}", file=sys.stderr)
        return 1
    lines = summary_lines(result, config.strategy)
    if args.format == "json":
        body = json_module.loads(_report_json(result.report))
        print(json_module.dumps({"backtest": plain(_facts(result)), "report": body}, indent=2))
        return 0
    if args.format == "csv":
        print_report(result.report, fmt="csv", table=args.table)
        return 0
    for line in lines:
        print(line)
    print_report(result.report, table=args.table)
    return 0


def _facts(result: Any) -> dict[str, Any]:
    return {
        "events": result.events,
        "invalid_events": result.invalid_events,
        "markets": result.markets,
        "signals": result.signals,
        "submitted": result.submitted,
        "seconds": round(result.seconds, 3),
        "events_per_second": round(result.events_per_second),
        "first_ms": result.first_ms,
        "last_ms": result.last_ms,
    }


def _report_json(report: Any) -> str:
    from polymarket_agents.service import report_json

    return str(report_json(report))


# -- entry point ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments; ``sys.argv[1:]`` if None. Without a command, ``run`` is meant.

    Returns:
        The exit code: 0 success; 1 a failure at run time (start-up failed, shutdown not
        clean, service unhealthy or unreachable); 2 invalid arguments or settings; 128 + N
        after a second signal N. A ``run`` that ends with a non-zero code, and a second
        signal, end the process at once (``os._exit``) instead of returning: a task or
        thread that did not stop must not hold the process past its grace period.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in _COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "run")
    parser = _parser(args_list[0])
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else 2
    environ = os.environ
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "health":
        return _health(args, environ)
    if args.command == "status":
        return _status(args, environ)
    if args.command in ("report", "account"):
        return _report(args)
    if args.command == "backtest":
        return _backtest(args, environ)
    return _run(args, environ)
