"""Property-testing your own supervision tree with snakepit.otp.testing (a pytest file).

    pytest examples/otp_property_test.py        # or: python examples/otp_property_test.py

The tree: a rest_for_one supervisor of a GenServer ("cache"), a worker ("fetcher") and a
transient worker ("reporter"). hypothesis generates fault schedules; check_tree runs the real
tree on a MockClock (hours of restarts cost milliseconds), applies them, and compares every
step with testing.Model — on a mismatch it fails with a step-by-step account, and hypothesis
shrinks the schedule to the shortest one that still fails.
"""

import sys

if __name__ == "__main__":   # run as a script: hand the file to pytest (before importing more)
    import pytest
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))

import hypothesis
import pytest
import trio
import trio.testing

from snakepit import otp
from snakepit.otp import testing

# opt-in fixtures: otp_clock (an autojumping MockClock) and quiet_otp_logs
pytest_plugins = ["snakepit.otp.testing.pytest_plugin"]


class Cache(otp.GenServer):
    async def init(self):
        return {}

    async def handle_call(self, request, state):
        return state.get(request), state

    async def handle_cast(self, request, state):
        key, value = request
        return {**state, key: value}


registry = otp.Registry()
IDS = ["cache", "fetcher", "reporter"]
# a probe wraps the real GenServer (so the test can crash it); the others are plain probes
probes = {"cache": testing.FaultyChild("cache", Cache.start_link(name=registry.via("cache")))}
probes.update({i: testing.FaultyChild(i, journal=probes["cache"].journal) for i in IDS[1:]})
RESTART = {"cache": "permanent", "fetcher": "permanent", "reporter": "transient"}

tree = otp.Supervisor([otp.ChildSpec(id=i, start=probes[i].start, restart=RESTART[i])
                       for i in IDS], strategy="rest_for_one", max_restarts=3, max_seconds=5.0)
model = testing.Model(RESTART, strategy="rest_for_one", max_restarts=3, max_seconds=5.0)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(schedule=testing.fault_schedules(IDS, max_faults=8, max_gap=3.0))
def test_tree_restarts_as_otp_says(schedule, quiet_otp_logs):
    trio.run(testing.check_tree, tree, probes, schedule, model,
             clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_wrong_model_is_caught(quiet_otp_logs):
    wrong = testing.Model(RESTART, strategy="one_for_one", max_restarts=3, max_seconds=5.0)
    with pytest.raises(AssertionError, match="differs from the model"):
        trio.run(testing.check_tree, tree, probes, [testing.Fault(1.0, "cache", "crash")],
                 wrong, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.trio
async def test_cache_is_fresh_after_a_crash(otp_clock, quiet_otp_logs):
    """An async test on the plugin's clock: the restarted cache starts from init again."""
    cache = testing.FaultyChild("cache", Cache.start_link(name=registry.via("cache")))
    sup = otp.Supervisor([otp.ChildSpec(id="cache", start=cache.start)])
    async with otp.running(sup.run):
        await otp.cast(registry.via("cache"), ("k", 1))
        assert await otp.call(registry.via("cache"), "k") == 1
        await trio.sleep(3600)               # an hour, on the MockClock: instant
        cache.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert cache.incarnations == 2
        assert await otp.call(registry.via("cache"), "k") is None

