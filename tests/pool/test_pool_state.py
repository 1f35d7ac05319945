"""The pool's state with one owner, against real worker processes: abandoned requests,
cancel_grace, worker_max_requests as a limit, kill policy by reason (ADR 0002)."""

import collections
import os
import signal

import psutil
import trio

import snakepit
from snakepit import errors

from gates import release, started, wait_for

MISBEHAVING = "pool_adapters:MisbehavingAdapter"


async def test_timed_out_sync_tool_keeps_its_worker_out_of_rotation(make_config, tmp_path):
    """Regression: the pool showed the worker available while the timed-out tool still ran, and
    the next innocent call waited behind it (or timed out, blamed)."""
    fifo, marker = str(tmp_path / "gate"), str(tmp_path / "started")
    os.mkfifo(fifo)
    config = make_config(size=1, adapter=MISBEHAVING, cancel_grace=60.0, shutdown_grace=0.5)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        outcome = []

        async def call():
            try:
                await app.execute("block_on", {"path": fifo, "started": marker}, timeout=5.0)
            except errors.RequestTimeout as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await started(marker)          # the tool runs; its call times out after 5 s
        assert len(outcome) == 1
        assert app.workers()[0]["state"] == "cancelling"
        assert app.stats()["available"] == 0
        release(fifo)                                  # the tool ends...
        await wait_for(lambda: app.workers()[0]["state"] == "ready")
        assert app.stats()["available"] == 1            # ...and its worker is back
        assert (await app.execute("ping", timeout=10.0))["pid"] == pid
        assert app.workers()[0]["pid"] == pid           # confirmed, not killed


async def test_cancel_grace_kills_a_worker_that_does_not_confirm(make_config, tmp_path):
    """A worker whose cancelled tool runs past cancel_grace is killed at once (SIGKILL: no
    shutdown_grace wait) and replaced."""
    fifo, marker = str(tmp_path / "never"), str(tmp_path / "started")
    os.mkfifo(fifo)
    config = make_config(size=1, adapter=MISBEHAVING, cancel_grace=0.5, shutdown_grace=60.0,
                         transport="pipe")
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        async with trio.open_nursery() as nursery:      # a caller that gives up once it runs
            nursery.start_soon(app.execute, "block_on", {"path": fifo, "started": marker})
            await started(marker)
            nursery.cancel_scope.cancel()
        await wait_for(lambda: app.workers() and app.workers()[0]["pid"] != pid
                       and app.workers()[0]["state"] == "ready", timeout=20.0)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert (await app.execute("ping"))["status"] == "pong"


async def test_worker_max_requests_is_a_limit(make_config):
    """Regression: with size=1 and worker_max_requests=3 one process served all seven calls;
    with 5 the counts were [7, 1, 5, 5, 5, 2]. No process serves more than N, none is thrown
    away early, and no caller fails while workers are replaced."""
    config = make_config(size=2, adapter=MISBEHAVING, worker_max_requests=3,
                         shutdown_grace=1.0, queue_timeout=30.0)
    async with snakepit.start(config) as app:
        served = collections.Counter()

        async def caller(n):
            for _ in range(n):
                served[await app.execute("pid", timeout=30.0)] += 1

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(caller, 6)
        assert sum(served.values()) == 24
        assert max(served.values()) <= 3, served
        # every process but the last incarnation of each slot served exactly 3
        assert sorted(served.values())[2:] == [3] * (len(served) - 2), served
        # a recycle is counted once its old process is gone: let the last ones finish
        await wait_for(lambda: app.stats()["recycled"] >= 24 // 3 - 1)
        assert abs(app.stats()["recycled"] - 24 // 3) <= 1


async def test_frozen_worker_is_killed_without_waiting_for_shutdown_grace(make_config):
    """Regression: a worker stopped for missed heartbeats got SIGTERM and the whole
    shutdown_grace before SIGKILL, keeping its slot empty that long."""
    hb = snakepit.HeartbeatConfig(interval=0.2, timeout=0.3, max_missed=2, dependent=True)
    config = make_config(size=1, adapter=MISBEHAVING, heartbeat=hb, shutdown_grace=60.0)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        os.kill(pid, signal.SIGSTOP)                    # frozen: no heartbeat answered
        await wait_for(lambda: app.workers() and app.workers()[0]["pid"] != pid
                       and app.workers()[0]["state"] == "ready", timeout=20.0)
        assert await app.execute("ping") == {"status": "pong", "pid": app.workers()[0]["pid"]}
