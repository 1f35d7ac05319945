"""A worker for the Ray placement tests: where it runs, host calls, telemetry, a stream."""

from __future__ import annotations

import asyncio
import os
import time
from typing import AsyncIterator

from snakepit_bridge import BaseAdapter, HostToolError, SessionContext, tool


class RayTestAdapter(BaseAdapter):
    @tool
    def where(self) -> dict:
        return {"pid": os.getpid()}

    @tool
    def sleep(self, seconds: float, ctx: SessionContext) -> float:
        t0 = time.monotonic()
        ctx.wait_cancelled(seconds)
        return time.monotonic() - t0

    @tool
    async def steps(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    @tool
    def try_host(self, ctx: SessionContext, name: str, args: dict | None = None) -> dict:
        try:
            return {"result": ctx.call_host_tool(name, **(args or {}))}
        except HostToolError as exc:
            return {"caught": exc.type, "message": exc.message}

    @tool
    def emit(self, name: str) -> str:
        from snakepit_bridge import telemetry
        telemetry.emit(name, {"n": 1}, {"from": "ray"})
        return name
