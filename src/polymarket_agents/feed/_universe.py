"""The universe: every active, open market Gamma lists, narrowed by the filters users expect.

:func:`list_universe` is the one listing the service and its shards start from: it returns
every market that passes a :class:`MarketFilter`, in listing order, before any split between
processes (a shard keeps its own part of this list).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp

from polymarket_agents.core.async_utils import ConfigurationError

from ._gamma import DEFAULT_GAMMA_URL, MarketInfo, fetch_markets

__all__ = ["MarketFilter", "list_universe", "parse_end_date"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketFilter:
    """Which listed markets make the universe: all tradable ones by default.

    The filters go to Gamma as query parameters (``liquidity_num_min``,
    ``volume_num_min``, ``tag_id``, ``end_date_min``, ``end_date_max``) and are checked
    again on every row, so a listing that ignores a parameter cannot widen the universe.

    Attributes:
        min_liquidity: Least ``liquidityNum`` (USDC on the book).
        min_volume: Least ``volumeNum`` (USDC traded).
        tag: A Gamma tag id (digits) or slug the market must carry.
        end_after: The market must end at or after this time.
        end_before: The market must end at or before this time.

    Raises:
        ConfigurationError: On a negative amount, an empty tag, naive datetimes, or an
            empty end-date window.
    """

    min_liquidity: Decimal | None = None
    min_volume: Decimal | None = None
    tag: str | None = None
    end_after: datetime | None = None
    end_before: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("min_liquidity", "min_volume"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigurationError(f"{name} must be >= 0, not {value!r}")
        if self.tag is not None and not self.tag.strip():
            raise ConfigurationError("tag must not be empty")
        for name in ("end_after", "end_before"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ConfigurationError(f"{name} must carry a time zone: {value!r}")
        if (
            self.end_after is not None
            and self.end_before is not None
            and self.end_after > self.end_before
        ):
            raise ConfigurationError("end_after is later than end_before: nothing can match")

    def params(self) -> dict[str, str]:
        """The Gamma ``/markets`` query: active, open, unarchived, and these filters."""
        query = {"active": "true", "closed": "false", "archived": "false"}
        if self.min_liquidity is not None:
            query["liquidity_num_min"] = str(self.min_liquidity)
        if self.min_volume is not None:
            query["volume_num_min"] = str(self.min_volume)
        if self.tag is not None:
            query["include_tag"] = "true"  # rows carry their tags, for the check
            if self.tag.isdigit():
                query["tag_id"] = self.tag
        if self.end_after is not None:
            query["end_date_min"] = _iso(self.end_after)
        if self.end_before is not None:
            query["end_date_max"] = _iso(self.end_before)
        return query

    def accepts(self, market: MarketInfo) -> bool:
        """Whether ``market`` is tradable and passes every filter.

        A market without an end date fails an end-date filter; one listed without tags
        fails a tag filter.
        """
        if not market.tradable:
            return False
        if self.min_liquidity is not None and market.liquidity < self.min_liquidity:
            return False
        if self.min_volume is not None and market.volume < self.min_volume:
            return False
        if self.tag is not None and self.tag not in market.tags:
            return False
        if self.end_after is not None or self.end_before is not None:
            end = parse_end_date(market.end_date)
            if end is None:
                return False
            if self.end_after is not None and end < self.end_after:
                return False
            if self.end_before is not None and end > self.end_before:
                return False
        return True


def parse_end_date(text: str) -> datetime | None:
    """A Gamma ISO date (``2024-07-31T12:00:00Z`` or ``2024-07-31``) in UTC, or None."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def list_universe(
    gamma_url: str = DEFAULT_GAMMA_URL,
    market_filter: MarketFilter | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    page_size: int = 500,
    timeout: float = 10.0,
) -> list[MarketInfo]:
    """Every active, open, tradable binary market Gamma lists that passes the filter.

    Pages through ``GET /markets`` until a short page. Markets come in listing order, each
    once (a market listed twice while the pages shift keeps its first place). Shards and
    other selections start from this list.

    Args:
        gamma_url: Gamma's base URL, or a simulator's ``http_url``.
        market_filter: The filters; none if None.
        session: An aiohttp session to reuse.
        page_size: Rows per request.
        timeout: Seconds allowed per request.

    Returns:
        The markets.

    Raises:
        aiohttp.ClientError: If a request fails or returns an error status.
        TimeoutError: If a request takes longer than ``timeout``.
        InvalidMessage: If a page is not a JSON array.
    """
    chosen = market_filter or MarketFilter()
    listed = await fetch_markets(
        gamma_url, session=session, params=chosen.params(), page_size=page_size, timeout=timeout
    )
    seen: dict[str, MarketInfo] = {}
    for market in listed:
        if chosen.accepts(market):
            seen.setdefault(market.condition_id, market)
    return list(seen.values())
