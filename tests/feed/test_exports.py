"""The feed's public surface and its place in the layers."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import polymarket_agents.feed as feed
import polymarket_agents.feed.simulator as simulator


@pytest.mark.parametrize("package", [feed, simulator], ids=["feed", "simulator"])
def test_all_is_sorted_and_complete(package: object) -> None:
    """Each facade's __all__ is sorted and every name in it exists and is documented."""
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        value = getattr(package, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, name


def test_feed_imports_no_higher_layer() -> None:
    """Importing the feed loads neither agents, storage nor service code."""
    code = (
        "import sys, polymarket_agents.feed, polymarket_agents.feed.simulator\n"
        "bad = [m for m in sys.modules if m.split('.')[:2] in ("
        "['polymarket_agents', 'agents'], ['polymarket_agents', 'storage'],"
        " ['polymarket_agents', 'service'], ['polymarket_agents', 'cli'])]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
