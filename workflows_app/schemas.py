"""Typed values at the edge of the application: JSON coming from forms and the API is
validated against a workflow's input type or a request's response type, and described as
JSON schema for forms and API docs. pydantic's ``TypeAdapter`` does the work: it knows
dataclasses, Enums, pydantic models, containers and unions.

Two things are stricter here than pydantic's defaults, because a person typed the value:

- **Unknown fields are refused.** pydantic ignores keys a dataclass or model does not
  declare, so ``{"round": 5}`` silently became the default 20 rounds. Every dataclass,
  pydantic model and TypedDict that does not choose its own ``extra`` behaviour (in
  ``model_config``, ``__pydantic_config__`` or a pydantic dataclass's ``config``) refuses
  them, however deeply nested; a type that chose ``"allow"`` or ``"ignore"`` keeps its
  choice. pydantic cannot be told to do this for types it did not configure (a
  ``TypeAdapter`` refuses a config for dataclasses and models, and a model validates its
  fields with its own prebuilt validator), so the keys are compared with the declared
  fields here, through the types' public descriptions (``dataclasses.fields``,
  ``model_fields``).
- **Problems are told in the user's terms**: the path of the field and what is wrong with
  it (``input.rounds: must be a whole number``, ``input: unknown field "round" (expected:
  rounds, fail_at, step_ms)``), never pydantic's wording, which names Python classes the
  user never saw.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections import abc
from dataclasses import dataclass
from typing import Any

import typing_extensions
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo


class InvalidValue(ValueError):
    """A value does not fit the expected type; ``problems`` says where and what, and the
    message lists them (``what.path: problem; ...``)."""

    def __init__(self, problems: list[Problem], what: str = "value") -> None:
        self.problems = problems
        self.what = what
        super().__init__("; ".join(problem.describe(what) for problem in problems))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a value: ``path`` leads from the value's root to the part at
    fault (object keys and list indices; empty for the value itself)."""

    path: tuple[str | int, ...]
    message: str

    def where(self, what: str = "value") -> str:
        """The path written out from ``what``: ``input.items[2].name``."""
        return what + "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                              for part in self.path)

    def describe(self, what: str = "value") -> str:
        return f"{self.where(what)}: {self.message}"


@functools.lru_cache(maxsize=256)
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def coerce(value: Any, tp: Any, *, what: str = "value") -> Any:
    """Turn JSON ``value`` into an instance of ``tp`` (e.g. a dict into a dataclass);
    raise ``InvalidValue`` naming each problem, unknown fields included."""
    return coerce_any(value, [tp], what=what)


def coerce_any(value: Any, types: list[Any], *, what: str = "value") -> Any:
    """Coerce into the first of ``types`` that accepts ``value``; when none does, the
    problems are those of the type ``value`` came closest to (as in a union)."""
    if not types:
        raise InvalidValue([Problem((), "no type accepts it")], what)
    issues: list[_Issue] = []
    for index, tp in enumerate(types):
        found = _check(value, tp)
        if isinstance(found, list):
            issues.extend(issue.within(((), index)) for issue in found)
        else:
            return found.value
    raise InvalidValue(_choose(issues), what)


# Beside each object's ``properties``: their names in declaration order. PostgreSQL's jsonb
# keeps object keys in an order of its own (shorter keys first), and forms generated from a
# stored schema must show the fields as the type declares them.
FIELD_ORDER = "x-field-order"


def json_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of ``tp`` (an empty schema when pydantic cannot describe it), each
    object's field order kept under ``FIELD_ORDER``."""
    try:
        return _with_field_order(_adapter(tp).json_schema())
    except Exception:
        return {}


def _with_field_order(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_field_order(item) for item in node]
    if not isinstance(node, dict):
        return node
    ordered = {}
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            # Maps of names to schemas: each schema is walked, the map itself is not one.
            ordered[key] = {name: _with_field_order(sub) for name, sub in value.items()}
        else:
            ordered[key] = _with_field_order(value)
    if isinstance(node.get("properties"), dict):
        ordered[FIELD_ORDER] = list(node["properties"])
    return ordered


# --------------------------------------------------------------------------- checking
@dataclass(frozen=True)
class _Accepted:
    value: Any


@dataclass(frozen=True)
class _Issue:
    """A problem, with the union alternatives it was found in (``(path, alternative)``
    each, outermost first) and, when the value is of the wrong kind, what it should be."""

    branches: tuple
    problem: Problem
    expected: str = ""
    order: int = 0

    def within(self, branch: tuple) -> _Issue:
        return dataclasses.replace(self, branches=(branch, *self.branches))


def _check(value: Any, tp: Any) -> _Accepted | list[_Issue]:
    """``value`` as ``tp``, or what is wrong with it."""
    try:
        result = _adapter(tp).validate_python(value)
    except ValidationError as error:
        refused = _translate(error, value, tp)
        return refused + [_Issue((), p, order=len(refused) + i)
                          for i, p in enumerate(_unknown_fields(value, tp, _UNSEEN))]
    except TypeError as error:  # unhashable tp, or a type pydantic cannot handle
        return [_Issue((), Problem((), str(error)))]
    unknown = _unknown_fields(value, tp, result)
    return [_Issue((), p, order=i) for i, p in enumerate(unknown)] if unknown else _Accepted(result)


def _choose(issues: list[_Issue]) -> list[Problem]:
    """The problems to report. Where a value fitted none of a union's alternatives, those of
    the alternative it came closest to (of the right kind first, then fewest problems); when
    it is of the wrong kind for every one, a single problem naming them all."""
    chosen: list[tuple[int, Problem]] = [(i.order, i.problem) for i in issues if not i.branches]
    points: dict[tuple, dict[Any, list[_Issue]]] = {}
    for issue in issues:
        if issue.branches:
            point, alternative = issue.branches[0]
            points.setdefault(point, {}).setdefault(alternative, []).append(issue)
    for point, alternatives in points.items():
        def wrong_kind(found: list[_Issue]) -> bool:
            return all(i.expected and i.problem.path == point and len(i.branches) == 1
                       for i in found)
        if all(wrong_kind(found) for found in alternatives.values()):
            every = [i for found in alternatives.values() for i in found]
            chosen.append((min(i.order for i in every),
                           Problem(point, _expected([i.expected for i in every]))))
            continue
        best = min(alternatives.values(), key=lambda found: (wrong_kind(found), len(found)))
        inner = [dataclasses.replace(i, branches=i.branches[1:]) for i in best]
        order = min(i.order for i in best)
        chosen.extend((order, problem) for problem in _choose(inner))
    return [problem for _, problem in sorted(chosen, key=lambda pair: pair[0])]


# --------------------------------------------------------------------------- pydantic's errors
_KINDS = [  # pydantic error types (by prefix) meaning "not a ...", and what it should be
    (("int_type", "int_parsing", "int_from_float"), "a whole number"),
    (("float_type", "float_parsing", "decimal_type", "decimal_parsing"), "a number"),
    (("bool_",), "true or false"),
    (("string_type", "string_unicode", "string_sub_type", "bytes_type"), "text"),
    (("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"), "a list"),
    (("none_required",), "null"),
    (("date_type", "date_parsing", "date_from_datetime"), "a date (YYYY-MM-DD)"),
    (("datetime_",), "a date and time (YYYY-MM-DDTHH:MM:SS)"),
    (("time_type", "time_parsing"), "a time (HH:MM:SS)"),
    (("time_delta",), "a duration"),
    (("uuid_",), "a UUID"),
    (("url_",), "a URL"),
]
_OBJECT_KINDS = ("dict_type", "mapping_type", "model_type", "model_attributes_type",
                 "dataclass_type", "dataclass_args_type")
_LIMITS = {
    "greater_than": "must be greater than {gt}", "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}", "less_than_equal": "must be at most {le}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "union_tag_invalid": "{discriminator} must be one of {expected_tags}",
    "union_tag_not_found": "needs the field {discriminator}",
    "finite_number": "must be a finite number", "int_parsing_size": "is too large"}


def _translate(error: ValidationError, value: Any, tp: Any) -> list[_Issue]:
    classes = _object_types(tp)
    issues = []
    for order, item in enumerate(error.errors(include_url=False)):
        kind, ctx = item["type"], item.get("ctx") or {}
        path, branches, key_error = _follow(value, tuple(item["loc"]), kind)
        expected = next((noun for prefixes, noun in _KINDS if kind.startswith(prefixes)), "")
        if kind in _OBJECT_KINDS:
            expected = _object_noun(classes.get(ctx.get("class_name")))
        elif kind in ("enum", "literal_error"):
            expected = f"one of {ctx.get('expected', '')}"
        if expected:
            message = _expected([expected])
        elif kind.startswith("missing"):
            message = "a value is required"
        elif kind in _LIMITS:
            message = _LIMITS[kind].format_map(
                {k: str(v).strip("'") if k == "discriminator" else v for k, v in ctx.items()})
        elif kind in ("value_error", "assertion_error") and "error" in ctx:
            message = str(ctx["error"])
        else:  # a kind not listed above: pydantic's wording, made to read like ours
            message = item["msg"].replace("Input should be", "must be")
        if key_error:
            message, expected = f'the key "{key_error}" {message}', ""
        issues.append(_Issue(branches, Problem(path, message), expected, order))
    return issues


def _follow(value: Any, loc: tuple, kind: str) -> tuple[tuple, tuple, str]:
    """Split an error's ``loc`` into the path it names in ``value`` and the union
    alternatives it went through: a part that is not a key or index of the data there
    is pydantic's label of an alternative (or a tagged union's tag). Also returns the
    key, when the problem is a dict's key rather than its value."""
    path: list = []
    branches: list = []
    here = value
    for position, part in enumerate(loc):
        if part == "[key]" and path:
            return tuple(path[:-1]), tuple(branches), str(path[-1])
        if isinstance(here, dict) and part in here:
            here = here[part]
        elif isinstance(here, list | tuple) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
        elif position == len(loc) - 1 and kind.startswith("missing"):
            here = None  # a field or item that is not there
        else:
            branches.append((tuple(path), part))
            continue
        path.append(part)
    return tuple(path), tuple(branches), ""


def _object_noun(tp: Any) -> str:
    if tp is None:
        return "an object"
    keys = [key for key, _, _ in _declared_fields(tp)]
    return f"an object with fields {', '.join(keys)}" if keys else "an object with no fields"


def _expected(nouns: list[str]) -> str:
    unique = list(dict.fromkeys(nouns))
    said = unique[0] if len(unique) == 1 else f"{', '.join(unique[:-1])} or {unique[-1]}"
    if any(noun.startswith("an object") for noun in unique):
        return f"expected {said}"
    return f"must be {said}"


# --------------------------------------------------------------------------- unknown fields
_UNSEEN = object()  # no validated value to follow (the value was refused)
_SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set,
              abc.MutableSet, abc.Collection, abc.Iterable)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


def _unknown_fields(raw: Any, tp: Any, result: Any, path: tuple = ()) -> list[Problem]:
    """Keys of ``raw`` that the dataclasses, models and TypedDicts of ``tp`` do not declare,
    at any depth. ``result`` is what pydantic made of ``raw`` and says which alternative
    of a union was taken; ``_UNSEEN`` when pydantic refused ``raw``."""
    tp = _bare(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        chosen = _alternative(typing.get_args(tp), raw, result)
        return [] if chosen is None else _unknown_fields(raw, chosen, result, path)
    if _is_object_type(tp):
        if not isinstance(raw, dict):
            return []
        problems = []
        declared = _declared_fields(tp)
        if _chosen_extra(tp) is None:
            accepted = {key for _, _, keys in declared for key in keys}
            unknown = [key for key in raw if key not in accepted]
            if unknown:
                quoted = ", ".join(f'"{key}"' for key in unknown)
                expected = ", ".join(key for key, _, _ in declared) or "no fields"
                problems.append(Problem(path, f"unknown field{'s' if len(unknown) > 1 else ''} "
                                              f"{quoted} (expected: {expected})"))
        hints = _field_types(tp)
        for key, name, keys in declared:
            given = next((k for k in keys if k in raw), None)
            if given is not None and name in hints:
                problems += _unknown_fields(raw[given], hints[name], _part(result, name),
                                            (*path, given))
        return problems
    args = typing.get_args(tp)
    if origin in _SEQUENCES and isinstance(raw, list | tuple) and args:
        items = list(result) if isinstance(result, list | tuple) else None
        problems = []
        for index, item in enumerate(raw):
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if index >= len(args):
                    break
                item_type = args[index]
            else:
                item_type = args[0]
            seen = items[index] if items is not None and index < len(items) else _UNSEEN
            problems += _unknown_fields(item, item_type, seen, (*path, index))
        return problems
    if origin in _MAPPINGS and isinstance(raw, dict) and len(args) == 2:
        problems = []
        for key, item in raw.items():
            seen = result.get(key, _UNSEEN) if isinstance(result, dict) else _UNSEEN
            problems += _unknown_fields(item, args[1], seen, (*path, key))
        return problems
    return []


def _bare(tp: Any) -> Any:
    """``tp`` without ``Annotated`` metadata and type aliases."""
    for _ in range(20):
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif hasattr(tp, "__value__") and typing.get_origin(tp) is None and not isinstance(tp, type):
            tp = tp.__value__  # a ``type X = ...`` alias
        else:
            return tp
    return tp


def _is_object_type(tp: Any) -> bool:
    # typing_extensions' test knows both kinds of TypedDict (pydantic wants its kind on 3.11).
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, BaseModel)
                                     or typing_extensions.is_typeddict(tp))


def _chosen_extra(tp: type) -> str | None:
    """The ``extra`` behaviour ``tp`` chose for itself, or ``None`` if it left the default."""
    config = tp.model_config if issubclass(tp, BaseModel) else getattr(tp, "__pydantic_config__", None)
    return (config or {}).get("extra")


def _declared_fields(tp: type) -> list[tuple[str, str, tuple[str, ...]]]:
    """``tp``'s fields as ``(key shown, attribute name, keys accepted)``, in order."""
    if issubclass(tp, BaseModel):
        by_name = tp.model_config.get("validate_by_name") or tp.model_config.get("populate_by_name")
        return [_keys(name, info, by_name) for name, info in tp.model_fields.items()]
    if dataclasses.is_dataclass(tp):
        pydantic_fields = getattr(tp, "__pydantic_fields__", None) or {}
        config = getattr(tp, "__pydantic_config__", None) or {}
        by_name = config.get("validate_by_name") or config.get("populate_by_name")
        declared = []
        for field in dataclasses.fields(tp):
            if not field.init:
                continue
            info = pydantic_fields.get(field.name)
            if info is None and isinstance(field.default, FieldInfo):
                info = field.default
            declared.append(_keys(field.name, info, by_name))
        return declared
    return [(name, name, (name,)) for name in _field_types(tp)]  # a TypedDict


def _keys(name: str, info: FieldInfo | None, by_name: bool) -> tuple[str, str, tuple[str, ...]]:
    aliases: list[str] = []
    if info is not None:
        alias = info.validation_alias if info.validation_alias is not None else info.alias
        choices = getattr(alias, "choices", [alias])
        for choice in choices:
            if isinstance(choice, str):
                aliases.append(choice)
            elif getattr(choice, "path", None) and isinstance(choice.path[0], str):
                aliases.append(choice.path[0])
    keys = tuple(dict.fromkeys([*aliases, name] if (by_name or not aliases) else aliases))
    return keys[0], name, keys


def _field_types(tp: type) -> dict[str, Any]:
    if issubclass(tp, BaseModel):
        return {name: info.annotation for name, info in tp.model_fields.items()}
    try:
        return typing.get_type_hints(tp, include_extras=True)
    except Exception:  # a forward reference that cannot be resolved: nothing to follow
        return {}


def _part(result: Any, name: str) -> Any:
    if result is _UNSEEN:
        return _UNSEEN
    if isinstance(result, dict):
        return result.get(name, _UNSEEN)
    return getattr(result, name, _UNSEEN)


def _alternative(options: tuple, raw: Any, result: Any) -> Any:
    """The alternative of a union that ``raw`` was (or would be) read as: the one whose
    type the validated ``result`` has; without one, the object type that declares the
    most of ``raw``'s keys (``None`` if that is not one type)."""
    options = tuple(option for option in options if option is not type(None))
    if raw is None or not options:
        return None
    if len(options) == 1:
        return options[0]
    if result is not _UNSEEN:
        for option in options:
            kind = typing.get_origin(_bare(option)) or _bare(option)
            if isinstance(kind, type) and not isinstance(result, bool | enum.Enum) \
                    and isinstance(result, kind):
                return option
        return None
    if not isinstance(raw, dict):
        return None
    scores = {}
    for option in options:
        bare = _bare(option)
        if _is_object_type(bare):
            accepted = {key for _, _, keys in _declared_fields(bare) for key in keys}
            scores[option] = sum(key in accepted for key in raw)
    best = max(scores.values(), default=0)
    winners = [option for option, score in scores.items() if score == best]
    return winners[0] if best and len(winners) == 1 else None


def _object_types(tp: Any, found: dict[str, type] | None = None) -> dict[str, type]:
    """Every dataclass, model and TypedDict reachable from ``tp``, by class name (pydantic's
    errors name the class that was expected)."""
    found = {} if found is None else found
    tp = _bare(tp)
    if _is_object_type(tp):
        if tp.__name__ in found:
            return found
        found[tp.__name__] = tp
        for field_type in _field_types(tp).values():
            _object_types(field_type, found)
        return found
    for arg in typing.get_args(tp):
        if arg is not Ellipsis and not isinstance(arg, str | int | enum.Enum):
            _object_types(arg, found)
    return found
