"""Following the universe: new markets picked up, resolved ones retired, while running.

Three sources of news, all handled by one task (``universe`` in the supervisor):

* ``new_market`` on the market channel (custom features on): the market is looked up at
  Gamma by condition id and added if it passes the filter (a market too new to be listed
  waits for the next refresh);
* ``market_resolved``: the market is retired at once (its monitor stops, its assets are
  unsubscribed, its ``markets`` row is stored inactive);
* a periodic Gamma refresh (every ``refresh_interval``): listed markets not yet monitored
  are added; monitored markets no longer listed (closed, or out of the filter) are retired.

Settlement from Gamma: at each refresh, the markets that are no longer listed and that
the paper account still holds shares in (or that were monitored until now) are looked up
at Gamma; one reported ``closed`` with final ``outcomePrices`` (one outcome at 1, the
other at 0) is settled as a ``market_resolved`` event would settle it
(:meth:`AgentsRuntime.settle_market`). Gamma is the authority: the feed's
``market_resolved`` may never come. A market closed but not resolved yet is looked up
again at the next refresh, for as long as shares are held in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import aiohttp

from polymarket_agents.core.async_utils import ConfigurationError
from polymarket_agents.feed import (
    DEFAULT_GAMMA_URL,
    InvalidMessage,
    MarketFilter,
    MarketInfo,
    MarketResolved,
    NewMarket,
    fetch_markets,
    list_universe,
)

if TYPE_CHECKING:
    from ._runtime import AgentsRuntime

__all__ = ["UNIVERSE_TASK", "UniverseConfig", "UniverseFollower", "UniverseStats"]

_logger = logging.getLogger("polymarket_agents.agents")

UNIVERSE_TASK = "universe"
"""The supervisor's name of the task that follows the universe."""

_GAMMA_ERRORS = (aiohttp.ClientError, TimeoutError, InvalidMessage)
_LOOKUP_BATCH = 50  # condition ids per Gamma request


@dataclass(frozen=True, slots=True, kw_only=True)
class UniverseConfig:
    """How the runtime follows the universe.

    Attributes:
        gamma_url: Where markets are listed and looked up.
        market_filter: Which listed markets belong to the universe.
        refresh_interval: Seconds between Gamma refreshes.
        select: Keeps a part of the universe (a shard's markets, say); all if None.
        timeout: Seconds allowed per Gamma request.

    Raises:
        ConfigurationError: On a non-positive interval or timeout.
    """

    gamma_url: str = DEFAULT_GAMMA_URL
    market_filter: MarketFilter = field(default_factory=MarketFilter)
    refresh_interval: float = 300.0
    select: Callable[[MarketInfo], bool] | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("refresh_interval", "timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, not {getattr(self, name)!r}")

    def wants(self, market: MarketInfo) -> bool:
        """Whether ``market`` passes the filter and the selection."""
        return self.market_filter.accepts(market) and (self.select is None or self.select(market))


@dataclass(frozen=True, slots=True, kw_only=True)
class UniverseStats:
    """What following the universe did.

    Attributes:
        added: Markets added while running.
        retired: Markets retired while running.
        refreshes: Gamma refreshes done.
        lookups: ``new_market`` announcements looked up at Gamma.
        gamma_errors: Refreshes and lookups that failed (retried at the next refresh).
        settled: Markets settled because Gamma reported them resolved.
    """

    added: int
    retired: int
    refreshes: int
    lookups: int
    gamma_errors: int
    settled: int = 0


class UniverseFollower:
    """Adds and retires a runtime's markets as the universe changes; see the module.

    Args:
        runtime: The runtime whose markets follow the universe.
        config: Where and how to look.
    """

    def __init__(self, runtime: AgentsRuntime, config: UniverseConfig) -> None:
        self.runtime = runtime
        self.config = config
        self._news: asyncio.Queue[NewMarket | MarketResolved] = asyncio.Queue()
        self._announced: set[str] = set()
        self._resolved: set[str] = set()
        self.added = 0
        self.retired = 0
        self.refreshes = 0
        self.lookups = 0
        self.gamma_errors = 0
        self.settled = 0

    @property
    def stats(self) -> UniverseStats:
        """A snapshot of the counters."""
        return UniverseStats(
            added=self.added,
            retired=self.retired,
            refreshes=self.refreshes,
            lookups=self.lookups,
            gamma_errors=self.gamma_errors,
            settled=self.settled,
        )

    def on_lifecycle(self, event: NewMarket | MarketResolved) -> None:
        """The feed's hook: note the news (every connection may bring its own copy)."""
        seen = self._announced if type(event) is NewMarket else self._resolved
        if event.market in seen:
            return
        seen.add(event.market)
        self._news.put_nowait(event)

    async def run(self) -> NoReturn:
        """Handle news as it comes and refresh from Gamma on schedule, until cancelled."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.config.refresh_interval
        while True:
            try:
                async with asyncio.timeout(max(next_refresh - loop.time(), 0.0)):
                    event = await self._news.get()
            except TimeoutError:
                await self.refresh()
                next_refresh = loop.time() + self.config.refresh_interval
                continue
            if type(event) is MarketResolved:
                if await self.runtime.retire_market(event.market, reason="resolved"):
                    self.retired += 1
            else:
                await self._look_up(event.market)

    async def _look_up(self, condition_id: str) -> None:
        if condition_id in self.runtime.monitored:
            return
        self.lookups += 1
        config = self.config
        try:
            found = await fetch_markets(
                config.gamma_url,
                params={"condition_ids": condition_id},
                max_markets=10,
                timeout=config.timeout,
            )
        except _GAMMA_ERRORS as exc:
            self.gamma_errors += 1
            _logger.warning("cannot look up new market %s: %s", condition_id, exc)
            return
        wanted = [m for m in found if m.condition_id == condition_id and config.wants(m)]
        if wanted:
            self.added += len(await self.runtime.add_markets(wanted))

    async def refresh(self) -> None:
        """List the universe again: add what is new, retire what is no longer listed."""
        config = self.config
        try:
            listed = await list_universe(
                config.gamma_url, config.market_filter, timeout=config.timeout
            )
        except _GAMMA_ERRORS as exc:
            self.gamma_errors += 1
            _logger.warning("cannot refresh the universe from Gamma: %s", exc)
            return
        self.refreshes += 1
        runtime = self.runtime
        wanted = [m for m in listed if config.select is None or config.select(m)]
        self.added += len(await runtime.add_markets(wanted))
        keep = {m.condition_id for m in wanted}
        unlisted = [c for c in runtime.monitored if c not in keep]
        held = runtime.broker.markets_held() - keep
        resolved = await self._settle_resolved([*unlisted, *sorted(held - set(unlisted))])
        for condition_id in unlisted:
            reason = "resolved (Gamma)" if condition_id in resolved else "no longer listed"
            if await runtime.retire_market(condition_id, reason=reason):
                self.retired += 1

    async def _settle_resolved(self, condition_ids: list[str]) -> set[str]:
        """Look the markets up at Gamma and settle those it reports resolved.

        Returns:
            The markets Gamma reports resolved.
        """
        resolved: set[str] = set()
        for start in range(0, len(condition_ids), _LOOKUP_BATCH):
            batch = condition_ids[start : start + _LOOKUP_BATCH]
            try:
                found = await fetch_markets(
                    self.config.gamma_url,
                    params={"condition_ids": batch},
                    max_markets=len(batch),
                    timeout=self.config.timeout,
                )
            except _GAMMA_ERRORS as exc:
                self.gamma_errors += 1
                _logger.warning("cannot look up closed markets at Gamma: %s", exc)
                return resolved
            wanted = set(batch)
            for market in found:
                winner = market.winner
                if market.condition_id not in wanted or winner is None:
                    continue
                resolved.add(market.condition_id)
                if not self.runtime.broker.settled(market.condition_id):
                    await self.runtime.settle_market(market.condition_id, winner)
                    self.settled += 1
                    _logger.info(
                        "market %s (%s) resolved at Gamma: settled",
                        market.condition_id,
                        market.slug,
                    )
        return resolved
