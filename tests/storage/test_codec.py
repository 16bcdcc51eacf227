"""Row encoding: exact decimal text, validation of every field, positions from fills. No I/O."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal

import pytest

from polymarket_agents.storage import (
    BookSnapshotRow,
    FillRow,
    LevelChange,
    MarketRow,
    PaperOrderRow,
    PriceChangeRow,
    Table,
    TickSizeChangeRow,
    TradeRow,
)
from polymarket_agents.storage._codec import (
    InvalidRow,
    encode_row,
    positions_from_fills,
    prepare,
    price_change_key,
)

D = Decimal


def price_change(**changes: object) -> PriceChangeRow:
    """A price change of one entry; ``changes`` replace fields of the row or the entry."""
    row: dict[str, object] = {"market": "0xm", "timestamp_ms": 1_757_908_892_351}
    entry: dict[str, object] = {
        "asset_id": "111",
        "price": D("0.5"),
        "size": D("200"),
        "side": "BUY",
        "hash": "56621a12",
        "best_bid": D("0.5"),
        "best_ask": D("1"),
    }
    for name, value in changes.items():
        (entry if name in entry else row)[name] = value
    return PriceChangeRow(**row, changes=(LevelChange(**entry),))  # type: ignore[arg-type]


def test_decimals_are_stored_as_their_exact_text() -> None:
    """Prices keep every digit, including trailing zeros; None stays null; a price
    change's entries are compact JSON arrays of their fields, in order."""
    table, params = encode_row(price_change(price=D("0.50"), size=D("219.217767"), best_ask=None))
    assert table is Table.PRICE_CHANGES
    assert params[2] == '[["111","0.50","219.217767","BUY","56621a12","0.5",null]]'


def test_a_price_change_is_keyed_by_a_digest_of_its_market_and_entries() -> None:
    """The key is the first 16 bytes of SHA-256 over the market's length, the market and
    the stored entries text: the same for the same event whichever path encoded it,
    different when the market or any entry differs."""
    _, params = encode_row(price_change())
    market, text, key = params[0], params[2], params[6]
    expected = hashlib.sha256(f"{len(str(market))}:{market}{text}".encode()).digest()[:16]
    assert key == expected == price_change_key(market, text)
    # The checked encoder (a list of entries, not a tuple) gives the same key.
    row = price_change()
    checked = PriceChangeRow(
        market=row.market,
        timestamp_ms=row.timestamp_ms,
        changes=list(row.changes),  # type: ignore[arg-type]
    )
    assert encode_row(checked)[1][6] == key
    assert encode_row(price_change(market="0xn"))[1][6] != key
    assert encode_row(price_change(size=D("201")))[1][6] != key
    # The length keeps the market and the entries apart: "0xm" + "[..." is not "0x" + "m[...".
    assert price_change_key("0x", "m" + str(text)) != key


def test_book_levels_are_compact_json_of_decimal_text() -> None:
    """Bids and asks become JSON arrays of [price, size] strings, in the order received."""
    row = BookSnapshotRow(
        asset_id="111",
        market="0xm",
        timestamp_ms=1,
        hash="9e4f",
        bids=((D(".48"), D("30")), (D("0.49"), D("20.5"))),
        asks=(),
    )
    _, params = encode_row(row)
    assert json.loads(str(params[4])) == [["0.48", "30"], ["0.49", "20.5"]]
    assert params[5] == "[]"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (price_change(side="buy"), "side must be"),
        (price_change(side=["BUY"]), "side must be"),
        (price_change(price=0.5), "price must be a finite Decimal"),
        (price_change(size=D("NaN")), "size must be a finite Decimal"),
        (price_change(best_bid=D("Infinity")), "best_bid must be a finite Decimal"),
        (price_change(asset_id=""), "asset_id must be a non-empty str"),
        (price_change(asset_id=111), "asset_id must be a non-empty str"),
        (price_change(timestamp_ms=-1), "timestamp_ms must be an int"),
        (price_change(timestamp_ms=True), "timestamp_ms must be an int"),
        (price_change(timestamp_ms=2**63), "timestamp_ms must be an int"),
        (price_change(hash=None), "hash must be a str"),
        (PriceChangeRow(market="m", timestamp_ms=1, changes=()), "changes must be a non-empty"),
        (
            PriceChangeRow(market="m", timestamp_ms=1, changes=(("a", D(1), D(1), "BUY"),)),  # type: ignore[arg-type]
            "changes must hold LevelChange entries",
        ),
        (
            BookSnapshotRow(asset_id="1", market="m", timestamp_ms=1, bids=((0.4, D(1)),)),  # type: ignore[arg-type]
            "bids must hold (Decimal, Decimal) pairs",
        ),
        (
            BookSnapshotRow(asset_id="1", market="m", timestamp_ms=1, asks=((D("NaN"), D(1)),)),
            "asks must hold finite",
        ),
        (
            BookSnapshotRow(asset_id="1", market="m", timestamp_ms=1, asks=(D(1),)),  # type: ignore[arg-type]
            "asks must be a sequence of (price, size) pairs",
        ),
        (
            PaperOrderRow(
                order_id="o",
                signal_id="s",
                market="m",
                token_id="t",
                side="BUY",
                price=D("0.4"),
                size=D(5),
                order_type="IOC",
                status="live",
                created_at_ms=1,
            ),
            "order_type must be one of",
        ),
        (
            FillRow(
                order_id="o",
                seq=-1,
                token_id="t",
                side="SELL",
                price=D(1),
                size=D(1),
                timestamp_ms=1,
            ),
            "seq must be an int",
        ),
        ("not a row", "not a storage row: str"),
        ({"event_type": "book"}, "not a storage row: dict"),
    ],
)
def test_invalid_rows_are_refused_with_a_reason(row: object, reason: str) -> None:
    """A row with a wrong type or value anywhere is refused, saying which field and why."""
    with pytest.raises(InvalidRow, match=re.escape(reason)):
        encode_row(row)


def test_prepare_groups_by_table_and_sets_invalid_rows_aside() -> None:
    """A batch is split by table in order; refused rows keep their batch index."""
    trade = TradeRow(
        asset_id="1", market="m", timestamp_ms=5, side="SELL", price=D("0.45"), size=D(3)
    )
    tick = TickSizeChangeRow(
        asset_id="1", market="m", timestamp_ms=6, old_tick_size=D("0.01"), new_tick_size=D("0.001")
    )
    market = MarketRow(condition_id="c", yes_token="y", no_token="n")
    groups, rejected = prepare(
        [price_change(), trade, 42, price_change(timestamp_ms=2), tick, market]
    )
    assert list(groups) == [
        Table.PRICE_CHANGES,
        Table.TRADES,
        Table.TICK_SIZE_CHANGES,
        Table.MARKETS,
    ]
    assert [params[1] for params in groups[Table.PRICE_CHANGES]] == [1_757_908_892_351, 2]
    assert [(r.index, r.row) for r in rejected] == [(2, 42)]


def test_subclasses_of_row_types_are_accepted() -> None:
    """A subclass of a row type encodes as its base type."""

    class TaggedTrade(TradeRow, frozen=True, kw_only=True):
        tag: str = ""

    row = TaggedTrade(
        asset_id="1", market="m", timestamp_ms=5, side="BUY", price=D(1), size=D(1), tag="x"
    )
    assert encode_row(row)[0] is Table.TRADES


def test_positions_sum_buys_minus_sells_with_fees() -> None:
    """Net size and cost per token: buys add, sells subtract, fees always cost."""

    def fill(seq: int, token: str, side: str, price: str, size: str, fee: str = "0") -> FillRow:
        return FillRow(
            order_id=f"o{seq}",
            seq=0,
            token_id=token,
            side=side,
            price=D(price),
            size=D(size),
            timestamp_ms=seq,
            fee=D(fee),
        )

    positions = positions_from_fills(
        [
            fill(1, "yes", "BUY", "0.40", "10", "0.01"),
            fill(2, "no", "BUY", "0.55", "10"),
            fill(3, "yes", "SELL", "0.50", "4"),
        ]
    )
    assert [(p.token_id, p.size, p.cost, p.fills) for p in positions] == [
        ("no", D("10"), D("5.50"), 1),
        ("yes", D("6"), D("2.01"), 2),
    ]
    assert positions[0].average_price == D("0.55")
