"""No orphans: a host killed with -9 leaves nothing the next start does not clean up."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest

import snakepit
from snakepit.pool.process_registry import ProcessRegistry

HOST_SCRIPT = """
import json, sys, trio, snakepit
cfg = snakepit.Config(state_dir=sys.argv[1], pools=[snakepit.PoolConfig(
    name="default", size=2, adapter="snakepit_bridge.adapters.showcase:ShowcaseAdapter",
    preload=sys.argv[2] == "preload")])
async def main():
    async with snakepit.start(cfg) as app:
        print(json.dumps([w["pid"] for w in app.workers()]), flush=True)
        await trio.sleep(600)
trio.run(main)
"""


def dead(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_dead(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(dead(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _fake_dead_run(db_path, entries):
    db = sqlite3.connect(db_path)
    db.execute("INSERT INTO runs VALUES ('deadrun', 'default', 999999999, 1.0, 1.0)")
    for worker_id, pid, start, cmdline in entries:
        db.execute("INSERT INTO processes (run_id, instance, worker_id, cmdline, pid, "
                   "start_time, created_at) VALUES ('deadrun', 'default', ?, ?, ?, ?, 0)",
                   (worker_id, json.dumps(cmdline), pid, start))
    db.commit()
    db.close()


@pytest.mark.parametrize("start", ["spawn", "preload"])   # forked workers are swept too
async def test_sweep_after_host_kill_9(tmp_path, make_config, start):
    state = tmp_path / "state"
    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, str(state), start],
                            stdout=subprocess.PIPE)
    bystander = subprocess.Popen(["sleep", "600"])
    pids = []
    try:
        pids = json.loads(host.stdout.readline())
        for pid in pids:      # frozen workers cannot notice their host is gone: the sweep must
            os.kill(pid, signal.SIGSTOP)
        host.kill()
        host.wait()
        assert not any(dead(p) for p in pids)
        # An unrelated live process whose pid appears in a dead run's records, with the wrong
        # start time, and one with the right start time but another command line.
        me = psutil.Process(bystander.pid)
        _fake_dead_run(state / "processes.sqlite3", [
            ("x-1", bystander.pid, me.create_time() - 100, me.cmdline()),
            ("x-2", bystander.pid, me.create_time(), ["python", "-m", "snakepit_bridge"]),
        ])
        async with snakepit.start(make_config(size=1)) as app:
            assert await app.execute("add", {"a": 1, "b": 1}) == 2
        assert wait_dead(pids), "the sweep left workers of the dead host alive"
        assert bystander.poll() is None and not dead(bystander.pid)
    finally:
        for pid in pids:       # only if the sweep failed: leave nothing behind either way
            if not dead(pid):
                os.kill(pid, signal.SIGKILL)
        bystander.kill()
        bystander.wait()
        host.stdout.close()


def test_registry_sweep_rules(tmp_path):
    victim = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        proc = psutil.Process(victim.pid)
        reg = ProcessRegistry.open(tmp_path, instance_name="default", run_id="live")
        _fake_dead_run(tmp_path / "processes.sqlite3",
                       [("w-1", victim.pid, proc.create_time(), proc.cmdline()),
                        ("w-2", None, None, ["never", "spawned"])])
        dry = reg.sweep(dry_run=True)
        assert [e["pid"] for e in dry.killed] == [victim.pid] and victim.poll() is None
        report = reg.sweep()
        assert [e["pid"] for e in report.killed] == [victim.pid] and report.pruned == 2
        assert victim.wait(5) is not None
        assert reg.entries() == [] and reg.sweep().killed == []
        other = ProcessRegistry.open(tmp_path, instance_name="other", run_id="x")
        assert other.sweep().dead_runs == []   # instances do not sweep each other
        other.close()
        reg.close()
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()
