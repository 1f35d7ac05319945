"""GenServer: one rule per test, on MockClock (the ``mock_clock`` fixture autojumps)."""

import math

import pytest
import trio
import trio.testing

from snakepit import otp


class Counter(otp.GenServer):
    """A counter that records what happens to it in ``log`` (a list shared by the test)."""

    def __init__(self, log=None):
        self.log = log if log is not None else []

    async def init(self, start, log=None):
        if log is not None:
            self.log = log
        self.log.append(("init", start))
        return start

    async def handle_call(self, request, state):
        if request == "get":
            return state, state
        if request == "boom":
            raise ZeroDivisionError("boom")
        if isinstance(request, tuple) and request[0] == "slow":
            self.log.append(("slow-begin", request[1]))
            await trio.sleep(request[2])
            self.log.append(("slow-end", request[1]))
            return request[1], state
        if request == "bad-return":
            return state
        raise ValueError(f"unknown request {request!r}")

    async def handle_cast(self, request, state):
        if request == "crash":
            raise RuntimeError("cast crash")
        return state + request

    async def terminate(self, reason, state):
        self.log.append(("terminate", reason if isinstance(reason, str) else type(reason),
                         state))


async def test_start_link_is_a_child_start_and_serves_calls_and_casts(mock_clock):
    registry = otp.Registry()
    spec = otp.ChildSpec(id="c", start=Counter.start_link(10, name=registry.via("counter")))
    sup = otp.Supervisor([spec])
    async with otp.running(sup.run) as handle:
        ref = handle.which_children()[0].value
        assert isinstance(ref, otp.ServerRef) and ref.running
        assert registry.whereis("counter") is ref
        await otp.cast(registry.via("counter"), 5)
        await ref.cast(1)
        assert await otp.call(registry.via("counter"), "get") == 16
        assert await otp.call(ref, "get", timeout=1.0) == 16
    assert registry.whereis("counter") is None      # registered for the server's lifetime
    assert not ref.running


async def test_requests_are_handled_one_at_a_time_in_arrival_order(mock_clock):
    log = []
    async with otp.running(Counter.start_link(0, log)) as ref:
        results = []

        async def caller(i):
            results.append(await ref.call(("slow", i, 1.0), timeout=100))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(caller, i)
                await trio.testing.wait_all_tasks_blocked()   # fixes the arrival order
        assert results == [0, 1, 2, 3]
        assert log[1:] == [(what, i) for i in range(4) for what in ("slow-begin", "slow-end")]


async def test_handler_exception_crashes_server_caller_gets_server_crashed(mock_clock):
    log = []
    registry = otp.Registry()
    spec = otp.ChildSpec(id="c", start=Counter.start_link(0, log, name=registry.via("c")))
    async with otp.running(otp.Supervisor([spec]).run) as handle:
        await otp.cast(registry.via("c"), 7)
        first = registry.whereis("c")
        with pytest.raises(otp.ServerCrashed) as info:
            await otp.call(registry.via("c"), "boom")
        assert isinstance(info.value.cause, ZeroDivisionError)
        assert info.value.__cause__ is info.value.cause
        await trio.testing.wait_all_tasks_blocked()
        # restarted by its supervisor with a fresh init state, under the same name
        second = registry.whereis("c")
        assert second is not None and second is not first and not first.running
        assert await otp.call(registry.via("c"), "get") == 0
        assert handle.which_children()[0].restarts == 1
    assert ("terminate", ZeroDivisionError, 7) in log   # terminate got the last good state


async def test_a_crashing_cast_crashes_the_server(mock_clock):
    log = []
    with pytest.raises(RuntimeError, match="cast crash"):
        async with otp.running(Counter.start_link(0, log)) as ref:
            await ref.cast("crash")
            await trio.sleep_forever()
    assert log[-1] == ("terminate", RuntimeError, 0)


async def test_call_timeout_leaves_the_server_running(mock_clock):
    log = []
    async with otp.running(Counter.start_link(3, log)) as ref:
        start = trio.current_time()
        with pytest.raises(otp.CallTimeout, match="within 2.0 s") as info:
            await ref.call(("slow", "late", 10.0), timeout=2.0)
        assert trio.current_time() - start == 2.0
        assert isinstance(info.value, TimeoutError)
        assert ref.running
        assert await ref.call("get", timeout=20.0) == 3   # waits behind the slow one
        assert ("slow-end", "late") in log


async def test_no_live_server_is_not_running(mock_clock):
    registry = otp.Registry()
    with pytest.raises(otp.NotRunning, match="'nobody'"):
        await otp.call(registry.via("nobody"), "get")
    with pytest.raises(otp.NotRunning):
        await otp.cast(registry.via("nobody"), 1)
    async with otp.running(Counter.start_link(0)) as ref:
        pass
    for attempt in (ref.call("get"), ref.cast(1), ref.stop()):
        with pytest.raises(otp.NotRunning):
            await attempt


async def test_waiting_callers_get_not_running_when_the_server_stops(mock_clock):
    class Full(Counter):
        mailbox_size = 1

    outcomes = []

    async def caller(ref, request):
        try:
            outcomes.append(await ref.call(request, timeout=math.inf))
        except otp.OTPError as exc:
            outcomes.append(type(exc))

    async with trio.open_nursery() as callers:   # the callers outlive the server
        async with trio.open_nursery() as server:
            ref = await server.start(Full.start_link(0))
            callers.start_soon(caller, ref, ("slow", "a", 5.0))   # being handled
            await trio.testing.wait_all_tasks_blocked()
            callers.start_soon(caller, ref, "get")                # in the mailbox
            await trio.testing.wait_all_tasks_blocked()
            callers.start_soon(caller, ref, "get")                # waiting for mailbox space
            await trio.testing.wait_all_tasks_blocked()
            assert ref.statistics().tasks_waiting_send == 1
            server.cancel_scope.cancel()                          # the server is shut down
    assert outcomes == [otp.NotRunning] * 3


async def test_waiting_callers_get_server_crashed_when_the_server_crashes(mock_clock):
    outcomes = []

    async def caller(ref, request):
        try:
            outcomes.append(await ref.call(request))
        except otp.ServerCrashed as exc:
            outcomes.append(type(exc.cause))

    async with trio.open_nursery() as callers:
        with pytest.RaisesGroup(ZeroDivisionError):
            async with trio.open_nursery() as server:
                ref = await server.start(Counter.start_link(0))
                # a slow call keeps the server busy while the others queue behind it
                for request in (("slow", "first", 1.0), "boom", "get"):
                    callers.start_soon(caller, ref, request)
                    await trio.testing.wait_all_tasks_blocked()
    assert outcomes == ["first", ZeroDivisionError, ZeroDivisionError]


async def test_full_mailbox_makes_cast_wait(mock_clock):
    class Small(Counter):
        mailbox_size = 2

    async with otp.running(Small.start_link(0)) as ref:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.call, ("slow", "x", 5.0), 100)   # occupies the server
            await trio.testing.wait_all_tasks_blocked()
            await ref.cast(1)
            await ref.cast(2)                                        # mailbox now full
            with trio.move_on_after(1.0) as waited:
                await ref.cast(4)
            assert waited.cancelled_caught                           # back-pressure
            assert ref.statistics().current_buffer_used == 2
        assert await ref.call("get") == 3                            # the third never arrived


async def test_stop_runs_terminate_and_is_a_normal_exit(mock_clock):
    log = []
    spec = otp.ChildSpec(id="c", start=Counter.start_link(1, log), restart="transient")
    async with otp.running(otp.Supervisor([spec]).run) as handle:
        ref = handle.which_children()[0].value
        await ref.cast(1)
        await ref.stop()
        assert log[-1] == ("terminate", "normal", 2)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.which_children()[0].state == "terminated"   # transient: not restarted


async def test_stop_with_an_abnormal_reason_is_a_crash(mock_clock):
    log = []
    spec = otp.ChildSpec(id="c", start=Counter.start_link(1, log), restart="transient")
    async with otp.running(otp.Supervisor([spec]).run) as handle:
        await handle.which_children()[0].value.stop("bad-config")
        await trio.testing.wait_all_tasks_blocked()
        info = handle.which_children()[0]
        assert info.state == "running" and info.restarts == 1
    assert ("terminate", "bad-config", 1) in log


async def test_terminate_runs_shielded_within_the_shutdown_grace(mock_clock):
    done = []

    class SlowStop(Counter):
        async def terminate(self, reason, state):
            await trio.sleep(state)     # cleanup that takes `state` seconds
            done.append((reason, trio.current_time()))

    for needs, grace in ((1.0, 3.0), (10.0, 3.0)):
        done.clear()
        spec = otp.ChildSpec(id="s", start=SlowStop.start_link(needs), shutdown=grace)
        start = trio.current_time()
        async with otp.running(otp.Supervisor([spec]).run):
            pass
        elapsed = trio.current_time() - start
        if needs < grace:
            assert done == [("shutdown", start + needs)]
        else:                           # cut at the grace deadline: cleanup was cancelled
            assert done == [] and elapsed == grace


async def test_name_is_unique_and_init_failure_is_a_start_error(mock_clock):
    class Broken(Counter):
        async def init(self, start):
            raise OSError("no database")

    registry = otp.Registry()
    with pytest.raises(otp.StartError) as info:
        async with otp.running(otp.Supervisor([otp.ChildSpec(
                id="b", start=Broken.start_link(0))]).run):
            pass
    assert isinstance(info.value.cause, OSError)
    async with otp.running(Counter.start_link(0, name=registry.via("one"))):
        with pytest.raises(otp.AlreadyRegistered):
            async with otp.running(Counter.start_link(0, name=registry.via("one"))):
                pass


async def test_bad_handler_return_crashes_with_a_clear_error(mock_clock):
    with pytest.raises(TypeError, match=r"handle_call must return \(reply, new_state\)"):
        async with otp.running(Counter.start_link(0)) as ref:
            with pytest.raises(otp.ServerCrashed):
                await ref.call("bad-return")
            await trio.sleep_forever()


async def test_a_server_calling_itself_is_refused(mock_clock):
    class Selfish(otp.GenServer):
        async def init(self):
            return None

        async def handle_call(self, request, state):
            return await self_ref[0].call("again"), state

    self_ref = []
    with pytest.raises(RuntimeError, match="called itself"):
        async with otp.running(Selfish.start_link()) as ref:
            self_ref.append(ref)
            with pytest.raises(otp.ServerCrashed):
                await ref.call("go")
            await trio.sleep_forever()


async def test_bad_arguments_name_the_field():
    with pytest.raises(TypeError, match="name must be a registry.via"):
        Counter.start_link(0, name="counter")

    class Zero(Counter):
        mailbox_size = 0

    with pytest.raises(ValueError, match="Zero.mailbox_size must be an int >= 1"):
        Zero.start_link(0)
    with pytest.raises(TypeError, match="server must be a ServerRef or a registry.via"):
        await otp.call("counter", "get")
    registry = otp.Registry()
    with registry.register("x", object()):
        with pytest.raises(TypeError, match="not a GenServer"):
            await otp.cast(registry.via("x"), 1)
    async with otp.running(Counter.start_link(0)) as ref:
        for bad in (0, -1, "5", None):
            with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
                await ref.call("get", timeout=bad)
