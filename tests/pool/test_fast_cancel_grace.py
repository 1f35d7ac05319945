"""cancel_grace on fake processes and MockClock: a request whose caller gave up keeps its worker
out of rotation until the worker confirms the tool ended, or kills it at cancel_grace (ADR 0002).
"""

from __future__ import annotations

import pytest
import trio

from fakes import Call, World, clock, held, takes  # noqa: F401  (clock: the fixture)
from snakepit.errors import RequestTimeout


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
