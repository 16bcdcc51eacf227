"""Gamma market listings: parsing JSON-string fields, and fetching from the simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from polymarket_agents.feed import InvalidMessage, MarketInfo, fetch_markets, parse_markets

from .conftest import MakeSimulator

# A real Gamma /markets row (Polymarket/agents examples/ten_markets.json, MIT), trimmed.
REAL_ROW: dict[str, Any] = {
    "id": "503051",
    "question": "NVIDIA largest company in July?",
    "conditionId": "0xd6736893caeffd692370e128a99abfba406f465b7405cd65e264be744e36e991",
    "slug": "nvidia-largest-company-in-july",
    "endDate": "2024-07-31T12:00:00Z",
    "liquidity": "3172.7863",
    "outcomes": '["Yes", "No"]',
    "outcomePrices": '["0.12", "0.88"]',
    "volume": "12505.366824",
    "active": True,
    "closed": False,
    "archived": False,
    "questionID": "0x6d5fc9a6810a122952ff6d3758949606d7e659fc6076e397a26ec43265f4efd1",
    "enableOrderBook": True,
    "orderPriceMinTickSize": 0.01,
    "orderMinSize": 5,
    "volumeNum": 12505.37,
    "clobTokenIds": (
        '["41773628807355604611259869562238271101058447112886342695423693538727885810044", '
        '"85384408245980885307542492589525110523370895012942727993857726624010743972899"]'
    ),
    "acceptingOrders": True,
    "negRisk": False,
    "events": [{"id": "11345", "ticker": "nvidia-largest-company-in-july"}],
}


def test_real_row_parses_json_string_fields() -> None:
    """outcomes, outcomePrices and clobTokenIds are decoded from their JSON strings."""
    [info] = parse_markets(json.dumps([REAL_ROW]))
    assert info.condition_id == REAL_ROW["conditionId"]
    assert info.yes_token.startswith("417736")
    assert info.no_token.startswith("853844")
    assert info.token_ids == (info.yes_token, info.no_token)
    assert info.outcomes == ("Yes", "No")
    assert info.outcome_prices == (Decimal("0.12"), Decimal("0.88"))
    assert info.tick_size == Decimal("0.01")
    assert info.min_size == Decimal(5)
    assert info.question_id == REAL_ROW["questionID"]
    assert info.tradable


def test_non_binary_and_malformed_rows_are_skipped() -> None:
    """Rows without two tokens, or with broken fields, are left out; the rest survive."""
    no_tokens = {**REAL_ROW, "clobTokenIds": "[]"}
    three = {**REAL_ROW, "clobTokenIds": '["1", "2", "3"]', "outcomes": '["A", "B", "C"]'}
    broken = {**REAL_ROW, "clobTokenIds": "not json"}
    wrong_type = {**REAL_ROW, "active": "yes"}
    no_condition = {k: v for k, v in REAL_ROW.items() if k != "conditionId"}
    closed = {**REAL_ROW, "closed": True}
    rows = [no_tokens, three, broken, wrong_type, no_condition, REAL_ROW, closed]
    infos = parse_markets(json.dumps(rows).encode())
    assert [info.closed for info in infos] == [False, True]
    assert not infos[1].tradable


@pytest.mark.parametrize("payload", [b"{}", b"nope", b'"markets"'])
def test_a_payload_that_is_not_a_list_is_invalid(payload: bytes) -> None:
    """A response that is not a JSON array raises InvalidMessage."""
    with pytest.raises(InvalidMessage):
        parse_markets(payload)


async def test_fetch_pages_through_the_simulator(make_simulator: MakeSimulator) -> None:
    """fetch_markets pages with limit/offset over HTTP and finds every simulated market."""
    sim = await make_simulator(markets=5)
    markets = await fetch_markets(sim.http_url, page_size=2)
    assert markets == sim.markets()
    assert all(isinstance(m, MarketInfo) and m.tradable for m in markets)
    assert len(await fetch_markets(sim.http_url, max_markets=3)) == 3


async def test_simulator_listing_has_gamma_fields(make_simulator: MakeSimulator) -> None:
    """GET /markets returns Gamma-shaped rows with JSON-string fields and query filters."""
    sim = await make_simulator(markets=3)
    target = sim.markets()[1]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.http_url}/markets") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            rows = await response.json()
        query = {"clob_token_ids": target.no_token}
        async with http.get(f"{sim.http_url}/markets", params=query) as response:
            [row] = await response.json()
        async with http.get(f"{sim.http_url}/markets", params={"closed": "true"}) as response:
            assert await response.json() == []
        async with http.get(f"{sim.http_url}/nothing/here") as response:
            assert response.status == 404
    assert len(rows) == 3
    assert row["conditionId"] == target.condition_id
    assert json.loads(row["clobTokenIds"]) == [target.yes_token, target.no_token]
    assert json.loads(row["outcomes"]) == ["Yes", "No"]
    assert isinstance(row["outcomePrices"], str)
    assert isinstance(row["volume"], str)
    assert row["orderMinSize"] == 5
    assert row["bestBid"] < row["bestAsk"]
