"""The README's "Write a strategy" example is real code: it loads, takes its options, trades."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from polymarket_agents.agents import BUY, load_strategy
from polymarket_agents.feed import Book, MarketBooks, OrderBook, OrderLevel

README = Path(__file__).resolve().parents[1] / "README.md"
D = Decimal


def test_the_readme_strategy_runs(tmp_path: Path) -> None:
    """Copied as the README says, run with the README's options, it buys a cheap YES."""
    block = re.search(r"```python\n(# my_strategies\.py\n.*?)```", README.read_text(), re.S)
    assert block is not None, "the README lost its strategy example"
    path = tmp_path / "my_strategies.py"
    path.write_text(block.group(1))
    strategy = load_strategy(f"{path}:ValueYes", ["fair=0.6", "size=10"])
    assert strategy.resume(["anything#0"]) == 0

    market = "0x" + "ef" * 32
    books = MarketBooks(market, OrderBook("1", market), OrderBook("2", market))
    for book, ask in ((books.yes, "0.52"), (books.no, "0.49")):
        snapshot = Book(
            asset_id=book.asset_id,
            market=market,
            timestamp="1",
            bids=(OrderLevel(D(ask) - D("0.02"), D(50)),),
            asks=(OrderLevel(D(ask), D(50)),),
        )
        book.apply_book(snapshot)
    analysis = strategy.analyze(books, snapshot)
    assert analysis is not None
    assert analysis.edge == D("0.08")
    (order,) = analysis.orders
    assert (order.token_id, order.price, order.size, order.side) == ("1", D("0.52"), D(10), BUY)
