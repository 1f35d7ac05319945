"""Fake worker processes and transports for the pool's fast test tier (no OS processes).

    world = World(tools={"add": answer(lambda args: args["a"] + args["b"])})
    async with world.pool(size=2) as fp:             # a real pool_supervisor over fakes
        assert await fp.pool.execute("add", {"a": 1, "b": 2}) == 3
        fp.world.processes[0].die()                  # a crash
        await fp.world.until(lambda: len(fp.world.processes) == 3)

Everything the fakes do happens on trio time, so under ``trio.testing.MockClock`` the pool's
backoff, grace periods, heartbeats and TTLs pass in microseconds and every recorded time is
exact. The fakes stand in for the seam the pool has for them (``PoolRuntime(spawn=, connect=)``);
the pool's own code (roster, starter, worker, dispatcher, supervisor) is the real one.

- :class:`FakeProcess` is one worker process: ``wait_ready`` answers ``Ready`` (or fails as the
  world's ``starts`` script says), ``wait`` returns when it dies, ``terminate(grace)`` records the
  signals it got with their trio time (SIGKILL at once for ``grace == 0``; otherwise SIGTERM, and
  SIGKILL after ``grace`` if the process ignores SIGTERM).
- :class:`FakeTransport` is its connection (the ``Transport`` protocol): ``execute`` runs the
  world's tool for the request inside the process (a tool that ignores cancellation runs on after
  its caller gave up, as a sync tool does), ``heartbeat`` answers with the request ids still
  running, or never while the process is ``frozen``.
- :class:`World` spawns and connects them, records what happened and wakes ``until`` waiters.
"""

from __future__ import annotations

import itertools
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from snakepit import otp
from snakepit.config import HeartbeatConfig, PoolConfig
from snakepit.errors import WorkerCrashed, WorkerStartError
from snakepit.pool.process import Ready
from snakepit.pool.runtime import PoolRuntime
from snakepit.pool.supervisor import pool_supervisor
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

POOL = "fake"
UNTIL_TIMEOUT = 600.0     # trio seconds an `until` waits before it fails the test
UNTIL_POLL = 0.05         # trio seconds between checks when nothing the world sees changes


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

    async def execute(self, request: pb.ExecuteRequest, *,
                      timeout: float | None = None) -> pb.ExecuteResponse:
        self._check()
        call = self.world.begin(self.process, request)
        try:
            await call.done.wait()   # set when the tool ends, or dies with its process
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


async def _run_tool(world: "World", call: FakeCall, tool: FakeTool) -> None:
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


# -- the world --------------------------------------------------------------------------------
class World:
    """Spawns fake processes and connects fake transports for a pool; records everything.

    ``starts``: how the next starts go, one of "ok" (ready at once), "fail" (exits before it is
    ready), "hang" (never ready: fails at ``startup_timeout``), consumed in order; once empty,
    every start is "ok".
    """

    def __init__(self, tools: dict[str, FakeTool] | None = None) -> None:
        self.tools: dict[str, FakeTool] = {
            "echo": answer(lambda args: args.get("value")),
            "hold": held(),
            **(tools or {}),
        }
        self.starts: list[str] = []
        self.term_exit = 0.0     # trio seconds a process takes to exit on SIGTERM
        self.processes: list[FakeProcess] = []
        self.transports: list[FakeTransport] = []
        self.calls: list[FakeCall] = []
        self.events: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any], float]] = []
        self._pids = itertools.count(10_000)
        self._changed = trio.Event()

    # -- the seam the pool has for it -------------------------------------------------------
    async def spawn(self, worker: Any, nursery: trio.Nursery) -> FakeProcess:
        start = self.starts.pop(0) if self.starts else "ok"
        process = FakeProcess(self, worker.key, worker.id, next(self._pids), nursery, start)
        self.processes.append(process)
        self.notify()
        await trio.lowlevel.checkpoint()
        return process

    def connect(self, worker: Any) -> FakeTransport:
        transport = FakeTransport(self, worker.process)
        self.transports.append(transport)
        return transport

    def emit(self, event: tuple[str, ...], measurements: dict[str, Any],
             metadata: dict[str, Any]) -> None:
        self.events.append((event, measurements, metadata, trio.current_time()))
        self.notify()

    def make_runtime(self, config: PoolConfig) -> PoolRuntime:
        runtime = PoolRuntime(config, spawn=self.spawn, connect=self.connect, emit=self.emit)
        # Wake `until` waiters on every state change of a worker (the roster's one writer).
        move = runtime.roster._move

        def observed_move(entry: Any, to: Any) -> None:
            move(entry, to)
            self.notify()
        runtime.roster._move = observed_move  # type: ignore[method-assign]
        return runtime

    def begin(self, process: FakeProcess, request: pb.ExecuteRequest) -> FakeCall:
        call = FakeCall(self, process, request)
        process.calls.append(call)
        self.calls.append(call)
        process.nursery.start_soon(_run_tool, self, call, self.tools[call.tool])
        self.notify()
        return call

    # -- reading and waiting ----------------------------------------------------------------
    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, predicate: Callable[[], Any], timeout: float = UNTIL_TIMEOUT) -> Any:
        """Wait (on trio time) until ``predicate()`` is true; returns its value. Woken by
        whatever the world sees change, and checked every ``UNTIL_POLL`` besides."""
        deadline = trio.current_time() + timeout
        while not (value := predicate()):
            if trio.current_time() >= deadline:
                raise AssertionError(f"not true within {timeout} s: {predicate}")
            with trio.move_on_after(min(UNTIL_POLL, deadline - trio.current_time())):
                await self._changed.wait()
        return value

    def running_calls(self, tool: str | None = None) -> list[FakeCall]:
        return [c for c in self.calls if c.running and (tool is None or c.tool == tool)]

    def named(self, *event: str) -> list[tuple[dict[str, Any], dict[str, Any], float]]:
        """The emitted ("snakepit", *event) events: (measurements, metadata, trio time)."""
        full = ("snakepit",) + event
        return [(m, md, t) for e, m, md, t in self.events if e == full]

    def alive(self) -> list[FakeProcess]:
        return [p for p in self.processes if not p.dead.is_set()]

    @asynccontextmanager
    async def pool(self, *, size: int = 1, ready: bool = True,
                   **config: Any) -> AsyncIterator["FakePool"]:
        """Run a real ``pool_supervisor`` (workers, dispatcher, lifecycle manager) over this
        world. ``config``: PoolConfig fields (short ``shutdown_grace`` and heartbeats every
        2 s unless given). With ``ready``, returns once every slot has had a worker ready."""
        config.setdefault("shutdown_grace", 1.0)
        config.setdefault("heartbeat", HeartbeatConfig(interval=2.0, timeout=2.0))
        cfg = PoolConfig(name=POOL, size=size, **config)
        registry = otp.Registry()
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(pool_supervisor, cfg, registry, self.make_runtime)
            fake = FakePool(self, cfg, registry, handle)
            if ready:
                await fake.runtime.ready.wait()
            try:
                yield fake
            finally:
                nursery.cancel_scope.cancel()


class FakePool:
    """A running pool over a :class:`World`: its supervisor handle, runtime and facade."""

    def __init__(self, world: World, config: PoolConfig, registry: otp.Registry,
                 handle: Any) -> None:
        self.world = world
        self.config = config
        self.registry = registry
        self.handle = handle     # the pool supervisor's: children "workers", "dispatcher", ...

    @property
    def runtime(self) -> PoolRuntime:
        runtime = self.registry.whereis(("pool_runtime", POOL))
        assert runtime is not None
        return runtime

    @property
    def pool(self) -> Any:
        """The current facade (a restarted dispatcher registers a new one)."""
        return self.registry.whereis(("pool", POOL))

    def stats(self) -> dict[str, Any]:
        return self.runtime.stats()

    def slot(self, n: int = 1) -> Any:
        return self.runtime.slots[f"{POOL}-{n}"]

    def current(self, n: int = 1) -> FakeProcess:
        """The process of slot ``n``'s current worker."""
        worker = self.slot(n).current
        assert worker is not None
        return worker.process  # type: ignore[no-any-return]
