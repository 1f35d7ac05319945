"""Deadlines (many calls' deadlines on one timer task), on MockClock."""

import pytest
import trio
import trio.testing

from snakepit import deadlines as dl
from snakepit.deadlines import Deadlines, run_deadlines


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def timer(nursery):
    d = Deadlines()
    nursery.start_soon(d.run)
    await trio.testing.wait_all_tasks_blocked()
    return d


async def test_each_expires_at_its_deadline_in_order(clock, timer):
    fired = []
    t0 = trio.current_time()
    for at in (3.0, 1.0, 2.0, 2.0):
        timer.add(t0 + at, lambda at=at: fired.append((at, trio.current_time() - t0)))
    assert len(timer) == 4
    await trio.sleep(10)
    assert fired == [(1.0, 1.0), (2.0, 2.0), (2.0, 2.0), (3.0, 3.0)]
    assert len(timer) == 0


async def test_a_dropped_deadline_never_expires(clock, timer):
    fired = []
    t0 = trio.current_time()
    kept = timer.add(t0 + 2, lambda: fired.append("kept"))
    gone = timer.add(t0 + 1, lambda: fired.append("gone"))
    timer.drop(gone)
    timer.drop(gone)   # idempotent
    assert len(timer) == 1
    await trio.sleep(5)
    assert fired == ["kept"]
    timer.drop(kept)   # after it expired: nothing happens
    assert len(timer) == 0


async def test_an_earlier_deadline_wakes_the_timer_sooner(clock, timer):
    fired = []
    t0 = trio.current_time()
    timer.add(t0 + 100, lambda: fired.append(("late", trio.current_time() - t0)))
    await trio.sleep(1)   # the timer sleeps until t0 + 100 now
    timer.add(t0 + 5, lambda: fired.append(("early", trio.current_time() - t0)))
    await trio.sleep(10)
    assert fired == [("early", 5.0)]
    await trio.sleep(100)
    assert fired == [("early", 5.0), ("late", 100.0)]


async def test_dropped_entries_are_compacted_away(clock, timer):
    fired = []
    t0 = trio.current_time()
    entries = [timer.add(t0 + 30 + i, lambda: fired.append("dropped")) for i in range(1000)]
    timer.add(t0 + 2000, lambda: fired.append("live"))
    for entry in entries:
        timer.drop(entry)
    assert len(timer) == 1 and len(timer._heap) <= dl.COMPACT_AT
    await trio.sleep(3000)
    assert fired == ["live"]


async def test_a_deadline_already_passed_expires_at_once(clock, timer):
    fired = trio.Event()
    timer.add(trio.current_time() - 1, fired.set)
    with trio.fail_after(0.001):   # mock time: no clock advance is needed
        await fired.wait()


async def test_one_per_run_whose_timer_runs_on_its_own(clock):
    first = run_deadlines()
    assert run_deadlines() is first
    fired = trio.Event()
    first.add(trio.current_time() + 7, fired.set)
    t0 = trio.current_time()
    await fired.wait()
    assert trio.current_time() - t0 == 7


async def test_an_expiry_that_raises_is_logged_and_the_others_still_expire(clock, timer, caplog):
    fired = []

    def bug():
        raise RuntimeError("waiter bug")

    t0 = trio.current_time()
    timer.add(t0 + 1, bug)
    timer.add(t0 + 1, lambda: fired.append(1))
    await trio.sleep(2)
    assert fired == [1] and "on_expiry failed" in caplog.text
