"""snakepit.otp.testing: probes, Model, check_tree — including how it fails."""

import pytest
import trio
import trio.testing

from snakepit import otp
from snakepit.otp import testing
from snakepit.otp.testing import Fault


def run(*args):
    trio.run(testing.check_tree, *args, clock=trio.testing.MockClock(autojump_threshold=0))


def tree(strategy="rest_for_one", max_restarts=3, max_seconds=5.0, ids="abc"):
    probes = testing.probes(*ids)
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=p.start) for i, p in probes.items()],
                         strategy=strategy, max_restarts=max_restarts, max_seconds=max_seconds)
    return sup, probes


def test_a_correct_model_passes_and_the_triple_is_reusable():
    sup, probes = tree()
    model = testing.Model(list("abc"), strategy="rest_for_one", max_restarts=3, max_seconds=5.0)
    schedule = [Fault(0.5, "b", "crash"), Fault(1.0, "a", "normal"), Fault(0.0, "c", "crash")]
    run(sup, probes, schedule, model)
    assert {i: p.incarnations for i, p in probes.items()} == {"a": 2, "b": 3, "c": 4}
    run(sup, probes, schedule, model)       # reset first: same numbers, not doubled
    assert {i: p.incarnations for i, p in probes.items()} == {"a": 2, "b": 3, "c": 4}


def test_a_wrong_model_fails_with_a_step_by_step_message():
    sup, probes = tree(strategy="rest_for_one")
    wrong = testing.Model(list("abc"), strategy="one_for_one", max_restarts=3, max_seconds=5.0)
    schedule = [Fault(0.5, "c", "crash"), Fault(0.25, "b", "crash"), Fault(1.0, "a", "crash")]
    with pytest.raises(AssertionError) as info:
        run(sup, probes, schedule, wrong)
    message = str(info.value)
    assert message.splitlines() == [
        "check_tree: the tree differs from the model at step 2 (Fault(0.25, 'b', 'crash'))",
        "  model: Model({'a': 'permanent', 'b': 'permanent', 'c': 'permanent'}, "
        "strategy='one_for_one', max_restarts=3, max_seconds=5.0)",
        "  step  time       fault                 incarnations; -stopped +started; running",
        "     0  t=0.000    (start)               a=1 b=1 c=1; +a +b +c; running: a b c",
        "     1  t=0.500    crash 'c'             a=1 b=1 c=2; +c; running: a b c",
        "     2  t=0.750    crash 'b'             <- here",
        "        expected: a=1 b=2 c=2; +b; running: a b c",
        "        observed: a=1 b=2 c=3; -c +b +c; running: a b c",
        "  not applied: [Fault(1.0, 'a', 'crash')]",
    ]


def test_giving_up_is_observed_not_a_cancelled_driver():
    sup, probes = tree(strategy="one_for_all", max_restarts=1, max_seconds=5.0)
    model = testing.Model(list("abc"), strategy="one_for_all", max_restarts=1, max_seconds=5.0)
    schedule = [Fault(1.0, "a", "crash"), Fault(1.0, "b", "crash"), Fault(0.0, "c", "crash")]
    run(sup, probes, schedule, model)      # gives up at the second fault; the third is moot
    assert not any(p.running for p in probes.values())
    lenient = testing.Model(list("abc"), strategy="one_for_all", max_restarts=2,
                            max_seconds=5.0)
    with pytest.raises(AssertionError, match=r"(?s)expected: .*running: a b c\n"
                                             r".*observed: .*supervisor gives up"):
        run(sup, probes, schedule, lenient)


def test_restart_types_and_skipped_faults():
    probes = testing.probes("p", "t", "x")
    kinds = {"p": "permanent", "t": "transient", "x": "temporary"}
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=probes[i].start, restart=k)
                          for i, k in kinds.items()], strategy="one_for_all")
    model = testing.Model(kinds, strategy="one_for_all")
    # t exits normally (not restarted); x crashes (gone); p crashes: all restart but x
    run(sup, probes, [Fault(1, "t", "normal"), Fault(0, "t", "crash"), Fault(1, "x", "crash"),
                      Fault(1, "p", "crash"), Fault(1, "x", "normal")], model)
    assert {i: p.incarnations for i, p in probes.items()} == {"p": 2, "t": 2, "x": 1}


def test_nested_supervisor_that_gives_up_is_restarted_by_its_parent():
    probes = testing.probes("a", "b", "c")
    inner = otp.Supervisor([otp.ChildSpec(id=i, start=probes[i].start) for i in "bc"],
                           strategy="one_for_one", max_restarts=0, name="inner")
    outer = otp.Supervisor([otp.ChildSpec(id="a", start=probes["a"].start),
                            inner.child_spec("inner")], strategy="rest_for_one")
    model = testing.Model({"a": "permanent",
                           "inner": testing.Model(["b", "c"], max_restarts=0)},
                          strategy="rest_for_one")
    run(outer, probes, [Fault(1, "c", "crash"), Fault(1, "b", "crash"), Fault(1, "a", "crash")],
        model)
    assert {i: p.incarnations for i, p in probes.items()} == {"a": 2, "b": 4, "c": 4}


def test_dynamic_supervisor_children():
    probes = testing.probes("w1", "w2")
    dyn = otp.DynamicSupervisor(max_restarts=3, max_seconds=10.0)
    model = testing.Model({"w1": "transient", "w2": "permanent"}, max_restarts=3,
                          max_seconds=10.0)
    run(dyn, probes, [Fault(1, "w1", "crash"), Fault(1, "w1", "normal"),
                      Fault(1, "w2", "normal"), Fault(1, "w2", "crash")], model)
    assert probes["w2"].incarnations == 3


def test_genserver_child_wrapped_in_a_probe():
    class Counter(otp.GenServer):
        async def init(self, start):
            return start

        async def handle_cast(self, request, state):
            return state + request

    registry = otp.Registry()
    probes = {"counter": testing.FaultyChild(
        "counter", Counter.start_link(0, name=registry.via("counter")))}
    probes["n"] = testing.FaultyChild("n", journal=probes["counter"].journal)
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=p.start) for i, p in probes.items()],
                         strategy="one_for_all")
    model = testing.Model(["counter", "n"], strategy="one_for_all")
    run(sup, probes, [Fault(1, "counter", "crash"), Fault(1, "n", "crash")], model)
    assert probes["counter"].incarnations == 3
    assert registry.whereis("counter") is None          # gone with the tree


async def test_probe_methods(mock_clock):
    probe = testing.FaultyChild("p")
    with pytest.raises(RuntimeError, match=r"crash\(\): probe 'p' is not running"):
        probe.crash()
    with pytest.RaisesGroup(ValueError):
        async with trio.open_nursery() as nursery:
            value = await nursery.start(probe.start)
            assert value is probe and probe.running and probe.incarnations == 1
            probe.crash(ValueError("mine"))
    assert not probe.running
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.start)
        probe.exit_normally()
    assert probe.journal == [("start", "p"), ("start", "p")]
    with pytest.raises(ValueError, match="fault kind must be one of"):
        probe.inject("explode")


def test_bad_arguments_name_what_is_wrong():
    sup, probes = tree()
    with pytest.raises(ValueError, match=r"the probes \['a', 'b', 'c'\] and the model's"):
        run(sup, probes, [], testing.Model(["a", "b"]))
    with pytest.raises(ValueError, match="Fault.kind must be one of"):
        Fault(1.0, "a", "explode")
    with pytest.raises(ValueError, match="Fault.delay must be a number of seconds >= 0"):
        Fault(-1, "a")
    with pytest.raises(ValueError, match="Model strategy must be one of"):
        testing.Model(["a"], strategy="all_for_one")
    with pytest.raises(ValueError, match="Model restart type of 'a' must be one of"):
        testing.Model({"a": "sometimes"})
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        testing.fault_schedules(["a"], kinds=["explode"])
    with pytest.raises(ValueError, match="schedule items must be Faults on the probes"):
        run(sup, probes, [Fault(0, "z")], testing.Model(list("abc")))
