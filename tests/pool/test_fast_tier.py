"""The pool's machinery on fake processes and MockClock: starts and restarts, heartbeats,
unreachable workers, dispatcher restarts (ADR 0002). The real supervisor, starters, workers,
roster and dispatcher run; only the processes and their transports are fakes (``fakes.py``), so
every timing below is trio time, exact, and costs no wall-clock time. Recycling and drain:
``test_fast_recycling.py``; cancel grace: ``test_fast_cancel_grace.py``."""

from __future__ import annotations

import pytest
import trio

from fakes import Call, ToolFailed, World, answer, clock, takes  # noqa: F401  (clock: fixture)
from snakepit.config import HeartbeatConfig
from snakepit.errors import RequestTimeout, SnakepitError, WorkerCrashed
from snakepit.pool.starter import backoff


# -- starts and restarts ----------------------------------------------------------------------
async def test_failed_starts_back_off_then_degrade_then_recover(clock):
    world = World()
    world.starts = ["fail"] * 5
    async with world.pool(size=1, ready=False) as fp:
        slot = fp.slot()
        await world.until(lambda: slot.failures == 2)
        assert fp.stats()["degraded"] == 0
        await world.until(lambda: slot.failures == 3)           # ADR 0002: three in a row
        assert fp.stats()["degraded"] == 1 and slot.degraded
        assert fp.runtime.failed.is_set()            # the first failure is reported
        await fp.runtime.ready.wait()                # the sixth start succeeds
        spawned = [p.spawned_at for p in world.processes]
        gaps = [b - a for a, b in zip(spawned, spawned[1:])]
        assert gaps == pytest.approx([backoff(n) for n in range(1, 6)])
        assert gaps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2])
        assert fp.stats()["degraded"] == 0 and slot.failures == 0
        assert await fp.pool.execute("echo", {"value": 1}) == 1
        assert [p.exit_code for p in world.processes[:5]] == [1] * 5


async def test_backoff_is_capped():
    assert [backoff(n) for n in (0, 1, 2, 3)] == [0.0, 0.2, 0.4, 0.8]
    assert backoff(100) == backoff(7) == 10.0


async def test_a_start_that_hangs_fails_at_startup_timeout(clock):
    world = World()
    world.starts = ["hang"]
    async with world.pool(size=1, ready=False, startup_timeout=7.0) as fp:
        await fp.runtime.ready.wait()
        first, second = world.processes
        assert second.spawned_at - first.spawned_at == pytest.approx(7.0 + backoff(1))
        assert first.signals == [("SIGTERM", pytest.approx(7.0 + first.spawned_at))]


async def test_a_crash_restarts_at_once(clock):
    world = World()
    async with world.pool(size=1) as fp:
        crashed = fp.current()
        crashed.die(code=3)
        await world.until(lambda: len(world.processes) == 2 and world.processes[1].is_ready)
        replacement = world.processes[1]
        assert replacement.spawned_at == crashed.died_at      # no backoff after a crash
        assert crashed.signals == []                          # it was gone already
        assert fp.stats()["restarts"] == 1 and fp.stats()["degraded"] == 0
        assert await fp.pool.execute("echo", {"value": 2}) == 2
        assert replacement.served == 1


async def test_a_crash_during_a_call_fails_that_call_only(clock):
    world = World()
    async with world.pool(size=1) as fp, trio.open_nursery() as nursery:
        call = Call(nursery, fp, "hold")
        await world.until(lambda: world.running_calls("hold"))
        world.processes[0].die(code=1)
        with pytest.raises(WorkerCrashed):
            await call.value()
        assert await fp.pool.execute("echo", {"value": 4}) == 4
        assert world.processes[1].served == 1


async def test_a_stream_runs_on_the_fakes_too(clock):
    world = World({"count": answer(lambda args: list(range(args["n"])))})
    async with world.pool(size=1) as fp:
        async with fp.pool.stream("count", {"n": 3}) as chunks:
            got = [(c.data, c.is_final) async for c in chunks]
        assert got == [(0, False), (1, False), (2, True)]
        assert fp.stats()["available"] == 1 and fp.stats()["errors"] == 0


async def test_a_tool_error_returns_the_worker_at_once(clock):
    def fail(args):
        raise ToolFailed("tool", "no such thing")
    world = World({"fail": answer(fail)})
    async with world.pool(size=1) as fp:
        with pytest.raises(SnakepitError, match="no such thing"):
            await fp.pool.execute("fail")
        assert fp.stats()["available"] == 1 and fp.stats()["errors"] == 1
        assert await fp.pool.execute("echo", {"value": 3}) == 3
        assert len(world.processes) == 1


async def test_an_unreachable_worker_is_killed_at_once(clock):
    world = World()
    async with world.pool(size=1, shutdown_grace=30.0) as fp:
        lost = fp.current()
        lost.unreachable = True
        t0 = trio.current_time()
        with pytest.raises(WorkerCrashed):
            await fp.pool.execute("echo", {"value": 1})
        await world.until(lambda: lost.dead.is_set())
        assert lost.signals == [("SIGKILL", t0)]       # no shutdown_grace for it
        await world.until(lambda: len(world.processes) == 2 and world.processes[1].is_ready)
        assert await fp.pool.execute("echo", {"value": 2}) == 2


# -- heartbeats -------------------------------------------------------------------------------
HB = dict(interval=1.0, timeout=1.0, max_missed=3)


async def test_missed_heartbeats_kill_a_dependent_worker_at_once(clock):
    world = World()
    async with world.pool(size=1, shutdown_grace=30.0,
                          heartbeat=HeartbeatConfig(**HB, dependent=True)) as fp:
        frozen = fp.current()
        frozen.frozen = True
        await world.until(lambda: frozen.dead.is_set())
        asked = world.transports[0].heartbeats
        # SIGKILL right after the third unanswered heartbeat timed out: no shutdown_grace.
        assert frozen.signals == [("SIGKILL", pytest.approx(asked[-1] + HB["timeout"]))]
        assert [e[0]["missed"] for e in world.named("heartbeat", "missed")] == [1, 2, 3]
        assert len(world.named("heartbeat", "failed")) == 1
        await world.until(lambda: len(world.processes) == 2 and world.processes[1].is_ready)
        assert world.processes[1].spawned_at == frozen.died_at
        assert await fp.pool.execute("echo", {"value": 6}) == 6


async def test_missed_heartbeats_only_report_an_independent_worker(clock):
    world = World()
    async with world.pool(size=1, heartbeat=HeartbeatConfig(**HB, dependent=False)) as fp:
        frozen = fp.current()
        worker = fp.slot().current
        frozen.frozen = True
        await world.until(lambda: world.named("heartbeat", "failed"))
        await world.until(lambda: worker.missed_heartbeats >= HB["max_missed"] + 2)
        assert frozen.signals == [] and len(world.processes) == 1
        assert worker.state == "ready"
        frozen.frozen = False
        await world.until(lambda: worker.missed_heartbeats == 0)   # the next pong counts
        assert await fp.pool.execute("echo", {"value": 7}) == 7


# -- dispatcher restarts ----------------------------------------------------------------------
async def test_a_dispatcher_restart_keeps_every_workers_capacity(clock):
    world = World()
    async with world.pool(size=2) as fp, trio.open_nursery() as nursery:
        before = fp.pool
        calls = [Call(nursery, fp, "hold") for _ in range(2)]
        running = await world.until(lambda: len(world.running_calls("hold")) == 2 and
                                    world.running_calls("hold"))
        await fp.handle.terminate_child("dispatcher")
        await fp.handle.restart_child("dispatcher")
        assert fp.pool is not before
        for call in running:
            call.finish()
        assert [await c.value() for c in calls] == ["done", "done"]   # they checked in
        assert fp.stats()["available"] == 2
        again = [Call(nursery, fp, "hold") for _ in range(2)]
        running = await world.until(lambda: len(world.running_calls("hold")) == 2 and
                                    world.running_calls("hold"))
        assert {c.process.key for c in running} == {p.key for p in world.processes}
        for call in running:
            call.finish()
        assert [await c.value() for c in again] == ["done", "done"]
        assert fp.stats()["queue_timeouts"] == 0 and len(world.processes) == 2


async def test_a_worker_cancelling_through_a_dispatcher_restart_comes_back_to_the_new_one(clock):
    world = World({"sync": takes(3.0, ignores_cancel=True)})
    async with world.pool(size=1, cancel_grace=10.0) as fp:
        process, worker = fp.current(), fp.slot().current
        with pytest.raises(RequestTimeout):
            await fp.pool.execute("sync", timeout=1.0)
        assert worker.state == "cancelling"
        await fp.handle.terminate_child("dispatcher")
        await fp.handle.restart_child("dispatcher")
        await world.until(lambda: worker.state == "ready")      # confirmed to the roster
        assert fp.stats()["available"] == 1
        assert await fp.pool.execute("echo", {"value": 11}) == 11
        assert process.served == 2 and process.signals == []


# -- a call's deadline ------------------------------------------------------------------------
async def test_a_calls_timeout_counts_its_wait_in_the_queue(clock):
    world = World()
    async with world.pool(size=1, queue_timeout=100.0) as fp, trio.open_nursery() as nursery:
        held = Call(nursery, fp, "hold")
        [running] = await world.until(lambda: world.running_calls("hold"))
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout) as info:   # queued all along: never ran
            await fp.pool.execute("echo", {"value": 1}, timeout=3.0)
        assert trio.current_time() - t0 == pytest.approx(3.0)
        assert info.value.details == {"tool": "echo", "timeout": 3.0, "pool": fp.runtime.name}
        assert type(info.value) is RequestTimeout and fp.stats()["queue_timeouts"] == 0
        running.finish()
        assert await held.value() == "done"
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout) as info:   # on a worker: it is told to cancel
            await fp.pool.execute("hold", timeout=2.5)
        assert trio.current_time() - t0 == pytest.approx(2.5)
        assert type(info.value) is RequestTimeout and info.value.details["tool"] == "hold"
        assert await fp.pool.execute("echo", {"value": 2}) == 2
