"""Recycling (worker_ttl, worker_max_requests) and drain on fake processes and MockClock: the
replacement first, no request failed, no process serving more than N (ADR 0002)."""

from __future__ import annotations

import pytest
import trio

from fakes import Call, World, clock, takes  # noqa: F401  (clock: the fixture)
from snakepit.pool.starter import backoff


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
