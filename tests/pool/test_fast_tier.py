"""The pool's machinery on fake processes and MockClock: starts and restarts, recycling,
heartbeats, drain, cancel grace, dispatcher restarts (ADR 0002). The real supervisor, starters,
workers, roster and dispatcher run; only the processes and their transports are fakes
(``fakes.py``), so every timing below is trio time, exact, and costs no wall-clock time."""

from __future__ import annotations

import outcome
import pytest
import trio
import trio.testing

from fakes import ToolFailed, World, answer, held, takes
from snakepit.config import HeartbeatConfig
from snakepit.errors import RequestTimeout, SnakepitError, WorkerCrashed
from snakepit.pool.starter import DEGRADED_AFTER, backoff


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


class Call:
    """A request run in the background; ``result`` is its outcome once ``done``."""

    def __init__(self, nursery, fp, tool, args=None, **kw):
        self.done = trio.Event()
        self.result: outcome.Outcome | None = None
        nursery.start_soon(self._run, fp.pool, tool, args, kw)

    async def _run(self, pool, tool, args, kw):
        self.result = await outcome.acapture(pool.execute, tool, args, **kw)
        self.done.set()

    async def value(self):
        await self.done.wait()
        return self.result.unwrap()


# -- starts and restarts ----------------------------------------------------------------------
async def test_failed_starts_back_off_then_degrade_then_recover(clock):
    world = World()
    world.starts = ["fail"] * 5
    async with world.pool(size=1, ready=False) as fp:
        slot = fp.slot()
        await world.until(lambda: slot.failures == DEGRADED_AFTER - 1)
        assert fp.stats()["degraded"] == 0
        await world.until(lambda: slot.failures == DEGRADED_AFTER)
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


# -- recycling --------------------------------------------------------------------------------
async def test_ttl_recycles_replacement_first_without_failing_a_request(clock):
    world = World({"work": takes(0.3)})
    async with world.pool(size=1, worker_ttl=10.0) as fp:
        results = []
        while len(world.processes) < 3:
            results.append(await fp.pool.execute("work"))
        assert set(results) == {"done"}
        assert fp.stats()["errors"] == 0
        old, new = world.processes[0], world.processes[1]
        # The replacement was ready before the old worker was asked to stop, and the old one
        # was stopped in order (SIGTERM), between its ttl and one check interval (+ its drain).
        assert old.signals == [("SIGTERM", old.died_at)]
        assert new.ready_at <= old.died_at
        assert 10.0 <= old.died_at - old.ready_at <= 11.0 + 0.3
        assert all(c.outcome == "answered" for c in world.calls)
        assert fp.runtime.recycle_reasons == {"ttl": fp.stats()["recycled"]}


@pytest.mark.parametrize("limit,calls", [(3, 10), (1, 4), (5, 12)])
async def test_max_requests_is_a_limit_and_callers_queue(clock, limit, calls):
    world = World({"work": takes(0.1)})
    world.term_exit = 0.5      # stopping a recycled process takes a while
    async with world.pool(size=1, worker_max_requests=limit) as fp, \
            trio.open_nursery() as nursery:
        pending = [Call(nursery, fp, "work") for _ in range(calls)]
        assert [await c.value() for c in pending] == ["done"] * calls
        served = [p.served for p in world.processes]
        assert max(served) <= limit, served
        assert sum(served) == calls
        # Counted as the replacement takes over, not once the old process has exited.
        assert abs(fp.stats()["recycled"] - calls // limit) <= 1
        assert fp.stats()["errors"] == 0 and fp.stats()["queue_timeouts"] == 0
        # Each full process was stopped in order, after its replacement was ready.
        for old, new in zip(world.processes, world.processes[1:]):
            if old.served == limit:
                await world.until(lambda: old.dead.is_set())
                assert old.signals and old.signals[0][0] == "SIGTERM"
                assert new.ready_at <= old.died_at


async def test_max_requests_counts_sequential_calls_too(clock):
    world = World()
    async with world.pool(size=1, worker_max_requests=3) as fp:
        for i in range(7):
            assert await fp.pool.execute("echo", {"value": i}) == i
        assert [p.served for p in world.processes] == [3, 3, 1]


async def test_max_requests_replaces_again_while_an_old_worker_drains(clock):
    """The replacement of a worker still draining a long request can reach the limit too: it
    is replaced at once, not after the old worker's drain (callers would wait behind it)."""
    world = World()
    async with world.pool(size=1, worker_max_requests=1, queue_timeout=10.0) as fp, \
            trio.open_nursery() as nursery:
        long = Call(nursery, fp, "hold")
        (held_call,) = await world.until(lambda: world.running_calls("hold"))
        for i in range(3):
            assert await fp.pool.execute("echo", {"value": i}) == i
        assert held_call.running and [p.served for p in world.processes][:4] == [1, 1, 1, 1]
        held_call.finish()
        assert await long.value() == "done"


async def test_ttl_recycling_keeps_the_old_worker_while_its_replacement_fails(clock):
    world = World()
    async with world.pool(size=1, worker_ttl=5.0) as fp:
        old = fp.current()
        world.starts = ["fail", "fail"]
        served = 0
        while not (len(world.processes) == 4 and world.processes[3].is_ready):
            assert await fp.pool.execute("echo", {"value": served}) == served
            served += 1
            await trio.sleep(0.5)         # a caller every half second, on the mock clock
        assert [p.exit_code for p in world.processes[1:3]] == [1, 1]
        assert old.signals and old.signals[0] == ("SIGTERM", old.died_at)
        assert world.processes[3].ready_at <= old.died_at
        assert old.served >= served - 1 and fp.stats()["errors"] == 0


async def test_max_requests_callers_wait_while_the_replacement_backs_off(clock):
    world = World()
    async with world.pool(size=1, worker_max_requests=2, queue_timeout=10.0) as fp, \
            trio.open_nursery() as nursery:
        world.starts = ["fail", "fail"]
        calls = [Call(nursery, fp, "echo", {"value": i}) for i in range(3)]
        assert [await c.value() for c in calls] == [0, 1, 2]
        assert [p.served for p in world.processes] == [2, 0, 0, 1]
        third = world.processes[3]
        assert third.spawned_at - world.processes[1].spawned_at == \
            pytest.approx(backoff(1) + backoff(2))


# -- drain ------------------------------------------------------------------------------------
async def test_a_recycled_worker_drains_its_in_flight_work_first(clock):
    world = World()
    async with world.pool(size=1, worker_ttl=5.0) as fp, trio.open_nursery() as nursery:
        call = Call(nursery, fp, "hold")
        running = await world.until(lambda: world.running_calls("hold"))
        old = running[0].process
        await world.until(lambda: len(world.processes) == 2 and world.processes[1].is_ready)
        worker = fp.runtime.workers[old.key]
        await world.until(lambda: worker.state == "draining")
        assert fp.stats()["available"] == 1                   # the replacement serves
        assert await fp.pool.execute("echo", {"value": 5}) == 5
        assert world.processes[1].served == 1
        await trio.sleep(60.0)        # a minute on the mock clock: nothing stops the old one
        assert old.signals == [] and worker.state == "draining"
        running[0].finish()
        assert await call.value() == "done"
        await world.until(lambda: old.dead.is_set())
        assert old.signals == [("SIGTERM", running[0].ended_at)]   # in order, at once
        # Its replacements were recycled by their own ttl meanwhile, each in order.
        assert set(fp.runtime.recycle_reasons) == {"ttl"}
        assert all(p.signals == [("SIGTERM", p.died_at)] for p in world.processes if p.dead.is_set())


async def test_shutdown_gives_workers_their_grace(clock):
    world = World()
    async with world.pool(size=2, shutdown_grace=4.0) as fp:
        stubborn = fp.current(1)
        stubborn.ignores_term = True
        t0 = trio.current_time()
    assert stubborn.signals == [("SIGTERM", t0), ("SIGKILL", t0 + 4.0)]
    assert [p.signals for p in world.processes if p is not stubborn] == [[("SIGTERM", t0)]]


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


# -- cancel grace -----------------------------------------------------------------------------
async def test_a_timed_out_tool_confirmed_in_time_keeps_its_worker(clock):
    world = World({"sync": takes(3.0, ignores_cancel=True)})
    async with world.pool(size=1, cancel_grace=5.0) as fp:
        process, worker = fp.current(), fp.slot().current
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout):
            await fp.pool.execute("sync", timeout=1.0)
        assert trio.current_time() == pytest.approx(t0 + 1.0)   # the caller is not held
        assert worker.state == "cancelling" and fp.stats()["available"] == 0
        (tool,) = world.running_calls("sync")
        await world.until(lambda: worker.state == "ready")
        assert tool.ended_at == pytest.approx(t0 + 3.0)
        assert trio.current_time() <= tool.ended_at + 0.25      # CONFIRM_POLL_MAX
        assert fp.stats()["available"] == 1 and process.signals == []
        assert await fp.pool.execute("echo", {"value": 8}) == 8
        assert process.served == 2 and len(world.processes) == 1


async def test_a_timed_out_tool_not_confirmed_is_killed_at_cancel_grace(clock):
    world = World({"stuck": held(ignores_cancel=True)})
    async with world.pool(size=1, cancel_grace=2.0, shutdown_grace=30.0) as fp, \
            trio.open_nursery() as nursery:
        process = fp.current()
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout):
            await fp.pool.execute("stuck", timeout=1.0)
        queued = Call(nursery, fp, "echo", {"value": 9})   # waits; does not fail
        await world.until(lambda: process.dead.is_set())
        assert process.signals == [("SIGKILL", pytest.approx(t0 + 1.0 + 2.0))]
        assert await queued.value() == 9
        assert world.processes[1].served == 1
        assert fp.stats()["queue_timeouts"] == 0


async def test_a_worker_at_its_limit_with_an_abandoned_tool_stops_once_it_confirms(clock):
    world = World({"sync": takes(3.0, "late", ignores_cancel=True)})
    async with world.pool(size=1, worker_max_requests=1, cancel_grace=10.0) as fp:
        process = fp.current()
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout):
            await fp.pool.execute("sync", timeout=1.0)
        assert await fp.pool.execute("echo", {"value": 1}) == 1   # on the replacement
        await world.until(lambda: process.dead.is_set())
        (tool,) = [c for c in world.calls if c.tool == "sync"]
        assert tool.ended_at == pytest.approx(t0 + 3.0)
        # Drained once the worker confirmed the tool ended; then stopped in order.
        assert process.signals[0][0] == "SIGTERM"
        assert tool.ended_at <= process.signals[0][1] <= tool.ended_at + 0.25


async def test_a_cancelled_cooperative_tool_returns_its_worker_at_once(clock):
    world = World()
    async with world.pool(size=1, cancel_grace=5.0) as fp:
        process, t0 = fp.current(), trio.current_time()
        with trio.move_on_after(1.0):
            await fp.pool.execute("hold")
        (call,) = world.calls
        await call.done.wait()
        assert call.outcome == "cancelled" and call.ended_at == pytest.approx(t0 + 1.0)
        await world.until(lambda: fp.stats()["available"] == 1)
        assert process.signals == []
        assert await fp.pool.execute("echo", {"value": 10}) == 10


async def test_a_worker_unreachable_while_confirming_is_killed_at_once(clock):
    world = World({"stuck": held(ignores_cancel=True)})
    async with world.pool(size=1, cancel_grace=5.0, shutdown_grace=30.0) as fp:
        process, worker = fp.current(), fp.slot().current
        with pytest.raises(RequestTimeout):
            await fp.pool.execute("stuck", timeout=1.0)
        t0 = trio.current_time()
        process.unreachable = True
        await world.until(lambda: process.dead.is_set())
        # SIGKILL at its next confirmation poll, long before cancel_grace or shutdown_grace.
        assert process.signals == [("SIGKILL", pytest.approx(t0, abs=0.25))]
        assert worker.exit_reason.startswith("unreachable while confirming")


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
