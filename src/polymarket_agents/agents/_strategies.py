"""Strategies by name: ``package.module:Class`` or ``path/to/file.py:Class``, with options.

The command line's ``--strategy`` and ``--strategy-option key=value`` end up here::

    strategy = load_strategy("examples.mean_reversion:MeanReversion", {"threshold": "0.04"})

Options are text; each is converted to the type its parameter is annotated with
(``Decimal``, ``int``, ``float``, ``bool``, ``str``, or any of them ``| None``), so a
strategy class declares its settings once, as ordinary keyword arguments.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from polymarket_agents.core.async_utils import ConfigurationError

from ._analysis import Strategy

__all__ = ["DEFAULT_STRATEGY", "convert_option", "load_strategy", "parse_strategy_options"]

DEFAULT_STRATEGY = "polymarket_agents.agents:ComplementArbitrage"
"""The strategy the service runs unless told otherwise."""

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Several options in one text (an environment variable): split at a comma only where the
# next option's ``key=`` starts, so that a value may itself hold commas.
_SPLIT = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_-]*=)")


def parse_strategy_options(items: Iterable[str] | str) -> dict[str, str]:
    """``key=value`` texts as a dict; ``-`` in a key is read as ``_``.

    Args:
        items: Texts such as ``"threshold=0.04"``, or one text of them joined by commas.

    Returns:
        The options, by key, in the order given.

    Raises:
        ConfigurationError: On a text without ``=``, a key that is not a name, or a key
            given twice.
    """
    if isinstance(items, str):
        items = _SPLIT.split(items) if items.strip() else []
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not _KEY.match(key):
            raise ConfigurationError(f"a strategy option must be key=value, not {item!r}")
        if key in options:
            raise ConfigurationError(f"strategy option {key!r} is given twice")
        options[key] = value.strip()
    return options


def _import(spec: str) -> Any:
    """The object ``spec`` names: ``module:attr`` or ``file.py:attr`` (attr may be dotted)."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise ConfigurationError(
            f"--strategy must be package.module:Class or path/to/file.py:Class, not {spec!r}"
        )
    try:
        if target.endswith(".py"):
            module = _import_file(Path(target))
        else:
            # As uvicorn and gunicorn do: the working directory is importable, so that a
            # strategy next to the user's other files needs no installing.
            cwd = os.getcwd()
            if cwd not in sys.path:
                sys.path.insert(0, cwd)
            module = importlib.import_module(target)
    except ConfigurationError:
        raise
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {target!r} for --strategy {spec}: {exc} (run from the directory "
            "that holds it, install it, or give a path/to/file.py)"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"importing {target!r} for --strategy {spec} raised {type(exc).__name__}: {exc}"
        ) from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigurationError(
                f"{target!r} has no {attribute!r} (--strategy {spec})"
            ) from None
    return found


def _import_file(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise ConfigurationError(f"no strategy file {str(path)!r}")
    name = f"_strategy_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigurationError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before it runs: dataclasses and typing look their module up by name.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be on or off (true/false, 1/0), not {text!r}")


def _to_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"must be a decimal number, not {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"must be a finite number, not {text!r}")
    return value


_CONVERTERS: dict[Any, Callable[[str], object]] = {
    Decimal: _to_decimal,
    int: lambda text: int(text.strip()),
    float: lambda text: float(text.strip()),
    bool: _to_bool,
    str: str,
}


def _converter(annotation: Any) -> Callable[[str], object]:
    """How to turn option text into a value of ``annotation``; text as is when unknown."""
    convert = _CONVERTERS.get(annotation)
    if convert is not None:
        return convert
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _converter(members[0]) if len(members) == 1 else str
        if type(None) not in typing.get_args(annotation):
            return inner

        def optional(text: str) -> object:
            return None if text.strip().lower() in ("", "none", "null") else inner(text)

        return optional
    return str


def convert_option(text: str, annotation: Any) -> object:
    """Option text as a value of the type ``annotation`` names.

    ``Decimal``, ``int``, ``float``, ``bool`` (on/off, true/false, yes/no, 1/0), ``str``,
    and any of them ``| None`` (``none``, ``null`` or empty text is None); the text itself
    for any other annotation.

    Raises:
        ValueError: If the text does not convert, saying what it must be.
    """
    try:
        return _converter(annotation)(text)
    except ArithmeticError:
        raise ValueError(f"must be a number, not {text!r}") from None


def _parameters(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named keyword parameters of ``factory``, and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(factory, eval_str=True)
    except (TypeError, ValueError, NameError):
        signature = inspect.signature(factory)
    parameters = {
        name: parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }
    return parameters, any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def load_strategy(
    spec: str,
    options: Mapping[str, str] | Iterable[str] = (),
    *,
    defaults: Mapping[str, object] | None = None,
) -> Strategy:
    """Build the strategy ``spec`` names, with ``options`` as its keyword arguments.

    Args:
        spec: ``package.module:Class`` (the working directory is importable) or
            ``path/to/file.py:Class``; the attribute may be a class or any callable that
            returns a strategy, and may be dotted (``module:Outer.Inner``).
        options: ``key=value`` texts, or a mapping of them; each value is converted to
            its parameter's annotated type.
        defaults: Values for parameters the options do not set, given only to a strategy
            that names them as parameters (the service passes its ``min_edge``, ``fee_rate`` and
            ``max_notional`` settings this way).

    Returns:
        The strategy: an object with ``analyze`` and ``resume`` (see :class:`Strategy`).

    Raises:
        ConfigurationError: If the module or attribute cannot be found or imported, an
            option is unknown or its value does not convert, the constructor raises, or
            the object built lacks ``analyze`` or ``resume``.
    """
    given = dict(options) if isinstance(options, Mapping) else parse_strategy_options(options)
    factory = _import(spec)
    if not callable(factory):
        raise ConfigurationError(f"--strategy {spec} names a {type(factory).__name__}, not a class")
    parameters, any_keyword = _parameters(factory)
    kwargs: dict[str, object] = {
        name: value
        for name, value in (defaults or {}).items()
        if name not in given and name in parameters
    }
    for name, text in given.items():
        if name not in parameters and not any_keyword:
            known = ", ".join(sorted(parameters)) or "none"
            raise ConfigurationError(
                f"strategy {spec} has no option {name!r} (its options: {known})"
            )
        annotation = parameters[name].annotation if name in parameters else str
        try:
            kwargs[name] = convert_option(text, annotation)
        except ValueError as exc:
            raise ConfigurationError(f"strategy option {name}={text!r}: {exc}") from None
    try:
        strategy = factory(**kwargs)
    except (TypeError, ValueError, ConfigurationError) as exc:
        raise ConfigurationError(f"strategy {spec}: {exc}") from exc
    missing = [
        method for method in ("analyze", "resume") if not callable(getattr(strategy, method, None))
    ]
    if missing:
        raise ConfigurationError(
            f"strategy {spec} has no {' and no '.join(m + '()' for m in missing)} method; "
            "a strategy needs analyze(books, event) and resume(signal_ids) "
            "(see polymarket_agents.agents.Strategy)"
        )
    return typing.cast(Strategy, strategy)
