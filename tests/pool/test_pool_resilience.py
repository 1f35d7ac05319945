"""Crashes, crash storms, heartbeats, recycling, graceful shutdown — nothing left behind."""

import os
import random
import signal
import time

import psutil
import pytest
import trio

import snakepit
from snakepit import errors




async def wait_for(predicate, timeout=15.0):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


def _full(app, size):
    ws = app.workers()
    return len(ws) == size and all(w["state"] == "ready" for w in ws)


async def test_crash_storm_under_load(make_config):
    size = 4
    async with snakepit.start(make_config(size=size, queue_timeout=30)) as app:
        killed = set()
        results = {"ok": 0, "crashed": 0}
        stop = trio.Event()

        async def load():
            while not stop.is_set():
                try:
                    await app.execute("add", {"a": 1, "b": 2})
                    results["ok"] += 1
                except errors.WorkerCrashed:
                    results["crashed"] += 1

        async def storm():
            rng = random.Random(7)
            deadline = trio.current_time() + 3.0
            while trio.current_time() < deadline:
                pids = [w["pid"] for w in app.workers() if w["pid"]]
                for pid in rng.sample(pids, min(2, len(pids))):
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
                    except ProcessLookupError:
                        pass
                await trio.sleep(0.05)
            stop.set()

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(load)
            nursery.start_soon(storm)
        await wait_for(lambda: _full(app, size), timeout=20)
        assert killed
        for pid in killed:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert results["ok"] > 0
        assert await app.execute("add", {"a": 2, "b": 2}) == 4
        assert app.stats()["restarts"] >= len(killed) // 2


async def test_heartbeat_dependent_restarts_frozen_worker(make_config):
    hb = snakepit.HeartbeatConfig(interval=0.2, timeout=0.3, max_missed=2, dependent=True)
    config = make_config(size=1, adapter="pool_adapters:MisbehavingAdapter", heartbeat=hb)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        with trio.move_on_after(0.5):
            await app.execute("freeze")
        await wait_for(lambda: app.workers() and app.workers()[0]["pid"] != pid
                       and app.workers()[0]["state"] == "ready", timeout=15)
        assert app.stats()["restarts"] == 1
        assert not psutil.pid_exists(pid)


async def test_heartbeat_independent_only_reports(make_config):
    hb = snakepit.HeartbeatConfig(interval=0.2, timeout=0.3, max_missed=2, dependent=False)
    config = make_config(size=1, adapter="pool_adapters:MisbehavingAdapter", heartbeat=hb)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        with trio.move_on_after(0.5):
            await app.execute("freeze")
        await wait_for(lambda: app.workers()[0]["missed_heartbeats"] >= 3, timeout=10)
        assert app.workers()[0]["pid"] == pid and app.stats()["restarts"] == 0
        os.kill(pid, signal.SIGCONT)
        await wait_for(lambda: app.workers()[0]["missed_heartbeats"] == 0, timeout=10)


@pytest.mark.parametrize("trigger", ["worker_ttl", "worker_max_requests",
                                     "worker_max_memory_mb"])
async def test_recycling_fails_no_request(make_config, trigger):
    kw = {"worker_ttl": 0.5, "worker_max_requests": 15, "worker_max_memory_mb": 1}[trigger]
    async with snakepit.start(make_config(size=2, **{trigger: kw})) as app:
        first = {w["pid"] for w in app.workers()}
        failures = 0

        async def one():
            nonlocal failures
            try:
                await app.execute("sleep", {"seconds": 0.01})
            except errors.SnakepitError:
                failures += 1

        # calls keep coming for 2.5 s and until a worker has been recycled (no fixed window:
        # under load a replacement takes a while to start)
        least = trio.current_time() + 2.5
        with trio.fail_after(60):
            while trio.current_time() < least or app.stats()["recycled"] < 1:
                async with trio.open_nursery() as nursery:
                    for _ in range(4):
                        nursery.start_soon(one)
        assert failures == 0
        assert app.stats()["recycled"] >= 1
        assert app.stats()["errors"] == 0
        assert not first & {w["pid"] for w in app.workers()} or app.stats()["recycled"] >= 1


async def test_graceful_shutdown_kills_sigterm_ignorer(make_config):
    config = make_config(size=1, adapter="pool_adapters:MisbehavingAdapter",
                         shutdown_grace=0.5)
    t0 = None
    async with snakepit.start(config) as app:
        pid = await app.execute("ignore_sigterm")
        grandchild = await app.execute("spawn_grandchild")
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5
    assert not psutil.pid_exists(pid)
    await wait_for(lambda: not psutil.pid_exists(grandchild)
                   or psutil.Process(grandchild).status() == "zombie", timeout=5)


async def test_shutdown_answers_queued_callers(make_config):
    config = make_config(size=1, queue_timeout=30)
    outcomes = []

    async def queued(app, tool="add", args={"a": 1, "b": 1}):
        try:
            await app.execute(tool, args)
            outcomes.append("ok")
        except errors.ShuttingDown:
            outcomes.append("shutting_down")

    async with trio.open_nursery() as outer:
        async with snakepit.start(config) as app:
            outer.start_soon(queued, app, "sleep", {"seconds": 30})
            await trio.sleep(0.2)
            for _ in range(3):
                outer.start_soon(queued, app)
            await trio.sleep(0.2)
        outer.cancel_scope.cancel()
    assert outcomes == ["shutting_down"] * 4   # the in-flight call and the 3 queued ones


async def test_startup_failure_is_clear_and_leaves_nothing(make_config):
    config = make_config(size=2, adapter="pool_adapters:FailingInitAdapter")
    t0 = time.monotonic()
    with pytest.raises(errors.WorkerStartError) as info:
        async with snakepit.start(config):
            pass
    assert "model weights not found" in str(info.value) + str(info.value.details)
    assert time.monotonic() - t0 < 20


async def test_missing_interpreter_and_bad_module(make_config):
    with pytest.raises(errors.WorkerStartError, match="no_such_python|not found|No such"):
        async with snakepit.start(make_config(size=1, python="/no_such_python")):
            pass
    with pytest.raises(errors.WorkerStartError, match="no_such_module"):
        async with snakepit.start(make_config(size=1, adapter="no_such_module:Adapter")):
            pass


async def test_two_pools_one_cannot_start(make_config):
    good = snakepit.PoolConfig(name="good", size=1,
                               adapter="snakepit_bridge.adapters.showcase:ShowcaseAdapter")
    bad = snakepit.PoolConfig(name="bad", size=1, adapter="no_such_module:Adapter")
    with pytest.raises(errors.WorkerStartError, match="bad"):
        async with snakepit.start(make_config(pools=[good, bad])):
            pass
    bad_optional = snakepit.PoolConfig(name="bad", size=1, adapter="no_such_module:Adapter",
                                       required=False)
    async with snakepit.start(make_config(pools=[good, bad_optional])) as app:
        assert await app.execute("add", {"a": 1, "b": 2}, pool="good") == 3
        with pytest.raises((errors.PoolNotReady, errors.QueueTimeout, errors.RequestTimeout)):
            await app.execute("ping", pool="bad", timeout=0.5)


def test_bad_configs():
    with pytest.raises(errors.ConfigError, match="size"):
        snakepit.PoolConfig(size=0)
    with pytest.raises(errors.ConfigError, match="affinity"):
        snakepit.PoolConfig(affinity="sticky")
    with pytest.raises(errors.ConfigError, match="profile"):
        snakepit.PoolConfig(profile="fiber")
    with pytest.raises(errors.ConfigError):
        snakepit.Config(pools=[snakepit.PoolConfig(name="a"), snakepit.PoolConfig(name="a")])


async def test_degraded_slot_keeps_retrying_then_recovers(make_config, tmp_path):
    marker = tmp_path / "fail"
    config = make_config(size=1, adapter="pool_adapters:FailsWhenMarked",
                         env={"FAIL_MARKER": str(marker), "PYTHONPATH": str(
                             __import__("pathlib").Path(__file__).parent)})
    async with snakepit.start(config) as app:
        pid = await app.execute("pid")
        marker.write_text("x")
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: app.stats()["degraded"] == 1, timeout=20)
        assert app.stats()["workers"] == 0
        marker.unlink()
        await wait_for(lambda: app.stats()["workers"] == 1 and app.stats()["degraded"] == 0,
                       timeout=30)
        assert await app.execute("pid") != pid
