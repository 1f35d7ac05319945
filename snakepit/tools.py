"""Host tools: functions on the host that workers may call (``app.tools``).

    def lookup(key: str) -> dict: ...
    app.tools.register("lookup", lookup, description="Find a record")
    # in a worker tool:  ctx.call_host_tool("lookup", key="a1")

A tool is a sync or async function run on the host's trio loop; its parameters come from its
signature (checked like a worker tool's) unless given. ``session_id=`` scopes a tool to one
session: only that session's calls see it, and it goes when the session ends.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import attrs

from snakepit.errors import (AlreadyRegistered, InvalidArgumentsError, SnakepitError,
                             ToolError, UnknownToolError)
from snakepit_bridge.adapter import ArgumentError, ToolInfo, describe_function

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 64


@attrs.frozen
class HostTool:
    name: str
    info: ToolInfo
    parameters: tuple[dict[str, Any], ...]
    session_id: str | None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.info.description,
                "parameters": list(self.parameters), "session_id": self.session_id}


class HostTools:
    def __init__(self) -> None:
        self._tools: dict[tuple[str | None, str], HostTool] = {}

    def register(self, name: str, fn: Callable[..., Any], *, description: str | None = None,
                 parameters: list[dict[str, Any]] | None = None,
                 session_id: str | None = None) -> HostTool:
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise InvalidArgumentsError(
                f"host tool name must match {NAME_RE.pattern} and be at most {MAX_NAME} "
                f"characters, got {name!r:.80}", details={"field": "name"})
        if not callable(fn):
            raise InvalidArgumentsError(f"host tool {name!r}: fn must be callable, got {fn!r}")
        key = (session_id, name)
        if key in self._tools:
            scope = f"session {session_id!r}" if session_id else "the global scope"
            raise AlreadyRegistered(f"host tool {name!r} is already registered in {scope}",
                                    details={"name": name, "session_id": session_id})
        info = describe_function(name, fn, description, False)
        params = tuple(parameters) if parameters is not None else tuple(
            {"name": p.name, "type": p.type_name, "required": p.required}
            for p in info.params)
        tool = HostTool(name=name, info=info, parameters=params, session_id=session_id)
        self._tools[key] = tool
        return tool

    def unregister(self, name: str, *, session_id: str | None = None) -> bool:
        return self._tools.pop((session_id, name), None) is not None

    def drop_session(self, session_id: str) -> int:
        keys = [k for k in self._tools if k[0] == session_id]
        for k in keys:
            del self._tools[k]
        return len(keys)

    def list(self, session_id: str | None = None) -> list[dict[str, Any]]:
        return [t.describe() for (sid, _), t in sorted(self._tools.items(),
                                                        key=lambda kv: kv[0][1])
                if sid is None or sid == session_id]

    def get(self, name: str, session_id: str | None = None) -> HostTool:
        tool = self._tools.get((session_id, name)) if session_id else None
        tool = tool or self._tools.get((None, name))
        if tool is None:
            available = sorted({n for (sid, n) in self._tools if sid in (None, session_id)})
            raise UnknownToolError(f"no host tool named {name!r}; available: {available}",
                                   details={"tool": name, "available": available})
        return tool

    async def call(self, name: str, args: Any, session_id: str | None = None) -> Any:
        tool = self.get(name, session_id)
        try:
            kwargs = tool.info.bind(args)
        except ArgumentError as exc:
            raise InvalidArgumentsError(str(exc), details=exc.details) from None
        try:
            result = tool.info.fn(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except SnakepitError:
            raise
        except Exception as exc:
            raise ToolError(str(exc), details={"tool": name},
                            remote_type=type(exc).__name__) from exc
        return result
