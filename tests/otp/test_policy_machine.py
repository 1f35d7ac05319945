"""The pure restart decisions, as a hypothesis state machine against a reference model."""

import os

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from snakepit.otp import ExitKind, Restart, RestartWindow, Strategy, restart_plan, should_restart
from snakepit.otp.decisions import keeps_spec

EXAMPLES = 200 if os.environ.get("CI") else 200


def ref_alive(times, max_restarts, max_seconds):
    """Reference: alive iff no closed window [t, t + max_seconds] holds > max_restarts."""
    return not any(sum(1 for u in times if t <= u <= t + max_seconds) > max_restarts
                   for t in times)


class PolicyMachine(RuleBasedStateMachine):
    """A supervisor reduced to its decisions: children's running state and restart times."""

    @initialize(strategy=st.sampled_from(list(Strategy)),
                types=st.lists(st.sampled_from(list(Restart)), min_size=1, max_size=6),
                max_restarts=st.integers(0, 4), max_seconds=st.sampled_from([1.0, 2.5, 5.0]))
    def setup(self, strategy, types, max_restarts, max_seconds):
        self.strategy = strategy
        self.order = list(range(len(types)))
        self.types = dict(enumerate(types))
        self.running = set(self.order)
        self.incarnation = {c: 1 for c in self.order}
        self.window = RestartWindow(max_restarts, max_seconds)
        self.times = []
        self.now = 0.0
        self.dead = False

    @rule(dt=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5, 6.0]))
    def advance(self, dt):
        self.now += dt

    @precondition(lambda self: not self.dead and self.running)
    @rule(data=st.data(), kind=st.sampled_from(list(ExitKind)))
    def child_exits(self, data, kind):
        child = data.draw(st.sampled_from(sorted(self.running)))
        self.running.discard(child)
        restart = self.types[child]
        # reference restart-type rule
        expect = {Restart.PERMANENT: True, Restart.TRANSIENT: kind is ExitKind.ABNORMAL,
                  Restart.TEMPORARY: False}[restart]
        assert should_restart(restart, kind) == expect
        if not expect:
            if not keeps_spec(restart):
                self.order.remove(child)
            return
        self.window = self.window.add(self.now)
        self.times.append(self.now)
        assert self.window.exceeded == (not ref_alive(self.times, self.window.max_restarts,
                                                      self.window.max_seconds))
        if self.window.exceeded:
            self.dead = True
            return
        temporary = {c for c in self.order if self.types[c] is Restart.TEMPORARY}
        plan = restart_plan(self.strategy, self.order, child, running=set(self.running),
                            temporary=temporary)
        # reference plans, written independently of the implementation
        pos = self.order.index(child)
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected = [child]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = list(self.order)
        else:
            affected = [c for c in self.order if self.order.index(c) >= pos]
        exp_stop = sorted((c for c in affected if c in self.running),
                          key=self.order.index, reverse=True)
        exp_start = [c for c in self.order if c in affected and c not in temporary]
        assert list(plan.stop) == exp_stop
        assert list(plan.start) == exp_start
        for c in plan.stop:
            self.running.discard(c)
            if self.types[c] is Restart.TEMPORARY:
                self.order.remove(c)
        for c in plan.start:
            self.running.add(c)
            self.incarnation[c] += 1

    @invariant()
    def running_children_are_known(self):
        if hasattr(self, "order"):
            assert self.running <= set(self.order)
            assert all(self.types[c] is not Restart.TEMPORARY or self.incarnation[c] == 1
                       for c in self.order)   # temporary children never come back


PolicyMachine.TestCase.settings = settings(max_examples=EXAMPLES, deadline=None,
                                           stateful_step_count=30)
TestPolicy = PolicyMachine.TestCase
