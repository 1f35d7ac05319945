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

Processes, transports and tools live in ``fake_worker.py`` (re-exported here):

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
from typing import Any, AsyncIterator, Callable

import outcome
import pytest
import trio
import trio.testing

from fake_worker import (FakeCall, FakeProcess, FakeTool, FakeTransport, ToolFailed, run_tool,
                         answer, held, takes)
from snakepit import otp
from snakepit.config import HeartbeatConfig, PoolConfig
from snakepit.pool.runtime import PoolRuntime
from snakepit.pool.supervisor import pool_supervisor
from snakepit_bridge.proto import bridge_pb2 as pb

__all__ = ["FakeCall", "FakePool", "FakeProcess", "FakeTool", "FakeTransport", "ToolFailed",
           "World", "Call", "answer", "clock", "held", "takes"]

POOL = "fake"
UNTIL_TIMEOUT = 600.0     # trio seconds an `until` waits before it fails the test
UNTIL_POLL = 0.05         # trio seconds between checks when nothing the world sees changes


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
        process.nursery.start_soon(run_tool, self, call, self.tools[call.tool])
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
        assert isinstance(runtime, PoolRuntime)
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


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """The fast tier's clock: time jumps whenever every task waits."""
    return trio.testing.MockClock(autojump_threshold=0)


class Call:
    """A request run in the background; ``await value()`` is its result (or raises).

        call = Call(nursery, fp, "hold")
        ...
        assert await call.value() == "done"
    """

    def __init__(self, nursery: trio.Nursery, fp: FakePool, tool: str,
                 args: dict[str, Any] | None = None, **kw: Any) -> None:
        self.done = trio.Event()
        self.result: outcome.Outcome[Any] | None = None
        nursery.start_soon(self._run, fp.pool, tool, args, kw)

    async def _run(self, pool: Any, tool: str, args: dict[str, Any] | None,
                   kw: dict[str, Any]) -> None:
        self.result = await outcome.acapture(pool.execute, tool, args, **kw)
        self.done.set()

    async def value(self) -> Any:
        await self.done.wait()
        assert self.result is not None
        return self.result.unwrap()
