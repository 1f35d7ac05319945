"""The real trio supervisor, driven by hypothesis-generated step sequences on MockClock.

Each example is one ``trio.run`` with a MockClock. Children are controlled through channels;
after every step the tree settles (``wait_all_tasks_blocked``) and is compared with a
reference model of OTP's rules: which incarnations changed, the order of stops and starts,
whether the supervisor is alive, that temporary children never return, and that no task is
left once the tree has stopped.
"""


import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given, settings

from snakepit import otp

EXAMPLES = 200
N = 4

step = st.one_of(
    st.tuples(st.just("exit"), st.integers(0, N - 1),
              st.sampled_from(["crash", "normal", "shutdown"])),
    st.tuples(st.just("advance"), st.sampled_from([0.25, 0.5, 1.0, 2.5, 10.0])),
    st.tuples(st.just("terminate"), st.integers(0, N - 1)),
    st.tuples(st.just("restart"), st.integers(0, N - 1)),
    st.tuples(st.just("add"),),
)


class Model:
    """OTP's rules, written plainly."""

    def __init__(self, strategy, types, max_restarts, max_seconds):
        self.strategy, self.max_r, self.max_s = strategy, max_restarts, max_seconds
        self.order = list(range(len(types)))
        self.types = dict(enumerate(types))
        self.running = set(self.order)
        self.inc = {c: 1 for c in self.order}
        self.times = []
        self.alive = True
        self.stops, self.starts = [], []

    def _start(self, c):
        self.inc[c] += 1
        self.running.add(c)
        self.starts.append(c)

    def exit(self, c, kind, now):
        self.running.discard(c)
        t = self.types[c]
        restart = t == "permanent" or (t == "transient" and kind == "crash")
        if not restart:
            if t == "temporary":
                self.order.remove(c)
            return
        self.times.append(now)
        if any(sum(1 for u in self.times if s <= u <= s + self.max_s) > self.max_r
               for s in self.times):
            self.alive = False
            return
        pos = self.order.index(c)
        affected = {"one_for_one": [c], "one_for_all": list(self.order),
                    "rest_for_one": self.order[pos:]}[self.strategy]
        for d in reversed(self.order):
            if d in affected and d != c and d in self.running:
                self.running.discard(d)
                self.stops.append(d)
        for d in list(self.order):
            if d in affected and self.types[d] == "temporary" and d != c:
                self.order.remove(d)
        for d in self.order:
            if d in affected and self.types[d] != "temporary":
                self._start(d)


async def run_example(strategy, types, max_restarts, max_seconds, steps):
    model = Model(strategy, types, max_restarts, max_seconds)
    controls, log, live_tasks = {}, [], set()
    incarnations = {}

    def make(i):
        async def child(*, task_status=trio.TASK_STATUS_IGNORED):
            incarnations[i] = incarnations.get(i, 0) + 1
            send, recv = trio.open_memory_channel(1)
            controls[i] = send
            log.append(("start", i))
            me = trio.lowlevel.current_task()
            live_tasks.add(me)
            task_status.started(incarnations[i])
            try:
                cmd = await recv.receive()
            except trio.Cancelled:
                log.append(("stop", i))
                raise
            finally:
                live_tasks.discard(me)
            if cmd == "crash":
                raise RuntimeError(f"child {i} crashed")
            if cmd == "shutdown":
                raise otp.Shutdown()
        return child

    specs = [otp.ChildSpec(id=i, start=make(i), restart=t) for i, t in enumerate(types)]
    sup = otp.Supervisor(specs, strategy=strategy, max_restarts=max_restarts,
                         max_seconds=max_seconds)
    next_id = [len(types)]
    outcome = {}

    async def supervised(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await sup.run(task_status=task_status)
        except otp.MaxRestartsExceeded as exc:
            outcome["gave_up"] = exc

    async with trio.open_nursery() as nursery:
        handle = await nursery.start(supervised)
        model.starts.clear()
        for s in steps:
            if not model.alive:
                break
            log.clear()
            model.stops, model.starts = [], []
            kind = s[0]
            if kind == "exit":
                c = s[1]
                if c not in model.running:
                    continue
                await controls[c].send(s[2])
                await trio.testing.wait_all_tasks_blocked()
                model.exit(c, s[2], trio.current_time())
            elif kind == "advance":
                await trio.sleep(s[1])
                continue
            elif kind == "terminate":
                c = s[1]
                if c not in model.order:
                    with pytest.raises(otp.ChildNotFound):
                        await handle.terminate_child(c)
                    continue
                await handle.terminate_child(c)
                if c in model.running:
                    model.running.discard(c)
                    model.stops.append(c)
                if model.types[c] == "temporary":
                    model.order.remove(c)
            elif kind == "restart":
                c = s[1]
                if c not in model.order:
                    continue
                if c in model.running:
                    with pytest.raises(otp.ChildRunning):
                        await handle.restart_child(c)
                    continue
                await handle.restart_child(c)
                model._start(c)
            elif kind == "add":
                c = next_id[0]
                next_id[0] += 1
                await handle.start_child(otp.ChildSpec(id=c, start=make(c),
                                                       restart="transient"))
                model.order.append(c)
                model.types[c] = "transient"
                model.inc[c] = 0
                model._start(c)
            await trio.testing.wait_all_tasks_blocked()
            assert ("gave_up" not in outcome) == model.alive, (s, outcome)
            if not model.alive:
                break
            # stops in reverse start order, then starts in start order, exactly as the model
            assert [c for what, c in log if what == "stop"] == model.stops, (s, log)
            assert [c for what, c in log if what == "start"] == model.starts, (s, log)
            assert {c: incarnations.get(c, 0) for c in model.order} == \
                {c: model.inc[c] for c in model.order}
            for c in model.order:
                if model.types[c] == "temporary":
                    assert incarnations[c] == 1   # temporary children never return
            infos = {i.id: i for i in handle.which_children()}
            assert set(infos) == set(model.order)
            assert {c for c, i in infos.items() if i.state == "running"} == model.running
        nursery.cancel_scope.cancel()
    assert not live_tasks, "a child task outlived the tree"


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@settings(max_examples=EXAMPLES, deadline=None)
@given(types=st.lists(st.sampled_from(["permanent", "transient", "temporary"]), min_size=N,
                      max_size=N),
       max_restarts=st.integers(0, 3), max_seconds=st.sampled_from([1.0, 5.0]),
       steps=st.lists(step, max_size=25))
def test_supervisor_matches_model(strategy, types, max_restarts, max_seconds, steps):
    try:
        trio.run(run_example, strategy, types, max_restarts, max_seconds, steps,
                 clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseExceptionGroup as group:   # let hypothesis see (and shrink) the real failure
        raise otp.unwrap_group(group) from None


