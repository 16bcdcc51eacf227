"""load_strategy: a strategy by name, its options converted, and every mistake explained."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from polymarket_agents.agents import (
    DEFAULT_STRATEGY,
    ComplementArbitrage,
    load_strategy,
    parse_strategy_options,
)
from polymarket_agents.core.async_utils import ConfigurationError

D = Decimal

PLAIN = '''
from decimal import Decimal


class Plain:
    """A strategy with every kind of option."""

    def __init__(self, *, count: int = 1, ratio: float = 0.5, price: Decimal = Decimal(0),
                 flag: bool = False, name: str = "", cap: Decimal | None = Decimal(1)) -> None:
        self.options = (count, ratio, price, flag, name, cap)

    def analyze(self, books, event):
        return None

    def resume(self, signal_ids):
        return 0


class NoResume:
    def analyze(self, books, event):
        return None


def build(**options):
    return Plain(**options)
'''


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain_strategy.py"
    path.write_text(PLAIN)
    return path


def test_the_default_is_complement_arbitrage() -> None:
    """DEFAULT_STRATEGY names ComplementArbitrage; defaults fill what options do not set."""
    strategy = load_strategy(
        DEFAULT_STRATEGY, ["min_edge=0.02"], defaults={"min_edge": D("0.1"), "max_notional": None}
    )
    assert isinstance(strategy, ComplementArbitrage)
    assert strategy.min_edge == D("0.02")
    assert strategy.max_notional is None


def test_options_are_converted_to_the_annotated_types(plain: Path) -> None:
    """int, float, Decimal, bool, str and an optional Decimal, from text."""
    strategy = load_strategy(
        f"{plain}:Plain",
        ["count=3", "ratio=0.25", "price=0.45", "flag=yes", "name=x=y", "cap=none"],
    )
    assert strategy.options == (3, 0.25, D("0.45"), True, "x=y", None)  # type: ignore[attr-defined]


def test_a_factory_function_with_kwargs_takes_options_as_text(plain: Path) -> None:
    """A callable with **kwargs accepts any option, as text, and only defaults it names."""
    strategy = load_strategy(f"{plain}:build", {"name": "n"}, defaults={"min_edge": D(1)})
    assert strategy.options[4] == "n"  # type: ignore[attr-defined]


def test_defaults_go_only_to_parameters_the_strategy_has(plain: Path) -> None:
    """The service's min_edge is not forced on a strategy without such a parameter."""
    strategy = load_strategy(f"{plain}:Plain", defaults={"min_edge": D(1), "count": 7})
    assert strategy.options[0] == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("no_colon", [], "must be package.module:Class"),
        ("no_such_module_here:X", [], "cannot import 'no_such_module_here'"),
        ("polymarket_agents.agents:NoSuchThing", [], "has no 'NoSuchThing'"),
        ("polymarket_agents.agents:DEFAULT_STRATEGY", [], "names a str, not a class"),
        ("{plain}:NoResume", [], "has no resume() method"),
        ("{plain}:Plain", ["nope=1"], "has no option 'nope' (its options: cap, count"),
        ("{plain}:Plain", ["count=many"], "strategy option count='many'"),
        ("{plain}:Plain", ["flag=maybe"], "must be on or off"),
        ("{plain}:Plain", ["price=NaN"], "must be a finite number"),
        ("missing/file.py:X", [], "no strategy file"),
        (DEFAULT_STRATEGY, ["min_edge=-1"], "min_edge must be >= 0"),
    ],
)
def test_mistakes_are_configuration_errors(
    plain: Path, spec: str, options: list[str], message: str
) -> None:
    """Each mistake is a ConfigurationError (exit 2 on the command line) saying what to fix."""
    with pytest.raises(ConfigurationError) as caught:
        load_strategy(spec.format(plain=plain), options)
    assert message in str(caught.value)


def test_a_module_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    """An exception while importing the user's module names the module and the error."""
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('oops')\n")
    with pytest.raises(ConfigurationError, match="RuntimeError: oops"):
        load_strategy(f"{path}:X")


def test_the_working_directory_is_importable(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """package.module:Class finds a module in the working directory, as uvicorn does."""
    monkeypatch.chdir(plain.parent)
    monkeypatch.syspath_prepend(str(plain.parent))
    strategy = load_strategy("plain_strategy:Plain", ["count=2"])
    assert strategy.options[0] == 2  # type: ignore[attr-defined]


def test_option_text_parsing() -> None:
    """Commas separate options only where the next key= starts; '-' in keys becomes '_'."""
    assert parse_strategy_options("a=1,b-c=x,y, d=2") == {"a": "1", "b_c": "x,y", "d": "2"}
    assert parse_strategy_options("") == {}
    with pytest.raises(ConfigurationError, match="key=value"):
        parse_strategy_options(["novalue"])
    with pytest.raises(ConfigurationError, match="given twice"):
        parse_strategy_options(["a=1", "a=2"])
