"""Polymarket market data: the market-channel client, local order books, message models.

::

    from polymarket_agents.feed import MarketFeed, fetch_markets

    markets = await fetch_markets()                       # Gamma, or a simulator's http_url
    async with MarketFeed(markets=markets[:5]) as feed:   # Polymarket's market channel
        async for event in feed:                          # applied to feed.books first
            ...

* :class:`MarketFeed` connects, subscribes, answers the heartbeat, watches for dead and
  frozen connections, reconnects through the core's ``robust_task`` and keeps one
  fail-closed :class:`OrderBook` per asset in a :class:`BookSet`;
* the message types (:class:`Book`, :class:`PriceChange`, ...) are validated msgspec
  Structs with exact :class:`~decimal.Decimal` prices; :class:`FrameDecoder` turns a frame
  into them or raises :class:`InvalidMessage`;
* :func:`fetch_markets` / :func:`parse_markets` read Gamma market listings;
* :func:`redact_url` / :func:`redact_text` hide credentials in URLs before they are shown;
* :mod:`polymarket_agents.feed.simulator` is a local server speaking the same protocol.
"""

from ._book import BookSet, DepthFill, MarketBooks, OrderBook, SyncState, canonical
from ._client import (
    DEFAULT_ASSETS_PER_CONNECTION,
    DEFAULT_MARKET_URL,
    DEFAULT_STREAM_QUEUE,
    MAX_ASSETS_PER_CONNECTION,
    FeedStats,
    MarketFeed,
    MarketStream,
    default_feed_policy,
)
from ._connection import FeedConnectionStats
from ._errors import (
    DataSilence,
    FeedError,
    FeedStopped,
    FeedTimeout,
    InvalidKind,
    InvalidMessage,
    PongTimeout,
    ResyncTimeout,
)
from ._gamma import DEFAULT_GAMMA_URL, MarketInfo, fetch_markets, parse_markets
from ._messages import (
    BestBidAsk,
    Book,
    EventMessage,
    LastTradePrice,
    LegacyChange,
    MarketEvent,
    MarketResolved,
    NewMarket,
    OrderLevel,
    PriceChange,
    PriceLevelChange,
    Side,
    TickSizeChange,
)
from ._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    EVENT_TYPES,
    PING,
    ClientFrame,
    FrameDecoder,
    Operation,
    Subscribe,
    TextReply,
    decode_client_frame,
    encode_events,
    encode_operation,
    encode_subscribe,
)
from ._redact import MASK, redact_text, redact_url, url_secrets
from ._universe import MarketFilter, list_universe, parse_end_date

__all__ = [
    "DEFAULT_ASSETS_PER_CONNECTION",
    "DEFAULT_GAMMA_URL",
    "DEFAULT_MARKET_URL",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_STREAM_QUEUE",
    "EVENT_TYPES",
    "MASK",
    "MAX_ASSETS_PER_CONNECTION",
    "PING",
    "BestBidAsk",
    "Book",
    "BookSet",
    "ClientFrame",
    "DataSilence",
    "DepthFill",
    "EventMessage",
    "FeedConnectionStats",
    "FeedError",
    "FeedStats",
    "FeedStopped",
    "FeedTimeout",
    "FrameDecoder",
    "InvalidKind",
    "InvalidMessage",
    "LastTradePrice",
    "LegacyChange",
    "MarketBooks",
    "MarketEvent",
    "MarketFeed",
    "MarketFilter",
    "MarketInfo",
    "MarketResolved",
    "MarketStream",
    "NewMarket",
    "Operation",
    "OrderBook",
    "OrderLevel",
    "PongTimeout",
    "PriceChange",
    "PriceLevelChange",
    "ResyncTimeout",
    "Side",
    "Subscribe",
    "SyncState",
    "TextReply",
    "TickSizeChange",
    "canonical",
    "decode_client_frame",
    "default_feed_policy",
    "encode_events",
    "encode_operation",
    "encode_subscribe",
    "fetch_markets",
    "list_universe",
    "parse_end_date",
    "parse_markets",
    "redact_text",
    "redact_url",
    "url_secrets",
]
