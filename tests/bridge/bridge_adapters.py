"""Adapters for the bridge tests (workers import them via PYTHONPATH=tests/bridge)."""

import os
import time
from pathlib import Path

from snakepit_bridge import BaseAdapter, SessionContext, ThreadSafeAdapter, tool


class ProbeAdapter(ThreadSafeAdapter):
    """Observable from outside: generators record progress and cleanup in files."""

    produced = 0

    def shutdown(self):
        marker = os.environ.get("SHUTDOWN_MARKER")
        if marker:
            Path(marker).write_text("shutdown called")

    @tool
    def big_stream(self, count: int, size: int, marker: str = ""):
        try:
            for i in range(count):
                ProbeAdapter.produced = i + 1
                yield {"i": i, "pad": "x" * size}
        finally:
            if marker:
                Path(marker).write_text(f"closed after {ProbeAdapter.produced}")

    @tool
    def produced_count(self) -> int:
        return ProbeAdapter.produced

    @tool
    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @tool
    def unserializable(self):
        return object()

    @tool
    def typed(self, n: int, x: float, s: str, flag: bool, items: list, opts: dict,
              maybe: int | None = None) -> dict:
        return {"n": n, "x": x, "s": s, "flag": flag, "items": items, "opts": opts,
                "maybe": maybe}


class NotThreadSafe(BaseAdapter):
    @tool
    def ping(self) -> str:
        return "pong"


class FailingInit(BaseAdapter):
    def initialize(self):
        raise RuntimeError("cannot load the model (on purpose)")


class TelemetryAdapter(BaseAdapter):
    @tool
    def emit(self, name: str, n: int = 1) -> int:
        from snakepit_bridge import telemetry
        for i in range(n):
            telemetry.emit(name, {"i": i}, {"who": "test"})
        return n

    @tool
    def spanned(self) -> str:
        from snakepit_bridge import telemetry
        with telemetry.span("work.unit", {"k": 1}):
            pass
        return "ok"


class SessionAdapter(BaseAdapter):
    """Remembers what the host said when each session started."""

    def __init__(self):
        self.started = {}

    def on_session_start(self, session_id, metadata):
        self.started.setdefault(session_id, metadata)   # the first start's

    @tool
    def session_metadata(self, session_id: str):
        return self.started.get(session_id, "never started")


class ModulesAdapter(BaseAdapter):
    """Says which modules its worker process has imported (for the lazy-import checks)."""

    @tool
    def add(self, a: int, b: int) -> int:
        return a + b

    @tool
    def loaded_modules(self) -> list:
        import sys
        return sorted(sys.modules)

    @tool
    def gc_enabled(self) -> bool:
        import gc
        return gc.isenabled()

    @tool
    def array_sum(self, array):
        return float(array.sum())


class StreamAdapter(ThreadSafeAdapter):
    """Streams for the batching checks of the pipe carrier (async and sync generators)."""

    produced = 0

    @tool
    def counted_sync(self, n: int, meta: bool = False):
        from snakepit_bridge import StreamChunk
        for i in range(n):
            StreamAdapter.produced = i + 1
            yield StreamChunk(data=i, metadata={"i": str(i)}) if meta else i

    @tool
    def produced_count(self) -> int:
        return StreamAdapter.produced

    @tool
    def final_then_more(self, marker: str):
        from snakepit_bridge import StreamChunk
        yield 1
        yield StreamChunk(data=2, is_final=True)
        Path(marker).write_text("advanced past the final chunk")
        yield 3

    @tool
    def one_then_wait_sync(self, seconds: float, ctx: SessionContext):
        yield "first"
        ctx.wait_cancelled(seconds)
        yield "second"

    @tool
    def mixed(self):
        from snakepit_bridge import StreamChunk
        yield 0
        yield 1
        yield StreamChunk(data=2, metadata={"m": "2"})
        yield 3
        yield {"four": [4]}

    @tool
    def forever(self, marker: str, pause: float, ctx: SessionContext):
        i = 0
        try:
            while True:
                yield i
                i += 1
                if pause:
                    ctx.wait_cancelled(pause)
        finally:
            Path(marker).write_text(f"closed after {i}")

    @tool
    def unserializable_third(self):
        yield 1
        yield 2
        yield object()
        yield 4

    @tool
    def fails_after(self, n: int):
        yield from range(n)
        raise ValueError(f"failed after {n}")

    @tool
    async def counted(self, n: int, meta: bool = False):
        from snakepit_bridge import StreamChunk
        for i in range(n):
            yield StreamChunk(data=i, metadata={"i": str(i)}) if meta else i

    @tool
    async def one_then_wait(self, seconds: float):
        import asyncio
        yield "first"
        await asyncio.sleep(seconds)
        yield "second"


class PackedTools(BaseAdapter):
    """The same sum as a sync tool (run on a tool thread) and an async one (on the loop)."""

    @tool
    def add(self, a: int, b: int) -> int:
        return a + b

    @tool
    async def add_async(self, a: int, b: int) -> int:
        return a + b
