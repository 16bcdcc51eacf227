"""Agents: the long-running tasks of the service, and the trading logic they run.

::

    from polymarket_agents.agents import AgentsRuntime, run_market_agents

    await run_market_agents(sim.markets(), feed_url=sim.ws_url, store_path="agents.sqlite")

* :func:`monitor_market` / :class:`MarketMonitor` watch one market: its own
  :class:`~polymarket_agents.feed.MarketFeed`, every event turned into storage rows on the
  ingestion queue, the :class:`Strategy` run on the books after each event, and the orders
  of an edge above the threshold (the seed's 0.05) submitted to a :class:`Broker`.
* :class:`ComplementArbitrage` is the default strategy: YES ask + NO ask below 1, net of
  fees, sized by the depth; :class:`Analysis` is what a strategy returns;
  :func:`load_strategy` builds any :class:`Strategy` from ``package.module:Class`` and
  ``key=value`` options.
* :class:`PaperBroker` is py-clob-client's order API (:class:`OrderArgs`,
  :class:`MarketOrderArgs`, :class:`OrderType`, ``create_order``, ``post_order`` ...)
  filled against the local books, with positions, cash and P&L, idempotent per signal.
  Its :class:`TradeJournal` records each order before it is executed and its result
  right after, durably, through the store's own path for trades: never behind the
  market-data queue.
* :func:`data_ingestion_worker` / :class:`IngestionWorker` move rows from a bounded queue
  (:func:`ingestion_queue`) into a :class:`~polymarket_agents.storage.Store` in batched,
  idempotent transactions: an item is marked done only once stored, a failed batch is
  retried rather than dropped, and cancellation drains the queue before the worker stops.
* :class:`AgentsRuntime` / :func:`run_market_agents` run all of it under one
  :class:`~polymarket_agents.core.async_utils.TaskSupervisor` with a health loop.
* :class:`Shard` splits the markets among replicas by rendezvous hashing of condition
  ids (:func:`shard_owner`): ``Shard.parse("1/3").select(markets)``.

What each event becomes in the database (one queue item per event):

* ``book`` -> one ``book_snapshots`` row;
* ``price_change`` -> one ``price_changes`` row holding its entries (both tokens);
* ``last_trade_price`` -> one ``trades`` row; ``tick_size_change`` -> one
  ``tick_size_changes`` row;
* ``best_bid_ask`` and ``new_market`` -> nothing (the first repeats what price changes
  carry; a monitor watches its own market only); ``market_resolved`` of the monitored
  market -> its ``markets`` row again, inactive;
* each monitor run stores its market's ``markets`` row; the broker records every order state
  (``paper_orders``) and fill (``fills``) through its journal, not the queue.
"""

from ._account import Portfolio, PositionState
from ._analysis import DEFAULT_EDGE_THRESHOLD, Analysis, ComplementArbitrage, Strategy
from ._backtest import BacktestResult, backtest, replay
from ._broker import Broker
from ._convert import event_rows, market_row
from ._ingestion import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_INGESTION_POLICY,
    DEFAULT_QUEUE_SIZE,
    IngestionStats,
    IngestionWorker,
    data_ingestion_worker,
    ingestion_queue,
)
from ._journal import DEFAULT_JOURNAL_POLICY, TradeJournal
from ._monitor import MarketMonitor, MonitorStats, monitor_market
from ._orders import (
    BUY,
    SELL,
    ZERO_ADDRESS,
    InvalidOrder,
    MarketOrderArgs,
    OrderArgs,
    OrderResponse,
    OrderSide,
    OrderType,
    taker_fee,
)
from ._paper import (
    INTERRUPTED,
    NOT_RECORDED,
    RECENT_ORDERS,
    RECENT_SIGNALS,
    PaperBroker,
    PaperOrder,
)
from ._report import (
    MarketPnl,
    PositionLine,
    Report,
    RunLine,
    SignalSummary,
    TradeLine,
    build_report,
    load_report,
)
from ._risk import RiskLimits
from ._runtime import (
    AGENTS_SUPERVISOR,
    FEED_SUPERVISOR,
    HEALTH_TASK,
    INGESTION_TASK,
    MONITOR_SUPERVISOR,
    AgentsConfig,
    AgentsRuntime,
    RuntimeStats,
    monitor_task_name,
    resolve_markets,
    run_market_agents,
)
from ._sequence import EventSequence
from ._shards import MAX_SHARDS, Shard, shard_owner
from ._strategies import DEFAULT_STRATEGY, convert_option, load_strategy, parse_strategy_options
from ._universe import UNIVERSE_TASK, UniverseConfig, UniverseFollower, UniverseStats

__all__ = [
    "AGENTS_SUPERVISOR",
    "BUY",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_EDGE_THRESHOLD",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_INGESTION_POLICY",
    "DEFAULT_JOURNAL_POLICY",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_STRATEGY",
    "FEED_SUPERVISOR",
    "HEALTH_TASK",
    "INGESTION_TASK",
    "INTERRUPTED",
    "MAX_SHARDS",
    "MONITOR_SUPERVISOR",
    "NOT_RECORDED",
    "RECENT_ORDERS",
    "RECENT_SIGNALS",
    "SELL",
    "UNIVERSE_TASK",
    "ZERO_ADDRESS",
    "AgentsConfig",
    "AgentsRuntime",
    "Analysis",
    "BacktestResult",
    "Broker",
    "ComplementArbitrage",
    "EventSequence",
    "IngestionStats",
    "IngestionWorker",
    "InvalidOrder",
    "MarketMonitor",
    "MarketOrderArgs",
    "MarketPnl",
    "MonitorStats",
    "OrderArgs",
    "OrderResponse",
    "OrderSide",
    "OrderType",
    "PaperBroker",
    "PaperOrder",
    "Portfolio",
    "PositionLine",
    "PositionState",
    "Report",
    "RiskLimits",
    "RunLine",
    "RuntimeStats",
    "Shard",
    "SignalSummary",
    "Strategy",
    "TradeJournal",
    "TradeLine",
    "UniverseConfig",
    "UniverseFollower",
    "UniverseStats",
    "backtest",
    "build_report",
    "convert_option",
    "data_ingestion_worker",
    "event_rows",
    "ingestion_queue",
    "load_report",
    "load_strategy",
    "market_row",
    "monitor_market",
    "monitor_task_name",
    "parse_strategy_options",
    "replay",
    "resolve_markets",
    "run_market_agents",
    "shard_owner",
    "taker_fee",
]
