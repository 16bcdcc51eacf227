"""Gamma market listings: how agents discover markets, live or simulated.

Gamma's ``GET /markets`` returns a JSON array of market objects in which ``outcomes``,
``outcomePrices`` and ``clobTokenIds`` are JSON documents *inside strings*. This module turns
that into :class:`MarketInfo` values and fetches it over HTTP, page by page.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp
import msgspec

from ._errors import InvalidMessage

__all__ = ["DEFAULT_GAMMA_URL", "MarketInfo", "fetch_markets", "parse_markets"]

DEFAULT_GAMMA_URL = "https://gamma-api.polymarket.com"
"""The real Gamma API; the simulator serves the same ``/markets`` on its own port."""

_logger = logging.getLogger("polymarket_agents.feed")


class MarketInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A binary market as the agents need it.

    Attributes:
        condition_id: The market's condition id (``0x`` + 64 hex).
        question: The question it resolves.
        slug: URL slug.
        yes_token: Token id of the first outcome (``Yes``).
        no_token: Token id of the second outcome (``No``).
        tick_size: Minimum price increment.
        min_size: Minimum order size, in shares.
        id: Gamma's market id.
        outcomes: Outcome names, in token order.
        outcome_prices: Last prices per outcome, as Gamma reports them.
        active: Gamma's ``active``.
        closed: Gamma's ``closed``: resolved or otherwise finished.
        archived: Gamma's ``archived``.
        accepting_orders: Whether the order book takes orders.
        enable_order_book: Whether the market trades on the CLOB.
        neg_risk: Whether it belongs to a negative-risk group.
        end_date: ISO end date, as sent.
        question_id: The resolution question's id.
        liquidity: Gamma's ``liquidityNum`` (USDC resting on the book).
        volume: Gamma's ``volumeNum`` (USDC traded).
        tags: The ids and slugs of the market's Gamma tags, when listed with them.
    """

    condition_id: str
    question: str
    slug: str
    yes_token: str
    no_token: str
    tick_size: Decimal
    min_size: Decimal
    id: str = ""
    outcomes: tuple[str, str] = ("Yes", "No")
    outcome_prices: tuple[Decimal, ...] = ()
    active: bool = True
    closed: bool = False
    archived: bool = False
    accepting_orders: bool = True
    enable_order_book: bool = True
    neg_risk: bool = False
    end_date: str = ""
    question_id: str = ""
    liquidity: Decimal = Decimal(0)
    volume: Decimal = Decimal(0)
    tags: tuple[str, ...] = ()

    @property
    def token_ids(self) -> tuple[str, str]:
        """``(yes_token, no_token)``."""
        return (self.yes_token, self.no_token)

    @property
    def winner(self) -> str | None:
        """The token that won, once Gamma reports the market ``closed`` with final
        ``outcomePrices`` (one outcome at 1, the other at 0); None before that (a closed
        market whose resolution is still pending shows other prices).
        """
        if not self.closed or len(self.outcome_prices) != 2:
            return None
        yes, no = self.outcome_prices
        if yes == 1 and no == 0:
            return self.yes_token
        if yes == 0 and no == 1:
            return self.no_token
        return None

    @property
    def tradable(self) -> bool:
        """Active, not closed or archived, accepting orders on an order book."""
        return (
            self.active
            and not self.closed
            and not self.archived
            and self.accepting_orders
            and self.enable_order_book
        )


class _GammaMarket(msgspec.Struct, rename="camel"):
    """The fields of a Gamma market object this package reads; the rest are ignored."""

    condition_id: str
    question: str = ""
    slug: str = ""
    id: str = ""
    outcomes: str = '["Yes", "No"]'
    outcome_prices: str = "[]"
    clob_token_ids: str = "[]"
    active: bool = False
    closed: bool = False
    archived: bool = False
    accepting_orders: bool = False
    enable_order_book: bool = False
    neg_risk: bool = False
    order_price_min_tick_size: Decimal = Decimal("0.01")
    order_min_size: Decimal = Decimal(5)
    end_date: str = ""
    question_id: str = msgspec.field(default="", name="questionID")
    liquidity_num: float | None = None
    volume_num: float | None = None
    tags: list[_GammaTag] | None = None


class _GammaTag(msgspec.Struct):
    id: str | int = ""
    slug: str = ""


_rows = msgspec.json.Decoder(list[msgspec.Raw])
_row = msgspec.json.Decoder(_GammaMarket)
_strings = msgspec.json.Decoder(list[str])


def _to_info(row: _GammaMarket) -> MarketInfo | None:
    """The :class:`MarketInfo` of a decoded row, or None if it is not a binary CLOB market."""
    tokens = _strings.decode(row.clob_token_ids)
    outcomes = _strings.decode(row.outcomes)
    if len(tokens) != 2 or len(outcomes) != 2:
        return None
    prices = tuple(Decimal(price) for price in _strings.decode(row.outcome_prices))
    return MarketInfo(
        condition_id=row.condition_id,
        question=row.question,
        slug=row.slug,
        yes_token=tokens[0],
        no_token=tokens[1],
        tick_size=row.order_price_min_tick_size,
        min_size=row.order_min_size,
        id=row.id,
        outcomes=(outcomes[0], outcomes[1]),
        outcome_prices=prices,
        active=row.active,
        closed=row.closed,
        archived=row.archived,
        accepting_orders=row.accepting_orders,
        enable_order_book=row.enable_order_book,
        neg_risk=row.neg_risk,
        end_date=row.end_date,
        question_id=row.question_id,
        liquidity=_amount(row.liquidity_num),
        volume=_amount(row.volume_num),
        tags=tuple(
            str(value) for tag in row.tags or () for value in (tag.id, tag.slug) if value != ""
        ),
    )


def _amount(value: float | None) -> Decimal:
    """A Gamma number as a Decimal to the cent (0 when absent or not finite)."""
    if value is None or not math.isfinite(value):
        return Decimal(0)
    return Decimal(f"{value:.2f}")


def parse_markets(payload: bytes | str) -> list[MarketInfo]:
    """Parse a Gamma ``/markets`` response into the binary markets it lists.

    Rows that are not binary CLOB markets (no or more than two token ids) are left out, and
    so are malformed rows (logged at DEBUG): one bad row does not hide the others.

    Args:
        payload: The response body.

    Returns:
        The markets, in the order listed.

    Raises:
        InvalidMessage: If the payload is not a JSON array.
    """
    return _parse(payload)[0]


def _parse(payload: bytes | str) -> tuple[list[MarketInfo], int]:
    """The binary markets of a page, and how many rows the page had."""
    try:
        rows = _rows.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidMessage(payload, f"not a Gamma market list: {exc}") from None
    markets: list[MarketInfo] = []
    for raw in rows:
        try:
            info = _to_info(_row.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError, ArithmeticError) as exc:
            _logger.debug("skipping a malformed Gamma market row: %s", exc)
            continue
        if info is not None:
            markets.append(info)
    return markets, len(rows)


async def fetch_markets(
    base_url: str = DEFAULT_GAMMA_URL,
    *,
    session: aiohttp.ClientSession | None = None,
    params: Mapping[str, str | Sequence[str]] | None = None,
    page_size: int = 100,
    max_markets: int | None = None,
    timeout: float = 10.0,
) -> list[MarketInfo]:
    """Fetch binary markets from a Gamma-style ``/markets`` endpoint, page by page.

    Pages are requested with ``limit``/``offset`` until a short page arrives (as Polymarket's
    own tools do) or ``max_markets`` rows were read.

    Args:
        base_url: Gamma's base URL, or a simulator's ``http_url``; query parameters it
            carries (an API key, say) are sent with every request.
        session: An aiohttp session to reuse; a private one is opened and closed if None.
        params: Query parameters (a sequence of values repeats the parameter, as
            ``condition_ids`` takes several); by default ``active=true``,
            ``closed=false``, ``archived=false``.
        page_size: Rows per request.
        max_markets: Stop after this many rows; no limit if None.
        timeout: Seconds allowed per request.

    Returns:
        The binary markets listed, in order.

    Raises:
        aiohttp.ClientError: If a request fails or returns an error status.
        TimeoutError: If a request takes longer than ``timeout``.
        InvalidMessage: If a page is not a JSON array.
    """
    base = urlsplit(base_url)
    wanted = params or {"active": "true", "closed": "false", "archived": "false"}
    query = [
        *(
            (key, value)
            for key, value in parse_qsl(base.query, keep_blank_values=True)
            if key not in wanted and key not in ("limit", "offset")
        ),
        *(
            (key, item)
            for key, value in wanted.items()
            for item in ((value,) if isinstance(value, str) else value)
        ),
    ]
    url = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + "/markets", "", ""))
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    own_session = session is None
    http = session or aiohttp.ClientSession(timeout=client_timeout)
    markets: list[MarketInfo] = []
    try:
        offset = 0
        while max_markets is None or offset < max_markets:
            limit = page_size if max_markets is None else min(page_size, max_markets - offset)
            page_query = [*query, ("limit", str(limit)), ("offset", str(offset))]
            async with http.get(url, params=page_query, timeout=client_timeout) as response:
                response.raise_for_status()
                body = await response.read()
            page, rows = _parse(body)
            markets.extend(page)
            offset += rows
            if rows < limit:
                break
    finally:
        if own_session:
            await http.close()
    return markets
