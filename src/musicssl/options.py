"""Values read as the type their annotation names: recipe settings, and the options a recipe
gives a registry entry (an encoder, a method, an augmentation chain).

The types read are int, float (whole numbers too), bool (true or false only), str, ``X | None``,
lists and tuples of those, and mappings; any other annotation (a built part, ``Any``) takes the
value as it is. Text is read as the type it sets, so ``1e3`` is 1000 where an int is wanted.
Checking a registry entry's options against its signature refuses a bad option with one line
naming it, before anything is built.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from musicssl.errors import MusicSSLError

NoneType = type(None)
NULLS = ("null", "none")
# A scalar type in words, alone and in a list.
SINGULAR = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
PLURAL = {int: "whole numbers", float: "numbers", bool: "true/false values", str: "strings"}
SEQUENCES = (list, tuple, Sequence)
MAPPINGS = (dict, Mapping)


class _Mismatch(Exception):
    """A value that is not of the type asked for."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the known name nearest a misspelt ``name``; "" for none."""
    near = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def coerce(value: Any, kind: Any, key: str) -> Any:
    """``value`` as the type ``kind`` (see the module's docstring for the types read).

    Raises:
        MusicSSLError: naming ``key``, the value and the type it needs.
    """
    try:
        return _read(value, kind)
    except _Mismatch:
        raise MusicSSLError(f"{key} must be {describe(kind)}, got {value!r}") from None


def describe(kind: Any) -> str:
    """The type ``kind`` in words: "a whole number", "a list of 2 numbers or null"."""
    args = typing.get_args(kind)
    if _is_union(kind):
        words = [describe(arg) for arg in args if arg is not NoneType]
        return " or ".join(words + ["null"] if NoneType in args else words)
    if kind in SINGULAR:
        return SINGULAR[kind]
    origin = typing.get_origin(kind) or kind
    if origin in SEQUENCES:
        if _fixed_length(kind):
            return f"a list of {len(args)} {_plural(args)}"
        return f"a list of {_plural(args[:1])}"
    if origin in MAPPINGS:
        return "a mapping"
    return getattr(kind, "__name__", str(kind))


def typed_options(
    owner: str,
    where: str,
    factory: Callable[..., Any],
    options: Mapping[str, Any],
    *,
    given: Collection[str] = (),
) -> dict[str, Any]:
    """``options`` read as the types of the parameters of ``factory`` that they set.

    Args:
        owner: the registry entry in words, for messages ("method simclr").
        where: where the options were given, for messages ("method.options").
        factory: the function or class that takes the options as keyword arguments.
        options: parameter name -> value.
        given: parameters the caller passes itself (an encoder, a sample rate): no options.

    Raises:
        MusicSSLError: naming ``where.NAME``, for an option ``factory`` does not take, a
            required one missing, or a value not of its parameter's type.
    """
    # eval_str: the annotations as types, not as the text ``from __future__`` leaves.
    try:
        parameters = inspect.signature(factory, eval_str=True).parameters.values()
    except (NameError, SyntaxError, TypeError):  # a package's annotation that is no type here
        parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(options)
    takes = {
        p.name: p
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in given
    }
    for name in options:
        if name not in takes:
            listed = f"it takes: {', '.join(sorted(takes))}" if takes else "it takes none"
            raise MusicSSLError(
                f"{where}.{name}: {owner} takes no option {name!r} ({listed})"
                + did_you_mean(name, takes)
            )
    for name, parameter in takes.items():
        if parameter.default is parameter.empty and name not in options:
            raise MusicSSLError(f"{where}.{name}: {owner} needs this option")
    return {
        name: coerce(value, _annotation(takes[name]), f"{where}.{name}")
        for name, value in options.items()
    }


def _annotation(parameter: inspect.Parameter) -> Any:
    """The parameter's type: its annotation, else the type of a plain default (``scale=1.0``
    of a factory written without annotations takes ``1e-3`` as a number, as ``float`` would),
    else any."""
    if parameter.annotation is not parameter.empty and not isinstance(parameter.annotation, str):
        return parameter.annotation
    if type(parameter.default) is int:  # unsaid whether a fraction would do: it may
        return int | float
    if type(parameter.default) in (bool, float, str):
        return type(parameter.default)
    return Any


def _read(value: Any, kind: Any) -> Any:
    if _is_union(kind):
        return _union(value, typing.get_args(kind))
    if kind is bool:
        return _bool(value)
    if kind in (int, float):
        return _number(value, kind)
    if kind is str:
        if isinstance(value, (dict, list, tuple)):
            raise _Mismatch
        return "" if value is None else str(value)
    origin = typing.get_origin(kind) or kind
    if origin in SEQUENCES:
        return _sequence(value, kind)
    if origin in MAPPINGS and not isinstance(value, dict):
        raise _Mismatch
    return value


def _union(value: Any, kinds: tuple[Any, ...]) -> Any:
    text = value.strip().lower() if isinstance(value, str) else None
    if NoneType in kinds and (value is None or text in NULLS):
        return None
    for kind in kinds:
        if kind is NoneType:
            continue
        try:
            return _read(value, kind)
        except _Mismatch:
            continue
    raise _Mismatch


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Mismatch


def _number(value: Any, kind: type) -> int | float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Mismatch from None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise _Mismatch
    if kind is float:
        return float(number)
    if not float(number).is_integer():
        raise _Mismatch
    return int(number)


def _sequence(value: Any, kind: Any) -> list | tuple:
    """A list or tuple (as it came) of items read as the annotation's item types."""
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    args = typing.get_args(kind)
    if _fixed_length(kind):
        if len(value) != len(args):
            raise _Mismatch
        items = [_read(item, arg) for item, arg in zip(value, args)]
    else:
        items = [_read(item, args[0] if args else Any) for item in value]
    return tuple(items) if isinstance(value, tuple) else items


def _fixed_length(kind: Any) -> bool:
    """``tuple[X, Y]``, as against ``tuple[X, ...]`` or ``Sequence[X]``."""
    args = typing.get_args(kind)
    return typing.get_origin(kind) is tuple and bool(args) and args[-1] is not Ellipsis


def _is_union(kind: Any) -> bool:
    return isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union


def _plural(args: tuple[Any, ...]) -> str:
    kinds = set(args)
    return PLURAL.get(kinds.pop(), "values") if len(kinds) == 1 else "values"
