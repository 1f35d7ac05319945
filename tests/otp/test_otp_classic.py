"""Ports of OTP's classic supervisor cases, on MockClock."""

import pytest
import trio
import trio.testing

from snakepit import otp


def forever(log, name):
    async def child(*, task_status=trio.TASK_STATUS_IGNORED):
        log.append(("start", name))
        task_status.started(name)
        try:
            await trio.sleep_forever()
        finally:
            log.append(("stop", name))
    return child


def crash_after(delay, log=None, name="c"):
    async def child(*, task_status=trio.TASK_STATUS_IGNORED):
        if log is not None:
            log.append(("start", name))
        task_status.started()
        await trio.sleep(delay)
        raise RuntimeError(f"{name} crashed")
    return child


async def test_escalation_through_nested_supervisors(mock_clock):
    events = []
    inner = otp.Supervisor([otp.ChildSpec(id="w", start=crash_after(0.1))],
                           max_restarts=1, max_seconds=10, name="inner")
    outer = otp.Supervisor([inner.child_spec("inner")], max_restarts=2, max_seconds=10,
                           name="outer")
    with pytest.raises(otp.MaxRestartsExceeded) as info:
        async with otp.Application([outer.child_spec("outer")], observer=events.append,
                                   max_restarts=0):
            await trio.sleep(100)
    assert info.value.supervisor == "application"
    gave_up = [e.supervisor for e in events if e.kind == "supervisor_gave_up"]
    # inner gives up 3 times (outer restarts it twice), then outer gives up, then the root
    assert gave_up == ["inner", "inner", "inner", "outer", "application"]


async def test_sibling_fails_during_one_for_all_restart(mock_clock):
    """b crashes; while the supervisor stops c for the restart, c crashes in its cleanup.
    Its exit counts as stopped (no extra restart), and everyone is restarted once."""
    log, events = [], []

    async def c(*, task_status=trio.TASK_STATUS_IGNORED):
        log.append(("start", "c"))
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            log.append(("stop", "c"))
            raise ValueError("c fails while being stopped")

    sup = otp.Supervisor([otp.ChildSpec(id="a", start=forever(log, "a")),
                          otp.ChildSpec(id="b", start=crash_after(1, log, "b")),
                          otp.ChildSpec(id="c", start=c)],
                         strategy="one_for_all", max_restarts=1, max_seconds=1.5,
                         observer=events.append)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(sup.run)
        await trio.sleep(1.2)
        assert log == [("start", "a"), ("start", "b"), ("start", "c"),
                       ("stop", "c"), ("stop", "a"),
                       ("start", "a"), ("start", "b"), ("start", "c")]
        assert [i.incarnation for i in handle.which_children()] == [2, 2, 2]
        assert [e.kind for e in events].count("child_exited") == 1
        nursery.cancel_scope.cancel()


async def test_cleanup_overrunning_grace_is_reported_not_abandoned(mock_clock):
    events, finished = [], []

    async def slow(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(5)
            finished.append(trio.current_time())

    sup = otp.Supervisor([otp.ChildSpec(id="slow", start=slow, shutdown=1)],
                         observer=events.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        t0 = trio.current_time()
        nursery.cancel_scope.cancel()
    assert finished == [t0 + 5]
    overran = [e for e in events if e.kind == "child_shutdown_overran"]
    assert len(overran) == 1 and overran[0].time == t0 + 1


async def test_child_that_cannot_start_takes_supervisor_down(mock_clock):
    attempts = []

    async def flaky(*, task_status=trio.TASK_STATUS_IGNORED):
        attempts.append(trio.current_time())
        if len(attempts) > 1:
            raise OSError("port in use")
        task_status.started()
        await trio.sleep(1)
        raise RuntimeError("crash")

    sup = otp.Supervisor([otp.ChildSpec(id="f", start=flaky)], max_restarts=3,
                         max_seconds=5)
    with pytest.raises(otp.MaxRestartsExceeded) as info:
        async with otp.Application([sup.child_spec("sup")], max_restarts=0):
            await trio.sleep(100)
    # 1 start; after the crash, 3 restart attempts that fail to start, each counted before
    # it is tried; the 4th would be a 4th restart within 5 s, so the supervisor gives up.
    assert len(attempts) == 4
    assert isinstance(info.value, otp.MaxRestartsExceeded)
