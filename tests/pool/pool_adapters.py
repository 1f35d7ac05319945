"""Adapters for pool tests (imported by worker processes via PYTHONPATH=tests/pool)."""

import os
import signal
import time

from snakepit_bridge import (BaseAdapter, HostToolError, SessionContext, StreamChunk,
                             ThreadSafeAdapter, tool)


class MisbehavingAdapter(BaseAdapter):
    """Tools that make the worker process misbehave in ways the host must survive."""

    @tool
    def ping(self) -> dict:
        return {"status": "pong", "pid": os.getpid()}

    @tool
    def pid(self) -> int:
        return os.getpid()

    @tool
    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @tool
    def block_on(self, path: str, started: str = "") -> str:
        """A sync tool that ignores cancellation (like model inference): it creates the file
        ``started`` (the test's sign that it runs), then blocks until the test writes to the
        FIFO at ``path``."""
        if started:
            open(started, "w").close()
        with open(path) as fifo:
            return fifo.read()

    @tool
    def freeze(self) -> None:
        """Stop the whole process (no heartbeats, nothing) until SIGCONT."""
        os.kill(os.getpid(), signal.SIGSTOP)

    @tool
    async def ignore_sigterm(self) -> int:  # async: signals are set on the main thread
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return os.getpid()

    @tool
    def spawn_grandchild(self) -> int:
        """A grandchild in the worker's process group, which must die with the worker."""
        import subprocess
        import sys
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return proc.pid


class ThreadedAdapter(ThreadSafeAdapter):
    @tool
    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


class FailingInitAdapter(BaseAdapter):
    def initialize(self) -> None:
        raise RuntimeError("model weights not found (on purpose)")

    @tool
    def ping(self) -> str:
        return "pong"


class FailsWhenMarked(BaseAdapter):
    """Initializes only while the file named by $FAIL_MARKER does not exist."""

    def initialize(self) -> None:
        marker = os.environ.get("FAIL_MARKER", "")
        if marker and os.path.exists(marker):
            raise RuntimeError("marked to fail")

    @tool
    def pid(self) -> int:
        return os.getpid()


class HostCallsAdapter(BaseAdapter):
    """Tools that reach back into the host through their SessionContext."""

    @tool
    def try_host(self, ctx: SessionContext, name: str, args: dict | None = None) -> dict:
        try:
            return {"result": ctx.call_host_tool(name, **(args or {}))}
        except HostToolError as exc:
            return {"caught": exc.type, "category": exc.category, "message": exc.message}

    @tool
    async def async_host(self, ctx: SessionContext, name: str, args: dict | None = None):
        return await ctx.acall_host_tool(name, **(args or {}))

    @tool
    def list_host(self, ctx: SessionContext) -> list:
        return [t["name"] for t in ctx.host_tools]

    @tool
    def get_var(self, ctx: SessionContext, name: str):
        return ctx.get_variable(name)

    @tool
    def set_var(self, ctx: SessionContext, name: str, value, type: str = ""):
        try:
            return {"stored": ctx.set_variable(name, value, type=type)}
        except HostToolError as exc:
            return {"caught": exc.type, "message": exc.message}


class EmittingAdapter(BaseAdapter):
    @tool
    def emit(self, name: str, n: int = 1) -> int:
        from snakepit_bridge import telemetry
        for i in range(n):
            telemetry.emit(name, {"i": i}, {"from": "worker"})
        return n


class TracedAdapter(BaseAdapter):
    """Records its spans with the OpenTelemetry SDK, in memory, and reports them on demand."""

    def initialize(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(provider)

    @tool
    def work(self) -> str:
        return "done"

    @tool
    def spans(self) -> list:
        return [{"name": s.name, "trace_id": f"{s.context.trace_id:032x}",
                 "parent": f"{s.parent.span_id:016x}" if s.parent else None}
                for s in self.exporter.get_finished_spans()]


class LoggingAdapter(BaseAdapter):
    @tool
    def log_something(self) -> str:
        import logging
        logging.getLogger("user.code").warning("inside the tool")
        return "ok"


class StreamShapes(BaseAdapter):
    """Streams whose chunks are None, or end with a final chunk the tool marks itself."""

    @tool
    def yields(self, items: list):
        yield from items

    @tool
    def marks_final(self, n: int):
        yield from range(n)
        yield StreamChunk(is_final=True, metadata={"why": "done"})


class BigValues(BaseAdapter):
    """Large values back and forth, and values too big for one pipe frame
    (tests/bridge/test_shm_pool.py)."""

    @tool
    def echo(self, **kwargs):
        return kwargs

    @tool
    def yields(self, items: list):
        yield from items

    @tool
    def text(self, n: int) -> str:
        return "x" * n

    @tool
    def texts(self, n: int):
        yield "small"
        yield "x" * n


class ProcessFacts(BaseAdapter):
    """What its worker process holds: imported modules, frozen objects, threads (for the
    start-up checks of zygote-forked workers)."""

    @tool
    def facts(self) -> dict:
        import gc
        import sys
        import threading
        return {"modules": sorted(sys.modules), "frozen": gc.get_freeze_count(),
                "gc_enabled": gc.isenabled(),
                "threads": sorted(t.name for t in threading.enumerate())}
