"""snakepit_bridge: the worker side of snakepit (imports nothing from ``snakepit``).

    from snakepit_bridge import BaseAdapter, SessionContext, tool

    class MyAdapter(BaseAdapter):
        @tool
        def add(self, a: int, b: int) -> int:
            return a + b

Run it: ``python -m snakepit_bridge --adapter mymodule:MyAdapter`` (the host does this).
"""

from snakepit_bridge import telemetry
from snakepit_bridge.adapter import BaseAdapter, ThreadSafeAdapter, tool
from snakepit_bridge.context import HostToolError, SessionContext
from snakepit_bridge.dispatch import StreamChunk

__all__ = ["BaseAdapter", "HostToolError", "SessionContext", "StreamChunk", "ThreadSafeAdapter",
           "telemetry", "tool"]
