"""Property-test your own supervision trees: probes, fault schedules, a model, a checker.

    import hypothesis, trio, trio.testing
    from snakepit import otp
    from snakepit.otp import testing

    probes = testing.probes("a", "b", "c")          # dict: id -> FaultyChild
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=p.start) for i, p in probes.items()],
                         strategy="rest_for_one", max_restarts=3, max_seconds=5.0)
    model = testing.Model(["a", "b", "c"], strategy="rest_for_one",
                          max_restarts=3, max_seconds=5.0)

    @hypothesis.given(testing.fault_schedules(["a", "b", "c"], max_faults=8))
    def test_my_tree(schedule):
        trio.run(testing.check_tree, sup, probes, schedule, model,
                 clock=trio.testing.MockClock(autojump_threshold=0))

``check_tree`` raises ``AssertionError`` with a step-by-step account when the tree and the
model disagree. When a supervisor gives up it cancels whatever runs in its nursery;
``check_tree`` runs it in a task of its own, so it observes the moment rather than being
cancelled by it. For pytest: ``pytest_plugins = ["snakepit.otp.testing.pytest_plugin"]``
gives the ``otp_clock`` and ``quiet_otp_logs`` fixtures. hypothesis is imported only by
:func:`fault_schedules`.
"""

from snakepit.otp.testing.check import check_tree
from snakepit.otp.testing.faults import Fault, fault_schedules
from snakepit.otp.testing.model import Model
from snakepit.otp.testing.probes import FaultyChild, InjectedFault, probes

__all__ = ["Fault", "FaultyChild", "InjectedFault", "Model", "check_tree", "fault_schedules",
           "probes"]
