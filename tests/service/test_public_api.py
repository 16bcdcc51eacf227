"""The service's public surface and its place in the layers."""

from __future__ import annotations

import inspect
import subprocess
import sys

import polymarket_agents.service as service


def test_all_is_sorted_complete_and_documented() -> None:
    """__all__ is sorted; every class, function and public method in it has a docstring."""
    names = service.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        value = getattr(service, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, name
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if not attr.startswith("_") and (callable(member) or isinstance(member, property)):
                    assert member.__doc__, f"{name}.{attr}"


def test_the_service_never_imports_the_command_line() -> None:
    """Data flows down: importing the service loads no cli module and configures no logging."""
    code = (
        "import logging, sys, polymarket_agents.service\n"
        "assert 'polymarket_agents.cli' not in sys.modules\n"
        "assert not logging.getLogger().handlers\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_health_command_starts_without_the_service_stack() -> None:
    """`health` imports neither aiohttp nor rich: a container health check stays quick."""
    code = (
        "import sys\n"
        "from polymarket_agents.cli import main\n"
        "main(['health', '--url', 'http://127.0.0.1:9/healthz', '--timeout', '1', '-q'])\n"
        "heavy = [m for m in ('aiohttp', 'rich', 'prometheus_client', 'polymarket_agents.service')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
