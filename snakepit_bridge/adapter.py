"""Adapters: a class whose ``@tool`` methods a worker serves.

    from snakepit_bridge import BaseAdapter, SessionContext, tool

    class MyAdapter(BaseAdapter):
        def initialize(self):                 # once, before the worker reports ready
            self.model = load_model()

        @tool(description="Embed a text")
        def embed(self, text: str) -> list:
            return self.model.embed(text)

        @tool(streaming=True)
        async def count(self, n: int, ctx: SessionContext):
            for i in range(n):
                yield {"i": i}

Tools may be sync (run in worker threads), ``async def``, generators or async generators
(streaming). Arguments are bound by name from the request's JSON object and checked against the
signature; a parameter annotated ``SessionContext`` (or named ``ctx``) receives the context.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import types
import typing
from typing import Any, Callable, ParamSpec, TypeVar


_TOOL_ATTR = "__snakepit_tool__"
_DESCRIBED = "_snakepit_described_tools"   # a class's describe_tools(), in its own __dict__
P = ParamSpec("P")
R = TypeVar("R")

# annotation -> (python types accepted, wire type name)
_SIMPLE: dict[Any, tuple[tuple[type, ...], str]] = {
    int: ((int,), "int"),
    float: ((int, float), "float"),
    str: ((str,), "str"),
    bool: ((bool,), "bool"),
    list: ((list,), "list"),
    dict: ((dict,), "dict"),
    bytes: ((bytes,), "bytes"),
}


class ArgumentError(ValueError):
    """Arguments that do not fit a tool's signature; ``details`` names what is wrong."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    name: str
    annotation: Any
    required: bool
    default: Any
    accepts: tuple[type, ...] | None     # None: not checked
    nullable: bool
    type_name: str
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    fn: Callable[..., Any]
    description: str
    streaming: bool
    is_async: bool
    is_generator: bool
    params: tuple[Param, ...]
    ctx_param: str | None
    var_kwargs: bool
    names: frozenset[str] = dataclasses.field(init=False)   # of the parameters
    required: frozenset[str] = dataclasses.field(init=False)   # of those without a default

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(p.name for p in self.params))
        object.__setattr__(self, "required",
                           frozenset(p.name for p in self.params if p.required))

    def bind(self, args: Any) -> dict[str, Any]:
        """Keyword arguments for the call, validated; raises :class:`ArgumentError`."""
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ArgumentError(f"arguments of {self.name!r} must be a JSON object, got "
                                f"{type(args).__name__}", {"tool": self.name})
        names = self.names
        unexpected = [] if names.issuperset(args) else sorted(k for k in args if k not in names)
        if unexpected and not self.var_kwargs:
            raise ArgumentError(
                f"{self.name}() got unexpected argument(s) {', '.join(unexpected)}; "
                f"it takes {', '.join(sorted(names)) or 'no arguments'}",
                {"tool": self.name, "unexpected": unexpected, "parameters": sorted(names)})
        missing = [] if self.required.issubset(args) else \
            [p.name for p in self.params if p.required and p.name not in args]
        if missing:
            raise ArgumentError(f"{self.name}() missing required argument(s) "
                                f"{', '.join(missing)}", {"tool": self.name, "missing": missing})
        out = dict(args)
        for p in self.params:
            if p.name not in out:
                continue
            value = out[p.name]
            if p.accepts is None or (value is None and p.nullable):
                continue
            ok = isinstance(value, p.accepts) and not (
                isinstance(value, bool) and bool not in p.accepts)
            if not ok:
                raise ArgumentError(
                    f"{self.name}() argument {p.name!r} must be {p.type_name}, got "
                    f"{type(value).__name__} {value!r:.60}",
                    {"tool": self.name, "parameter": p.name, "expected": p.type_name,
                     "got": type(value).__name__})
            if p.type_name == "float" and isinstance(value, int):
                out[p.name] = float(value)   # JSON has one number type
        return out


@typing.overload
def tool(fn: Callable[P, R], /) -> Callable[P, R]: ...


@typing.overload
def tool(*, description: str | None = None, streaming: bool | None = None,
         name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def tool(fn: Callable[P, R] | None = None, *, description: str | None = None,
         streaming: bool | None = None, name: str | None = None
         ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark an adapter method as a tool: ``@tool`` or ``@tool(description=..., streaming=...)``.
    ``streaming`` defaults to whether the function is a (async) generator. The method itself
    is returned unchanged, so type checkers see its own signature::

        @tool
        def add(self, a: int, b: int) -> int: ...
        MyAdapter().add(1, "2")     # mypy: incompatible type "str"
    """
    def mark(f: Callable[P, R]) -> Callable[P, R]:
        setattr(f, _TOOL_ATTR, {"description": description, "streaming": streaming,
                                 "name": name})
        return f
    return mark(fn) if fn is not None else mark


def _param_type(annotation: Any) -> tuple[tuple[type, ...] | None, bool, str]:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) != len(typing.get_args(annotation))
        if len(members) == 1:
            annotation = members[0]
            origin = typing.get_origin(annotation)
        else:
            simple = [_SIMPLE.get(typing.get_origin(m) or m) for m in members]
            if all(simple):
                accepts = tuple(t for entry in simple if entry for t in entry[0])
                name = " or ".join(entry[1] for entry in simple if entry)
                return accepts, nullable, name
            return None, nullable, "any"
    if origin is not None:
        annotation = origin
    if annotation in _SIMPLE:
        accepts, type_name = _SIMPLE[annotation]
        return accepts, nullable, type_name
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None, nullable, "any"
    return None, nullable, getattr(annotation, "__name__", str(annotation))


def describe_function(name: str, fn: Callable[..., Any], description: str | None,
                      streaming: bool | None, *, unbound: bool = False) -> ToolInfo:
    """``fn``'s parameters and kind as a tool; ``unbound``: ``fn`` is a method taken from its
    class, whose first parameter (``self``) is not the tool's."""
    from snakepit_bridge.context import SessionContext

    sig = inspect.signature(fn)
    if unbound:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: check nothing rather than fail
        hints = {}
    params: list[Param] = []
    ctx_param = None
    var_kwargs = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kwargs = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        ann = hints.get(p.name, p.annotation)
        if ann is SessionContext or (p.name == "ctx" and ann is inspect.Parameter.empty):
            ctx_param = p.name
            continue
        accepts, nullable, type_name = _param_type(ann)
        required = p.default is inspect.Parameter.empty
        params.append(Param(name=p.name, annotation=ann, required=required,
                            default=None if required else p.default, accepts=accepts,
                            nullable=nullable or (not required and p.default is None),
                            type_name=type_name))
    is_gen = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
    doc = description if description is not None else (inspect.getdoc(fn) or "")
    return ToolInfo(
        name=name, fn=fn, description=doc.strip().split("\n\n")[0] if doc else "",
        streaming=is_gen if streaming is None else streaming,
        is_async=inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn),
        is_generator=is_gen, params=tuple(params), ctx_param=ctx_param,
        var_kwargs=var_kwargs)


class BaseAdapter:
    """Base of worker adapters. One instance per worker process.

    Class attributes: ``name`` (default: the class name), ``version``, ``thread_safe``
    (whether tools may run concurrently in one process; see :class:`ThreadSafeAdapter`)."""

    name: str | None = None
    version: str = "0.1.0"
    thread_safe: bool = False

    def initialize(self) -> Any:
        """Called once before the worker reports ready (sync or async). Load models here."""

    def shutdown(self) -> Any:
        """Called once when the worker stops (sync or async)."""

    def on_session_start(self, session_id: str, metadata: Any) -> Any:
        """A session was initialized on this worker."""

    def on_session_end(self, session_id: str) -> Any:
        """A session ended: release what this worker keeps for it."""

    @classmethod
    def adapter_name(cls) -> str:
        return cls.name or cls.__name__

    def tools(self) -> dict[str, ToolInfo]:
        """This instance's tools by name, each with ``fn`` bound to it."""
        return {name: dataclasses.replace(info, fn=getattr(self, attr))
                for name, (attr, info) in type(self).describe_tools().items()}

    @classmethod
    def describe_tools(cls) -> dict[str, tuple[str, ToolInfo]]:
        """``{tool name: (attribute, description)}`` of the class's tools, worked out once per
        class (signatures and type hints are slow to read, and a zygote reads them before it
        forks, so no worker repeats it). The descriptions' ``fn`` is the class's attribute;
        :meth:`tools` binds it.

            MyAdapter.describe_tools()["add"][1].params   # (Param(name='a', ...), ...)
        """
        described: dict[str, tuple[str, ToolInfo]] | None = cls.__dict__.get(_DESCRIBED)
        if described is not None:
            return described
        described = {}
        for klass in reversed(cls.__mro__):
            for attr, member in vars(klass).items():
                meta = getattr(member, _TOOL_ATTR, None)
                if meta is None:
                    continue
                tool_name = meta["name"] or attr
                # an instance gets a plain function bound (no self); a staticmethod or
                # classmethod as the class has it
                unbound = isinstance(inspect.getattr_static(cls, attr), types.FunctionType)
                described[tool_name] = (attr, describe_function(
                    tool_name, getattr(cls, attr), meta["description"], meta["streaming"],
                    unbound=unbound))
        setattr(cls, _DESCRIBED, described)
        return described


class ThreadSafeAdapter(BaseAdapter):
    """An adapter whose tools may run concurrently (``--max-concurrency N`` > 1). Guard shared
    mutable state with :meth:`lock` or keep it per thread in :attr:`local`."""

    thread_safe = True

    def lock(self) -> Any:
        """A re-entrant lock for the adapter's shared state: ``with self.lock(): ...``."""
        return self.__dict__.setdefault("_snakepit_lock", threading.RLock())

    @property
    def local(self) -> threading.local:
        """Per-thread state: ``self.local.buffer = ...`` is seen only by this thread."""
        return self.__dict__.setdefault("_snakepit_local", threading.local())  # type: ignore[no-any-return]
