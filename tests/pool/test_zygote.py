"""preload=True: workers forked from a per-pool zygote are first-class workers — recorded,
in their own process group, reaped (exit codes via the zygote), restarted, and gone with the
host."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import trio

import snakepit
from snakepit.pool.process_registry import ProcessRegistry

pytestmark = pytest.mark.both_transports


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_for(predicate, timeout=30.0):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


def ready_pids(app):
    try:
        return sorted(w["pid"] for w in app.workers() if w["state"] == "ready")
    except snakepit.errors.PoolNotReady:   # the pool's tree is restarting
        return []


async def test_workers_are_forked_recorded_and_reaped(make_config, tmp_path):
    async with snakepit.start(make_config(size=3, preload=True)) as app:
        pids = ready_pids(app)
        parents = {psutil.Process(pid).ppid() for pid in pids}
        assert len(parents) == 1
        zygote = psutil.Process(parents.pop())
        assert "snakepit_bridge.zygote" in zygote.cmdline()
        assert zygote.ppid() == os.getpid()
        assert all(os.getpgid(pid) == pid for pid in pids)   # own group: killpg reaches it
        registry = ProcessRegistry.open(tmp_path / "state", instance_name="default",
                                        register_run=False)
        recorded = {e["pid"]: e["cmdline"] for e in registry.entries()}
        registry.close()
        assert set(pids) | {zygote.pid} <= set(recorded)
        assert recorded[pids[0]] == zygote.cmdline()   # what ps shows for a fork
        got = {(await app.execute("ping", {}))["pid"] for _ in range(12)}
        assert got <= set(pids)
        data = os.urandom(2 << 20)
        assert (await app.execute("echo", {"data": data}))["data"] == data

        os.kill(pids[0], signal.SIGKILL)   # the zygote reports the exit; the slot refills
        await wait_for(lambda: len(ready_pids(app)) == 3 and pids[0] not in ready_pids(app))
        assert gone(pids[0])
        assert psutil.Process(ready_pids(app)[0]).ppid() == zygote.pid
        everyone = ready_pids(app) + [zygote.pid]
    assert all(gone(pid) for pid in everyone)


async def test_a_dead_zygote_takes_its_workers_with_it_and_comes_back(make_config):
    async with snakepit.start(make_config(size=2, preload=True)) as app:
        pids = ready_pids(app)
        zygote = psutil.Process(pids[0]).ppid()
        os.kill(zygote, signal.SIGKILL)
        await wait_for(lambda: len(ready_pids(app)) == 2 and not set(pids) & set(ready_pids(app)))
        await wait_for(lambda: all(gone(pid) for pid in pids))
        new = ready_pids(app)
        assert psutil.Process(new[0]).ppid() not in (zygote, os.getpid())
        assert await app.execute("add", {"a": 2, "b": 3}) == 5


@pytest.mark.parametrize("transport", ["grpc"])
async def test_many_grpc_workers_leave_threads_for_everyone_else(make_config, transport):
    # Each gRPC worker's telemetry stream holds a pump thread for its whole life. On trio's
    # default limiter (40) 45 workers starved every other to_thread call: this start hung.
    async with snakepit.start(make_config(size=45, preload=True, transport="grpc",
                                          startup_batch_size=45, startup_timeout=60)) as app:
        with trio.fail_after(20):
            runtime = app._host.registry.whereis(("pool_runtime", "default"))
            await wait_for(lambda: all(w.telemetry_stream is not None
                                       for w in runtime.workers.values()))
            assert await trio.to_thread.run_sync(lambda: 42) == 42
            async with app.stream("stream_data", {"count": 3}) as chunks:
                assert len([c async for c in chunks]) >= 3


HOST_SCRIPT = """
import json, sys, trio, snakepit
cfg = snakepit.Config(state_dir=sys.argv[1], pools=[snakepit.PoolConfig(
    name="default", size=2, adapter="snakepit_bridge.adapters.showcase:ShowcaseAdapter",
    preload=True, transport=sys.argv[2])])
async def main():
    async with snakepit.start(cfg) as app:
        pids = [w["pid"] for w in app.workers()]
        import psutil
        print(json.dumps(pids + [psutil.Process(pids[0]).ppid()]), flush=True)
        await trio.sleep(600)
trio.run(main)
"""


def test_host_kill_9_takes_the_zygote_and_its_workers_down(tmp_path, transport):
    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, str(tmp_path), transport],
                            stdout=subprocess.PIPE)
    pids = []
    try:
        pids = json.loads(host.stdout.readline())
        host.kill()
        host.wait()
        deadline = time.monotonic() + 20
        while not all(gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(p) for p in pids), "workers or zygote outlived their host"
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        host.stdout.close()


async def test_a_zygote_that_cannot_preload_fails_a_required_pools_start(make_config):
    with pytest.raises(snakepit.SnakepitError, match="no_such_module"):
        async with snakepit.start(make_config(size=1, preload=True,
                                              adapter="no_such_module:Adapter")):
            pass


async def test_a_failing_zygote_is_retried_with_backoff_and_reported_degraded(make_config):
    # An optional pool whose zygote cannot start keeps being retried (capped backoff, like a
    # worker slot), counts as degraded, and leaves the other pools serving.
    base = make_config(size=1)
    broken = snakepit.PoolConfig(name="broken", size=1, preload=True, required=False,
                                 adapter="no_such_module:Adapter", env=base.pools[0].env)
    config = snakepit.Config(pools=[base.pools[0], broken], state_dir=base.state_dir)
    async with snakepit.start(config) as app:
        await wait_for(lambda: app.stats("broken")["degraded"] == 1, 30.0)
        assert app.stats("broken")["workers"] == 0
        assert await app.execute("add", {"a": 2, "b": 3}) == 5


async def test_a_fork_inherits_only_its_transports_carrier_and_a_frozen_heap(make_config,
                                                                             transport):
    """The zygote preloads the carrier of its pool's transport only (a pipe worker never
    imports grpc), and freezes what it holds before it forks: a fork's garbage collections do
    not walk, and so do not copy, the pages it shares with the zygote."""
    async with snakepit.start(make_config(size=1, preload=True,
                                          adapter="pool_adapters:ProcessFacts")) as app:
        facts = await app.execute("facts")
    grpc_loaded = any(m == "grpc" or m.startswith("grpc.") for m in facts["modules"])
    assert grpc_loaded == (transport == "grpc")
    assert facts["frozen"] > 10_000 and facts["gc_enabled"]
    assert "snakepit-stdin" not in facts["threads"]   # stdin is watched by the event loop
