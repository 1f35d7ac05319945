"""Fake worker processes for the pool's fast test tier: tools, processes, transports.

    process = FakeProcess(world, "fake-1#1", "fake-1", 10_000, nursery, start="ok")
    ready = await process.wait_ready(30.0)           # Ready(port=0, pid=10000, ...)
    transport = FakeTransport(world, process)
    response = await transport.execute(request)      # runs world.tools[request.tool]
    process.die(code=1)                              # a crash: wait() returns 1

A :class:`FakeProcess` does everything on trio time, so under ``trio.testing.MockClock`` the
signals it records (``("SIGTERM" | "SIGKILL", time)``) and the calls it served are exact.
``tests/pool/fakes.py`` has the ``World`` that spawns and connects them for a real pool.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

import trio

from snakepit.errors import DeadlinePassed, WorkerCrashed, WorkerStartError
from snakepit.pool.process import Ready
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

if TYPE_CHECKING:
    from fakes import World


# -- tools ------------------------------------------------------------------------------------
class FakeTool:
    """What a fake worker does for one tool: ``run(call)`` returns the result (or raises
    :class:`ToolFailed`). ``ignores_cancel``: the tool runs on when its caller gives up (a sync
    tool that does not poll ``ctx.cancelled``)."""

    def __init__(self, run: Callable[["FakeCall"], Awaitable[Any]], *,
                 ignores_cancel: bool = False) -> None:
        self.run = run
        self.ignores_cancel = ignores_cancel


class ToolFailed(Exception):
    """Raised by a fake tool: the worker answers with this error."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


def answer(fn: Callable[[dict[str, Any]], Any]) -> FakeTool:
    """A tool that answers at once with ``fn(args)``."""
    async def run(call: FakeCall) -> Any:
        return fn(call.args)
    return FakeTool(run)


def takes(seconds: float, result: Any = "done", *, ignores_cancel: bool = False) -> FakeTool:
    """A tool that works ``seconds`` of trio time, then answers ``result``."""
    async def run(call: FakeCall) -> Any:
        await trio.sleep(seconds)
        return result
    return FakeTool(run, ignores_cancel=ignores_cancel)


def held(result: Any = "done", *, ignores_cancel: bool = False) -> FakeTool:
    """A tool that runs until the test calls ``call.finish()`` (see ``World.calls``)."""
    async def run(call: FakeCall) -> Any:
        await call.gate.wait()
        return result
    return FakeTool(run, ignores_cancel=ignores_cancel)


class FakeCall:
    """One request as the fake worker sees it."""

    def __init__(self, world: "World", process: "FakeProcess", request: pb.ExecuteRequest
                 ) -> None:
        self.world = world
        self.process = process
        self.request = request
        self.id = request.request_id
        self.tool = request.tool
        self.args = serialization.decode(request.args_json, request.blobs) \
            if request.args_json else {}
        self.gate = trio.Event()          # held(): opened by finish()
        self.started_at = trio.current_time()
        self.ended_at: float | None = None
        self.outcome: str | None = None   # "answered", "failed", "cancelled", "killed"
        self.done = trio.Event()
        self.response: pb.ExecuteResponse | None = None
        self.scope = trio.CancelScope()

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def finish(self) -> None:
        self.gate.set()

    def __repr__(self) -> str:
        return f"<FakeCall {self.tool} {self.id} on {self.process.key} {self.outcome}>"


# -- processes --------------------------------------------------------------------------------
class FakeProcess:
    """One fake worker process (what ``spawn`` returns to the worker)."""

    def __init__(self, world: "World", key: str, slot: str, pid: int,
                 nursery: trio.Nursery, start: str) -> None:
        self.world = world
        self.key, self.slot, self.pid = key, slot, pid
        self.nursery = nursery
        self.start = start               # "ok", "fail" or "hang" (see World.starts)
        self.spawned_at = trio.current_time()
        self.ready_at: float | None = None
        self.died_at: float | None = None
        self.exit_code: int | None = None
        self.dead = trio.Event()
        self.signals: list[tuple[str, float]] = []   # ("SIGTERM" | "SIGKILL", trio time)
        self.ignores_term = False        # a SIGTERM does nothing; SIGKILL after the grace
        self.term_exit = world.term_exit  # trio seconds it takes to exit on SIGTERM
        self.frozen = False              # heartbeats go unanswered (SIGSTOPped, wedged)
        self.unreachable = False         # alive, but every call fails as WorkerCrashed
        self.calls: list[FakeCall] = []
        self.pipe_socket: Any = None

    def __repr__(self) -> str:
        return f"<FakeProcess {self.key} pid={self.pid} signals={self.signals}>"

    @property
    def running(self) -> list[str]:
        return [c.id for c in self.calls if c.running]

    @property
    def is_ready(self) -> bool:
        return self.ready_at is not None and not self.dead.is_set()

    @property
    def served(self) -> int:
        return len(self.calls)

    async def wait_ready(self, timeout: float) -> Ready:
        if self.start == "fail":
            self._exit(1)
            raise WorkerStartError(f"fake worker {self.key} exited before it was ready",
                                   details={"worker": self.key, "exit_code": 1})
        if self.start == "hang":
            with trio.move_on_after(timeout):
                await self.dead.wait()
            raise WorkerStartError(f"fake worker {self.key} was not ready within {timeout} s",
                                   details={"worker": self.key})
        self.ready_at = trio.current_time()
        self.world.notify()
        return Ready(port=0, pid=self.pid, info={"language": "fake"})

    async def wait(self) -> int:
        await self.dead.wait()
        assert self.exit_code is not None
        return self.exit_code

    def die(self, code: int = 1) -> None:
        """The process exits on its own (a crash when ``code`` is not 0)."""
        self._exit(code)

    async def terminate(self, grace: float) -> None:
        if self.dead.is_set():
            return
        if grace <= 0:
            self._signal("SIGKILL")
            return
        self._signal("SIGTERM")
        with trio.move_on_after(grace):
            await self.dead.wait()
        if not self.dead.is_set():
            self._signal("SIGKILL")

    def _signal(self, name: str) -> None:
        self.signals.append((name, trio.current_time()))
        if name == "SIGKILL":
            self._exit(-9)
        elif self.ignores_term:
            pass
        elif self.term_exit > 0:
            self.nursery.start_soon(self._exit_after, self.term_exit, -15)
        else:
            self._exit(-15)
        self.world.notify()

    async def _exit_after(self, seconds: float, code: int) -> None:
        with trio.CancelScope(shield=True):   # a process exits whatever the host cancels
            await trio.sleep(seconds)
        self._exit(code)

    def _exit(self, code: int) -> None:
        if self.dead.is_set():
            return
        self.exit_code = code
        self.died_at = trio.current_time()
        for call in self.calls:
            if call.running:
                call.scope.cancel()      # its tool dies with the process
        self.dead.set()
        self.world.notify()


# -- transports -------------------------------------------------------------------------------
class _Telemetry:
    """A telemetry stream that stays silent until its process dies."""

    def __init__(self, process: FakeProcess) -> None:
        self._process = process
        self.controls: list[pb.TelemetryControl] = []
        self.events = self._events()

    async def _events(self) -> AsyncIterator[pb.TelemetryEvent]:
        await self._process.dead.wait()
        return
        yield  # pragma: no cover  (an async generator that yields nothing)

    def send(self, control: pb.TelemetryControl) -> None:
        self.controls.append(control)


class FakeTransport:
    """The host's connection to one :class:`FakeProcess` (the ``Transport`` protocol)."""

    def __init__(self, world: "World", process: FakeProcess) -> None:
        self.world = world
        self.process = process
        self.closed = False
        self.heartbeats: list[float] = []   # trio times a heartbeat was asked for

    def _check(self) -> None:
        if self.process.dead.is_set() or self.process.unreachable or self.closed:
            raise WorkerCrashed(f"fake worker {self.process.key} is unreachable")

    async def start(self, nursery: trio.Nursery) -> None:
        self._check()

    async def ping(self) -> pb.PingResponse:
        self._check()
        await trio.lowlevel.checkpoint()
        return pb.PingResponse(message="pong", worker_id=self.process.key, pid=self.process.pid)

    async def heartbeat(self, seq: int) -> pb.HeartbeatResponse:
        self._check()
        self.heartbeats.append(trio.current_time())
        self.world.notify()
        if self.process.frozen:
            await self.process.dead.wait()   # a frozen process answers nothing
        self._check()
        await trio.lowlevel.checkpoint()
        running = self.process.running
        return pb.HeartbeatResponse(seq=seq, worker_id=self.process.key,
                                    in_flight=len(running), running=running)

    async def describe(self) -> pb.DescribeResponse:
        self._check()
        await trio.lowlevel.checkpoint()
        return pb.DescribeResponse(adapter="Fake", language="fake", capacity=1,
                                   tools=[pb.ToolSpec(name=n) for n in self.world.tools])

    async def execute(self, request: pb.ExecuteRequest, *, timeout: float | None = None,
                      deadline: float | None = None) -> pb.ExecuteResponse:
        self._check()
        call = self.world.begin(self.process, request)
        try:
            with trio.move_on_at(math.inf if deadline is None else deadline) as scope:
                await call.done.wait()   # set when the tool ends, or dies with its process
            if scope.cancelled_caught:
                raise DeadlinePassed(f"{call.tool!r} on fake worker {self.process.key}")
        finally:
            # The caller gave up: the worker cancels the tool, which ends at once unless it
            # ignores cancellation (a sync tool runs to its end).
            if call.running and not self.world.tools[call.tool].ignores_cancel:
                call.scope.cancel()
        if call.response is None:
            raise WorkerCrashed(f"fake worker {self.process.key} died during {call.tool!r}")
        return call.response

    @asynccontextmanager
    async def stream(self, request: pb.ExecuteRequest) -> AsyncIterator[AsyncIterator[pb.ToolChunk]]:
        """Streams the tool's result, a list, one item per chunk."""
        response = await self.execute(request)

        async def chunks() -> AsyncIterator[pb.ToolChunk]:
            if not response.success:
                yield pb.ToolChunk(chunk_id=1, is_final=True, error=response.error)
                return
            items = serialization.decode(response.result_json, response.blobs)
            for i, item in enumerate(items, 1):
                self._check()
                await trio.lowlevel.checkpoint()
                yield pb.ToolChunk(chunk_id=i, data_json=serialization.dumps(item),
                                   is_final=i == len(items))
        yield chunks()

    @asynccontextmanager
    async def telemetry(self, control: pb.TelemetryControl) -> AsyncIterator[_Telemetry]:
        self._check()
        channel = _Telemetry(self.process)
        channel.send(control)
        yield channel

    async def init_session(self, session_id: str,
                           metadata_json: bytes = b"") -> pb.InitSessionResponse:
        self._check()
        await trio.lowlevel.checkpoint()
        return pb.InitSessionResponse(created=True)

    async def end_session(self, session_id: str) -> pb.EndSessionResponse:
        self._check()
        await trio.lowlevel.checkpoint()
        return pb.EndSessionResponse(existed=True)

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def run_tool(world: "World", call: FakeCall, tool: FakeTool) -> None:
    with call.scope:
        try:
            result = await tool.run(call)
        except ToolFailed as exc:
            call.outcome = "failed"
            call.response = pb.ExecuteResponse(success=False, error=pb.ErrorInfo(
                category=exc.category, type="ToolFailed", message=exc.message))
        else:
            call.outcome = "answered"
            data, blobs = serialization.encode(result)
            call.response = pb.ExecuteResponse(success=True, result_json=data, blobs=blobs)
    if call.response is None:
        call.outcome = "killed" if call.process.dead.is_set() else "cancelled"
    call.ended_at = trio.current_time()
    call.done.set()
    world.notify()
