"""snakepit_bridge: the worker side of snakepit (imports nothing from ``snakepit``).

    from snakepit_bridge import BaseAdapter, SessionContext, tool

    class MyAdapter(BaseAdapter):
        @tool
        def add(self, a: int, b: int) -> int:
            return a + b

Run it: ``python -m snakepit_bridge --adapter mymodule:MyAdapter`` (the host does this).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snakepit_bridge import telemetry
    from snakepit_bridge.adapter import BaseAdapter, ThreadSafeAdapter, tool
    from snakepit_bridge.context import HostToolError, SessionContext
    from snakepit_bridge.dispatch import StreamChunk

__all__ = ["BaseAdapter", "HostToolError", "SessionContext", "StreamChunk", "ThreadSafeAdapter",
           "telemetry", "tool"]

# Resolved on first use: ``python -m snakepit_bridge`` imports this package before its
# ``__main__``, which keeps the garbage collector off while a worker imports its code.
_HOME = {"BaseAdapter": "adapter", "ThreadSafeAdapter": "adapter", "tool": "adapter",
         "HostToolError": "context", "SessionContext": "context", "StreamChunk": "dispatch"}


def __getattr__(name: str) -> Any:
    if name == "telemetry":
        return importlib.import_module("snakepit_bridge.telemetry")
    if name in _HOME:
        value = getattr(importlib.import_module(f"snakepit_bridge.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'snakepit_bridge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
