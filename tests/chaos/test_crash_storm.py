"""Crash storm: 4 workers, 16 callers, 2 SIGKILLs every 50 ms for 3 s.

Asserted: no call hangs, the only failures are WorkerCrashed, the pool is back to 4 ready
workers within a deadline, and once the application has stopped no process, fd or
shared-memory segment it made is left. Only the public API (app.workers(), app.stats()).
"""

import os
import signal

import psutil
import pytest
import trio

import snakepit
from leaks import Load, fds as _fds, segments as _segments, wait_for as _wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.both_transports]

SIZE, CALLERS = 4, 16
KILL_EVERY, KILLS_PER_ROUND, ROUNDS = 0.05, 2, 60        # 3 s
HUNG_AFTER = 15.0      # a call still running this long after it started is hung
BACK_WITHIN = 30.0
BLOB = b"\x01" * (1 << 20)   # >= 1 MiB: crosses the pipe as a shared-memory segment


async def test_crash_storm(make_config):
    config = make_config(size=SIZE)
    async with snakepit.start(make_config(size=1)) as app:   # warm-up: lazily opened fds
        await app.execute("ping")
    fds, segments = _fds(), _segments()
    pids: set[int] = set()

    async with snakepit.start(config) as app:
        storm_over = trio.Event()

        load = Load(app, storm_over, HUNG_AFTER)
        outcomes, unexpected = load.outcomes, load.unexpected

        def args_for(i: int):
            return lambda n: {"x": i, "blob": BLOB} if n % 4 == 0 else {"x": i}

        async def killer() -> None:
            victims = 0
            for _ in range(ROUNDS):
                # starting workers too: restarts are hit as well
                live = [w["pid"] for w in app.workers()
                        if w["pid"] and w["state"] in ("ready", "starting")]
                pids.update(live)
                for pid in live[:KILLS_PER_ROUND]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        victims += 1
                    except ProcessLookupError:
                        pass
                await trio.sleep(KILL_EVERY)
            outcomes["killed"] = victims
            storm_over.set()

        async with trio.open_nursery() as nursery:
            for i in range(CALLERS):
                nursery.start_soon(load.caller, args_for(i))
            nursery.start_soon(killer)

        await _wait_for(lambda: sum(w["state"] == "ready" for w in app.workers()) == SIZE
                        and app.stats()["available"] == SIZE, BACK_WITHIN)
        pids.update(w["pid"] for w in app.workers())
        assert await app.execute("echo", {"x": "after"}) == {"x": "after"}

    assert unexpected == [], (outcomes, unexpected[:3])
    assert outcomes["hung"] == 0 and outcomes["ok"] > 0 and outcomes["killed"] >= SIZE, \
        outcomes
    assert set(outcomes) <= {"ok", "WorkerCrashed", "killed", "hung"}, outcomes

    await _wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 10.0)
    # Closed as each worker is reaped, not left to the garbage collector (pool/process.py).
    left = {fd: what for fd, what in _fds().items() if fds.get(fd) != what}
    assert left == {}, f"fds left open: {left}"
    ours = [s for s in _segments() - segments if f"-h{os.getpid()}." in s
            or any(f"-w{p}-" in s for p in pids)]
    assert ours == [], "shared-memory segments left"
