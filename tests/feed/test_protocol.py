"""The Sans-I/O protocol: frames to validated events and back, without a socket."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polymarket_agents.feed import (
    BestBidAsk,
    Book,
    FrameDecoder,
    InvalidKind,
    InvalidMessage,
    LastTradePrice,
    MarketResolved,
    NewMarket,
    Operation,
    OrderLevel,
    PriceChange,
    Subscribe,
    TextReply,
    TickSizeChange,
    decode_client_frame,
    encode_events,
    encode_operation,
    encode_subscribe,
)
from polymarket_agents.feed import _messages as messages

YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"

# The documented examples (POLYMARKET.md section 4), verbatim.
DOC_BOOK: dict[str, Any] = {
    "event_type": "book",
    "asset_id": YES,
    "market": MARKET,
    "bids": [
        {"price": ".48", "size": "30"},
        {"price": ".49", "size": "20"},
        {"price": ".50", "size": "15"},
    ],
    "asks": [
        {"price": ".52", "size": "25"},
        {"price": ".53", "size": "60"},
        {"price": ".54", "size": "10"},
    ],
    "timestamp": "123456789000",
    "hash": "0x0....",
}
DOC_PRICE_CHANGE: dict[str, Any] = {
    "market": MARKET,
    "price_changes": [
        {
            "asset_id": YES,
            "price": "0.5",
            "size": "200",
            "side": "BUY",
            "hash": "56621a121a47ed9333273e21c83b660cff37ae50",
            "best_bid": "0.5",
            "best_ask": "1",
        },
        {
            "asset_id": NO,
            "price": "0.5",
            "size": "200",
            "side": "SELL",
            "hash": "1895759e4df7a796bf4f1c5a5950b748306923e2",
            "best_bid": "0",
            "best_ask": "0.5",
        },
    ],
    "timestamp": "1757908892351",
    "event_type": "price_change",
}
DOC_LEGACY: dict[str, Any] = {
    "asset_id": YES,
    "changes": [{"price": "0.4", "side": "SELL", "size": "3300"}],
    "event_type": "price_change",
    "market": MARKET,
    "timestamp": "1729084877448",
    "hash": "3cd4d61e042c81560c9037ece0c61f3b1a8fbbdd",
}
DOC_TICK: dict[str, Any] = {
    "event_type": "tick_size_change",
    "asset_id": YES,
    "market": MARKET,
    "old_tick_size": "0.01",
    "new_tick_size": "0.001",
    "timestamp": "100000000",
}
DOC_TRADE: dict[str, Any] = {
    "asset_id": YES,
    "event_type": "last_trade_price",
    "fee_rate_bps": "0",
    "market": MARKET,
    "price": "0.456",
    "side": "BUY",
    "size": "219.217767",
    "timestamp": "1750428146322",
    "transaction_hash": "0x" + "ab" * 32,
}
DOC_BBA: dict[str, Any] = {
    "event_type": "best_bid_ask",
    "market": MARKET,
    "asset_id": YES,
    "best_bid": "0.73",
    "best_ask": "0.77",
    "spread": "0.04",
    "timestamp": "1766789469958",
}
DOC_RESOLVED: dict[str, Any] = {
    "id": "1031769",
    "question": "Will NVIDIA (NVDA) close above $240 end of January?",
    "market": MARKET,
    "slug": "nvda-above-240-on-january-30-2026",
    "description": 'This market will resolve to "Yes" if ...',
    "assets_ids": [YES, NO],
    "outcomes": ["Yes", "No"],
    "winning_asset_id": YES,
    "winning_outcome": "Yes",
    "event_message": {"id": "125819", "ticker": "nvda", "slug": "nvda", "title": "NVDA"},
    "timestamp": "1766790415550",
    "event_type": "market_resolved",
}


def frame(*objects: Any) -> bytes:
    """A frame of one object, or an array of several."""
    payload = objects[0] if len(objects) == 1 else list(objects)
    return json.dumps(payload).encode()


@pytest.fixture
def decoder() -> FrameDecoder:
    """A decoder with the default limits."""
    return FrameDecoder()


def test_book_example_decodes_to_exact_decimals(decoder: FrameDecoder) -> None:
    """A documented book decodes with exact Decimal prices, '.48' included."""
    [book] = decoder.decode(frame(DOC_BOOK))
    assert isinstance(book, Book)
    assert book.asset_id == YES
    assert book.market == MARKET
    assert book.bids[0] == OrderLevel(Decimal("0.48"), Decimal("30"))
    assert [level.price for level in book.asks] == [Decimal(p) for p in ("0.52", "0.53", "0.54")]
    assert book.key == ("book", YES, "123456789000", "0x0....")


def test_price_change_current_schema(decoder: FrameDecoder) -> None:
    """The current price_change schema keeps per-entry assets and advertised tops."""
    [event] = decoder.decode(frame(DOC_PRICE_CHANGE))
    assert isinstance(event, PriceChange)
    assert not event.legacy
    first, second = event.price_changes
    assert (first.asset_id, first.side, first.size) == (YES, "BUY", Decimal(200))
    assert (first.best_bid, first.best_ask) == (Decimal("0.5"), Decimal(1))
    assert (second.asset_id, second.best_bid) == (NO, Decimal(0))


def test_every_size_of_a_price_change_is_its_own(decoder: FrameDecoder) -> None:
    """Sizes are parsed once per run of equal texts (a YES change and its NO mirror): each
    entry still gets its own exact size, exponent kept, and a bad one after a good one is
    refused."""
    yes, no = DOC_PRICE_CHANGE["price_changes"]
    sizes = ["200", "200", "200.50", "7", "7"]
    entries = [_with(yes if n % 2 else no, size=size) for n, size in enumerate(sizes)]
    [event] = decoder.decode(frame(_with(DOC_PRICE_CHANGE, price_changes=entries)))
    assert isinstance(event, PriceChange)
    assert [str(change.size) for change in event.price_changes] == sizes
    for bad in ("-7", "NaN", "seven", "1e16"):
        entries = [_with(yes, size="7"), _with(no, size="7"), _with(yes, size=bad)]
        with pytest.raises(InvalidMessage) as caught:
            decoder.decode(frame(_with(DOC_PRICE_CHANGE, price_changes=entries)))
        assert caught.value.kind is InvalidKind.INVALID_EVENT


def test_price_change_legacy_schema_is_normalised(decoder: FrameDecoder) -> None:
    """The legacy 'changes' schema decodes to the same entries, marked legacy."""
    [event] = decoder.decode(frame(DOC_LEGACY))
    assert isinstance(event, PriceChange)
    assert event.legacy
    assert event.changes is None
    [change] = event.price_changes
    assert change.asset_id == YES
    assert (change.price, change.side, change.size) == (Decimal("0.4"), "SELL", Decimal(3300))
    assert change.hash == DOC_LEGACY["hash"]
    assert change.best_bid is None


def test_every_other_event_type(decoder: FrameDecoder) -> None:
    """Trades, tick size changes, best bid/ask and lifecycle events decode to their types."""
    new_market = {k: v for k, v in DOC_RESOLVED.items() if not k.startswith("winning")}
    new_market["event_type"] = "new_market"
    events = decoder.decode(frame(DOC_TRADE, DOC_TICK, DOC_BBA, DOC_RESOLVED, new_market))
    trade, tick, bba, resolved, created = events
    assert isinstance(trade, LastTradePrice)
    assert trade.size == Decimal("219.217767")
    assert trade.key[3] == DOC_TRADE["transaction_hash"]
    assert isinstance(tick, TickSizeChange)
    assert tick.new_tick_size == Decimal("0.001")
    assert isinstance(bba, BestBidAsk)
    assert bba.spread == Decimal("0.04")
    assert isinstance(resolved, MarketResolved)
    assert resolved.winning_outcome == "Yes"
    assert resolved.event_message is not None
    assert isinstance(created, NewMarket)
    assert created.assets_ids == (YES, NO)


def test_arrays_single_objects_and_empty_arrays(decoder: FrameDecoder) -> None:
    """A frame is one object or a non-empty array of them; an empty array is invalid, and
    an array of unknown event types is no events."""
    assert len(decoder.decode(frame(DOC_BOOK))) == 1
    assert len(decoder.decode(frame(DOC_BOOK, DOC_TRADE))) == 2
    assert decoder.decode(json.dumps([DOC_BOOK]).encode())[0] == decoder.decode(frame(DOC_BOOK))[0]
    for empty in (b"[]", "[]", b" [ ]\n"):
        with pytest.raises(InvalidMessage) as caught:
            decoder.decode(empty)
        assert caught.value.kind is InvalidKind.EMPTY
    assert decoder.decode(b'[{"event_type": "not yet known"}]') == []


DEEP = 100_000


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("[" * DEEP + "]" * DEEP, InvalidKind.TOO_DEEP),
        ('{"a":' * DEEP + "1" + "}" * DEEP, InvalidKind.TOO_DEEP),
        ('[{"event_type":"x","a":' + "[" * DEEP + "]" * DEEP + "}]", InvalidKind.TOO_DEEP),
        (json.dumps(DOC_BOOK)[:-1] + ', "extra": ' + "[" * DEEP + "]" * DEEP + "}", "too_deep"),
        (b"\xff\xfe", InvalidKind.NOT_JSON),
        ('["\ud800"]', InvalidKind.NOT_JSON),
        ("SERVER OVERLOADED", InvalidKind.NOT_JSON),
        ("1", InvalidKind.NOT_AN_EVENT),
        ("[1, 2]", InvalidKind.NOT_AN_EVENT),
        ("[{}]", InvalidKind.NOT_AN_EVENT),
        ('{"event_type": 5}', InvalidKind.NOT_AN_EVENT),
        ('{"event_type": "book"}', InvalidKind.INVALID_EVENT),
        ('[{"event_type": "x"}, {"event_type": "book", "asset_id": 1}]', "invalid_event"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_hostile_frames_are_invalid_with_a_kind(
    decoder: FrameDecoder, raw: bytes | str, kind: str
) -> None:
    """Deep nesting, bad bytes and non-events raise InvalidMessage of the right kind, never
    RecursionError or a Unicode error."""
    with pytest.raises(InvalidMessage) as caught:
        decoder.decode(raw)
    assert caught.value.kind == kind


def test_deep_nesting_in_a_client_frame_is_invalid() -> None:
    """The server side refuses a deeply nested client frame the same way."""
    with pytest.raises(InvalidMessage) as caught:
        decode_client_frame('{"type": "market", "x": ' + "[" * DEEP + "]" * DEEP + "}")
    assert caught.value.kind is InvalidKind.TOO_DEEP


def test_text_replies_are_not_json(decoder: FrameDecoder) -> None:
    """PONG and INVALID OPERATION are recognised as text, as bytes or str."""
    assert decoder.decode(b"PONG") is TextReply.PONG
    assert decoder.decode("PONG") is TextReply.PONG
    assert decoder.decode(b"INVALID OPERATION") is TextReply.INVALID_OPERATION


def test_unknown_event_types_are_ignored(decoder: FrameDecoder) -> None:
    """Unknown event types vanish, alone or beside known ones, and are not invalid."""
    unknown = {"event_type": "price_level_summary", "anything": [1, 2, {"x": None}]}
    assert decoder.decode(frame(unknown)) == []
    events = decoder.decode(frame(unknown, DOC_TRADE, unknown))
    assert [type(e) for e in events] == [LastTradePrice]


def test_extra_fields_and_legacy_side_names_are_accepted(decoder: FrameDecoder) -> None:
    """Unknown fields are ignored; 'buys'/'sells' become bids/asks."""
    live = {**DOC_BOOK, "tick_size": "0.01", "last_trade_price": "", "new_field": {"a": 1}}
    live["buys"] = live.pop("bids")
    live["sells"] = live.pop("asks")
    [book] = decoder.decode(frame(live))
    assert isinstance(book, Book)
    assert len(book.bids) == 3
    assert len(book.asks) == 3
    assert book.tick_size == Decimal("0.01")
    assert b"buys" not in encode_events(book)


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(base))
    copy.update(changes)
    return copy


def _entry(**changes: Any) -> dict[str, Any]:
    return _with(
        DOC_PRICE_CHANGE, price_changes=[_with(DOC_PRICE_CHANGE["price_changes"][0], **changes)]
    )


INVALID_FRAMES = {
    "not json": b'{"event_type": "book", "asset_id": ',
    "stray text": b"HELLO",
    "a bare string": b'"book"',
    "an array of numbers": b"[1, 2]",
    "no event_type": frame({"asset_id": YES}),
    "event_type not a string": frame({"event_type": 7}),
    "asset_id a number": frame(_with(DOC_TRADE, asset_id=12)),
    "size an object": frame(_entry(size={"shares": 1})),
    "side unknown": frame(_entry(side="HOLD")),
    "missing market": frame({k: v for k, v in DOC_BOOK.items() if k != "market"}),
    "missing timestamp": frame({k: v for k, v in DOC_TRADE.items() if k != "timestamp"}),
    "empty price_changes": frame(_with(DOC_PRICE_CHANGE, price_changes=[])),
    "price above 1": frame(_entry(price="1.5")),
    "negative size": frame(_entry(size="-3")),
    "price NaN": frame(_entry(price="NaN")),
    "size Infinity": frame(_with(DOC_TRADE, size="Infinity")),
    "price not a number": frame(_entry(price="half")),
    "best_ask above 1": frame(_entry(best_ask="1.01")),
    "level out of range": frame(_with(DOC_BOOK, bids=[{"price": "2", "size": "1"}])),
    "timestamp not digits": frame(_with(DOC_TRADE, timestamp="yesterday")),
    "tick size zero": frame(_with(DOC_TICK, new_tick_size="0")),
    "empty asset_id": frame(_with(DOC_TRADE, asset_id="")),
    "one bad event in an array": frame(DOC_TRADE, _with(DOC_TRADE, price="7")),
}


@pytest.mark.parametrize("raw", INVALID_FRAMES.values(), ids=INVALID_FRAMES.keys())
def test_invalid_frames_raise_one_clear_error(decoder: FrameDecoder, raw: bytes) -> None:
    """Every kind of invalid frame raises InvalidMessage carrying the frame and a reason."""
    with pytest.raises(InvalidMessage) as caught:
        decoder.decode(raw)
    assert caught.value.raw == raw
    assert caught.value.reason
    assert "invalid market message" in str(caught.value)


def test_number_caches_stay_bounded(decoder: FrameDecoder) -> None:
    """However many distinct prices arrive, the cache of parsed numbers stays bounded; sizes,
    which seldom repeat, are parsed each time and never cached."""
    limit = messages._CACHE_LIMIT
    for start in range(0, limit + 100, 500):
        trades = [
            _with(DOC_TRADE, price=f"0.{n:07d}", size=f"{n}.5") for n in range(start, start + 500)
        ]
        decoder.decode(json.dumps(trades))
    assert 0 < len(messages._PRICES) <= limit
    assert Decimal("1.5") not in messages._PRICES.values()
    [trade] = decoder.decode(frame(_with(DOC_TRADE, price="0.0000007", size="1.5")))
    assert isinstance(trade, LastTradePrice)
    assert (trade.price, trade.size) == (Decimal("0.0000007"), Decimal("1.5"))


def test_decimals_built_in_python_keep_their_own_exponent() -> None:
    """Events built from Decimals keep each Decimal as given: an equal one with another
    exponent seen before is not handed back ("0.4500" is not "0.45")."""
    first = LastTradePrice(YES, MARKET, Decimal("0.4500"), Decimal("10.00"), "BUY", "1")
    second = LastTradePrice(YES, MARKET, Decimal("0.45"), Decimal("10"), "BUY", "1")
    assert (str(first.price), str(first.size)) == ("0.4500", "10.00")
    assert (str(second.price), str(second.size)) == ("0.45", "10")


def test_oversized_frames_are_rejected_unparsed() -> None:
    """A frame over the limit is invalid even if it is valid JSON."""
    decoder = FrameDecoder(max_frame_bytes=100)
    with pytest.raises(InvalidMessage, match="exceeds 100"):
        decoder.decode(frame(DOC_BOOK))
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameDecoder(max_frame_bytes=0)


def test_encoded_events_decode_to_equal_events(decoder: FrameDecoder) -> None:
    """encode_events and decode are inverses, for one event and for arrays."""
    events = decoder.decode(frame(DOC_BOOK, DOC_PRICE_CHANGE, DOC_TRADE, DOC_TICK, DOC_BBA))
    assert isinstance(events, list)
    assert decoder.decode(encode_events(events)) == events
    assert decoder.decode(encode_events(events[1])) == [events[1]]


def test_client_frames_round_trip() -> None:
    """Subscribe and operation frames carry the protocol's field names and decode back."""
    initial = encode_subscribe([YES, NO], custom_feature_enabled=True)
    assert json.loads(initial) == {
        "assets_ids": [YES, NO],
        "type": "market",
        "initial_dump": True,
        "level": 2,
        "custom_feature_enabled": True,
    }
    assert decode_client_frame(initial) == Subscribe(
        assets_ids=(YES, NO), custom_feature_enabled=True
    )
    operation = encode_operation("unsubscribe", [NO])
    assert json.loads(operation)["operation"] == "unsubscribe"
    assert decode_client_frame(operation) == Operation(operation="unsubscribe", assets_ids=(NO,))
    assert decode_client_frame("PING") == "PING"
    assert decode_client_frame(b'{"type": "MARKET", "assets_ids": []}') == Subscribe(
        assets_ids=(), type="MARKET"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"HELLO",
        b'{"operation": "pause", "assets_ids": []}',
        b'{"type": "user", "markets": []}',
        b'{"type": "market", "level": 9}',
        b'{"assets_ids": []}',
        b'{"type": "market", "assets_ids": "not a list"}',
    ],
)
def test_invalid_client_frames(raw: bytes) -> None:
    """Anything else a client might send is an InvalidMessage (INVALID OPERATION)."""
    with pytest.raises(InvalidMessage):
        decode_client_frame(raw)


# -- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["0.5", "1.5", "-1", "NaN", "sNaN", "1e999", ".48", "", "0"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)

FIELDS = [
    "asset_id",
    "market",
    "timestamp",
    "bids",
    "asks",
    "price",
    "size",
    "side",
    "price_changes",
    "changes",
    "best_bid",
    "best_ask",
    "new_tick_size",
    "old_tick_size",
    "spread",
    "hash",
    "buys",
    "winning_asset_id",
]
events_ish = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["book", "price_change", "last_trade_price", "x"])},
    optional=dict.fromkeys(FIELDS, json_values),
)


def _decodes_or_is_invalid(raw: bytes | str) -> None:
    """The decoder's whole promise: events or a reply, or InvalidMessage; nothing else."""
    try:
        result = FrameDecoder().decode(raw)
    except InvalidMessage as exc:
        assert exc.kind in set(InvalidKind)
        return
    if isinstance(result, TextReply):
        return
    assert isinstance(result, list)
    assert all(type(event).__name__ in EVENT_CLASSES for event in result)


EVENT_CLASSES = {
    "Book",
    "PriceChange",
    "LastTradePrice",
    "TickSizeChange",
    "BestBidAsk",
    "NewMarket",
    "MarketResolved",
}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | st.text(max_size=200))
def test_random_bytes_never_crash_the_decoder(raw: bytes | str) -> None:
    """Arbitrary bytes and text decode to events or a reply, or raise InvalidMessage."""
    _decodes_or_is_invalid(raw)


# Any JSON document: every type, nested as deep as hypothesis goes, and sometimes wrapped in
# thousands more levels of arrays or objects, beyond any recursion limit.
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=30,
)


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """A JSON document nested ``depth`` levels deep around an arbitrary value."""
    inner = json.dumps(draw(any_json))
    depth = draw(st.sampled_from([0, 1, 2, 10, 500, 5_000, 50_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"event_type":', "}"), ('{"a":', "}")]))
    return opener * depth + inner + closer * depth


@settings(max_examples=200, deadline=None)
@given(deep_json() | any_json.map(json.dumps))
def test_arbitrary_json_of_any_depth_never_crashes_the_decoder(raw: str) -> None:
    """Arbitrary JSON, of any type and any depth, as text or bytes: events, a reply or
    InvalidMessage, never RecursionError."""
    _decodes_or_is_invalid(raw)
    _decodes_or_is_invalid(raw.encode("utf-8", "surrogatepass"))


@settings(max_examples=150, deadline=None)
@given(st.lists(events_ish, max_size=3) | events_ish)
def test_random_event_shaped_json_never_crashes_the_decoder(payload: Any) -> None:
    """Event-shaped JSON with random field values never raises anything but InvalidMessage."""
    raw = msgspec.json.encode(payload)
    try:
        result = FrameDecoder().decode(raw)
    except InvalidMessage:
        return
    assert isinstance(result, list)
    for event in result:
        assert type(event) in (Book, PriceChange, LastTradePrice)
