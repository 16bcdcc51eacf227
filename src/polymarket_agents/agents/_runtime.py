"""``AgentsRuntime`` and ``run_market_agents``: the seed's supervisor pattern, wired up.

The runtime's tasks form a supervision tree (:attr:`AgentsRuntime.tree`), mounted as
``agents`` in the supervisor it runs under::

    agents  one_for_one
    ├── ingestion        the writer: rows from the queue into the database
    ├── feed             the pooled feed's supervisor: one task per connection (≤ 200 assets),
    │   ├── market-feed-1    each attempt one socket, restarted with the feed's backoff
    │   └── …
    ├── monitors         one task per market, attached to the feed: events -> rows, strategy
    │   ├── monitor_0x…
    │   └── …
    ├── universe         follows the universe (with ``--markets all``)
    └── health           logs, alerts and restarts tasks stopped with an error

The order is the order of dependence: each child needs those above it to be running, so
they start first and stop last (a tree starts its children in order and stops them in
reverse). Shutdown therefore stops the health loop and the monitors first, then closes the
feed's sockets, and only then lets the writer drain the queue into the database.

Every strategy is one_for_one, because what siblings share outlives any task's restart:
the queue (and the batch in the writer's hands) outlives the writer, so a writer that dies
restarts alone and the monitors keep queueing (they wait when it is full); the feed's books
and each market's stream outlive a connection's socket, so a dropped socket is, for its
monitors, a resync (books invalidated, then a fresh snapshot), never a reason to restart
them. The monitors that must restart with a connection are those of a connection that
fails for good (a fatal handshake error, or its restart intensity spent): their streams
end with :class:`~polymarket_agents.feed.FeedStopped`, each monitor fails with it and is
restarted, attaching to a live connection. Monitors are not children of their connection
because markets move between connections (rebalancing) without their monitors noticing.

The health loop (every ``health_interval`` seconds) logs tasks with too many errors or
restarts, alerts once about each task that stopped with an error, and restarts such a task
from its factory after ``auto_restart_after`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from polymarket_agents.core.async_utils import (
    ConfigurationError,
    Readiness,
    Restart,
    RestartPolicy,
    Supervisor,
    TaskAlreadyRunningError,
    TaskMetrics,
    TaskSupervisor,
)
from polymarket_agents.feed import (
    DEFAULT_ASSETS_PER_CONNECTION,
    DEFAULT_GAMMA_URL,
    DEFAULT_MARKET_URL,
    InvalidKind,
    MarketFeed,
    MarketInfo,
    OrderBook,
    fetch_markets,
)
from polymarket_agents.storage import (
    DEFAULT_PATH,
    AccountRecord,
    FillRow,
    MarketResolutionRow,
    PostgresStore,
    SQLiteStore,
)

from ._analysis import DEFAULT_EDGE_THRESHOLD, ComplementArbitrage, Strategy
from ._handoff import DEFAULT_HANDOFF_TIMEOUT
from ._ingestion import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FLUSH_INTERVAL,
    IngestionQueue,
    IngestionStats,
    IngestionWorker,
    ingestion_queue,
)
from ._journal import TradeJournal
from ._monitor import MarketMonitor, MonitorStats
from ._paper import PaperBroker
from ._risk import RiskLimits
from ._sequence import EventSequence
from ._universe import UNIVERSE_TASK, UniverseConfig, UniverseFollower

__all__ = [
    "AGENTS_SUPERVISOR",
    "FEED_SUPERVISOR",
    "HEALTH_TASK",
    "INGESTION_TASK",
    "MONITOR_SUPERVISOR",
    "AgentsConfig",
    "AgentsRuntime",
    "RuntimeStats",
    "monitor_task_name",
    "resolve_markets",
    "run_market_agents",
]

_logger = logging.getLogger("polymarket_agents.agents")

INGESTION_TASK = "ingestion"
"""The supervisor's name of the ingestion worker's task."""
HEALTH_TASK = "health"
"""The supervisor's name of the health loop's task."""
AGENTS_SUPERVISOR = "agents"
"""The name of the runtime's tree in the supervisor it runs under."""
FEED_SUPERVISOR = "feed"
"""The name, in the runtime's tree, of the pooled feed's supervisor (its connections)."""
MONITOR_SUPERVISOR = "monitors"
"""The name, in the runtime's tree, of the monitors' supervisor."""


def monitor_task_name(condition_id: str) -> str:
    """The supervisor's name of a market's monitor: ``monitor_<condition id>``."""
    return f"monitor_{condition_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentsConfig:
    """Everything the agents can be tuned by; the defaults are the seed's.

    Attributes:
        edge_threshold: Trade when the edge is above this (the seed's 5 %).
        health_interval: Seconds between health checks.
        error_threshold: Log a task (ERROR) with more errors than this.
        restart_threshold: Log a task (WARNING) restarted more often than this.
        auto_restart_after: Restart a task stopped with an error after this many seconds.
        queue_size: Items the ingestion queue holds before producers wait.
        batch_size: Rows per database transaction at most.
        flush_interval: Seconds a partial batch waits for more rows.
        drain_timeout: Seconds the ingestion drain at shutdown may take; None: no limit.
        write_policy: Retry backoff of failed database writes; the ingestion default if
            None.
        busy_timeout: Seconds a write waits for another writer's lock.
        starting_cash: USDC the paper account starts with.
        fee_rate_bps: Taker fee in basis points, for the edge and for paper fills.
        max_notional: Most USDC one signal may spend; None: no cap.
        task_policy: Restart policy of the monitors and the worker under the supervisor
            (the core's default, 5 s doubling to 300 s, if None).
        feed_policy: Reconnect backoff of the feeds (1 s doubling to 60 s if None).
        ping_interval: Seconds between the feed's PINGs.
        pong_timeout: Seconds without PONG before a connection is dead.
        silence_timeout: Seconds without market data before a connection is taken to be
            frozen; None: never.
        resync_timeout: Seconds a stale book may wait for its snapshot.
        open_timeout: Seconds allowed for a websocket handshake.
        close_timeout: Seconds allowed for a websocket closing handshake.
        handoff_timeout: Seconds a stopping monitor still waits to queue rows in hand, and
            to store the result of a paper trade in hand.
        ready_silence: Seconds without market data on every open feed connection before
            readiness says the feed is silent (PONGs do not count); None: never.
        ready_write_stall: Seconds a batch may wait to be stored (attempts failing, or one
            waiting on a lock) before readiness says writes are failing.
        shared_feed: One pooled :class:`~polymarket_agents.feed.MarketFeed` for every
            monitor (True), or a socket per monitor as the seed sketches it (False).
        assets_per_connection: Assets per pooled connection (at most 500).
        custom_features: Ask the feed for ``best_bid_ask``, ``new_market`` and
            ``market_resolved``.
        account: The paper account traded: its name in the database (``--account``).
        monitor_heartbeat: Seconds a monitor may take no market event before its
            supervisor restarts it as stalled (the core's ``beat()``, once per event);
            None: no such check. Only for markets that trade at least that often.

    Raises:
        ConfigurationError: On a negative or zero interval, size or threshold.
    """

    edge_threshold: Decimal = DEFAULT_EDGE_THRESHOLD
    health_interval: float = 60.0
    error_threshold: int = 10
    restart_threshold: int = 5
    auto_restart_after: float = 300.0
    queue_size: int = 10_000
    batch_size: int = DEFAULT_BATCH_SIZE
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT
    write_policy: RestartPolicy | None = None
    busy_timeout: float = 5.0
    starting_cash: Decimal = Decimal(1000)
    fee_rate_bps: Decimal = Decimal(0)
    max_notional: Decimal | None = Decimal(100)
    task_policy: RestartPolicy | None = None
    feed_policy: RestartPolicy | None = None
    ping_interval: float = 10.0
    pong_timeout: float = 30.0
    silence_timeout: float | None = 60.0
    resync_timeout: float = 10.0
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    handoff_timeout: float = DEFAULT_HANDOFF_TIMEOUT
    ready_silence: float | None = 30.0
    ready_write_stall: float = 2.0
    shared_feed: bool = True
    assets_per_connection: int = DEFAULT_ASSETS_PER_CONNECTION
    custom_features: bool = False
    monitor_heartbeat: float | None = None
    account: str = "default"
    limits: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if not self.account.strip():
            raise ConfigurationError("account must be a non-empty name")
        positive: tuple[str, ...] = ("health_interval", "queue_size", "batch_size", "ping_interval")
        positive += ("pong_timeout", "resync_timeout", "open_timeout", "close_timeout")
        positive += ("ready_write_stall",)
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, not {getattr(self, name)!r}")
        not_negative: tuple[str, ...] = ("edge_threshold", "error_threshold", "restart_threshold")
        not_negative += ("auto_restart_after", "flush_interval", "busy_timeout")
        not_negative += ("starting_cash", "fee_rate_bps", "handoff_timeout")
        for name in not_negative:
            if not getattr(self, name) >= 0:
                raise ConfigurationError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        maybe: tuple[str, ...] = ("silence_timeout", "drain_timeout", "max_notional")
        maybe += ("ready_silence", "monitor_heartbeat")
        for name in maybe:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be > 0 or None, not {value!r}")

    def feed_options(self) -> dict[str, Any]:
        """The keyword arguments of a :class:`~polymarket_agents.feed.MarketFeed`."""
        return {
            "policy": self.feed_policy,
            "ping_interval": self.ping_interval,
            "pong_timeout": self.pong_timeout,
            "silence_timeout": self.silence_timeout,
            "resync_timeout": self.resync_timeout,
            "open_timeout": self.open_timeout,
            "close_timeout": self.close_timeout,
            "custom_feature_enabled": self.custom_features,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStats:
    """A snapshot of the whole runtime, for logs, metrics and a status page.

    Rows are counted one by one, never as queue items, and add up exactly at every
    snapshot: ``rows_queued = stored_rows + duplicate_rows + invalid_rows + pending_rows
    + lost_rows``. If the database file vanished, what was stored in it this run is gone:
    it moves from ``stored_rows`` and ``duplicate_rows`` to ``lost_rows``.

    Attributes:
        markets: Markets monitored.
        monitors_running: Monitors whose task is running now.
        monitors_ready: Monitors connected with both books synced.
        events: Events the monitors took from their feeds.
        invalid_frames: Frames the feeds counted as invalid and skipped.
        reconnects: Reconnection attempts of the feeds.
        resyncs: Snapshots requested again for stale books.
        monitor_restarts: Restarts of monitor tasks.
        signals: Analyses with an edge above the threshold.
        orders: Paper orders posted (or refused), loaded ones included.
        trades: Paper fills, loaded ones included.
        duplicate_signals: Signals refused by the broker as already handled.
        cash: Paper cash, USDC.
        pnl: Total paper profit: equity minus starting cash.
        realized_pnl: Profit taken by selling.
        unrealized_pnl: Mark-to-market profit of the positions.
        queue_depth: Items waiting in the ingestion queue.
        queue_size: Its capacity.
        rows_queued: Rows taken on to be stored: market data the monitors made (queued,
            or given up at a stop before it could be), and the broker's trade results.
        stored_rows: Rows written to the database (and still in it).
        duplicate_rows: Rows the database already had.
        invalid_rows: Rows the database refused as invalid.
        pending_rows: Rows not stored yet: in the queue, in the worker's hands, or being
            recorded by the broker.
        lost_rows: Rows that will not be stored: given up at a stop (a full queue, a drain
            or a trade result that timed out), or stored in a database file that vanished.
        database_lost: Why the database is gone, if it vanished; else None.
        ingest_latency: Seconds the last batch took to write.
        ingestion_retries: Failed writes, each retried.
        stored_by_table: ``stored_rows`` per table.
        write_ahead_rows: Paper orders in the database in their write-ahead (``pending``)
            state alone, their result pending or lost: ``paper_orders`` rows on top of
            ``stored_by_table`` (a later start marks them interrupted).
        run_trades: Paper fills of this run (``trades`` counts the account's every run).
        run_pnl: Profit of this run: the account's P&L now less at this run's start.
        orders_by_result: Orders posted by this process, by what became of them
            (``filled``, ``posted``, ``killed``, ``refused_<reason>``).
        invalid_frames_by_reason: ``invalid_frames`` per kind of problem
            (:class:`~polymarket_agents.feed.InvalidKind` values).
        markets_added: Markets added while running (following the universe).
        markets_retired: Markets retired while running (resolved, or no longer listed).
        retired_task_restarts: Restarts of the tasks of retired markets' monitors (the
            supervisor forgets such a task once it stopped; its counts stay here).
        retired_task_errors: Errors of those tasks.
    """

    markets: int
    monitors_running: int
    monitors_ready: int
    events: int
    invalid_frames: int
    reconnects: int
    resyncs: int
    monitor_restarts: int
    signals: int
    orders: int
    trades: int
    duplicate_signals: int
    cash: Decimal
    pnl: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    queue_depth: int
    queue_size: int
    rows_queued: int
    stored_rows: int
    duplicate_rows: int
    lost_rows: int
    ingest_latency: float
    ingestion_retries: int
    stored_by_table: dict[str, int] = field(default_factory=dict)
    run_trades: int = 0
    run_pnl: Decimal = Decimal(0)
    orders_by_result: dict[str, int] = field(default_factory=dict)
    invalid_frames_by_reason: dict[str, int] = field(default_factory=dict)
    invalid_rows: int = 0
    pending_rows: int = 0
    write_ahead_rows: int = 0
    database_lost: str | None = None
    markets_added: int = 0
    markets_retired: int = 0
    retired_task_restarts: int = 0
    retired_task_errors: int = 0

    @property
    def not_stored_rows(self) -> int:
        """Rows taken on and not in the database: pending or lost."""
        return self.pending_rows + self.lost_rows


@dataclass(frozen=True, slots=True)
class _RowCounts:
    """Where every row taken on went, from the counters of its producers and writers."""

    queued: int
    stored: int
    duplicates: int
    invalid: int
    pending: int
    lost: int
    by_table: dict[str, int]
    write_ahead: int

    @classmethod
    def of(
        cls,
        monitors: Sequence[MonitorStats],
        worker: IngestionStats,
        journal: TradeJournal,
        database_lost: str | None,
    ) -> _RowCounts:
        # A monitor counts the rows it queued, and apart those it had to give up.
        queued_data = sum(s.rows for s in monitors)
        given_up = sum(s.lost_rows for s in monitors)
        # The worker took rows off the queue and stored, refused or lost them; the rest
        # are still queued or in its hands.
        done = worker.written + worker.duplicates + worker.invalid + worker.lost_rows
        stored = worker.written + journal.written
        duplicates = worker.duplicates + journal.duplicates
        lost = given_up + worker.lost_rows + journal.lost_rows
        by_table = dict(Counter(worker.written_by_table) + journal.written_by_table)
        write_ahead = journal.awaiting_results
        if database_lost is not None:
            lost += stored + duplicates
            stored = duplicates = write_ahead = 0
            by_table = {}
        return cls(
            queued=queued_data + given_up + journal.rows,
            stored=stored,
            duplicates=duplicates,
            invalid=worker.invalid + journal.invalid,
            pending=queued_data - done + journal.pending_rows,
            lost=lost,
            by_table=by_table,
            write_ahead=write_ahead,
        )


def _sum_stats(total: MonitorStats | None, stats: MonitorStats) -> MonitorStats:
    """``total`` plus a stopped monitor's counts: numbers added, breakdowns merged; the
    state of none (not running, connected or synced)."""
    if total is None:
        return replace(stats, market="", running=False, connected=False, synced=False)
    summed: dict[str, Any] = {}
    for name in MonitorStats.__dataclass_fields__:
        mine, theirs = getattr(total, name), getattr(stats, name)
        if type(mine) is int:  # not the flags (bool)
            summed[name] = mine + theirs
        elif isinstance(mine, Mapping):
            summed[name] = dict(Counter(mine) + Counter(theirs))
        else:
            summed[name] = mine
    return MonitorStats(**summed)


@dataclass(slots=True)
class _Retired:
    """What the monitors of retired markets counted, kept once they are forgotten (their
    tasks deleted from the supervisor, the monitors dropped), so that no total goes down
    and a universe that churns for days does not grow."""

    markets: int = 0
    stats: MonitorStats | None = None
    restarts: int = 0
    errors: int = 0


def _status(metrics: Mapping[str, TaskMetrics], name: str) -> str | None:
    data = metrics.get(name)
    return None if data is None else data["status"]


def _log_alert(message: str) -> None:
    _logger.error("ALERT: %s", message)


class AgentsRuntime:
    """Market agents in a supervision tree: writer, feed, monitors, paper broker, health loop.

    ::

        runtime = AgentsRuntime(feed_url=sim.ws_url, markets=sim.markets(),
                                store_path="data/agents.sqlite")
        await runtime.start()
        ...
        runtime.stats(), runtime.readiness()
        runtime.readiness_checks.set_reason("backup", "a backup holds the database")
        await runtime.stop()

    Readiness (:meth:`readiness`) is gathered by :attr:`readiness_checks`, where the
    runtime's own checks (monitors, ingestion, feed silence) sit and where any other part
    adds its checks or holds its reasons.

    The tasks form the tree :attr:`tree` (see :mod:`polymarket_agents.agents._runtime` for
    its shape and why), mounted as ``agents`` in ``supervisor``; the monitors are tasks of
    :attr:`monitor_tasks`, by name (``monitor_<condition id>``).

    Args:
        feed_url: The market channel URL.
        markets: The markets to monitor, one monitor each.
        store_path: The SQLite file market data and paper trades go to
            (:data:`~polymarket_agents.storage.DEFAULT_PATH` if neither it nor ``store``
            is given).
        store: A store to use instead, not yet opened (one that shares its file with
            other connections, ``exclusive=False``, say); the runtime opens and closes it.
        config: The settings.
        strategy: The analysis every monitor runs (one shared instance);
            :class:`ComplementArbitrage` configured from ``config`` if None.
        alert: Called with a message when a task stops with an error; logs at ERROR if
            None. It must not block; its own errors are logged.
        supervisor: The supervisor to run the runtime's tree under (as ``agents``); a
            new one if None. Only this runtime's tasks are stopped by :meth:`stop`.
        now: Wall clock compared with the supervisor's ``last_error_time``.

    Raises:
        ConfigurationError: On an empty or duplicated market list, invalid settings, or
            both ``store_path`` and ``store``.
    """

    def __init__(
        self,
        *,
        feed_url: str,
        markets: Sequence[MarketInfo],
        store_path: str | os.PathLike[str] | None = None,
        store: SQLiteStore | PostgresStore | None = None,
        config: AgentsConfig | None = None,
        strategy: Strategy | None = None,
        alert: Callable[[str], None] | None = None,
        supervisor: TaskSupervisor | None = None,
        now: Callable[[], datetime] = datetime.now,
        universe: UniverseConfig | None = None,
    ) -> None:
        config = config or AgentsConfig()
        if not markets and universe is None:
            raise ConfigurationError("give the runtime at least one market")
        ids = [market.condition_id for market in markets]
        if len(set(ids)) != len(ids):
            raise ConfigurationError("a market is listed twice")
        self.config = config
        self.markets = tuple(markets)
        # `is None`, not `or`: a supervisor with no tasks yet is falsy (it has a length).
        self.supervisor = (
            supervisor if supervisor is not None else TaskSupervisor(policy=config.task_policy)
        )
        """The supervisor the runtime's tree runs under (its signals stop a seed-style run)."""
        self.tree = Supervisor(
            AGENTS_SUPERVISOR,
            # Restarts are bounded per task, by its policy's backoff; a hundred monitors
            # failing at once when a feed drops is no reason to give up on the runtime.
            max_restarts=None,
            policy=config.task_policy,
            restart=Restart.TRANSIENT,
        )
        """The runtime's supervision tree: ingestion, feed, monitors, universe, health."""
        self.monitor_tasks = TaskSupervisor(policy=config.task_policy, name=MONITOR_SUPERVISOR)
        """The monitors' supervisor: a task per market, named ``monitor_<condition id>``."""
        self.queue = ingestion_queue(config.queue_size)
        if store is not None and store_path is not None:
            raise ConfigurationError("give the runtime a store_path or a store, not both")
        self.store: SQLiteStore | PostgresStore = (
            store
            if store is not None
            else SQLiteStore(
                DEFAULT_PATH if store_path is None else store_path,
                busy_timeout=config.busy_timeout,
            )
        )
        # Trades go to the store on their own path, never behind the market-data queue.
        self.broker = PaperBroker(
            store=self.store,
            starting_cash=config.starting_cash,
            fee_rate_bps=config.fee_rate_bps,
            stop_timeout=config.handoff_timeout,
            limits=config.limits,
        )
        self.strategy: Strategy = (
            strategy
            if strategy is not None
            else ComplementArbitrage(
                min_edge=config.edge_threshold,
                fee_rate_bps=config.fee_rate_bps,
                max_notional=config.max_notional,
            )
        )
        self.worker = IngestionWorker(
            self.queue,
            self.store,
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            policy=config.write_policy,
            drain_timeout=config.drain_timeout,
        )
        self.universe: UniverseFollower | None = (
            None if universe is None else UniverseFollower(self, universe)
        )
        """What follows the universe (None unless ``universe`` was given)."""
        self._feed_url = feed_url
        self._feed_options = feed_options = config.feed_options()
        self.feed: MarketFeed | None = None
        """The pooled feed every monitor attaches to (None with ``shared_feed=False``)."""
        if config.shared_feed:
            if self.universe is not None:
                # new_market and market_resolved are custom-feature events.
                feed_options["custom_feature_enabled"] = True
            self.feed = MarketFeed(
                feed_url,
                markets=markets,
                deliver_events=False,
                assets_per_connection=config.assets_per_connection,
                on_lifecycle=None if self.universe is None else self.universe.on_lifecycle,
                **feed_options,
            )
        self.sequence = EventSequence()
        """Numbers the events every monitor takes; its run is the store's run id."""
        self._start: tuple[int, Decimal] = (0, Decimal(0))  # the account's fills and P&L
        self.account: AccountRecord | None = None
        """The paper account traded, once started."""
        self.run_id: int | None = None
        """This run's id in the store, once started."""
        self.monitors: dict[str, MarketMonitor] = {
            monitor_task_name(market.condition_id): self._make_monitor(market) for market in markets
        }
        self._retired = _Retired()
        # Retired monitors whose task did not stop in time: still counted one by one.
        self._retiring: dict[str, MarketMonitor] = {}
        self._alert = alert or _log_alert
        self._now = now
        self._started = False
        self._stopped = False
        self._stopped_since: dict[str, float] = {}
        self._alerted: set[str] = set()
        self.health_checks = 0
        """Health checks run so far."""
        self.auto_restarts = 0
        """Tasks the health loop restarted."""
        self.readiness_checks = Readiness()
        """What :meth:`readiness` asks: the runtime's own checks, and any part's."""
        self.readiness_checks.add_check("monitors", self._monitors_not_ready)
        self.readiness_checks.add_check(INGESTION_TASK, self._ingestion_not_ready)
        self.readiness_checks.add_check("feed silence", self._feed_silent)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running" if self._started else "new"
        return f"<AgentsRuntime {state} markets={len(self.markets)}>"

    def _make_monitor(self, market: MarketInfo) -> MarketMonitor:
        config = self.config
        return MarketMonitor(
            market,
            feed_url=None if self.feed is not None else self._feed_url,
            feed=self.feed,
            queue=self.queue,
            broker=self.broker,
            strategy=self.strategy,
            edge_threshold=config.edge_threshold,
            feed_options=self._feed_options,
            handoff_timeout=config.handoff_timeout,
            sequence=self.sequence,
        )

    @property
    def task_names(self) -> list[str]:
        """This runtime's tasks, by path in :attr:`tree`: ``ingestion``, the feed's
        connections (``feed/market-feed-1`` ...), the monitors (``monitors/monitor_0x...``),
        ``universe`` when it follows one, ``health``."""
        return list(self.tree.get_metrics())

    def books(self) -> list[OrderBook]:
        """Every monitored asset's local book, in subscription order (the shared feed's, or
        each monitor's in the run in progress)."""
        if self.feed is not None:
            return list(self.feed.books.values())
        books: list[OrderBook] = []
        for monitor in self.monitors.values():
            pair = monitor.books
            if pair is not None:
                books.extend((pair.yes, pair.no))
        return books

    @property
    def monitored(self) -> dict[str, MarketInfo]:
        """The markets monitored now, by condition id."""
        return {m.market.condition_id: m.market for m in self.monitors.values()}

    async def add_markets(self, markets: Iterable[MarketInfo]) -> list[MarketInfo]:
        """Monitor more markets while running: a monitor each, attached to the feed.

        Args:
            markets: Markets; those monitored already are skipped.

        Returns:
            The markets added.
        """
        added: list[MarketInfo] = []
        if self._stopped:
            return added
        for market in markets:
            name = monitor_task_name(market.condition_id)
            if name in self.monitors:
                continue
            if name in self._retiring:
                # Its task had not stopped: the name is taken until it does.
                if not await self._stop_monitor(name):
                    continue
                self._forget(name)
            monitor = self._make_monitor(market)
            self.monitors[name] = monitor
            added.append(market)
            if self._started:
                await self.monitor_tasks.start_task(
                    name, monitor.run, heartbeat=self.config.monitor_heartbeat
                )
        if added:
            self.markets = tuple(m.market for m in self.monitors.values())
            _logger.info("added %d market(s); %d monitored", len(added), len(self.monitors))
        return added

    async def settle_market(self, condition_id: str, winning_asset_id: str) -> list[FillRow]:
        """Settle the account in a market known to have resolved (Gamma reports it closed
        with final prices), as a ``market_resolved`` event on the feed would.

        The broker pays the market's positions out (the winner at 1, the rest at 0) and
        cancels its resting orders, durably; the resolution is stored with them
        (``market_resolutions``), numbered among the events the monitors take, so that a
        backtest of the run settles at the same point. A market settles once, whichever
        source tells first (and after a restart its positions are gone already).

        Args:
            condition_id: The market.
            winning_asset_id: The token that pays 1.

        Returns:
            The settlement fills (none when nothing was held, or settled before).
        """
        broker = self.broker
        if broker.settled(condition_id):
            return []
        seq = self.sequence()  # no await before the broker settles: the number orders it
        fills = await broker.settle(condition_id, winning_asset_id)
        now_ms = int(time.time() * 1000)
        resolution = MarketResolutionRow(
            market=condition_id,
            winning_asset_id=winning_asset_id,
            timestamp_ms=now_ms,
            received_at_ms=now_ms,
            event_seq=seq,
        )
        await broker.journal.record([resolution])
        return fills

    async def retire_market(self, condition_id: str, *, reason: str = "retired") -> bool:
        """Stop monitoring a market while running: its monitor stops, its assets are
        unsubscribed, and its ``markets`` row is stored inactive.

        Args:
            condition_id: The market.
            reason: Why, for the log.

        Returns:
            False if the market was not monitored.
        """
        name = monitor_task_name(condition_id)
        monitor = self.monitors.pop(name, None)
        if monitor is None:
            return False
        self._retired.markets += 1
        self._retiring[name] = monitor
        self.markets = tuple(m.market for m in self.monitors.values())
        stopped = await self._stop_monitor(name)
        if self.feed is not None:
            await self.feed.unsubscribe(markets=[condition_id])
        await monitor.store_inactive()
        if stopped:
            self._forget(name)
        _logger.info("retired market %s (%s): %s", condition_id, monitor.market.slug, reason)
        return True

    async def _stop_monitor(self, name: str) -> bool:
        """Stop a retired market's monitor task; False if it did not stop in time (it
        stays, counted as it goes, and is tried again if the market comes back)."""
        if name in self.monitor_tasks and not await self.monitor_tasks.stop_task(name):
            _logger.warning("the monitor of retired market %s did not stop in time", name)
            return False
        return True

    def _forget(self, name: str) -> None:
        """Fold a stopped retired monitor's counts (and its task's) into the retired
        totals, then drop the monitor and delete its task from the supervisor."""
        retired = self._retired
        tasks = self.monitor_tasks
        if name in tasks:
            metrics = tasks.child_metrics(name)[name]
            tasks.delete_child(name)
            retired.restarts += metrics["restarts"]
            retired.errors += metrics["errors"]
        retired.stats = _sum_stats(retired.stats, self._retiring.pop(name).stats)
        # The health loop's memory of the task goes with it.
        self._stopped_since.pop(name, None)
        self._alerted.discard(name)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, load the paper account, start the worker, monitors and health loop.

        The tree grows in the order of dependence: the writer, the feed's connections, the
        monitors (attached to the feed), then the universe's task and the health loop.

        Raises:
            RuntimeError: If started before.
            StoreUnavailableError: If the database cannot be opened now.
            SchemaVersionError: If it was written by a newer schema.
            TaskAlreadyRunningError: If the supervisor already runs another runtime's tree
                (``agents``).
        """
        if self._started:
            raise RuntimeError("an AgentsRuntime can be started only once")
        supervisor = self.supervisor
        if AGENTS_SUPERVISOR in supervisor:
            if supervisor.status(AGENTS_SUPERVISOR) != "stopped":
                raise TaskAlreadyRunningError(AGENTS_SUPERVISOR)
            supervisor.delete_child(AGENTS_SUPERVISOR)  # a runtime that ran before
        self._started = True
        await self.store.open()
        await self._begin_run()
        await self.broker.load()
        self._start = (self.broker.fills, self.broker.portfolio().total_pnl)
        self.strategy.resume(self.broker.signal_ids)
        tree = self.tree
        tree.add(INGESTION_TASK, self.worker.run)
        if self.feed is not None:
            tree.add(FEED_SUPERVISOR, self.feed.supervisor)
        tree.add(MONITOR_SUPERVISOR, self.monitor_tasks)
        supervisor.add(AGENTS_SUPERVISOR, tree)  # runs: the children above start
        if self.feed is not None:
            await self.feed.start()
        for name, monitor in self.monitors.items():
            await self.monitor_tasks.start_task(
                name, monitor.run, heartbeat=self.config.monitor_heartbeat
            )
        if self.universe is not None:
            tree.add(UNIVERSE_TASK, self.universe.run)
        tree.add(HEALTH_TASK, self._health_loop)
        _logger.info("agents started: %d markets, database %s", len(self.monitors), self.where)

    def run_settings(self) -> dict[str, Any]:
        """The settings a run records with itself (and a report shows)."""
        strategy = self.strategy
        return {
            "strategy": repr(strategy),
            "edge_threshold": str(self.config.edge_threshold),
            "fee_rate_bps": str(self.config.fee_rate_bps),
            "max_notional": str(self.config.max_notional),
            "markets": [market.condition_id for market in self.markets],
        }

    def run_counters(self) -> dict[str, Any]:
        """What a run records of itself: events, signals seen and submitted, orders, fills."""
        monitors = self._monitor_stats()
        return {
            "events": sum(s.events for s in monitors),
            "signals": sum(s.signals for s in monitors),
            "submitted": sum(s.submitted for s in monitors),
            "orders": sum(s.orders for s in monitors),
            "duplicate_signals": self.broker.duplicate_signals,
            "analysis_errors": sum(s.analysis_errors for s in monitors),
        }

    async def _begin_run(self) -> None:
        """Open the account and record the run."""
        store = self.store
        now_ms = int(time.time() * 1000)
        self.account = await store.open_account(
            self.config.account,
            starting_cash=self.config.starting_cash,
            settings=self.config.limits.settings(),
            now_ms=now_ms,
        )
        # An account keeps the cash it was opened with; a reset opens it afresh.
        self.broker.use_account(self.account.id, self.account.starting_cash)
        strategy = type(self.strategy)
        self.run_id = await store.begin_run(
            account_id=self.account.id,
            strategy=f"{strategy.__module__}:{strategy.__qualname__}",
            settings=self.run_settings(),
            started_at_ms=now_ms,
        )
        self.sequence.start(self.run_id)

    async def _record_run(self, *, ended: bool, timeout: float) -> None:
        """Store the run's counters (and its end); a failure is logged, never raised."""
        store, run_id = self.store, self.run_id
        if run_id is None:
            return
        ended_at_ms = int(time.time() * 1000) if ended else None
        try:
            async with asyncio.timeout(timeout):
                await store.record_run(
                    run_id, counters=self.run_counters(), ended_at_ms=ended_at_ms
                )
        except Exception as exc:
            _logger.warning("could not record run %d: %s: %s", run_id, type(exc).__name__, exc)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully, the tree in reverse order: health loop, universe, monitors
        (together), the feed's sockets, then the writer's drain; then close the database.

        The ingestion worker stores everything still queued before the database is closed.
        Bounded by ``timeout`` overall (the drain by ``config.drain_timeout`` too);
        idempotent.

        Args:
            timeout: Seconds for the whole shutdown.
        """
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def left() -> float:
            return max(deadline - loop.time(), 0.0)

        queue = self.queue
        if isinstance(queue, IngestionQueue):
            queue.unbound()  # every stopping monitor hands over the rows in its hands
        tree = self.tree
        stuck: list[str] = []
        for name in reversed(list(tree)):
            if name == FEED_SUPERVISOR and self.feed is not None:
                try:
                    async with asyncio.timeout(max(left(), 0.1)):
                        await self.feed.aclose()  # its sockets, and its streams end
                except TimeoutError:
                    stuck.append(name)
                    continue
            # The drain has its own bound (config.drain_timeout); give it at least a
            # moment even when the monitors took all the time.
            limit = max(left(), 1.0) if name == INGESTION_TASK else left()
            if not await tree.terminate_child(name, timeout=limit):
                stuck.append(name)
        await self._record_run(ended=True, timeout=max(min(left(), 1.0), 0.1))
        await self.store.close()
        stats = self.stats()
        _logger.info(
            "agents stopped: %d rows stored, %d duplicates, %d not stored%s",
            stats.stored_rows,
            stats.duplicate_rows,
            stats.not_stored_rows,
            f"; did not stop in time: {', '.join(stuck)}" if stuck else "",
        )

    # -- health ----------------------------------------------------------------------------

    async def _health_loop(self) -> NoReturn:
        interval = self.config.health_interval
        while True:
            await asyncio.sleep(interval)
            await self.check_health()
            # A run killed without a shutdown keeps the counters of its last check.
            await self._record_run(ended=False, timeout=interval)

    async def check_health(self) -> list[str]:
        """One health check (the health loop runs it every ``health_interval``).

        Logs tasks with more than ``error_threshold`` errors (ERROR) or more than
        ``restart_threshold`` restarts (WARNING); calls the alert hook once for each task
        that stopped with an error; restarts such a task from its factory once it has
        been stopped for ``auto_restart_after`` seconds.

        Returns:
            The problems found, in words (empty when all is well).
        """
        config = self.config
        loop_time = asyncio.get_running_loop().time()
        problems: list[str] = []
        self.health_checks += 1
        for path, data in self.tree.get_metrics().items():
            # By name, as people read them (names are unique in the tree).
            name = path.rsplit("/", 1)[-1]
            if data["errors"] > config.error_threshold:
                problems.append(f"task {name} has {data['errors']} errors")
                _logger.error("task %s has %d errors", name, data["errors"])
            if data["restarts"] > config.restart_threshold:
                problems.append(f"task {name} restarted {data['restarts']} times")
                _logger.warning("task %s restarted %d times", name, data["restarts"])
            if data["status"] != "stopped" or data["outcome"] != "failed":
                self._stopped_since.pop(name, None)
                self._alerted.discard(name)
                continue
            since = self._stopped_since.setdefault(name, loop_time)
            problems.append(f"task {name} stopped with an error: {data['last_error']}")
            if name not in self._alerted:
                self._alerted.add(name)
                self._call_alert(f"task {name} stopped with an error: {data['last_error']}")
            stopped_for = loop_time - since
            error_time = data["last_error_time"]
            if error_time is not None:
                stopped_for = max(stopped_for, (self._now() - error_time).total_seconds())
            if stopped_for >= config.auto_restart_after and not self._stopped:
                await self._restart(name, path)
        return problems

    def _call_alert(self, message: str) -> None:
        try:
            self._alert(message)
        except Exception:
            _logger.exception("the alert hook raised")

    async def _restart(self, name: str, path: str) -> None:
        _logger.warning("restarting task %s, stopped with an error", name)
        # The supervisor of the task: the tree itself, or the one of its children named first.
        owner: Supervisor = self.tree
        for part in path.split("/")[:-1]:
            child = owner[part]
            assert isinstance(child, Supervisor)
            owner = child
        try:
            await owner.restart_child(name)
        except Exception:
            _logger.exception("could not restart task %s", name)
            return
        self.auto_restarts += 1
        self._stopped_since.pop(name, None)
        self._alerted.discard(name)

    # -- reporting -------------------------------------------------------------------------

    def _monitor_stats(self) -> list[MonitorStats]:
        """Every monitor's counts, retired markets' included (as one sum, once forgotten)."""
        stats = [m.stats for m in (*self.monitors.values(), *self._retiring.values())]
        if self._retired.stats is not None:
            stats.append(self._retired.stats)
        return stats

    def stats(self) -> RuntimeStats:
        """A snapshot of the counters of every part (see :class:`RuntimeStats`)."""
        # Retired monitors' events and rows still count: they were taken and queued.
        retired = self._retired
        monitor_stats = self._monitor_stats()
        metrics = self.monitor_tasks.get_metrics()
        worker = self.worker.stats
        rows = _RowCounts.of(monitor_stats, worker, self.broker.journal, self.store.lost)
        portfolio = self.broker.portfolio()
        restarts = retired.restarts + sum(
            metrics[name]["restarts"]
            for name in (*self.monitors, *self._retiring)
            if name in metrics
        )
        # Every reason, zeros included, so that each one is a series from the start.
        invalid = dict.fromkeys(map(str, InvalidKind), 0)
        for s in monitor_stats:
            for kind, count in s.invalid_by_kind.items():
                invalid[kind] = invalid.get(kind, 0) + count
        # A shared feed's counters are its own, not any monitor's.
        feed = self.feed.stats if self.feed is not None else None
        if feed is not None:
            for kind, count in feed.invalid_by_kind.items():
                invalid[kind] = invalid.get(kind, 0) + count
        return RuntimeStats(
            markets=len(self.monitors),
            monitors_running=sum(
                1 for name in self.monitors if _status(metrics, name) == "running"
            ),
            monitors_ready=sum(1 for s in monitor_stats if s.connected and s.synced),
            events=sum(s.events for s in monitor_stats),
            invalid_frames=sum(s.invalid_frames for s in monitor_stats)
            + (feed.invalid_frames if feed else 0),
            reconnects=sum(s.reconnects for s in monitor_stats) + (feed.reconnects if feed else 0),
            resyncs=sum(s.resyncs for s in monitor_stats) + (feed.resyncs if feed else 0),
            monitor_restarts=restarts,
            signals=sum(s.signals for s in monitor_stats),
            orders=self.broker.orders,
            trades=self.broker.fills,
            run_trades=self.broker.fills - self._start[0],
            orders_by_result=dict(self.broker.order_results),
            run_pnl=portfolio.total_pnl - self._start[1],
            duplicate_signals=self.broker.duplicate_signals,
            cash=portfolio.cash,
            pnl=portfolio.total_pnl,
            realized_pnl=portfolio.realized_pnl,
            unrealized_pnl=portfolio.unrealized_pnl,
            queue_depth=self.queue.qsize(),
            queue_size=self.queue.maxsize,
            rows_queued=rows.queued,
            stored_rows=rows.stored,
            duplicate_rows=rows.duplicates,
            invalid_rows=rows.invalid,
            pending_rows=rows.pending,
            lost_rows=rows.lost,
            database_lost=self.store.lost,
            ingest_latency=worker.last_batch_seconds,
            ingestion_retries=worker.retries,
            stored_by_table=rows.by_table,
            write_ahead_rows=rows.write_ahead,
            invalid_frames_by_reason=invalid,
            markets_added=self.universe.added if self.universe is not None else 0,
            markets_retired=retired.markets,
            retired_task_restarts=retired.restarts,
            retired_task_errors=retired.errors,
        )

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether the agents do their job now, and if not, why.

        Ready means: started and not stopped; every monitor's task running, its feed
        connected and both its books synced; market data arriving on some connection within
        ``config.ready_silence``; the ingestion task running with an open database
        connection, no batch waiting longer than ``config.ready_write_stall`` to be stored,
        the queue not nearly full; and nothing else in :attr:`readiness_checks` objecting.

        Returns:
            ``(True, [])``, or ``(False, reasons)``.
        """
        if not self._started or self._stopped:
            return False, ["the agents are not running"]
        reasons = self.readiness_checks.reasons()
        return not reasons, reasons

    def _monitors_not_ready(self) -> list[str]:
        reasons: list[str] = []
        metrics = self.monitor_tasks.get_metrics()
        for name, monitor in self.monitors.items():
            status = _status(metrics, name)
            if status != "running":
                reasons.append(f"{name}: task {status}")
                continue
            if not monitor.connected:
                reasons.append(f"{name}: feed not connected")
            elif monitor.books is None or not monitor.books.synced:
                reasons.append(f"{name}: books not synced")
        return reasons

    @property
    def where(self) -> str:
        """The database as logs show it: the SQLite path, or the URL without password."""
        store = self.store
        return store.location if isinstance(store, PostgresStore) else str(store.path)

    def _ingestion_not_ready(self) -> list[str]:
        reasons: list[str] = []
        tree = self.tree
        status = tree.status(INGESTION_TASK) if INGESTION_TASK in tree else "stopped"
        if status != "running":
            reasons.append(f"{INGESTION_TASK}: task {status}")
        elif self.store.connection is None:
            reasons.append(f"{INGESTION_TASK}: database disconnected")
        since = self.worker.writing_since
        if since is not None:
            waiting = asyncio.get_running_loop().time() - since
            if waiting > self.config.ready_write_stall:
                error = self.worker.writing_error
                reasons.append(
                    f"{INGESTION_TASK}: a batch has waited {waiting:.1f} s to be stored"
                    + (f" (writes failing: {error})" if error else " (no write has finished)")
                )
        if self.store.lost is not None:
            reasons.append(f"{INGESTION_TASK}: database {self.where} {self.store.lost}")
        if self.queue.qsize() >= 0.9 * self.queue.maxsize:
            reasons.append(
                f"{INGESTION_TASK}: queue nearly full ({self.queue.qsize()}/{self.queue.maxsize})"
            )
        return reasons

    def _feed_silent(self) -> str | None:
        """Silence of the whole feed: PONGs prove a socket, only market data proves a feed."""
        limit = self.config.ready_silence
        if limit is None:
            return None
        if self.feed is not None:
            connections = self.feed.connections()
            silences = [c.silent_for for c in connections if c.silent_for is not None]
        else:
            silences = [
                silent
                for monitor in self.monitors.values()
                if (silent := monitor.silent_for) is not None
            ]
        if not silences or min(silences) <= limit:
            return None
        return (
            f"feed silent: no market data for {min(silences):.1f} s on any of "
            f"{len(silences)} open connection(s) (limit {limit:g} s)"
        )


async def resolve_markets(
    markets_or_ids: Iterable[MarketInfo | str], *, gamma_url: str = DEFAULT_GAMMA_URL
) -> list[MarketInfo]:
    """Markets from :class:`~polymarket_agents.feed.MarketInfo` values or ids.

    An id is a condition id (``0x...``), a token id (digits) or a slug; each is looked up
    at the Gamma-style ``/markets`` of ``gamma_url`` (Polymarket's, or a simulator's
    ``http_url``).

    Raises:
        ConfigurationError: If an id matches no binary market.
        aiohttp.ClientError: If Gamma cannot be reached.
    """
    resolved: list[MarketInfo] = []
    for item in markets_or_ids:
        if isinstance(item, MarketInfo):
            resolved.append(item)
            continue
        if item.startswith("0x"):
            params = {"condition_ids": item}
        elif item.isdigit():
            params = {"clob_token_ids": item}
        else:
            params = {"slug": item}
        found = [
            m
            for m in await fetch_markets(gamma_url, params=params, max_markets=100)
            if item in (m.condition_id, m.yes_token, m.no_token, m.slug)
        ]
        if not found:
            raise ConfigurationError(f"no binary market {item!r} at {gamma_url}")
        resolved.append(found[0])
    return resolved


async def run_market_agents(
    markets_or_ids: Iterable[MarketInfo | str],
    *,
    feed_url: str = DEFAULT_MARKET_URL,
    gamma_url: str = DEFAULT_GAMMA_URL,
    store_path: str | os.PathLike[str] = DEFAULT_PATH,
    config: AgentsConfig | None = None,
    strategy: Strategy | None = None,
    alert: Callable[[str], None] | None = None,
    supervisor: TaskSupervisor | None = None,
    stop_timeout: float = 10.0,
) -> None:
    """Run market agents until the supervisor is asked to shut down: the seed's pattern.

    Starts an :class:`AgentsRuntime` (one monitor per market, the ingestion worker, the
    health loop), waits for ``supervisor.signal_shutdown()`` (wire it to SIGINT/SIGTERM
    with ``supervisor.add_signal_handlers()``), then stops gracefully. Cancelling it stops
    gracefully too.

    Args:
        markets_or_ids: Markets, or ids resolved through ``gamma_url``
            (:func:`resolve_markets`).
        feed_url: The market channel URL.
        gamma_url: Where ids are looked up.
        store_path: The SQLite file.
        config: The settings.
        strategy: The analysis; complement arbitrage if None.
        alert: The alert hook; logging if None.
        supervisor: The supervisor to run under (and to signal); a new one if None.
        stop_timeout: Seconds the graceful stop may take.

    Raises:
        ConfigurationError: On unknown market ids or invalid settings.
        StoreUnavailableError: If the database cannot be opened.
    """
    markets = await resolve_markets(markets_or_ids, gamma_url=gamma_url)
    if supervisor is None:
        supervisor = TaskSupervisor(policy=(config or AgentsConfig()).task_policy)
    runtime = AgentsRuntime(
        feed_url=feed_url,
        markets=markets,
        store_path=store_path,
        config=config,
        strategy=strategy,
        alert=alert,
        supervisor=supervisor,
    )
    try:
        await runtime.start()
        await supervisor.wait_for_shutdown()
    finally:
        await runtime.stop(stop_timeout)
