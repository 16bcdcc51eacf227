"""The service: simulator, markets, agents, HTTP and live view wired as one supervision tree.

::

    summary = await run_service(ServiceConfig(duration=30))

The tree (drawn in ``/status``, the live view and the dashboard)::

    service  one_for_one         service.heartbeat, service.dashboard, service.view, ...
    └── agents  one_for_one      ingestion, feed (its connections), monitors, universe,
                                 health: see polymarket_agents.agents._runtime for why

Start-up, in order: the loop watchdog and heartbeat, the HTTP server (so ``/healthz``
answers while the rest starts), the live view, the embedded simulator (unless a feed URL is
given), the market listing, the agents runtime, whose tree becomes the ``agents`` child of
the service's supervisor. A signal during start-up cancels it and shuts down what started.

Shutdown (SIGINT, SIGTERM, ``duration`` over, or a failed start-up), bounded by the grace
period: the HTTP server closes first (it runs on a thread of its own, outside the tree: its
clients get nothing more, the drain gets the loop), the live view draws its last frame, the
runtime stops its tree in reverse order (monitors, the feed's sockets, then the writer's
drain into the database, which then closes), the remaining tasks stop, the simulator
closes. A second signal calls ``on_repeat`` (the command line exits at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
from rich.console import Console

from polymarket_agents.agents import (
    AgentsConfig,
    AgentsRuntime,
    RiskLimits,
    RuntimeStats,
    Shard,
    Strategy,
    UniverseConfig,
    load_strategy,
)
from polymarket_agents.core.async_utils import ConfigurationError, LoopWatchdog, TaskSupervisor
from polymarket_agents.feed import (
    DEFAULT_GAMMA_URL,
    InvalidMessage,
    MarketInfo,
    fetch_markets,
    list_universe,
    redact_url,
)
from polymarket_agents.feed.simulator import MarketSimulator
from polymarket_agents.storage import AdvisoryLock, PostgresStore, create_store

from ._config import ServiceConfig
from ._dashboard import Dashboard
from ._http import HttpServer, create_app
from ._metrics import service_registry
from ._state import LOGGER_NAME, AgentsRuntimeLike, FailureCounts, Phase, ServiceState, plain
from ._view import LiveView

__all__ = [
    "RuntimeFactory",
    "Service",
    "ServiceSummary",
    "exit_now",
    "flush_and_exit",
    "run_service",
    "select_markets",
]

_logger = logging.getLogger(LOGGER_NAME)

RuntimeFactory = Callable[..., AgentsRuntimeLike]
"""Builds the agents runtime: called with ``feed_url``, ``markets``, ``store_path``,
``config`` (the service settings) and ``supervisor``."""

_HEARTBEAT = "service.heartbeat"
_VIEW = "service.view"
_DASHBOARD = "service.dashboard"
_SHARD_LOCK = "service.shard_lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSummary:
    """What a run did, printed when the service stops.

    Attributes:
        reason: Why it stopped: ``"SIGTERM"``, ``"duration"``, ``"start-up failed"`` ...
        exit_code: 0 after a clean shutdown; 1 if start-up failed or shutdown was not clean
            (grace period exceeded, rows lost); 2 for a configuration problem found at
            start-up (a market that is not listed).
        uptime: Seconds from start to the end of shutdown.
        shutdown_seconds: Seconds the shutdown took.
        markets: Markets monitored.
        events: Market events received.
        invalid_frames: Feed frames skipped as invalid.
        reconnects: Feed reconnections.
        trades: Paper fills of the account, over every run (loaded ones included).
        pnl: Paper profit and loss of the account, over every run.
        restarts: Task restarts, summed over every task.
        errors: Task errors, summed over every task.
        rows_queued: Rows taken on to be stored (market data and trade results); always
            ``stored_rows + duplicate_rows + invalid_rows + lost_rows``.
        stored_rows: Rows written to the database (0 if its file vanished).
        duplicate_rows: Rows the database already had (replays after a reconnect).
        lost_rows: Rows not stored: given up, still queued at exit, or stored in a database
            file that vanished (0 after a clean shutdown).
        invalid_rows: Rows the database refused as invalid.
        failure: What went wrong, if anything.
        runtime: The runtime's final stats, as plain values.
    """

    reason: str
    exit_code: int
    uptime: float
    shutdown_seconds: float
    markets: int
    events: int
    invalid_frames: int
    reconnects: int
    trades: int
    pnl: Decimal
    account: str = "default"
    run_trades: int = 0
    run_pnl: Decimal = Decimal(0)
    cash: Decimal | None = None
    restarts: int
    errors: int
    rows_queued: int
    stored_rows: int
    duplicate_rows: int
    lost_rows: int
    invalid_rows: int = 0
    failure: str | None = None
    runtime: dict[str, Any] | None = None

    def lines(self) -> list[str]:
        """The summary as short ``key: value`` lines, for a terminal."""
        lines = [
            f"stopped ({self.reason}) after {self.uptime:.1f} s; "
            f"shutdown took {self.shutdown_seconds:.2f} s",
            f"markets: {self.markets}  events: {self.events}  "
            f"invalid frames skipped: {self.invalid_frames}  reconnects: {self.reconnects}",
            f"this run: fills {self.run_trades}  P&L {self.run_pnl:.2f}",
            f"account {self.account!r}, every run: fills {self.trades}  P&L {self.pnl:.2f}"
            + (f"  cash {self.cash:.2f}" if self.cash is not None else ""),
            f"rows queued: {self.rows_queued}  stored: {self.stored_rows}  "
            f"duplicates: {self.duplicate_rows}  invalid: {self.invalid_rows}  "
            f"lost: {self.lost_rows}",
            f"task restarts: {self.restarts}  task errors: {self.errors}",
        ]
        if self.failure:
            lines.append(f"failure: {self.failure}")
        lines.append(f"exit code: {self.exit_code}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-friendly values."""
        return {
            "reason": self.reason,
            "exit_code": self.exit_code,
            "uptime": round(self.uptime, 3),
            "shutdown_seconds": round(self.shutdown_seconds, 3),
            "markets": self.markets,
            "events": self.events,
            "invalid_frames": self.invalid_frames,
            "reconnects": self.reconnects,
            "trades": self.trades,
            "pnl": str(self.pnl),
            "account": self.account,
            "run_trades": self.run_trades,
            "run_pnl": str(self.run_pnl),
            "cash": None if self.cash is None else str(self.cash),
            "restarts": self.restarts,
            "errors": self.errors,
            "rows_queued": self.rows_queued,
            "stored_rows": self.stored_rows,
            "duplicate_rows": self.duplicate_rows,
            "lost_rows": self.lost_rows,
            "invalid_rows": self.invalid_rows,
            "failure": self.failure,
            "runtime": self.runtime,
        }


class _StartupError(Exception):
    """Start-up cannot go on; the message says why and what to do."""


def select_markets(
    listed: Sequence[MarketInfo], wanted: Sequence[str], count: int
) -> list[MarketInfo]:
    """Pick the markets to monitor from a listing.

    Args:
        listed: Markets as listed, in order.
        wanted: Slugs, condition ids, Gamma ids or token ids; empty takes the first ``count``.
        count: How many to take when ``wanted`` is empty.

    Returns:
        The markets, in the order asked for (or listed), without duplicates.

    Raises:
        ConfigurationError: If a wanted market is not listed, or nothing is listed.
    """
    if not wanted:
        if not listed:
            raise ConfigurationError("the market listing is empty: no market to monitor")
        return list(listed[:count])
    index: dict[str, MarketInfo] = {}
    for market in listed:
        for key in (market.slug, market.condition_id, market.id, market.yes_token, market.no_token):
            if key:
                index.setdefault(key, market)
    missing = [name for name in wanted if name not in index]
    if missing:
        raise ConfigurationError(f"market(s) not listed: {', '.join(missing)}")
    chosen: dict[str, MarketInfo] = {}
    for name in wanted:
        market = index[name]
        chosen.setdefault(market.condition_id, market)
    return list(chosen.values())


def flush_and_exit(code: int) -> NoReturn:
    """Flush the log handlers and standard streams, then end the process with ``code`` at
    once, without waiting for tasks or threads that did not stop.

    For the command line: a database write stuck on a lock, for instance, leaves a worker
    thread that would keep the interpreter from exiting after the grace period.
    """
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def exit_now(signum: int) -> NoReturn:
    """End the process at once after a repeated signal, with exit code 128 + the signal.

    For the command line's ``on_repeat``: the user asked twice, so the graceful shutdown in
    progress is abandoned (rows still queued are not stored).
    """
    _logger.critical(
        "second %s: exiting now, without finishing the shutdown", signal.Signals(signum).name
    )
    flush_and_exit(128 + signum)


class Service:
    """One run of the service.

    Args:
        config: The settings.
        runtime_factory: Builds the agents runtime; the real one if None.
        console: Where to draw the live view; no live view if None.
        on_repeat: Called with the signal number on a second SIGINT/SIGTERM (the command
            line passes :func:`exit_now`); otherwise a repeat is only logged.
        install_signal_handlers: Handle SIGINT and SIGTERM (only in the main thread).
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        runtime_factory: RuntimeFactory | None = None,
        console: Console | None = None,
        on_repeat: Callable[[int], None] | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        self.config = config
        failures = FailureCounts()
        self.supervisor = TaskSupervisor(
            stop_timeout=config.grace_period, observer=failures, name="service"
        )
        self.state = ServiceState(config, self.supervisor, failures)
        self._runtime_factory = runtime_factory
        self._console = console
        self._on_repeat = on_repeat
        self._signals = install_signal_handlers
        self._http: HttpServer | None = None
        self._simulator: MarketSimulator | None = None
        self._shard_lock: AdvisoryLock | None = None
        self._shard_lost: str | None = None
        self._shard: Shard | None = None
        self._reason = "stopped"
        self.dashboard: Dashboard | None = None
        """The live dashboard at ``/`` (None without HTTP)."""

    def __repr__(self) -> str:
        return f"<Service {self.state.phase} http={self.state.http_url}>"

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> ServiceSummary:
        """Start, run until a signal or the duration, shut down; never raises for failures
        of the agents, the network or the database: they end up in the summary.

        Returns:
            The summary, with the exit code the process should use.
        """
        state = self.state
        if self._signals:
            self.supervisor.add_signal_handlers(on_repeat=self._repeated)
        threshold = self.config.loop_hold_threshold
        if threshold is not None:
            # From the first step to the last: a hold during start-up or the drain counts.
            state.watchdog = LoopWatchdog(threshold)
            state.watchdog.start()
        exit_code = 0
        try:
            exit_code = await self._start_or_stop()
            if state.phase is Phase.RUNNING:
                await self._wait()
            if self._shard_lost is not None:
                exit_code = 1
        finally:
            started = asyncio.get_running_loop().time()
            clean = await self._shutdown()
            shutdown_seconds = asyncio.get_running_loop().time() - started
            if self._signals:
                self.supervisor.remove_signal_handlers()
            if state.watchdog is not None:
                state.watchdog.stop()
        if exit_code == 0 and not clean:
            exit_code = 1
        return self._summary(exit_code, shutdown_seconds)

    def _repeated(self, signum: int) -> None:
        self.state.repeated_signals += 1
        if self._on_repeat is not None:
            self._on_repeat(signum)

    async def _start_or_stop(self) -> int:
        """Start up, unless a signal comes first; returns the exit code of a failed start."""
        starting = asyncio.ensure_future(self._start())
        stop = asyncio.ensure_future(self.supervisor.wait_for_shutdown())
        try:
            await asyncio.wait((starting, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not starting.done():
                self._reason = "signal during start-up"
                starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop
        try:
            await starting
        except asyncio.CancelledError:
            if not starting.cancelled():
                raise
            # current_task().cancelling() tells our own cancellation from the one we sent.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return 0
        except ConfigurationError as exc:
            return self._failed(str(exc), 2)
        except _StartupError as exc:
            return self._failed(str(exc), 1)
        except Exception as exc:
            _logger.debug("start-up failed", exc_info=exc)
            return self._failed(f"{type(exc).__name__}: {exc}", 1)
        return 0

    def _failed(self, failure: str, code: int) -> int:
        failure = self.state.redact(failure)
        self.state.phase = Phase.FAILED
        self.state.failure = failure
        self._reason = "start-up failed"
        _logger.error("start-up failed: %s", failure)
        return code

    async def _start(self) -> None:
        config, state = self.config, self.state
        await self.supervisor.start_task(_HEARTBEAT, state.heartbeat)
        if config.http_enabled:
            self.dashboard = Dashboard(state)
            await self.supervisor.start_task(_DASHBOARD, self.dashboard.run)
            self._http = HttpServer(
                create_app(state, service_registry(state), dashboard=self.dashboard),
                config.http_host,
                config.http_port,
            )
            try:
                state.http_url = await self._http.start()
            except OSError as exc:
                self._http = None
                raise _StartupError(
                    f"cannot serve HTTP on {config.http_host}:{config.http_port}: "
                    f"{exc.strerror or exc} (choose another --http-port, or --no-http)"
                ) from exc
        if self._console is not None:
            await self.supervisor.start_task(_VIEW, LiveView(state, self._console).run)
        if config.feed_url is None:
            simulator = MarketSimulator(
                host="127.0.0.1",
                port=config.sim_port,
                seed=config.sim_seed,
                markets=config.universe_size,
                event_rate=config.sim_rate or None,
                dislocation_rate=config.sim_dislocation_rate,
                faults=config.sim_faults,
            )
            await simulator.start()
            self._simulator = simulator
            state.feed_url = simulator.ws_url
            state.gamma_url = config.gamma_url or simulator.http_url
            _logger.info(
                "embedded simulator on %s (%d markets)",
                simulator.ws_url,
                config.universe_size,
                extra={"feed_url": simulator.ws_url},
            )
        else:
            state.feed_url = config.feed_url
            state.gamma_url = config.gamma_url or DEFAULT_GAMMA_URL
        market_filter = config.market_filter()
        try:
            if config.markets and not config.follow_universe:
                listed = await fetch_markets(state.gamma_url)
            else:
                # The filters narrow the listing both for "all" and for the first N.
                listed = await list_universe(state.gamma_url, market_filter)
        except (aiohttp.ClientError, TimeoutError, InvalidMessage) as exc:
            raise _StartupError(
                f"cannot list markets at {redact_url(state.gamma_url)}/markets: "
                f"{type(exc).__name__}: {exc} (check --gamma-url)"
            ) from exc
        if config.follow_universe:
            markets = list(listed)
        else:
            markets = select_markets(listed, config.markets, config.market_count)
        shard = config.shard
        if shard is None and config.shard_count is not None:
            shard = Shard.from_environment(os.environ, count=config.shard_count)
        self._shard = shard
        if shard is not None:
            # Every replica lists the same markets and keeps its shard's.
            markets = shard.select(markets)
            if not markets and not config.follow_universe:
                raise ConfigurationError(
                    f"shard {shard} has none of the {len(listed)} listed markets; "
                    "list more markets or use fewer shards"
                )
            await self._hold_shard(shard)
        state.markets = [market.slug or market.condition_id for market in markets]
        db_path = config.db_path
        if isinstance(db_path, Path):
            await asyncio.to_thread(db_path.parent.mkdir, parents=True, exist_ok=True)
        runtime = self._make_runtime(markets, db_path)
        state.runtime = runtime
        await runtime.start()
        state.phase = Phase.RUNNING
        _logger.info(
            "running: %d market(s), database %s",
            len(markets),
            state.redact(str(db_path)),
            extra={"markets": state.markets},
        )

    async def _hold_shard(self, shard: Shard) -> None:
        """Take the shard's advisory lock, standing by while another replica holds it."""
        config, state = self.config, self.state
        assert isinstance(config.db_path, str)  # the settings allow shards on PostgreSQL only
        # A store of its own for the lock's sessions (never opened itself).
        lock = AdvisoryLock(
            PostgresStore(config.db_path, password_file=config.db_password_file),
            shard.lock_key,
            name=f"shard {shard}",
        )
        state.shard = str(shard)
        state.shard_role = "standby"
        loop = asyncio.get_running_loop()
        began = loop.time()
        if not await lock.try_acquire():
            _logger.info("shard %s is held by another replica: standing by", shard)
            await lock.acquire()
            _logger.warning(
                "shard %s taken over after %.3f s standing by",
                shard,
                loop.time() - began,
                extra={"shard": str(shard), "standby_seconds": loop.time() - began},
            )
        self._shard_lock = lock
        state.shard_role = "holder"
        await self.supervisor.start_task(
            _SHARD_LOCK, lambda: self._watch_shard(lock), restart_on_failure=False
        )

    async def _watch_shard(self, lock: AdvisoryLock) -> None:
        """Stop the service the moment the shard's lock is lost: a standby may hold it now."""
        reason = await lock.wait_lost()
        self._shard_lost = reason
        self._reason = "shard lock lost"
        self.state.failure = f"{lock!r}: {reason}"
        _logger.error("stopping: the lock of shard %s is lost (%s)", self.state.shard, reason)
        self.supervisor.signal_shutdown()

    def _make_runtime(self, markets: list[MarketInfo], db_path: Path | str) -> AgentsRuntimeLike:
        state, config = self.state, self.config
        assert state.feed_url is not None
        factory = self._runtime_factory or default_runtime
        # Only "all" follows the universe; a custom factory is told only then.
        extra: dict[str, Any] = {}
        if config.follow_universe:
            assert state.gamma_url is not None
            shard = self._shard
            extra["universe"] = UniverseConfig(
                gamma_url=state.gamma_url,
                market_filter=config.market_filter(),
                refresh_interval=config.universe_refresh,
                # A shard follows its own part of the universe.
                select=None if shard is None else lambda market: shard.owns(market.condition_id),
            )
        return factory(
            feed_url=state.feed_url,
            markets=markets,
            store_path=db_path,
            config=config,
            supervisor=self.supervisor,
            **extra,
        )

    async def _wait(self) -> None:
        try:
            async with asyncio.timeout(self.config.duration):
                await self.supervisor.wait_for_shutdown()
        except TimeoutError:
            self._reason = "duration"
            _logger.info("duration of %.1f s reached, shutting down", self.config.duration)
        else:
            self._reason = "signal"

    async def _shutdown(self) -> bool:
        """Stop everything within the grace period; True if it all stopped cleanly."""
        state = self.state
        if state.phase is not Phase.FAILED:
            state.phase = Phase.STOPPING
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.grace_period
        clean = True

        def left(reserve: float = 0.0) -> float:
            return max(deadline - loop.time() - reserve, 0.01)

        async def step(what: str, work: Callable[[], Any], reserve: float = 0.0) -> None:
            nonlocal clean
            try:
                async with asyncio.timeout(left(reserve)):
                    await work()
            except TimeoutError:
                clean = False
                _logger.error("shutdown: %s did not finish within the grace period", what)
            except Exception as exc:
                clean = False
                _logger.error("shutdown: %s failed: %s", what, exc, exc_info=exc)

        if self.dashboard is not None:
            self.dashboard.close()  # open pages' streams end now, not at the HTTP timeout
        if self._http is not None:
            # First: from now on no client takes a turn of the loop from the drain.
            await step("the HTTP server", self._http.stop)
        if _VIEW in self.supervisor:
            await step("the live view", lambda: self.supervisor.stop_task(_VIEW, timeout=left()))
        runtime = state.runtime
        if runtime is not None:
            # Keep a little of the grace period for the HTTP server and the simulator.
            reserve = min(0.5, self.config.grace_period * 0.1)
            await step(
                "the agents runtime",
                lambda: runtime.stop(timeout=left(reserve)),
                reserve,
            )
        if self._shard_lock is not None:
            # Only once everything of ours is stored: a standby takes over from here.
            lock = self._shard_lock
            if _SHARD_LOCK in self.supervisor:
                await step("the shard lock's watch", lambda: self.supervisor.stop_task(_SHARD_LOCK))
            await step("the shard lock", lock.release)
        stuck = await self.supervisor.stop_all(timeout=left())
        if stuck:
            clean = False
        if self._simulator is not None:
            await step("the simulator", self._simulator.aclose)
        if state.phase is Phase.STOPPING:
            state.phase = Phase.STOPPED
        return clean

    def _summary(self, exit_code: int, shutdown_seconds: float) -> ServiceSummary:
        state = self.state
        metrics = self.supervisor.get_metrics()
        stats = state.runtime.stats() if state.runtime is not None else None
        if stats is not None and stats.not_stored_rows:
            # Accepted but not stored: the one outcome a graceful shutdown must not have.
            exit_code = exit_code or 1
            state.failure = state.failure or _not_stored(stats)
        return ServiceSummary(
            reason=self._reason,
            exit_code=exit_code,
            uptime=state.uptime,
            shutdown_seconds=shutdown_seconds,
            markets=len(state.markets),
            events=stats.events if stats else 0,
            invalid_frames=stats.invalid_frames if stats else 0,
            reconnects=stats.reconnects if stats else 0,
            trades=stats.trades if stats else 0,
            pnl=stats.pnl if stats else Decimal(0),
            account=self.config.account,
            run_trades=stats.run_trades if stats else 0,
            run_pnl=stats.run_pnl if stats else Decimal(0),
            cash=stats.cash if stats else None,
            # Retired markets' monitors are no longer in the tree; their counts are kept.
            restarts=sum(m["restarts"] for m in metrics.values())
            + (stats.retired_task_restarts if stats else 0),
            errors=sum(m["errors"] for m in metrics.values())
            + (stats.retired_task_errors if stats else 0),
            rows_queued=stats.rows_queued if stats else 0,
            stored_rows=stats.stored_rows if stats else 0,
            duplicate_rows=stats.duplicate_rows if stats else 0,
            lost_rows=stats.not_stored_rows if stats else 0,
            invalid_rows=stats.invalid_rows if stats else 0,
            failure=state.failure,
            runtime=plain(stats) if stats else None,
        )


def _not_stored(stats: RuntimeStats) -> str:
    """Why rows are missing from the database, in words."""
    if stats.database_lost is not None:
        return f"not stored: {stats.not_stored_rows} row(s); the database {stats.database_lost}"
    return (
        f"not stored: {stats.not_stored_rows} row(s): {stats.pending_rows} still queued or "
        f"in hand when the grace period ended, {stats.lost_rows} given up"
    )


def default_runtime(
    *,
    feed_url: str,
    markets: Sequence[MarketInfo],
    store_path: Path | str,
    config: ServiceConfig,
    supervisor: TaskSupervisor,
    universe: UniverseConfig | None = None,
) -> AgentsRuntimeLike:
    """Build the agents runtime of :mod:`polymarket_agents.agents` from the service settings.

    Args:
        feed_url: The market channel.
        markets: The markets to monitor.
        store_path: The SQLite file, or a PostgreSQL URL.
        config: The service settings (edge threshold, health interval, password file).
        supervisor: The supervisor the agents' tasks run under.
        universe: How to follow the universe (with ``--markets all``), or None.

    Returns:
        The runtime, not started.

    Raises:
        ConfigurationError: If the strategy cannot be loaded with its options.
    """
    agents_config = AgentsConfig(
        edge_threshold=config.edge_threshold,
        account=config.account,
        starting_cash=config.starting_cash,
        fee_rate_bps=config.fee_rate_bps,
        limits=risk_limits(config),
        health_interval=config.health_interval,
        assets_per_connection=config.assets_per_connection,
        ready_silence=config.ready_silence,
        # The drain may use the whole grace period, never more.
        drain_timeout=config.grace_period,
    )
    return AgentsRuntime(
        feed_url=feed_url,
        markets=markets,
        store=create_store(
            store_path,
            busy_timeout=agents_config.busy_timeout,
            password_file=config.db_password_file,
        ),
        config=agents_config,
        strategy=strategy_of(config, agents_config),
        supervisor=supervisor,
        universe=universe,
    )


def risk_limits(config: ServiceConfig) -> RiskLimits:
    """The paper account's risk limits the settings give."""
    return RiskLimits(
        order_size=config.order_size,
        max_position=config.max_position,
        max_exposure=config.max_exposure,
        daily_loss=config.daily_loss_limit,
    )


def strategy_of(config: ServiceConfig, agents_config: AgentsConfig) -> Strategy:
    """The strategy ``config`` names, built with its options over the agents' settings.

    Args:
        config: The service settings (``strategy``, ``strategy_options``).
        agents_config: Where ``min_edge``, ``fee_rate_bps`` and ``max_notional`` come
            from, for a strategy that takes them and is not given them as options.

    Raises:
        ConfigurationError: If the strategy cannot be loaded with its options.
    """
    return load_strategy(
        config.strategy,
        config.strategy_options,
        defaults={
            "min_edge": agents_config.edge_threshold,
            "fee_rate_bps": agents_config.fee_rate_bps,
            "max_notional": agents_config.max_notional,
        },
    )


async def run_service(config: ServiceConfig, **options: Any) -> ServiceSummary:
    """Run the service until a signal or ``config.duration``; see :class:`Service`.

    Args:
        config: The settings.
        **options: As for :class:`Service`.

    Returns:
        The summary, with the exit code the process should use.
    """
    return await Service(config, **options).run()
