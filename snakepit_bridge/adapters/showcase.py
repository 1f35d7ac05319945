"""The showcase adapter: the tools the demo, docs, tests and benchmarks use.

``python -m snakepit_bridge --adapter snakepit_bridge.adapters.showcase:ShowcaseAdapter``
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, AsyncIterator, Iterator

from snakepit_bridge import SessionContext, ThreadSafeAdapter, telemetry, tool

ERRORS: dict[str, type[BaseException]] = {
    "value": ValueError, "runtime": RuntimeError, "key": KeyError,
    "zero_division": ZeroDivisionError,
}
OPERATIONS = ("upper", "lower", "reverse", "length")


class ShowcaseError(Exception):
    """The custom exception class of ``error_demo(error_type="custom")``."""


class ShowcaseAdapter(ThreadSafeAdapter):
    version = "1.0.0"

    @tool(description="Liveness check")
    def ping(self, message: str = "pong") -> dict[str, Any]:
        return {"status": "pong", "message": message, "pid": os.getpid(),
                "timestamp": time.time()}

    @tool(description="Return the arguments unchanged")
    def echo(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    @tool(description="Add two numbers (integers stay integers)")
    def add(self, a: int | float, b: int | float) -> int | float:
        return a + b

    @tool(description="What this adapter is")
    def adapter_info(self) -> dict[str, Any]:
        return {"adapter": self.adapter_name(), "version": self.version, "language": "python",
                "python": sys.version.split()[0], "pid": os.getpid(),
                "tools": sorted(self.tools())}

    @tool(description="Transform a text: upper, lower, reverse or length")
    def process_text(self, text: str, operation: str = "upper") -> Any:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; valid: {', '.join(OPERATIONS)}")
        if operation == "upper":
            return text.upper()
        if operation == "lower":
            return text.lower()
        if operation == "reverse":
            return text[::-1]
        return len(text)

    @tool(description="Process statistics of this worker")
    def get_stats(self) -> dict[str, Any]:
        import psutil
        proc = psutil.Process()
        with proc.oneshot():
            mem = proc.memory_info()
            return {"pid": proc.pid, "rss": mem.rss, "vms": mem.vms,
                    "cpu_percent": proc.cpu_percent(interval=None),
                    "threads": proc.num_threads(), "uptime": time.time() - proc.create_time()}

    @tool(description="Sleep; returns early when the request is cancelled")
    def sleep(self, seconds: float, ctx: SessionContext) -> dict[str, Any]:
        t0 = time.monotonic()
        cancelled = ctx.wait_cancelled(seconds)
        return {"slept": time.monotonic() - t0, "cancelled": cancelled}

    @tool(description="Burn CPU for about `ms` milliseconds")
    def cpu_burn(self, ms: float) -> dict[str, Any]:
        end = time.perf_counter() + ms / 1000
        n = 0
        while time.perf_counter() < end:
            n += 1
        return {"iterations": n}

    @tool(description="Write `lines` lines to stderr (log flood test)")
    def flood_stderr(self, lines: int = 1000) -> int:
        line = "x" * 100 + "\n"
        for _ in range(lines):
            sys.stderr.write(line)
        sys.stderr.flush()
        return lines

    @tool(description="Raise an error of the given type")
    def error_demo(self, error_type: str = "value") -> None:
        if error_type == "custom":
            raise ShowcaseError("a custom error from the showcase")
        exc = ERRORS.get(error_type)
        if exc is None:
            raise ValueError(f"unknown error_type {error_type!r}; valid: "
                             f"{', '.join([*ERRORS, 'custom'])}")
        raise exc(f"{error_type} error raised on purpose")

    @tool(description="Stream `count` items, `delay` seconds apart")
    async def stream_data(self, count: int = 5, delay: float = 0.0
                          ) -> AsyncIterator[dict[str, int]]:
        for i in range(count):
            yield {"index": i, "value": i * i}
            if delay:
                await asyncio.sleep(delay)

    @tool(description="Stream progress updates {step, total, progress}")
    async def stream_progress(self, steps: int = 10, delay_ms: float = 100.0
                              ) -> AsyncIterator[dict[str, float]]:
        for step in range(1, steps + 1):
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            yield {"step": step, "total": steps, "progress": step / steps}

    @tool(description="Stream `count` pongs")
    def ping_stream(self, count: int = 5) -> Iterator[dict[str, float]]:
        for i in range(count):
            yield {"ping": i + 1, "timestamp": time.time()}

    @tool(description="Checksum, length or reverse of a binary blob")
    def process_binary(self, data: bytes, operation: str = "checksum") -> Any:
        if operation == "checksum":
            import hashlib   # here, not in every idle worker: libcrypto's ~0.4 MB (ADR 0003)
            return {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}
        if operation == "length":
            return len(data)
        if operation == "reverse":
            return data[::-1]
        raise ValueError(f"unknown operation {operation!r}; valid: checksum, length, reverse")

    @tool(description="Mean, std and shape of an array (needs numpy)")
    def numpy_stats(self, array: Any) -> dict[str, Any]:
        import numpy as np
        arr = np.asarray(array)
        return {"mean": float(arr.mean()), "std": float(arr.std()), "shape": list(arr.shape),
                "dtype": arr.dtype.str, "doubled": arr * 2}

    @tool(description="Call a host tool through the session context")
    def call_host_demo(self, ctx: SessionContext, tool_name: str = "host_echo",
                       args: dict[str, Any] | None = None) -> dict[str, Any]:
        with telemetry.span("showcase.call_host_demo", {"tool": tool_name}):
            result = ctx.call_host_tool(tool_name, **(args or {}))
        return {"host_result": result}

    @tool(description="Increment a counter kept in this worker for the session")
    def session_counter(self, ctx: SessionContext) -> int:
        with self.lock():
            ctx.state["counter"] = ctx.state.get("counter", 0) + 1
            return int(ctx.state["counter"])
