"""The real trio supervisors against OTP's rules, driven by hypothesis on MockClock.

Written with ``snakepit.otp.testing`` (the kit users get): probes are the children, a
``testing.Model`` is the reference, ``check_tree`` drives fault schedules (crash, normal and
shutdown exits; delays move the clock through the restart window) and compares incarnations,
the order of stops and starts, which children run and when the supervisor gives up. Runtime
operations of the handle (terminate / restart / start_child) are driven by hand against the
same model.
"""

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given, settings

from snakepit import otp
from snakepit.otp import testing

EXAMPLES = 200
IDS = ["c0", "c1", "c2", "c3"]
KINDS = ("crash", "normal", "shutdown")

restart_types = st.lists(st.sampled_from(["permanent", "transient", "temporary"]),
                         min_size=len(IDS), max_size=len(IDS))
intensity = st.tuples(st.integers(0, 3), st.sampled_from([1.0, 5.0]))


def run(fn, *args):
    try:
        trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseExceptionGroup as group:   # let hypothesis see (and shrink) the real failure
        raise otp.unwrap_group(group) from None


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@settings(max_examples=EXAMPLES, deadline=None)
@given(types=restart_types, limits=intensity,
       schedule=testing.fault_schedules(IDS, max_faults=20, max_gap=2.5, kinds=KINDS))
def test_supervisor_matches_model(strategy, types, limits, schedule):
    kinds = dict(zip(IDS, types))
    probes = testing.probes(*IDS)
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=probes[i].start, restart=k)
                          for i, k in kinds.items()], strategy=strategy,
                         max_restarts=limits[0], max_seconds=limits[1])
    model = testing.Model(kinds, strategy=strategy, max_restarts=limits[0],
                          max_seconds=limits[1])
    run(testing.check_tree, sup, probes, schedule, model)


@settings(max_examples=EXAMPLES, deadline=None)
@given(outer=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
       inner=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
       inner_limits=intensity,
       schedule=testing.fault_schedules(IDS, max_faults=15, max_gap=2.5))
def test_nested_supervisor_matches_model(outer, inner, inner_limits, schedule):
    """c0, [c1, c2] (a nested supervisor), c3: a nested supervisor that gives up is a
    crashed child of its parent, which restarts it fresh."""
    probes = testing.probes(*IDS)
    nested = otp.Supervisor([otp.ChildSpec(id=i, start=probes[i].start) for i in IDS[1:3]],
                            strategy=inner, max_restarts=inner_limits[0],
                            max_seconds=inner_limits[1], name="nested")
    sup = otp.Supervisor([otp.ChildSpec(id="c0", start=probes["c0"].start),
                          nested.child_spec("nested"),
                          otp.ChildSpec(id="c3", start=probes["c3"].start)],
                         strategy=outer, max_restarts=3, max_seconds=5.0)
    model = testing.Model({"c0": "permanent",
                           "nested": testing.Model(IDS[1:3], strategy=inner,
                                                   max_restarts=inner_limits[0],
                                                   max_seconds=inner_limits[1]),
                           "c3": "permanent"},
                          strategy=outer, max_restarts=3, max_seconds=5.0)
    run(testing.check_tree, sup, probes, schedule, model)


@settings(max_examples=EXAMPLES, deadline=None)
@given(types=restart_types, limits=intensity,
       schedule=testing.fault_schedules(IDS, max_faults=15, max_gap=2.5, kinds=KINDS))
def test_dynamic_supervisor_matches_model(types, limits, schedule):
    kinds = dict(zip(IDS, types))
    probes = testing.probes(*IDS)
    dyn = otp.DynamicSupervisor(max_restarts=limits[0], max_seconds=limits[1])
    model = testing.Model(kinds, max_restarts=limits[0], max_seconds=limits[1])
    run(testing.check_tree, dyn, probes, schedule, model)


operation = st.one_of(
    st.builds(testing.Fault, delay=st.sampled_from([0.0, 0.5, 2.5]),
              child=st.sampled_from(IDS), kind=st.sampled_from(KINDS)),
    st.tuples(st.sampled_from(["terminate", "restart"]), st.sampled_from(IDS)),
    st.tuples(st.just("add"), st.sampled_from(["permanent", "transient", "temporary"])),
)


async def drive_operations(strategy, kinds, limits, operations):
    probes = testing.probes(*IDS, *(f"n{k}" for k in range(len(operations))))
    model = testing.Model(kinds, strategy=strategy, max_restarts=limits[0],
                          max_seconds=limits[1])
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=probes[i].start, restart=k)
                          for i, k in kinds.items()], strategy=strategy,
                         max_restarts=limits[0], max_seconds=limits[1])
    journal = probes["c0"].journal
    gave_up = []

    async def supervised(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await sup.run(task_status=task_status)
        except otp.MaxRestartsExceeded as exc:   # observed here, not cancelling the driver
            gave_up.append(exc)

    added = iter(range(len(operations)))
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(supervised)
        for op in operations:
            mark = len(journal)
            if isinstance(op, testing.Fault):
                await trio.sleep(op.delay)
                if not probes[op.child].running:
                    assert not model.is_running(op.child)
                    continue
                probes[op.child].inject(op.kind)
                await trio.testing.wait_all_tasks_blocked()
                model.apply(op.child, op.kind, trio.current_time())
            elif op[0] == "terminate":
                if op[1] not in model.order:
                    with pytest.raises(otp.ChildNotFound):
                        await handle.terminate_child(op[1])
                    continue
                await handle.terminate_child(op[1])
                model.terminate_child(op[1])
            elif op[0] == "restart":
                if op[1] not in model.order:
                    continue
                if model.is_running(op[1]):
                    with pytest.raises(otp.ChildRunning):
                        await handle.restart_child(op[1])
                    continue
                await handle.restart_child(op[1])
                model.restart_child(op[1])
            else:
                cid = f"n{next(added)}"
                await handle.start_child(otp.ChildSpec(id=cid, start=probes[cid].start,
                                                       restart=op[1]))
                model.start_child(cid, op[1])
            await trio.testing.wait_all_tasks_blocked()
            assert bool(gave_up) == (not model.alive), op
            if gave_up:
                break
            assert journal[mark:] == model.events, op
            assert {c: probes[c].incarnations for c in model.leaves()} == model.incarnations()
            infos = {i.id: i for i in handle.which_children()}
            assert set(infos) == set(model.order)
            assert {c for c, i in infos.items() if i.state == "running"} == \
                {c for c in model.order if model.is_running(c)}
        nursery.cancel_scope.cancel()
    assert not any(p.running for p in probes.values()), "a child outlived the tree"


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@settings(max_examples=EXAMPLES, deadline=None)
@given(types=restart_types, limits=intensity, operations=st.lists(operation, max_size=25))
def test_handle_operations_match_model(strategy, types, limits, operations):
    run(drive_operations, strategy, dict(zip(IDS, types)), limits, operations)
