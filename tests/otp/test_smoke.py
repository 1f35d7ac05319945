
import pytest
import trio
import trio.testing

from snakepit import otp


def make_child(log, name, *, fail_start=False):
    async def child(*, task_status=trio.TASK_STATUS_IGNORED):
        if fail_start:
            raise RuntimeError(f"{name} cannot start")
        log.append(("start", name))
        task_status.started(name)
        try:
            await trio.sleep_forever()
        finally:
            log.append(("stop", name))
    return child


async def test_start_order_and_reverse_stop(mock_clock):
    log = []
    sup = otp.Supervisor([otp.ChildSpec(id=n, start=make_child(log, n)) for n in "abc"])
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(sup.run)
        assert [c.value for c in handle.which_children()] == ["a", "b", "c"]
        nursery.cancel_scope.cancel()
    assert log == [("start", "a"), ("start", "b"), ("start", "c"),
                   ("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_one_for_all_restart_and_give_up(mock_clock):
    log = []

    async def crasher(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await trio.sleep(1)
        raise ValueError("boom")

    sup = otp.Supervisor([otp.ChildSpec(id="a", start=make_child(log, "a")),
                          otp.ChildSpec(id="x", start=crasher)],
                         strategy="one_for_all", max_restarts=2, max_seconds=10)
    with pytest.RaisesGroup(otp.MaxRestartsExceeded):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
    assert log.count(("start", "a")) == 3  # initial + 2 restarts, then the third crash gives up
    assert log[-1] == ("stop", "a")


async def test_start_failure_stops_started_in_reverse(mock_clock):
    log = []
    sup = otp.Supervisor([otp.ChildSpec(id="a", start=make_child(log, "a")),
                          otp.ChildSpec(id="b", start=make_child(log, "b")),
                          otp.ChildSpec(id="c", start=make_child(log, "c", fail_start=True))])
    async with trio.open_nursery() as nursery:
        with pytest.raises(otp.StartError) as info:
            await nursery.start(sup.run)
    assert info.value.child_id == "c"
    assert log == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]


async def test_application_context_manager(mock_clock):
    log = []
    async with otp.Application([otp.ChildSpec(id="a", start=make_child(log, "a"))]) as h:
        assert h.count_children()["active"] == 1
    assert log == [("start", "a"), ("stop", "a")]


async def test_application_unwraps_body_error(mock_clock):
    log = []
    with pytest.raises(KeyError):
        async with otp.Application([otp.ChildSpec(id="a", start=make_child(log, "a"))]):
            raise KeyError("x")
    assert log == [("start", "a"), ("stop", "a")]


async def test_dynamic(mock_clock):
    log = []
    dyn = otp.DynamicSupervisor(max_children=2)
    async with trio.open_nursery() as nursery:
        h = await nursery.start(dyn.run)
        assert await h.start_child(otp.ChildSpec(id="a", start=make_child(log, "a"))) == "a"
        await h.start_child(otp.ChildSpec(id="b", start=make_child(log, "b")))
        with pytest.raises(otp.MaxChildrenReached):
            await h.start_child(otp.ChildSpec(id="c", start=make_child(log, "c")))
        await h.terminate_child("a")
        assert [c.id for c in h.which_children()] == ["b"]
        nursery.cancel_scope.cancel()
    assert log == [("start", "a"), ("start", "b"), ("stop", "a"), ("stop", "b")]


async def test_overrun_reported_not_abandoned(mock_clock):
    events = []
    done = []

    async def slow(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(10)
            done.append(trio.current_time())

    sup = otp.Supervisor([otp.ChildSpec(id="s", start=slow, shutdown=1.0)],
                         observer=events.append)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    assert done == [t0 + 10]
    assert [e.kind for e in events if e.kind == "child_shutdown_overran"] == \
        ["child_shutdown_overran"]
