"""Each supervision rule on its own, on MockClock."""

import math

import pytest
import trio
import trio.testing

from snakepit import otp


class Ctl:
    """A child driven from the test: ``ctl.send(i, "crash"|"normal"|"shutdown")``."""

    def __init__(self):
        self.log, self.chans, self.starts = [], {}, {}

    def child(self, name):
        async def run(*, task_status=trio.TASK_STATUS_IGNORED):
            self.starts[name] = self.starts.get(name, 0) + 1
            send, recv = trio.open_memory_channel(1)
            self.chans[name] = send
            self.log.append(("start", name))
            task_status.started(f"{name}#{self.starts[name]}")
            try:
                cmd = await recv.receive()
            except trio.Cancelled:
                self.log.append(("stop", name))
                raise
            if cmd == "crash":
                raise RuntimeError(name)
            if cmd == "shutdown":
                raise otp.Shutdown()
        return run

    async def send(self, name, cmd):
        await self.chans[name].send(cmd)
        await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("restart,cmd,restarted", [
    ("permanent", "normal", True), ("permanent", "shutdown", True),
    ("permanent", "crash", True), ("transient", "normal", False),
    ("transient", "shutdown", False), ("transient", "crash", True),
    ("temporary", "crash", False), ("temporary", "normal", False),
])
async def test_restart_types(mock_clock, restart, cmd, restarted):
    ctl = Ctl()
    sup = otp.Supervisor([otp.ChildSpec(id="x", start=ctl.child("x"), restart=restart)])
    async with trio.open_nursery() as nursery:
        h = await nursery.start(sup.run)
        await ctl.send("x", cmd)
        assert ctl.starts["x"] == (2 if restarted else 1)
        infos = h.which_children()
        if restart == "temporary":
            assert infos == []          # forgotten once it stops
        else:
            assert infos[0].state == ("running" if restarted else "terminated")
            assert infos[0].restarts == (1 if restarted else 0)
        nursery.cancel_scope.cancel()


async def test_temporary_sibling_dropped_by_one_for_all(mock_clock):
    ctl = Ctl()
    sup = otp.Supervisor([otp.ChildSpec(id="a", start=ctl.child("a")),
                          otp.ChildSpec(id="t", start=ctl.child("t"), restart="temporary")],
                         strategy="one_for_all")
    async with trio.open_nursery() as nursery:
        h = await nursery.start(sup.run)
        await ctl.send("a", "crash")
        assert [c.id for c in h.which_children()] == ["a"] and ctl.starts["t"] == 1
        nursery.cancel_scope.cancel()


async def test_intensity_boundary_and_window_slides(mock_clock):
    ctl = Ctl()
    sup = otp.Supervisor([otp.ChildSpec(id="x", start=ctl.child("x"))], max_restarts=2,
                         max_seconds=5)
    result = {}

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await sup.run(task_status=task_status)
        except otp.MaxRestartsExceeded:
            result["gave_up"] = trio.current_time()

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        await ctl.send("x", "crash")          # t=0: 1
        await trio.sleep(5)
        await ctl.send("x", "crash")          # t=5: 2 (t=0 is still inside the window)
        await trio.sleep(0.5)
        await ctl.send("x", "crash")          # t=5.5: t=0 slid out -> 2 in window, alive
        assert "gave_up" not in result
        await ctl.send("x", "crash")          # t=5.5: 3 in [0.5, 5.5] -> gives up
        assert result["gave_up"] == 5.5


async def test_outer_cancel_stops_one_at_a_time_in_reverse(mock_clock):
    order = []

    def child(name):
        async def run(*, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                order.append(("cleanup-start", name, trio.current_time()))
                with otp.shielded_cleanup():
                    await trio.sleep(1)
                order.append(("cleanup-end", name, trio.current_time()))
        return run

    sup = otp.Supervisor([otp.ChildSpec(id=n, start=child(n), shutdown=2) for n in "abc"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    t = order[0][2]
    assert order == [("cleanup-start", "c", t), ("cleanup-end", "c", t + 1),
                     ("cleanup-start", "b", t + 1), ("cleanup-end", "b", t + 2),
                     ("cleanup-start", "a", t + 2), ("cleanup-end", "a", t + 3)]


async def test_shielded_cleanup_deadline_is_the_grace(mock_clock):
    seen = []

    async def child(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with otp.shielded_cleanup() as scope:
                seen.append((otp.shutdown_grace(), scope.deadline - trio.current_time()))
                await trio.sleep(100)        # cut off at the grace
            seen.append(scope.cancelled_caught)

    for grace, expected in [(3, 3.0), ("infinity", math.inf)]:
        seen.clear()
        sup = otp.Supervisor([otp.ChildSpec(id="x", start=child, shutdown=grace)])
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            nursery.cancel_scope.cancel()
        assert seen[0] == (expected, expected)
        assert seen[1] is (expected != math.inf)


async def test_runtime_operations_and_errors(mock_clock):
    ctl = Ctl()
    sup = otp.Supervisor([otp.ChildSpec(id="a", start=ctl.child("a")),
                          otp.ChildSpec(id="s", start=ctl.child("s"), type="supervisor")])
    async with trio.open_nursery() as nursery:
        h = await nursery.start(sup.run)
        assert h.count_children() == {"specs": 2, "active": 2, "supervisors": 1, "workers": 1}
        info = h.which_children()[0]
        assert (info.id, info.state, info.value, info.incarnation) == ("a", "running", "a#1", 1)
        with pytest.raises(otp.ChildRunning):
            await h.restart_child("a")
        with pytest.raises(otp.ChildRunning):
            await h.delete_child("a")
        with pytest.raises(otp.ChildNotFound):
            await h.terminate_child("zz")
        await h.terminate_child("a")
        assert h.which_children()[0].state == "terminated" and ctl.starts["a"] == 1
        assert await h.restart_child("a") == "a#2"
        await h.terminate_child("a")
        await h.delete_child("a")
        assert [c.id for c in h.which_children()] == ["s"]
        assert await h.start_child(otp.ChildSpec(id="n", start=ctl.child("n"))) == "n#1"
        with pytest.raises(ValueError):
            await h.start_child(otp.ChildSpec(id="n", start=ctl.child("n")))
        with pytest.raises(TypeError):
            await h.start_child("not a spec")
        nursery.cancel_scope.cancel()
    with pytest.raises(otp.NotRunning):
        await h.terminate_child("n")


async def test_dynamic_supervisor_concurrent_stop_and_handles(mock_clock):
    class Handle:
        pass

    def child(grace_sleep):
        async def run(*, task_status=trio.TASK_STATUS_IGNORED):
            handle = Handle()
            task_status.started(handle)
            try:
                await trio.sleep_forever()
            finally:
                with otp.shielded_cleanup():
                    await trio.sleep(grace_sleep)
        return run

    dyn = otp.DynamicSupervisor(max_children=3)
    async with trio.open_nursery() as nursery:
        h = await nursery.start(dyn.run)
        handles = [await h.start_child(otp.ChildSpec(id=i, start=child(1 + i), shutdown=10))
                   for i in range(3)]
        with pytest.raises(otp.MaxChildrenReached):
            await h.start_child(otp.ChildSpec(id=9, start=child(0)))
        await h.terminate_child(handles[0])      # by handle
        assert [c.id for c in h.which_children()] == [1, 2]
        t0 = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - t0 == 3        # concurrent: the longest cleanup, not 2 + 3


async def test_registry(mock_clock):
    reg = otp.Registry()
    with reg.register("a", 1):
        assert reg.whereis("a") == 1 and reg.via("a").resolve() == 1
        with pytest.raises(otp.AlreadyRegistered):
            reg.register("a", 2)
    assert reg.whereis("a") is None
    with pytest.raises(LookupError):
        reg.via("a").resolve()
    with pytest.raises(KeyError):
        with reg.register("b", 1):
            raise KeyError("boom")
    assert reg.whereis("b") is None
    async with trio.open_nursery() as nursery:
        got = []

        async def waiter():
            got.append(await reg.wait_registered("c"))

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()

        async def owner(task_status=trio.TASK_STATUS_IGNORED):
            with reg.register("c", "value"):
                task_status.started()
                await trio.sleep_forever()

        scope = trio.CancelScope()

        async def owned():
            with scope:
                await owner()

        nursery.start_soon(owned)
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["value"]
        scope.cancel()           # the owner is cancelled: its entry goes with it
        await trio.testing.wait_all_tasks_blocked()
        assert reg.whereis("c") is None
    groups = otp.Registry(keys="duplicate")
    with groups.register("g", 1), groups.register("g", 2):
        assert groups.lookup("g") == [1, 2]
    assert groups.lookup("g") == []
    with pytest.raises(ValueError):
        otp.Registry(keys="many")


async def test_application_in_a_nursery_and_observer(mock_clock):
    ctl, events = Ctl(), []

    def bad_observer(event):
        events.append(event)
        raise RuntimeError("observer bug")     # must not break supervision

    app = otp.Application([otp.ChildSpec(id="a", start=ctl.child("a"))],
                          observer=bad_observer)
    async with trio.open_nursery() as nursery:
        h = await nursery.start(app.run)
        await ctl.send("a", "crash")
        assert ctl.starts["a"] == 2 and h.which_children()[0].state == "running"
        nursery.cancel_scope.cancel()
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["child_started", "child_exited", "child_started", "child_restarted"]
    assert events[1].exit_kind == "abnormal" and isinstance(events[1].error, RuntimeError)


async def test_application_keyboard_interrupt_stops_tree(mock_clock):
    ctl = Ctl()
    with pytest.raises(KeyboardInterrupt):
        async with otp.Application([otp.ChildSpec(id="a", start=ctl.child("a"))]):
            raise KeyboardInterrupt
    assert ctl.log == [("start", "a"), ("stop", "a")]


async def test_start_error_is_unwrapped(mock_clock):
    async def broken(*, task_status=trio.TASK_STATUS_IGNORED):
        raise OSError("no")

    with pytest.raises(otp.StartError) as info:
        async with otp.Application([otp.ChildSpec(id="b", start=broken)]):
            pass
    assert isinstance(info.value.cause, OSError) and info.value.child_id == "b"


async def test_recipe_rerun_starts_fresh(mock_clock):
    ctl = Ctl()
    inner = otp.Supervisor([otp.ChildSpec(id="w", start=ctl.child("w"))], name="inner")
    outer = otp.Supervisor([inner.child_spec("inner")], name="outer")
    async with trio.open_nursery() as nursery:
        h = await nursery.start(outer.run)
        first = h.which_children()[0].value
        await first.terminate_child("w")
        await h.terminate_child("inner")
        second = await h.restart_child("inner")
        assert second is not first
        assert second.which_children()[0].state == "running" and ctl.starts["w"] == 2
        nursery.cancel_scope.cancel()


def test_bad_construction():
    async def ok(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()

    def not_async(*, task_status=None):
        pass

    with pytest.raises(ValueError):
        otp.ChildSpec(id="a", start=ok, restart="sometimes")
    with pytest.raises(TypeError):
        otp.ChildSpec(id="a", start=ok, restart=3)
    with pytest.raises(TypeError):
        otp.ChildSpec(id="a", start=not_async)
    with pytest.raises(ValueError):
        otp.ChildSpec(id="a", start=ok, shutdown=-1)
    with pytest.raises(TypeError):
        otp.ChildSpec(id=["unhashable"], start=ok)
    with pytest.raises(ValueError):
        otp.Supervisor([], strategy="all_for_none")
    with pytest.raises(ValueError):
        otp.Supervisor([], max_restarts=-1)
    with pytest.raises(ValueError):
        otp.Supervisor([], max_seconds=0)
    with pytest.raises(TypeError):
        otp.Supervisor([], max_restarts="3")
    with pytest.raises(ValueError):
        otp.Supervisor([otp.ChildSpec(id="a", start=ok), otp.ChildSpec(id="a", start=ok)])
    with pytest.raises(TypeError):
        otp.Supervisor(["not a spec"])
    with pytest.raises(ValueError):
        otp.DynamicSupervisor(max_children=-1)
