"""Turning "work" into something that can be started again.

Work is either a zero-argument factory returning an awaitable, or a coroutine object such as
``monitor_market(market_id)``. A coroutine object can be awaited only once, so to restart it
we call its function again with the same arguments. On CPython 3.11+ both are reachable from a
coroutine that has not started yet: the function through the garbage collector's view of the
coroutine (its frame holds a reference to the function, closure included), the arguments
through the frame's locals.

Reading the arguments at receipt costs about a microsecond, too much for the success path, so
we only keep the frame object and read it after a failure (a finished frame keeps its
locals). That is exact unless the function rebinds one of its parameters (``url =
url.strip()``): such functions are found once per code object by scanning the bytecode, and
their arguments are read at receipt instead.
"""

from __future__ import annotations

import dis
import gc
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

from ._errors import NotRestartableError

T = TypeVar("T")

Work: TypeAlias = Callable[[], Awaitable[T]] | Coroutine[Any, Any, T]
"""A zero-argument factory returning an awaitable, or a coroutine object."""

_STORE_OPS = ("STORE_FAST", "DELETE_FAST", "STORE_DEREF", "DELETE_DEREF")
_rebinds_cache: dict[types.CodeType, bool] = {}


def _names_in(argval: object) -> tuple[object, ...]:
    # 3.13's superinstructions (STORE_FAST_STORE_FAST, …) carry a pair of names.
    return argval if isinstance(argval, tuple) else (argval,)


def _stores_to(code: types.CodeType, names: frozenset[str], deref_only: bool) -> bool:
    for instr in dis.get_instructions(code):
        if (
            instr.opname.startswith(_STORE_OPS)
            and (not deref_only or "DEREF" in instr.opname)
            and any(name in names for name in _names_in(instr.argval))
        ):
            return True
    # An inner function can rebind a parameter through `nonlocal`.
    cells = names & set(code.co_cellvars)
    return bool(cells) and any(
        _stores_to(const, frozenset(cells), deref_only=True)
        for const in code.co_consts
        if isinstance(const, types.CodeType)
    )


def _parameter_names(code: types.CodeType) -> tuple[str, ...]:
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    return code.co_varnames[:count]


def _rebinds_parameters(code: types.CodeType) -> bool:
    cached = _rebinds_cache.get(code)
    if cached is None:
        cached = _rebinds_cache[code] = _stores_to(
            code, frozenset(_parameter_names(code)), deref_only=False
        )
    return cached


class Recreate:
    """A factory that calls a coroutine function again with the arguments it first got."""

    __slots__ = ("args", "func", "kwargs")

    def __init__(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __call__(self) -> Awaitable[Any]:
        return self.func(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        return f"<Recreate {getattr(self.func, '__qualname__', self.func)!r}>"


def _recreate_from(holder: object, frame: types.FrameType, code: types.CodeType) -> Recreate:
    # ``holder`` owns the frame's data: the coroutine before it ran, the frame object after.
    func = next(
        (
            ref
            for ref in gc.get_referents(holder)
            if type(ref) is types.FunctionType and ref.__code__ is code
        ),
        None,
    )
    if func is None:
        raise NotRestartableError(f"the function of {code.co_qualname!r} cannot be found")
    values = frame.f_locals
    positional = [values[name] for name in code.co_varnames[: code.co_argcount]]
    index = code.co_argcount + code.co_kwonlyargcount
    kwargs = {name: values[name] for name in code.co_varnames[code.co_argcount : index]}
    if code.co_flags & 0x04:
        positional.extend(values[code.co_varnames[index]])
        index += 1
    if code.co_flags & 0x08:
        kwargs.update(values[code.co_varnames[index]])
    return Recreate(func, tuple(positional), kwargs)


class WorkSource:
    """Hands out the awaitable of each attempt: the original first, then re-created ones.

    Args:
        work: A factory or a coroutine object.
        restartable: Whether later attempts will be asked for; when False nothing is kept
            for re-creation.

    Raises:
        TypeError: If ``work`` is neither callable nor a coroutine object.
    """

    __slots__ = ("_code", "_frame", "factory", "first", "origin", "reason")

    def __init__(self, work: Work[Any], *, restartable: bool = True) -> None:
        self.set_work(work, restartable)

    def set_work(self, work: Work[Any], restartable: bool) -> None:
        """Take ``work`` as the source of attempts (``__init__`` for subclasses).

        Raises:
            TypeError: If ``work`` is neither callable nor a coroutine object.
        """
        self.first: Awaitable[Any] | None = None
        self.factory: Callable[[], Awaitable[Any]] | None = None
        self.origin: object = None
        self.reason = ""
        self._frame: types.FrameType | None = None
        self._code: types.CodeType | None = None
        if isinstance(work, types.CoroutineType):
            self.first = work
            self.origin = work
            if restartable:
                self._keep(work)
        elif callable(work):
            self.factory = work
        elif isinstance(work, Coroutine):
            self.first = work
            self.reason = f"{type(work).__qualname__} objects cannot be re-created"
        else:
            raise TypeError(
                f"work must be a coroutine object or a zero-argument callable returning an "
                f"awaitable, not {work!r}"
            )

    def _keep(self, coro: types.CoroutineType[Any, Any, Any]) -> None:
        frame = coro.cr_frame
        if frame is None or coro.cr_running or coro.cr_suspended:
            self.reason = f"coroutine {coro.__qualname__!r} had already started"
            return
        code = coro.cr_code
        if _rebinds_parameters(code):
            try:
                self.factory = _recreate_from(coro, frame, code)
            except NotRestartableError as exc:
                self.reason = str(exc)
            return
        self._frame = frame
        self._code = code

    def next(self) -> Awaitable[Any]:
        """The awaitable for the next attempt.

        Raises:
            NotRestartableError: If the work cannot be started again.
            Exception: Whatever the factory raises.
        """
        first = self.first
        if first is not None:
            self.first = None
            return first
        if self.factory is None and not self.restartable():
            raise NotRestartableError(self.reason)
        assert self.factory is not None
        return self.factory()

    def restartable(self) -> bool:
        """Whether another attempt can be made; resolves a kept frame into a factory."""
        if self.factory is not None:
            return True
        if self._frame is not None and self._code is not None:
            try:
                self.factory = _recreate_from(self._frame, self._frame, self._code)
            except NotRestartableError as exc:
                self.reason = str(exc)
            self._frame = self._code = None
        if self.factory is None and not self.reason:
            self.reason = "the coroutine's function and arguments cannot be recovered"
        return self.factory is not None

    def close(self) -> None:
        """Close an original coroutine that was never awaited, so it does not warn."""
        first = self.first
        self.first = None
        if first is not None and isinstance(first, Coroutine):
            first.close()
