"""Runtime checks against type annotations: routing by handler type, edge validation,
response validation. Supports classes, ``Any``, unions/``Optional``, ``Literal`` and the
builtin generics (``list[int]``, ``dict[str, X]``, ``tuple[...]``, ``set[...]``)."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, Iterator

_UNION_ORIGINS = (typing.Union, types.UnionType)
_NEVER = {typing.Never, typing.NoReturn}


def is_never(tp: Any) -> bool:
    """True for ``Never``/``NoReturn`` (an executor that sends or yields nothing)."""
    return tp in _NEVER or getattr(tp, "__name__", None) == "Never"


def union_members(tp: Any) -> tuple[Any, ...]:
    """The members of a union (``int | str`` → ``(int, str)``); a non-union as a 1-tuple."""
    if typing.get_origin(tp) in _UNION_ORIGINS:
        return typing.get_args(tp)
    return (tp,)


def is_instance_of(value: Any, tp: Any) -> bool:
    """Whether ``value`` conforms to the annotation ``tp`` (containers are checked deeply)."""
    if type(tp) is type and tp.__name__ != "Never":  # fast path: a plain class (int, a dataclass)
        return isinstance(value, tp)
    if tp is Any or tp is object or isinstance(tp, typing.TypeVar):
        return True
    if tp is None or tp is type(None):
        return value is None
    if is_never(tp):
        return False
    origin = typing.get_origin(tp)
    if origin is None:
        if isinstance(tp, type):
            return isinstance(value, tp)
        return False
    args = typing.get_args(tp)
    if origin in _UNION_ORIGINS:
        return any(is_instance_of(value, member) for member in args)
    if origin is typing.Literal:
        return value in args
    if origin is typing.Annotated:
        return is_instance_of(value, args[0])
    if not isinstance(origin, type) or not isinstance(value, origin):
        return False
    if not args:
        return True
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(is_instance_of(item, args[0]) for item in value)
        return len(value) == len(args) and all(map(is_instance_of, value, args))
    if issubclass(origin, collections.abc.Mapping):
        key_t, value_t = args if len(args) == 2 else (Any, Any)
        return all(is_instance_of(k, key_t) and is_instance_of(v, value_t) for k, v in value.items())
    if issubclass(origin, collections.abc.Iterable):
        return all(is_instance_of(item, args[0]) for item in value)
    return True


def is_subtype(source: Any, target: Any) -> bool:
    """Whether values of annotation ``source`` can be accepted by annotation ``target``.

    Lenient where the answer depends on the value (``Any``, type variables, unions where
    some member fits): edge validation must refuse only edges that can never carry a message.
    """
    if source is Any or target is Any or target is object:
        return True
    if isinstance(source, typing.TypeVar) or isinstance(target, typing.TypeVar):
        return True
    if typing.get_origin(source) in _UNION_ORIGINS:
        return any(is_subtype(member, target) for member in typing.get_args(source))
    if typing.get_origin(target) in _UNION_ORIGINS:
        return any(is_subtype(source, member) for member in typing.get_args(target))
    if source in (None, type(None)) or target in (None, type(None)):
        return source in (None, type(None)) and target in (None, type(None))
    source_origin = typing.get_origin(source) or source
    target_origin = typing.get_origin(target) or target
    if source_origin is typing.Literal:
        return all(is_instance_of(v, target) for v in typing.get_args(source))
    if not (isinstance(source_origin, type) and isinstance(target_origin, type)):
        return source == target
    if not issubclass(source_origin, target_origin):
        return False
    source_args, target_args = typing.get_args(source), typing.get_args(target)
    if not source_args or not target_args or len(source_args) != len(target_args):
        return True
    return all(is_subtype(s, t) for s, t in zip(source_args, target_args) if s is not Ellipsis)


def type_variables(tp: Any) -> list[typing.TypeVar]:
    """Every type variable named inside an annotation (``dict[str, T] | None`` → [T])."""
    if isinstance(tp, typing.TypeVar):
        return [tp]
    found: list[typing.TypeVar] = []
    for arg in typing.get_args(tp):
        for member in (arg if isinstance(arg, (list, tuple)) else (arg,)):  # Callable[[A], R]
            found.extend(v for v in type_variables(member) if v not in found)
    return found


def iter_classes(tp: Any) -> Iterator[type]:
    """Every class named inside an annotation (``dict[str, list[Foo]] | None`` → str, Foo...)."""
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        yield tp
        return
    for arg in typing.get_args(tp):
        if arg is not Ellipsis and not isinstance(arg, (str, int, bool)):
            yield from iter_classes(arg)
    origin = typing.get_origin(tp)
    if isinstance(origin, type):
        yield origin


def type_name(tp: Any) -> str:
    """A short readable name for an annotation, for error messages and the UI."""
    if tp is None or tp is type(None):
        return "None"
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__qualname__
    if tp is Any:
        return "Any"
    origin = typing.get_origin(tp)
    if origin in _UNION_ORIGINS:
        return " | ".join(type_name(arg) for arg in typing.get_args(tp))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else type_name(a) for a in typing.get_args(tp))
        return f"{type_name(origin)}[{args}]"
    return getattr(tp, "__name__", repr(tp))
