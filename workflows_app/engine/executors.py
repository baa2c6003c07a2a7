"""Executors: the nodes of a workflow graph, and the decorators that declare their handlers.

A handler is an async method ``(self, message: T, ctx: WorkflowContext[...])`` marked with
``@handler``; messages are routed to the first handler, in definition order, whose annotated
type accepts them (MAF tries handlers in method-name order instead). A response handler,
marked ``@response_handler``, takes ``(self, original_request, response, ctx)`` and receives
the answer to a request the executor made with ``ctx.request_info``.

Two handlers for the same message type (or two response handlers for the same request and
response types), and annotations holding a ``TypeVar``, are refused when the class is
defined, or, if its annotations cannot be resolved yet, when a workflow is built with it.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from .errors import WorkflowValidationError
from .typing_utils import is_instance_of, is_never, type_name, type_variables, union_members

_HANDLER_MARK = "_stepstone_handler"
_RESPONSE_HANDLER_MARK = "_stepstone_response_handler"


def handler(func: Callable) -> Callable:
    """Mark an async method ``(self, message: T, ctx)`` as the handler for messages of type T."""
    _require_coroutine(func, "@handler")
    setattr(func, _HANDLER_MARK, True)
    return func


def response_handler(func: Callable) -> Callable:
    """Mark an async method ``(self, original_request: R, response: T, ctx)`` as the handler for
    responses of type T to requests of type R."""
    _require_coroutine(func, "@response_handler")
    setattr(func, _RESPONSE_HANDLER_MARK, True)
    return func


def _require_coroutine(func: Any, decorator: str) -> None:
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"{decorator} needs an 'async def' function, got {func!r}")


@dataclass(frozen=True)
class HandlerSpec:
    """A handler with its resolved annotations. ``send_types``/``yield_types`` are None when
    the handler's context is a bare ``WorkflowContext`` (undeclared), () for ``Never``."""

    name: str
    func: Callable
    message_type: Any
    send_types: tuple | None
    yield_types: tuple | None
    takes_context: bool = True
    class_only: bool = True  # whether matching depends only on the message's class


@dataclass(frozen=True)
class ResponseHandlerSpec:
    name: str
    func: Callable
    request_type: Any
    response_type: Any
    send_types: tuple | None
    yield_types: tuple | None


def _context_types(annotation: Any) -> tuple[tuple | None, tuple | None]:
    """Split ``WorkflowContext[SendT, YieldT]`` into (send types, yield types)."""
    args = typing.get_args(annotation)
    if not args:
        return None, None

    def flatten(tp: Any) -> tuple:
        return () if is_never(tp) else union_members(tp)

    send = flatten(args[0])
    yields = flatten(args[1]) if len(args) > 1 else None
    return send, yields


def _hints(func: Callable, owner: str) -> tuple[list[str], dict[str, Any]]:
    try:
        hints = typing.get_type_hints(func)
    except Exception as error:
        raise WorkflowValidationError(
            f"cannot resolve the type annotations of {owner}: {error}") from None
    params = [p for p in inspect.signature(func).parameters if p != "self"]
    return params, hints


def _handler_spec(func: Callable, owner: str) -> HandlerSpec:
    params, hints = _hints(func, owner)
    if not params or params[0] not in hints:
        raise WorkflowValidationError(
            f"{owner} must annotate its message parameter with the type it handles")
    message_type = hints[params[0]]
    send, yields = _context_types(hints.get(params[1])) if len(params) > 1 else (None, None)
    class_only = all(
        typing.get_origin(member) is None for member in union_members(message_type))
    return HandlerSpec(func.__name__, func, message_type, send, yields,
                       takes_context=len(params) > 1, class_only=class_only)


def _response_handler_spec(func: Callable, owner: str) -> ResponseHandlerSpec:
    params, hints = _hints(func, owner)
    if len(params) < 2 or params[0] not in hints or params[1] not in hints:
        raise WorkflowValidationError(
            f"{owner} must annotate (original_request, response, ctx) with their types")
    send, yields = _context_types(hints.get(params[2])) if len(params) > 2 else (None, None)
    return ResponseHandlerSpec(func.__name__, func, hints[params[0]], hints[params[1]],
                               send, yields)


def _method_name(func: Callable) -> str:
    """``Class.method`` of a handler, without the ``<locals>`` of an enclosing function."""
    return func.__qualname__.split("<locals>.")[-1]


def _refuse_type_variables(spec: HandlerSpec | ResponseHandlerSpec, owner: str) -> None:
    """Refuse a ``TypeVar`` anywhere in a handler's annotations.

    Routing and edge checks compare concrete types and solve no type variables, so a
    handler typed ``T`` (bound or not) would take any message, an ``int`` for a
    ``TypeVar("T", bound=str)``. Refusing is what MAF does too.
    """
    if isinstance(spec, HandlerSpec):
        annotated = [("message", spec.message_type)]
    else:
        annotated = [("original request", spec.request_type), ("response", spec.response_type)]
    annotated += [("sent messages", t) for t in spec.send_types or ()]
    annotated += [("outputs", t) for t in spec.yield_types or ()]
    for what, annotation in annotated:
        variables = type_variables(annotation)
        if not variables:
            continue
        variable = variables[0]
        if variable.__bound__ is not None:
            instead = type_name(variable.__bound__)
            detail = f" (bound to {instead})"
        elif variable.__constraints__:
            instead = " | ".join(type_name(c) for c in variable.__constraints__)
            detail = f" (constrained to {instead})"
        else:
            instead, detail = "Any", ""
        raise WorkflowValidationError(
            f"{owner} annotates its {what} with the type variable {variable.__name__}{detail}: "
            f"handlers are routed by concrete types and type variables are not solved, so it "
            f"would accept any value; annotate it with {instead} instead")


def _refuse_duplicates(cls: type, specs: list[HandlerSpec],
                       response_specs: list[ResponseHandlerSpec]) -> None:
    """Refuse two handlers for the same message type (or two response handlers for the same
    request and response types): only the first would ever be called."""
    for index, spec in enumerate(specs):
        for earlier in specs[:index]:
            if earlier.message_type == spec.message_type:
                raise WorkflowValidationError(
                    f"executor class {cls.__qualname__} has two @handler methods for messages "
                    f"of type {type_name(earlier.message_type)}: {_method_name(earlier.func)} and "
                    f"{_method_name(spec.func)}; only the first would ever be called")
    for index, rspec in enumerate(response_specs):
        for earlier in response_specs[:index]:
            if (earlier.request_type, earlier.response_type) == (rspec.request_type,
                                                                 rspec.response_type):
                raise WorkflowValidationError(
                    f"executor class {cls.__qualname__} has two @response_handler methods for "
                    f"requests of type {type_name(rspec.request_type)} answered with "
                    f"{type_name(rspec.response_type)}: {_method_name(earlier.func)} and "
                    f"{_method_name(rspec.func)}; only the first would ever be called")


def _resolve_handlers(cls: type) -> tuple[list[HandlerSpec], list[ResponseHandlerSpec]]:
    """The handlers and response handlers of an executor class, their annotations resolved."""
    specs = [_handler_spec(func, f"handler {cls.__qualname__}.{name}")
             for name, func in _marked_methods(cls, _HANDLER_MARK)]
    response_specs = [_response_handler_spec(func, f"response handler {cls.__qualname__}.{name}")
                      for name, func in _marked_methods(cls, _RESPONSE_HANDLER_MARK)]
    return specs, response_specs


def _check_handlers(cls: type, specs: list[HandlerSpec],
                    response_specs: list[ResponseHandlerSpec]) -> None:
    """Refuse what resolved handlers cannot mean: type variables, duplicates."""
    for spec in specs:
        _refuse_type_variables(spec, f"handler {cls.__qualname__}.{spec.name}")
    for rspec in response_specs:
        _refuse_type_variables(rspec, f"response handler {cls.__qualname__}.{rspec.name}")
    _refuse_duplicates(cls, specs, response_specs)


class Executor:
    """A node of a workflow graph. Subclass it and mark async methods with ``@handler``.

    State kept on the instance survives a checkpoint only if the executor saves it, in either
    style: ``on_checkpointing(ctx)`` + ``ctx.queue_state_update(key, value)`` and
    ``on_checkpoint_restored(ctx)`` + ``ctx.read_state(key)``; or ``on_checkpoint_save()``
    returning a dict and ``on_checkpoint_restore(state)``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse conflicting handlers when the class is defined, where the mistake is."""
        super().__init_subclass__(**kwargs)
        try:
            specs, response_specs = _resolve_handlers(cls)
        except WorkflowValidationError:
            # An annotation that cannot be resolved yet (a name defined later in the
            # module) or is missing: handler_specs() resolves it, or reports it, at build().
            return
        _check_handlers(cls, specs, response_specs)
        cls._stepstone_specs = specs
        cls._stepstone_response_specs = response_specs

    def __init__(self, id: str) -> None:
        if not isinstance(id, str) or not id:
            raise WorkflowValidationError(f"an executor id must be a non-empty string, got {id!r}")
        self.id = id
        self._route_cache: dict[type, HandlerSpec] = {}

    # -- handlers -----------------------------------------------------------------------
    def handler_specs(self) -> list[HandlerSpec]:
        """This executor's handlers, in definition order (resolved once per class); raises
        ``WorkflowValidationError`` for handlers that cannot be routed to."""
        return self._class_specs()[0]

    def response_handler_specs(self) -> list[ResponseHandlerSpec]:
        return self._class_specs()[1]

    def _class_specs(self) -> tuple[list[HandlerSpec], list[ResponseHandlerSpec]]:
        cls = type(self)
        specs = cls.__dict__.get("_stepstone_specs")
        if specs is None:  # not resolvable when the class was defined; resolved now
            specs, response_specs = _resolve_handlers(cls)
            _check_handlers(cls, specs, response_specs)
            cls._stepstone_specs = specs
            cls._stepstone_response_specs = response_specs
        return specs, cls.__dict__["_stepstone_response_specs"]

    def find_handler(self, message: Any) -> HandlerSpec | None:
        """The first handler whose message type accepts ``message``, or None."""
        spec = self._route_cache.get(type(message))
        if spec is not None:
            return spec
        cacheable = True
        for spec in self.handler_specs():
            cacheable = cacheable and spec.class_only
            if is_instance_of(message, spec.message_type):
                if cacheable:
                    self._route_cache[type(message)] = spec
                return spec
        return None

    def can_handle(self, message: Any) -> bool:
        return self.find_handler(message) is not None

    def find_response_handler(self, request: Any, response: Any) -> ResponseHandlerSpec | None:
        for spec in self.response_handler_specs():
            if is_instance_of(request, spec.request_type) and is_instance_of(response, spec.response_type):
                return spec
        return None

    async def invoke(self, spec: HandlerSpec, message: Any, ctx: Any) -> None:
        """Call one handler; subclasses with a different calling convention override this."""
        if spec.takes_context:
            await spec.func(self, message, ctx)
        else:
            await spec.func(self, message)

    # -- description ----------------------------------------------------------------------
    @property
    def type_name(self) -> str:
        """The executor's kind, as recorded in the graph signature."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"

    @property
    def input_types(self) -> list[Any]:
        return [spec.message_type for spec in self.handler_specs()]

    def send_types(self) -> tuple | None:
        """Union of what the handlers declare they send; None if any handler is undeclared."""
        return _union_declared(
            [s.send_types for s in self.handler_specs()]
            + [s.send_types for s in self.response_handler_specs()])

    def yield_types(self) -> tuple | None:
        return _union_declared(
            [s.yield_types for s in self.handler_specs()]
            + [s.yield_types for s in self.response_handler_specs()])

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type_name,
            "input_types": [type_name(t) for t in self.input_types],
            # None: not declared (a bare WorkflowContext); []: declared as Never.
            "output_types": _names(self.send_types()),
            "yield_types": _names(self.yield_types()),
            "requests": [{"request_type": type_name(s.request_type),
                          "response_type": type_name(s.response_type)}
                         for s in self.response_handler_specs()],
        }

    # -- state hooks (override in subclasses) -----------------------------------------------
    async def on_checkpointing(self, ctx: Any) -> None:
        """Called before each checkpoint; save state with ``await ctx.queue_state_update``."""

    async def on_checkpoint_restored(self, ctx: Any) -> None:
        """Called after a restore; read state with ``await ctx.read_state(key)``."""

    async def on_checkpoint_save(self) -> dict[str, Any]:
        """MAF style: return this executor's state as a dict."""
        return {}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        """MAF style: receive the dict ``on_checkpoint_save`` returned."""

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.id!r}>"


def _names(types: tuple | None) -> list[str] | None:
    return None if types is None else [type_name(t) for t in types]


def _union_declared(declared: list[tuple | None]) -> tuple | None:
    if not declared or any(d is None for d in declared):
        return None if declared else ()
    out: list = []
    for types in declared:
        out.extend(t for t in types if t not in out)
    return tuple(out)


def _marked_methods(cls: type, mark: str) -> list[tuple[str, Callable]]:
    seen: dict[str, Callable] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and getattr(value, mark, False):
                seen[name] = value
            elif name in seen:
                del seen[name]  # overridden by a non-handler
    return list(seen.items())


def overrides(executor: Executor, method: str) -> bool:
    """Whether ``executor`` overrides one of ``Executor``'s no-op hooks."""
    return getattr(type(executor), method) is not getattr(Executor, method)


class FunctionExecutor(Executor):
    """An executor made from one async function ``(message: T[, ctx])`` by ``@executor``."""

    def __init__(self, func: Callable, id: str | None = None) -> None:
        _require_coroutine(func, "@executor")
        super().__init__(id or func.__name__)
        self.func = func
        owner = f"executor function {func.__qualname__}"
        self._spec = _handler_spec(func, owner)
        _refuse_type_variables(self._spec, owner)

    def handler_specs(self) -> list[HandlerSpec]:
        return [self._spec]

    def response_handler_specs(self) -> list[ResponseHandlerSpec]:
        return []

    async def invoke(self, spec: HandlerSpec, message: Any, ctx: Any) -> None:
        if spec.takes_context:
            await self.func(message, ctx)
        else:
            await self.func(message)

    @property
    def type_name(self) -> str:
        return f"function:{self.func.__module__}.{self.func.__qualname__}"


def executor(func: Callable | None = None, *, id: str | None = None) -> Any:
    """Turn an async function ``(message: T, ctx: WorkflowContext[...])`` into an executor.

    Use as ``@executor`` or ``@executor(id="name")``; the id defaults to the function name.
    """
    if func is None:
        return lambda f: FunctionExecutor(f, id=id)
    return FunctionExecutor(func, id=id)
