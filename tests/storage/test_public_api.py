"""The public surface of storage and agents' ingestion."""

from __future__ import annotations

import inspect

import polymarket_agents.agents as agents
import polymarket_agents.storage as storage


def test_exports_are_unique_documented_and_present() -> None:
    """Every name in __all__ is listed once and exists; classes and functions have a
    docstring. (Ruff's RUF022 keeps the list sorted.)"""
    for module in (storage, agents):
        assert len(set(module.__all__)) == len(module.__all__)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
