"""The feed's public surface."""

from __future__ import annotations

import inspect

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
