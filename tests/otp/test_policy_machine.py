"""The pure restart decisions, as a hypothesis state machine against testing.Model."""

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from snakepit.otp import ExitKind, Restart, RestartWindow, Strategy, restart_plan, should_restart
from snakepit.otp import testing
from snakepit.otp.decisions import keeps_spec

EXAMPLES = 200


KIND = {ExitKind.ABNORMAL: "crash", ExitKind.NORMAL: "normal", ExitKind.SHUTDOWN: "shutdown"}


class PolicyMachine(RuleBasedStateMachine):
    """A supervisor reduced to its decisions (should_restart, RestartWindow, restart_plan),
    checked step by step against snakepit.otp.testing.Model, the reference users get."""

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
        self.model = testing.Model({c: t.value for c, t in self.types.items()},
                                   strategy=strategy.value, max_restarts=max_restarts,
                                   max_seconds=max_seconds)
        self.now = 0.0
        self.dead = False

    @rule(dt=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5, 6.0]))
    def advance(self, dt):
        self.now += dt

    @precondition(lambda self: not self.dead and self.running)
    @rule(data=st.data(), kind=st.sampled_from(list(ExitKind)))
    def child_exits(self, data, kind):
        child = data.draw(st.sampled_from(sorted(self.running)))
        assert self.model.apply(child, KIND[kind], self.now)
        self.running.discard(child)
        restart = self.types[child]
        if not should_restart(restart, kind):
            assert not [e for e in self.model.events if e[0] == "start"]
            if not keeps_spec(restart):
                self.order.remove(child)
            return
        self.window = self.window.add(self.now)
        assert self.window.exceeded == (not self.model.alive)
        if self.window.exceeded:
            self.dead = True
            return
        temporary = {c for c in self.order if self.types[c] is Restart.TEMPORARY}
        plan = restart_plan(self.strategy, self.order, child, running=set(self.running),
                            temporary=temporary)
        assert list(plan.stop) == [c for what, c in self.model.events if what == "stop"]
        assert list(plan.start) == [c for what, c in self.model.events if what == "start"]
        for c in plan.stop:
            self.running.discard(c)
            if self.types[c] is Restart.TEMPORARY:
                self.order.remove(c)
        for c in plan.start:
            self.running.add(c)
            self.incarnation[c] += 1
        assert self.incarnation == {c: n for c, n in self.model.incarnations().items()
                                    if c in self.incarnation}

    @invariant()
    def running_children_are_known(self):
        if hasattr(self, "order"):
            assert self.running <= set(self.order)
            if not self.dead:      # (a dead supervisor's children are stopped by its machinery)
                assert self.running == {c for c in self.order if self.model.is_running(c)}
            assert all(self.types[c] is not Restart.TEMPORARY or self.incarnation[c] == 1
                       for c in self.order)   # temporary children never come back


PolicyMachine.TestCase.settings = settings(max_examples=EXAMPLES, deadline=None,
                                           stateful_step_count=30)
TestPolicy = PolicyMachine.TestCase
