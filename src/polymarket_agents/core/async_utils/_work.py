"""Turning "work" into something that can be started again.

Work is either a zero-argument factory returning an awaitable, or a coroutine object such as
``monitor_market(market_id)``. A coroutine object can be awaited only once, so to restart it
we call its function again with the same arguments. On CPython 3.11+ both are reachable from
the coroutine's frame: the function through the garbage collector's view of the frame (it
holds a reference to the function, closure included), the arguments through its locals.

Nothing is read when the work is received, so work that never fails pays nothing: an
exception that escapes the coroutine carries its frame in the traceback, and a frame keeps
its locals after the coroutine ends, so the function and arguments are read from there at
the first failure (a cancellation included). That is exact unless the function rebinds one
of its parameters (``url = url.strip()``): such functions are found once per code object by
scanning the bytecode, and their arguments are read at receipt instead. Work that must also
restart after it *returns* (a permanent child of a supervision tree) keeps the frame object
from receipt, since a return leaves no traceback.
"""

from __future__ import annotations

import dis
import gc
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

from ._errors import NotRestartableError

T = TypeVar("T")

Work: TypeAlias = Callable[[], Awaitable[T]] | Coroutine[Any, Any, T]
"""A zero-argument factory returning an awaitable, or a coroutine object."""

_STORE_OPS = ("STORE_FAST", "DELETE_FAST", "STORE_DEREF", "DELETE_DEREF")
rebinds_cache: dict[types.CodeType, bool] = {}


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
    cached = rebinds_cache.get(code)
    if cached is None:
        cached = rebinds_cache[code] = _stores_to(
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


# The function of a code object without free variables, once found: every function made
# from such a code object behaves alike when called with all its parameters given, as
# Recreate calls it, so the search through the garbage collector's referents is done once
# per code object rather than once per task. (A closure's cells differ: never cached.)
_functions: weakref.WeakValueDictionary[types.CodeType, types.FunctionType] = (
    weakref.WeakValueDictionary()
)


def _recreate_from(holder: object, frame: types.FrameType, code: types.CodeType) -> Recreate:
    # ``holder`` owns the frame's data: the coroutine before it ran, the frame object after.
    func = _functions.get(code)
    if func is None:
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
        if not code.co_freevars:
            _functions[code] = func
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
    """The work of one task and what is known about starting it again.

    ``origin`` is the work as given. ``source`` is what re-creates it: the factory itself, a
    :class:`Recreate` built from a coroutine's frame, that frame (read when first needed), a
    ``str`` saying why the work cannot be restarted, or None while a coroutine's function and
    arguments are still to be learnt from the traceback of its first failure.

    Args:
        work: A factory or a coroutine object.
        keep_frame: Keep a coroutine's frame from now on, so that it can be re-created even
            after it returns.

    Raises:
        TypeError: If ``work`` is neither callable nor a coroutine object.
    """

    __slots__ = ("origin", "source")

    def __init__(self, work: Work[Any], *, keep_frame: bool = False) -> None:
        self.set_work(work, keep_frame)

    def set_work(self, work: Work[Any], keep_frame: bool = False) -> None:
        """Take ``work`` as the source of attempts (``__init__`` for subclasses).

        Raises:
            TypeError: If ``work`` is neither callable nor a coroutine object.
        """
        self.origin: object = work
        self.source: Callable[[], Awaitable[Any]] | types.FrameType | str | None = None
        if type(work) is types.CoroutineType:
            # Cheap checks only: this runs for every task started.
            if work.cr_suspended:
                self.source = f"coroutine {work.__qualname__!r} had already started"
            elif keep_frame or _rebinds_parameters(work.cr_code):
                self._keep(work)
        elif callable(work):
            self.source = work
        elif isinstance(work, Coroutine):
            self.source = f"{type(work).__qualname__} objects cannot be re-created"
        else:
            raise TypeError(
                f"work must be a coroutine object or a zero-argument callable returning an "
                f"awaitable, not {work!r}"
            )

    def _keep(self, coro: types.CoroutineType[Any, Any, Any]) -> None:
        frame = coro.cr_frame
        if frame is None:
            self.source = f"coroutine {coro.__qualname__!r} had already finished"
            return
        code = coro.cr_code
        if _rebinds_parameters(code):
            try:
                self.source = _recreate_from(coro, frame, code)
            except NotRestartableError as exc:
                self.source = str(exc)
        else:
            self.source = frame  # read after it ran: a finished frame keeps its locals

    def first(self) -> Awaitable[Any]:
        """The awaitable of the first attempt: the coroutine object itself, or a factory's.

        Raises:
            Exception: Whatever the factory raises.
        """
        origin = self.origin
        if type(origin) is types.CoroutineType or not callable(origin):
            return origin  # type: ignore[return-value]
        return origin()  # type: ignore[no-any-return]

    def learn(self, exc: BaseException) -> None:
        """Recover a coroutine's function and arguments from the traceback of ``exc``.

        Called with what an attempt raised (a ``CancelledError`` included) before anything
        asks whether the work can be restarted; a no-op once the source is known.
        """
        if self.source is not None:
            return
        origin = self.origin
        if type(origin) is not types.CoroutineType:
            return
        code = origin.cr_code
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code is code:  # the outermost one is the coroutine's own frame
                try:
                    self.source = _recreate_from(frame, frame, code)
                except NotRestartableError as err:
                    self.source = str(err)
                return
            tb = tb.tb_next

    def next(self) -> Awaitable[Any]:
        """The awaitable of a later attempt.

        Raises:
            NotRestartableError: If the work cannot be started again.
            Exception: Whatever the factory raises.
        """
        if not self.restartable():
            raise NotRestartableError(self.reason)
        return self.source()  # type: ignore[misc, operator]

    def restartable(self) -> bool:
        """Whether another attempt can be made; resolves a kept frame into a factory."""
        source = self.source
        if isinstance(source, types.FrameType):
            code = source.f_code
            try:
                self.source = source = _recreate_from(source, source, code)
            except NotRestartableError as exc:
                self.source = source = str(exc)
        return callable(source)

    @property
    def factory(self) -> Callable[[], Awaitable[Any]] | None:
        """What re-creates the work, if it is known and possible."""
        return self.source if self.restartable() else None  # type: ignore[return-value]

    @property
    def reason(self) -> str:
        """Why the work cannot be restarted, in words ("" if it can)."""
        if self.restartable():
            return ""
        source = self.source
        if isinstance(source, str):
            return source
        return (
            "the coroutine's function and arguments are known only after it fails, "
            "and it had not failed"
        )

    def close(self) -> None:
        """Close the original coroutine; for callers that never awaited it, so it does not
        warn that it was never awaited."""
        origin = self.origin
        if isinstance(origin, Coroutine):
            origin.close()
