"""An adapter as a user writes one, checked by mypy --strict in test_typing.py: a ``@tool``
method keeps its own signature, so mistakes in calling it are type errors."""

from __future__ import annotations

from typing import AsyncIterator

from snakepit_bridge import BaseAdapter, SessionContext, tool


class Typed(BaseAdapter):
    @tool
    def add(self, a: int, b: int) -> int:
        return a + b

    @tool(description="Greets", name="hello")
    async def greet(self, name: str, ctx: SessionContext) -> str:
        return f"hello {name} ({ctx.correlation_id})"

    @tool(streaming=True)
    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


def uses(adapter: Typed) -> int:
    total: int = adapter.add(1, 2)
    return total
