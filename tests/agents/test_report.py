"""build_report: trades with names, positions open and settled, P&L per market and per run,
signals seen, traded and refused, all from what the store holds."""

from __future__ import annotations

from decimal import Decimal

from polymarket_agents.agents import build_report
from polymarket_agents.storage import (
    AccountRecord,
    FillRow,
    MarketResolutionRow,
    MarketRow,
    PaperOrderRow,
    RunRecord,
)

D = Decimal
A = MarketRow(condition_id="0xa", yes_token="ay", no_token="an", slug="will-a", question="A?")
B = MarketRow(condition_id="0xb", yes_token="by", no_token="bn", slug="will-b", question="B?")
ACCOUNT = AccountRecord(id=3, name="alice", opened_at_ms=0, closed_at_ms=None, starting_cash=D(100))


def order(
    order_id: str, signal: str | None, token: str, market: str, **fields: object
) -> PaperOrderRow:
    values: dict[str, object] = {
        "order_id": order_id,
        "signal_id": signal,
        "market": market,
        "token_id": token,
        "side": "BUY",
        "price": D("0.4"),
        "size": D(10),
        "order_type": "FOK",
        "status": "matched",
        "created_at_ms": 1_000,
        "filled_size": D(10),
        "account_id": 3,
    }
    values.update(fields)
    return PaperOrderRow(**values)  # type: ignore[arg-type]


def fill(order_id: str, token: str, market: str, side: str, price: str, size: int, at: int,
         fee: str = "0", kind: str = "trade") -> FillRow:  # fmt: skip
    return FillRow(
        order_id=order_id,
        seq=0,
        token_id=token,
        side=side,
        price=D(price),
        size=D(size),
        timestamp_ms=at,
        market=market,
        fee=D(fee),
        account_id=3,
        kind=kind,
    )


def test_a_pair_a_sale_a_settlement_and_a_refusal() -> None:
    """Market A: a YES+NO pair bought at 0.45 + 0.47 (worth 1 a pair) with fees. Market B:
    YES bought at 0.40, half sold at 0.50, the rest settled at 1 when YES won. A third
    signal was refused for want of cash."""
    orders = [
        order("o1", "arb:0xa:0:0.45:0.47#0", "ay", "0xa", price=D("0.45")),
        order("o2", "arb:0xa:0:0.45:0.47#1", "an", "0xa", price=D("0.47")),
        order("o3", "mr:0xb:0:by:0.4#0", "by", "0xb", created_at_ms=2_000),
        order("o4", None, "by", "0xb", side="SELL", size=D(5), filled_size=D(5),
              created_at_ms=3_000),
        order("o5", "mr:0xb:1:by:0.3#0", "by", "0xb", status="unmatched", filled_size=D(0),
              error="not enough balance / allowance", created_at_ms=3_500),
    ]  # fmt: skip
    fills = [
        fill("o1", "ay", "0xa", "BUY", "0.45", 10, 1_000, fee="0.01"),
        fill("o2", "an", "0xa", "BUY", "0.47", 10, 1_000, fee="0.01"),
        fill("o3", "by", "0xb", "BUY", "0.40", 10, 2_000),
        fill("o4", "by", "0xb", "SELL", "0.50", 5, 3_000),
        fill("settle:0xb", "by", "0xb", "SELL", "1", 5, 4_000, kind="settlement"),
    ]
    runs = [
        RunRecord(id=1, account_id=3, started_at_ms=500, ended_at_ms=2_500, strategy="x:Arb",
                  counters={"events": 40, "signals": 3, "submitted": 2}),
        RunRecord(id=2, account_id=3, started_at_ms=2_600, ended_at_ms=None, strategy="x:Mr",
                  counters={"events": 9, "signals": 2, "submitted": 2}),
    ]  # fmt: skip
    report = build_report(
        account=ACCOUNT,
        orders=orders,
        fills=fills,
        markets=[A, B],
        runs=runs,
        resolutions=[MarketResolutionRow(market="0xb", winning_asset_id="by", timestamp_ms=4_000)],
        marks={"ay": D("0.30"), "an": D("0.60")},
    )
    # Cash: 100 - 9.22 (pair + fees) - 4 + 2.5 + 5 = 94.28; the pair is worth 10.
    assert report.cash == D("94.28")
    assert report.positions_value == D(10)
    assert report.equity == D("104.28")
    assert report.total_pnl == D("4.28")
    assert report.realized_pnl == D("3.5")  # 0.5 + 3.0 on B
    assert report.fees == D("0.02")
    assert (report.account, report.account_id) == ("alice", 3)

    assert [(t.slug, t.outcome, t.kind) for t in report.trades] == [
        ("will-a", "YES", "trade"),
        ("will-a", "NO", "trade"),
        ("will-b", "YES", "trade"),
        ("will-b", "YES", "trade"),
        ("will-b", "YES", "settlement"),
    ]
    assert report.trades[0].signal_id == "arb:0xa:0:0.45:0.47#0"
    status = {(p.slug, p.outcome): p.status for p in report.positions}
    assert status == {("will-a", "YES"): "open", ("will-a", "NO"): "open",
                      ("will-b", "YES"): "settled won"}  # fmt: skip

    by_market = {m.slug: m for m in report.markets}
    assert by_market["will-a"].total_pnl == D("0.78")  # 10 pairs worth 10, cost 9.22
    assert by_market["will-b"].realized_pnl == D("3.5")
    assert by_market["will-b"].resolved == "YES"
    assert sum(m.total_pnl for m in report.markets) == report.total_pnl

    first, second = report.runs
    assert (first.events, first.signals_seen, first.signals_traded, first.fills) == (40, 3, 2, 3)
    assert first.fees == D("0.02")
    assert (second.signals_traded, second.signals_refused, second.fills) == (0, 1, 2)
    assert second.realized_pnl == D("3.5")

    assert report.signals.seen == 5
    assert report.signals.traded == 2
    assert report.signals.refused == {"not enough balance / allowance": 1}


def test_an_empty_account() -> None:
    """No orders: starting cash is all there is."""
    report = build_report(account=ACCOUNT, orders=[], fills=[])
    assert (report.cash, report.equity, report.total_pnl) == (D(100), D(100), D(0))
    assert report.trades == ()
    assert report.positions == ()
    assert report.markets == ()
    assert report.runs == ()


def test_refusals_are_counted_by_reason_whatever_the_amounts() -> None:
    """Two signals refused by the same limit at different amounts make one reason."""
    orders = [
        order(f"o{n}", f"s{n}#0", "ay", "0xa", status="rejected", filled_size=D(0),
              error=f"risk: exposure of {amount} USDC above 150")
        for n, amount in enumerate(("239.16", "199.99"))
    ]  # fmt: skip
    report = build_report(account=ACCOUNT, orders=orders, fills=[], markets=[A])
    assert report.signals.refused == {"risk: exposure above 150": 2}
