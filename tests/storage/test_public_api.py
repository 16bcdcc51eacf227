"""The public surface of storage and agents' ingestion, and the layering they keep."""

from __future__ import annotations

import inspect
import subprocess
import sys

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


def test_storage_imports_no_sibling_or_higher_layer() -> None:
    """Importing storage pulls in core, aiosqlite and msgspec (and what they import) only:
    no feed, agents or service module."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import polymarket_agents.storage\n"
        "new = set(sys.modules) - before\n"
        "allowed = ('aiosqlite', 'msgspec', 'typing_extensions')\n"
        "ours = ('polymarket_agents.core', 'polymarket_agents.storage')\n"
        "bad = sorted(m for m in new\n"
        "             if m.split('.')[0] not in sys.stdlib_module_names\n"
        "             and m.split('.')[0] not in allowed\n"
        "             and not m.startswith(ours) and m != 'polymarket_agents')\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
