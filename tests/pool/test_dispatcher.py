"""The dispatcher and the roster's bookkeeping, with fake workers on MockClock (no processes)."""

import pytest
import trio
import trio.testing

from snakepit.errors import (PoolSaturated, QueueTimeout, SessionWorkerUnavailable,
                             ShuttingDown, WorkerBusy)
from snakepit.deadlines import run_deadlines
from snakepit.pool.dispatcher import Dispatcher
from snakepit.pool.roster import Roster, WorkerState

ROSTERS = {}


class W:
    def __init__(self, key, capacity=1):
        self.key = self.id = key
        self.capacity = capacity
        self.roster = None

    @property
    def in_flight(self):
        return self.roster.entries[self.key].in_flight

    def __repr__(self):
        return f"W({self.key})"


def join(roster, w):
    w.roster = roster
    roster.starting(w)
    roster.ready(w)


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


class D(Dispatcher):
    """The dispatcher with its roster's verbs at hand, for short tests."""

    def checkin(self, w):
        self.roster.release(w)

    def add_worker(self, w):
        join(self.roster, w)

    def remove_worker(self, w):
        self.roster.leaving(w)

    def drain_worker(self, w):
        return self.roster.drain(w)

    @property
    def available(self):
        return self.roster.available

    @property
    def busy(self):
        return self.roster.busy


def make(affinity="hint", workers=(), roster=None, **kw):
    roster = roster or Roster("p", max_requests=kw.get("max_requests"))
    d = D(roster, max_queue_size=kw.get("max_queue_size", 10),
          queue_timeout=kw.get("queue_timeout", 5.0), affinity=affinity)
    for w in workers:
        d.add_worker(w)
    return d


async def test_free_slots_then_fifo_queue(clock):
    a, b = W("a"), W("b")
    d = make(workers=[a, b])
    assert {(await d.checkout()).key, (await d.checkout()).key} == {"a", "b"}
    assert d.available == 0
    order = []

    async def waiter(n):
        w = await d.checkout()
        order.append((n, w.key))

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(waiter, n)
            await trio.testing.wait_all_tasks_blocked()
        assert d.queued == 3
        d.checkin(b)
        await trio.testing.wait_all_tasks_blocked()
        d.checkin(a)
        await trio.testing.wait_all_tasks_blocked()
        assert order == [(0, "b"), (1, "a")]
        d.checkin(b)
    assert order[-1] == (2, "b")


async def test_the_worker_freed_last_takes_the_next_request(clock):
    """Free slots are taken last-in first-out: one caller at a time keeps one worker busy
    (the one that slept least) instead of going round the pool."""
    a, b, c = W("a"), W("b"), W("c")
    d = make(workers=[a, b, c])
    picks = []
    for _ in range(4):
        w = await d.checkout()
        picks.append(w.key)
        d.checkin(w)
    assert picks == ["c"] * 4
    x, y = await d.checkout(), await d.checkout()
    assert (x.key, y.key) == ("c", "b")
    d.checkin(y)
    d.checkin(x)
    assert (await d.checkout()).key == "c"


async def test_a_worker_leaving_rotation_takes_its_free_slots_along(clock):
    """Taken from the top, the free list would never reach the slots of workers that left
    rotation at its bottom: they leave with their worker, so the list holds exactly the free
    slots of READY workers however many workers come and go."""
    roster = Roster("p")
    d = make(roster=roster, workers=[W("keep", capacity=2)])
    for n in range(50):
        w = W(f"w{n}", capacity=3)
        d.add_worker(w)
        assert (await d.checkout()) is w
        d.checkin(w)
        if n % 2:
            d.remove_worker(w)
        else:
            d.drain_worker(w)
        roster.stopped(w)
    assert len(roster._free) == roster.available == 2
    assert {(await d.checkout()).key, (await d.checkout()).key} == {"keep"}


async def test_queue_timeout_never_runs_and_saturation(clock):
    a = W("a")
    d = make(workers=[a], max_queue_size=1, queue_timeout=2.0)
    await d.checkout()
    results = []

    async def waiter():
        try:
            await d.checkout()
            results.append("ran")
        except QueueTimeout:
            results.append(("timeout", trio.current_time()))

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(PoolSaturated):
            await d.checkout()
    assert results == [("timeout", t0 + 2.0)]
    assert d.queue_timeouts == 1 and d.pool_saturated == 1 and d.queued == 0
    d.checkin(a)
    assert d.available == 1


async def test_a_slot_handed_over_at_the_queue_deadline_is_passed_on(clock):
    a = W("a")
    d = make(workers=[a], queue_timeout=2.0)
    await d.checkout()
    t0 = trio.current_time()
    # at the waiter's deadline, just before its own expiry: the slot comes free and is
    # handed to it (the deadlines of one instant expire in the order they were added)
    run_deadlines().add(t0 + 2.0, lambda: d.checkin(a))
    with pytest.raises(QueueTimeout):
        await d.checkout()
    assert trio.current_time() == t0 + 2.0
    assert d.available == 1 and a.in_flight == 0 and d.queue_timeouts == 1


async def test_cancelled_waiter_passes_slot_on(clock):
    a = W("a")
    d = make(workers=[a])
    await d.checkout()
    got = []
    async with trio.open_nursery() as nursery:
        cancel_scope = trio.CancelScope()

        async def first():
            with cancel_scope:
                await d.checkout()
                got.append("first")

        async def second():
            got.append((await d.checkout()).key)

        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        cancel_scope.cancel()  # `first` is cancelled, but before it runs...
        d.checkin(a)           # ...the slot is handed to it: it must pass it on
    assert got == ["a"]
    assert a.in_flight == 1


async def test_affinity_modes(clock):
    for mode in ("hint", "strict_queue", "strict_fail_fast"):
        a, b = W("a"), W("b")
        d = make(mode, workers=[a, b])
        w = await d.checkout("s")
        d.checkin(w)
        assert (await d.checkout("s")) is w  # prefers the session's worker
        other = b if w is a else a
        if mode == "hint":
            assert (await d.checkout("s")) is other   # busy -> any worker
        elif mode == "strict_fail_fast":
            with pytest.raises(WorkerBusy):
                await d.checkout("s")
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(d.checkout, "s")
                await trio.testing.wait_all_tasks_blocked()
                assert d.queued == 1 and d.available == 1  # does not take the other worker
                d.checkin(w)
            assert w.in_flight == 1


async def test_strict_session_worker_gone(clock):
    a, b = W("a"), W("b")
    d = make("strict_queue", workers=[a, b])
    w = await d.checkout("s")
    err = []

    async def waiter():
        try:
            await d.checkout("s")
        except SessionWorkerUnavailable as e:
            err.append(e)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        d.remove_worker(w)
    assert len(err) == 1
    with pytest.raises(SessionWorkerUnavailable):
        await d.checkout("s")
    hint = make("hint", workers=[W("x"), W("y")])
    w = await hint.checkout("s")
    hint.checkin(w)
    hint.remove_worker(w)
    assert (await hint.checkout("s")) is not w   # hint mode moves the session


async def test_capacity_and_drain(clock):
    a = W("a", capacity=3)
    d = make(workers=[a])
    ws = [await d.checkout() for _ in range(3)]
    assert all(w is a for w in ws) and a.in_flight == 3 and d.busy == 1
    drained = d.drain_worker(a)
    d.checkin(a)
    d.checkin(a)
    assert not drained.is_set()
    d.checkin(a)
    assert drained.is_set()
    b = W("b")
    d.add_worker(b)
    assert (await d.checkout()) is b   # stale slots of the drained worker are skipped


async def test_close_wakes_waiters(clock):
    a = W("a")
    d = make(workers=[a])
    await d.checkout()
    errs = []

    async def waiter():
        try:
            await d.checkout()
        except ShuttingDown as e:
            errs.append(e)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        d.close()
    assert len(errs) == 1
    with pytest.raises(ShuttingDown):
        await d.checkout()


async def test_restarted_dispatcher_keeps_every_slot(clock):
    """Regression: a dispatcher restarted while requests ran reported available == 1 and every
    checkout ended in QueueTimeout; capacity now lives in the roster, which outlives it."""
    a, b = W("a"), W("b", capacity=2)
    old = make(workers=[a, b], queue_timeout=1.0)
    held = [await old.checkout() for _ in range(3)]   # every slot busy
    old.close()                                       # the dispatcher crashes...
    new = make(roster=old.roster, queue_timeout=1.0)  # ...and its restart takes over
    assert new.available == 0
    for w in held:                                    # requests in flight check in
        old.roster.release(w)
    assert new.available == 3
    got = [await new.checkout() for _ in range(3)]
    assert sorted(w.key for w in got) == ["a", "b", "b"]
    with pytest.raises(QueueTimeout):
        await new.checkout()


async def test_max_requests_is_a_limit(clock):
    """Regression: with max_requests=3 the first process served seven calls. The request that
    reaches the limit takes the worker out of rotation as it is handed out."""
    limits = []
    d = make(max_requests=3, queue_timeout=1.0)
    d.roster.limit_reached = limits.append
    a = W("a")
    d.add_worker(a)
    for n in range(3):
        assert await d.checkout() is a
        d.checkin(a)
    assert limits == [a]
    assert d.roster.state(a) is WorkerState.DRAINING
    assert d.roster.drain(a).is_set()               # nothing in flight: ready to stop
    with pytest.raises(QueueTimeout):               # queued, never served by `a`
        await d.checkout()
    b = W("b")

    async def late_join():
        await trio.sleep(0.5)
        d.add_worker(b)                             # the replacement joins
    async with trio.open_nursery() as nursery:
        nursery.start_soon(late_join)
        assert await d.checkout() is b              # the queued caller gets it


async def test_limit_reached_by_a_handed_over_slot(clock):
    d = make(max_requests=2, queue_timeout=5.0)
    limits = []
    d.roster.limit_reached = limits.append
    a = W("a")
    d.add_worker(a)
    await d.checkout()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.checkout)
        await trio.testing.wait_all_tasks_blocked()
        d.checkin(a)                                # handed to the waiter: request 2 of 2
    assert limits == [a] and d.roster.entries["a"].requests == 2
    assert d.roster.state(a) is WorkerState.DRAINING


async def test_abandoned_request_keeps_the_worker_until_confirmed(clock):
    """Regression: a timed-out sync tool kept its worker busy while the pool said it was free.
    An abandoned lease keeps the slot and the worker out of rotation until confirmation."""
    d = make(queue_timeout=1.0)
    hook = []
    d.roster.abandoned_hook = hook.append
    a = W("a")
    d.add_worker(a)
    await d.checkout()
    d.roster.abandon(a)
    assert hook == [a] and d.roster.state(a) is WorkerState.CANCELLING
    assert d.available == 0 and a.in_flight == 1
    with pytest.raises(QueueTimeout):
        await d.checkout()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.checkout)
        await trio.testing.wait_all_tasks_blocked()
        d.roster.confirmed(a)                       # the tool ended: the waiter gets it
    assert d.roster.state(a) is WorkerState.READY and a.in_flight == 1


async def test_strict_session_survives_a_cancelling_worker(clock):
    d = make("strict_queue", queue_timeout=5.0)
    a, b = W("a"), W("b")
    d.add_worker(a)
    d.add_worker(b)
    w = await d.checkout("s")
    d.roster.abandon(w)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.checkout, "s")
        await trio.testing.wait_all_tasks_blocked()
        assert d.queued == 1                        # waits for its worker, not failed
        d.roster.confirmed(w)
    assert w.in_flight == 1


def test_transitions_are_checked():
    r = Roster("p")
    a = W("a")
    a.roster = r
    r.starting(a)
    with pytest.raises(AssertionError, match="starting -> draining"):
        r._move(r.entries["a"], WorkerState.DRAINING)
    r.ready(a)
    r.leaving(a)
    r.stopped(a)
    assert "a" not in r.entries
    b = W("b")
    e = r.starting(b)
    r.stopped(b)
    assert e.state is WorkerState.FAILED     # never became ready
