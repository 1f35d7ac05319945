"""Zygote storm: a ``preload=True`` pool's zygote SIGKILLed every 0.1–0.3 s for 3 s, under load.

A zygote is an OS process like a worker: its deaths must stop below the supervisors (capped
backoff, a degraded state), never end the application with ``MaxRestartsExceeded``. Asserted:
no call hangs, the only failures are WorkerCrashed, the stormed pool is back within a deadline,
another pool in the same application kept its workers, the zygote keeps
``snakepit_bridge.zygote`` in its command line, and nothing is left once the app has stopped.
"""

import os
import random
import signal

import psutil
import pytest
import trio

import snakepit
from leaks import Load, fds, segments, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.both_transports]

SIZE, CALLERS = 3, 8
STORM = 3.0
KILL_GAP = (0.1, 0.3)
HUNG_AFTER = 20.0
BACK_WITHIN = 30.0


def zygotes() -> list[psutil.Process]:
    """This host's zygote processes, found the way an operator would: by command line."""
    found = []
    for child in psutil.Process().children():
        try:
            if "snakepit_bridge.zygote" in child.cmdline() and \
                    child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            pass
    return found


def ready(app, pool):
    try:
        return [w for w in app.workers(pool) if w["state"] == "ready"]
    except snakepit.SnakepitError:
        return []


async def test_zygote_storm_stays_below_the_supervisors(make_config, transport):
    base = make_config(size=SIZE, preload=True, queue_timeout=60.0)
    stormed = base.pools[0]
    other = snakepit.PoolConfig(name="other", size=1, adapter=stormed.adapter,
                                transport=stormed.transport, env=stormed.env)
    config = snakepit.Config(pools=[stormed, other], state_dir=base.state_dir)
    async with snakepit.start(make_config(size=1, preload=True)) as app:   # warm-up
        await app.execute("ping")
    fds_before, segments_before = fds(), segments()
    seen: set[int] = set()

    async with snakepit.start(config) as app:
        # this run's segments only: a test running beside this one (pytest -n) has its own
        run_segments = app._host.shm_prefix + "-"
        other_pids = [w["pid"] for w in app.workers("other")]
        storm_over = trio.Event()

        load = Load(app, storm_over, HUNG_AFTER)
        outcomes, unexpected = load.outcomes, load.unexpected

        async def killer() -> None:
            rng = random.Random(18)
            deadline = trio.current_time() + STORM
            # at least STORM seconds and 5 kills (under load the zygote takes longer to come
            # back, so a fixed window may see fewer); the whole storm is bounded all the same
            while trio.current_time() < deadline or outcomes["killed"] < 5:
                if trio.current_time() > deadline + 6 * STORM:
                    break
                for z in zygotes():   # starting ones too: a start cut short is a failure
                    seen.add(z.pid)
                    try:
                        os.kill(z.pid, signal.SIGKILL)
                        outcomes["killed"] += 1
                    except ProcessLookupError:
                        pass
                await trio.sleep(rng.uniform(*KILL_GAP))
            storm_over.set()

        async with trio.open_nursery() as nursery:
            for i in range(CALLERS):
                nursery.start_soon(load.caller, lambda n, i=i: {"x": i})
            nursery.start_soon(killer)

        await wait_for(lambda: len(ready(app, "default")) == SIZE
                       and app.stats("default")["available"] == SIZE
                       and app.stats("default")["degraded"] == 0, BACK_WITHIN)
        assert await app.execute("echo", {"x": "after"}) == {"x": "after"}
        assert [w["pid"] for w in app.workers("other")] == other_pids   # untouched
        assert len(zygotes()) == 1
        # every worker was forked by the zygote running now: forks die with their zygote
        assert {psutil.Process(w["pid"]).ppid() for w in ready(app, "default")} == \
            {zygotes()[0].pid}
        seen.update(w["pid"] for w in app.workers("default"))
        seen.update(z.pid for z in zygotes())

    assert unexpected == [], (outcomes, unexpected[:3])
    assert outcomes["hung"] == 0 and outcomes["killed"] >= 5, outcomes
    assert set(outcomes) <= {"ok", "WorkerCrashed", "killed", "hung"}, outcomes
    await wait_for(lambda: not any(psutil.pid_exists(p) for p in seen), 10.0)
    left = {fd: what for fd, what in fds().items() if fds_before.get(fd) != what}
    assert left == {}, f"fds left open: {left}"
    left_segments = {s for s in segments() - segments_before
                     if os.path.basename(s).startswith(run_segments)}
    assert left_segments == set(), "shared-memory segments left"
