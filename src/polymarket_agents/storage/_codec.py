"""Rows to SQL parameters and back: validation and exact decimal text, no I/O.

Encoding is on the ingestion hot path, so it is written as plain per-type functions rather
than anything generic; each refuses a row whose fields have the wrong types or values by
raising :class:`InvalidRow`, which the store reports instead of writing the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from hashlib import sha256 as _sha256
from typing import Any, TypeAlias

import msgspec

from ._rows import (
    FILL_KINDS,
    ORDER_TYPES,
    SIDES,
    BookSnapshotRow,
    FillRow,
    LevelChange,
    MarketResolutionRow,
    MarketRow,
    PaperOrderRow,
    Position,
    PriceChangeRow,
    Table,
    TickSizeChangeRow,
    TradeRow,
)
from ._store import RejectedRow

__all__ = [
    "InvalidRow",
    "Params",
    "encode_row",
    "fill_from_record",
    "order_from_record",
    "positions_from_fills",
    "prepare",
    "price_change_key",
]

Params: TypeAlias = tuple[object, ...]

_INT64_MAX = 2**63 - 1
_JSON = msgspec.json.Encoder()


class InvalidRow(Exception):
    """A row has a field of the wrong type or value; the message says which."""


def _text(value: object, name: str) -> str:
    if type(value) is str and value:
        return value
    raise InvalidRow(f"{name} must be a non-empty str, not {value!r}")


def _opt_text(value: object, name: str) -> str:
    if type(value) is str:
        return value
    raise InvalidRow(f"{name} must be a str, not {value!r}")


def _int(value: object, name: str) -> int:
    # bool is an int subclass; a True timestamp is a bug, not a value.
    if type(value) is int and 0 <= value <= _INT64_MAX:
        return value
    raise InvalidRow(f"{name} must be an int in [0, 2**63), not {value!r}")


def _dec(value: object, name: str) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    raise InvalidRow(f"{name} must be a finite Decimal, not {value!r}")


def _opt_dec(value: object, name: str) -> str | None:
    return None if value is None else _dec(value, name)


def _side(value: object) -> str:
    if type(value) is str and value in SIDES:
        return value
    raise InvalidRow(f"side must be 'BUY' or 'SELL', not {value!r}")


def _levels(levels: object, name: str) -> str:
    """``[["0.48","30"],...]``: the levels as compact JSON with decimal text."""
    try:
        pairs = [
            [str(price), str(size)]
            for price, size in levels  # type: ignore[attr-defined]
            if isinstance(price, Decimal) and isinstance(size, Decimal)
        ]
        complete = len(pairs) == len(levels)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidRow(f"{name} must be a sequence of (price, size) pairs: {exc}") from None
    if not complete:
        raise InvalidRow(f"{name} must hold (Decimal, Decimal) pairs, not {levels!r}")
    text = _JSON.encode(pairs).decode()
    # The text of a finite Decimal never holds "N" or "I" (only NaN, sNaN, Infinity do),
    # so one scan of the output replaces a finiteness check per value.
    if "N" in text or "I" in text:
        raise InvalidRow(f"{name} must hold finite prices and sizes, not {levels!r}")
    return text


def _opt_int(value: object, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _seq_ok(seq: object, ahead: object) -> bool:
    """Whether an event's order fields are plainly valid (the hot paths' quick check)."""
    return (seq is None or (type(seq) is int and 0 <= seq <= _INT64_MAX)) and (
        type(ahead) is int and 0 <= ahead <= _INT64_MAX
    )


def _market(row: MarketRow) -> Params:
    return (
        _text(row.condition_id, "condition_id"),
        _text(row.yes_token, "yes_token"),
        _text(row.no_token, "no_token"),
        _opt_text(row.question, "question"),
        _opt_text(row.slug, "slug"),
        _dec(row.tick_size, "tick_size"),
        _dec(row.min_size, "min_size"),
        bool(row.neg_risk),
        bool(row.active),
        _int(row.updated_at_ms, "updated_at_ms"),
    )


def _book(row: BookSnapshotRow) -> Params:
    return (
        _text(row.asset_id, "asset_id"),
        _opt_text(row.market, "market"),
        _int(row.timestamp_ms, "timestamp_ms"),
        _opt_text(row.hash, "hash"),
        _levels(row.bids, "bids"),
        _levels(row.asks, "asks"),
        _int(row.received_at_ms, "received_at_ms"),
        _opt_int(row.event_seq, "event_seq"),
        _int(row.books_ahead, "books_ahead"),
        _opt_dec(row.tick_size, "tick_size"),
        _opt_dec(row.last_trade_price, "last_trade_price"),
    )


def _price_change(row: PriceChangeRow) -> Params:
    # The hot path: one condition over plain fields per entry, no calls per field. A row
    # it does not accept exactly goes to the checked encoder, which says what is wrong.
    ts, received, changes = row.timestamp_ms, row.received_at_ms, row.changes
    if (
        type(row.market) is str
        and type(ts) is int
        and 0 <= ts <= _INT64_MAX
        and type(received) is int
        and 0 <= received <= _INT64_MAX
        and _seq_ok(row.event_seq, row.books_ahead)
        and type(changes) is tuple
        and changes
    ):
        for change in changes:
            if type(change) is not LevelChange:
                break
            asset, side, price, size = change.asset_id, change.side, change.price, change.size
            best_bid, best_ask = change.best_bid, change.best_ask
            if not (
                type(asset) is str
                and asset
                and (side == "BUY" or side == "SELL")
                and type(change.hash) is str
                and type(price) is Decimal
                and price.is_finite()
                and type(size) is Decimal
                and size.is_finite()
                and (best_bid is None or (type(best_bid) is Decimal and best_bid.is_finite()))
                and (best_ask is None or (type(best_ask) is Decimal and best_ask.is_finite()))
            ):
                break
        else:
            text, key = _changes(row.market, changes)
            return (row.market, ts, text, received, row.event_seq, row.books_ahead, key)
    return _price_change_checked(row)


def price_change_key(market: object, changes: object) -> bytes:
    """The 16-byte key that makes a stored price change unique with its timestamp: the
    first half of the SHA-256 of ``<characters in market>:<market><changes>``, the stored
    texts (PostgreSQL computes the same from its columns, so either database can fill it).

    The event's identity is all of its entries, about 400 bytes of text with real asset
    ids: in a key of its own, every insert in a pooled feed's order rewrote pages all
    over a table kept in that order. A digest keeps the key small and the table in the
    order rows arrive; two different events of one timestamp sharing 128 bits of a
    SHA-256 is not a case to plan for.
    """
    return _digest(market, str(changes).encode("utf-8", "surrogatepass"))


def _digest(market: object, changes: bytes) -> bytes:
    """:func:`price_change_key` of the entries' UTF-8 text."""
    market_text = market if type(market) is str else ""
    prefix = f"{len(market_text)}:{market_text}".encode("utf-8", "surrogatepass")
    return _sha256(prefix + changes).digest()[:16]


def _changes(market: object, changes: Sequence[object]) -> tuple[str, bytes]:
    """A price change's entries as the compact JSON stored, and its key: the key hashes
    the encoder's bytes, not the text encoded again."""
    try:
        encoded = _JSON.encode(changes)
        return encoded.decode(), _digest(market, encoded)
    except UnicodeError as exc:  # a lone surrogate: no UTF-8 text holds it
        raise InvalidRow(f"changes hold text that cannot be stored: {exc}") from None


def _level_change(change: object) -> tuple[object, ...]:
    if not isinstance(change, LevelChange):
        raise InvalidRow(f"changes must hold LevelChange entries, not {change!r}")
    return (
        _text(change.asset_id, "asset_id"),
        _dec(change.price, "price"),
        _dec(change.size, "size"),
        _side(change.side),
        _opt_text(change.hash, "hash"),
        _opt_dec(change.best_bid, "best_bid"),
        _opt_dec(change.best_ask, "best_ask"),
    )


def _price_change_checked(row: PriceChangeRow) -> Params:
    changes = row.changes
    if not isinstance(changes, tuple | list) or not changes:
        raise InvalidRow(f"changes must be a non-empty tuple of LevelChange, not {changes!r}")
    market = _opt_text(row.market, "market")
    text, key = _changes(market, [_level_change(change) for change in changes])
    return (
        market,
        _int(row.timestamp_ms, "timestamp_ms"),
        text,
        _int(row.received_at_ms, "received_at_ms"),
        _opt_int(row.event_seq, "event_seq"),
        _int(row.books_ahead, "books_ahead"),
        key,
    )


def _trade(row: TradeRow) -> Params:
    # The hot path, as for price changes.
    asset, market, ts, side = row.asset_id, row.market, row.timestamp_ms, row.side
    price, size, fee_rate, received = row.price, row.size, row.fee_rate_bps, row.received_at_ms
    if (
        type(asset) is str
        and asset
        and type(market) is str
        and type(row.transaction_hash) is str
        and type(ts) is int
        and 0 <= ts <= _INT64_MAX
        and type(received) is int
        and 0 <= received <= _INT64_MAX
        and (side == "BUY" or side == "SELL")
        and type(price) is Decimal
        and price.is_finite()
        and type(size) is Decimal
        and size.is_finite()
        and type(fee_rate) is Decimal
        and fee_rate.is_finite()
        and _seq_ok(row.event_seq, row.books_ahead)
    ):
        return (
            asset,
            market,
            ts,
            side,
            str(price),
            str(size),
            str(fee_rate),
            row.transaction_hash,
            received,
            row.event_seq,
            row.books_ahead,
        )
    return _trade_checked(row)


def _trade_checked(row: TradeRow) -> Params:
    return (
        _text(row.asset_id, "asset_id"),
        _opt_text(row.market, "market"),
        _int(row.timestamp_ms, "timestamp_ms"),
        _side(row.side),
        _dec(row.price, "price"),
        _dec(row.size, "size"),
        _dec(row.fee_rate_bps, "fee_rate_bps"),
        _opt_text(row.transaction_hash, "transaction_hash"),
        _int(row.received_at_ms, "received_at_ms"),
        _opt_int(row.event_seq, "event_seq"),
        _int(row.books_ahead, "books_ahead"),
    )


def _tick_size_change(row: TickSizeChangeRow) -> Params:
    return (
        _text(row.asset_id, "asset_id"),
        _opt_text(row.market, "market"),
        _int(row.timestamp_ms, "timestamp_ms"),
        _dec(row.old_tick_size, "old_tick_size"),
        _dec(row.new_tick_size, "new_tick_size"),
        _int(row.received_at_ms, "received_at_ms"),
        _opt_int(row.event_seq, "event_seq"),
        _int(row.books_ahead, "books_ahead"),
    )


def _order(row: PaperOrderRow) -> Params:
    if type(row.order_type) is not str or row.order_type not in ORDER_TYPES:
        raise InvalidRow(f"order_type must be one of {sorted(ORDER_TYPES)}, not {row.order_type!r}")
    return (
        _text(row.order_id, "order_id"),
        None if row.signal_id is None else _text(row.signal_id, "signal_id"),
        _opt_text(row.market, "market"),
        _text(row.token_id, "token_id"),
        _side(row.side),
        _dec(row.price, "price"),
        _dec(row.size, "size"),
        row.order_type,
        _text(row.status, "status"),
        _int(row.created_at_ms, "created_at_ms"),
        _dec(row.filled_size, "filled_size"),
        _int(row.updated_at_ms, "updated_at_ms"),
        _int(row.revision, "revision"),
        _opt_text(row.error, "error"),
        _int(row.account_id, "account_id"),
    )


def _fill(row: FillRow) -> Params:
    return (
        _text(row.order_id, "order_id"),
        _int(row.seq, "seq"),
        _text(row.token_id, "token_id"),
        _side(row.side),
        _dec(row.price, "price"),
        _dec(row.size, "size"),
        _int(row.timestamp_ms, "timestamp_ms"),
        _opt_text(row.market, "market"),
        _dec(row.fee, "fee"),
        _int(row.account_id, "account_id"),
        _fill_kind(row.kind),
    )


def _fill_kind(value: object) -> str:
    if type(value) is str and value in FILL_KINDS:
        return value
    raise InvalidRow(f"kind must be one of {sorted(FILL_KINDS)}, not {value!r}")


def _resolution(row: MarketResolutionRow) -> Params:
    return (
        _text(row.market, "market"),
        _text(row.winning_asset_id, "winning_asset_id"),
        _int(row.timestamp_ms, "timestamp_ms"),
        _int(row.received_at_ms, "received_at_ms"),
        _opt_int(row.event_seq, "event_seq"),
    )


_ENCODERS: dict[type, tuple[Table, Callable[[Any], Params]]] = {
    MarketRow: (Table.MARKETS, _market),
    BookSnapshotRow: (Table.BOOK_SNAPSHOTS, _book),
    PriceChangeRow: (Table.PRICE_CHANGES, _price_change),
    TradeRow: (Table.TRADES, _trade),
    TickSizeChangeRow: (Table.TICK_SIZE_CHANGES, _tick_size_change),
    PaperOrderRow: (Table.PAPER_ORDERS, _order),
    FillRow: (Table.FILLS, _fill),
    MarketResolutionRow: (Table.MARKET_RESOLUTIONS, _resolution),
}


def _encoder(row: object) -> tuple[Table, Callable[[Any], Params]]:
    entry = _ENCODERS.get(type(row))
    if entry is None:
        # Subclasses of the row types are rare; look them up the slow way.
        for cls, found in _ENCODERS.items():
            if isinstance(row, cls):
                return found
        raise InvalidRow(f"not a storage row: {type(row).__qualname__}")
    return entry


def encode_row(row: object) -> tuple[Table, Params]:
    """The table and the ``INSERT`` parameters for one row.

    Args:
        row: Any object; only the row types of :mod:`polymarket_agents.storage` encode.

    Returns:
        The row's table and its parameters, in the order of ``INSERT_SQL[table]``.

    Raises:
        InvalidRow: If ``row`` is not a row or a field has the wrong type or value.
    """
    table, encode = _encoder(row)
    return table, encode(row)


def prepare(rows: Sequence[object]) -> tuple[dict[Table, list[Params]], list[RejectedRow]]:
    """Encode a batch, grouping parameters by table and setting invalid rows aside.

    Args:
        rows: The batch.

    Returns:
        The parameters per table, in batch order, and the rows refused.
    """
    groups: dict[Table, list[Params]] = {}
    rejected: list[RejectedRow] = []
    encoders = _ENCODERS
    for index, row in enumerate(rows):
        try:
            table, encode = encoders.get(type(row)) or _encoder(row)
            params = encode(row)
        except InvalidRow as exc:
            rejected.append(RejectedRow(index, row, str(exc)))
            continue
        group = groups.get(table)
        if group is None:
            groups[table] = [params]
        else:
            group.append(params)
    return groups, rejected


def order_from_record(record: Sequence[Any]) -> PaperOrderRow:
    """A :class:`PaperOrderRow` from a ``paper_orders`` record (columns in insert order)."""
    return PaperOrderRow(
        order_id=record[0],
        signal_id=record[1],
        market=record[2],
        token_id=record[3],
        side=record[4],
        price=Decimal(record[5]),
        size=Decimal(record[6]),
        order_type=record[7],
        status=record[8],
        created_at_ms=record[9],
        filled_size=Decimal(record[10]),
        updated_at_ms=record[11],
        revision=record[12],
        error=record[13],
        account_id=record[14] if len(record) > 14 else 1,
    )


def fill_from_record(record: Sequence[Any]) -> FillRow:
    """A :class:`FillRow` from a ``fills`` record (columns in insert order)."""
    return FillRow(
        order_id=record[0],
        seq=record[1],
        token_id=record[2],
        side=record[3],
        price=Decimal(record[4]),
        size=Decimal(record[5]),
        timestamp_ms=record[6],
        market=record[7],
        fee=Decimal(record[8]),
        account_id=record[9] if len(record) > 9 else 1,
        kind=record[10] if len(record) > 10 else "trade",
    )


def positions_from_fills(fills: Sequence[FillRow]) -> list[Position]:
    """Net size and cost per token: buys add, sells subtract, fees always cost.

    Args:
        fills: Fills in any order.

    Returns:
        One :class:`Position` per token, sorted by token id.
    """
    totals: dict[str, tuple[Decimal, Decimal, int]] = {}
    zero = Decimal(0)
    for fill in fills:
        size, cost, count = totals.get(fill.token_id, (zero, zero, 0))
        notional = fill.price * fill.size
        if fill.side == "BUY":
            size, cost = size + fill.size, cost + notional + fill.fee
        else:
            size, cost = size - fill.size, cost - notional + fill.fee
        totals[fill.token_id] = (size, cost, count + 1)
    return [
        Position(token_id=token, size=size, cost=cost, fills=count)
        for token, (size, cost, count) in sorted(totals.items())
    ]
